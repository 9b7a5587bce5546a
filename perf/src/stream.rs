//! Seeded command streams shaped like exchange-core's published throughput
//! benchmark.
//!
//! exchange-core measures one order book fed 3,000,000 commands: 9% GTC
//! limit orders, 3% IOC orders, 6% cancels and 82% "move" commands (a
//! resting order gets a new price), from 1,000 accounts, with about 1,000
//! limit orders resting on about 750 price levels and about 6% of the
//! commands trading. [`generate`] builds such a stream for one ringex spot
//! instrument:
//!
//! - **setup** (untimed by every harness): the instrument (prices 1 to
//!   1,000,000, tick 1, lot 1, BASE asset 1, QUOTE asset 2), the accounts
//!   with deposits large enough that risk checks never reject for funds,
//!   and a prefill of passive orders up to the target book size;
//! - **measured**: the mix above. Moves go to a fresh passive price;
//!   cancels and moves pick a random resting order. A move is a `Replace`
//!   that keeps the order's client order id by default, as exchange-core's
//!   `MoveOrder` keeps the order's identity ([`MoveIds::Keep`]); with
//!   [`MoveIds::New`] every move carries a new client order id, as a FIX
//!   OrderCancelReplaceRequest does, and the engine's duplicate check
//!   claims it and retires the old one into the dedup window.
//!
//! IOC orders take liquidity, so a fixed mix would drain (or flood) the
//! book. The generator holds the book near its target by adapting how
//! often a new GTC order crosses: below the target every GTC order is
//! passive, above it the chance of crossing grows with the excess. IOC
//! orders and crossing GTC orders are small (1-10 lots against resting
//! sizes of 1-100), so most trades take part of a resting order rather than
//! all of it; that lets about 5.5% of the commands trade while the book
//! holds its size (exchange-core reports about 6%).
//!
//! To know which orders rest, and at what price and size, the generator
//! feeds every command it emits through its own [`Engine`] (risk off) and
//! reads the events back into an [`OrderTracker`]. Order ids are therefore
//! exactly the ids any engine assigns to the same stream (sequentially from
//! 1), and the stream is deterministic: the same [`StreamParams`] give the
//! same commands, byte for byte. Every command carries its sequence number
//! and timestamp ([`Command::stamped`]).
//!
//! Single-threaded; the generator owns its engine.

use std::collections::HashMap;

use ringex_core::records::{
    Command, Event, EventKind, EventView, InstrumentKind, InstrumentSpec, OrderSpec, OrderType,
    Side, TimeInForce,
};
use ringex_core::{Engine, EngineConfig, RiskMode};
use serde::Serialize;

/// Instrument id of the benchmark's spot market.
pub const INSTRUMENT: u32 = 1;
/// BASE asset of the spot market (asks reserve it).
pub const BASE_ASSET: u16 = 1;
/// QUOTE asset of the spot market (bids reserve `price x quantity` of it).
pub const QUOTE_ASSET: u16 = 2;
/// Lowest price of the spot market.
pub const MIN_PRICE: i64 = 1;
/// Highest price of the spot market.
pub const MAX_PRICE: i64 = 1_000_000;
/// Where the fair price starts (and where benches centre their books).
pub const MID_PRICE: i64 = 500_000;
/// Timestamp of sequence number 0 (ns since the epoch); each command adds 100 ns.
pub const BASE_TIMESTAMP: u64 = 1_700_000_000_000_000_000;

/// The spot instrument every stream trades.
pub fn instrument_spec() -> InstrumentSpec {
    InstrumentSpec {
        id: INSTRUMENT,
        kind: InstrumentKind::Spot,
        tick_size: 1,
        lot_size: 1,
        min_price: MIN_PRICE,
        max_price: MAX_PRICE,
        maker_fee_bps: 0,
        taker_fee_bps: 0,
        base_asset: BASE_ASSET,
        quote_asset: QUOTE_ASSET,
    }
}

