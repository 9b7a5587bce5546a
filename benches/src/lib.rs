//! Fixtures for the ringex criterion benches (`benches/engine.rs`).
//!
//! Every fixture is built from [`ringex_perf::stream`]: a spot book of about
//! 1,000 resting orders from 1,000 funded accounts, centred on
//! [`MID_PRICE`]. Bids rest at or below `MID_PRICE - 1 - gap`, asks at or
//! above `MID_PRICE + 1 + gap`, so orders the benches add inside those bands
//! never cross, and orders placed in the gap can be swept without touching
//! the background book. The fixtures also hand out the commands the
//! benches time, built outside the timed sections.
//!
//! Single-threaded: a fixture and its engines belong to the bench thread.

#![warn(missing_docs)]

pub mod competitors;

use ringex_core::records::{Command, Event, EventView, OrderSpec, Side, TimeInForce};
use ringex_core::{Engine, EngineConfig, RiskMode};
use ringex_perf::stream::{Generator, LiveOrder, Rng, StreamParams, INSTRUMENT, MID_PRICE};

/// Orders added, cancelled or moved per untimed refill in the chunked benches.
pub const CHUNK: usize = 1_000;

/// A book of about 1,000 resting orders and everything needed to extend it.
pub struct BookFixture {
    /// Stream parameters the book came from.
    pub params: StreamParams,
    /// Setup commands: instrument, accounts, deposits, prefill.
    pub setup: Vec<Command>,
    /// The resting orders after setup.
    pub resting: Vec<LiveOrder>,
    /// Next client order id nobody has used.
    pub next_client_id: u64,
    /// Next sequence number.
    pub next_seq: u64,
    /// PRNG for the benches' own commands.
    pub rng: Rng,
}

impl BookFixture {
    /// A book whose bids stay below `MID_PRICE - gap_ticks` and asks above `MID_PRICE + gap_ticks`.
    pub fn new(gap_ticks: i64) -> BookFixture {
        let params = StreamParams {
            commands: 0,
            gap_ticks,
            ..StreamParams::default()
        };
        let mut gen = Generator::new(params);
        let setup = gen.setup();
        let resting = gen.tracker().orders().to_vec();
        let next_client_id = gen.next_client_id();
        BookFixture {
            next_seq: setup.len() as u64 + 1,
            params,
            setup,
            resting,
            next_client_id,
            rng: Rng::new(params.seed ^ 0xBE7C),
        }
    }

    /// The engine configuration of the benches (the stream's).
    pub fn config(&self, risk: RiskMode) -> EngineConfig {
        self.params.engine_config(risk)
    }

    /// A fresh engine with the setup applied.
    pub fn engine(&self, risk: RiskMode) -> Engine {
        let mut engine = Engine::new(self.config(risk));
        let mut events = Vec::new();
        for cmd in &self.setup {
            events.clear();
            engine.apply(cmd, &mut events);
        }
        engine
    }

    /// Stamps `cmd` with the next sequence number.
    pub fn stamp(&mut self, cmd: Command) -> Command {
        let seq = self.next_seq;
        self.next_seq += 1;
        cmd.stamped(seq, ringex_perf::stream::BASE_TIMESTAMP + seq * 100)
    }

    /// A fresh client order id.
    pub fn client_id(&mut self) -> u64 {
        let id = self.next_client_id;
        self.next_client_id += 1;
        id
    }

    /// A random account.
    pub fn account(&mut self) -> u32 {
        1 + self.rng.below(u64::from(self.params.accounts)) as u32
    }

    /// A passive price inside the background book's band on `side`.
    pub fn passive_price(&mut self, side: Side) -> i64 {
        let depth =
            self.params.gap_ticks + 1 + self.rng.below(self.params.band_ticks as u64) as i64;
        match side {
            Side::Buy => MID_PRICE - depth,
            Side::Sell => MID_PRICE + depth,
        }
    }

    /// `n` passive GTC orders with fresh client ids: (command, account, client id).
    pub fn passive_orders(&mut self, n: usize) -> Vec<(Command, u32, u64)> {
        (0..n)
            .map(|_| {
                let side = self.rng.side();
                let price = self.passive_price(side);
                let account = self.account();
                let client = self.client_id();
                let quantity = 1 + self.rng.below(self.params.max_quantity);
                let cmd = Command::new_order(OrderSpec::limit(
                    account, INSTRUMENT, client, side, price, quantity,
                ));
                (self.stamp(cmd), account, client)
            })
            .collect()
    }

