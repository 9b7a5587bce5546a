//! Competitor baselines, each measured in the same run as the thing it
//! is a baseline for.
//!
//! - `ring_hop/{disruptor,crossbeam}`: one `u64` from a producer thread to
//!   a consumer thread, through the `disruptor` ring (single producer,
//!   busy-spin-with-hint consumer, 1,024 slots) and through a
//!   `crossbeam-channel` bounded channel of the same capacity (blocking
//!   receive). Throughput is hops per second with the producer publishing
//!   back to back; each timed batch ends when the consumer has seen its
//!   last value. Both use two threads, so on a 2-vCPU machine shared with
//!   other work the figures are noisy; compare them only within one run.
//! - `matching/{ringex_risk_off,lobster,matchcore,orderbook_rs}`: the measured part of
//!   the exchange-core-shaped stream (100,000 commands) on a fresh book
//!   holding the untimed prefill. See `ringex_benches::competitors` for how
//!   each crate is driven and where its semantics differ; the unit tests
//!   there check that the trades agree.
//!
//! ```text
//! cargo bench -p ringex-benches --bench competitors -- --quick
//! ```

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ringex_benches::competitors::{
    lobster_apply, lobster_book, matchcore_apply, matchcore_book, matchcore_stream,
    matching_stream, orderbook_rs_apply, orderbook_rs_book,
};
use ringex_core::records::CountingSink;
use ringex_core::{Engine, RiskMode};
use ringex_perf::stream::StreamParams;

const RING_SLOTS: usize = 1024;
const MATCHING_COMMANDS: usize = 100_000;
const SEED: u64 = 1;

/// Waits until `seen` reaches `target` (spinning with a hint, yielding now and then).
fn wait_until(seen: &AtomicU64, target: u64) {
    let mut spins = 0u32;
    while seen.load(Ordering::Acquire) < target {
        spins += 1;
        if spins % 1024 == 0 {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

fn ring_hop(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_hop");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(3));

    {
        use disruptor::{build_single_producer, BusySpinWithSpinLoopHint, Producer};
        let seen = Arc::new(AtomicU64::new(0));
        let consumer_seen = Arc::clone(&seen);
        let mut producer = build_single_producer(RING_SLOTS, || 0u64, BusySpinWithSpinLoopHint)
            .handle_events_with(move |v: &u64, _seq, _end| {
                consumer_seen.store(*v, Ordering::Release);
            })
            .build();
        let mut next = 0u64;
        group.bench_function("disruptor", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    next += 1;
                    let v = next;
                    producer.publish(|slot| *slot = v);
                }
                wait_until(&seen, next);
                start.elapsed()
            })
        });
        drop(producer);
    }

    {
        let (tx, rx) = crossbeam_channel::bounded::<u64>(RING_SLOTS);
        let seen = Arc::new(AtomicU64::new(0));
        let consumer_seen = Arc::clone(&seen);
        let consumer = std::thread::spawn(move || {
            while let Ok(v) = rx.recv() {
                consumer_seen.store(v, Ordering::Release);
            }
        });
        let mut next = 0u64;
        group.bench_function("crossbeam", |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    next += 1;
                    tx.send(black_box(next)).expect("consumer alive");
                }
                wait_until(&seen, next);
                start.elapsed()
            })
        });
        drop(tx);
        consumer.join().expect("consumer thread");
    }
    group.finish();
}

fn matching(c: &mut Criterion) {
    let s = matching_stream(MATCHING_COMMANDS, SEED);
    let m = matchcore_stream(&s);
    let config = StreamParams {
        commands: MATCHING_COMMANDS,
        seed: SEED,
        ..StreamParams::default()
    }
    .engine_config(RiskMode::Disabled);
    let mut group = c.benchmark_group("matching");
    group.throughput(Throughput::Elements(MATCHING_COMMANDS as u64));
    group.sample_size(10);
    group.bench_function("ringex_risk_off", |b| {
        b.iter_batched(
            || {
                let mut engine = Engine::new(config);
                let mut sink = CountingSink::default();
                for cmd in &s.setup {
                    engine.apply(cmd, &mut sink);
                }
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
    group.bench_function("lobster", |b| {
        b.iter_batched(
            || lobster_book(&s),
            |mut book| {
                let mut traded = 0u64;
                lobster_apply(&mut book, black_box(&s.measured_ops), &mut |f| {
                    traded += f.qty
                });
                (book, traded)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("matchcore", |b| {
        b.iter_batched(
            || matchcore_book(&m),
            |mut book| {
                let mut traded = 0u64;
                matchcore_apply(&mut book, black_box(&m.measured), &mut |_, t| {
                    traded += t.quantity().0
                });
                (book, traded)
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("orderbook_rs", |b| {
        b.iter_batched(
            || orderbook_rs_book(&s),
            |book| {
                let mut traded = 0u64;
                orderbook_rs_apply(&book, black_box(&s.measured_ops), &mut |f| traded += f.qty);
                (book, traded)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, ring_hop, matching);
criterion_main!(benches);
