//! `Pipeline::shutdown_within`: a bounded shutdown that stops the stages
//! even while a gateway still holds a `CommandSender`.

use crate::support::*;
use ringex_core::pipeline::{
    OverflowPolicy, Pipeline, PipelineConfig, ShutdownReport, SubmitError,
};
use ringex_core::records::*;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

fn snap_config(dir: &Path) -> PipelineConfig {
    config(dir).with_snapshot_on_shutdown(true)
}

/// Runs `shutdown_within` on another thread, so a hang fails the test
/// instead of stalling the suite.
fn shutdown_within(pipeline: Pipeline, grace: Duration) -> ShutdownReport {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(pipeline.shutdown_within(grace));
    });
    rx.recv_timeout(TIMEOUT)
        .expect("shutdown_within did not return")
}

/// A sender kept alive by a "gateway": the forced stop still journals and
/// applies every command published before it, writes the shutdown
/// snapshot, and the sender's later submissions answer `Closed`. A restart
/// continues from that snapshot.
#[test]
fn a_forced_shutdown_stops_while_a_sender_is_held_and_keeps_everything_published() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(snap_config(dir.path())).unwrap();
    let sink = pipeline.register_sink("client", 1 << 14, OverflowPolicy::Disconnect);
    let mut held = pipeline.sender();
    let mut cmds = market();
    cmds.extend(orders(100, 50));
    cmds.push(Command::state_digest());
    let last = *submit_all(&mut held, &cmds).last().unwrap();
    // Not waiting for the events: the shutdown must process what is in
    // the ring.
    let report = shutdown_within(pipeline, Duration::from_millis(20));
    assert!(report.forced);
    assert!(report.health.is_ok(), "{:?}", report.health);
    assert_eq!(report.metrics.journaled_sequence, last);
    assert_eq!(report.metrics.durable_sequence, last);
    let journaled = journaled_commands(dir.path());
    assert_eq!(journaled.len() as u64, last);
    let (replayed_events, replayed) = replay(&journaled);
    let engine = report.engine.expect("the engine comes back");
    assert_eq!(engine.state_digest(), replayed.state_digest());
    let snapshot = report.snapshot.expect("a shutdown snapshot");
    assert!(snapshot.exists());
    // The sink got every event, the digest last.
    let events = collect_until_digest(&sink, last);
    assert_eq!(events, replayed_events);

    assert_eq!(
        held.try_submit(Command::state_digest()),
        Err(SubmitError::Closed)
    );
    // The last sender's drop lets the stage threads exit.
    drop(held);

    let restarted = Pipeline::start(snap_config(dir.path())).unwrap();
    let startup = restarted.startup();
    assert_eq!(startup.next_sequence, last + 1);
    assert_eq!(startup.snapshot.as_ref().map(|s| s.sequence), Some(last));
    assert_eq!(startup.replayed, 0);
    let report = restarted.shutdown();
    assert!(report.health.is_ok());
    assert_eq!(
        report.engine.unwrap().state_digest(),
        replayed.state_digest()
    );
}

/// With every other sender dropped in time, `shutdown_within` is an
/// ordinary shutdown.
#[test]
fn shutdown_within_is_an_ordinary_shutdown_when_the_senders_are_gone() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.push(Command::state_digest());
    let last = *submit_all(&mut sender, &cmds).last().unwrap();
    let dropper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        drop(sender);
    });
    let report = shutdown_within(pipeline, TIMEOUT);
    dropper.join().unwrap();
    assert!(!report.forced);
    assert!(report.health.is_ok());
    assert_eq!(report.metrics.journaled_sequence, last);
    assert_eq!(journaled_commands(dir.path()).len() as u64, last);
}

/// A gateway thread submitting flat out while the forced stop happens:
/// every command it was told was accepted is journaled and applied, and
/// nothing else is: the slots that raced past the stop marker answered
/// `Closed`.
#[test]
fn commands_racing_a_forced_shutdown_are_either_kept_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let mut sender = pipeline.sender();
    let setup = market();
    submit_all(&mut sender, &setup);
    let (started_tx, started) = mpsc::channel();
    let gateway = std::thread::spawn(move || {
        let mut accepted = Vec::new();
        let mut attempts = 0u64;
        let mut i = 0u64;
        loop {
            attempts += 1;
            if attempts == 64 {
                let _ = started_tx.send(());
            }
            assert!(attempts < 5_000_000, "never saw Closed");
            match sender.try_submit(Command::state_digest()) {
                Ok(seq) => {
                    accepted.push(seq);
                    i += 1;
                }
                Err(SubmitError::Busy) => std::thread::yield_now(),
                Err(SubmitError::Closed) => break,
                Err(e) => panic!("unexpected {e:?}"),
            }
            if i % 256 == 0 {
                std::thread::yield_now();
            }
        }
        // Kept alive past the shutdown, as a slow gateway would.
        (accepted, sender)
    });
    started.recv_timeout(TIMEOUT).unwrap();
    let report = shutdown_within(pipeline, Duration::from_millis(5));
    assert!(report.forced);
    assert!(report.health.is_ok(), "{:?}", report.health);
    let (accepted, sender) = gateway.join().unwrap();
    let last = report.metrics.journaled_sequence;
    let journaled = journaled_commands(dir.path());
    assert_eq!(journaled.len() as u64, last);
    assert_eq!(
        accepted.last().copied().unwrap_or(setup.len() as u64),
        last,
        "the last accepted command is the last journaled one"
    );
    // Accepted sequences are consecutive after the set-up.
    for (i, seq) in accepted.iter().enumerate() {
        assert_eq!(*seq, setup.len() as u64 + 1 + i as u64);
    }
    assert_eq!(
        report.engine.unwrap().state_digest(),
        replay(&journaled).1.state_digest()
    );
    drop(sender);
}
