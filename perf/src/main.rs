//! `ringex-perf`: throughput, scale and a live demo of the ringex engine.
//! See the library docs and `docs/performance.md`.

use std::io::IsTerminal;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use ringex_gateways::server::demo::Quoting;
use ringex_perf::compare::{compare, render_compare};
use ringex_perf::config::{LoadedConfig, RingexConfig, DEFAULT_TOML, PRESETS};
use ringex_perf::demo::{run_demo, DemoOptions};
use ringex_perf::fix_perf::{render_fix, run_fix, write_fix_results, FixOptions};
use ringex_perf::journal_perf::{
    render_journal, run_journal, write_journal_results, JournalOptions,
};
use ringex_perf::maker::{run_maker, MakerOptions};
use ringex_perf::pipeline::{
    render_pipeline, run_pipeline, write_pipeline_results, Durability, PipelineOptions, Preset,
};
use ringex_perf::progress::Progress;
use ringex_perf::recovery_perf::{
    render_recovery, run_recovery, write_recovery_results, RecoveryOptions,
};
use ringex_perf::replay_perf::{render_replay, run_replay, write_replay_results, ReplayOptions};
use ringex_perf::results::ResultsDir;
use ringex_perf::scale::{render_scale, run_scale, ScaleOptions};
use ringex_perf::throughput::{render_core, run_core, CoreOptions};
use ringex_perf::ws_perf::{
    render_ws, run_subscriber_process, run_ws, write_ws_results, SubscriberArgs, WsOptions,
};

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
    /// Journal append throughput per durability policy vs a raw sequential write of the same bytes.
    Journal(JournalArgs),
    /// Commands/s replaying a journal of the stream through a fresh engine (and verifying it).
    Replay(ReplayArgs),
    /// Start-up time from a snapshot plus journal tails of several lengths.
    Recovery(RecoveryArgs),
    /// Every scenario (core, pipeline, journal, replay, recovery, fix, ws) in turn at small sizes, one results folder with a subfolder each.
    All(AllArgs),
    /// Ratio per percentile of two results folders' latency distributions, drawn on one plot.
    Compare(CompareArgs),
    /// Print the documented default configuration file or a preset, or check a file.
    Config(ConfigArgs),
    /// A live binary and spot market in the terminal (market maker + takers).
    Demo(DemoArgs),
    /// A market maker trading over FIX against a ringex server, until Ctrl-C.
    Maker(MakerArgs),
    /// Order-book fan-out to WebSocket subscribers over loopback; the engine with a stalled one.
    Ws(WsArgs),
    /// FIX NewOrderSingle -> ExecutionReport round trips vs raw TCP ping-pong; orders/s per session count.
    Fix(FixArgs),
    /// The subscriber process of `ws` (started by `ws` itself, not by hand).
    #[command(name = "ws-subscribers", hide = true)]
    WsSubscribers(WsSubscribersArgs),
}

#[derive(Args, Debug)]
struct WsSubscribersArgs {
    /// The gateway's address.
    #[arg(long)]
    addr: std::net::SocketAddr,
    /// The submit-time table the driver writes.
    #[arg(long)]
    shared: std::path::PathBuf,
    /// Subscribers to connect.
    #[arg(long)]
    subscribers: usize,
    /// Client threads sharing them.
    #[arg(long)]
    client_threads: usize,
}

