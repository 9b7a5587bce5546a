//! Pipeline snapshots: the engine state plus what start-up needs to carry
//! on from it, in a [`SnapshotStore`] file; choosing one at start-up.
//!
//! # Payload (version 1)
//!
//! The [`SnapshotStore`] file (header, CRC, atomic write; see
//! `docs/journal-format.md`) at sequence `S` carries this payload:
//!
//! ```text
//!  0                               4                               8
//!  +-------------------------------+-------------------------------+
//!  |        version (u32) = 1      |        reserved (u32) = 0     |  0
//!  +-------------------------------+-------------------------------+
//!  |      sequence (u64): S, the last command applied              |  8
//!  +---------------------------------------------------------------+
//!  |      output_events (u64): events emitted by commands 1..=S    | 16
//!  +---------------------------------------------------------------+
//!  |      last_timestamp (u64): the stamped timestamp of S         | 24
//!  +---------------------------------------------------------------+
//!  |      state_digest (u64): Engine::state_digest() at S          | 32
//!  +-------------------------------+-------------------------------+
//!  |  command_crc (u32)            |        reserved (u32) = 0     | 40
//!  +-------------------------------+-------------------------------+
//!  |      engine snapshot (Engine::write_snapshot bytes)           | 48
//!  +---------------------------------------------------------------+
//! ```
//!
//! `output_events` is where the output journal's reconciler starts (events
//! before the snapshot are not regenerated); `last_timestamp` keeps command
//! timestamps non-decreasing across the restart; the digest is checked
//! after the restore. `command_crc` (CRC32C of command `S`'s 80 journaled
//! bytes, which include its sequence and timestamp) ties the snapshot to
//! this journal's history: after a power cut that lost unsynced journal
//! records, a snapshot taken past them is ahead of the journal — and once
//! new commands reuse those sequence numbers, it is still refused, because
//! command `S` differs.
//!
//! # Choosing a snapshot at start-up
//!
//! Newest first, a snapshot is used if its file validates, its payload
//! parses, it is not ahead of the input journal (`S <= last sequence`), the
//! journal's command `S` is the one it was taken after (unless trimming
//! removed it), the journal holds everything after it
//! (`first sequence <= S + 1`), the
//! output journal (when in use) holds its first `output_events` events, and
//! the engine restores from it with the recorded digest. Every snapshot
//! passed over is reported with the reason. Without a usable snapshot the
//! whole journal is replayed, which needs it to start at sequence 1; if it
//! does not, start-up fails naming every snapshot's defect — except that a
//! snapshot whose only defect is an output journal lagging behind it is
//! then used, with the output journal disabled for the run.
//!
//! Threads: start-up runs on the caller's thread; periodic snapshots are
//! written on the engine thread (single writer of the engine), the
//! shutdown snapshot on the thread calling [`super::Pipeline::shutdown`].

use super::PipelineError;
use crate::{Engine, EngineConfig};
use ringex_journal::{RetentionPolicy, SnapshotStore};
use std::path::{Path, PathBuf};

/// Payload format version.
pub const PIPELINE_SNAPSHOT_VERSION: u32 = 1;
/// Bytes before the engine snapshot in the payload.
pub const PIPELINE_SNAPSHOT_META_SIZE: usize = 48;

/// The snapshot start-up restored ([`super::StartupReport::snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotUsed {
    /// Its file.
    pub path: PathBuf,
    /// The last command it includes.
    pub sequence: u64,
    /// Events emitted up to and including that command.
    pub output_events: u64,
    /// The engine's state digest it recorded (and the restored engine matched).
    pub state_digest: u64,
}

/// A snapshot start-up passed over, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotSkipped {
    /// Its file.
    pub path: PathBuf,
    /// Why it was not used.
    pub reason: String,
}

/// The metadata in front of the engine bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SnapshotMeta {
    pub(crate) sequence: u64,
    pub(crate) output_events: u64,
    pub(crate) last_timestamp: u64,
    pub(crate) state_digest: u64,
    /// CRC32C of command `sequence`'s 80 bytes.
    pub(crate) command_crc: u32,
}

/// CRC32C of a command's journaled bytes (see the module docs).
pub(crate) fn command_crc(cmd: &crate::records::Command) -> u32 {
    crc32c::crc32c(bytemuck::bytes_of(cmd))
}

