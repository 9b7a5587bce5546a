//! `ringex-perf scale`: one engine (risk on) loaded with many binary
//! markets, many funded accounts and a million resting orders; reports
//! memory and load time.
//!
//! Loading goes in phases — construct, add instruments, open and fund
//! accounts, place orders — and the process's resident set (`VmRSS`) and
//! [`Engine::memory_bytes`] are read after each, so the cost of an account
//! or a resting order is the difference across its phase divided by the
//! count. The engine preallocates its order tables at construction, so
//! `memory_bytes` does not move while orders are placed; its per-order
//! figure is the capacity cost instead: the `memory_bytes` of an empty
//! engine built for the order capacity minus one built for none, divided by
//! the capacity. Pages the tables reserve but nothing has touched yet are
//! not resident, which is why the resident figures can be lower.
//!
//! Orders never cross: bids sit at 1–49 cents, asks at 51–99. Account `a`
//! trades `instruments_per_account` markets starting at `(a - 1) x k mod
//! instruments`, so markets get equal shares and each account holds that
//! many position records.

use std::time::Instant;

use ringex_core::records::{Command, EventKind, InstrumentSpec, OrderSpec, Outcome, Side};
use ringex_core::{Engine, EngineConfig, RiskMode};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::stream::KindCounts;
use crate::sys::{rss_bytes, Machine};

/// The cash asset of every binary market in the scale test.
pub const CASH_ASSET: u16 = 0;

/// Options of `ringex-perf scale`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ScaleOptions {
    /// Binary markets.
    pub instruments: u32,
    /// Accounts.
    pub accounts: u32,
    /// Resting orders.
    pub orders: u64,
    /// Markets each account trades.
    pub instruments_per_account: u32,
    /// Asset capacity (each account holds a balance slot per asset).
    pub assets: u16,
}

impl Default for ScaleOptions {
    fn default() -> Self {
        ScaleOptions {
            instruments: 10_000,
            accounts: 100_000,
            orders: 1_000_000,
            instruments_per_account: 1,
            assets: 2,
        }
    }
}

impl ScaleOptions {
    /// The engine configuration: exactly the capacities the load needs
    /// (plus a little order headroom; position records for every (account,
    /// market) pair that gets an order), default dedup window.
    pub fn engine_config(&self) -> EngineConfig {
        let positions = positions_created(self);
        EngineConfig {
            max_orders: u32::try_from(self.orders + 1024).unwrap_or(u32::MAX),
            max_accounts: self.accounts + 1,
            max_instruments: self.instruments + 1,
            max_assets: self.assets.max(1),
            max_positions: u32::try_from(positions.max(1)).unwrap_or(u32::MAX),
            max_price_levels: 128,
            risk: RiskMode::Enabled,
            ..EngineConfig::default()
        }
    }
}

/// One loading phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// What was loaded.
    pub name: &'static str,
    /// Commands applied.
    pub commands: u64,
    /// Wall time.
    pub seconds: f64,
    /// `VmRSS` after the phase.
    pub rss_bytes: u64,
    /// `Engine::memory_bytes()` after the phase.
    pub engine_bytes: u64,
}

/// The result of `ringex-perf scale`.
#[derive(Debug, Clone, Serialize)]
pub struct ScaleReport {
    /// Always `"scale"`.
    pub bench: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// What was loaded.
    pub options: ScaleOptions,
    /// Engine capacities used.
    pub max_orders: u32,
    /// Dedup window used.
    pub dedup_window: u32,
    /// `VmRSS` at the start.
    pub rss_start_bytes: u64,
    /// Phases in order: construct, instruments, accounts, orders.
    pub phases: Vec<Phase>,
    /// Live orders after loading (must equal the requested number).
    pub open_orders: u64,
    /// Position records created.
    pub positions: u64,
    /// Final `Engine::memory_bytes()`.
    pub engine_bytes: u64,
    /// Final `VmRSS`.
    pub rss_end_bytes: u64,
    /// Resident bytes per instrument (instrument phase).
    pub rss_per_instrument: f64,
    /// Engine bytes per instrument (instrument phase).
    pub engine_bytes_per_instrument: f64,
    /// Resident bytes per account (account phase: open + fund).
    pub rss_per_account: f64,
    /// Engine bytes per account (account phase).
    pub engine_bytes_per_account: f64,
    /// Resident bytes per resting order (order phase only, positions included).
    pub rss_per_order: f64,
    /// Resident bytes per resting order counting the tables touched at
    /// construction too (construct phase + order phase; the construct phase
    /// holds only order, client-id, dedup and position tables).
    pub rss_per_order_with_tables: f64,
    /// Engine bytes per resting order counting every table sized by the
    /// configuration (the construct phase's `memory_bytes`, which has no
    /// instruments or accounts yet, divided by the orders).
    pub engine_bytes_per_order_with_tables: f64,
    /// Engine bytes per order of capacity (arena, id and client-id tables, expiry heap).
    pub engine_bytes_per_order_capacity: f64,
    /// Engine bytes per position record of capacity.
    pub engine_bytes_per_position_capacity: f64,
    /// Total load time (all phases).
    pub load_seconds: f64,
    /// Orders placed per second.
    pub orders_per_second: f64,
}

