//! The crate's one error type, [`Error`], and its [`Result`] alias.
//!
//! Corruption is described by [`CorruptReason`] (what is wrong with a record
//! or a segment header) and always travels with the file, the byte offset and
//! the sequence number the record at that offset should carry.

use std::io;
use std::path::PathBuf;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the journal and the snapshot store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file-system operation failed. When it happened in the writer
    /// ([`crate::Journal`]), the journal now refuses further appends
    /// ([`Error::Stopped`]).
    #[error("I/O error ({op} {}): {source}", path.display())]
    Io {
        /// What was being done (`"msync"`, `"create segment"`, `"rename"`, ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A record or segment header failed validation before the tail of the
    /// journal (or in a snapshot-independent place where it cannot be a torn
    /// write). Opening in [`crate::RecoveryMode::Strict`] stops here.
    #[error(
        "corrupt journal: {} at byte offset {offset} (sequence {sequence}): {reason}",
        file.display()
    )]
    Corrupt {
        /// The segment file.
        file: PathBuf,
        /// Byte offset of the bad record (or 0 for a bad segment header).
        offset: u64,
        /// The sequence number the record at `offset` should carry.
        sequence: u64,
        /// What is wrong.
        reason: CorruptReason,
    },
    /// The writer hit an I/O failure earlier and refuses to append, sync or
    /// roll: the caller (the journaler stage) must stop. Reopening the
    /// journal runs recovery.
    #[error(
        "journal stopped after an earlier I/O failure ({op} {}: {kind}); reopen it to recover",
        path.display()
    )]
    Stopped {
        /// The operation that failed first.
        op: &'static str,
        /// The file it failed on.
        path: PathBuf,
        /// The kind of the original error.
        kind: io::ErrorKind,
    },
    /// [`crate::Journal::append`] was given a sequence number other than the
    /// next one. Nothing was written; the journal is still usable.
    #[error("sequence {got} appended where {expected} was expected")]
    SequenceMismatch {
        /// The sequence number the journal expects next.
        expected: u64,
        /// The sequence number the caller passed.
        got: u64,
    },
    /// A record does not fit in an empty segment of the configured size.
    /// Nothing was written; the journal is still usable.
    #[error("a record of {frame} bytes cannot fit in a segment of {segment_size} bytes")]
    RecordTooLarge {
        /// The framed size of the record, padding included.
        frame: u64,
        /// The configured segment size.
        segment_size: u64,
    },
    /// A reader was asked for a sequence number the journal does not hold.
    #[error(
        "sequence {requested} is not in the journal (first available {first:?}, next to be written {next:?})"
    )]
    SequenceNotAvailable {
        /// The sequence number asked for.
        requested: u64,
        /// The first sequence number still in the journal, if any.
        first: Option<u64>,
        /// The sequence number after the last readable record, if known.
        next: Option<u64>,
    },
    /// The configuration was rejected by [`crate::JournalConfig::validate`].
    #[error("invalid journal configuration: {0}")]
    InvalidConfig(&'static str),
    /// Another writer holds the journal directory's lock.
    #[error("journal directory {} is locked by another writer", dir.display())]
    Locked {
        /// The journal directory.
        dir: PathBuf,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// What is wrong with a segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderDefect {
    /// The file is shorter than a header.
    #[error("file of {len} bytes is shorter than a segment header")]
    TooShort {
        /// The file's length.
        len: u64,
    },
    /// The magic bytes are not [`crate::format::SEGMENT_MAGIC`].
    #[error("bad magic (not a ringex journal segment)")]
    BadMagic,
    /// A format version this build does not read.
    #[error("unsupported segment format version {0}")]
    UnsupportedVersion(u16),
    /// The header CRC does not match its bytes.
    #[error("header CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    CrcMismatch {
        /// The CRC stored in the header.
        stored: u32,
        /// The CRC of the header bytes.
        computed: u32,
    },
    /// Flag bits this version does not know, or non-zero reserved bytes.
    #[error("unknown flags {0:#06x} or non-zero reserved bytes")]
    UnknownFlags(u16),
    /// Fields that contradict each other or the file (for example a sealed
    /// end offset past the end of the file).
    #[error("inconsistent header: {0}")]
    Inconsistent(&'static str),
}

/// What is wrong with a record, a segment, or the link between segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CorruptReason {
    /// The segment header is invalid.
    #[error("bad segment header: {0}")]
    Header(HeaderDefect),
    /// The record's length runs past the end of the file.
    #[error("record truncated (its length runs past the end of the file)")]
    TruncatedFrame,
    /// The length field is smaller than a record header.
    #[error("bad record length {0}")]
    BadLength(u32),
    /// The record's CRC32C does not match its bytes.
    #[error("record CRC mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    CrcMismatch {
        /// The CRC stored in the record.
        stored: u32,
        /// The CRC of the record's bytes.
        computed: u32,
    },
    /// The record's CRC is valid but it carries the wrong sequence number.
    #[error("expected sequence {expected}, found {found}")]
    SequenceMismatch {
        /// The sequence number expected at this position.
        expected: u64,
        /// The sequence number in the record.
        found: u64,
    },
    /// The record's CRC is valid but its hash-chain value is not the hash of
    /// (previous chain value, record bytes): the record was edited.
    #[error("hash chain broken (stored {stored:#018x}, computed {computed:#018x})")]
    ChainMismatch {
        /// The chain value stored in the record.
        stored: u64,
        /// The chain value recomputed from the previous one and the record.
        computed: u64,
    },
    /// The zero padding after a record is not zero.
    #[error("non-zero padding after a record")]
    NonZeroPadding,
    /// Non-zero bytes after the end-of-records marker (a zero length) in a
    /// segment that has later valid records, or in a sealed segment.
    #[error("non-zero bytes after the end of the records")]
    DataAfterEnd,
    /// A segment's first sequence number does not follow the previous
    /// segment's last one, or does not match its file name.
    #[error("segment starts at sequence {found}, expected {expected}")]
    SegmentGap {
        /// The sequence number expected.
        expected: u64,
        /// The sequence number in the header.
        found: u64,
    },
    /// A segment header's `prev_chain` is not the previous segment's final
    /// chain value.
    #[error("segment chain link broken (header says {found:#018x}, previous segment ends at {expected:#018x})")]
    ChainLink {
        /// The previous segment's final chain value.
        expected: u64,
        /// The `prev_chain` stored in this segment's header.
        found: u64,
    },
    /// A sealed segment's checkpoint (record count, end offset or final chain
    /// value) does not match its records.
    #[error("sealed-segment checkpoint mismatch: {0}")]
    SealMismatch(&'static str),
}
