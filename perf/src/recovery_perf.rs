//! `ringex-perf recovery`: how long the pipeline takes to come back from a
//! snapshot plus a journal tail, for several tail lengths.
//!
//! **The session.** A pipeline (the configuration file's stages and
//! journal, or the two-core preset; timer and periodic snapshots off) takes
//! the set-up of the seeded stream ([`crate::stream`]: the instrument,
//! `--accounts` accounts with deposits, and a book of `--orders` resting
//! orders) and shuts down, writing its shutdown snapshot at that sequence
//! `S`. The engine the shutdown hands back is serialised again
//! ([`Engine::write_snapshot`]) and written to a scratch
//! [`SnapshotStore`] (atomic, synced) to time a snapshot write; the
//! pipeline's own file gives the size. Then, for each tail length in
//! ascending order, further pipelines (no shutdown snapshot) append the
//! stream's measured mix until the journal holds `S + tail` commands, so
//! the snapshot at `S` stays the newest and every tail is replayed.
//!
//! **What is timed, per tail, per run** (the median run is reported):
//!
//! - *snapshot load*: [`restore_snapshot_for`], the choice and restore
//!   start-up performs (file CRC, history check against the journal,
//!   engine restore, digest check);
//! - *tail replay*: reading, decoding and applying the tail's commands to
//!   that restored engine, as start-up's replay does;
//! - *start-up*: the real thing, [`Pipeline::start`] until it returns
//!   (journal recovery scan, snapshot choice and restore, tail replay with
//!   the output journal compared byte for byte, stage threads started);
//!   the pipeline is then shut down, untimed and leaving no snapshot.
//!
//! Start-up is therefore at least load + tail; the difference is the
//! journal's recovery scan, the output journal's comparison and the
//! threads. Every run checks its result against a clean replay of the
//! whole journal from sequence 1 ([`ringex_replay::replay_digest`]): the
//! restored-and-replayed engine and the started pipeline must both have
//! its state digest. `--warmup` repeats untimed start-ups for that long
//! before each tail's runs. The journal is read from the page cache (it was
//! just written): this measures recovery work, not a cold disk.
//!
//! Everything but the pipelines' own stage threads runs on the calling
//! thread.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ringex_core::pipeline::{
    restore_snapshot_for, CommandSender, Pipeline, PipelineConfig, SubmitError,
};
use ringex_core::records::{Command, Event};
use ringex_core::{Engine, EngineConfig, RiskMode};
use ringex_journal::SnapshotStore;
use ringex_replay::source::CommandReader;
use ringex_replay::{check_journal, Which};
use serde::Serialize;

use crate::config::RingexConfig;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::replay_perf::{median, risk_word};
use crate::stream::{Generator, StreamParams};
use crate::sys::Machine;

/// Options of `ringex-perf recovery`.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryOptions {
    /// Accounts of the state in the snapshot.
    pub accounts: u32,
    /// Resting orders of the state in the snapshot (the stream's target book).
    pub orders: usize,
    /// Tail lengths (commands after the snapshot), measured in ascending order.
    pub tails: Vec<u64>,
    /// Timed runs per tail; the median is reported.
    pub runs: usize,
    /// Seconds of untimed start-ups before each tail's runs.
    pub warmup: f64,
    /// Stream seed.
    pub seed: u64,
    /// Parent of the temporary session folder (`None`: the system's temporary folder).
    pub dir: Option<PathBuf>,
    /// Keep the session folder.
    pub keep: bool,
    /// The configuration file's values (`None`: the two-core preset, an
    /// engine sized to the state with risk on).
    #[serde(skip)]
    pub config: Option<RingexConfig>,
}

impl Default for RecoveryOptions {
    fn default() -> Self {
        RecoveryOptions {
            accounts: 10_000,
            orders: 100_000,
            tails: vec![0, 100_000, 1_000_000],
            runs: 3,
            warmup: 0.5,
            seed: 1,
            dir: None,
            keep: false,
            config: None,
        }
    }
}

