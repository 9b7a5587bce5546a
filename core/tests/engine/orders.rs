//! Matching rules: price improvement, self-trade prevention, fill-or-kill,
//! post-only, GTD expiry, stops, cancel/replace, mass cancel, kill
//! switches, halts, client order ids and order ownership.

use ringex_core::records::*;

use crate::support::*;

fn ioc(spec: OrderSpec) -> OrderSpec {
    OrderSpec {
        time_in_force: TimeInForce::Ioc,
        ..spec
    }
}

fn fok(spec: OrderSpec) -> OrderSpec {
    OrderSpec {
        time_in_force: TimeInForce::Fok,
        ..spec
    }
}

fn with_stp(spec: OrderSpec, stp: SelfTradePrevention) -> OrderSpec {
    OrderSpec { stp, ..spec }
}

fn stop_limit(spec: OrderSpec, stop_price: i64) -> OrderSpec {
    OrderSpec {
        order_type: OrderType::StopLimit,
        stop_price,
        ..spec
    }
}

fn stop_market(spec: OrderSpec, stop_price: i64) -> OrderSpec {
    OrderSpec {
        order_type: OrderType::StopMarket,
        stop_price,
        price: 0,
        ..spec
    }
}

fn gtd(spec: OrderSpec, expire_time: u64) -> OrderSpec {
    OrderSpec {
        time_in_force: TimeInForce::Gtd,
        expire_time,
        ..spec
    }
}

// ---------------------------------------------------------------- price improvement

#[test]
fn a_binary_buy_at_60_hitting_an_ask_at_55_trades_at_55_and_releases_the_difference() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 55, 10));
    let (_, events) = h.place(yes(1, 1, Side::Buy, 60, 10));
    assert_eq!(trade_prices(&events), vec![(55, 10)]);
    assert_eq!(h.balance(1, CASH).reserved, 0);
    assert_eq!(h.available(1, CASH), DEPOSIT - 550);
    // The seller reserved and paid 100 - 55 per contract.
    assert_eq!(h.available(2, CASH), DEPOSIT - 450);
    assert_eq!((h.position(1, BIN), h.position(2, BIN)), (10, -10));
}

#[test]
fn a_partially_filled_buy_keeps_the_improvement_and_reserves_its_limit_for_the_rest() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 55, 4));
    let (_, events) = h.place(yes(1, 1, Side::Buy, 60, 10));
    assert_eq!(trade_prices(&events), vec![(55, 4)]);
    assert_eq!(h.reserved(1, CASH), 60 * 6);
    assert_eq!(h.available(1, CASH), DEPOSIT - 55 * 4 - 60 * 6);
    assert_eq!(h.best(BIN), (Some(60), None));
}

#[test]
fn a_sweep_trades_each_level_at_the_makers_price_best_first_and_fifo_within_a_level() {
    let mut h = Harness::markets();
    let a = h.place_id(yes(2, 1, Side::Sell, 56, 3));
    let b = h.place_id(yes(3, 1, Side::Sell, 55, 2));
    let c = h.place_id(yes(4, 1, Side::Sell, 55, 2));
    let (taker, events) = h.place(yes(1, 1, Side::Buy, 60, 6));
    let fills = trades(&events);
    let seen: Vec<(u64, i64, u64)> = fills
        .iter()
        .map(|f| (f.maker_order_id, f.price, f.qty))
        .collect();
    assert_eq!(seen, vec![(b, 55, 2), (c, 55, 2), (a, 56, 2)]);
    assert!(fills.iter().all(|f| f.taker_order_id == taker));
    assert_eq!(fills.last().unwrap().taker_leaves, 0);
    assert_eq!(fills.last().unwrap().maker_leaves, 1);
    assert_eq!(h.best(BIN), (None, Some(56)));
}

// ---------------------------------------------------------------- self-trade prevention

#[test]
fn stp_cancel_taker_cancels_the_incoming_remainder_and_keeps_the_resting_order() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 54, 5));
    let own = h.place_id(yes(1, 1, Side::Sell, 55, 5));
    let spec = with_stp(
        yes(1, 2, Side::Buy, 60, 10),
        SelfTradePrevention::CancelTaker,
    );
    let (taker, events) = h.place(spec);
    assert_eq!(trade_prices(&events), vec![(54, 5)]);
    assert_eq!(cancels(&events), vec![(taker, CancelReason::SelfTrade, 5)]);
    assert_eq!(h.best(BIN), (None, Some(55)));
    // The resting order is untouched and still cancellable.
    assert_eq!(
        cancels(&h.ok(Command::cancel(1, own))),
        vec![(own, CancelReason::User, 5)]
    );
}

#[test]
fn stp_cancel_maker_cancels_the_resting_order_and_keeps_matching() {
    let mut h = Harness::markets();
    let own = h.place_id(yes(1, 1, Side::Sell, 55, 5));
    let other = h.place_id(yes(2, 1, Side::Sell, 56, 5));
    let spec = with_stp(
        yes(1, 2, Side::Buy, 60, 10),
        SelfTradePrevention::CancelMaker,
    );
    let (_, events) = h.place(spec);
    assert_eq!(cancels(&events), vec![(own, CancelReason::SelfTrade, 5)]);
    let fills = trades(&events);
    assert_eq!(fills.len(), 1);
    assert_eq!(
        (fills[0].maker_order_id, fills[0].price, fills[0].qty),
        (other, 56, 5)
    );
    // The rest of the taker rests.
    assert_eq!(h.best(BIN), (Some(60), None));
    assert_eq!(h.reserved(1, CASH), 5 * 60);
}

