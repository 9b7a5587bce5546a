//! Appending and reading back, across segment rolls and reopenings.

use crate::support::*;
use ringex_journal::format::{SegmentHeader, SEGMENT_HEADER_SIZE};
use ringex_journal::{
    DurabilityPolicy, Error, Journal, JournalConfig, JournalReader, RecoveryReport,
};

#[test]
fn records_read_back_exactly_as_appended_across_segment_rolls() {
    let n = PER_SEGMENT * 3 + 5;
    let dir = journal_with(n);
    assert_eq!(segments(dir.path()).len(), 4);
    let records = read_from(dir.path(), 1);
    assert_eq!(records.len() as u64, n);
    for (i, r) in records.iter().enumerate() {
        assert_record(r, i as u64 + 1);
    }
}

#[test]
fn reading_can_start_at_every_sequence_number() {
    let n = PER_SEGMENT * 2 + 7;
    let dir = journal_with(n);
    for from in 1..=n + 1 {
        let records = read_from(dir.path(), from);
        assert_eq!(records.len() as u64, n + 1 - from, "from {from}");
        for (i, r) in records.iter().enumerate() {
            assert_record(r, from + i as u64);
        }
    }
}

#[test]
fn reading_from_outside_the_journal_is_a_clear_error() {
    let dir = journal_with(10);
    assert!(matches!(
        JournalReader::open(dir.path(), 0),
        Err(Error::SequenceNotAvailable {
            requested: 0,
            first: Some(1),
            ..
        })
    ));
    assert!(matches!(
        JournalReader::open(dir.path(), 12),
        Err(Error::SequenceNotAvailable {
            requested: 12,
            next: Some(11),
            ..
        })
    ));
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        JournalReader::open(empty.path(), 1),
        Err(Error::SequenceNotAvailable { first: None, .. })
    ));
}

#[test]
fn variable_sized_records_roll_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), config()).unwrap();
    let sizes = [0usize, 1, 7, 8, 80, 96, 500, 1000, 3000, 3935];
    let mut seq = 100;
    for round in 0..4 {
        for &size in &sizes {
            j.append(seq, seq * 3, round, &payload(seq, size)).unwrap();
            seq += 1;
        }
    }
    j.end_batch().unwrap();
    drop(j);
    let mut r = JournalReader::open(dir.path(), 100).unwrap();
    let mut expect = 100;
    while let Some(rec) = r.next_record().unwrap() {
        let size = sizes[((expect - 100) % sizes.len() as u64) as usize];
        assert_eq!(rec.sequence, expect);
        assert_eq!(rec.timestamp, expect * 3);
        assert_eq!(rec.payload, &payload(expect, size)[..]);
        expect += 1;
    }
    assert_eq!(expect, seq);
    // Reading from a record in the middle of mixed sizes falls back to a scan.
    let records = read_from(dir.path(), 117);
    assert_eq!(records.first().map(|r| r.sequence), Some(117));
    assert!(ringex_journal::verify(dir.path()).unwrap().is_intact());
}

#[test]
fn a_record_too_large_for_a_segment_is_refused_and_the_journal_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), config()).unwrap();
    let max = j.config().max_payload();
    assert!(matches!(
        j.append(1, 0, 0, &vec![1u8; max + 1]),
        Err(Error::RecordTooLarge { .. })
    ));
    j.append(1, 0, 0, &vec![1u8; max]).unwrap();
    j.append(2, 0, 0, b"x").unwrap();
    assert!(!j.is_stopped());
}

#[test]
fn sequence_numbers_must_be_consecutive() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), config()).unwrap();
    assert_eq!(j.next_sequence(), None);
    j.append(41, 0, 0, b"first may be anything").unwrap();
    assert!(matches!(
        j.append(43, 0, 0, b"gap"),
        Err(Error::SequenceMismatch {
            expected: 42,
            got: 43
        })
    ));
    assert!(matches!(
        j.append(41, 0, 0, b"repeat"),
        Err(Error::SequenceMismatch {
            expected: 42,
            got: 41
        })
    ));
    j.append(42, 0, 0, b"next").unwrap();
    assert_eq!(j.next_sequence(), Some(43));
    assert!(!j.is_stopped());
}

