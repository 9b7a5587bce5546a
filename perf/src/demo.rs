//! `ringex-perf demo`: a small live market in the terminal.
//!
//! One engine (risk on) with a binary market and a spot market. A market
//! maker quotes five levels a side around a random walk, moving its quotes
//! with replaces as the walk moves; takers send IOC orders at a modest rate
//! (on the binary market half of them as NO orders, which the engine
//! normalises onto the YES book). Once a second the demo prints the top
//! levels of both books — rebuilt purely from the engine's `BookLevel`
//! events, as a market-data consumer would — the last trades, and counts.
//!
//! It paces itself with `sleep` (20 steps a second), never spins, and
//! holds a bounded amount of state: the live orders, the two book views,
//! and the last few trades. It exists so there is something to watch until
//! the network gateways land.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

use ringex_core::records::{
    Command, Event, EventView, InstrumentKind, InstrumentSpec, OrderSpec, Outcome,
    SelfTradePrevention, Side, TimeInForce,
};
use ringex_core::{Engine, EngineConfig, RiskMode};
use serde::Serialize;

use crate::error::Result;
use crate::stream::{OrderTracker, Rng};

/// The binary market.
pub const BINARY: u32 = 1;
/// The spot market.
pub const SPOT: u32 = 2;
/// Cash: the binary market's settlement asset and the spot market's QUOTE.
pub const CASH: u16 = 0;
/// The spot market's BASE.
pub const BASE: u16 = 1;
/// The market maker's account.
pub const MAKER: u32 = 1;
/// Takers are accounts `2..=TAKERS + 1`.
pub const TAKERS: u32 = 4;
/// Levels the maker quotes per side (and the demo shows).
pub const LEVELS: usize = 5;
/// Simulation steps per second.
pub const STEPS_PER_SECOND: u32 = 20;
const LAST_TRADES: usize = 8;

/// Options of `ringex-perf demo`.
#[derive(Debug, Clone, Copy)]
pub struct DemoOptions {
    /// How long to run.
    pub seconds: u64,
    /// Seed of the random walk and the order flow.
    pub seed: u64,
    /// Taker orders per second per market.
    pub taker_rate: u32,
}

/// An L2 view of one book, built from `BookLevel` events only.
#[derive(Debug, Default, Clone)]
pub struct BookView {
    /// Per side: price -> (quantity, orders).
    pub sides: [BTreeMap<i64, (u64, u32)>; 2],
}

impl BookView {
    fn apply(&mut self, side: Side, price: i64, quantity: u64, orders: u32) {
        let levels = &mut self.sides[side as usize];
        if quantity == 0 {
            levels.remove(&price);
        } else {
            levels.insert(price, (quantity, orders));
        }
    }

    /// Best `n` levels of `side`, best first.
    pub fn top(&self, side: Side, n: usize) -> Vec<(i64, u64, u32)> {
        let levels = &self.sides[side as usize];
        let each = |(p, (q, c)): (&i64, &(u64, u32))| (*p, *q, *c);
        match side {
            Side::Buy => levels.iter().rev().take(n).map(each).collect(),
            Side::Sell => levels.iter().take(n).map(each).collect(),
        }
    }

    /// Best price of `side`.
    pub fn best(&self, side: Side) -> Option<i64> {
        self.top(side, 1).first().map(|l| l.0)
    }
}

/// A trade, as shown.
#[derive(Debug, Clone, Copy)]
struct TradeLine {
    instrument: u32,
    aggressor: Side,
    price: i64,
    quantity: u64,
    sequence: u64,
}

/// What a demo run did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DemoSummary {
    /// Commands applied.
    pub commands: u64,
    /// Trades.
    pub trades: u64,
    /// Rejects (the simulated traders are funded and careful; normally 0).
    pub rejects: u64,
    /// Wall time.
    pub seconds: f64,
}

