use crate::support::*;
use ringex_core::pipeline::{OverflowPolicy, Pipeline};
use ringex_core::records::*;

#[test]
fn a_small_market_trades_and_the_journal_replays_to_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    assert_eq!(pipeline.startup().replayed, 0);
    assert_eq!(pipeline.startup().next_sequence, 1);
    let sink = pipeline.register_sink("gateway", 1 << 16, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();

    let mut cmds = market();
    cmds.push(Command::state_digest());
    let seqs = submit_all(&mut sender, &cmds);
    assert_eq!(seqs, (1..=cmds.len() as u64).collect::<Vec<_>>());
    let received = collect_until_digest(&sink, *seqs.last().unwrap());

    let trades: Vec<EventView> = received
        .iter()
        .filter(|e| e.kind == EventKind::Trade as u8)
        .map(|e| e.decode().unwrap())
        .collect();
    assert_eq!(trades.len(), 1, "{received:?}");
    match trades[0] {
        EventView::Trade {
            instrument,
            taker_account,
            maker_account,
            price,
            quantity,
            ..
        } => assert_eq!(
            (instrument, taker_account, maker_account, price, quantity),
            (1, 8, 7, 40, 10)
        ),
        other => panic!("not a trade: {other:?}"),
    }
    // Events carry their commands' sequences, in order.
    assert!(received.windows(2).all(|w| w[0].sequence <= w[1].sequence));
    let digest = match received.last().unwrap().decode() {
        Some(EventView::StateDigest { digest, .. }) => digest,
        other => panic!("{other:?}"),
    };

    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok(), "{:?}", report.health);
    assert_eq!(report.engine.unwrap().state_digest(), digest);
    assert_eq!(report.metrics.applied, cmds.len() as u64);
    assert_eq!(report.metrics.events, received.len() as u64);
    // The sink's channel closes once the publisher stops.
    assert!(sink.receiver.recv().is_err());

    // The journal holds every command, in order, as submitted.
    let journaled = journaled_commands(dir.path());
    assert_eq!(journaled.len(), cmds.len());
    for (i, (j, c)) in journaled.iter().zip(&cmds).enumerate() {
        assert_eq!(j.sequence, i as u64 + 1);
        assert_eq!(unstamped(j), unstamped(c));
    }
    assert!(journaled
        .windows(2)
        .all(|w| w[0].timestamp <= w[1].timestamp));
    assert!(ringex_journal::verify(dir.path()).unwrap().is_intact());

    // Replaying it through a fresh engine gives byte-identical events.
    let (replayed, engine) = replay(&journaled);
    assert_eq!(
        bytemuck::cast_slice::<Event, u8>(&replayed),
        bytemuck::cast_slice::<Event, u8>(&received)
    );
    assert_eq!(engine.state_digest(), digest);
}

#[test]
fn many_producers_get_distinct_sequences_and_everything_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let sink = pipeline.register_sink("gateway", 1 << 16, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    submit_all(&mut sender, &market());
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let mut sender = pipeline.sender();
            std::thread::spawn(move || submit_all(&mut sender, &orders(1_000 + t * 1_000, 300)))
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    let n = market().len() as u64;
    assert_eq!(seqs, (n + 1..=n + 600).collect::<Vec<_>>());
    let last = submit_all(&mut sender, &[Command::state_digest()])[0];
    let received = collect_until_digest(&sink, last);
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok());

    let journaled = journaled_commands(dir.path());
    assert_eq!(journaled.len() as u64, last);
    let (replayed, engine) = replay(&journaled);
    assert_eq!(replayed, received);
    assert_eq!(report.engine.unwrap().state_digest(), engine.state_digest());
}
