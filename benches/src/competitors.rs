//! The engine's matching next to order-book crates from crates.io, on the
//! same seeded stream (`ringex_perf::stream`, the exchange-core mix).
//!
//! The ringex stream is translated once, untimed, into neutral
//! [`BookOp`]s (limit GTC, limit IOC, cancel, move to a new price), with
//! order ids resolved to what each book assigns, so the timed loops do no
//! lookups. Each competitor then gets a fresh book, the untimed prefill,
//! and the measured operations:
//!
//! - [`lobster`] 0.7: no IOC, so an IOC is a limit order followed by a
//!   cancel of whatever rested; a move is a cancel plus a new limit order
//!   under the same id (ringex re-queues a price change the same way).
//! - [`matchcore`] 0.4: IOC and price amends are native. Its `match_order`
//!   for an incoming limit order is given the limit price, but 0.4.0
//!   ignores it while walking the book, so a crossing order can trade
//!   through its limit: its fills are compared and any difference is
//!   reported, not hidden.
//! - [`orderbook_rs`] 0.15 (with `pricelevel` 0.10): IOC is native, a move
//!   is its `UpdatePrice` (cancel-then-add, new time priority). It is a
//!   concurrent book (lock-free skip lists and maps, `&self` methods),
//!   driven here from one thread.
//!
//! [`ringex_fills`], [`lobster_fills`] and [`matchcore_fills`] return every
//! trade of the measured part as [`Fill`]s in ringex order ids, so a test
//! can check that the books agree. Single-threaded: each book belongs to
//! the calling thread.

use ringex_core::records::{Command, CommandView, Event, EventView, OrderType, Side, TimeInForce};
use ringex_core::{Engine, RiskMode};
use ringex_perf::stream::{generate, StreamParams};

/// One order-book operation, in ringex order ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookOp {
    /// A limit order; `ioc`: whatever does not trade at once is cancelled.
    Limit {
        /// Order id.
        id: u64,
        /// Buy (bid) or sell (ask).
        buy: bool,
        /// Limit price, ticks.
        price: u64,
        /// Quantity, lots.
        qty: u64,
        /// Immediate or cancel.
        ioc: bool,
    },
    /// Cancels a resting order.
    Cancel {
        /// Order id.
        id: u64,
    },
    /// Moves a resting order to a new price (new time priority).
    Move {
        /// Order id.
        id: u64,
        /// Buy (bid) or sell (ask).
        buy: bool,
        /// New price.
        price: u64,
        /// Quantity the order keeps.
        qty: u64,
    },
}

/// One trade, in ringex order ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fill {
    /// The incoming order.
    pub taker: u64,
    /// The resting order.
    pub maker: u64,
    /// Trade price.
    pub price: u64,
    /// Traded quantity.
    pub qty: u64,
}

/// The stream, both as ringex commands and as [`BookOp`]s.
pub struct MatchingStream {
    /// Ringex setup commands (instrument, accounts, deposits, prefill).
    pub setup: Vec<Command>,
    /// Ringex measured commands.
    pub measured: Vec<Command>,
    /// The prefill as book operations.
    pub prefill_ops: Vec<BookOp>,
    /// The measured commands as book operations.
    pub measured_ops: Vec<BookOp>,
}

