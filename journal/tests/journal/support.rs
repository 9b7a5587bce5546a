//! Shared helpers: small segments, deterministic payloads, file surgery.

#![allow(dead_code)]

use ringex_journal::format::{
    frame_size, segment_file_name, FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE,
};
use ringex_journal::{
    DurabilityPolicy, Journal, JournalConfig, JournalReader, OwnedRecord, RecoveryMode,
};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// A small segment size so tests roll often: 33 records of 80 bytes fit.
pub const SMALL_SEGMENT: u64 = 4096;
/// Payload size of a command record.
pub const COMMAND: usize = 80;
/// Frame size of an 80-byte record.
pub const FRAME: usize = 120;
/// Records of 80 bytes per small segment.
pub const PER_SEGMENT: u64 = ((SMALL_SEGMENT as usize - SEGMENT_HEADER_SIZE) / FRAME) as u64;

pub fn config() -> JournalConfig {
    JournalConfig::default()
        .with_segment_size(SMALL_SEGMENT)
        .with_durability(DurabilityPolicy::None)
}

pub fn tolerant() -> JournalConfig {
    config().with_recovery(RecoveryMode::Tolerant)
}

/// A deterministic payload for `seq` (never contains 0xFF).
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((seq.wrapping_mul(31).wrapping_add(i as u64 * 7)) % 251) as u8)
        .collect()
}

pub fn timestamp(seq: u64) -> u64 {
    1_700_000_000_000_000_000 + seq * 1_000
}

pub fn kind(seq: u64) -> u8 {
    (seq % 15 + 1) as u8
}

/// Appends `seqs` with 80-byte payloads and ends the batch.
pub fn append_range<F: ringex_journal::fs::FileSystem>(
    journal: &mut Journal<F>,
    seqs: std::ops::RangeInclusive<u64>,
) {
    for seq in seqs {
        journal
            .append(seq, timestamp(seq), kind(seq), &payload(seq, COMMAND))
            .unwrap();
    }
    journal.end_batch().unwrap();
}

/// A journal in a fresh directory holding records `1..=n` (80 bytes each).
pub fn journal_with(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), config()).unwrap();
    append_range(&mut j, 1..=n);
    j.close().unwrap();
    dir
}

/// Every record from `from` on.
pub fn read_from(dir: &Path, from: u64) -> Vec<OwnedRecord> {
    JournalReader::open(dir, from)
        .unwrap()
        .read_to_end()
        .unwrap()
}

/// Sequence numbers of every record in the journal.
pub fn sequences(dir: &Path) -> Vec<u64> {
    match JournalReader::open(dir, first_segment_seq(dir)) {
        Ok(mut r) => r
            .read_to_end()
            .unwrap()
            .iter()
            .map(|r| r.sequence)
            .collect(),
        Err(_) => Vec::new(),
    }
}

pub fn first_segment_seq(dir: &Path) -> u64 {
    segments(dir)
        .first()
        .map(|p| {
            ringex_journal::format::parse_segment_file_name(
                p.file_name().unwrap().to_str().unwrap(),
            )
            .unwrap()
        })
        .unwrap_or(0)
}

/// Checks that a record read back is the one `append_range` wrote.
pub fn assert_record(r: &OwnedRecord, seq: u64) {
    assert_eq!(r.sequence, seq);
    assert_eq!(r.timestamp, timestamp(seq));
    assert_eq!(r.kind, kind(seq));
    assert_eq!(r.payload, payload(seq, COMMAND));
}

/// The segment files, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

pub fn segment_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(segment_file_name(first_seq))
}

/// First sequence number of the small segment holding `seq` (records
/// `1..`, 80 bytes each).
pub fn segment_first(seq: u64) -> u64 {
    (seq - 1) / PER_SEGMENT * PER_SEGMENT + 1
}

/// Byte offset of record `seq` in its small segment (records `1..`, 80
/// bytes each).
pub fn record_offset(seq: u64) -> u64 {
    SEGMENT_HEADER_SIZE as u64 + ((seq - 1) % PER_SEGMENT) * FRAME as u64
}

pub fn read_bytes(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, offset).unwrap();
    buf
}

pub fn write_bytes(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

pub fn flip_byte(path: &Path, offset: u64) {
    let b = read_bytes(path, offset, 1)[0];
    write_bytes(path, offset, &[b ^ 0x5A]);
}

pub fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Copies every regular file of `from` into a new temporary directory.
pub fn copy_dir(from: &Path) -> tempfile::TempDir {
    let to = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
        }
    }
    to
}

/// Rewrites the payload of the 80-byte record at `offset` in `path`, then
/// recomputes its CRC (but not its chain value), as a careless forger would.
pub fn edit_record_fix_crc(path: &Path, offset: u64, new_payload_byte: u8) {
    let len = FRAME_HEADER_SIZE + COMMAND;
    let mut frame = read_bytes(path, offset, len);
    frame[FRAME_HEADER_SIZE] = new_payload_byte;
    let crc = crc32c::crc32c(&frame[8..len]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    write_bytes(path, offset, &frame);
}

pub const _FRAME_CHECK: () = assert!(frame_size(COMMAND) == FRAME);
