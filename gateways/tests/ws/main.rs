//! Integration tests of the WebSocket + HTTP gateway, over real sockets on
//! 127.0.0.1, against a running pipeline.

mod conflation;
mod consistency;
mod http_api;
mod market_data;
mod orders;
mod support;
