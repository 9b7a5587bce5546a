//! The server's configuration file (TOML).
//!
//! The `[pipeline]`, `[engine]` and `[journal]` sections are the ringex
//! configuration format that `ringex-perf` reads too
//! ([`ringex_core::config`]): they are laid over the shared defaults and
//! this file's embedded values, then over the preset a file names
//! (`[pipeline] preset = "dedicated-server"`), so a file names only the keys
//! it changes there. The server's own sections, `data_dir`, `[gateway]`,
//! `[fix]`, `[[markets]]`, `[[accounts]]` and `[demo]`, are read as written.
//! The embedded default ([`DEFAULT_CONFIG`]) documents every server key;
//! `ringex-perf config` prints the shared ones.

use super::demo::Quoting;
use crate::fix::FixServerConfig;
use crate::ws::{AccountConfig, GatewayConfig, Limits, MarketConfig};
use ringex_core::config::{EngineSection, JournalSection, PipelineSection, RingexConfig};
use ringex_core::pipeline::PipelineConfig;
use ringex_core::EngineConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default configuration `ringex` runs with (a commented TOML file).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Journal, output journal and snapshots (relative: from the working folder).
    pub data_dir: PathBuf,
    /// Pipeline stages and rings (the shared format).
    pub pipeline: PipelineSection,
    /// Engine capacities and risk (the shared format).
    pub engine: EngineSection,
    /// Journal folder, durability and snapshots (the shared format).
    pub journal: JournalSection,
    /// The HTTP/WebSocket gateway.
    pub gateway: GatewaySection,
    /// The FIX acceptor ([`FixServerConfig`]); none: no FIX listener. A
    /// relative `store_dir` is taken from `data_dir`.
    pub fix: Option<FixServerConfig>,
    /// Markets created when the journal does not know them.
    pub markets: Vec<MarketConfig>,
    /// Accounts created and funded when the journal does not know them.
    pub accounts: Vec<ServerAccount>,
    /// The in-process demo market.
    pub demo: DemoSection,
}

/// The server's own sections, as written in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSections {
    data_dir: PathBuf,
    gateway: GatewaySection,
    #[serde(default)]
    fix: Option<FixServerConfig>,
    #[serde(default)]
    markets: Vec<MarketConfig>,
    #[serde(default)]
    accounts: Vec<ServerAccount>,
    #[serde(default)]
    demo: DemoSection,
}

/// The sections of the shared format, taken out of a parsed file.
const SHARED_SECTIONS: [&str; 3] = ["pipeline", "engine", "journal"];

fn take_shared_sections(file: &mut toml::Table) -> toml::Table {
    SHARED_SECTIONS
        .iter()
        .filter_map(|name| file.remove(*name).map(|v| (name.to_string(), v)))
        .collect()
}

/// `[gateway]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySection {
    /// Listen address (port 0: any free port).
    pub listen: SocketAddr,
    /// Admin key; absent disables the admin endpoints.
    #[serde(default)]
    pub admin_key: Option<String>,
    /// Connection limits (defaults of [`Limits`]).
    #[serde(default)]
    pub limits: Limits,
}

/// One `[[accounts]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerAccount {
    /// Engine account id (1.., below `max_accounts`; 0 is the fee account).
    pub account: u32,
    /// Its API key.
    pub api_key: String,
    /// Deposits made when the account is created.
    #[serde(default)]
    pub deposits: Vec<DepositConfig>,
}

/// A deposit of `amount` units of `asset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositConfig {
    /// Asset id.
    pub asset: u16,
    /// Amount in the asset's units.
    pub amount: u64,
}

/// `[demo]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DemoSection {
    /// Run the makers and traders.
    #[serde(default)]
    pub enabled: bool,
    /// Market makers.
    #[serde(default)]
    pub makers: Vec<MakerConfig>,
    /// Liquidity takers.
    #[serde(default)]
    pub traders: Vec<TraderConfig>,
}

