//! Order entry, matching, stops, cancel and replace.
//!
//! Price-time priority on the normalised YES book. An incoming order is
//! validated completely before anything changes; then it is accepted
//! (event), its collateral reserved, and it either waits as a stop, or
//! matches against the opposite side from the best level down, FIFO within
//! a level, at the maker's price. What is left rests (GTC/GTD limit) or is
//! cancelled (IOC, FOK, market). After any trade, pending stops whose
//! trigger the last trade price reached are released one at a time in a
//! fixed order — lowest buy stop first, then highest sell stop, FIFO within
//! a level — re-checking after each, all within the same command.
//!
//! Single writer: the engine thread.

use std::cmp::Reverse;

use super::book::NO_LEVEL;
use super::collateral::{fill_fee, Existing, Reservation};
use super::fixed_map::InsertNew;
use super::orders::{Order, OrderState, NIL};
use super::{Engine, Outcome, BINARY_PAYOUT, FEE_ACCOUNT, ORDER_SLOT_BITS};
use crate::records::{
    CancelReason, EventKind, EventSink, InstrumentKind, InstrumentSpec, InstrumentStatus,
    OrderSpec, OrderType, Outcome as Leg, RejectReason, SelfTradePrevention, Side, TimeInForce,
};

/// Why matching stopped with quantity left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchEnd {
    /// Filled, or nothing more crosses.
    Done,
    /// Self-trade prevention cancelled the taker.
    SelfTrade,
    /// A spot market buy cannot afford one more lot.
    BudgetExhausted,
}

/// Validates a price against the instrument's grid.
#[inline(always)]
fn check_price(spec: &InstrumentSpec, price: i64, field: PriceField) -> Outcome {
    let (out_of_bounds, off_tick) = match field {
        PriceField::Limit => (RejectReason::InvalidPrice, RejectReason::PriceNotOnTick),
        PriceField::Stop => (
            RejectReason::InvalidStopPrice,
            RejectReason::InvalidStopPrice,
        ),
    };
    if price < spec.min_price || price > spec.max_price {
        return Err(out_of_bounds);
    }
    if spec.tick_size != 1 && price % spec.tick_size != 0 {
        return Err(off_tick);
    }
    Ok(())
}

/// Which price [`check_price`] validates: it decides the reject reasons.
#[derive(Debug, Clone, Copy)]
enum PriceField {
    /// A limit or protection price.
    Limit,
    /// A stop trigger price.
    Stop,
}

/// Maps a user-facing (side, outcome, price) onto the YES book.
#[inline(always)]
fn normalise(spec: &InstrumentSpec, side: Side, leg: Leg, price: i64) -> Outcome<(Side, i64)> {
    match (spec.kind, leg) {
        (InstrumentKind::Binary, Leg::Yes) | (InstrumentKind::Spot, Leg::None) => Ok((side, price)),
        // Saturating: a NO price near i64::MIN must not overflow; the result is
        // out of bounds either way and the caller rejects it.
        (InstrumentKind::Binary, Leg::No) => {
            Ok((side.opposite(), BINARY_PAYOUT.saturating_sub(price)))
        }
        _ => Err(RejectReason::InvalidOutcome),
    }
}

#[inline(always)]
fn crosses(side: Side, limit: i64, opposite_best: Option<i64>) -> bool {
    match (side, opposite_best) {
        (Side::Buy, Some(ask)) => ask <= limit,
        (Side::Sell, Some(bid)) => bid >= limit,
        (_, None) => false,
    }
}

