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
