//! The JSON protocol: WebSocket commands in, and the translation of order
//! requests (WebSocket or REST) into engine [`Command`]s.
//!
//! Pure functions, owned by no thread. [`decode_client_message`] is the
//! decoder fuzzed by `fuzz/fuzz_targets/ws_command.rs`: any input gives a
//! command or a coded [`WsError`], never a panic.
//!
//! Message shapes follow Kalshi's public WebSocket API:
//! `{"id": 1, "cmd": "subscribe", "params": {"channels": [...], "market_tickers": [...]}}`,
//! answered by `{"id": 1, "type": "subscribed", "msg": {"channel": .., "sid": ..}}` or
//! `{"id": 1, "type": "error", "msg": {"code": .., "msg": ..}}`.

use super::config::{MarketConfig, MarketKind};
use super::units::{parse_decimal, parse_quantity};
use ringex_core::records::{
    Command, OrderSpec, OrderType, Outcome, SelfTradePrevention, Side, TimeInForce,
};
use serde::Deserialize;
use serde_json::Value;

/// WebSocket error codes (1–17 as in Kalshi's API; 18 and up are ringex's).
pub mod codes {
    /// The message is not valid JSON or not an object of the right shape.
    pub const UNABLE_TO_PROCESS: u32 = 1;
    /// `params` is missing.
    pub const PARAMS_REQUIRED: u32 = 2;
    /// `channels` is missing or empty.
    pub const CHANNELS_REQUIRED: u32 = 3;
    /// `sids` is missing or empty.
    pub const SIDS_REQUIRED: u32 = 4;
    /// Unknown `cmd`.
    pub const UNKNOWN_COMMAND: u32 = 5;
    /// The connection already has this channel on this market.
    pub const ALREADY_SUBSCRIBED: u32 = 6;
    /// No subscription with this sid.
    pub const UNKNOWN_SID: u32 = 7;
    /// Unknown channel name.
    pub const UNKNOWN_CHANNEL: u32 = 8;
    /// A private channel or order entry without an API key.
    pub const AUTH_REQUIRED: u32 = 9;
    /// A parameter has the wrong type or value.
    pub const INVALID_PARAMETER: u32 = 11;
    /// `update_subscription` needs exactly one sid.
    pub const ONE_SID_REQUIRED: u32 = 12;
    /// Unknown `action` of `update_subscription`.
    pub const UNSUPPORTED_ACTION: u32 = 13;
    /// A market channel without `market_tickers`.
    pub const TICKER_REQUIRED: u32 = 14;
    /// `update_subscription` without `action`.
    pub const ACTION_REQUIRED: u32 = 15;
    /// Unknown market ticker.
    pub const MARKET_NOT_FOUND: u32 = 16;
    /// Something went wrong inside the gateway.
    pub const INTERNAL: u32 = 17;
    /// The connection's subscription limit is reached.
    pub const TOO_MANY_SUBSCRIPTIONS: u32 = 18;
    /// The engine's input ring is full: retry later.
    pub const BUSY: u32 = 19;
    /// The engine rejected the command (`reject_code` and `reject_reason` say why).
    pub const ORDER_REJECTED: u32 = 20;
    /// The message exceeds the size limit.
    pub const MESSAGE_TOO_LARGE: u32 = 21;
    /// The engine did not answer in time.
    pub const TIMEOUT: u32 = 22;
}

/// A coded error for a WebSocket client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsError {
    /// The request's `id`, if it could be read.
    pub id: Option<u64>,
    /// One of [`codes`].
    pub code: u32,
    /// What was wrong.
    pub msg: String,
}

impl WsError {
    fn new(id: Option<u64>, code: u32, msg: impl Into<String>) -> WsError {
        WsError {
            id,
            code,
            msg: msg.into(),
        }
    }

    /// The error as a message for the client.
    pub fn to_json(&self) -> Value {
        let mut v =
            serde_json::json!({"type": "error", "msg": {"code": self.code, "msg": self.msg}});
        if let Some(id) = self.id {
            v["id"] = id.into();
        }
        v
    }
}

