//! The background pretoucher: the files it helps write are the files the
//! writer writes alone, it survives many rolls and a drop at any point, and
//! its failures are reported without stopping the writer.

use crate::support::*;
use ringex_journal::fault::{FaultOp, FaultyFs};
use ringex_journal::format::SEGMENT_HEADER_SIZE;
use ringex_journal::fs::FileSystem;
use ringex_journal::{
    DurabilityPolicy, Error, Journal, JournalConfig, PretouchConfig, PretouchStatus,
};
use std::path::Path;
use std::time::{Duration, Instant};

/// Small enough that the distance ahead spills into the next segment.
fn pretouch() -> PretouchConfig {
    PretouchConfig::default()
        .with_ahead(32 << 10)
        .with_chunk(8 << 10)
}

fn with_pretouch(cfg: JournalConfig) -> JournalConfig {
    cfg.with_pretouch(Some(pretouch()))
}

/// Waits (at most 10 s) until the pretoucher's status satisfies `done`.
fn wait_for<F: FileSystem>(
    j: &Journal<F>,
    what: &str,
    done: impl Fn(&PretouchStatus) -> bool,
) -> PretouchStatus {
    let start = Instant::now();
    loop {
        let status = j.pretouch_status().expect("a pretoucher");
        if done(&status) {
            return status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what}: {status:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn append_one<F: FileSystem>(j: &mut Journal<F>, seq: u64) -> ringex_journal::Result<()> {
    j.append(seq, timestamp(seq), kind(seq), &payload(seq, COMMAND))
}

/// Every file in `dir` with its bytes; the segment header's creation time
/// and header CRC (which covers it) zeroed, since they differ between runs.
fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name() != "LOCK")
        .map(|e| {
            let mut bytes = std::fs::read(e.path()).unwrap();
            if bytes.len() >= SEGMENT_HEADER_SIZE {
                bytes[12..16].fill(0);
                bytes[24..32].fill(0);
            }
            (e.file_name().into_string().unwrap(), bytes)
        })
        .collect();
    files.sort();
    files
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".pretouch"))
        .collect()
}

#[test]
fn segments_written_with_the_pretoucher_are_byte_identical_to_those_without() {
    for policy in [DurabilityPolicy::None, DurabilityPolicy::FsyncPerBatch] {
        let cfg = config().with_segment_size(64 << 10).with_durability(policy);
        let plain = tempfile::tempdir().unwrap();
        let touched = tempfile::tempdir().unwrap();
        let n = 3000; // 6 segments of 545 records
        {
            let (mut j, _) = Journal::open(plain.path(), cfg).unwrap();
            for batch in (1..=n).collect::<Vec<_>>().chunks(100) {
                append_range(&mut j, batch[0]..=*batch.last().unwrap());
            }
        }
        let fs = FaultyFs::new();
        {
            let (mut j, _) =
                Journal::open_with(fs.clone(), touched.path(), with_pretouch(cfg)).unwrap();
            for seq in 1..=n {
                if (seq - 1) % 545 == 0 {
                    // Let it prepare the segment, so the roll takes it over.
                    wait_for(&j, "next segment", |s| s.next_ready);
                }
                append_one(&mut j, seq).unwrap();
                if seq % 100 == 0 || seq == n {
                    j.end_batch().unwrap();
                }
            }
            assert!(j.take_pretouch_error().is_none());
            assert_eq!(j.durable_sequence(), Some(n));
        }
        // Every segment, the first included, was a prepared one, renamed.
        assert_eq!(fs.plan().count(FaultOp::Rename), 6, "{policy:?}");
        assert!(leftovers(touched.path()).is_empty(), "{policy:?}");
        assert_eq!(
            contents(plain.path()),
            contents(touched.path()),
            "{policy:?}"
        );
        let (_, report) = Journal::open(touched.path(), cfg).unwrap();
        assert!(report.is_clean(), "{report:?}");
        assert!(ringex_journal::verify(touched.path()).unwrap().is_intact());
    }
}

