//! Every invalid command yields exactly one `Rejected` event with its
//! precise reason and leaves the state (its digest) untouched; garbage
//! records never panic the engine or break an invariant.

use ringex_core::records::*;
use ringex_core::{EngineConfig, FEE_ACCOUNT};

use crate::stream::{generate, StreamConfig};
use crate::support::*;

const HALTED: u32 = 4;
const CLOSED: u32 = 5;
const COARSE: u32 = 6;
const KILLED: u32 = 5;
const LIMITED: u32 = 6;
const POOR: u32 = 7;

struct Fixture {
    h: Harness,
    /// Account 1's live GTC bid on BIN, client id 77.
    live: u64,
    /// Account 1's cancelled order, client id 78.
    finished: u64,
    /// Account 2's live order.
    foreign: u64,
    /// Account 1's partially filled bid (4 of 10), client id 79.
    partial: u64,
    /// Account 1's pending stop, client id 80.
    stop: u64,
    /// Account 1's post-only bid at 30, client id 81.
    post_only: u64,
    /// Account 1's bid on the halted market, client id 82.
    on_halted: u64,
}

fn fixture() -> Fixture {
    let mut h = Harness::markets();
    h.ok(Command::add_instrument(InstrumentSpec::binary(
        HALTED, CASH,
    )));
    h.ok(Command::add_instrument(InstrumentSpec::binary(
        CLOSED, CASH,
    )));
    h.ok(Command::add_instrument(spot_spec(COARSE, 5, 10, 5, 5000)));
    let on_halted = h.place_id(OrderSpec {
        instrument: HALTED,
        ..yes(1, 82, Side::Buy, 40, 5)
    });
    h.ok(Command::halt(HALTED));
    h.ok(Command::settle(CLOSED, Outcome::Yes));
    h.ok(Command::kill_switch(Some(KILLED), true));
    h.ok(Command::set_limits(
        LIMITED,
        AccountLimits {
            max_order_quantity: 50,
            max_open_orders: 1,
            max_notional: 1_000,
            max_position: 20,
        },
    ));
    h.place(yes(LIMITED, 1, Side::Buy, 10, 10));
    // Account 7 spends almost all its cash.
    h.ok(Command::withdraw(POOR, CASH, DEPOSIT as u64 - 10));
    let live = h.place_id(yes(1, 77, Side::Buy, 40, 10));
    let finished = h.place_id(yes(1, 78, Side::Buy, 39, 10));
    h.ok(Command::cancel(1, finished));
    let partial = h.place_id(yes(1, 79, Side::Buy, 45, 10));
    h.place(OrderSpec {
        time_in_force: TimeInForce::Ioc,
        ..yes(3, 1, Side::Sell, 45, 4)
    });
    let stop = h.place_id(OrderSpec {
        order_type: OrderType::StopLimit,
        stop_price: 90,
        ..yes(1, 80, Side::Buy, 91, 1)
    });
    let post_only = h.place_id(OrderSpec {
        post_only: true,
        ..yes(1, 81, Side::Buy, 30, 1)
    });
    let foreign = h.place_id(yes(2, 1, Side::Sell, 60, 10));
    Fixture {
        h,
        live,
        finished,
        foreign,
        partial,
        stop,
        post_only,
        on_halted,
    }
}

fn with_byte(mut cmd: Command, offset: usize, value: u8) -> Command {
    bytemuck::bytes_of_mut(&mut cmd)[offset] = value;
    cmd
}

