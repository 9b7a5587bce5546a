//! The ringex configuration file (TOML): the `[pipeline]`, `[engine]` and
//! `[journal]` sections, one format shared by the `ringex` server and
//! `ringex-perf`.
//!
//! [`DEFAULT_TOML`] is the commented default file, compiled in
//! (`core/config/default.toml`): it documents every key. A user's tables
//! are laid over it key by key ([`RingexConfig::from_toml`],
//! [`RingexConfig::from_layers`]), so a file names only what it changes;
//! unknown keys are errors. [`PRESETS`] are the files for a 2-core
//! development machine and for a dedicated many-core server; a file picks
//! one with `[pipeline] preset = "NAME"` (laid over the defaults before the
//! file itself), `ringex-perf` also with `--config NAME`.
//! [`RingexConfig::pipeline_config`] turns a configuration into the
//! [`PipelineConfig`] the stages run with.
//!
//! The server adds its own sections (`data_dir`, `[gateway]`, `[fix]`,
//! `[[markets]]`, `[[accounts]]`, `[demo]`) in
//! `ringex_gateways::server::config`; the three here are parsed by this
//! module for both programs. Read on the calling thread, before any stage
//! starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::engine::{EngineConfig, RiskMode};
use crate::pipeline::{JournalPretouch, PipelineConfig, StageConfig, StageThreads, WaitKind};
use ringex_journal::{
    DurabilityPolicy, JournalConfig, PretouchConfig, RecoveryMode, RetentionPolicy,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The default configuration file, every key documented.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Built-in presets: (name, file). The first is the defaults spelled out.
pub const PRESETS: [(&str, &str); 2] = [
    ("two-core", include_str!("../config/two-core.toml")),
    (
        "dedicated-server",
        include_str!("../config/dedicated-server.toml"),
    ),
];

/// `[pipeline]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// The preset laid under this file: `two-core` or `dedicated-server`.
    pub preset: String,
    /// Input ring slots (power of two, >= 64).
    pub input_ring_size: usize,
    /// Output ring slots (power of two, >= 2).
    pub output_ring_size: usize,
    /// Timer interval, ms; 0: no timer.
    pub timer_interval_ms: u64,
    /// `separate` or `fused` ([`StageThreads`]).
    pub stage_threads: String,
    /// The journaler stage.
    pub journaler: StageSection,
    /// The engine stage.
    pub engine: StageSection,
    /// The publisher stage.
    pub publisher: StageSection,
}

/// `[pipeline.<stage>]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSection {
    /// Core id, or -1 for none.
    pub core: i64,
    /// `busy-spin`, `spin-loop-hint`, `backoff` or `sleep:N`.
    pub wait: String,
}

/// `[engine]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineSection {
    /// Resting orders.
    pub max_orders: u32,
    /// Accounts.
    pub max_accounts: u32,
    /// Instruments.
    pub max_instruments: u32,
    /// Asset slots per account.
    pub max_assets: u16,
    /// Position records.
    pub max_positions: u32,
    /// Remembered finished client order ids.
    pub dedup_window: u32,
    /// Price levels across all books.
    pub max_price_levels: u32,
    /// `on` or `off`.
    pub risk: String,
}

/// `[journal]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// Folder of the input journal.
    pub dir: PathBuf,
    /// Segment size, MiB.
    pub segment_mib: u64,
    /// `none`, `write`, `fsync-batch` or `fsync-ms:N`.
    pub durability: String,
    /// `strict` or `tolerant`.
    pub recovery: String,
    /// `idle`, `thread` or `off`: who makes the input journal's pages ready.
    pub pretouch: String,
    /// MiB the `thread` pretoucher keeps ready ahead of the journaler.
    pub pretouch_mib: u64,
    /// Snapshot every this many commands; 0: never while running.
    pub snapshot_every: u64,
    /// Snapshot at clean shutdown.
    pub snapshot_on_shutdown: bool,
    /// Snapshots kept.
    pub keep_snapshots: usize,
}

/// A whole configuration, every key resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RingexConfig {
    /// `[pipeline]`.
    pub pipeline: PipelineSection,
    /// `[engine]`.
    pub engine: EngineSection,
    /// `[journal]`.
    pub journal: JournalSection,
}