#[test]
fn the_pretoucher_keeps_pages_mapped_ahead_of_the_writer_and_sleeps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config().with_segment_size(1 << 20).with_pretouch(Some(
        PretouchConfig::default()
            .with_ahead(64 << 10)
            .with_chunk(16 << 10),
    ));
    let (mut j, _) = Journal::open(dir.path(), cfg).unwrap();
    // The first segment, prepared and mapped in before the first append.
    let status = wait_for(&j, "64 KiB ahead", |s| {
        s.populate_refused || s.populated_ahead >= 64 << 10
    });
    if status.populate_refused {
        return; // a kernel without MADV_POPULATE_WRITE: nothing to see
    }
    append_range(&mut j, 1..=10);
    // It stops at the distance (`ahead` past the writer's last reported
    // position, rounded up to a page) instead of running on.
    std::thread::sleep(Duration::from_millis(50));
    let status = j.pretouch_status().unwrap();
    assert!(
        (60 << 10..=(64 << 10) + 4096).contains(&status.populated_ahead),
        "{status:?}"
    );
    // The writer crosses two chunk boundaries: it follows.
    append_range(&mut j, 11..=400); // 48 KiB
    let status = wait_for(&j, "follows the writer", |s| s.populated_ahead >= 48 << 10);
    assert!(status.populated_ahead <= (64 << 10) + 4096, "{status:?}");
}

#[test]
fn the_pretoucher_sleeps_when_done_and_a_steady_writer_wakes_it_once_per_half_distance() {
    let dir = tempfile::tempdir().unwrap();
    let ahead = 1 << 20;
    let cfg = config().with_segment_size(64 << 20).with_pretouch(Some(
        PretouchConfig::default()
            .with_ahead(ahead)
            .with_chunk(16 << 10),
    ));
    let (mut j, _) = Journal::open(dir.path(), cfg).unwrap();
    let status = wait_for(&j, "the first segment, mapped in", |s| {
        s.populate_refused || s.populated_ahead >= ahead
    });
    if status.populate_refused {
        return;
    }
    // Idle: asleep, not spinning (nothing wakes it).
    let asleep = wait_for(&j, "asleep", |s| s.sleeps >= 1).sleeps;
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(j.pretouch_status().unwrap().sleeps, asleep);
    // 8 MiB of appends in batches that let it keep up: 512 chunk
    // boundaries crossed, but about 16 wake-ups (one per 512 KiB).
    let per_batch = (256 << 10) / FRAME as u64;
    let mut seq = 1;
    while (seq as usize) * FRAME < 8 << 20 {
        append_range(&mut j, seq..=seq + per_batch - 1);
        seq += per_batch;
        // (It sleeps with up to half the distance, less the writer's
        // last unreported chunk, still mapped in.)
        wait_for(&j, "keeping up", |s| s.populated_ahead >= ahead / 4);
    }
    let woken = j.pretouch_status().unwrap().sleeps - asleep;
    assert!((8..=64).contains(&woken), "{woken} wake-ups for 8 MiB");
}

#[test]
fn many_rolls_with_the_pretoucher_keep_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_pretouch(config()); // 4 KiB segments: a roll every 33 records
    let n = 200 * PER_SEGMENT;
    {
        let (mut j, _) = Journal::open(dir.path(), cfg).unwrap();
        for start in (1..=n).step_by(50) {
            append_range(&mut j, start..=(start + 49).min(n));
        }
        assert!(j.take_pretouch_error().is_none());
        assert_eq!(j.segment_paths().len(), 200);
    }
    assert!(leftovers(dir.path()).is_empty());
    assert_eq!(segments(dir.path()).len(), 200);
    assert_eq!(sequences(dir.path()), (1..=n).collect::<Vec<_>>());
    let (mut j, report) = Journal::open(dir.path(), cfg).unwrap();
    assert!(report.is_clean(), "{report:?}");
    append_range(&mut j, n + 1..=n + 100);
    drop(j);
    assert!(ringex_journal::verify(dir.path()).unwrap().is_intact());
    assert_eq!(sequences(dir.path()).len() as u64, n + 100);
}

#[test]
fn dropping_the_writer_at_any_point_stops_the_pretoucher_and_leaves_a_clean_journal() {
    let dir = tempfile::tempdir().unwrap();
    // Large enough that the pretoucher is busy when the writer goes.
    let cfg = config()
        .with_segment_size(2 << 20)
        .with_pretouch(Some(PretouchConfig::default().with_ahead(4 << 20)));
    let mut seq = 1;
    for round in 0..20u64 {
        let (mut j, report) = Journal::open(dir.path(), cfg).unwrap();
        assert!(report.is_clean(), "round {round}: {report:?}");
        // A different number of records each time, up to a roll or two.
        let count = 1 + round * round * 100;
        append_range(&mut j, seq..=seq + count - 1);
        seq += count;
        if round % 3 == 0 {
            std::thread::sleep(Duration::from_millis(round));
        }
        drop(j); // joins the thread and removes an untaken segment
        assert!(leftovers(dir.path()).is_empty(), "round {round}");
    }
    assert_eq!(sequences(dir.path()), (1..seq).collect::<Vec<_>>());
    assert!(ringex_journal::verify(dir.path()).unwrap().is_intact());
}

