//! `ringex-perf replay`: how fast a journal replays through a fresh engine.
//!
//! **The journal.** A session of `commands` commands of the seeded
//! exchange-core-shaped stream ([`crate::stream`]: its set-up, then the
//! measured mix), written the way the pipeline writes one: the input
//! journal in a folder (kind [`JOURNAL_KIND_COMMAND`], the stamped 80-byte
//! command) and the output journal in its `events` subfolder (kind
//! [`JOURNAL_KIND_EVENT`], event index, the command's timestamp, the 96
//! event bytes), so `ringex-replay verify` accepts it. The commands go
//! through a "live" engine of the configuration under test (by default the
//! stream's sizes with risk on) whose events fill the output journal and
//! whose state digest every replay must reproduce. The folder is a fresh
//! temporary one (under `--journal-dir`, default the system's temporary
//! folder) removed afterwards unless `--keep`; `--journal DIR` reuses a
//! session written there before (its `ringex-perf-replay.json` manifest
//! names the engine configuration, also written alone to `engine.json` for
//! `ringex-replay verify DIR --config DIR/engine.json`) or writes one there
//! and keeps it.
//!
//! **What is timed.** Each run first checks the input journal's chain
//! ([`ringex_replay::check_journal`], timed separately), then:
//!
//! - *replay*: read, decode and apply every command to a fresh engine, as
//!   the replay of `ringex-replay verify` and the pipeline's start-up do
//!   (the events go to a reused buffer, then are dropped);
//! - *verify* (unless `--no-verify`): [`ringex_replay::verify`] itself,
//!   which also compares every regenerated event with the output journal
//!   byte for byte (its `replay_elapsed`; its two chain checks excluded).
//!
//! The engine's construction is inside the timed part (a replay starts with
//! it); the state digest at the end is not. Runs of the two modes
//! alternate; the median run is reported. `--duration` caps a replay run
//! (the rate then covers the commands it got through); `--warmup` replays
//! untimed for that long first (CPU caches, page cache). The journal is
//! read from the page cache after its generation: this measures the
//! replay, not the disk.
//!
//! Everything runs on the calling thread.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringex_core::pipeline::{JOURNAL_KIND_COMMAND, JOURNAL_KIND_EVENT};
use ringex_core::records::{Command, Event, COMMAND_SIZE};
use ringex_core::{Engine, EngineConfig, RiskMode};
use ringex_journal::format::frame_size;
use ringex_journal::{DurabilityPolicy, Journal, JournalConfig};
use ringex_replay::config::{EngineConfigFile, Risk};
use ringex_replay::source::CommandReader;
use ringex_replay::{check_journal, SessionPaths, Verdict, Which};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::stream::{Generator, StreamParams};
use crate::sys::Machine;

/// The manifest `ringex-perf replay` leaves beside a session it wrote.
pub const MANIFEST: &str = "ringex-perf-replay.json";

/// The engine configuration of a session, as `ringex-replay --config` reads it.
pub const ENGINE_JSON: &str = "engine.json";

/// Bytes of one event record's payload.
const EVENT_SIZE: usize = std::mem::size_of::<Event>();

/// Options of `ringex-perf replay`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayOptions {
    /// Measured-mix commands of a generated journal (its set-up comes first).
    pub commands: u64,
    /// Stream seed.
    pub seed: u64,
    /// Timed runs per mode; the median is reported.
    pub runs: usize,
    /// Seconds of untimed replay before the runs.
    pub warmup: f64,
    /// Most seconds one replay run may take (`None`: the whole journal).
    pub duration: Option<f64>,
    /// Also time [`ringex_replay::verify`] (the output-journal comparison).
    pub verify: bool,
    /// Reuse the session in this folder, or write one there and keep it.
    pub journal: Option<PathBuf>,
    /// Parent of the temporary session folder (`None`: the system's temporary folder).
    pub journal_dir: Option<PathBuf>,
    /// Keep the temporary session folder.
    pub keep: bool,
    /// The engine configuration of a generated journal (`None`: the stream's sizes, risk on).
    #[serde(skip)]
    pub engine: Option<EngineConfig>,
    /// Segment size of a generated journal, bytes.
    pub segment_size: u64,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            commands: 10_000_000,
            seed: 1,
            runs: 3,
            warmup: 1.0,
            duration: None,
            verify: true,
            journal: None,
            journal_dir: None,
            keep: false,
            engine: None,
            segment_size: ringex_journal::DEFAULT_SEGMENT_SIZE,
        }
    }
}

