//! Walking a whole journal and checking its hash chain, without changing it.
//!
//! [`verify`] reads every segment (read-only; it takes no lock, so it can
//! run beside a live writer, and then reports the writer's unfinished record
//! as a torn tail), recomputes every record's CRC and chain value, checks
//! each sealed segment's checkpoint and each segment's link to the one
//! before, and reports the first record or header where anything breaks.

use crate::error::{CorruptReason, Error, Result};
use crate::format::nonzero_extent;
use crate::fs::{FileSystem, FsFile, OpenMode, StdFs};
use crate::inspect::{inspect_segment, list_segments, Continuation, Verdict};
use crate::journal::TornTail;
use std::path::{Path, PathBuf};

/// Where the chain (or anything else) first breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The segment file.
    pub file: PathBuf,
    /// Byte offset of the record (0 for a segment header).
    pub offset: u64,
    /// The sequence number the record there should carry.
    pub sequence: u64,
    /// What is wrong ([`CorruptReason::ChainMismatch`] for a record edited
    /// with its CRC recomputed).
    pub reason: CorruptReason,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Segments read.
    pub segments: usize,
    /// Records verified (before any break).
    pub records: u64,
    /// First sequence number in the journal.
    pub first_sequence: Option<u64>,
    /// Last verified sequence number.
    pub last_sequence: Option<u64>,
    /// The first segment's `prev_chain`: [`crate::format::CHAIN_GENESIS`]
    /// unless older segments were removed, in which case it is the anchor
    /// the remaining chain hangs from.
    pub start_chain: u64,
    /// The chain value after the last verified record.
    pub chain_head: u64,
    /// The first break, if any.
    pub first_break: Option<ChainBreak>,
    /// A torn tail in the last segment (not a break: the next writer
    /// truncates it).
    pub torn_tail: Option<TornTail>,
    /// The last segment's creation did not complete (an invalid header and
    /// nothing else): not a break.
    pub incomplete_last_segment: Option<PathBuf>,
}

impl VerifyReport {
    /// Whether no break was found.
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Verifies the journal in `dir` on the real file system.
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport> {
    verify_with(&StdFs, dir)
}

/// Verifies the journal in `dir` on `fs`. I/O errors are errors; damage is
/// reported in [`VerifyReport::first_break`].
pub fn verify_with<F: FileSystem>(fs: &F, dir: impl AsRef<Path>) -> Result<VerifyReport> {
    let dir = dir.as_ref();
    let segments = list_segments(fs, dir).map_err(|e| Error::io("list directory", dir, e))?;
    let mut report = VerifyReport::default();
    let mut prev: Option<Continuation> = None;
    let mut buf = Vec::new();
    for (i, (name_seq, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let file = fs
            .open(path, OpenMode::Read)
            .map_err(|e| Error::io("open segment", path, e))?;
        file.read_to_vec(&mut buf)
            .map_err(|e| Error::io("read segment", path, e))?;
        report.segments += 1;
        let found = inspect_segment(&buf, *name_seq, prev, is_last);
        if let Some(scan) = found.scan {
            if prev.is_none() {
                report.first_sequence = found.header.map(|h| h.first_sequence);
                report.start_chain = found.header.map_or(0, |h| h.prev_chain);
            }
            report.records += scan.records;
            prev = Some(Continuation {
                next_seq: scan.next_seq,
                chain: scan.chain,
            });
        }
        match found.verdict {
            Verdict::Clean => {}
            Verdict::Incomplete => {
                report.incomplete_last_segment = Some(path.clone());
            }
            Verdict::TornTail { offset, reason } => {
                report.torn_tail = Some(TornTail {
                    file: path.clone(),
                    offset: offset as u64,
                    sequence: prev.map_or(*name_seq, |p| p.next_seq),
                    bytes_discarded: nonzero_extent(&buf[offset..]) as u64,
                    reason,
                });
            }
            Verdict::Damaged {
                offset,
                sequence,
                reason,
            } => {
                report.first_break = Some(ChainBreak {
                    file: path.clone(),
                    offset: offset as u64,
                    sequence,
                    reason,
                });
                break;
            }
        }
    }
    if report.records > 0 {
        report.last_sequence = prev.and_then(|p| p.next_seq.checked_sub(1));
    }
    report.chain_head = prev.map_or(0, |p| p.chain);
    Ok(report)
}
