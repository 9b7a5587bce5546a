//! Fuzz target: arbitrary bytes, cut into 80-byte command records, go
//! through `Command::decode` and `Engine::apply`. Nothing may panic, every
//! command but a quiet timer tick must produce at least one event, every
//! event must decode, and the engine's invariants
//! must hold after every command.
//!
//! The first records set up a small market so the fuzzer reaches matching
//! quickly; the rest of the input is raw records, so malformed kinds,
//! versions, enum values and amounts are all explored.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringex_core::records::*;
use ringex_core::{Engine, EngineConfig};

fuzz_target!(|data: &[u8]| {
    let mut engine = Engine::new(EngineConfig::small());
    let mut events = Vec::new();
    let setup = [
        Command::add_instrument(InstrumentSpec::binary(1, 1)),
        Command::add_instrument(InstrumentSpec {
            id: 2,
            kind: InstrumentKind::Spot,
            tick_size: 5,
            lot_size: 10,
            min_price: 5,
            max_price: 5_000,
            maker_fee_bps: 10,
            taker_fee_bps: 20,
            base_asset: 2,
            quote_asset: 1,
        }),
        Command::add_account(1),
        Command::add_account(2),
        Command::deposit(1, 1, 1_000_000),
        Command::deposit(2, 1, 1_000_000),
        Command::deposit(1, 2, 10_000),
        Command::deposit(2, 2, 10_000),
    ];
    for cmd in &setup {
        engine.apply(cmd, &mut events);
    }
    for chunk in data.chunks_exact(COMMAND_SIZE) {
        let cmd: Command = bytemuck::pod_read_unaligned(chunk);
        let _ = cmd.decode();
        events.clear();
        engine.apply(&cmd, &mut events);
        let is_tick = cmd.decode() == Ok(CommandView::TimerTick);
        assert!(is_tick || !events.is_empty(), "every command but a timer tick yields an event");
        for ev in &events {
            assert!(ev.decode().is_some(), "engine emitted an undecodable event {ev:?}");
        }
        if let Err(violation) = engine.check_invariants() {
            panic!("invariant broken after {cmd:?}: {violation}");
        }
    }
});
