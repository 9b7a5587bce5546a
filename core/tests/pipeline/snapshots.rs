//! Snapshots in the pipeline: shutdown writes one, start-up restores the
//! newest valid one and replays only the journal after it, corrupt ones
//! are passed over with a reason, trimmed journals start from a snapshot,
//! and the output journal stays a byte-exact replay across all of it.

use crate::support::*;
use ringex_core::pipeline::{
    OverflowPolicy, Pipeline, PipelineConfig, PipelineError, JOURNAL_KIND_EVENT,
    PIPELINE_SNAPSHOT_META_SIZE,
};
use ringex_core::records::*;
use ringex_core::{Engine, EngineConfig};
use ringex_journal::{Journal, JournalReader, RetentionPolicy, SnapshotStore};
use std::path::Path;

fn snap_config(dir: &Path) -> PipelineConfig {
    config(dir).with_snapshot_on_shutdown(true)
}

/// Runs one pipeline over `cmds` and a `StateDigest`; returns the events a
/// lossless sink got, the final digest and the shutdown snapshot's path.
fn run(config: PipelineConfig, cmds: &[Command]) -> (Vec<Event>, u64, Option<std::path::PathBuf>) {
    let pipeline = Pipeline::start(config).unwrap();
    assert!(pipeline.health().is_ok(), "{:?}", pipeline.health());
    let sink = pipeline.register_sink("lossless", 1 << 16, OverflowPolicy::Disconnect);
    let mut sender = pipeline.sender();
    let mut all = cmds.to_vec();
    all.push(Command::state_digest());
    let seqs = submit_all(&mut sender, &all);
    let events = collect_until_digest(&sink, *seqs.last().unwrap());
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok(), "{:?}", report.health);
    let digest = report.engine.unwrap().state_digest();
    (events, digest, report.snapshot)
}

/// The digest of a fresh engine that replays the whole input journal.
fn full_replay_digest(dir: &Path) -> u64 {
    replay(&journaled_commands(dir)).1.state_digest()
}

/// The output journal equals a fresh replay of the input journal, byte
/// for byte, gap-free from 1.
fn assert_output_is_replay(config: &PipelineConfig) {
    let mut reader = JournalReader::open(config.output_journal_path(), 1).unwrap();
    let records = reader.read_to_end().unwrap();
    let (events, _) = replay(&journaled_commands(&config.journal_dir));
    let timestamps: Vec<u64> = journaled_commands(&config.journal_dir)
        .iter()
        .map(|c| c.timestamp)
        .collect();
    assert_eq!(records.len(), events.len(), "one record per event");
    for (i, (r, e)) in records.iter().zip(&events).enumerate() {
        assert_eq!(r.sequence, i as u64 + 1);
        assert_eq!(r.kind, JOURNAL_KIND_EVENT);
        assert_eq!(&r.payload[..], bytemuck::bytes_of(e), "event {}", i + 1);
        assert_eq!(r.timestamp, timestamps[e.sequence as usize - 1]);
    }
}

fn mixed(first_client_id: u64, n: u64) -> Vec<Command> {
    let mut cmds = orders(first_client_id, n);
    // Cancels by client id of some of them (some already filled: TooLate).
    for k in (0..n).step_by(3) {
        let account = if k % 2 == 0 { 7 } else { 8 };
        cmds.push(Command::cancel_by_client_id(account, first_client_id + k));
    }
    cmds
}

#[test]
fn clean_shutdown_writes_a_snapshot_and_start_up_replays_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = snap_config(dir.path());
    let mut cmds = market();
    cmds.extend(mixed(100, 60));
    let (events, digest, path) = run(config.clone(), &cmds);
    let n = cmds.len() as u64 + 1;
    let path = path.expect("shutdown wrote a snapshot");
    assert!(path.starts_with(config.snapshot_path()));
    let entries = SnapshotStore::open(config.snapshot_path())
        .unwrap()
        .list()
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].sequence, n);

    let pipeline = Pipeline::start(config.clone()).unwrap();
    let startup = pipeline.startup();
    let used = startup
        .snapshot
        .as_ref()
        .expect("restored from the snapshot");
    assert_eq!(
        (used.sequence, used.output_events),
        (n, events.len() as u64)
    );
    assert_eq!(startup.replayed, 0);
    assert!(startup.skipped_snapshots.is_empty());
    assert_eq!(startup.next_sequence, n + 1);
    assert_eq!(startup.digest_after_replay, digest);
    assert_eq!(digest, full_replay_digest(dir.path()));
    assert_eq!(startup.output.next_sequence, events.len() as u64 + 1);
    drop(pipeline.shutdown());
}