/// Every invalid command the fixture can be sent, with the reason it must get.
#[rustfmt::skip]
fn invalid_commands(f: &Fixture) -> Vec<(&'static str, Command, RejectReason)> {
    use RejectReason as R;
    let buy = |account: u32, price: i64, qty: u64| yes(account, 500, Side::Buy, price, qty);
    let order = Command::new_order;
    let o = command_offsets::KIND;
    vec![
        // Malformed records.
        ("unknown kind 0", with_byte(Command::timer_tick(), o, 0), R::MalformedCommand),
        ("unknown kind 200", with_byte(Command::timer_tick(), o, 200), R::MalformedCommand),
        ("version 0", with_byte(Command::timer_tick(), command_offsets::VERSION, 0), R::MalformedCommand),
        ("version 2", with_byte(order(buy(1, 40, 1)), command_offsets::VERSION, 2), R::MalformedCommand),
        ("side 9", with_byte(order(buy(1, 40, 1)), command_offsets::SIDE, 9), R::MalformedCommand),
        ("outcome 7", with_byte(order(buy(1, 40, 1)), command_offsets::OUTCOME, 7), R::MalformedCommand),
        ("order type 9", with_byte(order(buy(1, 40, 1)), command_offsets::ORDER_TYPE, 9), R::MalformedCommand),
        ("tif 9", with_byte(order(buy(1, 40, 1)), command_offsets::TIME_IN_FORCE, 9), R::MalformedCommand),
        ("unknown flag", with_byte(order(buy(1, 40, 1)), command_offsets::FLAGS, 0x80), R::MalformedCommand),
        ("stp 9", with_byte(order(buy(1, 40, 1)), command_offsets::STP, 9), R::MalformedCommand),
        ("settle outcome 9", with_byte(Command::settle(BIN, Outcome::Yes), command_offsets::OUTCOME, 9), R::MalformedCommand),
        ("kill switch on = 2", with_byte(Command::kill_switch(Some(1), true), command_offsets::SIDE, 2), R::MalformedCommand),
        ("instrument kind 7", with_byte(Command::add_instrument(InstrumentSpec::binary(20, CASH)), command_offsets::SIDE, 7), R::MalformedCommand),
        ("max open orders beyond u32", Command { order_id: 1 << 40, ..Command::set_limits(1, AccountLimits::default()) }, R::MalformedCommand),
        ("negative max position", Command { stop_price: -1, ..Command::set_limits(1, AccountLimits::default()) }, R::MalformedCommand),
        // New orders: what they name.
        ("unknown instrument", order(OrderSpec { instrument: 40, ..buy(1, 40, 1) }), R::UnknownInstrument),
        ("instrument beyond capacity", order(OrderSpec { instrument: 1 << 30, ..buy(1, 40, 1) }), R::UnknownInstrument),
        ("instrument 0", order(OrderSpec { instrument: 0, ..buy(1, 40, 1) }), R::UnknownInstrument),
        ("unknown account", order(buy(200, 40, 1)), R::UnknownAccount),
        ("account beyond capacity", order(buy(u32::MAX, 40, 1)), R::UnknownAccount),
        ("fee account trading", order(buy(FEE_ACCOUNT, 40, 1)), R::ReservedAccount),
        ("no outcome on a binary market", order(OrderSpec { outcome: Outcome::None, ..buy(1, 40, 1) }), R::InvalidOutcome),
        ("an outcome on a spot pair", order(OrderSpec { outcome: Outcome::Yes, ..spot(1, 500, Side::Buy, 40, 1) }), R::InvalidOutcome),
        // Prices and quantities.
        ("binary price 0", order(buy(1, 0, 1)), R::InvalidPrice),
        ("binary price 100", order(buy(1, 100, 1)), R::InvalidPrice),
        ("negative price", order(buy(1, -5, 1)), R::InvalidPrice),
        ("NO price 100", order(no(1, 500, Side::Buy, 100, 1)), R::InvalidPrice),
        ("NO price 0", order(no(1, 500, Side::Buy, 0, 1)), R::InvalidPrice),
        ("price i64::MIN", order(spot(1, 500, Side::Buy, i64::MIN, 1)), R::InvalidPrice),
        ("price i64::MAX", order(spot(1, 500, Side::Buy, i64::MAX, 1)), R::InvalidPrice),
        ("NO price i64::MAX", order(no(1, 500, Side::Buy, i64::MAX, 1)), R::InvalidPrice),
        ("NO price i64::MIN", order(no(1, 500, Side::Buy, i64::MIN, 1)), R::InvalidPrice),
        ("spot price above the range", order(spot(1, 500, Side::Buy, 1001, 1)), R::InvalidPrice),
        ("price off tick", order(OrderSpec::limit(1, COARSE, 500, Side::Buy, 12, 10)), R::PriceNotOnTick),
        ("zero quantity", order(buy(1, 40, 0)), R::InvalidQuantity),
        ("quantity off lot", order(OrderSpec::limit(1, COARSE, 500, Side::Buy, 10, 15)), R::QuantityNotOnLot),
        ("stop price 0", order(OrderSpec { order_type: OrderType::StopMarket, ..buy(1, 40, 1) }), R::InvalidStopPrice),
        ("stop price off tick", order(OrderSpec { order_type: OrderType::StopLimit, stop_price: 12, ..OrderSpec::limit(1, COARSE, 500, Side::Buy, 10, 10) }), R::InvalidStopPrice),
        ("NO stop price i64::MIN", order(OrderSpec { order_type: OrderType::StopLimit, stop_price: i64::MIN, ..no(1, 500, Side::Buy, 40, 1) }), R::InvalidStopPrice),
        // Order type, time in force and flags.
        ("market GTC", order(OrderSpec { order_type: OrderType::Market, ..buy(1, 0, 1) }), R::InvalidTimeInForce),
        ("market GTD", order(OrderSpec { order_type: OrderType::Market, time_in_force: TimeInForce::Gtd, expire_time: u64::MAX, ..buy(1, 0, 1) }), R::InvalidTimeInForce),
        ("GTD in the past", order(OrderSpec { time_in_force: TimeInForce::Gtd, expire_time: 1, ..buy(1, 40, 1) }), R::ExpireTimeInPast),
        ("post-only IOC", order(OrderSpec { post_only: true, time_in_force: TimeInForce::Ioc, ..buy(1, 40, 1) }), R::InvalidOrderCombination),
        ("post-only market", order(OrderSpec { post_only: true, order_type: OrderType::Market, time_in_force: TimeInForce::Ioc, ..buy(1, 0, 1) }), R::InvalidOrderCombination),
        ("spot market buy with neither budget nor price", order(OrderSpec { order_type: OrderType::Market, time_in_force: TimeInForce::Ioc, ..spot(1, 500, Side::Buy, 0, 1) }), R::InvalidOrderCombination),
        ("budget on a binary market", order(OrderSpec { order_type: OrderType::Market, time_in_force: TimeInForce::Ioc, quote_budget: 100, ..buy(1, 0, 1) }), R::BudgetOnlyForSpotMarketBuy),
        ("budget on a spot limit", order(OrderSpec { quote_budget: 100, ..spot(1, 500, Side::Buy, 10, 1) }), R::BudgetOnlyForSpotMarketBuy),
        ("budget on a spot sell", order(OrderSpec { order_type: OrderType::Market, time_in_force: TimeInForce::Ioc, quote_budget: 100, ..spot(1, 500, Side::Sell, 0, 1) }), R::BudgetOnlyForSpotMarketBuy),
        ("budget with a price", order(OrderSpec { order_type: OrderType::Market, time_in_force: TimeInForce::Ioc, quote_budget: 100, ..spot(1, 500, Side::Buy, 10, 1) }), R::BudgetOnlyForSpotMarketBuy),
        ("budget with FOK", order(OrderSpec { order_type: OrderType::Market, time_in_force: TimeInForce::Fok, quote_budget: 100, ..spot(1, 500, Side::Buy, 0, 1) }), R::BudgetOnlyForSpotMarketBuy),
        ("post-only that would cross", order(OrderSpec { post_only: true, ..buy(1, 60, 1) }), R::PostOnlyWouldCross),
        // Funds.
        ("insufficient cash", order(buy(POOR, 50, 1)), R::InsufficientFunds),
        ("insufficient base", order(spot(POOR, 500, Side::Sell, 10, DEPOSIT as u64 + 1)), R::InsufficientFunds),
        ("notional beyond i64", order(spot(1, 500, Side::Buy, 1000, u64::MAX / 2)), R::InsufficientFunds),
        // Client ids, state of the market and of the account.
        ("duplicate live client id", order(yes(1, 77, Side::Buy, 40, 1)), R::DuplicateClientOrderId),
        ("duplicate finished client id", order(yes(1, 78, Side::Buy, 40, 1)), R::DuplicateClientOrderId),
        ("halted market", order(OrderSpec { instrument: HALTED, ..buy(1, 40, 1) }), R::InstrumentHalted),
        ("settled market", order(OrderSpec { instrument: CLOSED, ..buy(1, 40, 1) }), R::InstrumentClosed),
        ("kill switch", order(buy(KILLED, 40, 1)), R::KillSwitchActive),
        // Limits.
        ("max order quantity", order(buy(LIMITED, 10, 51)), R::MaxOrderQuantityExceeded),
        ("max notional", order(OrderSpec { time_in_force: TimeInForce::Ioc, ..buy(LIMITED, 40, 30) }), R::MaxNotionalExceeded),
        ("max open orders", order(buy(LIMITED, 10, 1)), R::MaxOpenOrdersExceeded),
        ("max position", order(OrderSpec { time_in_force: TimeInForce::Ioc, ..buy(LIMITED, 10, 11) }), R::MaxPositionExceeded),
        // Cancels.
        ("cancel of an unknown order id", Command::cancel(1, 999_999), R::UnknownOrder),
        ("cancel of another account's order", Command::cancel(1, f.foreign), R::UnknownOrder),
        ("cancel naming no order", Command::cancel(1, 0), R::UnknownOrder),
        ("cancel of a finished order", Command::cancel(1, f.finished), R::TooLate),
        ("cancel by an unknown client id", Command::cancel_by_client_id(1, 4242), R::UnknownOrder),
        ("cancel by another account's client id", Command::cancel_by_client_id(3, 77), R::UnknownOrder),
        ("cancel by a finished client id", Command::cancel_by_client_id(1, 78), R::TooLate),
        ("cancel by an unknown account", Command::cancel(200, f.live), R::UnknownOrder),
        // Replaces.
        ("replace of another account's order", Command::replace(1, f.foreign, 0, 61, 10), R::UnknownOrder),
        ("replace of an unknown order", Command::replace(1, 999_999, 0, 40, 1), R::UnknownOrder),
        ("replace of a finished order", Command::replace(1, f.finished, 0, 40, 1), R::TooLate),
        ("replace by a finished client id", Command::replace_by_client_id(1, 78, 0, 40, 1), R::TooLate),
        ("replace of a pending stop", Command::replace(1, f.stop, 0, 92, 1), R::ReplaceNotAllowed),
        ("replace to price 0", Command::replace(1, f.live, 0, 0, 10), R::InvalidPrice),
        ("replace to price 100", Command::replace(1, f.live, 0, 100, 10), R::InvalidPrice),
        ("replace to quantity 0", Command::replace(1, f.live, 0, 40, 0), R::InvalidQuantity),
        ("replace below the filled quantity", Command::replace(1, f.partial, 0, 45, 4), R::ReplaceQuantityTooLow),
        ("replace to a client id in use", Command::replace(1, f.live, 79, 40, 10), R::DuplicateClientOrderId),
        ("replace to a finished client id", Command::replace(1, f.live, 78, 40, 10), R::DuplicateClientOrderId),
        ("post-only replace that would cross", Command::replace(1, f.post_only, 0, 60, 1), R::PostOnlyWouldCross),
        ("replace on a halted market", Command::replace(1, f.on_halted, 0, 41, 5), R::InstrumentHalted),
        ("replace by an account that does not own the order", Command::replace(POOR, f.live, 0, 40, 10), R::UnknownOrder),
        ("replace needing more cash than there is", Command::replace(1, f.live, 0, 40, 1_000_000), R::InsufficientFunds),
        // Mass cancel.
        ("mass cancel for an unknown account", Command::mass_cancel(200, None), R::UnknownAccount),
        ("mass cancel of an unknown instrument", Command::mass_cancel(1, Some(40)), R::UnknownInstrument),
        // Instruments.
        ("instrument id in use", Command::add_instrument(InstrumentSpec::binary(BIN, CASH)), R::InstrumentExists),
        ("instrument id 0", Command::add_instrument(InstrumentSpec::binary(0, CASH)), R::CapacityExhausted),
        ("instrument id beyond capacity", Command::add_instrument(InstrumentSpec::binary(64, CASH)), R::CapacityExhausted),
        ("tick 0", Command::add_instrument(InstrumentSpec { tick_size: 0, ..InstrumentSpec::binary(20, CASH) }), R::InvalidInstrumentSpec),
        ("lot 0", Command::add_instrument(InstrumentSpec { lot_size: 0, ..InstrumentSpec::binary(20, CASH) }), R::InvalidInstrumentSpec),
        ("binary max price 100", Command::add_instrument(InstrumentSpec { max_price: 100, ..InstrumentSpec::binary(20, CASH) }), R::InvalidInstrumentSpec),
        ("min price 0", Command::add_instrument(InstrumentSpec { min_price: 0, ..InstrumentSpec::binary(20, CASH) }), R::InvalidInstrumentSpec),
        ("max below min", Command::add_instrument(spot_spec(20, 1, 1, 10, 5)), R::InvalidInstrumentSpec),
        ("range off tick", Command::add_instrument(spot_spec(20, 3, 1, 1, 11)), R::InvalidInstrumentSpec),
        ("too many levels", Command::add_instrument(spot_spec(20, 1, 1, 1, 1 << 20)), R::InvalidInstrumentSpec),
        ("base = quote", Command::add_instrument(InstrumentSpec { base_asset: QUOTE, ..spot_spec(20, 1, 1, 1, 10) }), R::InvalidInstrumentSpec),
        ("quote asset out of range", Command::add_instrument(InstrumentSpec { quote_asset: 8, ..InstrumentSpec::binary(20, CASH) }), R::InvalidInstrumentSpec),
        ("fee above 100%", Command::add_instrument(InstrumentSpec { taker_fee_bps: 10_001, ..InstrumentSpec::binary(20, CASH) }), R::InvalidInstrumentSpec),
        // Accounts and funds.
        ("account id in use", Command::add_account(1), R::AccountExists),
        ("the fee account again", Command::add_account(FEE_ACCOUNT), R::AccountExists),
        ("account id beyond capacity", Command::add_account(256), R::CapacityExhausted),
        ("deposit to an unknown account", Command::deposit(200, CASH, 1), R::UnknownAccount),
        ("deposit of an unknown asset", Command::deposit(1, 8, 1), R::InvalidAsset),
        ("deposit of an asset beyond u16", Command { instrument: 70_000, ..Command::deposit(1, CASH, 1) }, R::InvalidAsset),
        ("deposit of nothing", Command::deposit(1, CASH, 0), R::InvalidAmount),
        ("deposit beyond i64", Command::deposit(1, CASH, u64::MAX), R::InvalidAmount),
        ("deposit that would overflow the balance", Command::deposit(1, CASH, i64::MAX as u64), R::InvalidAmount),
        ("deposit to the fee account", Command::deposit(FEE_ACCOUNT, CASH, 1), R::ReservedAccount),
        ("withdraw more than available", Command::withdraw(POOR, CASH, 11), R::InsufficientFunds),
        ("withdraw reserved funds", Command::withdraw(1, CASH, DEPOSIT as u64), R::InsufficientFunds),
        ("withdraw nothing", Command::withdraw(1, CASH, 0), R::InvalidAmount),
        ("withdraw from an unknown account", Command::withdraw(200, CASH, 1), R::UnknownAccount),
        // Admin.
        ("limits for an unknown account", Command::set_limits(200, AccountLimits::default()), R::UnknownAccount),
        ("limits for the fee account", Command::set_limits(FEE_ACCOUNT, AccountLimits::default()), R::ReservedAccount),
        ("kill switch of an unknown account", Command::kill_switch(Some(200), true), R::UnknownAccount),
        ("halt of an unknown instrument", Command::halt(40), R::UnknownInstrument),
        ("halt of a halted instrument", Command::halt(HALTED), R::InvalidStatusTransition),
        ("halt of a closed instrument", Command::halt(CLOSED), R::InvalidStatusTransition),
        ("resume of a trading instrument", Command::resume(BIN), R::InvalidStatusTransition),
        ("resume of an unknown instrument", Command::resume(40), R::UnknownInstrument),
        ("settle of an unknown instrument", Command::settle(40, Outcome::Yes), R::UnknownInstrument),
        ("settle of a spot pair", Command::settle(SPOT, Outcome::Yes), R::NotBinaryMarket),
        ("settle of a closed market", Command::settle(CLOSED, Outcome::No), R::InstrumentClosed),
        ("settle without an outcome", Command::settle(BIN, Outcome::None), R::InvalidOutcome),
    ]
}