/// A WebSocket channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// `orderbook_delta`: snapshot, then deltas with `seq`.
    OrderbookDelta,
    /// `trade`: public trades.
    Trade,
    /// `ticker`: best bid/ask, last price, volume, open interest.
    Ticker,
    /// `market_lifecycle`: status changes and settlement.
    MarketLifecycle,
    /// `orders` (private): the account's order updates.
    Orders,
    /// `fill` (private): the account's fills.
    Fill,
    /// `market_positions` (private): the account's positions.
    MarketPositions,
    /// `balances` (private): the account's balances.
    Balances,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 8] = [
        Channel::OrderbookDelta,
        Channel::Trade,
        Channel::Ticker,
        Channel::MarketLifecycle,
        Channel::Orders,
        Channel::Fill,
        Channel::MarketPositions,
        Channel::Balances,
    ];

    /// The wire name.
    pub fn name(self) -> &'static str {
        match self {
            Channel::OrderbookDelta => "orderbook_delta",
            Channel::Trade => "trade",
            Channel::Ticker => "ticker",
            Channel::MarketLifecycle => "market_lifecycle",
            Channel::Orders => "orders",
            Channel::Fill => "fill",
            Channel::MarketPositions => "market_positions",
            Channel::Balances => "balances",
        }
    }

    /// By wire name.
    pub fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Private channels need an API key and cover all of the account's markets.
    pub fn is_private(self) -> bool {
        matches!(
            self,
            Channel::Orders | Channel::Fill | Channel::MarketPositions | Channel::Balances
        )
    }
}

/// What `update_subscription` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateAction {
    /// Add markets to the subscription (order book: snapshots for them follow).
    AddMarkets,
    /// Remove markets.
    DeleteMarkets,
    /// Send fresh snapshots (order book) for the given markets, or all.
    GetSnapshot,
}

/// A decoded WebSocket command.
#[derive(Debug, Clone, PartialEq)]
pub enum WsCommand {
    /// Subscribe to channels, for markets (public channels) or the account.
    Subscribe {
        /// Channels.
        channels: Vec<Channel>,
        /// Market tickers (public channels).
        tickers: Vec<String>,
    },
    /// Drop subscriptions.
    Unsubscribe {
        /// Subscription ids.
        sids: Vec<u64>,
    },
    /// Change one subscription.
    UpdateSubscription {
        /// Its sid.
        sid: u64,
        /// Markets named.
        tickers: Vec<String>,
        /// What to do.
        action: UpdateAction,
    },
    /// List this connection's subscriptions.
    ListSubscriptions,
    /// Enter an order.
    CreateOrder(OrderRequest),
    /// Cancel an order.
    CancelOrder(OrderRef),
    /// Amend (cancel/replace) an order.
    AmendOrder(AmendRequest),
    /// Cancel all the account's orders, optionally in one market.
    MassCancel {
        /// Market, or all.
        ticker: Option<String>,
    },
    /// The account's open orders.
    ListOrders,
    /// The account's balances and positions.
    Portfolio,
}

