//! Reading a session's two journals: the input journal (commands) and the
//! output journal (events), read-only.
//!
//! Nothing here opens a journal for writing, takes its lock or truncates a
//! torn tail: a replay can run beside a live pipeline, and on a copy of a
//! crashed one, without changing a byte. Each journal is first checked with
//! [`ringex_journal::verify`] (every CRC, the hash chain, the segment
//! links): damage before the tail is an error naming file, offset and
//! sequence ([`ReplayError::Damaged`]); a torn tail is reported and the
//! replay stops before it, exactly as the journal's recovery would
//! truncate it.
//!
//! **Threads.** Everything here runs on the caller's thread.

use crate::error::{ReplayError, Result, Which};
use ringex_core::pipeline::{PipelineConfig, JOURNAL_KIND_COMMAND, JOURNAL_KIND_EVENT};
use ringex_core::records::{Command, Event, COMMAND_SIZE, EVENT_SIZE};
use ringex_journal::{JournalReader, TornTail, VerifyReport};
use std::path::{Path, PathBuf};

/// Where a session's journals are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionPaths {
    /// The input journal's directory (the pipeline's `journal_dir`).
    pub input: PathBuf,
    /// The output journal's directory (by default `input/events`, as the
    /// pipeline writes it).
    pub output: PathBuf,
}

impl SessionPaths {
    /// The journals of the pipeline whose `journal_dir` is `dir`, with the
    /// output journal in `output` or, by default, where the pipeline puts
    /// it (`dir/events`).
    pub fn new(dir: impl Into<PathBuf>, output: Option<PathBuf>) -> SessionPaths {
        let input = dir.into();
        let output = output.unwrap_or_else(|| input.join(PipelineConfig::DEFAULT_OUTPUT_SUBDIR));
        SessionPaths { input, output }
    }

    /// The pipeline's snapshot directory for this session (`input/snapshots`,
    /// where the pipeline puts it by default); `verify` starts a trimmed
    /// journal from a snapshot there.
    pub fn snapshot_dir(&self) -> PathBuf {
        self.input.join(PipelineConfig::DEFAULT_SNAPSHOT_SUBDIR)
    }

    /// The directory of `which` journal.
    pub fn dir(&self, which: Which) -> &Path {
        match which {
            Which::Input => &self.input,
            Which::Output => &self.output,
        }
    }
}

/// What checking one journal found ([`check_journal`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalCheck {
    /// Which journal.
    pub which: Which,
    /// Its directory.
    pub dir: PathBuf,
    /// The journal crate's verification report (intact: no break).
    pub report: VerifyReport,
}

impl JournalCheck {
    /// Records that replay may read (up to the tail, a torn tail excluded).
    pub fn records(&self) -> u64 {
        self.report.records
    }

    /// The last intact sequence number, if any.
    pub fn last_sequence(&self) -> Option<u64> {
        self.report.last_sequence
    }

    /// The torn tail the journal's recovery would truncate, if any.
    pub fn torn_tail(&self) -> Option<&TornTail> {
        self.report.torn_tail.as_ref()
    }

    /// One line describing the torn tail, if there is one.
    pub fn torn_tail_note(&self) -> Option<String> {
        self.torn_tail().map(|t| {
            format!(
                "{}: torn tail in {} at byte offset {} (sequence {}): {}; recovery truncates it ({} non-zero bytes); reading stops before it",
                self.which,
                t.file.display(),
                t.offset,
                t.sequence,
                t.reason,
                t.bytes_discarded
            )
        })
    }
}

/// Checks the journal in `dir` with [`ringex_journal::verify`]: every CRC,
/// the hash chain and the segment links. A missing directory, one without
/// segments, or damage before the tail is an error; a torn tail is not (see
/// [`JournalCheck::torn_tail`]).
pub fn check_journal(which: Which, dir: &Path) -> Result<JournalCheck> {
    check_journal_with(which, dir, false)
}

