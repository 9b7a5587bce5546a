//! A torn tail (the last record cut short, zeroed, or garbage) is truncated
//! and reported; the complete records before it are kept exactly.

use crate::support::*;
use ringex_journal::format::{FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE};
use ringex_journal::{CorruptReason, Journal};

const LEN: u64 = (FRAME_HEADER_SIZE + COMMAND) as u64;

/// How the last record is damaged from byte `cut` of its frame on.
#[derive(Debug, Clone, Copy)]
enum Damage {
    /// The file ends at `cut`.
    Truncate,
    /// Bytes from `cut` to the end of the frame are zero.
    Zero,
    /// Bytes from `cut` to the end of the frame are 0xFF.
    Garbage,
}

/// Damages the last record of a journal of `n` records at every byte offset
/// of its frame and checks what recovery keeps.
fn damage_last_record_at_every_offset(n: u64, damage: Damage) {
    let pristine = journal_with(n);
    let seg = segment_path(pristine.path(), segment_first(n));
    let at = record_offset(n);
    for cut in 0..FRAME as u64 {
        let dir = copy_dir(pristine.path());
        let path = segment_path(dir.path(), segment_first(n));
        assert_eq!(path.file_name(), seg.file_name());
        match damage {
            Damage::Truncate => set_len(&path, at + cut),
            Damage::Zero => write_bytes(&path, at + cut, &vec![0; FRAME - cut as usize]),
            Damage::Garbage => write_bytes(&path, at + cut, &vec![0xFF; FRAME - cut as usize]),
        }
        let complete = match damage {
            Damage::Garbage => false,
            _ => cut >= LEN,
        };
        let expect = if complete { n } else { n - 1 };
        let (mut j, report) = Journal::open(dir.path(), config()).unwrap();
        assert_eq!(report.records, expect, "{damage:?} at {cut}: {report:?}");
        assert_eq!(report.last_sequence, Some(expect));
        assert!(report.dropped.is_none());
        // A torn tail is reported unless nothing of the record was left.
        let nothing_left = match damage {
            Damage::Truncate | Damage::Zero => cut == 0 || complete,
            Damage::Garbage => false,
        };
        match (&report.torn_tail, nothing_left) {
            (None, true) => {}
            (Some(t), false) => {
                assert_eq!(t.file, path, "{damage:?} at {cut}");
                assert_eq!((t.offset, t.sequence), (at, n), "{damage:?} at {cut}");
                assert!(t.bytes_discarded > 0);
            }
            (t, _) => panic!("{damage:?} at {cut}: torn tail {t:?}"),
        }
        // The file has its full size again and appends continue.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SMALL_SEGMENT);
        assert_eq!(j.next_sequence(), Some(expect + 1));
        append_range(&mut j, expect + 1..=n + 2);
        drop(j);
        let records = read_from(dir.path(), 1);
        assert_eq!(records.len() as u64, n + 2, "{damage:?} at {cut}");
        for (i, r) in records.iter().enumerate() {
            assert_record(r, i as u64 + 1);
        }
        let verified = ringex_journal::verify(dir.path()).unwrap();
        assert!(
            verified.is_intact() && verified.torn_tail.is_none(),
            "{verified:?}"
        );
    }
}

#[test]
fn truncating_the_last_record_at_every_byte_keeps_exactly_the_complete_records() {
    damage_last_record_at_every_offset(PER_SEGMENT + 10, Damage::Truncate);
}

#[test]
fn truncating_a_segments_only_record_at_every_byte_keeps_the_records_before_it() {
    damage_last_record_at_every_offset(PER_SEGMENT + 1, Damage::Truncate);
}

#[test]
fn zeroing_the_last_record_from_every_byte_keeps_exactly_the_complete_records() {
    damage_last_record_at_every_offset(PER_SEGMENT + 10, Damage::Zero);
}

#[test]
fn garbage_in_the_last_record_from_every_byte_drops_only_that_record() {
    damage_last_record_at_every_offset(PER_SEGMENT * 2 - 1, Damage::Garbage);
}

