//! The gateway's view of the exchange, rebuilt from the event stream.
//!
//! Single writer: the gateway's event-loop thread, which applies every event
//! from its publisher sink in order ([`ExchangeView::apply`]). It never asks
//! the engine thread anything: order-book levels come from `BookLevel`
//! events (which carry absolute level totals), trades from `Trade`, status
//! from `InstrumentStatusChanged`, and each account's open orders, balances
//! and positions from the order, balance and position events. The view is
//! complete when the gateway's sink was registered before the first command
//! of the run (see the module docs of [`crate::ws`]).

use super::config::{MarketConfig, MarketKind};
use super::units::{dollars, fmt_decimal};
use ringex_core::records::{
    CancelReason, Event, EventView, InstrumentStatus, OrderType, Outcome, Side, TimeInForce,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

/// The binary payout in cents: a NO bid at `P` is a YES ask at `100 − P`.
const PAYOUT: i64 = 100;

/// One trade as the gateway remembers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeRecord {
    /// Engine trade id.
    pub trade_id: u64,
    /// Price on the YES (normalised) book.
    pub price: i64,
    /// Quantity.
    pub quantity: u64,
    /// The taker's book side.
    pub taker_side: Side,
    /// Wall-clock ns when the gateway saw it.
    pub ts_ns: u64,
}

/// One market: its configuration, status, L2 book and recent trades.
#[derive(Debug, Clone)]
pub struct MarketState {
    /// The configuration it was listed with.
    pub config: MarketConfig,
    /// `None` until the engine reported the instrument.
    pub status: Option<InstrumentStatus>,
    /// Bid levels (price → total quantity) of the normalised book.
    pub bids: BTreeMap<i64, u64>,
    /// Ask levels.
    pub asks: BTreeMap<i64, u64>,
    /// Last trade price.
    pub last_price: Option<i64>,
    /// Total traded quantity seen.
    pub volume: u64,
    /// Open interest (binary, from `PositionChanged`).
    pub open_interest: u64,
    /// The most recent trades, oldest first.
    pub trades: VecDeque<TradeRecord>,
    /// The settlement outcome, once settled.
    pub settled: Option<Outcome>,
}

/// A change of one book level, as `BookLevel` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelChange {
    /// Normalised book side.
    pub side: Side,
    /// Price on the normalised book.
    pub price: i64,
    /// Quantity before.
    pub old: u64,
    /// Quantity now (0: the level is gone).
    pub new: u64,
}

impl MarketState {
    fn new(config: MarketConfig) -> MarketState {
        MarketState {
            config,
            status: None,
            bids: BTreeMap::new(),
            asks: BTreeMap::new(),
            last_price: None,
            volume: 0,
            open_interest: 0,
            trades: VecDeque::new(),
            settled: None,
        }
    }

    /// Binary market?
    pub fn is_binary(&self) -> bool {
        self.config.kind == MarketKind::Binary
    }

    /// Best bid and best ask of the normalised book.
    pub fn best(&self) -> (Option<i64>, Option<i64>) {
        (
            self.bids.keys().next_back().copied(),
            self.asks.keys().next().copied(),
        )
    }