/// One `[[demo.makers]]`: two-sided quotes around a random-walk mid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MakerConfig {
    /// Market.
    pub ticker: String,
    /// The `[[fix.sessions]]` it trades on, by the client's CompID (the
    /// session's `target_comp_id`). Makers on one session share a connection.
    pub session: String,
    /// Requote interval.
    #[serde(default = "default_maker_interval")]
    pub interval_ms: u64,
    /// Lowest mid (price units).
    #[serde(default = "default_min_price")]
    pub min_price: i64,
    /// Highest mid.
    #[serde(default = "default_max_price")]
    pub max_price: i64,
    /// Ask minus bid.
    #[serde(default = "default_spread")]
    pub spread: i64,
    /// Quantity per side (quantity units).
    #[serde(default = "default_quantity")]
    pub quantity: u64,
}

impl MakerConfig {
    /// What the maker quotes on this market.
    pub fn quoting(&self) -> Quoting {
        Quoting {
            ticker: self.ticker.clone(),
            interval: Duration::from_millis(self.interval_ms),
            min_price: self.min_price,
            max_price: self.max_price,
            spread: self.spread,
            quantity: self.quantity,
        }
    }
}

fn default_maker_interval() -> u64 {
    3000
}
fn default_min_price() -> i64 {
    33
}
fn default_max_price() -> i64 {
    67
}
fn default_spread() -> i64 {
    10
}
fn default_quantity() -> u64 {
    100
}

/// One `[[demo.traders]]`: IOC orders at a market's price bound.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraderConfig {
    /// The `[[fix.sessions]]` it trades on, by the client's CompID (one
    /// trader per session).
    pub session: String,
    /// Time between orders.
    pub interval_ms: u64,
    /// Largest order (quantity units); each order is 1..=this.
    pub max_quantity: u64,
    /// Markets it trades.
    pub tickers: Vec<String>,
}

impl ServerConfig {
    /// The embedded default.
    pub fn default_config() -> ServerConfig {
        ServerConfig::parse(DEFAULT_CONFIG).expect("the embedded default configuration is valid")
    }

