//! State digest and invariant checks.
//!
//! The digest is a 64-bit FNV-1a hash over a canonical walk of the whole
//! state (instruments and accounts by id, book levels by price, orders in
//! queue order, positions in creation order, the duplicate-detection
//! window in age order), so two engines that agree on it hold the same
//! state. Recovery and replay compare digests.
//!
//! The invariant check is for tests and audits (it walks everything): it
//! verifies the conservation identities, that books are uncrossed and their
//! aggregates match their orders, and that every reservation is accounted for.
//!
//! Single writer: the engine thread (both only read).

use std::fmt;

use super::orders::{OrderState, NIL};
use super::{Engine, BINARY_PAYOUT};
use crate::records::{EventKind, EventSink, InstrumentKind, Side};

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn u64(&mut self, v: u64) {
        for b in v.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }
    fn i64(&mut self, v: i64) {
        self.u64(v as u64);
    }
}

/// A broken invariant, with a description of what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvariantViolation(pub String);

impl fmt::Display for InvariantViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvariantViolation {}

macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err(InvariantViolation(format!($($arg)+)));
        }
    };
}

impl Engine {
    /// Digest of the complete engine state.
    pub fn state_digest(&self) -> u64 {
        let mut h = Fnv::new();
        h.u64(self.order_seq);
        h.u64(self.next_trade_id);
        h.u64(u64::from(self.global_kill));
        h.u64(self.now);
        for (id, inst) in self.instruments.iter().enumerate() {
            let Some(inst) = inst else { continue };
            let s = &inst.spec;
            h.u64(id as u64);
            for v in [
                s.kind as u64,
                s.lot_size,
                u64::from(s.maker_fee_bps),
                u64::from(s.taker_fee_bps),
            ] {
                h.u64(v);
            }
            for v in [
                s.tick_size,
                s.min_price,
                s.max_price,
                i64::from(s.base_asset),
                i64::from(s.quote_asset),
            ] {
                h.i64(v);
            }
            h.u64(inst.status as u64);
            h.i64(inst.last_price.unwrap_or(i64::MIN));
            h.u64(inst.open_interest);
            let book = &inst.book;
            let ladders = book.stops.as_deref().into_iter().flatten();
            for ladder in book.sides.iter().chain(ladders) {
                for (idx, level) in ladder.levels.iter().enumerate() {
                    if level.count == 0 {
                        continue;
                    }
                    h.u64(idx as u64);
                    h.u64(level.quantity);
                    let mut cursor = level.head;
                    while cursor != NIL {
                        let o = &self.orders.slots[cursor as usize];
                        for v in [
                            o.id,
                            o.client_id,
                            o.quantity,
                            o.leaves,
                            o.filled,
                            o.expire,
                            o.reserved,
                        ] {
                            h.u64(v);
                        }
                        for v in [
                            o.covered,
                            o.converted,
                            u64::from(o.budget),
                            u64::from(o.account),
                        ] {
                            h.u64(v);
                        }
                        h.i64(o.price);
                        h.i64(o.stop_price);
                        for v in [
                            o.side as u64,
                            o.outcome as u64,
                            o.order_type as u64,
                            o.tif as u64,
                        ] {
                            h.u64(v);
                        }
                        h.u64(u64::from(o.post_only));
                        h.u64(o.stp as u64);
                        cursor = o.next;
                    }
                }
            }
            let mut cursor = inst.positions_head;
            while cursor != NIL {
                let p = &self.positions[cursor as usize];
                h.u64(u64::from(p.account));
                h.i64(p.position);
                for v in p.committed.iter().chain(&p.open_qty) {
                    h.u64(*v);
                }
                cursor = p.next_in_market;
            }
        }
        for (id, acct) in self.accounts.iter().enumerate() {
            let Some(acct) = acct else { continue };
            h.u64(id as u64);
            let l = &acct.limits;
            for v in [
                l.max_order_quantity,
                u64::from(l.max_open_orders),
                l.max_notional,
                l.max_position,
            ] {
                h.u64(v);
            }
            h.u64(u64::from(acct.kill_switch));
            h.u64(u64::from(acct.open_orders));
            for b in self.account_balances(id as u32) {
                h.i64(b.available);
                h.i64(b.reserved);
            }
            let mut cursor = acct.orders_head;
            while cursor != NIL {
                h.u64(self.orders.slots[cursor as usize].id);
                cursor = self.orders.slots[cursor as usize].acct_next;
            }
        }
        let window = self.finished_ring.len();
        for k in 0..self.finished_len {
            let (a, c) = self.finished_ring[(self.finished_head + k) % window];
            h.u64(u64::from(a));
            h.u64(c);
        }
        for (d, w) in self.deposited.iter().zip(self.withdrawn.iter()) {
            h.u64(*d as u64);
            h.u64(*w as u64);
        }
        h.0
    }

