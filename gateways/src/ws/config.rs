//! The gateway's configuration: which tickers map to which engine
//! instruments, which API keys belong to which accounts, the admin key and
//! the connection limits. Deserializable with serde (JSON, TOML, ...).
//!
//! The engine knows instruments and accounts only by number; everything a
//! client names (a ticker, an API key, a decimal price) is translated here.

use ringex_core::records::{Command, InstrumentKind, InstrumentSpec};
use serde::Deserialize;
use std::net::SocketAddr;

/// Kind of a configured market, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MarketKind {
    /// A binary event contract (YES/NO, 1–99 cents).
    Binary,
    /// A spot pair BASE/QUOTE.
    Spot,
}

impl MarketKind {
    /// The engine's instrument kind.
    pub fn instrument_kind(self) -> InstrumentKind {
        match self {
            MarketKind::Binary => InstrumentKind::Binary,
            MarketKind::Spot => InstrumentKind::Spot,
        }
    }

    /// `"binary"` or `"spot"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MarketKind::Binary => "binary",
            MarketKind::Spot => "spot",
        }
    }
}

/// One market: a ticker, the engine instrument behind it, and how its
/// integer prices and quantities read as decimals.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketConfig {
    /// The client-facing name (`"FED-25DEC-T4.00"`, `"BTC-USD"`).
    pub ticker: String,
    /// Engine instrument id.
    pub instrument: u32,
    /// Binary or spot.
    pub kind: MarketKind,
    /// A human title (shown in market lists).
    #[serde(default)]
    pub title: String,
    /// Spot: one price unit is `10^-price_decimals` of the quote currency
    /// (binary prices are always cents: 2).
    #[serde(default = "default_decimals")]
    pub price_decimals: u32,
    /// Spot: one quantity unit is `10^-quantity_decimals` of the base
    /// asset (binary quantities are whole contracts: 0).
    #[serde(default)]
    pub quantity_decimals: u32,
    /// Tick size in price units (for [`MarketConfig::add_instrument_command`]).
    #[serde(default = "one_i64")]
    pub tick_size: i64,
    /// Lot size in quantity units.
    #[serde(default = "one_u64")]
    pub lot_size: u64,
    /// Lowest price (binary default 1).
    #[serde(default = "one_i64")]
    pub min_price: i64,
    /// Highest price (binary default 99).
    #[serde(default = "default_max_price")]
    pub max_price: i64,
    /// Maker fee, basis points.
    #[serde(default)]
    pub maker_fee_bps: u16,
    /// Taker fee, basis points.
    #[serde(default)]
    pub taker_fee_bps: u16,
    /// Quote (cash) asset id.
    #[serde(default)]
    pub quote_asset: u16,
    /// Base asset id (spot only).
    #[serde(default)]
    pub base_asset: u16,
}

fn default_decimals() -> u32 {
    2
}
fn one_i64() -> i64 {
    1
}
fn one_u64() -> u64 {
    1
}
fn default_max_price() -> i64 {
    99
}

impl MarketConfig {
    /// A binary market on 1..=99 cents, tick 1, lot 1, no fees, settling in asset 0.
    pub fn binary(ticker: &str, instrument: u32) -> MarketConfig {
        MarketConfig {
            ticker: ticker.to_owned(),
            instrument,
            kind: MarketKind::Binary,
            title: String::new(),
            price_decimals: 2,
            quantity_decimals: 0,
            tick_size: 1,
            lot_size: 1,
            min_price: 1,
            max_price: 99,
            maker_fee_bps: 0,
            taker_fee_bps: 0,
            quote_asset: 0,
            base_asset: 0,
        }
    }

    /// A spot market with the given decimals and price bounds, quote asset
    /// `quote`, base asset `base`.
    pub fn spot(
        ticker: &str,
        instrument: u32,
        (price_decimals, quantity_decimals): (u32, u32),
        (min_price, max_price): (i64, i64),
        (quote, base): (u16, u16),
    ) -> MarketConfig {
        MarketConfig {
            kind: MarketKind::Spot,
            price_decimals,
            quantity_decimals,
            min_price,
            max_price,
            quote_asset: quote,
            base_asset: base,
            ..MarketConfig::binary(ticker, instrument)
        }
    }

    /// The engine's instrument definition for this market.
    pub fn instrument_spec(&self) -> InstrumentSpec {
        InstrumentSpec {
            id: self.instrument,
            kind: self.kind.instrument_kind(),
            tick_size: self.tick_size,
            lot_size: self.lot_size,
            min_price: self.min_price,
            max_price: self.max_price,
            maker_fee_bps: self.maker_fee_bps,
            taker_fee_bps: self.taker_fee_bps,
            base_asset: self.base_asset,
            quote_asset: self.quote_asset,
        }
    }

    /// The `AddInstrument` command that creates this market in the engine.
    pub fn add_instrument_command(&self) -> Command {
        Command::add_instrument(self.instrument_spec())
    }

    /// Decimal places of prices as clients write them.
    pub fn price_scale(&self) -> u32 {
        match self.kind {
            MarketKind::Binary => 2,
            MarketKind::Spot => self.price_decimals,
        }
    }