#[test]
fn stp_cancel_both_cancels_the_resting_and_the_incoming_order() {
    let mut h = Harness::markets();
    let own = h.place_id(yes(1, 1, Side::Sell, 55, 5));
    h.place(yes(2, 1, Side::Sell, 56, 5));
    let spec = with_stp(
        yes(1, 2, Side::Buy, 60, 10),
        SelfTradePrevention::CancelBoth,
    );
    let (taker, events) = h.place(spec);
    assert!(trades(&events).is_empty());
    assert_eq!(
        cancels(&events),
        vec![
            (own, CancelReason::SelfTrade, 5),
            (taker, CancelReason::SelfTrade, 10)
        ]
    );
    assert_eq!(h.best(BIN), (None, Some(56)));
    assert_eq!(h.reserved(1, CASH), 0);
}

#[test]
fn stp_none_lets_an_account_trade_with_itself_without_changing_its_position_or_cash() {
    let mut h = Harness::markets();
    let own = h.place_id(yes(1, 1, Side::Sell, 55, 5));
    let (taker, events) = h.place(yes(1, 2, Side::Buy, 60, 5));
    let fills = trades(&events);
    assert_eq!(fills.len(), 1);
    assert_eq!(
        (fills[0].maker_order_id, fills[0].taker_order_id),
        (own, taker)
    );
    assert_eq!((fills[0].maker_account, fills[0].taker_account), (1, 1));
    assert_eq!(h.position(1, BIN), 0);
    assert_eq!(h.balance(1, CASH).available, DEPOSIT);
    assert_eq!(h.balance(1, CASH).reserved, 0);
}

#[test]
fn stp_only_applies_to_the_same_account() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 55, 5));
    let spec = with_stp(yes(1, 1, Side::Buy, 60, 5), SelfTradePrevention::CancelBoth);
    let (_, events) = h.place(spec);
    assert_eq!(trade_prices(&events), vec![(55, 5)]);
    assert!(cancels(&events).is_empty());
}

// ---------------------------------------------------------------- fill or kill

#[test]
fn a_fok_that_cannot_fill_completely_emits_no_trade_and_leaves_the_book_untouched() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 55, 4));
    h.place(yes(3, 1, Side::Sell, 58, 5));
    h.place(yes(4, 1, Side::Sell, 61, 100)); // beyond the limit: does not count
    let digest_book = (h.best(BIN), h.engine.open_orders());
    let (id, events) = h.place(fok(yes(1, 1, Side::Buy, 60, 10)));
    assert!(trades(&events).is_empty());
    assert_eq!(cancels(&events), vec![(id, CancelReason::FokUnfilled, 10)]);
    assert!(!events
        .iter()
        .any(|e| matches!(e, EventView::BookLevel { .. })));
    assert_eq!((h.best(BIN), h.engine.open_orders()), digest_book);
    assert_eq!(
        h.balance(1, CASH),
        ringex_core::Balance {
            available: DEPOSIT,
            reserved: 0
        }
    );
    // One more lot makes it fillable, across two levels.
    h.place(yes(5, 1, Side::Sell, 60, 1));
    let (_, events) = h.place(fok(yes(1, 2, Side::Buy, 60, 10)));
    assert_eq!(trade_prices(&events), vec![(55, 4), (58, 5), (60, 1)]);
}

#[test]
fn a_fok_with_stp_cancel_taker_is_killed_when_its_own_order_is_in_the_way() {
    let mut h = Harness::markets();
    let own = h.place_id(yes(1, 1, Side::Sell, 55, 5));
    h.place(yes(2, 1, Side::Sell, 56, 20));
    let digest = h.engine.state_digest();
    let spec = fok(with_stp(
        yes(1, 2, Side::Buy, 60, 10),
        SelfTradePrevention::CancelTaker,
    ));
    let (id, events) = h.place(spec);
    assert!(trades(&events).is_empty());
    assert_eq!(cancels(&events), vec![(id, CancelReason::FokUnfilled, 10)]);
    // Only the taker's bookkeeping moved (ids, the finished client id).
    assert_ne!(h.engine.state_digest(), digest);
    assert_eq!(h.best(BIN), (None, Some(55)));
    assert_eq!(cancels(&h.ok(Command::cancel(1, own))).len(), 1);
}

#[test]
fn a_fok_with_stp_cancel_maker_counts_only_other_accounts_liquidity() {
    let mut h = Harness::markets();
    let own = h.place_id(yes(1, 1, Side::Sell, 55, 5));
    h.place(yes(2, 1, Side::Sell, 56, 8));
    // 8 from others: a FOK for 10 is killed, and the own order survives.
    let spec = fok(with_stp(
        yes(1, 2, Side::Buy, 60, 10),
        SelfTradePrevention::CancelMaker,
    ));
    let (id, events) = h.place(spec);
    assert!(trades(&events).is_empty());
    assert_eq!(cancels(&events), vec![(id, CancelReason::FokUnfilled, 10)]);
    assert_eq!(h.best(BIN), (None, Some(55)));
    // 8 + 2 from others: it fills, cancelling the own order on the way.
    h.place(yes(3, 1, Side::Sell, 57, 2));
    let spec = fok(with_stp(
        yes(1, 3, Side::Buy, 60, 10),
        SelfTradePrevention::CancelMaker,
    ));
    let (_, events) = h.place(spec);
    assert_eq!(cancels(&events), vec![(own, CancelReason::SelfTrade, 5)]);
    assert_eq!(trade_prices(&events), vec![(56, 8), (57, 2)]);
}

