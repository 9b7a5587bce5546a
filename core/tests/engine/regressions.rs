//! One test per engine bug found and fixed, named for the bug.
//!
//! - GTD orders entered the expiry heap again on every re-queue (replace,
//!   stop trigger), so a live order could fill the heap with duplicates
//!   that compaction cannot drop, and the heap grew (allocated). Fixed in
//!   `matching.rs` (`new_order` registers once; `rest` no longer does).
//! - `normalise` computed `100 - price` for NO orders unchecked: a NO price
//!   near `i64::MIN` overflowed (a panic in debug builds).
//! - `deposit` bounded each account's balance by `i64::MAX` but not the
//!   asset's total, so two large holders could overflow the balance of the
//!   one that receives the asset in a trade (a panic in debug builds, a
//!   negative balance and broken conservation in release).
//! - `Engine::position(u32::MAX, 0)` looked up the key that packs to the
//!   position table's empty-bucket marker, so it "found" the first empty
//!   bucket: a panic (index out of range) with no position records, another
//!   account's position with some. Fixed in `FixedMap::get`, which now
//!   checks for an empty bucket before comparing keys.

use ringex_core::records::*;

use crate::allocation::count_allocations;
use crate::support::*;

#[test]
fn replacing_a_gtd_order_again_and_again_does_not_grow_the_expiry_heap() {
    let mut h = Harness::markets();
    let expiry = h.ts + 1_000_000_000;
    let id = h.place_id(OrderSpec {
        time_in_force: TimeInForce::Gtd,
        expire_time: expiry,
        ..yes(1, 1, Side::Buy, 40, 10)
    });
    let memory = h.engine.memory_bytes();
    let mut events: Vec<Event> = Vec::with_capacity(64);
    let engine = &mut h.engine;
    let ts = h.ts;
    // Each price change re-queues the order; 10,000 is more than the heap's capacity.
    let ((), allocations) = count_allocations(|| {
        for i in 0..10_000u64 {
            events.clear();
            let cmd = Command::replace(1, id, 0, 40 + (i % 2) as i64, 10).stamped(100 + i, ts);
            engine.apply(&cmd, &mut events);
        }
    });
    // The replaces really did re-queue the order.
    assert!(
        events.iter().any(|e| matches!(
            e.decode(),
            Some(EventView::OrderReplaced {
                kept_priority: false,
                ..
            })
        )),
        "{events:?}"
    );
    assert_eq!(allocations, 0);
    assert_eq!(h.engine.memory_bytes(), memory);
    h.engine.check_invariants().unwrap();
    h.seq = 20_000;
    h.ts = expiry;
    assert_eq!(
        cancels(&h.ok(Command::timer_tick())),
        vec![(id, CancelReason::Expired, 10)]
    );
}

#[test]
fn triggered_gtd_stops_that_rest_do_not_grow_the_expiry_heap() {
    let mut h = Harness::markets();
    let expiry = h.ts + 1_000_000_000;
    h.place(yes(3, 0, Side::Buy, 50, 1));
    h.place(yes(4, 0, Side::Sell, 50, 1)); // last price 50
                                           // The first stop of a market creates its stop ladders; count from after that.
    let first = h.place_id(OrderSpec {
        order_type: OrderType::StopLimit,
        stop_price: 90,
        ..yes(2, 1, Side::Buy, 91, 1)
    });
    h.ok(Command::cancel(2, first));
    let memory = h.engine.memory_bytes();
    // Stop-limits that trigger on entry (last 50 >= stop 45) and rest at 10;
    // cancelled again so that only a few are live at a time.
    let mut ids = Vec::new();
    for i in 0..6_000u64 {
        let (id, events) = h.place(OrderSpec {
            order_type: OrderType::StopLimit,
            stop_price: 45,
            time_in_force: TimeInForce::Gtd,
            expire_time: expiry,
            ..yes(1, 10 + i, Side::Buy, 10, 1)
        });
        assert_eq!(triggered(&events), vec![id]);
        ids.push(id);
        if ids.len() == 3_000 {
            for id in ids.drain(..2_999) {
                h.ok(Command::cancel(1, id));
            }
        }
    }
    assert_eq!(h.engine.memory_bytes(), memory);
}

#[test]
fn a_no_order_priced_at_i64_min_is_rejected_instead_of_overflowing() {
    let mut h = Harness::markets();
    h.assert_rejected(
        Command::new_order(no(1, 1, Side::Buy, i64::MIN, 1)),
        RejectReason::InvalidPrice,
    );
    h.assert_rejected(
        Command::new_order(OrderSpec {
            order_type: OrderType::StopMarket,
            stop_price: i64::MIN,
            ..no(1, 1, Side::Buy, 0, 1)
        }),
        RejectReason::InvalidStopPrice,
    );
    let id = h.place_id(no(1, 1, Side::Buy, 40, 1));
    h.assert_rejected(
        Command::replace(1, id, 0, i64::MIN, 1),
        RejectReason::InvalidPrice,
    );
}

#[test]
fn deposits_cannot_make_an_asset_total_overflow_a_balance_when_it_changes_hands() {
    let mut h = Harness::empty();
    h.ok(Command::add_instrument(spot_spec(SPOT, 1, 1, 1, 1000)));
    for account in [1, 2] {
        h.ok(Command::add_account(account));
    }
    let huge = i64::MAX as u64 - 1_000;
    h.ok(Command::deposit(1, QUOTE, huge));
    h.ok(Command::deposit(1, BASE, 10));
    // A second huge deposit of the same asset would let account 1 receive
    // more than an i64 can hold.
    h.assert_rejected(
        Command::deposit(2, QUOTE, huge),
        RejectReason::InvalidAmount,
    );
    h.ok(Command::deposit(2, QUOTE, 1_000));
    h.place(spot(2, 1, Side::Buy, 100, 10));
    let (_, events) = h.place(spot(1, 1, Side::Sell, 100, 10));
    assert_eq!(trade_prices(&events), vec![(100, 10)]);
    assert_eq!(h.available(1, QUOTE), i64::MAX);
}

#[test]
fn the_position_of_an_account_that_cannot_exist_is_zero() {
    let mut h = Harness::markets();
    // No position records yet.
    assert_eq!(h.engine.position(u32::MAX, 0), 0);
    // With one: account 1 buys 5 YES from account 2.
    h.ok(Command::new_order(yes(2, 1, Side::Sell, 40, 5)));
    h.ok(Command::new_order(yes(1, 1, Side::Buy, 40, 5)));
    assert_eq!(h.position(1, BIN), 5);
    assert_eq!(h.engine.position(u32::MAX, 0), 0);
    assert_eq!(h.engine.position(u32::MAX, BIN), 0);
}
