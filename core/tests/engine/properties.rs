//! Property tests: the engine against the reference model.
//!
//! Random command streams — valid and invalid, over binary and spot
//! instruments, with every command kind — go through both
//! [`ringex_core::Engine`] and [`ringex_core::reference::ReferenceEngine`];
//! every event record must be identical, and the engine's invariants
//! (conservation, uncrossed books, reservations) must hold after every
//! command. Each operation is derived from four random words, so proptest
//! shrinks a failure to a short, simple stream.

use proptest::prelude::*;
use ringex_core::records::*;
use ringex_core::reference::ReferenceEngine;
use ringex_core::{Engine, EngineConfig, RiskMode};

const CASH: u16 = 1;
const BASE: u16 = 2;
const ACCOUNTS: u32 = 6;

pub(crate) fn setup() -> Vec<Command> {
    let mut cmds = vec![
        Command::add_instrument(InstrumentSpec {
            maker_fee_bps: 10,
            taker_fee_bps: 700,
            ..InstrumentSpec::binary(1, CASH)
        }),
        Command::add_instrument(InstrumentSpec {
            tick_size: 2,
            min_price: 2,
            max_price: 98,
            ..InstrumentSpec::binary(2, CASH)
        }),
        Command::add_instrument(InstrumentSpec {
            id: 3,
            kind: InstrumentKind::Spot,
            tick_size: 5,
            lot_size: 10,
            min_price: 100,
            max_price: 2000,
            maker_fee_bps: 20,
            taker_fee_bps: 35,
            base_asset: BASE,
            quote_asset: CASH,
        }),
    ];
    for a in 1..=ACCOUNTS {
        cmds.push(Command::add_account(a));
        cmds.push(Command::deposit(a, CASH, 200_000 + u64::from(a) * 50_000));
        cmds.push(Command::deposit(a, BASE, 2_000 + u64::from(a) * 500));
    }
    cmds
}

/// Turns random words into commands, tracking order ids from the engine's
/// events so that cancels and replaces usually hit real orders.
pub(crate) struct Generator {
    /// Instrument ids in use per market slot (binary, binary, spot); a settled
    /// market is replaced by a fresh one so the stream stays busy.
    markets: [u32; 3],
    next_instrument: u32,
    pending: Vec<Command>,
    orders: Vec<(u64, u32)>,
    live: std::collections::BTreeMap<u64, u32>,
    spot_orders: std::collections::BTreeSet<u64>,
    client_ids: Vec<(u32, u64)>,
    next_client_id: u64,
    seq: u64,
    ts: u64,
}

impl Generator {
    pub(crate) fn new() -> Self {
        Generator {
            markets: [1, 2, 3],
            next_instrument: 4,
            pending: Vec::new(),
            orders: Vec::new(),
            live: Default::default(),
            spot_orders: Default::default(),
            client_ids: Vec::new(),
            next_client_id: 1,
            seq: 0,
            ts: 1_000,
        }
    }

    pub(crate) fn learn(&mut self, events: &[Event]) {
        for ev in events {
            match ev.decode() {
                Some(EventView::OrderAccepted {
                    order_id,
                    account,
                    instrument,
                    ..
                }) => {
                    if instrument == self.markets[2] {
                        self.spot_orders.insert(order_id);
                    }
                    self.orders.push((order_id, account));
                    self.live.insert(order_id, account);
                    if self.orders.len() > 256 {
                        self.orders.remove(0);
                    }
                }
                Some(EventView::OrderCancelled { order_id, .. }) => {
                    self.live.remove(&order_id);
                }
                Some(EventView::Trade {
                    maker_order_id,
                    taker_order_id,
                    maker_leaves,
                    taker_leaves,
                    ..
                }) => {
                    if maker_leaves == 0 {
                        self.live.remove(&maker_order_id);
                    }
                    if taker_leaves == 0 {
                        self.live.remove(&taker_order_id);
                    }
                }
                _ => {}
            }
        }
    }

    /// Usually a live order; sometimes a recent one that may have finished.
    fn pick_order(&self, w: u64) -> Option<(u64, u32)> {
        if w % 8 != 0 && !self.live.is_empty() {
            let n = (w as usize / 8) % self.live.len();
            return self.live.iter().nth(n).map(|(id, a)| (*id, *a));
        }
        if self.orders.is_empty() {
            return None;
        }
        Some(self.orders[self.orders.len() - 1 - (w as usize / 7) % self.orders.len()])
    }