#[test]
fn start_up_from_a_snapshot_replays_only_the_tail_and_equals_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let config = snap_config(dir.path());
    let mut cmds = market();
    cmds.extend(mixed(100, 40));
    let (first_events, _, _) = run(config.clone(), &cmds);
    let n = cmds.len() as u64 + 1;
    // A second run without a shutdown snapshot: its commands are the tail.
    let tail = mixed(1_000, 30);
    let (second_events, digest, none) = run(config.clone().with_snapshot_on_shutdown(false), &tail);
    assert!(none.is_none());

    let pipeline = Pipeline::start(config.clone()).unwrap();
    let startup = pipeline.startup();
    assert_eq!(startup.snapshot.as_ref().unwrap().sequence, n);
    assert_eq!(startup.replayed, tail.len() as u64 + 1);
    assert_eq!(startup.digest_after_replay, digest);
    assert_eq!(digest, full_replay_digest(dir.path()));
    // The reconciler started after the snapshot's events and checked the tail's.
    assert_eq!(startup.output.verified, second_events.len() as u64);
    assert_eq!(startup.output.appended, 0);
    assert_eq!(
        startup.output.next_sequence,
        (first_events.len() + second_events.len()) as u64 + 1
    );
    assert!(startup.output.error.is_none());
    drop(pipeline.shutdown());
    assert_output_is_replay(&config);
}

#[test]
fn replay_stays_deterministic_through_restarts_with_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let config = snap_config(dir.path());
    let mut received = Vec::new();
    let mut cmds = market();
    cmds.extend(mixed(100, 50));
    for round in 0..4u64 {
        let (events, digest, path) = run(config.clone(), &cmds);
        assert!(path.is_some());
        assert_eq!(digest, full_replay_digest(dir.path()), "round {round}");
        received.extend(events);
        cmds = mixed(10_000 * (round + 1), 50);
    }
    // What the sinks saw over four runs is what one engine replaying the
    // whole journal emits, and the output journal holds exactly that.
    let (replayed, _) = replay(&journaled_commands(dir.path()));
    assert!(received == replayed, "the sinks saw a replay's events");
    assert_output_is_replay(&config);
    // Retention kept the two newest snapshots.
    let store = SnapshotStore::open(config.snapshot_path()).unwrap();
    assert_eq!(store.list().unwrap().len(), 2);
}

#[test]
fn a_corrupted_newest_snapshot_falls_back_to_the_older_one_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let config = snap_config(dir.path());
    let mut cmds = market();
    cmds.extend(mixed(100, 30));
    run(config.clone(), &cmds);
    let n1 = cmds.len() as u64 + 1;
    let more = mixed(1_000, 20);
    let (_, digest, newest) = run(config.clone(), &more);
    let newest = newest.unwrap();

    // A flipped byte: the file's CRC catches it.
    let mut bytes = std::fs::read(&newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(&newest, &bytes).unwrap();
    let pipeline = Pipeline::start(config.clone()).unwrap();
    let startup = pipeline.startup();
    assert_eq!(startup.snapshot.as_ref().unwrap().sequence, n1);
    assert_eq!(startup.replayed, more.len() as u64 + 1);
    assert_eq!(startup.digest_after_replay, digest);
    assert_eq!(startup.skipped_snapshots.len(), 1);
    assert_eq!(startup.skipped_snapshots[0].path, newest);
    assert!(
        startup.skipped_snapshots[0].reason.contains("CRC"),
        "{:?}",
        startup.skipped_snapshots
    );
    // The restored snapshot is older than the state, so shutdown writes a
    // fresh one (replacing the corrupted file).
    let report = pipeline.shutdown();
    assert!(report.snapshot.is_some());

    // A file whose CRC is right but whose engine bytes are not: the
    // engine's own validation rejects it.
    let newest_seq = n1 + more.len() as u64 + 1;
    let mut payload = std::fs::read(&newest).unwrap()[48..].to_vec();
    payload.truncate(payload.len() - 100);
    SnapshotStore::open(config.snapshot_path())
        .unwrap()
        .write(newest_seq, &payload)
        .unwrap();
    let pipeline = Pipeline::start(config.clone()).unwrap();
    let startup = pipeline.startup();
    let skipped = &startup.skipped_snapshots;
    assert!(
        skipped
            .iter()
            .any(|s| s.reason.contains("engine snapshot rejected")),
        "{skipped:?}"
    );
    assert_eq!(startup.digest_after_replay, digest);
    drop(pipeline.shutdown());

    // Every snapshot unusable and the journal complete: a full replay.
    for entry in SnapshotStore::open(config.snapshot_path())
        .unwrap()
        .list()
        .unwrap()
    {
        std::fs::write(&entry.path, b"garbage").unwrap();
    }
    let pipeline = Pipeline::start(config.clone().with_snapshot_on_shutdown(false)).unwrap();
    let startup = pipeline.startup();
    assert!(startup.snapshot.is_none());
    assert_eq!(startup.replayed, newest_seq);
    assert_eq!(startup.digest_after_replay, digest);
    assert!(!startup.skipped_snapshots.is_empty());
    drop(pipeline.shutdown());
}

