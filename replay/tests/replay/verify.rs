//! `verify`: a pipeline session verifies byte for byte; an output journal
//! with an edited, an extra or a missing event does not (or lags).

use crate::support::*;
use ringex_core::pipeline::JOURNAL_KIND_EVENT;
use ringex_core::records::{Event, EventKind};
use ringex_journal::{Journal, JournalConfig, JournalReader};
use ringex_replay::{verify, Divergence, SessionPaths, Verdict};
use std::path::Path;

/// Rewrites the output journal of `dir` into `out` (a valid journal with
/// an intact hash chain), passing every event through `edit`; `None`
/// drops it. `extra` events are appended at the end.
fn rewrite_output(
    dir: &Path,
    out: &Path,
    mut edit: impl FnMut(u64, Event) -> Option<Event>,
    extra: &[Event],
) {
    let records = JournalReader::open(dir.join("events"), 1)
        .unwrap()
        .read_to_end()
        .unwrap();
    let (mut journal, _) =
        Journal::open(out, JournalConfig::default().with_segment_size(1 << 20)).unwrap();
    let mut next = 1;
    let mut last_ts = 0;
    for r in records {
        let event: Event = bytemuck::pod_read_unaligned(&r.payload);
        if let Some(e) = edit(r.sequence, event) {
            journal
                .append(
                    next,
                    r.timestamp,
                    JOURNAL_KIND_EVENT,
                    bytemuck::bytes_of(&e),
                )
                .unwrap();
            next += 1;
        }
        last_ts = r.timestamp;
    }
    for e in extra {
        journal
            .append(next, last_ts, JOURNAL_KIND_EVENT, bytemuck::bytes_of(e))
            .unwrap();
        next += 1;
    }
    journal.close().unwrap();
}

#[test]
fn a_pipeline_session_verifies_byte_for_byte_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let session = run_session(dir.path(), 20_000, 11);
    let out = cli(&["verify", dir.path().to_str().unwrap(), "--require-complete"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("OK: the replay reproduces the output journal byte for byte"));
    assert!(
        stdout.contains(&format!("{:#018x}", session.digest)),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "{} commands -> {} events, {} byte-identical",
        session.commands, session.events, session.events
    )));

    let json = cli(&["verify", dir.path().to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["events"], session.events);
}

