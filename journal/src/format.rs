//! The on-disk layout of journal segments and records (format version 1).
//!
//! Everything is little-endian. `docs/journal-format.md` describes the same
//! layout for readers who do not read Rust.
//!
//! # Segment file
//!
//! A journal is a directory of segment files named
//! `{first_sequence:020}.seg` (20 decimal digits, so names sort by sequence).
//! Each file is created at its full size (the configured segment size) and
//! is zero beyond its last record:
//!
//! ```text
//! +--------------------+---------+---------+-----+---------+----------------+
//! | header (128 bytes) | frame 0 | frame 1 | ... | frame n | zeros ...      |
//! +--------------------+---------+---------+-----+---------+----------------+
//! 0                   128                                 end         file size
//! ```
//!
//! A frame whose length field is 0 marks the end of the records. Frames never
//! straddle segments: a record that does not fit in what is left of a segment
//! goes to the next one.
//!
//! # Segment header (128 bytes)
//!
//! ```text
//!  0       1       2       3       4       5       6       7       8
//!  +-------+-------+-------+-------+-------+-------+-------+-------+
//!  |               magic  "RGXJRNL\0"  (8 bytes)                   |   0
//!  +---------------+---------------+-------------------------------+
//!  | version (u16) |  flags (u16)  |       header_crc (u32)        |   8
//!  +---------------+---------------+-------------------------------+
//!  |                    first_sequence (u64)                       |  16
//!  +---------------------------------------------------------------+
//!  |            created_unix_nanos (u64, creation wall time)       |  24
//!  +---------------------------------------------------------------+
//!  |     prev_chain (u64, chain value before this segment's 1st)   |  32
//!  +---------------------------------------------------------------+
//!  |          segment_size (u64, file size at creation)            |  40
//!  +---------------------------------------------------------------+
//!  |         record_count (u64, set when sealed, else 0)           |  48
//!  +---------------------------------------------------------------+
//!  |   end_offset (u64, first byte after the last frame; sealed)   |  56
//!  +---------------------------------------------------------------+
//!  |   sealed_chain (u64, chain value after the last record)       |  64
//!  +---------------------------------------------------------------+
//!  |                 reserved (56 bytes, zero)                     |  72..128
//!  +---------------------------------------------------------------+
//! ```
//!
//! `flags` bit 0 ([`FLAG_SEALED`]) is set when the writer rolled to the next
//! segment; `record_count`, `end_offset` and `sealed_chain` are the segment's
//! checkpoint and are zero until then. `header_crc` is the CRC32C of the 128
//! header bytes with the `header_crc` field taken as zero.
//!
//! # Record frame
//!
//! ```text
//!  0       1       2       3       4       5       6       7       8
//!  +-------+-------+-------+-------+-------+-------+-------+-------+
//!  |         length (u32)          |          crc (u32)            |   0
//!  +-------------------------------+-------------------------------+
//!  |                         chain (u64)                           |   8
//!  +---------------------------------------------------------------+
//!  |                        sequence (u64)                         |  16
//!  +---------------------------------------------------------------+
//!  |                 timestamp (u64, ns, caller's clock)           |  24
//!  +-------+-------------------------------------------------------+
//!  | kind  |  payload (length - 33 bytes) ...                      |  32
//!  +-------+-------------------------------------------------------+
//!  |  ... payload  | zero padding to a multiple of 8 bytes         |
//!  +---------------+-----------------------------------------------+
//! ```
//!
//! - `length` = 33 + payload length: the frame without its padding. The next
//!   frame starts at the next multiple of 8 ([`FRAME_ALIGN`]). A zero length
//!   marks the end of the records.
//! - `crc` = CRC32C (Castagnoli) of bytes `[8, length)`: chain, sequence,
//!   timestamp, kind and payload.
//! - `chain` = [`chain_next`]`(previous chain, bytes [16, length))`: the
//!   running hash chain (see below).
//! - `sequence` numbers are strictly consecutive, across segments too.
//! - `kind` is opaque to the journal (for example the command or event kind
//!   byte); the payload is opaque bytes.
//!
//! With this framing an 80-byte command takes 120 bytes and a 96-byte event
//! 136 bytes.
//!
//! # Hash chain
//!
//! `chain_0` is the `prev_chain` of the journal's first segment
//! ([`CHAIN_GENESIS`] = 0 for a journal that never lost its head), and
//!
//! ```text
//! chain_k = XXH3-64(seed = chain_(k-1), bytes = frame_k[16 .. length_k])
//! ```
//!
//! so each record's chain value commits to its sequence, timestamp, kind,
//! payload and every record before it. A sealed segment's header stores the
//! final chain value (`sealed_chain`), and the next segment's header repeats
//! it as `prev_chain`. Editing a record and recomputing its CRC still breaks
//! the chain at that record; rewriting the chain values from there on breaks
//! the sealed checkpoint or the link to the next segment. XXH3 is not a
//! cryptographic hash: a forger who rewrites every later chain value, every
//! checkpoint and every header CRC is caught only by comparing the chain head
//! ([`crate::Journal::chain_head`]) with a copy kept elsewhere.

