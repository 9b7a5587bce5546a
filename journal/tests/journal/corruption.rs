//! Corruption before the tail stops opening with a precise error, unless the
//! operator chose tolerant recovery, which truncates and reports.

use crate::support::*;
use ringex_journal::format::{frame, SEGMENT_HEADER_SIZE};
use ringex_journal::{CorruptReason, Error, HeaderDefect, Journal};

fn corrupt_error(dir: &std::path::Path) -> (std::path::PathBuf, u64, u64, CorruptReason) {
    match Journal::open(dir, config()) {
        Err(Error::Corrupt {
            file,
            offset,
            sequence,
            reason,
        }) => (file, offset, sequence, reason),
        other => panic!("expected a corruption error, got {other:?}"),
    }
}

#[test]
fn a_flipped_byte_in_an_earlier_segment_names_file_offset_and_sequence() {
    let n = PER_SEGMENT * 3 + 1;
    let dir = journal_with(n);
    let victim = 17;
    let path = segment_path(dir.path(), 1);
    flip_byte(&path, record_offset(victim) + 60);
    let (file, offset, sequence, reason) = corrupt_error(dir.path());
    assert_eq!(file, path);
    assert_eq!(offset, record_offset(victim));
    assert_eq!(sequence, victim);
    assert!(
        matches!(reason, CorruptReason::CrcMismatch { .. }),
        "{reason:?}"
    );
    // The message says it all too.
    let message = Journal::open(dir.path(), config()).unwrap_err().to_string();
    assert!(
        message.contains(&format!("byte offset {}", record_offset(victim))),
        "{message}"
    );
    assert!(message.contains(&format!("sequence {victim}")), "{message}");
    assert!(message.contains("00000000000000000001.seg"), "{message}");
    // Nothing was changed by the failed open.
    assert_eq!(segments(dir.path()).len(), 4);
}

#[test]
fn every_flipped_byte_in_a_sealed_segment_is_caught() {
    let pristine = journal_with(PER_SEGMENT + 2);
    let path = segment_path(pristine.path(), 1);
    let end = SEGMENT_HEADER_SIZE as u64 + PER_SEGMENT * FRAME as u64;
    // Every byte of the header, of a few records, and of the zero tail.
    let offsets =
        (0..SEGMENT_HEADER_SIZE as u64 + 2 * FRAME as u64).chain(end - FRAME as u64..SMALL_SEGMENT);
    for at in offsets.step_by(3) {
        let dir = copy_dir(pristine.path());
        flip_byte(&segment_path(dir.path(), 1), at);
        let (file, offset, sequence, _) = corrupt_error(dir.path());
        assert_eq!(file, segment_path(dir.path(), 1), "flip at {at}");
        if at < SEGMENT_HEADER_SIZE as u64 {
            assert_eq!((offset, sequence), (0, 1), "flip at {at}");
        } else if at < end {
            let seq = (at - SEGMENT_HEADER_SIZE as u64) / FRAME as u64 + 1;
            assert_eq!(
                (offset, sequence),
                (record_offset(seq), seq),
                "flip at {at}"
            );
        } else {
            assert_eq!((offset, sequence), (end, PER_SEGMENT + 1), "flip at {at}");
        }
        let _ = path;
    }
}

#[test]
fn a_bad_record_followed_by_valid_ones_in_the_last_segment_is_not_a_torn_tail() {
    let dir = journal_with(PER_SEGMENT + 20);
    let victim = PER_SEGMENT + 5;
    let path = segment_path(dir.path(), PER_SEGMENT + 1);
    flip_byte(&path, record_offset(victim) + frame::TIMESTAMP as u64);
    let (file, offset, sequence, _) = corrupt_error(dir.path());
    assert_eq!(
        (file, offset, sequence),
        (path, record_offset(victim), victim)
    );
}

#[test]
fn a_zeroed_record_followed_by_valid_ones_is_not_a_torn_tail() {
    let dir = journal_with(20);
    let path = segment_path(dir.path(), 1);
    write_bytes(&path, record_offset(8), &[0; FRAME]);
    let (_, offset, sequence, reason) = corrupt_error(dir.path());
    assert_eq!(
        (offset, sequence, reason),
        (record_offset(8), 8, CorruptReason::DataAfterEnd)
    );
}

