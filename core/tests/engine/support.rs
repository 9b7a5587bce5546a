//! Test support: a harness around one [`Engine`] that stamps commands,
//! checks every invariant after every command, and hands back decoded
//! events; order builders; event queries; a seeded random generator.

use ringex_core::records::*;
use ringex_core::{Balance, Engine, EngineConfig};

/// Cash asset of the binary markets.
pub const CASH: u16 = 0;
/// Base asset of the spot pair.
pub const BASE: u16 = 1;
/// Quote asset of the spot pair.
pub const QUOTE: u16 = 2;

/// Binary market without fees.
pub const BIN: u32 = 1;
/// Binary market with fees (maker 100 bps, taker 700 bps).
pub const BIN_FEES: u32 = 2;
/// Spot BASE/QUOTE, prices 1..=1000, tick 1, lot 1, no fees.
pub const SPOT: u32 = 3;

/// What [`Harness::markets`] deposits of every asset into every trading account.
pub const DEPOSIT: i64 = 1_000_000;
/// Trading accounts opened by [`Harness::markets`].
pub const ACCOUNTS: std::ops::RangeInclusive<u32> = 1..=8;

/// One engine under test, with its own sequence numbers and clock.
pub struct Harness {
    pub engine: Engine,
    pub seq: u64,
    /// Timestamp stamped on the next command.
    pub ts: u64,
    raw: Vec<Event>,
}

impl Harness {
    /// An engine with `EngineConfig::small()` and nothing in it but the fee account.
    pub fn empty() -> Harness {
        Harness::with_config(EngineConfig::small())
    }

    pub fn with_config(config: EngineConfig) -> Harness {
        Harness {
            engine: Engine::new(config),
            seq: 0,
            ts: 1_000,
            raw: Vec::with_capacity(1 << 12),
        }
    }

    /// Markets [`BIN`], [`BIN_FEES`], [`SPOT`] and accounts [`ACCOUNTS`], each
    /// with [`DEPOSIT`] of cash, base and quote.
    pub fn markets() -> Harness {
        let mut h = Harness::empty();
        for cmd in market_setup() {
            h.ok(cmd);
        }
        h
    }

    /// Applies `cmd` stamped with the next sequence number and the current
    /// time; checks the invariants; returns the decoded events.
    pub fn apply(&mut self, cmd: Command) -> Vec<EventView> {
        self.seq += 1;
        let cmd = cmd.stamped(self.seq, self.ts);
        self.apply_raw(&cmd)
    }

    /// Applies `cmd` exactly as given (its own sequence and timestamp).
    pub fn apply_raw(&mut self, cmd: &Command) -> Vec<EventView> {
        self.raw.clear();
        self.engine.apply(cmd, &mut self.raw);
        if let Err(violation) = self.engine.check_invariants() {
            panic!("invariant broken after {cmd:?}: {violation}");
        }
        self.raw
            .iter()
            .map(|e| {
                assert_eq!(
                    e.sequence, cmd.sequence,
                    "event not stamped with its command"
                );
                e.decode()
                    .unwrap_or_else(|| panic!("engine emitted an undecodable event {e:?}"))
            })
            .collect()
    }

    /// The raw events of the last command.
    pub fn last_raw(&self) -> &[Event] {
        &self.raw
    }

    /// Applies `cmd` and asserts it was not rejected.
    pub fn ok(&mut self, cmd: Command) -> Vec<EventView> {
        let events = self.apply(cmd);
        if let Some(reason) = rejection(&events) {
            panic!("{cmd:?} rejected: {reason:?}");
        }
        events
    }

    /// Enters an order that must be accepted; returns its order id and events.
    pub fn place(&mut self, spec: OrderSpec) -> (u64, Vec<EventView>) {
        let events = self.ok(Command::new_order(spec));
        (accepted_id(&events), events)
    }

    /// Enters an order that must be accepted; returns its order id.
    pub fn place_id(&mut self, spec: OrderSpec) -> u64 {
        self.place(spec).0
    }

    /// Asserts that `cmd` yields exactly one `Rejected` event with `reason`
    /// and leaves the engine state (digest and open orders) untouched.
    pub fn assert_rejected(&mut self, cmd: Command, reason: RejectReason) {
        let digest = self.engine.state_digest();
        let open = self.engine.open_orders();
        let events = self.apply(cmd);
        assert_eq!(
            events.len(),
            1,
            "{cmd:?}: expected exactly one Rejected({reason:?}) event, got {events:#?}"
        );
        match events[0] {
            EventView::Rejected {
                reason: got,
                account,
                client_order_id,
                command,
                ..
            } => {
                assert_eq!(got, reason, "{cmd:?}: wrong reject reason");
                assert_eq!(account, cmd.account);
                assert_eq!(client_order_id, cmd.client_order_id);
                assert_eq!(
                    command.map(|k| k as u8),
                    CommandKind::from_u8(cmd.kind).map(|k| k as u8)
                );
            }
            other => panic!("{cmd:?}: expected Rejected({reason:?}), got {other:?}"),
        }
        assert_eq!(
            self.engine.state_digest(),
            digest,
            "{cmd:?}: a rejected command changed the state"
        );
        assert_eq!(self.engine.open_orders(), open);
    }

    pub fn balance(&self, account: u32, asset: u16) -> Balance {
        self.engine.balance(account, asset).expect("account exists")
    }

    pub fn available(&self, account: u32, asset: u16) -> i64 {
        self.balance(account, asset).available
    }

