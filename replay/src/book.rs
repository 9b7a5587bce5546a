//! Books rebuilt from the event stream: L3 (every resting order, in queue
//! order) from the order events, L2 (quantity and order count per price)
//! from the engine's `BookLevel` events.
//!
//! The engine has no public API to walk its books, and `ringex-replay`
//! uses only public APIs, so the L3 book is reconstructed from the events
//! the engine emits: `OrderAccepted` opens an order (a stop order waits
//! off the book until `StopTriggered`), `Trade` sets the maker's and the
//! taker's leaves, `OrderCancelled` removes it, `OrderReplaced` moves it
//! (to the back of its new level unless it kept priority). Queue position
//! is the time an order joined its level. Between commands every live,
//! untriggered-stop-free order is resting, so the L3 book is exact at every
//! command boundary; [`L3Book::to_l2`] must equal the L2 book the engine
//! published, which the tests check over long random sessions.
//!
//! **Threads.** Plain data, owned by the caller.

use crate::error::Result;
use crate::source::SessionPaths;
use crate::walk::{walk, EventSource, Flow, ProgressFn, WalkOptions};
use ringex_core::records::{
    CancelReason, CommandView, Event, EventView, InstrumentSpec, InstrumentStatus, OrderType,
    Outcome, Side, TimeInForce,
};
use ringex_core::EngineConfig;
use std::collections::{BTreeMap, HashMap};

/// What happened to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Resting (or being matched).
    Open,
    /// A stop order waiting for its trigger.
    PendingStop,
    /// Filled completely.
    Filled,
    /// Left the book unfilled (the rest of it), for this reason.
    Cancelled(CancelReason),
}

impl OrderStatus {
    /// Whether the order is finished.
    pub fn is_final(self) -> bool {
        matches!(self, OrderStatus::Filled | OrderStatus::Cancelled(_))
    }

    /// A short name: `open`, `pending_stop`, `filled`, `cancelled:<reason>`.
    pub fn name(self) -> String {
        match self {
            OrderStatus::Open => "open".into(),
            OrderStatus::PendingStop => "pending_stop".into(),
            OrderStatus::Filled => "filled".into(),
            OrderStatus::Cancelled(r) => format!("cancelled:{r:?}"),
        }
    }
}

/// One order as the events describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackedOrder {
    /// Engine order id.
    pub order_id: u64,
    /// Current client order id (a replace changes it).
    pub client_order_id: u64,
    /// Instrument.
    pub instrument: u32,
    /// Owner.
    pub account: u32,
    /// Normalised book side (binary: YES bid = Buy, YES ask = Sell).
    pub side: Side,
    /// YES/NO as entered (binary), `None` for spot.
    pub outcome: Outcome,
    /// Order type as entered.
    pub order_type: OrderType,
    /// Time in force.
    pub time_in_force: TimeInForce,
    /// Current price on the normalised book (a replace changes it).
    pub price: i64,
    /// Current total quantity (a replace changes it).
    pub quantity: u64,
    /// Quantity still open.
    pub leaves: u64,
    /// Quantity filled.
    pub filled: u64,
    /// Where it stands.
    pub status: OrderStatus,
    /// Sequence of the command that entered it.
    pub accepted_sequence: u64,
    /// Sequence of the command behind its last change.
    pub last_sequence: u64,
    /// Queue position stamp: smaller joined its level earlier.
    pub queue_stamp: u64,
}

/// Follows orders through their events. See the module docs.
#[derive(Debug, Default, Clone)]
pub struct OrderTracker {
    live: HashMap<u64, TrackedOrder>,
    /// Only orders of this instrument are tracked, if set.
    instrument: Option<u32>,
    next_stamp: u64,
}

impl OrderTracker {
    /// Tracks every instrument.
    pub fn new() -> OrderTracker {
        OrderTracker::default()
    }

    /// Tracks one instrument only.
    pub fn for_instrument(instrument: u32) -> OrderTracker {
        OrderTracker {
            instrument: Some(instrument),
            ..OrderTracker::default()
        }
    }

    /// Live orders (open or pending stops).
    pub fn live(&self) -> impl Iterator<Item = &TrackedOrder> {
        self.live.values()
    }