#[test]
fn a_trimmed_journal_starts_from_its_snapshot_and_is_refused_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = snap_config(dir.path());
    config.journal = config.journal.with_segment_size(4096);
    let mut cmds = market();
    cmds.extend(mixed(100, 120));
    run(config.clone(), &cmds);
    // Trim the input journal up to the snapshot, as retention would.
    let (mut journal, _) = Journal::open(&config.journal_dir, config.journal).unwrap();
    let report = SnapshotStore::open(config.snapshot_path())
        .unwrap()
        .apply_retention(&mut journal, RetentionPolicy { keep_snapshots: 1 })
        .unwrap();
    assert!(!report.removed_segments.is_empty());
    let first = journal.first_sequence().unwrap();
    assert!(first > 1);
    journal.close().unwrap();

    let more = mixed(5_000, 10);
    let (_, digest, _) = run(config.clone(), &more);
    let pipeline = Pipeline::start(config.clone()).unwrap();
    assert_eq!(pipeline.startup().digest_after_replay, digest);
    drop(pipeline.shutdown());

    // Without snapshots the trimmed history cannot be rebuilt: a clear error.
    std::fs::remove_dir_all(config.snapshot_path()).unwrap();
    match Pipeline::start(config.clone()) {
        Err(PipelineError::Replay { sequence, problem }) => {
            assert_eq!(sequence, first);
            assert!(problem.contains("no snapshot covers"), "{problem}");
        }
        other => panic!("expected a replay error, got {other:?}"),
    }
}

#[test]
fn a_snapshot_ahead_of_the_output_journal_is_passed_over_for_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let config = snap_config(dir.path());
    let mut cmds = market();
    cmds.extend(mixed(100, 30));
    let (_, digest, _) = run(config.clone(), &cmds);
    // The output journal is lost: the events before the snapshot could not
    // be regenerated from it, so start-up replays the whole input journal.
    std::fs::remove_dir_all(config.output_journal_path()).unwrap();
    let pipeline = Pipeline::start(config.clone()).unwrap();
    let startup = pipeline.startup();
    assert!(startup.snapshot.is_none());
    assert!(
        startup.skipped_snapshots[0]
            .reason
            .contains("output journal"),
        "{:?}",
        startup.skipped_snapshots
    );
    assert_eq!(startup.digest_after_replay, digest);
    assert!(startup.output.appended > 0 && startup.output.error.is_none());
    drop(pipeline.shutdown());
    assert_output_is_replay(&config);
}

#[test]
fn periodic_snapshots_are_taken_between_batches_and_restore_to_the_journals_state() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path())
        .with_snapshot_every(Some(25))
        .with_snapshot_on_shutdown(false);
    let pipeline = Pipeline::start(config.clone()).unwrap();
    let mut sender = pipeline.sender();
    submit_all(&mut sender, &market());
    for round in 0..6 {
        // Separate bursts so the engine sees several batch ends.
        submit_all(&mut sender, &mixed(100 + round * 1_000, 20));
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok(), "{:?}", report.health);
    let digest = report.engine.unwrap().state_digest();

    let store = SnapshotStore::open(config.snapshot_path()).unwrap();
    let entries = store.list().unwrap();
    assert!(!entries.is_empty() && entries.len() <= 2, "{entries:?}");
    let commands = journaled_commands(dir.path());
    for entry in &entries {
        // Each one is the state after exactly its sequence.
        let bytes = store.load(entry).unwrap().bytes;
        let engine =
            Engine::from_snapshot(EngineConfig::small(), &bytes[PIPELINE_SNAPSHOT_META_SIZE..])
                .unwrap();
        let (_, expected) = replay(&commands[..entry.sequence as usize]);
        assert_eq!(engine.state_digest(), expected.state_digest());
    }
    let pipeline = Pipeline::start(config.clone()).unwrap();
    let startup = pipeline.startup();
    assert_eq!(
        startup.snapshot.as_ref().unwrap().sequence,
        entries.last().unwrap().sequence
    );
    assert_eq!(
        startup.replayed,
        commands.len() as u64 - entries.last().unwrap().sequence
    );
    assert_eq!(startup.digest_after_replay, digest);
    drop(pipeline.shutdown());
    assert_output_is_replay(&config);
}

