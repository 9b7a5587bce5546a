//! Administrative commands: instruments, accounts, funds, limits, kill
//! switches, halts, settlement and timers.
//!
//! Single writer: the engine thread.

use super::book::{Book, PriceGrid};
use super::orders::NIL;
use super::{Engine, Instrument, Outcome, BINARY_PAYOUT, FEE_ACCOUNT};
use crate::records::{
    AccountLimits, CancelReason, CommandKind, EventKind, EventSink, InstrumentKind, InstrumentSpec,
    InstrumentStatus, Outcome as Leg, RejectReason, Side,
};

impl Engine {
    pub(crate) fn add_instrument<S: EventSink>(
        &mut self,
        spec: &InstrumentSpec,
        out: &mut S,
    ) -> Outcome {
        if spec.id == 0 || spec.id >= self.config.max_instruments {
            return Err(RejectReason::CapacityExhausted);
        }
        if self.instrument(spec.id).is_some() {
            return Err(RejectReason::InstrumentExists);
        }
        let assets = self.config.max_assets;
        let bad = Err(RejectReason::InvalidInstrumentSpec);
        if spec.tick_size <= 0
            || spec.lot_size == 0
            || spec.min_price <= 0
            || spec.max_price < spec.min_price
            || spec.maker_fee_bps > 10_000
            || spec.taker_fee_bps > 10_000
            || spec.quote_asset >= assets
        {
            return bad;
        }
        // Bounds on the tick grid, so "on the grid" is simply "a multiple of the tick".
        if spec.min_price % spec.tick_size != 0 || spec.max_price % spec.tick_size != 0 {
            return bad;
        }
        match spec.kind {
            InstrumentKind::Binary if spec.max_price >= BINARY_PAYOUT => return bad,
            InstrumentKind::Spot
                if spec.base_asset >= assets || spec.base_asset == spec.quote_asset =>
            {
                return bad
            }
            _ => {}
        }
        let levels = ((spec.max_price - spec.min_price) / spec.tick_size) as u64 + 1;
        if levels > u64::from(self.config.max_price_levels) {
            return bad;
        }
        let idx = spec.id as usize;
        if self.instruments.len() <= idx {
            self.instruments.resize_with(idx + 1, || None);
        }
        let grid = PriceGrid {
            min_price: spec.min_price,
            tick: spec.tick_size,
            levels: levels as usize,
        };
        self.instruments[idx] = Some(Instrument {
            spec: *spec,
            status: InstrumentStatus::Trading,
            book: Book::new(grid),
            last_price: None,
            open_interest: 0,
            positions_head: NIL,
            positions_tail: NIL,
        });
        self.emit_status(spec.id, out);
        Ok(())
    }

    pub(crate) fn add_account<S: EventSink>(&mut self, account: u32, out: &mut S) -> Outcome {
        if account >= self.config.max_accounts {
            return Err(RejectReason::CapacityExhausted);
        }
        if self.account(account).is_some() {
            return Err(RejectReason::AccountExists);
        }
        self.open_account(account);
        self.emit_ack(CommandKind::AddAccount, account, 0, 0, out);
        Ok(())
    }

    fn check_funds_command(&self, account: u32, asset: u16, amount: u64) -> Outcome {
        if self.account(account).is_none() {
            return Err(RejectReason::UnknownAccount);
        }
        if asset >= self.config.max_assets {
            return Err(RejectReason::InvalidAsset);
        }
        if amount == 0 || amount > i64::MAX as u64 {
            return Err(RejectReason::InvalidAmount);
        }
        Ok(())
    }

    pub(crate) fn deposit<S: EventSink>(
        &mut self,
        account: u32,
        asset: u16,
        amount: u64,
        out: &mut S,
    ) -> Outcome {
        self.check_funds_command(account, asset, amount)?;
        if account == FEE_ACCOUNT {
            return Err(RejectReason::ReservedAccount);
        }
        // Keep the asset's whole outstanding total within i64. Every balance
        // (and 100 x open interest) is a part of that total, so no balance can
        // overflow when the asset changes hands later — a per-account bound
        // alone would let two large holders overflow the one who receives.
        let outstanding = self.deposited[asset as usize] - self.withdrawn[asset as usize];
        if outstanding + i128::from(amount) > i128::from(i64::MAX) {
            return Err(RejectReason::InvalidAmount);
        }
        self.balance_mut(account, asset as usize).available += amount as i64;
        self.deposited[asset as usize] += i128::from(amount);
        self.emit_ack(CommandKind::Deposit, account, u32::from(asset), amount, out);
        self.emit_balance(account, asset, out);
        Ok(())
    }

    pub(crate) fn withdraw<S: EventSink>(
        &mut self,
        account: u32,
        asset: u16,
        amount: u64,
        out: &mut S,
    ) -> Outcome {
        self.check_funds_command(account, asset, amount)?;
        let b = &mut self.balance_mut(account, asset as usize);
        if b.available < amount as i64 {
            return Err(RejectReason::InsufficientFunds);
        }
        b.available -= amount as i64;
        self.withdrawn[asset as usize] += i128::from(amount);
        self.emit_ack(
            CommandKind::Withdraw,
            account,
            u32::from(asset),
            amount,
            out,
        );
        self.emit_balance(account, asset, out);
        Ok(())
    }

    pub(crate) fn set_limits<S: EventSink>(
        &mut self,
        account: u32,
        limits: AccountLimits,
        out: &mut S,
    ) -> Outcome {
        if self.account(account).is_none() {
            return Err(RejectReason::UnknownAccount);
        }
        if account == FEE_ACCOUNT {
            return Err(RejectReason::ReservedAccount);
        }
        self.account_mut(account).limits = limits;
        self.emit_ack(CommandKind::SetLimits, account, 0, 0, out);
        Ok(())
    }

