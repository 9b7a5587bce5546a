//! Snapshots: atomic writes, skipping corrupt ones with a reason, retention
//! of snapshots and of the segments they cover.

use crate::support::*;
use ringex_journal::snapshot::{snapshot_file_name, SnapshotDefect, SNAPSHOT_HEADER_SIZE};
use ringex_journal::{
    load_newest_valid_snapshot, write_snapshot, Journal, RetentionPolicy, SnapshotStore,
};

#[test]
fn a_snapshot_round_trips_with_its_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let state: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let path = write_snapshot(dir.path(), 42, &state).unwrap();
    assert_eq!(path, dir.path().join(snapshot_file_name(42)));
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        (SNAPSHOT_HEADER_SIZE + state.len()) as u64
    );
    let load = load_newest_valid_snapshot(dir.path()).unwrap();
    assert!(load.skipped.is_empty());
    let snap = load.snapshot.unwrap();
    assert_eq!((snap.sequence, snap.bytes), (42, state));
    assert!(snap.created_unix_nanos > 0);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"RGXSNAP\0");
}

#[test]
fn an_empty_directory_has_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let load = load_newest_valid_snapshot(dir.path()).unwrap();
    assert!(load.snapshot.is_none() && load.skipped.is_empty());
}

#[test]
fn corrupt_snapshots_are_skipped_newest_first_with_their_reasons() {
    let dir = tempfile::tempdir().unwrap();
    for seq in [10, 20, 30, 40, 50] {
        write_snapshot(dir.path(), seq, format!("state {seq}").as_bytes()).unwrap();
    }
    let p = |seq| dir.path().join(snapshot_file_name(seq));
    flip_byte(&p(50), SNAPSHOT_HEADER_SIZE as u64 + 2); // payload
    set_len(&p(40), SNAPSHOT_HEADER_SIZE as u64 + 3); // cut short
    flip_byte(&p(30), 17); // header
    let load = load_newest_valid_snapshot(dir.path()).unwrap();
    assert_eq!(load.snapshot.unwrap().sequence, 20);
    let reasons: Vec<_> = load
        .skipped
        .iter()
        .map(|s| (s.path.clone(), s.defect.clone()))
        .collect();
    assert_eq!(reasons[0], (p(50), SnapshotDefect::PayloadCrc));
    assert!(
        matches!(reasons[1], (ref q, SnapshotDefect::LengthMismatch { header: 8, file: 3 }) if *q == p(40))
    );
    assert_eq!(reasons[2], (p(30), SnapshotDefect::HeaderCrc));
    assert_eq!(reasons.len(), 3);
    // Reasons read well.
    assert_eq!(
        SnapshotDefect::PayloadCrc.to_string(),
        "payload CRC mismatch"
    );
}

#[test]
fn a_snapshot_renamed_to_another_sequence_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_snapshot(dir.path(), 5, b"five").unwrap();
    std::fs::rename(
        dir.path().join(snapshot_file_name(5)),
        dir.path().join(snapshot_file_name(9)),
    )
    .unwrap();
    let load = load_newest_valid_snapshot(dir.path()).unwrap();
    assert!(load.snapshot.is_none());
    assert_eq!(
        load.skipped[0].defect,
        SnapshotDefect::SequenceMismatch { name: 9, header: 5 }
    );
}

#[test]
fn writing_a_snapshot_twice_at_one_sequence_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    write_snapshot(dir.path(), 5, b"first").unwrap();
    write_snapshot(dir.path(), 5, b"second").unwrap();
    let snap = load_newest_valid_snapshot(dir.path())
        .unwrap()
        .snapshot
        .unwrap();
    assert_eq!(snap.bytes, b"second");
}

#[test]
fn retention_keeps_the_newest_snapshots_and_removes_the_segments_they_cover() {
    let jdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(sdir.path()).unwrap();
    let (mut j, _) = Journal::open(jdir.path(), config()).unwrap();
    append_range(&mut j, 1..=PER_SEGMENT * 5);
    for seq in [
        5,
        PER_SEGMENT + 2,
        PER_SEGMENT * 2,
        PER_SEGMENT * 3 + 1,
        PER_SEGMENT * 4,
    ] {
        store.write(seq, &seq.to_le_bytes()).unwrap();
    }
    // The newest is corrupt: it does not count among the kept.
    flip_byte(&sdir.path().join(snapshot_file_name(PER_SEGMENT * 4)), 50);
    let report = store
        .apply_retention(&mut j, RetentionPolicy { keep_snapshots: 2 })
        .unwrap();
    assert_eq!(report.oldest_kept, Some(PER_SEGMENT * 2));
    assert_eq!(
        report.removed_snapshots,
        vec![
            sdir.path().join(snapshot_file_name(5)),
            sdir.path().join(snapshot_file_name(PER_SEGMENT + 2)),
        ]
    );
    // Segments 1..=PER and PER+1..=2PER are covered by the snapshot at 2PER.
    assert_eq!(
        report.removed_segments,
        vec![
            segment_path(jdir.path(), 1),
            segment_path(jdir.path(), PER_SEGMENT + 1)
        ]
    );
    assert_eq!(j.first_sequence(), Some(PER_SEGMENT * 2 + 1));
    // Replay from the oldest kept snapshot still works, and the journal reopens.
    let records = read_from(jdir.path(), PER_SEGMENT * 2 + 1);
    assert_eq!(records.len() as u64, PER_SEGMENT * 3);
    append_range(&mut j, PER_SEGMENT * 5 + 1..=PER_SEGMENT * 5 + 1);
    drop(j);
    let (_, reopened) = Journal::open(jdir.path(), config()).unwrap();
    assert!(reopened.is_clean());
    assert_eq!(reopened.first_sequence, Some(PER_SEGMENT * 2 + 1));
    assert!(ringex_journal::verify(jdir.path()).unwrap().is_intact());
}

#[test]
fn retention_never_removes_the_active_segment_or_acts_without_a_valid_snapshot() {
    let jdir = tempfile::tempdir().unwrap();
    let sdir = tempfile::tempdir().unwrap();
    let store = SnapshotStore::open(sdir.path()).unwrap();
    let (mut j, _) = Journal::open(jdir.path(), config()).unwrap();
    append_range(&mut j, 1..=PER_SEGMENT * 2);
    let none = store
        .apply_retention(&mut j, RetentionPolicy::default())
        .unwrap();
    assert_eq!(none.oldest_kept, None);
    assert!(none.removed_segments.is_empty());
    store.write(PER_SEGMENT * 2, b"all").unwrap();
    let report = store
        .apply_retention(&mut j, RetentionPolicy::default())
        .unwrap();
    assert_eq!(report.removed_segments, vec![segment_path(jdir.path(), 1)]);
    assert_eq!(segments(jdir.path()).len(), 1);
}
