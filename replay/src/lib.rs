//! # ringex-replay
//!
//! Audit tools over a ringex session's journals, built only on the public
//! APIs of `ringex-core` and `ringex-journal`: the input journal (every
//! command, as the journaler appended it) and the output journal (every
//! event, as the publisher appended it; by default in `DIR/events`).
//!
//! The engine is deterministic, so the input journal alone determines the
//! session: replaying it through a fresh [`ringex_core::Engine`]
//! regenerates every event. [`verify()`] proves that against the output
//! journal byte for byte and names the first divergence; [`walk()`] feeds
//! `dump`, `export` and `stats`; [`book`] rebuilds L2 and L3 books at any
//! sequence number. The `ringex-replay` binary is the command-line face of
//! all of this (`docs/replay.md`).
//!
//! ```
//! use ringex_core::pipeline::{Pipeline, PipelineConfig};
//! use ringex_core::records::Command;
//! use ringex_core::EngineConfig;
//! use ringex_replay::{verify, SessionPaths, Verdict};
//!
//! let dir = tempfile::tempdir()?;
//! let config = PipelineConfig::two_core_default(dir.path())
//!     .with_engine(EngineConfig::small())
//!     .with_timer(None);
//! let pipeline = Pipeline::start(config)?;
//! let mut sender = pipeline.sender();
//! sender.try_submit(Command::add_account(7))?;
//! sender.try_submit(Command::state_digest())?;
//! drop(sender);
//! let engine = pipeline.shutdown().engine.expect("engine");
//!
//! let report = verify(&SessionPaths::new(dir.path(), None), EngineConfig::small(), None)?;
//! assert_eq!(report.verdict(true), Verdict::Ok);
//! assert_eq!((report.commands, report.events), (2, 2));
//! assert_eq!(report.digest, engine.state_digest());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Where things are
//!
//! | Module | What |
//! |--------|------|
//! | [`source`] | Read-only access to both journals: chain check first, torn tails reported, typed records |
//! | [`verify()`] (`verify.rs`) | Replay vs output journal, byte for byte; the first [`Divergence`] |
//! | [`walk()`] (`walk.rs`) | Commands with their events, from the output journal or a replay |
//! | [`book`] | L3 books rebuilt from order events, L2 books from `BookLevel` events |
//! | [`describe`] | Commands and events as named fields (text and JSON) |
//! | [`export`] | Trades and orders as CSV or JSON lines |
//! | [`stats`] | Counts per kind, instruments, time range |
//! | [`config`] | The engine configuration of a replay (JSON) |
//! | [`generate`] | Seeded random sessions for tests and load |
//! | [`error`] | [`ReplayError`] |
//!
//! ## Threads
//!
//! Everything runs on the caller's thread and only reads the journals (no
//! lock, no truncation), so it may run beside a live pipeline.

#![warn(missing_docs)]

pub mod book;
pub mod config;
pub mod describe;
pub mod error;
pub mod export;
pub mod generate;
pub mod source;
pub mod stats;
mod verify;
mod walk;

pub use error::{ReplayError, Result, Which};
pub use source::{
    check_journal, check_journal_with, JournalCheck, JournaledEvent, RawRecord, SessionPaths,
};
pub use verify::{replay_digest, verify, Divergence, OutputLag, Verdict, VerifyReport};
pub use walk::{
    walk, EventSource, Flow, Group, ProgressFn, WalkOptions, WalkSummary, PROGRESS_EVERY,
};

/// Formats nanoseconds since the Unix epoch as UTC, RFC 3339 with
/// nanoseconds (`2026-11-21T10:17:01.123456789Z`).
pub fn format_timestamp(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let nanos = ns % 1_000_000_000;
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_format_as_utc() {
        assert_eq!(super::format_timestamp(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::format_timestamp(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            super::format_timestamp(951_782_400_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
    }
}
