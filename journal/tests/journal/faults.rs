//! I/O failures injected through the file-system trait surface as errors and
//! stop the writer; what was durable stays durable.

use crate::support::*;
use ringex_journal::fault::{FaultOp, FaultyFs};
use ringex_journal::snapshot::SnapshotDefect;
use ringex_journal::{DurabilityPolicy, Error, Journal, SnapshotStore};
use std::path::Path;

fn open_faulty(dir: &Path, policy: DurabilityPolicy) -> (FaultyFs, Journal<FaultyFs>) {
    let fs = FaultyFs::new();
    let (j, _) = Journal::open_with(fs.clone(), dir, config().with_durability(policy)).unwrap();
    (fs, j)
}

fn append(j: &mut Journal<FaultyFs>, seq: u64) -> ringex_journal::Result<()> {
    j.append(seq, timestamp(seq), kind(seq), &payload(seq, COMMAND))
}

/// After a failure every writing call is refused with `Stopped`.
fn assert_stopped(j: &mut Journal<FaultyFs>, next: u64) {
    assert!(j.is_stopped());
    assert!(matches!(append(j, next), Err(Error::Stopped { .. })));
    assert!(matches!(j.end_batch(), Err(Error::Stopped { .. })));
    assert!(matches!(j.sync(), Err(Error::Stopped { .. })));
    assert!(matches!(j.sync_if_due(), Err(Error::Stopped { .. })));
}

#[test]
fn a_failed_fsync_at_the_end_of_a_batch_is_reported_and_stops_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, mut j) = open_faulty(dir.path(), DurabilityPolicy::FsyncPerBatch);
    for seq in 1..=3 {
        append(&mut j, seq).unwrap();
    }
    j.end_batch().unwrap();
    assert_eq!(j.durable_sequence(), Some(3));
    append(&mut j, 4).unwrap();
    fs.plan().fail_nth_next(FaultOp::Sync, 1);
    let err = j.end_batch().unwrap_err();
    assert!(matches!(err, Error::Io { op: "msync", .. }), "{err}");
    assert!(err.to_string().contains("injected fault"), "{err}");
    assert_eq!(
        j.durable_sequence(),
        Some(3),
        "the failed batch is not durable"
    );
    assert_stopped(&mut j, 5);
    // The stop names the first failure.
    let stopped = j.end_batch().unwrap_err().to_string();
    assert!(
        stopped.contains("msync") && stopped.contains("reopen"),
        "{stopped}"
    );
    drop(j);
    // Reopening recovers at least everything that was durable.
    let (_, report) = Journal::open(dir.path(), config()).unwrap();
    assert!(report.last_sequence >= Some(3));
}

#[test]
fn a_failed_async_flush_under_the_write_policy_stops_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, mut j) = open_faulty(dir.path(), DurabilityPolicy::Write);
    append(&mut j, 1).unwrap();
    fs.plan().fail_nth_next(FaultOp::Sync, 1);
    assert!(matches!(
        j.end_batch(),
        Err(Error::Io {
            op: "msync async",
            ..
        })
    ));
    assert_eq!(j.durable_sequence(), None);
    assert_stopped(&mut j, 2);
}

#[test]
fn a_failed_write_while_rolling_stops_the_journal_and_recovery_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, mut j) = open_faulty(dir.path(), DurabilityPolicy::None);
    for seq in 1..=PER_SEGMENT {
        append(&mut j, seq).unwrap();
    }
    j.end_batch().unwrap();
    // The next append rolls: preallocating the new segment fails.
    fs.plan().fail_nth_next(FaultOp::Write, 1);
    let err = append(&mut j, PER_SEGMENT + 1).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: "preallocate segment",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(j.next_sequence(), Some(PER_SEGMENT + 1));
    assert_stopped(&mut j, PER_SEGMENT + 1);
    drop(j);
    let (mut j, report) = Journal::open(dir.path(), config()).unwrap();
    assert_eq!(
        report.removed_incomplete_segment,
        Some(segment_path(dir.path(), PER_SEGMENT + 1))
    );
    assert_eq!(report.last_sequence, Some(PER_SEGMENT));
    append_range(&mut j, PER_SEGMENT + 1..=PER_SEGMENT + 2);
    drop(j);
    assert!(ringex_journal::verify(dir.path()).unwrap().is_intact());
}

#[test]
fn a_failed_header_write_while_rolling_stops_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, mut j) = open_faulty(dir.path(), DurabilityPolicy::None);
    for seq in 1..=PER_SEGMENT {
        append(&mut j, seq).unwrap();
    }
    fs.plan().fail_nth_next(FaultOp::Write, 2);
    assert!(matches!(
        append(&mut j, PER_SEGMENT + 1),
        Err(Error::Io {
            op: "write segment header",
            ..
        })
    ));
    assert_stopped(&mut j, PER_SEGMENT + 1);
    drop(j);
    let (_, report) = Journal::open(dir.path(), config()).unwrap();
    assert!(report.removed_incomplete_segment.is_some());
    assert_eq!(report.last_sequence, Some(PER_SEGMENT));
}

#[test]
fn a_failed_segment_creation_or_mapping_stops_the_journal() {
    for (nth, op) in [(1, "create segment"), (2, "mmap segment")] {
        let dir = tempfile::tempdir().unwrap();
        let (fs, mut j) = open_faulty(dir.path(), DurabilityPolicy::None);
        fs.plan().fail_nth_next(FaultOp::Create, nth);
        let err = append(&mut j, 1).unwrap_err();
        assert!(matches!(&err, Error::Io { op: o, .. } if *o == op), "{err}");
        assert_stopped(&mut j, 1);
    }
}