impl ReplayOptions {
    /// Refuses options that cannot run.
    pub fn check(&self) -> Result<()> {
        let bad = |s: &str| Err(Error::Unexpected(s.into()));
        if self.commands == 0 || self.commands > 200_000_000 {
            return bad("--commands must be in 1..=200000000");
        }
        if self.runs == 0 || self.runs > 100 {
            return bad("--runs must be in 1..=100");
        }
        if !(0.0..=60.0).contains(&self.warmup) {
            return bad("--warmup must be in [0, 60]");
        }
        if self.duration.is_some_and(|d| !(d > 0.0 && d <= 3600.0)) {
            return bad("--duration must be in (0, 3600]");
        }
        Ok(())
    }
}

/// What the journal folder holds (written as [`MANIFEST`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionManifest {
    /// Stream seed.
    pub seed: u64,
    /// Set-up commands (instrument, accounts, deposits, book prefill).
    pub setup_commands: u64,
    /// Measured-mix commands after the set-up.
    pub measured_commands: u64,
    /// Commands in the input journal.
    pub commands: u64,
    /// Events in the output journal.
    pub events: u64,
    /// The live engine's configuration (a replay must use the same), in
    /// the JSON form `ringex-replay` reads.
    pub engine: EngineConfigFile,
    /// The live engine's state digest after the last command.
    pub live_digest: u64,
}

impl SessionManifest {
    /// Framed bytes of the input journal's records.
    pub fn input_bytes(&self) -> u64 {
        self.commands * frame_size(COMMAND_SIZE) as u64
    }

    /// Framed bytes of the output journal's records.
    pub fn output_bytes(&self) -> u64 {
        self.events * frame_size(EVENT_SIZE) as u64
    }

    /// The engine configuration to replay with.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig::from(self.engine)
    }
}

/// `on` or `off`, as the configuration file says it.
pub(crate) fn risk_word(engine: &EngineConfigFile) -> &'static str {
    match engine.risk {
        Risk::Enabled => "on",
        Risk::Disabled => "off",
    }
}

fn jerr(e: ringex_journal::Error) -> Error {
    Error::Unexpected(format!("journal: {e}"))
}

fn rerr(e: ringex_replay::ReplayError) -> Error {
    Error::Unexpected(format!("replay: {e}"))
}

/// Writes a session of the stream into `dir` (input journal there, output
/// journal in `dir/events`) through a live engine of `engine`, calling
/// `tick` every 1% of the commands; returns its manifest (also written to
/// `dir`). `dir` must be empty or absent: a folder holding anything else
/// (another session's journal, say) is refused before anything in it is
/// opened, so it is never recovered or written.
pub fn write_session(
    dir: &Path,
    params: StreamParams,
    engine: EngineConfig,
    segment_size: u64,
    mut tick: impl FnMut(u64, u64),
) -> Result<SessionManifest> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        return Err(Error::Unexpected(format!(
            "{} is not empty and holds no {MANIFEST}: a new session needs an empty folder",
            dir.display()
        )));
    }
    let journal_config = JournalConfig::default()
        .with_segment_size(segment_size)
        .with_durability(DurabilityPolicy::Write);
    journal_config.validate().map_err(jerr)?;
    let (mut input, _) = Journal::open(dir, journal_config).map_err(jerr)?;
    let (mut output, _) = Journal::open(dir.join("events"), journal_config).map_err(jerr)?;
    let mut live = Engine::try_new(engine)
        .map_err(|e| Error::Unexpected(format!("engine configuration: {e}")))?;
    let mut gen = Generator::new(StreamParams {
        commands: 0,
        ..params
    });
    let mut events: Vec<Event> = Vec::with_capacity(256);
    let mut event_index = 0u64;
    let mut write = |cmd: &Command| -> Result<()> {
        input
            .append(
                cmd.sequence,
                cmd.timestamp,
                JOURNAL_KIND_COMMAND,
                bytemuck::bytes_of(cmd),
            )
            .map_err(jerr)?;
        events.clear();
        live.apply(cmd, &mut events);
        for e in &events {
            event_index += 1;
            output
                .append(
                    event_index,
                    cmd.timestamp,
                    JOURNAL_KIND_EVENT,
                    bytemuck::bytes_of(e),
                )
                .map_err(jerr)?;
        }
        // Batches as the journaler ends them under load.
        if cmd.sequence % 1024 == 0 {
            input.end_batch().map_err(jerr)?;
            output.end_batch().map_err(jerr)?;
        }
        Ok(())
    };
    let setup = gen.setup();
    for cmd in &setup {
        write(cmd)?;
    }
    let measured = params.commands as u64;
    let step = (measured / 100).max(1);
    for i in 0..measured {
        write(&gen.next_command())?;
        if (i + 1) % step == 0 {
            tick(i + 1, measured);
        }
    }
    input.end_batch().map_err(jerr)?;
    output.end_batch().map_err(jerr)?;
    input.close().map_err(jerr)?;
    output.close().map_err(jerr)?;
    let manifest = SessionManifest {
        seed: params.seed,
        setup_commands: setup.len() as u64,
        measured_commands: measured,
        commands: setup.len() as u64 + measured,
        events: event_index,
        engine: EngineConfigFile::from(engine),
        live_digest: live.state_digest(),
    };
    let text =
        serde_json::to_string_pretty(&manifest).map_err(|e| Error::Unexpected(e.to_string()))?;
    std::fs::write(dir.join(MANIFEST), text)?;
    // The engine configuration alone, for `ringex-replay verify DIR --config DIR/engine.json`.
    let engine_json = serde_json::to_string_pretty(&manifest.engine)
        .map_err(|e| Error::Unexpected(e.to_string()))?;
    std::fs::write(dir.join(ENGINE_JSON), engine_json)?;
    Ok(manifest)
}

