//! The business-logic processor: all trading state and the one function
//! that changes it.
//!
//! **Single writer: the engine thread.** Nothing else reads or writes an
//! [`Engine`]; other threads learn about it only through the events it
//! emits. [`Engine::apply`] is a pure function of (state, command): the only
//! clock is the command's timestamp, there is no randomness, and no
//! iteration over a hash table reaches the output. The same commands in
//! give the same event bytes out.
//!
//! Memory is allocated at construction (order arena, hash tables, position
//! slab, GTD heap) and when instruments or accounts are added — never per
//! order. `tests/engine/allocation.rs` proves it with a counting allocator.
//!
//! Layout of this module:
//! - [`book`](self) — price-level arrays and FIFO lists,
//! - `orders` — the order arena,
//! - `collateral` — balances, positions, reservations and fill settlement,
//! - `matching` — new orders, matching, stops, cancel and replace,
//! - `admin` — instruments, accounts, funds, limits, kill switch, halt, settle, timers,
//! - `audit` — state digest and invariant checks.

mod admin;
mod audit;
mod book;
mod collateral;
mod fixed_map;
mod level_bits;
mod matching;
mod orders;
pub mod snapshot;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::records::{
    AccountLimits, Command, CommandKind, CommandView, Event, EventKind, EventSink, InstrumentSpec,
    InstrumentStatus, RejectReason,
};
use book::Book;
use fixed_map::FixedMap;
use orders::{Arena, NIL};

pub use audit::InvariantViolation;

/// The fee account: receives every fee; cannot trade.
pub const FEE_ACCOUNT: u32 = 0;

/// Order ids are `(acceptance counter << ORDER_SLOT_BITS) | arena slot`:
/// unique, increasing, independent of the configuration, and resolvable to
/// their slot without a hash lookup. 24 bits allow 16.7 M live orders; the
/// 40-bit counter allows about 1.1 trillion orders over the engine's life.
pub const ORDER_SLOT_BITS: u32 = 24;

/// Binary contracts pay this much (cents) per winning contract.
pub const BINARY_PAYOUT: i64 = 100;

/// Whether pre-trade risk and account bookkeeping run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RiskMode {
    /// Full risk: balances, reservations, positions, limits (production).
    Enabled,
    /// Matching only: no balances, reservations, positions or limits
    /// (benchmark configuration, as exchange-core's "risk off").
    Disabled,
}

/// Capacities fixed at start-up. Nothing on the order path allocates, so
/// these bound what the engine can hold; a command that would exceed one
/// is rejected with [`RejectReason::OrderCapacityExhausted`] or
/// [`RejectReason::CapacityExhausted`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Live orders (resting, pending stops, and the one being matched).
    pub max_orders: u32,
    /// Account ids are `0..max_accounts` (0 is the fee account).
    pub max_accounts: u32,
    /// Instrument ids are `1..max_instruments`.
    pub max_instruments: u32,
    /// Asset ids are `0..max_assets`.
    pub max_assets: u16,
    /// (account, binary market) position records.
    pub max_positions: u32,
    /// Finished client order ids remembered for duplicate detection, on top
    /// of those of live orders (which are always remembered).
    pub dedup_window: u32,
    /// Largest number of price levels per instrument side.
    pub max_price_levels: u32,
    /// Risk on or off.
    pub risk: RiskMode,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_orders: 1 << 18,
            max_accounts: 1 << 14,
            max_instruments: 1 << 12,
            max_assets: 16,
            max_positions: 1 << 18,
            dedup_window: 1 << 18,
            max_price_levels: 1 << 20,
            risk: RiskMode::Enabled,
        }
    }
}

