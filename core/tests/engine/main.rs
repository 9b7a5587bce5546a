//! Integration tests of ringex-core's engine: one test binary, a module per area.
//!
//! - `order_matrix` — every order type x time in force x side x instrument kind,
//! - `orders` — matching rules: STP, FOK, post-only, GTD, stops, replace, cancels, halts,
//! - `binary` — normalisation, position-aware collateral, netting, fees, settlement,
//! - `spot` — reserves, price improvement, fees, budgeted market buys,
//! - `limits` — per-account risk limits,
//! - `rejects` — every invalid command is rejected precisely and changes nothing; garbage,
//! - `properties` — random streams through the engine and the reference model give identical events,
//! - `determinism` — the same stream gives the same bytes,
//! - `allocation` — the steady-state path never allocates (a counting allocator),
//! - `regressions` — one test per engine bug fixed,
//! - `snapshot` — snapshot and restore at any point changes nothing; bad snapshot bytes are refused.
//!
//! Every command goes through [`support::Harness`], which checks the
//! engine's invariants after each one.

mod allocation;
mod binary;
mod determinism;
mod limits;
mod order_matrix;
mod orders;
mod properties;
mod regressions;
mod rejects;
mod snapshot;
mod spot;
mod stream;
mod support;