#[test]
fn a_fok_with_stp_none_counts_its_own_resting_orders() {
    let mut h = Harness::markets();
    h.place(yes(1, 1, Side::Sell, 55, 5));
    h.place(yes(2, 1, Side::Sell, 56, 5));
    let (_, events) = h.place(fok(yes(1, 2, Side::Buy, 60, 10)));
    assert_eq!(trade_prices(&events), vec![(55, 5), (56, 5)]);
}

// ---------------------------------------------------------------- post-only

#[test]
fn a_post_only_order_that_would_cross_is_rejected_and_one_that_would_not_rests() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 55, 5));
    let crossing = OrderSpec {
        post_only: true,
        ..yes(1, 1, Side::Buy, 55, 5)
    };
    h.assert_rejected(
        Command::new_order(crossing),
        RejectReason::PostOnlyWouldCross,
    );
    let passive = OrderSpec {
        post_only: true,
        ..yes(1, 1, Side::Buy, 54, 5)
    };
    let (_, events) = h.place(passive);
    assert!(trades(&events).is_empty());
    assert_eq!(h.best(BIN), (Some(54), Some(55)));
    // Same rule on the NO leg: BUY NO@46 is a YES ask at 54, which crosses the YES bid at 54.
    let no_crossing = OrderSpec {
        post_only: true,
        ..no(3, 1, Side::Buy, 46, 5)
    };
    h.assert_rejected(
        Command::new_order(no_crossing),
        RejectReason::PostOnlyWouldCross,
    );
}

#[test]
fn a_post_only_replace_to_a_crossing_price_is_rejected() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 55, 5));
    let id = h.place_id(OrderSpec {
        post_only: true,
        ..yes(1, 1, Side::Buy, 50, 5)
    });
    h.assert_rejected(
        Command::replace(1, id, 0, 55, 5),
        RejectReason::PostOnlyWouldCross,
    );
    h.ok(Command::replace(1, id, 0, 54, 5));
    assert_eq!(h.best(BIN), (Some(54), Some(55)));
}

#[test]
fn a_triggered_post_only_stop_limit_that_would_cross_is_cancelled() {
    let mut h = Harness::markets();
    h.place(yes(2, 1, Side::Sell, 58, 5));
    let id = h.place_id(OrderSpec {
        post_only: true,
        ..stop_limit(yes(1, 1, Side::Buy, 60, 5), 50)
    });
    h.place(yes(3, 1, Side::Buy, 50, 1));
    let events = h.ok(Command::new_order(yes(4, 1, Side::Sell, 50, 1)));
    assert_eq!(triggered(&events), vec![id]);
    assert_eq!(
        cancels(&events),
        vec![(id, CancelReason::PostOnlyWouldCross, 5)]
    );
    assert_eq!(trade_prices(&events), vec![(50, 1)]);
    assert_eq!(h.reserved(1, CASH), 0);
}

// ---------------------------------------------------------------- GTD

#[test]
fn a_gtd_order_rests_until_a_timer_tick_reaches_its_expiry_and_then_releases_its_reserve() {
    let mut h = Harness::markets();
    let expiry = h.ts + 5_000;
    let id = h.place_id(gtd(yes(1, 1, Side::Buy, 40, 10), expiry));
    let forever = h.place_id(yes(1, 2, Side::Buy, 39, 10));
    assert_eq!(h.reserved(1, CASH), 790);
    h.ts = expiry - 1;
    assert!(cancels(&h.ok(Command::timer_tick())).is_empty());
    assert_eq!(h.best(BIN), (Some(40), None));
    h.ts = expiry;
    let events = h.ok(Command::timer_tick());
    assert_eq!(cancels(&events), vec![(id, CancelReason::Expired, 10)]);
    assert_eq!(h.best(BIN), (Some(39), None));
    assert_eq!(h.reserved(1, CASH), 390);
    // Much later: the GTC order is still there.
    h.ts += 1_000_000_000;
    assert!(cancels(&h.ok(Command::timer_tick())).is_empty());
    assert_eq!(cancels(&h.ok(Command::cancel(1, forever))).len(), 1);
}

#[test]
fn gtd_orders_expire_in_expiry_order_within_one_tick_even_partially_filled() {
    let mut h = Harness::markets();
    let t = h.ts;
    let late = h.place_id(gtd(yes(1, 1, Side::Buy, 40, 10), t + 300));
    let early = h.place_id(gtd(yes(2, 1, Side::Buy, 41, 10), t + 100));
    let middle = h.place_id(gtd(yes(3, 1, Side::Buy, 42, 10), t + 200));
    h.place(ioc(yes(4, 1, Side::Sell, 42, 4)));
    h.ts = t + 1_000;
    let events = h.ok(Command::timer_tick());
    assert_eq!(
        cancels(&events),
        vec![
            (early, CancelReason::Expired, 10),
            (middle, CancelReason::Expired, 6),
            (late, CancelReason::Expired, 10),
        ]
    );
    assert_eq!(h.engine.open_orders(), 0);
}

