//! `ringex-perf pipeline`: open-loop latency through the running exchange
//! core (input ring → journaler → engine → output ring → publisher → sink).
//!
//! For each target rate a fresh [`Pipeline`] (fresh journal, fresh engine)
//! is started, the setup commands of the exchange-core-shaped stream
//! ([`crate::stream`]) are submitted and awaited (untimed), and then one
//! producer thread offers the measured commands on a fixed schedule:
//! command `i` is due at `t0 + i / rate`. Whenever it wakes up the producer
//! submits every command that is due; a `Busy` ring is retried (with a
//! backoff) and the command stays late.
//!
//! A sink thread takes the events off a sink queue. The first event whose
//! `sequence` is a command's sequence completes that command; its latency
//! is measured **from the command's scheduled time**, not from when it was
//! actually sent, so time the producer spends waiting for a full ring (or
//! for the CPU) is counted: no coordinated omission. A second histogram
//! measures from the moment of the successful `try_submit` ("service
//! time"), which is what a closed-loop harness would report.
//!
//! Commands scheduled in the warm-up are sent but not recorded. Every run
//! is bounded: the producer stops offering commands at twice the planned
//! run time (the rest are counted as unsent), and the total number of
//! commands is capped.
//!
//! The two-core preset's producer sleeps until the next command is due and
//! its sink blocks on the queue, so nothing here busy-spins; with the
//! dedicated preset both spin, like the stages.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringex_core::pipeline::{
    Backoff, CommandSender, OverflowPolicy, Pipeline, PipelineConfig, SubmitError,
};
use ringex_core::records::Command;
use ringex_core::RiskMode;
use ringex_journal::DurabilityPolicy;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::hgrm::new_histogram;
use crate::progress::Progress;
use crate::stream::{generate, StreamParams};
use crate::sys::Machine;

pub use crate::hgrm::percentile_distribution;

/// The latency target at 1,000,000 commands/s: p99 under 10 µs.
pub const TARGET_P99_NS_AT_1M: u64 = 10_000;
/// The sustained-throughput target (journal on, no fsync).
pub const TARGET_SUSTAINED: f64 = 5_000_000.0;
/// A rate is "sustained" when the achieved throughput is within this
/// fraction of the target and every command was sent.
pub const SUSTAINED_TOLERANCE: f64 = 0.02;

/// Which [`PipelineConfig`] preset to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// [`PipelineConfig::two_core_default`]: nothing pinned, nothing spins.
    TwoCore,
    /// [`PipelineConfig::dedicated_server`] on these cores (journaler,
    /// engine, publisher): pinned and busy-spinning.
    Dedicated([usize; 3]),
}

impl Preset {
    /// Whether the stages (and so this harness's producer and sink) spin.
    pub fn spins(self) -> bool {
        matches!(self, Preset::Dedicated(_))
    }

    fn config(self, dir: &Path) -> PipelineConfig {
        match self {
            Preset::TwoCore => PipelineConfig::two_core_default(dir),
            Preset::Dedicated(cores) => PipelineConfig::dedicated_server(dir, &cores),
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s == "two-core" {
            return Ok(Preset::TwoCore);
        }
        let cores = s
            .strip_prefix("dedicated:")
            .ok_or_else(|| format!("unknown preset {s:?} (two-core | dedicated:J,E,P)"))?;
        let ids: Vec<usize> = cores
            .split(',')
            .map(|c| c.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| format!("bad core id in {s:?}: {e}"))?;
        match ids[..] {
            [j, e, p] => Ok(Preset::Dedicated([j, e, p])),
            _ => Err(format!("dedicated needs three cores (J,E,P), got {s:?}")),
        }
    }
}

impl std::fmt::Display for Preset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Preset::TwoCore => write!(f, "two-core"),
            Preset::Dedicated([j, e, p]) => write!(f, "dedicated:{j},{e},{p}"),
        }
    }
}

/// The journal's durability policy, as the command line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Durability(pub DurabilityPolicy);

impl std::str::FromStr for Durability {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        ringex_core::config::parse_durability(s)
            .map(Durability)
            .map_err(|e| e.to_string())
    }
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&ringex_core::config::durability_name(self.0))
    }
}