#[test]
fn several_torn_records_at_the_tail_are_all_truncated() {
    let dir = journal_with(20);
    let path = segment_path(dir.path(), 1);
    // Records 18, 19, 20 damaged: one CRC failure, then zeros, then garbage.
    flip_byte(&path, record_offset(18) + 50);
    write_bytes(&path, record_offset(19), &[0; FRAME]);
    write_bytes(&path, record_offset(20) + 4, &[0xEE; 40]);
    let (_, report) = Journal::open(dir.path(), config()).unwrap();
    assert_eq!(report.records, 17);
    let t = report.torn_tail.unwrap();
    assert_eq!((t.offset, t.sequence), (record_offset(18), 18));
    assert!(matches!(t.reason, CorruptReason::CrcMismatch { .. }));
    assert_eq!(sequences(dir.path()), (1..=17).collect::<Vec<_>>());
}

#[test]
fn garbage_after_the_end_marker_is_cleared() {
    let dir = journal_with(5);
    let path = segment_path(dir.path(), 1);
    write_bytes(&path, record_offset(9) + 3, b"junk that is not a record");
    let (mut j, report) = Journal::open(dir.path(), config()).unwrap();
    let t = report.torn_tail.expect("garbage reported");
    assert_eq!(
        (t.offset, t.reason),
        (record_offset(6), CorruptReason::DataAfterEnd)
    );
    assert_eq!(report.records, 5);
    append_range(&mut j, 6..=12);
    drop(j);
    assert_eq!(sequences(dir.path()), (1..=12).collect::<Vec<_>>());
}

#[test]
fn a_last_segment_whose_creation_did_not_complete_is_removed() {
    let dir = journal_with(PER_SEGMENT + 1);
    let last = segment_path(dir.path(), PER_SEGMENT + 1);
    // Header cut short, nothing after it.
    set_len(&last, 60);
    let (mut j, report) = Journal::open(dir.path(), config()).unwrap();
    assert_eq!(
        report.removed_incomplete_segment.as_deref(),
        Some(last.as_path())
    );
    assert_eq!(report.records, PER_SEGMENT);
    assert!(!last.exists());
    // The sealed segment before it stays sealed: the next append rolls.
    append_range(&mut j, PER_SEGMENT + 1..=PER_SEGMENT + 2);
    drop(j);
    assert_eq!(sequences(dir.path()).len() as u64, PER_SEGMENT + 2);
    assert!(ringex_journal::verify(dir.path()).unwrap().is_intact());
}

#[test]
fn an_empty_last_segment_file_is_removed() {
    let dir = journal_with(PER_SEGMENT + 1);
    let last = segment_path(dir.path(), PER_SEGMENT + 1);
    set_len(&last, 0);
    let (_, report) = Journal::open(dir.path(), config()).unwrap();
    assert!(report.removed_incomplete_segment.is_some());
    assert_eq!(report.last_sequence, Some(PER_SEGMENT));
}

#[test]
fn a_crash_between_sealing_and_creating_the_next_segment_recovers() {
    // A sealed last segment and no successor: the next append rolls.
    let dir = journal_with(PER_SEGMENT + 1);
    let last = segment_path(dir.path(), PER_SEGMENT + 1);
    std::fs::remove_file(&last).unwrap();
    let (mut j, report) = Journal::open(dir.path(), config()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(j.next_sequence(), Some(PER_SEGMENT + 1));
    append_range(&mut j, PER_SEGMENT + 1..=PER_SEGMENT + 1);
    drop(j);
    assert!(ringex_journal::verify(dir.path()).unwrap().is_intact());
}

#[test]
fn a_complete_segment_left_unsealed_by_a_crash_is_sealed_on_open() {
    use ringex_journal::format::SegmentHeader;
    let dir = journal_with(PER_SEGMENT + 4);
    let first = segment_path(dir.path(), 1);
    let bytes = std::fs::read(&first).unwrap();
    let mut h = SegmentHeader::decode(&bytes, bytes.len() as u64).unwrap();
    let sealed = h;
    h.unseal();
    write_bytes(&first, 0, &h.to_bytes());
    let (_, report) = Journal::open(dir.path(), config()).unwrap();
    assert_eq!(report.resealed_segments, vec![first.clone()]);
    assert_eq!(report.records, PER_SEGMENT + 4);
    let bytes = std::fs::read(&first).unwrap();
    let resealed = SegmentHeader::decode(&bytes, bytes.len() as u64).unwrap();
    assert_eq!(
        (
            resealed.record_count,
            resealed.end_offset,
            resealed.sealed_chain
        ),
        (sealed.record_count, sealed.end_offset, sealed.sealed_chain)
    );
    let _ = SEGMENT_HEADER_SIZE;
}
