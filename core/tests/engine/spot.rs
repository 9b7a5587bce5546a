//! Spot instruments: reserves, price improvement, fees taken from what each
//! side receives, tick and lot sizes, and market buys with a quote budget.

use ringex_core::records::*;
use ringex_core::FEE_ACCOUNT;

use crate::support::*;

const FEES: u32 = 4;
const COARSE: u32 = 5;

fn with_spot_extras() -> Harness {
    let mut h = Harness::markets();
    h.ok(Command::add_instrument(InstrumentSpec {
        maker_fee_bps: 50,
        taker_fee_bps: 100,
        ..spot_spec(FEES, 1, 1, 1, 1000)
    }));
    h.ok(Command::add_instrument(spot_spec(COARSE, 5, 10, 5, 5000)));
    h
}

fn budget_buy(account: u32, cid: u64, instrument: u32, budget: u64, max_qty: u64) -> OrderSpec {
    OrderSpec {
        order_type: OrderType::Market,
        time_in_force: TimeInForce::Ioc,
        price: 0,
        quote_budget: budget,
        ..OrderSpec::limit(account, instrument, cid, Side::Buy, 0, max_qty)
    }
}

#[test]
fn a_spot_bid_reserves_price_times_quantity_of_quote_and_an_ask_reserves_the_base() {
    let mut h = Harness::markets();
    let bid = h.place_id(spot(1, 1, Side::Buy, 120, 7));
    assert_eq!(h.balance(1, QUOTE).reserved, 840);
    assert_eq!(h.balance(1, QUOTE).available, DEPOSIT - 840);
    let ask = h.place_id(spot(1, 2, Side::Sell, 130, 9));
    assert_eq!(h.balance(1, BASE).reserved, 9);
    assert_eq!(h.balance(1, BASE).available, DEPOSIT - 9);
    h.ok(Command::cancel(1, bid));
    h.ok(Command::cancel(1, ask));
    assert_eq!(
        h.balance(1, QUOTE).reserved + h.balance(1, BASE).reserved,
        0
    );
    assert_eq!(h.available(1, QUOTE), DEPOSIT);
    assert_eq!(h.available(1, BASE), DEPOSIT);
}

#[test]
fn a_spot_buy_at_60_hitting_an_ask_at_55_pays_55_and_gets_the_difference_back() {
    let mut h = Harness::markets();
    h.place(spot(2, 1, Side::Sell, 55, 10));
    let (_, events) = h.place(spot(1, 1, Side::Buy, 60, 10));
    assert_eq!(trade_prices(&events), vec![(55, 10)]);
    assert_eq!(h.balance(1, QUOTE).reserved, 0);
    assert_eq!(h.available(1, QUOTE), DEPOSIT - 550);
    assert_eq!(h.available(1, BASE), DEPOSIT + 10);
    assert_eq!(h.available(2, QUOTE), DEPOSIT + 550);
    assert_eq!(h.available(2, BASE), DEPOSIT - 10);
    assert_eq!(h.balance(2, BASE).reserved, 0);
}

#[test]
fn a_spot_sell_at_40_hitting_a_bid_at_45_receives_45() {
    let mut h = Harness::markets();
    h.place(spot(2, 1, Side::Buy, 45, 10));
    let (_, events) = h.place(spot(1, 1, Side::Sell, 40, 10));
    assert_eq!(trade_prices(&events), vec![(45, 10)]);
    assert_eq!(h.available(1, QUOTE), DEPOSIT + 450);
    assert_eq!(h.available(1, BASE), DEPOSIT - 10);
    assert_eq!(h.available(2, QUOTE), DEPOSIT - 450);
    assert_eq!(h.balance(2, QUOTE).reserved, 0);
}

