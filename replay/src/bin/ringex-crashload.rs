//! `ringex-crashload DIR`: the crash tests' victim. Runs the pipeline
//! (`two_core_default`, 4 MiB segments) on the journal in DIR under a
//! random load of commands until it is killed, and reports on standard
//! output:
//!
//! ```text
//! ready replayed=<n> next=<sequence> digest=<hex>   (after start-up)
//! published <sequence>                               (repeatedly)
//! ```
//!
//! `published S` means the events of every command up to S reached this
//! process through a sink, so those commands were journaled (the durability
//! invariant) and must survive a `kill -9`. Lines are flushed as written.
//!
//! Options: `--seed N`, `--durability write|fsync`, `--rate N` (commands
//! per second, default 50,000), `--max-commands N` (then shut down cleanly
//! and print `done`).

use ringex_core::pipeline::{wall_clock_ns, OverflowPolicy, Pipeline, PipelineConfig, SubmitError};
use ringex_journal::DurabilityPolicy;
use ringex_replay::generate::{SessionGenerator, SessionParams};
use std::io::Write;
use std::time::{Duration, Instant};

fn main() {
    if let Err(e) = run() {
        eprintln!("ringex-crashload: {e}");
        std::process::exit(2);
    }
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a value")),
        None => Ok(default),
    }
}

/// The pipeline configuration the crash tests run (and restart) with.
fn config(dir: &str, durability: DurabilityPolicy) -> PipelineConfig {
    let mut config = PipelineConfig::two_core_default(dir).with_durability(durability);
    config.journal = config.journal.with_segment_size(4 << 20);
    config
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).ok_or("usage: ringex-crashload DIR [--seed N] [--durability write|fsync] [--rate N] [--max-commands N]")?;
    let seed: u64 = arg(&args, "--seed", 1)?;
    let rate: u64 = arg(&args, "--rate", 50_000)?;
    let max: u64 = arg(&args, "--max-commands", u64::MAX)?;
    let durability = match arg(&args, "--durability", "write".to_string())?.as_str() {
        "write" => DurabilityPolicy::Write,
        "fsync" => DurabilityPolicy::FsyncPerBatch,
        other => return Err(format!("unknown durability {other}")),
    };
    let pipeline = Pipeline::start(config(dir, durability)).map_err(|e| e.to_string())?;
    let startup = pipeline.startup().clone();
    let sink = pipeline.register_sink("crash-test", 1 << 16, OverflowPolicy::DropNewest);
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "ready replayed={} next={} digest={:#x}",
            startup.replayed, startup.next_sequence, startup.digest_after_replay
        )
        .and_then(|_| out.flush())
        .map_err(|e| e.to_string())?;
    }
    // The sink thread: reports the highest command sequence whose events
    // arrived, once per drained batch.
    let reporter = std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        let mut reported = 0u64;
        while let Ok(event) = sink.receiver.recv() {
            let mut highest = event.sequence;
            while let Ok(e) = sink.receiver.try_recv() {
                highest = highest.max(e.sequence);
            }
            // Every event of a command precedes the next command's, so
            // only commands before `highest` are known to be complete.
            let complete = highest - 1;
            if complete > reported {
                reported = complete;
                if writeln!(out, "published {reported}")
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    return;
                }
            }
        }
    });

    let mut sender = pipeline.sender();
    let mut generator = SessionGenerator::new(SessionParams {
        // A fresh range of client order ids per run.
        first_client_order_id: startup.next_sequence << 8,
        ..SessionParams::new(seed)
    });
    let submit = |sender: &mut ringex_core::pipeline::CommandSender, cmd| loop {
        match sender.try_submit(cmd) {
            Ok(_) => return Ok(()),
            Err(SubmitError::Busy) => std::thread::sleep(Duration::from_micros(100)),
            Err(e) => return Err(e.to_string()),
        }
    };
    if startup.next_sequence == 1 {
        for cmd in generator.setup() {
            submit(&mut sender, cmd)?;
        }
    }
    let started = Instant::now();
    let burst = 256u64;
    let mut sent = 0u64;
    while sent < max {
        let now = wall_clock_ns();
        for _ in 0..burst.min(max - sent) {
            submit(&mut sender, generator.next_command(now))?;
            sent += 1;
        }
        // Hold the rate: at `rate` commands/s, `sent` should take this long.
        let due = Duration::from_secs_f64(sent as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    drop(sender);
    let report = pipeline.shutdown();
    let _ = reporter.join();
    if !report.health.is_ok() {
        return Err(format!("pipeline health: {:?}", report.health));
    }
    println!("done");
    Ok(())
}