/// Reads the manifest of a session written before.
pub fn read_manifest(dir: &Path) -> Result<SessionManifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Unexpected(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::Unexpected(format!("{}: {e}", path.display())))
}

/// One timed run.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayRun {
    /// Commands replayed.
    pub commands: u64,
    /// Events regenerated.
    pub events: u64,
    /// Seconds (engine construction, read, decode, apply; verify: and compare).
    pub seconds: f64,
    /// The replayed engine's state digest (after the whole journal).
    pub digest: u64,
    /// `(commands replayed, seconds)` along the run, for the plot.
    #[serde(skip)]
    pub timeline: Vec<(f64, f64)>,
}

/// The runs of one mode.
#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    /// `replay` or `verify`.
    pub mode: &'static str,
    /// Every run, in order.
    pub runs: Vec<ReplayRun>,
    /// The median run's commands per second.
    pub commands_per_sec: f64,
    /// The median run's journal megabytes (10^6 bytes) per second: the
    /// input journal's framed records; for verify, the output journal's too.
    pub mb_per_sec: f64,
    /// The median run's seconds.
    pub seconds: f64,
    /// Every run that got through the whole journal reproduced the live
    /// engine's state digest (verify: and every event, byte for byte).
    pub matches_live: bool,
}

/// The result of `ringex-perf replay`.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// Always `"replay"`.
    pub bench: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// The options.
    pub options: ReplayOptions,
    /// The session replayed.
    pub session: SessionManifest,
    /// Its folder.
    pub journal_dir: String,
    /// Whether the folder was kept.
    pub kept: bool,
    /// Seconds generating the session (`None`: reused).
    pub generate_seconds: Option<f64>,
    /// Framed bytes of the input journal.
    pub input_bytes: u64,
    /// Framed bytes of the output journal.
    pub output_bytes: u64,
    /// Median seconds of the input journal's chain check (CRCs, hash chain).
    pub check_seconds: f64,
    /// `replay`, then `verify` if asked for.
    pub modes: Vec<ModeResult>,
    /// The results folder, if written.
    pub results_dir: Option<String>,
}