#[test]
fn every_invalid_command_is_rejected_once_with_its_precise_reason_and_changes_nothing() {
    use RejectReason as R;
    let f = fixture();
    let cases = invalid_commands(&f);
    let mut h = f.h;
    let mut seen = std::collections::BTreeSet::new();
    for (name, cmd, reason) in cases {
        let digest = h.engine.state_digest();
        let events = h.apply(cmd);
        assert_eq!(
            events.len(),
            1,
            "{name}: expected one Rejected, got {events:#?}"
        );
        let EventView::Rejected { reason: got, .. } = events[0] else {
            panic!("{name}: expected Rejected({reason:?}), got {events:#?}");
        };
        assert_eq!(got, reason, "{name}");
        assert!(!got.text().is_empty());
        assert_eq!(h.engine.state_digest(), digest, "{name}: state changed");
        // The raw event echoes the command kind, account and client id.
        let raw = h.last_raw()[0];
        assert_eq!((raw.reason, raw.account), (cmd.kind, cmd.account), "{name}");
        assert_eq!(raw.words[0], cmd.client_order_id, "{name}");
        seen.insert(reason);
    }
    // Every reject reason the engine can produce with this configuration
    // appeared (capacity of orders is covered separately).
    for reason in RejectReason::ALL {
        if *reason != R::OrderCapacityExhausted {
            assert!(seen.contains(reason), "no case for {reason:?}");
        }
    }
    // And the fixture's live orders are all still there.
    let _ = (f.live, f.partial, f.stop, f.post_only, f.on_halted);
}