/// An order as a client writes it (WebSocket `create_order` params, REST
/// `POST /api/v1/portfolio/orders` body).
///
/// Binary markets: `side` `"yes"`/`"no"`, `action` `"buy"`/`"sell"`,
/// `count` contracts, price as `yes_price`/`no_price` cents or `price` in
/// dollars (`"0.56"`) of the named side. Spot: `action`, `quantity` and
/// `price` as decimal strings.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    /// Market ticker.
    pub ticker: String,
    /// `"buy"` or `"sell"`.
    pub action: String,
    /// `"yes"` or `"no"` (binary only).
    #[serde(default)]
    pub side: Option<String>,
    /// `"limit"` (default), `"market"`, `"stop_limit"`, `"stop_market"`.
    #[serde(default, rename = "type")]
    pub order_type: Option<String>,
    /// Contracts (binary).
    #[serde(default)]
    pub count: Option<u64>,
    /// Quantity as a decimal string (spot; binary accepts whole numbers).
    #[serde(default)]
    pub quantity: Option<String>,
    /// YES price in cents (binary).
    #[serde(default)]
    pub yes_price: Option<i64>,
    /// NO price in cents (binary).
    #[serde(default)]
    pub no_price: Option<i64>,
    /// Price as a decimal string (spot; binary: dollars of the named side).
    #[serde(default)]
    pub price: Option<String>,
    /// Stop trigger price (same units as `price`; binary: cents of the named side).
    #[serde(default)]
    pub stop_price: Option<String>,
    /// The idempotency key: a second order with the same id is rejected
    /// while the first is known.
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// `"gtc"` (default), `"ioc"`, `"fok"`, `"gtd"`.
    #[serde(default)]
    pub time_in_force: Option<String>,
    /// GTD expiry, Unix seconds.
    #[serde(default)]
    pub expiration_ts: Option<u64>,
    /// Post-only.
    #[serde(default)]
    pub post_only: Option<bool>,
    /// `"none"` (default), `"cancel_taker"`, `"cancel_maker"`, `"cancel_both"`.
    #[serde(default)]
    pub self_trade_prevention: Option<String>,
    /// Spot market buy: quote budget as a decimal string.
    #[serde(default)]
    pub buy_max_cost: Option<String>,
}

/// Names one of the account's orders.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OrderRef {
    /// Engine order id (a decimal string or number).
    #[serde(default)]
    pub order_id: Option<Value>,
    /// Or the client order id.
    #[serde(default)]
    pub client_order_id: Option<String>,
}

/// An amend: new price and/or total quantity.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AmendRequest {
    /// Engine order id.
    #[serde(default)]
    pub order_id: Option<Value>,
    /// Or the current client order id.
    #[serde(default)]
    pub client_order_id: Option<String>,
    /// The client order id from now on (default: keep).
    #[serde(default)]
    pub new_client_order_id: Option<String>,
    /// New total contracts (binary).
    #[serde(default)]
    pub count: Option<u64>,
    /// New total quantity, decimal string.
    #[serde(default)]
    pub quantity: Option<String>,
    /// New YES price in cents (binary; for an order entered on YES).
    #[serde(default)]
    pub yes_price: Option<i64>,
    /// New NO price in cents (binary; for an order entered on NO).
    #[serde(default)]
    pub no_price: Option<i64>,
    /// New price, decimal string.
    #[serde(default)]
    pub price: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    cmd: Option<String>,
    #[serde(default)]
    params: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SubscribeParams {
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    market_tickers: Option<Vec<String>>,
    #[serde(default)]
    market_ticker: Option<String>,
    #[serde(default)]
    sids: Option<Vec<u64>>,
    #[serde(default)]
    sid: Option<u64>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    ticker: Option<String>,
}

