//! `ringex-perf fix` end to end at a tiny size: the acceptor, the pipeline,
//! the load generator and the TCP baseline run, every order gets its
//! ExecutionReport, and the results folder holds what the docs promise.
//! Functional only: nothing here depends on how fast the machine is.

use std::process::Command;

#[test]
fn the_fix_scenario_answers_every_order_and_writes_its_results() {
    let out = tempfile::tempdir().expect("temp dir");
    let dir = out.path().join("fix");
    let run = Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
        .args([
            "fix",
            "--rate",
            "1000",
            "--sessions",
            "1,2",
            "--duration",
            "1",
            "--warmup",
            "0.2",
            "--window",
            "16",
            "--durability",
            "none",
            "--json",
            "--out",
        ])
        .arg(&dir)
        .output()
        .expect("ringex-perf runs");
    let stdout = String::from_utf8(run.stdout).expect("utf-8 output");
    assert!(
        run.status.success(),
        "ringex-perf fix failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_str(stdout.lines().last().expect("output")).expect("JSON last line");
    assert_eq!(json["bench"], "fix");

    let pair = &json["rates"][0];
    for wire in ["fix", "tcp"] {
        let run = &pair[wire];
        // 200 warm-up + 1000 measured orders, all sent and all answered.
        assert_eq!(run["sent"], 1200, "{wire}: {run}");
        assert_eq!(run["answered"], 1200, "{wire}: {run}");
        assert_eq!(run["rejected"], 0, "{wire}: {run}");
        assert_eq!(run["latency"]["count"], 1000, "{wire}: {run}");
        assert!(run["latency"]["p50"].as_u64().unwrap() > 0, "{wire}: {run}");
    }
    // The baseline uses the sizes the FIX run saw.
    let size = |w: &str, k: &str| pair[w][k].as_f64().unwrap().round();
    assert_eq!(size("fix", "request_bytes"), size("tcp", "request_bytes"));
    assert_eq!(size("fix", "reply_bytes"), size("tcp", "reply_bytes"));
    assert!(size("fix", "request_bytes") > 100.0, "{pair}");

    let throughput = json["throughput"].as_array().expect("throughput runs");
    assert_eq!(throughput.len(), 2);
    for (t, sessions) in throughput.iter().zip([1, 2]) {
        assert_eq!(t["sessions"], sessions);
        assert!(t["sent"].as_u64().unwrap() > 0, "{t}");
        assert_eq!(t["unanswered"], 0, "{t}");
        assert_eq!(t["rejected"], 0, "{t}");
        assert!(t["answered_in_window"].as_u64().unwrap() > 0, "{t}");
    }

    for file in [
        "summary.txt",
        "summary.json",
        "config.json",
        "machine.json",
        "fix-1000.hgrm",
        "tcp-1000.hgrm",
        "latency-percentiles.svg",
        "throughput-latency.svg",
    ] {
        let path = dir.join(file);
        let len = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .len();
        assert!(len > 0, "{} is empty", path.display());
    }
    let hgrm = std::fs::read_to_string(dir.join("fix-1000.hgrm")).unwrap();
    assert!(hgrm.contains("Total count    =         1000"), "{hgrm}");
    let summary = std::fs::read_to_string(dir.join("summary.txt")).unwrap();
    assert!(!summary.contains("WARNING"), "{summary}");
}
