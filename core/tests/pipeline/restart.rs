use crate::support::*;
use ringex_core::pipeline::{OverflowPolicy, Pipeline, StageThreads};
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

/// The other way of running the stages than this test binary's.
fn other_threads() -> StageThreads {
    match crate::STAGE_THREADS {
        StageThreads::Separate => StageThreads::Fused,
        StageThreads::Fused => StageThreads::Separate,
    }
}

#[test]
fn a_journal_written_with_one_stage_threading_restarts_under_the_other_byte_for_byte() {
    let _other = OTHER_THREADING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let mut cmds = market();
    cmds.extend(orders(100, 200));
    let run = |threads: StageThreads, cmds: &[Command]| {
        let pipeline = Pipeline::start(config(dir.path()).with_stage_threads(threads)).unwrap();
        let startup = pipeline.startup().clone();
        let mut sender = pipeline.sender();
        submit_all(&mut sender, cmds);
        drop(sender);
        let report = pipeline.shutdown();
        assert!(report.health.is_ok(), "{:?}", report.health);
        (startup, report.engine.unwrap().state_digest())
    };
    let (_, digest) = run(crate::STAGE_THREADS, &cmds);
    // The other threading replays the journal and compares every event it
    // regenerates with the output journal the first run wrote: any
    // difference is reported as a mismatch, and stops the output journal.
    let (startup, _) = run(other_threads(), &orders(1_000, 50));
    assert_eq!(startup.digest_after_replay, digest);
    assert_eq!(startup.replayed, cmds.len() as u64);
    assert_eq!(startup.output.error, None);
    assert!(startup.output.verified > 0, "{:?}", startup.output);
    assert_eq!(startup.output.appended, 0, "{:?}", startup.output);
    // And back: the second run's events, written by the other threading,
    // match what this one regenerates.
    let (startup, _) = run(crate::STAGE_THREADS, &[]);
    assert_eq!(startup.output.error, None);
    assert_eq!(startup.output.appended, 0, "{:?}", startup.output);
    assert_eq!(startup.replayed, cmds.len() as u64 + 50);
}

/// The threads a pipeline runs, by name (Linux: `/proc/self/task/*/comm`).
fn stage_thread_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with("ringex-"))
        .collect();
    names.sort();
    names
}

/// Held by the one test that runs the other threading than this binary's,
/// and by the test that checks no thread of the other kind exists.
static OTHER_THREADING: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_stages_run_on_the_threads_the_configuration_names() {
    let _other = OTHER_THREADING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let sink = pipeline.register_sink("gateway", 1 << 12, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let seq = submit_all(&mut sender, &[Command::state_digest()])[0];
    collect_until_digest(&sink, seq);
    // Every pipeline of this binary but the cross-threading test's (which
    // waits for the lock) runs this binary's threading, so the threads of
    // the other kind are absent, not just outnumbered.
    let names = stage_thread_names();
    // The kernel keeps a thread's name to 15 bytes.
    let has = |name: &str| names.iter().any(|n| n == &name[..name.len().min(15)]);
    let (ours, not_ours): (&[&str], &[&str]) = match crate::STAGE_THREADS {
        StageThreads::Separate => (
            &["ringex-journaler", "ringex-engine", "ringex-publisher"],
            &["ringex-core"],
        ),
        StageThreads::Fused => (
            &["ringex-core"],
            &["ringex-journaler", "ringex-engine", "ringex-publisher"],
        ),
    };
    for name in ours {
        assert!(has(name), "{name} missing: {names:?}");
    }
    for name in not_ours {
        assert!(!has(name), "{name} present: {names:?}");
    }
    drop(sender);
    assert!(pipeline.shutdown().health.is_ok());
}
