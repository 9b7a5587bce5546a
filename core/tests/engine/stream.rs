//! A seeded generator of long, mixed, mostly valid command streams over two
//! binary markets and one spot pair.
//!
//! The generator runs its own shadow engine so that cancels and replaces
//! can name real order ids (learned from the events); the commands it
//! returns are fully stamped, so replaying them into any fresh engine
//! reproduces the shadow's run exactly.

use std::collections::HashMap;

use ringex_core::records::*;
use ringex_core::{Engine, EngineConfig};

use crate::support::{spot_spec, XorShift, BASE, BIN, BIN_FEES, CASH, QUOTE, SPOT};

#[derive(Debug, Clone, Copy)]
pub struct StreamConfig {
    pub seed: u64,
    /// Trading accounts `1..=accounts`.
    pub accounts: u32,
    /// Commands after the setup.
    pub commands: usize,
    /// Kill switches, halts and limit changes.
    pub admin: bool,
    /// Settle [`BIN_FEES`] after this many commands.
    pub settle_at: Option<usize>,
    /// Check the shadow engine's invariants every this many commands (0: never).
    pub check_every: usize,
}

impl StreamConfig {
    pub fn new(seed: u64, commands: usize) -> Self {
        StreamConfig {
            seed,
            accounts: 20,
            commands,
            admin: true,
            settle_at: None,
            check_every: 1000,
        }
    }
}

/// What the stream did in the shadow engine.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub events: u64,
    pub accepted: u64,
    pub trades: u64,
    pub rejects: u64,
    pub cancels: u64,
    pub expired: u64,
    pub replaces: u64,
    pub triggers: u64,
    /// FNV-1a over the bytes of every event of the stream (not the setup).
    pub hash: u64,
}

pub struct Stream {
    pub setup: Vec<Command>,
    pub commands: Vec<Command>,
    pub stats: Stats,
    /// The shadow engine's digest at the end.
    pub final_digest: u64,
}

#[derive(Debug, Clone, Copy)]
struct Live {
    id: u64,
    account: u32,
    instrument: u32,
    cid: u64,
    outcome: Outcome,
    /// Price on the YES book.
    book_price: i64,
}

pub fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
    }
    hash
}

pub const FNV_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// An allocation-free sink that hashes and counts what it receives.
#[derive(Debug, Clone, Copy)]
pub struct HashSink {
    pub events: u64,
    pub trades: u64,
    pub hash: u64,
}

impl Default for HashSink {
    fn default() -> Self {
        HashSink {
            events: 0,
            trades: 0,
            hash: FNV_SEED,
        }
    }
}

impl EventSink for HashSink {
    fn emit(&mut self, event: &Event) {
        self.events += 1;
        self.trades += u64::from(event.kind == EventKind::Trade as u8);
        self.hash = fnv(self.hash, bytemuck::bytes_of(event));
    }
}

struct Gen {
    cfg: StreamConfig,
    rng: XorShift,
    seq: u64,
    ts: u64,
    shadow: Engine,
    events: Vec<Event>,
    live: Vec<Live>,
    index: HashMap<u64, usize>,
    next_cid: Vec<u64>,
    mid: [i64; 4],
    killed: Vec<bool>,
    halted: [bool; 4],
    global_kill: bool,
    /// Admin changes to undo a few commands later (kill switch off, resume).
    restore: Vec<(usize, Command)>,
    step: usize,
    stats: Stats,
}

