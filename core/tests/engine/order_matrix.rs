//! Table-driven: every order type x time in force, each run for both
//! sides on a binary market's YES leg, its NO leg, and a spot pair.
//!
//! The taker (account 1, no position) trades 10 lots at limit 60 (buy) or
//! 40 (sell), in its own leg's prices. The liquidity, entered by account 2
//! on the same leg and the other side, is one of:
//!
//! - `NonCrossing`: 5 at 65 (against a buy) / 35 (against a sell),
//! - `Partial`:     5 at 55 / 45,
//! - `Full`:        5 at 55 / 45 and 7 at 57 / 43.
//!
//! Stop orders use stop price 50 and are triggered by a trade at 50 on the
//! YES book (accounts 3 and 4) that touches none of the liquidity.

use ringex_core::records::*;

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Yes,
    No,
    Spot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liquidity {
    NonCrossing,
    Partial,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Nothing trades; all 10 rest at the limit.
    Rests,
    /// 5 trade; 5 rest.
    PartialThenRests,
    /// 10 trade (5 at 55 and 5 at 57, or 45 and 43).
    Fills,
    /// Nothing trades; all 10 are cancelled as an IOC remainder.
    NothingThenCancelled,
    /// 5 trade; the other 5 are cancelled as an IOC remainder.
    PartialThenCancelled,
    /// No trade at all; all 10 cancelled as FOK-unfilled.
    FokKilled,
    /// One Rejected event with this reason; nothing changes.
    Rejected(RejectReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    Nothing,
    PostOnly,
    NoStopPrice,
    ExpiredAlready,
}

struct Case {
    order_type: OrderType,
    tif: TimeInForce,
    extra: Extra,
    liquidity: Liquidity,
    expect: Expect,
}

use Expect::*;
use Extra::*;
use Liquidity::*;
use OrderType::{Limit, Market, StopLimit, StopMarket};
use TimeInForce::{Fok, Gtc, Gtd, Ioc};

macro_rules! case {
    ($ot:expr, $tif:expr, $extra:expr, $liq:expr => $expect:expr) => {
        Case {
            order_type: $ot,
            tif: $tif,
            extra: $extra,
            liquidity: $liq,
            expect: $expect,
        }
    };
}

#[rustfmt::skip]
const CASES: &[Case] = &[
    case!(Limit,      Gtc, Nothing, NonCrossing => Rests),
    case!(Limit,      Gtc, Nothing, Partial     => PartialThenRests),
    case!(Limit,      Gtc, Nothing, Full        => Fills),
    case!(Limit,      Ioc, Nothing, NonCrossing => NothingThenCancelled),
    case!(Limit,      Ioc, Nothing, Partial     => PartialThenCancelled),
    case!(Limit,      Ioc, Nothing, Full        => Fills),
    case!(Limit,      Fok, Nothing, NonCrossing => FokKilled),
    case!(Limit,      Fok, Nothing, Partial     => FokKilled),
    case!(Limit,      Fok, Nothing, Full        => Fills),
    case!(Limit,      Gtd, Nothing, NonCrossing => Rests),
    case!(Limit,      Gtd, Nothing, Partial     => PartialThenRests),
    case!(Limit,      Gtd, Nothing, Full        => Fills),
    case!(Limit,      Gtc, PostOnly, NonCrossing => Rests),
    case!(Limit,      Gtc, PostOnly, Partial    => Rejected(RejectReason::PostOnlyWouldCross)),
    case!(Limit,      Gtd, PostOnly, NonCrossing => Rests),
    case!(Limit,      Ioc, PostOnly, NonCrossing => Rejected(RejectReason::InvalidOrderCombination)),
    case!(Limit,      Fok, PostOnly, Full       => Rejected(RejectReason::InvalidOrderCombination)),
    case!(Limit,      Gtd, ExpiredAlready, Full => Rejected(RejectReason::ExpireTimeInPast)),
    case!(Market,     Gtc, Nothing, Full        => Rejected(RejectReason::InvalidTimeInForce)),
    case!(Market,     Gtd, Nothing, Full        => Rejected(RejectReason::InvalidTimeInForce)),
    case!(Market,     Ioc, Nothing, NonCrossing => NothingThenCancelled),
    case!(Market,     Ioc, Nothing, Partial     => PartialThenCancelled),
    case!(Market,     Ioc, Nothing, Full        => Fills),
    case!(Market,     Fok, Nothing, NonCrossing => FokKilled),
    case!(Market,     Fok, Nothing, Partial     => FokKilled),
    case!(Market,     Fok, Nothing, Full        => Fills),
    case!(Market,     Ioc, PostOnly, Full       => Rejected(RejectReason::InvalidOrderCombination)),
    case!(StopMarket, Gtc, Nothing, NonCrossing => NothingThenCancelled),
    case!(StopMarket, Gtc, Nothing, Partial     => PartialThenCancelled),
    case!(StopMarket, Gtc, Nothing, Full        => Fills),
    case!(StopMarket, Ioc, Nothing, NonCrossing => NothingThenCancelled),
    case!(StopMarket, Ioc, Nothing, Partial     => PartialThenCancelled),
    case!(StopMarket, Ioc, Nothing, Full        => Fills),
    case!(StopMarket, Fok, Nothing, NonCrossing => FokKilled),
    case!(StopMarket, Fok, Nothing, Partial     => FokKilled),
    case!(StopMarket, Fok, Nothing, Full        => Fills),
    case!(StopMarket, Gtd, Nothing, NonCrossing => NothingThenCancelled),
    case!(StopMarket, Gtd, Nothing, Partial     => PartialThenCancelled),
    case!(StopMarket, Gtd, Nothing, Full        => Fills),
    case!(StopMarket, Gtc, PostOnly, Full       => Rejected(RejectReason::InvalidOrderCombination)),
    case!(StopMarket, Gtc, NoStopPrice, Full    => Rejected(RejectReason::InvalidStopPrice)),
    case!(StopLimit,  Gtc, Nothing, NonCrossing => Rests),
    case!(StopLimit,  Gtc, Nothing, Partial     => PartialThenRests),
    case!(StopLimit,  Gtc, Nothing, Full        => Fills),
    case!(StopLimit,  Ioc, Nothing, NonCrossing => NothingThenCancelled),
    case!(StopLimit,  Ioc, Nothing, Partial     => PartialThenCancelled),
    case!(StopLimit,  Ioc, Nothing, Full        => Fills),
    case!(StopLimit,  Fok, Nothing, NonCrossing => FokKilled),
    case!(StopLimit,  Fok, Nothing, Partial     => FokKilled),
    case!(StopLimit,  Fok, Nothing, Full        => Fills),
    case!(StopLimit,  Gtd, Nothing, NonCrossing => Rests),
    case!(StopLimit,  Gtd, Nothing, Partial     => PartialThenRests),
    case!(StopLimit,  Gtd, Nothing, Full        => Fills),
    case!(StopLimit,  Gtc, NoStopPrice, Full    => Rejected(RejectReason::InvalidStopPrice)),
    case!(StopLimit,  Gtd, ExpiredAlready, Full => Rejected(RejectReason::ExpireTimeInPast)),
];

const TAKER: u32 = 1;
const MAKER: u32 = 2;

/// An order of `kind` at a price in its own leg's terms.
fn order(kind: Kind, account: u32, cid: u64, side: Side, price: i64, qty: u64) -> OrderSpec {
    match kind {
        Kind::Yes => yes(account, cid, side, price, qty),
        Kind::No => no(account, cid, side, price, qty),
        Kind::Spot => spot(account, cid, side, price, qty),
    }
}

/// (book side, book price) of a price in `kind`'s own terms.
fn on_book(kind: Kind, side: Side, price: i64) -> (Side, i64) {
    match kind {
        Kind::No => (side.opposite(), 100 - price),
        _ => (side, price),
    }
}

/// The liquidity as (price, quantity) in the taker's leg.
fn liquidity(l: Liquidity, taker: Side) -> Vec<(i64, u64)> {
    let px = |buy: i64| if taker == Side::Buy { buy } else { 100 - buy };
    match l {
        NonCrossing => vec![(px(65), 5)],
        Partial => vec![(px(55), 5)],
        Full => vec![(px(55), 5), (px(57), 7)],
    }
}

fn run_case(case: &Case, kind: Kind, side: Side) {
    let what = format!(
        "{:?} {:?} {:?} {kind:?} {side:?} vs {:?}",
        case.order_type, case.tif, case.extra, case.liquidity
    );
    let mut h = Harness::markets();
    let instrument = if kind == Kind::Spot { SPOT } else { BIN };
    for (i, (price, qty)) in liquidity(case.liquidity, side).into_iter().enumerate() {
        h.place(order(
            kind,
            MAKER,
            100 + i as u64,
            side.opposite(),
            price,
            qty,
        ));
    }
    let limit = if side == Side::Buy { 60 } else { 40 };
    let is_stop = matches!(case.order_type, StopMarket | StopLimit);
    let spec = OrderSpec {
        order_type: case.order_type,
        time_in_force: case.tif,
        post_only: case.extra == PostOnly,
        stop_price: if is_stop && case.extra != NoStopPrice {
            50
        } else {
            0
        },
        expire_time: if case.extra == ExpiredAlready {
            h.ts
        } else {
            h.ts + 1_000_000
        },
        ..order(kind, TAKER, 1, side, limit, 10)
    };
    let (book_side, book_limit) = on_book(kind, side, limit);
    let (bid_before, ask_before) = h.best(instrument);

    if let Rejected(reason) = case.expect {
        h.assert_rejected(Command::new_order(spec), reason);
        return;
    }
    let mut events = h.ok(Command::new_order(spec));
    let id = accepted_id(&events);
    if is_stop {
        // Pending: nothing trades and the book does not move.
        assert!(trades(&events).is_empty(), "{what}: a pending stop traded");
        assert_eq!(h.best(instrument), (bid_before, ask_before), "{what}");
        assert_eq!(
            h.engine.open_orders(),
            liquidity(case.liquidity, side).len() + 1
        );
        let (trigger_bid, trigger_ask) = match kind {
            Kind::Spot => (spot(3, 1, Side::Buy, 50, 1), spot(4, 1, Side::Sell, 50, 1)),
            _ => (yes(3, 1, Side::Buy, 50, 1), yes(4, 1, Side::Sell, 50, 1)),
        };
        h.place(trigger_bid);
        events = h.ok(Command::new_order(trigger_ask));
        assert_eq!(
            triggered(&events),
            vec![id],
            "{what}: the stop did not trigger"
        );
        assert_eq!(
            trade_prices(&events)[0],
            (50, 1),
            "{what}: trigger trade first"
        );
    }

    let fills: Vec<Fill> = trades(&events)
        .into_iter()
        .filter(|f| f.taker_order_id == id)
        .collect();
    let filled: u64 = fills.iter().map(|f| f.qty).sum();
    let my_cancels: Vec<_> = cancels(&events).into_iter().filter(|c| c.0 == id).collect();
    // Fill prices back in the taker's leg, as (price, qty).
    let leg_fills: Vec<(i64, u64)> = fills
        .iter()
        .map(|f| {
            assert_eq!(f.maker_account, MAKER, "{what}");
            (
                if kind == Kind::No {
                    100 - f.price
                } else {
                    f.price
                },
                f.qty,
            )
        })
        .collect();
    let expected_fills: Vec<(i64, u64)> = {
        let l = liquidity(case.liquidity, side);
        match case.expect {
            Fills => vec![l[0], (l[1].0, 5)],
            PartialThenRests | PartialThenCancelled => vec![l[0]],
            _ => vec![],
        }
    };
    assert_eq!(leg_fills, expected_fills, "{what}: fills");
    let rests = match case.expect {
        Rests => 10,
        PartialThenRests => 5,
        _ => 0,
    };
    match case.expect {
        NothingThenCancelled | PartialThenCancelled => {
            assert_eq!(
                my_cancels,
                vec![(id, CancelReason::IocRemainder, 10 - filled)],
                "{what}"
            );
        }
        FokKilled => {
            assert!(
                trades(&events).iter().all(|f| f.taker_order_id != id),
                "{what}: a killed FOK traded"
            );
            assert_eq!(
                my_cancels,
                vec![(id, CancelReason::FokUnfilled, 10)],
                "{what}"
            );
        }
        _ => assert!(my_cancels.is_empty(), "{what}: unexpected cancel"),
    }
    // Where the taker's remainder is.
    let (bid, ask) = h.best(instrument);
    let own_best = if book_side == Side::Buy { bid } else { ask };
    if rests > 0 {
        assert_eq!(
            own_best,
            Some(book_limit),
            "{what}: remainder not resting at its limit"
        );
    } else {
        assert_ne!(own_best, Some(book_limit), "{what}: nothing should rest");
    }
    // Balances, exactly: what was paid for the fills (at the makers' prices,
    // so price improvement is released) plus the reserve of the remainder.
    let d = DEPOSIT;
    match kind {
        Kind::Yes | Kind::No => {
            // In its own leg a buy costs p per contract and a sell 100 - p.
            let cost: i64 = leg_fills
                .iter()
                .map(|&(p, q)| (if side == Side::Buy { p } else { 100 - p }) * q as i64)
                .sum();
            let unit = if side == Side::Buy {
                limit
            } else {
                100 - limit
            };
            assert_eq!(
                h.reserved(TAKER, CASH),
                unit * rests as i64,
                "{what}: reserved"
            );
            assert_eq!(
                h.available(TAKER, CASH),
                d - cost - unit * rests as i64,
                "{what}: available cash"
            );
            let long_yes = (kind == Kind::Yes) == (side == Side::Buy);
            let expected_position = if long_yes {
                filled as i64
            } else {
                -(filled as i64)
            };
            assert_eq!(
                h.position(TAKER, BIN),
                expected_position,
                "{what}: position"
            );
        }
        Kind::Spot => {
            let notional: i64 = leg_fills.iter().map(|(p, q)| p * *q as i64).sum();
            let filled = filled as i64;
            if side == Side::Buy {
                assert_eq!(h.reserved(TAKER, QUOTE), limit * rests as i64, "{what}");
                assert_eq!(
                    h.available(TAKER, QUOTE),
                    d - notional - limit * rests as i64
                );
                assert_eq!(h.available(TAKER, BASE), d + filled, "{what}");
            } else {
                assert_eq!(h.reserved(TAKER, BASE), rests as i64, "{what}");
                assert_eq!(
                    h.available(TAKER, BASE),
                    d - filled - rests as i64,
                    "{what}"
                );
                assert_eq!(h.available(TAKER, QUOTE), d + notional, "{what}");
            }
        }
    }
    // A GTD remainder expires at its time; a GTC one does not.
    if rests > 0 {
        h.ts += 2_000_000;
        let events = h.ok(Command::timer_tick());
        let expected = if case.tif == Gtd {
            vec![(id, CancelReason::Expired, rests)]
        } else {
            vec![]
        };
        assert_eq!(cancels(&events), expected, "{what}: expiry");
    }
}

#[test]
fn every_order_type_and_time_in_force_behaves_as_the_table_says_on_every_side_and_kind() {
    let mut runs = 0;
    for case in CASES {
        for kind in [Kind::Yes, Kind::No, Kind::Spot] {
            for side in [Side::Buy, Side::Sell] {
                run_case(case, kind, side);
                runs += 1;
            }
        }
    }
    assert_eq!(runs, CASES.len() * 6);
}

#[test]
fn the_table_covers_every_order_type_with_every_time_in_force() {
    for ot in OrderType::ALL {
        for tif in TimeInForce::ALL {
            assert!(
                CASES
                    .iter()
                    .any(|c| c.order_type == *ot && c.tif == *tif && c.extra == Nothing),
                "no case for {ot:?} {tif:?}"
            );
        }
    }
}
