//! FIX 4.4 / FIXT.1.1 acceptor (being built).
