//! Per-account pre-trade risk limits. Zero means "no limit".

use ringex_core::records::*;

use crate::support::*;

fn limited(limits: AccountLimits) -> Harness {
    let mut h = Harness::markets();
    h.ok(Command::set_limits(1, limits));
    h
}

#[test]
fn an_order_above_the_max_order_quantity_is_rejected_and_one_at_it_is_accepted() {
    let mut h = limited(AccountLimits {
        max_order_quantity: 10,
        ..AccountLimits::default()
    });
    h.assert_rejected(
        Command::new_order(yes(1, 1, Side::Buy, 40, 11)),
        RejectReason::MaxOrderQuantityExceeded,
    );
    let id = h.place_id(yes(1, 1, Side::Buy, 40, 10));
    h.assert_rejected(
        Command::replace(1, id, 0, 40, 11),
        RejectReason::MaxOrderQuantityExceeded,
    );
    // Other accounts are not limited.
    h.place(yes(2, 1, Side::Buy, 40, 1000));
}

#[test]
fn the_max_open_orders_counts_resting_orders_and_pending_stops_but_not_iocs() {
    let mut h = limited(AccountLimits {
        max_open_orders: 2,
        ..AccountLimits::default()
    });
    let a = h.place_id(yes(1, 1, Side::Buy, 40, 1));
    h.place(OrderSpec {
        order_type: OrderType::StopLimit,
        stop_price: 90,
        ..spot(1, 2, Side::Buy, 95, 1)
    });
    h.assert_rejected(
        Command::new_order(yes(1, 3, Side::Buy, 41, 1)),
        RejectReason::MaxOpenOrdersExceeded,
    );
    // An IOC never rests, so it is allowed (and trades).
    h.place(yes(2, 1, Side::Sell, 45, 1));
    let (_, events) = h.place(OrderSpec {
        time_in_force: TimeInForce::Ioc,
        ..yes(1, 3, Side::Buy, 45, 1)
    });
    assert_eq!(trade_prices(&events), vec![(45, 1)]);
    // Room again after a cancel.
    h.ok(Command::cancel(1, a));
    h.place(yes(1, 4, Side::Buy, 41, 1));
}

#[test]
fn the_max_notional_prices_each_side_of_a_binary_order_at_its_cost() {
    let mut h = limited(AccountLimits {
        max_notional: 1_000,
        ..AccountLimits::default()
    });
    // BUY YES 25 @ 40 costs 1000: at the limit.
    h.place(yes(1, 1, Side::Buy, 40, 25));
    h.assert_rejected(
        Command::new_order(yes(1, 2, Side::Buy, 40, 26)),
        RejectReason::MaxNotionalExceeded,
    );
    // SELL YES @ 80 costs 20 per contract: 50 are fine, 51 are not.
    h.place(yes(1, 3, Side::Sell, 80, 50));
    h.assert_rejected(
        Command::new_order(yes(1, 4, Side::Sell, 80, 51)),
        RejectReason::MaxNotionalExceeded,
    );
    // BUY NO @ 20 costs 20 per contract too.
    h.place(no(1, 5, Side::Buy, 20, 50));
    h.assert_rejected(
        Command::new_order(no(1, 6, Side::Buy, 20, 51)),
        RejectReason::MaxNotionalExceeded,
    );
    // Spot: price x quantity; a budget counts as its amount.
    h.place(spot(1, 7, Side::Buy, 100, 10));
    h.assert_rejected(
        Command::new_order(spot(1, 8, Side::Sell, 101, 10)),
        RejectReason::MaxNotionalExceeded,
    );
    h.assert_rejected(
        Command::new_order(OrderSpec {
            order_type: OrderType::Market,
            time_in_force: TimeInForce::Ioc,
            quote_budget: 1_001,
            ..spot(1, 9, Side::Buy, 0, 10)
        }),
        RejectReason::MaxNotionalExceeded,
    );
}

#[test]
fn the_max_position_counts_the_position_and_open_orders_on_the_same_side() {
    let mut h = limited(AccountLimits {
        max_position: 20,
        ..AccountLimits::default()
    });
    h.place(yes(2, 1, Side::Sell, 40, 8));
    h.place(yes(1, 1, Side::Buy, 40, 8)); // +8 YES
    h.place(yes(1, 2, Side::Buy, 30, 10)); // +10 more could fill
    h.assert_rejected(
        Command::new_order(yes(1, 3, Side::Buy, 30, 3)),
        RejectReason::MaxPositionExceeded,
    );
    // SELL NO is a bid too.
    h.assert_rejected(
        Command::new_order(no(1, 3, Side::Sell, 70, 3)),
        RejectReason::MaxPositionExceeded,
    );
    h.place(yes(1, 3, Side::Buy, 30, 2));
    // The other direction: from +8, asks up to 28 keep |position| within 20.
    h.place(yes(1, 4, Side::Sell, 90, 28));
    h.assert_rejected(
        Command::new_order(no(1, 5, Side::Buy, 5, 1)),
        RejectReason::MaxPositionExceeded,
    );
}

#[test]
fn clearing_limits_removes_them() {
    let mut h = limited(AccountLimits {
        max_order_quantity: 1,
        max_open_orders: 1,
        max_notional: 1,
        max_position: 1,
    });
    h.assert_rejected(
        Command::new_order(yes(1, 1, Side::Buy, 40, 5)),
        RejectReason::MaxOrderQuantityExceeded,
    );
    h.ok(Command::set_limits(1, AccountLimits::default()));
    h.place(yes(1, 1, Side::Buy, 40, 5));
    h.place(yes(1, 2, Side::Buy, 40, 5));
}