/// A small deterministic PRNG: splitmix64 to seed, xorshift64* to draw.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded from `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n` > 0), by multiply-shift.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `permille / 1000`.
    #[inline]
    pub fn chance(&mut self, permille: u64) -> bool {
        self.below(1000) < permille
    }

    /// A fair coin as a book side.
    #[inline]
    pub fn side(&mut self) -> Side {
        if self.next_u64() >> 63 == 0 {
            Side::Buy
        } else {
            Side::Sell
        }
    }
}

/// Shares of the measured commands, in per mille (they need not sum to
/// 1000: the remainder after GTC, IOC and cancel is moves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mix {
    /// New GTC limit orders.
    pub gtc: u32,
    /// New IOC limit orders.
    pub ioc: u32,
    /// Cancels.
    pub cancel: u32,
}

/// Which client order id a move (a `Replace` to a new price) carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MoveIds {
    /// Client order id 0: the order keeps its id, as exchange-core's
    /// `MoveOrder` (order id and new price, nothing else) keeps the
    /// order's identity.
    #[default]
    Keep,
    /// A new client order id per move, as FIX's OrderCancelReplaceRequest
    /// (a new ClOrdID each time): the engine claims it in its client-id
    /// table and the old id enters the dedup window, evicting the oldest.
    New,
}

impl std::str::FromStr for MoveIds {
    type Err = String;

    fn from_str(s: &str) -> Result<MoveIds, String> {
        match s {
            "keep" => Ok(MoveIds::Keep),
            "new" => Ok(MoveIds::New),
            other => Err(format!("move ids must be keep or new, not {other:?}")),
        }
    }
}

impl Mix {
    /// exchange-core's mix: 9% GTC, 3% IOC, 6% cancel, 82% move.
    pub const EXCHANGE_CORE: Mix = Mix {
        gtc: 90,
        ioc: 30,
        cancel: 60,
    };
}

/// What stream to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StreamParams {
    /// PRNG seed.
    pub seed: u64,
    /// Number of measured commands.
    pub commands: usize,
    /// Accounts `1..=accounts`.
    pub accounts: u32,
    /// Resting orders the generator aims for (and prefills in setup).
    pub target_orders: usize,
    /// Passive orders are placed up to this many ticks behind the gap around the fair price.
    pub band_ticks: i64,
    /// Half-width in ticks of the empty gap around the fair price that passive orders keep
    /// (0: bids from fair - 1 down, asks from fair + 1 up).
    pub gap_ticks: i64,
    /// Largest quantity of a GTC order (uniform in `1..=max_quantity`).
    pub max_quantity: u64,
    /// Largest quantity of an IOC order, and of a GTC order priced to cross.
    pub max_ioc_quantity: u64,
    /// Per mille of GTC orders that cross, per resting order above the target.
    pub cross_gain: u64,
    /// Command mix.
    pub mix: Mix,
    /// Which client order id moves carry.
    pub move_ids: MoveIds,
    /// Deposit of each asset per account.
    pub deposit: u64,
}

impl Default for StreamParams {
    fn default() -> Self {
        StreamParams {
            seed: 1,
            commands: 3_000_000,
            accounts: 1_000,
            target_orders: 1_000,
            band_ticks: 825,
            gap_ticks: 0,
            max_quantity: 100,
            max_ioc_quantity: 10,
            cross_gain: 20,
            mix: Mix::EXCHANGE_CORE,
            move_ids: MoveIds::Keep,
            deposit: 1_000_000_000_000_000,
        }
    }
}