    /// A live order.
    pub fn get(&self, order_id: u64) -> Option<&TrackedOrder> {
        self.live.get(&order_id)
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    /// Applies one event, handing every order it finished (filled or
    /// cancelled; a trade can finish two) to `finished`. The tracker
    /// forgets finished orders.
    pub fn observe(&mut self, event: &Event, mut finished: impl FnMut(TrackedOrder)) {
        if self.instrument.is_some_and(|i| i != event.instrument) {
            return;
        }
        let seq = event.sequence;
        let Some(view) = event.decode() else {
            return;
        };
        match view {
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
                let pending = matches!(order_type, OrderType::StopMarket | OrderType::StopLimit);
                let queue_stamp = self.stamp();
                self.live.insert(
                    order_id,
                    TrackedOrder {
                        order_id,
                        client_order_id,
                        instrument,
                        account,
                        side,
                        outcome,
                        order_type,
                        time_in_force,
                        price,
                        quantity,
                        leaves: quantity,
                        filled: 0,
                        status: if pending {
                            OrderStatus::PendingStop
                        } else {
                            OrderStatus::Open
                        },
                        accepted_sequence: seq,
                        last_sequence: seq,
                        queue_stamp,
                    },
                );
            }
            EventView::Trade {
                maker_order_id,
                taker_order_id,
                quantity,
                maker_leaves,
                taker_leaves,
                ..
            } => {
                if let Some(done) = self.fill(maker_order_id, quantity, maker_leaves, seq) {
                    finished(done);
                }
                if let Some(done) = self.fill(taker_order_id, quantity, taker_leaves, seq) {
                    finished(done);
                }
            }
            EventView::OrderCancelled {
                order_id,
                reason,
                client_order_id,
                ..
            } => {
                if let Some(mut order) = self.live.remove(&order_id) {
                    order.status = OrderStatus::Cancelled(reason);
                    order.client_order_id = client_order_id;
                    order.last_sequence = seq;
                    finished(order);
                }
            }
            EventView::OrderReplaced {
                order_id,
                client_order_id,
                price,
                quantity,
                leaves,
                kept_priority,
                ..
            } => {
                let stamp = if kept_priority {
                    None
                } else {
                    Some(self.stamp())
                };
                if let Some(order) = self.live.get_mut(&order_id) {
                    order.client_order_id = client_order_id;
                    order.price = price;
                    order.quantity = quantity;
                    order.leaves = leaves;
                    order.last_sequence = seq;
                    if let Some(stamp) = stamp {
                        order.queue_stamp = stamp;
                    }
                }
            }
            EventView::StopTriggered { order_id, .. } => {
                let stamp = self.stamp();
                if let Some(order) = self.live.get_mut(&order_id) {
                    order.status = OrderStatus::Open;
                    order.queue_stamp = stamp;
                    order.last_sequence = seq;
                }
            }
            _ => {}
        }
    }

    fn fill(
        &mut self,
        order_id: u64,
        quantity: u64,
        leaves: u64,
        seq: u64,
    ) -> Option<TrackedOrder> {
        let order = self.live.get_mut(&order_id)?;
        order.filled += quantity;
        order.leaves = leaves;
        order.last_sequence = seq;
        if leaves == 0 {
            let mut done = self.live.remove(&order_id)?;
            done.status = OrderStatus::Filled;
            return Some(done);
        }
        None
    }

    /// The L3 book of `instrument` now (meaningful between commands).
    pub fn l3(&self, instrument: u32) -> L3Book {
        let mut book = L3Book::default();
        for o in self.live.values() {
            if o.instrument != instrument || o.status != OrderStatus::Open {
                continue;
            }
            let side = match o.side {
                Side::Buy => &mut book.bids,
                Side::Sell => &mut book.asks,
            };
            side.entry(o.price).or_default().push(*o);
        }
        for level in book.bids.values_mut().chain(book.asks.values_mut()) {
            level.sort_by_key(|o| o.queue_stamp);
        }
        book
    }
}

/// The L3 book: per side, price → resting orders in queue order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L3Book {
    /// Bids by price (iterate in reverse for best first).
    pub bids: BTreeMap<i64, Vec<TrackedOrder>>,
    /// Asks by price (best first).
    pub asks: BTreeMap<i64, Vec<TrackedOrder>>,
}

impl L3Book {
    /// Aggregated to L2.
    pub fn to_l2(&self) -> L2Book {
        let agg = |side: &BTreeMap<i64, Vec<TrackedOrder>>| {
            side.iter()
                .map(|(p, os)| {
                    (
                        *p,
                        Level {
                            quantity: os.iter().map(|o| o.leaves).sum(),
                            orders: os.len() as u32,
                        },
                    )
                })
                .collect()
        };
        L2Book {
            bids: agg(&self.bids),
            asks: agg(&self.asks),
        }
    }
}