impl EngineConfig {
    /// Checks every capacity is usable.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |field, problem| Err(crate::Error::InvalidConfig { field, problem });
        if self.max_orders == 0 || self.max_orders > 1 << ORDER_SLOT_BITS {
            return bad(
                "max_orders",
                "must be between 1 and 2^24 (order ids keep the slot in 24 bits)",
            );
        }
        if self.max_accounts == 0 || self.max_accounts == u32::MAX {
            return bad(
                "max_accounts",
                "must be between 1 (the fee account) and 2^32 - 2",
            );
        }
        if self.max_instruments < 2 {
            return bad("max_instruments", "must be at least 2 (ids start at 1)");
        }
        if self.max_assets == 0 {
            return bad("max_assets", "must be at least 1");
        }
        if self.max_price_levels == 0 {
            return bad("max_price_levels", "must be at least 1");
        }
        Ok(())
    }

    /// A small configuration for tests.
    pub fn small() -> Self {
        EngineConfig {
            max_orders: 4096,
            max_accounts: 256,
            max_instruments: 64,
            max_assets: 8,
            max_positions: 4096,
            dedup_window: 4096,
            max_price_levels: 1 << 16,
            risk: RiskMode::Enabled,
        }
    }
}

/// Available and reserved amounts of one asset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    /// Free to trade or withdraw.
    pub available: i64,
    /// Held for open orders.
    pub reserved: i64,
}

pub(crate) struct Account {
    pub(crate) limits: AccountLimits,
    pub(crate) kill_switch: bool,
    pub(crate) open_orders: u32,
    /// Intrusive list of the account's live orders, oldest first.
    pub(crate) orders_head: u32,
    pub(crate) orders_tail: u32,
}

/// An account's position in one binary market.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Position {
    pub(crate) account: u32,
    pub(crate) instrument: u32,
    /// +n YES, -n NO.
    pub(crate) position: i64,
    /// Position committed to closing orders, per book side (bid closes NO, ask closes YES).
    pub(crate) committed: [u64; 2],
    /// Leaves of live orders per book side (for the max-position check).
    pub(crate) open_qty: [u64; 2],
    /// Next position record in the same market (creation order).
    pub(crate) next_in_market: u32,
}

pub(crate) struct Instrument {
    pub(crate) spec: InstrumentSpec,
    pub(crate) status: InstrumentStatus,
    pub(crate) book: Book,
    pub(crate) last_price: Option<i64>,
    /// Binary: contracts outstanding (sum of long positions).
    pub(crate) open_interest: u64,
    pub(crate) positions_head: u32,
    pub(crate) positions_tail: u32,
}

/// The matching engine. See the module docs.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) orders: Arena,
    /// (account, client order id) -> the arena slot of the order it was
    /// given to. Current while that slot holds a live order of the account
    /// carrying this id; otherwise finished (still rejecting duplicates
    /// until the window forgets it).
    pub(crate) client_index: FixedMap<(u32, u64)>,
    /// Finished client ids in finishing order; the oldest is forgotten when full.
    pub(crate) finished_ring: Box<[(u32, u64)]>,
    pub(crate) finished_head: usize,
    pub(crate) finished_len: usize,
    pub(crate) accounts: Vec<Option<Account>>,
    /// Every account's balances in one array: `account * max_assets + asset`
    /// (one load from the account id, no pointer to follow).
    pub(crate) balances: Vec<Balance>,
    pub(crate) instruments: Vec<Option<Instrument>>,
    pub(crate) positions: Vec<Position>,
    pub(crate) position_index: FixedMap<(u32, u64)>,
    /// (expiry, order id) of GTD orders; stale entries are skipped when popped.
    pub(crate) gtd: BinaryHeap<Reverse<(u64, u64)>>,
    /// Acceptance counter: the high bits of the next order id.
    pub(crate) order_seq: u64,

    pub(crate) next_trade_id: u64,
    pub(crate) global_kill: bool,
    /// Time of the last timer tick.
    pub(crate) now: u64,
    /// Per asset: total deposited and withdrawn (for the conservation check).
    pub(crate) deposited: Box<[i128]>,
    pub(crate) withdrawn: Box<[i128]>,
    /// Sequence of the command being applied (stamped on its events).
    pub(crate) seq: u64,
    /// Timestamp of the command being applied.
    pub(crate) ts: u64,
    pub(crate) commands_applied: u64,
}

