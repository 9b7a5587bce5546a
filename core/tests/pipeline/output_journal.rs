use crate::support::*;
use ringex_core::pipeline::{OverflowPolicy, Pipeline, PipelineConfig, JOURNAL_KIND_EVENT};
use ringex_core::records::*;
use ringex_core::{Engine, EngineConfig};
use ringex_journal::fault::{FaultOp, FaultyFs};
use ringex_journal::fs::StdFs;
use ringex_journal::{DurabilityPolicy, Journal, JournalConfig, JournalReader, OwnedRecord};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn output_dir(dir: &Path) -> PathBuf {
    config(dir).output_journal_path()
}

/// Every record of the output journal, in order.
fn output_records(dir: &Path) -> Vec<OwnedRecord> {
    let mut reader = JournalReader::open(output_dir(dir), 1).expect("open output reader");
    reader.read_to_end().expect("read output journal")
}

/// The output journal a clean replay of the input journal produces:
/// (index, command timestamp, event bytes), the record format of the
/// output journal.
fn regenerated(dir: &Path) -> Vec<(u64, u64, Vec<u8>)> {
    let mut engine = Engine::new(EngineConfig::small());
    let mut out = Vec::new();
    for cmd in journaled_commands(dir) {
        let mut events = Vec::new();
        engine.apply(&cmd, &mut events);
        for e in events {
            out.push((
                out.len() as u64 + 1,
                cmd.timestamp,
                bytemuck::bytes_of(&e).to_vec(),
            ));
        }
    }
    out
}

/// The deterministic-replay proof: the output journal is gap-free from 1,
/// holds only event records, and equals a fresh replay of the input
/// journal byte for byte. Returns its length.
fn assert_output_is_replay(dir: &Path) -> usize {
    let records = output_records(dir);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.sequence, i as u64 + 1, "gap-free");
        assert_eq!(r.kind, JOURNAL_KIND_EVENT);
        assert_eq!(r.payload.len(), EVENT_SIZE);
    }
    let as_tuples: Vec<(u64, u64, Vec<u8>)> = records
        .iter()
        .map(|r| (r.sequence, r.timestamp, r.payload.clone()))
        .collect();
    let expected = regenerated(dir);
    assert_eq!(as_tuples.len(), expected.len(), "same number of events");
    assert!(
        as_tuples == expected,
        "the output journal differs from a replay"
    );
    records.len()
}

/// Replaces the output journal with one holding exactly `records`.
fn rewrite_output(dir: &Path, records: &[OwnedRecord]) {
    let out = output_dir(dir);
    std::fs::remove_dir_all(&out).unwrap();
    let (mut journal, _) =
        Journal::open(&out, JournalConfig::default().with_segment_size(1 << 20)).unwrap();
    for r in records {
        journal
            .append(r.sequence, r.timestamp, r.kind, &r.payload)
            .unwrap();
    }
    journal.close().unwrap();
}

/// Runs one pipeline over `cmds` followed by a `StateDigest`, checks it
/// stays healthy and returns the events a lossless sink received.
fn run(dir: &Path, cmds: &[Command]) -> Vec<Event> {
    let pipeline = Pipeline::start(config(dir)).unwrap();
    assert!(pipeline.health().is_ok(), "{:?}", pipeline.health());
    let sink = pipeline.register_sink("lossless", 1 << 16, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let mut all = cmds.to_vec();
    all.push(Command::state_digest());
    let seqs = submit_all(&mut sender, &all);
    let received = collect_until_digest(&sink, *seqs.last().unwrap());
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok(), "{:?}", report.health);
    assert_eq!(sink.stats.dropped(), 0);
    assert!(!sink.stats.is_disconnected());
    received
}

#[test]
fn the_output_journal_holds_exactly_what_a_lossless_sink_received() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmds = market();
    cmds.extend(orders(100, 40));
    let received = run(dir.path(), &cmds);

    let records = output_records(dir.path());
    assert_eq!(records.len(), received.len());
    let timestamps: Vec<u64> = journaled_commands(dir.path())
        .iter()
        .map(|c| c.timestamp)
        .collect();
    for (i, (r, e)) in records.iter().zip(&received).enumerate() {
        assert_eq!(r.sequence, i as u64 + 1);
        assert_eq!(r.kind, JOURNAL_KIND_EVENT);
        assert_eq!(&r.payload[..], bytemuck::bytes_of(e), "event {}", i + 1);
        assert_eq!(r.timestamp, timestamps[e.sequence as usize - 1]);
    }
    assert!(ringex_journal::verify(output_dir(dir.path()))
        .unwrap()
        .is_intact());
}