    pub(crate) fn command(&mut self, words: [u64; 4]) -> Command {
        let [a, b, c, d] = words;
        self.seq += 1;
        self.ts += a % 50;
        if let Some(cmd) = self.pending.pop() {
            return cmd.stamped(self.seq, self.ts);
        }
        let account = 1 + (b % u64::from(ACCOUNTS)) as u32;
        let slot = (c % 3) as usize;
        let instrument = self.markets[slot];
        let kind = a % 1000;
        let cmd = match kind {
            0..=619 => self.new_order(account, instrument, slot == 2, b, c, d),
            620..=699 => match self.pick_order(d) {
                // Sometimes another account, which must be refused.
                Some((id, owner)) if b % 10 != 0 => Command::cancel(owner, id),
                Some((id, _)) => Command::cancel(account, id),
                None => Command::cancel(account, d % 50),
            },
            700..=719 => match self.client_ids.len() {
                0 => Command::cancel_by_client_id(account, d),
                n => {
                    let (owner, cid) = self.client_ids[(d as usize) % n];
                    Command::cancel_by_client_id(owner, cid)
                }
            },
            720..=879 => match self.pick_order(d) {
                Some((id, owner)) => {
                    let cid = if c % 5 == 0 {
                        0
                    } else {
                        self.fresh_client_id(owner)
                    };
                    // Mostly a price valid for the order's own market.
                    let spot = self.spot_orders.contains(&id) != (c % 16 == 0);
                    let price = if spot {
                        700 + (c % 40) as i64 * 5
                    } else {
                        30 + ((c >> 8) % 20) as i64 * 2
                    };
                    let qty = if spot { 10 * (1 + d % 12) } else { 1 + d % 25 };
                    let owner = if b % 13 == 0 { account } else { owner };
                    Command::replace(owner, id, cid, price, qty)
                }
                None => Command::replace(account, 1, 0, 50, 1),
            },
            880..=884 => Command::mass_cancel(account, (c % 2 == 0).then_some(instrument)),
            885..=934 => Command::timer_tick(),
            // Now and then a deposit near i64::MAX, to exercise the overflow bounds.
            935..=949 if c % 64 == 0 => Command::deposit(
                account,
                [CASH, BASE][((c >> 8) % 2) as usize],
                i64::MAX as u64 - d % 1000,
            ),
            935..=949 => Command::deposit(account, [CASH, BASE][(c % 2) as usize], d % 20_000),
            950..=964 => Command::withdraw(account, [CASH, BASE][(c % 2) as usize], d % 20_000),
            // Halts and kill switches are turned off far more often than on,
            // so the market is usually open.
            965 => Command::halt(instrument),
            966..=980 => Command::resume(instrument),
            981..=984 => Command::kill_switch(Some(account), d % 16 == 0),
            985 => Command::kill_switch(None, d % 16 == 0),
            986..=990 => Command::set_limits(
                account,
                AccountLimits {
                    max_order_quantity: [0, 0, 30, 200][(d % 4) as usize],
                    max_open_orders: [0, 0, 3, 10][(c % 4) as usize],
                    max_notional: [0, 0, 1_500, 60_000][((d >> 8) % 4) as usize],
                    max_position: [0, 0, 20, 100][((d >> 16) % 4) as usize],
                },
            ),
            991..=992 if slot < 2 && d % 8 == 0 => {
                // Settle, then open a fresh market in the same slot.
                let id = self.next_instrument;
                self.next_instrument += 1;
                self.markets[slot] = id;
                self.pending.push(Command::add_instrument(InstrumentSpec {
                    maker_fee_bps: (d % 3) as u16 * 50,
                    taker_fee_bps: (d % 5) as u16 * 200,
                    ..InstrumentSpec::binary(id, CASH)
                }));
                Command::settle(
                    instrument,
                    [Outcome::Yes, Outcome::No][((d >> 8) % 2) as usize],
                )
            }
            // Settlements that must be refused: a spot market, or no outcome.
            991..=992 if slot == 2 => Command::settle(instrument, Outcome::Yes),
            991..=992 => Command::settle(instrument, Outcome::None),
            993..=994 => Command::state_digest(),
            _ => {
                // Garbage: random bytes, occasionally with a valid kind and version.
                let mut bytes = [0u8; COMMAND_SIZE];
                for (i, chunk) in bytes.chunks_mut(8).enumerate() {
                    let w = words[i % 4].rotate_left(i as u32 * 7)
                        ^ (i as u64).wrapping_mul(0x9E37_79B9);
                    chunk.copy_from_slice(&w.to_le_bytes()[..chunk.len()]);
                }
                if d % 2 == 0 {
                    bytes[0] = 1 + (bytes[0] % 15);
                    bytes[1] = COMMAND_VERSION;
                }
                bytemuck::pod_read_unaligned(&bytes)
            }
        };
        cmd.stamped(self.seq, self.ts)
    }