/// Serialises `engine` with `meta` into `buf` (cleared first) and writes it
/// atomically, then applies the retention policy. Returns the path.
pub(crate) fn write(
    store: &SnapshotStore,
    retention: RetentionPolicy,
    engine: &Engine,
    meta: SnapshotMeta,
    buf: &mut Vec<u8>,
) -> Result<PathBuf, String> {
    buf.clear();
    buf.extend_from_slice(&PIPELINE_SNAPSHOT_VERSION.to_le_bytes());
    buf.extend_from_slice(&0u32.to_le_bytes());
    for v in [
        meta.sequence,
        meta.output_events,
        meta.last_timestamp,
        meta.state_digest,
        u64::from(meta.command_crc),
    ] {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    engine.write_snapshot(buf);
    let path = store
        .write(meta.sequence, buf)
        .map_err(|e| format!("write snapshot at {}: {e}", meta.sequence))?;
    store
        .retain(retention)
        .map_err(|e| format!("snapshot retention: {e}"))?;
    Ok(path)
}

fn parse_meta(payload: &[u8]) -> Result<(SnapshotMeta, &[u8]), String> {
    if payload.len() < PIPELINE_SNAPSHOT_META_SIZE {
        return Err(format!(
            "payload of {} bytes is shorter than its metadata",
            payload.len()
        ));
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let version = word(0) as u32;
    if version != PIPELINE_SNAPSHOT_VERSION || word(0) >> 32 != 0 || word(40) >> 32 != 0 {
        return Err(format!(
            "unsupported pipeline snapshot version {version} or non-zero reserved bytes"
        ));
    }
    Ok((
        SnapshotMeta {
            sequence: word(8),
            output_events: word(16),
            last_timestamp: word(24),
            state_digest: word(32),
            command_crc: word(40) as u32,
        },
        &payload[PIPELINE_SNAPSHOT_META_SIZE..],
    ))
}

/// The input journal as start-up sees it.
pub(crate) struct JournalView<'a> {
    pub(crate) first: Option<u64>,
    pub(crate) last: Option<u64>,
    /// The CRC of the journaled command at a sequence (see [`command_crc`]).
    pub(crate) command_crc_at: &'a dyn Fn(u64) -> Result<u32, String>,
}

/// What start-up restores from.
pub(crate) struct Restored {
    pub(crate) engine: Engine,
    pub(crate) meta: SnapshotMeta,
    pub(crate) used: SnapshotUsed,
    /// Set when the output journal must be disabled (it lags the snapshot).
    pub(crate) output_problem: Option<String>,
}

/// Picks the snapshot to start from (see the module docs). `Ok(None)`:
/// replay the whole journal from sequence 1.
pub(crate) fn choose(
    dir: &Path,
    config: EngineConfig,
    journal: JournalView<'_>,
    output_events_held: Option<u64>,
    skipped: &mut Vec<SnapshotSkipped>,
) -> Result<Option<Restored>, PipelineError> {
    let store = SnapshotStore::open(dir)?;
    let entries = store.list()?;
    let mut lagging_output: Option<(PathBuf, String)> = None;
    for entry in entries.iter().rev() {
        let skip = |skipped: &mut Vec<SnapshotSkipped>, reason: String| {
            skipped.push(SnapshotSkipped {
                path: entry.path.clone(),
                reason,
            });
        };
        let snapshot = match store.load(entry) {
            Ok(s) => s,
            Err(defect) => {
                skip(skipped, defect.to_string());
                continue;
            }
        };
        let (meta, engine_bytes) = match parse_meta(&snapshot.bytes) {
            Ok(parsed) => parsed,
            Err(reason) => {
                skip(skipped, reason);
                continue;
            }
        };
        if meta.sequence != snapshot.sequence {
            skip(
                skipped,
                format!(
                    "payload says sequence {}, file says {}",
                    meta.sequence, snapshot.sequence
                ),
            );
            continue;
        }
        if let Some(last) = journal.last {
            if meta.sequence > last {
                skip(
                    skipped,
                    format!(
                        "it is ahead of the input journal, which ends at {last} (were journaled commands lost?)"
                    ),
                );
                continue;
            }
        }
        if let Some(first) = journal.first {
            if first > meta.sequence + 1 {
                skip(
                    skipped,
                    format!(
                        "the input journal starts at {first}, so commands {}..{first} after it are missing",
                        meta.sequence + 1
                    ),
                );
                continue;
            }
        }
        if journal.first.is_some_and(|first| first <= meta.sequence) {
            match (journal.command_crc_at)(meta.sequence) {
                Ok(crc) if crc == meta.command_crc => {}
                Ok(_) => {
                    skip(
                        skipped,
                        format!(
                            "the input journal's command {} is not the one it was taken after (another history)",
                            meta.sequence
                        ),
                    );
                    continue;
                }
                Err(problem) => {
                    skip(skipped, problem);
                    continue;
                }
            }
        }
        let restore = || -> Result<Restored, String> {
            let engine = Engine::from_snapshot(config, engine_bytes).map_err(|e| e.to_string())?;
            let digest = engine.state_digest();
            if digest != meta.state_digest {
                return Err(format!(
                    "restored state digest {digest:#018x} differs from the recorded {:#018x}",
                    meta.state_digest
                ));
            }
            Ok(Restored {
                engine,
                meta,
                used: SnapshotUsed {
                    path: entry.path.clone(),
                    sequence: meta.sequence,
                    output_events: meta.output_events,
                    state_digest: meta.state_digest,
                },
                output_problem: None,
            })
        };
        if let Some(held) = output_events_held {
            if held < meta.output_events {
                let reason = format!(
                    "the output journal holds {held} events, fewer than the {} before it (they cannot be regenerated from it)",
                    meta.output_events
                );
                if lagging_output.is_none() {
                    lagging_output = Some((entry.path.clone(), reason.clone()));
                }
                skip(skipped, reason);
                continue;
            }
        }
        match restore() {
            Ok(restored) => return Ok(Some(restored)),
            Err(reason) => skip(skipped, reason),
        }
    }
    if journal.first.is_none_or(|first| first == 1) {
        return Ok(None);
    }
    // The journal's history is trimmed: a snapshot is the only way in. One
    // whose only defect is a lagging output journal still restores the
    // engine; the output journal sits this run out.
    if let Some((path, reason)) = lagging_output {
        if let Some(entry) = entries.iter().find(|e| e.path == path) {
            if let Ok(snapshot) = store.load(entry) {
                if let Ok((meta, engine_bytes)) = parse_meta(&snapshot.bytes) {
                    if let Ok(engine) = Engine::from_snapshot(config, engine_bytes) {
                        if engine.state_digest() == meta.state_digest {
                            skipped.retain(|s| s.path != path);
                            return Ok(Some(Restored {
                                engine,
                                meta,
                                used: SnapshotUsed {
                                    path,
                                    sequence: meta.sequence,
                                    output_events: meta.output_events,
                                    state_digest: meta.state_digest,
                                },
                                output_problem: Some(reason),
                            }));
                        }
                    }
                }
            }
        }
    }
    let first = journal.first.unwrap_or(1);
    let reasons: Vec<String> = skipped
        .iter()
        .map(|s| format!("{}: {}", s.path.display(), s.reason))
        .collect();
    Err(PipelineError::Replay {
        sequence: first,
        problem: format!(
            "the journal starts at sequence {first}, not 1, and no snapshot covers the commands before it{}",
            if reasons.is_empty() {
                " (there are no snapshots)".to_string()
            } else {
                format!(" ({})", reasons.join("; "))
            }
        ),
    })
}

/// The snapshot a start-up would restore, for tools that replay a session
/// without running it ([`restore_snapshot_for`]).
pub struct SnapshotStart {
    /// The engine restored from it (its state digest checked).
    pub engine: Engine,
    /// Which snapshot, its last command and its output event count: a
    /// replay continues with command `used.sequence + 1` and event
    /// `used.output_events + 1`.
    pub used: SnapshotUsed,
    /// The stamped timestamp of command `used.sequence`.
    pub last_timestamp: u64,
}

impl std::fmt::Debug for SnapshotStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStart")
            .field("used", &self.used)
            .field("last_timestamp", &self.last_timestamp)
            .finish_non_exhaustive()
    }
}

