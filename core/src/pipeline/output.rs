//! The output journal: every event, in publication order, in the journal
//! format of `ringex-journal`.
//!
//! # Records
//!
//! | Field | Value |
//! |-------|-------|
//! | sequence | the event's running index: 1, 2, 3, ... over the journal's whole life |
//! | timestamp | the stamped timestamp of the command that produced the event |
//! | kind | [`JOURNAL_KIND_EVENT`] |
//! | payload | the event's 96 bytes (`bytemuck::bytes_of(&event)`) |
//!
//! The engine is deterministic, so the output journal is a function of the
//! input journal: replaying the commands through a fresh engine and
//! numbering the events 1, 2, 3, ... regenerates it byte for byte (this is
//! what `ringex-replay verify` checks).
//!
//! # Start-up: reconciling with the input journal
//!
//! Start-up replays the journaled commands after the snapshot it restored
//! (or all of them); the [`Reconciler`] numbers the regenerated events from
//! the snapshot's event count + 1 (or from 1) and, for each index:
//!
//! - already in the output journal: compares kind, timestamp and payload
//!   (never appends it again);
//! - beyond its end: appends it. After a crash the output journal may lag
//!   the input journal (the publisher had not reached those events, or a
//!   torn tail was truncated, or the directory was deleted); the missing
//!   tail is regenerated and appended, and the report counts it.
//!
//! A record that differs, or an output journal holding *more* events than
//! the replay produces, means the two journals do not belong together: the
//! output journal is then left as it is, nothing more is written to it, and
//! the problem is reported in [`OutputJournalReport::error`] and
//! [`super::Health::output_journal_error`]. The engine still starts.
//!
//! # Failures while running
//!
//! The publisher appends each event and applies the durability policy
//! ([`Journal::end_batch`]) at the end of each of its batches. Sinks get an
//! event before its output record is durable: the input journal, not the
//! output journal, is the record that gates the engine. An output-journal
//! I/O error never stops the engine or the sinks: the publisher records it
//! ([`super::Health::output_journal_failed`]), drops the journal and
//! writes no further event; [`super::Metrics::output_journaled_sequence`]
//! stops at the last event batch-ended. A restart regenerates the missing
//! tail (see above).

use super::PipelineError;
use crate::records::{Event, EventSink};
use ringex_journal::fs::FileSystem;
use ringex_journal::{Journal, JournalConfig, JournalReader, RecoveryReport};
use std::path::{Path, PathBuf};

/// `kind` byte of an event record in the output journal.
pub const JOURNAL_KIND_EVENT: u8 = 2;

/// What start-up did with the output journal ([`super::StartupReport::output`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputJournalReport {
    /// Its directory.
    pub dir: PathBuf,
    /// Its recovery report (`None` if it could not be opened).
    pub recovery: Option<RecoveryReport>,
    /// Events of replayed commands found in it, byte-identical to the
    /// regenerated ones.
    pub verified: u64,
    /// Regenerated events appended because it lagged the input journal
    /// (a crash, or a deleted directory).
    pub appended: u64,
    /// The index the first event of this run gets.
    pub next_sequence: u64,
    /// Why it is disabled for this run (it could not be opened or written,
    /// or it does not match the input journal); `None` when it is in use.
    pub error: Option<String>,
}

/// The replay's event sink: checks regenerated events against the output
/// journal and appends those it lacks. See the module docs.
pub(crate) struct Reconciler<G: FileSystem> {
    journal: Option<Journal<G>>,
    reader: Option<JournalReader<G>>,
    /// Last index in the output journal at open (0 if empty).
    existing: u64,
    /// First index in the output journal at open (1 if empty).
    first: u64,
    /// Index of the next regenerated event.
    next: u64,
    /// Timestamp of the command being replayed.
    pub(crate) timestamp: u64,
    report: OutputJournalReport,
}

impl<G: FileSystem> Reconciler<G> {
    /// Opens the output journal in `dir` (running its recovery). A failure
    /// is kept in the report, not returned: the pipeline runs without it.
    pub(crate) fn open(fs: G, dir: &Path, config: JournalConfig) -> Reconciler<G> {
        let mut r = Reconciler {
            journal: None,
            reader: None,
            existing: 0,
            first: 1,
            next: 1,
            timestamp: 0,
            report: OutputJournalReport {
                dir: dir.to_path_buf(),
                recovery: None,
                verified: 0,
                appended: 0,
                next_sequence: 1,
                error: None,
            },
        };
        let (journal, recovery) = match Journal::open_with(fs, dir, config) {
            Ok(opened) => opened,
            Err(e) => {
                r.report.error = Some(format!("open {}: {e}", dir.display()));
                return r;
            }
        };
        r.report.recovery = Some(recovery);
        if let Some(last) = journal.last_sequence() {
            r.existing = last;
            r.first = journal.first_sequence().unwrap_or(1);
        }
        r.journal = Some(journal);
        r
    }