#[test]
fn a_prepared_segment_left_by_a_crash_is_ignored_and_removed_on_open() {
    let dir = journal_with(40);
    let left = dir.path().join("next-3.seg.pretouch");
    std::fs::write(&left, vec![0u8; 4096]).unwrap();
    assert!(ringex_journal::verify(dir.path()).unwrap().is_intact());
    assert_eq!(sequences(dir.path()), (1..=40).collect::<Vec<_>>());
    let (mut j, report) = Journal::open(dir.path(), config()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(!left.exists());
    append_range(&mut j, 41..=50);
}

#[test]
fn a_failed_preparation_is_reported_and_the_writer_rolls_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    // The pretoucher's first creation (of the first segment) fails.
    fs.plan().fail_nth_next(FaultOp::Create, 1);
    let (mut j, _) = Journal::open_with(fs.clone(), dir.path(), with_pretouch(config())).unwrap();
    let status = wait_for(&j, "a failure", |s| s.failures == 1);
    assert!(!status.next_ready);
    let err = j.take_pretouch_error().expect("reported");
    assert!(
        matches!(
            err,
            Error::Io {
                op: "pretouch: create segment",
                ..
            }
        ),
        "{err}"
    );
    assert!(j.take_pretouch_error().is_none(), "reported once");
    // The writer creates the first segment itself; after that roll the
    // pretoucher tries again and succeeds.
    append_range(&mut j, 1..=5);
    wait_for(&j, "retried after the roll", |s| s.next_ready);
    append_range(&mut j, 6..=5 * PER_SEGMENT);
    assert!(!j.is_stopped());
    assert_eq!(j.pretouch_status().unwrap().failures, 1);
    drop(j);
    assert!(leftovers(dir.path()).is_empty());
    assert_eq!(
        sequences(dir.path()),
        (1..=5 * PER_SEGMENT).collect::<Vec<_>>()
    );
}

#[test]
fn when_the_file_system_keeps_failing_the_writer_stops_as_without_the_pretoucher() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    // Every write-class operation fails: the pretoucher's `allocate`, then
    // the writer's own at its first roll.
    fs.plan().fail_from_next(FaultOp::Write, 1);
    let (mut j, _) = Journal::open_with(fs.clone(), dir.path(), with_pretouch(config())).unwrap();
    wait_for(&j, "a failure", |s| s.failures == 1);
    assert!(matches!(
        j.take_pretouch_error(),
        Some(Error::Io {
            op: "pretouch: preallocate segment",
            ..
        })
    ));
    assert!(matches!(
        append_one(&mut j, 1),
        Err(Error::Io {
            op: "preallocate segment",
            ..
        })
    ));
    assert!(j.is_stopped());
    assert!(matches!(append_one(&mut j, 1), Err(Error::Stopped { .. })));
    assert_eq!(j.durable_sequence(), None);
    drop(j);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn a_failure_while_taking_over_a_prepared_segment_stops_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let (mut j, _) = Journal::open_with(fs.clone(), dir.path(), with_pretouch(config())).unwrap();
    append_range(&mut j, 1..=PER_SEGMENT);
    wait_for(&j, "next segment", |s| s.next_ready);
    fs.plan().fail_nth_next(FaultOp::Rename, 1);
    assert!(matches!(
        append_one(&mut j, PER_SEGMENT + 1),
        Err(Error::Io {
            op: "rename prepared segment",
            ..
        })
    ));
    assert!(matches!(
        append_one(&mut j, PER_SEGMENT + 1),
        Err(Error::Stopped { .. })
    ));
    assert_eq!(j.durable_sequence(), Some(PER_SEGMENT));
    drop(j);
    // The prepared file never got its name; the next open removes it.
    let (_, report) = Journal::open(dir.path(), config()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(leftovers(dir.path()).is_empty());
    assert_eq!(sequences(dir.path()), (1..=PER_SEGMENT).collect::<Vec<_>>());
}

#[test]
fn bad_pretouch_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        PretouchConfig::default().with_chunk(0),
        PretouchConfig::default().with_chunk(1000),
        PretouchConfig::default().with_ahead(4096),
        PretouchConfig::default().with_ahead(2 << 30),
    ] {
        assert!(matches!(
            Journal::open(dir.path(), config().with_pretouch(Some(bad))),
            Err(Error::InvalidConfig(_))
        ));
    }
}
