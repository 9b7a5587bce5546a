//! Balances, binary positions, order reservations and fill settlement.
//!
//! # Binary contracts
//!
//! Cash is in cents of the market's quote asset. An account's position is
//! signed: `+n` YES or `-n` NO. Every order on the normalised YES book is
//! split into three parts, consumed in this order by fills:
//!
//! - **covered**: closes part of the position that no other open order has
//!   committed (an ask against a YES holding, a bid against a NO holding);
//!   it needs no cash.
//! - **converted**: was covered, but a fill of another order netted the
//!   position it was closing; the netting paid 100 per contract, which now
//!   sits reserved for this order (100 per contract).
//! - **uncovered**: reserves its full cost plus the worst fee it can pay —
//!   `cost(L) + ceil(min(cost(L), 50) x max_fee_bps / 10000)` per contract,
//!   where `cost(L)` is `L` for a bid and `100 - L` for an ask.
//!
//! Settling a fill of `q` at price `P` for one side: it pays `cost(P) x q`
//! and a fee of `q x ceil(min(P, 100 - P) x bps / 10000)`, and every
//! contract that nets against an opposite holding pays back 100 (a YES and a
//! NO held together are worth exactly 100). The unit reservation bounds the
//! cost plus fee of every contract, so balances never go negative.
//! Conservation, per cash asset: deposits - withdrawals = sum(available) +
//! sum(reserved) + 100 x open interest (fees land in the fee account).
//!
//! # Spot
//!
//! A bid reserves `price x quantity` of QUOTE (a market buy reserves its
//! quote budget); an ask reserves `quantity` of BASE. A fill at a better
//! price releases the difference. Fees are taken from what each side
//! receives — the buyer's in BASE, the seller's in QUOTE, `ceil(amount x
//! bps / 10000)` — so they never need reserving. Conservation per asset:
//! deposits - withdrawals = sum(available) + sum(reserved).
//!
//! Single writer: the engine thread.

use super::orders::{Order, NIL};
use super::{Engine, Outcome, Position, BINARY_PAYOUT, FEE_ACCOUNT};
use crate::records::{EventKind, EventSink, InstrumentKind, InstrumentSpec, RejectReason, Side};

/// Cost per contract of a binary order's side at YES price `price`.
#[inline]
pub(crate) fn binary_cost(side: Side, price: i64) -> i64 {
    match side {
        Side::Buy => price,
        Side::Sell => BINARY_PAYOUT - price,
    }
}

/// Fee per contract on a binary fill at YES price `price`.
#[inline]
pub(crate) fn binary_fee_per_contract(price: i64, bps: u16) -> u64 {
    let basis = price.min(BINARY_PAYOUT - price).max(0) as u64;
    (basis * u64::from(bps)).div_ceil(10_000)
}

/// Cash reserved per uncovered contract of a binary order at limit `limit`.
#[inline]
pub(crate) fn binary_unit_reserve(spec: &InstrumentSpec, side: Side, limit: i64) -> u64 {
    let cost = binary_cost(side, limit);
    let worst_fee_basis = cost.min(BINARY_PAYOUT / 2) as u64;
    let bps = spec.maker_fee_bps.max(spec.taker_fee_bps);
    cost as u64 + (worst_fee_basis * u64::from(bps)).div_ceil(10_000)
}

/// Fee one side of a fill pays (binary: cash; spot buyer: BASE; spot seller: QUOTE).
#[inline]
pub(crate) fn fill_fee(spec: &InstrumentSpec, side: Side, price: i64, qty: u64, bps: u16) -> u64 {
    if bps == 0 {
        return 0;
    }
    match spec.kind {
        InstrumentKind::Binary => qty * binary_fee_per_contract(price, bps),
        InstrumentKind::Spot => {
            let basis = match side {
                Side::Buy => u128::from(qty),
                Side::Sell => price as u128 * u128::from(qty),
            };
            (basis * u128::from(bps)).div_ceil(10_000) as u64
        }
    }
}

/// The asset an order on `side` of `spec` reserves.
#[inline]
pub(crate) fn collateral_asset(spec: &InstrumentSpec, side: Side) -> u16 {
    match (spec.kind, side) {
        (InstrumentKind::Spot, Side::Sell) => spec.base_asset,
        _ => spec.quote_asset,
    }
}