fn apply_all(
    engine: &mut Engine,
    cmds: impl Iterator<Item = Command>,
    seq: &mut u64,
    counts: &mut KindCounts,
) -> u64 {
    let mut n = 0;
    for cmd in cmds {
        *seq += 1;
        engine.apply(&cmd.stamped(*seq, *seq), counts);
        n += 1;
    }
    n
}

/// The `k`-th order of the load: (account, instrument, side, price, quantity).
pub fn order_at(o: &ScaleOptions, k: u64) -> (u32, u32, Side, i64, u64) {
    let accounts = u64::from(o.accounts);
    let account = 1 + (k % accounts) as u32;
    let nth = k / accounts;
    let ipa = u64::from(o.instruments_per_account.max(1));
    let market = (u64::from(account - 1) * ipa + nth % ipa) % u64::from(o.instruments);
    let side = if (k / accounts + k) % 2 == 0 {
        Side::Buy
    } else {
        Side::Sell
    };
    let step = (k.wrapping_mul(0x9E37_79B9) >> 7) % 49;
    let price = match side {
        Side::Buy => 1 + step as i64,
        Side::Sell => 51 + step as i64,
    };
    (account, 1 + market as u32, side, price, 1 + k % 10)
}

/// Loads the engine and measures it.
pub fn run_scale(o: ScaleOptions) -> Result<ScaleReport> {
    if o.instruments == 0 || o.accounts == 0 {
        return Err(Error::Unexpected(
            "need at least one instrument and account".into(),
        ));
    }
    let config = o.engine_config();
    let rss_start_bytes = rss_bytes()?;
    let mut phases = Vec::new();
    let mut counts = KindCounts::default();
    let mut seq = 0u64;
    let load_start = Instant::now();

    let t = Instant::now();
    let mut engine = Engine::new(config);
    let mut record = |name, commands, t: Instant, engine: &Engine| -> Result<()> {
        phases.push(Phase {
            name,
            commands,
            seconds: t.elapsed().as_secs_f64(),
            rss_bytes: rss_bytes()?,
            engine_bytes: engine.memory_bytes() as u64,
        });
        Ok(())
    };
    record("construct", 0, t, &engine)?;

    let t = Instant::now();
    let n = apply_all(
        &mut engine,
        (1..=o.instruments)
            .map(|id| Command::add_instrument(InstrumentSpec::binary(id, CASH_ASSET))),
        &mut seq,
        &mut counts,
    );
    record("instruments", n, t, &engine)?;

    // Worst-case reservation of one order is 99 cents x 10 contracts.
    let orders_per_account = o.orders.div_ceil(u64::from(o.accounts));
    let deposit = (orders_per_account + 1) * 99 * 10 * 2;
    let t = Instant::now();
    let n = apply_all(
        &mut engine,
        (1..=o.accounts).flat_map(|a| {
            [
                Command::add_account(a),
                Command::deposit(a, CASH_ASSET, deposit),
            ]
        }),
        &mut seq,
        &mut counts,
    );
    record("accounts", n, t, &engine)?;

    let t = Instant::now();
    let n = apply_all(
        &mut engine,
        (0..o.orders).map(|k| {
            let (account, instrument, side, price, qty) = order_at(&o, k);
            Command::new_order(OrderSpec {
                outcome: Outcome::Yes,
                ..OrderSpec::limit(account, instrument, k + 1, side, price, qty)
            })
        }),
        &mut seq,
        &mut counts,
    );
    record("orders", n, t, &engine)?;
    let load_seconds = load_start.elapsed().as_secs_f64();

    let rejects = counts.get(EventKind::Rejected);
    let trades = counts.get(EventKind::Trade);
    if rejects != 0 || trades != 0 {
        return Err(Error::Unexpected(format!(
            "loading produced {rejects} rejects and {trades} trades; expected none"
        )));
    }
    let open_orders = engine.open_orders() as u64;
    let engine_bytes = engine.memory_bytes() as u64;
    let rss_end_bytes = rss_bytes()?;
    drop(engine);

    // Capacity costs from empty engines (built after the loaded one is gone).
    let bytes_of = |c: EngineConfig| Engine::new(c).memory_bytes() as f64;
    let one_order = EngineConfig {
        max_orders: 1,
        ..config
    };
    let engine_bytes_per_order_capacity = (bytes_of(config) - bytes_of(one_order))
        / f64::from(config.max_orders.saturating_sub(1).max(1));
    let one_position = EngineConfig {
        max_positions: 1,
        ..config
    };
    let engine_bytes_per_position_capacity = (bytes_of(config) - bytes_of(one_position))
        / f64::from(config.max_positions.saturating_sub(1).max(1));

    let delta = |i: usize, f: fn(&Phase) -> u64| f(&phases[i]) as f64 - f(&phases[i - 1]) as f64;
    let rss = |p: &Phase| p.rss_bytes;
    let eng = |p: &Phase| p.engine_bytes;
    let orders_phase = &phases[3];
    Ok(ScaleReport {
        bench: "scale",
        machine: Machine::detect(),
        options: o,
        max_orders: config.max_orders,
        dedup_window: config.dedup_window,
        rss_start_bytes,
        open_orders,
        positions: positions_created(&o),
        engine_bytes,
        rss_end_bytes,
        rss_per_instrument: delta(1, rss) / f64::from(o.instruments),
        engine_bytes_per_instrument: delta(1, eng) / f64::from(o.instruments),
        rss_per_account: delta(2, rss) / f64::from(o.accounts),
        engine_bytes_per_account: delta(2, eng) / f64::from(o.accounts),
        rss_per_order: delta(3, rss) / o.orders.max(1) as f64,
        rss_per_order_with_tables: (delta(3, rss) + phases[0].rss_bytes as f64
            - rss_start_bytes as f64)
            / o.orders.max(1) as f64,
        engine_bytes_per_order_with_tables: phases[0].engine_bytes as f64 / o.orders.max(1) as f64,
        engine_bytes_per_order_capacity,
        engine_bytes_per_position_capacity,
        load_seconds,
        orders_per_second: o.orders as f64 / orders_phase.seconds,
        phases,
    })
}