    /// `"unopened"`, `"open"`, `"halted"`, `"settled"` or `"closed"`.
    pub fn status_str(&self) -> &'static str {
        match (self.status, self.settled) {
            (None, _) => "unopened",
            (Some(InstrumentStatus::Trading), _) => "open",
            (Some(InstrumentStatus::Halted), _) => "halted",
            (Some(InstrumentStatus::Closed), Some(_)) => "settled",
            (Some(InstrumentStatus::Closed), None) => "closed",
        }
    }

    /// A spot price as a decimal string.
    pub fn price_str(&self, price: i64) -> String {
        fmt_decimal(i128::from(price), self.config.price_scale(), 0)
    }

    /// A spot quantity (or signed change) as a decimal string.
    pub fn qty_str(&self, qty: i128) -> String {
        fmt_decimal(qty, self.config.quantity_scale(), 0)
    }

    /// The market as `GET /api/v1/markets/{ticker}` shows it.
    pub fn to_json(&self) -> Value {
        let (bid, ask) = self.best();
        let mut v = json!({
            "ticker": self.config.ticker,
            "title": self.config.title,
            "instrument_id": self.config.instrument,
            "kind": self.config.kind.as_str(),
            "status": self.status_str(),
            "volume": self.volume,
        });
        let m = v.as_object_mut().expect("an object");
        if self.is_binary() {
            let no_bid = ask.map(|a| PAYOUT - a);
            let no_ask = bid.map(|b| PAYOUT - b);
            m.insert("yes_bid".into(), json!(bid));
            m.insert("yes_ask".into(), json!(ask));
            m.insert("no_bid".into(), json!(no_bid));
            m.insert("no_ask".into(), json!(no_ask));
            m.insert("yes_bid_dollars".into(), json!(bid.map(dollars)));
            m.insert("yes_ask_dollars".into(), json!(ask.map(dollars)));
            m.insert("last_price".into(), json!(self.last_price));
            m.insert(
                "last_price_dollars".into(),
                json!(self.last_price.map(dollars)),
            );
            m.insert("open_interest".into(), json!(self.open_interest));
            m.insert(
                "result".into(),
                json!(match self.settled {
                    Some(Outcome::Yes) => "yes",
                    Some(Outcome::No) => "no",
                    _ => "",
                }),
            );
        } else {
            m.insert("best_bid".into(), json!(bid.map(|p| self.price_str(p))));
            m.insert("best_ask".into(), json!(ask.map(|p| self.price_str(p))));
            m.insert(
                "last_price".into(),
                json!(self.last_price.map(|p| self.price_str(p))),
            );
            m.insert(
                "volume".into(),
                json!(self.qty_str(i128::from(self.volume))),
            );
            m.insert("price_decimals".into(), json!(self.config.price_scale()));
            m.insert(
                "quantity_decimals".into(),
                json!(self.config.quantity_scale()),
            );
        }
        m.insert("tick_size".into(), json!(self.config.tick_size));
        m.insert("lot_size".into(), json!(self.config.lot_size));
        v
    }

    /// The order book, best `depth` levels per side (0 = all).
    ///
    /// Binary (Kalshi's shape): `yes` = YES bids, `no` = NO bids (a YES ask
    /// at `P` is a NO bid at `100 − P`), each `[price_cents, quantity]`
    /// ascending by price, plus `yes_dollars`/`no_dollars` with dollar
    /// strings. Spot: `bids` (best first) and `asks` (best first) as
    /// `[price, quantity]` decimal strings.
    pub fn book_json(&self, depth: usize) -> Value {
        let depth = if depth == 0 { usize::MAX } else { depth };
        if self.is_binary() {
            let mut yes: Vec<(i64, u64)> = self
                .bids
                .iter()
                .rev()
                .take(depth)
                .map(|(&p, &q)| (p, q))
                .collect();
            yes.reverse();
            let mut no: Vec<(i64, u64)> = self
                .asks
                .iter()
                .take(depth)
                .map(|(&p, &q)| (PAYOUT - p, q))
                .collect();
            no.reverse();
            let cents =
                |v: &[(i64, u64)]| v.iter().map(|&(p, q)| json!([p, q])).collect::<Vec<_>>();
            let dollar = |v: &[(i64, u64)]| {
                v.iter()
                    .map(|&(p, q)| json!([dollars(p), q]))
                    .collect::<Vec<_>>()
            };
            json!({
                "market_ticker": self.config.ticker,
                "yes": cents(&yes),
                "no": cents(&no),
                "yes_dollars": dollar(&yes),
                "no_dollars": dollar(&no),
            })
        } else {
            let level =
                |(&p, &q): (&i64, &u64)| json!([self.price_str(p), self.qty_str(i128::from(q))]);
            json!({
                "market_ticker": self.config.ticker,
                "bids": self.bids.iter().rev().take(depth).map(level).collect::<Vec<_>>(),
                "asks": self.asks.iter().take(depth).map(level).collect::<Vec<_>>(),
            })
        }
    }

    /// The `msg` of an `orderbook_delta` for one level change.
    pub fn delta_json(&self, change: &LevelChange) -> Value {
        let delta = i128::from(change.new) - i128::from(change.old);
        if self.is_binary() {
            let (side, price) = match change.side {
                Side::Buy => ("yes", change.price),
                Side::Sell => ("no", PAYOUT - change.price),
            };
            json!({
                "market_ticker": self.config.ticker,
                "price": price,
                "price_dollars": dollars(price),
                "delta": delta as i64,
                "side": side,
            })
        } else {
            json!({
                "market_ticker": self.config.ticker,
                "price": self.price_str(change.price),
                "delta": self.qty_str(delta),
                "side": if change.side == Side::Buy { "bid" } else { "ask" },
            })
        }
    }

    /// One trade as the `trade` channel and `GET .../trades` show it.
    pub fn trade_json(&self, t: &TradeRecord) -> Value {
        if self.is_binary() {
            json!({
                "trade_id": t.trade_id.to_string(),
                "market_ticker": self.config.ticker,
                "yes_price": t.price,
                "no_price": PAYOUT - t.price,
                "yes_price_dollars": dollars(t.price),
                "no_price_dollars": dollars(PAYOUT - t.price),
                "count": t.quantity,
                "taker_side": if t.taker_side == Side::Buy { "yes" } else { "no" },
                "ts": t.ts_ns / 1_000_000_000,
            })
        } else {
            json!({
                "trade_id": t.trade_id.to_string(),
                "market_ticker": self.config.ticker,
                "price": self.price_str(t.price),
                "quantity": self.qty_str(i128::from(t.quantity)),
                "taker_side": if t.taker_side == Side::Buy { "buy" } else { "sell" },
                "ts": t.ts_ns / 1_000_000_000,
            })
        }
    }

    /// The `msg` of a `ticker` message.
    pub fn ticker_json(&self) -> Value {
        let (bid, ask) = self.best();
        if self.is_binary() {
            json!({
                "market_ticker": self.config.ticker,
                "price": self.last_price,
                "yes_bid": bid,
                "yes_ask": ask,
                "price_dollars": self.last_price.map(dollars),
                "yes_bid_dollars": bid.map(dollars),
                "yes_ask_dollars": ask.map(dollars),
                "volume": self.volume,
                "open_interest": self.open_interest,
                "ts": super::server::unix_seconds(),
            })
        } else {
            json!({
                "market_ticker": self.config.ticker,
                "price": self.last_price.map(|p| self.price_str(p)),
                "bid": bid.map(|p| self.price_str(p)),
                "ask": ask.map(|p| self.price_str(p)),
                "volume": self.qty_str(i128::from(self.volume)),
                "ts": super::server::unix_seconds(),
            })
        }
    }

    /// The `msg` of a `market_lifecycle` message.
    pub fn status_json(&self) -> Value {
        json!({
            "market_ticker": self.config.ticker,
            "status": self.status_str(),
            "result": match self.settled { Some(Outcome::Yes) => "yes", Some(Outcome::No) => "no", _ => "" },
        })
    }
}