impl StreamParams {
    /// The engine configuration every harness uses for this stream, sized
    /// to it: order capacity and dedup window of eight times the target
    /// book (rounded up to a power of two; 8,192 for the default 1,000),
    /// room for the accounts, the instrument id and its 1,000,000 price
    /// levels, three asset slots (ids 0-2) per account.
    ///
    /// The engine's own defaults (262,144 orders and dedup window) make its
    /// client-id tables about 32 MiB, and every command then touches them
    /// at random; `ringex-perf core --max-orders --dedup-window` measures
    /// that configuration too (see `docs/performance.md`).
    pub fn engine_config(&self, risk: RiskMode) -> EngineConfig {
        let levels = ((MAX_PRICE - MIN_PRICE) / instrument_spec().tick_size + 1) as u32;
        let orders = (self.target_orders.max(512) * 8).next_power_of_two() as u32;
        EngineConfig {
            max_orders: orders,
            max_accounts: self.accounts + 1,
            max_instruments: INSTRUMENT + 1,
            max_assets: QUOTE_ASSET.max(BASE_ASSET) + 1,
            max_positions: 16,
            dedup_window: orders,
            max_price_levels: levels,
            risk,
        }
    }
}

/// Checks that an engine configured as `have` can hold the stream of
/// `params` (every capacity at least the stream-sized one); the error names
/// the first `[engine]` key that is too small.
pub fn check_engine_fits(
    have: &EngineConfig,
    params: &StreamParams,
) -> std::result::Result<(), String> {
    let need = params.engine_config(have.risk);
    for (key, has, needs) in [
        (
            "max_orders",
            u64::from(have.max_orders),
            u64::from(need.max_orders),
        ),
        (
            "max_accounts",
            u64::from(have.max_accounts),
            u64::from(need.max_accounts),
        ),
        (
            "max_instruments",
            u64::from(have.max_instruments),
            u64::from(need.max_instruments),
        ),
        (
            "max_assets",
            u64::from(have.max_assets),
            u64::from(need.max_assets),
        ),
        (
            "max_price_levels",
            u64::from(have.max_price_levels),
            u64::from(need.max_price_levels),
        ),
    ] {
        if has < needs {
            return Err(format!(
                "configuration [engine] {key} = {has} cannot hold the benchmark stream (needs {needs})"
            ));
        }
    }
    Ok(())
}

/// One order the tracker believes is live. Prices and sides are on the
/// normalised (YES) book, as the engine reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveOrder {
    /// Engine order id.
    pub order_id: u64,
    /// Current client order id.
    pub client_order_id: u64,
    /// Owner.
    pub account: u32,
    /// Instrument.
    pub instrument: u32,
    /// Book side.
    pub side: Side,
    /// Limit price on the book.
    pub price: i64,
    /// Total quantity (what a replace must keep above the filled part).
    pub quantity: u64,
    /// Unfilled quantity.
    pub leaves: u64,
}

/// Follows the engine's events to know which orders are live.
///
/// Orders enter on `OrderAccepted` (limit and market orders; stops are not
/// tracked) and leave when a `Trade` leaves them nothing or an
/// `OrderCancelled` names them; `OrderReplaced` updates them. After all the
/// events of a command are observed, the tracker holds exactly the orders
/// resting in the book. Lookup by id is a hash map (never iterated); the
/// list order is deterministic, so random picks by index are too.
#[derive(Debug, Default, Clone)]
pub struct OrderTracker {
    orders: Vec<LiveOrder>,
    index: HashMap<u64, usize>,
    /// Trades observed.
    pub trades: u64,
    /// Rejects observed.
    pub rejects: u64,
}