/// Builds the stream of `commands` measured commands and translates it,
/// running it once through a risk-off engine to learn the order ids.
pub fn matching_stream(commands: usize, seed: u64) -> MatchingStream {
    let stream = generate(&StreamParams {
        commands,
        seed,
        ..StreamParams::default()
    });
    let params = StreamParams {
        commands,
        seed,
        ..StreamParams::default()
    };
    let mut engine = Engine::new(params.engine_config(RiskMode::Disabled));
    let mut events: Vec<Event> = Vec::new();
    let mut translate = |cmds: &[Command]| -> Vec<BookOp> {
        let mut ops = Vec::with_capacity(cmds.len());
        for cmd in cmds {
            events.clear();
            engine.apply(cmd, &mut events);
            let Ok(view) = cmd.decode() else { continue };
            match view {
                CommandView::NewOrder(spec) if spec.order_type == OrderType::Limit => {
                    let accepted = events.iter().find_map(|e| match e.decode() {
                        Some(EventView::OrderAccepted { order_id, .. }) => Some(order_id),
                        _ => None,
                    });
                    if let Some(id) = accepted {
                        ops.push(BookOp::Limit {
                            id,
                            buy: spec.side == Side::Buy,
                            price: spec.price as u64,
                            qty: spec.quantity,
                            ioc: spec.time_in_force == TimeInForce::Ioc,
                        });
                    }
                }
                CommandView::Cancel { order_id, .. } => ops.push(BookOp::Cancel { id: order_id }),
                CommandView::Replace {
                    order_id, price, ..
                } => {
                    // The command's quantity is the order's new total (filled
                    // part included); what rests after the move is `leaves`.
                    let replaced = events.iter().find_map(|e| match e.decode() {
                        Some(EventView::OrderReplaced { leaves, .. }) => Some((e.side, leaves)),
                        _ => None,
                    });
                    if let Some((side, leaves)) = replaced {
                        ops.push(BookOp::Move {
                            id: order_id,
                            buy: side == Side::Buy as u8,
                            price: price as u64,
                            qty: leaves,
                        });
                    }
                }
                _ => {}
            }
        }
        ops
    };
    let prefill_ops = translate(&stream.setup);
    let measured_ops = translate(&stream.measured);
    MatchingStream {
        setup: stream.setup,
        measured: stream.measured,
        prefill_ops,
        measured_ops,
    }
}

/// The trades of the measured part through a fresh risk-off ringex engine.
pub fn ringex_fills(s: &MatchingStream, params_seed: u64) -> Vec<Fill> {
    let params = StreamParams {
        commands: s.measured.len(),
        seed: params_seed,
        ..StreamParams::default()
    };
    let mut engine = Engine::new(params.engine_config(RiskMode::Disabled));
    let mut events: Vec<Event> = Vec::new();
    for cmd in &s.setup {
        engine.apply(cmd, &mut events);
    }
    events.clear();
    for cmd in &s.measured {
        engine.apply(cmd, &mut events);
    }
    events
        .iter()
        .filter_map(|e| match e.decode() {
            Some(EventView::Trade {
                maker_order_id,
                taker_order_id,
                price,
                quantity,
                ..
            }) => Some(Fill {
                taker: taker_order_id,
                maker: maker_order_id,
                price: price as u64,
                qty: quantity,
            }),
            _ => None,
        })
        .collect()
}

/// A `lobster` book with the prefill applied.
pub fn lobster_book(s: &MatchingStream) -> lobster::OrderBook {
    let mut book = lobster::OrderBook::new(1 << 16, 16, false);
    lobster_apply(&mut book, &s.prefill_ops, &mut |_| {});
    book
}

/// Applies `ops` to a `lobster` book, calling `on_fill` for every trade.
#[inline]
pub fn lobster_apply(
    book: &mut lobster::OrderBook,
    ops: &[BookOp],
    on_fill: &mut impl FnMut(Fill),
) {
    use lobster::{OrderEvent, OrderType, Side as LSide};
    let side = |buy: bool| if buy { LSide::Bid } else { LSide::Ask };
    for op in ops {
        match *op {
            BookOp::Limit {
                id,
                buy,
                price,
                qty,
                ioc,
            } => {
                let event = book.execute(OrderType::Limit {
                    id: u128::from(id),
                    side: side(buy),
                    qty,
                    price,
                });
                let rests = match &event {
                    OrderEvent::Placed { .. } => true,
                    OrderEvent::PartiallyFilled { fills, .. } => {
                        report_lobster(fills, on_fill);
                        true
                    }
                    OrderEvent::Filled { fills, .. } => {
                        report_lobster(fills, on_fill);
                        false
                    }
                    _ => false,
                };
                if ioc && rests {
                    book.execute(OrderType::Cancel { id: u128::from(id) });
                }
            }
            BookOp::Cancel { id } => {
                book.execute(OrderType::Cancel { id: u128::from(id) });
            }
            BookOp::Move {
                id,
                buy,
                price,
                qty,
            } => {
                book.execute(OrderType::Cancel { id: u128::from(id) });
                let event = book.execute(OrderType::Limit {
                    id: u128::from(id),
                    side: side(buy),
                    qty,
                    price,
                });
                if let OrderEvent::PartiallyFilled { fills, .. }
                | OrderEvent::Filled { fills, .. } = &event
                {
                    report_lobster(fills, on_fill);
                }
            }
        }
    }
}