/// An open order as the gateway tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderInfo {
    /// Engine order id.
    pub order_id: u64,
    /// Owner.
    pub account: u32,
    /// Instrument.
    pub instrument: u32,
    /// Normalised book side.
    pub book_side: Side,
    /// The leg the client named (binary) or `None`.
    pub outcome: Outcome,
    /// Price on the normalised book.
    pub price: i64,
    /// Total quantity.
    pub quantity: u64,
    /// Filled so far.
    pub filled: u64,
    /// Still open.
    pub leaves: u64,
    /// Client order id in force.
    pub client_order_id: u64,
    /// Order type.
    pub order_type: OrderType,
    /// Time in force.
    pub time_in_force: TimeInForce,
}

impl OrderInfo {
    /// (action as the client named it, price in the client's leg terms).
    pub fn client_terms(&self) -> (Side, i64) {
        if self.outcome == Outcome::No {
            (self.book_side.opposite(), PAYOUT - self.price)
        } else {
            (self.book_side, self.price)
        }
    }
}

/// What applying one event changed, for the fan-out.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// Nothing the gateway publishes.
    None,
    /// A book level changed in market `market` (index into the market list).
    Book {
        /// Market index.
        market: usize,
        /// The change.
        change: LevelChange,
    },
    /// A trade in market `market`; the orders after the fill (if tracked).
    Trade {
        /// Market index.
        market: usize,
        /// The trade.
        trade: TradeRecord,
        /// Maker account.
        maker_account: u32,
        /// Taker account.
        taker_account: u32,
        /// Maker order after the fill.
        maker: Option<OrderInfo>,
        /// Taker order after the fill.
        taker: Option<OrderInfo>,
    },
    /// A market's status changed (or it settled).
    Status {
        /// Market index.
        market: usize,
    },
    /// An order was accepted, replaced or cancelled.
    Order {
        /// The order after the change.
        order: OrderInfo,
        /// `"resting"`, `"canceled"`, `"executed"`, `"pending"`.
        status: &'static str,
        /// Cancel reason, for cancels.
        reason: Option<CancelReason>,
    },
    /// A balance changed.
    Balance {
        /// Account.
        account: u32,
        /// Asset.
        asset: u16,
    },
    /// A position changed.
    Position {
        /// Account.
        account: u32,
        /// Instrument.
        instrument: u32,
    },
}

