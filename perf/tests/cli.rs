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
        let out = tempfile::tempdir().expect("temp dir");
        let dir = out.path().to_str().expect("utf-8 path");
        let (text, json) = run(&[
            "core",
            "--commands",
            "20000",
            "--runs",
            "1",
            "--out",
            dir,
            "--json",
        ]);
        for file in ["summary.txt", "summary.json", "config.json", "machine.json"] {
            assert!(out.path().join(file).is_file(), "no {file}");
        }
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

    #[test]
    fn core_takes_warmup_duration_and_an_engine_section_from_a_configuration_file() {
        let out = tempfile::tempdir().expect("temp dir");
        let file = out.path().join("engine.toml");
        std::fs::write(&file, "[engine]\nmax_orders = 16384\ndedup_window = 4096\n").unwrap();
        let results = out.path().join("r");
        let (text, json) = run(&[
            "core",
            "--commands",
            "5000",
            "--runs",
            "1",
            "--warmup",
            "0.05",
            "--duration",
            "0.05",
            "--config",
            file.to_str().unwrap(),
            "--out",
            results.to_str().unwrap(),
            "--json",
        ]);
        assert!(text.contains("warm-up"), "{text}");
        assert_eq!(json["warmup_seconds"], 0.05);
        assert_eq!(json["min_timed_seconds"], 0.05);
        assert_eq!(json["config"]["max_orders"], 16384);
        assert_eq!(json["config"]["dedup_window"], 4096);
        // Runs go on past --runs until each subject was timed 0.05 s.
        let runs = json["risk_on"]["runs_cmds_per_sec"].as_array().unwrap();
        let seconds: f64 = runs.iter().map(|r| 5000.0 / r.as_f64().unwrap()).sum();
        assert!(seconds >= 0.05, "{seconds}");
        assert!(results.join("config.toml").is_file(), "the file is kept");
        // An engine too small for the stream is refused before anything runs.
        std::fs::write(&file, "[engine]\nmax_accounts = 10\n").unwrap();
        let refused = std::process::Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
            .args(["core", "--commands", "1000", "--config"])
            .arg(&file)
            .arg("--out")
            .arg(out.path().join("never"))
            .output()
            .unwrap();
        assert!(!refused.status.success());
        assert!(String::from_utf8_lossy(&refused.stderr).contains("max_accounts"));
        assert!(!out.path().join("never").exists());
    }
}

mod scale {
    use super::run;

    #[test]
    fn scale_loads_every_order_and_reports_per_item_memory() {
        let out = tempfile::tempdir().expect("temp dir");
        let dir = out.path().to_str().expect("utf-8 path");
        let (text, json) = run(&[
            "scale",
            "--instruments",
            "100",
            "--accounts",
            "1000",
            "--orders",
            "20000",
            "--out",
            dir,
            "--json",
        ]);
        assert!(out.path().join("summary.json").is_file());
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
            "--out",
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
        assert_eq!(results, out.path());
        let hgrm = std::fs::read_to_string(results.join(rate["hgrm"].as_str().unwrap()))
            .expect("the .hgrm file");
        assert!(hgrm.contains("Percentile") && hgrm.contains("#[Max"));
        assert!(results.join("config.json").exists());
    }
}

/// What every results folder holds, whatever the scenario.
fn assert_results_folder(dir: &std::path::Path, scenario: &str) {
    for file in [
        "summary.txt",
        "summary.json",
        "config.json",
        "machine.json",
        "latency-percentiles.svg",
        "throughput-latency.svg",
    ] {
        assert!(dir.join(file).is_file(), "{scenario}: no {file} in {dir:?}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["bench"], scenario);
    let machine: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("machine.json")).unwrap()).unwrap();
    assert!(machine["cpus"].as_u64().unwrap() >= 1);
    assert!(machine["kernel"].as_str().is_some_and(|k| !k.is_empty()));
    assert!(machine.get("governor").is_some());
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert!(config["command_line"].as_array().unwrap().len() > 1);
    for svg in ["latency-percentiles.svg", "throughput-latency.svg"] {
        let text = std::fs::read_to_string(dir.join(svg)).unwrap();
        assert!(
            text.starts_with("<svg") && text.contains("<polyline"),
            "{svg}"
        );
    }
    let percentiles = std::fs::read_to_string(dir.join("latency-percentiles.svg")).unwrap();
    assert!(percentiles.contains(">\n99%\n<") || percentiles.contains(">99%<"));
    let hgrms: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "hgrm"))
        .collect();
    assert!(!hgrms.is_empty(), "{scenario}: no .hgrm");
    for h in hgrms {
        let text = std::fs::read_to_string(h.path()).unwrap();
        assert!(
            text.contains("Percentile") && text.contains("#[Max"),
            "{h:?}"
        );
    }
}