#[test]
fn a_gtd_order_expiring_at_or_before_the_command_time_is_rejected() {
    let mut h = Harness::markets();
    let now = h.ts;
    h.assert_rejected(
        Command::new_order(gtd(yes(1, 1, Side::Buy, 40, 1), now)),
        RejectReason::ExpireTimeInPast,
    );
    h.assert_rejected(
        Command::new_order(gtd(yes(1, 1, Side::Buy, 40, 1), now - 1)),
        RejectReason::ExpireTimeInPast,
    );
    h.place(gtd(yes(1, 1, Side::Buy, 40, 1), now + 1));
}

#[test]
fn a_pending_gtd_stop_expires_too() {
    let mut h = Harness::markets();
    let id = h.place_id(gtd(stop_limit(yes(1, 1, Side::Buy, 60, 3), 55), h.ts + 10));
    assert_eq!(h.reserved(1, CASH), 180);
    h.ts += 10;
    let events = h.ok(Command::timer_tick());
    assert_eq!(cancels(&events), vec![(id, CancelReason::Expired, 3)]);
    assert_eq!(h.reserved(1, CASH), 0);
}

#[test]
fn a_replaced_gtd_order_keeps_its_expiry() {
    let mut h = Harness::markets();
    let expiry = h.ts + 100;
    let id = h.place_id(gtd(yes(1, 1, Side::Buy, 40, 10), expiry));
    h.ok(Command::replace(1, id, 0, 41, 12));
    h.ok(Command::replace(1, id, 0, 41, 5));
    h.ts = expiry;
    assert_eq!(
        cancels(&h.ok(Command::timer_tick())),
        vec![(id, CancelReason::Expired, 5)]
    );
}

// ---------------------------------------------------------------- stops

#[test]
fn a_stop_does_not_trigger_until_the_last_trade_price_reaches_it() {
    let mut h = Harness::markets();
    let buy_stop = h.place_id(stop_market(yes(1, 1, Side::Buy, 0, 1), 55));
    let sell_stop = h.place_id(stop_market(yes(1, 2, Side::Sell, 0, 1), 45));
    assert_eq!(h.best(BIN), (None, None));
    // Trades at 54 and 46 reach neither.
    for price in [54, 46] {
        h.place(yes(2, 0, Side::Buy, price, 1));
        let events = h.ok(Command::new_order(yes(3, 0, Side::Sell, price, 1)));
        assert!(triggered(&events).is_empty(), "triggered at {price}");
    }
    // Provide liquidity for the buy stop, then trade at 55.
    h.place(yes(4, 0, Side::Sell, 70, 1));
    h.place(yes(2, 0, Side::Buy, 55, 1));
    let events = h.ok(Command::new_order(yes(3, 0, Side::Sell, 55, 1)));
    assert_eq!(triggered(&events), vec![buy_stop]);
    assert_eq!(trade_prices(&events), vec![(55, 1), (70, 1)]);
    // The stop-market bought at 70: now the last price is 70, the sell stop is still pending.
    assert_eq!(h.engine.open_orders(), 1);
    h.place(yes(2, 0, Side::Buy, 30, 1));
    h.place(yes(2, 0, Side::Buy, 45, 1));
    let events = h.ok(Command::new_order(yes(3, 0, Side::Sell, 45, 1)));
    assert_eq!(triggered(&events), vec![sell_stop]);
    assert_eq!(trade_prices(&events), vec![(45, 1), (30, 1)]);
}

#[test]
fn stops_due_together_trigger_lowest_buy_stop_first_then_fifo_within_a_price() {
    let mut h = Harness::markets();
    // Stop-limits whose limits rest far from the book, so no trade moves the last price.
    let b53 = h.place_id(stop_limit(yes(1, 1, Side::Buy, 10, 1), 53));
    let b52_first = h.place_id(stop_limit(yes(1, 2, Side::Buy, 11, 1), 52));
    let b52_second = h.place_id(stop_limit(yes(2, 1, Side::Buy, 12, 1), 52));
    let b55 = h.place_id(stop_limit(yes(2, 2, Side::Buy, 13, 1), 55));
    h.place(yes(3, 0, Side::Buy, 54, 1));
    let events = h.ok(Command::new_order(yes(4, 0, Side::Sell, 54, 1)));
    assert_eq!(triggered(&events), vec![b52_first, b52_second, b53]);
    assert_eq!(h.best(BIN), (Some(12), None));
    assert_eq!(h.engine.open_orders(), 4); // three triggered limits rest, b55 waits
    let _ = b55;
}

#[test]
fn sell_stops_due_together_trigger_highest_first() {
    let mut h = Harness::markets();
    let s47 = h.place_id(stop_limit(yes(1, 1, Side::Sell, 90, 1), 47));
    let s48 = h.place_id(stop_limit(yes(1, 2, Side::Sell, 91, 1), 48));
    let s44 = h.place_id(stop_limit(yes(1, 3, Side::Sell, 92, 1), 44));
    h.place(yes(3, 0, Side::Buy, 46, 1));
    let events = h.ok(Command::new_order(yes(4, 0, Side::Sell, 46, 1)));
    assert_eq!(triggered(&events), vec![s48, s47]);
    let _ = s44;
}

