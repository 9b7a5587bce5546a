//! Criterion benches of the ringex engine.
//!
//! - `harness/counting_sink`: the harness alone — pre-generated commands
//!   turned into one event each into a `CountingSink`, no engine. Every
//!   engine figure below includes this much overhead.
//! - `ops_risk_{on,off}/{add,cancel,replace}`: one resting limit order
//!   added to, cancelled from, or moved within a book of ~1,000 orders.
//!   Refills and clean-ups run outside the timed sections.
//! - `sweep_risk_{on,off}/{1,10,100}`: an IOC buy that sweeps N price
//!   levels of one lot each.
//! - `stream/{engine_risk_on,engine_risk_off,reference_risk_off}`: 100,000
//!   commands of the exchange-core-shaped mix, with the reference model as
//!   the competitor baseline.
//!
//! All report throughput in elements (commands). Sample sizes and times are
//! small so `cargo bench -p ringex-benches` stays within a few minutes on
//! two cores.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringex_benches::{accepted_ids, BookFixture, CHUNK};
use ringex_core::records::{Command, CountingSink, Event, EventKind, EventSink};
use ringex_core::reference::ReferenceEngine;
use ringex_core::{Engine, RiskMode};
use ringex_perf::stream::{generate, StreamParams};

const STREAM_COMMANDS: usize = 100_000;

fn risk_name(risk: RiskMode) -> &'static str {
    match risk {
        RiskMode::Enabled => "on",
        RiskMode::Disabled => "off",
    }
}

/// Applies `cmds` and returns the wall time.
fn timed(engine: &mut Engine, cmds: &[Command], sink: &mut CountingSink) -> Duration {
    let start = Instant::now();
    for cmd in cmds {
        engine.apply(black_box(cmd), sink);
    }
    start.elapsed()
}

fn untimed(engine: &mut Engine, cmds: impl IntoIterator<Item = Command>) {
    let mut sink = CountingSink::default();
    for cmd in cmds {
        engine.apply(&cmd, &mut sink);
    }
}

fn harness(c: &mut Criterion) {
    let stream = generate(&StreamParams {
        commands: STREAM_COMMANDS,
        ..StreamParams::default()
    });
    let mut group = c.benchmark_group("harness");
    group.throughput(Throughput::Elements(STREAM_COMMANDS as u64));
    group.bench_function("counting_sink", |b| {
        b.iter(|| {
            let mut sink = CountingSink::default();
            for cmd in &stream.measured {
                let cmd = black_box(cmd);
                let mut ev = Event::new(EventKind::Ack, cmd.sequence);
                ev.account = cmd.account;
                sink.emit(&ev);
            }
            sink
        })
    });
    group.finish();
}

/// Runs `iters` timed operations in rounds of at most `round`. Each call of
/// `one_round(n, sink)` performs `n` operations (plus any untimed refill or
/// clean-up) and returns only the timed part.
fn in_rounds(
    iters: u64,
    round: usize,
    mut one_round: impl FnMut(usize, &mut CountingSink) -> Duration,
) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    let mut sink = CountingSink::default();
    while left > 0 {
        let n = left.min(round);
        total += one_round(n, &mut sink);
        left -= n;
    }
    black_box(sink);
    total
}