impl OrderTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Live orders.
    pub fn len(&self) -> usize {
        self.orders.len()
    }

    /// No live orders.
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    /// The `i`-th live order (`i < len()`).
    pub fn get(&self, i: usize) -> &LiveOrder {
        &self.orders[i]
    }

    /// The live order with engine id `order_id`.
    pub fn by_id(&self, order_id: u64) -> Option<&LiveOrder> {
        self.index.get(&order_id).map(|&i| &self.orders[i])
    }

    /// All live orders, in a deterministic order.
    pub fn orders(&self) -> &[LiveOrder] {
        &self.orders
    }

    /// Number of distinct (instrument, side, price) levels the live orders occupy.
    pub fn distinct_levels(&self) -> usize {
        let mut keys: Vec<(u32, u8, i64)> = self
            .orders
            .iter()
            .map(|o| (o.instrument, o.side as u8, o.price))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.len()
    }

    fn remove(&mut self, order_id: u64) {
        if let Some(i) = self.index.remove(&order_id) {
            self.orders.swap_remove(i);
            if let Some(moved) = self.orders.get(i) {
                self.index.insert(moved.order_id, i);
            }
        }
    }

    fn set_leaves(&mut self, order_id: u64, leaves: u64) {
        if leaves == 0 {
            self.remove(order_id);
        } else if let Some(&i) = self.index.get(&order_id) {
            self.orders[i].leaves = leaves;
        }
    }

    /// Updates the view with one event.
    pub fn observe(&mut self, event: &Event) {
        let Some(view) = event.decode() else { return };
        match view {
            EventView::OrderAccepted {
                instrument,
                account,
                side,
                order_id,
                client_order_id,
                price,
                quantity,
                order_type: OrderType::Limit | OrderType::Market,
                ..
            } => {
                self.index.insert(order_id, self.orders.len());
                self.orders.push(LiveOrder {
                    order_id,
                    client_order_id,
                    account,
                    instrument,
                    side,
                    price,
                    quantity,
                    leaves: quantity,
                });
            }
            EventView::Trade {
                maker_order_id,
                taker_order_id,
                maker_leaves,
                taker_leaves,
                ..
            } => {
                self.trades += 1;
                self.set_leaves(maker_order_id, maker_leaves);
                self.set_leaves(taker_order_id, taker_leaves);
            }
            EventView::OrderCancelled { order_id, .. } => self.remove(order_id),
            EventView::OrderReplaced {
                order_id,
                client_order_id,
                price,
                quantity,
                leaves,
                ..
            } => {
                if let Some(&i) = self.index.get(&order_id) {
                    let o = &mut self.orders[i];
                    o.client_order_id = client_order_id;
                    o.price = price;
                    o.quantity = quantity;
                    o.leaves = leaves;
                }
            }
            EventView::Rejected { .. } => self.rejects += 1,
            _ => {}
        }
    }
}

/// What the generator did, for the reports.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StreamStats {
    /// Measured commands generated.
    pub commands: u64,
    /// Passive (non-crossing) GTC orders.
    pub gtc_passive: u64,
    /// GTC orders priced to cross.
    pub gtc_crossing: u64,
    /// IOC orders.
    pub ioc: u64,
    /// Cancels.
    pub cancels: u64,
    /// Moves (replaces with a new price).
    pub moves: u64,
    /// Trades in the measured phase.
    pub trades: u64,
    /// Measured commands that produced at least one trade.
    pub commands_with_trades: u64,
    /// Rejects seen by the generator's engine (setup and measured; should be 0).
    pub rejects: u64,
    /// Resting orders at the end of setup.
    pub resting_after_setup: u64,
    /// Fewest resting orders during the measured phase.
    pub resting_min: u64,
    /// Most resting orders during the measured phase.
    pub resting_max: u64,
    /// Mean resting orders over the measured phase.
    pub resting_mean: f64,
    /// Mean number of occupied price levels (sampled every 1,000 commands).
    pub levels_mean: f64,
    /// Resting orders at the end.
    pub resting_end: u64,
}

/// A generated stream.
#[derive(Debug, Clone)]
pub struct Stream {
    /// What it was generated from.
    pub params: StreamParams,
    /// Instrument, accounts, deposits and the prefill (apply untimed).
    pub setup: Vec<Command>,
    /// The measured commands.
    pub measured: Vec<Command>,
    /// Shape of what was generated.
    pub stats: StreamStats,
}

/// Generates a stream; see the module docs.
pub fn generate(params: &StreamParams) -> Stream {
    let mut gen = Generator::new(*params);
    let setup = gen.setup();
    let measured = (0..params.commands).map(|_| gen.next_command()).collect();
    Stream {
        params: *params,
        setup,
        measured,
        stats: gen.stats(),
    }
}