    /// Parses and validates a TOML text. Its `[pipeline]`, `[engine]` and
    /// `[journal]` are laid over the embedded default's (and the preset
    /// they name); the other sections are taken as written.
    pub fn parse(text: &str) -> Result<ServerConfig, String> {
        let mut file: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        let shared = take_shared_sections(&mut file);
        let mut embedded: toml::Table = DEFAULT_CONFIG
            .parse()
            .map_err(|e: toml::de::Error| format!("embedded default: {e}"))?;
        let shared = RingexConfig::from_layers(&[take_shared_sections(&mut embedded)], shared)
            .map_err(|e| e.to_string())?;
        let own: ServerSections = toml::Value::Table(file)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        let config = ServerConfig {
            data_dir: own.data_dir,
            pipeline: shared.pipeline,
            engine: shared.engine,
            journal: shared.journal,
            gateway: own.gateway,
            fix: own.fix,
            markets: own.markets,
            accounts: own.accounts,
            demo: own.demo,
        };
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<ServerConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        ServerConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Checks what serde cannot: the shared sections' values, that every
    /// referenced ticker and key exists, intervals and bounds.
    pub fn validate(&self) -> Result<(), String> {
        self.shared().check().map_err(|e| e.to_string())?;
        self.pipeline_config(Path::new("."))
            .validate()
            .map_err(|e| e.to_string())?;
        self.gateway_config().validate()?;
        let market = |ticker: &str| self.markets.iter().find(|m| m.ticker == ticker);
        for a in &self.accounts {
            if a.account == 0 || a.account >= self.engine.max_accounts {
                return Err(format!(
                    "account {}: ids are 1..{} (0 is the fee account)",
                    a.account, self.engine.max_accounts
                ));
            }
            if let Some(d) = a
                .deposits
                .iter()
                .find(|d| d.asset >= self.engine.max_assets)
            {
                return Err(format!("account {}: no asset {}", a.account, d.asset));
            }
        }
        let fix_session = |name: &str, what: &str| {
            let found = self
                .fix
                .as_ref()
                .is_some_and(|f| f.sessions.iter().any(|s| s.target_comp_id == name));
            if found {
                Ok(())
            } else {
                Err(format!(
                    "{what}: session {name:?} is not the target_comp_id of a [[fix.sessions]]"
                ))
            }
        };
        for m in &self.demo.makers {
            let Some(market) = market(&m.ticker) else {
                return Err(format!("demo maker: no market {:?}", m.ticker));
            };
            fix_session(&m.session, &format!("demo maker {}", m.ticker))?;
            if m.min_price < market.min_price || m.max_price > market.max_price {
                return Err(format!(
                    "demo maker {}: [min_price, max_price] must lie within the market's prices",
                    m.ticker
                ));
            }
            m.quoting().validate().map_err(|e| format!("demo {e}"))?;
        }
        let mut trader_sessions = std::collections::BTreeSet::new();
        for t in &self.demo.traders {
            fix_session(&t.session, "demo trader")?;
            let maker_session = self.demo.makers.iter().any(|m| m.session == t.session);
            if maker_session || !trader_sessions.insert(&t.session) {
                return Err(format!(
                    "demo trader: session {:?} is used by another demo client",
                    t.session
                ));
            }
            if t.interval_ms == 0 || t.max_quantity == 0 || t.tickers.is_empty() {
                return Err("demo trader: needs interval_ms, max_quantity > 0 and tickers".into());
            }
            if let Some(missing) = t.tickers.iter().find(|t| market(t).is_none()) {
                return Err(format!("demo trader: no market {missing:?}"));
            }
        }
        if let Some(fix) = &self.fix {
            for session in &fix.sessions {
                if let Some(unknown) = session.accounts.iter().find(|a| {
                    !self
                        .accounts
                        .iter()
                        .any(|c| a.parse::<u32>() == Ok(c.account))
                }) {
                    return Err(format!(
                        "[fix] session {}: account {unknown:?} is not one of [[accounts]]",
                        session.session_name()
                    ));
                }
            }
        }
        Ok(())
    }

    /// The FIX acceptor's configuration with `store_dir` taken from
    /// `data_dir` when relative (`None` without a `[fix]` section).
    pub fn fix_config(&self, data_dir: &Path) -> Option<FixServerConfig> {
        let mut fix = self.fix.clone()?;
        fix.store_dir = Some(match fix.store_dir.take() {
            Some(dir) if dir.is_absolute() => dir,
            Some(dir) => data_dir.join(dir),
            None => data_dir.join("fix"),
        });
        Some(fix)
    }

    /// The three shared sections as one [`RingexConfig`].
    pub fn shared(&self) -> RingexConfig {
        RingexConfig {
            pipeline: self.pipeline.clone(),
            engine: self.engine.clone(),
            journal: self.journal.clone(),
        }
    }

    /// The engine configuration.
    pub fn engine_config(&self) -> EngineConfig {
        self.shared().engine_config()
    }

    /// The input journal's directory: `[journal] dir`, taken from
    /// `data_dir` when relative.
    pub fn journal_dir(&self, data_dir: &Path) -> PathBuf {
        if self.journal.dir.is_absolute() {
            self.journal.dir.clone()
        } else {
            data_dir.join(&self.journal.dir)
        }
    }

    /// The pipeline configuration over `data_dir`, **without** the timer:
    /// the server starts its own after the gateway's sink is registered
    /// (see [`crate::ws::WsGateway::start_with_history`]).
    pub fn pipeline_config(&self, data_dir: &Path) -> PipelineConfig {
        self.shared()
            .pipeline_config(&self.journal_dir(data_dir))
            .with_timer(None)
    }

    /// Stage threads that busy-spin.
    pub fn spinning_stages(&self) -> usize {
        self.shared().spinning_stages()
    }

    /// Refuses a configuration whose busy-spinning stages would take every
    /// one of `cpus` CPUs (the gateways, the demo and the OS need one).
    pub fn check_fits(&self, cpus: usize) -> Result<(), String> {
        let spinning = self.spinning_stages();
        if spinning > 0 && spinning >= cpus {
            return Err(format!(
                "{spinning} pipeline stages busy-spin but this machine has {cpus} CPUs: \
                 use [pipeline] preset = \"two-core\" or give the stages \"backoff\" waits"
            ));
        }
        Ok(())
    }

    /// The timer interval (`None`: no timer).
    pub fn timer_interval(&self) -> Option<Duration> {
        (self.pipeline.timer_interval_ms > 0)
            .then(|| Duration::from_millis(self.pipeline.timer_interval_ms))
    }

    /// The gateway's configuration.
    pub fn gateway_config(&self) -> GatewayConfig {
        let mut config = GatewayConfig::new(self.gateway.listen);
        config.markets = self.markets.clone();
        config.accounts = self
            .accounts
            .iter()
            .map(|a| AccountConfig {
                api_key: a.api_key.clone(),
                account: a.account,
            })
            .collect();
        config.admin_key = self.gateway.admin_key.clone();
        config.limits = self.gateway.limits.clone();
        config
    }

    /// The market named `ticker`.
    pub fn market(&self, ticker: &str) -> Option<&MarketConfig> {
        self.markets.iter().find(|m| m.ticker == ticker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_parses_and_validates() {
        let c = ServerConfig::default_config();
        assert_eq!(c.data_dir, Path::new("ringex-data"));
        assert!(c.market("MARKET_MAKER").is_some() && c.market("BTC-USD").is_some());
        let maker = &c.demo.makers[0];
        assert_eq!(
            (
                maker.interval_ms,
                maker.min_price,
                maker.max_price,
                maker.spread,
                maker.quantity
            ),
            (3000, 33, 67, 10, 100)
        );
        assert!(c.demo.enabled);
        assert_eq!(c.gateway.listen.port(), 8080);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let with = |from: &str, to: &str| {
            assert!(DEFAULT_CONFIG.contains(from), "{from}");
            ServerConfig::parse(&DEFAULT_CONFIG.replacen(from, to, 1)).unwrap_err()
        };
        assert!(with("preset = \"two-core\"", "preset = \"spin\"").contains("two-core"));
        assert!(with("durability = \"write\"", "durability = \"maybe\"").contains("durability"));
        assert!(with("[demo]", "[demo]\nbogus = 1").contains("bogus"));
        assert!(with(
            "ticker = \"MARKET_MAKER\"\nsession",
            "ticker = \"NOPE\"\nsession"
        )
        .contains("NOPE"));
        assert!(with("session = \"DEMO-MAKER\"", "session = \"NOBODY\"").contains("NOBODY"));
        assert!(
            with("session = \"DEMO-TRADER-2\"", "session = \"DEMO-TRADER-1\"")
                .contains("another demo client")
        );
        assert!(with("min_price = 33", "min_price = 0").contains("within"));
        assert!(with("spread = 10", "spread = 40").contains("spread"));
        assert!(with("input_ring_size = 16384", "input_ring_size = 1000").contains("ring"));
        assert!(with("max_orders = 65536", "max_orders = 0").contains("[engine]"));
        assert!(with("[pipeline]", "[pipeline]\nbogus = 1").contains("bogus"));
        assert!(with("[journal]", "[journal]\nsegment_mib = 0").contains("segment_mib"));
        assert!(ServerConfig::parse("not toml [").is_err());
        assert!(ServerConfig::parse("").is_err());
    }

    /// The server's own sections of the embedded default, without the
    /// shared ones: a file that names nothing in the shared format.
    fn own_sections_only() -> String {
        let mut file: toml::Table = DEFAULT_CONFIG.parse().unwrap();
        take_shared_sections(&mut file);
        toml::to_string(&file).unwrap()
    }

    #[test]
    fn the_shared_sections_are_ringex_perfs_format_laid_over_the_embedded_values() {
        let c = ServerConfig::default_config();
        // The embedded values, over the shared defaults.
        assert_eq!(c.engine.max_orders, 65536);
        assert_eq!(c.engine.risk, "on");
        assert_eq!(c.pipeline.preset, "two-core");
        assert_eq!(c.spinning_stages(), 0);
        let dir = Path::new("/data");
        assert_eq!(c.journal_dir(dir), Path::new("/data/journal"));
        let p = c.pipeline_config(dir);
        assert_eq!(p.journal_dir, Path::new("/data/journal"));
        assert_eq!(p.timer_interval, None, "the server starts its own timer");
        assert_eq!(p.engine_config, c.engine_config());
        // A file that leaves the shared sections out gets the same values.
        let bare = ServerConfig::parse(&own_sections_only()).unwrap();
        assert_eq!(bare, c);
        // A file names only what it changes, with ringex-perf's keys.
        let text = format!(
            "{}\n[pipeline.engine]\nwait = \"sleep:50\"\n[journal]\ndurability = \"fsync-ms:5\"\ndir = \"/elsewhere\"\n",
            own_sections_only()
        );
        let c2 = ServerConfig::parse(&text).unwrap();
        assert_eq!(c2.pipeline.engine.wait, "sleep:50");
        assert_eq!(c2.pipeline.journaler, c.pipeline.journaler);
        assert_eq!(c2.engine, c.engine);
        assert_eq!(
            c2.pipeline_config(dir).journal.durability,
            ringex_journal::DurabilityPolicy::FsyncEveryMillis(5)
        );
        assert_eq!(c2.journal_dir(dir), Path::new("/elsewhere"));
        // The server's old durability name still reads.
        let fsync = format!(
            "{}\n[journal]\ndurability = \"fsync\"\n",
            own_sections_only()
        );
        assert_eq!(
            ServerConfig::parse(&fsync)
                .unwrap()
                .pipeline_config(dir)
                .journal
                .durability,
            ringex_journal::DurabilityPolicy::FsyncPerBatch
        );
    }

    #[test]
    fn the_dedicated_preset_pins_and_spins_and_is_refused_where_it_cannot_fit() {
        let text = format!(
            "{}\n[pipeline]\npreset = \"dedicated-server\"\n",
            own_sections_only()
        );
        // Whether cores 2-4 exist decides whether validation passes here;
        // the resolved values do not depend on the machine.
        let file: toml::Table = text.parse().unwrap();
        let mut file = file;
        let shared = take_shared_sections(&mut file);
        let mut embedded: toml::Table = DEFAULT_CONFIG.parse().unwrap();
        let c = RingexConfig::from_layers(&[take_shared_sections(&mut embedded)], shared).unwrap();
        assert_eq!(c.pipeline.preset, "dedicated-server");
        assert!(c.spins());
        let stage = c.pipeline_config(Path::new("/d")).engine;
        assert_eq!(stage, ringex_core::pipeline::StageConfig::pinned_spin(3));
        // The preset's capacities and durability win over the embedded ones.
        assert_eq!(c.engine.max_orders, 4_194_304);
        assert_eq!(c.journal.durability, "fsync-batch");
        // Three spinning stages need a fourth CPU for everything else.
        let mut server = ServerConfig::default_config();
        server.pipeline = c.pipeline.clone();
        assert_eq!(server.spinning_stages(), 3);
        let err = server.check_fits(2).unwrap_err();
        assert!(err.contains("3 pipeline stages busy-spin"), "{err}");
        assert!(server.check_fits(3).is_err());
        assert!(server.check_fits(16).is_ok());
        assert!(ServerConfig::default_config().check_fits(1).is_ok());
    }
}