    /// `n` moves of random resting orders to fresh passive prices under new
    /// client ids; updates [`BookFixture::resting`] as if they were applied.
    pub fn moves(&mut self, n: usize) -> Vec<Command> {
        (0..n)
            .map(|_| {
                let i = self.rng.below(self.resting.len() as u64) as usize;
                let o = self.resting[i];
                let mut price = self.passive_price(o.side);
                if price == o.price {
                    price += if o.side == Side::Buy { -1 } else { 1 };
                }
                self.resting[i].price = price;
                let client = self.client_id();
                let cmd = Command::replace(o.account, o.order_id, client, price, o.quantity);
                self.stamp(cmd)
            })
            .collect()
    }

    /// Asks of quantity 1 on `levels` consecutive prices starting at
    /// `MID_PRICE - gap/2` (inside the gap), from rotating accounts, and the
    /// `takers` IOC buys that sweep them `levels / takers` levels at a time.
    /// Needs `levels <= gap / 2`.
    pub fn sweep_round(&mut self, takers: usize, per_taker: usize) -> (Vec<Command>, Vec<Command>) {
        let levels = takers * per_taker;
        assert!(
            (levels as i64) < self.params.gap_ticks / 2,
            "sweep levels must fit inside the gap"
        );
        let first = MID_PRICE - self.params.gap_ticks / 2;
        let makers = (0..levels)
            .map(|i| {
                let account = 2 + (i as u32 % (self.params.accounts - 1));
                let client = self.client_id();
                let cmd = Command::new_order(OrderSpec::limit(
                    account,
                    INSTRUMENT,
                    client,
                    Side::Sell,
                    first + i as i64,
                    1,
                ));
                self.stamp(cmd)
            })
            .collect();
        let sweeps = (0..takers)
            .map(|t| {
                let limit = first + ((t + 1) * per_taker) as i64 - 1;
                let client = self.client_id();
                let cmd = Command::new_order(OrderSpec {
                    time_in_force: TimeInForce::Ioc,
                    ..OrderSpec::limit(1, INSTRUMENT, client, Side::Buy, limit, per_taker as u64)
                });
                self.stamp(cmd)
            })
            .collect();
        (makers, sweeps)
    }
}

/// Order ids of the orders `events` report accepted.
pub fn accepted_ids(events: &[Event]) -> impl Iterator<Item = (u32, u64)> + '_ {
    events.iter().filter_map(|e| match e.decode() {
        Some(EventView::OrderAccepted {
            account, order_id, ..
        }) => Some((account, order_id)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringex_core::records::{CountingSink, EventKind};

    #[test]
    fn the_fixture_book_holds_about_a_thousand_orders_outside_the_gap() {
        let fx = BookFixture::new(2_000);
        let engine = fx.engine(RiskMode::Enabled);
        assert_eq!(engine.open_orders(), fx.resting.len());
        assert!(fx.resting.len() >= 1_000);
        let (bid, ask) = engine.best_prices(INSTRUMENT);
        assert!(bid.unwrap() < MID_PRICE - 2_000 && ask.unwrap() > MID_PRICE + 2_000);
    }

    #[test]
    fn a_sweep_round_trades_exactly_its_levels_and_leaves_the_book_as_it_was() {
        let mut fx = BookFixture::new(2_000);
        let mut engine = fx.engine(RiskMode::Enabled);
        let before = engine.open_orders();
        let (makers, sweeps) = fx.sweep_round(10, 50);
        let mut sink = CountingSink::default();
        for c in &makers {
            engine.apply(c, &mut sink);
        }
        let mut events = Vec::new();
        for c in &sweeps {
            engine.apply(c, &mut events);
        }
        let trades = events
            .iter()
            .filter(|e| e.kind == EventKind::Trade as u8)
            .count();
        let rejects = events
            .iter()
            .filter(|e| e.kind == EventKind::Rejected as u8)
            .count();
        assert_eq!((trades, rejects), (500, 0));
        assert_eq!(engine.open_orders(), before);
    }

    #[test]
    fn passive_orders_and_moves_never_trade_or_reject() {
        let mut fx = BookFixture::new(0);
        let mut engine = fx.engine(RiskMode::Enabled);
        let mut events = Vec::new();
        for (c, _, _) in fx.passive_orders(2_000) {
            engine.apply(&c, &mut events);
        }
        for c in fx.moves(5_000) {
            engine.apply(&c, &mut events);
        }
        assert!(!events
            .iter()
            .any(|e| e.kind == EventKind::Trade as u8 || e.kind == EventKind::Rejected as u8));
        assert_eq!(accepted_ids(&events).count(), 2_000);
    }
}