    pub fn reserved(&self, account: u32, asset: u16) -> i64 {
        self.balance(account, asset).reserved
    }

    pub fn position(&self, account: u32, instrument: u32) -> i64 {
        self.engine.position(account, instrument)
    }

    pub fn best(&self, instrument: u32) -> (Option<i64>, Option<i64>) {
        self.engine.best_prices(instrument)
    }
}

/// The commands [`Harness::markets`] applies.
pub fn market_setup() -> Vec<Command> {
    let mut cmds = vec![
        Command::add_instrument(InstrumentSpec::binary(BIN, CASH)),
        Command::add_instrument(InstrumentSpec {
            maker_fee_bps: 100,
            taker_fee_bps: 700,
            ..InstrumentSpec::binary(BIN_FEES, CASH)
        }),
        Command::add_instrument(spot_spec(SPOT, 1, 1, 1, 1000)),
    ];
    for account in ACCOUNTS {
        cmds.push(Command::add_account(account));
        for asset in [CASH, BASE, QUOTE] {
            cmds.push(Command::deposit(account, asset, DEPOSIT as u64));
        }
    }
    cmds
}

/// A spot BASE/QUOTE instrument without fees.
pub fn spot_spec(id: u32, tick: i64, lot: u64, min: i64, max: i64) -> InstrumentSpec {
    InstrumentSpec {
        id,
        kind: InstrumentKind::Spot,
        tick_size: tick,
        lot_size: lot,
        min_price: min,
        max_price: max,
        maker_fee_bps: 0,
        taker_fee_bps: 0,
        base_asset: BASE,
        quote_asset: QUOTE,
    }
}

/// A GTC limit order on the YES leg of [`BIN`].
pub fn yes(account: u32, cid: u64, side: Side, price: i64, qty: u64) -> OrderSpec {
    OrderSpec {
        outcome: Outcome::Yes,
        ..OrderSpec::limit(account, BIN, cid, side, price, qty)
    }
}

/// A GTC limit order on the NO leg of [`BIN`].
pub fn no(account: u32, cid: u64, side: Side, price: i64, qty: u64) -> OrderSpec {
    OrderSpec {
        outcome: Outcome::No,
        ..OrderSpec::limit(account, BIN, cid, side, price, qty)
    }
}

/// A GTC limit order on [`SPOT`].
pub fn spot(account: u32, cid: u64, side: Side, price: i64, qty: u64) -> OrderSpec {
    OrderSpec::limit(account, SPOT, cid, side, price, qty)
}

/// One trade, as the taker's or maker's side sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fill {
    pub price: i64,
    pub qty: u64,
    pub maker_order_id: u64,
    pub taker_order_id: u64,
    pub maker_account: u32,
    pub taker_account: u32,
    pub maker_fee: i64,
    pub taker_fee: i64,
    pub maker_leaves: u64,
    pub taker_leaves: u64,
}

/// The order id of the (first) `OrderAccepted` event.
pub fn accepted_id(events: &[EventView]) -> u64 {
    accepted_ids(events)
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no OrderAccepted in {events:#?}"))
}

pub fn accepted_ids(events: &[EventView]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            EventView::OrderAccepted { order_id, .. } => Some(*order_id),
            _ => None,
        })
        .collect()
}

/// (maker order id, quantity) of every trade, in order: who was hit, and how much.
pub fn maker_fills(events: &[EventView]) -> Vec<(u64, u64)> {
    trades(events)
        .iter()
        .map(|f| (f.maker_order_id, f.qty))
        .collect()
}

pub fn trades(events: &[EventView]) -> Vec<Fill> {
    events
        .iter()
        .filter_map(|e| match *e {
            EventView::Trade {
                price,
                quantity,
                maker_order_id,
                taker_order_id,
                maker_account,
                taker_account,
                maker_fee,
                taker_fee,
                maker_leaves,
                taker_leaves,
                ..
            } => Some(Fill {
                price,
                qty: quantity,
                maker_order_id,
                taker_order_id,
                maker_account,
                taker_account,
                maker_fee,
                taker_fee,
                maker_leaves,
                taker_leaves,
            }),
            _ => None,
        })
        .collect()
}

/// (price, quantity) of every trade, in order.
pub fn trade_prices(events: &[EventView]) -> Vec<(i64, u64)> {
    trades(events).iter().map(|f| (f.price, f.qty)).collect()
}

/// (order id, reason, cancelled quantity) of every cancel, in order.
pub fn cancels(events: &[EventView]) -> Vec<(u64, CancelReason, u64)> {
    events
        .iter()
        .filter_map(|e| match *e {
            EventView::OrderCancelled {
                order_id,
                reason,
                cancelled_quantity,
                ..
            } => Some((order_id, reason, cancelled_quantity)),
            _ => None,
        })
        .collect()
}

/// Order ids of the stops triggered, in order.
pub fn triggered(events: &[EventView]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            EventView::StopTriggered { order_id, .. } => Some(*order_id),
            _ => None,
        })
        .collect()
}

/// The reason of the `Rejected` event, if there is one.
pub fn rejection(events: &[EventView]) -> Option<RejectReason> {
    events.iter().find_map(|e| match e {
        EventView::Rejected { reason, .. } => Some(*reason),
        _ => None,
    })
}

/// Seeded xorshift64* generator: the tests' only source of randomness.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// 80 random bytes reinterpreted as a command record.
    pub fn garbage_command(&mut self) -> Command {
        let mut words = [0u64; 10];
        for w in &mut words {
            *w = self.next_u64();
        }
        bytemuck::cast(words)
    }
}