fn report_lobster(fills: &[lobster::FillMetadata], on_fill: &mut impl FnMut(Fill)) {
    for f in fills {
        on_fill(Fill {
            taker: f.order_1 as u64,
            maker: f.order_2 as u64,
            price: f.price,
            qty: f.qty,
        });
    }
}

/// Every trade of the measured part through `lobster`.
pub fn lobster_fills(s: &MatchingStream) -> Vec<Fill> {
    let mut book = lobster_book(s);
    let mut fills = Vec::new();
    lobster_apply(&mut book, &s.measured_ops, &mut |f| fills.push(f));
    fills
}

/// An `orderbook-rs` book (no extra order fields).
pub type OrderbookRs = orderbook_rs::OrderBook<()>;

/// An `orderbook-rs` book with the prefill applied.
pub fn orderbook_rs_book(s: &MatchingStream) -> OrderbookRs {
    let book = OrderbookRs::new("BENCH");
    orderbook_rs_apply(&book, &s.prefill_ops, &mut |_| {});
    book
}

/// Applies `ops` to an `orderbook-rs` book, calling `on_fill` for every trade.
///
/// Orders are submitted with `add_order_with_committed`, which returns the
/// trades of the call (also when an IOC's unfilled remainder makes it an
/// error); a move is `update_order(UpdatePrice)`, which the crate documents
/// as cancel-then-add at the back of the new level, as ringex does.
#[inline]
pub fn orderbook_rs_apply(book: &OrderbookRs, ops: &[BookOp], on_fill: &mut impl FnMut(Fill)) {
    use orderbook_rs::{Id, OrderType, Side as OSide, TimeInForce as OTif, TimestampMs};
    use pricelevel::{Hash32, OrderUpdate, Price, Quantity};
    for op in ops {
        match *op {
            BookOp::Limit {
                id,
                buy,
                price,
                qty,
                ioc,
            } => {
                let order = OrderType::Standard {
                    id: Id::Sequential(id),
                    price: Price::new(u128::from(price)),
                    quantity: Quantity::new(qty),
                    side: if buy { OSide::Buy } else { OSide::Sell },
                    user_id: Hash32::zero(),
                    timestamp: TimestampMs::new(0),
                    time_in_force: if ioc { OTif::Ioc } else { OTif::Gtc },
                    extra_fields: (),
                };
                let trades = match book.add_order_with_committed(order) {
                    Ok((_, trades)) => trades,
                    Err(failure) => failure.committed.map(|t| *t),
                };
                if let Some(t) = trades {
                    for trade in t.match_result.trades().as_vec() {
                        on_fill(Fill {
                            taker: trade.taker_order_id().as_u64().unwrap_or(u64::MAX),
                            maker: trade.maker_order_id().as_u64().unwrap_or(u64::MAX),
                            price: trade.price().as_u128() as u64,
                            qty: trade.quantity().as_u64(),
                        });
                    }
                }
            }
            BookOp::Cancel { id } => {
                let _ = book.cancel_order(Id::Sequential(id));
            }
            BookOp::Move { id, price, .. } => {
                let _ = book.update_order(OrderUpdate::UpdatePrice {
                    order_id: Id::Sequential(id),
                    new_price: Price::new(u128::from(price)),
                });
            }
        }
    }
}

/// Every trade of the measured part through `orderbook-rs`.
pub fn orderbook_rs_fills(s: &MatchingStream) -> Vec<Fill> {
    let book = orderbook_rs_book(s);
    let mut fills = Vec::new();
    orderbook_rs_apply(&book, &s.measured_ops, &mut |f| fills.push(f));
    fills
}