#[derive(Args, Debug)]
struct WsArgs {
    /// Subscriber counts (comma-separated), one phase each.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000usize, 10_000])]
    subscribers: Vec<usize>,
    /// Book updates (commands) per second offered.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Warm-up seconds per phase (sent, not recorded).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Client threads sharing the subscriber sockets.
    #[arg(long, default_value_t = 2)]
    client_threads: usize,
    /// Orders kept resting on the book.
    #[arg(long, default_value_t = 500)]
    live_orders: u64,
    /// The gateway's outbound queue per connection, messages (its conflation threshold).
    #[arg(long, default_value_t = ringex_gateways::ws::Limits::default().outbound_queue_messages)]
    queue_messages: usize,
    /// Configuration file or preset name: its pipeline and engine sections.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct FixArgs {
    /// Open-loop rates in orders/s, one session (comma-separated); TCP runs at the same rates.
    #[arg(long = "rate", value_delimiter = ',', default_values_t = [10_000u64, 50_000, 100_000])]
    rates: Vec<u64>,
    /// Session counts of the closed-loop throughput runs (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 10])]
    sessions: Vec<usize>,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Warm-up seconds per run (sent, not recorded).
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Orders in flight per session in the throughput runs.
    #[arg(long, default_value_t = 256)]
    window: u64,
    /// Each session's order throttle in the acceptor, orders/s.
    #[arg(long, default_value_t = 10_000_000)]
    throttle: u32,
    /// Journal durability (default: the configuration file's, else write).
    #[arg(long)]
    durability: Option<Durability>,
    /// Configuration file or preset name for the pipeline, engine and journal.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Most orders one open-loop run may send (warm-up included).
    #[arg(long, default_value_t = 2_000_000)]
    max_orders: u64,
    /// Orders the acceptor's ClOrdID table is sized for at start (`[fix] order_capacity`).
    #[arg(long, default_value_t = ringex_perf::fix_perf::DEFAULT_ORDER_CAPACITY)]
    order_capacity: usize,
    #[command(flatten)]
    common: CommonArgs,
}

