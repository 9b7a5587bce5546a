//! The server's configuration file (TOML): sections `[pipeline]`,
//! `[engine]`, `[journal]` (named and keyed like `ringex-perf`'s, so the
//! two can be unified), `[gateway]`, `[fix]`, `[[markets]]`, `[[accounts]]`
//! and `[demo]`. The embedded default ([`DEFAULT_CONFIG`]) documents every key.

use super::demo::Quoting;
use crate::fix::FixServerConfig;
use crate::ws::{AccountConfig, GatewayConfig, Limits, MarketConfig};
use ringex_core::engine::RiskMode;
use ringex_core::pipeline::PipelineConfig;
use ringex_core::EngineConfig;
use ringex_journal::DurabilityPolicy;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default configuration `ringex` runs with (a commented TOML file).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Journal, output journal and snapshots (relative: from the working folder).
    pub data_dir: PathBuf,
    /// Pipeline stages and rings.
    pub pipeline: PipelineSection,
    /// Engine capacities.
    pub engine: EngineSection,
    /// Durability and snapshots.
    pub journal: JournalSection,
    /// The HTTP/WebSocket gateway.
    pub gateway: GatewaySection,
    /// The FIX acceptor ([`FixServerConfig`]); none: no FIX listener. A
    /// relative `store_dir` is taken from `data_dir`.
    #[serde(default)]
    pub fix: Option<FixServerConfig>,
    /// Markets created when the journal does not know them.
    #[serde(default)]
    pub markets: Vec<MarketConfig>,
    /// Accounts created and funded when the journal does not know them.
    #[serde(default)]
    pub accounts: Vec<ServerAccount>,
    /// The in-process demo market.
    #[serde(default)]
    pub demo: DemoSection,
}

/// `[pipeline]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSection {
    /// Only `"two-core"` (no pinning, no busy-spinning).
    pub preset: String,
    /// Input ring slots (a power of two, at least 64).
    pub input_ring_size: usize,
    /// Output ring slots (a power of two).
    pub output_ring_size: usize,
    /// Timer tick interval in ms; 0 for none.
    pub timer_interval_ms: u64,
}

/// `[engine]`: see [`EngineConfig`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct EngineSection {
    pub max_orders: u32,
    pub max_accounts: u32,
    pub max_instruments: u32,
    pub max_assets: u16,
    pub max_positions: u32,
    pub dedup_window: u32,
    pub max_price_levels: u32,
}

/// `[journal]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalSection {
    /// `"none"`, `"write"` or `"fsync"`.
    pub durability: String,
    /// Snapshot every this many commands; 0: only at clean shutdown.
    #[serde(default)]
    pub snapshot_every: u64,
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

    /// Parses and validates a TOML text.
    pub fn parse(text: &str) -> Result<ServerConfig, String> {
        let config: ServerConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<ServerConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        ServerConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Checks what serde cannot: the preset, the durability name, that
    /// every referenced ticker and key exists, intervals and bounds.
    pub fn validate(&self) -> Result<(), String> {
        if self.pipeline.preset != "two-core" {
            return Err(format!(
                "[pipeline] preset {:?}: only \"two-core\" is offered",
                self.pipeline.preset
            ));
        }
        self.durability()?;
        self.engine_config()
            .validate()
            .map_err(|e| format!("[engine] {e}"))?;
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

    fn durability(&self) -> Result<DurabilityPolicy, String> {
        match self.journal.durability.as_str() {
            "none" => Ok(DurabilityPolicy::None),
            "write" => Ok(DurabilityPolicy::Write),
            "fsync" => Ok(DurabilityPolicy::FsyncPerBatch),
            other => Err(format!(
                "[journal] durability {other:?}: use \"none\", \"write\" or \"fsync\""
            )),
        }
    }

    /// The engine configuration.
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
            risk: RiskMode::Enabled,
        }
    }

    /// The input journal's directory under `data_dir`.
    pub fn journal_dir(data_dir: &Path) -> PathBuf {
        data_dir.join("journal")
    }

    /// The pipeline configuration over `data_dir`, **without** the timer:
    /// the server starts its own after the gateway's sink is registered
    /// (see [`crate::ws::WsGateway::start_with_history`]).
    pub fn pipeline_config(&self, data_dir: &Path) -> PipelineConfig {
        let mut config = PipelineConfig::two_core_default(ServerConfig::journal_dir(data_dir))
            .with_engine(self.engine_config())
            .with_timer(None)
            .with_snapshot_every(
                (self.journal.snapshot_every > 0).then_some(self.journal.snapshot_every),
            );
        if let Ok(durability) = self.durability() {
            config = config.with_durability(durability);
        }
        config.input_ring_size = self.pipeline.input_ring_size;
        config.output_ring_size = self.pipeline.output_ring_size;
        config
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
        assert!(ServerConfig::parse("not toml [").is_err());
        assert!(ServerConfig::parse("").is_err());
    }
}