/// Chooses and restores the snapshot in `snapshot_dir` that
/// [`super::Pipeline::start`] would, for the input journal in `journal_dir`
/// whose intact records run from `first` to `last` (`None` when empty), by
/// the rules of this module's docs; read-only (the journal is read, never
/// recovered or written). `output_events_held`: how many events the output
/// journal holds, when it is to be compared (a snapshot past them is
/// passed over).
///
/// `Ok(None)`: no usable snapshot and the journal starts at sequence 1, so
/// replay it whole. A journal that starts later with no usable snapshot is
/// an error naming every snapshot's defect. Snapshots passed over are added
/// to `skipped` with the reason. Runs on the caller's thread.
pub fn restore_snapshot_for(
    snapshot_dir: &Path,
    config: EngineConfig,
    journal_dir: &Path,
    first: Option<u64>,
    last: Option<u64>,
    output_events_held: Option<u64>,
    skipped: &mut Vec<SnapshotSkipped>,
) -> Result<Option<SnapshotStart>, PipelineError> {
    if !snapshot_dir.is_dir() {
        // Read-only: opening the store would create the directory.
        return match first {
            Some(first) if first != 1 => Err(PipelineError::Replay {
                sequence: first,
                problem: format!(
                    "the journal starts at sequence {first}, not 1, and there is no snapshot directory {}",
                    snapshot_dir.display()
                ),
            }),
            _ => Ok(None),
        };
    }
    let command_crc_at = |sequence: u64| -> Result<u32, String> {
        let problem = |e: String| format!("read command {sequence} of the input journal: {e}");
        let mut reader = ringex_journal::JournalReader::open(journal_dir, sequence)
            .map_err(|e| problem(e.to_string()))?;
        match reader.next_record() {
            Ok(Some(r))
                if r.sequence == sequence && r.payload.len() == crate::records::COMMAND_SIZE =>
            {
                Ok(crc32c::crc32c(r.payload))
            }
            Ok(_) => Err(problem("not a command record".into())),
            Err(e) => Err(problem(e.to_string())),
        }
    };
    let restored = choose(
        snapshot_dir,
        config,
        JournalView {
            first,
            last,
            command_crc_at: &command_crc_at,
        },
        output_events_held,
        skipped,
    )?;
    Ok(restored.map(|r| SnapshotStart {
        engine: r.engine,
        used: r.used,
        last_timestamp: r.meta.last_timestamp,
    }))
}