#[test]
fn reopening_continues_the_same_segment_and_sequence() {
    let dir = journal_with(10);
    let (mut j, report) = Journal::open(dir.path(), config()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        (report.records, report.first_sequence, report.last_sequence),
        (10, Some(1), Some(10))
    );
    assert_eq!(j.next_sequence(), Some(11));
    assert_eq!(j.durable_sequence(), Some(10));
    append_range(&mut j, 11..=PER_SEGMENT + 3);
    drop(j);
    assert_eq!(segments(dir.path()).len(), 2);
    let seqs = sequences(dir.path());
    assert_eq!(seqs, (1..=PER_SEGMENT + 3).collect::<Vec<_>>());
}

#[test]
fn sealed_segments_carry_their_checkpoint() {
    let dir = journal_with(PER_SEGMENT + 1);
    let segs = segments(dir.path());
    let bytes = std::fs::read(&segs[0]).unwrap();
    let h = SegmentHeader::decode(&bytes, bytes.len() as u64).unwrap();
    assert!(h.is_sealed());
    assert_eq!(h.first_sequence, 1);
    assert_eq!(h.record_count, PER_SEGMENT);
    assert_eq!(
        h.end_offset,
        SEGMENT_HEADER_SIZE as u64 + PER_SEGMENT * FRAME as u64
    );
    assert_eq!(h.segment_size, SMALL_SEGMENT);
    let last = read_from(dir.path(), PER_SEGMENT).remove(0);
    assert_eq!(h.sealed_chain, last.chain);
    let bytes2 = std::fs::read(&segs[1]).unwrap();
    let h2 = SegmentHeader::decode(&bytes2, bytes2.len() as u64).unwrap();
    assert!(!h2.is_sealed());
    assert_eq!(h2.prev_chain, h.sealed_chain);
    assert_eq!(
        bytes2.len() as u64,
        SMALL_SEGMENT,
        "segments are preallocated"
    );
}

#[test]
fn a_reader_follows_a_live_writer_into_new_segments() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), config()).unwrap();
    append_range(&mut j, 1..=5);
    let mut r = JournalReader::open(dir.path(), 1).unwrap();
    let mut seen = Vec::new();
    while let Some(rec) = r.next_record().unwrap() {
        seen.push(rec.sequence);
    }
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    assert!(r.next_record().unwrap().is_none());
    append_range(&mut j, 6..=PER_SEGMENT * 2 + 3);
    while let Some(rec) = r.next_record().unwrap() {
        assert_record(&rec.to_owned_record(), seen.len() as u64 + 1);
        seen.push(rec.sequence);
    }
    assert_eq!(seen.len() as u64, PER_SEGMENT * 2 + 3);
    // A reader opened at the next sequence waits for it.
    let mut tail = j.reader(PER_SEGMENT * 2 + 4).unwrap();
    assert!(tail.next_record().unwrap().is_none());
    append_range(&mut j, PER_SEGMENT * 2 + 4..=PER_SEGMENT * 2 + 4);
    assert_eq!(
        tail.next_record().unwrap().unwrap().sequence,
        PER_SEGMENT * 2 + 4
    );
}

#[test]
fn a_reader_on_another_thread_sees_every_record_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), config()).unwrap();
    append_range(&mut j, 1..=1);
    let total = PER_SEGMENT * 6;
    let path = dir.path().to_path_buf();
    let reader = std::thread::spawn(move || {
        let mut r = JournalReader::open(&path, 1).unwrap();
        let mut next = 1;
        while next <= total {
            match r.next_record().unwrap() {
                Some(rec) => {
                    assert_record(&rec.to_owned_record(), next);
                    next += 1;
                }
                None => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
    });
    for seq in 2..=total {
        j.append(seq, timestamp(seq), kind(seq), &payload(seq, COMMAND))
            .unwrap();
        if seq % 7 == 0 {
            j.end_batch().unwrap();
        }
    }
    j.end_batch().unwrap();
    reader.join().unwrap();
}

#[test]
fn a_second_writer_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(dir.path(), config()).unwrap();
    assert!(matches!(
        Journal::open(dir.path(), config()),
        Err(Error::Locked { .. })
    ));
    drop(j);
    Journal::open(dir.path(), config()).unwrap();
}

