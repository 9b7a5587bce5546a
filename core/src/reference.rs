//! A simple, obviously correct reference model of the engine.
//!
//! Same records in, same events out, but built from the plainest data
//! structures there are: price levels are a `BTreeMap<price, VecDeque<order
//! id>>`, orders live in a `HashMap` keyed by id (looked up, never iterated
//! where order matters), an account's orders are a `BTreeSet` of ids (ids
//! grow with acceptance time, so id order is age order), stops wait in
//! ordered maps, and GTD expiry is a `BTreeSet<(expiry, id)>`. Amounts are
//! computed in `i128`. Nothing here is tuned for speed.
//!
//! Property tests run long random command streams through both this and
//! [`crate::Engine`] and require identical event records; `ringex-perf
//! core` uses it as the same-run baseline for throughput.
//!
//! The one output it cannot reproduce is the engine's state digest (a hash
//! over the engine's own layout): its `StateDigest` event carries 0 in
//! `words[0]` and the same counts in the other words.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use crate::engine::{EngineConfig, RiskMode, BINARY_PAYOUT, FEE_ACCOUNT, ORDER_SLOT_BITS};
use crate::records::{
    AccountLimits, CancelReason, Command, CommandKind, CommandView, Event, EventKind, EventSink,
    InstrumentKind, InstrumentSpec, InstrumentStatus, OrderSpec, OrderType, Outcome as Leg,
    RejectReason, SelfTradePrevention, Side, TimeInForce,
};

type R<T = ()> = Result<T, RejectReason>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Taking,
    Resting,
    PendingStop,
}

#[derive(Debug, Clone)]
struct Order {
    id: u64,
    client_id: u64,
    account: u32,
    instrument: u32,
    side: Side,
    outcome: Leg,
    order_type: OrderType,
    tif: TimeInForce,
    post_only: bool,
    stp: SelfTradePrevention,
    price: i64,
    stop_price: i64,
    quantity: u64,
    leaves: u64,
    filled: u64,
    expire: u64,
    budget: bool,
    reserved: u64,
    covered: u64,
    converted: u64,
    state: State,
}

#[derive(Debug, Clone, Default)]
struct Account {
    limits: AccountLimits,
    kill_switch: bool,
    orders: BTreeSet<u64>,
    available: BTreeMap<u16, i128>,
    reserved: BTreeMap<u16, i128>,
}

#[derive(Debug, Clone, Default)]
struct Position {
    position: i64,
    committed: [u64; 2],
    open_qty: [u64; 2],
}

struct Instrument {
    spec: InstrumentSpec,
    status: InstrumentStatus,
    /// Per side: price -> FIFO of order ids.
    levels: [BTreeMap<i64, VecDeque<u64>>; 2],
    stops: [BTreeMap<i64, VecDeque<u64>>; 2],
    last_price: Option<i64>,
    open_interest: u64,
    /// Accounts with a position record here, in creation order.
    position_holders: Vec<u32>,
}

/// The reference model. Same API shape as [`crate::Engine`].
pub struct ReferenceEngine {
    config: EngineConfig,
    instruments: BTreeMap<u32, Instrument>,
    accounts: BTreeMap<u32, Account>,
    orders: HashMap<u64, Order>,
    positions: HashMap<(u32, u32), Position>,
    /// (account, client id) -> the order it was given to. The id is current
    /// while that order lives and still carries it; otherwise it is finished
    /// and stays here, rejecting duplicates, until the window forgets it.
    client_ids: HashMap<(u32, u64), u64>,
    finished: VecDeque<(u32, u64)>,
    gtd: BTreeSet<(u64, u64)>,
    /// Order ids are `(acceptance counter << ORDER_SLOT_BITS) | slot`, where the
    /// slot is the engine's arena slot: freed slots are reused last-in,
    /// first-out, fresh ones are handed out in order.
    order_seq: u64,
    free_slots: Vec<u64>,
    fresh_slot: u64,
    slot_of: HashMap<u64, u64>,
    next_trade_id: u64,
    global_kill: bool,
    /// Per asset: deposits minus withdrawals (deposits keep it within i64).
    outstanding: BTreeMap<u16, i128>,
    seq: u64,
    ts: u64,
}