pub fn generate(cfg: StreamConfig) -> Stream {
    let mut g = Gen {
        cfg,
        rng: XorShift::new(cfg.seed),
        seq: 0,
        ts: 1_000_000,
        shadow: Engine::new(EngineConfig::small()),
        events: Vec::with_capacity(1 << 14),
        live: Vec::new(),
        index: HashMap::new(),
        next_cid: vec![1; cfg.accounts as usize + 1],
        mid: [0, 50, 50, 500],
        killed: vec![false; cfg.accounts as usize + 1],
        halted: [false; 4],
        global_kill: false,
        restore: Vec::new(),
        step: 0,
        stats: Stats::default(),
    };
    let setup = g.setup();
    g.stats = Stats {
        hash: FNV_SEED,
        ..Stats::default()
    };
    let mut commands = Vec::with_capacity(cfg.commands);
    for i in 0..cfg.commands {
        let cmd = if cfg.settle_at == Some(i) {
            Command::settle(BIN_FEES, Outcome::Yes)
        } else {
            g.next_command()
        };
        let cmd = g.stamp(cmd);
        g.run(&cmd, true);
        if cfg.check_every != 0 && i % cfg.check_every == 0 {
            g.shadow.check_invariants().unwrap();
        }
        commands.push(cmd);
    }
    g.shadow.check_invariants().unwrap();
    Stream {
        setup,
        commands,
        stats: g.stats,
        final_digest: g.shadow.state_digest(),
    }
}

impl Gen {
    fn stamp(&mut self, cmd: Command) -> Command {
        self.seq += 1;
        self.ts += self.rng.below(2_000) + 1;
        cmd.stamped(self.seq, self.ts)
    }

    /// Instruments, accounts, funds, a few limits, resting orders, positions
    /// in both binary markets, and a pending stop in every book.
    fn setup(&mut self) -> Vec<Command> {
        let mut cmds = vec![
            Command::add_instrument(InstrumentSpec::binary(BIN, CASH)),
            Command::add_instrument(InstrumentSpec {
                maker_fee_bps: 100,
                taker_fee_bps: 700,
                ..InstrumentSpec::binary(BIN_FEES, CASH)
            }),
            Command::add_instrument(InstrumentSpec {
                maker_fee_bps: 10,
                taker_fee_bps: 25,
                ..spot_spec(SPOT, 1, 1, 1, 1000)
            }),
        ];
        for a in 1..=self.cfg.accounts {
            cmds.push(Command::add_account(a));
            for asset in [CASH, BASE, QUOTE] {
                cmds.push(Command::deposit(a, asset, 1_000_000_000));
            }
        }
        cmds.push(Command::set_limits(
            3,
            AccountLimits {
                max_order_quantity: 15,
                max_open_orders: 100,
                max_notional: 50_000,
                max_position: 400,
            },
        ));
        let mut cid = 1_000_000_000;
        let mut order = |spec: OrderSpec| {
            cid += 1;
            Command::new_order(OrderSpec {
                client_order_id: cid,
                ..spec
            })
        };
        for inst in [BIN, BIN_FEES] {
            for a in 1..=self.cfg.accounts {
                let side = if a % 2 == 0 { Side::Buy } else { Side::Sell };
                let spec = OrderSpec {
                    outcome: Outcome::Yes,
                    ..OrderSpec::limit(a, inst, 0, side, 50, 5)
                };
                cmds.push(order(spec));
            }
            for a in 1..=4 {
                cmds.push(order(OrderSpec {
                    outcome: Outcome::Yes,
                    order_type: OrderType::StopLimit,
                    stop_price: 95,
                    ..OrderSpec::limit(a, inst, 0, Side::Buy, 96, 1)
                }));
            }
        }
        for a in 1..=self.cfg.accounts {
            let side = if a % 2 == 0 { Side::Buy } else { Side::Sell };
            cmds.push(order(OrderSpec::limit(a, SPOT, 0, side, 500, 10)));
        }
        cmds.push(order(OrderSpec {
            order_type: OrderType::StopLimit,
            stop_price: 990,
            ..OrderSpec::limit(1, SPOT, 0, Side::Buy, 995, 1)
        }));
        let setup: Vec<Command> = cmds.into_iter().map(|c| self.stamp(c)).collect();
        for cmd in &setup {
            self.run(cmd, false);
        }
        self.shadow.check_invariants().unwrap();
        setup
    }