    /// How many events the output journal holds (`None` when it is not in use).
    pub(crate) fn held(&self) -> Option<u64> {
        self.journal.as_ref().map(|_| self.existing)
    }

    /// Disables the output journal for this run, for `problem`.
    pub(crate) fn disable(&mut self, problem: String) {
        self.fail(problem);
    }

    /// Positions the reconciler at event `index`, the first event the
    /// replay regenerates (1 for a full replay; after a snapshot, the
    /// snapshot's event count + 1). Events before it are not checked.
    pub(crate) fn start_at(&mut self, index: u64) {
        self.next = index;
        if self.journal.is_none() {
            return;
        }
        if self.existing + 1 < index {
            let problem = format!(
                "the output journal holds {} events but replay resumes at event {index}",
                self.existing
            );
            return self.fail(problem);
        }
        if self.existing >= index {
            if self.first > index {
                let problem = format!(
                    "the output journal starts at event {}, after event {index} where replay resumes; trimmed history before a snapshot is not supported",
                    self.first
                );
                return self.fail(problem);
            }
            let reader = self.journal.as_ref().map(|j| j.reader(index));
            match reader {
                Some(Ok(reader)) => self.reader = Some(reader),
                Some(Err(e)) => self.fail(format!("read the output journal: {e}")),
                None => {}
            }
        }
    }

    #[cold]
    fn fail(&mut self, problem: String) {
        self.report.error.get_or_insert(problem);
        self.journal = None;
        self.reader = None;
    }

    /// After the replay: checks that the output journal is not ahead, makes
    /// the appended tail durable under the policy and hands back the
    /// journal (if usable), the report, and the index of the last event
    /// regenerated (every event up to it was emitted by a command at or
    /// before the replay's end, whether or not the journal holds it).
    pub(crate) fn finish(mut self) -> (Option<Journal<G>>, OutputJournalReport, u64) {
        let regenerated = self.next - 1;
        if self.journal.is_some() && self.existing > regenerated {
            self.fail(format!(
                "the output journal holds {} events but the input journal's commands produce {regenerated}",
                self.existing
            ));
        }
        if let Some(journal) = self.journal.as_mut() {
            if self.report.appended > 0 {
                if let Err(e) = journal.end_batch() {
                    let problem = format!("append the regenerated events: {e}");
                    self.fail(problem);
                }
            }
        }
        self.reader = None;
        self.report.next_sequence = match &self.journal {
            Some(j) => j.next_sequence().unwrap_or(1),
            None => self.next,
        };
        (self.journal, self.report, regenerated)
    }
}

impl<G: FileSystem> EventSink for Reconciler<G> {
    fn emit(&mut self, event: &Event) {
        let index = self.next;
        self.next += 1;
        if self.journal.is_none() {
            return;
        }
        let bytes = bytemuck::bytes_of(event);
        if index <= self.existing {
            let Some(reader) = self.reader.as_mut() else {
                return;
            };
            let problem = match reader.next_record() {
                Ok(Some(r))
                    if r.sequence == index
                        && r.kind == JOURNAL_KIND_EVENT
                        && r.timestamp == self.timestamp
                        && r.payload == bytes =>
                {
                    None
                }
                Ok(Some(r)) => Some(format!(
                    "output journal record {} (kind {}, timestamp {}, {} bytes) differs from regenerated event {index} (timestamp {})",
                    r.sequence,
                    r.kind,
                    r.timestamp,
                    r.payload.len(),
                    self.timestamp
                )),
                Ok(None) => Some(format!(
                    "the output journal ends before event {index} although it reported {}",
                    self.existing
                )),
                Err(e) => Some(format!("read output journal event {index}: {e}")),
            };
            match problem {
                None => self.report.verified += 1,
                Some(p) => self.fail(p),
            }
        } else if let Some(journal) = self.journal.as_mut() {
            match journal.append(index, self.timestamp, JOURNAL_KIND_EVENT, bytes) {
                Ok(()) => self.report.appended += 1,
                Err(e) => self.fail(format!("append regenerated event {index}: {e}")),
            }
        }
    }
}

/// Checks the output journal directory against the input journal's.
pub(crate) fn validate_dirs(input: &Path, output: &Path) -> Result<(), PipelineError> {
    if input == output {
        return Err(PipelineError::InvalidConfig(format!(
            "the output journal directory must differ from the input journal's ({})",
            input.display()
        )));
    }
    Ok(())
}