#[test]
fn orders_beyond_the_order_capacity_are_rejected_and_accepted_again_once_room_is_made() {
    let mut h = Harness::with_config(EngineConfig {
        max_orders: 8,
        ..EngineConfig::small()
    });
    for cmd in market_setup() {
        h.ok(cmd);
    }
    let ids: Vec<u64> = (0..8)
        .map(|i| h.place_id(yes(1, i + 1, Side::Buy, 10 + i as i64, 1)))
        .collect();
    h.assert_rejected(
        Command::new_order(yes(1, 100, Side::Buy, 40, 1)),
        RejectReason::OrderCapacityExhausted,
    );
    h.ok(Command::cancel(1, ids[0]));
    h.place(yes(1, 100, Side::Buy, 40, 1));
}

#[test]
fn binary_positions_beyond_the_position_capacity_are_rejected() {
    let mut h = Harness::with_config(EngineConfig {
        max_positions: 2,
        ..EngineConfig::small()
    });
    for cmd in market_setup() {
        h.ok(cmd);
    }
    h.place(yes(1, 1, Side::Buy, 10, 1));
    h.place(yes(2, 1, Side::Buy, 10, 1));
    h.assert_rejected(
        Command::new_order(yes(3, 1, Side::Buy, 10, 1)),
        RejectReason::CapacityExhausted,
    );
    // Spot orders need no position record.
    h.place(spot(3, 1, Side::Buy, 10, 1));
}