impl Serialize for Durability {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Serialize for Preset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Options of `ringex-perf pipeline`.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineOptions {
    /// Target rates, commands per second (each gets a fresh pipeline).
    pub rates: Vec<u64>,
    /// Measured seconds per rate.
    pub duration: f64,
    /// Warm-up seconds per rate (sent, not recorded).
    pub warmup: f64,
    /// Journal durability policy.
    pub durability: Durability,
    /// Stage preset (ignored when `config` is given).
    pub preset: Preset,
    /// A configuration file's values: rings, stages, engine capacities and
    /// risk, journal (its durability is replaced by `durability`).
    pub config: Option<crate::config::RingexConfig>,
    /// Stream seed.
    pub seed: u64,
    /// Most commands (warm-up plus measured) one rate may offer; the
    /// measured window shrinks to fit.
    pub max_commands: usize,
    /// Where to put the journal (a fresh temporary directory under it per
    /// rate); `None`: the system's temporary directory.
    pub journal_dir: Option<PathBuf>,
}

impl PipelineOptions {
    /// Whether the stages busy-spin (and so this harness's producer and sink may).
    pub fn spins(&self) -> bool {
        match &self.config {
            Some(c) => c.spins(),
            None => self.preset.spins(),
        }
    }

    /// What sets the stages: `preset <name>` or `config file`.
    pub fn stages_label(&self) -> String {
        match &self.config {
            Some(_) => "config".into(),
            None => self.preset.to_string(),
        }
    }

    /// Checks the options before anything runs: positive rates and times,
    /// and that a configuration file's stages can start on this machine and
    /// its engine can hold the benchmark stream.
    pub fn check(&self) -> Result<()> {
        if self.rates.is_empty() || self.rates.contains(&0) {
            return Err(Error::Unexpected("rates must be positive".into()));
        }
        if !(self.duration > 0.0 && self.warmup >= 0.0) {
            return Err(Error::Unexpected(
                "duration must be positive and warm-up not negative".into(),
            ));
        }
        if let Some(c) = &self.config {
            c.pipeline_config(Path::new("unused"))
                .validate()
                .map_err(|e| Error::Unexpected(format!("configuration: {e}")))?;
        }
        self.check_engine_fits(&StreamParams {
            seed: self.seed,
            ..StreamParams::default()
        })
    }

    /// Checks that a configuration file's engine can hold the stream.
    fn check_engine_fits(&self, params: &StreamParams) -> Result<()> {
        let Some(c) = &self.config else { return Ok(()) };
        crate::stream::check_engine_fits(&c.engine_config(), params).map_err(Error::Unexpected)
    }
}

/// Percentiles of one histogram, in nanoseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Recorded values.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p99_9: u64,
    /// 99.99th percentile.
    pub p99_99: u64,
    /// Largest value.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p99_9: h.value_at_quantile(0.999),
            p99_99: h.value_at_quantile(0.9999),
            max: h.max(),
        }
    }
}

/// The result at one target rate.
#[derive(Debug, Clone, Serialize)]
pub struct RateResult {
    /// Target rate, commands per second.
    pub target_rate: u64,
    /// Commands scheduled in the warm-up (sent, not recorded).
    pub warmup_commands: u64,
    /// Commands scheduled in the measured window.
    pub measured_commands: u64,
    /// Measured commands the producer did not send before its deadline
    /// (twice the planned run time): a saturated pipeline.
    pub unsent: u64,
    /// Measured commands whose completion the sink saw.
    pub completed: u64,
    /// Completed measured commands per second, from the start of the
    /// measured window to the last completion.
    pub achieved_rate: f64,
    /// Whether the achieved rate is within [`SUSTAINED_TOLERANCE`] of the
    /// target and nothing was left unsent.
    pub sustained: bool,
    /// `try_submit` calls answered `Busy` (whole run, warm-up included).
    pub busy: u64,
    /// Events the sink queue dropped (should be 0).
    pub sink_dropped: u64,
    /// Events the publisher published (whole run, setup included).
    pub events: u64,
    /// Latency from the scheduled time to the first event leaving the
    /// publisher (open loop, no coordinated omission), ns.
    pub latency: Percentiles,
    /// Latency from the successful `try_submit` to the first event, ns
    /// (what a closed-loop harness would see).
    pub service: Percentiles,
    /// How late the producer sent commands (send time minus scheduled
    /// time), ns: producer sleep granularity and `Busy` retries.
    pub send_lag: Percentiles,
    /// The pipeline's own enqueue → publish histogram (every event, setup included), ns.
    pub pipeline_internal: Percentiles,
    /// Wall seconds of the timed part (first scheduled command to last completion).
    pub seconds: f64,
    /// Health of the pipeline at shutdown (`true`: no journal or engine failure).
    pub healthy: bool,
    /// The `.hgrm` file of the open-loop latency, if files were written.
    pub hgrm: Option<String>,
    /// The open-loop histogram itself.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

/// The full result of `ringex-perf pipeline`.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    /// Always `"pipeline"`.
    pub bench: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// The options.
    pub options: PipelineOptions,
    /// Stream parameters (commands: the most any rate used).
    pub params: StreamParams,
    /// Setup commands per run (untimed).
    pub setup_commands: usize,
    /// Seconds spent generating the stream (untimed).
    pub generation_seconds: f64,
    /// One result per rate, in the order given.
    pub rates: Vec<RateResult>,
    /// The highest tested rate that was sustained (see [`RateResult::sustained`]).
    pub max_sustained_rate: Option<u64>,
    /// The results folder, if files were written.
    pub results_dir: Option<String>,
}