use crate::error::{CorruptReason, HeaderDefect};
use std::sync::atomic::{compiler_fence, Ordering};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Magic bytes at the start of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"RGXJRNL\0";
/// The segment format version this build writes and reads.
pub const SEGMENT_FORMAT_VERSION: u16 = 1;
/// Size of the segment header; the first frame starts here.
pub const SEGMENT_HEADER_SIZE: usize = 128;
/// Header `flags` bit: the segment is sealed and its checkpoint is set.
pub const FLAG_SEALED: u16 = 1;
/// File-name extension of segment files.
pub const SEGMENT_EXTENSION: &str = "seg";
/// The chain value before the first record of a new journal.
pub const CHAIN_GENESIS: u64 = 0;
/// Smallest segment size accepted by [`crate::JournalConfig`].
pub const MIN_SEGMENT_SIZE: u64 = 4096;
/// Largest segment size accepted by [`crate::JournalConfig`] and in headers.
pub const MAX_SEGMENT_SIZE: u64 = 1 << 32;

/// Byte offsets of the segment header fields.
pub mod segment_header {
    /// `magic` (8 bytes).
    pub const MAGIC: usize = 0;
    /// `version` (u16).
    pub const VERSION: usize = 8;
    /// `flags` (u16).
    pub const FLAGS: usize = 10;
    /// `header_crc` (u32).
    pub const HEADER_CRC: usize = 12;
    /// `first_sequence` (u64).
    pub const FIRST_SEQUENCE: usize = 16;
    /// `created_unix_nanos` (u64).
    pub const CREATED_UNIX_NANOS: usize = 24;
    /// `prev_chain` (u64).
    pub const PREV_CHAIN: usize = 32;
    /// `segment_size` (u64).
    pub const SEGMENT_SIZE: usize = 40;
    /// `record_count` (u64).
    pub const RECORD_COUNT: usize = 48;
    /// `end_offset` (u64).
    pub const END_OFFSET: usize = 56;
    /// `sealed_chain` (u64).
    pub const SEALED_CHAIN: usize = 64;
    /// First reserved byte (zero up to the end of the header).
    pub const RESERVED: usize = 72;
}

/// Size of a frame header; the payload starts here.
pub const FRAME_HEADER_SIZE: usize = 33;
/// Frames start at multiples of this many bytes.
pub const FRAME_ALIGN: usize = 8;

/// Byte offsets of the record frame fields.
pub mod frame {
    /// `length` (u32).
    pub const LENGTH: usize = 0;
    /// `crc` (u32).
    pub const CRC: usize = 4;
    /// `chain` (u64).
    pub const CHAIN: usize = 8;
    /// `sequence` (u64).
    pub const SEQUENCE: usize = 16;
    /// `timestamp` (u64).
    pub const TIMESTAMP: usize = 24;
    /// `kind` (u8).
    pub const KIND: usize = 32;
    /// First payload byte.
    pub const PAYLOAD: usize = 33;
}

/// The bytes a record with a `payload_len`-byte payload takes in a segment,
/// padding included.
#[inline]
pub const fn frame_size(payload_len: usize) -> usize {
    align_frame(FRAME_HEADER_SIZE + payload_len)
}

#[inline]
pub(crate) const fn align_frame(len: usize) -> usize {
    (len + FRAME_ALIGN - 1) & !(FRAME_ALIGN - 1)
}

/// The next chain value: XXH3-64 of the record bytes from `sequence` to the
/// end of the payload, seeded with the previous chain value.
#[inline]
pub fn chain_next(prev_chain: u64, record_bytes: &[u8]) -> u64 {
    xxh3_64_with_seed(record_bytes, prev_chain)
}

