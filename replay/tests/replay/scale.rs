//! Replay determinism at scale: a long random session (300,000 commands
//! over three binary markets and two spot pairs, through a real pipeline
//! with its timer on) verifies byte for byte. The same check on millions
//! of commands: `ringex-replay generate DIR --commands 3000000` then
//! `ringex-replay verify DIR` (docs/replay.md has the measured speed).

use crate::support::*;
use ringex_core::pipeline::PipelineConfig;
use ringex_replay::{verify, SessionPaths, Verdict};
use std::time::Duration;

#[test]
fn a_long_random_session_through_the_pipeline_verifies_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    // The production preset as is (64 MiB segments, Write durability), with
    // a fast timer so GTD expiries come from journaled timer ticks.
    let config =
        PipelineConfig::two_core_default(dir.path()).with_timer(Some(Duration::from_millis(5)));
    let session = run_session_with(config, 300_000, 41);
    assert!(session.commands > 300_000);
    let report = verify(&SessionPaths::new(dir.path(), None), engine(), None).unwrap();
    assert_eq!(report.verdict(true), Verdict::Ok, "{:?}", report.divergence);
    assert_eq!(report.commands, session.commands);
    assert_eq!(report.events, session.events);
    assert_eq!(report.matched, session.events);
    assert_eq!(report.output.records(), session.events);
    assert_eq!(report.digest, session.digest);
    eprintln!(
        "scale: {} commands, {} events verified in {:.2} s ({:.0} commands/s; chain checks {:.2} s)",
        report.commands,
        report.events,
        report.replay_elapsed.as_secs_f64(),
        report.commands_per_sec(),
        report.check_elapsed.as_secs_f64()
    );
}