/// Decodes one WebSocket text message into `(id, command)`.
pub fn decode_client_message(bytes: &[u8]) -> Result<(Option<u64>, WsCommand), WsError> {
    let env: Envelope = serde_json::from_slice(bytes).map_err(|e| {
        WsError::new(
            None,
            codes::UNABLE_TO_PROCESS,
            format!("unable to process message: {e}"),
        )
    })?;
    let id = match env.id {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        Some(_) => {
            return Err(WsError::new(
                None,
                codes::INVALID_PARAMETER,
                "id must be a non-negative integer",
            ))
        }
    };
    let err = |code, msg: &str| WsError::new(id, code, msg);
    let cmd = env
        .cmd
        .ok_or_else(|| err(codes::UNABLE_TO_PROCESS, "cmd is required"))?;
    let params = env.params;
    let typed = |params: Option<Value>, required: bool| -> Result<Option<Value>, WsError> {
        match params {
            None | Some(Value::Null) if required => {
                Err(err(codes::PARAMS_REQUIRED, "params required"))
            }
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Object(_)) => Ok(Some(v)),
            Some(_) => Err(err(codes::INVALID_PARAMETER, "params must be an object")),
        }
    };
    let bad_params =
        |e: serde_json::Error| err(codes::INVALID_PARAMETER, &format!("invalid params: {e}"));
    let sub_params = |params: Option<Value>| -> Result<SubscribeParams, WsError> {
        let v = typed(params, true)?.expect("required");
        serde_json::from_value(v).map_err(bad_params)
    };
    let command = match cmd.as_str() {
        "subscribe" => {
            let p = sub_params(params)?;
            let names = p
                .channels
                .filter(|c| !c.is_empty())
                .ok_or_else(|| err(codes::CHANNELS_REQUIRED, "channels required"))?;
            let mut channels = Vec::with_capacity(names.len());
            for name in &names {
                let c = Channel::from_name(name).ok_or_else(|| {
                    err(
                        codes::UNKNOWN_CHANNEL,
                        &format!("unknown channel name {name:?}"),
                    )
                })?;
                if !channels.contains(&c) {
                    channels.push(c);
                }
            }
            let mut tickers = p.market_tickers.unwrap_or_default();
            tickers.extend(p.market_ticker);
            if tickers.is_empty() && channels.iter().any(|c| !c.is_private()) {
                return Err(err(codes::TICKER_REQUIRED, "market_tickers required"));
            }
            WsCommand::Subscribe { channels, tickers }
        }
        "unsubscribe" => {
            let p = sub_params(params)?;
            let mut sids = p.sids.unwrap_or_default();
            sids.extend(p.sid);
            if sids.is_empty() {
                return Err(err(codes::SIDS_REQUIRED, "sids required"));
            }
            WsCommand::Unsubscribe { sids }
        }
        "update_subscription" => {
            let p = sub_params(params)?;
            let mut sids = p.sids.unwrap_or_default();
            sids.extend(p.sid);
            if sids.len() != 1 {
                return Err(err(
                    codes::ONE_SID_REQUIRED,
                    "exactly one subscription id is required",
                ));
            }
            let action = match p.action.as_deref() {
                None => return Err(err(codes::ACTION_REQUIRED, "action required")),
                Some("add_markets") => UpdateAction::AddMarkets,
                Some("delete_markets") => UpdateAction::DeleteMarkets,
                Some("get_snapshot") => UpdateAction::GetSnapshot,
                Some(other) => {
                    return Err(err(
                        codes::UNSUPPORTED_ACTION,
                        &format!("unsupported action {other:?}"),
                    ))
                }
            };
            let mut tickers = p.market_tickers.unwrap_or_default();
            tickers.extend(p.market_ticker);
            if tickers.is_empty() && action != UpdateAction::GetSnapshot {
                return Err(err(codes::TICKER_REQUIRED, "market_tickers required"));
            }
            WsCommand::UpdateSubscription {
                sid: sids[0],
                tickers,
                action,
            }
        }
        "list_subscriptions" => WsCommand::ListSubscriptions,
        "create_order" => {
            let v = typed(params, true)?.expect("required");
            WsCommand::CreateOrder(serde_json::from_value(v).map_err(bad_params)?)
        }
        "cancel_order" => {
            let v = typed(params, true)?.expect("required");
            WsCommand::CancelOrder(serde_json::from_value(v).map_err(bad_params)?)
        }
        "amend_order" => {
            let v = typed(params, true)?.expect("required");
            WsCommand::AmendOrder(serde_json::from_value(v).map_err(bad_params)?)
        }
        "mass_cancel" => {
            let p: SubscribeParams = match typed(params, false)? {
                Some(v) => serde_json::from_value(v).map_err(bad_params)?,
                None => SubscribeParams::default(),
            };
            WsCommand::MassCancel {
                ticker: p.ticker.or(p.market_ticker),
            }
        }
        "list_orders" => WsCommand::ListOrders,
        "get_portfolio" => WsCommand::Portfolio,
        other => {
            return Err(err(
                codes::UNKNOWN_COMMAND,
                &format!("unknown command {other:?}"),
            ))
        }
    };
    Ok((id, command))
}

/// A client order id string as the engine's `u64` key: a decimal number is
/// itself (if non-zero); anything else is its 64-bit FNV-1a hash (never 0).
/// The gateway remembers the string to show it back.
pub fn client_order_key(text: &str) -> u64 {
    if let Ok(n) = text.parse::<u64>() {
        if n != 0 {
            return n;
        }
    }
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

/// An order id from JSON: a number or a decimal string.
pub fn parse_order_id(value: &Value) -> Result<u64, String> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|&id| id != 0)
    .ok_or_else(|| format!("order_id {value} is not a positive integer"))
}