    pub(crate) fn kill_switch<S: EventSink>(
        &mut self,
        account: Option<u32>,
        on: bool,
        out: &mut S,
    ) -> Outcome {
        let mut cancelled = 0;
        match account {
            Some(id) => {
                if self.account(id).is_none() {
                    return Err(RejectReason::UnknownAccount);
                }
                self.account_mut(id).kill_switch = on;
                if on {
                    cancelled = self.cancel_account_orders(id, None, CancelReason::KillSwitch, out);
                }
            }
            None => {
                self.global_kill = on;
                if on {
                    for id in 0..self.accounts.len() as u32 {
                        cancelled +=
                            self.cancel_account_orders(id, None, CancelReason::KillSwitch, out);
                    }
                }
            }
        }
        let mut ev = self.event(EventKind::Ack);
        ev.reason = CommandKind::KillSwitch as u8;
        ev.account = account.unwrap_or(0);
        ev.side = u8::from(on);
        ev.words[0] = u64::from(on);
        ev.words[1] = cancelled;
        out.emit(&ev);
        Ok(())
    }

    pub(crate) fn set_status<S: EventSink>(
        &mut self,
        instrument: u32,
        from: InstrumentStatus,
        to: InstrumentStatus,
        out: &mut S,
    ) -> Outcome {
        let inst = self
            .instrument(instrument)
            .ok_or(RejectReason::UnknownInstrument)?;
        if inst.status != from {
            return Err(RejectReason::InvalidStatusTransition);
        }
        self.instrument_mut(instrument).status = to;
        self.emit_status(instrument, out);
        Ok(())
    }

    /// Settles a binary market: cancels its orders (bids best first, then
    /// asks, then stops), pays 100 per winning contract in position-creation
    /// order, and closes the market.
    pub(crate) fn settle<S: EventSink>(
        &mut self,
        instrument: u32,
        outcome: Leg,
        out: &mut S,
    ) -> Outcome {
        let inst = self
            .instrument(instrument)
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
        for side in [Side::Buy, Side::Sell] {
            while let Some(slot) = self.best_order(instrument, side) {
                self.cancel_order(slot, CancelReason::Settlement, out);
            }
        }
        for side in [Side::Buy, Side::Sell] {
            while let Some(slot) = self.first_stop(instrument, side) {
                self.cancel_order(slot, CancelReason::Settlement, out);
            }
        }
        let open_interest = self.instrument(instrument).expect("checked").open_interest;
        let asset = self
            .instrument(instrument)
            .expect("checked")
            .spec
            .quote_asset;
        let mut paid = 0u64;
        let mut cursor = self.instrument(instrument).expect("checked").positions_head;
        while cursor != NIL {
            let p = self.positions[cursor as usize];
            if p.position != 0 {
                let winning = match outcome {
                    Leg::Yes => p.position.max(0),
                    _ => (-p.position).max(0),
                };
                self.positions[cursor as usize].position = 0;
                if winning > 0 {
                    let amount = winning * BINARY_PAYOUT;
                    self.balance_mut(p.account, asset as usize).available += amount;
                    paid += amount as u64;
                }
                self.instrument_mut(instrument).open_interest -= p.position.max(0) as u64;
                self.emit_position(cursor, out);
                if winning > 0 {
                    self.emit_balance(p.account, asset, out);
                }
            }
            cursor = p.next_in_market;
        }
        let inst = self.instrument_mut(instrument);
        inst.status = InstrumentStatus::Closed;
        self.emit_status(instrument, out);
        let mut ev = self.event(EventKind::MarketSettled);
        ev.instrument = instrument;
        ev.reason = outcome as u8;
        ev.words[0] = open_interest;
        ev.words[1] = paid;
        out.emit(&ev);
        Ok(())
    }

    fn best_order(&self, instrument: u32, side: Side) -> Option<u32> {
        let book = &self.instrument(instrument)?.book;
        let idx = book.best[side as usize];
        (idx != super::book::NO_LEVEL).then(|| book.sides[side as usize].levels[idx].head)
    }

    fn first_stop(&self, instrument: u32, side: Side) -> Option<u32> {
        let stops = self.instrument(instrument)?.book.stops.as_ref()?;
        let idx = stops[side as usize].bits.next_at_or_above(0)?;
        Some(stops[side as usize].levels[idx].head)
    }

    pub(crate) fn timer_tick<S: EventSink>(&mut self, out: &mut S) -> Outcome {
        self.now = self.now.max(self.ts);
        self.expire_orders(out);
        Ok(())
    }

    pub(crate) fn emit_status<S: EventSink>(&self, instrument: u32, out: &mut S) {
        let inst = self.instrument(instrument).expect("exists");
        let mut ev = self.event(EventKind::InstrumentStatusChanged);
        ev.instrument = instrument;
        ev.reason = inst.status as u8;
        ev.code = inst.spec.kind as u32;
        out.emit(&ev);
    }

    pub(crate) fn emit_ack<S: EventSink>(
        &self,
        command: CommandKind,
        account: u32,
        instrument: u32,
        value: u64,
        out: &mut S,
    ) {
        let mut ev = self.event(EventKind::Ack);
        ev.reason = command as u8;
        ev.account = account;
        ev.instrument = instrument;
        ev.words[0] = value;
        out.emit(&ev);
    }
}
