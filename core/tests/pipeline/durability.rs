use crate::support::*;
use ringex_core::pipeline::{OverflowPolicy, Pipeline};
use ringex_core::records::*;
use ringex_journal::DurabilityPolicy;

/// Under `FsyncPerBatch`, every event a sink receives belongs to a command
/// the journal has already made durable.
#[test]
fn no_event_reaches_a_sink_before_its_command_is_fsynced() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline =
        Pipeline::start(config(dir.path()).with_durability(DurabilityPolicy::FsyncPerBatch))
            .unwrap();
    let metrics = pipeline.metrics();
    let sink = pipeline.register_sink("client", 1 << 16, OverflowPolicy::Disconnect);

    let mut cmds = market();
    cmds.extend(orders(100, 200));
    cmds.push(Command::state_digest());
    let last = cmds.len() as u64;
    let checker = std::thread::spawn(move || {
        let mut checked = 0u64;
        loop {
            let event = sink.receiver.recv_timeout(TIMEOUT).expect("event");
            // Read after receiving: the journaler stored it before the
            // engine could see the command.
            let durable = metrics.durable_sequence();
            assert!(
                durable >= event.sequence,
                "event of command {} published while only {durable} was durable",
                event.sequence
            );
            checked += 1;
            if event.kind == EventKind::StateDigest as u8 && event.sequence == last {
                return checked;
            }
        }
    });
    // Two producers, so batches of several commands form.
    let (head, tail) = cmds.split_at(cmds.len() / 2);
    let mut first = pipeline.sender();
    submit_all(&mut first, head);
    let tail = tail.to_vec();
    let mut second = pipeline.sender();
    std::thread::spawn(move || submit_all(&mut second, &tail))
        .join()
        .unwrap();
    let checked = checker.join().unwrap();
    assert!(checked > cmds.len() as u64);
    drop(first);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok());
    assert_eq!(report.metrics.durable_sequence, last);
    assert_eq!(journaled_commands(dir.path()).len() as u64, last);
}

/// Polls `done` every millisecond until it holds; panics after `TIMEOUT`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    start.elapsed()
}

use std::time::Duration;

/// Under `FsyncEveryMillis(N)`, a batch that arrives less than N ms after
/// the previous sync is not synced by its `end_batch`; with the input ring
/// idle afterwards, the journaler's idle work syncs it once it is due, so
/// no command stays non-durable because no other command followed it.
/// Checked through the journal's positions and the `msync` count of the
/// file system, not through timing (the wait bound is generous).
#[test]
fn an_idle_journaler_syncs_the_last_batch_when_its_interval_is_due() {
    use ringex_journal::fault::{FaultOp, FaultyFs};
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let pipeline = Pipeline::start_with(
        fs.clone(),
        config(dir.path()).with_durability(DurabilityPolicy::FsyncEveryMillis(100)),
    )
    .unwrap();
    let metrics = pipeline.metrics();
    let sink = pipeline.register_sink("client", 1 << 12, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.push(Command::state_digest());
    let mut last = *submit_all(&mut sender, &cmds).last().unwrap();
    collect_until_digest(&sink, last);
    wait_until("the market to become durable", || {
        metrics.durable_sequence() == last
    });
    // Rounds of one command each, sent right after the previous sync: its
    // own `end_batch` normally finds the interval not yet due.
    let mut synced_while_idle = 0;
    for _ in 0..3 {
        let syncs_before = fs.plan().count(FaultOp::Sync);
        last = sender.try_submit(Command::state_digest()).unwrap();
        collect_until_digest(&sink, last);
        if metrics.durable_sequence() < last {
            synced_while_idle += 1;
        }
        let waited = wait_until("the idle journaler to sync the last batch", || {
            metrics.durable_sequence() == last
        });
        assert!(
            fs.plan().count(FaultOp::Sync) > syncs_before,
            "durable moved without an msync (waited {waited:?})"
        );
    }
    assert_eq!(metrics.journaled_sequence(), last);
    eprintln!("{synced_while_idle} of 3 batches were synced by the idle journaler");
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok());
    assert_eq!(report.metrics.durable_sequence, last);
}