#[test]
fn an_edited_event_is_the_first_divergence_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    let session = run_session(dir.path(), 5_000, 12);
    let edited = tempfile::tempdir().unwrap();
    // Change the price of the 3rd trade (kept valid: the chain is intact,
    // so only the replay can tell).
    let mut trades = 0;
    let mut target = 0;
    rewrite_output(
        dir.path(),
        edited.path(),
        |index, mut e| {
            if e.kind == EventKind::Trade as u8 {
                trades += 1;
                if trades == 3 {
                    target = index;
                    e.words[3] += 1;
                }
            }
            Some(e)
        },
        &[],
    );
    assert!(target > 0);
    let paths = SessionPaths::new(dir.path(), Some(edited.path().to_path_buf()));
    let report = verify(&paths, engine(), None).unwrap();
    assert_eq!(report.verdict(false), Verdict::Divergence);
    match report.divergence.as_ref().unwrap() {
        Divergence::EventDiffers {
            index,
            expected,
            found,
            ..
        } => {
            assert_eq!(*index, target);
            assert_eq!(found.event().unwrap().words[3], expected.words[3] + 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(report.matched, target - 1);
    assert!(
        report.events < session.events,
        "the replay stops at the divergence"
    );

    let out = cli(&[
        "verify",
        dir.path().to_str().unwrap(),
        "--output-journal",
        edited.path().to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("DIVERGENCE at event {target}")),
        "{stdout}"
    );
    assert!(stdout.contains("expected (replay)") && stdout.contains("found (journal)"));
    assert!(stdout.contains("price: journal"), "{stdout}");
}

#[test]
fn an_output_journal_with_extra_events_diverges_and_a_short_one_lags() {
    let dir = tempfile::tempdir().unwrap();
    let session = run_session(dir.path(), 3_000, 13);
    let d = dir.path().to_str().unwrap();

    let extra = tempfile::tempdir().unwrap();
    rewrite_output(
        dir.path(),
        extra.path(),
        |_, e| Some(e),
        &[Event::new(EventKind::Ack, 1)],
    );
    let out = cli(&[
        "verify",
        d,
        "--output-journal",
        extra.path().to_str().unwrap(),
    ]);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!(
        "holds {} events but the replay produces {}",
        session.events + 1,
        session.events
    )));

    let short = tempfile::tempdir().unwrap();
    let keep = session.events - 10;
    rewrite_output(
        dir.path(),
        short.path(),
        |i, e| (i <= keep).then_some(e),
        &[],
    );
    let paths = SessionPaths::new(dir.path(), Some(short.path().to_path_buf()));
    let report = verify(&paths, engine(), None).unwrap();
    let lag = report.output_lag.unwrap();
    assert_eq!((lag.journaled, lag.regenerated), (keep, session.events));
    assert_eq!(report.matched, keep);
    assert_eq!(report.verdict(false), Verdict::Ok);
    assert_eq!(report.verdict(true), Verdict::Divergence);
    let s = short.path().to_str().unwrap();
    assert_eq!(
        cli(&["verify", d, "--output-journal", s]).status.code(),
        Some(0)
    );
    assert_eq!(
        cli(&["verify", d, "--output-journal", s, "--require-complete"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn a_different_engine_configuration_is_a_divergence_not_a_crash() {
    // Capacities change outcomes: with room for only 8 live orders the
    // replay rejects orders the pipeline accepted.
    let dir = tempfile::tempdir().unwrap();
    run_session(dir.path(), 2_000, 14);
    let config = dir.path().join("engine.json");
    std::fs::write(&config, r#"{"max_orders": 8}"#).unwrap();
    let out = cli(&[
        "verify",
        dir.path().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("OrderCapacityExhausted"), "{stdout}");

    std::fs::write(&config, r#"{"max_orders": "many"}"#).unwrap();
    let out = cli(&[
        "verify",
        dir.path().to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("engine.json"), "{}", text(&out).1);
}

/// The snapshot files of a session, oldest first.
fn snapshot_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "snap"))
        .collect();
    files.sort();
    files
}

/// Flips one byte in the middle of a file.
fn flip_middle_byte(path: &std::path::Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// A session whose input journal was trimmed after a snapshot (as
/// retention does) verifies from the snapshot the pipeline would start
/// from; a tampered newest snapshot is passed over with the reason and the
/// older one used; with every snapshot tampered, verify fails naming them.
#[test]
fn a_trimmed_session_verifies_from_its_snapshot_and_tampered_snapshots_are_reported() {
    use ringex_journal::{Journal, RetentionPolicy, SnapshotStore};
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path()).with_snapshot_on_shutdown(true);
    config.journal = config.journal.with_segment_size(64 << 10);
    let first_run = run_session_with(config.clone(), 3_000, 21);
    // Trim the input journal up to the shutdown snapshot.
    let (mut journal, _) = Journal::open(&config.journal_dir, config.journal).unwrap();
    let trimmed = SnapshotStore::open(config.snapshot_path())
        .unwrap()
        .apply_retention(&mut journal, RetentionPolicy { keep_snapshots: 1 })
        .unwrap();
    assert!(!trimmed.removed_segments.is_empty());
    let first = journal.first_sequence().unwrap();
    assert!(first > 1);
    journal.close().unwrap();
    // A second run starts from that snapshot and writes another.
    let second_run = run_session_with(config.clone(), 1_000, 22);
    let snapshots = snapshot_files(dir.path());
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    let d = dir.path().to_str().unwrap();

    let out = cli(&["verify", d, "--require-complete"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("OK: the replay reproduces"), "{stdout}");
    // The newest snapshot is the second run's end: nothing left to replay.
    assert!(
        stdout.contains(&format!("snapshot        {}", snapshots[1].display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("{:#018x}", second_run.digest)),
        "{stdout}"
    );

    // Tamper with the newest: the older one (the first run's end) starts
    // the replay, which covers the second run's commands.
    flip_middle_byte(&snapshots[1]);
    let json = cli(&["verify", d, "--json", "--require-complete"]);
    let v: serde_json::Value =
        serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", text(&json)));
    assert_eq!(json.status.code(), Some(0), "{v}");
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["snapshot"]["sequence"], first_run.commands);
    assert_eq!(v["commands"], second_run.commands);
    assert_eq!(v["digest"], format!("{:#018x}", second_run.digest));
    let skipped = v["skipped_snapshots"].as_array().unwrap();
    assert_eq!(skipped.len(), 1, "{v}");
    assert_eq!(
        skipped[0]["path"],
        snapshots[1].display().to_string(),
        "{v}"
    );

    // Tamper with both: nothing can start the replay.
    flip_middle_byte(&snapshots[0]);
    let out = cli(&["verify", d]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("starts at sequence {first}, not 1")),
        "{stderr}"
    );
    for s in &snapshots {
        assert!(stderr.contains(&s.display().to_string()), "{stderr}");
    }
}
