//! The crate's one error type, [`ReplayError`], and its [`Result`] alias.
//!
//! Every error about a journal names the journal (input or output) and,
//! where there is one, the segment file, the byte offset and the sequence
//! number, so an operator can find the damage with a hex editor.

use ringex_journal::CorruptReason;
use std::path::PathBuf;

/// `Result` with this crate's [`ReplayError`].
pub type Result<T, E = ReplayError> = std::result::Result<T, E>;

/// Which of a session's two journals an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The input journal (commands).
    Input,
    /// The output journal (events).
    Output,
}

impl std::fmt::Display for Which {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Which::Input => "input journal",
            Which::Output => "output journal",
        })
    }
}

/// Everything that can stop a replay before it reaches a verdict.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The journal directory does not exist.
    #[error("{which}: no such directory {}", path.display())]
    MissingDir {
        /// Which journal.
        which: Which,
        /// The directory asked for.
        path: PathBuf,
    },
    /// The directory exists but holds no journal segment.
    #[error("{which}: {} holds no journal segments (*.seg)", path.display())]
    NotAJournal {
        /// Which journal.
        which: Which,
        /// The directory.
        path: PathBuf,
    },
    /// A record or segment header is damaged before the journal's tail (a
    /// CRC mismatch, a broken hash chain, a gap): the journal was corrupted
    /// or edited. The journal's own recovery refuses to start on it too.
    #[error(
        "{which} is damaged: {} at byte offset {offset} (sequence {sequence}): {reason}",
        file.display()
    )]
    Damaged {
        /// Which journal.
        which: Which,
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the bad record (0 for a segment header).
        offset: u64,
        /// The sequence number the record there should carry.
        sequence: u64,
        /// What is wrong.
        reason: CorruptReason,
    },
    /// Reading the journal failed (I/O, or damage met while reading).
    #[error("{which}: {error}")]
    Journal {
        /// Which journal.
        which: Which,
        /// The journal crate's error (names file, offset and sequence for
        /// damage).
        error: ringex_journal::Error,
    },
    /// A record is intact but is not what this journal should hold (a
    /// wrong kind or size, a command whose stamp differs from its record).
    #[error("{which}: record {sequence}: {problem}")]
    BadRecord {
        /// Which journal.
        which: Which,
        /// The record's sequence number.
        sequence: u64,
        /// What is wrong.
        problem: String,
    },
    /// The input journal does not start at sequence 1 (older segments were
    /// removed after a snapshot); a replay needs the whole history.
    #[error("input journal starts at sequence {first}, not 1: replaying a trimmed journal needs an engine snapshot, which this tool does not load")]
    TrimmedHistory {
        /// The first sequence number still in the journal.
        first: u64,
    },
    /// The input journal is trimmed and no snapshot can start its replay
    /// (none, or each one damaged, tampered with or from another history:
    /// `problem` names them).
    #[error("input journal starts at sequence {first}, not 1, and no snapshot can start its replay: {problem}")]
    NoUsableSnapshot {
        /// The first sequence number still in the journal.
        first: u64,
        /// Why each snapshot was passed over.
        problem: String,
    },
    /// The engine configuration is invalid.
    #[error("engine configuration: {0}")]
    Engine(#[from] ringex_core::Error),
    /// The engine configuration file could not be read or parsed.
    #[error("engine configuration {}: {problem}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// Writing the output failed.
    #[error("write output: {0}")]
    Output(std::io::Error),
}

impl From<std::io::Error> for ReplayError {
    fn from(e: std::io::Error) -> Self {
        ReplayError::Output(e)
    }
}

impl ReplayError {
    pub(crate) fn journal(which: Which) -> impl FnOnce(ringex_journal::Error) -> ReplayError {
        move |error| ReplayError::Journal { which, error }
    }

    /// Whether the error means a journal is damaged (corrupted or edited),
    /// as opposed to missing, unreadable or misconfigured input.
    pub fn is_damage(&self) -> bool {
        match self {
            ReplayError::Damaged { .. } => true,
            ReplayError::Journal { error, .. } => {
                matches!(error, ringex_journal::Error::Corrupt { .. })
            }
            _ => false,
        }
    }
}