/// One L2 level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Level {
    /// Total open quantity.
    pub quantity: u64,
    /// Number of orders.
    pub orders: u32,
}

/// The L2 book: per side, price → level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Book {
    /// Bids by price (iterate in reverse for best first).
    pub bids: BTreeMap<i64, Level>,
    /// Asks by price (best first).
    pub asks: BTreeMap<i64, Level>,
}

impl L2Book {
    /// Applies a `BookLevel` event of this book's instrument (others are
    /// the caller's to filter).
    pub fn observe(&mut self, event: &Event) {
        if let Some(EventView::BookLevel {
            side,
            price,
            quantity,
            orders,
            ..
        }) = event.decode()
        {
            let levels = match side {
                Side::Buy => &mut self.bids,
                Side::Sell => &mut self.asks,
            };
            if quantity == 0 {
                levels.remove(&price);
            } else {
                levels.insert(price, Level { quantity, orders });
            }
        }
    }

    /// Best bid and best ask.
    pub fn best(&self) -> (Option<i64>, Option<i64>) {
        (
            self.bids.keys().next_back().copied(),
            self.asks.keys().next().copied(),
        )
    }
}

/// An instrument's book at a sequence number ([`book_at`]).
#[derive(Debug, Clone)]
pub struct BookAt {
    /// The instrument.
    pub instrument: u32,
    /// Its definition, if it was added by then.
    pub spec: Option<InstrumentSpec>,
    /// Its status by then.
    pub status: Option<InstrumentStatus>,
    /// The last command applied (the requested one, or the journal's last
    /// if it ends earlier).
    pub sequence: u64,
    /// That command's timestamp.
    pub timestamp: u64,
    /// Price and quantity of the instrument's last trade.
    pub last_trade: Option<(i64, u64)>,
    /// Resting orders, rebuilt from the order events.
    pub l3: L3Book,
    /// Levels, as the engine's `BookLevel` events left them.
    pub l2: L2Book,
    /// Best bid and ask according to the engine itself.
    pub engine_best: (Option<i64>, Option<i64>),
    /// Commands replayed.
    pub commands: u64,
}

impl BookAt {
    /// Whether the L3 rebuild, the published L2 and the engine agree.
    pub fn is_consistent(&self) -> bool {
        self.l3.to_l2() == self.l2 && self.l2.best() == self.engine_best
    }
}

/// Replays the input journal up to sequence `at` (inclusive; `None`: to
/// the end) and returns `instrument`'s book there.
pub fn book_at(
    paths: &SessionPaths,
    engine: EngineConfig,
    instrument: u32,
    at: Option<u64>,
    progress: Option<ProgressFn<'_>>,
) -> Result<BookAt> {
    let mut opts = WalkOptions::new(paths.clone(), EventSource::Replay);
    opts.engine = engine;
    opts.to = at.unwrap_or(u64::MAX);
    let mut tracker = OrderTracker::for_instrument(instrument);
    let mut l2 = L2Book::default();
    let (mut spec, mut status, mut last_trade) = (None, None, None);
    let (mut sequence, mut timestamp) = (0, 0);
    let summary = walk(&opts, progress, |group| {
        sequence = group.command.sequence;
        timestamp = group.command.timestamp;
        if let Ok(CommandView::AddInstrument(s)) = group.command.decode() {
            if s.id == instrument {
                spec = Some(s);
            }
        }
        for e in group.events {
            if e.event.instrument != instrument {
                continue;
            }
            tracker.observe(&e.event, |_| {});
            match e.event.decode() {
                Some(EventView::BookLevel { .. }) => l2.observe(&e.event),
                Some(EventView::InstrumentStatusChanged { status: s, .. }) => status = Some(s),
                Some(EventView::Trade {
                    price, quantity, ..
                }) => last_trade = Some((price, quantity)),
                _ => {}
            }
        }
        Ok(Flow::Continue)
    })?;
    if spec.is_none() {
        status = None;
    }
    let engine_best = summary
        .engine
        .as_ref()
        .map_or((None, None), |e| e.best_prices(instrument));
    Ok(BookAt {
        instrument,
        spec,
        status,
        sequence,
        timestamp,
        last_trade,
        l3: tracker.l3(instrument),
        l2,
        engine_best,
        commands: summary.commands,
    })
}
