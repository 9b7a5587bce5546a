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

/// A consumer that sleeps outside the queue: it arms the sink's doorbell,
/// blocks on its own channel (standing in for `epoll_wait`), and must be
/// woken by the publisher for every burst, with no event left unseen.
#[test]
fn an_armed_sink_rings_its_consumer_once_per_arming_and_never_leaves_it_asleep() {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let sink = pipeline.register_sink("gateway", 1 << 12, OverflowPolicy::DropNewest);
    let rings = Arc::new(AtomicU64::new(0));
    let (bell_tx, bell_rx) = crossbeam_channel::unbounded::<()>();
    assert!(sink.wakeup.set_waker({
        let rings = Arc::clone(&rings);
        move || {
            rings.fetch_add(1, Ordering::SeqCst);
            let _ = bell_tx.send(());
        }
    }));
    assert!(!sink.wakeup.set_waker(|| {}), "one waker per sink");
    // Not armed: deliveries do not ring.
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.push(Command::state_digest());
    let last = *submit_all(&mut sender, &cmds).last().unwrap();
    let setup = collect_until_digest(&sink, last);
    assert!(!setup.is_empty());
    assert_eq!(rings.load(Ordering::SeqCst), 0);

    // Twenty bursts: the consumer drains, arms, and sleeps on the bell.
    let mut seen = 0usize;
    for burst in 0..20u64 {
        assert!(sink.wakeup.arm(&sink.receiver), "an empty queue may sleep");
        let mut cmds = orders(1_000 + burst * 10, 10);
        cmds.push(Command::state_digest());
        let last = *submit_all(&mut sender, &cmds).last().unwrap();
        bell_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the publisher rang the armed sink");
        // Everything of the burst arrives; a late arming finds it waiting.
        seen += collect_until_digest(&sink, last).len();
        while bell_rx.try_recv().is_ok() {}
    }
    assert!(seen >= 20 * 11);
    let rung = rings.load(Ordering::SeqCst);
    assert!(
        (20..=40).contains(&rung),
        "one ring per arming (plus at most one late ring each): {rung}"
    );
    // Armed with events already queued: arm says so and nothing is lost.
    let last = *submit_all(&mut sender, &[Command::state_digest()])
        .last()
        .unwrap();
    while sink.receiver.is_empty() {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(!sink.wakeup.arm(&sink.receiver), "events are waiting");
    collect_until_digest(&sink, last);
    drop(sender);
    pipeline.shutdown();
}

/// `Metrics::delivered_sequence` read before draining a sink promises that
/// every event of every command up to it is already queued: a consumer
/// that answers a request after "its command" never sees half of it.
#[test]
fn the_delivered_sequence_never_runs_ahead_of_a_commands_last_event() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let sink = pipeline.register_sink("gateway", 1 << 16, OverflowPolicy::DropNewest);
    let metrics = pipeline.metrics();
    let mut sender = pipeline.sender();
    let mut cmds = market();
    // Crossing orders: several events per command (accept, trades,
    // balances, levels).
    cmds.extend(orders(100, 400));
    cmds.push(Command::state_digest());
    let producer = std::thread::spawn(move || {
        let last = *submit_all(&mut sender, &cmds).last().unwrap();
        (sender, last)
    });
    // (delivered read before a drain, events received after it)
    let mut checkpoints = Vec::new();
    let mut received: Vec<Event> = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let complete = metrics.delivered_sequence();
        received.extend(sink.receiver.try_iter());
        checkpoints.push((complete, received.len()));
        if received
            .last()
            .is_some_and(|e| e.kind == EventKind::StateDigest as u8)
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the digest arrived");
        std::thread::yield_now();
    }
    let (sender, last) = producer.join().unwrap();
    assert_eq!(received.last().unwrap().sequence, last);
    assert_eq!(metrics.delivered_sequence(), last);
    for (complete, seen) in checkpoints {
        // Every event of the commands up to `complete` was among the first
        // `seen` events received.
        let needed = received
            .iter()
            .rposition(|e| e.sequence <= complete)
            .map_or(0, |i| i + 1);
        assert!(
            needed <= seen,
            "delivered {complete} but only {seen} of the {needed} events up to it were queued"
        );
    }
    drop(sender);
    pipeline.shutdown();
}