#[test]
fn replaying_the_input_journal_regenerates_the_output_journal() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmds = market();
    cmds.extend(orders(100, 60));
    let received = run(dir.path(), &cmds);
    assert_eq!(assert_output_is_replay(dir.path()), received.len());
}

#[test]
fn a_restart_continues_the_output_journal_without_gaps_or_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let first = run(dir.path(), &market());
    let n1 = first.len() as u64;

    // Run 2: the replayed commands' events are checked, not appended again.
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let out = pipeline.startup().output.clone();
    assert_eq!(
        (out.verified, out.appended, out.next_sequence, out.error),
        (n1, 0, n1 + 1, None)
    );
    assert_eq!(pipeline.metrics().output_journaled_sequence(), n1);
    let sink = pipeline.register_sink("lossless", 1 << 16, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let mut more = orders(1_000, 30);
    more.push(Command::state_digest());
    let seqs = submit_all(&mut sender, &more);
    let second = collect_until_digest(&sink, *seqs.last().unwrap());
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok(), "{:?}", report.health);
    let total = n1 + second.len() as u64;
    assert_eq!(report.metrics.output_journaled_sequence, total);

    assert_eq!(assert_output_is_replay(dir.path()) as u64, total);
    let records = output_records(dir.path());
    for (r, e) in records[n1 as usize..].iter().zip(&second) {
        assert_eq!(&r.payload[..], bytemuck::bytes_of(e));
    }

    // Run 3 verifies everything and appends nothing.
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let out = pipeline.startup().output.clone();
    assert_eq!((out.verified, out.appended, out.error), (total, 0, None));
    drop(pipeline.shutdown());
    assert_eq!(output_records(dir.path()).len() as u64, total);
}

#[test]
fn start_up_completes_an_output_journal_that_lags_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmds = market();
    cmds.extend(orders(100, 20));
    run(dir.path(), &cmds);
    let full = output_records(dir.path());
    let total = full.len() as u64;
    assert!(total > 10);

    // The last records are lost (the publisher had not reached them).
    let kept = total - 7;
    rewrite_output(dir.path(), &full[..kept as usize]);
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let out = pipeline.startup().output.clone();
    assert_eq!(
        (out.verified, out.appended, out.next_sequence, out.error),
        (kept, 7, total + 1, None)
    );
    assert!(pipeline.health().is_ok());
    drop(pipeline.shutdown());
    assert_eq!(output_records(dir.path()), full);

    // The whole directory is lost.
    std::fs::remove_dir_all(output_dir(dir.path())).unwrap();
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let out = pipeline.startup().output.clone();
    assert_eq!((out.verified, out.appended, out.error), (0, total, None));
    drop(pipeline.shutdown());
    assert_eq!(output_records(dir.path()), full);
    assert_output_is_replay(dir.path());

    // And a later run continues it.
    run(dir.path(), &orders(5_000, 10));
    assert_output_is_replay(dir.path());
}