/// A configuration file as read: where from, its text, and what it resolves to.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    /// The file (or `preset:<name>`).
    pub path: PathBuf,
    /// The text as read.
    pub text: String,
    /// The resolved configuration.
    pub config: RingexConfig,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

/// Parses a durability name: `none`, `write`, `fsync-batch` (or its
/// short form `fsync`) or `fsync-ms:N`.
pub fn parse_durability(s: &str) -> Result<DurabilityPolicy> {
    Ok(match s {
        "none" => DurabilityPolicy::None,
        "write" => DurabilityPolicy::Write,
        "fsync-batch" | "fsync" => DurabilityPolicy::FsyncPerBatch,
        _ => match s.strip_prefix("fsync-ms:").map(str::parse::<u64>) {
            Some(Ok(ms)) if ms > 0 => DurabilityPolicy::FsyncEveryMillis(ms),
            _ => {
                return Err(bad(format!(
                    "durability {s:?}: expected none, write, fsync-batch or fsync-ms:N (N >= 1)"
                )))
            }
        },
    })
}

/// The name [`parse_durability`] reads back.
pub fn durability_name(policy: DurabilityPolicy) -> String {
    match policy {
        DurabilityPolicy::None => "none".into(),
        DurabilityPolicy::Write => "write".into(),
        DurabilityPolicy::FsyncPerBatch => "fsync-batch".into(),
        DurabilityPolicy::FsyncEveryMillis(ms) => format!("fsync-ms:{ms}"),
    }
}

/// Parses a pretouch name (`idle`, `thread`, `off`); `ahead_mib` is the
/// thread's distance ahead.
pub fn parse_pretouch(s: &str, ahead_mib: u64) -> Result<JournalPretouch> {
    Ok(match s {
        "idle" => JournalPretouch::Idle,
        "off" => JournalPretouch::Off,
        "thread" => JournalPretouch::Thread(
            PretouchConfig::default().with_ahead((ahead_mib as usize) << 20),
        ),
        _ => return Err(bad(format!("pretouch {s:?}: expected idle, thread or off"))),
    })
}

/// The TOML table of a preset, by name.
fn preset_table(name: &str) -> Result<toml::Table> {
    preset_text(name)?
        .parse()
        .map_err(|e: toml::de::Error| bad(format!("preset {name}: {e}")))
}

/// The file of a preset, by name.
fn preset_text(name: &str) -> Result<&'static str> {
    PRESETS
        .iter()
        .find(|(p, _)| *p == name)
        .map(|(_, text)| *text)
        .ok_or_else(|| {
            bad(format!(
                "[pipeline] preset {name:?}: expected one of {}",
                PRESETS.map(|(p, _)| p).join(", ")
            ))
        })
}

/// Lays `over` onto `base`, table by table.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Parses a `stage_threads` value.
pub fn parse_stage_threads(s: &str) -> Result<StageThreads> {
    match s {
        "separate" => Ok(StageThreads::Separate),
        "fused" => Ok(StageThreads::Fused),
        _ => Err(bad(format!(
            "stage_threads {s:?}: expected \"separate\" or \"fused\""
        ))),
    }
}

/// Parses a `wait` value.
pub fn parse_wait(s: &str) -> Result<WaitKind> {
    Ok(match s {
        "busy-spin" => WaitKind::BusySpin,
        "spin-loop-hint" => WaitKind::SpinLoopHint,
        "backoff" => WaitKind::Backoff,
        _ => match s.strip_prefix("sleep:").map(str::parse::<u64>) {
            Some(Ok(us)) if us > 0 && us <= 1_000_000 => WaitKind::Sleep(us),
            _ => {
                return Err(bad(format!(
                    "wait {s:?}: expected busy-spin, spin-loop-hint, backoff or sleep:N (1..=1000000 us)"
                )))
            }
        },
    })
}

impl RingexConfig {
    /// The compiled-in defaults.
    pub fn defaults() -> RingexConfig {
        RingexConfig::from_toml("").expect("the default file is valid")
    }

    /// `text` laid over the defaults (and the preset it names), then checked.
    pub fn from_toml(text: &str) -> Result<RingexConfig> {
        let file: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        RingexConfig::from_layers(&[], file)
    }