/// The stateful generator behind [`generate`]; benches drive it directly to
/// get a book and the tracker's view of it.
pub struct Generator {
    params: StreamParams,
    engine: Engine,
    rng: Rng,
    tracker: OrderTracker,
    events: Vec<Event>,
    seq: u64,
    next_client_id: u64,
    fair: i64,
    stats: StreamStats,
    resting_sum: u128,
    levels_sum: u128,
    levels_samples: u64,
}

impl Generator {
    /// A generator with an empty engine (risk off).
    pub fn new(params: StreamParams) -> Generator {
        Generator {
            engine: Engine::new(params.engine_config(RiskMode::Disabled)),
            rng: Rng::new(params.seed),
            tracker: OrderTracker::new(),
            events: Vec::with_capacity(256),
            seq: 0,
            next_client_id: 1,
            fair: MID_PRICE,
            stats: StreamStats {
                resting_min: u64::MAX,
                ..StreamStats::default()
            },
            resting_sum: 0,
            levels_sum: 0,
            levels_samples: 0,
            params,
        }
    }

    /// The generator's own engine (risk off), after every command emitted so far.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The live orders after every command emitted so far.
    pub fn tracker(&self) -> &OrderTracker {
        &self.tracker
    }

    /// A fresh client order id (unique across the stream).
    pub fn next_client_id(&mut self) -> u64 {
        let id = self.next_client_id;
        self.next_client_id += 1;
        id
    }

    /// The PRNG (for callers that derive more commands from the same seed).
    pub fn rng(&mut self) -> &mut Rng {
        &mut self.rng
    }

    /// Statistics so far.
    pub fn stats(&self) -> StreamStats {
        let mut s = self.stats.clone();
        if s.commands > 0 {
            s.resting_mean = self.resting_sum as f64 / s.commands as f64;
        } else {
            s.resting_min = s.resting_after_setup;
            s.resting_max = s.resting_after_setup;
            s.resting_mean = s.resting_after_setup as f64;
        }
        if self.levels_samples > 0 {
            s.levels_mean = self.levels_sum as f64 / self.levels_samples as f64;
        }
        s.resting_end = self.tracker.len() as u64;
        s.rejects = self.tracker.rejects;
        s
    }

    /// Stamps `cmd` with the next sequence number and timestamp, applies it
    /// to the generator's engine, observes its events, and returns it.
    /// Returns the number of trades it caused as well.
    pub fn emit(&mut self, cmd: Command) -> (Command, u64) {
        self.seq += 1;
        let cmd = cmd.stamped(self.seq, BASE_TIMESTAMP + self.seq * 100);
        self.events.clear();
        self.engine.apply(&cmd, &mut self.events);
        let before = self.tracker.trades;
        for ev in &self.events {
            self.tracker.observe(ev);
        }
        (cmd, self.tracker.trades - before)
    }

    /// The events of the last command emitted.
    pub fn last_events(&self) -> &[Event] {
        &self.events
    }

    /// The setup commands: instrument, accounts, deposits, and passive
    /// orders up to the target book size.
    pub fn setup(&mut self) -> Vec<Command> {
        let p = self.params;
        let mut out = Vec::with_capacity(1 + 3 * p.accounts as usize + p.target_orders);
        out.push(self.emit(Command::add_instrument(instrument_spec())).0);
        for account in 1..=p.accounts {
            out.push(self.emit(Command::add_account(account)).0);
            out.push(
                self.emit(Command::deposit(account, BASE_ASSET, p.deposit))
                    .0,
            );
            out.push(
                self.emit(Command::deposit(account, QUOTE_ASSET, p.deposit))
                    .0,
            );
        }
        while self.tracker.len() < p.target_orders {
            let side = self.rng.side();
            let cmd = self.gtc(side, false);
            out.push(self.emit(cmd).0);
        }
        self.stats.resting_after_setup = self.tracker.len() as u64;
        out
    }

    fn random_account(&mut self) -> u32 {
        1 + self.rng.below(u64::from(self.params.accounts)) as u32
    }