/// How an `apply` helper reports a reject.
pub(crate) type Outcome<T = ()> = Result<T, RejectReason>;

impl Engine {
    /// An empty engine with the fee account already open.
    ///
    /// # Panics
    ///
    /// If `config` is invalid; use [`Engine::try_new`] to get an error instead.
    pub fn new(config: EngineConfig) -> Engine {
        Engine::try_new(config).unwrap_or_else(|e| panic!("{e}"))
    }

    /// An empty engine, or why `config` cannot work.
    pub fn try_new(config: EngineConfig) -> crate::Result<Engine> {
        config.validate()?;
        let max_orders = config.max_orders as usize;
        let window = config.dedup_window.max(1) as usize;
        let assets = config.max_assets as usize;
        let mut engine = Engine {
            config,
            orders: Arena::with_capacity(max_orders),
            client_index: FixedMap::with_capacity(max_orders + window),
            finished_ring: vec![(0, 0); window].into_boxed_slice(),
            finished_head: 0,
            finished_len: 0,
            accounts: Vec::new(),
            // Reserved once: opening accounts never reallocates (pages are
            // touched only as accounts open).
            balances: Vec::with_capacity(config.max_accounts as usize * assets),
            instruments: Vec::new(),
            positions: Vec::with_capacity(config.max_positions as usize),
            position_index: FixedMap::with_capacity(config.max_positions as usize),
            gtd: BinaryHeap::with_capacity(max_orders),
            order_seq: 1,
            next_trade_id: 1,
            global_kill: false,
            now: 0,
            deposited: vec![0; assets].into_boxed_slice(),
            withdrawn: vec![0; assets].into_boxed_slice(),
            seq: 0,
            ts: 0,
            commands_applied: 0,
        };
        engine.open_account(FEE_ACCOUNT);
        Ok(engine)
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    #[inline]
    pub(crate) fn risk(&self) -> bool {
        self.config.risk == RiskMode::Enabled
    }

    /// Applies one command, writing its events to `out`. Never panics on any
    /// input: a command that cannot be carried out yields exactly one
    /// `Rejected` event and leaves the state untouched.
    pub fn apply<S: EventSink>(&mut self, cmd: &Command, out: &mut S) {
        self.seq = cmd.sequence;
        self.ts = cmd.timestamp;
        self.commands_applied += 1;
        self.prefetch_for(cmd);
        // Cancels and replaces (most of a busy day's traffic) carry no enum
        // fields, so they skip the general decoder; `Command::decode` would
        // accept them unchanged.
        if cmd.version == crate::records::COMMAND_VERSION {
            let fast = match cmd.kind {
                k if k == CommandKind::Cancel as u8 => {
                    Some(self.cancel(cmd.account, cmd.order_id, cmd.client_order_id, out))
                }
                k if k == CommandKind::Replace as u8 => Some(self.replace(
                    cmd.account,
                    cmd.order_id,
                    cmd.aux,
                    cmd.client_order_id,
                    cmd.price,
                    cmd.quantity,
                    out,
                )),
                _ => None,
            };
            if let Some(result) = fast {
                if let Err(reason) = result {
                    self.reject(cmd, reason, out);
                }
                return;
            }
        }
        let view = match cmd.decode() {
            Ok(view) => view,
            Err(reason) => return self.reject(cmd, reason, out),
        };
        let result = match view {
            CommandView::NewOrder(spec) => self.new_order(&spec, out),
            CommandView::Cancel {
                account,
                order_id,
                client_order_id,
            } => self.cancel(account, order_id, client_order_id, out),
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
            } => self.mass_cancel(account, instrument, out),
            CommandView::AddInstrument(spec) => self.add_instrument(&spec, out),
            CommandView::AddAccount { account } => self.add_account(account, out),
            CommandView::Deposit {
                account,
                asset,
                amount,
            } => self.deposit(account, asset, amount, out),
            CommandView::Withdraw {
                account,
                asset,
                amount,
            } => self.withdraw(account, asset, amount, out),
            CommandView::SetLimits { account, limits } => self.set_limits(account, limits, out),
            CommandView::KillSwitch { account, on } => self.kill_switch(account, on, out),
            CommandView::Halt { instrument } => self.set_status(
                instrument,
                InstrumentStatus::Trading,
                InstrumentStatus::Halted,
                out,
            ),
            CommandView::Resume { instrument } => self.set_status(
                instrument,
                InstrumentStatus::Halted,
                InstrumentStatus::Trading,
                out,
            ),
            CommandView::Settle {
                instrument,
                outcome,
            } => self.settle(instrument, outcome, out),
            CommandView::TimerTick => self.timer_tick(out),
            CommandView::StateDigest => {
                self.emit_digest(out);
                Ok(())
            }
        };
        if let Err(reason) = result {
            self.reject(cmd, reason, out);
        }
    }

