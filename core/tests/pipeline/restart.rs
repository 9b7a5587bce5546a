use crate::support::*;
use ringex_core::pipeline::{OverflowPolicy, Pipeline};
use ringex_core::records::*;

fn digest_of(event: &Event) -> u64 {
    match event.decode() {
        Some(EventView::StateDigest { digest, .. }) => digest,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_restarted_pipeline_recovers_the_same_state_and_continues_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmds = market();
    cmds.extend(orders(100, 50));

    // Run 1.
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let mut sender = pipeline.sender();
    submit_all(&mut sender, &cmds);
    drop(sender);
    let first = pipeline.shutdown();
    assert!(first.health.is_ok());
    let digest = first.engine.unwrap().state_digest();

    // Run 2: replays, publishes nothing of the past, continues at n + 1.
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let n = cmds.len() as u64;
    assert_eq!(pipeline.startup().replayed, n);
    assert_eq!(pipeline.startup().next_sequence, n + 1);
    assert_eq!(pipeline.startup().digest_after_replay, digest);
    let sink = pipeline.register_sink("gateway", 1 << 12, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let seq = submit_all(&mut sender, &[Command::state_digest()])[0];
    assert_eq!(seq, n + 1);
    let events = collect_until_digest(&sink, seq);
    assert_eq!(events.len(), 1, "replayed commands are not republished");
    assert_eq!(digest_of(&events[0]), digest);
    // A new order still matches against the recovered book.
    let more = orders(10_000, 2);
    submit_all(&mut sender, &more);
    drop(sender);
    let second = pipeline.shutdown();
    assert!(second.health.is_ok());
    let digest2 = second.engine.unwrap().state_digest();

    // Run 3 sees all of it; a clean replay of the journal agrees.
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    assert_eq!(pipeline.startup().replayed, n + 3);
    assert_eq!(pipeline.startup().digest_after_replay, digest2);
    drop(pipeline.shutdown());
    let (_, engine) = replay(&journaled_commands(dir.path()));
    assert_eq!(engine.state_digest(), digest2);
}