#[test]
fn buy_stops_trigger_before_sell_stops_when_one_trade_reaches_both() {
    let mut h = Harness::markets();
    let sell = h.place_id(stop_limit(yes(1, 1, Side::Sell, 90, 1), 52));
    let buy = h.place_id(stop_limit(yes(2, 1, Side::Buy, 10, 1), 48));
    h.place(yes(3, 0, Side::Buy, 50, 1));
    let events = h.ok(Command::new_order(yes(4, 0, Side::Sell, 50, 1)));
    assert_eq!(triggered(&events), vec![buy, sell]);
}

#[test]
fn triggered_stops_cascade_within_one_command_as_their_trades_move_the_last_price() {
    let mut h = Harness::markets();
    // Asks the stops will lift, one lot per level.
    for (i, price) in [55, 56, 57].into_iter().enumerate() {
        h.place(yes(5, i as u64 + 1, Side::Sell, price, 1));
    }
    let a = h.place_id(stop_market(yes(1, 1, Side::Buy, 0, 1), 52));
    let b = h.place_id(stop_limit(yes(2, 1, Side::Buy, 60, 1), 51));
    let c = h.place_id(stop_market(yes(3, 1, Side::Buy, 0, 1), 53));
    let far = h.place_id(stop_limit(yes(3, 2, Side::Buy, 60, 1), 58));
    // A trade at 51 releases b only; b lifts 55, which releases a (52) then c (53).
    h.place(yes(4, 0, Side::Buy, 51, 1));
    let events = h.ok(Command::new_order(yes(6, 0, Side::Sell, 51, 1)));
    assert_eq!(triggered(&events), vec![b, a, c]);
    assert_eq!(
        trade_prices(&events),
        vec![(51, 1), (55, 1), (56, 1), (57, 1)]
    );
    let takers: Vec<u64> = trades(&events)[1..]
        .iter()
        .map(|f| f.taker_order_id)
        .collect();
    assert_eq!(takers, vec![b, a, c]);
    // The stop at 58 was not reached (last is 57).
    assert_eq!(h.engine.open_orders(), 1);
    assert_eq!(
        cancels(&h.ok(Command::cancel(3, far))),
        vec![(far, CancelReason::User, 1)]
    );
    assert_eq!(
        (h.position(1, BIN), h.position(2, BIN), h.position(3, BIN)),
        (1, 1, 1)
    );
}

#[test]
fn a_triggered_stop_limit_rests_at_its_limit_when_it_cannot_fill() {
    let mut h = Harness::markets();
    h.place(yes(5, 1, Side::Sell, 65, 3));
    let id = h.place_id(stop_limit(yes(1, 1, Side::Buy, 60, 3), 50));
    assert_eq!(h.best(BIN), (None, Some(65)));
    h.place(yes(3, 0, Side::Buy, 50, 1));
    let events = h.ok(Command::new_order(yes(4, 0, Side::Sell, 50, 1)));
    assert_eq!(triggered(&events), vec![id]);
    assert_eq!(h.best(BIN), (Some(60), Some(65)));
    assert_eq!(h.reserved(1, CASH), 180);
}

#[test]
fn a_stop_whose_trigger_the_last_price_already_passed_triggers_on_entry() {
    let mut h = Harness::markets();
    h.place(yes(3, 0, Side::Buy, 50, 1));
    h.place(yes(4, 0, Side::Sell, 50, 1));
    h.place(yes(5, 0, Side::Sell, 60, 1));
    let (id, events) = h.place(stop_market(yes(1, 1, Side::Buy, 0, 1), 45));
    assert_eq!(triggered(&events), vec![id]);
    assert_eq!(trade_prices(&events), vec![(60, 1)]);
}

#[test]
fn a_no_leg_stop_triggers_on_the_yes_price_mirrored() {
    let mut h = Harness::markets();
    // BUY NO, stop 40: a YES sell stop at 60, due when YES trades at 60 or lower.
    h.place(yes(5, 1, Side::Buy, 30, 5));
    let id = h.place_id(stop_market(no(1, 1, Side::Buy, 0, 2), 40));
    h.place(yes(3, 0, Side::Buy, 61, 1));
    let events = h.ok(Command::new_order(yes(4, 0, Side::Sell, 61, 1)));
    assert!(triggered(&events).is_empty());
    h.place(yes(3, 0, Side::Buy, 60, 1));
    let events = h.ok(Command::new_order(yes(4, 0, Side::Sell, 60, 1)));
    assert_eq!(triggered(&events), vec![id]);
    // It sold YES at 30: bought NO at 70.
    assert_eq!(trade_prices(&events), vec![(60, 1), (30, 2)]);
    assert_eq!(h.position(1, BIN), -2);
    assert_eq!(h.available(1, CASH), DEPOSIT - 2 * 70);
}

// ---------------------------------------------------------------- cancel / replace

#[test]
fn a_quantity_reduction_keeps_time_priority() {
    let mut h = Harness::markets();
    let first = h.place_id(yes(1, 1, Side::Buy, 50, 10));
    let second = h.place_id(yes(2, 1, Side::Buy, 50, 10));
    let events = h.ok(Command::replace(1, first, 0, 50, 6));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::OrderReplaced { order_id, kept_priority: true, quantity: 6, leaves: 6, .. } if *order_id == first
    )));
    assert_eq!(h.reserved(1, CASH), 300);
    let (_, events) = h.place(yes(3, 1, Side::Sell, 50, 8));
    let makers = maker_fills(&events);
    assert_eq!(makers, vec![(first, 6), (second, 2)]);
}