#[test]
fn spot_fees_are_taken_from_what_each_side_receives() {
    let mut h = with_spot_extras();
    // Maker sells 30 at 200: receives 6000 quote less ceil(6000 x 50 / 10000) = 30.
    h.place(OrderSpec::limit(2, FEES, 1, Side::Sell, 200, 30));
    // Taker buys 30: receives 30 base less ceil(30 x 100 / 10000) = 1.
    let (_, events) = h.place(OrderSpec::limit(1, FEES, 1, Side::Buy, 210, 30));
    let fill = trades(&events)[0];
    assert_eq!(
        (fill.price, fill.qty, fill.maker_fee, fill.taker_fee),
        (200, 30, 30, 1)
    );
    assert_eq!(h.available(1, BASE), DEPOSIT + 29);
    assert_eq!(h.available(1, QUOTE), DEPOSIT - 6000);
    assert_eq!(h.balance(1, QUOTE).reserved, 0);
    assert_eq!(h.available(2, QUOTE), DEPOSIT + 5970);
    assert_eq!(h.available(2, BASE), DEPOSIT - 30);
    assert_eq!(h.available(FEE_ACCOUNT, BASE), 1);
    assert_eq!(h.available(FEE_ACCOUNT, QUOTE), 30);
    // Taker sells into a maker bid: the seller pays in quote, the buyer in base.
    h.place(OrderSpec::limit(3, FEES, 1, Side::Buy, 100, 200));
    let (_, events) = h.place(OrderSpec::limit(4, FEES, 1, Side::Sell, 100, 200));
    let fill = trades(&events)[0];
    // Maker buyer: ceil(200 x 50 / 10000) = 1 base; taker seller: 20000 x 100 / 10000 = 200 quote.
    assert_eq!((fill.maker_fee, fill.taker_fee), (1, 200));
    assert_eq!(h.available(3, BASE), DEPOSIT + 199);
    assert_eq!(h.available(4, QUOTE), DEPOSIT + 19_800);
    assert_eq!(h.available(FEE_ACCOUNT, BASE), 2);
    assert_eq!(h.available(FEE_ACCOUNT, QUOTE), 230);
}

#[test]
fn a_market_buy_with_a_budget_stops_when_the_budget_cannot_pay_for_another_lot() {
    let mut h = Harness::markets();
    h.place(spot(2, 1, Side::Sell, 100, 3));
    h.place(spot(3, 1, Side::Sell, 110, 5));
    let (id, events) = h.place(budget_buy(1, 1, SPOT, 500, 100));
    // 3 at 100 = 300; 200 left buys 1 at 110; 90 left buys nothing.
    assert_eq!(trade_prices(&events), vec![(100, 3), (110, 1)]);
    assert_eq!(
        cancels(&events),
        vec![(id, CancelReason::BudgetExhausted, 96)]
    );
    assert_eq!(h.balance(1, QUOTE).reserved, 0);
    assert_eq!(h.available(1, QUOTE), DEPOSIT - 410);
    assert_eq!(h.available(1, BASE), DEPOSIT + 4);
    assert_eq!(h.best(SPOT), (None, Some(110)));
}

#[test]
fn a_market_buy_with_a_budget_stops_at_its_maximum_quantity_and_returns_the_rest() {
    let mut h = Harness::markets();
    h.place(spot(2, 1, Side::Sell, 100, 10));
    let (_, events) = h.place(budget_buy(1, 1, SPOT, 5_000, 2));
    assert_eq!(trade_prices(&events), vec![(100, 2)]);
    assert!(cancels(&events).is_empty());
    assert_eq!(h.available(1, QUOTE), DEPOSIT - 200);
    assert_eq!(h.balance(1, QUOTE).reserved, 0);
}

#[test]
fn a_market_buy_with_a_budget_that_empties_the_book_cancels_the_remainder_as_ioc() {
    let mut h = Harness::markets();
    h.place(spot(2, 1, Side::Sell, 100, 3));
    let (id, events) = h.place(budget_buy(1, 1, SPOT, 10_000, 50));
    assert_eq!(trade_prices(&events), vec![(100, 3)]);
    assert_eq!(cancels(&events), vec![(id, CancelReason::IocRemainder, 47)]);
    assert_eq!(h.available(1, QUOTE), DEPOSIT - 300);
}

#[test]
fn a_budget_too_small_for_one_lot_trades_nothing() {
    let mut h = Harness::markets();
    h.place(spot(2, 1, Side::Sell, 100, 3));
    let (id, events) = h.place(budget_buy(1, 1, SPOT, 99, 5));
    assert!(trades(&events).is_empty());
    assert_eq!(
        cancels(&events),
        vec![(id, CancelReason::BudgetExhausted, 5)]
    );
    assert_eq!(h.balance(1, QUOTE).available, DEPOSIT);
}

