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