#[test]
fn a_price_change_loses_time_priority() {
    let mut h = Harness::markets();
    let first = h.place_id(yes(1, 1, Side::Buy, 49, 10));
    let second = h.place_id(yes(2, 1, Side::Buy, 50, 10));
    let events = h.ok(Command::replace(1, first, 0, 50, 10));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::OrderReplaced {
            kept_priority: false,
            price: 50,
            ..
        }
    )));
    let (_, events) = h.place(yes(3, 1, Side::Sell, 50, 12));
    let makers = maker_fills(&events);
    assert_eq!(makers, vec![(second, 10), (first, 2)]);
}

#[test]
fn a_quantity_increase_loses_time_priority() {
    let mut h = Harness::markets();
    let first = h.place_id(yes(1, 1, Side::Buy, 50, 10));
    let second = h.place_id(yes(2, 1, Side::Buy, 50, 10));
    let events = h.ok(Command::replace(1, first, 0, 50, 11));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::OrderReplaced {
            kept_priority: false,
            quantity: 11,
            ..
        }
    )));
    assert_eq!(h.reserved(1, CASH), 550);
    let (_, events) = h.place(yes(3, 1, Side::Sell, 50, 12));
    let makers = maker_fills(&events);
    assert_eq!(makers, vec![(second, 10), (first, 2)]);
}

#[test]
fn a_replace_counts_the_new_quantity_against_what_has_already_filled() {
    let mut h = Harness::markets();
    let id = h.place_id(yes(1, 1, Side::Buy, 50, 10));
    h.place(ioc(yes(2, 1, Side::Sell, 50, 4)));
    h.assert_rejected(
        Command::replace(1, id, 0, 50, 4),
        RejectReason::ReplaceQuantityTooLow,
    );
    let events = h.ok(Command::replace(1, id, 0, 50, 5));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::OrderReplaced {
            quantity: 5,
            leaves: 1,
            kept_priority: true,
            ..
        }
    )));
    assert_eq!(h.reserved(1, CASH), 50);
    assert_eq!(h.best(BIN), (Some(50), None));
}

#[test]
fn a_replace_that_crosses_trades_immediately_and_rests_the_rest() {
    let mut h = Harness::markets();
    let id = h.place_id(yes(1, 1, Side::Buy, 50, 10));
    let ask = h.place_id(yes(2, 1, Side::Sell, 55, 4));
    let events = h.ok(Command::replace(1, id, 0, 56, 10));
    let first_replace = events
        .iter()
        .position(|e| matches!(e, EventView::OrderReplaced { .. }))
        .unwrap();
    let first_trade = events
        .iter()
        .position(|e| matches!(e, EventView::Trade { .. }))
        .unwrap();
    assert!(first_replace < first_trade);
    let fills = trades(&events);
    assert_eq!(fills.len(), 1);
    assert_eq!(
        (
            fills[0].maker_order_id,
            fills[0].taker_order_id,
            fills[0].price,
            fills[0].qty
        ),
        (ask, id, 55, 4)
    );
    assert_eq!(h.best(BIN), (Some(56), None));
    assert_eq!(h.reserved(1, CASH), 6 * 56);
    assert_eq!(h.available(1, CASH), DEPOSIT - 4 * 55 - 6 * 56);
}

#[test]
fn a_replace_moves_the_reservation_up_and_down_exactly() {
    let mut h = Harness::markets();
    let id = h.place_id(spot(1, 1, Side::Buy, 100, 10));
    assert_eq!(h.reserved(1, QUOTE), 1_000);
    h.ok(Command::replace(1, id, 0, 80, 10));
    assert_eq!(h.reserved(1, QUOTE), 800);
    h.ok(Command::replace(1, id, 0, 80, 25));
    assert_eq!(h.reserved(1, QUOTE), 2_000);
    assert_eq!(h.available(1, QUOTE), DEPOSIT - 2_000);
}

#[test]
fn a_replace_of_a_no_order_takes_its_price_in_no_terms() {
    let mut h = Harness::markets();
    let id = h.place_id(no(1, 1, Side::Buy, 60, 5));
    assert_eq!(h.best(BIN), (None, Some(40)));
    h.ok(Command::replace(1, id, 0, 62, 5));
    assert_eq!(h.best(BIN), (None, Some(38)));
    assert_eq!(h.reserved(1, CASH), 5 * 62);
}

#[test]
fn replacing_or_cancelling_a_finished_order_is_too_late() {
    let mut h = Harness::markets();
    let filled = h.place_id(yes(1, 1, Side::Buy, 50, 5));
    h.place(yes(2, 1, Side::Sell, 50, 5));
    let cancelled = h.place_id(yes(1, 2, Side::Buy, 40, 5));
    h.ok(Command::cancel(1, cancelled));
    for id in [filled, cancelled] {
        h.assert_rejected(Command::replace(1, id, 0, 45, 5), RejectReason::TooLate);
        h.assert_rejected(Command::cancel(1, id), RejectReason::TooLate);
    }
    h.assert_rejected(Command::cancel_by_client_id(1, 1), RejectReason::TooLate);
    h.assert_rejected(
        Command::replace_by_client_id(1, 2, 0, 45, 5),
        RejectReason::TooLate,
    );
}