    fn run(&mut self, cmd: &Command, count: bool) {
        self.events.clear();
        self.shadow.apply(cmd, &mut self.events);
        for i in 0..self.events.len() {
            let ev = self.events[i];
            if count {
                self.stats.events += 1;
                self.stats.hash = fnv(self.stats.hash, bytemuck::bytes_of(&ev));
            }
            match ev.decode().expect("decodable") {
                EventView::OrderAccepted {
                    order_id,
                    client_order_id,
                    account,
                    instrument,
                    outcome,
                    price,
                    ..
                } => {
                    self.stats.accepted += 1;
                    self.index.insert(order_id, self.live.len());
                    self.live.push(Live {
                        id: order_id,
                        account,
                        instrument,
                        cid: client_order_id,
                        outcome,
                        book_price: price,
                    });
                }
                EventView::OrderReplaced {
                    order_id,
                    client_order_id,
                    price,
                    ..
                } => {
                    self.stats.replaces += 1;
                    let i = self.index[&order_id];
                    self.live[i].cid = client_order_id;
                    self.live[i].book_price = price;
                }
                EventView::OrderCancelled {
                    order_id, reason, ..
                } => {
                    self.stats.cancels += 1;
                    if reason == CancelReason::Expired {
                        self.stats.expired += 1;
                    }
                    self.forget(order_id);
                }
                EventView::Trade {
                    maker_order_id,
                    taker_order_id,
                    maker_leaves,
                    taker_leaves,
                    ..
                } => {
                    self.stats.trades += 1;
                    if maker_leaves == 0 {
                        self.forget(maker_order_id);
                    }
                    if taker_leaves == 0 {
                        self.forget(taker_order_id);
                    }
                }
                EventView::StopTriggered { .. } => self.stats.triggers += 1,
                EventView::Rejected { .. } => self.stats.rejects += 1,
                _ => {}
            }
        }
    }

    fn forget(&mut self, id: u64) {
        let i = self.index.remove(&id).expect("a live order finished once");
        self.live.swap_remove(i);
        if let Some(moved) = self.live.get(i) {
            self.index.insert(moved.id, i);
        }
    }

    fn cid(&mut self, account: u32) -> u64 {
        let c = &mut self.next_cid[account as usize];
        *c += 1;
        *c
    }

    fn account(&mut self) -> u32 {
        self.rng.range(1, i64::from(self.cfg.accounts)) as u32
    }

    fn walk_mids(&mut self) {
        for inst in [BIN, BIN_FEES] {
            if self.rng.chance(10) {
                let m = &mut self.mid[inst as usize];
                *m = (*m + self.rng.range(-1, 1)).clamp(20, 80);
            }
        }
        if self.rng.chance(10) {
            let m = &mut self.mid[SPOT as usize];
            *m = (*m + self.rng.range(-5, 5)).clamp(300, 700);
        }
    }

    /// A limit order around the mid; `aggression` moves the price towards
    /// (positive) or away from (negative) the other side.
    fn order(&mut self, aggression: i64) -> OrderSpec {
        let account = self.account();
        let cid = if self.rng.chance(2) {
            // Sometimes reuse a client id: a duplicate unless long forgotten.
            self.next_cid[account as usize].saturating_sub(self.rng.below(5))
        } else {
            self.cid(account)
        };
        let side = if self.rng.chance(50) {
            Side::Buy
        } else {
            Side::Sell
        };
        let stp = if self.rng.chance(15) {
            self.rng.pick(SelfTradePrevention::ALL)
        } else {
            SelfTradePrevention::None
        };
        let dir = if side == Side::Buy { 1 } else { -1 };
        if self.rng.chance(30) {
            let mid = self.mid[SPOT as usize];
            let price = (mid + self.rng.range(-30, 30) + dir * aggression).clamp(1, 1000);
            OrderSpec {
                stp,
                ..OrderSpec::limit(
                    account,
                    SPOT,
                    cid,
                    side,
                    price,
                    self.rng.range(1, 50) as u64,
                )
            }
        } else {
            let instrument = if self.rng.chance(50) { BIN } else { BIN_FEES };
            let outcome = if self.rng.chance(50) {
                Outcome::Yes
            } else {
                Outcome::No
            };
            let mid = match outcome {
                Outcome::No => 100 - self.mid[instrument as usize],
                _ => self.mid[instrument as usize],
            };
            let price = (mid + self.rng.range(-8, 8) + dir * aggression).clamp(1, 99);
            OrderSpec {
                outcome,
                stp,
                ..OrderSpec::limit(
                    account,
                    instrument,
                    cid,
                    side,
                    price,
                    self.rng.range(1, 20) as u64,
                )
            }
        }
    }