impl Engine {
    pub(crate) fn new_order<S: EventSink>(&mut self, spec: &OrderSpec, out: &mut S) -> Outcome {
        let inst = self
            .instrument(spec.instrument)
            .ok_or(RejectReason::UnknownInstrument)?;
        let ispec = inst.spec;
        match inst.status {
            InstrumentStatus::Trading => {}
            InstrumentStatus::Halted => return Err(RejectReason::InstrumentHalted),
            InstrumentStatus::Closed => return Err(RejectReason::InstrumentClosed),
        }
        if spec.account == FEE_ACCOUNT {
            return Err(RejectReason::ReservedAccount);
        }
        let acct = self
            .account(spec.account)
            .ok_or(RejectReason::UnknownAccount)?;
        if self.global_kill || acct.kill_switch {
            return Err(RejectReason::KillSwitchActive);
        }
        let limits = acct.limits;
        let open_orders = acct.open_orders;

        let is_stop = matches!(
            spec.order_type,
            OrderType::StopMarket | OrderType::StopLimit
        );
        let is_market = matches!(spec.order_type, OrderType::Market | OrderType::StopMarket);
        let tif = spec.time_in_force;
        if spec.order_type == OrderType::Market
            && matches!(tif, TimeInForce::Gtc | TimeInForce::Gtd)
        {
            return Err(RejectReason::InvalidTimeInForce);
        }
        let budget = spec.quote_budget;
        if budget > 0
            && (ispec.kind != InstrumentKind::Spot
                || spec.order_type != OrderType::Market
                || spec.side != Side::Buy
                || tif != TimeInForce::Ioc
                || spec.price != 0)
        {
            return Err(RejectReason::BudgetOnlyForSpotMarketBuy);
        }
        if spec.post_only
            && (!matches!(spec.order_type, OrderType::Limit | OrderType::StopLimit)
                || matches!(tif, TimeInForce::Ioc | TimeInForce::Fok))
        {
            return Err(RejectReason::InvalidOrderCombination);
        }

        // Price (limit or protection) on the YES book.
        let (side, price) = if is_market && spec.price == 0 {
            let (side, _) = normalise(&ispec, spec.side, spec.outcome, 0)?;
            let protection = match (ispec.kind, side) {
                (InstrumentKind::Spot, Side::Buy) if budget == 0 => {
                    // A spot market buy needs a budget or an explicit protection price.
                    return Err(RejectReason::InvalidOrderCombination);
                }
                (_, Side::Buy) => ispec.max_price,
                (_, Side::Sell) => ispec.min_price,
            };
            (side, protection)
        } else {
            let (side, price) = normalise(&ispec, spec.side, spec.outcome, spec.price)?;
            check_price(&ispec, price, PriceField::Limit)?;
            (side, price)
        };
        let stop_price = if is_stop {
            let (_, stop) = normalise(&ispec, spec.side, spec.outcome, spec.stop_price)?;
            check_price(&ispec, stop, PriceField::Stop)?;
            stop
        } else {
            0
        };
        let qty = spec.quantity;
        if qty == 0 {
            return Err(RejectReason::InvalidQuantity);
        }
        if ispec.lot_size != 1 && qty % ispec.lot_size != 0 {
            return Err(RejectReason::QuantityNotOnLot);
        }
        let expire = if tif == TimeInForce::Gtd {
            if spec.expire_time <= self.ts {
                return Err(RejectReason::ExpireTimeInPast);
            }
            spec.expire_time
        } else {
            0
        };
        let may_rest = is_stop || matches!(tif, TimeInForce::Gtc | TimeInForce::Gtd);
        let mut plan = Reservation::default();
        if self.risk() {
            self.check_order_limits(&limits, &ispec, side, price, qty, budget)?;
            if may_rest && limits.max_open_orders != 0 && open_orders >= limits.max_open_orders {
                return Err(RejectReason::MaxOpenOrdersExceeded);
            }
            plan = self.plan_reservation(
                spec.account,
                &ispec,
                side,
                price,
                qty,
                budget,
                Existing::default(),
            )?;
        }
        if self.orders.is_full() {
            return Err(RejectReason::OrderCapacityExhausted);
        }
        let book = &self.instrument(spec.instrument).expect("checked").book;
        if spec.post_only && !is_stop && crosses(side, price, book.best_price(side.opposite())) {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        if spec.client_order_id != 0 {
            let slot = self.orders.next_slot();
            self.claim_client_id(spec.account, spec.client_order_id, slot)?;
        }

        // Accepted: from here on nothing can be rejected.
        let id = (self.order_seq << ORDER_SLOT_BITS) | u64::from(self.orders.next_slot());
        self.order_seq += 1;
        let slot = self.orders.alloc(Order {
            id,
            client_id: spec.client_order_id,
            price,
            quantity: qty,
            leaves: qty,
            stop_price,
            expire,
            budget: budget > 0,
            account: spec.account,
            instrument: spec.instrument,
            side,
            outcome: spec.outcome,
            order_type: spec.order_type,
            tif,
            post_only: spec.post_only,
            stp: spec.stp,
            state: if is_stop {
                OrderState::PendingStop
            } else {
                OrderState::Taking
            },
            ..Order::FREE
        });
        debug_assert_eq!(self.order_slot(id), Some(slot));
        self.link_account_order(spec.account, slot);
        if expire != 0 {
            // Registered once, here: a later re-queue or stop trigger keeps the entry.
            self.push_gtd(expire, id);
        }

        let mut ev = self.event(EventKind::OrderAccepted);
        ev.instrument = spec.instrument;
        ev.account = spec.account;
        ev.side = side as u8;
        ev.words = [
            id,
            spec.client_order_id,
            price as u64,
            qty,
            stop_price as u64,
            if expire != 0 { expire } else { budget },
            u64::from(spec.order_type as u8)
                | u64::from(tif as u8) << 8
                | u64::from(u8::from(spec.post_only)) << 16
                | u64::from(spec.stp as u8) << 24
                | u64::from(spec.outcome as u8) << 32,
            0,
            0,
        ];
        out.emit(&ev);
        if self.risk() {
            self.take_reservation(slot, plan, out);
        } else if budget > 0 {
            // Without risk nothing is reserved, but the budget still bounds the sweep.
            self.orders.slots[slot as usize].reserved = budget;
        }
        if is_stop {
            let idx = self
                .instrument(spec.instrument)
                .expect("checked")
                .book
                .grid
                .index(stop_price);
            let inst = self.instruments[spec.instrument as usize]
                .as_mut()
                .expect("checked");
            inst.book.stops_mut()[side as usize].push_back(&mut self.orders.slots, idx, slot);
        } else {
            self.execute(slot, out);
        }
        self.run_stop_triggers(spec.instrument, out);
        Ok(())
    }

    fn check_order_limits(
        &self,
        limits: &super::AccountLimits,
        spec: &InstrumentSpec,
        side: Side,
        price: i64,
        qty: u64,
        budget: u64,
    ) -> Outcome {
        if limits.max_order_quantity != 0 && qty > limits.max_order_quantity {
            return Err(RejectReason::MaxOrderQuantityExceeded);
        }
        if limits.max_notional != 0 {
            let unit = match spec.kind {
                InstrumentKind::Binary => super::collateral::binary_cost(side, price),
                InstrumentKind::Spot => price,
            };
            let notional = if budget > 0 {
                u128::from(budget)
            } else {
                unit as u128 * u128::from(qty)
            };
            if notional > u128::from(limits.max_notional) {
                return Err(RejectReason::MaxNotionalExceeded);
            }
        }
        Ok(())
    }

    /// Matches a taker in state `Taking`, then rests or cancels what is left.
    fn execute<S: EventSink>(&mut self, slot: u32, out: &mut S) {
        let (tif, order_type) = {
            let o = &self.orders.slots[slot as usize];
            (o.tif, o.order_type)
        };
        if tif == TimeInForce::Fok && !self.fok_fillable(slot) {
            return self.cancel_order(slot, CancelReason::FokUnfilled, out);
        }
        let end = self.match_taker(slot, out);
        if self.orders.slots[slot as usize].leaves == 0 {
            return self.retire(slot, out);
        }
        let is_market = matches!(order_type, OrderType::Market | OrderType::StopMarket);
        match end {
            MatchEnd::SelfTrade => self.cancel_order(slot, CancelReason::SelfTrade, out),
            MatchEnd::BudgetExhausted => {
                self.cancel_order(slot, CancelReason::BudgetExhausted, out)
            }
            MatchEnd::Done if is_market || matches!(tif, TimeInForce::Ioc | TimeInForce::Fok) => {
                self.cancel_order(slot, CancelReason::IocRemainder, out)
            }
            MatchEnd::Done => self.rest(slot, out),
        }
    }

    #[inline(always)]
    fn rest<S: EventSink>(&mut self, slot: u32, out: &mut S) {
        let o = &mut self.orders.slots[slot as usize];
        o.state = OrderState::Resting;
        let (instrument, side, price) = (o.instrument, o.side, o.price);
        let inst = self.instruments[instrument as usize]
            .as_mut()
            .expect("order's instrument");
        let level = *inst.book.insert(&mut self.orders.slots, slot);
        self.emit_level(instrument, side, price, level.quantity, level.count, out);
    }

    /// Would a FOK taker fill completely right now?
    fn fok_fillable(&self, slot: u32) -> bool {
        let o = &self.orders.slots[slot as usize];
        let book = &self
            .instrument(o.instrument)
            .expect("order's instrument")
            .book;
        let opp = o.side.opposite();
        let ladder = &book.sides[opp as usize];
        let mut need = o.leaves;
        let mut idx = book.best[opp as usize];
        while idx != NO_LEVEL && need > 0 {
            if !crosses(o.side, o.price, Some(book.grid.price(idx))) {
                return false;
            }
            let level = &ladder.levels[idx];
            if o.stp == SelfTradePrevention::None {
                need = need.saturating_sub(level.quantity);
            } else {
                let mut cursor = level.head;
                while cursor != NIL && need > 0 {
                    let maker = &self.orders.slots[cursor as usize];
                    if maker.account == o.account {
                        if o.stp != SelfTradePrevention::CancelMaker {
                            return false;
                        }
                    } else {
                        need = need.saturating_sub(maker.leaves);
                    }
                    cursor = maker.next;
                }
            }
            idx = match o.side {
                Side::Buy => idx
                    .checked_add(1)
                    .and_then(|i| ladder.bits.next_at_or_above(i)),
                Side::Sell => idx
                    .checked_sub(1)
                    .and_then(|i| ladder.bits.next_at_or_below(i)),
            }
            .unwrap_or(NO_LEVEL);
        }
        need == 0
    }

    fn match_taker<S: EventSink>(&mut self, slot: u32, out: &mut S) -> MatchEnd {
        let taker = self.orders.slots[slot as usize];
        let opp = taker.side.opposite();
        let lot = self
            .instrument(taker.instrument)
            .expect("order's instrument")
            .spec
            .lot_size;
        loop {
            let leaves = self.orders.slots[slot as usize].leaves;
            if leaves == 0 {
                return MatchEnd::Done;
            }
            let book = &self
                .instrument(taker.instrument)
                .expect("order's instrument")
                .book;
            let best = book.best[opp as usize];
            if best == NO_LEVEL {
                return MatchEnd::Done;
            }
            let price = book.grid.price(best);
            if !crosses(taker.side, taker.price, Some(price)) {
                return MatchEnd::Done;
            }
            let maker_slot = book.sides[opp as usize].levels[best].head;
            let maker = &self.orders.slots[maker_slot as usize];
            if taker.stp != SelfTradePrevention::None && maker.account == taker.account {
                match taker.stp {
                    SelfTradePrevention::CancelTaker => return MatchEnd::SelfTrade,
                    SelfTradePrevention::CancelMaker => {
                        self.cancel_order(maker_slot, CancelReason::SelfTrade, out);
                        continue;
                    }
                    _ => {
                        self.cancel_order(maker_slot, CancelReason::SelfTrade, out);
                        return MatchEnd::SelfTrade;
                    }
                }
            }
            let mut qty = leaves.min(maker.leaves);
            if taker.budget {
                let budget = self.orders.slots[slot as usize].reserved;
                let affordable = budget / price as u64;
                qty = qty.min(affordable - affordable % lot);
                if qty == 0 {
                    return MatchEnd::BudgetExhausted;
                }
            }
            self.fill(maker_slot, slot, price, qty, out);
        }
    }

    fn fill<S: EventSink>(
        &mut self,
        maker_slot: u32,
        taker_slot: u32,
        price: i64,
        qty: u64,
        out: &mut S,
    ) {
        let instrument = self.orders.slots[taker_slot as usize].instrument;
        let spec = self
            .instrument(instrument)
            .expect("order's instrument")
            .spec;
        let (maker_side, taker_side) = {
            let m = &mut self.orders.slots[maker_slot as usize];
            m.leaves -= qty;
            m.filled += qty;
            let ms = m.side;
            let t = &mut self.orders.slots[taker_slot as usize];
            t.leaves -= qty;
            t.filled += qty;
            (ms, t.side)
        };
        let (maker_fee, taker_fee) = if self.risk() {
            (
                fill_fee(&spec, maker_side, price, qty, spec.maker_fee_bps),
                fill_fee(&spec, taker_side, price, qty, spec.taker_fee_bps),
            )
        } else {
            (0, 0)
        };
        let maker = self.orders.slots[maker_slot as usize];
        let taker = self.orders.slots[taker_slot as usize];
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;
        let mut ev = self.event(EventKind::Trade);
        ev.instrument = instrument;
        ev.side = taker_side as u8;
        ev.account = taker.account;
        ev.code = maker.account;
        ev.words = [
            trade_id,
            maker.id,
            taker.id,
            price as u64,
            qty,
            maker_fee,
            taker_fee,
            maker.leaves,
            taker.leaves,
        ];
        out.emit(&ev);

        let inst = self.instruments[instrument as usize]
            .as_mut()
            .expect("order's instrument");
        inst.last_price = Some(price);
        let idx = inst.book.grid.index(price);
        inst.book.sides[maker_side as usize].levels[idx].quantity -= qty;
        let level = if maker.leaves == 0 {
            *inst.book.remove(&mut self.orders.slots, maker_slot)
        } else {
            inst.book.sides[maker_side as usize].levels[idx]
        };
        self.emit_level(
            instrument,
            maker_side,
            price,
            level.quantity,
            level.count,
            out,
        );
        if self.risk() {
            self.settle_side(maker_slot, price, qty, maker_fee, out);
            self.settle_side(taker_slot, price, qty, taker_fee, out);
        } else if taker.budget {
            self.orders.slots[taker_slot as usize].reserved -= price as u64 * qty;
        }
        if maker.leaves == 0 {
            self.retire(maker_slot, out);
        }
    }

    /// Releases triggered stops of `instrument` until none is due.
    ///
    /// Most books never receive a stop order, so their stop ladders do not
    /// exist: that check is inlined into every caller, and only books that
    /// have stop ladders pay for the trigger scan (which would find nothing
    /// without them anyway).
    #[inline]
    fn run_stop_triggers<S: EventSink>(&mut self, instrument: u32, out: &mut S) {
        let has_stops = self
            .instruments
            .get(instrument as usize)
            .and_then(Option::as_ref)
            .is_some_and(|inst| inst.book.stops.is_some());
        if has_stops {
            self.scan_stop_triggers(instrument, out);
        }
    }

    #[inline(never)]
    fn scan_stop_triggers<S: EventSink>(&mut self, instrument: u32, out: &mut S) {
        loop {
            let Some(inst) = self.instrument(instrument) else {
                return;
            };
            if inst.status != InstrumentStatus::Trading {
                return;
            }
            let Some(last) = inst.last_price else { return };
            let Some(slot) = inst.book.next_triggered_stop(last) else {
                return;
            };
            let o = self.orders.slots[slot as usize];
            let idx = inst.book.grid.index(o.stop_price);
            let inst = self.instruments[instrument as usize]
                .as_mut()
                .expect("exists");
            inst.book.stops_mut()[o.side as usize].unlink(&mut self.orders.slots, idx, slot);
            self.orders.slots[slot as usize].state = OrderState::Taking;
            let mut ev = self.event(EventKind::StopTriggered);
            ev.instrument = instrument;
            ev.account = o.account;
            ev.words[0] = o.id;
            ev.words[1] = o.client_id;
            ev.words[2] = o.stop_price as u64;
            ev.words[3] = last as u64;
            out.emit(&ev);
            let opposite_best = self
                .instrument(instrument)
                .expect("exists")
                .book
                .best_price(o.side.opposite());
            if o.post_only && crosses(o.side, o.price, opposite_best) {
                self.cancel_order(slot, CancelReason::PostOnlyWouldCross, out);
            } else {
                self.execute(slot, out);
            }
        }
    }

    /// Takes a live order out of the book (or stop book) and finishes it.
    pub(crate) fn cancel_order<S: EventSink>(
        &mut self,
        slot: u32,
        reason: CancelReason,
        out: &mut S,
    ) {
        let o = self.orders.slots[slot as usize];
        let mut ev = self.event(EventKind::OrderCancelled);
        ev.instrument = o.instrument;
        ev.account = o.account;
        ev.reason = reason as u8;
        ev.side = o.side as u8;
        ev.words[0] = o.id;
        ev.words[1] = o.client_id;
        ev.words[2] = o.leaves;
        ev.words[3] = o.filled;
        out.emit(&ev);
        let inst = self.instruments[o.instrument as usize]
            .as_mut()
            .expect("order's instrument");
        match o.state {
            OrderState::Resting => {
                let level = *inst.book.remove(&mut self.orders.slots, slot);
                self.emit_level(
                    o.instrument,
                    o.side,
                    o.price,
                    level.quantity,
                    level.count,
                    out,
                );
            }
            OrderState::PendingStop => {
                let idx = inst.book.grid.index(o.stop_price);
                inst.book.stops_mut()[o.side as usize].unlink(&mut self.orders.slots, idx, slot);
            }
            OrderState::Taking | OrderState::Free => {}
        }
        self.retire(slot, out);
    }

    /// Frees a finished order: releases its collateral and forgets its ids.
    #[inline]
    fn retire<S: EventSink>(&mut self, slot: u32, out: &mut S) {
        if self.risk() {
            self.release_reservation(slot, out);
        }
        let o = self.orders.slots[slot as usize];
        self.unlink_account_order(o.account, slot);
        self.finish_client_id(o.account, o.client_id);
        self.orders.free(slot);
    }

    /// Registers a client order id for order `id` — the last check before a
    /// new order or replace is accepted, so one probe both detects a
    /// duplicate and records the id.
    #[inline]
    fn claim_client_id(&mut self, account: u32, client_id: u64, slot: u32) -> Outcome {
        match self.client_index.insert_new((account, client_id), slot) {
            InsertNew::Inserted => Ok(()),
            InsertNew::Exists => Err(RejectReason::DuplicateClientOrderId),
            // Unreachable by sizing (live orders + window), but never a panic.
            InsertNew::Full => Err(RejectReason::CapacityExhausted),
        }
    }

    /// Moves a client id into the window of finished ids. Its index entry
    /// stays (still naming the order, which is no longer live or no longer
    /// carries this id), so it keeps rejecting duplicates until it is the
    /// oldest in a full window and is forgotten.
    #[inline(always)]
    fn finish_client_id(&mut self, account: u32, client_id: u64) {
        if client_id == 0 {
            return;
        }
        let window = self.finished_ring.len();
        let head = self.finished_head;
        if self.finished_len == window {
            // Full (the steady state): the new id takes the oldest's place
            // in the ring, the oldest is forgotten, and the ring turns by one.
            let oldest = std::mem::replace(&mut self.finished_ring[head], (account, client_id));
            self.client_index.remove(oldest);
            self.finished_head = if head + 1 == window { 0 } else { head + 1 };
        } else {
            let mut tail = head + self.finished_len;
            if tail >= window {
                tail -= window;
            }
            self.finished_ring[tail] = (account, client_id);
            self.finished_len += 1;
        }
    }

    #[inline]
    pub(crate) fn link_account_order(&mut self, account: u32, slot: u32) {
        let tail = {
            let acct = self.account_mut(account);
            acct.open_orders += 1;
            let tail = acct.orders_tail;
            acct.orders_tail = slot;
            if tail == NIL {
                acct.orders_head = slot;
            }
            tail
        };
        self.orders.slots[slot as usize].acct_prev = tail;
        self.orders.slots[slot as usize].acct_next = NIL;
        if tail != NIL {
            self.orders.slots[tail as usize].acct_next = slot;
        }
    }

    #[inline]
    fn unlink_account_order(&mut self, account: u32, slot: u32) {
        let (prev, next) = {
            let o = &self.orders.slots[slot as usize];
            (o.acct_prev, o.acct_next)
        };
        if prev != NIL {
            self.orders.slots[prev as usize].acct_next = next;
        }
        if next != NIL {
            self.orders.slots[next as usize].acct_prev = prev;
        }
        let acct = self.account_mut(account);
        acct.open_orders -= 1;
        if prev == NIL {
            acct.orders_head = next;
        }
        if next == NIL {
            acct.orders_tail = prev;
        }
    }

    fn push_gtd(&mut self, expire: u64, id: u64) {
        if self.gtd.len() == self.gtd.capacity() {
            // Drop entries of orders that already finished; in place, no allocation.
            let slots = &self.orders.slots;
            let mask = (1u64 << ORDER_SLOT_BITS) - 1;
            self.gtd.retain(|Reverse((exp, id))| {
                let o = &slots[(id & mask) as usize];
                o.id == *id && o.state != OrderState::Free && o.expire == *exp
            });
        }
        self.gtd.push(Reverse((expire, id)));
    }

    /// Resolves the order a cancel or replace names, checking ownership.
    #[inline(always)]
    fn resolve_own_order(&self, account: u32, order_id: u64, client_order_id: u64) -> Outcome<u32> {
        let order_id = if order_id != 0 {
            order_id
        } else {
            if client_order_id == 0 {
                return Err(RejectReason::UnknownOrder);
            }
            let slot = self
                .client_index
                .get((account, client_order_id))
                .ok_or(RejectReason::UnknownOrder)?;
            // The id is current only while its slot holds a live order of
            // this account that still carries it (the slot may have been reused).
            let o = &self.orders.slots[slot as usize];
            let current = o.state != OrderState::Free
                && o.account == account
                && o.client_id == client_order_id;
            return if current {
                Ok(slot)
            } else {
                Err(RejectReason::TooLate)
            };
        };
        match self.order_slot(order_id) {
            Some(slot) if self.orders.slots[slot as usize].account == account => Ok(slot),
            Some(_) => Err(RejectReason::UnknownOrder),
            None if (1..self.order_seq).contains(&(order_id >> ORDER_SLOT_BITS)) => {
                Err(RejectReason::TooLate)
            }
            None => Err(RejectReason::UnknownOrder),
        }
    }

    pub(crate) fn cancel<S: EventSink>(
        &mut self,
        account: u32,
        order_id: u64,
        client_order_id: u64,
        out: &mut S,
    ) -> Outcome {
        let slot = self.resolve_own_order(account, order_id, client_order_id)?;
        self.cancel_order(slot, CancelReason::User, out);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn replace<S: EventSink>(
        &mut self,
        account: u32,
        order_id: u64,
        orig_client_order_id: u64,
        new_client_order_id: u64,
        new_price: i64,
        new_quantity: u64,
        out: &mut S,
    ) -> Outcome {
        // One copy of the move path per risk mode: the risk-off copy carries
        // none of the reservation code, so it stays small and its registers
        // are not spilled around code that never runs.
        if self.risk() {
            self.replace_in_mode::<true, S>(
                account,
                order_id,
                orig_client_order_id,
                new_client_order_id,
                new_price,
                new_quantity,
                out,
            )
        } else {
            self.replace_in_mode::<false, S>(
                account,
                order_id,
                orig_client_order_id,
                new_client_order_id,
                new_price,
                new_quantity,
                out,
            )
        }
    }

    /// [`Engine::replace`] for risk mode `RISK` (which equals `self.risk()`).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn replace_in_mode<const RISK: bool, S: EventSink>(
        &mut self,
        account: u32,
        order_id: u64,
        orig_client_order_id: u64,
        new_client_order_id: u64,
        new_price: i64,
        new_quantity: u64,
        out: &mut S,
    ) -> Outcome {
        debug_assert_eq!(RISK, self.risk());
        let slot = self.resolve_own_order(account, order_id, orig_client_order_id)?;
        // Only the fields the replace reads, not a copy of the whole record:
        // moves are most of the traffic and this is their hot path.
        let o = &self.orders.slots[slot as usize];
        if o.state != OrderState::Resting {
            return Err(RejectReason::ReplaceNotAllowed);
        }
        let (id, instrument, side, outcome, post_only) =
            (o.id, o.instrument, o.side, o.outcome, o.post_only);
        let (old_client_id, old_price, old_quantity, filled) =
            (o.client_id, o.price, o.quantity, o.filled);
        let existing = Existing {
            reserved: o.reserved,
            covered: o.covered,
            leaves: o.leaves,
        };
        let inst = self.instrument(instrument).expect("order's instrument");
        let spec = &inst.spec;
        match inst.status {
            InstrumentStatus::Trading => {}
            InstrumentStatus::Halted => return Err(RejectReason::InstrumentHalted),
            InstrumentStatus::Closed => return Err(RejectReason::InstrumentClosed),
        }
        let (_, price) = normalise(spec, Side::Buy, outcome, new_price)?;
        check_price(spec, price, PriceField::Limit)?;
        if new_quantity == 0 {
            return Err(RejectReason::InvalidQuantity);
        }
        if spec.lot_size != 1 && new_quantity % spec.lot_size != 0 {
            return Err(RejectReason::QuantityNotOnLot);
        }
        if new_quantity <= filled {
            return Err(RejectReason::ReplaceQuantityTooLow);
        }
        let new_client_id = if new_client_order_id == 0 {
            old_client_id
        } else {
            new_client_order_id
        };
        let price_changed = price != old_price;
        let opposite_best = inst.book.best_price(side.opposite());
        if post_only && price_changed && crosses(side, price, opposite_best) {
            return Err(RejectReason::PostOnlyWouldCross);
        }
        let is_binary = spec.kind == InstrumentKind::Binary;
        let leaves = new_quantity - filled;
        let mut plan = Reservation::default();
        if RISK {
            let limits = self.account(account).expect("order's account").limits;
            self.check_order_limits(&limits, spec, side, price, new_quantity, 0)?;
            plan = self.plan_reservation(account, spec, side, price, leaves, 0, existing)?;
        }
        if new_client_id != old_client_id {
            self.claim_client_id(account, new_client_id, slot)?;
        }

        // Accepted.
        let keep_priority = !price_changed && new_quantity <= old_quantity;
        if new_client_id != old_client_id {
            self.finish_client_id(account, old_client_id);
        }
        let mut ev = self.event(EventKind::OrderReplaced);
        ev.instrument = instrument;
        ev.account = account;
        ev.side = side as u8;
        ev.words[..7].copy_from_slice(&[
            id,
            new_client_id,
            old_client_id,
            price as u64,
            new_quantity,
            leaves,
            u64::from(keep_priority),
        ]);
        out.emit(&ev);
        let inst = self.instruments[instrument as usize]
            .as_mut()
            .expect("order's instrument");
        if keep_priority {
            let idx = inst.book.grid.index(price);
            let level = &mut inst.book.sides[side as usize].levels[idx];
            level.quantity = level.quantity - existing.leaves + leaves;
            let (q, c) = (level.quantity, level.count);
            self.set_order_size(slot, price, new_quantity, leaves, new_client_id);
            if RISK {
                self.swap_reservation(
                    slot, account, instrument, side, is_binary, existing, plan, out,
                );
            }
            self.emit_level(instrument, side, price, q, c, out);
        } else {
            let level = *inst.book.remove(&mut self.orders.slots, slot);
            self.emit_level(
                instrument,
                side,
                old_price,
                level.quantity,
                level.count,
                out,
            );
            self.set_order_size(slot, price, new_quantity, leaves, new_client_id);
            if RISK {
                self.swap_reservation(
                    slot, account, instrument, side, is_binary, existing, plan, out,
                );
            }
            if crosses(side, price, opposite_best) {
                self.orders.slots[slot as usize].state = OrderState::Taking;
                self.execute(slot, out);
            } else {
                // A resting (GTC/GTD) order that no longer crosses rests at the
                // back of its new level: exactly what `execute` would do, without
                // its match loop.
                self.rest(slot, out);
            }
            self.run_stop_triggers(instrument, out);
        }
        Ok(())
    }

    #[inline]
    fn set_order_size(
        &mut self,
        slot: u32,
        price: i64,
        quantity: u64,
        leaves: u64,
        client_id: u64,
    ) {
        let o = &mut self.orders.slots[slot as usize];
        o.price = price;
        o.quantity = quantity;
        o.leaves = leaves;
        o.client_id = client_id;
    }

    /// Moves a replaced order from what it held before (`old`) to `plan`,
    /// with one balance event. Only binary markets have position records,
    /// so a spot order skips their lookup.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn swap_reservation<S: EventSink>(
        &mut self,
        slot: u32,
        account: u32,
        instrument: u32,
        side: Side,
        is_binary: bool,
        old: Existing,
        plan: Reservation,
        out: &mut S,
    ) {
        let new_leaves = self.orders.slots[slot as usize].leaves;
        {
            let o = &mut self.orders.slots[slot as usize];
            o.reserved = plan.amount;
            o.covered = plan.covered;
            o.converted = 0;
        }
        if is_binary {
            if let Some(pslot) = self.position_slot(account, instrument) {
                let p = &mut self.positions[pslot as usize];
                p.committed[side as usize] =
                    p.committed[side as usize] - old.covered + plan.covered;
                p.open_qty[side as usize] = p.open_qty[side as usize] - old.leaves + new_leaves;
            }
        }
        if plan.amount != old.reserved {
            let delta = plan.amount as i64 - old.reserved as i64;
            let b = &mut self.balance_mut(account, plan.asset as usize);
            b.available -= delta;
            b.reserved += delta;
            self.emit_balance(account, plan.asset, out);
        }
    }

