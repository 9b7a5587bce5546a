//! Binary markets: normalisation onto one YES book, position-aware
//! collateral, YES/NO netting, per-contract fees and settlement.

use ringex_core::records::*;
use ringex_core::FEE_ACCOUNT;

use crate::support::*;

fn open_interest(events: &[EventView]) -> Option<u64> {
    events.iter().rev().find_map(|e| match e {
        EventView::PositionChanged { open_interest, .. } => Some(*open_interest),
        _ => None,
    })
}

#[test]
fn yes_and_no_orders_are_normalised_onto_one_yes_book() {
    let mut h = Harness::markets();
    // BUY YES@40 -> bid 40.
    let (_, events) = h.place(yes(1, 1, Side::Buy, 40, 1));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::OrderAccepted {
            side: Side::Buy,
            price: 40,
            outcome: Outcome::Yes,
            ..
        }
    )));
    assert_eq!(h.best(BIN), (Some(40), None));
    // SELL NO@55 -> bid 45.
    let (_, events) = h.place(no(2, 1, Side::Sell, 55, 1));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::OrderAccepted {
            side: Side::Buy,
            price: 45,
            outcome: Outcome::No,
            ..
        }
    )));
    assert_eq!(h.best(BIN), (Some(45), None));
    // BUY NO@30 -> ask 70.
    h.place(no(3, 1, Side::Buy, 30, 1));
    assert_eq!(h.best(BIN), (Some(45), Some(70)));
    // SELL YES@65 -> ask 65.
    h.place(yes(4, 1, Side::Sell, 65, 1));
    assert_eq!(h.best(BIN), (Some(45), Some(65)));
    // The L2 events report YES-book sides and prices.
    let (_, events) = h.place(no(5, 1, Side::Buy, 50, 2));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::BookLevel {
            side: Side::Sell,
            price: 50,
            quantity: 2,
            orders: 1,
            ..
        }
    )));
}

#[test]
fn a_yes_buyer_and_a_no_buyer_create_contracts_and_lock_100_each() {
    let mut h = Harness::markets();
    h.place(yes(1, 1, Side::Buy, 40, 10));
    let (_, events) = h.place(no(2, 1, Side::Buy, 60, 10));
    assert_eq!(trade_prices(&events), vec![(40, 10)]);
    assert_eq!((h.position(1, BIN), h.position(2, BIN)), (10, -10));
    assert_eq!(open_interest(&events), Some(10));
    assert_eq!(h.available(1, CASH), DEPOSIT - 400);
    assert_eq!(h.available(2, CASH), DEPOSIT - 600);
    assert_eq!(h.reserved(1, CASH) + h.reserved(2, CASH), 0);
}

#[test]
fn a_no_buyer_crossing_a_yes_bid_pays_100_minus_the_yes_price() {
    let mut h = Harness::markets();
    h.place(yes(1, 1, Side::Buy, 45, 4));
    // BUY NO@60 is a YES ask at 40: it trades at the bid, 45, i.e. NO at 55.
    let (_, events) = h.place(no(2, 1, Side::Buy, 60, 4));
    assert_eq!(trade_prices(&events), vec![(45, 4)]);
    assert_eq!(h.available(2, CASH), DEPOSIT - 4 * 55);
    assert_eq!(h.reserved(2, CASH), 0);
}

#[test]
fn an_ask_against_an_existing_yes_position_reserves_no_cash() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 40, 10));
    h.place(yes(1, 1, Side::Buy, 40, 10));
    assert_eq!(h.position(1, BIN), 10);
    let before = h.balance(1, CASH);
    // Selling what it holds needs no cash.
    h.place(yes(1, 2, Side::Sell, 70, 10));
    assert_eq!(h.balance(1, CASH), before);
    // Beyond the holding, an ask reserves 100 - P per contract.
    h.place(yes(1, 3, Side::Sell, 70, 5));
    assert_eq!(h.reserved(1, CASH), 5 * 30);
    // Same for a NO buy (an ask too): nothing left to cover, so it reserves its price.
    h.place(no(1, 4, Side::Buy, 20, 2));
    assert_eq!(h.reserved(1, CASH), 5 * 30 + 2 * 20);
    // Selling the holding at 70 pays 70 per contract.
    let (_, events) = h.place(yes(3, 1, Side::Buy, 70, 10));
    assert_eq!(trade_prices(&events), vec![(70, 10)]);
    assert_eq!(h.position(1, BIN), 0);
    assert_eq!(h.available(1, CASH), DEPOSIT - 400 + 700 - 5 * 30 - 2 * 20);
}

