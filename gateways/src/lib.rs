//! ringex's gateways: thin translators between clients and the pipeline.
//!
//! A gateway decodes and validates client messages, maps them onto engine
//! [`Command`](ringex_core::records::Command)s, submits them with
//! [`CommandSender::try_submit`](ringex_core::pipeline::CommandSender::try_submit)
//! and routes the engine's events back to the clients from a publisher sink.
//! No trading logic lives here (DESIGN §5).
//!
//! | Module | Thread | Owns |
//! |--------|--------|------|
//! | [`fix`] | one `mio` event loop | FIX sessions: framing, session state, message stores |
//! | [`ws`] | one `mio` event loop | WebSocket and HTTP connections, subscriptions, the L2 view for snapshots |
//! | [`hash`] | any | [`hash::FxHasher`] for keys no client chooses (FIX dictionary tables, WebSocket connection tokens) |
//! | `text` | any | numbers as text without an allocation, for outbound messages |
//! | [`server`] | the caller's, plus a timer and a demo thread | the `ringex` server: configuration, start-up order, bootstrap, demo market |

pub mod fix;
pub mod hash;
pub mod server;
mod text;
pub mod ws;