    fn fresh_client_id(&mut self, account: u32) -> u64 {
        let cid = self.next_client_id;
        self.next_client_id += 1;
        self.client_ids.push((account, cid));
        if self.client_ids.len() > 128 {
            self.client_ids.remove(0);
        }
        cid
    }

    fn new_order(
        &mut self,
        account: u32,
        instrument: u32,
        spot: bool,
        b: u64,
        c: u64,
        d: u64,
    ) -> Command {
        let side = if b & 0x100 == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let outcome = match (spot, (c >> 8) % 20) {
            (_, 0) => Outcome::from_u8(((c >> 16) % 3) as u8).unwrap_or(Outcome::None),
            (true, _) => Outcome::None,
            (false, x) if x % 2 == 0 => Outcome::Yes,
            (false, _) => Outcome::No,
        };
        let order_type = match (c >> 24) % 20 {
            0..=13 => OrderType::Limit,
            14..=16 => OrderType::Market,
            17..=18 => OrderType::StopLimit,
            _ => OrderType::StopMarket,
        };
        let time_in_force = match (d >> 8) % 10 {
            0..=5 => TimeInForce::Gtc,
            6..=7 => TimeInForce::Ioc,
            8 => TimeInForce::Fok,
            _ => TimeInForce::Gtd,
        };
        // Prices cluster around a mid so books cross often; a few are off-grid.
        let (price, stop_price, qty) = if spot {
            let p = 800 + ((d >> 16) % 41) as i64 * 5 - 100;
            let off = if (d >> 24) % 40 == 0 { 3 } else { 0 };
            (
                p + off,
                p + ((d >> 32) % 9) as i64 * 5 - 20,
                10 * (1 + (b >> 16) % 15) + u64::from((b >> 8) % 50 == 0),
            )
        } else {
            let p = 35 + ((d >> 16) % 31) as i64;
            let off = if (d >> 24) % 40 == 0 { 120 } else { 0 };
            let lot_noise = if (b >> 8) % 60 == 0 {
                0
            } else {
                1 + (b >> 16) % 30
            };
            (p + off, p + ((d >> 32) % 9) as i64 - 4, lot_noise)
        };
        let market = order_type == OrderType::Market;
        let budget = if spot && market && side == Side::Buy && (d >> 40) % 2 == 0 {
            500 + (d >> 44) % 20_000
        } else {
            0
        };
        let client_order_id = match (b >> 24) % 25 {
            0 if !self.client_ids.is_empty() => {
                self.client_ids[(d as usize) % self.client_ids.len()].1
            }
            1 => 0,
            _ => self.fresh_client_id(account),
        };
        Command::new_order(OrderSpec {
            account,
            instrument,
            client_order_id,
            side,
            outcome,
            order_type,
            time_in_force: if market && (d >> 48) % 8 != 0 {
                TimeInForce::Ioc
            } else {
                time_in_force
            },
            price: if market && (d >> 52) % 3 != 0 {
                0
            } else {
                price
            },
            quantity: qty,
            stop_price,
            expire_time: self.ts + (d >> 56) % 200,
            quote_budget: budget,
            post_only: (b >> 32) % 9 == 0,
            stp: SelfTradePrevention::from_u8(((b >> 40) % 4) as u8).expect("in range"),
        })
    }
}

pub(crate) fn config(risk: RiskMode) -> EngineConfig {
    EngineConfig {
        risk,
        max_positions: 512,
        dedup_window: 64,
        ..EngineConfig::small()
    }
}

