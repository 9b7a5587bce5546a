//! Reading records from any sequence number.
//!
//! **Threads.** A [`JournalReader`] may live on any thread, including while
//! the writer appends. It never maps segment files: it reads them with
//! positional reads (`pread`) into its own buffer, so it cannot observe the
//! writer's mapping mid-store in a way Rust's memory model forbids; a
//! record the writer is still writing fails its CRC check and the reader
//! treats it as "not yet written". It checks every record it returns (CRC,
//! sequence, hash-chain link to the record before it), except that the
//! first record after a jump is linked to the stored chain value of the
//! record before it rather than recomputed from the segment start.
//!
//! **Index.** The reader finds a sequence number's segment by binary search
//! over the segments' first sequence numbers (their file names), then walks
//! that segment's frames from its start to the record. When every record of
//! the segment has the same size (the usual case: fixed-size commands or
//! events), it first tries the offset that size predicts.
//!
//! **The tail.** At a zero length or a bad frame in the last segment the
//! reader returns `Ok(None)`: there is nothing more *yet* (the writer may be
//! mid-record, or the tail is torn and the next writer will truncate it).
//! Calling [`JournalReader::next_record`] again later picks up new records,
//! including in segments created since.

use crate::error::{CorruptReason, Error, Result};
use crate::format::{
    align_frame, check_frame, frame, get_u32, get_u64, FrameStatus, SegmentHeader,
    FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE,
};
use crate::fs::{FileSystem, FsFile, OpenMode, StdFs};
use crate::inspect::list_segments;
use std::path::{Path, PathBuf};

/// A record, borrowed from the reader's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its sequence number.
    pub sequence: u64,
    /// Its timestamp, as appended.
    pub timestamp: u64,
    /// Its kind byte, as appended.
    pub kind: u8,
    /// Its hash-chain value.
    pub chain: u64,
    /// Its payload.
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// An owned copy.
    pub fn to_owned_record(&self) -> OwnedRecord {
        OwnedRecord {
            sequence: self.sequence,
            timestamp: self.timestamp,
            kind: self.kind,
            chain: self.chain,
            payload: self.payload.to_vec(),
        }
    }
}

/// A record that owns its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Its sequence number.
    pub sequence: u64,
    /// Its timestamp, as appended.
    pub timestamp: u64,
    /// Its kind byte, as appended.
    pub kind: u8,
    /// Its hash-chain value.
    pub chain: u64,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// Bytes read per positional read.
const CHUNK: usize = 1 << 20;

struct OpenSegment<File> {
    file: File,
    path: PathBuf,
    header: SegmentHeader,
    size: u64,
    /// File offset of the next frame.
    pos: u64,
}

/// Iterates records from a sequence number (see the module docs).
pub struct JournalReader<F: FileSystem = StdFs> {
    fs: F,
    dir: PathBuf,
    segments: Vec<(u64, PathBuf)>,
    /// Index in `segments` of the open (or next) segment.
    idx: usize,
    seg: Option<OpenSegment<F::File>>,
    next_seq: u64,
    chain: u64,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_start: u64,
}

impl<F: FileSystem> std::fmt::Debug for JournalReader<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalReader")
            .field("dir", &self.dir)
            .field("next_seq", &self.next_seq)
            .field("segment", &self.seg.as_ref().map(|s| &s.path))
            .finish_non_exhaustive()
    }
}

enum AtEnd {
    /// Go on with the next segment.
    Advance,
    /// Nothing more yet.
    Wait,
    /// The segment was sealed while we read it: read the same position again
    /// (the seal is written after the segment's last record, so the records
    /// are visible once the seal is).
    Reread,
}

impl JournalReader<StdFs> {
    /// A reader over the journal in `dir`, positioned so that the first
    /// record it returns has sequence number `from`.
    ///
    /// `from` may be the sequence number after the last record (the reader
    /// then waits for new records); a smaller number than the first record
    /// still in the journal, a larger one than the next to be written, or an
    /// empty journal gives [`Error::SequenceNotAvailable`].
    pub fn open(dir: impl AsRef<Path>, from: u64) -> Result<Self> {
        JournalReader::open_with(StdFs, dir, from)
    }
}