#[test]
fn each_policy_moves_the_durable_sequence_when_it_promises_to() {
    for (policy, durable_after_batch) in [
        (DurabilityPolicy::None, true),
        (DurabilityPolicy::Write, true),
        (DurabilityPolicy::FsyncPerBatch, true),
        (DurabilityPolicy::FsyncEveryMillis(0), true),
        (DurabilityPolicy::FsyncEveryMillis(3_600_000), false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (mut j, _) = Journal::open(dir.path(), config().with_durability(policy)).unwrap();
        j.append(1, 0, 0, b"a").unwrap();
        j.append(2, 0, 0, b"b").unwrap();
        assert_eq!(
            j.durable_sequence(),
            None,
            "{policy:?}: nothing before end_batch"
        );
        j.end_batch().unwrap();
        let expect = durable_after_batch.then_some(2);
        assert_eq!(j.durable_sequence(), expect, "{policy:?}");
        assert!(!j.sync_if_due().unwrap() || policy == DurabilityPolicy::FsyncEveryMillis(0));
        j.sync().unwrap();
        assert_eq!(
            j.durable_sequence(),
            Some(2),
            "{policy:?}: sync makes all durable"
        );
    }
}

#[test]
fn an_invalid_configuration_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for size in [0, 4095, 4100, (1u64 << 32) + 8] {
        assert!(matches!(
            Journal::open(dir.path(), JournalConfig::default().with_segment_size(size)),
            Err(Error::InvalidConfig(_))
        ));
    }
}

#[test]
fn an_empty_directory_opens_as_an_empty_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (j, report) = Journal::open(dir.path().join("new/journal"), config()).unwrap();
    assert_eq!(report, RecoveryReport::default());
    assert_eq!(j.next_sequence(), None);
    assert_eq!(j.durable_sequence(), None);
    assert_eq!(j.first_sequence(), None);
    assert!(j.segment_paths().is_empty());
}

#[test]
fn the_chain_head_is_the_last_records_chain_value_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(dir.path(), config()).unwrap();
    append_range(&mut j, 1..=50);
    let head = j.chain_head();
    drop(j);
    assert_eq!(read_from(dir.path(), 50)[0].chain, head);
    let (j, report) = Journal::open(dir.path(), config()).unwrap();
    assert_eq!((j.chain_head(), report.chain_head), (head, head));
    assert_eq!(ringex_journal::verify(dir.path()).unwrap().chain_head, head);
}

#[test]
fn preparing_ahead_changes_nothing_a_reader_can_see() {
    let dir = tempfile::tempdir().unwrap();
    let segment: usize = 512 << 10;
    let (mut j, _) = Journal::open(dir.path(), config().with_segment_size(segment as u64)).unwrap();
    assert_eq!(j.prepare_ahead(1 << 20).unwrap(), 0, "no segment yet");
    assert_eq!(j.prepared_ahead(), 0);
    append_range(&mut j, 1..=3);
    // The writer mapped its first 256 KiB in, writing zeros to the whole
    // pages after its own first.
    let by_writer = (256 << 10) - 4096;
    assert_eq!(j.prepared_ahead(), by_writer);
    // Whole pages after those, up to the end of the segment.
    assert_eq!(j.prepare_ahead(8192).unwrap(), 8192);
    assert_eq!(j.prepared_ahead(), by_writer + 8192);
    assert_eq!(
        j.prepare_ahead(1 << 20).unwrap(),
        segment - 4096 - by_writer - 8192
    );
    assert_eq!(j.prepared_ahead(), segment - 4096);
    assert_eq!(j.prepare_ahead(1 << 20).unwrap(), 0);
    append_range(&mut j, 4..=12_000);
    assert!(j.segment_paths().len() > 1, "rolled");
    assert!(j.prepare_ahead(1 << 20).unwrap() > 0, "the new segment");
    append_range(&mut j, 12_001..=12_100);
    drop(j);
    assert_eq!(sequences(dir.path()), (1..=12_100).collect::<Vec<_>>());
    let (_, report) = Journal::open(dir.path(), config()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(ringex_journal::verify(dir.path()).unwrap().is_intact());
}