fn word<'a>(
    value: Option<&'a str>,
    name: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, String> {
    match value {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v)),
        Some(v) => Err(format!("{name} must be one of {allowed:?}, not {v:?}")),
    }
}

/// A binary price in the named leg: cents (integer) or dollars (string).
fn binary_price(cents: Option<i64>, dollars: Option<&str>) -> Result<Option<i64>, String> {
    match (cents, dollars) {
        (Some(_), Some(_)) => Err("give the price once (cents or dollars)".into()),
        (Some(c), None) => Ok(Some(c)),
        (None, Some(d)) => parse_decimal(d, 2).map(Some),
        (None, None) => Ok(None),
    }
}

fn quantity_of(
    market: &MarketConfig,
    count: Option<u64>,
    quantity: Option<&str>,
) -> Result<Option<u64>, String> {
    match (count, quantity) {
        (Some(_), Some(_)) => Err("give count or quantity, not both".into()),
        (Some(0), None) => Err("count must be positive".into()),
        (Some(c), None) => Ok(Some(c)),
        (None, Some(q)) => parse_quantity(q, market.quantity_scale()).map(Some),
        (None, None) => Ok(None),
    }
}

impl OrderRequest {
    /// The engine command for this order by `account` in `market`, or why
    /// the request is invalid. Engine rules (ticks, lots, funds, ...) are
    /// left to the engine, which rejects with its own reasons.
    pub fn to_command(
        &self,
        account: u32,
        market: &MarketConfig,
        now_ns: u64,
    ) -> Result<Command, String> {
        let action = match self.action.as_str() {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            other => return Err(format!("action must be \"buy\" or \"sell\", not {other:?}")),
        };
        let order_type = match word(
            self.order_type.as_deref(),
            "type",
            &["limit", "market", "stop_limit", "stop_market"],
        )? {
            None | Some("limit") => OrderType::Limit,
            Some("market") => OrderType::Market,
            Some("stop_limit") => OrderType::StopLimit,
            _ => OrderType::StopMarket,
        };
        let mut tif = match word(
            self.time_in_force.as_deref(),
            "time_in_force",
            &["gtc", "ioc", "fok", "gtd"],
        )? {
            Some("ioc") => TimeInForce::Ioc,
            Some("fok") => TimeInForce::Fok,
            Some("gtd") => TimeInForce::Gtd,
            Some(_) => TimeInForce::Gtc,
            None if order_type == OrderType::Market => TimeInForce::Ioc,
            None => TimeInForce::Gtc,
        };
        let mut expire_time = 0;
        if let Some(ts) = self.expiration_ts {
            if self.time_in_force.is_none() {
                tif = TimeInForce::Gtd;
            }
            expire_time = ts
                .checked_mul(1_000_000_000)
                .ok_or("expiration_ts is out of range")?;
        }
        if tif == TimeInForce::Gtd && expire_time == 0 {
            return Err("time_in_force gtd needs expiration_ts".into());
        }
        let _ = now_ns;
        let stp = match word(
            self.self_trade_prevention.as_deref(),
            "self_trade_prevention",
            &["none", "cancel_taker", "cancel_maker", "cancel_both"],
        )? {
            Some("cancel_taker") => SelfTradePrevention::CancelTaker,
            Some("cancel_maker") => SelfTradePrevention::CancelMaker,
            Some("cancel_both") => SelfTradePrevention::CancelBoth,
            _ => SelfTradePrevention::None,
        };
        let quantity = quantity_of(market, self.count, self.quantity.as_deref())?
            .ok_or("count (or quantity) is required")?;
        let (outcome, price, stop_price, budget) = match market.kind {
            MarketKind::Binary => {
                if self.buy_max_cost.is_some() {
                    return Err("buy_max_cost applies to spot market buys only".into());
                }
                let outcome = match self.side.as_deref() {
                    Some("yes") => Outcome::Yes,
                    Some("no") => Outcome::No,
                    Some(other) => {
                        return Err(format!("side must be \"yes\" or \"no\", not {other:?}"))
                    }
                    None => {
                        return Err(
                            "side (\"yes\" or \"no\") is required for a binary market".into()
                        )
                    }
                };
                let (own, other) = match outcome {
                    Outcome::No => (self.no_price, self.yes_price),
                    _ => (self.yes_price, self.no_price),
                };
                if other.is_some() {
                    return Err(format!(
                        "a {} order takes its price as {}_price",
                        self.side.as_deref().unwrap_or_default(),
                        self.side.as_deref().unwrap_or_default()
                    ));
                }
                let price = binary_price(own, self.price.as_deref())?;
                let stop = match self.stop_price.as_deref() {
                    None => 0,
                    Some(s) => s
                        .parse::<i64>()
                        .map_err(|_| format!("stop_price {s:?} must be whole cents"))?,
                };
                (outcome, price, stop, 0)
            }
            MarketKind::Spot => {
                if self.side.is_some() || self.yes_price.is_some() || self.no_price.is_some() {
                    return Err("side, yes_price and no_price apply to binary markets only".into());
                }
                let scale = market.price_scale();
                let price = self
                    .price
                    .as_deref()
                    .map(|p| parse_decimal(p, scale))
                    .transpose()?;
                let stop = self
                    .stop_price
                    .as_deref()
                    .map(|p| parse_decimal(p, scale))
                    .transpose()?
                    .unwrap_or(0);
                let budget = self
                    .buy_max_cost
                    .as_deref()
                    .map(|b| parse_decimal(b, scale + market.quantity_scale()))
                    .transpose()?
                    .map_or(0, |b| b.max(0) as u64);
                (Outcome::None, price, stop, budget)
            }
        };
        let price = match (order_type, price) {
            (OrderType::Limit | OrderType::StopLimit, None) => {
                return Err("a limit order needs a price".into())
            }
            (_, p) => p.unwrap_or(0),
        };
        if matches!(order_type, OrderType::StopLimit | OrderType::StopMarket) && stop_price == 0 {
            return Err("a stop order needs stop_price".into());
        }
        let client_order_id = self.client_order_id.as_deref().map_or(0, client_order_key);
        Ok(Command::new_order(OrderSpec {
            account,
            instrument: market.instrument,
            client_order_id,
            side: action,
            outcome,
            order_type,
            time_in_force: tif,
            price,
            quantity,
            stop_price,
            expire_time,
            quote_budget: budget,
            post_only: self.post_only.unwrap_or(false),
            stp,
        }))
    }
}