impl RecoveryOptions {
    /// Refuses options that cannot run.
    pub fn check(&self) -> Result<()> {
        let bad = |s: &str| Err(Error::Unexpected(s.into()));
        if self.accounts == 0 || self.accounts > 10_000_000 {
            return bad("--accounts must be in 1..=10000000");
        }
        if self.orders == 0 || self.orders > 10_000_000 {
            return bad("--orders must be in 1..=10000000");
        }
        if self.tails.is_empty() || self.tails.iter().any(|&t| t > 100_000_000) {
            return bad("--tails must name at least one length, each at most 100000000");
        }
        if self.runs == 0 || self.runs > 100 {
            return bad("--runs must be in 1..=100");
        }
        if !(0.0..=60.0).contains(&self.warmup) {
            return bad("--warmup must be in [0, 60]");
        }
        Ok(())
    }

    fn stream(&self) -> StreamParams {
        StreamParams {
            seed: self.seed,
            commands: 0,
            accounts: self.accounts,
            target_orders: self.orders,
            ..StreamParams::default()
        }
    }

    fn engine_config(&self) -> EngineConfig {
        match &self.config {
            Some(c) => c.engine_config(),
            None => self.stream().engine_config(RiskMode::Enabled),
        }
    }

    fn pipeline_config(&self, dir: &Path) -> PipelineConfig {
        let base = match &self.config {
            Some(c) => c.pipeline_config(dir),
            None => PipelineConfig::two_core_default(dir),
        };
        base.with_engine(self.engine_config())
            .with_timer(None)
            .with_snapshot_every(None)
            .with_snapshot_on_shutdown(false)
    }
}

/// The snapshot every tail starts from.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    /// Its sequence `S` (the set-up's last command).
    pub sequence: u64,
    /// Its file's size, bytes.
    pub bytes: u64,
    /// Resting orders in it.
    pub resting_orders: u64,
    /// Median ms of `Engine::write_snapshot` into a buffer.
    pub serialize_ms: f64,
    /// Median ms of writing that buffer to a snapshot store (atomic, synced).
    pub write_ms: f64,
}

/// One timed run of one tail.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryRun {
    /// `restore_snapshot_for`, ms.
    pub snapshot_load_ms: f64,
    /// The tail's replay into the restored engine, ms.
    pub tail_replay_ms: f64,
    /// `Pipeline::start`, ms.
    pub startup_ms: f64,
}

/// The runs of one tail length.
#[derive(Debug, Clone, Serialize)]
pub struct TailResult {
    /// Commands after the snapshot.
    pub tail: u64,
    /// Every run.
    pub runs: Vec<RecoveryRun>,
    /// Median snapshot load, ms.
    pub snapshot_load_ms: f64,
    /// Median tail replay, ms.
    pub tail_replay_ms: f64,
    /// Median start-up, ms.
    pub startup_ms: f64,
    /// Tail commands per second of the median tail replay (`None` for an empty tail).
    pub tail_commands_per_sec: Option<f64>,
    /// The state digest of a clean replay of the whole journal.
    pub clean_digest: u64,
    /// Every restored-and-replayed engine and every started pipeline had
    /// the clean replay's digest, started from the snapshot at `S`, and
    /// replayed exactly the tail.
    pub digest_matches: bool,
}

/// The result of `ringex-perf recovery`.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryReport {
    /// Always `"recovery"`.
    pub bench: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// The options.
    pub options: RecoveryOptions,
    /// The engine configuration.
    pub engine: ringex_replay::config::EngineConfigFile,
    /// The snapshot.
    pub snapshot: SnapshotInfo,
    /// One per tail length, ascending.
    pub tails: Vec<TailResult>,
    /// The session folder, and whether it was kept.
    pub session_dir: String,
    /// Whether the session folder was kept.
    pub kept: bool,
    /// The results folder, if written.
    pub results_dir: Option<String>,
}

fn perr(e: impl std::fmt::Display) -> Error {
    Error::Unexpected(format!("pipeline: {e}"))
}