/// The file name of the segment whose first record has `first_sequence`.
pub fn segment_file_name(first_sequence: u64) -> String {
    format!("{first_sequence:020}.{SEGMENT_EXTENSION}")
}

/// Parses a segment file name back into its first sequence number.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let stem = name.strip_suffix(".seg")?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

#[inline]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

#[inline]
pub(crate) fn get_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

#[inline]
pub(crate) fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

#[inline]
pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// A decoded segment header (see the module docs for the layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    /// Format version ([`SEGMENT_FORMAT_VERSION`]).
    pub version: u16,
    /// Flag bits ([`FLAG_SEALED`]).
    pub flags: u16,
    /// Sequence number of the segment's first record.
    pub first_sequence: u64,
    /// Wall-clock creation time, nanoseconds since the Unix epoch.
    pub created_unix_nanos: u64,
    /// Chain value before the segment's first record.
    pub prev_chain: u64,
    /// Size of the file when it was created.
    pub segment_size: u64,
    /// Number of records (sealed segments only).
    pub record_count: u64,
    /// Offset of the first byte after the last frame (sealed segments only).
    pub end_offset: u64,
    /// Chain value after the last record (sealed segments only).
    pub sealed_chain: u64,
}

impl SegmentHeader {
    /// A new, unsealed header.
    pub fn new(
        first_sequence: u64,
        created_unix_nanos: u64,
        prev_chain: u64,
        segment_size: u64,
    ) -> Self {
        SegmentHeader {
            version: SEGMENT_FORMAT_VERSION,
            flags: 0,
            first_sequence,
            created_unix_nanos,
            prev_chain,
            segment_size,
            record_count: 0,
            end_offset: 0,
            sealed_chain: 0,
        }
    }

    /// Whether the segment was sealed (its checkpoint fields are set).
    pub fn is_sealed(&self) -> bool {
        self.flags & FLAG_SEALED != 0
    }

    /// Marks the header sealed with its checkpoint.
    pub fn seal(&mut self, record_count: u64, end_offset: u64, sealed_chain: u64) {
        self.flags |= FLAG_SEALED;
        self.record_count = record_count;
        self.end_offset = end_offset;
        self.sealed_chain = sealed_chain;
    }

    /// Clears the seal and its checkpoint (recovery truncated the segment).
    pub fn unseal(&mut self) {
        self.flags &= !FLAG_SEALED;
        self.record_count = 0;
        self.end_offset = 0;
        self.sealed_chain = 0;
    }

    /// Writes the header, CRC included, into `out`.
    pub fn encode(&self, out: &mut [u8; SEGMENT_HEADER_SIZE]) {
        use segment_header as h;
        out.fill(0);
        out[h::MAGIC..h::MAGIC + 8].copy_from_slice(&SEGMENT_MAGIC);
        put_u16(out, h::VERSION, self.version);
        put_u16(out, h::FLAGS, self.flags);
        put_u64(out, h::FIRST_SEQUENCE, self.first_sequence);
        put_u64(out, h::CREATED_UNIX_NANOS, self.created_unix_nanos);
        put_u64(out, h::PREV_CHAIN, self.prev_chain);
        put_u64(out, h::SEGMENT_SIZE, self.segment_size);
        put_u64(out, h::RECORD_COUNT, self.record_count);
        put_u64(out, h::END_OFFSET, self.end_offset);
        put_u64(out, h::SEALED_CHAIN, self.sealed_chain);
        let crc = header_crc(out);
        put_u32(out, h::HEADER_CRC, crc);
    }

    /// The encoded header.
    pub fn to_bytes(&self) -> [u8; SEGMENT_HEADER_SIZE] {
        let mut out = [0u8; SEGMENT_HEADER_SIZE];
        self.encode(&mut out);
        out
    }

