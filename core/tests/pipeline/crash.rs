//! Crash recovery with real processes and snapshots: a child process runs
//! the pipeline under load with frequent periodic snapshots and is killed
//! with SIGKILL at varying points; after each kill a new pipeline must
//! start (from a snapshot when one fits, else by full replay), reach the
//! state digest of a clean replay of the input journal, and leave an
//! output journal equal to that replay byte for byte.
//!
//! The child is this test binary re-run with the ignored
//! `crash_child_runs_the_pipeline_until_killed` test selected and the
//! working directory passed in the environment.

use crate::support::*;
use ringex_core::pipeline::{Pipeline, PipelineConfig, JOURNAL_KIND_EVENT};
use ringex_core::records::*;
use ringex_journal::JournalReader;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

const DIR_VAR: &str = "RINGEX_CRASH_CHILD_DIR";
const ROUND_VAR: &str = "RINGEX_CRASH_CHILD_ROUND";

fn crash_config(dir: &Path) -> PipelineConfig {
    config(dir)
        .with_snapshot_every(Some(150))
        .with_snapshot_on_shutdown(true)
}

fn started_marker(dir: &Path, round: u64) -> PathBuf {
    dir.join(format!("child-{round}.started"))
}

#[test]
#[ignore = "the child process of the crash test; it runs only when that test starts it"]
fn crash_child_runs_the_pipeline_until_killed() {
    let dir = PathBuf::from(std::env::var(DIR_VAR).expect("started by the crash test"));
    let round: u64 = std::env::var(ROUND_VAR).unwrap().parse().unwrap();
    let pipeline = Pipeline::start(crash_config(&dir)).unwrap();
    std::fs::write(started_marker(&dir, round), b"").unwrap();
    let mut sender = pipeline.sender();
    // Bounded even if nobody kills it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut chunk = 0u64;
    while Instant::now() < deadline {
        let first_client_id = 1_000_000 * (round + 1) + chunk * 100;
        let mut cmds = orders(first_client_id, 40);
        cmds.push(Command::cancel_by_client_id(7, first_client_id));
        cmds.push(Command::cancel_by_client_id(8, first_client_id + 3));
        submit_all(&mut sender, &cmds);
        chunk += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    drop(sender);
    drop(pipeline.shutdown());
}

fn output_matches_a_replay(config: &PipelineConfig) {
    let records = JournalReader::open(config.output_journal_path(), 1)
        .unwrap()
        .read_to_end()
        .unwrap();
    let commands = journaled_commands(&config.journal_dir);
    let (events, _) = replay(&commands);
    assert_eq!(records.len(), events.len(), "one output record per event");
    for (i, (r, e)) in records.iter().zip(&events).enumerate() {
        assert_eq!(
            (r.sequence, r.kind),
            (i as u64 + 1, JOURNAL_KIND_EVENT),
            "record {i}"
        );
        assert_eq!(&r.payload[..], bytemuck::bytes_of(e), "event {}", i + 1);
    }
}

#[test]
fn killed_pipelines_restart_from_snapshots_to_the_state_of_a_clean_replay() {
    let dir = tempfile::tempdir().unwrap();
    let config = crash_config(dir.path());
    // The market, set up cleanly.
    let pipeline = Pipeline::start(config.clone()).unwrap();
    let mut sender = pipeline.sender();
    submit_all(&mut sender, &market());
    drop(sender);
    drop(pipeline.shutdown());

    let exe = std::env::current_exe().unwrap();
    let mut restored_from_snapshot = 0;
    let mut replayed_total = 0;
    for round in 0..5u64 {
        let mut child = Process::new(&exe)
            .args([
                "crash::crash_child_runs_the_pipeline_until_killed",
                "--exact",
                "--ignored",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .env(ROUND_VAR, round.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + TIMEOUT;
        while !started_marker(dir.path(), round).exists() {
            assert!(Instant::now() < deadline, "the child did not start");
            assert!(
                child.try_wait().unwrap().is_none(),
                "the child exited early"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        // Kill it at a different point of its run each round.
        std::thread::sleep(Duration::from_millis(60 + 90 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let pipeline = Pipeline::start(config.clone()).unwrap();
        let startup = pipeline.startup().clone();
        if startup.snapshot.is_some() {
            restored_from_snapshot += 1;
        }
        replayed_total += startup.replayed;
        let commands = journaled_commands(dir.path());
        let (_, clean) = replay(&commands);
        assert_eq!(
            startup.digest_after_replay,
            clean.state_digest(),
            "round {round}: {startup:?}"
        );
        assert_eq!(startup.next_sequence, commands.len() as u64 + 1);
        assert!(startup.output.error.is_none(), "{:?}", startup.output);
        // No commands in this run: its shutdown snapshot is at the last
        // journaled command.
        let report = pipeline.shutdown();
        assert!(report.health.is_ok(), "{:?}", report.health);
        output_matches_a_replay(&config);
    }
    assert!(
        restored_from_snapshot >= 3,
        "only {restored_from_snapshot} of 5 restarts used a snapshot"
    );
    assert!(
        replayed_total > 0,
        "no restart had a journal tail to replay"
    );
}