#[test]
fn a_bid_against_an_existing_no_position_reserves_no_cash() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Buy, 30, 10));
    h.place(no(1, 1, Side::Buy, 70, 10)); // trades at YES 30: account 1 holds 10 NO
    assert_eq!(h.position(1, BIN), -10);
    assert_eq!(h.available(1, CASH), DEPOSIT - 700);
    // SELL NO@75 is a YES bid at 25, closing the NO holding: no cash.
    h.place(no(1, 2, Side::Sell, 75, 10));
    assert_eq!(h.reserved(1, CASH), 0);
    // So is BUY YES (also a bid): it is not covered any more and reserves its price.
    h.place(yes(1, 3, Side::Buy, 20, 3));
    assert_eq!(h.reserved(1, CASH), 60);
}

#[test]
fn buying_yes_then_no_nets_the_position_and_pays_100_per_pair() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 40, 10));
    h.place(yes(1, 1, Side::Buy, 40, 10));
    assert_eq!(h.available(1, CASH), DEPOSIT - 400);
    // Someone bids YES 45; account 1 buys NO at 55, which is that bid.
    h.place(yes(3, 1, Side::Buy, 45, 10));
    let (_, events) = h.place(no(1, 2, Side::Buy, 55, 10));
    assert_eq!(trade_prices(&events), vec![(45, 10)]);
    assert_eq!(h.position(1, BIN), 0);
    // -400 for YES, -550 for NO, +1000 for the 10 netted pairs.
    assert_eq!(h.available(1, CASH), DEPOSIT - 400 - 550 + 1000);
    assert_eq!(h.reserved(1, CASH), 0);
    // Open interest moved from account 1 to account 3.
    assert_eq!(open_interest(&events), Some(10));
    assert_eq!(h.position(3, BIN), 10);
}

#[test]
fn a_resting_no_bid_against_a_yes_holding_needs_no_cash_and_nets_when_filled() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 40, 10));
    h.place(yes(1, 1, Side::Buy, 40, 10));
    // BUY NO@55 rests as a YES ask at 45, covered by the YES holding.
    h.place(no(1, 2, Side::Buy, 55, 10));
    assert_eq!(h.reserved(1, CASH), 0);
    let (_, events) = h.place(yes(3, 1, Side::Buy, 45, 10));
    assert_eq!(trade_prices(&events), vec![(45, 10)]);
    assert_eq!(h.position(1, BIN), 0);
    assert_eq!(h.available(1, CASH), DEPOSIT + 50);
}

#[test]
fn a_fill_that_nets_a_committed_position_converts_the_other_orders_cover_into_reserved_cash() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 40, 10));
    h.place(yes(1, 1, Side::Buy, 40, 10));
    let covered = h.place_id(yes(1, 2, Side::Sell, 70, 10)); // covers the holding
    h.place(yes(1, 3, Side::Sell, 60, 5)); // uncovered: 5 x 40
    assert_eq!(h.reserved(1, CASH), 200);
    // The uncovered ask fills first (better price) and nets 5 of the holding
    // that the covered ask was counting on: 5 x 100 moves into its reservation.
    let (_, events) = h.place(yes(3, 1, Side::Buy, 60, 5));
    assert_eq!(trade_prices(&events), vec![(60, 5)]);
    assert_eq!(h.position(1, BIN), 5);
    assert_eq!(h.reserved(1, CASH), 500);
    assert_eq!(h.available(1, CASH), DEPOSIT - 400 + 300 - 500);
    // Filling the covered ask closes 5 and opens 5 NO at 30 each.
    let (_, events) = h.place(yes(4, 1, Side::Buy, 70, 10));
    assert_eq!(trades(&events)[0].maker_order_id, covered);
    assert_eq!(h.position(1, BIN), -5);
    assert_eq!(h.reserved(1, CASH), 0);
    // -400 + 300 (sold 5 at 60) + 350 (sold 5 at 70) - 150 (5 NO at 30).
    assert_eq!(h.available(1, CASH), DEPOSIT + 100);
}

