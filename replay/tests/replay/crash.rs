//! Crash tests with real processes: `ringex-crashload` runs the pipeline
//! under a random load (five instruments, binary and spot) and reports the
//! commands whose events reached its sink; the test `kill -9`s it at random
//! points (now and then during start-up), restarts it on the same journal,
//! and checks that
//!
//! - every command whose events were published was recovered,
//! - the state digest after each restart equals a clean replay's,
//! - after the last kill, a restart reconciles the output journal and
//!   `ringex-replay verify --require-complete` passes byte for byte.

use crate::support::*;
use ringex_core::pipeline::{Pipeline, PipelineConfig};
use ringex_replay::generate::Rng;
use ringex_replay::replay_digest;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

const KILLS: u64 = 20;

struct Victim {
    child: Child,
    lines: Receiver<String>,
}

fn spawn(dir: &std::path::Path, seed: u64, durability: &str) -> Victim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringex-crashload"))
        .arg(dir)
        .args(["--seed", &seed.to_string(), "--durability", durability])
        .args(["--rate", "40000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ringex-crashload");
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Victim { child, lines }
}

/// `ready replayed=R next=N digest=0x..` → (R, digest).
fn parse_ready(line: &str) -> (u64, u64) {
    let field = |name: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {line:?}"))
            .to_string()
    };
    let replayed = field("replayed=").parse().unwrap();
    let digest = u64::from_str_radix(field("digest=").trim_start_matches("0x"), 16).unwrap();
    (replayed, digest)
}

#[test]
fn kill_9_at_random_points_loses_no_published_command_and_replays_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut rng = Rng::new(0xC0FFEE);
    let mut published = 0u64; // highest command whose events were seen
    let (mut restarts_checked, mut runs_that_published) = (0, 0);
    for round in 0..KILLS {
        let durability = if round % 2 == 0 { "write" } else { "fsync" };
        let mut victim = spawn(dir.path(), round, durability);
        let early_kill = round % 5 == 4;
        let mut ready = None;
        if early_kill {
            // Kill during start-up: journal recovery, replay, output
            // journal reconciliation.
            std::thread::sleep(Duration::from_millis(rng.below(30)));
        } else {
            let line = victim
                .lines
                .recv_timeout(Duration::from_secs(60))
                .expect("ringex-crashload did not get ready");
            ready = Some(parse_ready(&line));
            std::thread::sleep(Duration::from_millis(40 + rng.below(260)));
        }
        victim.child.kill().unwrap(); // SIGKILL
        victim.child.wait().unwrap();
        let mut run_published = 0;
        loop {
            match victim.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => {
                    if let Some(s) = line.strip_prefix("published ") {
                        run_published = run_published.max(s.parse::<u64>().unwrap());
                    } else if line.starts_with("ready") {
                        ready = Some(parse_ready(&line));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("stdout of a killed child stays open"),
            }
        }
        if let Some((replayed, digest)) = ready {
            // Everything published before this start was recovered...
            assert!(
                replayed >= published,
                "round {round}: replayed {replayed} < published {published}"
            );
            // ...into the state a clean replay of those commands gives.
            let (n, clean) = replay_digest(dir.path(), engine(), Some(replayed)).unwrap();
            assert_eq!(n, replayed, "round {round}");
            assert_eq!(digest, clean, "round {round}: digest after restart");
            restarts_checked += 1;
        }
        if run_published > 0 {
            runs_that_published += 1;
        }
        published = published.max(run_published);
    }
    assert!(restarts_checked >= 16, "{restarts_checked}");
    assert!(runs_that_published >= 10, "{runs_that_published}");
    assert!(published > 10_000, "the load was too light: {published}");

    // A last, clean restart: recovery, then the output journal is
    // reconciled (the missing tail appended) and the session verifies.
    let pipeline = Pipeline::start(PipelineConfig::two_core_default(dir.path()).with_timer(None))
        .expect("restart after the last kill");
    let startup = pipeline.startup().clone();
    assert!(startup.replayed >= published);
    assert_eq!(startup.output.error, None);
    let report = pipeline.shutdown();
    assert!(report.health.is_ok(), "{:?}", report.health);
    let (n, clean) = replay_digest(dir.path(), engine(), None).unwrap();
    assert_eq!((n, clean), (startup.replayed, startup.digest_after_replay));
    assert_eq!(report.engine.unwrap().state_digest(), clean);
    let out = cli(&["verify", dir.path().to_str().unwrap(), "--require-complete"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
    eprintln!(
        "crash test: {KILLS} kills, {restarts_checked} restarts checked, {n} commands, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
