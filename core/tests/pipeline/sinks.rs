use crate::support::*;
use ringex_core::pipeline::{OverflowPolicy, Pipeline};
use ringex_core::records::*;

#[test]
fn a_slow_sink_is_degraded_or_cut_off_while_a_fast_sink_gets_everything() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let fast = pipeline.register_sink("fast", 1 << 16, OverflowPolicy::Disconnect);
    let lossy = pipeline.register_sink("lossy", 4, OverflowPolicy::DropNewest);
    let cut = pipeline.register_sink("cut", 4, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();

    let mut cmds = market();
    cmds.extend(orders(100, 100));
    cmds.push(Command::state_digest());
    let last = *submit_all(&mut sender, &cmds).last().unwrap();
    let received = collect_until_digest(&fast, last);
    drop(sender);
    let report = pipeline.shutdown();
    let total = received.len() as u64;
    assert!(total > 8);
    assert_eq!(report.metrics.events, total);

    // The fast sink saw every event; the journal replays to them.
    let (replayed, _) = replay(&journaled_commands(dir.path()));
    assert_eq!(replayed, received);
    assert_eq!((fast.stats.delivered(), fast.stats.dropped()), (total, 0));

    // The lossy sink kept its first four and lost the rest.
    assert_eq!(lossy.stats.delivered(), 4);
    assert_eq!(lossy.stats.dropped(), total - 4);
    assert!(!lossy.stats.is_disconnected());
    let kept: Vec<Event> = lossy.receiver.try_iter().collect();
    assert_eq!(kept, received[..4]);

    // The cut sink was disconnected at its first overflow.
    assert!(cut.stats.is_disconnected());
    assert_eq!((cut.stats.delivered(), cut.stats.dropped()), (4, 1));
    let kept: Vec<Event> = cut.receiver.iter().collect(); // ends: disconnected
    assert_eq!(kept, received[..4]);
    assert_eq!(report.metrics.dropped, total - 4 + 1);
}

#[test]
fn a_sink_whose_receiver_is_gone_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let gone = pipeline.register_sink("gone", 16, OverflowPolicy::DropNewest);
    let stats = std::sync::Arc::clone(&gone.stats);
    drop(gone);
    let fast = pipeline.register_sink("fast", 1 << 12, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.push(Command::state_digest());
    let last = *submit_all(&mut sender, &cmds).last().unwrap();
    collect_until_digest(&fast, last);
    assert!(stats.is_disconnected());
    assert_eq!(stats.delivered(), 0);
    drop(sender);
    assert!(pipeline.shutdown().health.is_ok());
}
