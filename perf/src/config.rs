//! The ringex configuration file (TOML), shared by `ringex-perf` and, later,
//! the `ringex` server.
//!
//! [`DEFAULT_TOML`] is the commented default file, compiled in
//! (`perf/config/default.toml`): it documents every key. A user's file is
//! laid over it key by key ([`RingexConfig::from_toml`]), so it names only
//! what it changes; unknown keys are errors. [`PRESETS`] are the files for a
//! 2-core development machine and for a dedicated many-core server.
//! [`RingexConfig::pipeline_config`] turns a configuration into the core's
//! [`PipelineConfig`].
//!
//! Sections: `[pipeline]` (+ `[pipeline.journaler]`, `[pipeline.engine]`,
//! `[pipeline.publisher]`), `[engine]`, `[journal]`; the server's `[fix]`
//! and `[http]` will join them. Read on the calling thread, before any
//! stage starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ringex_core::pipeline::{PipelineConfig, StageConfig, WaitKind};
use ringex_core::{EngineConfig, RiskMode};
use ringex_journal::{JournalConfig, RecoveryMode, RetentionPolicy};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::pipeline::Durability;

/// The default configuration file, every key documented.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// Built-in presets: (name, file).
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
    /// Input ring slots (power of two, >= 64).
    pub input_ring_size: usize,
    /// Output ring slots (power of two, >= 2).
    pub output_ring_size: usize,
    /// Timer interval, ms; 0: no timer.
    pub timer_interval_ms: u64,
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
    Error::Unexpected(format!("configuration: {}", msg.into()))
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

    /// `text` laid over the defaults, then checked.
    pub fn from_toml(text: &str) -> Result<RingexConfig> {
        let mut base: toml::Table = DEFAULT_TOML
            .parse()
            .map_err(|e: toml::de::Error| bad(format!("default file: {e}")))?;
        let over: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| bad(e.to_string()))?;
        merge(&mut base, over);
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
        j.durability
            .parse::<Durability>()
            .map_err(|err| bad(format!("[journal] {err}")))?;
        if !matches!(j.recovery.as_str(), "strict" | "tolerant") {
            return Err(bad(format!(
                "[journal] recovery must be \"strict\" or \"tolerant\", got {:?}",
                j.recovery
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

    /// Whether any stage busy-spins (so a harness beside it may spin too).
    pub fn spins(&self) -> bool {
        self.stages()
            .iter()
            .any(|(_, s)| parse_wait(&s.wait).is_ok_and(WaitKind::spins))
    }

    /// The journal's durability policy.
    pub fn durability(&self) -> Durability {
        self.journal
            .durability
            .parse()
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
    /// `[journal] dir`).
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
        config.timer_interval = (self.pipeline.timer_interval_ms > 0)
            .then(|| Duration::from_millis(self.pipeline.timer_interval_ms));
        config.journal = JournalConfig::default()
            .with_segment_size(j.segment_mib << 20)
            .with_durability(self.durability().0)
            .with_recovery(if j.recovery == "tolerant" {
                RecoveryMode::Tolerant
            } else {
                RecoveryMode::Strict
            });
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
        assert_eq!(d.durability().to_string(), "fsync-batch");
        assert_eq!(
            RingexConfig::load(Path::new("two-core")).unwrap().config,
            RingexConfig::defaults()
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
        assert_eq!(c.durability().to_string(), "fsync-ms:5");
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
            ("not toml at all [", ""),
        ] {
            let err = RingexConfig::from_toml(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
        assert!(RingexConfig::load(Path::new("/nonexistent/ringex.toml")).is_err());
    }
}