/// While the input ring is idle the journaler prepares the active segment
/// ahead of its write position (`pwrite`s of zeros through the file
/// system), up to the end of the small test segment.
#[test]
fn an_idle_journaler_prepares_the_active_segment_ahead() {
    use ringex_journal::fault::{FaultOp, FaultyFs};
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let pipeline = Pipeline::start_with(fs.clone(), config(dir.path())).unwrap();
    let writes_at_start = fs.plan().count(FaultOp::Write);
    let sink = pipeline.register_sink("client", 1 << 12, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.push(Command::state_digest());
    let last = *submit_all(&mut sender, &cmds).last().unwrap();
    collect_until_digest(&sink, last);
    // Creating the segment writes twice (allocate, header); appends go
    // through the mapping. Preparing the rest of the 1 MiB test segment
    // takes 15 more `pwrite`s of 64 KiB: only idle work makes them.
    wait_until("idle preparation of the segment", || {
        fs.plan().count(FaultOp::Write) >= writes_at_start + 2 + 12
    });
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok());
    assert_eq!(journaled_commands(dir.path()).len() as u64, last);
}

/// The publisher does for the output journal what the journaler does for
/// the input journal: while the output ring is idle it prepares the active
/// segment ahead of its write position; with `JournalPretouch::Off` it
/// prepares nothing. Either way every event is in the output journal.
#[test]
fn an_idle_publisher_prepares_the_output_segment_ahead_unless_pretouch_is_off() {
    use ringex_core::pipeline::JournalPretouch;
    use ringex_journal::fault::{FaultOp, FaultyFs};
    use ringex_journal::fs::StdFs;
    for pretouch in [JournalPretouch::Idle, JournalPretouch::Off] {
        let dir = tempfile::tempdir().unwrap();
        let output_fs = FaultyFs::new();
        let config = config(dir.path()).with_journal_pretouch(pretouch);
        let pipeline = Pipeline::start_with_output_fs(StdFs, output_fs.clone(), config).unwrap();
        let writes_at_start = output_fs.plan().count(FaultOp::Write);
        let sink = pipeline.register_sink("client", 1 << 12, OverflowPolicy::Disconnect);
        let mut sender = pipeline.sender();
        let mut cmds = market();
        cmds.push(Command::state_digest());
        let last = *submit_all(&mut sender, &cmds).last().unwrap();
        let events = collect_until_digest(&sink, last).len() as u64;
        // As for the input journal: creating the segment writes twice;
        // preparing the rest of the 1 MiB segment takes 15 more `pwrite`s.
        if pretouch == JournalPretouch::Idle {
            wait_until("idle preparation of the output segment", || {
                output_fs.plan().count(FaultOp::Write) >= writes_at_start + 2 + 12
            });
        } else {
            std::thread::sleep(std::time::Duration::from_millis(100)); // idle polls
            assert_eq!(
                output_fs.plan().count(FaultOp::Write),
                writes_at_start + 2 + WRITER_ZEROES
            );
        }
        drop(sender);
        let report = pipeline.shutdown();
        assert!(report.health.is_ok(), "{pretouch:?}: {:?}", report.health);
        assert_eq!(
            report.metrics.output_journaled_sequence, events,
            "{pretouch:?}"
        );
    }
}

/// `pwrite`s of zeros a journal writer makes by itself in a fresh segment
/// when its first append maps the first 256 KiB in: the 63 whole pages
/// after its own, in 64 KiB writes.
const WRITER_ZEROES: u64 = 4;