fn rerr(e: ringex_replay::ReplayError) -> Error {
    Error::Unexpected(format!("replay: {e}"))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Submits every command, waiting while the ring is full.
fn submit_all(sender: &mut CommandSender, cmds: impl Iterator<Item = Command>) -> Result<()> {
    for cmd in cmds {
        loop {
            match sender.try_submit(cmd) {
                Ok(_) => break,
                Err(SubmitError::Busy) => std::thread::yield_now(),
                Err(e) => return Err(perr(e)),
            }
        }
    }
    Ok(())
}

/// Runs `commands` through a pipeline of `config` and shuts it down;
/// returns the engine and the shutdown snapshot's path, if one was written.
fn run_pipeline_with(
    config: PipelineConfig,
    commands: impl Iterator<Item = Command>,
) -> Result<(Engine, Option<PathBuf>)> {
    let pipeline = Pipeline::start(config).map_err(perr)?;
    let mut sender = pipeline.sender();
    submit_all(&mut sender, commands)?;
    drop(sender);
    let report = pipeline.shutdown();
    if !report.health.is_ok() {
        return Err(perr(format!("unhealthy: {:?}", report.health)));
    }
    let engine = report
        .engine
        .ok_or_else(|| perr("the engine was not handed back"))?;
    Ok((engine, report.snapshot))
}

/// Runs the scenario (see the module docs).
pub fn run_recovery(opts: RecoveryOptions, progress: &Progress) -> Result<RecoveryReport> {
    opts.check()?;
    let mut builder = tempfile::Builder::new();
    builder.prefix("ringex-perf-recovery-");
    let folder = match &opts.dir {
        Some(parent) => {
            std::fs::create_dir_all(parent)?;
            builder.tempdir_in(parent)?
        }
        None => builder.tempdir()?,
    };
    let dir = folder.path().join("session");
    let config = opts.pipeline_config(&dir);
    let engine_config = opts.engine_config();

    // The state, and its snapshot at S.
    progress.set_message(format!(
        "building {} accounts and {} resting orders",
        opts.accounts, opts.orders
    ));
    let mut gen = Generator::new(opts.stream());
    let setup = gen.setup();
    let sequence = setup.len() as u64;
    let (engine, snapshot_path) = run_pipeline_with(
        config.clone().with_snapshot_on_shutdown(true),
        setup.into_iter(),
    )?;
    let snapshot_path = snapshot_path.ok_or_else(|| perr("no shutdown snapshot was written"))?;
    let (mut serialize, mut write) = (Vec::new(), Vec::new());
    let scratch = SnapshotStore::open(folder.path().join("scratch"))
        .map_err(|e| Error::Unexpected(format!("snapshot store: {e}")))?;
    let mut buf = Vec::new();
    for _ in 0..opts.runs {
        buf.clear();
        let t = Instant::now();
        engine.write_snapshot(&mut buf);
        serialize.push(ms(t.elapsed()));
        let t = Instant::now();
        scratch
            .write(sequence, &buf)
            .map_err(|e| Error::Unexpected(format!("snapshot write: {e}")))?;
        write.push(ms(t.elapsed()));
    }
    let snapshot = SnapshotInfo {
        sequence,
        bytes: std::fs::metadata(&snapshot_path)?.len(),
        resting_orders: gen.tracker().len() as u64,
        serialize_ms: median(serialize),
        write_ms: median(write),
    };
    drop(engine);
    progress.inc(1);

    let mut tails = opts.tails.clone();
    tails.sort_unstable();
    tails.dedup();
    let mut appended = 0u64;
    let mut results = Vec::new();
    for &tail in &tails {
        if tail > appended {
            progress.set_message(format!("appending the tail up to {tail} commands"));
            let more = tail - appended;
            run_pipeline_with(config.clone(), (0..more).map(|_| gen.next_command()))?;
            appended = tail;
        }
        progress.set_message(format!(
            "tail {tail}: clean replay for the reference digest"
        ));
        let (replayed, clean_digest) =
            ringex_replay::replay_digest(&dir, engine_config, None).map_err(rerr)?;
        if replayed != sequence + tail {
            return Err(Error::Unexpected(format!(
                "the journal holds {replayed} commands, expected {}",
                sequence + tail
            )));
        }
        let warm_until = Instant::now() + Duration::from_secs_f64(opts.warmup);
        let mut warm = opts.warmup > 0.0;
        while warm {
            recover_once(&dir, &config, engine_config, sequence, tail, clean_digest)?;
            warm = Instant::now() < warm_until;
        }
        let mut runs = Vec::new();
        let mut digest_matches = true;
        for run in 1..=opts.runs {
            progress.set_message(format!("tail {tail}: run {run} of {}", opts.runs));
            let (r, ok) = recover_once(&dir, &config, engine_config, sequence, tail, clean_digest)?;
            digest_matches &= ok;
            runs.push(r);
        }
        let tail_replay_ms = median(runs.iter().map(|r| r.tail_replay_ms).collect());
        results.push(TailResult {
            tail,
            snapshot_load_ms: median(runs.iter().map(|r| r.snapshot_load_ms).collect()),
            startup_ms: median(runs.iter().map(|r| r.startup_ms).collect()),
            tail_commands_per_sec: (tail > 0)
                .then(|| tail as f64 / (tail_replay_ms / 1e3).max(1e-9)),
            tail_replay_ms,
            clean_digest,
            digest_matches,
            runs,
        });
        progress.inc(1);
    }
    let session_dir = folder.path().display().to_string();
    let kept = opts.keep;
    if kept {
        let _ = folder.keep();
    } else {
        folder.close()?;
    }
    Ok(RecoveryReport {
        bench: "recovery",
        machine: Machine::detect(),
        engine: engine_config.into(),
        options: opts,
        snapshot,
        tails: results,
        session_dir,
        kept,
        results_dir: None,
    })
}

/// One timed run: load, tail replay, and a real start-up; whether all of
/// it agreed with the clean replay.
fn recover_once(
    dir: &Path,
    config: &PipelineConfig,
    engine_config: EngineConfig,
    sequence: u64,
    tail: u64,
    clean_digest: u64,
) -> Result<(RecoveryRun, bool)> {
    // Untimed: where the journal starts and ends (start-up learns it while
    // opening the journal, which the start-up figure includes).
    let check = check_journal(Which::Input, dir).map_err(rerr)?;
    let mut skipped = Vec::new();
    let t = Instant::now();
    let start = restore_snapshot_for(
        &config.snapshot_path(),
        engine_config,
        dir,
        check.report.first_sequence,
        check.last_sequence(),
        None,
        &mut skipped,
    )
    .map_err(perr)?
    .ok_or_else(|| perr("no usable snapshot"))?;
    let snapshot_load = t.elapsed();
    let mut engine = start.engine;
    let t = Instant::now();
    let mut reader = CommandReader::open_from(&check, start.used.sequence + 1).map_err(rerr)?;
    let mut events: Vec<Event> = Vec::with_capacity(256);
    let mut replayed = 0u64;
    while let Some(cmd) = reader.next_command().map_err(rerr)? {
        events.clear();
        engine.apply(&cmd, &mut events);
        replayed += 1;
    }
    let tail_replay = t.elapsed();
    let mut ok = start.used.sequence == sequence
        && replayed == tail
        && engine.state_digest() == clean_digest
        && skipped.is_empty();
    drop(engine);

    let t = Instant::now();
    let pipeline = Pipeline::start(config.clone()).map_err(perr)?;
    let startup = t.elapsed();
    let report = pipeline.startup().clone();
    let shutdown = pipeline.shutdown();
    ok &= report.snapshot.as_ref().map(|s| s.sequence) == Some(sequence)
        && report.replayed == tail
        && report.digest_after_replay == clean_digest
        && report.output.error.is_none()
        && shutdown.health.is_ok()
        && shutdown.snapshot.is_none();
    Ok((
        RecoveryRun {
            snapshot_load_ms: ms(snapshot_load),
            tail_replay_ms: ms(tail_replay),
            startup_ms: ms(startup),
        },
        ok,
    ))
}

/// Writes the plot, the summary and the context into `dir`.
pub fn write_recovery_results(
    dir: &crate::results::ResultsDir,
    report: &mut RecoveryReport,
    config_file: Option<(&Path, &str)>,
) -> Result<()> {
    use crate::plot::{line_chart, Series};
    let line = |label: &str, f: fn(&TailResult) -> f64| Series {
        label: label.into(),
        points: report.tails.iter().map(|t| (t.tail as f64, f(t))).collect(),
    };
    line_chart(
        &dir.path().join("recovery-time.svg"),
        &format!(
            "recovery from a snapshot ({} resting orders, {} accounts) plus a tail",
            report.snapshot.resting_orders, report.options.accounts
        ),
        "tail length (commands after the snapshot)",
        "milliseconds (median)",
        &[
            line("start-up (Pipeline::start)", |t| t.startup_ms),
            line("tail replay", |t| t.tail_replay_ms),
            line("snapshot load", |t| t.snapshot_load_ms),
        ],
    )?;
    report.results_dir = Some(dir.path().display().to_string());
    dir.write_context(&report.machine, &report.options, config_file)?;
    dir.write_json("summary.json", report)?;
    dir.write_text("summary.txt", &render_recovery(report))?;
    Ok(())
}

/// The human-readable report.
pub fn render_recovery(r: &RecoveryReport) -> String {
    use std::fmt::Write;
    let sn = &r.snapshot;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ringex-perf recovery: start-up from a snapshot plus a journal tail"
    );
    let _ = writeln!(s, "machine:    {}", r.machine);
    let _ = writeln!(
        s,
        "state:      {} accounts, {} resting orders; engine risk {}, {} orders, {} price levels",
        r.options.accounts,
        sn.resting_orders,
        risk_word(&r.engine),
        r.engine.max_orders,
        r.engine.max_price_levels
    );
    let _ = writeln!(
        s,
        "snapshot:   at sequence {}, {:.1} MB; serialise {:.1} ms, write (atomic, synced) {:.1} ms",
        sn.sequence,
        sn.bytes as f64 / 1e6,
        sn.serialize_ms,
        sn.write_ms
    );
    let _ = writeln!(
        s,
        "runs:       {} per tail, median shown; warm-up {} s per tail",
        r.options.runs, r.options.warmup
    );
    let _ = writeln!(
        s,
        "{:>10} {:>12} {:>12} {:>12} {:>14} {:>8}",
        "tail", "load ms", "tail ms", "start-up ms", "tail cmds/s", "digest"
    );
    for t in &r.tails {
        let _ = writeln!(
            s,
            "{:>10} {:>12.1} {:>12.1} {:>12.1} {:>14} {:>8}",
            t.tail,
            t.snapshot_load_ms,
            t.tail_replay_ms,
            t.startup_ms,
            t.tail_commands_per_sec
                .map_or_else(|| "-".to_string(), |c| format!("{c:.0}")),
            if t.digest_matches { "ok" } else { "DIFFERS" }
        );
    }
    let _ = writeln!(s, "load: restore_snapshot_for; tail: read + decode + apply into the restored engine; start-up: Pipeline::start (journal recovery, load, tail replay with the output journal compared, threads)");
    let _ = writeln!(
        s,
        "session:    {}{}",
        r.session_dir,
        if r.kept { " (kept)" } else { " (removed)" }
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
    fn every_tail_recovers_to_the_clean_replays_digest() {
        let opts = RecoveryOptions {
            accounts: 50,
            orders: 200,
            tails: vec![3_000, 0, 500],
            runs: 1,
            warmup: 0.0,
            ..RecoveryOptions::default()
        };
        let report = run_recovery(opts, &Progress::hidden()).unwrap();
        assert!(!report.kept && !Path::new(&report.session_dir).exists());
        let tails: Vec<u64> = report.tails.iter().map(|t| t.tail).collect();
        assert_eq!(tails, [0, 500, 3_000]);
        assert_eq!(report.snapshot.sequence, 1 + 3 * 50 + 200);
        assert!(report.snapshot.bytes > 0 && report.snapshot.resting_orders >= 200);
        for t in &report.tails {
            assert!(t.digest_matches, "tail {}", t.tail);
            assert!(t.startup_ms > 0.0);
        }
        // Different tails end in different states.
        assert_ne!(report.tails[1].clean_digest, report.tails[2].clean_digest);
        assert!(report.tails[0].tail_commands_per_sec.is_none());
    }

    #[test]
    fn bad_options_are_refused() {
        for opts in [
            RecoveryOptions {
                tails: vec![],
                ..RecoveryOptions::default()
            },
            RecoveryOptions {
                runs: 0,
                ..RecoveryOptions::default()
            },
            RecoveryOptions {
                orders: 0,
                ..RecoveryOptions::default()
            },
        ] {
            assert!(run_recovery(opts, &Progress::hidden()).is_err());
        }
    }
}
