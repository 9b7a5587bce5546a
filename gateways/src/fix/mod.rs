//! FIX 4.4 / FIXT.1.1 acceptor.
//!
//! | Module | Owns | Thread |
//! |--------|------|--------|
//! | [`frame`] | cutting frames out of the byte stream, the checksum | event loop |
//! | [`message`] | decoding frames (garbled checks, sections, groups), encoding outbound messages | any |
//! | [`dictionary`] | validation tables flattened from the `fefix` dictionaries | shared, read-only |
//! | [`validate`] | dictionary validation in QuickFIX's order | any |
//! | [`time`] | UTC timestamps | any |

pub mod app;
pub mod dictionary;
pub mod frame;
pub mod message;
pub mod server;
pub mod session;
pub mod store;
pub mod time;
pub mod validate;

pub use app::{AppReject, Application, EchoApplication};
pub use dictionary::Dictionaries;
pub use server::{FixServer, FixServerConfig, FixServerHandle, ServerError};
pub use session::{Session, SessionConfig};