#[test]
fn a_pending_stop_cannot_be_replaced_but_can_be_cancelled() {
    let mut h = Harness::markets();
    let id = h.place_id(stop_limit(yes(1, 1, Side::Buy, 60, 5), 55));
    h.assert_rejected(
        Command::replace(1, id, 0, 61, 5),
        RejectReason::ReplaceNotAllowed,
    );
    assert_eq!(
        cancels(&h.ok(Command::cancel(1, id))),
        vec![(id, CancelReason::User, 5)]
    );
    assert_eq!(h.reserved(1, CASH), 0);
}

#[test]
fn a_replace_under_a_new_client_id_retires_the_old_one() {
    let mut h = Harness::markets();
    let id = h.place_id(yes(1, 10, Side::Buy, 50, 5));
    let events = h.ok(Command::replace_by_client_id(1, 10, 11, 50, 4));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::OrderReplaced {
            client_order_id: 11,
            orig_client_order_id: 10,
            ..
        }
    )));
    // The old id is finished: too late to use it, and it is still a duplicate.
    h.assert_rejected(Command::cancel_by_client_id(1, 10), RejectReason::TooLate);
    h.assert_rejected(
        Command::new_order(yes(1, 10, Side::Buy, 40, 1)),
        RejectReason::DuplicateClientOrderId,
    );
    // A replace to a client id already in use is a duplicate.
    h.place(yes(1, 12, Side::Buy, 40, 1));
    h.assert_rejected(
        Command::replace(1, id, 12, 50, 3),
        RejectReason::DuplicateClientOrderId,
    );
    assert_eq!(
        cancels(&h.ok(Command::cancel_by_client_id(1, 11))),
        vec![(id, CancelReason::User, 4)]
    );
}

#[test]
fn cancel_by_client_order_id_finds_the_accounts_own_order() {
    let mut h = Harness::markets();
    let mine = h.place_id(yes(1, 42, Side::Buy, 50, 5));
    let theirs = h.place_id(yes(2, 42, Side::Buy, 49, 5));
    let events = h.ok(Command::cancel_by_client_id(2, 42));
    assert_eq!(cancels(&events), vec![(theirs, CancelReason::User, 5)]);
    assert_eq!(h.best(BIN), (Some(50), None));
    h.assert_rejected(Command::cancel_by_client_id(2, 42), RejectReason::TooLate);
    h.assert_rejected(
        Command::cancel_by_client_id(3, 42),
        RejectReason::UnknownOrder,
    );
    h.assert_rejected(
        Command::cancel_by_client_id(1, 0),
        RejectReason::UnknownOrder,
    );
    assert_eq!(
        cancels(&h.ok(Command::cancel_by_client_id(1, 42)))[0].0,
        mine
    );
}

#[test]
fn an_account_can_never_cancel_or_replace_another_accounts_order() {
    let mut h = Harness::markets();
    let id = h.place_id(yes(1, 7, Side::Buy, 50, 5));
    let stop = h.place_id(stop_limit(yes(1, 8, Side::Buy, 60, 5), 55));
    for target in [id, stop] {
        h.assert_rejected(Command::cancel(2, target), RejectReason::UnknownOrder);
        h.assert_rejected(
            Command::replace(2, target, 0, 51, 5),
            RejectReason::UnknownOrder,
        );
    }
    h.assert_rejected(
        Command::cancel_by_client_id(2, 7),
        RejectReason::UnknownOrder,
    );
    h.assert_rejected(
        Command::replace_by_client_id(2, 7, 0, 51, 5),
        RejectReason::UnknownOrder,
    );
    // Account 2's mass cancel and kill switch do not reach account 1's orders.
    let events = h.ok(Command::mass_cancel(2, None));
    assert!(cancels(&events).is_empty());
    let events = h.ok(Command::kill_switch(Some(2), true));
    assert!(cancels(&events).is_empty());
    assert_eq!(h.engine.open_orders(), 2);
}

#[test]
fn a_duplicate_client_order_id_is_rejected_with_no_side_effect_whether_live_or_finished() {
    let mut h = Harness::markets();
    h.place(yes(1, 5, Side::Buy, 50, 5));
    h.assert_rejected(
        Command::new_order(yes(1, 5, Side::Sell, 60, 1)),
        RejectReason::DuplicateClientOrderId,
    );
    // Finished by a fill: still a duplicate.
    h.place(yes(2, 1, Side::Sell, 50, 5));
    h.assert_rejected(
        Command::new_order(yes(1, 5, Side::Buy, 50, 1)),
        RejectReason::DuplicateClientOrderId,
    );
    // Also for an IOC that never rested.
    h.place(ioc(spot(1, 6, Side::Buy, 10, 1)));
    h.assert_rejected(
        Command::new_order(spot(1, 6, Side::Buy, 10, 1)),
        RejectReason::DuplicateClientOrderId,
    );
    // Another account may use the same id; client id 0 means "none" and never collides.
    h.place(yes(2, 5, Side::Buy, 40, 1));
    h.place(yes(1, 0, Side::Buy, 40, 1));
    h.place(yes(1, 0, Side::Buy, 40, 1));
}

// ---------------------------------------------------------------- mass cancel, kill switch, halt

