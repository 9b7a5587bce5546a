//! WebSocket and HTTP server (being built).
