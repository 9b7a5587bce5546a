//! `verify`: replay the input journal through a fresh engine and compare
//! every regenerated event with the output journal, byte for byte.
//!
//! Both journals are first checked end to end ([`check_journal`]: CRCs,
//! hash chain, segment links). Then each command is applied to a fresh
//! [`Engine`] and its events are numbered 1, 2, 3, ... exactly as the
//! publisher numbers them; event `i` must equal output record `i` in
//! sequence, timestamp (the command's), kind and all 96 payload bytes. The
//! first difference stops the run and is reported as a [`Divergence`].
//!
//! An output journal that ends early is not a divergence but a lag
//! ([`VerifyReport::output_lag`]): after a crash the publisher may not have
//! journaled the last events, and the pipeline's next start-up regenerates
//! them. [`VerifyReport::verdict`] treats a lag as a pass unless asked to
//! require a complete output journal.
//!
//! A trimmed input journal (its first segments removed after a snapshot)
//! starts from the snapshot the pipeline's start-up would restore
//! ([`ringex_core::pipeline::restore_snapshot_for`], from the session's
//! `snapshots/` directory): the restored engine replays the commands after
//! the snapshot's sequence, and the comparison starts at the event after
//! the snapshot's output event count. Snapshots passed over (damaged,
//! tampered with, another history) are reported with the reason
//! ([`VerifyReport::skipped_snapshots`]); with none usable, verification
//! fails ([`crate::ReplayError::NoUsableSnapshot`]). An untrimmed journal is
//! always replayed whole.
//!
//! **Threads.** Runs on the caller's thread.

use crate::error::{ReplayError, Result, Which};
use crate::source::{
    check_journal, check_journal_with, CommandReader, EventReader, JournalCheck, RawRecord,
    SessionPaths,
};
use crate::walk::{ProgressFn, PROGRESS_EVERY};
use ringex_core::pipeline::{restore_snapshot_for, SnapshotSkipped, SnapshotUsed};
use ringex_core::records::{Command, Event};
use ringex_core::{Engine, EngineConfig};
use std::time::{Duration, Instant};

/// The first place where the replay and the output journal disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Divergence {
    /// Output record `index` differs from the regenerated event `index`.
    EventDiffers {
        /// The event index (output journal sequence number).
        index: u64,
        /// The command that produced the regenerated event.
        command: Command,
        /// The event the replay produced.
        expected: Event,
        /// What the output journal holds at that index.
        found: RawRecord,
    },
    /// The output journal holds more events than the replay produces.
    ExtraEvents {
        /// Events the replay produced.
        regenerated: u64,
        /// Events the output journal holds.
        journaled: u64,
        /// The first event beyond the replay.
        first_extra: RawRecord,
    },
}

/// The output journal ended before the replay's events did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLag {
    /// Events the output journal holds (all matched).
    pub journaled: u64,
    /// Events the replay produced.
    pub regenerated: u64,
    /// The command whose events are the first missing.
    pub first_missing_command: u64,
}

/// What [`verify`] found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The input journal's check (its chain is intact, or verify failed).
    pub input: JournalCheck,
    /// The output journal's check.
    pub output: JournalCheck,
    /// Commands replayed.
    pub commands: u64,
    /// Events regenerated.
    pub events: u64,
    /// Events found byte-identical in the output journal.
    pub matched: u64,
    /// The first divergence, if any (the replay stopped there).
    pub divergence: Option<Divergence>,
    /// A lagging output journal, if so.
    pub output_lag: Option<OutputLag>,
    /// The engine's state digest after the replay.
    pub digest: u64,
    /// Time spent replaying and comparing (the journal checks excluded).
    pub replay_elapsed: Duration,
    /// Time spent checking both journals' chains.
    pub check_elapsed: Duration,
    /// The snapshot the replay started from (a trimmed input journal).
    pub snapshot: Option<SnapshotUsed>,
    /// Snapshots passed over on the way, with the reason.
    pub skipped_snapshots: Vec<SnapshotSkipped>,
}

/// The outcome of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every regenerated event matches, byte for byte.
    Ok,
    /// The replay and the output journal differ (or the output journal
    /// lags and a complete one was required).
    Divergence,
}

impl VerifyReport {
    /// The verdict; with `require_complete` an output journal that lags is
    /// a divergence.
    pub fn verdict(&self, require_complete: bool) -> Verdict {
        if self.divergence.is_some() || (require_complete && self.output_lag.is_some()) {
            Verdict::Divergence
        } else {
            Verdict::Ok
        }
    }

    /// Commands per second of the replay (engine and comparison).
    pub fn commands_per_sec(&self) -> f64 {
        self.commands as f64 / self.replay_elapsed.as_secs_f64().max(1e-9)
    }
}

