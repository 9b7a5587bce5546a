//! `ringex-perf core`: single-threaded throughput on the exchange-core-shaped
//! stream, for the engine with risk on, with risk off, and for the reference
//! model (the same-run baseline).
//!
//! The stream is generated first (untimed). Each run builds a fresh engine,
//! applies the setup commands (untimed), then times applying the measured
//! commands into a [`CountingSink`]. Runs of the three subjects are
//! interleaved so drift of the machine (frequency, noise) hits all of them
//! alike; the report gives the median run of each.

use std::hint::black_box;
use std::time::Instant;

use ringex_core::records::{Command, CountingSink};
use ringex_core::{Engine, EngineConfig, RiskMode};
use serde::Serialize;

use crate::stream::{generate, MoveIds, StreamParams, StreamStats};
use crate::sys::{thread_cpu_ns, Machine};

/// The target for the engine with risk on, in commands per second.
pub const TARGET_RISK_ON: f64 = 10_000_000.0;
/// The target for the engine with risk off, in commands per second.
pub const TARGET_RISK_OFF: f64 = 20_000_000.0;

/// Options of `ringex-perf core`.
#[derive(Debug, Clone, Copy)]
pub struct CoreOptions {
    /// Measured commands.
    pub commands: usize,
    /// Stream seed.
    pub seed: u64,
    /// Timed runs per subject (the median is reported).
    pub runs: usize,
    /// Order capacity override (default: [`StreamParams::engine_config`]).
    pub max_orders: Option<u32>,
    /// Dedup window override (default: [`StreamParams::engine_config`]).
    pub dedup_window: Option<u32>,
    /// Which client order id the stream's moves carry.
    pub move_ids: MoveIds,
    /// Every capacity from a configuration file's `[engine]` (its `risk` is
    /// ignored: both modes are measured); `max_orders` and `dedup_window`
    /// still override it. Default: sized to the stream.
    pub engine: Option<EngineConfig>,
    /// Seconds of untimed passes of every subject before the timed runs
    /// (caches, branch predictors and the allocator warmed); 0: none.
    pub warmup: f64,
    /// Least seconds of timed runs per subject: runs continue past `runs`
    /// until each subject has been timed this long. `None`: exactly `runs`.
    pub duration: Option<f64>,
}

impl CoreOptions {
    /// Checks the options before anything runs.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.commands == 0 || self.runs == 0 {
            return Err("--commands and --runs must be positive".into());
        }
        if !(0.0..=600.0).contains(&self.warmup) {
            return Err("--warmup must be in [0, 600] seconds".into());
        }
        if self.duration.is_some_and(|d| !(d > 0.0 && d <= 3600.0)) {
            return Err("--duration must be in (0, 3600] seconds".into());
        }
        if let Some(engine) = &self.engine {
            let params = StreamParams {
                seed: self.seed,
                commands: self.commands,
                ..StreamParams::default()
            };
            let mut have = *engine;
            have.max_orders = self.max_orders.unwrap_or(have.max_orders);
            crate::stream::check_engine_fits(&have, &params)?;
        }
        Ok(())
    }
}

/// One subject's timings.
#[derive(Debug, Clone, Serialize)]
pub struct SubjectResult {
    /// What was measured.
    pub name: String,
    /// Median throughput by wall time, commands per second.
    pub cmds_per_sec: f64,
    /// Every run's throughput by wall time, in run order.
    pub runs_cmds_per_sec: Vec<f64>,
    /// Median run's wall time in seconds.
    pub seconds: f64,
    /// Median throughput by the thread's CPU time (time the thread actually
    /// ran; excludes time other processes held the CPU), commands per second.
    pub cpu_cmds_per_sec: Option<f64>,
    /// Trades in the measured phase.
    pub trades: u64,
    /// Events in the measured phase.
    pub events: u64,
}

/// Shape of the engine configuration, for the report.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigSummary {
    /// Order capacity.
    pub max_orders: u32,
    /// Account capacity.
    pub max_accounts: u32,
    /// Instrument capacity.
    pub max_instruments: u32,
    /// Asset capacity.
    pub max_assets: u16,
    /// Dedup window of finished client order ids.
    pub dedup_window: u32,
    /// Price levels per book side.
    pub max_price_levels: u32,
}