/// Replays the input journal in `dir` through a fresh engine of `config`
/// until it ends or `cap` passes.
pub fn replay_once(dir: &Path, config: EngineConfig, cap: Option<Duration>) -> Result<ReplayRun> {
    let check = check_journal(Which::Input, dir).map_err(rerr)?;
    let every = (check.last_sequence().unwrap_or(0) / 50).max(1);
    let started = Instant::now();
    let mut engine = Engine::try_new(config)
        .map_err(|e| Error::Unexpected(format!("engine configuration: {e}")))?;
    let mut reader = CommandReader::open(&check).map_err(rerr)?;
    let mut events: Vec<Event> = Vec::with_capacity(256);
    let (mut commands, mut n_events) = (0u64, 0u64);
    let mut timeline = vec![(0.0, 0.0)];
    while let Some(cmd) = reader.next_command().map_err(rerr)? {
        events.clear();
        engine.apply(&cmd, &mut events);
        n_events += events.len() as u64;
        commands += 1;
        if commands % every == 0 {
            let t = started.elapsed();
            timeline.push((commands as f64, t.as_secs_f64()));
            if cap.is_some_and(|c| t >= c) {
                break;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    timeline.push((commands as f64, seconds));
    Ok(ReplayRun {
        commands,
        events: n_events,
        seconds,
        digest: engine.state_digest(),
        timeline,
    })
}

fn verify_once(dir: &Path, config: EngineConfig) -> Result<(ReplayRun, bool, f64)> {
    let started = Instant::now();
    let mut timeline = vec![(0.0, 0.0)];
    let mut on_progress = |done: u64, _total: u64| {
        timeline.push((done as f64, started.elapsed().as_secs_f64()));
    };
    let report = ringex_replay::verify(
        &SessionPaths::new(dir, None),
        config,
        Some(&mut on_progress),
    )
    .map_err(rerr)?;
    let ok = report.verdict(true) == Verdict::Ok;
    // The callback's clock includes the chain checks; the plot shows the replay alone.
    let offset = report.check_elapsed.as_secs_f64();
    for p in timeline.iter_mut().skip(1) {
        p.1 = (p.1 - offset).max(0.0);
    }
    Ok((
        ReplayRun {
            commands: report.commands,
            events: report.events,
            seconds: report.replay_elapsed.as_secs_f64(),
            digest: report.digest,
            timeline,
        },
        ok,
        report.check_elapsed.as_secs_f64(),
    ))
}

/// The median of `v` (the upper one of an even count; 0 when empty).
pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn mode_result(
    mode: &'static str,
    runs: Vec<ReplayRun>,
    bytes_per_command: f64,
    all_ok: bool,
    live: &SessionManifest,
) -> ModeResult {
    let by_rate = |r: &ReplayRun| r.commands as f64 / r.seconds.max(1e-9);
    let mut order: Vec<usize> = (0..runs.len()).collect();
    order.sort_by(|&a, &b| by_rate(&runs[a]).total_cmp(&by_rate(&runs[b])));
    let mid = &runs[order[order.len() / 2]];
    let rate = by_rate(mid);
    let matches_live = all_ok
        && runs
            .iter()
            .filter(|r| r.commands == live.commands)
            .all(|r| r.digest == live.live_digest)
        && runs.iter().any(|r| r.commands == live.commands);
    ModeResult {
        mode,
        commands_per_sec: rate,
        mb_per_sec: rate * bytes_per_command / 1e6,
        seconds: mid.seconds,
        matches_live,
        runs,
    }
}

/// The session folder: reused, created where asked, or temporary.
enum Folder {
    Kept(PathBuf),
    Temp(tempfile::TempDir),
}

impl Folder {
    fn path(&self) -> &Path {
        match self {
            Folder::Kept(p) => p,
            Folder::Temp(t) => t.path(),
        }
    }
}

/// Runs the scenario (see the module docs).
pub fn run_replay(opts: ReplayOptions, progress: &Progress) -> Result<ReplayReport> {
    opts.check()?;
    let folder = match (&opts.journal, &opts.journal_dir) {
        (Some(dir), _) => {
            std::fs::create_dir_all(dir)?;
            Folder::Kept(dir.clone())
        }
        (None, parent) => {
            let mut b = tempfile::Builder::new();
            b.prefix("ringex-perf-replay-");
            Folder::Temp(match parent {
                Some(p) => {
                    std::fs::create_dir_all(p)?;
                    b.tempdir_in(p)?
                }
                None => b.tempdir()?,
            })
        }
    };
    let dir = folder.path().to_path_buf();
    let (session, generate_seconds) = if dir.join(MANIFEST).is_file() {
        progress.set_message(format!("reusing the session in {}", dir.display()));
        (read_manifest(&dir)?, None)
    } else {
        let params = StreamParams {
            seed: opts.seed,
            commands: opts.commands as usize,
            ..StreamParams::default()
        };
        let engine = opts
            .engine
            .unwrap_or_else(|| params.engine_config(RiskMode::Enabled));
        let started = Instant::now();
        let manifest = write_session(&dir, params, engine, opts.segment_size, |done, total| {
            progress.set_message(format!("writing the journal: {done} of {total} commands"));
        })?;
        (manifest, Some(started.elapsed().as_secs_f64()))
    };
    progress.inc(1);
    let config = session.engine_config();
    let cap = opts.duration.map(Duration::from_secs_f64);
    if opts.warmup > 0.0 {
        progress.set_message("warm-up");
        replay_once(&dir, config, Some(Duration::from_secs_f64(opts.warmup)))?;
    }
    let (mut replays, mut verifies, mut checks) = (Vec::new(), Vec::new(), Vec::new());
    let mut verify_ok = true;
    for run in 1..=opts.runs {
        progress.set_message(format!("run {run} of {}: replay", opts.runs));
        let started = Instant::now();
        check_journal(Which::Input, &dir).map_err(rerr)?;
        checks.push(started.elapsed().as_secs_f64());
        replays.push(replay_once(&dir, config, cap)?);
        progress.inc(1);
        if opts.verify {
            progress.set_message(format!("run {run} of {}: verify", opts.runs));
            let (r, ok, _) = verify_once(&dir, config)?;
            verify_ok &= ok;
            verifies.push(r);
            progress.inc(1);
        }
    }
    let input_bytes = session.input_bytes();
    let output_bytes = session.output_bytes();
    let per_command = input_bytes as f64 / session.commands.max(1) as f64;
    let mut modes = vec![mode_result("replay", replays, per_command, true, &session)];
    if opts.verify {
        let per_command = (input_bytes + output_bytes) as f64 / session.commands.max(1) as f64;
        modes.push(mode_result(
            "verify",
            verifies,
            per_command,
            verify_ok,
            &session,
        ));
    }
    let kept = match folder {
        Folder::Kept(_) => true,
        Folder::Temp(t) if opts.keep => {
            let _ = t.keep();
            true
        }
        // Removed here, before the results are written.
        Folder::Temp(t) => {
            t.close()?;
            false
        }
    };
    Ok(ReplayReport {
        bench: "replay",
        machine: Machine::detect(),
        journal_dir: dir.display().to_string(),
        kept,
        generate_seconds,
        input_bytes,
        output_bytes,
        check_seconds: median(checks),
        session,
        options: opts,
        modes,
        results_dir: None,
    })
}

/// Writes the plot, the summary and the context into `dir`.
pub fn write_replay_results(
    dir: &crate::results::ResultsDir,
    report: &mut ReplayReport,
    config_file: Option<(&Path, &str)>,
) -> Result<()> {
    use crate::plot::{line_chart, Series};
    let series: Vec<Series> = report
        .modes
        .iter()
        .map(|m| {
            let mid = m
                .runs
                .iter()
                .min_by(|a, b| {
                    (a.seconds - m.seconds)
                        .abs()
                        .total_cmp(&(b.seconds - m.seconds).abs())
                })
                .expect("at least one run");
            Series {
                label: format!("{} (median run)", m.mode),
                points: mid.timeline.clone(),
            }
        })
        .collect();
    line_chart(
        &dir.path().join("replay-progress.svg"),
        &format!(
            "replay of {} commands: seconds against commands replayed",
            report.session.commands
        ),
        "commands replayed",
        "seconds",
        &series,
    )?;
    report.results_dir = Some(dir.path().display().to_string());
    dir.write_context(&report.machine, &report.options, config_file)?;
    dir.write_json("summary.json", report)?;
    dir.write_text("summary.txt", &render_replay(report))?;
    Ok(())
}

/// The human-readable report.
pub fn render_replay(r: &ReplayReport) -> String {
    use std::fmt::Write;
    let s_ = &r.session;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ringex-perf replay: a journal replayed through a fresh engine (read + decode + apply)"
    );
    let _ = writeln!(s, "machine:    {}", r.machine);
    let _ = writeln!(
        s,
        "journal:    {} commands ({} set-up + {} of the stream, seed {}), {} events; input {:.1} MB, output {:.1} MB framed; {}{}",
        s_.commands,
        s_.setup_commands,
        s_.measured_commands,
        s_.seed,
        s_.events,
        r.input_bytes as f64 / 1e6,
        r.output_bytes as f64 / 1e6,
        r.journal_dir,
        if r.kept { " (kept)" } else { " (removed)" }
    );
    let _ = writeln!(
        s,
        "engine:     risk {}, {} orders, {} accounts, {} price levels, dedup window {}",
        risk_word(&s_.engine),
        s_.engine.max_orders,
        s_.engine.max_accounts,
        s_.engine.max_price_levels,
        s_.engine.dedup_window
    );
    if let Some(g) = r.generate_seconds {
        let _ = writeln!(
            s,
            "generated:  in {g:.1} s (stream generator + live engine + both journals)"
        );
    }
    let _ = writeln!(
        s,
        "runs:       {} per mode, median shown; warm-up {} s; chain check of the input journal {:.0} ms (not in the figures)",
        r.options.runs,
        r.options.warmup,
        r.check_seconds * 1e3
    );
    let _ = writeln!(
        s,
        "{:>8} {:>12} {:>14} {:>9} {:>9} {:>16}",
        "mode", "commands", "commands/s", "MB/s", "seconds", "matches live"
    );
    for m in &r.modes {
        let commands = m.runs.iter().map(|x| x.commands).max().unwrap_or(0);
        let _ = writeln!(
            s,
            "{:>8} {:>12} {:>14.0} {:>9.1} {:>9.3} {:>16}",
            m.mode,
            commands,
            m.commands_per_sec,
            m.mb_per_sec,
            m.seconds,
            if m.matches_live { "yes" } else { "NO" }
        );
    }
    let _ = writeln!(s, "replay: read + CRC + decode + apply; verify: the same plus a byte-for-byte comparison of every event with the output journal (MB/s counts both journals)");
    if let Some(dir) = &r.results_dir {
        let _ = writeln!(s, "results:    {dir}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_session_replays_to_the_live_digest_and_verifies() {
        let opts = ReplayOptions {
            commands: 5_000,
            runs: 1,
            warmup: 0.0,
            ..ReplayOptions::default()
        };
        let report = run_replay(opts, &Progress::hidden()).unwrap();
        assert!(!report.kept && !Path::new(&report.journal_dir).exists());
        assert_eq!(report.session.measured_commands, 5_000);
        assert!(report.session.events > report.session.commands);
        for m in &report.modes {
            assert!(m.matches_live, "{}", m.mode);
            assert_eq!(m.runs[0].commands, report.session.commands);
            assert_eq!(m.runs[0].events, report.session.events);
        }
        assert_eq!(report.modes.len(), 2);
    }

    #[test]
    fn a_kept_session_is_reused_and_a_damaged_manifest_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s");
        let opts = ReplayOptions {
            commands: 2_000,
            runs: 1,
            warmup: 0.0,
            verify: false,
            journal: Some(dir.clone()),
            ..ReplayOptions::default()
        };
        let first = run_replay(opts.clone(), &Progress::hidden()).unwrap();
        assert!(first.kept && first.generate_seconds.is_some());
        // A different --commands does not matter: the session is reused as written.
        let again = run_replay(
            ReplayOptions {
                commands: 9,
                ..opts.clone()
            },
            &Progress::hidden(),
        )
        .unwrap();
        assert!(again.generate_seconds.is_none());
        assert_eq!(again.session.live_digest, first.session.live_digest);
        assert!(again.modes[0].matches_live);
        std::fs::write(dir.join(MANIFEST), "{ not json").unwrap();
        assert!(run_replay(opts.clone(), &Progress::hidden()).is_err());
        // Without a manifest the folder is someone else's: refused, untouched.
        std::fs::remove_file(dir.join(MANIFEST)).unwrap();
        let before: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let err = run_replay(opts, &Progress::hidden())
            .unwrap_err()
            .to_string();
        assert!(err.contains("not empty"), "{err}");
        let after: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(before, after);
    }

    #[test]
    fn a_capped_run_stops_early_and_claims_no_match() {
        let run = ReplayRun {
            commands: 10,
            events: 0,
            seconds: 1.0,
            digest: 0,
            timeline: Vec::new(),
        };
        let live = SessionManifest {
            seed: 1,
            setup_commands: 1,
            measured_commands: 99,
            commands: 100,
            events: 0,
            engine: EngineConfigFile::from(EngineConfig::small()),
            live_digest: 7,
        };
        let m = mode_result("replay", vec![run], 112.0, true, &live);
        assert!(!m.matches_live);
        assert!((m.commands_per_sec - 10.0).abs() < 1e-9);
        assert!((m.mb_per_sec - 10.0 * 112.0 / 1e6).abs() < 1e-12);
        assert_eq!(
            live.engine_config(),
            EngineConfig::small(),
            "the manifest's engine section round-trips"
        );
    }
}
