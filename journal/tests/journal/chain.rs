//! The hash chain: `verify` names the first record whose chain breaks, even
//! when a forger recomputed the record's CRC.

use crate::support::*;
use ringex_journal::format::{chain_next, frame, SegmentHeader, FRAME_HEADER_SIZE};
use ringex_journal::{verify, CorruptReason, Error, Journal};
use std::path::Path;

#[test]
fn an_intact_journal_verifies_from_genesis_to_its_head() {
    let n = PER_SEGMENT * 2 + 9;
    let dir = journal_with(n);
    let report = verify(dir.path()).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.segments, 3);
    assert_eq!(report.records, n);
    assert_eq!(
        (report.first_sequence, report.last_sequence),
        (Some(1), Some(n))
    );
    assert_eq!(report.start_chain, 0);
    assert_eq!(report.chain_head, read_from(dir.path(), n)[0].chain);
    assert!(report.torn_tail.is_none());
}

#[test]
fn the_chain_is_xxh3_of_each_record_seeded_with_the_previous_value() {
    let dir = journal_with(5);
    let path = segment_path(dir.path(), 1);
    let mut prev = 0;
    for seq in 1..=5 {
        let bytes = read_bytes(&path, record_offset(seq), FRAME_HEADER_SIZE + COMMAND);
        let expect = chain_next(prev, &bytes[frame::SEQUENCE..]);
        assert_eq!(u64::from_le_bytes(bytes[8..16].try_into().unwrap()), expect);
        assert_eq!(
            expect,
            xxhash_rust::xxh3::xxh3_64_with_seed(&bytes[16..], prev),
            "documented construction"
        );
        prev = expect;
    }
}

#[test]
fn an_edited_record_with_a_recomputed_crc_breaks_the_chain_at_that_record() {
    let dir = journal_with(PER_SEGMENT * 2 + 3);
    let victim = PER_SEGMENT + 12;
    let path = segment_path(dir.path(), PER_SEGMENT + 1);
    edit_record_fix_crc(&path, record_offset(victim), 0xAB);
    let report = verify(dir.path()).unwrap();
    let b = report.first_break.expect("the edit is detected");
    assert_eq!(b.file, path);
    assert_eq!((b.offset, b.sequence), (record_offset(victim), victim));
    assert!(
        matches!(b.reason, CorruptReason::ChainMismatch { .. }),
        "{:?}",
        b.reason
    );
    assert_eq!(report.records, victim - 1);
    // Recovery refuses it too, with the same coordinates.
    match Journal::open(dir.path(), config()) {
        Err(Error::Corrupt {
            file,
            offset,
            sequence,
            reason: CorruptReason::ChainMismatch { .. },
        }) => assert_eq!(
            (file, offset, sequence),
            (path, record_offset(victim), victim)
        ),
        other => panic!("{other:?}"),
    }
}

/// Rewrites record `seq`'s payload byte and re-chains every later record of
/// the segment (recomputing chains and CRCs), as a more careful forger would.
fn forge_and_rechain(path: &Path, first_seq: u64, seq: u64, records: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let len = FRAME_HEADER_SIZE + COMMAND;
    let mut prev = if seq == first_seq {
        SegmentHeader::decode(&bytes, bytes.len() as u64)
            .unwrap()
            .prev_chain
    } else {
        let o = record_offset(seq - 1) as usize;
        u64::from_le_bytes(bytes[o + 8..o + 16].try_into().unwrap())
    };
    for s in seq..first_seq + records {
        let o = record_offset(s) as usize;
        if s == seq {
            bytes[o + frame::PAYLOAD] ^= 0x01;
        }
        let chain = chain_next(prev, &bytes[o + 16..o + len]);
        bytes[o + 8..o + 16].copy_from_slice(&chain.to_le_bytes());
        let crc = crc32c::crc32c(&bytes[o + 8..o + len]);
        bytes[o + 4..o + 8].copy_from_slice(&crc.to_le_bytes());
        prev = chain;
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn re_chaining_the_rest_of_a_sealed_segment_breaks_its_checkpoint() {
    let dir = journal_with(PER_SEGMENT + 5);
    let path = segment_path(dir.path(), 1);
    forge_and_rechain(&path, 1, 10, PER_SEGMENT);
    let b = verify(dir.path()).unwrap().first_break.unwrap();
    assert_eq!(b.file, path);
    assert_eq!(b.reason, CorruptReason::SealMismatch("final chain value"));
}

#[test]
fn re_sealing_a_forged_segment_breaks_the_link_to_the_next_one() {
    let dir = journal_with(PER_SEGMENT + 5);
    let path = segment_path(dir.path(), 1);
    forge_and_rechain(&path, 1, 10, PER_SEGMENT);
    let bytes = std::fs::read(&path).unwrap();
    let mut h = SegmentHeader::decode(&bytes, bytes.len() as u64).unwrap();
    let o = record_offset(PER_SEGMENT) as usize;
    let forged_chain = u64::from_le_bytes(bytes[o + 8..o + 16].try_into().unwrap());
    h.seal(h.record_count, h.end_offset, forged_chain);
    write_bytes(&path, 0, &h.to_bytes());
    let b = verify(dir.path()).unwrap().first_break.unwrap();
    assert_eq!(b.file, segment_path(dir.path(), PER_SEGMENT + 1));
    assert_eq!((b.offset, b.sequence), (0, PER_SEGMENT + 1));
    assert!(matches!(b.reason, CorruptReason::ChainLink { .. }));
}

#[test]
fn a_forgery_re_chained_to_the_end_changes_the_chain_head_kept_elsewhere() {
    let dir = journal_with(20);
    let head = verify(dir.path()).unwrap().chain_head;
    forge_and_rechain(&segment_path(dir.path(), 1), 1, 7, 20);
    let report = verify(dir.path()).unwrap();
    // Internally consistent, but the head no longer matches the copy.
    assert!(report.is_intact());
    assert_ne!(report.chain_head, head);
}

#[test]
fn verify_reports_a_torn_tail_without_calling_it_a_break() {
    let dir = journal_with(10);
    let path = segment_path(dir.path(), 1);
    set_len(&path, record_offset(10) + 50);
    let report = verify(dir.path()).unwrap();
    assert!(report.is_intact());
    let t = report.torn_tail.unwrap();
    assert_eq!((t.offset, t.sequence), (record_offset(10), 10));
    assert_eq!(report.last_sequence, Some(9));
}

#[test]
fn verify_hangs_the_chain_from_the_first_remaining_segment_after_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), config()).unwrap();
    append_range(&mut j, 1..=PER_SEGMENT * 3);
    let anchor = read_from(dir.path(), PER_SEGMENT * 2)[0].chain;
    let removed = j.remove_segments_through(PER_SEGMENT * 2).unwrap();
    assert_eq!(removed.len(), 2);
    drop(j);
    let report = verify(dir.path()).unwrap();
    assert!(report.is_intact());
    assert_eq!(report.first_sequence, Some(PER_SEGMENT * 2 + 1));
    assert_eq!(report.start_chain, anchor);
    assert_eq!(report.records, PER_SEGMENT);
}