#[inline]
fn closable(position: i64, side: Side) -> u64 {
    match side {
        Side::Buy => (-position).max(0) as u64,
        Side::Sell => position.max(0) as u64,
    }
}

/// What an order will hold while it lives.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Reservation {
    pub(crate) asset: u16,
    pub(crate) amount: u64,
    pub(crate) covered: u64,
}

/// The order whose reservation a plan replaces (for cancel/replace).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Existing {
    pub(crate) reserved: u64,
    pub(crate) covered: u64,
    pub(crate) leaves: u64,
}

impl Engine {
    /// Looks up the position record of (account, instrument) without creating it.
    #[inline]
    pub(crate) fn position_slot(&self, account: u32, instrument: u32) -> Option<u32> {
        self.position_index.get((account, u64::from(instrument)))
    }

    /// Plans the reservation of an order, as if `existing` (the order being
    /// replaced) held nothing. Checks funds and the max-position limit; changes nothing.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    pub(crate) fn plan_reservation(
        &self,
        account: u32,
        spec: &InstrumentSpec,
        side: Side,
        price: i64,
        leaves: u64,
        budget: u64,
        existing: Existing,
    ) -> Outcome<Reservation> {
        let asset = collateral_asset(spec, side);
        let acct = self.account(account).ok_or(RejectReason::UnknownAccount)?;
        let (amount, covered) = match spec.kind {
            InstrumentKind::Binary => {
                let (position, committed, open_qty) = match self.position_slot(account, spec.id) {
                    Some(slot) => {
                        let p = &self.positions[slot as usize];
                        (
                            p.position,
                            p.committed[side as usize],
                            p.open_qty[side as usize],
                        )
                    }
                    None => {
                        if self.positions.len() >= self.config.max_positions as usize {
                            return Err(RejectReason::CapacityExhausted);
                        }
                        (0, 0, 0)
                    }
                };
                let max_position = acct.limits.max_position;
                if max_position != 0 {
                    let same_side_exposure = match side {
                        Side::Buy => position,
                        Side::Sell => -position,
                    };
                    let worst = i128::from(same_side_exposure)
                        + i128::from(open_qty - existing.leaves)
                        + i128::from(leaves);
                    if worst > i128::from(max_position) {
                        return Err(RejectReason::MaxPositionExceeded);
                    }
                }
                let free = closable(position, side) - (committed - existing.covered);
                let covered = leaves.min(free);
                let unit = binary_unit_reserve(spec, side, price);
                ((leaves - covered).checked_mul(unit), covered)
            }
            InstrumentKind::Spot => match side {
                Side::Buy if budget > 0 => (Some(budget), 0),
                Side::Buy => ((price as u64).checked_mul(leaves), 0),
                Side::Sell => (Some(leaves), 0),
            },
        };
        let amount = amount
            .filter(|a| *a <= i64::MAX as u64)
            .ok_or(RejectReason::InsufficientFunds)?;
        let available = self.balance_ref(account, asset as usize).available as i128
            + i128::from(existing.reserved);
        if i128::from(amount) > available {
            return Err(RejectReason::InsufficientFunds);
        }
        Ok(Reservation {
            asset,
            amount,
            covered,
        })
    }

    /// Applies a planned reservation to order `slot` (which holds nothing yet).
    pub(crate) fn take_reservation<S: EventSink>(
        &mut self,
        slot: u32,
        r: Reservation,
        out: &mut S,
    ) {
        let (account, instrument, side, leaves) = {
            let o = &mut self.orders.slots[slot as usize];
            o.reserved = r.amount;
            o.covered = r.covered;
            o.converted = 0;
            (o.account, o.instrument, o.side, o.leaves)
        };
        if self
            .instrument(instrument)
            .is_some_and(|i| i.spec.kind == InstrumentKind::Binary)
        {
            let pslot = self.position_slot_or_create(account, instrument);
            let p = &mut self.positions[pslot as usize];
            p.committed[side as usize] += r.covered;
            p.open_qty[side as usize] += leaves;
        }
        if r.amount > 0 {
            let b = &mut self.balance_mut(account, r.asset as usize);
            b.available -= r.amount as i64;
            b.reserved += r.amount as i64;
            self.emit_balance(account, r.asset, out);
        }
    }

    /// Gives back everything order `slot` holds (before it leaves the book or is re-planned).
    pub(crate) fn release_reservation<S: EventSink>(&mut self, slot: u32, out: &mut S) {
        let o: Order = self.orders.slots[slot as usize];
        let spec = self
            .instrument(o.instrument)
            .expect("order's instrument exists")
            .spec;
        if spec.kind == InstrumentKind::Binary {
            if let Some(pslot) = self.position_slot(o.account, o.instrument) {
                let p = &mut self.positions[pslot as usize];
                p.committed[o.side as usize] -= o.covered;
                p.open_qty[o.side as usize] -= o.leaves;
            }
        }
        {
            let o = &mut self.orders.slots[slot as usize];
            o.reserved = 0;
            o.covered = 0;
            o.converted = 0;
        }
        if o.reserved > 0 {
            let asset = collateral_asset(&spec, o.side);
            let b = &mut self.balance_mut(o.account, asset as usize);
            b.available += o.reserved as i64;
            b.reserved -= o.reserved as i64;
            self.emit_balance(o.account, asset, out);
        }
    }

    pub(crate) fn position_slot_or_create(&mut self, account: u32, instrument: u32) -> u32 {
        if let Some(slot) = self.position_slot(account, instrument) {
            return slot;
        }
        // Capacity was checked by plan_reservation before anything changed.
        let slot = self.positions.len() as u32;
        self.positions.push(Position {
            account,
            instrument,
            position: 0,
            committed: [0; 2],
            open_qty: [0; 2],
            next_in_market: NIL,
        });
        self.position_index
            .insert((account, u64::from(instrument)), slot);
        let inst = self.instrument_mut(instrument);
        if inst.positions_tail == NIL {
            inst.positions_head = slot;
        } else {
            let tail = inst.positions_tail;
            self.positions[tail as usize].next_in_market = slot;
        }
        self.instrument_mut(instrument).positions_tail = slot;
        slot
    }

    /// Settles one side of a fill of `qty` at `price` for order `slot`, which
    /// has already had `qty` taken off its leaves. `fee` comes from [`fill_fee`].
    pub(crate) fn settle_side<S: EventSink>(
        &mut self,
        slot: u32,
        price: i64,
        qty: u64,
        fee: u64,
        out: &mut S,
    ) {
        let o: Order = self.orders.slots[slot as usize];
        let spec = self
            .instrument(o.instrument)
            .expect("order's instrument exists")
            .spec;
        match spec.kind {
            InstrumentKind::Binary => {
                self.settle_binary_side(&o, slot, &spec, price, qty, fee, out)
            }
            InstrumentKind::Spot => self.settle_spot_side(&o, slot, &spec, price, qty, fee, out),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn settle_binary_side<S: EventSink>(
        &mut self,
        o: &Order,
        slot: u32,
        spec: &InstrumentSpec,
        price: i64,
        qty: u64,
        fee: u64,
        out: &mut S,
    ) {
        let side = o.side;
        let from_cover = qty.min(o.covered);
        let rest = qty - from_cover;
        let from_converted = rest.min(o.converted);
        let uncovered = rest - from_converted;
        let release = from_converted * BINARY_PAYOUT as u64
            + uncovered * binary_unit_reserve(spec, side, o.price);
        {
            let om = &mut self.orders.slots[slot as usize];
            om.covered -= from_cover;
            om.converted -= from_converted;
            om.reserved -= release;
        }
        let pslot = self
            .position_slot(o.account, o.instrument)
            .expect("order has a position record");
        let (netted, excess, open_interest_delta) = {
            let p = &mut self.positions[pslot as usize];
            p.committed[side as usize] -= from_cover;
            p.open_qty[side as usize] -= qty;
            let netted = qty.min(closable(p.position, side));
            let long_before = p.position.max(0);
            p.position += match side {
                Side::Buy => qty as i64,
                Side::Sell => -(qty as i64),
            };
            let long_after = p.position.max(0);
            let excess = p.committed[side as usize].saturating_sub(closable(p.position, side));
            (netted, excess, long_after - long_before)
        };
        let inst = self.instrument_mut(o.instrument);
        inst.open_interest = (inst.open_interest as i64 + open_interest_delta) as u64;
        let cash_in = release as i64 - binary_cost(side, price) * qty as i64 - fee as i64
            + BINARY_PAYOUT * netted as i64
            - BINARY_PAYOUT * excess as i64;
        let asset = spec.quote_asset;
        {
            let b = &mut self.balance_mut(o.account, asset as usize);
            b.available += cash_in;
            b.reserved += BINARY_PAYOUT * excess as i64 - release as i64;
        }
        if excess > 0 {
            self.convert_covers(o.account, o.instrument, side, excess);
        }
        if fee > 0 {
            self.balance_mut(FEE_ACCOUNT, asset as usize).available += fee as i64;
        }
        self.emit_balance(o.account, asset, out);
        if fee > 0 {
            self.emit_balance(FEE_ACCOUNT, asset, out);
        }
        self.emit_position(pslot, out);
    }

    /// A fill netted position that other orders of the account had committed
    /// to closing: turn `excess` of their cover into cash reserved at 100 per
    /// contract (the netting paid exactly that). Oldest orders first.
    fn convert_covers(&mut self, account: u32, instrument: u32, side: Side, mut excess: u64) {
        let pslot = self
            .position_slot(account, instrument)
            .expect("position exists");
        self.positions[pslot as usize].committed[side as usize] -= excess;
        let mut cursor = self.account(account).expect("account exists").orders_head;
        while excess > 0 && cursor != NIL {
            let o = &mut self.orders.slots[cursor as usize];
            if o.instrument == instrument && o.side == side && o.covered > 0 {
                let moved = o.covered.min(excess);
                o.covered -= moved;
                o.converted += moved;
                o.reserved += moved * BINARY_PAYOUT as u64;
                excess -= moved;
            }
            cursor = o.acct_next;
        }
        debug_assert_eq!(
            excess, 0,
            "committed position always belongs to live orders"
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn settle_spot_side<S: EventSink>(
        &mut self,
        o: &Order,
        slot: u32,
        spec: &InstrumentSpec,
        price: i64,
        qty: u64,
        fee: u64,
        out: &mut S,
    ) {
        let notional = price * qty as i64;
        let (base, quote) = (spec.base_asset as usize, spec.quote_asset as usize);
        match o.side {
            Side::Buy => {
                let release = if o.budget {
                    notional
                } else {
                    o.price * qty as i64
                };
                self.orders.slots[slot as usize].reserved -= release as u64;
                let q = self.balance_mut(o.account, quote);
                q.reserved -= release;
                q.available += release - notional;
                self.balance_mut(o.account, base).available += qty as i64 - fee as i64;
                if fee > 0 {
                    self.balance_mut(FEE_ACCOUNT, base).available += fee as i64;
                }
            }
            Side::Sell => {
                self.orders.slots[slot as usize].reserved -= qty;
                self.balance_mut(o.account, base).reserved -= qty as i64;
                self.balance_mut(o.account, quote).available += notional - fee as i64;
                if fee > 0 {
                    self.balance_mut(FEE_ACCOUNT, quote).available += fee as i64;
                }
            }
        }
        self.emit_balance(o.account, spec.base_asset, out);
        self.emit_balance(o.account, spec.quote_asset, out);
        if fee > 0 {
            let fee_asset = if o.side == Side::Buy {
                spec.base_asset
            } else {
                spec.quote_asset
            };
            self.emit_balance(FEE_ACCOUNT, fee_asset, out);
        }
    }

    #[inline]
    pub(crate) fn emit_balance<S: EventSink>(&self, account: u32, asset: u16, out: &mut S) {
        let b = *self.balance_ref(account, asset as usize);
        let mut ev = self.event(EventKind::BalanceChanged);
        ev.account = account;
        ev.code = u32::from(asset);
        ev.words[0] = b.available as u64;
        ev.words[1] = b.reserved as u64;
        out.emit(&ev);
    }

    pub(crate) fn emit_position<S: EventSink>(&self, pslot: u32, out: &mut S) {
        let p = &self.positions[pslot as usize];
        let mut ev = self.event(EventKind::PositionChanged);
        ev.account = p.account;
        ev.instrument = p.instrument;
        ev.words[0] = p.position as u64;
        ev.words[1] = self.instrument(p.instrument).map_or(0, |i| i.open_interest);
        out.emit(&ev);
    }
}