/// Flags every measuring scenario takes.
#[derive(Args, Debug, Clone)]
struct CommonArgs {
    /// Results folder (default: perf-results/<scenario>-<UTC timestamp>/).
    #[arg(long)]
    out: Option<std::path::PathBuf>,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
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
    /// Engine order capacity (default: sized to the stream, 8,192).
    #[arg(long)]
    max_orders: Option<u32>,
    /// Engine dedup window of finished client order ids (default: sized to the stream, 8,192).
    #[arg(long)]
    dedup_window: Option<u32>,
    /// Client order id of each move: `keep` (exchange-core's MoveOrder
    /// keeps the order's identity) or `new` (a new id per move, as FIX's
    /// cancel/replace; every move then also updates the dedup window).
    #[arg(long, default_value = "keep")]
    move_ids: ringex_perf::stream::MoveIds,
    /// Seconds of untimed passes of every subject before the timed runs.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Least seconds of timed runs per subject (more runs than --runs if needed).
    #[arg(long)]
    duration: Option<f64>,
    /// Configuration file or preset name: every capacity of its [engine]
    /// section (default: capacities sized to the stream).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
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
    #[command(flatten)]
    common: CommonArgs,
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
    /// Journal durability: none | write | fsync-batch | fsync-ms:N (default: the
    /// configuration file's, else write).
    #[arg(long)]
    durability: Option<Durability>,
    /// Stage preset: two-core | dedicated:J,E,P (core ids of journaler, engine, publisher).
    #[arg(long, conflicts_with = "config")]
    preset: Option<Preset>,
    /// Configuration file (TOML; `ringex-perf config` prints every key), or a
    /// built-in preset name: two-core | dedicated-server.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Stream seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Most commands one rate may offer (warm-up plus measured; the measured window shrinks to fit).
    #[arg(long, default_value_t = 12_000_000)]
    max_commands: usize,
    /// Directory for the journals (a fresh temporary one per rate inside it; default: the system temp dir).
    #[arg(long)]
    journal_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct JournalArgs {
    /// Durability policies (comma-separated): none | write | fsync-batch | fsync-ms:N.
    #[arg(long = "durability", value_delimiter = ',', default_values_t = ["none".parse::<Durability>().expect("policy"), "write".parse().expect("policy"), "fsync-batch".parse().expect("policy")])]
    durabilities: Vec<Durability>,
    /// Measured seconds per policy (at most; --max-mib may end it sooner).
    #[arg(long, default_value_t = 1.0)]
    duration: f64,
    /// Warm-up seconds per policy (appended, not recorded).
    #[arg(long, default_value_t = 0.2)]
    warmup: f64,
    /// Payload bytes per record (80: a command record).
    #[arg(long, default_value_t = 80)]
    payload: usize,
    /// Records per batch (end_batch after each).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Most MiB of framed records measured per policy (bounds disk use).
    #[arg(long, default_value_t = 256)]
    max_mib: u64,
    /// Parent folder of the temporary journals (default: the system temp dir).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Configuration file or preset name; its [journal] segment_mib is used.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

/// Where `replay` and `recovery` put the session they measure.
#[derive(Args, Debug)]
struct SessionArgs {
    /// Parent of the temporary session folder (default: the system temp dir).
    #[arg(long)]
    journal_dir: Option<std::path::PathBuf>,
    /// Keep the temporary session folder.
    #[arg(long)]
    keep: bool,
    /// Configuration file or preset name (replay: [engine] and the segment
    /// size; recovery: the stages, [journal] and [engine]).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// Stream commands of a generated journal (its set-up comes first).
    #[arg(long, default_value_t = 10_000_000)]
    commands: u64,
    /// Stream seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Timed runs per mode; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of untimed replay first.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Most seconds per replay run (default: the whole journal).
    #[arg(long)]
    duration: Option<f64>,
    /// Skip the verify row (replay plus byte comparison with the output journal).
    #[arg(long)]
    no_verify: bool,
    /// Reuse the session in DIR (or write one there and keep it).
    #[arg(long)]
    journal: Option<std::path::PathBuf>,
    #[command(flatten)]
    session: SessionArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct RecoveryArgs {
    /// Tail lengths in commands after the snapshot (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [0u64, 100_000, 1_000_000])]
    tails: Vec<u64>,
    /// Resting orders in the snapshot.
    #[arg(long, default_value_t = 100_000)]
    orders: usize,
    /// Accounts in the snapshot.
    #[arg(long, default_value_t = 10_000)]
    accounts: u32,
    /// Timed runs per tail; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of untimed start-ups before each tail's runs.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Stream seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    session: SessionArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct AllArgs {
    /// Pipeline target rates in commands/s.
    #[arg(long = "rate", value_delimiter = ',', default_values_t = [100_000u64, 500_000])]
    rates: Vec<u64>,
    /// Measured seconds per pipeline rate and per journal policy.
    #[arg(long, default_value_t = 2.0)]
    duration: f64,
    /// Warm-up seconds per pipeline rate and per journal policy.
    #[arg(long, default_value_t = 0.5)]
    warmup: f64,
    /// Measured commands of the core scenario.
    #[arg(long, default_value_t = 1_000_000)]
    commands: usize,
    /// Stream commands of the journal the replay scenario replays.
    #[arg(long, default_value_t = 1_000_000)]
    replay_commands: u64,
    /// Journal tails after the snapshot in the recovery scenario (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = [0u64, 100_000])]
    tails: Vec<u64>,
    /// Resting orders in the recovery scenario's snapshot.
    #[arg(long, default_value_t = 100_000)]
    recovery_orders: usize,
    /// FIX open-loop rate in orders/s (one session), next to a TCP ping-pong.
    #[arg(long, default_value_t = 10_000)]
    fix_rate: u64,
    /// WebSocket subscribers of the ws scenario.
    #[arg(long, default_value_t = 100)]
    subscribers: usize,
    /// Book updates per second offered in the ws scenario.
    #[arg(long, default_value_t = 10_000)]
    ws_rate: u64,
    /// Configuration file or preset name for every scenario that takes one.
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct ConfigArgs {
    /// Print this preset instead of the defaults: two-core | dedicated-server.
    #[arg(long, conflicts_with = "check")]
    preset: Option<String>,
    /// Check this file (or preset name) and print every value it resolves to.
    #[arg(long)]
    check: Option<std::path::PathBuf>,
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// The baseline results folder (A).
    run_a: std::path::PathBuf,
    /// The results folder compared with it (B); ratios are B / A.
    run_b: std::path::PathBuf,
    #[command(flatten)]
    common: CommonArgs,
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

#[derive(Args, Debug)]
struct MakerArgs {
    /// The server's FIX acceptor.
    #[arg(long, default_value = "127.0.0.1:9878")]
    fix: String,
    /// Our SenderCompID (the server's session target_comp_id).
    #[arg(long, default_value = "DEMO-MAKER")]
    sender: String,
    /// The server's CompID.
    #[arg(long, default_value = "RINGEX")]
    target: String,
    /// Logon password.
    #[arg(long, default_value = "demo")]
    password: String,
    /// FIX.4.4 or FIXT.1.1.
    #[arg(long, default_value = "FIX.4.4")]
    begin_string: String,
    /// HeartBtInt in seconds (the server's session may require a value).
    #[arg(long, default_value_t = 30)]
    heartbeat_secs: u32,
    /// Keep sequence numbers across reconnects (no ResetSeqNumFlag).
    #[arg(long)]
    no_reset: bool,
    /// Market to quote.
    #[arg(long, default_value = "MARKET_MAKER")]
    ticker: String,
    /// Milliseconds between requotes.
    #[arg(long, default_value_t = 3000)]
    interval_ms: u64,
    /// Lowest price quoted (cents for binary markets).
    #[arg(long, default_value_t = 33)]
    min_price: i64,
    /// Highest price quoted.
    #[arg(long, default_value_t = 67)]
    max_price: i64,
    /// Ask minus bid.
    #[arg(long, default_value_t = 10)]
    spread: i64,
    /// Quantity per side.
    #[arg(long, default_value_t = 100)]
    quantity: u64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<f64>,
    /// Print one JSON summary object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

fn emit<T: serde::Serialize>(text: &str, report: &T, json: bool) -> anyhow::Result<()> {
    print!("{text}");
    if json {
        println!("{}", serde_json::to_string(report)?);
    }
    Ok(())
}

fn core_report(
    opts: CoreOptions,
    dir: &ResultsDir,
    loaded: Option<&LoadedConfig>,
) -> anyhow::Result<(String, ringex_perf::throughput::CoreReport)> {
    let progress = Progress::new(1, "core");
    progress.set_message(format!(
        "{} commands, {} runs per subject",
        opts.commands, opts.runs
    ));
    let report = run_core(opts);
    progress.finish();
    let text = format!(
        "{}results:    {}\n",
        render_core(&report),
        dir.path().display()
    );
    dir.write_context(&report.machine, &report.params, config_file(loaded))?;
    dir.write_json("summary.json", &report)?;
    dir.write_text("summary.txt", &text)?;
    Ok((text, report))
}

fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<Option<LoadedConfig>> {
    path.map(RingexConfig::load)
        .transpose()
        .map_err(anyhow::Error::from)
}

fn config_file(c: Option<&LoadedConfig>) -> Option<(&std::path::Path, &str)> {
    c.map(|c| (c.path.as_path(), c.text.as_str()))
}

fn pipeline_report(
    opts: PipelineOptions,
    dir: &ResultsDir,
    loaded: Option<&LoadedConfig>,
) -> anyhow::Result<(String, ringex_perf::pipeline::PipelineReport)> {
    anyhow::ensure!(
        opts.duration > 0.0 && opts.duration <= 600.0,
        "--duration must be in (0, 600]"
    );
    anyhow::ensure!(
        opts.warmup >= 0.0 && opts.warmup <= 60.0,
        "--warmup must be in [0, 60]"
    );
    anyhow::ensure!(
        opts.max_commands > 0 && opts.max_commands <= 100_000_000,
        "--max-commands must be in 1..=100000000"
    );
    let progress = Progress::new(opts.rates.len() as u64, "pipeline");
    let report = run_pipeline(opts, &progress);
    progress.finish();
    let mut report = report.context("pipeline run failed")?;
    write_pipeline_results(dir, &mut report, config_file(loaded))
        .context("writing the pipeline results")?;
    Ok((render_pipeline(&report), report))
}

fn journal_report(
    mut opts: JournalOptions,
    dir: &ResultsDir,
    loaded: Option<&LoadedConfig>,
) -> anyhow::Result<(String, ringex_perf::journal_perf::JournalReport)> {
    if let Some(c) = loaded {
        opts.segment_size = c.config.journal.segment_mib << 20;
    }
    let progress = Progress::new(opts.durabilities.len() as u64, "journal");
    let report = run_journal(opts, &progress);
    progress.finish();
    let mut report = report.context("journal run failed")?;
    write_journal_results(dir, &mut report, config_file(loaded))
        .context("writing the journal results")?;
    Ok((render_journal(&report), report))
}

/// What `ringex-perf all` runs, in this order.
const ALL_SCENARIOS: [&str; 7] = [
    "core", "pipeline", "journal", "replay", "recovery", "fix", "ws",
];

fn replay_report(
    opts: ReplayOptions,
    dir: &ResultsDir,
    loaded: Option<&LoadedConfig>,
) -> anyhow::Result<(String, ringex_perf::replay_perf::ReplayReport)> {
    let progress = Progress::new(
        1 + (1 + u64::from(opts.verify)) * opts.runs as u64,
        "replay",
    );
    let report = run_replay(opts, &progress);
    progress.finish();
    let mut report = report.context("replay run failed")?;
    write_replay_results(dir, &mut report, config_file(loaded))?;
    Ok((render_replay(&report), report))
}

fn recovery_report(
    opts: RecoveryOptions,
    dir: &ResultsDir,
    loaded: Option<&LoadedConfig>,
) -> anyhow::Result<(String, ringex_perf::recovery_perf::RecoveryReport)> {
    let progress = Progress::new(1 + opts.tails.len() as u64, "recovery");
    let report = run_recovery(opts, &progress);
    progress.finish();
    let mut report = report.context("recovery run failed")?;
    write_recovery_results(dir, &mut report, config_file(loaded))?;
    Ok((render_recovery(&report), report))
}

fn ws_report(
    opts: WsOptions,
    dir: &ResultsDir,
    loaded: Option<&LoadedConfig>,
) -> anyhow::Result<(String, ringex_perf::ws_perf::WsReport)> {
    let progress = Progress::new(opts.subscribers.len() as u64 + 1, "ws");
    let report = run_ws(opts, &progress);
    progress.finish();
    let mut report = report.context("ws run failed")?;
    write_ws_results(dir, &mut report, config_file(loaded))?;
    Ok((render_ws(&report), report))
}

fn fix_report(
    opts: FixOptions,
    dir: &ResultsDir,
    loaded: Option<&LoadedConfig>,
) -> anyhow::Result<(String, ringex_perf::fix_perf::FixReport)> {
    let progress = Progress::new((opts.rates.len() + opts.sessions.len()) as u64, "fix");
    let report = run_fix(opts, &progress);
    progress.finish();
    let mut report = report.context("fix run failed")?;
    write_fix_results(dir, &mut report, config_file(loaded))?;
    Ok((render_fix(&report), report))
}

/// The configuration's durability, else `write`.
fn durability_of(loaded: Option<&LoadedConfig>) -> Durability {
    Durability(loaded.map_or(ringex_journal::DurabilityPolicy::Write, |c| {
        c.config.durability()
    }))
}

/// The configuration's journal segment size, else the journal's default.
fn segment_size_of(loaded: Option<&LoadedConfig>) -> u64 {
    loaded.map_or(ringex_journal::DEFAULT_SEGMENT_SIZE, |c| {
        c.config.journal.segment_mib << 20
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Core(a) => {
            let loaded = load_config(a.config.as_deref())?;
            let opts = CoreOptions {
                commands: a.commands,
                seed: a.seed,
                runs: a.runs,
                max_orders: a.max_orders,
                dedup_window: a.dedup_window,
                move_ids: a.move_ids,
                engine: loaded.as_ref().map(|c| c.config.engine_config()),
                warmup: a.warmup,
                duration: a.duration,
            };
            opts.check().map_err(anyhow::Error::msg)?;
            let dir = ResultsDir::create(a.common.out.as_deref(), "core")?;
            let (text, report) = core_report(opts, &dir, loaded.as_ref())?;
            emit(&text, &report, a.common.json)?;
        }
        Cmd::Scale(a) => {
            let dir = ResultsDir::create(a.common.out.as_deref(), "scale")?;
            let opts = ScaleOptions {
                instruments: a.instruments,
                accounts: a.accounts,
                orders: a.orders,
                instruments_per_account: a.instruments_per_account,
                assets: a.assets,
            };
            let progress = Progress::new(1, "scale");
            let report = run_scale(opts);
            progress.finish();
            let report = report.context("scale run failed")?;
            let text = format!(
                "{}results:    {}\n",
                render_scale(&report),
                dir.path().display()
            );
            dir.write_context(&report.machine, &opts, None)?;
            dir.write_json("summary.json", &report)?;
            dir.write_text("summary.txt", &text)?;
            emit(&text, &report, a.common.json)?;
        }
        Cmd::Pipeline(a) => {
            let loaded = load_config(a.config.as_deref())?;
            let durability = a.durability.unwrap_or(durability_of(loaded.as_ref()));
            let opts = PipelineOptions {
                rates: a.rates,
                duration: a.duration,
                warmup: a.warmup,
                durability,
                preset: a.preset.unwrap_or(Preset::TwoCore),
                config: loaded.as_ref().map(|c| c.config.clone()),
                seed: a.seed,
                max_commands: a.max_commands,
                journal_dir: a.journal_dir,
            };
            // Refuse bad options before a results folder appears.
            opts.check()?;
            let dir = ResultsDir::create(a.common.out.as_deref(), "pipeline")?;
            let (text, report) = pipeline_report(opts, &dir, loaded.as_ref())?;
            emit(&text, &report, a.common.json)?;
        }
        Cmd::Journal(a) => {
            anyhow::ensure!(
                a.max_mib > 0 && a.max_mib <= 16 << 10,
                "--max-mib must be in 1..=16384"
            );
            let loaded = load_config(a.config.as_deref())?;
            let dir = ResultsDir::create(a.common.out.as_deref(), "journal")?;
            let (text, report) = journal_report(
                JournalOptions {
                    durabilities: a.durabilities,
                    payload: a.payload,
                    batch: a.batch,
                    duration: a.duration,
                    warmup: a.warmup,
                    max_bytes: a.max_mib << 20,
                    dir: a.dir,
                    ..JournalOptions::default()
                },
                &dir,
                loaded.as_ref(),
            )?;
            emit(&text, &report, a.common.json)?;
        }
        Cmd::Replay(a) => {
            let loaded = load_config(a.session.config.as_deref())?;
            let opts = ReplayOptions {
                commands: a.commands,
                seed: a.seed,
                runs: a.runs,
                warmup: a.warmup,
                duration: a.duration,
                verify: !a.no_verify,
                journal: a.journal,
                journal_dir: a.session.journal_dir,
                keep: a.session.keep,
                engine: loaded.as_ref().map(|c| c.config.engine_config()),
                segment_size: segment_size_of(loaded.as_ref()),
            };
            opts.check()?;
            let dir = ResultsDir::create(a.common.out.as_deref(), "replay")?;
            let (text, report) = replay_report(opts, &dir, loaded.as_ref())?;
            emit(&text, &report, a.common.json)?;
        }
        Cmd::Recovery(a) => {
            let loaded = load_config(a.session.config.as_deref())?;
            let opts = RecoveryOptions {
                accounts: a.accounts,
                orders: a.orders,
                tails: a.tails,
                runs: a.runs,
                warmup: a.warmup,
                seed: a.seed,
                dir: a.session.journal_dir,
                keep: a.session.keep,
                config: loaded.as_ref().map(|c| c.config.clone()),
            };
            opts.check()?;
            let dir = ResultsDir::create(a.common.out.as_deref(), "recovery")?;
            let (text, report) = recovery_report(opts, &dir, loaded.as_ref())?;
            emit(&text, &report, a.common.json)?;
        }
        Cmd::All(a) => {
            // Every scenario in turn, at sizes that finish in a few minutes,
            // each into its own subfolder; the options below are checked
            // before anything runs.
            let loaded = load_config(a.config.as_deref())?;
            let config = loaded.as_ref().map(|c| c.config.clone());
            let core_opts = CoreOptions {
                commands: a.commands,
                seed: 1,
                runs: 1,
                max_orders: None,
                dedup_window: None,
                move_ids: Default::default(),
                engine: None,
                warmup: 0.0,
                duration: None,
            };
            core_opts.check().map_err(anyhow::Error::msg)?;
            let pipeline_opts = PipelineOptions {
                rates: a.rates,
                duration: a.duration,
                warmup: a.warmup,
                durability: durability_of(loaded.as_ref()),
                preset: Preset::TwoCore,
                config: config.clone(),
                seed: 1,
                max_commands: 12_000_000,
                journal_dir: None,
            };
            pipeline_opts.check()?;
            let journal_opts = JournalOptions {
                duration: a.duration,
                warmup: a.warmup,
                ..JournalOptions::default()
            };
            let replay_opts = ReplayOptions {
                commands: a.replay_commands,
                seed: 1,
                runs: 1,
                warmup: a.warmup,
                duration: None,
                verify: true,
                journal: None,
                journal_dir: None,
                keep: false,
                engine: config.as_ref().map(|c| c.engine_config()),
                segment_size: segment_size_of(loaded.as_ref()),
            };
            replay_opts.check()?;
            let recovery_opts = RecoveryOptions {
                accounts: 10_000,
                orders: a.recovery_orders,
                tails: a.tails,
                runs: 1,
                warmup: a.warmup,
                seed: 1,
                dir: None,
                keep: false,
                config: config.clone(),
            };
            recovery_opts.check()?;
            let fix_opts = FixOptions {
                rates: vec![a.fix_rate],
                sessions: vec![1],
                duration: a.duration,
                warmup: a.warmup,
                window: 256,
                throttle: 10_000_000,
                durability: durability_of(loaded.as_ref()),
                config: config.clone(),
                max_orders: 2_000_000,
                order_capacity: ringex_perf::fix_perf::DEFAULT_ORDER_CAPACITY,
            };
            fix_opts.check()?;
            let ws_opts = WsOptions {
                subscribers: vec![a.subscribers],
                rate: a.ws_rate,
                duration: a.duration,
                warmup: a.warmup,
                client_threads: 2,
                live_orders: 500,
                queue_messages: ringex_gateways::ws::Limits::default().outbound_queue_messages,
                config,
            };
            ws_opts.check()?;

            let dir = ResultsDir::create(a.common.out.as_deref(), "all")?;
            let l = loaded.as_ref();
            let (core_text, core) = core_report(core_opts, &dir.child("core")?, None)?;
            let (pipeline_text, pipeline) =
                pipeline_report(pipeline_opts, &dir.child("pipeline")?, l)?;
            let (journal_text, journal) = journal_report(journal_opts, &dir.child("journal")?, l)?;
            let (replay_text, replay) = replay_report(replay_opts, &dir.child("replay")?, l)?;
            let (recovery_text, recovery) =
                recovery_report(recovery_opts, &dir.child("recovery")?, l)?;
            let (fix_text, fix) = fix_report(fix_opts, &dir.child("fix")?, l)?;
            let (ws_text, ws) = ws_report(ws_opts, &dir.child("ws")?, l)?;
            let text = format!(
                "{core_text}\n{pipeline_text}\n{journal_text}\n{replay_text}\n{recovery_text}\n{fix_text}\n{ws_text}\nresults:    {}\n",
                dir.path().display()
            );
            let report = serde_json::json!({
                "bench": "all",
                "core": core,
                "pipeline": pipeline,
                "journal": journal,
                "replay": replay,
                "recovery": recovery,
                "fix": fix,
                "ws": ws,
                "results_dir": dir.path().display().to_string(),
            });
            dir.write_context(
                &core.machine,
                &serde_json::json!({"scenarios": ALL_SCENARIOS}),
                config_file(l),
            )?;
            dir.write_json("summary.json", &report)?;
            dir.write_text("summary.txt", &text)?;
            emit(&text, &report, a.common.json)?;
        }
        Cmd::Ws(a) => {
            let loaded = load_config(a.config.as_deref())?;
            let opts = WsOptions {
                subscribers: a.subscribers,
                rate: a.rate,
                duration: a.duration,
                warmup: a.warmup,
                client_threads: a.client_threads,
                live_orders: a.live_orders,
                queue_messages: a.queue_messages,
                config: loaded.as_ref().map(|c| c.config.clone()),
            };
            opts.check()?;
            let dir = ResultsDir::create(a.common.out.as_deref(), "ws")?;
            let (text, report) = ws_report(opts, &dir, loaded.as_ref())?;
            emit(&text, &report, a.common.json)?;
        }
        Cmd::WsSubscribers(a) => {
            run_subscriber_process(&SubscriberArgs {
                addr: a.addr,
                shared: a.shared,
                subscribers: a.subscribers,
                client_threads: a.client_threads,
            })
            .context("ws subscriber process failed")?;
        }
        Cmd::Compare(a) => {
            let dir = ResultsDir::create(a.common.out.as_deref(), "compare")?;
            let report = compare(&a.run_a, &a.run_b, Some(&dir)).context("compare failed")?;
            emit(&render_compare(&report), &report, a.common.json)?;
        }
        Cmd::Config(a) => {
            if let Some(path) = a.check {
                let loaded = RingexConfig::load(&path)?;
                println!("# {} resolves to:", loaded.path.display());
                print!("{}", toml::to_string(&loaded.config)?);
            } else if let Some(name) = a.preset {
                let (_, text) = PRESETS.iter().find(|(p, _)| *p == name).ok_or_else(|| {
                    anyhow::anyhow!("unknown preset {name:?} (two-core | dedicated-server)")
                })?;
                print!("{text}");
            } else {
                print!("{DEFAULT_TOML}");
            }
        }
        Cmd::Maker(a) => {
            let options = MakerOptions {
                fix: a.fix,
                sender: a.sender,
                target: a.target,
                password: Some(a.password),
                begin_string: a.begin_string,
                heartbeat_secs: a.heartbeat_secs,
                no_reset: a.no_reset,
                quoting: Quoting {
                    ticker: a.ticker,
                    interval: std::time::Duration::from_millis(a.interval_ms),
                    min_price: a.min_price,
                    max_price: a.max_price,
                    spread: a.spread,
                    quantity: a.quantity,
                },
                seconds: a.seconds,
                report_every: 5.0,
            };
            let summary = run_maker(&options)?;
            emit(&summary.render(), &summary, a.json)?;
        }
        Cmd::Fix(a) => {
            let loaded = load_config(a.config.as_deref())?;
            let durability = a.durability.unwrap_or(durability_of(loaded.as_ref()));
            let opts = FixOptions {
                rates: a.rates,
                sessions: a.sessions,
                duration: a.duration,
                warmup: a.warmup,
                window: a.window,
                throttle: a.throttle,
                durability,
                config: loaded.as_ref().map(|c| c.config.clone()),
                max_orders: a.max_orders,
                order_capacity: a.order_capacity,
            };
            opts.check()?;
            let dir = ResultsDir::create(a.common.out.as_deref(), "fix")?;
            let (text, report) = fix_report(opts, &dir, loaded.as_ref())?;
            emit(&text, &report, a.common.json)?;
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
