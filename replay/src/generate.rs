//! A seeded generator of random trading sessions over several binary
//! markets and spot pairs, for the crash tests, the determinism tests and
//! `ringex-replay generate`.
//!
//! The generator keeps no engine: cancels and replaces address orders by
//! the client order ids it issued recently, so some find a live order and
//! some do not (a deterministic reject, which a replay must reproduce just
//! the same). The mix covers every order type and time in force, post-only,
//! self-trade prevention, replaces, mass cancels, deposits and withdrawals,
//! halts and resumes, kill switches, timer ticks, digests and a few
//! malformed commands.
//!
//! **Threads.** Owned by the thread that submits the commands.

use ringex_core::records::{
    Command, InstrumentKind, InstrumentSpec, OrderSpec, OrderType, Outcome, SelfTradePrevention,
    Side, TimeInForce,
};
use std::collections::VecDeque;

/// Binary markets: instruments `1..=BINARY_MARKETS`, settling in [`CASH`].
pub const BINARY_MARKETS: u32 = 3;
/// Spot pairs: instruments after the binary markets.
pub const SPOT_PAIRS: u32 = 2;
/// The cash asset of the binary markets, and the quote asset of the spot pairs.
pub const CASH: u16 = 0;
/// Highest spot price (spot books span 1..=SPOT_MAX_PRICE).
pub const SPOT_MAX_PRICE: i64 = 4_000;

/// A small deterministic PRNG (splitmix64 seeding, xorshift64*).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from `seed` (any value).
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    /// 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }

    /// True with probability `permille / 1000`.
    pub fn chance(&mut self, permille: u64) -> bool {
        self.below(1000) < permille
    }
}

/// The session's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionParams {
    /// Seed of the random choices.
    pub seed: u64,
    /// Trading accounts `1..=accounts`.
    pub accounts: u32,
    /// First client order id issued (distinct runs against one journal
    /// use distinct ranges, so their ids do not collide).
    pub first_client_order_id: u64,
}

impl SessionParams {
    /// 40 accounts, client ids from 1.
    pub fn new(seed: u64) -> SessionParams {
        SessionParams {
            seed,
            accounts: 40,
            first_client_order_id: 1,
        }
    }
}

/// The spot pair `i` (0-based): its instrument id and base asset.
fn spot(i: u32) -> (u32, u16) {
    (BINARY_MARKETS + 1 + i, 1 + i as u16)
}

/// Generates a random session. See the module docs.
#[derive(Debug, Clone)]
pub struct SessionGenerator {
    params: SessionParams,
    rng: Rng,
    next_client_order_id: u64,
    /// Recently issued (account, client order id), newest at the back.
    recent: VecDeque<(u32, u64)>,
    /// Per instrument (index = id): the mid price orders cluster around.
    mid: Vec<i64>,
    halted: Vec<u32>,
    killed: Vec<u32>,
}

const RECENT: usize = 2048;

impl SessionGenerator {
    /// A generator for `params`.
    pub fn new(params: SessionParams) -> SessionGenerator {
        let mut mid = vec![0; (BINARY_MARKETS + SPOT_PAIRS + 1) as usize];
        for (id, m) in mid.iter_mut().enumerate().skip(1) {
            *m = if id as u32 <= BINARY_MARKETS {
                50
            } else {
                SPOT_MAX_PRICE / 2
            };
        }
        SessionGenerator {
            params,
            rng: Rng::new(params.seed),
            next_client_order_id: params.first_client_order_id,
            recent: VecDeque::with_capacity(RECENT),
            mid,
            halted: Vec::new(),
            killed: Vec::new(),
        }
    }

    /// The instruments, accounts and deposits a session starts with.
    pub fn setup(&self) -> Vec<Command> {
        let mut cmds = Vec::new();
        for id in 1..=BINARY_MARKETS {
            let fees = id == 2;
            cmds.push(Command::add_instrument(InstrumentSpec {
                maker_fee_bps: if fees { 10 } else { 0 },
                taker_fee_bps: if fees { 30 } else { 0 },
                ..InstrumentSpec::binary(id, CASH)
            }));
        }
        for i in 0..SPOT_PAIRS {
            let (id, base) = spot(i);
            cmds.push(Command::add_instrument(InstrumentSpec {
                id,
                kind: InstrumentKind::Spot,
                tick_size: 1,
                lot_size: 1,
                min_price: 1,
                max_price: SPOT_MAX_PRICE,
                maker_fee_bps: 2 * i as u16,
                taker_fee_bps: 5 * i as u16,
                base_asset: base,
                quote_asset: CASH,
            }));
        }
        for account in 1..=self.params.accounts {
            cmds.push(Command::add_account(account));
            cmds.push(Command::deposit(account, CASH, 50_000_000_000));
            for i in 0..SPOT_PAIRS {
                cmds.push(Command::deposit(account, spot(i).1, 20_000_000));
            }
        }
        cmds
    }