fn cost(side: Side, price: i64) -> i128 {
    match side {
        Side::Buy => i128::from(price),
        Side::Sell => i128::from(BINARY_PAYOUT - price),
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    (a + b - 1) / b
}

fn unit_reserve(spec: &InstrumentSpec, side: Side, limit: i64) -> i128 {
    let c = cost(side, limit);
    let bps = i128::from(spec.maker_fee_bps.max(spec.taker_fee_bps));
    c + ceil_div(c.min(50) * bps, 10_000)
}

fn fee(spec: &InstrumentSpec, side: Side, price: i64, qty: u64, bps: u16) -> i128 {
    let (qty, price, bps) = (i128::from(qty), i128::from(price), i128::from(bps));
    match spec.kind {
        InstrumentKind::Binary => qty * ceil_div(price.min(100 - price) * bps, 10_000),
        InstrumentKind::Spot if side == Side::Buy => ceil_div(qty * bps, 10_000),
        InstrumentKind::Spot => ceil_div(price * qty * bps, 10_000),
    }
}

fn closable(position: i64, side: Side) -> u64 {
    match side {
        Side::Buy => (-position).max(0) as u64,
        Side::Sell => position.max(0) as u64,
    }
}

fn collateral_asset(spec: &InstrumentSpec, side: Side) -> u16 {
    if spec.kind == InstrumentKind::Spot && side == Side::Sell {
        spec.base_asset
    } else {
        spec.quote_asset
    }
}

fn crosses(side: Side, limit: i64, other: i64) -> bool {
    match side {
        Side::Buy => other <= limit,
        Side::Sell => other >= limit,
    }
}

fn to_book(spec: &InstrumentSpec, side: Side, leg: Leg, price: i64) -> R<(Side, i64)> {
    match (spec.kind, leg) {
        (InstrumentKind::Binary, Leg::Yes) | (InstrumentKind::Spot, Leg::None) => Ok((side, price)),
        (InstrumentKind::Binary, Leg::No) => {
            Ok((side.opposite(), BINARY_PAYOUT.saturating_sub(price)))
        }
        _ => Err(RejectReason::InvalidOutcome),
    }
}

fn on_grid(
    spec: &InstrumentSpec,
    price: i64,
    off_tick: RejectReason,
    out_of_bounds: RejectReason,
) -> R {
    if price < spec.min_price || price > spec.max_price {
        Err(out_of_bounds)
    } else if price % spec.tick_size != 0 {
        Err(off_tick)
    } else {
        Ok(())
    }
}

struct Plan {
    asset: u16,
    amount: u64,
    covered: u64,
}

enum End {
    Done,
    SelfTrade,
    Budget,
}

impl ReferenceEngine {
    /// An empty model with the fee account open.
    pub fn new(config: EngineConfig) -> Self {
        let mut accounts = BTreeMap::new();
        accounts.insert(FEE_ACCOUNT, Account::default());
        ReferenceEngine {
            config,
            instruments: BTreeMap::new(),
            accounts,
            orders: HashMap::new(),
            positions: HashMap::new(),
            client_ids: HashMap::new(),
            finished: VecDeque::new(),
            gtd: BTreeSet::new(),
            order_seq: 1,
            free_slots: Vec::new(),
            fresh_slot: 0,
            slot_of: HashMap::new(),
            next_trade_id: 1,
            global_kill: false,
            outstanding: BTreeMap::new(),
            seq: 0,
            ts: 0,
        }
    }

    fn risk(&self) -> bool {
        self.config.risk == RiskMode::Enabled
    }

    fn ev(&self, kind: EventKind) -> Event {
        Event::new(kind, self.seq)
    }

    /// Applies one command, like [`crate::Engine::apply`].
    pub fn apply<S: EventSink>(&mut self, cmd: &Command, out: &mut S) {
        self.seq = cmd.sequence;
        self.ts = cmd.timestamp;
        let result = match cmd.decode() {
            Err(reason) => Err(reason),
            Ok(view) => self.dispatch(view, out),
        };
        if let Err(reason) = result {
            let mut ev = self.ev(EventKind::Rejected);
            ev.reason = cmd.kind;
            ev.code = reason as u32;
            ev.account = cmd.account;
            ev.instrument = cmd.instrument;
            ev.words[0] = cmd.client_order_id;
            ev.words[1] = cmd.order_id;
            out.emit(&ev);
        }
    }

    fn dispatch<S: EventSink>(&mut self, view: CommandView, out: &mut S) -> R {
        match view {
            CommandView::AddInstrument(spec) => self.add_instrument(spec, out),
            CommandView::AddAccount { account } => {
                if account >= self.config.max_accounts {
                    return Err(RejectReason::CapacityExhausted);
                }
                if self.accounts.contains_key(&account) {
                    return Err(RejectReason::AccountExists);
                }
                self.accounts.insert(account, Account::default());
                self.ack(CommandKind::AddAccount, account, 0, 0, out);
                Ok(())
            }
            CommandView::Deposit {
                account,
                asset,
                amount,
            } => self.funds(account, asset, amount, true, out),
            CommandView::Withdraw {
                account,
                asset,
                amount,
            } => self.funds(account, asset, amount, false, out),
            CommandView::NewOrder(spec) => self.new_order(spec, out),
            CommandView::Cancel {
                account,
                order_id,
                client_order_id,
            } => {
                let id = self.resolve(account, order_id, client_order_id)?;
                self.cancel_order(id, CancelReason::User, out);
                Ok(())
            }
            CommandView::Replace {
                account,
                order_id,
                orig_client_order_id,
                new_client_order_id,
                price,
                quantity,
            } => self.replace(
                account,
                order_id,
                orig_client_order_id,
                new_client_order_id,
                price,
                quantity,
                out,
            ),
            CommandView::MassCancel {
                account,
                instrument,
            } => {
                if !self.accounts.contains_key(&account) {
                    return Err(RejectReason::UnknownAccount);
                }
                if instrument.is_some_and(|i| !self.instruments.contains_key(&i)) {
                    return Err(RejectReason::UnknownInstrument);
                }
                let n = self.cancel_account(account, instrument, CancelReason::MassCancel, out);
                self.ack(
                    CommandKind::MassCancel,
                    account,
                    instrument.unwrap_or(0),
                    n,
                    out,
                );
                Ok(())
            }
            CommandView::SetLimits { account, limits } => {
                if !self.accounts.contains_key(&account) {
                    return Err(RejectReason::UnknownAccount);
                }
                if account == FEE_ACCOUNT {
                    return Err(RejectReason::ReservedAccount);
                }
                self.accounts.get_mut(&account).expect("checked").limits = limits;
                self.ack(CommandKind::SetLimits, account, 0, 0, out);
                Ok(())
            }
            CommandView::KillSwitch { account, on } => {
                let mut n = 0;
                match account {
                    Some(a) => {
                        let acct = self
                            .accounts
                            .get_mut(&a)
                            .ok_or(RejectReason::UnknownAccount)?;
                        acct.kill_switch = on;
                        if on {
                            n = self.cancel_account(a, None, CancelReason::KillSwitch, out);
                        }
                    }
                    None => {
                        self.global_kill = on;
                        if on {
                            let ids: Vec<u32> = self.accounts.keys().copied().collect();
                            for a in ids {
                                n += self.cancel_account(a, None, CancelReason::KillSwitch, out);
                            }
                        }
                    }
                }
                let mut ev = self.ev(EventKind::Ack);
                ev.reason = CommandKind::KillSwitch as u8;
                ev.account = account.unwrap_or(0);
                ev.side = u8::from(on);
                ev.words[0] = u64::from(on);
                ev.words[1] = n;
                out.emit(&ev);
                Ok(())
            }
            CommandView::Halt { instrument } => self.transition(
                instrument,
                InstrumentStatus::Trading,
                InstrumentStatus::Halted,
                out,
            ),
            CommandView::Resume { instrument } => self.transition(
                instrument,
                InstrumentStatus::Halted,
                InstrumentStatus::Trading,
                out,
            ),
            CommandView::Settle {
                instrument,
                outcome,
            } => self.settle(instrument, outcome, out),
            CommandView::TimerTick => {
                let due: Vec<(u64, u64)> = self.gtd.range(..(self.ts, u64::MAX)).copied().collect();
                for (expire, id) in due {
                    self.gtd.remove(&(expire, id));
                    if self.orders.get(&id).is_some_and(|o| o.expire == expire) {
                        self.cancel_order(id, CancelReason::Expired, out);
                    }
                }
                Ok(())
            }
            CommandView::StateDigest => {
                let mut ev = self.ev(EventKind::StateDigest);
                ev.words[1] = self.orders.len() as u64;
                ev.words[2] = self.accounts.len() as u64;
                ev.words[3] = self.instruments.len() as u64;
                out.emit(&ev);
                Ok(())
            }
        }
    }

    fn ack<S: EventSink>(
        &self,
        command: CommandKind,
        account: u32,
        instrument: u32,
        value: u64,
        out: &mut S,
    ) {
        let mut ev = self.ev(EventKind::Ack);
        ev.reason = command as u8;
        ev.account = account;
        ev.instrument = instrument;
        ev.words[0] = value;
        out.emit(&ev);
    }

    fn balance<S: EventSink>(&self, account: u32, asset: u16, out: &mut S) {
        let a = &self.accounts[&account];
        let mut ev = self.ev(EventKind::BalanceChanged);
        ev.account = account;
        ev.code = u32::from(asset);
        ev.words[0] = a.available.get(&asset).copied().unwrap_or(0) as i64 as u64;
        ev.words[1] = a.reserved.get(&asset).copied().unwrap_or(0) as i64 as u64;
        out.emit(&ev);
    }

    fn add_available(&mut self, account: u32, asset: u16, delta: i128) {
        *self
            .accounts
            .get_mut(&account)
            .expect("account")
            .available
            .entry(asset)
            .or_default() += delta;
    }

    fn add_reserved(&mut self, account: u32, asset: u16, delta: i128) {
        *self
            .accounts
            .get_mut(&account)
            .expect("account")
            .reserved
            .entry(asset)
            .or_default() += delta;
    }

    fn status_event<S: EventSink>(&self, instrument: u32, out: &mut S) {
        let inst = &self.instruments[&instrument];
        let mut ev = self.ev(EventKind::InstrumentStatusChanged);
        ev.instrument = instrument;
        ev.reason = inst.status as u8;
        ev.code = inst.spec.kind as u32;
        out.emit(&ev);
    }

    fn level_event<S: EventSink>(&self, instrument: u32, side: Side, price: i64, out: &mut S) {
        let queue = self.instruments[&instrument].levels[side as usize].get(&price);
        let mut ev = self.ev(EventKind::BookLevel);
        ev.instrument = instrument;
        ev.side = side as u8;
        ev.words[0] = price as u64;
        ev.words[1] = queue.map_or(0, |q| q.iter().map(|id| self.orders[id].leaves).sum());
        ev.words[2] = queue.map_or(0, |q| q.len() as u64);
        out.emit(&ev);
    }

    fn position_event<S: EventSink>(&self, account: u32, instrument: u32, out: &mut S) {
        let mut ev = self.ev(EventKind::PositionChanged);
        ev.account = account;
        ev.instrument = instrument;
        ev.words[0] = self.positions[&(account, instrument)].position as u64;
        ev.words[1] = self.instruments[&instrument].open_interest;
        out.emit(&ev);
    }

    fn add_instrument<S: EventSink>(&mut self, spec: InstrumentSpec, out: &mut S) -> R {
        if spec.id == 0 || spec.id >= self.config.max_instruments {
            return Err(RejectReason::CapacityExhausted);
        }
        if self.instruments.contains_key(&spec.id) {
            return Err(RejectReason::InstrumentExists);
        }
        let assets = self.config.max_assets;
        let valid = spec.tick_size > 0
            && spec.lot_size > 0
            && spec.min_price > 0
            && spec.max_price >= spec.min_price
            && spec.maker_fee_bps <= 10_000
            && spec.taker_fee_bps <= 10_000
            && spec.quote_asset < assets
            && spec.min_price % spec.tick_size == 0
            && spec.max_price % spec.tick_size == 0
            && match spec.kind {
                InstrumentKind::Binary => spec.max_price < BINARY_PAYOUT,
                InstrumentKind::Spot => {
                    spec.base_asset < assets && spec.base_asset != spec.quote_asset
                }
            }
            && ((spec.max_price - spec.min_price) / spec.tick_size + 1) as u64
                <= u64::from(self.config.max_price_levels);
        if !valid {
            return Err(RejectReason::InvalidInstrumentSpec);
        }
        self.instruments.insert(
            spec.id,
            Instrument {
                spec,
                status: InstrumentStatus::Trading,
                levels: Default::default(),
                stops: Default::default(),
                last_price: None,
                open_interest: 0,
                position_holders: Vec::new(),
            },
        );
        self.status_event(spec.id, out);
        Ok(())
    }

    fn funds<S: EventSink>(
        &mut self,
        account: u32,
        asset: u16,
        amount: u64,
        deposit: bool,
        out: &mut S,
    ) -> R {
        let acct = self
            .accounts
            .get(&account)
            .ok_or(RejectReason::UnknownAccount)?;
        if asset >= self.config.max_assets {
            return Err(RejectReason::InvalidAsset);
        }
        if amount == 0 || amount > i64::MAX as u64 {
            return Err(RejectReason::InvalidAmount);
        }
        let available = acct.available.get(&asset).copied().unwrap_or(0);
        let outstanding = self.outstanding.get(&asset).copied().unwrap_or(0);
        let amount_i = i128::from(amount);
        if deposit {
            if account == FEE_ACCOUNT {
                return Err(RejectReason::ReservedAccount);
            }
            if outstanding + amount_i > i128::from(i64::MAX) {
                return Err(RejectReason::InvalidAmount);
            }
            self.add_available(account, asset, amount_i);
            self.outstanding.insert(asset, outstanding + amount_i);
        } else {
            if available < amount_i {
                return Err(RejectReason::InsufficientFunds);
            }
            self.add_available(account, asset, -amount_i);
            self.outstanding.insert(asset, outstanding - amount_i);
        }
        let kind = if deposit {
            CommandKind::Deposit
        } else {
            CommandKind::Withdraw
        };
        self.ack(kind, account, u32::from(asset), amount, out);
        self.balance(account, asset, out);
        Ok(())
    }

    fn transition<S: EventSink>(
        &mut self,
        id: u32,
        from: InstrumentStatus,
        to: InstrumentStatus,
        out: &mut S,
    ) -> R {
        let inst = self
            .instruments
            .get_mut(&id)
            .ok_or(RejectReason::UnknownInstrument)?;
        if inst.status != from {
            return Err(RejectReason::InvalidStatusTransition);
        }
        inst.status = to;
        self.status_event(id, out);
        Ok(())
    }

    fn limits_check(
        &self,
        limits: &AccountLimits,
        spec: &InstrumentSpec,
        side: Side,
        price: i64,
        qty: u64,
        budget: u64,
    ) -> R {
        if limits.max_order_quantity != 0 && qty > limits.max_order_quantity {
            return Err(RejectReason::MaxOrderQuantityExceeded);
        }
        if limits.max_notional != 0 {
            let unit = match spec.kind {
                InstrumentKind::Binary => cost(side, price),
                InstrumentKind::Spot => i128::from(price),
            };
            let notional = if budget > 0 {
                i128::from(budget)
            } else {
                unit * i128::from(qty)
            };
            if notional > i128::from(limits.max_notional) {
                return Err(RejectReason::MaxNotionalExceeded);
            }
        }
        Ok(())
    }

    /// Reservation for an order, as if `existing` (reserved, covered, leaves) held nothing.
    #[allow(clippy::too_many_arguments)]
    fn plan(
        &self,
        account: u32,
        spec: &InstrumentSpec,
        side: Side,
        price: i64,
        leaves: u64,
        budget: u64,
        existing: (u64, u64, u64),
    ) -> R<Plan> {
        let acct = &self.accounts[&account];
        let asset = collateral_asset(spec, side);
        let (amount, covered) = match spec.kind {
            InstrumentKind::Binary => {
                let pos = match self.positions.get(&(account, spec.id)) {
                    Some(p) => p.clone(),
                    None if self.positions.len() >= self.config.max_positions as usize => {
                        return Err(RejectReason::CapacityExhausted)
                    }
                    None => Position::default(),
                };
                if acct.limits.max_position != 0 {
                    let exposure = if side == Side::Buy {
                        pos.position
                    } else {
                        -pos.position
                    };
                    let worst = i128::from(exposure)
                        + i128::from(pos.open_qty[side as usize] - existing.2)
                        + i128::from(leaves);
                    if worst > i128::from(acct.limits.max_position) {
                        return Err(RejectReason::MaxPositionExceeded);
                    }
                }
                let free =
                    closable(pos.position, side) - (pos.committed[side as usize] - existing.1);
                let covered = leaves.min(free);
                (
                    i128::from(leaves - covered) * unit_reserve(spec, side, price),
                    covered,
                )
            }
            InstrumentKind::Spot => match side {
                Side::Buy if budget > 0 => (i128::from(budget), 0),
                Side::Buy => (i128::from(price) * i128::from(leaves), 0),
                Side::Sell => (i128::from(leaves), 0),
            },
        };
        if amount > i128::from(i64::MAX) {
            return Err(RejectReason::InsufficientFunds);
        }
        let available = acct.available.get(&asset).copied().unwrap_or(0) + i128::from(existing.0);
        if amount > available {
            return Err(RejectReason::InsufficientFunds);
        }
        Ok(Plan {
            asset,
            amount: amount as u64,
            covered,
        })
    }

    fn new_order<S: EventSink>(&mut self, o: OrderSpec, out: &mut S) -> R {
        let inst = self
            .instruments
            .get(&o.instrument)
            .ok_or(RejectReason::UnknownInstrument)?;
        let spec = inst.spec;
        match inst.status {
            InstrumentStatus::Halted => return Err(RejectReason::InstrumentHalted),
            InstrumentStatus::Closed => return Err(RejectReason::InstrumentClosed),
            InstrumentStatus::Trading => {}
        }
        if o.account == FEE_ACCOUNT {
            return Err(RejectReason::ReservedAccount);
        }
        let acct = self
            .accounts
            .get(&o.account)
            .ok_or(RejectReason::UnknownAccount)?;
        if self.global_kill || acct.kill_switch {
            return Err(RejectReason::KillSwitchActive);
        }
        let stop = matches!(o.order_type, OrderType::StopMarket | OrderType::StopLimit);
        let market = matches!(o.order_type, OrderType::Market | OrderType::StopMarket);
        let resting_tif = matches!(o.time_in_force, TimeInForce::Gtc | TimeInForce::Gtd);
        if o.order_type == OrderType::Market && resting_tif {
            return Err(RejectReason::InvalidTimeInForce);
        }
        let budget = o.quote_budget;
        if budget > 0
            && !(spec.kind == InstrumentKind::Spot
                && o.order_type == OrderType::Market
                && o.side == Side::Buy
                && o.time_in_force == TimeInForce::Ioc
                && o.price == 0)
        {
            return Err(RejectReason::BudgetOnlyForSpotMarketBuy);
        }
        if o.post_only
            && (!matches!(o.order_type, OrderType::Limit | OrderType::StopLimit) || !resting_tif)
        {
            return Err(RejectReason::InvalidOrderCombination);
        }
        let (side, price) = if market && o.price == 0 {
            let (side, _) = to_book(&spec, o.side, o.outcome, 0)?;
            if spec.kind == InstrumentKind::Spot && side == Side::Buy && budget == 0 {
                return Err(RejectReason::InvalidOrderCombination);
            }
            (
                side,
                if side == Side::Buy {
                    spec.max_price
                } else {
                    spec.min_price
                },
            )
        } else {
            let (side, price) = to_book(&spec, o.side, o.outcome, o.price)?;
            on_grid(
                &spec,
                price,
                RejectReason::PriceNotOnTick,
                RejectReason::InvalidPrice,
            )?;
            (side, price)
        };
        let stop_price = if stop {
            let (_, s) = to_book(&spec, o.side, o.outcome, o.stop_price)?;
            on_grid(
                &spec,
                s,
                RejectReason::InvalidStopPrice,
                RejectReason::InvalidStopPrice,
            )?;
            s
        } else {
            0
        };
        if o.quantity == 0 {
            return Err(RejectReason::InvalidQuantity);
        }
        if o.quantity % spec.lot_size != 0 {
            return Err(RejectReason::QuantityNotOnLot);
        }
        let expire = if o.time_in_force == TimeInForce::Gtd {
            if o.expire_time <= self.ts {
                return Err(RejectReason::ExpireTimeInPast);
            }
            o.expire_time
        } else {
            0
        };
        let plan = if self.risk() {
            let limits = acct.limits;
            self.limits_check(&limits, &spec, side, price, o.quantity, budget)?;
            if (stop || resting_tif)
                && limits.max_open_orders != 0
                && acct.orders.len() as u32 >= limits.max_open_orders
            {
                return Err(RejectReason::MaxOpenOrdersExceeded);
            }
            Some(self.plan(o.account, &spec, side, price, o.quantity, budget, (0, 0, 0))?)
        } else {
            None
        };
        if self.orders.len() >= self.config.max_orders as usize {
            return Err(RejectReason::OrderCapacityExhausted);
        }
        if o.post_only
            && !stop
            && self
                .best(o.instrument, side.opposite())
                .is_some_and(|b| crosses(side, price, b))
        {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        // The duplicate check comes last, as in the engine.
        if o.client_order_id != 0
            && self
                .client_ids
                .contains_key(&(o.account, o.client_order_id))
        {
            return Err(RejectReason::DuplicateClientOrderId);
        }

        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.fresh_slot += 1;
            self.fresh_slot - 1
        });
        let id = (self.order_seq << ORDER_SLOT_BITS) | slot;
        self.order_seq += 1;
        self.slot_of.insert(id, slot);
        self.orders.insert(
            id,
            Order {
                id,
                client_id: o.client_order_id,
                account: o.account,
                instrument: o.instrument,
                side,
                outcome: o.outcome,
                order_type: o.order_type,
                tif: o.time_in_force,
                post_only: o.post_only,
                stp: o.stp,
                price,
                stop_price,
                quantity: o.quantity,
                leaves: o.quantity,
                filled: 0,
                expire,
                budget: budget > 0,
                reserved: 0,
                covered: 0,
                converted: 0,
                state: if stop {
                    State::PendingStop
                } else {
                    State::Taking
                },
            },
        );
        if o.client_order_id != 0 {
            self.client_ids.insert((o.account, o.client_order_id), id);
        }
        self.accounts
            .get_mut(&o.account)
            .expect("checked")
            .orders
            .insert(id);
        if expire != 0 {
            self.gtd.insert((expire, id));
        }
        let mut ev = self.ev(EventKind::OrderAccepted);
        ev.instrument = o.instrument;
        ev.account = o.account;
        ev.side = side as u8;
        ev.words[0] = id;
        ev.words[1] = o.client_order_id;
        ev.words[2] = price as u64;
        ev.words[3] = o.quantity;
        ev.words[4] = stop_price as u64;
        ev.words[5] = if expire != 0 { expire } else { budget };
        ev.words[6] = u64::from(o.order_type as u8)
            | u64::from(o.time_in_force as u8) << 8
            | u64::from(u8::from(o.post_only)) << 16
            | u64::from(o.stp as u8) << 24
            | u64::from(o.outcome as u8) << 32;
        out.emit(&ev);
        match plan {
            Some(plan) => self.reserve(id, plan, out),
            None if budget > 0 => self.orders.get_mut(&id).expect("new").reserved = budget,
            None => {}
        }
        if stop {
            let inst = self.instruments.get_mut(&o.instrument).expect("checked");
            inst.stops[side as usize]
                .entry(stop_price)
                .or_default()
                .push_back(id);
        } else {
            self.execute(id, out);
        }
        self.trigger_stops(o.instrument, out);
        Ok(())
    }

    fn ensure_position(&mut self, account: u32, instrument: u32) {
        if let std::collections::hash_map::Entry::Vacant(slot) =
            self.positions.entry((account, instrument))
        {
            slot.insert(Position::default());
            self.instruments
                .get_mut(&instrument)
                .expect("exists")
                .position_holders
                .push(account);
        }
    }

    fn reserve<S: EventSink>(&mut self, id: u64, plan: Plan, out: &mut S) {
        let o = self.orders.get_mut(&id).expect("live");
        o.reserved = plan.amount;
        o.covered = plan.covered;
        o.converted = 0;
        let (account, instrument, side, leaves) = (o.account, o.instrument, o.side, o.leaves);
        if self.instruments[&instrument].spec.kind == InstrumentKind::Binary {
            self.ensure_position(account, instrument);
            let p = self
                .positions
                .get_mut(&(account, instrument))
                .expect("ensured");
            p.committed[side as usize] += plan.covered;
            p.open_qty[side as usize] += leaves;
        }
        if plan.amount > 0 {
            self.add_available(account, plan.asset, -i128::from(plan.amount));
            self.add_reserved(account, plan.asset, i128::from(plan.amount));
            self.balance(account, plan.asset, out);
        }
    }

    fn release<S: EventSink>(&mut self, id: u64, out: &mut S) {
        let o = self.orders[&id].clone();
        let spec = self.instruments[&o.instrument].spec;
        if let Some(p) = self.positions.get_mut(&(o.account, o.instrument)) {
            p.committed[o.side as usize] -= o.covered;
            p.open_qty[o.side as usize] -= o.leaves;
        }
        let om = self.orders.get_mut(&id).expect("live");
        om.reserved = 0;
        om.covered = 0;
        om.converted = 0;
        if o.reserved > 0 {
            let asset = collateral_asset(&spec, o.side);
            self.add_available(o.account, asset, i128::from(o.reserved));
            self.add_reserved(o.account, asset, -i128::from(o.reserved));
            self.balance(o.account, asset, out);
        }
    }

    fn best(&self, instrument: u32, side: Side) -> Option<i64> {
        let levels = &self.instruments[&instrument].levels[side as usize];
        match side {
            Side::Buy => levels.keys().next_back().copied(),
            Side::Sell => levels.keys().next().copied(),
        }
    }

    fn execute<S: EventSink>(&mut self, id: u64, out: &mut S) {
        if self.orders[&id].tif == TimeInForce::Fok && !self.fok_fillable(id) {
            return self.cancel_order(id, CancelReason::FokUnfilled, out);
        }
        let end = self.match_order(id, out);
        let o = &self.orders[&id];
        if o.leaves == 0 {
            return self.retire(id, out);
        }
        let market = matches!(o.order_type, OrderType::Market | OrderType::StopMarket);
        let immediate = matches!(o.tif, TimeInForce::Ioc | TimeInForce::Fok);
        match end {
            End::SelfTrade => self.cancel_order(id, CancelReason::SelfTrade, out),
            End::Budget => self.cancel_order(id, CancelReason::BudgetExhausted, out),
            End::Done if market || immediate => {
                self.cancel_order(id, CancelReason::IocRemainder, out)
            }
            End::Done => {
                let o = self.orders.get_mut(&id).expect("live");
                o.state = State::Resting;
                let (instrument, side, price) = (o.instrument, o.side, o.price);
                let inst = self.instruments.get_mut(&instrument).expect("exists");
                inst.levels[side as usize]
                    .entry(price)
                    .or_default()
                    .push_back(id);
                self.level_event(instrument, side, price, out);
            }
        }
    }

    /// Makers the taker would meet, best price first, FIFO within a price.
    fn crossing_makers(&self, taker: &Order) -> Vec<u64> {
        let levels = &self.instruments[&taker.instrument].levels[taker.side.opposite() as usize];
        let queues: Box<dyn Iterator<Item = (&i64, &VecDeque<u64>)>> = match taker.side {
            Side::Buy => Box::new(levels.iter()),
            Side::Sell => Box::new(levels.iter().rev()),
        };
        queues
            .take_while(|(price, _)| crosses(taker.side, taker.price, **price))
            .flat_map(|(_, q)| q.iter().copied())
            .collect()
    }

    fn fok_fillable(&self, id: u64) -> bool {
        let taker = &self.orders[&id];
        let mut available = 0u64;
        for maker_id in self.crossing_makers(taker) {
            let maker = &self.orders[&maker_id];
            if taker.stp != SelfTradePrevention::None && maker.account == taker.account {
                if taker.stp == SelfTradePrevention::CancelMaker {
                    continue;
                }
                break;
            }
            available += maker.leaves;
        }
        available >= taker.leaves
    }

    fn match_order<S: EventSink>(&mut self, id: u64, out: &mut S) -> End {
        loop {
            let taker = self.orders[&id].clone();
            if taker.leaves == 0 {
                return End::Done;
            }
            let Some(price) = self.best(taker.instrument, taker.side.opposite()) else {
                return End::Done;
            };
            if !crosses(taker.side, taker.price, price) {
                return End::Done;
            }
            let maker_id = self.instruments[&taker.instrument].levels
                [taker.side.opposite() as usize][&price][0];
            let maker = self.orders[&maker_id].clone();
            if taker.stp != SelfTradePrevention::None && maker.account == taker.account {
                match taker.stp {
                    SelfTradePrevention::CancelTaker => return End::SelfTrade,
                    SelfTradePrevention::CancelMaker => {
                        self.cancel_order(maker_id, CancelReason::SelfTrade, out);
                        continue;
                    }
                    _ => {
                        self.cancel_order(maker_id, CancelReason::SelfTrade, out);
                        return End::SelfTrade;
                    }
                }
            }
            let mut qty = taker.leaves.min(maker.leaves);
            if taker.budget {
                let lot = self.instruments[&taker.instrument].spec.lot_size;
                let affordable = taker.reserved / price as u64;
                qty = qty.min(affordable / lot * lot);
                if qty == 0 {
                    return End::Budget;
                }
            }
            self.fill(maker_id, id, price, qty, out);
        }
    }

    fn fill<S: EventSink>(
        &mut self,
        maker_id: u64,
        taker_id: u64,
        price: i64,
        qty: u64,
        out: &mut S,
    ) {
        for id in [maker_id, taker_id] {
            let o = self.orders.get_mut(&id).expect("live");
            o.leaves -= qty;
            o.filled += qty;
        }
        let maker = self.orders[&maker_id].clone();
        let taker = self.orders[&taker_id].clone();
        let spec = self.instruments[&taker.instrument].spec;
        let (maker_fee, taker_fee) = if self.risk() {
            (
                fee(&spec, maker.side, price, qty, spec.maker_fee_bps),
                fee(&spec, taker.side, price, qty, spec.taker_fee_bps),
            )
        } else {
            (0, 0)
        };
        let mut ev = self.ev(EventKind::Trade);
        ev.instrument = taker.instrument;
        ev.side = taker.side as u8;
        ev.account = taker.account;
        ev.code = maker.account;
        ev.words = [
            self.next_trade_id,
            maker.id,
            taker.id,
            price as u64,
            qty,
            maker_fee as u64,
            taker_fee as u64,
            maker.leaves,
            taker.leaves,
        ];
        self.next_trade_id += 1;
        out.emit(&ev);
        let inst = self.instruments.get_mut(&taker.instrument).expect("exists");
        inst.last_price = Some(price);
        if maker.leaves == 0 {
            let queue = inst.levels[maker.side as usize]
                .get_mut(&price)
                .expect("maker level");
            queue.retain(|x| *x != maker_id);
            if queue.is_empty() {
                inst.levels[maker.side as usize].remove(&price);
            }
        }
        self.level_event(taker.instrument, maker.side, price, out);
        if self.risk() {
            self.settle_side(maker_id, price, qty, maker_fee, out);
            self.settle_side(taker_id, price, qty, taker_fee, out);
        } else if taker.budget {
            self.orders.get_mut(&taker_id).expect("live").reserved -= price as u64 * qty;
        }
        if maker.leaves == 0 {
            self.retire(maker_id, out);
        }
    }

    fn settle_side<S: EventSink>(&mut self, id: u64, price: i64, qty: u64, fee: i128, out: &mut S) {
        let o = self.orders[&id].clone();
        let spec = self.instruments[&o.instrument].spec;
        let q = i128::from(qty);
        match spec.kind {
            InstrumentKind::Binary => {
                let from_cover = qty.min(o.covered);
                let from_converted = (qty - from_cover).min(o.converted);
                let uncovered = qty - from_cover - from_converted;
                let release = i128::from(from_converted) * 100
                    + i128::from(uncovered) * unit_reserve(&spec, o.side, o.price);
                {
                    let om = self.orders.get_mut(&id).expect("live");
                    om.covered -= from_cover;
                    om.converted -= from_converted;
                    om.reserved -= release as u64;
                }
                let key = (o.account, o.instrument);
                let p = self.positions.get_mut(&key).expect("position");
                p.committed[o.side as usize] -= from_cover;
                p.open_qty[o.side as usize] -= qty;
                let netted = qty.min(closable(p.position, o.side));
                let long_before = p.position.max(0);
                p.position += if o.side == Side::Buy {
                    qty as i64
                } else {
                    -(qty as i64)
                };
                let long_after = p.position.max(0);
                let excess =
                    p.committed[o.side as usize].saturating_sub(closable(p.position, o.side));
                let inst = self.instruments.get_mut(&o.instrument).expect("exists");
                inst.open_interest = (inst.open_interest as i64 + long_after - long_before) as u64;
                let asset = spec.quote_asset;
                let cash = release - cost(o.side, price) * q - fee + 100 * i128::from(netted)
                    - 100 * i128::from(excess);
                self.add_available(o.account, asset, cash);
                self.add_reserved(o.account, asset, 100 * i128::from(excess) - release);
                if excess > 0 {
                    // Netting consumed position other orders had committed: their
                    // cover becomes cash held at 100 per contract, oldest order first.
                    self.positions.get_mut(&key).expect("position").committed[o.side as usize] -=
                        excess;
                    let mut left = excess;
                    let ids: Vec<u64> = self.accounts[&o.account].orders.iter().copied().collect();
                    for other in ids {
                        let x = self.orders.get_mut(&other).expect("live");
                        if left > 0
                            && x.instrument == o.instrument
                            && x.side == o.side
                            && x.covered > 0
                        {
                            let moved = x.covered.min(left);
                            x.covered -= moved;
                            x.converted += moved;
                            x.reserved += moved * 100;
                            left -= moved;
                        }
                    }
                }
                if fee > 0 {
                    self.add_available(FEE_ACCOUNT, asset, fee);
                }
                self.balance(o.account, asset, out);
                if fee > 0 {
                    self.balance(FEE_ACCOUNT, asset, out);
                }
                self.position_event(o.account, o.instrument, out);
            }
            InstrumentKind::Spot => {
                let (base, quote) = (spec.base_asset, spec.quote_asset);
                let notional = i128::from(price) * q;
                if o.side == Side::Buy {
                    let release = if o.budget {
                        notional
                    } else {
                        i128::from(o.price) * q
                    };
                    self.orders.get_mut(&id).expect("live").reserved -= release as u64;
                    self.add_reserved(o.account, quote, -release);
                    self.add_available(o.account, quote, release - notional);
                    self.add_available(o.account, base, q - fee);
                    if fee > 0 {
                        self.add_available(FEE_ACCOUNT, base, fee);
                    }
                } else {
                    self.orders.get_mut(&id).expect("live").reserved -= qty;
                    self.add_reserved(o.account, base, -q);
                    self.add_available(o.account, quote, notional - fee);
                    if fee > 0 {
                        self.add_available(FEE_ACCOUNT, quote, fee);
                    }
                }
                self.balance(o.account, base, out);
                self.balance(o.account, quote, out);
                if fee > 0 {
                    self.balance(
                        FEE_ACCOUNT,
                        if o.side == Side::Buy { base } else { quote },
                        out,
                    );
                }
            }
        }
    }

    fn trigger_stops<S: EventSink>(&mut self, instrument: u32, out: &mut S) {
        loop {
            let Some(inst) = self.instruments.get(&instrument) else {
                return;
            };
            if inst.status != InstrumentStatus::Trading {
                return;
            }
            let Some(last) = inst.last_price else { return };
            let buy = inst.stops[Side::Buy as usize]
                .iter()
                .next()
                .filter(|(s, _)| **s <= last);
            let sell = inst.stops[Side::Sell as usize]
                .iter()
                .next_back()
                .filter(|(s, _)| **s >= last);
            let (side, stop) = match (buy, sell) {
                (Some((s, _)), _) => (Side::Buy, *s),
                (None, Some((s, _))) => (Side::Sell, *s),
                (None, None) => return,
            };
            let inst = self.instruments.get_mut(&instrument).expect("exists");
            let queue = inst.stops[side as usize].get_mut(&stop).expect("level");
            let id = queue.pop_front().expect("non-empty");
            if queue.is_empty() {
                inst.stops[side as usize].remove(&stop);
            }
            let o = self.orders.get_mut(&id).expect("live");
            o.state = State::Taking;
            let o = o.clone();
            let mut ev = self.ev(EventKind::StopTriggered);
            ev.instrument = instrument;
            ev.account = o.account;
            ev.words[0] = o.id;
            ev.words[1] = o.client_id;
            ev.words[2] = o.stop_price as u64;
            ev.words[3] = last as u64;
            out.emit(&ev);
            if o.post_only
                && self
                    .best(instrument, o.side.opposite())
                    .is_some_and(|b| crosses(o.side, o.price, b))
            {
                self.cancel_order(id, CancelReason::PostOnlyWouldCross, out);
            } else {
                self.execute(id, out);
            }
        }
    }

    fn cancel_order<S: EventSink>(&mut self, id: u64, reason: CancelReason, out: &mut S) {
        let o = self.orders[&id].clone();
        let mut ev = self.ev(EventKind::OrderCancelled);
        ev.instrument = o.instrument;
        ev.account = o.account;
        ev.reason = reason as u8;
        ev.side = o.side as u8;
        ev.words[0] = o.id;
        ev.words[1] = o.client_id;
        ev.words[2] = o.leaves;
        ev.words[3] = o.filled;
        out.emit(&ev);
        let inst = self.instruments.get_mut(&o.instrument).expect("exists");
        let (book, key) = match o.state {
            State::Resting => (&mut inst.levels[o.side as usize], o.price),
            State::PendingStop => (&mut inst.stops[o.side as usize], o.stop_price),
            State::Taking => return self.retire(id, out),
        };
        let queue = book.get_mut(&key).expect("order's level");
        queue.retain(|x| *x != id);
        if queue.is_empty() {
            book.remove(&key);
        }
        if o.state == State::Resting {
            // The level total is taken before the order is retired, with its leaves gone.
            self.level_event(o.instrument, o.side, o.price, out);
        }
        self.retire(id, out);
    }

    fn retire<S: EventSink>(&mut self, id: u64, out: &mut S) {
        if self.risk() {
            self.release(id, out);
        }
        let o = self.orders.remove(&id).expect("live");
        let slot = self.slot_of.remove(&id).expect("live order has a slot");
        self.free_slots.push(slot);
        self.accounts
            .get_mut(&o.account)
            .expect("account")
            .orders
            .remove(&id);
        self.finish_client_id(o.account, o.client_id);
    }

    fn finish_client_id(&mut self, account: u32, client_id: u64) {
        if client_id == 0 {
            return;
        }
        if self.finished.len() == self.config.dedup_window.max(1) as usize {
            let oldest = self.finished.pop_front().expect("full");
            self.client_ids.remove(&oldest);
        }
        self.finished.push_back((account, client_id));
    }

    fn resolve(&self, account: u32, order_id: u64, client_order_id: u64) -> R<u64> {
        let id = if order_id != 0 {
            order_id
        } else if client_order_id == 0 {
            return Err(RejectReason::UnknownOrder);
        } else {
            let id = *self
                .client_ids
                .get(&(account, client_order_id))
                .ok_or(RejectReason::UnknownOrder)?;
            return match self.orders.get(&id) {
                Some(o) if o.client_id == client_order_id => Ok(id),
                _ => Err(RejectReason::TooLate),
            };
        };
        match self.orders.get(&id) {
            Some(o) if o.account == account => Ok(id),
            Some(_) => Err(RejectReason::UnknownOrder),
            None if (1..self.order_seq).contains(&(id >> ORDER_SLOT_BITS)) => {
                Err(RejectReason::TooLate)
            }
            None => Err(RejectReason::UnknownOrder),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn replace<S: EventSink>(
        &mut self,
        account: u32,
        order_id: u64,
        orig: u64,
        new_client: u64,
        new_price: i64,
        new_qty: u64,
        out: &mut S,
    ) -> R {
        let id = self.resolve(account, order_id, orig)?;
        let o = self.orders[&id].clone();
        if o.state != State::Resting {
            return Err(RejectReason::ReplaceNotAllowed);
        }
        let inst = &self.instruments[&o.instrument];
        let spec = inst.spec;
        match inst.status {
            InstrumentStatus::Halted => return Err(RejectReason::InstrumentHalted),
            InstrumentStatus::Closed => return Err(RejectReason::InstrumentClosed),
            InstrumentStatus::Trading => {}
        }
        let (_, price) = to_book(&spec, Side::Buy, o.outcome, new_price)?;
        on_grid(
            &spec,
            price,
            RejectReason::PriceNotOnTick,
            RejectReason::InvalidPrice,
        )?;
        if new_qty == 0 {
            return Err(RejectReason::InvalidQuantity);
        }
        if new_qty % spec.lot_size != 0 {
            return Err(RejectReason::QuantityNotOnLot);
        }
        if new_qty <= o.filled {
            return Err(RejectReason::ReplaceQuantityTooLow);
        }
        let new_client = if new_client == 0 {
            o.client_id
        } else {
            new_client
        };
        let moved = price != o.price;
        if o.post_only
            && moved
            && self
                .best(o.instrument, o.side.opposite())
                .is_some_and(|b| crosses(o.side, price, b))
        {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        let leaves = new_qty - o.filled;
        let plan = if self.risk() {
            let limits = self.accounts[&account].limits;
            self.limits_check(&limits, &spec, o.side, price, new_qty, 0)?;
            Some(self.plan(
                account,
                &spec,
                o.side,
                price,
                leaves,
                0,
                (o.reserved, o.covered, o.leaves),
            )?)
        } else {
            None
        };
        // The duplicate check comes last, as in the engine.
        if new_client != o.client_id && self.client_ids.contains_key(&(account, new_client)) {
            return Err(RejectReason::DuplicateClientOrderId);
        }

        let keep_priority = !moved && new_qty <= o.quantity;
        if new_client != o.client_id {
            self.finish_client_id(account, o.client_id);
            self.client_ids.insert((account, new_client), id);
        }
        let mut ev = self.ev(EventKind::OrderReplaced);
        ev.instrument = o.instrument;
        ev.account = account;
        ev.side = o.side as u8;
        ev.words[..7].copy_from_slice(&[
            id,
            new_client,
            o.client_id,
            price as u64,
            new_qty,
            leaves,
            u64::from(keep_priority),
        ]);
        out.emit(&ev);
        if !keep_priority {
            let inst = self.instruments.get_mut(&o.instrument).expect("exists");
            let queue = inst.levels[o.side as usize]
                .get_mut(&o.price)
                .expect("level");
            queue.retain(|x| *x != id);
            if queue.is_empty() {
                inst.levels[o.side as usize].remove(&o.price);
            }
            self.level_event(o.instrument, o.side, o.price, out);
        }
        {
            let om = self.orders.get_mut(&id).expect("live");
            om.price = price;
            om.quantity = new_qty;
            om.leaves = leaves;
            om.client_id = new_client;
        }
        if let Some(plan) = plan {
            {
                let om = self.orders.get_mut(&id).expect("live");
                om.reserved = plan.amount;
                om.covered = plan.covered;
                om.converted = 0;
            }
            if let Some(p) = self.positions.get_mut(&(account, o.instrument)) {
                p.committed[o.side as usize] =
                    p.committed[o.side as usize] - o.covered + plan.covered;
                p.open_qty[o.side as usize] = p.open_qty[o.side as usize] - o.leaves + leaves;
            }
            if plan.amount != o.reserved {
                let delta = i128::from(plan.amount) - i128::from(o.reserved);
                self.add_available(account, plan.asset, -delta);
                self.add_reserved(account, plan.asset, delta);
                self.balance(account, plan.asset, out);
            }
        }
        if keep_priority {
            self.level_event(o.instrument, o.side, price, out);
        } else {
            self.orders.get_mut(&id).expect("live").state = State::Taking;
            self.execute(id, out);
            self.trigger_stops(o.instrument, out);
        }
        Ok(())
    }

    fn cancel_account<S: EventSink>(
        &mut self,
        account: u32,
        instrument: Option<u32>,
        reason: CancelReason,
        out: &mut S,
    ) -> u64 {
        let ids: Vec<u64> = self
            .accounts
            .get(&account)
            .map_or(Vec::new(), |a| a.orders.iter().copied().collect());
        let mut n = 0;
        for id in ids {
            if instrument.is_none_or(|i| self.orders[&id].instrument == i) {
                self.cancel_order(id, reason, out);
                n += 1;
            }
        }
        n
    }

    fn settle<S: EventSink>(&mut self, instrument: u32, outcome: Leg, out: &mut S) -> R {
        let inst = self
            .instruments
            .get(&instrument)
            .ok_or(RejectReason::UnknownInstrument)?;
        if inst.spec.kind != InstrumentKind::Binary {
            return Err(RejectReason::NotBinaryMarket);
        }
        if inst.status == InstrumentStatus::Closed {
            return Err(RejectReason::InstrumentClosed);
        }
        if outcome == Leg::None {
            return Err(RejectReason::InvalidOutcome);
        }
        // Resting orders best price first, then stops lowest stop price first.
        for side in [Side::Buy, Side::Sell] {
            while let Some(price) = self.best(instrument, side) {
                let id = self.instruments[&instrument].levels[side as usize][&price][0];
                self.cancel_order(id, CancelReason::Settlement, out);
            }
        }
        for side in [Side::Buy, Side::Sell] {
            while let Some((_, q)) = self.instruments[&instrument].stops[side as usize]
                .iter()
                .next()
            {
                let id = q[0];
                self.cancel_order(id, CancelReason::Settlement, out);
            }
        }
        let inst = &self.instruments[&instrument];
        let (open_interest, asset) = (inst.open_interest, inst.spec.quote_asset);
        let mut paid = 0u64;
        for account in inst.position_holders.clone() {
            let position = self.positions[&(account, instrument)].position;
            if position == 0 {
                continue;
            }
            let winning = if outcome == Leg::Yes {
                position.max(0)
            } else {
                (-position).max(0)
            };
            self.positions
                .get_mut(&(account, instrument))
                .expect("holder")
                .position = 0;
            if winning > 0 {
                self.add_available(account, asset, i128::from(winning) * 100);
                paid += winning as u64 * 100;
            }
            self.instruments
                .get_mut(&instrument)
                .expect("exists")
                .open_interest -= position.max(0) as u64;
            self.position_event(account, instrument, out);
            if winning > 0 {
                self.balance(account, asset, out);
            }
        }
        self.instruments
            .get_mut(&instrument)
            .expect("exists")
            .status = InstrumentStatus::Closed;
        self.status_event(instrument, out);
        let mut ev = self.ev(EventKind::MarketSettled);
        ev.instrument = instrument;
        ev.reason = outcome as u8;
        ev.words[0] = open_interest;
        ev.words[1] = paid;
        out.emit(&ev);
        Ok(())
    }
}
