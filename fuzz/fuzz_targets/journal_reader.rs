//! Fuzz target: arbitrary bytes as journal segment files, then everything
//! that reads them: `verify`, `JournalReader` from several positions, the
//! writer's recovery in strict and tolerant mode, and appending after it.
//!
//! Nothing may panic, and:
//! - tolerant recovery always opens (it never reports corruption as an error);
//! - after any successful recovery the journal verifies with no break;
//! - after appending to a recovered journal, a strict reopen is clean.
//!
//! The first input byte picks the shape: raw bytes as one segment, raw bytes
//! split into two segments, or a real journal written by the writer from the
//! input and then damaged by (offset, xor) edits taken from the input, which
//! gets the fuzzer past the CRCs quickly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringex_journal::format::{segment_file_name, SegmentHeader};
use ringex_journal::{
    DurabilityPolicy, Error, Journal, JournalConfig, JournalReader, RecoveryMode,
};
use std::path::Path;

const SEGMENT: u64 = 4096;

fn config(recovery: RecoveryMode) -> JournalConfig {
    JournalConfig::default()
        .with_segment_size(SEGMENT)
        .with_durability(DurabilityPolicy::None)
        .with_recovery(recovery)
}

fn name_seq(bytes: &[u8], fallback: u64) -> u64 {
    match bytes.get(16..24) {
        Some(b) => u64::from_le_bytes(b.try_into().unwrap()),
        None => fallback,
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ringex-fuzz-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

fn write_segment(dir: &Path, seq: u64, bytes: &[u8]) {
    std::fs::write(dir.join(segment_file_name(seq)), bytes).unwrap();
}

/// A real journal written from `input`, then damaged by edits from `input`.
fn synthesize(dir: &Path, input: &[u8]) {
    let (records, edits) = input.split_at(input.len() / 2);
    {
        let (mut j, _) = Journal::open(dir, config(RecoveryMode::Strict)).unwrap();
        let first = u64::from(records.first().copied().unwrap_or(0));
        for (i, chunk) in records.chunks(5).enumerate() {
            let size = usize::from(chunk[0]) * 4;
            let seq = first + i as u64;
            let payload = vec![chunk.get(1).copied().unwrap_or(0); size];
            j.append(seq, seq * 7, chunk[0], &payload).unwrap();
        }
        j.end_batch().unwrap();
    }
    let mut segments: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    if segments.is_empty() {
        return;
    }
    for edit in edits.chunks_exact(4) {
        let seg = &segments[usize::from(edit[0]) % segments.len()];
        let mut bytes = std::fs::read(seg).unwrap();
        let at = usize::from(u16::from_le_bytes([edit[1], edit[2]]));
        if edit[3] == 0 {
            // A zero edit truncates the file there.
            bytes.truncate(at.min(bytes.len()));
        } else if let Some(b) = bytes.get_mut(at) {
            *b ^= edit[3];
        }
        std::fs::write(seg, bytes).unwrap();
    }
}

/// Reads everything from `from`; the reader may refuse, never panic.
fn read_from(dir: &Path, from: u64) {
    if let Ok(mut r) = JournalReader::open(dir, from) {
        for _ in 0..4096 {
            match r.next_record() {
                Ok(Some(rec)) => assert!(rec.payload.len() < 1 << 20),
                Ok(None) | Err(_) => break,
            }
        }
    }
}

fn exercise(dir: &Path) {
    // Skip headers that claim huge segments: recovery would extend the file
    // to that size, which is right but slow here.
    for e in std::fs::read_dir(dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        if let Ok(h) = SegmentHeader::decode(&bytes, bytes.len() as u64) {
            if h.segment_size > 1 << 20 {
                return;
            }
        }
    }
    let report = ringex_journal::verify(dir).unwrap();
    let first = report.first_sequence.unwrap_or(0);
    for from in [
        first,
        first.wrapping_add(1),
        first.wrapping_add(7),
        report.last_sequence.unwrap_or(0),
    ] {
        read_from(dir, from);
    }

    // Strict: may refuse with Corrupt, nothing else.
    match Journal::open(dir, config(RecoveryMode::Strict)) {
        Ok((_, _)) => assert!(ringex_journal::verify(dir).unwrap().is_intact()),
        Err(Error::Corrupt { .. }) => {}
        Err(e) => panic!("strict open failed with {e}"),
    }
    // Tolerant: always opens, and leaves a journal that verifies.
    let (mut j, _) = match Journal::open(dir, config(RecoveryMode::Tolerant)) {
        Ok(x) => x,
        Err(e) => panic!("tolerant open failed with {e}"),
    };
    let v = ringex_journal::verify(dir).unwrap();
    assert!(v.is_intact() && v.torn_tail.is_none(), "{v:?}");
    let next = j.next_sequence().unwrap_or(1);
    if next < u64::MAX - 2 {
        j.append(next, 1, 2, b"after recovery").unwrap();
        j.append(next + 1, 1, 2, &[9; 200]).unwrap();
        j.end_batch().unwrap();
        drop(j);
        let (_, again) = Journal::open(dir, config(RecoveryMode::Strict)).unwrap();
        assert!(again.is_clean(), "{again:?}");
        read_from(dir, next);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let dir = tempdir();
    match mode % 3 {
        0 => write_segment(dir.path(), name_seq(rest, 0), rest),
        1 => {
            if rest.len() < 2 {
                return;
            }
            let split = usize::from(u16::from_le_bytes([rest[0], rest[1]])) % rest.len();
            let (a, b) = rest[2..].split_at(split.min(rest.len() - 2));
            let (sa, sb) = (name_seq(a, 0), name_seq(b, 1));
            if sa == sb {
                return;
            }
            write_segment(dir.path(), sa, a);
            write_segment(dir.path(), sb, b);
        }
        _ => synthesize(dir.path(), rest),
    }
    exercise(dir.path());
});