    pub(crate) fn emit_digest<S: EventSink>(&self, out: &mut S) {
        let mut ev = self.event(EventKind::StateDigest);
        ev.words[0] = self.state_digest();
        ev.words[1] = self.orders.live() as u64;
        ev.words[2] = self.accounts.iter().flatten().count() as u64;
        ev.words[3] = self.instruments.iter().flatten().count() as u64;
        out.emit(&ev);
    }

    /// Checks every invariant; returns the first violation found.
    ///
    /// Sums wrap instead of overflowing: the check also vets restored
    /// snapshots, whose values may be anything, and must report, not panic.
    ///
    /// - Conservation per asset: deposits - withdrawals = sum(available) +
    ///   sum(reserved) (+ 100 x open interest of the binary markets settling in it).
    /// - No negative balance; each account's reserved amount equals the sum
    ///   of its orders' reservations.
    /// - Books uncrossed; level totals, counts, bitmaps and best levels match the orders.
    /// - Binary positions sum to zero per market, open interest matches, and
    ///   committed cover equals the orders' cover and never exceeds what can be closed.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let assets = self.config.max_assets as usize;
        let mut held = vec![0i128; assets];
        let mut order_reserved: Vec<i128> = vec![0; self.accounts.len() * assets];
        let risk = self.risk();
        for (id, acct) in self.accounts.iter().enumerate() {
            let Some(acct) = acct else { continue };
            for (asset, b) in self.account_balances(id as u32).iter().enumerate() {
                ensure!(
                    b.available >= 0 && b.reserved >= 0,
                    "negative balance: account {id} asset {asset}: {b:?}"
                );
                held[asset] += i128::from(b.available) + i128::from(b.reserved);
            }
            let mut cursor = acct.orders_head;
            let mut count = 0;
            while cursor != NIL {
                let o = &self.orders.slots[cursor as usize];
                ensure!(
                    o.account as usize == id,
                    "order {} on the list of account {id}",
                    o.id
                );
                ensure!(
                    o.state != OrderState::Free && o.state != OrderState::Taking,
                    "order {} in state {:?} between commands",
                    o.id,
                    o.state
                );
                let spec = &self
                    .instrument(o.instrument)
                    .expect("order's instrument")
                    .spec;
                let asset = super::collateral::collateral_asset(spec, o.side) as usize;
                order_reserved[id * assets + asset] += i128::from(o.reserved);
                count += 1;
                cursor = o.acct_next;
            }
            ensure!(
                count == acct.open_orders,
                "account {id} counts {} open orders, list has {count}",
                acct.open_orders
            );
        }
        if risk {
            for (id, acct) in self.accounts.iter().enumerate() {
                if acct.is_none() {
                    continue;
                }
                for (asset, b) in self.account_balances(id as u32).iter().enumerate() {
                    ensure!(
                        i128::from(b.reserved) == order_reserved[id * assets + asset],
                        "account {id} asset {asset}: reserved {} but its orders hold {}",
                        b.reserved,
                        order_reserved[id * assets + asset]
                    );
                }
            }
        }
        let mut live = 0usize;
        for inst in self.instruments.iter().flatten() {
            let book = &inst.book;
            let (bid, ask) = (book.best_price(Side::Buy), book.best_price(Side::Sell));
            if let (Some(b), Some(a)) = (bid, ask) {
                ensure!(
                    b < a,
                    "instrument {} crossed: bid {b} >= ask {a}",
                    inst.spec.id
                );
            }
            for (side_idx, ladder) in book.sides.iter().enumerate() {
                let mut best = None;
                for (idx, level) in ladder.levels.iter().enumerate() {
                    let (mut qty, mut count, mut cursor, mut prev) = (0u64, 0u32, level.head, NIL);
                    while cursor != NIL {
                        let o = &self.orders.slots[cursor as usize];
                        ensure!(
                            o.state == OrderState::Resting && o.side as usize == side_idx,
                            "order {} misplaced",
                            o.id
                        );
                        ensure!(
                            book.grid.index(o.price) == idx && o.leaves > 0,
                            "order {} at wrong level or empty",
                            o.id
                        );
                        ensure!(o.prev == prev, "broken back link at order {}", o.id);
                        ensure!(
                            o.leaves.checked_add(o.filled) == Some(o.quantity),
                            "order {} leaves+filled != quantity",
                            o.id
                        );
                        qty = qty.wrapping_add(o.leaves);
                        count += 1;
                        prev = cursor;
                        cursor = o.next;
                    }
                    ensure!(
                        level.tail == prev,
                        "level tail mismatch at instrument {} idx {idx}",
                        inst.spec.id
                    );
                    ensure!(
                        ladder.bits.get(idx) == (count > 0),
                        "bitmap disagrees with level at instrument {} idx {idx}",
                        inst.spec.id
                    );
                    ensure!(qty == level.quantity && count == level.count, "level aggregate mismatch at instrument {} idx {idx}: {qty}/{count} vs {:?}", inst.spec.id, level);
                    live += count as usize;
                    if count > 0
                        && (side_idx == Side::Sell as usize && best.is_none()
                            || side_idx == Side::Buy as usize)
                    {
                        best = Some(idx);
                    }
                }
                let cached = book.best[side_idx];
                ensure!(
                    best.unwrap_or(super::book::NO_LEVEL) == cached,
                    "best level cache wrong on instrument {} side {side_idx}",
                    inst.spec.id
                );
            }
            if let Some(stops) = &book.stops {
                for ladder in stops.iter() {
                    for level in ladder.levels.iter() {
                        live += level.count as usize;
                    }
                }
            }
            if inst.spec.kind == InstrumentKind::Binary && risk {
                let (mut sum, mut longs) = (0i64, 0u64);
                let mut cursor = inst.positions_head;
                while cursor != NIL {
                    let p = &self.positions[cursor as usize];
                    sum = sum.wrapping_add(p.position);
                    longs = longs.wrapping_add(p.position.max(0) as u64);
                    let closable = [(-p.position).max(0) as u64, p.position.max(0) as u64];
                    let mut cover = [0u64; 2];
                    let mut open = [0u64; 2];
                    let mut o_cursor = self
                        .account(p.account)
                        .expect("position's account")
                        .orders_head;
                    while o_cursor != NIL {
                        let o = &self.orders.slots[o_cursor as usize];
                        if o.instrument == inst.spec.id {
                            cover[o.side as usize] = cover[o.side as usize].wrapping_add(o.covered);
                            open[o.side as usize] = open[o.side as usize].wrapping_add(o.leaves);
                        }
                        o_cursor = o.acct_next;
                    }
                    ensure!(
                        cover == p.committed,
                        "account {} market {}: committed {:?} but orders cover {cover:?}",
                        p.account,
                        inst.spec.id,
                        p.committed
                    );
                    ensure!(
                        open == p.open_qty,
                        "account {} market {}: open qty {:?} but orders have {open:?}",
                        p.account,
                        inst.spec.id,
                        p.open_qty
                    );
                    ensure!(
                        cover[0] <= closable[0] && cover[1] <= closable[1],
                        "account {} market {}: cover {cover:?} exceeds closable {closable:?}",
                        p.account,
                        inst.spec.id
                    );
                    cursor = p.next_in_market;
                }
                ensure!(
                    sum == 0,
                    "positions in market {} sum to {sum}",
                    inst.spec.id
                );
                ensure!(
                    longs == inst.open_interest,
                    "market {} open interest {} but longs {longs}",
                    inst.spec.id,
                    inst.open_interest
                );
            }
        }
        ensure!(
            live == self.orders.live(),
            "{live} orders in books, {} in the arena",
            self.orders.live()
        );
        if risk {
            let mut locked = vec![0i128; assets];
            for inst in self.instruments.iter().flatten() {
                if inst.spec.kind == InstrumentKind::Binary {
                    locked[inst.spec.quote_asset as usize] +=
                        i128::from(inst.open_interest) * i128::from(BINARY_PAYOUT);
                }
            }
            for asset in 0..assets {
                let net = self.deposited[asset] - self.withdrawn[asset];
                ensure!(
                    net == held[asset] + locked[asset],
                    "conservation broken for asset {asset}: deposits-withdrawals {net} != balances {} + locked {}",
                    held[asset],
                    locked[asset]
                );
            }
        }
        Ok(())
    }
}