fn ops(c: &mut Criterion) {
    for risk in [RiskMode::Enabled, RiskMode::Disabled] {
        let mut group = c.benchmark_group(format!("ops_risk_{}", risk_name(risk)));
        group.throughput(Throughput::Elements(1));

        let mut fx = BookFixture::new(0);
        let mut engine = fx.engine(risk);
        group.bench_function("add", |b| {
            b.iter_custom(|iters| {
                in_rounds(iters, CHUNK, |n, sink| {
                    let orders = fx.passive_orders(n);
                    let adds: Vec<Command> = orders.iter().map(|o| o.0).collect();
                    let elapsed = timed(&mut engine, &adds, sink);
                    let cancels: Vec<Command> = orders
                        .iter()
                        .map(|&(_, account, client)| {
                            fx.stamp(Command::cancel_by_client_id(account, client))
                        })
                        .collect();
                    untimed(&mut engine, cancels);
                    elapsed
                })
            })
        });

        let mut fx = BookFixture::new(0);
        let mut engine = fx.engine(risk);
        group.bench_function("cancel", |b| {
            let mut events = Vec::with_capacity(4 * CHUNK);
            b.iter_custom(|iters| {
                in_rounds(iters, CHUNK, |n, sink| {
                    events.clear();
                    for (cmd, _, _) in fx.passive_orders(n) {
                        engine.apply(&cmd, &mut events);
                    }
                    let ids: Vec<(u32, u64)> = accepted_ids(&events).collect();
                    let cancels: Vec<Command> = ids
                        .into_iter()
                        .map(|(account, id)| fx.stamp(Command::cancel(account, id)))
                        .collect();
                    timed(&mut engine, &cancels, sink)
                })
            })
        });

        let mut fx = BookFixture::new(0);
        let mut engine = fx.engine(risk);
        group.bench_function("replace", |b| {
            b.iter_custom(|iters| {
                in_rounds(iters, CHUNK, |n, sink| {
                    let moves = fx.moves(n);
                    timed(&mut engine, &moves, sink)
                })
            })
        });
        group.finish();
    }
}

fn sweeps(c: &mut Criterion) {
    // Makers per refill: enough for a batch of sweeps, few enough to stay far inside the gap.
    const MAKERS: usize = 4_000;
    for risk in [RiskMode::Enabled, RiskMode::Disabled] {
        let mut group = c.benchmark_group(format!("sweep_risk_{}", risk_name(risk)));
        group.throughput(Throughput::Elements(1));
        for levels in [1usize, 10, 100] {
            let mut fx = BookFixture::new(10_000);
            let mut engine = fx.engine(risk);
            group.bench_function(levels.to_string(), |b| {
                b.iter_custom(|iters| {
                    in_rounds(iters, MAKERS / levels, |takers, sink| {
                        let (makers, sweeps) = fx.sweep_round(takers, levels);
                        untimed(&mut engine, makers);
                        timed(&mut engine, &sweeps, sink)
                    })
                })
            });
        }
        group.finish();
    }
}

fn stream(c: &mut Criterion) {
    let s = generate(&StreamParams {
        commands: STREAM_COMMANDS,
        ..StreamParams::default()
    });
    let mut group = c.benchmark_group("stream");
    group.throughput(Throughput::Elements(STREAM_COMMANDS as u64));
    for risk in [RiskMode::Enabled, RiskMode::Disabled] {
        let config = s.params.engine_config(risk);
        group.bench_function(format!("engine_risk_{}", risk_name(risk)), |b| {
            b.iter_batched(
                || {
                    let mut engine = Engine::new(config);
                    untimed(&mut engine, s.setup.iter().copied());
                    engine
                },
                |mut engine| {
                    let mut sink = CountingSink::default();
                    for cmd in &s.measured {
                        engine.apply(black_box(cmd), &mut sink);
                    }
                    (engine, sink)
                },
                BatchSize::PerIteration,
            )
        });
    }
    let config = s.params.engine_config(RiskMode::Disabled);
    group.bench_function("reference_risk_off", |b| {
        b.iter_batched(
            || {
                let mut model = ReferenceEngine::new(config);
                let mut sink = CountingSink::default();
                for cmd in &s.setup {
                    model.apply(cmd, &mut sink);
                }
                model
            },
            |mut model| {
                let mut sink = CountingSink::default();
                for cmd in &s.measured {
                    model.apply(black_box(cmd), &mut sink);
                }
                (model, sink)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = harness, ops, sweeps, stream
}
criterion_main!(benches);