/// How many commands rate `rate` offers: (warm-up, measured).
fn plan(rate: u64, opts: &PipelineOptions) -> (u64, u64) {
    let warm = (rate as f64 * opts.warmup).round() as u64;
    let measured = (rate as f64 * opts.duration).round().max(1.0) as u64;
    let cap = opts.max_commands as u64;
    let warm = warm.min(cap / 2);
    (warm, measured.min(cap.saturating_sub(warm)).max(1))
}

/// Runs every rate (one progress step each); [`write_pipeline_results`]
/// writes the results folder.
pub fn run_pipeline(opts: PipelineOptions, progress: &Progress) -> Result<PipelineReport> {
    opts.check()?;
    let most = opts
        .rates
        .iter()
        .map(|&r| {
            let (w, m) = plan(r, &opts);
            w + m
        })
        .max()
        .unwrap_or(1);
    let params = StreamParams {
        seed: opts.seed,
        commands: most as usize,
        ..StreamParams::default()
    };
    let started = Instant::now();
    let stream = generate(&params);
    let generation_seconds = started.elapsed().as_secs_f64();

    let mut rates = Vec::with_capacity(opts.rates.len());
    for &rate in &opts.rates {
        progress.set_message(format!("{rate} commands/s"));
        rates.push(run_rate(
            rate,
            &opts,
            &params,
            &stream.setup,
            &stream.measured,
        )?);
        progress.inc(1);
    }
    let max_sustained_rate = rates
        .iter()
        .filter(|r| r.sustained)
        .map(|r| r.target_rate)
        .max();
    let report = PipelineReport {
        bench: "pipeline",
        machine: Machine::detect(),
        options: opts.clone(),
        params,
        setup_commands: stream.setup.len(),
        generation_seconds,
        rates,
        max_sustained_rate,
        results_dir: None,
    };
    Ok(report)
}