/// [`check_journal`], which with `allow_trimmed` also accepts an input
/// journal that starts after sequence 1 (its replay then starts from a
/// snapshot; see [`crate::verify()`]).
pub fn check_journal_with(which: Which, dir: &Path, allow_trimmed: bool) -> Result<JournalCheck> {
    if !dir.is_dir() {
        return Err(ReplayError::MissingDir {
            which,
            path: dir.to_path_buf(),
        });
    }
    let report = ringex_journal::verify(dir).map_err(ReplayError::journal(which))?;
    if report.segments == 0 {
        return Err(ReplayError::NotAJournal {
            which,
            path: dir.to_path_buf(),
        });
    }
    if let Some(b) = report.first_break.clone() {
        return Err(ReplayError::Damaged {
            which,
            file: b.file,
            offset: b.offset,
            sequence: b.sequence,
            reason: b.reason,
        });
    }
    if which == Which::Input && !allow_trimmed {
        if let Some(first) = report
            .first_sequence
            .filter(|&f| f != 1 && report.records > 0)
        {
            return Err(ReplayError::TrimmedHistory { first });
        }
    }
    Ok(JournalCheck {
        which,
        dir: dir.to_path_buf(),
        report,
    })
}

/// Reads the commands of a checked input journal, in sequence, up to its
/// last intact record.
pub struct CommandReader {
    reader: Option<JournalReader>,
    next: u64,
    last: u64,
}

impl std::fmt::Debug for CommandReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandReader")
            .field("next", &self.next)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl CommandReader {
    /// A reader over `check`'s journal from sequence 1.
    pub fn open(check: &JournalCheck) -> Result<CommandReader> {
        CommandReader::open_from(check, 1)
    }

    /// A reader over `check`'s journal from sequence `from` (which the
    /// journal must hold, unless it ends before it).
    pub fn open_from(check: &JournalCheck, from: u64) -> Result<CommandReader> {
        let last = check.last_sequence().unwrap_or(0);
        let reader = if last < from {
            None
        } else {
            Some(
                JournalReader::open(&check.dir, from)
                    .map_err(ReplayError::journal(Which::Input))?,
            )
        };
        Ok(CommandReader {
            reader,
            next: from,
            last,
        })
    }

    /// The sequence number of the last command this reader returns.
    pub fn last_sequence(&self) -> u64 {
        self.last
    }

    /// The next command, or `None` after the last intact one.
    pub fn next_command(&mut self) -> Result<Option<Command>> {
        if self.next > self.last {
            return Ok(None);
        }
        let expected = self.next;
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let bad = |problem: String| ReplayError::BadRecord {
            which: Which::Input,
            sequence: expected,
            problem,
        };
        let Some(record) = reader
            .next_record()
            .map_err(ReplayError::journal(Which::Input))?
        else {
            return Err(bad(format!(
                "the journal ended at {} although verification read up to {}",
                expected - 1,
                self.last
            )));
        };
        if record.sequence != expected {
            return Err(bad(format!("found sequence {}", record.sequence)));
        }
        if record.kind != JOURNAL_KIND_COMMAND || record.payload.len() != COMMAND_SIZE {
            return Err(bad(format!(
                "kind {} with {} payload bytes is not a command record (kind {JOURNAL_KIND_COMMAND}, {COMMAND_SIZE} bytes)",
                record.kind,
                record.payload.len()
            )));
        }
        let cmd: Command = bytemuck::pod_read_unaligned(record.payload);
        if cmd.sequence != record.sequence || cmd.timestamp != record.timestamp {
            return Err(bad(format!(
                "the command is stamped ({}, {}) but its record is ({}, {})",
                cmd.sequence, cmd.timestamp, record.sequence, record.timestamp
            )));
        }
        self.next += 1;
        Ok(Some(cmd))
    }
}

/// An event as the output journal holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournaledEvent {
    /// The record's sequence: the event's running index (1, 2, 3, ...).
    pub index: u64,
    /// The record's timestamp: the producing command's timestamp.
    pub timestamp: u64,
    /// The event.
    pub event: Event,
}

/// A raw output-journal record, kept as is when it is not a valid event
/// record (so a divergence can show its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Its sequence number.
    pub sequence: u64,
    /// Its timestamp.
    pub timestamp: u64,
    /// Its kind byte.
    pub kind: u8,
    /// Its payload.
    pub payload: Vec<u8>,
}

