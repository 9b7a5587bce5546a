//! `ringex-perf ws` end to end at a tiny size: the results folder is
//! complete and the counts are consistent (every subscriber got updates,
//! no `seq` rule broken), with the subscribers in their own process. A
//! subscriber process that dies ends the run with an error naming it, and
//! the hidden subcommand refuses a bad table. Functional tests: no timing
//! is asserted beyond "it does not hang".

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn ws_fans_out_to_every_subscriber_and_writes_its_results_folder() {
    let out = tempfile::tempdir().expect("temp dir");
    let dir = out.path().join("ws");
    let run = Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
        .args([
            "ws",
            "--subscribers",
            "5,20",
            "--rate",
            "2000",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--live-orders",
            "50",
            "--json",
            "--out",
        ])
        .arg(&dir)
        .output()
        .expect("ringex-perf runs");
    let stdout = String::from_utf8(run.stdout).expect("utf-8 output");
    assert!(
        run.status.success(),
        "ringex-perf ws failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for file in [
        "summary.txt",
        "summary.json",
        "config.json",
        "machine.json",
        "latency-ws-5.hgrm",
        "latency-ws-20.hgrm",
        "latency-percentiles.svg",
    ] {
        assert!(dir.join(file).is_file(), "no {file}");
    }
    let json: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("output")).expect("JSON last line");
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("summary.json")).expect("summary.json"),
    )
    .expect("summary.json is JSON");
    assert_eq!(saved["fanout"], json["fanout"]);
    assert_eq!(json["bench"], "ws");
    let fanout = json["fanout"].as_array().expect("fanout");
    assert_eq!(fanout.len(), 2);
    for (phase, n) in fanout.iter().zip([5u64, 20]) {
        assert_eq!(phase["subscribers"], n, "{phase}");
        assert_eq!(phase["seq_errors"], 0, "{phase}");
        assert_eq!(phase["subscribers_without_updates"], 0, "{phase}");
        assert_eq!(phase["closed"], 0, "{phase}");
        assert_eq!(phase["sink_dropped"], 0, "{phase}");
        let measured = phase["measured_updates"].as_u64().unwrap();
        assert!(measured > 0, "{phase}");
        let deltas = phase["deltas"].as_u64().unwrap();
        // Every delivered delta was matched to a command of the window,
        // and no subscriber got one more than once.
        assert!(deltas > 0 && deltas <= measured * n, "{phase}");
        assert_eq!(phase["latency"]["count"].as_u64(), Some(deltas), "{phase}");
        assert!(phase["min_updates_per_subscriber"].as_u64().unwrap() > 0);
    }
    let phases = json["stall"]["phases"].as_array().expect("stall phases");
    assert_eq!(phases.len(), 2);
    assert_eq!(phases[0]["stalled_client"], false);
    assert_eq!(phases[1]["stalled_client"], true);
    for p in phases {
        assert!(p["engine_rate"].as_f64().unwrap() > 0.0, "{p}");
    }
    let text = std::fs::read_to_string(dir.join("summary.txt")).expect("summary.txt");
    assert!(text.contains("ratio (stalled / none)"), "{text}");
    assert!(
        std::fs::read_to_string(dir.join("latency-percentiles.svg"))
            .expect("svg")
            .contains("20 subscribers"),
        "one line per subscriber count"
    );
}

#[test]
fn a_subscriber_process_that_dies_ends_the_run_with_a_clear_error() {
    let out = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let run = Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
        .args([
            "ws",
            "--subscribers",
            "5",
            "--rate",
            "1000",
            "--duration",
            "0.5",
            "--warmup",
            "0",
            "--live-orders",
            "20",
            "--out",
        ])
        .arg(out.path().join("ws"))
        .env("RINGEX_PERF_WS_CHILD_EXIT", "after-ready")
        .output()
        .expect("ringex-perf runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "the run must fail:\n{stderr}");
    assert!(
        stderr.contains("subscriber process") && stderr.contains("exit status: 3"),
        "the error names the child and its exit status:\n{stderr}"
    );
    assert!(
        stderr.contains("exiting after ready"),
        "the error carries the child's stderr:\n{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "bounded waits: {:?}",
        started.elapsed()
    );
}

#[test]
fn the_subscriber_subcommand_refuses_a_file_that_is_not_a_table() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bogus = dir.path().join("not-a-table");
    std::fs::write(&bogus, [0u8; 64]).expect("write");
    let run = Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
        .args([
            "ws-subscribers",
            "--addr",
            "127.0.0.1:9",
            "--subscribers",
            "1",
            "--client-threads",
            "1",
            "--shared",
        ])
        .arg(&bogus)
        .output()
        .expect("ringex-perf runs");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(stderr.contains("not a submit-time table"), "{stderr}");
}