#[test]
fn binary_fees_are_charged_per_contract_on_the_cheaper_side_and_go_to_the_fee_account() {
    let mut h = Harness::markets();
    let bid = OrderSpec {
        instrument: BIN_FEES,
        ..yes(2, 1, Side::Buy, 40, 10)
    };
    h.place(bid);
    // Reserve: 40 + ceil(min(40, 50) x 700 bps) = 40 + 3 per contract.
    assert_eq!(h.reserved(2, CASH), 430);
    let ask = OrderSpec {
        instrument: BIN_FEES,
        time_in_force: TimeInForce::Ioc,
        ..yes(1, 1, Side::Sell, 40, 10)
    };
    let (_, events) = h.place(ask);
    let fill = trades(&events)[0];
    // Maker: ceil(40 x 100 / 10000) = 1 per contract; taker: ceil(40 x 700 / 10000) = 3.
    assert_eq!((fill.maker_fee, fill.taker_fee), (10, 30));
    assert_eq!(h.balance(2, CASH).available, DEPOSIT - 400 - 10);
    assert_eq!(h.balance(2, CASH).reserved, 0);
    assert_eq!(h.balance(1, CASH).available, DEPOSIT - 600 - 30);
    assert_eq!(h.balance(FEE_ACCOUNT, CASH).available, 40);
    // The fee account may withdraw what it collected, and no more.
    h.assert_rejected(
        Command::withdraw(FEE_ACCOUNT, CASH, 41),
        RejectReason::InsufficientFunds,
    );
    h.ok(Command::withdraw(FEE_ACCOUNT, CASH, 40));
    assert_eq!(h.balance(FEE_ACCOUNT, CASH).available, 0);
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::BalanceChanged {
            account: FEE_ACCOUNT,
            asset: CASH,
            available: 40,
            ..
        }
    )));
}

#[test]
fn a_binary_fee_uses_min_of_p_and_100_minus_p() {
    let mut h = Harness::markets();
    for price in [70, 50, 99, 10, 95, 1, 43] {
        let cid = price as u64;
        h.place(OrderSpec {
            instrument: BIN_FEES,
            ..yes(2, cid, Side::Sell, price, 1)
        });
        let (_, events) = h.place(OrderSpec {
            instrument: BIN_FEES,
            ..yes(3, cid, Side::Buy, price, 1)
        });
        let fill = trades(&events)[0];
        // basis = min(P, 100 - P); maker 100 bps, taker 700 bps, rounded up.
        let basis = price.min(100 - price);
        assert_eq!(
            fill.maker_fee,
            (basis * 100 + 9_999) / 10_000,
            "maker at {price}"
        );
        assert_eq!(
            fill.taker_fee,
            (basis * 700 + 9_999) / 10_000,
            "taker at {price}"
        );
        if price == 70 {
            assert_eq!((fill.maker_fee, fill.taker_fee), (1, 3));
        }
        if price == 50 {
            assert_eq!((fill.maker_fee, fill.taker_fee), (1, 4));
        }
    }
}

#[test]
fn a_no_bid_reserves_its_cost_plus_the_worst_fee() {
    let mut h = Harness::markets();
    // BUY NO@30 rests as a YES ask at 70: cost 30, worst fee ceil(30 x 700 / 10000) = 3.
    h.place(OrderSpec {
        instrument: BIN_FEES,
        ..no(1, 1, Side::Buy, 30, 10)
    });
    assert_eq!(h.reserved(1, CASH), 330);
    // Filled as a maker at 70: pays 30 + ceil(30 x 100 / 10000) = 31 per contract.
    h.place(OrderSpec {
        instrument: BIN_FEES,
        ..yes(2, 1, Side::Buy, 70, 10)
    });
    assert_eq!(h.balance(1, CASH).available, DEPOSIT - 310);
    assert_eq!(h.balance(1, CASH).reserved, 0);
}