    pub(crate) fn mass_cancel<S: EventSink>(
        &mut self,
        account: u32,
        instrument: Option<u32>,
        out: &mut S,
    ) -> Outcome {
        if self.account(account).is_none() {
            return Err(RejectReason::UnknownAccount);
        }
        if let Some(i) = instrument {
            if self.instrument(i).is_none() {
                return Err(RejectReason::UnknownInstrument);
            }
        }
        let cancelled =
            self.cancel_account_orders(account, instrument, CancelReason::MassCancel, out);
        self.emit_ack(
            crate::records::CommandKind::MassCancel,
            account,
            instrument.unwrap_or(0),
            cancelled,
            out,
        );
        Ok(())
    }

    /// Cancels an account's live orders (oldest first), optionally in one instrument.
    pub(crate) fn cancel_account_orders<S: EventSink>(
        &mut self,
        account: u32,
        instrument: Option<u32>,
        reason: CancelReason,
        out: &mut S,
    ) -> u64 {
        let mut cancelled = 0;
        let mut cursor = self.account(account).map_or(NIL, |a| a.orders_head);
        while cursor != NIL {
            let o = self.orders.slots[cursor as usize];
            let next = o.acct_next;
            if instrument.is_none_or(|i| i == o.instrument) {
                self.cancel_order(cursor, reason, out);
                cancelled += 1;
            }
            cursor = next;
        }
        cancelled
    }

    /// Cancels every GTD order whose expiry is at or before the command time.
    pub(crate) fn expire_orders<S: EventSink>(&mut self, out: &mut S) -> u64 {
        let mut expired = 0;
        while let Some(&Reverse((expire, id))) = self.gtd.peek() {
            if expire > self.ts {
                break;
            }
            self.gtd.pop();
            if let Some(slot) = self.order_slot(id) {
                if self.orders.slots[slot as usize].expire == expire {
                    self.cancel_order(slot, CancelReason::Expired, out);
                    expired += 1;
                }
            }
        }
        expired
    }

    #[inline]
    pub(crate) fn emit_level<S: EventSink>(
        &self,
        instrument: u32,
        side: Side,
        price: i64,
        quantity: u64,
        orders: u32,
        out: &mut S,
    ) {
        let mut ev = self.event(EventKind::BookLevel);
        ev.instrument = instrument;
        ev.side = side as u8;
        ev.words[0] = price as u64;
        ev.words[1] = quantity;
        ev.words[2] = u64::from(orders);
        out.emit(&ev);
    }
}
