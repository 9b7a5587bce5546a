//! # ringex-perf
//!
//! Load generation and measurement for the ringex engine:
//!
//! - [`stream`] — seeded, deterministic command streams shaped like
//!   exchange-core's published throughput benchmark, and an
//!   [`OrderTracker`](stream::OrderTracker) that follows engine events;
//! - [`throughput`] — `ringex-perf core`: commands per second for the engine
//!   with risk on and off, next to the reference model measured in the same run;
//! - [`scale`] — `ringex-perf scale`: memory and load time of an engine holding
//!   10,000 markets, 100,000 accounts and 1,000,000 resting orders;
//! - [`pipeline`] — `ringex-perf pipeline`: open-loop latency (no
//!   coordinated omission) at fixed rates through the running pipeline
//!   (ring → journal → engine → publisher), in `hdrhistogram`;
//! - [`journal_perf`] — `ringex-perf journal`: append throughput per
//!   durability policy next to a raw sequential write of the same bytes;
//! - [`replay_perf`] — `ringex-perf replay`: commands/s replaying a
//!   journal of the stream through a fresh engine (and verifying it);
//! - [`recovery_perf`] — `ringex-perf recovery`: start-up time from a
//!   snapshot plus journal tails of several lengths;
//! - [`fix_perf`] — `ringex-perf fix`: NewOrderSingle → ExecutionReport
//!   round trips through the FIX acceptor next to a raw TCP ping-pong, and
//!   orders/s for one and many sessions;
//! - [`ws_perf`] — `ringex-perf ws`: order-book fan-out to many WebSocket
//!   subscribers over loopback, and the engine with one stalled subscriber;
//! - [`config`] — the TOML configuration file (defaults compiled in,
//!   presets for a 2-core machine and a dedicated server);
//! - [`compare`] — `ringex-perf compare RUN_A RUN_B`: ratios per percentile;
//! - [`results`], [`hgrm`], [`plot`], [`progress`] — the results folder
//!   every scenario writes, its `.hgrm` files, its SVG plots, and the
//!   progress bar on stderr;
//! - [`demo`] — `ringex-perf demo`: a small live market in the terminal;
//! - [`maker`] — `ringex-perf maker`: the FIX market maker against a ringex server;
//! - [`sys`] — the machine and the process (`VmRSS`) for reports.
//!
//! [`throughput`], [`scale`], [`replay_perf`] and [`recovery_perf`] measure
//! the engine on the calling thread and nothing spins. [`pipeline`] runs the
//! pipeline's stage threads (one fused thread with the two-core preset,
//! three with `dedicated-server`) plus a producer and a sink thread; with
//! the two-core preset none of them busy-spins. [`fix_perf`] adds the FIX
//! acceptor's event loop and a writer and a reader thread per session;
//! [`ws_perf`] adds the WebSocket gateway's event loop and a load driver,
//! and runs the subscribers' client threads in a second process (the same
//! binary, re-executed). Results and the commands that produce
//! them are collected in `docs/performance.md`.
//!
//! ```
//! use ringex_perf::stream::{generate, StreamParams};
//!
//! let stream = generate(&StreamParams { commands: 1_000, ..StreamParams::default() });
//! assert_eq!(stream.measured.len(), 1_000);
//! assert_eq!(stream.stats.rejects, 0);
//! ```

#![warn(missing_docs)]

pub mod compare;
pub mod config;
pub mod demo;
pub mod error;
pub mod fix_perf;
pub mod hgrm;
pub mod journal_perf;
pub mod maker;
pub mod pipeline;
pub mod plot;
pub mod progress;
pub mod recovery_perf;
pub mod replay_perf;
pub mod results;
pub mod scale;
pub mod stream;
pub mod sys;
pub mod throughput;
pub mod ws_perf;

pub use error::{Error, Result};