/// A command whose header is valid (kind, version) but whose body is random,
/// with ids steered towards entities that exist.
fn structured_garbage(rng: &mut XorShift) -> Command {
    let mut cmd = rng.garbage_command();
    cmd.version = COMMAND_VERSION;
    cmd.kind = rng.range(1, 15) as u8;
    if rng.chance(80) {
        cmd.account = rng.below(12) as u32;
    }
    if rng.chance(80) {
        cmd.instrument = rng.below(6) as u32;
    }
    if rng.chance(50) {
        cmd.side = rng.below(3) as u8;
        cmd.outcome = rng.below(3) as u8;
        cmd.order_type = rng.below(4) as u8;
        cmd.time_in_force = rng.below(4) as u8;
        cmd.flags = rng.below(2) as u8;
        cmd.stp = rng.below(4) as u8;
    }
    if rng.chance(50) {
        cmd.price = rng.range(-5, 1100);
        cmd.stop_price = rng.range(-5, 1100);
    }
    if rng.chance(50) {
        cmd.quantity = rng.below(100);
    }
    if rng.chance(30) {
        cmd.order_id = rng.below(3000);
    }
    if rng.chance(30) {
        cmd.client_order_id = rng.below(50);
    }
    if cmd.kind == CommandKind::AddInstrument as u8 && rng.chance(90) {
        // Keep random instruments small so the invariant walk stays quick.
        cmd.aux = (cmd.stop_price.max(1) + rng.range(0, 1000)) as u64;
    }
    cmd
}