/// Nanoseconds since `origin` (shared by every thread of one run).
#[inline]
fn ns_since(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

/// Scheduled offset of measured-stream command `i` from `t0`, ns.
#[inline]
fn scheduled(i: u64, rate: u64) -> u64 {
    (i as u128 * 1_000_000_000 / rate as u128) as u64
}

struct SinkResult {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    completed: u64,
    last_completion_ns: u64,
}

fn run_rate(
    rate: u64,
    opts: &PipelineOptions,
    params: &StreamParams,
    setup: &[Command],
    measured: &[Command],
) -> Result<RateResult> {
    let (warm, meas) = plan(rate, opts);
    let total = (warm + meas) as usize;
    let commands = &measured[..total];

    let mut builder = tempfile::Builder::new();
    builder.prefix("ringex-perf-pipeline-");
    let dir = match &opts.journal_dir {
        Some(parent) => {
            std::fs::create_dir_all(parent)?;
            builder.tempdir_in(parent)?
        }
        None => builder.tempdir()?,
    };
    let config = match &opts.config {
        Some(file) => file.pipeline_config(dir.path()),
        None => opts
            .preset
            .config(dir.path())
            .with_engine(params.engine_config(RiskMode::Enabled)),
    }
    .with_durability(opts.durability.0)
    .with_timer(None);
    let pipeline = Pipeline::start(config).map_err(|e| Error::Unexpected(e.to_string()))?;
    let sink = pipeline.register_sink("perf", 1 << 20, OverflowPolicy::DropNewest);
    let sink_stats = Arc::clone(&sink.stats);

    let base = pipeline.startup().next_sequence;
    let first_measured = base + setup.len() as u64;
    let origin = Instant::now();
    let t0 = Arc::new(AtomicU64::new(u64::MAX));
    let highest = Arc::new(AtomicU64::new(0));
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..total).map(|_| AtomicU64::new(0)).collect());
    let spins = opts.spins();

    // The sink: first event of each sequence completes that command.
    let sink_thread = {
        let (t0, highest, sent) = (Arc::clone(&t0), Arc::clone(&highest), Arc::clone(&sent));
        let receiver = sink.receiver;
        std::thread::Builder::new()
            .name("perf-sink".into())
            .spawn(move || {
                let mut latency = new_histogram();
                let mut service = new_histogram();
                let (mut completed, mut last_completion_ns, mut last_seq) = (0u64, 0u64, 0u64);
                let mut start = u64::MAX;
                loop {
                    let event = if spins {
                        match receiver.try_recv() {
                            Ok(e) => e,
                            Err(crossbeam_channel::TryRecvError::Empty) => {
                                std::hint::spin_loop();
                                continue;
                            }
                            Err(crossbeam_channel::TryRecvError::Disconnected) => break,
                        }
                    } else {
                        match receiver.recv() {
                            Ok(e) => e,
                            Err(_) => break,
                        }
                    };
                    if event.sequence <= last_seq {
                        continue;
                    }
                    last_seq = event.sequence;
                    let now = ns_since(origin);
                    highest.store(event.sequence, Ordering::Release);
                    if event.sequence < first_measured {
                        continue;
                    }
                    let i = event.sequence - first_measured;
                    if i < warm || i >= total as u64 {
                        continue;
                    }
                    if start == u64::MAX {
                        start = t0.load(Ordering::Acquire);
                    }
                    let due = start + scheduled(i, rate);
                    latency.saturating_record(now.saturating_sub(due).max(1));
                    let sent_at = sent[i as usize].load(Ordering::Relaxed);
                    service.saturating_record(now.saturating_sub(sent_at).max(1));
                    completed += 1;
                    last_completion_ns = now;
                }
                SinkResult {
                    latency,
                    service,
                    completed,
                    last_completion_ns,
                }
            })?
    };

    let mut sender = pipeline.sender();
    let mut busy = 0u64;
    // Setup: untimed, and awaited before the clock starts.
    let mut last_setup = 0;
    for &cmd in setup {
        last_setup = submit(&mut sender, cmd, spins, &mut busy)?;
    }
    wait_for(&highest, last_setup, Duration::from_secs(60))?;
    let busy_setup = busy;

    // The open-loop producer (this thread).
    let deadline = Duration::from_secs_f64((opts.warmup + opts.duration) * 2.0 + 1.0);
    let start = ns_since(origin) + 1_000_000;
    t0.store(start, Ordering::Release);
    let mut lag = new_histogram();
    let mut i = 0usize;
    let mut expected = first_measured;
    {
        let end = start + deadline.as_nanos() as u64;
        'offer: while i < total {
            let now = ns_since(origin);
            if now >= end {
                break;
            }
            let due = start + scheduled(i as u64, rate);
            if now < due {
                if spins {
                    std::hint::spin_loop();
                } else {
                    std::thread::sleep(Duration::from_nanos(due - now));
                }
                continue;
            }
            // Everything due by `now`.
            let elapsed = now - start;
            let due_count =
                ((elapsed as u128 * rate as u128 / 1_000_000_000) as usize + 1).min(total);
            while i < due_count {
                let at = ns_since(origin);
                if at >= end {
                    break 'offer;
                }
                sent[i].store(at, Ordering::Relaxed);
                let seq = submit(&mut sender, commands[i], spins, &mut busy)?;
                if seq != expected {
                    return Err(Error::Unexpected(format!(
                        "sequence {seq} where {expected} was expected (another producer?)"
                    )));
                }
                if i as u64 >= warm {
                    let due_i = start + scheduled(i as u64, rate);
                    lag.saturating_record(at.saturating_sub(due_i).max(1));
                }
                expected += 1;
                i += 1;
            }
        }
    }
    let sent_count = i;
    drop(sender);
    if sent_count > 0 {
        wait_for(
            &highest,
            first_measured + sent_count as u64 - 1,
            Duration::from_secs(60),
        )?;
    }
    let metrics = pipeline.metrics();
    let internal = Percentiles::of(&metrics.latency());
    let report = pipeline.shutdown();
    let result = sink_thread
        .join()
        .map_err(|_| Error::Unexpected("the sink thread panicked".into()))?;
    drop(dir);

    let measure_start = start + scheduled(warm, rate);
    let seconds = result.last_completion_ns.saturating_sub(measure_start) as f64 / 1e9;
    let achieved_rate = if seconds > 0.0 {
        result.completed as f64 / seconds
    } else {
        0.0
    };
    let unsent = (total - sent_count.max(warm as usize)) as u64;
    let unsent = unsent.min(meas);
    let sustained = unsent == 0
        && result.completed == meas
        && achieved_rate >= rate as f64 * (1.0 - SUSTAINED_TOLERANCE);
    let _ = busy_setup;
    Ok(RateResult {
        target_rate: rate,
        warmup_commands: warm,
        measured_commands: meas,
        unsent,
        completed: result.completed,
        achieved_rate,
        sustained,
        busy: busy - busy_setup,
        sink_dropped: sink_stats.dropped(),
        events: report.metrics.events,
        latency: Percentiles::of(&result.latency),
        service: Percentiles::of(&result.service),
        send_lag: Percentiles::of(&lag),
        pipeline_internal: internal,
        seconds: result.last_completion_ns.saturating_sub(start) as f64 / 1e9,
        healthy: report.health.is_ok(),
        hgrm: None,
        histogram: result.latency,
    })
}