/// The simulated market: engine, traders and views. Deterministic for a seed.
pub struct DemoMarket {
    engine: Engine,
    rng: Rng,
    tracker: OrderTracker,
    books: [BookView; 2],
    trades: VecDeque<TradeLine>,
    events: Vec<Event>,
    /// Maker quote slots per market, side and level: live order id.
    quotes: [[[Option<u64>; LEVELS]; 2]; 2],
    fair: [i64; 2],
    seq: u64,
    next_client_id: u64,
    taker_rate: u32,
    summary: DemoSummary,
}

impl DemoMarket {
    /// Sets up the markets and funds the traders.
    pub fn new(seed: u64, taker_rate: u32) -> DemoMarket {
        let config = EngineConfig {
            risk: RiskMode::Enabled,
            ..EngineConfig::small()
        };
        let mut m = DemoMarket {
            engine: Engine::new(config),
            rng: Rng::new(seed),
            tracker: OrderTracker::new(),
            books: [BookView::default(), BookView::default()],
            trades: VecDeque::with_capacity(LAST_TRADES + 1),
            events: Vec::with_capacity(64),
            quotes: [[[None; LEVELS]; 2]; 2],
            fair: [50, 25_000],
            seq: 0,
            next_client_id: 1,
            taker_rate,
            summary: DemoSummary::default(),
        };
        m.apply(Command::add_instrument(InstrumentSpec::binary(
            BINARY, CASH,
        )));
        m.apply(Command::add_instrument(InstrumentSpec {
            id: SPOT,
            kind: InstrumentKind::Spot,
            tick_size: 1,
            lot_size: 1,
            min_price: 1,
            max_price: 50_000,
            maker_fee_bps: 0,
            taker_fee_bps: 0,
            base_asset: BASE,
            quote_asset: CASH,
        }));
        for account in MAKER..=MAKER + TAKERS {
            m.apply(Command::add_account(account));
            m.apply(Command::deposit(account, CASH, 1_000_000_000_000));
            m.apply(Command::deposit(account, BASE, 1_000_000_000));
        }
        m
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The L2 view of `instrument` ([`BINARY`] or [`SPOT`]).
    pub fn book(&self, instrument: u32) -> &BookView {
        &self.books[(instrument - 1) as usize]
    }

    /// Counts so far.
    pub fn summary(&self) -> DemoSummary {
        self.summary
    }

    fn apply(&mut self, cmd: Command) {
        self.seq += 1;
        let cmd = cmd.stamped(self.seq, self.seq * 1_000_000);
        self.events.clear();
        self.engine.apply(&cmd, &mut self.events);
        self.summary.commands += 1;
        for ev in &self.events {
            self.tracker.observe(ev);
            match ev.decode() {
                Some(EventView::BookLevel {
                    instrument,
                    side,
                    price,
                    quantity,
                    orders,
                }) if (BINARY..=SPOT).contains(&instrument) => {
                    self.books[(instrument - 1) as usize].apply(side, price, quantity, orders);
                }
                Some(EventView::Trade {
                    instrument,
                    aggressor,
                    price,
                    quantity,
                    ..
                }) => {
                    self.summary.trades += 1;
                    if self.trades.len() == LAST_TRADES {
                        self.trades.pop_front();
                    }
                    self.trades.push_back(TradeLine {
                        instrument,
                        aggressor,
                        price,
                        quantity,
                        sequence: ev.sequence,
                    });
                }
                Some(EventView::Rejected { .. }) => self.summary.rejects += 1,
                _ => {}
            }
        }
    }

    fn client_id(&mut self) -> u64 {
        self.next_client_id += 1;
        self.next_client_id
    }

    fn quote_price(&self, market: usize, side: Side, level: usize) -> i64 {
        let (spacing, fair) = if market == 0 {
            (1, self.fair[0])
        } else {
            (3, self.fair[1])
        };
        let offset = spacing * (level as i64 + 1);
        match side {
            Side::Buy => fair - offset,
            Side::Sell => fair + offset,
        }
    }

    fn requote(&mut self, market: usize, side: Side) {
        let instrument = market as u32 + 1;
        for level in 0..LEVELS {
            let price = self.quote_price(market, side, level);
            let size = 1 + self.rng.below(if market == 0 { 20 } else { 5 });
            let live = self.quotes[market][side as usize][level]
                .and_then(|id| self.tracker.by_id(id).copied());
            match live {
                Some(o) if o.price == price => {}
                Some(o) => {
                    let filled = o.quantity - o.leaves;
                    let client = self.client_id();
                    self.apply(Command::replace(
                        MAKER,
                        o.order_id,
                        client,
                        price,
                        filled + size,
                    ));
                }
                None => {
                    let client = self.client_id();
                    self.apply(Command::new_order(OrderSpec {
                        outcome: if market == 0 {
                            Outcome::Yes
                        } else {
                            Outcome::None
                        },
                        stp: SelfTradePrevention::CancelTaker,
                        ..OrderSpec::limit(MAKER, instrument, client, side, price, size)
                    }));
                    let accepted = self.events.iter().find_map(|e| match e.decode() {
                        Some(EventView::OrderAccepted { order_id, .. }) => Some(order_id),
                        _ => None,
                    });
                    self.quotes[market][side as usize][level] =
                        accepted.filter(|id| self.tracker.by_id(*id).is_some());
                }
            }
        }
    }

    fn take(&mut self, market: usize) {
        let instrument = market as u32 + 1;
        let side = self.rng.side();
        let Some(best) = self.book(instrument).best(side.opposite()) else {
            return;
        };
        let slack = self.rng.below(3) as i64;
        let account = MAKER + 1 + self.rng.below(u64::from(TAKERS)) as u32;
        let client = self.client_id();
        let price = match side {
            Side::Buy => best + slack,
            Side::Sell => best - slack,
        };
        let spec = if market == 0 {
            let qty = 1 + self.rng.below(10);
            if self.rng.next_u64() & 1 == 0 {
                OrderSpec {
                    outcome: Outcome::Yes,
                    ..OrderSpec::limit(account, instrument, client, side, price.clamp(1, 99), qty)
                }
            } else {
                // The same trade intent as a NO order: buying YES is selling NO at 100 - P.
                OrderSpec {
                    outcome: Outcome::No,
                    ..OrderSpec::limit(
                        account,
                        instrument,
                        client,
                        side.opposite(),
                        (100 - price).clamp(1, 99),
                        qty,
                    )
                }
            }
        } else {
            let qty = 1 + self.rng.below(3);
            OrderSpec::limit(
                account,
                instrument,
                client,
                side,
                price.clamp(1, 50_000),
                qty,
            )
        };
        self.apply(Command::new_order(OrderSpec {
            time_in_force: TimeInForce::Ioc,
            ..spec
        }));
    }

    /// One simulation step: walk, requote, maybe take.
    pub fn step(&mut self) {
        for market in 0..2 {
            let before = self.fair[market];
            if self.rng.chance(300) {
                let step = if market == 0 {
                    1
                } else {
                    1 + self.rng.below(3) as i64
                };
                let up = self.rng.next_u64() & 1 == 0;
                let (lo, hi) = if market == 0 {
                    (10, 90)
                } else {
                    (1_000, 49_000)
                };
                self.fair[market] = (before + if up { step } else { -step }).clamp(lo, hi);
            }
            // Move the side that gets out of the way first, so quotes never cross each other.
            if self.fair[market] >= before {
                self.requote(market, Side::Sell);
                self.requote(market, Side::Buy);
            } else {
                self.requote(market, Side::Buy);
                self.requote(market, Side::Sell);
            }
            let per_step = u64::from(self.taker_rate) * 1000 / u64::from(STEPS_PER_SECOND);
            let mut budget = per_step;
            while budget >= 1000 {
                self.take(market);
                budget -= 1000;
            }
            if self.rng.chance(budget) {
                self.take(market);
            }
        }
    }

    /// The screen: both books' top levels, the last trades, the counts.
    pub fn render(&self, elapsed: Duration) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let s = self.summary;
        let secs = elapsed.as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "ringex demo  t={:>4.1}s  commands {} ({:.0}/s)  trades {}  rejects {}  open orders {}",
            elapsed.as_secs_f64(),
            s.commands,
            s.commands as f64 / secs,
            s.trades,
            s.rejects,
            self.engine.open_orders()
        );
        for (instrument, title) in [
            (
                BINARY,
                "binary #1, YES book in cents (a NO bid at P is a YES ask at 100-P)",
            ),
            (SPOT, "spot #2, BASE/QUOTE"),
        ] {
            let book = self.book(instrument);
            let _ = writeln!(out, "\n  {title}");
            let asks = book.top(Side::Sell, LEVELS);
            for (p, q, c) in asks.iter().rev() {
                let no = if instrument == BINARY {
                    format!("   (NO bid {:>2})", 100 - p)
                } else {
                    String::new()
                };
                let _ = writeln!(out, "    ask {p:>7} x {q:>5}  [{c} order(s)]{no}");
            }
            let _ = writeln!(out, "    {:-<34}", "");
            for (p, q, c) in book.top(Side::Buy, LEVELS) {
                let no = if instrument == BINARY {
                    format!("   (NO ask {:>2})", 100 - p)
                } else {
                    String::new()
                };
                let _ = writeln!(out, "    bid {p:>7} x {q:>5}  [{c} order(s)]{no}");
            }
        }
        let _ = writeln!(out, "\n  last trades (newest last)");
        for t in &self.trades {
            let market = if t.instrument == BINARY {
                "binary"
            } else {
                "spot  "
            };
            let side = if t.aggressor == Side::Buy {
                "buy "
            } else {
                "sell"
            };
            let _ = writeln!(
                out,
                "    {market} taker {side} {:>4} @ {:>6}   (seq {})",
                t.quantity, t.price, t.sequence
            );
        }
        out
    }
}

