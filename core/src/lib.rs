//! # ringex-core
//!
//! The deterministic heart of the ringex exchange: fixed-size command and
//! event records ([`records`]) and the single-threaded matching engine
//! ([`Engine`]) that owns all trading state — order books, accounts,
//! balances, binary positions and risk limits.
//!
//! ```
//! use ringex_core::records::*;
//! use ringex_core::{Engine, EngineConfig};
//!
//! let mut engine = Engine::new(EngineConfig::small());
//! let mut events: Vec<Event> = Vec::new();
//! let cash = 0;
//! for cmd in [
//!     Command::add_instrument(InstrumentSpec::binary(1, cash)),
//!     Command::add_account(7),
//!     Command::deposit(7, cash, 10_000),
//!     Command::new_order(OrderSpec { outcome: Outcome::Yes, ..OrderSpec::limit(7, 1, 1, Side::Buy, 40, 10) }),
//! ] {
//!     engine.apply(&cmd, &mut events);
//! }
//! assert_eq!(engine.best_prices(1), (Some(40), None));
//! // 10 contracts at 40 cents are reserved.
//! assert_eq!(engine.balance(7, cash).unwrap().reserved, 400);
//! ```
//!
//! Threading: an [`Engine`] is owned by exactly one thread (the engine
//! stage of the pipeline); it is `Send` but deliberately not shared.
//!
//! [`pipeline`] runs the engine as an exchange core: a multi-producer input
//! ring, the journaler (input journal, `ringex-journal`), the engine stage,
//! an output ring and a publisher fanning events out to bounded sinks.

#![warn(missing_docs)]

pub mod config;
pub mod engine;
pub mod error;
pub mod pipeline;
pub mod records;
pub mod reference;

pub use engine::{
    Balance, Engine, EngineConfig, RiskMode, BINARY_PAYOUT, FEE_ACCOUNT, ORDER_SLOT_BITS,
};
pub use error::{Error, Result};