#[test]
fn mass_cancel_without_an_instrument_cancels_all_of_the_accounts_orders_only() {
    let mut h = Harness::markets();
    let a = h.place_id(yes(1, 1, Side::Buy, 40, 1));
    let b = h.place_id(spot(1, 2, Side::Sell, 600, 1));
    let c = h.place_id(stop_limit(yes(1, 3, Side::Buy, 60, 1), 70));
    h.place(yes(2, 1, Side::Buy, 41, 1));
    let events = h.ok(Command::mass_cancel(1, None));
    let mut cancelled: Vec<(u64, CancelReason)> =
        cancels(&events).iter().map(|c| (c.0, c.1)).collect();
    cancelled.sort();
    assert_eq!(
        cancelled,
        vec![
            (a, CancelReason::MassCancel),
            (b, CancelReason::MassCancel),
            (c, CancelReason::MassCancel)
        ]
    );
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::Ack {
            command: CommandKind::MassCancel,
            value: 3,
            ..
        }
    )));
    assert_eq!(h.engine.open_orders(), 1);
    assert_eq!((h.reserved(1, CASH), h.reserved(1, BASE)), (0, 0));
}

#[test]
fn mass_cancel_of_one_instrument_leaves_the_accounts_other_orders() {
    let mut h = Harness::markets();
    let a = h.place_id(yes(1, 1, Side::Buy, 40, 1));
    let b = h.place_id(yes(1, 2, Side::Buy, 41, 1));
    h.place(spot(1, 3, Side::Sell, 600, 1));
    h.place(OrderSpec {
        instrument: BIN_FEES,
        ..yes(1, 4, Side::Buy, 40, 1)
    });
    let events = h.ok(Command::mass_cancel(1, Some(BIN)));
    assert_eq!(
        cancels(&events),
        vec![
            (a, CancelReason::MassCancel, 1),
            (b, CancelReason::MassCancel, 1)
        ]
    );
    assert_eq!(h.engine.open_orders(), 2);
    assert_eq!(h.best(BIN), (None, None));
    assert_eq!(h.best(SPOT), (None, Some(600)));
}

#[test]
fn an_account_kill_switch_cancels_its_orders_blocks_new_ones_and_can_be_turned_off() {
    let mut h = Harness::markets();
    let a = h.place_id(yes(1, 1, Side::Buy, 40, 1));
    let stop = h.place_id(stop_limit(yes(1, 2, Side::Buy, 60, 1), 70));
    let other = h.place_id(yes(2, 1, Side::Buy, 41, 1));
    let events = h.ok(Command::kill_switch(Some(1), true));
    assert_eq!(
        cancels(&events),
        vec![
            (a, CancelReason::KillSwitch, 1),
            (stop, CancelReason::KillSwitch, 1)
        ]
    );
    h.assert_rejected(
        Command::new_order(yes(1, 3, Side::Buy, 40, 1)),
        RejectReason::KillSwitchActive,
    );
    // Others trade on.
    h.place(yes(2, 2, Side::Buy, 42, 1));
    h.ok(Command::kill_switch(Some(1), false));
    h.place(yes(1, 3, Side::Buy, 40, 1));
    assert_eq!(h.engine.open_orders(), 3);
    let _ = other;
}

#[test]
fn the_global_kill_switch_cancels_everyones_orders_and_blocks_all_until_turned_off() {
    let mut h = Harness::markets();
    for account in 1..=4 {
        h.place(yes(account, 1, Side::Buy, 40, 1));
        h.place(spot(account, 2, Side::Sell, 600, 1));
    }
    let events = h.ok(Command::kill_switch(None, true));
    assert_eq!(cancels(&events).len(), 8);
    assert!(cancels(&events)
        .iter()
        .all(|c| c.1 == CancelReason::KillSwitch));
    assert_eq!(h.engine.open_orders(), 0);
    for account in 1..=4 {
        h.assert_rejected(
            Command::new_order(yes(account, 3, Side::Buy, 40, 1)),
            RejectReason::KillSwitchActive,
        );
    }
    // An account switch stays on when the global one goes off.
    h.ok(Command::kill_switch(Some(2), true));
    h.ok(Command::kill_switch(None, false));
    h.place(yes(1, 3, Side::Buy, 40, 1));
    h.assert_rejected(
        Command::new_order(yes(2, 3, Side::Buy, 40, 1)),
        RejectReason::KillSwitchActive,
    );
}

#[test]
fn a_halted_instrument_rejects_new_orders_and_replaces_but_allows_cancels_until_resumed() {
    let mut h = Harness::markets();
    let id = h.place_id(yes(1, 1, Side::Buy, 40, 2));
    let other = h.place_id(yes(1, 2, Side::Buy, 39, 2));
    let events = h.ok(Command::halt(BIN));
    assert!(events.iter().any(|e| matches!(
        e,
        EventView::InstrumentStatusChanged {
            instrument: BIN,
            status: InstrumentStatus::Halted
        }
    )));
    h.assert_rejected(
        Command::new_order(yes(2, 1, Side::Sell, 40, 1)),
        RejectReason::InstrumentHalted,
    );
    h.assert_rejected(
        Command::replace(1, id, 0, 41, 2),
        RejectReason::InstrumentHalted,
    );
    h.assert_rejected(Command::halt(BIN), RejectReason::InvalidStatusTransition);
    // Other instruments trade on.
    h.place(spot(2, 2, Side::Buy, 10, 1));
    assert_eq!(
        cancels(&h.ok(Command::cancel(1, other))),
        vec![(other, CancelReason::User, 2)]
    );
    h.ok(Command::resume(BIN));
    h.assert_rejected(Command::resume(BIN), RejectReason::InvalidStatusTransition);
    let (_, events) = h.place(yes(2, 1, Side::Sell, 40, 1));
    assert_eq!(trade_prices(&events), vec![(40, 1)]);
}