    /// A passive price for `side`: behind the gap around the fair price, and
    /// never crossing the current opposite best.
    pub fn passive_price(&mut self, side: Side) -> i64 {
        let p = self.params;
        let depth = p.gap_ticks + 1 + self.rng.below(p.band_ticks.max(1) as u64) as i64;
        let (bid, ask) = self.engine.best_prices(INSTRUMENT);
        match side {
            Side::Buy => {
                let mut price = self.fair - depth;
                if let Some(ask) = ask {
                    price = price.min(ask - 1);
                }
                price.clamp(MIN_PRICE, MAX_PRICE)
            }
            Side::Sell => {
                let mut price = self.fair + depth;
                if let Some(bid) = bid {
                    price = price.max(bid + 1);
                }
                price.clamp(MIN_PRICE, MAX_PRICE)
            }
        }
    }

    /// An aggressive price for `side`: at or a few ticks through the
    /// opposite best, or `None` when the opposite side is empty.
    fn crossing_price(&mut self, side: Side) -> Option<i64> {
        let (bid, ask) = self.engine.best_prices(INSTRUMENT);
        let slack = self.rng.below(4) as i64;
        match side {
            Side::Buy => ask.map(|a| (a + slack).min(MAX_PRICE)),
            Side::Sell => bid.map(|b| (b - slack).max(MIN_PRICE)),
        }
    }

    fn gtc(&mut self, side: Side, cross: bool) -> Command {
        let mut max_quantity = self.params.max_quantity;
        let price = match cross.then(|| self.crossing_price(side)).flatten() {
            Some(price) => {
                self.stats.gtc_crossing += 1;
                max_quantity = self.params.max_ioc_quantity;
                price
            }
            None => {
                if cross {
                    self.stats.gtc_passive += 1;
                }
                self.passive_price(side)
            }
        };
        let account = self.random_account();
        let quantity = 1 + self.rng.below(max_quantity);
        let client_order_id = self.next_client_id();
        Command::new_order(OrderSpec::limit(
            account,
            INSTRUMENT,
            client_order_id,
            side,
            price,
            quantity,
        ))
    }

    fn ioc(&mut self, side: Side) -> Command {
        let price = self
            .crossing_price(side)
            .unwrap_or_else(|| self.passive_price(side));
        let account = self.random_account();
        let quantity = 1 + self.rng.below(self.params.max_ioc_quantity);
        let client_order_id = self.next_client_id();
        Command::new_order(OrderSpec {
            time_in_force: TimeInForce::Ioc,
            ..OrderSpec::limit(account, INSTRUMENT, client_order_id, side, price, quantity)
        })
    }

    /// A move of a random resting order to a fresh passive price, keeping
    /// its client order id or under a new one ([`StreamParams::move_ids`]).
    pub fn move_random_order(&mut self) -> Option<Command> {
        if self.tracker.is_empty() {
            return None;
        }
        let o = *self
            .tracker
            .get(self.rng.below(self.tracker.len() as u64) as usize);
        let mut price = self.passive_price(o.side);
        if price == o.price {
            // A move always changes the price; step one tick further from the spread.
            price = match o.side {
                Side::Buy if price > MIN_PRICE => price - 1,
                Side::Buy => price + 1,
                Side::Sell if price < MAX_PRICE => price + 1,
                Side::Sell => price - 1,
            };
        }
        let client_order_id = match self.params.move_ids {
            MoveIds::Keep => 0,
            MoveIds::New => self.next_client_id(),
        };
        Some(Command::replace(
            o.account,
            o.order_id,
            client_order_id,
            price,
            o.quantity,
        ))
    }

    /// A cancel of a random resting order.
    pub fn cancel_random_order(&mut self) -> Option<Command> {
        if self.tracker.is_empty() {
            return None;
        }
        let o = *self
            .tracker
            .get(self.rng.below(self.tracker.len() as u64) as usize);
        Some(Command::cancel(o.account, o.order_id))
    }