impl From<&EngineConfig> for ConfigSummary {
    fn from(c: &EngineConfig) -> Self {
        ConfigSummary {
            max_orders: c.max_orders,
            max_accounts: c.max_accounts,
            max_instruments: c.max_instruments,
            max_assets: c.max_assets,
            dedup_window: c.dedup_window,
            max_price_levels: c.max_price_levels,
        }
    }
}

/// The full result of `ringex-perf core`.
#[derive(Debug, Clone, Serialize)]
pub struct CoreReport {
    /// Always `"core"`.
    pub bench: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// Stream parameters.
    pub params: StreamParams,
    /// Engine configuration (risk aside).
    pub config: ConfigSummary,
    /// Setup commands (untimed).
    pub setup_commands: usize,
    /// Seconds spent generating the stream (untimed).
    pub generation_seconds: f64,
    /// `--warmup`: seconds of untimed passes before the timed runs.
    pub warmup_seconds: f64,
    /// `--duration`: least timed seconds per subject, if asked.
    pub min_timed_seconds: Option<f64>,
    /// What the stream looked like.
    pub stream: StreamStats,
    /// Engine, risk on.
    pub risk_on: SubjectResult,
    /// Engine, risk off.
    pub risk_off: SubjectResult,
    /// Reference model, risk off (`None` if unavailable).
    pub reference: Option<SubjectResult>,
    /// Risk-on throughput over the reference's.
    pub ratio_risk_on_vs_reference: Option<f64>,
    /// Risk-off throughput over the reference's.
    pub ratio_risk_off_vs_reference: Option<f64>,
    /// Risk-on CPU-time throughput over the reference's.
    pub cpu_ratio_risk_on_vs_reference: Option<f64>,
    /// Risk-off CPU-time throughput over the reference's.
    pub cpu_ratio_risk_off_vs_reference: Option<f64>,
    /// Risk-off engine and reference produced the same number of trades (and events).
    pub reference_trades_match: Option<bool>,
    /// Risk-on and risk-off engines produced the same number of trades.
    pub risk_trades_match: bool,
    /// [`TARGET_RISK_ON`].
    pub target_risk_on: f64,
    /// [`TARGET_RISK_OFF`].
    pub target_risk_off: f64,
    /// Risk-on median met its target.
    pub risk_on_target_met: bool,
    /// Risk-off median met its target.
    pub risk_off_target_met: bool,
}

/// One timed pass: wall seconds, thread CPU seconds (if readable), events.
#[derive(Debug, Clone, Copy)]
struct Pass {
    wall: f64,
    cpu: Option<f64>,
    sink: CountingSink,
}