fn settlement_fixture() -> (Harness, Vec<u64>) {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 40, 10));
    h.place(yes(1, 1, Side::Buy, 40, 10)); // 1: +10 YES, 2: 10 NO
    h.place(no(3, 1, Side::Buy, 70, 4));
    h.place(yes(4, 1, Side::Buy, 30, 4)); // trades at 30: 4: +4 YES, 3: 4 NO
    let open = vec![
        h.place_id(yes(5, 1, Side::Buy, 20, 5)),
        h.place_id(yes(5, 2, Side::Sell, 80, 5)),
        h.place_id(yes(1, 2, Side::Sell, 90, 10)), // covered by the YES holding
        h.place_id(OrderSpec {
            order_type: OrderType::StopLimit,
            stop_price: 95,
            ..yes(6, 1, Side::Buy, 96, 1)
        }),
    ];
    (h, open)
}

#[test]
fn settling_yes_pays_100_per_yes_contract_cancels_orders_releases_reserves_and_closes() {
    let (mut h, open) = settlement_fixture();
    let events = h.ok(Command::settle(BIN, Outcome::Yes));
    let mut cancelled: Vec<u64> = cancels(&events).iter().map(|c| c.0).collect();
    cancelled.sort();
    assert_eq!(cancelled, open);
    assert!(cancels(&events)
        .iter()
        .all(|c| c.1 == CancelReason::Settlement));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::MarketSettled {
            instrument: BIN,
            outcome: Outcome::Yes,
            open_interest: 14,
            paid: 1_400
        }
    )));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::InstrumentStatusChanged {
            instrument: BIN,
            status: InstrumentStatus::Closed
        }
    )));
    assert_eq!(h.available(1, CASH), DEPOSIT - 400 + 1_000);
    assert_eq!(h.available(2, CASH), DEPOSIT - 600);
    assert_eq!(h.available(3, CASH), DEPOSIT - 280);
    assert_eq!(h.available(4, CASH), DEPOSIT - 120 + 400);
    for account in ACCOUNTS {
        assert_eq!(h.reserved(account, CASH), 0, "account {account}");
        assert_eq!(h.position(account, BIN), 0);
    }
    assert_eq!(h.engine.open_orders(), 0);
    assert_eq!(h.best(BIN), (None, None));
}

#[test]
fn settling_no_pays_100_per_no_contract() {
    let (mut h, _) = settlement_fixture();
    let events = h.ok(Command::settle(BIN, Outcome::No));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::MarketSettled {
            outcome: Outcome::No,
            open_interest: 14,
            paid: 1_400,
            ..
        }
    )));
    assert_eq!(h.available(1, CASH), DEPOSIT - 400);
    assert_eq!(h.available(2, CASH), DEPOSIT - 600 + 1_000);
    assert_eq!(h.available(3, CASH), DEPOSIT - 280 + 400);
    assert_eq!(h.available(4, CASH), DEPOSIT - 120);
}

#[test]
fn a_settled_market_rejects_everything_but_queries() {
    let (mut h, open) = settlement_fixture();
    h.ok(Command::settle(BIN, Outcome::Yes));
    h.assert_rejected(
        Command::new_order(yes(1, 9, Side::Buy, 50, 1)),
        RejectReason::InstrumentClosed,
    );
    h.assert_rejected(
        Command::settle(BIN, Outcome::No),
        RejectReason::InstrumentClosed,
    );
    h.assert_rejected(Command::halt(BIN), RejectReason::InvalidStatusTransition);
    h.assert_rejected(Command::resume(BIN), RejectReason::InvalidStatusTransition);
    h.assert_rejected(Command::cancel(5, open[0]), RejectReason::TooLate);
    // Other markets are unaffected.
    h.place(OrderSpec {
        instrument: BIN_FEES,
        ..yes(1, 9, Side::Buy, 50, 1)
    });
}

#[test]
fn a_halted_market_can_settle() {
    let (mut h, _) = settlement_fixture();
    h.ok(Command::halt(BIN));
    h.ok(Command::settle(BIN, Outcome::Yes));
    assert_eq!(h.engine.open_orders(), 0);
    assert_eq!(h.available(1, CASH), DEPOSIT + 600);
}