    fn pick_live(&mut self) -> Option<Live> {
        if self.live.is_empty() {
            return None;
        }
        let i = self.rng.below(self.live.len() as u64) as usize;
        Some(self.live[i])
    }

    fn next_command(&mut self) -> Command {
        self.walk_mids();
        self.step += 1;
        if self.global_kill {
            self.global_kill = false;
            return Command::kill_switch(None, false);
        }
        if let Some(i) = self.restore.iter().position(|(due, _)| *due <= self.step) {
            let (_, cmd) = self.restore.swap_remove(i);
            match cmd.decode() {
                Ok(CommandView::KillSwitch {
                    account: Some(a), ..
                }) => self.killed[a as usize] = false,
                Ok(CommandView::Resume { instrument }) => self.halted[instrument as usize] = false,
                _ => {}
            }
            return cmd;
        }
        let mut r = self.rng.below(1000);
        if self.live.len() > 1500 && self.rng.chance(50) {
            r = 600;
        }
        match r {
            0..280 => Command::new_order(self.order(0)),
            280..360 => {
                let spec = self.order(12);
                Command::new_order(OrderSpec {
                    time_in_force: TimeInForce::Ioc,
                    ..spec
                })
            }
            360..400 => {
                let spec = self.order(6);
                let order_type = if self.rng.chance(50) {
                    OrderType::Limit
                } else {
                    OrderType::Market
                };
                Command::new_order(OrderSpec {
                    order_type,
                    time_in_force: TimeInForce::Fok,
                    ..spec
                })
            }
            400..440 => {
                let spec = self.order(10);
                let mut spec = OrderSpec {
                    order_type: OrderType::Market,
                    time_in_force: TimeInForce::Ioc,
                    ..spec
                };
                match (spec.instrument, spec.side) {
                    (SPOT, Side::Buy) if self.rng.chance(60) => {
                        spec.quote_budget = spec.quantity * self.mid[SPOT as usize] as u64;
                        spec.price = 0;
                    }
                    (SPOT, Side::Buy) => {}
                    _ if self.rng.chance(50) => spec.price = 0,
                    _ => {}
                }
                Command::new_order(spec)
            }
            440..520 => {
                let spec = self.order(0);
                let expire_time = self.ts + self.rng.below(60_000) + 500;
                Command::new_order(OrderSpec {
                    time_in_force: TimeInForce::Gtd,
                    expire_time,
                    ..spec
                })
            }
            520..570 => {
                let spec = self.order(0);
                let order_type = if self.rng.chance(50) {
                    OrderType::StopLimit
                } else {
                    OrderType::StopMarket
                };
                let time_in_force = self.rng.pick(&[
                    TimeInForce::Gtc,
                    TimeInForce::Gtc,
                    TimeInForce::Ioc,
                    TimeInForce::Gtd,
                    TimeInForce::Fok,
                ]);
                let (lo, hi) = if spec.instrument == SPOT {
                    (1, 1000)
                } else {
                    (1, 99)
                };
                let stop_price = (spec.price + self.rng.range(-5, 5)).clamp(lo, hi);
                let price = if order_type == OrderType::StopMarket && self.rng.chance(50) {
                    if spec.instrument == SPOT && spec.side == Side::Buy {
                        hi
                    } else {
                        0
                    }
                } else {
                    spec.price
                };
                Command::new_order(OrderSpec {
                    order_type,
                    time_in_force,
                    stop_price,
                    price,
                    expire_time: self.ts + self.rng.below(60_000) + 500,
                    ..spec
                })
            }
            570..590 => {
                let spec = self.order(-2);
                Command::new_order(OrderSpec {
                    post_only: true,
                    ..spec
                })
            }
            590..740 => {
                let Some(o) = self.pick_live() else {
                    return Command::timer_tick();
                };
                match self.rng.below(20) {
                    0 => Command::cancel(o.account % self.cfg.accounts + 1, o.id),
                    1 => Command::cancel(o.account, o.id + 100_000),
                    2..=5 if o.cid != 0 => Command::cancel_by_client_id(o.account, o.cid),
                    _ => Command::cancel(o.account, o.id),
                }
            }
            740..860 => {
                let Some(o) = self.pick_live() else {
                    return Command::timer_tick();
                };
                let user_price = match o.outcome {
                    Outcome::No => 100 - o.book_price,
                    _ => o.book_price,
                };
                let price = if self.rng.chance(50) {
                    user_price
                } else {
                    let (lo, hi) = if o.instrument == SPOT {
                        (1, 1000)
                    } else {
                        (1, 99)
                    };
                    (user_price + self.rng.range(-3, 3)).clamp(lo, hi)
                };
                let qty = self.rng.range(1, 25) as u64;
                let new_cid = if self.rng.chance(50) {
                    self.cid(o.account)
                } else {
                    0
                };
                if o.cid != 0 && self.rng.chance(20) {
                    Command::replace_by_client_id(o.account, o.cid, new_cid, price, qty)
                } else if self.rng.chance(3) {
                    Command::replace(o.account % self.cfg.accounts + 1, o.id, new_cid, price, qty)
                } else {
                    Command::replace(o.account, o.id, new_cid, price, qty)
                }
            }
            860..910 => Command::timer_tick(),
            910..920 => {
                let account = self.account();
                let instrument = self
                    .rng
                    .pick(&[None, Some(BIN), Some(BIN_FEES), Some(SPOT)]);
                Command::mass_cancel(account, instrument)
            }
            920..945 => {
                let account = self.account();
                let asset = self.rng.pick(&[CASH, BASE, QUOTE]);
                Command::deposit(account, asset, self.rng.range(1, 100_000) as u64)
            }
            945..955 => {
                let account = self.account();
                let asset = self.rng.pick(&[CASH, BASE, QUOTE]);
                Command::withdraw(account, asset, self.rng.range(1, 10_000) as u64)
            }
            955..965 => Command::state_digest(),
            965..975 => {
                // Mostly invalid orders: off-grid prices, zero or huge quantities, unknown ids.
                let spec = self.order(0);
                let spec = match self.rng.below(5) {
                    0 => OrderSpec { price: 0, ..spec },
                    1 => OrderSpec {
                        quantity: 0,
                        ..spec
                    },
                    2 => OrderSpec {
                        quantity: 1 << 40,
                        ..spec
                    },
                    3 => OrderSpec {
                        instrument: 9,
                        ..spec
                    },
                    _ => OrderSpec {
                        account: 200,
                        ..spec
                    },
                };
                Command::new_order(spec)
            }
            _ if self.cfg.admin => self.admin(),
            _ => Command::new_order(self.order(0)),
        }
    }

