//! Snapshot size and write/load time for a large engine state.
//!
//! Loads an engine the way `ringex-perf scale` does — binary markets, funded
//! accounts, resting orders that never cross (bids 1–49, asks 51–99), each
//! with a client order id — then measures:
//!
//! - `Engine::write_snapshot` into memory (time, bytes),
//! - `SnapshotStore::write` of those bytes (write, fsync, rename),
//! - `SnapshotStore::load` + `Engine::from_snapshot` (read, CRC, decode,
//!   validation and the full invariant check),
//!
//! and checks that the restored engine has the same state digest.
//!
//! ```text
//! cargo run --release -p ringex-core --example snapshot_scale -- [ORDERS] [ACCOUNTS] [MARKETS]
//! ```
//!
//! Defaults: 1,000,000 orders, 100,000 accounts, 10,000 markets. The
//! snapshot is written to a temporary directory that is removed afterwards.

use std::time::Instant;

use ringex_core::records::{
    Command, Event, EventKind, EventSink, InstrumentSpec, OrderSpec, Outcome, Side,
};
use ringex_core::{Engine, EngineConfig, RiskMode};
use ringex_journal::SnapshotStore;

/// Counts rejects; drops everything else.
#[derive(Default)]
struct Rejects(u64);

impl EventSink for Rejects {
    fn emit(&mut self, event: &Event) {
        if event.kind == EventKind::Rejected as u8 {
            self.0 += 1;
        }
    }
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .map(|a| a.parse().expect("numeric argument"))
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let orders = arg(1, 1_000_000);
    let accounts = arg(2, 100_000) as u32;
    let markets = arg(3, 10_000) as u32;
    let config = EngineConfig {
        max_orders: u32::try_from(orders + 1024)?,
        max_accounts: accounts + 1,
        max_instruments: markets + 1,
        max_assets: 2,
        max_positions: u32::try_from(orders + 1024)?,
        max_price_levels: 128,
        risk: RiskMode::Enabled,
        ..EngineConfig::default()
    };

    let t = Instant::now();
    let mut engine = Engine::new(config);
    let mut sink = Rejects::default();
    let mut seq = 0u64;
    let mut apply = |engine: &mut Engine, cmd: Command| {
        seq += 1;
        engine.apply(&cmd.stamped(seq, seq), &mut sink);
    };
    for m in 1..=markets {
        apply(
            &mut engine,
            Command::add_instrument(InstrumentSpec::binary(m, 0)),
        );
    }
    for a in 1..=accounts {
        apply(&mut engine, Command::add_account(a));
        apply(&mut engine, Command::deposit(a, 0, 1_000_000_000));
    }
    for k in 0..orders {
        let account = 1 + (k % u64::from(accounts)) as u32;
        let market =
            1 + ((k / u64::from(accounts) + u64::from(account)) % u64::from(markets)) as u32;
        let side = if (k / u64::from(accounts) + k) % 2 == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let step = ((k.wrapping_mul(0x9E37_79B9) >> 7) % 49) as i64;
        let price = if side == Side::Buy {
            1 + step
        } else {
            51 + step
        };
        apply(
            &mut engine,
            Command::new_order(OrderSpec {
                outcome: Outcome::Yes,
                ..OrderSpec::limit(account, market, k + 1, side, price, 1 + k % 10)
            }),
        );
    }
    let load_s = t.elapsed().as_secs_f64();
    assert_eq!(sink.0, 0, "the load was rejected somewhere");
    assert_eq!(engine.open_orders() as u64, orders);
    println!(
        "state: {orders} resting orders, {accounts} accounts, {markets} binary markets (loaded in {load_s:.2} s)"
    );

    let t = Instant::now();
    let mut bytes = Vec::new();
    engine.write_snapshot(&mut bytes);
    let serialise_s = t.elapsed().as_secs_f64();
    println!(
        "write_snapshot:    {:>8.1} MiB in {:.3} s ({:.0} MiB/s), {:.1} bytes per order",
        bytes.len() as f64 / (1 << 20) as f64,
        serialise_s,
        bytes.len() as f64 / (1 << 20) as f64 / serialise_s,
        bytes.len() as f64 / orders.max(1) as f64
    );

    let dir = std::env::temp_dir().join(format!("ringex-snapshot-scale-{}", std::process::id()));
    let store = SnapshotStore::open(&dir)?;
    let t = Instant::now();
    store.write(seq, &bytes)?;
    println!(
        "store.write:       {:.3} s (write, fsync, rename, fsync dir)",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let entry = store.list()?.pop().expect("just written");
    let loaded = store.load(&entry)?;
    let read_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let restored = Engine::from_snapshot(config, &loaded.bytes)?;
    let restore_s = t.elapsed().as_secs_f64();
    println!("store.load:        {read_s:.3} s (read + CRC)");
    println!("from_snapshot:     {restore_s:.3} s (decode, validate, invariant check)");
    let t = Instant::now();
    let fresh = Engine::new(config);
    println!(
        "  of which Engine::new of this configuration alone: {:.3} s",
        t.elapsed().as_secs_f64()
    );
    drop(fresh);
    let t = Instant::now();
    engine.check_invariants()?;
    println!(
        "  of which the invariant check alone:               {:.3} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(restored.state_digest(), engine.state_digest());
    println!(
        "restored state digest matches: {:#018x}",
        restored.state_digest()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