    /// The next measured command (already applied to the generator's engine).
    pub fn next_command(&mut self) -> Command {
        // The fair price drifts slowly (a reflected random walk).
        if self.rng.chance(125) {
            let step = if self.rng.next_u64() & 1 == 0 { -1 } else { 1 };
            let margin = 4 * (self.params.band_ticks + self.params.gap_ticks);
            self.fair = (self.fair + step).clamp(MIN_PRICE + margin, MAX_PRICE - margin);
        }
        let mix = self.params.mix;
        let roll = self.rng.below(1000) as u32;
        let resting = self.tracker.len();
        let target = self.params.target_orders;
        let cmd = if roll < mix.gtc {
            None
        } else if roll < mix.gtc + mix.ioc {
            self.stats.ioc += 1;
            let side = self.rng.side();
            Some(self.ioc(side))
        } else if roll < mix.gtc + mix.ioc + mix.cancel {
            let cmd = self.cancel_random_order();
            self.stats.cancels += u64::from(cmd.is_some());
            cmd
        } else {
            let cmd = self.move_random_order();
            self.stats.moves += u64::from(cmd.is_some());
            cmd
        };
        let cmd = cmd.unwrap_or_else(|| {
            // GTC (or a cancel/move with nothing to act on).
            let excess = resting.saturating_sub(target) as u64;
            let cross = self
                .rng
                .chance(excess.saturating_mul(self.params.cross_gain).min(1000));
            if !cross {
                self.stats.gtc_passive += 1;
            }
            let side = self.rng.side();
            self.gtc(side, cross)
        });
        let (cmd, trades) = self.emit(cmd);
        let s = &mut self.stats;
        s.commands += 1;
        s.trades += trades;
        s.commands_with_trades += u64::from(trades > 0);
        let n = self.tracker.len() as u64;
        s.resting_min = s.resting_min.min(n);
        s.resting_max = s.resting_max.max(n);
        self.resting_sum += u128::from(n);
        if s.commands % 1000 == 0 {
            self.levels_sum += self.tracker.distinct_levels() as u128;
            self.levels_samples += 1;
        }
        cmd
    }
}

/// Counts events by kind (a richer [`ringex_core::records::CountingSink`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct KindCounts {
    /// Events per [`EventKind`] wire value (index 0 and unknown kinds unused).
    pub by_kind: [u64; 16],
}

impl KindCounts {
    /// Events of `kind`.
    pub fn get(&self, kind: EventKind) -> u64 {
        self.by_kind[kind as usize]
    }

    /// All events.
    pub fn total(&self) -> u64 {
        self.by_kind.iter().sum()
    }
}