    /// Starts the memory loads a command will need — the order it names, its
    /// client-id bucket, and the bucket of the finished id that the window
    /// may evict — so their cache misses overlap instead of queueing.
    #[inline]
    fn prefetch_for(&self, cmd: &Command) {
        const NEW_ORDER: u8 = crate::records::CommandKind::NewOrder as u8;
        const CANCEL: u8 = crate::records::CommandKind::Cancel as u8;
        const REPLACE: u8 = crate::records::CommandKind::Replace as u8;
        if !matches!(cmd.kind, NEW_ORDER | CANCEL | REPLACE) {
            return;
        }
        if cmd.order_id != 0 {
            let slot = (cmd.order_id & ((1 << ORDER_SLOT_BITS) - 1)) as usize;
            if let Some(order) = self.orders.slots.get(slot) {
                fixed_map::prefetch(order);
            }
        }
        if cmd.client_order_id != 0 {
            self.client_index
                .prefetch((cmd.account, cmd.client_order_id));
        }
        if self.finished_len == self.finished_ring.len() {
            self.client_index
                .prefetch(self.finished_ring[self.finished_head]);
        }
        if self.risk() {
            // The account record: its limits and balance pointer come next.
            if let Some(account) = self.accounts.get(cmd.account as usize) {
                fixed_map::prefetch(account);
            }
            let assets = self.config.max_assets as usize;
            if let Some(balance) = self.balances.get(cmd.account as usize * assets) {
                fixed_map::prefetch(balance);
            }
        }
    }

    fn reject<S: EventSink>(&mut self, cmd: &Command, reason: RejectReason, out: &mut S) {
        let mut ev = Event::new(EventKind::Rejected, self.seq);
        ev.reason = cmd.kind;
        ev.code = reason as u32;
        ev.account = cmd.account;
        ev.instrument = cmd.instrument;
        ev.words[0] = cmd.client_order_id;
        ev.words[1] = cmd.order_id;
        out.emit(&ev);
    }

    #[inline]
    pub(crate) fn event(&self, kind: EventKind) -> Event {
        Event::new(kind, self.seq)
    }

    /// The arena slot of live order `id`. Order ids are
    /// `(acceptance counter << ORDER_SLOT_BITS) | slot`, so this is an array access
    /// and a comparison, not a hash lookup.
    #[inline]
    pub(crate) fn order_slot(&self, id: u64) -> Option<u32> {
        let slot = (id & ((1 << ORDER_SLOT_BITS) - 1)) as u32;
        let o = self.orders.slots.get(slot as usize)?;
        (o.id == id && o.state != orders::OrderState::Free).then_some(slot)
    }

    /// Balance of an existing account (the caller checked it exists).
    #[inline]
    pub(crate) fn balance_ref(&self, account: u32, asset: usize) -> &Balance {
        &self.balances[account as usize * self.config.max_assets as usize + asset]
    }

