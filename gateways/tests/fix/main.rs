//! FIX gateway integration tests: the QuickFIX acceptance suite against
//! the echo fixture, hostile input at a live session, and restarts.

mod acceptance;
mod exchange;
mod hostile;
mod persistence;
mod support;
