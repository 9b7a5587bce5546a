use crate::support::*;
use ringex_core::pipeline::{OverflowPolicy, Pipeline, SubmitError};
use ringex_core::records::*;
use ringex_journal::fault::{FaultOp, FaultyFs};
use ringex_journal::DurabilityPolicy;
use std::time::{Duration, Instant};

/// An fsync failure stops the journaler; the engine applies nothing past
/// the last journaled command, no sink sees an event of it, the pipeline
/// refuses new commands and reports the error.
#[test]
fn a_journal_failure_stops_the_pipeline_before_the_unjournaled_command() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let pipeline = Pipeline::start_with(
        fs.clone(),
        config(dir.path()).with_durability(DurabilityPolicy::FsyncPerBatch),
    )
    .unwrap();
    let sink = pipeline.register_sink("client", 1 << 12, OverflowPolicy::Disconnect);
    let metrics = pipeline.metrics();
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.push(Command::state_digest());
    let last_good = *submit_all(&mut sender, &cmds).last().unwrap();
    let good = collect_until_digest(&sink, last_good);
    assert_eq!(metrics.journaled_sequence(), last_good);

    // The next fsync fails, and every one after it.
    fs.plan().fail_from_next(FaultOp::Sync, 1);
    let failed_seq = sender.try_submit(Command::state_digest()).unwrap();
    assert_eq!(failed_seq, last_good + 1);
    let deadline = Instant::now() + TIMEOUT;
    while !pipeline.health().journal_failed {
        assert!(Instant::now() < deadline, "the failure was not reported");
        std::thread::sleep(Duration::from_millis(1));
    }
    let health = pipeline.health();
    assert!(
        health
            .journal_error
            .as_deref()
            .unwrap()
            .contains("injected fault"),
        "{health:?}"
    );
    assert_eq!(
        sender.try_submit(Command::timer_tick()),
        Err(SubmitError::Halted)
    );
    // The engine stops at the unjournaled command.
    while !pipeline.health().engine_halted {
        assert!(Instant::now() < deadline, "the engine did not halt");
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(sender);
    let report = pipeline.shutdown();
    assert_eq!(report.metrics.applied, last_good);
    assert_eq!(report.metrics.journaled_sequence, last_good);
    // Nothing of the failed command reached the sink.
    let after: Vec<Event> = sink.receiver.iter().collect();
    assert!(after.is_empty(), "{after:?}");
    // The engine holds exactly the journaled prefix. (The failed record
    // may still be in the file: its bytes reached the page cache, only the
    // fsync failed. A restart would replay it; no client saw it.)
    let journaled = journaled_commands(dir.path());
    let (replayed, engine) = replay(&journaled[..last_good as usize]);
    assert_eq!(replayed, good);
    assert_eq!(report.engine.unwrap().state_digest(), engine.state_digest());
}