/// `matchcore` commands for the prefill and the measured part, with the
/// ringex order id of each submitted order (matchcore's order id is the
/// sequence number of the submit command).
pub struct MatchcoreStream {
    /// Prefill commands (sequence numbers from 0).
    pub prefill: Vec<matchcore::Command>,
    /// Measured commands (sequence numbers following the prefill's).
    pub measured: Vec<matchcore::Command>,
    /// Ringex order id by matchcore order id (index = sequence number).
    pub ringex_id: Vec<u64>,
}

/// Translates the [`BookOp`]s into `matchcore` commands.
pub fn matchcore_stream(s: &MatchingStream) -> MatchcoreStream {
    use matchcore::{
        AmendCmd, CancelCmd, CommandKind, CommandMeta, LimitOrder, LimitOrderPatch, NewOrder,
        OrderFlags, OrderId, OrderKind, Price, Quantity, QuantityPolicy, SequenceNumber,
        Side as MSide, SubmitCmd, Timestamp,
    };
    use std::collections::HashMap;
    let mut ringex_id = Vec::new();
    let mut matchcore_id: HashMap<u64, u64> = HashMap::new();
    let mut convert = |ops: &[BookOp]| -> Vec<matchcore::Command> {
        let mut out = Vec::with_capacity(ops.len());
        for op in ops {
            let seq = ringex_id.len() as u64;
            let kind = match *op {
                BookOp::Limit {
                    id,
                    buy,
                    price,
                    qty,
                    ioc,
                } => {
                    matchcore_id.insert(id, seq);
                    CommandKind::Submit(SubmitCmd {
                        order: NewOrder::Limit(LimitOrder::new(
                            Price(price),
                            QuantityPolicy::Standard {
                                quantity: Quantity(qty),
                            },
                            OrderFlags::new(
                                if buy { MSide::Buy } else { MSide::Sell },
                                false,
                                if ioc {
                                    matchcore::TimeInForce::Ioc
                                } else {
                                    matchcore::TimeInForce::Gtc
                                },
                            ),
                        )),
                    })
                }
                BookOp::Cancel { id } => CommandKind::Cancel(CancelCmd {
                    order_id: OrderId(matchcore_id.get(&id).copied().unwrap_or(u64::MAX)),
                    order_kind: OrderKind::Limit,
                }),
                BookOp::Move { id, price, .. } => CommandKind::Amend(AmendCmd {
                    order_id: OrderId(matchcore_id.get(&id).copied().unwrap_or(u64::MAX)),
                    patch: matchcore::AmendPatch::Limit(
                        LimitOrderPatch::new().with_price(Price(price)),
                    ),
                }),
            };
            let op_id = match *op {
                BookOp::Limit { id, .. } | BookOp::Cancel { id } | BookOp::Move { id, .. } => id,
            };
            ringex_id.push(op_id);
            out.push(matchcore::Command {
                meta: CommandMeta {
                    sequence_number: SequenceNumber(seq),
                    timestamp: Timestamp(1_000 + seq),
                },
                kind,
            });
        }
        out
    };
    let prefill = convert(&s.prefill_ops);
    let measured = convert(&s.measured_ops);
    MatchcoreStream {
        prefill,
        measured,
        ringex_id,
    }
}

/// A `matchcore` book with the prefill applied.
pub fn matchcore_book(m: &MatchcoreStream) -> matchcore::OrderBook {
    let mut book = matchcore::OrderBook::new("BENCH");
    for cmd in &m.prefill {
        book.execute(cmd);
    }
    book
}

/// Applies `cmds`, calling `on_fill(taker matchcore id, trade)` for every trade.
#[inline]
pub fn matchcore_apply(
    book: &mut matchcore::OrderBook,
    cmds: &[matchcore::Command],
    on_fill: &mut impl FnMut(u64, &matchcore::Trade),
) {
    use matchcore::{CommandOutcome, CommandReport};
    for cmd in cmds {
        if let CommandOutcome::Applied(
            CommandReport::Submit(effects) | CommandReport::Amend(effects),
        ) = book.execute(cmd)
        {
            let target = effects.target_order();
            if let Some(m) = target.match_result() {
                for t in m.trades() {
                    on_fill(target.order_id().0, t);
                }
            }
        }
    }
}