mod journal {
    use super::{assert_results_folder, run};

    #[test]
    fn journal_compares_every_policy_with_a_raw_write_of_the_same_bytes() {
        let out = tempfile::tempdir().expect("temp dir");
        let (text, json) = run(&[
            "journal",
            "--durability",
            "none,write,fsync-ms:5",
            "--duration",
            "0.1",
            "--warmup",
            "0",
            "--max-mib",
            "8",
            "--out",
            out.path().to_str().unwrap(),
            "--json",
        ]);
        assert!(text.contains("raw MB/s"), "{text}");
        assert_eq!(json["bench"], "journal");
        let policies = json["policies"].as_array().unwrap();
        assert_eq!(policies.len(), 3);
        for (p, name) in policies.iter().zip(["none", "write", "fsync-ms:5"]) {
            assert_eq!(p["durability"], name);
            let records = p["journal"]["records"].as_u64().unwrap();
            assert!(records > 0 && records % 64 == 0, "whole batches: {records}");
            assert_eq!(p["raw"]["bytes"], p["journal"]["bytes"], "same bytes");
            assert_eq!(p["journal"]["bytes"].as_u64(), Some(records * 120));
            assert!(p["journal"]["bytes"].as_u64().unwrap() <= 8 << 20);
            assert!(p["ratio_vs_raw"].as_f64().unwrap() > 0.0);
            assert!(p["journal"]["hgrm"].as_str().unwrap().ends_with(".hgrm"));
        }
        assert_results_folder(out.path(), "journal");
        assert!(out.path().join("journal-fsync-ms_5.hgrm").is_file());
        assert!(out.path().join("raw-none.hgrm").is_file());
    }