/// Markets, books, open orders, balances and positions seen in the event
/// stream. See the module docs.
#[derive(Debug, Default)]
pub struct ExchangeView {
    markets: Vec<MarketState>,
    by_ticker: HashMap<String, usize>,
    by_instrument: HashMap<u32, usize>,
    orders: HashMap<u64, OrderInfo>,
    open_by_account: HashMap<u32, BTreeSet<u64>>,
    balances: BTreeMap<(u32, u16), (i64, i64)>,
    positions: BTreeMap<(u32, u32), i64>,
    recent_trades: usize,
}

impl ExchangeView {
    /// A view of the configured markets, keeping `recent_trades` per market.
    pub fn new(markets: &[MarketConfig], recent_trades: usize) -> ExchangeView {
        let mut view = ExchangeView {
            recent_trades: recent_trades.max(1),
            ..ExchangeView::default()
        };
        for m in markets {
            view.list_market(m.clone());
        }
        view
    }

    /// Adds a market to the list (admin add-market); `false` if its ticker
    /// or instrument is taken.
    pub fn list_market(&mut self, config: MarketConfig) -> bool {
        if self.by_ticker.contains_key(&config.ticker)
            || self.by_instrument.contains_key(&config.instrument)
        {
            return false;
        }
        let index = self.markets.len();
        self.by_ticker.insert(config.ticker.clone(), index);
        self.by_instrument.insert(config.instrument, index);
        self.markets.push(MarketState::new(config));
        true
    }

    /// Removes a market that the engine refused to add (only the last one
    /// listed, and only while the engine never reported it).
    pub fn unlist_market(&mut self, ticker: &str) {
        if let Some(&i) = self.by_ticker.get(ticker) {
            if i + 1 == self.markets.len() && self.markets[i].status.is_none() {
                let m = self.markets.pop().expect("listed");
                self.by_ticker.remove(&m.config.ticker);
                self.by_instrument.remove(&m.config.instrument);
            }
        }
    }

    /// All markets, in listing order.
    pub fn markets(&self) -> &[MarketState] {
        &self.markets
    }