#[test]
fn tolerant_recovery_truncates_at_the_first_bad_record_and_reports_what_was_dropped() {
    let n = PER_SEGMENT * 3 + 1;
    let dir = journal_with(n);
    let victim = 17;
    let first = segment_path(dir.path(), 1);
    flip_byte(&first, record_offset(victim) + 60);
    let (mut j, report) = Journal::open(dir.path(), tolerant()).unwrap();
    let dropped = report.dropped.clone().expect("dropped data reported");
    assert_eq!(dropped.file, first);
    assert_eq!(
        (dropped.offset, dropped.sequence),
        (record_offset(victim), victim)
    );
    assert!(matches!(dropped.reason, CorruptReason::CrcMismatch { .. }));
    // The rest of the segment is saved, the later segments set aside.
    let saved = dropped.saved_tail.expect("tail saved");
    assert_eq!(
        std::fs::metadata(&saved).unwrap().len(),
        (PER_SEGMENT - victim + 1) * FRAME as u64 - (FRAME - (frame::PAYLOAD + COMMAND)) as u64
    );
    assert_eq!(dropped.renamed_segments.len(), 3);
    for p in &dropped.renamed_segments {
        assert!(p.to_str().unwrap().ends_with(".seg.dropped") && p.exists());
    }
    assert_eq!(segments(dir.path()), vec![first.clone()]);
    assert_eq!(report.records, victim - 1);
    assert_eq!(j.next_sequence(), Some(victim));
    // The journal goes on from there, and verifies.
    append_range(&mut j, victim..=victim + 40);
    drop(j);
    assert_eq!(sequences(dir.path()), (1..=victim + 40).collect::<Vec<_>>());
    assert!(ringex_journal::verify(dir.path()).unwrap().is_intact());
    // A strict open of the repaired journal is clean.
    let (_, again) = Journal::open(dir.path(), config()).unwrap();
    assert!(again.is_clean(), "{again:?}");
}

#[test]
fn tolerant_recovery_drops_a_segment_with_a_bad_header_and_everything_after() {
    let dir = journal_with(PER_SEGMENT * 3 + 1);
    let second = segment_path(dir.path(), PER_SEGMENT + 1);
    flip_byte(&second, 20);
    let (_, offset, sequence, reason) = corrupt_error(dir.path());
    assert_eq!((offset, sequence), (0, PER_SEGMENT + 1));
    assert!(matches!(
        reason,
        CorruptReason::Header(HeaderDefect::CrcMismatch { .. })
    ));
    let (mut j, report) = Journal::open(dir.path(), tolerant()).unwrap();
    let dropped = report.dropped.unwrap();
    assert_eq!((dropped.file, dropped.offset), (second, 0));
    assert_eq!(dropped.renamed_segments.len(), 3);
    assert_eq!(report.records, PER_SEGMENT);
    append_range(&mut j, PER_SEGMENT + 1..=PER_SEGMENT + 3);
    drop(j);
    assert_eq!(sequences(dir.path()).len() as u64, PER_SEGMENT + 3);
    assert!(ringex_journal::verify(dir.path()).unwrap().is_intact());
}

#[test]
fn a_missing_middle_segment_is_a_gap() {
    let dir = journal_with(PER_SEGMENT * 3 + 1);
    std::fs::remove_file(segment_path(dir.path(), PER_SEGMENT + 1)).unwrap();
    let (file, offset, sequence, reason) = corrupt_error(dir.path());
    assert_eq!(file, segment_path(dir.path(), 2 * PER_SEGMENT + 1));
    assert_eq!((offset, sequence), (0, PER_SEGMENT + 1));
    assert_eq!(
        reason,
        CorruptReason::SegmentGap {
            expected: PER_SEGMENT + 1,
            found: 2 * PER_SEGMENT + 1
        }
    );
}

#[test]
fn a_sealed_segment_cut_short_is_corruption_not_a_torn_tail() {
    let dir = journal_with(PER_SEGMENT + 3);
    let first = segment_path(dir.path(), 1);
    set_len(&first, record_offset(20) + 50);
    let (file, _, _, reason) = corrupt_error(dir.path());
    assert_eq!(file, first);
    assert!(matches!(
        reason,
        CorruptReason::Header(HeaderDefect::Inconsistent(_))
    ));
}