    /// Decodes and validates the header at the start of `file` (the whole
    /// segment, or at least its header; `file_len` is the file's length, used
    /// to check a sealed segment's end offset).
    pub fn decode(file: &[u8], file_len: u64) -> Result<Self, HeaderDefect> {
        use segment_header as h;
        if file.len() < SEGMENT_HEADER_SIZE {
            return Err(HeaderDefect::TooShort {
                len: file.len() as u64,
            });
        }
        let b = &file[..SEGMENT_HEADER_SIZE];
        if b[h::MAGIC..h::MAGIC + 8] != SEGMENT_MAGIC {
            return Err(HeaderDefect::BadMagic);
        }
        let version = get_u16(b, h::VERSION);
        if version != SEGMENT_FORMAT_VERSION {
            return Err(HeaderDefect::UnsupportedVersion(version));
        }
        let stored = get_u32(b, h::HEADER_CRC);
        let computed = header_crc(b);
        if stored != computed {
            return Err(HeaderDefect::CrcMismatch { stored, computed });
        }
        let flags = get_u16(b, h::FLAGS);
        if flags & !FLAG_SEALED != 0 || b[h::RESERVED..].iter().any(|&x| x != 0) {
            return Err(HeaderDefect::UnknownFlags(flags));
        }
        let header = SegmentHeader {
            version,
            flags,
            first_sequence: get_u64(b, h::FIRST_SEQUENCE),
            created_unix_nanos: get_u64(b, h::CREATED_UNIX_NANOS),
            prev_chain: get_u64(b, h::PREV_CHAIN),
            segment_size: get_u64(b, h::SEGMENT_SIZE),
            record_count: get_u64(b, h::RECORD_COUNT),
            end_offset: get_u64(b, h::END_OFFSET),
            sealed_chain: get_u64(b, h::SEALED_CHAIN),
        };
        if header.segment_size < SEGMENT_HEADER_SIZE as u64
            || header.segment_size > MAX_SEGMENT_SIZE
        {
            return Err(HeaderDefect::Inconsistent("segment size out of range"));
        }
        if header.is_sealed() {
            if header.end_offset < SEGMENT_HEADER_SIZE as u64 || header.end_offset > file_len {
                return Err(HeaderDefect::Inconsistent(
                    "sealed end offset outside the file",
                ));
            }
            if header.end_offset % FRAME_ALIGN as u64 != 0 {
                return Err(HeaderDefect::Inconsistent("sealed end offset not aligned"));
            }
        } else if header.record_count != 0 || header.end_offset != 0 || header.sealed_chain != 0 {
            return Err(HeaderDefect::Inconsistent(
                "checkpoint fields set in an unsealed segment",
            ));
        }
        Ok(header)
    }
}

fn header_crc(b: &[u8]) -> u32 {
    use segment_header as h;
    let crc = crc32c::crc32c(&b[..h::HEADER_CRC]);
    crc32c::crc32c_append(
        crc32c::crc32c_append(crc, &[0u8; 4]),
        &b[h::HEADER_CRC + 4..SEGMENT_HEADER_SIZE],
    )
}

/// Encodes one record into `out`, which must be exactly
/// [`frame_size`]`(payload.len())` bytes, and returns its chain value.
///
/// The length field is written last, so a process that dies half-way leaves
/// a zero length (end of records) or a frame whose CRC fails.
///
/// # Panics
///
/// If `out` has the wrong size or the frame is longer than `u32::MAX` bytes
/// (the writer checks both before calling).
#[inline]
pub fn encode_frame(
    out: &mut [u8],
    sequence: u64,
    timestamp: u64,
    kind: u8,
    payload: &[u8],
    prev_chain: u64,
) -> u64 {
    let len = FRAME_HEADER_SIZE + payload.len();
    assert_eq!(
        out.len(),
        align_frame(len),
        "frame buffer of the wrong size"
    );
    let len32 = u32::try_from(len).expect("frame longer than u32::MAX");
    put_u64(out, frame::SEQUENCE, sequence);
    put_u64(out, frame::TIMESTAMP, timestamp);
    out[frame::KIND] = kind;
    out[frame::PAYLOAD..len].copy_from_slice(payload);
    out[len..].fill(0);
    let chain = chain_next(prev_chain, &out[frame::SEQUENCE..len]);
    put_u64(out, frame::CHAIN, chain);
    let crc = crc32c::crc32c(&out[frame::CHAIN..len]);
    put_u32(out, frame::CRC, crc);
    // The length goes last: keep the compiler from moving the stores above
    // after it (a reader in another process sees a zero length until then).
    compiler_fence(Ordering::Release);
    put_u32(out, frame::LENGTH, len32);
    chain
}