    /// Market index by ticker.
    pub fn market_index(&self, ticker: &str) -> Option<usize> {
        self.by_ticker.get(ticker).copied()
    }

    /// Market by index.
    pub fn market(&self, index: usize) -> &MarketState {
        &self.markets[index]
    }

    /// Market index by instrument id.
    pub fn market_of_instrument(&self, instrument: u32) -> Option<usize> {
        self.by_instrument.get(&instrument).copied()
    }

    /// A tracked open order.
    pub fn order(&self, order_id: u64) -> Option<&OrderInfo> {
        self.orders.get(&order_id)
    }

    /// The account's open orders, oldest first.
    pub fn open_orders(&self, account: u32) -> impl Iterator<Item = &OrderInfo> {
        self.open_by_account
            .get(&account)
            .into_iter()
            .flatten()
            .filter_map(|id| self.orders.get(id))
    }

    /// The account's balances: (asset, available, reserved).
    pub fn balances(&self, account: u32) -> impl Iterator<Item = (u16, i64, i64)> + '_ {
        self.balances
            .range((account, 0)..=(account, u16::MAX))
            .map(|(&(_, asset), &(a, r))| (asset, a, r))
    }

    /// The account's non-zero positions: (instrument, position).
    pub fn positions(&self, account: u32) -> impl Iterator<Item = (u32, i64)> + '_ {
        self.positions
            .range((account, 0)..=(account, u32::MAX))
            .filter(|(_, &p)| p != 0)
            .map(|(&(_, i), &p)| (i, p))
    }

    /// One balance.
    pub fn balance(&self, account: u32, asset: u16) -> (i64, i64) {
        self.balances
            .get(&(account, asset))
            .copied()
            .unwrap_or((0, 0))
    }

    /// One position.
    pub fn position(&self, account: u32, instrument: u32) -> i64 {
        self.positions
            .get(&(account, instrument))
            .copied()
            .unwrap_or(0)
    }

    fn remove_order(&mut self, order_id: u64) -> Option<OrderInfo> {
        let info = self.orders.remove(&order_id)?;
        if let Some(set) = self.open_by_account.get_mut(&info.account) {
            set.remove(&order_id);
        }
        Some(info)
    }

    fn fill(&mut self, order_id: u64, quantity: u64, leaves: u64) -> Option<OrderInfo> {
        let info = self.orders.get_mut(&order_id)?;
        info.filled += quantity;
        info.leaves = leaves;
        let copy = *info;
        if leaves == 0 {
            self.remove_order(order_id);
        }
        Some(copy)
    }

    /// Applies one event; `now_ns` stamps trades.
    pub fn apply(&mut self, event: &Event, now_ns: u64) -> Effect {
        let Some(view) = event.decode() else {
            return Effect::None;
        };
        match view {
            EventView::BookLevel {
                instrument,
                side,
                price,
                quantity,
                ..
            } => {
                let Some(market) = self.market_of_instrument(instrument) else {
                    return Effect::None;
                };
                let m = &mut self.markets[market];
                let levels = if side == Side::Buy {
                    &mut m.bids
                } else {
                    &mut m.asks
                };
                let old = if quantity == 0 {
                    levels.remove(&price)
                } else {
                    levels.insert(price, quantity)
                }
                .unwrap_or(0);
                if old == quantity {
                    return Effect::None;
                }
                Effect::Book {
                    market,
                    change: LevelChange {
                        side,
                        price,
                        old,
                        new: quantity,
                    },
                }
            }
            EventView::Trade {
                instrument,
                aggressor,
                taker_account,
                maker_account,
                trade_id,
                maker_order_id,
                taker_order_id,
                price,
                quantity,
                maker_leaves,
                taker_leaves,
                ..
            } => {
                let maker = self.fill(maker_order_id, quantity, maker_leaves);
                let taker = self.fill(taker_order_id, quantity, taker_leaves);
                let Some(market) = self.market_of_instrument(instrument) else {
                    return Effect::None;
                };
                let trade = TradeRecord {
                    trade_id,
                    price,
                    quantity,
                    taker_side: aggressor,
                    ts_ns: now_ns,
                };
                let m = &mut self.markets[market];
                m.last_price = Some(price);
                m.volume = m.volume.saturating_add(quantity);
                if m.trades.len() == self.recent_trades {
                    m.trades.pop_front();
                }
                m.trades.push_back(trade);
                Effect::Trade {
                    market,
                    trade,
                    maker_account,
                    taker_account,
                    maker,
                    taker,
                }
            }
            EventView::InstrumentStatusChanged { instrument, status } => {
                let Some(market) = self.market_of_instrument(instrument) else {
                    return Effect::None;
                };
                self.markets[market].status = Some(status);
                Effect::Status { market }
            }
            EventView::MarketSettled {
                instrument,
                outcome,
                ..
            } => {
                let Some(market) = self.market_of_instrument(instrument) else {
                    return Effect::None;
                };
                self.markets[market].settled = Some(outcome);
                self.markets[market].open_interest = 0;
                Effect::Status { market }
            }
            EventView::PositionChanged {
                account,
                instrument,
                position,
                open_interest,
            } => {
                self.positions.insert((account, instrument), position);
                if let Some(market) = self.market_of_instrument(instrument) {
                    self.markets[market].open_interest = open_interest;
                }
                Effect::Position {
                    account,
                    instrument,
                }
            }
            EventView::BalanceChanged {
                account,
                asset,
                available,
                reserved,
            } => {
                self.balances
                    .insert((account, asset), (available, reserved));
                Effect::Balance { account, asset }
            }
            EventView::OrderAccepted {
                instrument,
                account,
                side,
                order_id,
                client_order_id,
                price,
                quantity,
                order_type,
                time_in_force,
                outcome,
                ..
            } => {
                let order = OrderInfo {
                    order_id,
                    account,
                    instrument,
                    book_side: side,
                    outcome,
                    price,
                    quantity,
                    filled: 0,
                    leaves: quantity,
                    client_order_id,
                    order_type,
                    time_in_force,
                };
                self.orders.insert(order_id, order);
                self.open_by_account
                    .entry(account)
                    .or_default()
                    .insert(order_id);
                let status = if matches!(order_type, OrderType::StopLimit | OrderType::StopMarket) {
                    "pending"
                } else {
                    "resting"
                };
                Effect::Order {
                    order,
                    status,
                    reason: None,
                }
            }
            EventView::OrderCancelled {
                order_id, reason, ..
            } => match self.remove_order(order_id) {
                Some(order) => Effect::Order {
                    order,
                    status: "canceled",
                    reason: Some(reason),
                },
                None => Effect::None,
            },
            EventView::OrderReplaced {
                order_id,
                client_order_id,
                price,
                quantity,
                leaves,
                ..
            } => match self.orders.get_mut(&order_id) {
                Some(order) => {
                    order.client_order_id = client_order_id;
                    order.price = price;
                    order.quantity = quantity;
                    order.leaves = leaves;
                    Effect::Order {
                        order: *order,
                        status: "resting",
                        reason: None,
                    }
                }
                None => Effect::None,
            },
            _ => Effect::None,
        }
    }
}

/// A cancel reason as a lowercase word.
pub fn cancel_reason_str(reason: CancelReason) -> &'static str {
    match reason {
        CancelReason::User => "user",
        CancelReason::IocRemainder => "ioc_remainder",
        CancelReason::FokUnfilled => "fok_unfilled",
        CancelReason::SelfTrade => "self_trade",
        CancelReason::Expired => "expired",
        CancelReason::MassCancel => "mass_cancel",
        CancelReason::KillSwitch => "kill_switch",
        CancelReason::Settlement => "settlement",
        CancelReason::BudgetExhausted => "budget_exhausted",
        CancelReason::PostOnlyWouldCross => "post_only_would_cross",
    }
}
