//! Fuzz target: engine snapshot bytes through `Engine::from_snapshot`.
//! Nothing may panic; a snapshot that is accepted must hold every engine
//! invariant, snapshot again to bytes that restore to the same state, and
//! survive a global kill switch (which walks and releases every order).
//!
//! Random bytes rarely get past the magic and the checksum, so the first
//! input byte picks a mode: odd — the rest of the input is the snapshot
//! (with its checksum recomputed when the byte is 1, so the fuzzer reaches
//! the section decoders); even — a valid snapshot of a small state with
//! orders, stops, GTD orders, positions and client ids is patched with
//! (offset, value) pairs from the input, optionally truncated, and its
//! checksum recomputed, so the semantic validation is explored.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringex_core::engine::snapshot::{engine_snapshot_checksum, ENGINE_SNAPSHOT_TRAILER_SIZE};
use ringex_core::records::*;
use ringex_core::{Engine, EngineConfig, RiskMode};
use std::sync::OnceLock;

fn config() -> EngineConfig {
    EngineConfig {
        max_orders: 64,
        max_accounts: 8,
        max_instruments: 4,
        max_assets: 3,
        max_positions: 16,
        dedup_window: 8,
        max_price_levels: 1024,
        risk: RiskMode::Enabled,
    }
}

fn base_snapshot() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let mut engine = Engine::new(config());
        let mut events = Vec::new();
        let yes = |account, cid, side, price, qty| OrderSpec {
            outcome: Outcome::Yes,
            ..OrderSpec::limit(account, 1, cid, side, price, qty)
        };
        let mut cmds = vec![
            Command::add_instrument(InstrumentSpec {
                taker_fee_bps: 100,
                ..InstrumentSpec::binary(1, 1)
            }),
            Command::add_instrument(InstrumentSpec {
                id: 2,
                kind: InstrumentKind::Spot,
                tick_size: 5,
                lot_size: 10,
                min_price: 5,
                max_price: 500,
                maker_fee_bps: 10,
                taker_fee_bps: 20,
                base_asset: 2,
                quote_asset: 1,
            }),
        ];
        for a in 1..=3 {
            cmds.push(Command::add_account(a));
            cmds.push(Command::deposit(a, 1, 100_000));
            cmds.push(Command::deposit(a, 2, 10_000));
        }
        cmds.extend([
            Command::new_order(yes(1, 11, Side::Buy, 40, 10)),
            Command::new_order(yes(2, 21, Side::Sell, 40, 4)),
            Command::new_order(yes(2, 22, Side::Sell, 45, 3)),
            Command::new_order(yes(3, 31, Side::Buy, 39, 2)),
            Command::new_order(OrderSpec {
                order_type: OrderType::StopLimit,
                stop_price: 50,
                ..yes(3, 32, Side::Buy, 52, 1)
            }),
            Command::new_order(OrderSpec {
                time_in_force: TimeInForce::Gtd,
                expire_time: 1_000_000,
                ..OrderSpec::limit(1, 2, 12, Side::Sell, 200, 20)
            }),
            Command::new_order(OrderSpec::limit(2, 2, 23, Side::Buy, 150, 30)),
            Command::new_order(yes(1, 13, Side::Buy, 30, 1)),
        ]);
        let cancel_target = cmds.len();
        for (i, cmd) in cmds.iter().enumerate() {
            engine.apply(&cmd.stamped(i as u64 + 1, 100), &mut events);
        }
        // Cancel the last order so the free list and the dedup window are not empty.
        let last_id = events
            .iter()
            .rev()
            .find_map(|e| match e.decode() {
                Some(EventView::OrderAccepted { order_id, .. }) => Some(order_id),
                _ => None,
            })
            .expect("orders were accepted");
        engine.apply(
            &Command::cancel(1, last_id).stamped(cancel_target as u64 + 1, 100),
            &mut events,
        );
        let mut bytes = Vec::new();
        engine.write_snapshot(&mut bytes);
        bytes
    })
}

fn reseal(bytes: &mut [u8]) {
    if bytes.len() < ENGINE_SNAPSHOT_TRAILER_SIZE {
        return;
    }
    let end = bytes.len() - ENGINE_SNAPSHOT_TRAILER_SIZE;
    let crc = engine_snapshot_checksum(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
}

fn check(bytes: &[u8]) {
    let Ok(mut engine) = Engine::from_snapshot(config(), bytes) else {
        return;
    };
    engine.check_invariants().expect("an accepted snapshot holds the invariants");
    let mut again = Vec::new();
    engine.write_snapshot(&mut again);
    let copy = Engine::from_snapshot(config(), &again).expect("a written snapshot restores");
    assert_eq!(copy.state_digest(), engine.state_digest());
    let mut events = Vec::new();
    engine.apply(
        &Command::kill_switch(None, true).stamped(u64::MAX - 1, u64::MAX - 1),
        &mut events,
    );
    engine.check_invariants().expect("invariants after a kill switch");
    assert_eq!(engine.open_orders(), 0);
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 1 {
        let mut bytes = rest.to_vec();
        if mode == 1 {
            reseal(&mut bytes);
        }
        check(&bytes);
        return;
    }
    let mut bytes = base_snapshot().to_vec();
    let mut patches = rest.chunks_exact(3);
    for p in &mut patches {
        let at = usize::from(u16::from_le_bytes([p[0], p[1]])) % bytes.len();
        bytes[at] = p[2];
    }
    if let [cut, ..] = patches.remainder() {
        let keep = bytes.len() - usize::from(*cut) % bytes.len();
        bytes.truncate(keep);
    }
    reseal(&mut bytes);
    check(&bytes);
});
