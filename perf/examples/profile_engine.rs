//! Applies the exchange-core-shaped stream to one engine, for profilers.
//! `cargo run --release -p ringex-perf --example profile_engine -- [on|off] [commands] [keep|new]`
//! (the last: which client order id moves carry, as `ringex-perf core --move-ids`).
use ringex_core::records::CountingSink;
use ringex_core::{Engine, RiskMode};
use ringex_perf::stream::{generate, MoveIds, StreamParams};

fn main() {
    let mut args = std::env::args().skip(1);
    let risk = match args.next().as_deref() {
        Some("off") => RiskMode::Disabled,
        _ => RiskMode::Enabled,
    };
    let commands = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(3_000_000);
    let move_ids = match args.next() {
        Some(name) => name.parse().unwrap_or_else(|e: String| panic!("{e}")),
        None => MoveIds::default(),
    };
    let params = StreamParams {
        commands,
        move_ids,
        ..StreamParams::default()
    };
    let stream = generate(&params);
    let mut engine = Engine::new(params.engine_config(risk));
    let mut sink = CountingSink::default();
    for cmd in &stream.setup {
        engine.apply(cmd, &mut sink);
    }
    let start = std::time::Instant::now();
    for _ in 0..5 {
        let mut e = Engine::new(params.engine_config(risk));
        for cmd in &stream.setup {
            e.apply(cmd, &mut sink);
        }
        for cmd in &stream.measured {
            e.apply(cmd, &mut sink);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.2} M commands/s ({} events)",
        5.0 * commands as f64 / secs / 1e6,
        sink.events
    );
}