/// Position records the load creates: one per (account, market) pair that got an order.
fn positions_created(o: &ScaleOptions) -> u64 {
    let accounts = u64::from(o.accounts);
    let per_pair = u64::from(o.instruments_per_account.max(1)).min(u64::from(o.instruments));
    (0..accounts)
        .filter(|a| *a < o.orders)
        .map(|a| ((o.orders - a).div_ceil(accounts)).min(per_pair))
        .sum()
}

fn mib(b: f64) -> String {
    format!("{:.1} MiB", b / (1u64 << 20) as f64)
}

/// Human-readable report (everything but the JSON line).
pub fn render_scale(r: &ScaleReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let o = &r.options;
    let _ = writeln!(
        out,
        "ringex-perf scale: {} binary markets, {} accounts, {} resting orders (risk on), \
         {} market(s) per account, {} asset slots",
        o.instruments, o.accounts, o.orders, o.instruments_per_account, o.assets
    );
    let _ = writeln!(out, "machine: {}", r.machine);
    let _ = writeln!(
        out,
        "config: max_orders {}, dedup_window {}; VmRSS at start {}",
        r.max_orders,
        r.dedup_window,
        mib(r.rss_start_bytes as f64)
    );
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:>9} {:>14} {:>16}",
        "phase", "commands", "seconds", "VmRSS after", "engine bytes"
    );
    for p in &r.phases {
        let _ = writeln!(
            out,
            "{:<12} {:>10} {:>9.3} {:>14} {:>16}",
            p.name,
            p.commands,
            p.seconds,
            mib(p.rss_bytes as f64),
            mib(p.engine_bytes as f64)
        );
    }
    let _ = writeln!(
        out,
        "loaded in {:.2} s ({:.2} M orders/s); open orders {}; position records {}",
        r.load_seconds,
        r.orders_per_second / 1e6,
        r.open_orders,
        r.positions
    );
    let _ = writeln!(
        out,
        "per resting order: {:.0} B resident in the order phase, {:.0} B with the tables touched \
         at construction; engine: {:.0} B of preallocated tables per order, of which {:.0} B per \
         order slot (+{:.0} B per position slot)",
        r.rss_per_order,
        r.rss_per_order_with_tables,
        r.engine_bytes_per_order_with_tables,
        r.engine_bytes_per_order_capacity,
        r.engine_bytes_per_position_capacity
    );
    let _ = writeln!(
        out,
        "per account: {:.0} B resident, {:.0} B engine; per market: {:.0} B resident, {:.0} B engine",
        r.rss_per_account,
        r.engine_bytes_per_account,
        r.rss_per_instrument,
        r.engine_bytes_per_instrument
    );
    let _ = writeln!(
        out,
        "final: engine {} (memory_bytes), VmRSS {}",
        mib(r.engine_bytes as f64),
        mib(r.rss_end_bytes as f64)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_load_rests_every_order_without_trades_or_rejects() {
        let o = ScaleOptions {
            instruments: 50,
            accounts: 200,
            orders: 5_000,
            instruments_per_account: 2,
            assets: 2,
        };
        let r = run_scale(o).unwrap();
        assert_eq!(r.open_orders, 5_000);
        assert_eq!(r.phases.len(), 4);
        assert!(r.engine_bytes_per_order_capacity > 0.0);
    }

    #[test]
    fn orders_spread_over_every_market_and_never_cross() {
        let o = ScaleOptions {
            instruments: 10,
            accounts: 40,
            orders: 4_000,
            instruments_per_account: 1,
            assets: 1,
        };
        let mut seen = [false; 11];
        for k in 0..o.orders {
            let (account, market, side, price, qty) = order_at(&o, k);
            assert!((1..=40).contains(&account) && (1..=10).contains(&market) && qty > 0);
            seen[market as usize] = true;
            match side {
                Side::Buy => assert!((1..=49).contains(&price)),
                Side::Sell => assert!((51..=99).contains(&price)),
            }
        }
        assert!(seen[1..].iter().all(|s| *s));
    }
}