/// A frame that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameInfo {
    /// The frame's `length` field.
    pub len: usize,
    /// Bytes to the next frame (`len` rounded up, clipped at the end of the file).
    pub advance: usize,
    pub sequence: u64,
    pub timestamp: u64,
    pub kind: u8,
    pub chain: u64,
}

/// The outcome of checking the frame at one offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameStatus {
    Valid(FrameInfo),
    /// A zero length (or fewer than four zero bytes left): no more records.
    End,
    Bad(CorruptReason),
}

/// Checks the frame at the start of `rest` (which runs to the end of the
/// file) against the expected sequence number and previous chain value.
#[inline]
pub(crate) fn check_frame(rest: &[u8], expected_seq: u64, prev_chain: u64) -> FrameStatus {
    if rest.len() < 4 {
        return if rest.iter().all(|&b| b == 0) {
            FrameStatus::End
        } else {
            FrameStatus::Bad(CorruptReason::TruncatedFrame)
        };
    }
    let len32 = get_u32(rest, frame::LENGTH);
    if len32 == 0 {
        return FrameStatus::End;
    }
    let len = len32 as usize;
    if len < FRAME_HEADER_SIZE {
        return FrameStatus::Bad(CorruptReason::BadLength(len32));
    }
    if len > rest.len() {
        return FrameStatus::Bad(CorruptReason::TruncatedFrame);
    }
    let stored_crc = get_u32(rest, frame::CRC);
    let computed_crc = crc32c::crc32c(&rest[frame::CHAIN..len]);
    if stored_crc != computed_crc {
        return FrameStatus::Bad(CorruptReason::CrcMismatch {
            stored: stored_crc,
            computed: computed_crc,
        });
    }
    let advance = align_frame(len).min(rest.len());
    if rest[len..advance].iter().any(|&b| b != 0) {
        return FrameStatus::Bad(CorruptReason::NonZeroPadding);
    }
    let sequence = get_u64(rest, frame::SEQUENCE);
    if sequence != expected_seq {
        return FrameStatus::Bad(CorruptReason::SequenceMismatch {
            expected: expected_seq,
            found: sequence,
        });
    }
    let stored_chain = get_u64(rest, frame::CHAIN);
    let computed_chain = chain_next(prev_chain, &rest[frame::SEQUENCE..len]);
    if stored_chain != computed_chain {
        return FrameStatus::Bad(CorruptReason::ChainMismatch {
            stored: stored_chain,
            computed: computed_chain,
        });
    }
    FrameStatus::Valid(FrameInfo {
        len,
        advance,
        sequence,
        timestamp: get_u64(rest, frame::TIMESTAMP),
        kind: rest[frame::KIND],
        chain: stored_chain,
    })
}

/// How a scan of a segment's records ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanStop {
    /// A zero length or the end of the file.
    End,
    /// A frame that failed a check.
    Bad {
        offset: usize,
        reason: CorruptReason,
    },
}

/// The result of walking a segment's frames from its first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Valid records found.
    pub records: u64,
    /// Offset after the last valid frame.
    pub end: usize,
    /// Sequence number the next record must carry.
    pub next_seq: u64,
    /// Chain value after the last valid record.
    pub chain: u64,
    pub stop: ScanStop,
}

/// Walks the frames of a whole segment file (`file`, header included),
/// starting at the first frame with `first_seq` and `prev_chain`.
pub(crate) fn scan_segment(file: &[u8], first_seq: u64, prev_chain: u64) -> Scan {
    let mut scan = Scan {
        records: 0,
        end: SEGMENT_HEADER_SIZE.min(file.len()),
        next_seq: first_seq,
        chain: prev_chain,
        stop: ScanStop::End,
    };
    loop {
        match check_frame(&file[scan.end..], scan.next_seq, scan.chain) {
            FrameStatus::Valid(info) => {
                scan.records += 1;
                scan.end += info.advance;
                scan.next_seq = scan.next_seq.wrapping_add(1);
                scan.chain = info.chain;
                if scan.end >= file.len() {
                    return scan;
                }
            }
            FrameStatus::End => return scan,
            FrameStatus::Bad(reason) => {
                scan.stop = ScanStop::Bad {
                    offset: scan.end,
                    reason,
                };
                return scan;
            }
        }
    }
}

/// Whether every byte of `bytes` is zero.
pub(crate) fn all_zero(bytes: &[u8]) -> bool {
    // Eight bytes at a time keeps a 64 MiB tail check in the low milliseconds.
    let mut words = bytes.chunks_exact(8);
    words.by_ref().all(|w| get_u64(w, 0) == 0) && words.remainder().iter().all(|&b| b == 0)
}