    #[test]
    fn bad_journal_options_are_refused_with_a_message() {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
            .args(["journal", "--batch", "0", "--out"])
            .arg(std::env::temp_dir().join("ringex-perf-refused"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("batch"));
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
            .args(["journal", "--durability", "sometimes"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("durability \"sometimes\""));
    }
}

mod results {
    use super::{assert_results_folder, run};

    fn tiny_pipeline(out: &std::path::Path, rates: &str) {
        run(&[
            "pipeline",
            "--rate",
            rates,
            "--duration",
            "0.2",
            "--warmup",
            "0",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
    }

    #[test]
    fn a_pipeline_run_writes_tables_distributions_plots_config_and_machine() {
        let out = tempfile::tempdir().expect("temp dir");
        tiny_pipeline(out.path(), "5000,10000");
        assert_results_folder(out.path(), "pipeline");
        for rate in [5000, 10000] {
            assert!(out
                .path()
                .join(format!("latency-two-core-write-{rate}.hgrm"))
                .is_file());
        }
        let plot = std::fs::read_to_string(out.path().join("latency-percentiles.svg")).unwrap();
        assert!(plot.contains("5000 commands/s") && plot.contains("10000 commands/s"));
        let summary = std::fs::read_to_string(out.path().join("summary.txt")).unwrap();
        assert!(summary.contains("p99.9") && summary.contains("results:"));
    }

    #[test]
    fn without_out_a_timestamped_folder_appears_under_perf_results() {
        let cwd = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
            .current_dir(cwd.path())
            .args(["core", "--commands", "2000", "--runs", "1"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let folders: Vec<_> = std::fs::read_dir(cwd.path().join("perf-results"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(folders.len(), 1, "{folders:?}");
        assert!(folders[0].starts_with("core-20") && folders[0].ends_with('Z'));
    }

    #[test]
    fn compare_of_a_run_with_itself_gives_ratio_one_everywhere() {
        let run_dir = tempfile::tempdir().expect("temp dir");
        tiny_pipeline(run_dir.path(), "5000");
        let cmp = tempfile::tempdir().expect("temp dir");
        let a = run_dir.path().to_str().unwrap();
        let (text, json) = run(&[
            "compare",
            a,
            a,
            "--out",
            cmp.path().to_str().unwrap(),
            "--json",
        ]);
        assert!(text.contains("B/A") && text.contains("p99.9"));
        let pairs = json["pairs"].as_array().unwrap();
        assert_eq!(pairs.len(), 1);
        let percentiles = pairs[0]["percentiles"].as_array().unwrap();
        assert_eq!(percentiles.len(), 6);
        for p in percentiles {
            assert_eq!(p["ratio"].as_f64(), Some(1.0), "{p}");
            assert!(p["a_us"].as_f64().unwrap() > 0.0);
        }
        let plot = cmp.path().join(pairs[0]["plot"].as_str().unwrap());
        let svg = std::fs::read_to_string(plot).unwrap();
        let name = run_dir.path().file_name().unwrap().to_str().unwrap();
        assert!(svg.contains(&format!("A {name}")) && svg.contains(&format!("B {name}")));
        assert!(cmp.path().join("compare.txt").is_file());
    }

    #[test]
    fn compare_of_two_runs_pairs_their_distributions_and_reports_ratios() {
        let a = tempfile::tempdir().expect("temp dir");
        let b = tempfile::tempdir().expect("temp dir");
        tiny_pipeline(a.path(), "5000");
        tiny_pipeline(b.path(), "5000");
        let cmp = tempfile::tempdir().expect("temp dir");
        let (_, json) = run(&[
            "compare",
            a.path().to_str().unwrap(),
            b.path().to_str().unwrap(),
            "--out",
            cmp.path().to_str().unwrap(),
            "--json",
        ]);
        for p in json["pairs"][0]["percentiles"].as_array().unwrap() {
            let (va, vb) = (p["a_us"].as_f64().unwrap(), p["b_us"].as_f64().unwrap());
            let ratio = p["ratio"].as_f64().unwrap();
            assert!((ratio - vb / va).abs() < 1e-9);
        }
    }

    #[test]
    fn compare_of_folders_without_distributions_is_a_clear_error() {
        let a = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
            .args(["compare"])
            .arg(a.path())
            .arg(a.path().join("missing"))
            .arg("--out")
            .arg(a.path().join("cmp"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a results folder"));
    }

    #[test]
    fn all_runs_every_scenario_into_one_folder() {
        let out = tempfile::tempdir().expect("temp dir");
        let (text, json) = run(&[
            "all",
            "--commands",
            "5000",
            "--rate",
            "5000",
            "--duration",
            "0.1",
            "--warmup",
            "0",
            "--replay-commands",
            "5000",
            "--tails",
            "0,1000",
            "--recovery-orders",
            "1000",
            "--fix-rate",
            "500",
            "--subscribers",
            "3",
            "--ws-rate",
            "500",
            "--out",
            out.path().to_str().unwrap(),
            "--json",
        ]);
        assert_eq!(json["bench"], "all");
        for scenario in [
            "core", "pipeline", "journal", "replay", "recovery", "fix", "ws",
        ] {
            assert!(
                text.contains(&format!("ringex-perf {scenario}")),
                "{scenario} missing from the summary:\n{text}"
            );
            assert!(
                json[scenario].is_object(),
                "{scenario} missing from the JSON"
            );
            let summary = out.path().join(scenario).join("summary.json");
            assert!(summary.is_file(), "no {summary:?}");
        }
        assert_results_folder(&out.path().join("pipeline"), "pipeline");
        assert_results_folder(&out.path().join("journal"), "journal");
        assert!(out.path().join("fix/fix-500.hgrm").is_file());
        assert!(out.path().join("summary.txt").is_file());
    }
}

mod config {
    use super::run;
    use std::process::Command;

    fn perf(args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
            .args(args)
            .output()
            .expect("ringex-perf runs")
    }

    #[test]
    fn config_prints_the_documented_defaults_and_the_presets() {
        let out = perf(&["config"]);
        assert!(out.status.success());
        let text = String::from_utf8(out.stdout).unwrap();
        for section in ["[pipeline]", "[pipeline.engine]", "[engine]", "[journal]"] {
            assert!(text.contains(section), "no {section}");
        }
        let out = perf(&["config", "--preset", "dedicated-server"]);
        assert!(String::from_utf8(out.stdout).unwrap().contains("busy-spin"));
        let out = perf(&["config", "--check", "dedicated-server"]);
        let resolved = String::from_utf8(out.stdout).unwrap();
        assert!(
            resolved.contains("durability = \"fsync-batch\"")
                && resolved.contains("max_price_levels")
        );
        assert!(!perf(&["config", "--preset", "eight-core"]).status.success());
    }

    #[test]
    fn a_pipeline_run_uses_a_configuration_file_and_keeps_a_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("ringex.toml");
        std::fs::write(
            &file,
            "[pipeline]\ninput_ring_size = 1024\n[pipeline.engine]\nwait = \"sleep:20\"\n[journal]\ndurability = \"none\"\n",
        )
        .unwrap();
        let out = tmp.path().join("run");
        let (text, json) = run(&[
            "pipeline",
            "--rate",
            "5000",
            "--duration",
            "0.2",
            "--warmup",
            "0",
            "--config",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--json",
        ]);
        assert!(text.contains("stages config, durability none"), "{text}");
        assert_eq!(
            json["options"]["config"]["pipeline"]["input_ring_size"],
            1024
        );
        assert_eq!(
            json["options"]["config"]["pipeline"]["engine"]["wait"],
            "sleep:20"
        );
        assert_eq!(json["rates"][0]["healthy"], true);
        assert_eq!(
            std::fs::read_to_string(out.join("config.toml")).unwrap(),
            std::fs::read_to_string(&file).unwrap()
        );
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(config["config_file"].as_str(), file.to_str());
    }

    #[test]
    fn bad_configuration_files_are_refused_before_anything_runs() {
        let tmp = tempfile::tempdir().unwrap();
        for (text, needle) in [
            ("[pipeline]\nring = 3\n", "ring"),
            ("[engine]\nmax_accounts = 10\n", "max_accounts"),
        ] {
            let file = tmp.path().join("bad.toml");
            std::fs::write(&file, text).unwrap();
            let out = perf(&[
                "pipeline",
                "--rate",
                "1000",
                "--duration",
                "0.1",
                "--config",
                file.to_str().unwrap(),
                "--out",
                tmp.path().join("never").to_str().unwrap(),
            ]);
            assert!(!out.status.success());
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains(needle), "{text}: {err}");
            assert!(
                !tmp.path().join("never").exists(),
                "no results folder for a refused run"
            );
        }
        let out = perf(&["pipeline", "--preset", "two-core", "--config", "two-core"]);
        assert!(!out.status.success(), "--preset and --config conflict");
    }
}

mod replay {
    use super::run;

    #[test]
    fn replay_reproduces_the_live_digest_and_verifies_the_output_journal() {
        let out = tempfile::tempdir().expect("temp dir");
        let results = out.path().join("results");
        let session = out.path().join("session");
        let args = |session: &std::path::Path| {
            vec![
                "replay".to_string(),
                "--commands".into(),
                "20000".into(),
                "--runs".into(),
                "2".into(),
                "--warmup".into(),
                "0".into(),
                "--journal".into(),
                session.display().to_string(),
                "--out".into(),
                results.display().to_string(),
                "--json".into(),
            ]
        };
        let argv = args(&session);
        let (text, json) = run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
        for file in [
            "summary.txt",
            "summary.json",
            "config.json",
            "machine.json",
            "replay-progress.svg",
        ] {
            assert!(results.join(file).is_file(), "no {file}");
        }
        assert!(!text.contains("NO"), "{text}");
        assert_eq!(json["bench"], "replay");
        let commands = json["session"]["commands"].as_u64().unwrap();
        assert_eq!(
            commands,
            json["session"]["setup_commands"].as_u64().unwrap() + 20_000
        );
        assert!(json["session"]["events"].as_u64().unwrap() > commands);
        assert_eq!(json["kept"], true);
        let modes = json["modes"].as_array().unwrap();
        assert_eq!(modes.len(), 2);
        for (m, name) in modes.iter().zip(["replay", "verify"]) {
            assert_eq!(m["mode"], name);
            assert_eq!(m["matches_live"], true, "{name}");
            assert!(m["commands_per_sec"].as_f64().unwrap() > 0.0);
            assert!(m["mb_per_sec"].as_f64().unwrap() > 0.0);
            for r in m["runs"].as_array().unwrap() {
                assert_eq!(r["commands"].as_u64(), Some(commands));
                assert_eq!(r["digest"], json["session"]["live_digest"]);
            }
        }
        // The kept session is reused, and `ringex-replay verify` would read
        // it: the input journal there and the output journal in events/.
        assert!(session.join("ringex-perf-replay.json").is_file());
        let engine: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(session.join("engine.json")).unwrap())
                .unwrap();
        assert_eq!(engine, json["session"]["engine"]);
        assert_eq!(engine["risk"], "enabled");
        assert!(session.join("events").is_dir());
        let (_, again) = run(&argv.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(again["generate_seconds"].is_null());
        assert_eq!(
            again["session"]["live_digest"],
            json["session"]["live_digest"]
        );
    }

    #[test]
    fn recovery_restores_every_tail_to_the_clean_replays_state() {
        let out = tempfile::tempdir().expect("temp dir");
        let dir = out.path().to_str().expect("utf-8 path");
        let (text, json) = run(&[
            "recovery",
            "--tails",
            "0,2000,10000",
            "--orders",
            "500",
            "--accounts",
            "100",
            "--runs",
            "1",
            "--warmup",
            "0",
            "--out",
            dir,
            "--json",
        ]);
        for file in [
            "summary.txt",
            "summary.json",
            "config.json",
            "machine.json",
            "recovery-time.svg",
        ] {
            assert!(out.path().join(file).is_file(), "no {file}");
        }
        assert!(!text.contains("DIFFERS"), "{text}");
        assert_eq!(json["bench"], "recovery");
        assert_eq!(json["snapshot"]["sequence"], 1 + 3 * 100 + 500);
        assert!(json["snapshot"]["bytes"].as_u64().unwrap() > 0);
        assert_eq!(json["kept"], false);
        let tails = json["tails"].as_array().unwrap();
        assert_eq!(tails.len(), 3);
        let mut digests = Vec::new();
        for (t, len) in tails.iter().zip([0u64, 2000, 10000]) {
            assert_eq!(t["tail"].as_u64(), Some(len));
            assert_eq!(t["digest_matches"], true, "tail {len}");
            let startup = t["startup_ms"].as_f64().unwrap();
            assert!(startup > 0.0);
            digests.push(t["clean_digest"].as_u64().unwrap());
        }
        digests.dedup();
        assert_eq!(digests.len(), 3, "each tail ends in its own state");
    }

    #[test]
    fn bad_replay_and_recovery_options_fail_cleanly_before_any_work() {
        let out = tempfile::tempdir().expect("temp dir");
        let results = out.path().join("results");
        let results = results.to_str().expect("utf-8 path");
        let foreign = out.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(foreign.join("keep-me"), "x").unwrap();
        let foreign = foreign.to_str().expect("utf-8 path");
        for args in [
            &["replay", "--runs", "0", "--out", results][..],
            &["replay", "--commands", "0", "--out", results],
            &["replay", "--duration", "-1", "--out", results],
            &[
                "replay",
                "--commands",
                "100",
                "--journal",
                foreign,
                "--out",
                results,
            ],
            &["recovery", "--orders", "0", "--out", results],
            &["recovery", "--tails", "5,x", "--out", results],
            &["recovery", "--warmup", "100", "--out", results],
        ] {
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_ringex-perf"))
                .args(args)
                .output()
                .expect("ringex-perf runs");
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{args:?} succeeded");
            assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        }
        assert!(out.path().join("foreign/keep-me").is_file());
        assert_eq!(
            std::fs::read_dir(out.path().join("foreign"))
                .unwrap()
                .count(),
            1
        );
    }
}