#[test]
fn a_hundred_thousand_garbage_commands_mixed_with_valid_ones_never_panic_or_break_an_invariant() {
    let mut rng = XorShift::new(0xBAD_5EED);
    let mut h = Harness::markets();
    let valid = generate(StreamConfig {
        accounts: 8,
        check_every: 0,
        ..StreamConfig::new(7, 40_000)
    });
    let mut valid_cmds = valid.commands.iter();
    let mut rejected = 0u64;
    let mut accepted = 0u64;
    let mut digest = h.engine.state_digest();
    for i in 0..100_000u64 {
        let cmd = match i % 5 {
            0 | 1 => rng.garbage_command(),
            2 => structured_garbage(&mut rng),
            _ => match valid_cmds.next() {
                Some(c) => *c,
                None => structured_garbage(&mut rng),
            },
        };
        let events = h.apply_raw(&cmd);
        let after = h.engine.state_digest();
        let rejects = events
            .iter()
            .filter(|e| matches!(e, EventView::Rejected { .. }))
            .count();
        if rejects > 0 {
            assert_eq!(events.len(), 1, "a reject came with other events: {cmd:?}");
            assert_eq!(
                after, digest,
                "a rejected command changed the state: {cmd:?}"
            );
            rejected += 1;
        } else {
            accepted += 1;
        }
        digest = after;
    }
    // The mix exercised both paths.
    assert!(rejected > 50_000, "{rejected} rejected");
    assert!(accepted > 10_000, "{accepted} accepted");
}

#[test]
fn random_bytes_with_an_unknown_kind_or_version_are_rejected_as_malformed_and_change_nothing() {
    let mut rng = XorShift::new(0x06A2_BA6E);
    let f = fixture();
    let mut h = f.h;
    for i in 0..2_000 {
        let mut cmd = rng.garbage_command();
        if i % 2 == 0 {
            // Any kind, a version this build does not know.
            while cmd.version == COMMAND_VERSION {
                cmd.version = rng.next_u64() as u8;
            }
        } else {
            // The current version, a kind it does not know.
            cmd.version = COMMAND_VERSION;
            while CommandKind::from_u8(cmd.kind).is_some() {
                cmd.kind = rng.next_u64() as u8;
            }
        }
        h.assert_rejected(cmd, RejectReason::MalformedCommand);
    }
}
