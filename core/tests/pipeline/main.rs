//! Integration tests of the pipeline (`ringex_core::pipeline`): one test
//! binary, a module per area.
//!
//! - `end_to_end` — a small market through ring, journal, engine and publisher to a sink;
//!   the journal holds every command and replays to byte-identical events,
//! - `durability` — no event reaches a sink before its command is durable (fsync per batch),
//! - `backpressure` — a full input ring answers `Busy`, never waits,
//! - `restart` — a new pipeline on the same journal recovers the same state,
//! - `sinks` — a slow sink is dropped or degraded while a fast one gets everything,
//! - `failure` — an fsync failure stops the journaler and the engine before the unjournaled command,
//! - `output_journal` — the output journal equals what a lossless sink got and a replay of the
//!   input journal; restarts continue it, start-up completes a lagging one and reports a
//!   mismatched one; an output-journal failure does not stop the engine,
//! - `snapshots` — shutdown writes a snapshot; start-up restores the newest valid one, replays
//!   only the tail, falls back past corrupt ones, starts trimmed journals; replay stays exact,
//! - `shutdown` — `shutdown_within` stops while a sender is still held, keeping everything
//!   published before its stop marker and refusing the rest,
//! - `timer` — the timer source's ticks are journaled,
//! - `crash` — a child process running the pipeline with periodic snapshots is killed (SIGKILL)
//!   at varying points; each restart reaches a clean replay's digest and output journal,
//! - `config` — presets and validation.
//!
//! Every stage uses the backoff or sleep wait strategies: these machines
//! have two cores.
//!
//! The same modules run a second time with the three stages fused on one
//! thread (`tests/pipeline_fused.rs`): [`STAGE_THREADS`] is the only
//! difference, applied by `support::config`.

mod backpressure;
mod config;
mod crash;
mod durability;
mod end_to_end;
mod failure;
mod output_journal;
mod restart;
mod shutdown;
mod sinks;
mod snapshots;
mod support;
mod timer;

/// How the pipelines of this test binary run their stages.
pub const STAGE_THREADS: ringex_core::pipeline::StageThreads =
    ringex_core::pipeline::StageThreads::Separate;
