//! Judging a whole segment file: the rules recovery and `verify` share.
//!
//! A segment is read whole, its header decoded and checked against the
//! previous segment (sequence continuity and chain link), its frames walked,
//! and the result classified:
//!
//! - **clean**: every frame valid up to the end marker (a zero length or the
//!   end of the file), zeros after it, and for a sealed segment the
//!   checkpoint matches;
//! - **incomplete**: the last segment's header is invalid and everything
//!   after it is zero: its creation did not complete;
//! - **torn tail**: only in the last, unsealed segment: a bad frame (or
//!   non-zero bytes after the end marker) with no frame carrying a valid CRC
//!   and a plausible sequence number anywhere after it;
//! - **damaged**: anything else: a bad frame followed by valid ones, a bad
//!   frame in a segment that is not the last, a sealed segment whose records
//!   do not match its checkpoint, a bad header, a gap in the sequence, a
//!   broken chain link.

use crate::error::CorruptReason;
use crate::format::{
    all_zero, find_valid_frame_after, scan_segment, Scan, ScanStop, SegmentHeader,
    SEGMENT_HEADER_SIZE,
};
use crate::fs::FileSystem;
use std::io;
use std::path::{Path, PathBuf};

/// What the previous segment left for the next one to continue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Continuation {
    pub next_seq: u64,
    pub chain: u64,
}

/// The judgement of one segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Clean,
    Incomplete,
    TornTail {
        offset: usize,
        reason: CorruptReason,
    },
    Damaged {
        offset: usize,
        sequence: u64,
        reason: CorruptReason,
    },
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Inspection {
    /// The decoded header (absent if it failed to decode).
    pub header: Option<SegmentHeader>,
    /// The frame walk (absent if the header was unusable).
    pub scan: Option<Scan>,
    pub verdict: Verdict,
}

/// Judges the segment `file` (its whole contents), named for `name_seq`,
/// following `prev` (None for the first segment), `is_last` in the journal.
pub(crate) fn inspect_segment(
    file: &[u8],
    name_seq: u64,
    prev: Option<Continuation>,
    is_last: bool,
) -> Inspection {
    let expected_first = prev.map_or(name_seq, |p| p.next_seq);
    let damaged_header = |reason| Inspection {
        header: None,
        scan: None,
        verdict: Verdict::Damaged {
            offset: 0,
            sequence: expected_first,
            reason,
        },
    };
    let header = match SegmentHeader::decode(file, file.len() as u64) {
        Ok(h) => h,
        Err(defect) => {
            let body = &file[SEGMENT_HEADER_SIZE.min(file.len())..];
            if is_last && all_zero(body) {
                return Inspection {
                    header: None,
                    scan: None,
                    verdict: Verdict::Incomplete,
                };
            }
            return damaged_header(CorruptReason::Header(defect));
        }
    };
    if header.first_sequence != expected_first || header.first_sequence != name_seq {
        return Inspection {
            header: Some(header),
            ..damaged_header(CorruptReason::SegmentGap {
                expected: expected_first,
                found: header.first_sequence,
            })
        };
    }
    if let Some(p) = prev {
        if header.prev_chain != p.chain {
            return Inspection {
                header: Some(header),
                ..damaged_header(CorruptReason::ChainLink {
                    expected: p.chain,
                    found: header.prev_chain,
                })
            };
        }
    }
    let scan = scan_segment(file, header.first_sequence, header.prev_chain);
    let verdict = judge(file, &header, &scan, is_last);
    Inspection {
        header: Some(header),
        scan: Some(scan),
        verdict,
    }
}

fn judge(file: &[u8], header: &SegmentHeader, scan: &Scan, is_last: bool) -> Verdict {
    let damaged = |offset, reason| Verdict::Damaged {
        offset,
        sequence: scan.next_seq,
        reason,
    };
    if header.is_sealed() {
        if let ScanStop::Bad { offset, reason } = scan.stop {
            return damaged(offset, reason);
        }
        if scan.end as u64 != header.end_offset {
            return damaged(scan.end, CorruptReason::SealMismatch("end offset"));
        }
        if scan.records != header.record_count {
            return damaged(scan.end, CorruptReason::SealMismatch("record count"));
        }
        if scan.chain != header.sealed_chain {
            return damaged(scan.end, CorruptReason::SealMismatch("final chain value"));
        }
        if !all_zero(&file[scan.end..]) {
            return damaged(scan.end, CorruptReason::DataAfterEnd);
        }
        return Verdict::Clean;
    }
    let (offset, reason) = match scan.stop {
        ScanStop::End if all_zero(&file[scan.end..]) => return Verdict::Clean,
        ScanStop::End => (scan.end, CorruptReason::DataAfterEnd),
        ScanStop::Bad { offset, reason } => (offset, reason),
    };
    if is_last && find_valid_frame_after(file, offset, scan.next_seq).is_none() {
        Verdict::TornTail { offset, reason }
    } else {
        damaged(offset, reason)
    }
}

/// The segment files in `dir`, sorted by first sequence number.
pub(crate) fn list_segments<F: FileSystem>(fs: &F, dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segments: Vec<(u64, PathBuf)> = fs
        .list_dir(dir)?
        .into_iter()
        .filter_map(|name| {
            let seq = crate::format::parse_segment_file_name(name.to_str()?)?;
            Some((seq, dir.join(name)))
        })
        .collect();
    segments.sort_unstable_by_key(|(seq, _)| *seq);
    Ok(segments)
}