impl<F: FileSystem> JournalReader<F> {
    /// [`JournalReader::open`] on the file system `fs`.
    pub fn open_with(fs: F, dir: impl AsRef<Path>, from: u64) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        let segments =
            list_segments(&fs, &dir).map_err(|e| Error::io("list directory", &dir, e))?;
        let not_available = |first: Option<u64>, next: Option<u64>| Error::SequenceNotAvailable {
            requested: from,
            first,
            next,
        };
        let first = segments.first().map(|s| s.0);
        // The last segment starting at or before `from`.
        let idx = match segments.partition_point(|(s, _)| *s <= from) {
            0 => return Err(not_available(first, None)),
            n => n - 1,
        };
        let mut reader = JournalReader {
            fs,
            dir,
            segments,
            idx,
            seg: None,
            next_seq: 0,
            chain: 0,
            buf: Vec::new(),
            buf_start: 0,
        };
        if !reader.open_segment(true)? {
            return Err(not_available(first, None));
        }
        if reader.next_seq != from && !reader.try_jump(from)? {
            while reader.next_seq != from {
                if reader.next_record()?.is_none() {
                    return Err(not_available(first, Some(reader.next_seq)));
                }
            }
        }
        Ok(reader)
    }

    /// The sequence number of the record the next call returns.
    pub fn next_sequence(&self) -> u64 {
        self.next_seq
    }

    /// The next record, `Ok(None)` at the current end of the journal, or an
    /// error for an I/O failure or damage before the tail.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>> {
        loop {
            if self.seg.is_none() && !self.open_segment(false)? {
                return Ok(None);
            }
            let status = self.frame_status()?;
            match status {
                FrameStatus::Valid(info) => {
                    let Some(seg) = self.seg.as_mut() else {
                        unreachable!()
                    };
                    let rel = (seg.pos - self.buf_start) as usize;
                    seg.pos += info.advance as u64;
                    self.next_seq = self.next_seq.wrapping_add(1);
                    self.chain = info.chain;
                    return Ok(Some(Record {
                        sequence: info.sequence,
                        timestamp: info.timestamp,
                        kind: info.kind,
                        chain: info.chain,
                        payload: &self.buf[rel + frame::PAYLOAD..rel + info.len],
                    }));
                }
                FrameStatus::End => match self.at_end(None)? {
                    AtEnd::Advance => self.advance_segment(),
                    AtEnd::Wait => return Ok(None),
                    AtEnd::Reread => continue,
                },
                FrameStatus::Bad(reason) => match self.at_end(Some(reason))? {
                    AtEnd::Advance => self.advance_segment(),
                    AtEnd::Wait => return Ok(None),
                    AtEnd::Reread => continue,
                },
            }
        }
    }

    /// Reads every record from the current position to the current end.
    pub fn read_to_end(&mut self) -> Result<Vec<OwnedRecord>> {
        let mut out = Vec::new();
        while let Some(r) = self.next_record()? {
            out.push(r.to_owned_record());
        }
        Ok(out)
    }

    fn advance_segment(&mut self) {
        self.seg = None;
        self.idx += 1;
        self.buf.clear();
    }

    /// Re-lists the directory, keeping `idx` on the same segment.
    fn refresh(&mut self) -> Result<()> {
        let current = self.segments.get(self.idx).map(|s| s.0);
        self.segments = list_segments(&self.fs, &self.dir)
            .map_err(|e| Error::io("list directory", &self.dir, e))?;
        if let Some(cur) = current {
            self.idx = self.segments.partition_point(|(s, _)| *s < cur);
        }
        Ok(())
    }

    /// Opens `segments[idx]`. With `adopt`, takes its first sequence number
    /// and chain value as the position; otherwise checks that it continues
    /// the previous segment. Returns `false` if there is no such segment yet
    /// (or it is still being created).
    fn open_segment(&mut self, adopt: bool) -> Result<bool> {
        if self.idx >= self.segments.len() {
            self.refresh()?;
            if self.idx >= self.segments.len() {
                return Ok(false);
            }
        }
        let (name_seq, path) = self.segments[self.idx].clone();
        let file = self
            .fs
            .open(&path, OpenMode::Read)
            .map_err(|e| Error::io("open segment", &path, e))?;
        let size = file
            .size()
            .map_err(|e| Error::io("stat segment", &path, e))?;
        let mut head = [0u8; SEGMENT_HEADER_SIZE];
        let n = file
            .read_at(&mut head, 0)
            .map_err(|e| Error::io("read segment header", &path, e))?;
        let is_last = self.idx + 1 == self.segments.len();
        let header = match SegmentHeader::decode(&head[..n], size) {
            Ok(h) => h,
            // The writer may be creating it right now.
            Err(_) if is_last && !adopt && head[..n].iter().all(|&b| b == 0) => return Ok(false),
            Err(defect) => {
                return Err(Error::Corrupt {
                    file: path,
                    offset: 0,
                    sequence: if adopt { name_seq } else { self.next_seq },
                    reason: CorruptReason::Header(defect),
                })
            }
        };
        let expected = if adopt { name_seq } else { self.next_seq };
        if header.first_sequence != expected || header.first_sequence != name_seq {
            return Err(Error::Corrupt {
                file: path,
                offset: 0,
                sequence: expected,
                reason: CorruptReason::SegmentGap {
                    expected,
                    found: header.first_sequence,
                },
            });
        }
        if !adopt && header.prev_chain != self.chain {
            return Err(Error::Corrupt {
                file: path,
                offset: 0,
                sequence: expected,
                reason: CorruptReason::ChainLink {
                    expected: self.chain,
                    found: header.prev_chain,
                },
            });
        }
        if adopt {
            self.next_seq = header.first_sequence;
            self.chain = header.prev_chain;
        }
        self.seg = Some(OpenSegment {
            file,
            path,
            header,
            size,
            pos: SEGMENT_HEADER_SIZE as u64,
        });
        self.buf.clear();
        Ok(true)
    }

    /// Makes `buf` cover `[pos, pos + need)` (or up to the end of the file).
    fn fill(&mut self, pos: u64, need: usize) -> Result<()> {
        let Some(seg) = self.seg.as_ref() else {
            unreachable!()
        };
        let have_end = self.buf_start + self.buf.len() as u64;
        if pos >= self.buf_start && pos + need as u64 <= have_end {
            return Ok(());
        }
        let want = need.max(CHUNK).min(seg.size.saturating_sub(pos) as usize);
        self.buf.clear();
        self.buf.resize(want, 0);
        let n = seg
            .file
            .read_at(&mut self.buf, pos)
            .map_err(|e| Error::io("read segment", &seg.path, e))?;
        self.buf.truncate(n);
        self.buf_start = pos;
        Ok(())
    }

    /// Checks the frame at the current position.
    fn frame_status(&mut self) -> Result<FrameStatus> {
        let Some(seg) = self.seg.as_ref() else {
            unreachable!()
        };
        let pos = seg.pos;
        let remaining = seg.size.saturating_sub(pos) as usize;
        self.fill(pos, remaining.min(FRAME_HEADER_SIZE))?;
        let rel = (pos - self.buf_start) as usize;
        if self.buf.len() - rel >= 4 {
            let len = get_u32(&self.buf, rel) as usize;
            if len >= FRAME_HEADER_SIZE && len <= remaining {
                self.fill(pos, align_frame(len).min(remaining))?;
            }
        }
        let rel = (pos - self.buf_start) as usize;
        Ok(check_frame(&self.buf[rel..], self.next_seq, self.chain))
    }

    /// Decides what an end marker or a bad frame at the current position
    /// means.
    fn at_end(&mut self, bad: Option<CorruptReason>) -> Result<AtEnd> {
        let Some(seg) = self.seg.as_mut() else {
            unreachable!()
        };
        let sealed_before = seg.header.is_sealed();
        if !sealed_before {
            // It may have been sealed since we opened it.
            let mut head = [0u8; SEGMENT_HEADER_SIZE];
            let n = seg
                .file
                .read_at(&mut head, 0)
                .map_err(|e| Error::io("read segment header", &seg.path, e))?;
            if let Ok(h) = SegmentHeader::decode(&head[..n], seg.size) {
                seg.header = h;
            }
        }
        let (pos, sealed, end_offset, path) = (
            seg.pos,
            seg.header.is_sealed(),
            seg.header.end_offset,
            seg.path.clone(),
        );
        // Never serve stale bytes on the next call.
        self.buf.clear();
        if self.idx + 1 >= self.segments.len() {
            self.refresh()?;
        }
        let has_next = self.idx + 1 < self.segments.len();
        let corrupt = |reason| Error::Corrupt {
            file: path.clone(),
            offset: pos,
            sequence: self.next_seq,
            reason,
        };
        if sealed && !sealed_before {
            // The seal appeared after we read the frame, so those bytes may
            // predate the writer's last appends: read them again (now against
            // a sealed header, so at most once) rather than judge them
            // against the final end offset.
            return Ok(AtEnd::Reread);
        }
        if sealed {
            return match bad {
                Some(reason) => Err(corrupt(reason)),
                None if pos != end_offset => {
                    Err(corrupt(CorruptReason::SealMismatch("end offset")))
                }
                None if has_next => Ok(AtEnd::Advance),
                // Sealed, next segment not created yet.
                None => Ok(AtEnd::Wait),
            };
        }
        match (has_next, bad) {
            (false, _) => Ok(AtEnd::Wait),
            (true, None) => Ok(AtEnd::Advance),
            (true, Some(reason)) => Err(corrupt(reason)),
        }
    }

    /// When the segment's first frame shows a fixed record size, jumps
    /// straight to the record before `from` and links to its chain value.
    /// Returns whether it did.
    fn try_jump(&mut self, from: u64) -> Result<bool> {
        let Some(size) = self.seg.as_ref().map(|s| s.size) else {
            return Ok(false);
        };
        let first = self.next_seq;
        let base = SEGMENT_HEADER_SIZE as u64;
        self.fill(base, FRAME_HEADER_SIZE)?;
        if self.buf.len() < FRAME_HEADER_SIZE {
            return Ok(false);
        }
        let frame_len = align_frame(get_u32(&self.buf, 0) as usize) as u64;
        if frame_len < FRAME_HEADER_SIZE as u64 || from <= first {
            return Ok(false);
        }
        // Offset of the record `from - 1`.
        let Some(prev_off) = (from - 1 - first)
            .checked_mul(frame_len)
            .and_then(|o| o.checked_add(base))
        else {
            return Ok(false);
        };
        if prev_off + frame_len > size {
            return Ok(false);
        }
        self.fill(prev_off, frame_len as usize)?;
        let rel = (prev_off - self.buf_start) as usize;
        let rest = &self.buf[rel..];
        if rest.len() < frame_len as usize
            || align_frame(get_u32(rest, frame::LENGTH) as usize) as u64 != frame_len
            || get_u64(rest, frame::SEQUENCE) != from - 1
        {
            return Ok(false);
        }
        // The CRC vouches for the chain value we link to.
        let chain = get_u64(rest, frame::CHAIN);
        let seq = from - 1;
        if !matches!(
            check_frame(rest, seq, 0),
            FrameStatus::Valid(_) | FrameStatus::Bad(CorruptReason::ChainMismatch { .. })
        ) {
            return Ok(false);
        }
        let Some(seg) = self.seg.as_mut() else {
            unreachable!()
        };
        seg.pos = prev_off + frame_len;
        self.next_seq = from;
        self.chain = chain;
        Ok(true)
    }
}