    /// Decimal places of quantities as clients write them.
    pub fn quantity_scale(&self) -> u32 {
        match self.kind {
            MarketKind::Binary => 0,
            MarketKind::Spot => self.quantity_decimals,
        }
    }
}

/// An API key and the account it trades for.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The secret the client presents (`X-Api-Key` header, `Authorization:
    /// Bearer`, or `api_key` query parameter on the WebSocket upgrade).
    pub api_key: String,
    /// Engine account id.
    pub account: u32,
}

/// Connection and message limits.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open connections (HTTP and WebSocket) at most; more are answered 503.
    pub max_connections: usize,
    /// Subscriptions per WebSocket connection.
    pub max_subscriptions: usize,
    /// Largest WebSocket message a client may send, in bytes.
    pub max_message_bytes: usize,
    /// Largest HTTP request head (request line and headers), in bytes.
    pub max_header_bytes: usize,
    /// Largest HTTP request body, in bytes.
    pub max_body_bytes: usize,
    /// Messages queued per WebSocket connection before order-book
    /// subscriptions are conflated (pending deltas dropped, a fresh snapshot
    /// sent when the queue has drained to half).
    pub outbound_queue_messages: usize,
    /// A connection whose socket accepts no data for this long while it has
    /// something to send is disconnected (a stuck client).
    pub stuck_timeout_ms: u64,
    /// The server pings every WebSocket connection this often.
    pub ping_interval_ms: u64,
    /// A WebSocket connection that sends nothing (not even a pong) for this
    /// long is closed.
    pub idle_timeout_ms: u64,
    /// An HTTP request that waits for the engine longer than this gets 504.
    pub request_timeout_ms: u64,
    /// Recent trades kept per market for snapshots and `GET .../trades`.
    pub recent_trades: usize,
    /// `SO_SNDBUF` for accepted sockets in bytes (0 = the system default).
    /// Tests set it small to make slow consumers show up quickly.
    pub socket_send_buffer: usize,
    /// Capacity of the gateway's sink queue from the publisher (events).
    pub sink_capacity: usize,
    /// Order-book deltas the gateway thread queues per turn over all
    /// connections; past it, a delta conflates its subscription (a
    /// snapshot follows) instead of being formatted, so a turn's work stays
    /// bounded with thousands of subscribers and the sink keeps draining.
    pub deltas_per_turn: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10_000,
            max_subscriptions: 64,
            max_message_bytes: 64 * 1024,
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
            outbound_queue_messages: 4096,
            stuck_timeout_ms: 10_000,
            ping_interval_ms: 20_000,
            idle_timeout_ms: 60_000,
            request_timeout_ms: 5_000,
            recent_trades: 200,
            socket_send_buffer: 0,
            sink_capacity: 1 << 18,
            deltas_per_turn: 65_536,
        }
    }
}

/// The whole gateway configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    /// Where to listen (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Markets by ticker.
    #[serde(default)]
    pub markets: Vec<MarketConfig>,
    /// API keys by account.
    #[serde(default)]
    pub accounts: Vec<AccountConfig>,
    /// The key for `/api/v1/admin/...` (`X-Admin-Key` header); `None`
    /// disables the admin endpoints.
    #[serde(default)]
    pub admin_key: Option<String>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
}

impl GatewayConfig {
    /// A configuration listening on `listen` with no markets or accounts.
    pub fn new(listen: SocketAddr) -> GatewayConfig {
        GatewayConfig {
            listen,
            markets: Vec::new(),
            accounts: Vec::new(),
            admin_key: None,
            limits: Limits::default(),
        }
    }

    /// Checks for duplicate tickers, instrument ids, API keys and zero limits.
    pub fn validate(&self) -> Result<(), String> {
        let mut tickers = std::collections::HashSet::new();
        let mut ids = std::collections::HashSet::new();
        for m in &self.markets {
            if m.ticker.is_empty() || m.ticker.contains(['/', '?', '#', ' ']) {
                return Err(format!("invalid ticker {:?}", m.ticker));
            }
            if !tickers.insert(m.ticker.as_str()) || !ids.insert(m.instrument) {
                return Err(format!(
                    "market {} or its instrument {} is listed twice",
                    m.ticker, m.instrument
                ));
            }
            if m.kind == MarketKind::Spot && (m.price_decimals > 18 || m.quantity_decimals > 18) {
                return Err(format!("market {}: at most 18 decimals", m.ticker));
            }
        }
        let mut keys = std::collections::HashSet::new();
        for a in &self.accounts {
            if a.api_key.is_empty() || !keys.insert(a.api_key.as_str()) {
                return Err("API keys must be non-empty and unique".into());
            }
        }
        let l = &self.limits;
        if l.max_connections == 0
            || l.max_subscriptions == 0
            || l.outbound_queue_messages < 2
            || l.deltas_per_turn == 0
        {
            return Err("limits: max_connections, max_subscriptions, deltas_per_turn must be > 0 and outbound_queue_messages >= 2".into());
        }
        Ok(())
    }
}