/// Offset of the last non-zero byte of `bytes`, plus one (0 if all zero).
pub(crate) fn nonzero_extent(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)
}

/// Looks for a frame with a valid CRC and a sequence number at or after
/// `min_seq` at any aligned offset after `from`. Such a frame after a bad one
/// means the damage is not a torn tail.
pub(crate) fn find_valid_frame_after(file: &[u8], from: usize, min_seq: u64) -> Option<usize> {
    // No more records than this can follow `from`, which bounds a plausible
    // sequence number.
    let max_ahead = (file.len() / FRAME_HEADER_SIZE) as u64 + 1;
    let mut off = align_frame(from + 1);
    while off + FRAME_HEADER_SIZE <= file.len() {
        let rest = &file[off..];
        let len = get_u32(rest, frame::LENGTH) as usize;
        if len >= FRAME_HEADER_SIZE && len <= rest.len() {
            let seq = get_u64(rest, frame::SEQUENCE);
            if seq.wrapping_sub(min_seq) <= max_ahead
                && get_u32(rest, frame::CRC) == crc32c::crc32c(&rest[frame::CHAIN..len])
            {
                return Some(off);
            }
        }
        off += FRAME_ALIGN;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, payload: &[u8], prev: u64) -> (Vec<u8>, u64) {
        let mut buf = vec![0xAAu8; frame_size(payload.len())];
        let chain = encode_frame(&mut buf, seq, 1000 + seq, 7, payload, prev);
        (buf, chain)
    }

    #[test]
    fn frame_sizes_are_padded_to_eight_bytes() {
        assert_eq!(frame_size(0), 40);
        assert_eq!(frame_size(80), 120);
        assert_eq!(frame_size(96), 136);
        assert_eq!(frame_size(7), 40);
        assert_eq!(frame_size(8), 48);
    }

    #[test]
    fn an_encoded_frame_has_its_fields_at_the_documented_offsets() {
        let (buf, chain) = frame(42, b"hello", 9);
        assert_eq!(get_u32(&buf, frame::LENGTH), 38);
        assert_eq!(get_u64(&buf, frame::SEQUENCE), 42);
        assert_eq!(get_u64(&buf, frame::TIMESTAMP), 1042);
        assert_eq!(buf[frame::KIND], 7);
        assert_eq!(&buf[frame::PAYLOAD..38], b"hello");
        assert_eq!(&buf[38..], &[0, 0]);
        assert_eq!(get_u64(&buf, frame::CHAIN), chain);
        assert_eq!(chain, chain_next(9, &buf[16..38]));
        assert_eq!(get_u32(&buf, frame::CRC), crc32c::crc32c(&buf[8..38]));
    }

    #[test]
    fn a_valid_frame_checks_and_any_flipped_bit_fails() {
        let (buf, chain) = frame(5, &[1, 2, 3, 4, 5, 6, 7, 8, 9], 77);
        match check_frame(&buf, 5, 77) {
            FrameStatus::Valid(info) => {
                assert_eq!(info.chain, chain);
                assert_eq!(info.advance, buf.len());
            }
            other => panic!("expected valid, got {other:?}"),
        }
        for byte in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[byte] ^= 1 << bit;
                assert!(
                    !matches!(check_frame(&bad, 5, 77), FrameStatus::Valid(_)),
                    "flip of byte {byte} bit {bit} went unnoticed"
                );
            }
        }
    }

    #[test]
    fn a_frame_with_a_recomputed_crc_still_breaks_the_chain() {
        let (mut buf, _) = frame(5, b"payload!", 77);
        buf[frame::PAYLOAD] ^= 0xFF;
        let len = get_u32(&buf, 0) as usize;
        let crc = crc32c::crc32c(&buf[frame::CHAIN..len]);
        put_u32(&mut buf, frame::CRC, crc);
        assert!(matches!(
            check_frame(&buf, 5, 77),
            FrameStatus::Bad(CorruptReason::ChainMismatch { .. })
        ));
    }

    #[test]
    fn wrong_sequence_and_wrong_previous_chain_are_reported() {
        let (buf, _) = frame(5, b"x", 77);
        assert_eq!(
            check_frame(&buf, 6, 77),
            FrameStatus::Bad(CorruptReason::SequenceMismatch {
                expected: 6,
                found: 5
            })
        );
        assert!(matches!(
            check_frame(&buf, 5, 78),
            FrameStatus::Bad(CorruptReason::ChainMismatch { .. })
        ));
    }

    #[test]
    fn zero_length_is_the_end_and_short_lengths_are_bad() {
        assert_eq!(check_frame(&[0u8; 64], 1, 0), FrameStatus::End);
        assert_eq!(check_frame(&[0u8; 3], 1, 0), FrameStatus::End);
        assert_eq!(
            check_frame(&[0, 0, 1], 1, 0),
            FrameStatus::Bad(CorruptReason::TruncatedFrame)
        );
        let mut b = [0u8; 64];
        b[0] = 12;
        assert_eq!(
            check_frame(&b, 1, 0),
            FrameStatus::Bad(CorruptReason::BadLength(12))
        );
        b[0] = 200;
        assert_eq!(
            check_frame(&b, 1, 0),
            FrameStatus::Bad(CorruptReason::TruncatedFrame)
        );
    }

    #[test]
    fn headers_round_trip_and_reject_damage() {
        let mut h = SegmentHeader::new(100, 123, 0xDEAD, 8192);
        let bytes = h.to_bytes();
        assert_eq!(&bytes[..8], b"RGXJRNL\0");
        assert_eq!(SegmentHeader::decode(&bytes, 8192), Ok(h));
        h.seal(3, 256, 99);
        let sealed = h.to_bytes();
        assert_eq!(SegmentHeader::decode(&sealed, 8192), Ok(h));
        assert!(matches!(
            SegmentHeader::decode(&sealed, 200),
            Err(HeaderDefect::Inconsistent(_))
        ));
        for i in 0..SEGMENT_HEADER_SIZE {
            let mut bad = bytes;
            bad[i] ^= 0x10;
            assert!(SegmentHeader::decode(&bad, 8192).is_err(), "byte {i}");
        }
        assert_eq!(
            SegmentHeader::decode(&bytes[..100], 100),
            Err(HeaderDefect::TooShort { len: 100 })
        );
    }

    #[test]
    fn segment_names_sort_by_sequence_and_parse_back() {
        assert_eq!(segment_file_name(42), "00000000000000000042.seg");
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg"),
            Some(42)
        );
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("42.seg"), None);
        assert_eq!(parse_segment_file_name("0000000000000000004x.seg"), None);
        assert_eq!(
            parse_segment_file_name("00000000000000000042.seg.dropped"),
            None
        );
        assert!(segment_file_name(9) < segment_file_name(10));
    }

    #[test]
    fn scanning_stops_at_the_first_bad_frame_and_a_later_valid_frame_is_found() {
        let mut file = vec![0u8; 1024];
        let mut off = SEGMENT_HEADER_SIZE;
        let mut chain = 0;
        let mut offsets = vec![];
        for seq in 1..=4 {
            let (f, c) = frame(seq, &[seq as u8; 20], chain);
            offsets.push(off);
            file[off..off + f.len()].copy_from_slice(&f);
            off += f.len();
            chain = c;
        }
        let scan = scan_segment(&file, 1, 0);
        assert_eq!(scan.records, 4);
        assert_eq!(scan.end, off);
        assert_eq!(scan.chain, chain);
        assert_eq!(scan.stop, ScanStop::End);
        file[offsets[1] + 40] ^= 1;
        let scan = scan_segment(&file, 1, 0);
        assert_eq!(scan.records, 1);
        assert!(matches!(scan.stop, ScanStop::Bad { offset, .. } if offset == offsets[1]));
        assert_eq!(
            find_valid_frame_after(&file, offsets[1], 2),
            Some(offsets[2])
        );
        assert_eq!(find_valid_frame_after(&file, offsets[3], 5), None);
    }

    #[test]
    fn zero_checks() {
        assert!(all_zero(&[0u8; 100]));
        let mut b = [0u8; 100];
        b[99] = 1;
        assert!(!all_zero(&b));
        assert_eq!(nonzero_extent(&b), 100);
        b[99] = 0;
        b[3] = 1;
        assert!(!all_zero(&b));
        assert_eq!(nonzero_extent(&b), 4);
        assert_eq!(nonzero_extent(&[0u8; 5]), 0);
    }
}