    fn client_order_id(&mut self, account: u32) -> u64 {
        let id = self.next_client_order_id;
        self.next_client_order_id += 1;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((account, id));
        id
    }

    fn account(&mut self) -> u32 {
        1 + self.rng.below(u64::from(self.params.accounts)) as u32
    }

    fn instrument(&mut self) -> u32 {
        1 + self.rng.below(u64::from(BINARY_MARKETS + SPOT_PAIRS)) as u32
    }

    /// A price near the instrument's drifting mid.
    fn price(&mut self, instrument: u32, side: Side) -> i64 {
        let binary = instrument <= BINARY_MARKETS;
        let (lo, hi, step, spread) = if binary {
            (1, 99, 1, 8)
        } else {
            (1, SPOT_MAX_PRICE, 5, 60)
        };
        let mid = &mut self.mid[instrument as usize];
        *mid = (*mid + self.rng.range(-step, step)).clamp(lo + spread, hi - spread);
        let mid = *mid;
        // Mostly passive, sometimes crossing.
        let offset = self.rng.range(-spread / 4, spread);
        let p = match side {
            Side::Buy => mid - offset,
            Side::Sell => mid + offset,
        };
        p.clamp(lo, hi)
    }

    fn order(&mut self, now_ns: u64) -> Command {
        let account = self.account();
        let instrument = self.instrument();
        let binary = instrument <= BINARY_MARKETS;
        let side = if self.rng.chance(500) {
            Side::Buy
        } else {
            Side::Sell
        };
        let outcome = if !binary {
            Outcome::None
        } else if self.rng.chance(700) {
            Outcome::Yes
        } else {
            Outcome::No
        };
        // The book side a binary order lands on: NO flips it.
        let book_side = if outcome == Outcome::No {
            side.opposite()
        } else {
            side
        };
        let mut price = self.price(instrument, book_side);
        if outcome == Outcome::No {
            price = 100 - price;
        }
        let quantity = 1 + self.rng.below(if binary { 50 } else { 200 });
        let client_order_id = self.client_order_id(account);
        let mut spec = OrderSpec {
            outcome,
            ..OrderSpec::limit(account, instrument, client_order_id, side, price, quantity)
        };
        let roll = self.rng.below(1000);
        match roll {
            0..=699 => {
                spec.post_only = self.rng.chance(80);
            }
            700..=799 => spec.time_in_force = TimeInForce::Ioc,
            800..=829 => spec.time_in_force = TimeInForce::Fok,
            830..=889 => {
                spec.time_in_force = TimeInForce::Gtd;
                spec.expire_time = now_ns + 1_000_000 * (1 + self.rng.below(400));
            }
            890..=949 => {
                spec.order_type = OrderType::Market;
                spec.time_in_force = TimeInForce::Ioc;
                if !binary && side == Side::Buy && self.rng.chance(500) {
                    spec.price = 0;
                    spec.quote_budget = quantity * SPOT_MAX_PRICE as u64 / 2;
                }
            }
            _ => {
                spec.order_type = if self.rng.chance(500) {
                    OrderType::StopMarket
                } else {
                    OrderType::StopLimit
                };
                let mid = self.mid[instrument as usize];
                let away = self.rng.range(1, if binary { 5 } else { 40 });
                // Buy stops trigger above, sell stops below the last price.
                let stop = match book_side {
                    Side::Buy => mid + away,
                    Side::Sell => mid - away,
                };
                spec.stop_price = if outcome == Outcome::No {
                    100 - stop
                } else {
                    stop
                };
                if spec.order_type == OrderType::StopMarket {
                    spec.price = 0;
                }
            }
        }
        if self.rng.chance(60) {
            spec.stp = match self.rng.below(3) {
                0 => SelfTradePrevention::CancelTaker,
                1 => SelfTradePrevention::CancelMaker,
                _ => SelfTradePrevention::CancelBoth,
            };
        }
        Command::new_order(spec)
    }