    fn admin(&mut self) -> Command {
        match self.rng.below(10) {
            0..=3 => {
                let account = self.account();
                if self.killed[account as usize] {
                    return Command::new_order(self.order(0));
                }
                self.killed[account as usize] = true;
                let due = self.step + self.rng.below(50) as usize + 1;
                self.restore
                    .push((due, Command::kill_switch(Some(account), false)));
                Command::kill_switch(Some(account), true)
            }
            4 => {
                self.global_kill = true;
                Command::kill_switch(None, true)
            }
            5..=7 => {
                let inst = self.rng.pick(&[BIN, BIN_FEES, SPOT]);
                if self.halted[inst as usize] {
                    // Sometimes halting twice: an invalid transition.
                    return Command::halt(inst);
                }
                self.halted[inst as usize] = true;
                let due = self.step + self.rng.below(30) as usize + 1;
                self.restore.push((due, Command::resume(inst)));
                Command::halt(inst)
            }
            _ => {
                let account = self.account();
                let limits = if self.rng.chance(50) {
                    AccountLimits::default()
                } else {
                    AccountLimits {
                        max_order_quantity: self.rng.range(5, 50) as u64,
                        max_open_orders: self.rng.range(5, 200) as u32,
                        max_notional: self.rng.range(100, 100_000) as u64,
                        max_position: self.rng.range(10, 1_000) as u64,
                    }
                };
                Command::set_limits(account, limits)
            }
        }
    }
}