/// Runs the stream through both; returns a description of the first difference.
fn run_both(risk: RiskMode, ops: &[[u64; 4]]) -> Result<Vec<Event>, String> {
    let mut engine = Engine::new(config(risk));
    let mut reference = ReferenceEngine::new(config(risk));
    let mut gen = Generator::new();
    let (mut got, mut want) = (Vec::new(), Vec::new());
    let mut commands: Vec<Command> = setup().into_iter().map(|c| c.stamped(0, 0)).collect();
    let setup_len = commands.len();
    let mut all = Vec::new();
    let mut step = 0;
    let mut op = ops.iter();
    loop {
        let cmd = if step < setup_len {
            commands[step]
        } else {
            match op.next() {
                Some(words) => gen.command(*words),
                None => break,
            }
        };
        step += 1;
        got.clear();
        want.clear();
        engine.apply(&cmd, &mut got);
        reference.apply(&cmd, &mut want);
        if cmd.kind == CommandKind::StateDigest as u8 && cmd.version == COMMAND_VERSION {
            // Only the engine can hash its own layout; compare the rest.
            if let (Some(g), Some(w)) = (got.first_mut(), want.first()) {
                if g.kind == EventKind::StateDigest as u8 {
                    assert_eq!(g.words[0], engine.state_digest());
                    g.words[0] = w.words[0];
                }
            }
        }
        if got != want {
            let first = got
                .iter()
                .zip(&want)
                .position(|(g, w)| g != w)
                .unwrap_or(got.len().min(want.len()));
            return Err(format!(
                "step {step}: {cmd:?}\n  decoded: {:?}\n  first difference at event {first}\n  engine:    {:?}\n  reference: {:?}\n  engine events: {:#?}\n  reference events: {:#?}",
                cmd.decode(),
                got.get(first).and_then(Event::decode),
                want.get(first).and_then(Event::decode),
                got.iter().map(|e| e.decode()).collect::<Vec<_>>(),
                want.iter().map(|e| e.decode()).collect::<Vec<_>>(),
            ));
        }
        if let Err(violation) = engine.check_invariants() {
            return Err(format!(
                "step {step}: {cmd:?}: invariant broken: {violation}"
            ));
        }
        gen.learn(&got);
        all.extend_from_slice(&got);
        commands.push(cmd);
    }
    Ok(all)
}

pub(crate) fn ops_strategy() -> impl Strategy<Value = Vec<[u64; 4]>> {
    prop::collection::vec(any::<[u64; 4]>(), 1..400)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn engine_and_reference_emit_identical_events_with_risk_on(ops in ops_strategy()) {
        if let Err(diff) = run_both(RiskMode::Enabled, &ops) {
            prop_assert!(false, "{}", diff);
        }
    }

    #[test]
    fn engine_and_reference_emit_identical_events_with_risk_off(ops in ops_strategy()) {
        if let Err(diff) = run_both(RiskMode::Disabled, &ops) {
            prop_assert!(false, "{}", diff);
        }
    }
}

pub(crate) fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[test]
fn a_long_random_session_matches_the_reference_at_every_step() {
    let mut state = 0x5EED;
    let ops: Vec<[u64; 4]> = (0..250_000)
        .map(|_| {
            [
                splitmix(&mut state),
                splitmix(&mut state),
                splitmix(&mut state),
                splitmix(&mut state),
            ]
        })
        .collect();
    let events = run_both(RiskMode::Enabled, &ops).unwrap_or_else(|diff| panic!("{diff}"));
    // The stream must exercise the engine, not just its rejects.
    let count = |pred: &dyn Fn(&EventView) -> bool| {
        events
            .iter()
            .filter_map(Event::decode)
            .filter(|e| pred(e))
            .count()
    };
    let trades = count(&|e| matches!(e, EventView::Trade { .. }));
    let triggered = count(&|e| matches!(e, EventView::StopTriggered { .. }));
    let settled = count(&|e| matches!(e, EventView::MarketSettled { .. }));
    let replaced = count(&|e| matches!(e, EventView::OrderReplaced { .. }));
    assert!(trades > 15_000, "trades: {trades}");
    assert!(triggered > 2_000, "stop triggers: {triggered}");
    assert!(settled > 0, "settlements: {settled}");
    assert!(replaced > 4_000, "replaces: {replaced}");
    for reason in CancelReason::ALL {
        let n = count(&|e| matches!(e, EventView::OrderCancelled { reason: r, .. } if r == reason));
        assert!(n > 0, "no cancel with reason {reason:?}");
    }
    let rejects = count(&|e| matches!(e, EventView::Rejected { .. }));
    assert!(
        rejects < events.len() / 3,
        "{rejects} rejects out of {} events",
        events.len()
    );
}