/// One timed pass: a fresh subject from `make`, setup applied untimed, the
/// measured commands timed.
fn time_pass<T>(
    make: impl FnOnce() -> T,
    apply: impl Fn(&mut T, &Command, &mut CountingSink),
    setup: &[Command],
    measured: &[Command],
) -> Pass {
    let mut subject = make();
    let mut sink = CountingSink::default();
    for cmd in setup {
        apply(&mut subject, cmd, &mut sink);
    }
    let mut sink = CountingSink::default();
    let cpu_start = thread_cpu_ns();
    let start = Instant::now();
    for cmd in measured {
        apply(&mut subject, black_box(cmd), &mut sink);
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_start
        .zip(thread_cpu_ns())
        .map(|(a, b)| b.saturating_sub(a) as f64 / 1e9);
    black_box(&sink);
    drop(black_box(subject));
    Pass { wall, cpu, sink }
}

fn engine_pass(config: EngineConfig, setup: &[Command], measured: &[Command]) -> Pass {
    time_pass(
        || Engine::new(config),
        |e, c, s| e.apply(c, s),
        setup,
        measured,
    )
}

/// Subject (c): the reference model `ringex_core::reference::ReferenceEngine`
/// with the same configuration. Kept in one small function so the rest of
/// the harness does not depend on the model's internals.
fn reference_pass(config: EngineConfig, setup: &[Command], measured: &[Command]) -> Option<Pass> {
    use ringex_core::reference::ReferenceEngine;
    Some(time_pass(
        || ReferenceEngine::new(config),
        |e, c, s| e.apply(c, s),
        setup,
        measured,
    ))
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn summarise(name: &str, measured: usize, passes: &[Pass]) -> SubjectResult {
    let rates: Vec<f64> = passes.iter().map(|p| measured as f64 / p.wall).collect();
    let cpu_rates: Option<Vec<f64>> = passes
        .iter()
        .map(|p| p.cpu.map(|c| measured as f64 / c.max(1e-9)))
        .collect();
    let mid = median(&rates);
    let pass = passes[rates
        .iter()
        .position(|r| *r == mid)
        .expect("median is a run")];
    SubjectResult {
        name: name.to_string(),
        cmds_per_sec: mid,
        runs_cmds_per_sec: rates,
        seconds: pass.wall,
        cpu_cmds_per_sec: cpu_rates.map(|r| median(&r)),
        trades: pass.sink.trades,
        events: pass.sink.events,
    }
}

/// Generates the stream and times the three subjects.
pub fn run_core(opts: CoreOptions) -> CoreReport {
    let params = StreamParams {
        seed: opts.seed,
        commands: opts.commands,
        move_ids: opts.move_ids,
        ..StreamParams::default()
    };
    let t = Instant::now();
    let stream = generate(&params);
    let generation_seconds = t.elapsed().as_secs_f64();
    let configure = |risk| {
        let c = match opts.engine {
            Some(file) => EngineConfig { risk, ..file },
            None => params.engine_config(risk),
        };
        EngineConfig {
            max_orders: opts.max_orders.unwrap_or(c.max_orders),
            dedup_window: opts.dedup_window.unwrap_or(c.dedup_window),
            ..c
        }
    };
    let on = configure(RiskMode::Enabled);
    let off = configure(RiskMode::Disabled);
    let (setup, measured) = (&stream.setup, &stream.measured);
    let runs = opts.runs.max(1);
    // Untimed passes in the same interleaved order as the timed ones.
    let warmup_start = Instant::now();
    while warmup_start.elapsed().as_secs_f64() < opts.warmup {
        black_box(engine_pass(on, setup, measured));
        black_box(engine_pass(off, setup, measured));
        black_box(reference_pass(off, setup, measured));
    }
    let (mut p_on, mut p_off, mut p_ref) = (Vec::new(), Vec::new(), Vec::new());
    let timed = |passes: &[Pass]| passes.iter().map(|p| p.wall).sum::<f64>();
    while p_on.len() < runs
        || opts.duration.is_some_and(|d| {
            timed(&p_on).min(timed(&p_off)).min(if p_ref.is_empty() {
                f64::INFINITY
            } else {
                timed(&p_ref)
            }) < d
        })
    {
        p_on.push(engine_pass(on, setup, measured));
        p_off.push(engine_pass(off, setup, measured));
        if let Some(pass) = reference_pass(off, setup, measured) {
            p_ref.push(pass);
        }
    }
    let n = measured.len();
    let risk_on = summarise("engine, risk on", n, &p_on);
    let risk_off = summarise("engine, risk off", n, &p_off);
    let reference = (!p_ref.is_empty()).then(|| summarise("reference model, risk off", n, &p_ref));
    let ratio = |r: &SubjectResult| {
        reference
            .as_ref()
            .map(|rf| r.cmds_per_sec / rf.cmds_per_sec)
    };
    let cpu_ratio = |r: &SubjectResult| {
        let rf = reference.as_ref()?;
        Some(r.cpu_cmds_per_sec? / rf.cpu_cmds_per_sec?)
    };
    CoreReport {
        bench: "core",
        machine: Machine::detect(),
        params,
        config: ConfigSummary::from(&on),
        setup_commands: setup.len(),
        generation_seconds,
        warmup_seconds: opts.warmup,
        min_timed_seconds: opts.duration,
        stream: stream.stats.clone(),
        ratio_risk_on_vs_reference: ratio(&risk_on),
        ratio_risk_off_vs_reference: ratio(&risk_off),
        cpu_ratio_risk_on_vs_reference: cpu_ratio(&risk_on),
        cpu_ratio_risk_off_vs_reference: cpu_ratio(&risk_off),
        reference_trades_match: reference
            .as_ref()
            .map(|rf| rf.trades == risk_off.trades && rf.events == risk_off.events),
        risk_trades_match: risk_on.trades == risk_off.trades,
        target_risk_on: TARGET_RISK_ON,
        target_risk_off: TARGET_RISK_OFF,
        risk_on_target_met: risk_on.cmds_per_sec >= TARGET_RISK_ON,
        risk_off_target_met: risk_off.cmds_per_sec >= TARGET_RISK_OFF,
        risk_on,
        risk_off,
        reference,
    }
}

fn millions(x: f64) -> String {
    format!("{:.2} M", x / 1e6)
}

/// Human-readable report (everything but the JSON line).
pub fn render_core(r: &CoreReport) -> String {
    use std::fmt::Write;
    let s = &r.stream;
    let pct = |n: u64| n as f64 * 100.0 / s.commands.max(1) as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ringex-perf core: {} measured commands (seed {}), {} interleaved run(s) per subject{}, median shown; {:.1} s warm-up",
        s.commands,
        r.params.seed,
        r.risk_on.runs_cmds_per_sec.len(),
        r.min_timed_seconds
            .map(|d| format!(" (at least {d:.1} s timed each)"))
            .unwrap_or_default(),
        r.warmup_seconds
    );
    let _ = writeln!(out, "machine: {}", r.machine);
    let _ = writeln!(
        out,
        "stream: {:.1}% GTC ({:.1}% crossing), {:.1}% IOC, {:.1}% cancel, {:.1}% move ({} client id); {} accounts; \
         {:.1}% of commands trade; resting orders mean {:.0} (min {}, max {}) on ~{:.0} price levels; \
         {} setup commands; generated in {:.2} s",
        pct(s.gtc_passive + s.gtc_crossing),
        pct(s.gtc_crossing),
        pct(s.ioc),
        pct(s.cancels),
        pct(s.moves),
        match r.params.move_ids {
            MoveIds::Keep => "same",
            MoveIds::New => "new",
        },
        r.params.accounts,
        pct(s.commands_with_trades),
        s.resting_mean,
        s.resting_min,
        s.resting_max,
        s.levels_mean,
        r.setup_commands,
        r.generation_seconds
    );
    let _ = writeln!(
        out,
        "config: max_orders {}, dedup_window {}, max_price_levels {}, max_accounts {}",
        r.config.max_orders,
        r.config.dedup_window,
        r.config.max_price_levels,
        r.config.max_accounts
    );
    let _ = writeln!(
        out,
        "{:<28} {:>12} {:>14} {:>24} {:>10} {:>12}",
        "subject", "cmds/s wall", "cmds/s on-CPU", "wall runs (M cmds/s)", "trades", "events"
    );
    let mut row = |x: &SubjectResult| {
        let runs: Vec<String> = x
            .runs_cmds_per_sec
            .iter()
            .map(|v| format!("{:.2}", v / 1e6))
            .collect();
        let _ = writeln!(
            out,
            "{:<28} {:>12} {:>14} {:>24} {:>10} {:>12}",
            x.name,
            millions(x.cmds_per_sec),
            x.cpu_cmds_per_sec.map_or("-".into(), millions),
            runs.join(" "),
            x.trades,
            x.events
        );
    };
    row(&r.risk_on);
    row(&r.risk_off);
    match &r.reference {
        Some(rf) => row(rf),
        None => {
            let _ = writeln!(out, "reference model: not available in this build");
        }
    }
    if let (Some(a), Some(b)) = (r.ratio_risk_on_vs_reference, r.ratio_risk_off_vs_reference) {
        let _ = writeln!(
            out,
            "ratios (wall): risk-on / reference {a:.2}x, risk-off / reference {b:.2}x"
        );
    }
    if let (Some(a), Some(b)) = (
        r.cpu_ratio_risk_on_vs_reference,
        r.cpu_ratio_risk_off_vs_reference,
    ) {
        let _ = writeln!(
            out,
            "ratios (on-CPU): risk-on / reference {a:.2}x, risk-off / reference {b:.2}x"
        );
    }
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let _ = writeln!(
        out,
        "targets (wall median): risk on >= {} cmds/s: {}; risk off >= {} cmds/s: {}",
        millions(r.target_risk_on),
        verdict(r.risk_on_target_met),
        millions(r.target_risk_off),
        verdict(r.risk_off_target_met)
    );
    if r.reference_trades_match == Some(false) {
        let rf = r.reference.as_ref().expect("compared");
        let _ = writeln!(
            out,
            "WARNING: risk-off engine and reference model disagree: trades {} vs {}, events {} vs {}",
            r.risk_off.trades, rf.trades, r.risk_off.events, rf.events
        );
    }
    if !r.risk_trades_match {
        let _ = writeln!(
            out,
            "WARNING: risk-on and risk-off engines disagree on trades: {} vs {} (a risk reject?)",
            r.risk_on.trades, r.risk_off.trades
        );
    }
    out
}