/// Waits until the pipeline's output journal is reported failed.
fn wait_for_output_failure(pipeline: &Pipeline) {
    let deadline = Instant::now() + TIMEOUT;
    while !pipeline.health().output_journal_failed {
        assert!(
            Instant::now() < deadline,
            "the output journal failure was not reported"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn an_output_journal_that_differs_or_is_ahead_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), &market());
    let full = output_records(dir.path());

    // One event differs.
    let mut altered = full.clone();
    altered[2].payload[40] ^= 1;
    rewrite_output(dir.path(), &altered);
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let out = pipeline.startup().output.clone();
    assert_eq!(out.verified, 2);
    assert!(out.error.as_deref().unwrap().contains("differs"), "{out:?}");
    let health = pipeline.health();
    assert!(
        health.output_journal_failed && !health.is_ok(),
        "{health:?}"
    );
    assert!(!health.journal_failed && !health.engine_halted);
    // The engine and the sinks run regardless.
    let sink = pipeline.register_sink("gateway", 1 << 12, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let seq = submit_all(&mut sender, &[Command::state_digest()])[0];
    assert_eq!(collect_until_digest(&sink, seq).len(), 1);
    drop(sender);
    let report = pipeline.shutdown();
    assert_eq!(report.metrics.applied, 1);
    // Nothing was written to it (the chain values differ: they were
    // recomputed when it was rewritten).
    let contents = |records: &[OwnedRecord]| -> Vec<(u64, u64, u8, Vec<u8>)> {
        records
            .iter()
            .map(|r| (r.sequence, r.timestamp, r.kind, r.payload.clone()))
            .collect()
    };
    assert!(contents(&output_records(dir.path())) == contents(&altered));

    // One event too many (written by a run that is not in this input
    // journal). The input journal now also holds the digest command above.
    let mut expected = regenerated(dir.path());
    let extra = expected.last().unwrap().clone();
    expected.push((expected.len() as u64 + 1, extra.1, extra.2));
    let ahead: Vec<OwnedRecord> = expected
        .iter()
        .map(|(seq, ts, bytes)| OwnedRecord {
            sequence: *seq,
            timestamp: *ts,
            kind: JOURNAL_KIND_EVENT,
            chain: 0,
            payload: bytes.clone(),
        })
        .collect();
    rewrite_output(dir.path(), &ahead);
    let pipeline = Pipeline::start(config(dir.path())).unwrap();
    let out = pipeline.startup().output.clone();
    assert_eq!(out.verified, expected.len() as u64 - 1);
    assert!(out.error.as_deref().unwrap().contains("holds"), "{out:?}");
    assert!(pipeline.health().output_journal_failed);
    drop(pipeline.shutdown());
    assert_eq!(output_records(dir.path()).len(), ahead.len());
}

#[test]
fn an_output_journal_failure_does_not_stop_the_engine_and_a_restart_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultyFs::new();
    let cfg: PipelineConfig = config(dir.path()).with_durability(DurabilityPolicy::FsyncPerBatch);
    let pipeline = Pipeline::start_with_output_fs(StdFs, fs.clone(), cfg.clone()).unwrap();
    let sink = pipeline.register_sink("gateway", 1 << 16, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let mut cmds = market();
    cmds.push(Command::state_digest());
    let seq = *submit_all(&mut sender, &cmds).last().unwrap();
    let before = collect_until_digest(&sink, seq).len() as u64;
    // Sinks get an event before its output record is batch-ended.
    let deadline = Instant::now() + TIMEOUT;
    while pipeline.metrics().output_journaled_sequence() < before {
        assert!(
            Instant::now() < deadline,
            "the output journal did not catch up"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(pipeline.metrics().output_journaled_sequence(), before);

    // Every output-journal sync fails from now on.
    fs.plan().fail_from_next(FaultOp::Sync, 1);
    let mut more = orders(100, 20);
    more.push(Command::state_digest());
    let seq = *submit_all(&mut sender, &more).last().unwrap();
    let after = collect_until_digest(&sink, seq);
    wait_for_output_failure(&pipeline);
    let health = pipeline.health();
    assert!(
        health
            .output_journal_error
            .as_deref()
            .unwrap()
            .contains("injected fault"),
        "{health:?}"
    );
    assert!(
        !health.journal_failed && !health.engine_halted,
        "{health:?}"
    );
    // The engine goes on after the failure.
    let seq = submit_all(&mut sender, &[Command::state_digest()])[0];
    assert_eq!(collect_until_digest(&sink, seq).len(), 1);
    drop(sender);
    let report = pipeline.shutdown();
    assert_eq!(
        report.metrics.applied,
        cmds.len() as u64 + more.len() as u64 + 1
    );
    assert!(report.metrics.output_journaled_sequence < before + after.len() as u64 + 1);

    // A restart on a working file system completes the output journal.
    let pipeline = Pipeline::start(cfg).unwrap();
    let out = pipeline.startup().output.clone();
    assert!(out.error.is_none() && out.appended > 0, "{out:?}");
    assert!(pipeline.health().is_ok());
    drop(pipeline.shutdown());
    assert_eq!(
        assert_output_is_replay(dir.path()) as u64,
        before + after.len() as u64 + 1
    );
}