    fn recent_order(&mut self) -> Option<(u32, u64)> {
        if self.recent.is_empty() {
            return None;
        }
        // Favour the newest: they are the likeliest to still rest.
        let n = self.recent.len() as u64;
        let back = self.rng.below(n.min(256)).min(self.rng.below(n));
        self.recent.get((n - 1 - back) as usize).copied()
    }

    /// The next command; `now_ns` is about the time it will be stamped with
    /// (GTD expiries are set from it).
    pub fn next_command(&mut self, now_ns: u64) -> Command {
        let roll = self.rng.below(1000);
        match roll {
            0..=579 => self.order(now_ns),
            580..=799 => match self.recent_order() {
                Some((account, coid)) => Command::cancel_by_client_id(account, coid),
                None => self.order(now_ns),
            },
            800..=939 => match self.recent_order() {
                Some((account, coid)) => {
                    let new_coid = self.client_order_id(account);
                    let instrument = self.instrument();
                    let price = self.price(instrument, Side::Buy).min(99);
                    let quantity = 1 + self.rng.below(40);
                    Command::replace_by_client_id(account, coid, new_coid, price, quantity)
                }
                None => self.order(now_ns),
            },
            940..=959 => {
                let account = self.account();
                if self.rng.chance(600) {
                    Command::deposit(account, CASH, 1 + self.rng.below(1_000_000))
                } else {
                    Command::withdraw(account, CASH, 1 + self.rng.below(100_000))
                }
            }
            960..=969 => {
                let account = self.account();
                let instrument = self.rng.chance(500).then(|| self.instrument());
                Command::mass_cancel(account, instrument)
            }
            970..=974 => match self.halted.pop() {
                Some(instrument) => Command::resume(instrument),
                None => {
                    let instrument = self.instrument();
                    self.halted.push(instrument);
                    Command::halt(instrument)
                }
            },
            975..=977 => match self.killed.pop() {
                Some(account) => Command::kill_switch(Some(account), false),
                None => {
                    let account = self.account();
                    self.killed.push(account);
                    Command::kill_switch(Some(account), true)
                }
            },
            978..=989 => Command::timer_tick(),
            // A digest walks the whole state (every capacity-sized table):
            // rare, as an operator's, about one per 50,000 commands.
            990..=995 if self.rng.chance(3) => Command::state_digest(),
            990..=995 => Command::timer_tick(),
            _ => {
                // Malformed on purpose: the engine must reject it the same
                // way on every replay.
                let mut cmd = self.order(now_ns);
                cmd.side = 7;
                cmd
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringex_core::records::{Event, EventKind};
    use ringex_core::{Engine, EngineConfig};

    #[test]
    fn the_same_seed_gives_the_same_commands() {
        let mut a = SessionGenerator::new(SessionParams::new(5));
        let mut b = SessionGenerator::new(SessionParams::new(5));
        for i in 0..1000 {
            assert_eq!(a.next_command(i), b.next_command(i));
        }
    }

    #[test]
    fn a_session_trades_cancels_replaces_and_rejects() {
        let mut g = SessionGenerator::new(SessionParams::new(9));
        let mut engine = Engine::new(EngineConfig::small());
        let mut events: Vec<Event> = Vec::new();
        let mut seq = 0;
        let mut ts = 1_000_000_000;
        let setup = g.setup();
        for cmd in setup {
            seq += 1;
            engine.apply(&cmd.stamped(seq, ts), &mut events);
        }
        for _ in 0..20_000 {
            seq += 1;
            ts += 50_000;
            let cmd = g.next_command(ts);
            engine.apply(&cmd.stamped(seq, ts), &mut events);
        }
        engine.check_invariants().unwrap();
        let count = |k: EventKind| events.iter().filter(|e| e.kind == k as u8).count();
        for kind in [
            EventKind::OrderAccepted,
            EventKind::Trade,
            EventKind::OrderCancelled,
            EventKind::OrderReplaced,
            EventKind::StopTriggered,
            EventKind::Rejected,
            EventKind::PositionChanged,
        ] {
            assert!(count(kind) > 20, "{kind:?}: {}", count(kind));
        }
        // Mostly accepted, not mostly rejected.
        assert!(count(EventKind::Rejected) < count(EventKind::OrderAccepted));
    }
}