/// Submits `cmd`, retrying while the ring is full (counting each `Busy`).
fn submit(sender: &mut CommandSender, cmd: Command, spins: bool, busy: &mut u64) -> Result<u64> {
    let mut backoff = Backoff::new();
    loop {
        match sender.try_submit(cmd) {
            Ok(seq) => return Ok(seq),
            Err(SubmitError::Busy) => {
                *busy += 1;
                if spins {
                    std::hint::spin_loop();
                } else {
                    backoff.snooze();
                }
            }
            Err(e) => return Err(Error::Unexpected(format!("submit failed: {e:?}"))),
        }
    }
}

/// Waits (sleeping) until the sink has seen `seq`.
fn wait_for(highest: &AtomicU64, seq: u64, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    while highest.load(Ordering::Acquire) < seq {
        if start.elapsed() > timeout {
            return Err(Error::Unexpected(format!(
                "the sink did not see sequence {seq} within {timeout:?} (saw {})",
                highest.load(Ordering::Acquire)
            )));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    Ok(())
}

/// Writes the `.hgrm` files, the plots, the summary and the context into `dir`:
/// `latency-<preset>-<durability>-<rate>.hgrm` per rate,
/// `latency-percentiles.svg` (one line per rate) and
/// `throughput-latency.svg` (p50/p99/p99.9 against the achieved rate).
pub fn write_pipeline_results(
    dir: &crate::results::ResultsDir,
    report: &mut PipelineReport,
    config_file: Option<(&Path, &str)>,
) -> Result<()> {
    use crate::plot::{percentile_plot, percentile_series, throughput_latency_chart, Series};
    let mut lines = Vec::new();
    for r in &mut report.rates {
        let name = dir.write_hgrm(
            &format!(
                "latency-{}-{}-{}",
                report.options.stages_label(),
                report.options.durability,
                r.target_rate
            ),
            &r.histogram,
        )?;
        let d = crate::hgrm::parse(&std::fs::read_to_string(dir.path().join(&name))?)?;
        lines.push(percentile_series(
            format!("{} commands/s", r.target_rate),
            &d,
        ));
        r.hgrm = Some(name);
    }
    let o = &report.options;
    percentile_plot(
        &dir.path().join("latency-percentiles.svg"),
        &format!(
            "pipeline open-loop latency, stages {}, durability {}",
            o.stages_label(),
            o.durability
        ),
        &lines,
    )?;
    let mut by_rate: Vec<&RateResult> = report.rates.iter().collect();
    by_rate.sort_by(|a, b| a.achieved_rate.total_cmp(&b.achieved_rate));
    let line = |label: &str, pick: fn(&Percentiles) -> u64| Series {
        label: label.into(),
        points: by_rate
            .iter()
            .map(|r| (r.achieved_rate, pick(&r.latency) as f64 / 1000.0))
            .collect(),
    };
    throughput_latency_chart(
        &dir.path().join("throughput-latency.svg"),
        "pipeline: open-loop latency against achieved throughput",
        "achieved commands/s",
        &[
            line("p50", |p| p.p50),
            line("p99", |p| p.p99),
            line("p99.9", |p| p.p99_9),
        ],
    )?;
    report.results_dir = Some(dir.path().display().to_string());
    let context = serde_json::json!({
        "options": report.options,
        "params": report.params,
        "setup_commands": report.setup_commands,
    });
    dir.write_context(&report.machine, &context, config_file)?;
    dir.write_json("summary.json", report)?;
    dir.write_text("summary.txt", &render_pipeline(report))?;
    Ok(())
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

/// The human-readable report.
pub fn render_pipeline(r: &PipelineReport) -> String {
    use std::fmt::Write;
    let o = &r.options;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ringex-perf pipeline: open-loop latency, ring -> journal -> engine -> publisher -> sink"
    );
    let _ = writeln!(s, "machine:    {}", r.machine);
    let _ = writeln!(
        s,
        "config:     stages {}, durability {}, risk {}, warm-up {} s, measured {} s per rate, seed {}",
        o.stages_label(),
        o.durability,
        o.config.as_ref().map_or("on", |c| c.engine.risk.as_str()),
        o.warmup,
        o.duration,
        o.seed
    );
    let _ = writeln!(
        s,
        "stream:     exchange-core mix, {} setup commands (untimed), {} commands generated in {:.1} s",
        r.setup_commands, r.params.commands, r.generation_seconds
    );
    let _ = writeln!(
        s,
        "latency:    scheduled time -> first event of the command at the sink (us)"
    );
    let _ = writeln!(
        s,
        "{:>10} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "rate/s",
        "achieved/s",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p99.99",
        "max",
        "svc p99",
        "busy",
        "unsent"
    );
    for x in &r.rates {
        let l = &x.latency;
        let _ = writeln!(
            s,
            "{:>10} {:>12.0} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            x.target_rate,
            x.achieved_rate,
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.p99_9),
            us(l.p99_99),
            us(l.max),
            us(x.service.p99),
            x.busy,
            x.unsent
        );
    }
    for x in &r.rates {
        if !x.healthy || x.sink_dropped > 0 || x.completed + x.unsent < x.measured_commands {
            let _ = writeln!(
                s,
                "WARNING: rate {}: healthy {}, sink dropped {}, completed {} of {} ({} unsent)",
                x.target_rate,
                x.healthy,
                x.sink_dropped,
                x.completed,
                x.measured_commands,
                x.unsent
            );
        }
    }
    let _ = writeln!(
        s,
        "sustained:  {} (highest tested rate within {:.0}% of its target with nothing unsent)",
        r.max_sustained_rate.map_or_else(
            || "none of the tested rates".to_string(),
            |v| format!("{v} commands/s")
        ),
        SUSTAINED_TOLERANCE * 100.0
    );
    let _ = writeln!(
        s,
        "targets:    >= {:.0}M commands/s sustained and p99 < {} us at 1M/s need a machine with cores for pinned stages",
        TARGET_SUSTAINED / 1e6,
        TARGET_P99_NS_AT_1M / 1000
    );
    if let Some(dir) = &r.results_dir {
        let _ = writeln!(s, "results:    {dir}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_durabilities_parse_and_print_back() {
        for s in ["two-core", "dedicated:2,3,4"] {
            assert_eq!(s.parse::<Preset>().unwrap().to_string(), s);
        }
        assert!("dedicated:1,2".parse::<Preset>().is_err());
        assert!("four-core".parse::<Preset>().is_err());
        for s in ["none", "write", "fsync-batch", "fsync-ms:5"] {
            assert_eq!(s.parse::<Durability>().unwrap().to_string(), s);
        }
        assert!("fsync-ms:x".parse::<Durability>().is_err());
    }

    #[test]
    fn the_plan_is_capped() {
        let opts = PipelineOptions {
            rates: vec![1_000_000],
            duration: 5.0,
            warmup: 1.0,
            durability: Durability(DurabilityPolicy::Write),
            preset: Preset::TwoCore,
            config: None,
            seed: 1,
            max_commands: 2_000_000,
            journal_dir: None,
        };
        assert_eq!(plan(1_000_000, &opts), (1_000_000, 1_000_000));
        assert_eq!(plan(100_000, &opts), (100_000, 500_000));
        assert_eq!(scheduled(3, 1_000_000), 3_000);
    }
}
