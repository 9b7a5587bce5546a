//! Engine snapshots: restoring mid-stream changes nothing that can be
//! observed, snapshots are canonical, and bad bytes are refused with an
//! error, never a panic.
//!
//! The central property: for a random command stream (the generator of
//! `properties`) and any split point `k`, engine A applies everything;
//! engine B applies the first `k` commands, is snapshotted, restored, and
//! applies the rest. Their event bytes, state digests and final snapshots
//! must be identical.

use proptest::prelude::*;
use ringex_core::engine::snapshot::{
    engine_snapshot_checksum, ENGINE_SNAPSHOT_TRAILER_SIZE, ENGINE_SNAPSHOT_VERSION,
};
use ringex_core::records::*;
use ringex_core::{Engine, EngineConfig, Error, RiskMode};

use crate::allocation::{count_allocations, uncounted};
use crate::properties::{config, ops_strategy, setup, splitmix, Generator};
use crate::stream::{generate, HashSink, StreamConfig};

fn snapshot_of(engine: &Engine) -> Vec<u8> {
    let mut bytes = Vec::new();
    engine.write_snapshot(&mut bytes);
    bytes
}

/// Snapshots `engine`, restores it, and checks the copy is indistinguishable.
fn round_trip(engine: &Engine) -> Engine {
    let bytes = snapshot_of(engine);
    let restored = Engine::from_snapshot(*engine.config(), &bytes)
        .unwrap_or_else(|e| panic!("restore failed: {e}"));
    assert_eq!(restored.state_digest(), engine.state_digest());
    assert_eq!(restored.commands_applied(), engine.commands_applied());
    assert_eq!(
        snapshot_of(&restored),
        bytes,
        "a restored engine snapshots to the same bytes"
    );
    restored
}

/// The generator's commands for `ops`, driven by a straight run (the
/// generator learns order ids from the events).
fn commands_for(risk: RiskMode, ops: &[[u64; 4]]) -> Vec<Command> {
    let mut engine = Engine::new(config(risk));
    let mut gen = Generator::new();
    let mut commands: Vec<Command> = setup().into_iter().map(|c| c.stamped(0, 0)).collect();
    let mut events = Vec::new();
    for cmd in &commands {
        engine.apply(cmd, &mut events);
    }
    for words in ops {
        let cmd = gen.command(*words);
        events.clear();
        engine.apply(&cmd, &mut events);
        gen.learn(&events);
        commands.push(cmd);
    }
    commands
}