impl OrderRef {
    /// The `Cancel` command for `account`.
    pub fn to_command(&self, account: u32) -> Result<Command, String> {
        match (&self.order_id, &self.client_order_id) {
            (Some(id), None) => Ok(Command::cancel(account, parse_order_id(id)?)),
            (None, Some(c)) => Ok(Command::cancel_by_client_id(account, client_order_key(c))),
            _ => Err("give exactly one of order_id and client_order_id".into()),
        }
    }
}

impl AmendRequest {
    /// The `Replace` command for `account`. `current` is the order as the
    /// gateway tracks it (for the defaults: unchanged price or quantity) and
    /// `market` its market.
    pub fn to_command(
        &self,
        account: u32,
        market: &MarketConfig,
        current: Option<(Outcome, i64, u64)>,
    ) -> Result<Command, String> {
        let new_cid = self
            .new_client_order_id
            .as_deref()
            .map_or(0, client_order_key);
        let quantity = quantity_of(market, self.count, self.quantity.as_deref())?;
        let price = match market.kind {
            MarketKind::Binary => {
                let outcome = current.map(|c| c.0);
                let (own, other) = match outcome {
                    Some(Outcome::No) => (self.no_price, self.yes_price),
                    _ => (self.yes_price, self.no_price),
                };
                if other.is_some() {
                    return Err("the new price is in the leg the order was entered on (yes_price or no_price)".into());
                }
                binary_price(own, self.price.as_deref())?
            }
            MarketKind::Spot => self
                .price
                .as_deref()
                .map(|p| parse_decimal(p, market.price_scale()))
                .transpose()?,
        };
        let (price, quantity) = match (price, quantity, current) {
            (Some(p), Some(q), _) => (p, q),
            (p, q, Some((_, cur_p, cur_q))) => (p.unwrap_or(cur_p), q.unwrap_or(cur_q)),
            _ => return Err("give the new price and the new total count".into()),
        };
        match (&self.order_id, &self.client_order_id) {
            (Some(id), None) => Ok(Command::replace(
                account,
                parse_order_id(id)?,
                new_cid,
                price,
                quantity,
            )),
            (None, Some(c)) => Ok(Command::replace_by_client_id(
                account,
                client_order_key(c),
                new_cid,
                price,
                quantity,
            )),
            _ => Err("give exactly one of order_id and client_order_id".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_subscribe_and_reports_codes() {
        let (id, cmd) = decode_client_message(
            br#"{"id":3,"cmd":"subscribe","params":{"channels":["orderbook_delta","ticker"],"market_tickers":["A"]}}"#,
        )
        .unwrap();
        assert_eq!(id, Some(3));
        assert_eq!(
            cmd,
            WsCommand::Subscribe {
                channels: vec![Channel::OrderbookDelta, Channel::Ticker],
                tickers: vec!["A".into()]
            }
        );
        let code = |raw: &[u8]| decode_client_message(raw).unwrap_err().code;
        assert_eq!(code(b"{"), codes::UNABLE_TO_PROCESS);
        assert_eq!(
            code(br#"{"id":1,"cmd":"subscribe"}"#),
            codes::PARAMS_REQUIRED
        );
        assert_eq!(
            code(br#"{"id":1,"cmd":"subscribe","params":{}}"#),
            codes::CHANNELS_REQUIRED
        );
        assert_eq!(
            code(br#"{"id":1,"cmd":"subscribe","params":{"channels":["x"]}}"#),
            codes::UNKNOWN_CHANNEL
        );
        assert_eq!(
            code(br#"{"id":1,"cmd":"subscribe","params":{"channels":["trade"]}}"#),
            codes::TICKER_REQUIRED
        );
        assert_eq!(
            code(br#"{"id":1,"cmd":"unsubscribe","params":{}}"#),
            codes::SIDS_REQUIRED
        );
        assert_eq!(code(br#"{"id":1,"cmd":"fly"}"#), codes::UNKNOWN_COMMAND);
        assert_eq!(
            code(br#"{"id":1,"cmd":"update_subscription","params":{"sids":[1,2],"action":"get_snapshot"}}"#),
            codes::ONE_SID_REQUIRED
        );
        assert_eq!(
            code(br#"{"id":1,"cmd":"update_subscription","params":{"sids":[1],"action":"jump"}}"#),
            codes::UNSUPPORTED_ACTION
        );
    }

    #[test]
    fn binary_orders_map_to_the_named_leg() {
        let market = MarketConfig::binary("M", 7);
        let req = OrderRequest {
            ticker: "M".into(),
            action: "buy".into(),
            side: Some("no".into()),
            count: Some(5),
            price: Some("0.4".into()),
            client_order_id: Some("abc".into()),
            ..OrderRequest::default()
        };
        let cmd = req.to_command(3, &market, 0).unwrap();
        assert_eq!(
            (cmd.account, cmd.instrument, cmd.price, cmd.quantity),
            (3, 7, 40, 5)
        );
        assert_eq!(cmd.outcome, Outcome::No as u8);
        assert_eq!(cmd.client_order_id, client_order_key("abc"));
        let wrong_leg = OrderRequest {
            yes_price: Some(40),
            price: None,
            ..req.clone()
        };
        assert!(wrong_leg.to_command(3, &market, 0).is_err());
        let fine_price = OrderRequest {
            price: Some("0.405".into()),
            ..req
        };
        assert!(fine_price
            .to_command(3, &market, 0)
            .unwrap_err()
            .contains("decimal places"));
    }
}