/// Runs the demo for `opts.seconds`, drawing a frame a second to `out`.
/// Clears the screen between frames when `clear` is set (a terminal).
pub fn run_demo(opts: DemoOptions, out: &mut dyn Write, clear: bool) -> Result<DemoSummary> {
    let mut market = DemoMarket::new(opts.seed, opts.taker_rate);
    let step = Duration::from_secs(1) / STEPS_PER_SECOND;
    let start = Instant::now();
    let end = start + Duration::from_secs(opts.seconds);
    let mut next_step = start;
    let mut next_frame = start + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if now >= next_step {
            market.step();
            next_step += step;
        }
        if now >= next_frame {
            if clear {
                write!(out, "\x1b[2J\x1b[H")?;
            } else {
                writeln!(out, "{:=<60}", "")?;
            }
            write!(out, "{}", market.render(now - start))?;
            out.flush()?;
            next_frame += Duration::from_secs(1);
        }
        let wake = next_step.min(next_frame).min(end);
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
    }
    let mut summary = market.summary();
    summary.seconds = start.elapsed().as_secs_f64();
    if !clear {
        writeln!(out, "{:=<60}", "")?;
    }
    write!(out, "{}", market.render(start.elapsed()))?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulated_market_trades_without_rejects_and_its_views_match_the_engine() {
        let mut m = DemoMarket::new(7, 20);
        for _ in 0..2_000 {
            m.step();
            for instrument in [BINARY, SPOT] {
                let book = m.book(instrument);
                assert_eq!(
                    (book.best(Side::Buy), book.best(Side::Sell)),
                    m.engine().best_prices(instrument),
                    "instrument {instrument}"
                );
            }
        }
        let s = m.summary();
        assert_eq!(s.rejects, 0);
        assert!(s.trades > 100, "{s:?}");
        assert!(m.engine().open_orders() <= 2 * 2 * LEVELS);
        let screen = m.render(Duration::from_secs(100));
        assert!(screen.contains("binary #1") && screen.contains("spot #2"));
        assert!(screen.contains("last trades"));
    }
}