#[test]
fn a_failed_fsync_of_a_new_segment_or_its_directory_stops_the_journal() {
    for (nth, op) in [(2, "fsync new segment"), (3, "fsync directory")] {
        let dir = tempfile::tempdir().unwrap();
        let (fs, mut j) = open_faulty(dir.path(), DurabilityPolicy::FsyncPerBatch);
        for seq in 1..=PER_SEGMENT {
            append(&mut j, seq).unwrap();
        }
        // Sync #1 seals the old segment, #2 fsyncs the new file, #3 the directory.
        fs.plan().fail_nth_next(FaultOp::Sync, nth);
        let err = append(&mut j, PER_SEGMENT + 1).unwrap_err();
        assert!(matches!(&err, Error::Io { op: o, .. } if *o == op), "{err}");
        assert_stopped(&mut j, PER_SEGMENT + 1);
        drop(j);
        let (_, report) = Journal::open(dir.path(), config()).unwrap();
        assert_eq!(report.last_sequence, Some(PER_SEGMENT));
    }
}

#[test]
fn a_failed_seal_stops_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let (fs, mut j) = open_faulty(dir.path(), DurabilityPolicy::FsyncPerBatch);
    for seq in 1..=PER_SEGMENT {
        append(&mut j, seq).unwrap();
    }
    fs.plan().fail_nth_next(FaultOp::Sync, 1);
    assert!(matches!(
        append(&mut j, PER_SEGMENT + 1),
        Err(Error::Io {
            op: "msync (seal segment)",
            ..
        })
    ));
    assert_stopped(&mut j, PER_SEGMENT + 1);
}

#[test]
fn a_failure_while_truncating_a_torn_tail_fails_the_open() {
    let dir = journal_with(10);
    set_len(&segment_path(dir.path(), 1), record_offset(10) + 7);
    let fs = FaultyFs::new();
    fs.plan().fail_nth_next(FaultOp::Write, 1);
    let err = Journal::open_with(fs.clone(), dir.path(), config()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: "truncate segment",
                ..
            }
        ),
        "{err}"
    );
    // Nothing was lost: a later open repairs it.
    let (_, report) = Journal::open_with(fs, dir.path(), config()).unwrap();
    assert_eq!(report.last_sequence, Some(9));
}

#[test]
fn a_failed_rename_leaves_the_previous_snapshot_the_newest_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let store = SnapshotStore::open_with(fs.clone(), dir.path()).unwrap();
    store.write(100, b"state at 100").unwrap();
    fs.plan().fail_nth_next(FaultOp::Rename, 1);
    let err = store.write(200, b"state at 200").unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: "rename snapshot",
                ..
            }
        ),
        "{err}"
    );
    let load = store.load_newest_valid().unwrap();
    let snap = load.snapshot.unwrap();
    assert_eq!(
        (snap.sequence, snap.bytes.as_slice()),
        (100, &b"state at 100"[..])
    );
    assert!(load.skipped.is_empty(), "the temporary file was removed");
}

#[test]
fn a_failed_snapshot_fsync_or_write_leaves_the_previous_snapshot() {
    for op in [FaultOp::Sync, FaultOp::Write] {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new();
        let store = SnapshotStore::open_with(fs.clone(), dir.path()).unwrap();
        store.write(100, b"old").unwrap();
        fs.plan().fail_nth_next(op, 1);
        assert!(store.write(200, b"new").is_err());
        let snap = store.load_newest_valid().unwrap().snapshot.unwrap();
        assert_eq!(snap.sequence, 100, "{op:?}");
    }
}

#[test]
fn a_leftover_temporary_snapshot_is_skipped_and_retention_removes_it() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let store = SnapshotStore::open_with(fs.clone(), dir.path()).unwrap();
    store.write(100, b"old").unwrap();
    // The rename fails and so does the clean-up.
    fs.plan().fail_nth_next(FaultOp::Rename, 1);
    fs.plan().fail_nth_next(FaultOp::Remove, 1);
    assert!(store.write(200, b"new").is_err());
    let load = store.load_newest_valid().unwrap();
    assert_eq!(load.snapshot.unwrap().sequence, 100);
    assert_eq!(load.skipped.len(), 1);
    assert_eq!(load.skipped[0].defect, SnapshotDefect::Incomplete);
    let report = store
        .retain(ringex_journal::RetentionPolicy { keep_snapshots: 1 })
        .unwrap();
    assert_eq!(report.removed_snapshots, vec![load.skipped[0].path.clone()]);
    assert!(store.load_newest_valid().unwrap().skipped.is_empty());
}

#[test]
fn a_failed_write_while_preparing_ahead_stops_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    // Larger than the 256 KiB the writer maps in (and zeroes) by itself.
    let cfg = config().with_segment_size(1 << 20);
    let (mut j, _) = Journal::open_with(fs.clone(), dir.path(), cfg).unwrap();
    append(&mut j, 1).unwrap();
    fs.plan().fail_nth_next(FaultOp::Write, 1);
    assert!(matches!(
        j.prepare_ahead(1 << 16),
        Err(Error::Io {
            op: "prepare segment",
            ..
        })
    ));
    assert_stopped(&mut j, 2);
    assert!(matches!(j.prepare_ahead(1), Err(Error::Stopped { .. })));
}