/// A applies everything; B restores from a snapshot before each command
/// index in `splits`. Returns the first difference.
fn compare_with_restores(
    risk: RiskMode,
    commands: &[Command],
    splits: &[usize],
) -> Result<(), String> {
    let mut a = Engine::new(config(risk));
    let mut b = Engine::new(config(risk));
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    for (i, cmd) in commands.iter().enumerate() {
        if splits.contains(&i) {
            b = round_trip(&b);
        }
        ea.clear();
        eb.clear();
        a.apply(cmd, &mut ea);
        b.apply(cmd, &mut eb);
        if ea != eb {
            return Err(format!(
                "command {i} ({:?}) after a restore at {splits:?}: events differ\n  straight: {:?}\n  restored: {:?}",
                cmd.decode(),
                ea.iter().map(Event::decode).collect::<Vec<_>>(),
                eb.iter().map(Event::decode).collect::<Vec<_>>()
            ));
        }
    }
    if a.state_digest() != b.state_digest() {
        return Err("final digests differ".into());
    }
    if snapshot_of(&a) != snapshot_of(&b) {
        return Err("final snapshots differ".into());
    }
    b.check_invariants().map_err(|v| v.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn restoring_at_any_split_point_gives_identical_events_with_risk_on(
        ops in ops_strategy(), split in any::<prop::sample::Index>()
    ) {
        let commands = commands_for(RiskMode::Enabled, &ops);
        let k = split.index(commands.len() + 1);
        if let Err(diff) = compare_with_restores(RiskMode::Enabled, &commands, &[k]) {
            prop_assert!(false, "{}", diff);
        }
    }

    #[test]
    fn restoring_at_any_split_point_gives_identical_events_with_risk_off(
        ops in ops_strategy(), split in any::<prop::sample::Index>()
    ) {
        let commands = commands_for(RiskMode::Disabled, &ops);
        let k = split.index(commands.len() + 1);
        if let Err(diff) = compare_with_restores(RiskMode::Disabled, &commands, &[k]) {
            prop_assert!(false, "{}", diff);
        }
    }
}

#[test]
fn a_long_random_session_restored_every_few_thousand_commands_stays_identical() {
    let mut state = 0x5A75;
    let ops: Vec<[u64; 4]> = (0..40_000)
        .map(|_| std::array::from_fn(|_| splitmix(&mut state)))
        .collect();
    let commands = commands_for(RiskMode::Enabled, &ops);
    let splits: Vec<usize> = (1..commands.len()).step_by(2_503).collect();
    assert!(splits.len() > 10);
    compare_with_restores(RiskMode::Enabled, &commands, &splits).unwrap_or_else(|d| panic!("{d}"));
}

#[test]
fn the_mixed_stream_restored_mid_way_hashes_the_same_and_allocates_nothing() {
    let stream = generate(StreamConfig {
        check_every: 0,
        ..StreamConfig::new(0xA110C, 60_000)
    });
    let mut engine = Engine::new(EngineConfig::small());
    let mut ignored: Vec<Event> = Vec::new();
    for cmd in &stream.setup {
        engine.apply(cmd, &mut ignored);
    }
    let (first, rest) = stream.commands.split_at(30_000);
    let mut sink = HashSink::default();
    for cmd in first {
        engine.apply(cmd, &mut sink);
    }
    let mut restored = round_trip(&engine);
    assert_eq!(
        restored.memory_bytes(),
        engine.memory_bytes(),
        "the restored engine holds the same preallocated tables"
    );
    drop(engine);
    let ((), allocations) = count_allocations(|| {
        for (i, cmd) in rest.iter().enumerate() {
            restored.apply(cmd, &mut sink);
            if i % 10_000 == 0 {
                uncounted(|| restored.check_invariants().unwrap());
            }
        }
    });
    assert_eq!(
        allocations, 0,
        "a restored engine allocated on the steady-state path"
    );
    assert_eq!(
        (sink.events, sink.hash),
        (stream.stats.events, stream.stats.hash)
    );
    assert_eq!(restored.state_digest(), stream.final_digest);
}

#[test]
fn a_restored_engine_keeps_order_ids_dedup_window_stops_and_gtd_timers() {
    use crate::support::{yes, Harness, BIN};
    let mut h = Harness::markets();
    // Free some slots so the free list is not in slot order.
    let ids: Vec<u64> = (0..6)
        .map(|k| h.place_id(yes(3, 100 + k, Side::Buy, 10 + k as i64, 1)))
        .collect();
    for &k in &[4usize, 1, 3] {
        h.ok(Command::cancel(3, ids[k]));
    }
    h.place(yes(3, 200, Side::Buy, 50, 1));
    h.place(yes(4, 201, Side::Sell, 50, 1)); // last trade price 50
    h.place_id(OrderSpec {
        order_type: OrderType::StopLimit,
        stop_price: 60,
        outcome: Outcome::Yes,
        ..OrderSpec::limit(4, BIN, 202, Side::Buy, 61, 1)
    });
    h.place_id(OrderSpec {
        time_in_force: TimeInForce::Gtd,
        expire_time: 5_000,
        ..yes(4, 203, Side::Sell, 90, 1)
    });
    let mut a = Engine::from_snapshot(*h.engine.config(), &snapshot_of(&h.engine)).unwrap();
    let b = &mut h.engine;
    let follow_up = [
        Command::new_order(yes(3, 300, Side::Buy, 20, 1)), // takes the head of the free list
        Command::new_order(yes(3, 300, Side::Buy, 20, 1)), // duplicate client id
        Command::new_order(yes(3, 101, Side::Buy, 20, 1)), // finished id still remembered
        Command::new_order(yes(5, 301, Side::Buy, 60, 1)), // trades at 60: triggers the stop
        Command::new_order(yes(6, 302, Side::Sell, 60, 1)),
        Command::timer_tick(), // expires the GTD order
    ];
    for (i, cmd) in follow_up.iter().enumerate() {
        let ts = if i + 1 == follow_up.len() {
            6_000
        } else {
            2_000
        };
        let cmd = cmd.stamped(1_000 + i as u64, ts);
        let (mut ea, mut eb) = (Vec::new(), Vec::new());
        a.apply(&cmd, &mut ea);
        b.apply(&cmd, &mut eb);
        assert_eq!(ea, eb, "command {i}");
    }
    assert_eq!(a.state_digest(), b.state_digest());
}

/// A small state with everything in it, on a small configuration (so the
/// corruption sweeps below restore quickly).
fn small_state() -> (EngineConfig, Vec<u8>) {
    let config = EngineConfig {
        max_orders: 256,
        max_accounts: 16,
        max_instruments: 8,
        max_assets: 4,
        max_positions: 64,
        dedup_window: 32,
        max_price_levels: 4096,
        risk: RiskMode::Enabled,
    };
    let mut state = 77;
    let ops: Vec<[u64; 4]> = (0..400)
        .map(|_| std::array::from_fn(|_| splitmix(&mut state)))
        .collect();
    let mut engine = Engine::new(config);
    let mut gen = Generator::new();
    let mut events = Vec::new();
    for cmd in setup().into_iter().map(|c| c.stamped(0, 0)) {
        engine.apply(&cmd, &mut events);
    }
    for words in &ops {
        let cmd = gen.command(*words);
        events.clear();
        engine.apply(&cmd, &mut events);
        gen.learn(&events);
    }
    assert!(
        engine.open_orders() > 5,
        "{} live orders",
        engine.open_orders()
    );
    (config, snapshot_of(&engine))
}

fn reseal(bytes: &mut [u8]) {
    let end = bytes.len() - ENGINE_SNAPSHOT_TRAILER_SIZE;
    let crc = engine_snapshot_checksum(&bytes[..end]);
    bytes[end..].copy_from_slice(&crc.to_le_bytes());
}

fn problem(config: EngineConfig, bytes: &[u8]) -> String {
    match Engine::from_snapshot(config, bytes) {
        Ok(_) => panic!("accepted a bad snapshot"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn truncated_snapshots_are_refused_at_every_length() {
    let (config, bytes) = small_state();
    for len in (0..bytes.len()).step_by(3) {
        let message = problem(config, &bytes[..len]);
        assert!(message.contains("engine snapshot rejected"), "{message}");
    }
    // A truncated body with a valid checksum names the section it ran out in.
    let mut cut = bytes[..bytes.len() / 2].to_vec();
    cut.extend_from_slice(&[0; 4]);
    reseal(&mut cut);
    let message = problem(config, &cut);
    assert!(
        message.contains("truncated") || message.contains("expected section"),
        "{message}"
    );
}

#[test]
fn a_flipped_byte_fails_the_checksum() {
    let (config, bytes) = small_state();
    for at in (16..bytes.len() - 4).step_by(5) {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        assert!(problem(config, &bad).contains("checksum mismatch"));
    }
}

#[test]
fn resealed_corruption_anywhere_is_an_error_or_a_consistent_state_never_a_panic() {
    let (config, bytes) = small_state();
    let mut refused = 0;
    let mut tried = 0;
    for at in 16..bytes.len() - 4 {
        for flip in [0x01u8, 0x80, 0xFF] {
            let mut bad = bytes.clone();
            bad[at] ^= flip;
            reseal(&mut bad);
            tried += 1;
            match Engine::from_snapshot(config, &bad) {
                Err(Error::Snapshot { .. }) => refused += 1,
                Err(other) => panic!("unexpected error kind: {other}"),
                // Some fields (a timestamp, a limit) may take any value; the
                // result must still be a consistent engine.
                Ok(engine) => engine.check_invariants().unwrap(),
            }
        }
    }
    assert!(
        refused * 2 > tried,
        "only {refused} of {tried} corruptions were detected"
    );
}

#[test]
fn wrong_magic_version_or_configuration_are_named() {
    let (config, bytes) = small_state();
    let mut bad = bytes.clone();
    bad[0] = b'X';
    assert!(problem(config, &bad).contains("bad magic"));
    let mut bad = bytes.clone();
    bad[8..10].copy_from_slice(&(ENGINE_SNAPSHOT_VERSION + 1).to_le_bytes());
    assert!(problem(config, &bad).contains("unsupported engine snapshot version"));
    let other = EngineConfig {
        max_orders: 512,
        ..config
    };
    assert!(problem(other, &bytes).contains("configured with"));
    let mut bad = bytes.clone();
    bad.insert(bytes.len() - 4, 0);
    reseal(&mut bad);
    assert!(problem(config, &bad).contains("unexpected bytes"));
    assert!(problem(config, b"").contains("shorter"));
}

#[test]
fn an_empty_engine_round_trips() {
    let engine = Engine::new(EngineConfig::small());
    let restored = round_trip(&engine);
    assert_eq!(restored.open_orders(), 0);
    assert!(restored.balance(0, 0).is_some(), "the fee account exists");
}

#[test]
fn deposit_totals_that_would_overflow_the_conservation_check_are_refused() {
    // Regression (found by the engine_snapshot fuzz target): a withdrawn
    // total of i128::MIN made the invariant check's subtraction overflow.
    let (config, bytes) = small_state();
    let at = bytes.windows(4).position(|w| w == b"ASST").unwrap() + 4;
    let mut bad = bytes.clone();
    bad[at + 16..at + 32].copy_from_slice(&i128::MIN.to_le_bytes());
    reseal(&mut bad);
    assert!(problem(config, &bad).contains("withdrawn"));
}