/// `JournalPretouch::Off`: the idle journaler prepares nothing (only the
/// segment's creation writes and the writer's own zeroes).
#[test]
fn with_pretouch_off_an_idle_journaler_prepares_nothing() {
    use ringex_core::pipeline::JournalPretouch;
    use ringex_journal::fault::{FaultOp, FaultyFs};
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let config = config(dir.path()).with_journal_pretouch(JournalPretouch::Off);
    let pipeline = Pipeline::start_with(fs.clone(), config).unwrap();
    let writes_at_start = fs.plan().count(FaultOp::Write);
    let sink = pipeline.register_sink("client", 1 << 12, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.push(Command::state_digest());
    let last = *submit_all(&mut sender, &cmds).last().unwrap();
    collect_until_digest(&sink, last);
    std::thread::sleep(std::time::Duration::from_millis(100)); // idle polls
    assert_eq!(
        fs.plan().count(FaultOp::Write),
        writes_at_start + 2 + WRITER_ZEROES
    );
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok());
    assert_eq!(journaled_commands(dir.path()).len() as u64, last);
}

/// `JournalPretouch::Thread`: the journaler rolls into segments the
/// pretoucher prepared (each taken over by a rename), journals every
/// command, and a restart replays them to the same state.
#[test]
fn with_the_pretoucher_thread_the_journaler_rolls_into_prepared_segments() {
    use ringex_core::pipeline::JournalPretouch;
    use ringex_journal::fault::{FaultOp, FaultyFs};
    use ringex_journal::PretouchConfig;
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let mut config = config(dir.path()).with_journal_pretouch(JournalPretouch::Thread(
        PretouchConfig::default()
            .with_ahead(128 << 10)
            .with_chunk(16 << 10),
    ));
    config.journal = config.journal.with_segment_size(64 << 10); // 545 commands
    let pipeline = Pipeline::start_with(fs.clone(), config.clone()).unwrap();
    let sink = pipeline.register_sink("client", 1 << 14, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.extend(orders(100, 3000));
    cmds.push(Command::state_digest());
    let last = *submit_all(&mut sender, &cmds).last().unwrap();
    collect_until_digest(&sink, last);
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok(), "{:?}", report.health);
    assert_eq!(report.health.pretouch_error, None);
    let digest = report.engine.unwrap().state_digest();
    // The first segment at least was prepared while the pipeline started.
    assert!(fs.plan().count(FaultOp::Rename) >= 1);
    let journaled = journaled_commands(dir.path());
    assert_eq!(journaled.len() as u64, last);
    assert!(journaled.len() > 5 * 545);
    let leftovers = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".pretouch")
        })
        .count();
    assert_eq!(leftovers, 0, "the untaken segment is removed at close");
    let pipeline = Pipeline::start(config).unwrap();
    assert_eq!(pipeline.startup().replayed, last);
    assert_eq!(pipeline.startup().digest_after_replay, digest);
    assert!(pipeline.shutdown().health.is_ok());
}

/// A failure of the pretoucher thread is reported in `Health` and stops
/// nothing: the journaler creates the segment itself.
#[test]
fn a_pretoucher_failure_is_reported_and_the_pipeline_carries_on() {
    use ringex_core::pipeline::JournalPretouch;
    use ringex_journal::fault::{FaultOp, FaultyFs};
    use ringex_journal::PretouchConfig;
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    // The first creation is the pretoucher's (of the first segment), made
    // as soon as the journal opens.
    fs.plan().fail_nth_next(FaultOp::Create, 1);
    let config = config(dir.path())
        .with_journal_pretouch(JournalPretouch::Thread(PretouchConfig::default()));
    let pipeline = Pipeline::start_with(fs.clone(), config).unwrap();
    // The idle journaler passes it on.
    wait_until("the pretoucher's failure in Health", || {
        pipeline.health().pretouch_error.is_some()
    });
    let health = pipeline.health();
    assert!(health.is_ok(), "{health:?}");
    let error = health.pretouch_error.unwrap();
    assert!(error.contains("pretouch: create segment"), "{error}");
    let sink = pipeline.register_sink("client", 1 << 12, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.push(Command::state_digest());
    let last = *submit_all(&mut sender, &cmds).last().unwrap();
    collect_until_digest(&sink, last);
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok(), "{:?}", report.health);
    assert_eq!(journaled_commands(dir.path()).len() as u64, last);
}