#[test]
fn a_failed_snapshot_write_is_reported_and_stops_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = snap_config(dir.path());
    let pipeline = Pipeline::start(config.clone()).unwrap();
    // The snapshot directory becomes a plain file: every write fails.
    std::fs::remove_dir_all(config.snapshot_path()).unwrap();
    std::fs::write(config.snapshot_path(), b"not a directory").unwrap();
    let mut sender = pipeline.sender();
    submit_all(&mut sender, &market());
    drop(sender);
    let report = pipeline.shutdown();
    assert!(report.snapshot.is_none());
    let error = report.health.snapshot_error.clone().expect("reported");
    assert!(error.contains("snapshot"), "{error}");
    assert!(report.health.is_ok(), "{:?}", report.health);
    assert_eq!(report.metrics.applied, market().len() as u64);
}

#[test]
fn a_snapshot_taken_with_another_engine_configuration_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let config = snap_config(dir.path());
    let mut cmds = market();
    cmds.extend(mixed(100, 20));
    let (_, digest, _) = run(config.clone(), &cmds);
    let other = config.clone().with_engine(EngineConfig {
        max_orders: 8192,
        ..EngineConfig::small()
    });
    let pipeline = Pipeline::start(other).unwrap();
    let startup = pipeline.startup();
    assert!(startup.snapshot.is_none());
    assert!(
        startup.skipped_snapshots[0]
            .reason
            .contains("configured with"),
        "{:?}",
        startup.skipped_snapshots
    );
    assert_eq!(startup.replayed, cmds.len() as u64 + 1);
    // The digest covers the state, not the capacities: a full replay agrees.
    assert_eq!(startup.digest_after_replay, digest);
    drop(pipeline.shutdown());
}

#[test]
fn a_snapshot_ahead_of_the_input_journal_is_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let config = snap_config(dir.path());
    let mut cmds = market();
    cmds.extend(mixed(100, 20));
    let (_, digest, path) = run(config.clone(), &cmds);
    let n = cmds.len() as u64 + 1;
    // A snapshot claiming commands the journal does not hold (as after
    // losing unsynced journal pages in a power cut).
    let store = SnapshotStore::open(config.snapshot_path()).unwrap();
    let mut payload = std::fs::read(path.unwrap()).unwrap()[48..].to_vec();
    payload[8..16].copy_from_slice(&(n + 5).to_le_bytes());
    store.write(n + 5, &payload).unwrap();
    let pipeline = Pipeline::start(config.clone()).unwrap();
    let startup = pipeline.startup();
    assert_eq!(startup.snapshot.as_ref().unwrap().sequence, n);
    assert!(
        startup.skipped_snapshots[0]
            .reason
            .contains("ahead of the input journal"),
        "{:?}",
        startup.skipped_snapshots
    );
    assert_eq!(startup.next_sequence, n + 1);
    assert_eq!(startup.digest_after_replay, digest);
    drop(pipeline.shutdown());
}

#[test]
fn a_snapshot_from_another_history_is_refused_even_when_the_sequences_line_up() {
    // As after a power cut: the journal lost commands the snapshot had
    // seen, and new, different commands took their sequence numbers.
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    let mut cmds = market();
    cmds.extend(mixed(100, 20));
    let (_, _, foreign) = run(snap_config(theirs.path()), &cmds);
    let foreign = foreign.unwrap();
    let config = snap_config(ours.path()).with_snapshot_on_shutdown(false);
    let mut other = market();
    other.extend(mixed(7_000, 40));
    let (_, digest, _) = run(config.clone(), &other);
    std::fs::create_dir_all(config.snapshot_path()).unwrap();
    std::fs::copy(
        &foreign,
        config.snapshot_path().join(foreign.file_name().unwrap()),
    )
    .unwrap();
    let pipeline = Pipeline::start(config.clone()).unwrap();
    let startup = pipeline.startup();
    assert!(startup.snapshot.is_none(), "{:?}", startup.snapshot);
    assert!(
        startup.skipped_snapshots[0]
            .reason
            .contains("another history"),
        "{:?}",
        startup.skipped_snapshots
    );
    assert_eq!(startup.digest_after_replay, digest);
    drop(pipeline.shutdown());
}
