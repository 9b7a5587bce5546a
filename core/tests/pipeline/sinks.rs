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

#[test]
fn a_waiting_sink_holds_the_publisher_back_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let fast = pipeline.register_sink("fast", 1 << 16, OverflowPolicy::Disconnect);
    // Four slots, read one event per millisecond: the publisher must wait
    // for it again and again.
    let slow = pipeline.register_sink(
        "slow",
        4,
        OverflowPolicy::Wait(std::time::Duration::from_secs(10)),
    );
    let slow_stats = std::sync::Arc::clone(&slow.stats);
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        while let Ok(event) = slow.receiver.recv() {
            got.push(event);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        got
    });
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.extend(orders(100, 100));
    cmds.push(Command::state_digest());
    let last = *submit_all(&mut sender, &cmds).last().unwrap();
    let received = collect_until_digest(&fast, last);
    drop(sender);
    let report = pipeline.shutdown();
    let slow_got = reader.join().unwrap(); // ends: the publisher dropped its end
    assert_eq!(
        slow_got, received,
        "the waiting sink saw every event, in order"
    );
    assert_eq!(slow_stats.dropped(), 0);
    assert!(!slow_stats.is_disconnected());
    assert!(
        slow_stats.waited() > 0,
        "four slots for {} events: the publisher waited",
        received.len()
    );
    assert_eq!(report.metrics.dropped, 0);
}

#[test]
fn a_waiting_sink_that_stops_reading_is_cut_off_after_its_wait() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let fast = pipeline.register_sink("fast", 1 << 16, OverflowPolicy::Disconnect);
    let stuck = pipeline.register_sink(
        "stuck",
        4,
        OverflowPolicy::Wait(std::time::Duration::from_millis(50)),
    );
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.extend(orders(100, 100));
    cmds.push(Command::state_digest());
    let last = *submit_all(&mut sender, &cmds).last().unwrap();
    // The pipeline goes on without the stuck sink: every event still arrives.
    let received = collect_until_digest(&fast, last);
    drop(sender);
    let report = pipeline.shutdown();
    assert_eq!(report.metrics.events, received.len() as u64);
    assert!(stuck.stats.is_disconnected());
    assert_eq!(
        (
            stuck.stats.delivered(),
            stuck.stats.dropped(),
            stuck.stats.waited()
        ),
        (4, 1, 1)
    );
    let kept: Vec<Event> = stuck.receiver.iter().collect(); // ends: disconnected
    assert_eq!(kept, received[..4]);
}
