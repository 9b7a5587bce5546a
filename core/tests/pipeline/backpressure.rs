use crate::support::*;
use ringex_core::pipeline::{OverflowPolicy, Pipeline, StageGate, SubmitError};
use ringex_core::records::*;

/// The journaler is held at a gate, so nothing leaves the ring: 64
/// commands fill a ring of 64 (the smallest multi-producer ring), the 65th
/// is refused at once.
#[test]
fn a_full_input_ring_answers_busy_without_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let gate = StageGate::closed();
    let mut config = config(dir.path());
    config.input_ring_size = 64;
    config.journaler_gate = Some(gate.clone());
    let pipeline = Pipeline::start(config).unwrap();
    let sink = pipeline.register_sink("gateway", 1024, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();

    let mut cmds = market();
    cmds.extend(orders(100, 64 - cmds.len() as u64 + 10));
    for (i, cmd) in cmds[..64].iter().enumerate() {
        assert_eq!(sender.try_submit(*cmd), Ok(i as u64 + 1));
    }
    let started = std::time::Instant::now();
    assert_eq!(sender.try_submit(cmds[64]), Err(SubmitError::Busy));
    assert_eq!(sender.try_submit(cmds[64]), Err(SubmitError::Busy));
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    let metrics = pipeline.metrics();
    assert_eq!(metrics.snapshot().busy, 2);
    assert_eq!(metrics.snapshot().applied, 0);
    assert_eq!(metrics.journaled_sequence(), 0);

    gate.open();
    let mut rest = cmds[64..].to_vec();
    rest.push(Command::state_digest());
    let seqs = submit_all(&mut sender, &rest);
    assert_eq!(seqs[0], 65, "a refused command takes no sequence number");
    let received = collect_until_digest(&sink, *seqs.last().unwrap());
    assert!(received.iter().any(|e| e.kind == EventKind::Trade as u8));
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok());
    assert_eq!(journaled_commands(dir.path()).len(), cmds.len() + 1);
}

#[test]
fn after_shutdown_starts_senders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let mut sender = pipeline.sender();
    assert_eq!(sender.try_submit(Command::timer_tick()), Ok(1));
    let waiter = std::thread::spawn(move || pipeline.shutdown());
    // Shutdown waits for this sender; meanwhile it is refused.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while sender.try_submit(Command::timer_tick()) != Err(SubmitError::Closed) {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    drop(sender);
    let report = waiter.join().unwrap();
    assert!(report.health.closed);
    // Ticks accepted before the close were journaled and applied.
    assert_eq!(report.metrics.applied, report.metrics.submitted);
    assert_eq!(
        journaled_commands(dir.path()).len() as u64,
        report.metrics.submitted
    );
}