impl RawRecord {
    /// The event it carries, if it is a well-formed event record.
    pub fn event(&self) -> Option<Event> {
        (self.kind == JOURNAL_KIND_EVENT && self.payload.len() == EVENT_SIZE)
            .then(|| bytemuck::pod_read_unaligned(&self.payload))
    }
}

/// Reads the records of a checked output journal, in sequence, up to its
/// last intact record.
pub struct EventReader {
    reader: Option<JournalReader>,
    next: u64,
    last: u64,
}

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("next", &self.next)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

impl EventReader {
    /// A reader over `check`'s journal from its first record.
    pub fn open(check: &JournalCheck) -> Result<EventReader> {
        EventReader::open_from(check, 1)
    }

    /// A reader over `check`'s journal from event `from`, which it must
    /// hold unless it ends before it.
    pub fn open_from(check: &JournalCheck, from: u64) -> Result<EventReader> {
        let last = check.last_sequence().unwrap_or(0);
        let first = check.report.first_sequence.unwrap_or(1);
        if last >= from && first > from {
            return Err(ReplayError::BadRecord {
                which: Which::Output,
                sequence: first,
                problem: format!("the output journal starts at event {first}, after event {from}"),
            });
        }
        let reader = if last < from {
            None
        } else {
            Some(
                JournalReader::open(&check.dir, from)
                    .map_err(ReplayError::journal(Which::Output))?,
            )
        };
        Ok(EventReader {
            reader,
            next: from,
            last,
        })
    }

    /// How many records the journal holds (intact, up to the tail).
    pub fn len(&self) -> u64 {
        self.last
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.last == 0
    }

    /// The next record compared as is, or `None` after the last.
    pub fn next_raw(&mut self) -> Result<Option<RawRecord>> {
        self.next_with(|r| RawRecord {
            sequence: r.sequence,
            timestamp: r.timestamp,
            kind: r.kind,
            payload: r.payload.to_vec(),
        })
    }

    /// Whether the next record is exactly (`index`, `timestamp`, kind 2,
    /// `event`'s bytes); `None` after the last record. Allocation-free.
    pub fn next_matches(
        &mut self,
        index: u64,
        timestamp: u64,
        event: &Event,
    ) -> Result<Option<bool>> {
        let bytes = bytemuck::bytes_of(event);
        self.next_with(|r| {
            r.sequence == index
                && r.timestamp == timestamp
                && r.kind == JOURNAL_KIND_EVENT
                && r.payload == bytes
        })
    }

    /// The next event record, or `None` after the last; a record that is
    /// not an event is [`ReplayError::BadRecord`].
    pub fn next_event(&mut self) -> Result<Option<JournaledEvent>> {
        let index = self.next;
        let Some(raw) = self.next_with(|r| {
            (r.kind == JOURNAL_KIND_EVENT && r.payload.len() == EVENT_SIZE).then(|| {
                JournaledEvent {
                    index: r.sequence,
                    timestamp: r.timestamp,
                    event: bytemuck::pod_read_unaligned(r.payload),
                }
            })
        })?
        else {
            return Ok(None);
        };
        raw.map(Some).ok_or_else(|| ReplayError::BadRecord {
            which: Which::Output,
            sequence: index,
            problem: format!("not an event record (kind {JOURNAL_KIND_EVENT}, {EVENT_SIZE} bytes)"),
        })
    }

    fn next_with<T>(
        &mut self,
        f: impl FnOnce(&ringex_journal::Record<'_>) -> T,
    ) -> Result<Option<T>> {
        if self.next > self.last {
            return Ok(None);
        }
        let expected = self.next;
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        let Some(record) = reader
            .next_record()
            .map_err(ReplayError::journal(Which::Output))?
        else {
            return Err(ReplayError::BadRecord {
                which: Which::Output,
                sequence: expected,
                problem: format!(
                    "the journal ended at {} although verification read up to {}",
                    expected - 1,
                    self.last
                ),
            });
        };
        self.next += 1;
        Ok(Some(f(&record)))
    }
}