    /// Resolves `file`'s `[pipeline]`, `[engine]` and `[journal]` tables:
    /// [`DEFAULT_TOML`], then each of `defaults` (a program's own defaults:
    /// the server's embedded values), then the preset `file` names, then
    /// `file` itself; later keys win. Then every value is checked.
    pub fn from_layers(defaults: &[toml::Table], file: toml::Table) -> Result<RingexConfig> {
        let mut base: toml::Table = DEFAULT_TOML
            .parse()
            .map_err(|e: toml::de::Error| bad(format!("default file: {e}")))?;
        for layer in defaults {
            merge(&mut base, layer.clone());
        }
        match file.get("pipeline").and_then(|p| p.get("preset")) {
            Some(toml::Value::String(name)) => merge(&mut base, preset_table(name)?),
            Some(_) => return Err(bad("[pipeline] preset must be a string")),
            None => {}
        }
        merge(&mut base, file);
        let config: RingexConfig = toml::Value::Table(base)
            .try_into()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    /// Reads `name`: a built-in preset (`two-core`, `dedicated-server`) or a file.
    pub fn load(name: &Path) -> Result<LoadedConfig> {
        if let Some((preset, text)) = PRESETS
            .iter()
            .find(|(p, _)| Path::new(p) == name && !name.exists())
        {
            return Ok(LoadedConfig {
                path: PathBuf::from(format!("preset:{preset}")),
                text: text.to_string(),
                config: RingexConfig::from_toml(text)?,
            });
        }
        let text = std::fs::read_to_string(name)
            .map_err(|e| bad(format!("cannot read {}: {e}", name.display())))?;
        let config =
            RingexConfig::from_toml(&text).map_err(|e| bad(format!("{}: {e}", name.display())))?;
        Ok(LoadedConfig {
            path: name.to_path_buf(),
            text,
            config,
        })
    }

    /// Checks every value that the types do not.
    pub fn check(&self) -> Result<()> {
        let p = &self.pipeline;
        preset_text(&p.preset)?;
        for (name, size, min) in [
            ("input_ring_size", p.input_ring_size, 64),
            ("output_ring_size", p.output_ring_size, 2),
        ] {
            if size < min || !size.is_power_of_two() || size > 1 << 26 {
                return Err(bad(format!(
                    "[pipeline] {name} must be a power of two in {min}..=67108864, got {size}"
                )));
            }
        }
        parse_stage_threads(&p.stage_threads).map_err(|e| bad(format!("[pipeline] {e}")))?;
        let mut cores = Vec::new();
        for (name, s) in self.stages() {
            parse_wait(&s.wait).map_err(|e| bad(format!("[pipeline.{name}] {e}")))?;
            if s.core < -1 || s.core > 4095 {
                return Err(bad(format!(
                    "[pipeline.{name}] core must be -1 (unpinned) or 0..=4095, got {}",
                    s.core
                )));
            }
            if s.core >= 0 {
                if cores.contains(&s.core) {
                    return Err(bad(format!(
                        "[pipeline.{name}] core {} is already given to another stage",
                        s.core
                    )));
                }
                cores.push(s.core);
            }
        }
        let e = &self.engine;
        if !matches!(e.risk.as_str(), "on" | "off") {
            return Err(bad(format!(
                "[engine] risk must be \"on\" or \"off\", got {:?}",
                e.risk
            )));
        }
        self.engine_config()
            .validate()
            .map_err(|err| bad(format!("[engine] {err}")))?;
        let j = &self.journal;
        parse_durability(&j.durability).map_err(|err| bad(format!("[journal] {err}")))?;
        if !matches!(j.recovery.as_str(), "strict" | "tolerant") {
            return Err(bad(format!(
                "[journal] recovery must be \"strict\" or \"tolerant\", got {:?}",
                j.recovery
            )));
        }
        parse_pretouch(&j.pretouch, 1).map_err(|err| bad(format!("[journal] {err}")))?;
        if j.pretouch_mib == 0 || j.pretouch_mib > 1024 {
            return Err(bad(format!(
                "[journal] pretouch_mib must be in 1..=1024, got {}",
                j.pretouch_mib
            )));
        }
        if j.segment_mib == 0 || j.segment_mib > 1024 {
            return Err(bad(format!(
                "[journal] segment_mib must be in 1..=1024, got {}",
                j.segment_mib
            )));
        }
        if j.keep_snapshots == 0 {
            return Err(bad("[journal] keep_snapshots must be at least 1"));
        }
        Ok(())
    }

    fn stages(&self) -> [(&'static str, &StageSection); 3] {
        [
            ("journaler", &self.pipeline.journaler),
            ("engine", &self.pipeline.engine),
            ("publisher", &self.pipeline.publisher),
        ]
    }

    /// The stages that run on a thread of their own: all three, or with
    /// `stage_threads = "fused"` the journaler's section alone, which
    /// configures the one thread.
    fn threaded_stages(&self) -> Vec<(&'static str, &StageSection)> {
        let all = self.stages();
        match self.stage_threads() {
            StageThreads::Separate => all.to_vec(),
            StageThreads::Fused => all[..1].to_vec(),
        }
    }

    /// How the stages are spread over threads (`[pipeline] stage_threads`).
    pub fn stage_threads(&self) -> StageThreads {
        parse_stage_threads(&self.pipeline.stage_threads)
            .expect("checked when the configuration was read")
    }

    /// Whether any stage busy-spins (so a harness beside it may spin too).
    pub fn spins(&self) -> bool {
        self.spinning_stages() > 0
    }

    /// How many stage threads busy-spin.
    pub fn spinning_stages(&self) -> usize {
        self.threaded_stages()
            .iter()
            .filter(|(_, s)| parse_wait(&s.wait).is_ok_and(WaitKind::spins))
            .count()
    }

    /// The journal's durability policy.
    pub fn durability(&self) -> DurabilityPolicy {
        parse_durability(&self.journal.durability).expect("checked when the configuration was read")
    }

    /// Who makes the input journal's pages ready (`[journal] pretouch`).
    pub fn journal_pretouch(&self) -> JournalPretouch {
        parse_pretouch(&self.journal.pretouch, self.journal.pretouch_mib)
            .expect("checked when the configuration was read")
    }

    /// The `[engine]` section as the core's engine configuration.
    pub fn engine_config(&self) -> EngineConfig {
        let e = &self.engine;
        EngineConfig {
            max_orders: e.max_orders,
            max_accounts: e.max_accounts,
            max_instruments: e.max_instruments,
            max_assets: e.max_assets,
            max_positions: e.max_positions,
            dedup_window: e.dedup_window,
            max_price_levels: e.max_price_levels,
            risk: if e.risk == "off" {
                RiskMode::Disabled
            } else {
                RiskMode::Enabled
            },
        }
    }

    /// The core's pipeline configuration, with the journal in `journal_dir`
    /// (`ringex-perf` passes a temporary folder; the server passes
    /// `[journal] dir` under its `data_dir`).
    pub fn pipeline_config(&self, journal_dir: &Path) -> PipelineConfig {
        let stage = |s: &StageSection| StageConfig {
            core: usize::try_from(s.core).ok(),
            wait: parse_wait(&s.wait).expect("checked when the configuration was read"),
        };
        let j = &self.journal;
        let mut config = PipelineConfig::two_core_default(journal_dir);
        config.input_ring_size = self.pipeline.input_ring_size;
        config.output_ring_size = self.pipeline.output_ring_size;
        config.journaler = stage(&self.pipeline.journaler);
        config.engine = stage(&self.pipeline.engine);
        config.publisher = stage(&self.pipeline.publisher);
        config.stage_threads = self.stage_threads();
        config.timer_interval = (self.pipeline.timer_interval_ms > 0)
            .then(|| Duration::from_millis(self.pipeline.timer_interval_ms));
        config.journal = JournalConfig::default()
            .with_segment_size(j.segment_mib << 20)
            .with_durability(self.durability())
            .with_recovery(if j.recovery == "tolerant" {
                RecoveryMode::Tolerant
            } else {
                RecoveryMode::Strict
            });
        config.journal_pretouch = self.journal_pretouch();
        config.engine_config = self.engine_config();
        config.snapshot_every = (j.snapshot_every > 0).then_some(j.snapshot_every);
        config.snapshot_on_shutdown = j.snapshot_on_shutdown;
        config.snapshot_retention = RetentionPolicy {
            keep_snapshots: j.keep_snapshots,
        };
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_gives_the_cores_two_core_defaults() {
        let c = RingexConfig::defaults();
        let dir = Path::new("/tmp/x");
        let ours = c.pipeline_config(dir);
        let core = PipelineConfig::two_core_default(dir);
        assert_eq!(ours.input_ring_size, core.input_ring_size);
        assert_eq!(ours.output_ring_size, core.output_ring_size);
        assert_eq!(
            (ours.journaler, ours.engine, ours.publisher),
            (core.journaler, core.engine, core.publisher)
        );
        assert_eq!(ours.journal, core.journal);
        assert_eq!(ours.journal_pretouch, core.journal_pretouch);
        assert_eq!(ours.journal_pretouch, JournalPretouch::Idle);
        assert_eq!(ours.engine_config, core.engine_config);
        assert_eq!(ours.timer_interval, core.timer_interval);
        assert_eq!(ours.snapshot_every, core.snapshot_every);
        assert!(!c.spins());
    }

    #[test]
    fn every_key_of_the_default_file_is_documented_by_a_comment_above_it() {
        let lines: Vec<&str> = DEFAULT_TOML.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
                continue;
            }
            // A key directly under a comment, or a stage key under the shared stage comment.
            let above = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().starts_with("core") && !l.trim().starts_with("wait"))
                .map(|l| l.trim());
            assert!(
                above.is_some_and(|l| l.starts_with('#') || l.starts_with('[')),
                "undocumented key: {line}"
            );
        }
    }

