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
