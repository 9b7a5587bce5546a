//! The `ringex-perf` binary, end to end: each subcommand runs on a small
//! load and ends its output with one JSON object.

use std::process::Command;

fn run(args: &[&str]) -> (String, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
        .args(args)
        .output()
        .expect("ringex-perf runs");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    assert!(
        out.status.success(),
        "ringex-perf {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().expect("some output");
    let json = serde_json::from_str(last).expect("last line is JSON");
    (stdout, json)
}

mod core {
    use super::run;

    #[test]
    fn core_times_three_subjects_and_they_agree_on_trades() {
        let (text, json) = run(&["core", "--commands", "20000", "--runs", "1", "--json"]);
        assert!(text.contains("engine, risk on") && text.contains("engine, risk off"));
        assert!(!text.contains("WARNING"), "{text}");
        assert_eq!(json["bench"], "core");
        assert_eq!(json["stream"]["commands"], 20_000);
        assert_eq!(json["stream"]["rejects"], 0);
        let on = json["risk_on"]["trades"].as_u64().unwrap();
        assert!(on > 0);
        assert_eq!(json["risk_off"]["trades"].as_u64(), Some(on));
        assert_eq!(json["reference"]["trades"].as_u64(), Some(on));
        assert_eq!(json["reference_trades_match"], true);
        assert!(json["risk_on"]["cmds_per_sec"].as_f64().unwrap() > 0.0);
        assert!(json["ratio_risk_off_vs_reference"].as_f64().unwrap() > 0.0);
    }
}

mod scale {
    use super::run;

    #[test]
    fn scale_loads_every_order_and_reports_per_item_memory() {
        let (text, json) = run(&[
            "scale",
            "--instruments",
            "100",
            "--accounts",
            "1000",
            "--orders",
            "20000",
            "--json",
        ]);
        assert!(text.contains("per resting order"));
        assert_eq!(json["bench"], "scale");
        assert_eq!(json["open_orders"], 20_000);
        assert_eq!(json["positions"], 1_000);
        assert!(json["engine_bytes_per_order_capacity"].as_f64().unwrap() > 0.0);
        assert_eq!(json["phases"].as_array().unwrap().len(), 4);
    }
}

mod demo {
    use super::run;

    #[test]
    fn demo_shows_both_books_and_trades_without_rejects() {
        let (text, json) = run(&["demo", "--seconds", "2", "--taker-rate", "20", "--json"]);
        assert!(text.contains("binary #1") && text.contains("spot #2"));
        assert!(text.contains("bid") && text.contains("ask"));
        assert_eq!(json["rejects"], 0);
        assert!(json["commands"].as_u64().unwrap() > 0);
    }
}

mod pipeline {
    use super::run;

    #[test]
    fn pipeline_reports_open_loop_percentiles_and_writes_a_histogram() {
        let out = tempfile::tempdir().expect("temp dir");
        let dir = out.path().to_str().expect("utf-8 path");
        let (text, json) = run(&[
            "pipeline",
            "--rate",
            "20000",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--out-dir",
            dir,
            "--json",
        ]);
        for column in ["p50", "p90", "p99", "p99.9", "p99.99", "max"] {
            assert!(text.contains(column), "no {column} in:\n{text}");
        }
        assert_eq!(json["bench"], "pipeline");
        let rate = &json["rates"][0];
        assert_eq!(rate["target_rate"], 20_000);
        assert_eq!(rate["measured_commands"], 20_000);
        assert_eq!(rate["healthy"], true);
        assert_eq!(rate["sink_dropped"], 0);
        // Every command sent was completed (timing is not asserted).
        let completed = rate["completed"].as_u64().unwrap();
        assert_eq!(completed + rate["unsent"].as_u64().unwrap(), 20_000);
        assert_eq!(rate["latency"]["count"].as_u64(), Some(completed));
        assert!(
            rate["latency"]["p50"].as_u64().unwrap() <= rate["latency"]["max"].as_u64().unwrap()
        );
        let results = std::path::Path::new(json["results_dir"].as_str().unwrap());
        let hgrm = std::fs::read_to_string(results.join(rate["hgrm"].as_str().unwrap()))
            .expect("the .hgrm file");
        assert!(hgrm.contains("Percentile") && hgrm.contains("#[Max"));
        assert!(results.join("config.json").exists());
    }
}