/// Every trade of the measured part through `matchcore`.
pub fn matchcore_fills(m: &MatchcoreStream) -> Vec<Fill> {
    let mut book = matchcore_book(m);
    let mut fills = Vec::new();
    matchcore_apply(&mut book, &m.measured, &mut |taker, t| {
        fills.push(Fill {
            taker: m.ringex_id[taker as usize],
            maker: m.ringex_id[t.maker_order_id().0 as usize],
            price: t.price().0,
            qty: t.quantity().0,
        })
    });
    fills
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMANDS: usize = 30_000;

    /// Asserts equal fill lists, naming the first difference (not printing thousands of fills).
    fn assert_same_fills(ours: &[Fill], theirs: &[Fill], who: &str) {
        if let Some(i) = ours.iter().zip(theirs).position(|(a, b)| a != b) {
            panic!(
                "{who}: first difference at trade {i} of {}: engine {:?}, {who} {:?} (previous {:?})",
                ours.len(),
                ours[i],
                theirs[i],
                i.checked_sub(1).map(|j| ours[j])
            );
        }
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{who}: same trades, then more on one side"
        );
    }

    #[test]
    fn the_translation_keeps_every_book_command_of_the_stream() {
        let s = matching_stream(COMMANDS, 1);
        assert_eq!(s.measured.len(), COMMANDS);
        // Every measured command is an order, a cancel or a move, and none was rejected.
        assert_eq!(s.measured_ops.len(), COMMANDS);
        assert!(s.prefill_ops.len() >= 900, "{}", s.prefill_ops.len());
        assert!(s
            .measured_ops
            .iter()
            .any(|o| matches!(o, BookOp::Limit { ioc: true, .. })));
        assert!(s
            .measured_ops
            .iter()
            .any(|o| matches!(o, BookOp::Move { .. })));
    }

    #[test]
    fn lobster_produces_exactly_the_trades_of_the_engine() {
        let s = matching_stream(COMMANDS, 1);
        let ringex = ringex_fills(&s, 1);
        assert!(
            ringex.len() > COMMANDS / 50,
            "the stream trades: {}",
            ringex.len()
        );
        assert_same_fills(&ringex, &lobster_fills(&s), "lobster");
    }

    #[test]
    fn orderbook_rs_produces_exactly_the_trades_of_the_engine() {
        let s = matching_stream(COMMANDS, 1);
        let ringex = ringex_fills(&s, 1);
        assert!(ringex.len() > COMMANDS / 50);
        assert_same_fills(&ringex, &orderbook_rs_fills(&s), "orderbook-rs");
    }

    #[test]
    fn matchcore_agrees_except_where_it_trades_through_a_limit_price() {
        let s = matching_stream(COMMANDS, 1);
        let ringex = ringex_fills(&s, 1);
        let m = matchcore_stream(&s);
        let theirs = matchcore_fills(&m);
        let limits: std::collections::HashMap<u64, (bool, u64)> = s
            .measured_ops
            .iter()
            .filter_map(|o| match *o {
                BookOp::Limit { id, buy, price, .. } => Some((id, (buy, price))),
                _ => None,
            })
            .collect();
        // A fill is "through" when its price is worse for the taker than the taker's limit.
        let through = |f: &Fill| {
            limits.get(&f.taker).is_some_and(|&(buy, limit)| {
                if buy {
                    f.price > limit
                } else {
                    f.price < limit
                }
            })
        };
        assert!(
            ringex.iter().all(|f| !through(f)),
            "the engine never trades through"
        );
        let first_diff = ringex.iter().zip(&theirs).position(|(a, b)| a != b);
        eprintln!(
            "matchcore: {} trades vs the engine's {}; first difference at {first_diff:?}; {} fills through a limit",
            theirs.len(),
            ringex.len(),
            theirs.iter().filter(|f| through(f)).count()
        );
        match first_diff {
            None => assert_eq!(theirs.len(), ringex.len()),
            Some(i) => {
                // The books diverge only at a trade-through by matchcore.
                let diverging_taker = theirs[i].taker;
                assert!(
                    theirs
                        .iter()
                        .filter(|f| f.taker == diverging_taker)
                        .any(through),
                    "first difference at trade {i}: engine {:?}, matchcore {:?}",
                    ringex[i],
                    theirs[i]
                );
            }
        }
    }
}