impl ringex_core::records::EventSink for KindCounts {
    #[inline]
    fn emit(&mut self, event: &Event) {
        self.by_kind[(event.kind & 15) as usize] += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringex_core::records::{CommandKind, CountingSink};

    fn small(commands: usize) -> StreamParams {
        StreamParams {
            commands,
            ..StreamParams::default()
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_stream_and_another_seed_does_not() {
        let a = generate(&small(20_000));
        let b = generate(&small(20_000));
        assert_eq!(a.setup, b.setup);
        assert_eq!(a.measured, b.measured);
        let c = generate(&StreamParams {
            seed: 2,
            ..small(20_000)
        });
        assert_ne!(a.measured, c.measured);
    }

    #[test]
    fn commands_are_stamped_with_increasing_sequence_and_time() {
        let s = generate(&small(5_000));
        let all: Vec<&Command> = s.setup.iter().chain(&s.measured).collect();
        for (i, c) in all.iter().enumerate() {
            assert_eq!(c.sequence, i as u64 + 1);
            assert_eq!(c.timestamp, BASE_TIMESTAMP + c.sequence * 100);
        }
    }

    #[test]
    fn the_mix_and_the_book_look_like_exchange_core() {
        let s = generate(&small(100_000));
        let st = &s.stats;
        assert_eq!(st.rejects, 0, "{st:?}");
        assert_eq!(st.resting_after_setup, 1_000);
        let pct = |n: u64| n as f64 * 100.0 / st.commands as f64;
        assert!(
            (pct(st.gtc_passive + st.gtc_crossing) - 9.0).abs() < 0.5,
            "{st:?}"
        );
        assert!((pct(st.ioc) - 3.0).abs() < 0.3, "{st:?}");
        assert!((pct(st.cancels) - 6.0).abs() < 0.5, "{st:?}");
        assert!((pct(st.moves) - 82.0).abs() < 1.0, "{st:?}");
        assert!(st.resting_min > 900 && st.resting_max < 1_150, "{st:?}");
        assert!((st.resting_mean - 1_000.0).abs() < 60.0, "{st:?}");
        assert!(st.levels_mean > 650.0 && st.levels_mean < 850.0, "{st:?}");
        let trading = pct(st.commands_with_trades);
        assert!(trading > 3.0 && trading < 9.0, "{st:?}");
    }

    #[test]
    fn risk_on_and_risk_off_engines_agree_on_trades_and_never_reject() {
        let s = generate(&small(30_000));
        let mut trades = Vec::new();
        for risk in [RiskMode::Enabled, RiskMode::Disabled] {
            let mut engine = Engine::new(s.params.engine_config(risk));
            let mut counts = KindCounts::default();
            for c in s.setup.iter().chain(&s.measured) {
                engine.apply(c, &mut counts);
            }
            assert_eq!(counts.get(EventKind::Rejected), 0, "{risk:?}");
            trades.push(counts.get(EventKind::Trade));
        }
        assert_eq!(trades[0], trades[1]);
        assert_eq!(trades[0], s.stats.trades);
        let mut sink = CountingSink::default();
        let mut engine = Engine::new(s.params.engine_config(RiskMode::Disabled));
        for c in &s.setup {
            engine.apply(c, &mut sink);
        }
        assert_eq!(sink.trades, 0, "the prefill never crosses");
    }

    #[test]
    fn the_tracker_matches_the_engine_s_open_orders() {
        let mut gen = Generator::new(small(0));
        gen.setup();
        for _ in 0..20_000 {
            gen.next_command();
            assert_eq!(gen.tracker().len(), gen.engine().open_orders());
        }
    }

    #[test]
    fn moves_keep_their_client_id_or_take_a_new_one_and_nothing_else_differs() {
        let keep = generate(&small(20_000));
        let new = generate(&StreamParams {
            move_ids: MoveIds::New,
            ..small(20_000)
        });
        assert_eq!(keep.setup, new.setup);
        assert_eq!(keep.stats, new.stats);
        let mut seen = std::collections::HashSet::new();
        let mut moves = 0;
        for (k, n) in keep.measured.iter().zip(&new.measured) {
            assert_eq!((k.kind, k.order_id, k.price), (n.kind, n.order_id, n.price));
            if k.kind == CommandKind::Replace as u8 {
                moves += 1;
                assert_eq!(k.client_order_id, 0, "a kept id is sent as 0");
                assert_ne!(n.client_order_id, 0);
            }
            if n.client_order_id != 0 {
                assert!(seen.insert(n.client_order_id), "client ids never repeat");
            }
        }
        assert!(moves > 15_000, "{moves}");
        // Both streams run without a reject through a risk-on engine, and
        // with kept ids every replaced order still carries the id it was
        // entered with.
        for s in [&keep, &new] {
            let mut engine = Engine::new(s.params.engine_config(RiskMode::Enabled));
            let mut events = Vec::new();
            for c in s.setup.iter().chain(&s.measured) {
                events.clear();
                engine.apply(c, &mut events);
                for e in &events {
                    assert_ne!(e.kind, EventKind::Rejected as u8);
                    if let EventView::OrderReplaced {
                        client_order_id,
                        orig_client_order_id,
                        ..
                    } = e.decode().expect("a valid event")
                    {
                        let kept = client_order_id == orig_client_order_id;
                        assert_eq!(kept, s.params.move_ids == MoveIds::Keep);
                    }
                }
            }
        }
    }

    #[test]
    fn rng_below_stays_in_range_and_covers_it() {
        let mut rng = Rng::new(0);
        let mut seen = [false; 7];
        for _ in 0..1_000 {
            let x = rng.below(7);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