    #[inline]
    pub(crate) fn balance_mut(&mut self, account: u32, asset: usize) -> &mut Balance {
        &mut self.balances[account as usize * self.config.max_assets as usize + asset]
    }

    /// All balances of an account, by asset.
    pub(crate) fn account_balances(&self, account: u32) -> &[Balance] {
        let assets = self.config.max_assets as usize;
        &self.balances[account as usize * assets..(account as usize + 1) * assets]
    }

    pub(crate) fn account(&self, id: u32) -> Option<&Account> {
        self.accounts.get(id as usize).and_then(Option::as_ref)
    }

    pub(crate) fn account_mut(&mut self, id: u32) -> &mut Account {
        self.accounts[id as usize]
            .as_mut()
            .expect("account checked to exist")
    }

    pub(crate) fn instrument(&self, id: u32) -> Option<&Instrument> {
        self.instruments.get(id as usize).and_then(Option::as_ref)
    }

    pub(crate) fn instrument_mut(&mut self, id: u32) -> &mut Instrument {
        self.instruments[id as usize]
            .as_mut()
            .expect("instrument checked to exist")
    }

    fn open_account(&mut self, id: u32) {
        let idx = id as usize;
        if self.accounts.len() <= idx {
            self.accounts.resize_with(idx + 1, || None);
            let assets = self.config.max_assets as usize;
            self.balances.resize((idx + 1) * assets, Balance::default());
        }
        self.accounts[idx] = Some(Account {
            limits: AccountLimits::default(),
            kill_switch: false,
            open_orders: 0,
            orders_head: NIL,
            orders_tail: NIL,
        });
    }

    /// Balance of `asset` held by `account`, if both exist.
    pub fn balance(&self, account: u32, asset: u16) -> Option<Balance> {
        self.account(account)?;
        (asset < self.config.max_assets).then(|| *self.balance_ref(account, asset as usize))
    }

    /// Signed position (+YES / -NO) of `account` in binary market `instrument`.
    pub fn position(&self, account: u32, instrument: u32) -> i64 {
        self.position_index
            .get((account, u64::from(instrument)))
            .map_or(0, |slot| self.positions[slot as usize].position)
    }

    /// Best bid and best ask of the normalised (YES) book.
    pub fn best_prices(&self, instrument: u32) -> (Option<i64>, Option<i64>) {
        self.instrument(instrument).map_or((None, None), |inst| {
            (
                inst.book.best_price(crate::records::Side::Buy),
                inst.book.best_price(crate::records::Side::Sell),
            )
        })
    }

    /// Number of live orders (resting and pending stops).
    pub fn open_orders(&self) -> usize {
        self.orders.live()
    }

    /// Commands applied since construction.
    pub fn commands_applied(&self) -> u64 {
        self.commands_applied
    }

    /// Bytes of memory held by the engine's tables (arena capacity, hash
    /// tables, books, accounts, positions) — for sizing and the
    /// memory-per-order figures in the performance docs.
    pub fn memory_bytes(&self) -> usize {
        let books: usize = self
            .instruments
            .iter()
            .flatten()
            .map(|i| i.book.memory_bytes() + std::mem::size_of::<Instrument>())
            .sum();
        let accounts: usize = self
            .accounts
            .iter()
            .flatten()
            .map(|_| std::mem::size_of::<Account>())
            .sum::<usize>()
            + self.balances.capacity() * std::mem::size_of::<Balance>()
            + self.accounts.capacity() * std::mem::size_of::<Option<Account>>();
        self.orders.memory_bytes()
            + self.client_index.memory_bytes()
            + std::mem::size_of_val(&*self.finished_ring)
            + books
            + accounts
            + self.positions.capacity() * std::mem::size_of::<Position>()
            + self.position_index.memory_bytes()
            + self.gtd.capacity() * 16
    }
}