/// Verifies the session in `paths` with an engine of `config`. Errors are
/// for input that cannot be verified (missing, damaged, not a session);
/// a mismatch is a [`Divergence`] in the report.
pub fn verify(
    paths: &SessionPaths,
    config: EngineConfig,
    mut progress: Option<ProgressFn<'_>>,
) -> Result<VerifyReport> {
    let check_started = Instant::now();
    let input = check_journal_with(Which::Input, &paths.input, true)?;
    let output = check_journal(Which::Output, &paths.output)?;
    let check_elapsed = check_started.elapsed();
    let mut skipped_snapshots = Vec::new();
    let first = input
        .report
        .first_sequence
        .filter(|_| input.report.records > 0);
    let start = match first {
        Some(first) if first != 1 => {
            let start = restore_snapshot_for(
                &paths.snapshot_dir(),
                config,
                &input.dir,
                Some(first),
                input.last_sequence(),
                Some(output.last_sequence().unwrap_or(0)),
                &mut skipped_snapshots,
            )
            .map_err(|e| ReplayError::NoUsableSnapshot {
                first,
                problem: e.to_string(),
            })?;
            // `restore_snapshot_for` fails rather than answer `None` for a
            // trimmed journal; kept as an error all the same.
            Some(start.ok_or_else(|| ReplayError::NoUsableSnapshot {
                first,
                problem: "no snapshot".into(),
            })?)
        }
        _ => None,
    };
    let (mut engine, snapshot, after_command, after_event) = match start {
        Some(s) => (
            s.engine,
            Some(s.used.clone()),
            s.used.sequence,
            s.used.output_events,
        ),
        None => (Engine::try_new(config)?, None, 0, 0),
    };
    let mut commands = CommandReader::open_from(&input, after_command + 1)?;
    let mut journaled = EventReader::open_from(&output, after_event + 1)?;
    let total = commands.last_sequence();

    let started = Instant::now();
    let mut events: Vec<Event> = Vec::with_capacity(64);
    let (mut n_commands, mut index, mut matched) = (0u64, after_event, 0u64);
    let mut divergence = None;
    let mut lag: Option<OutputLag> = None;
    'replay: while let Some(cmd) = commands.next_command()? {
        events.clear();
        engine.apply(&cmd, &mut events);
        n_commands += 1;
        for event in &events {
            index += 1;
            if lag.is_some() {
                continue;
            }
            match journaled.next_matches(index, cmd.timestamp, event)? {
                Some(true) => matched += 1,
                Some(false) => {
                    divergence = Some(Divergence::EventDiffers {
                        index,
                        command: cmd,
                        expected: *event,
                        found: reread(&output, index)?,
                    });
                    break 'replay;
                }
                None => {
                    lag = Some(OutputLag {
                        journaled: journaled.len(),
                        regenerated: 0,
                        first_missing_command: cmd.sequence,
                    });
                }
            }
        }
        if let Some(p) = progress.as_mut() {
            if n_commands % PROGRESS_EVERY == 0 {
                p(cmd.sequence, total);
            }
        }
    }
    if let Some(p) = progress.as_mut() {
        p(n_commands, total);
    }
    if divergence.is_none() && lag.is_none() {
        if let Some(first_extra) = journaled.next_raw()? {
            divergence = Some(Divergence::ExtraEvents {
                regenerated: index,
                journaled: journaled.len(),
                first_extra,
            });
        }
    }
    if let Some(lag) = lag.as_mut() {
        lag.regenerated = index;
    }
    Ok(VerifyReport {
        input,
        output,
        commands: n_commands,
        events: index,
        matched,
        divergence,
        output_lag: lag,
        digest: engine.state_digest(),
        replay_elapsed: started.elapsed(),
        check_elapsed,
        snapshot,
        skipped_snapshots,
    })
}

/// Reads output record `index` again, as is (the comparison did not keep it).
fn reread(output: &JournalCheck, index: u64) -> Result<RawRecord> {
    let mut reader = ringex_journal::JournalReader::open(&output.dir, index)
        .map_err(crate::error::ReplayError::journal(Which::Output))?;
    match reader
        .next_record()
        .map_err(crate::error::ReplayError::journal(Which::Output))?
    {
        Some(r) => Ok(RawRecord {
            sequence: r.sequence,
            timestamp: r.timestamp,
            kind: r.kind,
            payload: r.payload.to_vec(),
        }),
        None => Err(crate::error::ReplayError::BadRecord {
            which: Which::Output,
            sequence: index,
            problem: "the record vanished while it was being compared".into(),
        }),
    }
}

/// Replays the first `upto` commands (all with `None`) of the input journal
/// in `dir` through a fresh engine; returns the commands replayed and the
/// state digest. The crash tests compare it with a restarted pipeline's.
pub fn replay_digest(
    dir: &std::path::Path,
    config: EngineConfig,
    upto: Option<u64>,
) -> Result<(u64, u64)> {
    let input = check_journal(Which::Input, dir)?;
    let mut commands = CommandReader::open(&input)?;
    let mut engine = Engine::try_new(config)?;
    let mut sink = ringex_core::records::CountingSink::default();
    let mut n = 0u64;
    while n < upto.unwrap_or(u64::MAX) {
        let Some(cmd) = commands.next_command()? else {
            break;
        };
        engine.apply(&cmd, &mut sink);
        n += 1;
    }
    Ok((n, engine.state_digest()))
}
