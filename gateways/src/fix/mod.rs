//! FIX 4.4 / FIXT.1.1 (FIX 5.0 SP2) acceptor (and an initiator, [`client`]): framing, validation against
//! the `fefix` dictionaries, the session state machine, a persistent
//! message store, and a `mio` event loop serving many sessions. The
//! application behind the sessions plugs in through [`Application`];
//! [`EchoApplication`] is the QuickFIX acceptance fixture. See
//! `docs/fix.md`.
//!
//! | Module | Owns | Thread |
//! |--------|------|--------|
//! | [`frame`] | cutting frames out of the byte stream, the checksum | event loop (per connection) |
//! | [`message`] | decoding frames (garbled checks, sections, groups), encoding outbound messages | any |
//! | [`dictionary`] | validation tables flattened from the `fefix` dictionaries | shared, read-only |
//! | [`validate`] | dictionary validation in QuickFIX's order | any |
//! | [`session`] | the session state machine (no I/O) and its configuration | event loop |
//! | [`store`] | sequence numbers and sent messages, in files or memory | event loop |
//! | [`server`] | the `mio` acceptor: connections, session binding, ticks | event loop |
//! | [`app`] | the application boundary and the echo fixture | event loop |
//! | [`client`] | a blocking FIX initiator (logon, heartbeats, gaps, reconnect backoff) | its caller |
//! | [`exchange`] | order entry onto the engine, execution reports from its events | event loop |
//! | [`time`] | UTC timestamps | any |

pub mod app;
pub mod client;
pub mod dictionary;
pub mod exchange;
pub mod frame;
pub mod message;
pub mod server;
pub mod session;
pub mod store;
pub mod time;
pub mod validate;

pub use app::{AppReject, Application, EchoApplication};
pub use client::{Backoff, ClientConfig, ClientError, FixClient, SeqNums};
pub use dictionary::Dictionaries;
pub use exchange::ExchangeApplication;
pub use server::{FixServer, FixServerConfig, FixServerHandle, ServerError};
pub use session::{Session, SessionConfig};