    #[test]
    fn presets_resolve_and_the_dedicated_one_pins_and_spins() {
        for (name, text) in PRESETS {
            RingexConfig::from_toml(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        let d = RingexConfig::load(Path::new("dedicated-server"))
            .unwrap()
            .config;
        assert!(d.spins());
        let p = d.pipeline_config(Path::new("/tmp/x"));
        assert_eq!(p.engine, StageConfig::pinned_spin(3));
        assert_eq!(d.durability(), DurabilityPolicy::FsyncPerBatch);
        // The same pretoucher as the Rust preset.
        assert_eq!(
            p.journal_pretouch,
            PipelineConfig::dedicated_server("/tmp/x", &[2, 3, 4]).journal_pretouch
        );
        assert!(matches!(p.journal_pretouch, JournalPretouch::Thread(_)));
        assert_eq!(
            RingexConfig::load(Path::new("two-core")).unwrap().config,
            RingexConfig::defaults()
        );
    }

    #[test]
    fn a_file_names_a_preset_and_overrides_keys_over_it() {
        let c = RingexConfig::from_toml(
            "[pipeline]\npreset = \"dedicated-server\"\n[pipeline.engine]\ncore = 7\n",
        )
        .unwrap();
        let dedicated = RingexConfig::load(Path::new("dedicated-server"))
            .unwrap()
            .config;
        assert_eq!(c.pipeline.preset, "dedicated-server");
        assert_eq!(c.pipeline.engine.core, 7);
        assert_eq!(c.pipeline.journaler, dedicated.pipeline.journaler);
        assert_eq!(c.engine, dedicated.engine);
        for bad_preset in [
            "[pipeline]\npreset = \"fast\"\n",
            "[pipeline]\npreset = 3\n",
        ] {
            let err = RingexConfig::from_toml(bad_preset).unwrap_err().to_string();
            assert!(err.contains("preset"), "{err}");
        }
        // A program's own defaults sit under the preset: the preset's
        // capacities win over them, the file's keys over both.
        let own: toml::Table = "[engine]\nmax_orders = 1024\n".parse().unwrap();
        let file: toml::Table = "[pipeline]\npreset = \"dedicated-server\"\n"
            .parse()
            .unwrap();
        let c = RingexConfig::from_layers(std::slice::from_ref(&own), file).unwrap();
        assert_eq!(c.engine.max_orders, dedicated.engine.max_orders);
        let c = RingexConfig::from_layers(&[own], toml::Table::new()).unwrap();
        assert_eq!(c.engine.max_orders, 1024);
    }

    #[test]
    fn durability_names_read_back() {
        for name in ["none", "write", "fsync-batch", "fsync-ms:5"] {
            assert_eq!(durability_name(parse_durability(name).unwrap()), name);
        }
        assert_eq!(
            parse_durability("fsync").unwrap(),
            DurabilityPolicy::FsyncPerBatch
        );
        for bad in ["fsync-ms:0", "fsync-ms:x", "always", ""] {
            assert!(parse_durability(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pretouch_names_and_distance() {
        let c = RingexConfig::from_toml("[journal]\npretouch = \"thread\"\npretouch_mib = 16\n")
            .unwrap();
        assert_eq!(
            c.pipeline_config(Path::new("/tmp/x")).journal_pretouch,
            JournalPretouch::Thread(PretouchConfig::default().with_ahead(16 << 20))
        );
        let c = RingexConfig::from_toml("[journal]\npretouch = \"off\"\n").unwrap();
        assert_eq!(c.journal_pretouch(), JournalPretouch::Off);
    }

    #[test]
    fn stage_threads_are_fused_by_default_and_separate_for_the_dedicated_preset() {
        let c = RingexConfig::defaults();
        assert_eq!(c.stage_threads(), StageThreads::Fused);
        assert_eq!(
            c.pipeline_config(Path::new("/tmp/x")).stage_threads,
            StageThreads::Fused
        );
        let d = RingexConfig::load(Path::new("dedicated-server"))
            .unwrap()
            .config;
        assert_eq!(d.stage_threads(), StageThreads::Separate);
        assert_eq!(d.spinning_stages(), 3);
        let c = RingexConfig::from_toml(
            "[pipeline]\nstage_threads = \"fused\"\n\
             [pipeline.journaler]\nwait = \"busy-spin\"\n\
             [pipeline.engine]\nwait = \"busy-spin\"\n",
        )
        .unwrap();
        let p = c.pipeline_config(Path::new("/tmp/x"));
        assert_eq!(p.stage_threads, StageThreads::Fused);
        assert_eq!(p.stage_configs().len(), 1);
        // The engine's section is not a thread when fused: one spins.
        assert_eq!(c.spinning_stages(), 1);
        let err = RingexConfig::from_toml("[pipeline]\nstage_threads = \"one\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("stage_threads") && err.contains("fused"),
            "{err}"
        );
    }

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let c = RingexConfig::from_toml(
            "[pipeline.engine]\nwait = \"sleep:50\"\n[journal]\ndurability = \"fsync-ms:5\"\n",
        )
        .unwrap();
        assert_eq!(
            parse_wait(&c.pipeline.engine.wait).unwrap(),
            WaitKind::Sleep(50)
        );
        assert_eq!(
            c.pipeline.journaler,
            RingexConfig::defaults().pipeline.journaler
        );
        assert_eq!(c.durability(), DurabilityPolicy::FsyncEveryMillis(5));
        assert_eq!(c.engine, RingexConfig::defaults().engine);
    }

    #[test]
    fn bad_files_are_refused_with_the_key_named() {
        for (text, needle) in [
            ("[pipeline]\ninput_ring_size = 1000\n", "input_ring_size"),
            ("[pipeline]\nring = 4\n", "ring"),
            ("[gateway]\nport = 1\n", "gateway"),
            ("[pipeline.engine]\nwait = \"yield\"\n", "wait"),
            (
                "[pipeline.engine]\ncore = 1\n[pipeline.publisher]\ncore = 1\n",
                "core 1",
            ),
            ("[engine]\nrisk = \"maybe\"\n", "risk"),
            ("[engine]\nmax_orders = 0\n", "[engine]"),
            ("[journal]\ndurability = \"always\"\n", "durability"),
            ("[journal]\nsegment_mib = 0\n", "segment_mib"),
            ("[journal]\nsegment_mib = \"big\"\n", "segment_mib"),
            ("[journal]\npretouch = \"always\"\n", "pretouch"),
            ("[journal]\npretouch_mib = 0\n", "pretouch_mib"),
            ("not toml at all [", ""),
        ] {
            let err = RingexConfig::from_toml(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        assert!(RingexConfig::load(Path::new("/nonexistent/ringex.toml")).is_err());
    }
}
