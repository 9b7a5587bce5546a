//! # ringex-journal
//!
//! The append-only journal under ringex's pipeline: memory-mapped segment
//! files of CRC-framed records linked by a hash chain, atomic snapshots,
//! recovery after a crash, and verification for auditors. It knows nothing
//! of commands or events: a record is a sequence number, a timestamp, a
//! `kind` byte and opaque payload bytes, so the input journal (commands) and
//! the output journal (events) share one format.
//!
//! ```
//! use ringex_journal::{DurabilityPolicy, Journal, JournalConfig, JournalReader};
//!
//! let dir = tempfile::tempdir()?;
//! let config = JournalConfig::default()
//!     .with_segment_size(1 << 20)
//!     .with_durability(DurabilityPolicy::FsyncPerBatch);
//! let (mut journal, report) = Journal::open(dir.path(), config)?;
//! assert!(report.is_clean());
//! for seq in 1..=3u64 {
//!     journal.append(seq, 1_000 + seq, 5, &[seq as u8; 80])?;
//! }
//! journal.end_batch()?; // fsync: 1..=3 are now durable
//! assert_eq!(journal.durable_sequence(), Some(3));
//!
//! let mut reader = JournalReader::open(dir.path(), 2)?;
//! let record = reader.next_record()?.expect("record 2");
//! assert_eq!((record.sequence, record.kind, record.payload), (2, 5, &[2u8; 80][..]));
//! assert!(ringex_journal::verify(dir.path())?.is_intact());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Where things are
//!
//! | Module | What | Thread |
//! |--------|------|--------|
//! | [`format`](mod@format) | The byte layout: segment header, record frame, hash chain, named offsets, ASCII diagrams | any |
//! | [`Journal`] (`journal.rs`) | The writer: append, durability policy, segment rolling, recovery on open, segment retention | **single writer: the journaler thread** |
//! | [`pretouch`] | The optional background pretoucher: pages ahead of the writer mapped in, the next segment prepared | **its own thread, `ringex-pretouch`, owned by the [`Journal`]** |
//! | [`JournalReader`] (`reader.rs`) | Iterates records from any sequence number, with its own file handles | any; many readers beside the writer |
//! | [`verify()`] (`verify.rs`) | Walks every segment, recomputes CRCs and the chain, names the first break | any (read-only) |
//! | [`snapshot`] | Atomic snapshots, loading the newest valid one, retention | the thread that takes snapshots |
//! | [`fs`] | The file-system trait all I/O goes through, and the real one | — |
//! | [`fault`] | A fault-injecting file system for tests | — |
//! | [`Error`] | The one error type | — |
//!
//! ## Threads
//!
//! Single writer: the journaler thread owns the [`Journal`]; an exclusive
//! lock file keeps out any second writer. With
//! [`JournalConfig::pretouch`] set, the journal also owns a background
//! thread, `ringex-pretouch`, which maps pages in ahead of the writer and
//! prepares its next segment; it never stores into a mapping, holds
//! mappings by `Arc` so none is unmapped under it, and is joined when the
//! journal is dropped ([`pretouch`]). Readers never share the writer's
//! mapping: a [`JournalReader`] (and [`verify()`]) reads segment files
//! through its own handles with positional reads, so it may run on any
//! thread, sealed segments and the active one alike; a record the writer is
//! still writing simply fails its CRC and reads as "not yet written".
//!
//! ## Recovery in one paragraph
//!
//! [`Journal::open`] reads every segment, checks every CRC, sequence number,
//! chain value, sealed checkpoint and segment link. Damage in the last
//! segment with no valid record after it is a torn tail: it is truncated
//! and reported in [`RecoveryReport::torn_tail`]. Damage anywhere else stops
//! the open with [`Error::Corrupt`] naming the file, byte offset and
//! sequence number, unless [`RecoveryMode::Tolerant`] was chosen; then the
//! journal is truncated at the first bad record and
//! [`RecoveryReport::dropped`] says what went. `docs/journal-format.md` has
//! the byte layouts and the full rules.

#![warn(missing_docs)]

pub mod error;
pub mod fault;
pub mod format;
pub mod fs;
mod inspect;
mod journal;
pub mod pretouch;
mod reader;
pub mod snapshot;
mod verify;

pub use error::{CorruptReason, Error, HeaderDefect, Result};
pub use journal::{
    DroppedData, DurabilityPolicy, Journal, JournalConfig, RecoveryMode, RecoveryReport, TornTail,
    DEFAULT_SEGMENT_SIZE,
};
pub use pretouch::{PretouchConfig, PretouchStatus};
pub use reader::{JournalReader, OwnedRecord, Record};
pub use snapshot::{
    load_newest_valid_snapshot, write_snapshot, RetentionPolicy, RetentionReport, Snapshot,
    SnapshotLoad, SnapshotStore,
};
pub use verify::{verify, verify_with, ChainBreak, VerifyReport};

#[cfg(test)]
mod tests {
    fn assert_send<T: Send>() {}

    #[test]
    fn the_writer_and_readers_can_move_to_their_threads() {
        assert_send::<crate::Journal>();
        assert_send::<crate::Journal<crate::fault::FaultyFs>>();
        assert_send::<crate::JournalReader>();
        assert_send::<crate::SnapshotStore>();
    }
}
