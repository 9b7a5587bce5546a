//! `ringex-perf`: throughput, scale and a live demo of the ringex engine.
//! See the library docs and `docs/performance.md`.

use std::io::IsTerminal;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ringex_perf::demo::{run_demo, DemoOptions};
use ringex_perf::pipeline::{render_pipeline, run_pipeline, Durability, PipelineOptions, Preset};
use ringex_perf::scale::{render_scale, run_scale, ScaleOptions};
use ringex_perf::throughput::{render_core, run_core, CoreOptions};

#[derive(Parser, Debug)]
#[command(name = "ringex-perf", version, about = "Measure the ringex engine")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Throughput on an exchange-core-shaped stream: engine risk on, risk off, reference model.
    Core(CoreArgs),
    /// Memory and load time with many markets, accounts and resting orders.
    Scale(ScaleArgs),
    /// Open-loop latency at fixed rates through ring -> journal -> engine -> publisher.
    Pipeline(PipelineArgs),
    /// A live binary and spot market in the terminal (market maker + takers).
    Demo(DemoArgs),
}

#[derive(Args, Debug)]
struct CoreArgs {
    /// Measured commands (after an untimed setup phase).
    #[arg(long, default_value_t = 3_000_000)]
    commands: usize,
    /// Stream seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Timed runs per subject, interleaved; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Engine order capacity (default: the engine's default, 262,144).
    #[arg(long)]
    max_orders: Option<u32>,
    /// Engine dedup window of finished client order ids (default: the engine's default, 262,144).
    #[arg(long)]
    dedup_window: Option<u32>,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct ScaleArgs {
    /// Binary markets.
    #[arg(long, default_value_t = 10_000)]
    instruments: u32,
    /// Accounts.
    #[arg(long, default_value_t = 100_000)]
    accounts: u32,
    /// Resting orders.
    #[arg(long, default_value_t = 1_000_000)]
    orders: u64,
    /// Markets each account trades (one position record each).
    #[arg(long, default_value_t = 1)]
    instruments_per_account: u32,
    /// Asset slots per account.
    #[arg(long, default_value_t = 2)]
    assets: u16,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct PipelineArgs {
    /// Target rates in commands/s (repeatable or comma-separated); each gets a fresh pipeline.
    #[arg(long = "rate", value_delimiter = ',', default_values_t = [100_000u64, 500_000, 1_000_000])]
    rates: Vec<u64>,
    /// Measured seconds per rate.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds per rate (sent, not recorded).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Journal durability: none | write | fsync-batch | fsync-ms:N.
    #[arg(long, default_value = "write")]
    durability: Durability,
    /// Stage preset: two-core | dedicated:J,E,P (core ids of journaler, engine, publisher).
    #[arg(long, default_value = "two-core")]
    preset: Preset,
    /// Stream seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most commands one rate may offer (warm-up plus measured; the measured window shrinks to fit).
    #[arg(long, default_value_t = 12_000_000)]
    max_commands: usize,
    /// Directory for the journals (a fresh temporary one per rate inside it; default: the system temp dir).
    #[arg(long)]
    journal_dir: Option<std::path::PathBuf>,
    /// Where the `pipeline-<timestamp>/` results folder goes.
    #[arg(long, default_value = "perf-results")]
    out_dir: std::path::PathBuf,
    /// Write no results folder.
    #[arg(long)]
    no_files: bool,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// How long to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seed of the random walk and the order flow.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Taker IOC orders per second per market.
    #[arg(long, default_value_t = 4)]
    taker_rate: u32,
    /// Print one JSON summary object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Core(a) => {
            anyhow::ensure!(a.commands > 0, "--commands must be positive");
            let report = run_core(CoreOptions {
                commands: a.commands,
                seed: a.seed,
                runs: a.runs,
                max_orders: a.max_orders,
                dedup_window: a.dedup_window,
            });
            print!("{}", render_core(&report));
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            }
        }
        Cmd::Scale(a) => {
            let report = run_scale(ScaleOptions {
                instruments: a.instruments,
                accounts: a.accounts,
                orders: a.orders,
                instruments_per_account: a.instruments_per_account,
                assets: a.assets,
            })
            .context("scale run failed")?;
            print!("{}", render_scale(&report));
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            }
        }
        Cmd::Pipeline(a) => {
            anyhow::ensure!(
                a.duration > 0.0 && a.duration <= 600.0,
                "--duration must be in (0, 600]"
            );
            anyhow::ensure!(
                a.warmup >= 0.0 && a.warmup <= 60.0,
                "--warmup must be in [0, 60]"
            );
            anyhow::ensure!(
                a.max_commands > 0 && a.max_commands <= 100_000_000,
                "--max-commands must be in 1..=100000000"
            );
            let report = run_pipeline(PipelineOptions {
                rates: a.rates,
                duration: a.duration,
                warmup: a.warmup,
                durability: a.durability,
                preset: a.preset,
                seed: a.seed,
                max_commands: a.max_commands,
                journal_dir: a.journal_dir,
                out_dir: (!a.no_files).then_some(a.out_dir),
            })
            .context("pipeline run failed")?;
            print!("{}", render_pipeline(&report));
            if a.json {
                println!("{}", serde_json::to_string(&report)?);
            }
        }
        Cmd::Demo(a) => {
            let stdout = std::io::stdout();
            let clear = stdout.is_terminal() && !a.json;
            let mut out = stdout.lock();
            let summary = run_demo(
                DemoOptions {
                    seconds: a.seconds,
                    seed: a.seed,
                    taker_rate: a.taker_rate,
                },
                &mut out,
                clear,
            )
            .context("demo failed")?;
            if a.json {
                use std::io::Write;
                writeln!(out, "{}", serde_json::to_string(&summary)?)?;
            }
        }
    }
    Ok(())
}