#[test]
fn a_budgeted_market_buy_only_buys_whole_lots() {
    let mut h = with_spot_extras();
    h.place(OrderSpec::limit(2, COARSE, 1, Side::Sell, 30, 100));
    // 1000 / 30 = 33 units, 30 in whole lots of 10.
    let (id, events) = h.place(budget_buy(1, 1, COARSE, 1_000, 100));
    assert_eq!(trade_prices(&events), vec![(30, 30)]);
    assert_eq!(
        cancels(&events),
        vec![(id, CancelReason::BudgetExhausted, 70)]
    );
    assert_eq!(h.available(1, QUOTE), DEPOSIT - 900);
}

#[test]
fn a_budget_needs_a_funded_quote_balance() {
    let mut h = Harness::markets();
    h.place(spot(2, 1, Side::Sell, 100, 3));
    h.assert_rejected(
        Command::new_order(budget_buy(1, 1, SPOT, DEPOSIT as u64 + 1, 5)),
        RejectReason::InsufficientFunds,
    );
}

#[test]
fn a_spot_market_buy_needs_a_budget_or_a_protection_price() {
    let mut h = Harness::markets();
    h.place(spot(2, 1, Side::Sell, 100, 3));
    h.place(spot(2, 2, Side::Sell, 150, 3));
    let market = OrderSpec {
        order_type: OrderType::Market,
        time_in_force: TimeInForce::Ioc,
        ..spot(1, 1, Side::Buy, 0, 5)
    };
    h.assert_rejected(
        Command::new_order(market),
        RejectReason::InvalidOrderCombination,
    );
    let (id, events) = h.place(OrderSpec {
        price: 120,
        ..market
    });
    assert_eq!(trade_prices(&events), vec![(100, 3)]);
    assert_eq!(cancels(&events), vec![(id, CancelReason::IocRemainder, 2)]);
    assert_eq!(h.available(1, QUOTE), DEPOSIT - 300);
}

#[test]
fn a_spot_market_sell_without_a_price_sweeps_down_to_the_minimum() {
    let mut h = Harness::markets();
    h.place(spot(2, 1, Side::Buy, 100, 3));
    h.place(spot(3, 1, Side::Buy, 1, 3));
    let market = OrderSpec {
        order_type: OrderType::Market,
        time_in_force: TimeInForce::Ioc,
        ..spot(1, 1, Side::Sell, 0, 5)
    };
    let (_, events) = h.place(market);
    assert_eq!(trade_prices(&events), vec![(100, 3), (1, 2)]);
    assert_eq!(h.available(1, QUOTE), DEPOSIT + 302);
    assert_eq!(h.available(1, BASE), DEPOSIT - 5);
}

#[test]
fn spot_prices_must_sit_on_the_tick_and_quantities_on_the_lot() {
    let mut h = with_spot_extras();
    h.assert_rejected(
        Command::new_order(OrderSpec::limit(1, COARSE, 1, Side::Buy, 12, 10)),
        RejectReason::PriceNotOnTick,
    );
    h.assert_rejected(
        Command::new_order(OrderSpec::limit(1, COARSE, 1, Side::Buy, 15, 15)),
        RejectReason::QuantityNotOnLot,
    );
    h.assert_rejected(
        Command::new_order(OrderSpec::limit(1, COARSE, 1, Side::Buy, 5005, 10)),
        RejectReason::InvalidPrice,
    );
    let id = h.place_id(OrderSpec::limit(1, COARSE, 1, Side::Buy, 15, 20));
    h.assert_rejected(
        Command::replace(1, id, 0, 17, 20),
        RejectReason::PriceNotOnTick,
    );
    h.assert_rejected(
        Command::replace(1, id, 0, 15, 25),
        RejectReason::QuantityNotOnLot,
    );
    h.ok(Command::replace(1, id, 0, 20, 30));
    assert_eq!(h.reserved(1, QUOTE), 600);
}

#[test]
fn a_spot_buy_cannot_reserve_more_quote_than_is_available() {
    let mut h = Harness::markets();
    h.assert_rejected(
        Command::new_order(spot(1, 1, Side::Buy, 1000, 1001)),
        RejectReason::InsufficientFunds,
    );
    h.place(spot(1, 1, Side::Buy, 1000, 1000));
    assert_eq!(h.available(1, QUOTE), 0);
    h.assert_rejected(
        Command::new_order(spot(1, 2, Side::Sell, 5, DEPOSIT as u64 + 1)),
        RejectReason::InsufficientFunds,
    );
}
