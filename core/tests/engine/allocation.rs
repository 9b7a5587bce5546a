//! The steady-state order path never allocates.
//!
//! A counting global allocator wraps `System` and counts allocations made
//! by the *current thread* while its thread-local flag is on, so the other
//! tests running in parallel threads do not pollute the count. Set
//! `RINGEX_ALLOC_BACKTRACE=1` to print a backtrace of every counted
//! allocation (to find where the engine allocates).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use ringex_core::records::*;
use ringex_core::{Engine, EngineConfig};

use crate::stream::{generate, HashSink, StreamConfig};

struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Print a backtrace for each counted allocation (set from the environment
/// before counting starts, so reading it never allocates while counting).
static BACKTRACES: AtomicBool = AtomicBool::new(false);

fn note_allocation() {
    // `try_with`: the allocator may run while this thread's locals are being torn down.
    let _ = COUNTING.try_with(|counting| {
        if !counting.get() {
            return;
        }
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        if BACKTRACES.load(Ordering::Relaxed) {
            // Capturing and printing allocate: stop counting meanwhile.
            counting.set(false);
            eprintln!(
                "allocation while counting:\n{}",
                std::backtrace::Backtrace::force_capture()
            );
            counting.set(true);
        }
    });
}

// SAFETY: every method forwards unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the bookkeeping touches only `const`-initialised
// thread locals without destructors, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: `ptr` was allocated by `System` (every allocation goes through it) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Runs `f` and returns its result with the number of allocations this
/// thread made meanwhile.
pub fn count_allocations<R>(f: impl FnOnce() -> R) -> (R, u64) {
    if std::env::var_os("RINGEX_ALLOC_BACKTRACE").is_some() {
        BACKTRACES.store(true, Ordering::Relaxed);
    }
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    let result = f();
    COUNTING.with(|c| c.set(false));
    (result, ALLOCATIONS.with(Cell::get) - before)
}

/// Runs `f` with counting off (for checks that allocate).
pub fn uncounted<R>(f: impl FnOnce() -> R) -> R {
    let was = COUNTING.with(|c| c.replace(false));
    let result = f();
    COUNTING.with(|c| c.set(was));
    result
}

#[test]
fn the_counting_allocator_counts_this_threads_allocations_only_while_enabled() {
    let (boxed, n) = count_allocations(|| Box::new([7u8; 64]));
    assert!(n >= 1, "a Box allocates");
    drop(boxed);
    let (v, n) = count_allocations(|| uncounted(|| vec![1u32; 100]));
    assert_eq!(n, 0);
    assert_eq!(v.len(), 100);
    // Another thread's allocations are not counted here.
    let (_, n) = count_allocations(|| {
        std::thread::scope(|s| {
            s.spawn(|| (0..100).map(|i| vec![i; 10]).collect::<Vec<_>>());
        })
    });
    // Spawning a thread allocates on this thread; the 100 vectors do not count.
    assert!(n < 50, "{n} allocations counted from another thread");
}

#[test]
fn two_hundred_thousand_mixed_commands_after_warm_up_allocate_nothing() {
    // Pre-generate everything (the generator allocates freely).
    let stream = generate(StreamConfig {
        check_every: 20_000,
        ..StreamConfig::new(0xA110C, 200_000)
    });
    let mut engine = Engine::new(EngineConfig::small());
    // Warm-up: instruments, accounts, funds, resting orders, positions in
    // both binary markets and a pending stop in every book.
    let mut setup_events: Vec<Event> = Vec::new();
    for cmd in &stream.setup {
        engine.apply(cmd, &mut setup_events);
    }
    assert!(!setup_events
        .iter()
        .any(|e| e.kind == EventKind::Rejected as u8));
    engine.check_invariants().unwrap();

    let mut sink = HashSink::default();
    let ((), allocations) = count_allocations(|| {
        for (i, cmd) in stream.commands.iter().enumerate() {
            engine.apply(cmd, &mut sink);
            if i % 25_000 == 0 {
                uncounted(|| engine.check_invariants().unwrap());
            }
        }
    });
    assert_eq!(
        allocations, 0,
        "the engine allocated {allocations} times on the steady-state path \
         (rerun with RINGEX_ALLOC_BACKTRACE=1 to see where)"
    );
    engine.check_invariants().unwrap();
    // Same events as the generator's run, and a stream that exercised everything.
    assert_eq!(
        (sink.events, sink.hash),
        (stream.stats.events, stream.stats.hash)
    );
    assert_eq!(engine.state_digest(), stream.final_digest);
    let s = stream.stats;
    assert!(s.trades > 20_000, "{s:?}");
    assert!(s.expired > 1_000, "{s:?}");
    assert!(s.triggers > 1_000, "{s:?}");
    assert!(s.replaces > 5_000, "{s:?}");
    assert!(s.cancels > 20_000, "{s:?}");
    assert!(s.rejects > 1_000, "{s:?}");
}

#[test]
fn a_preallocated_vec_sink_sees_no_allocation_either() {
    let stream = generate(StreamConfig {
        check_every: 0,
        ..StreamConfig::new(0xBEEF, 20_000)
    });
    let mut engine = Engine::new(EngineConfig::small());
    let mut events: Vec<Event> = Vec::new();
    for cmd in &stream.setup {
        engine.apply(cmd, &mut events);
    }
    let mut events: Vec<Event> = Vec::with_capacity(stream.stats.events as usize);
    let ((), allocations) = count_allocations(|| {
        for cmd in &stream.commands {
            engine.apply(cmd, &mut events);
        }
    });
    assert_eq!(allocations, 0);
    assert_eq!(events.len() as u64, stream.stats.events);
}

#[test]
fn stop_orders_after_a_markets_first_allocate_nothing() {
    use crate::support::{yes, Harness, BIN};
    // The first stop of a market creates its stop ladders (once, by design);
    // every later stop, trigger and cancel reuses them.
    let mut h = Harness::markets();
    h.place(yes(3, 0, Side::Buy, 50, 1));
    h.place(yes(4, 0, Side::Sell, 50, 1)); // last trade price 50
    let stop = |cid: u64, stop_price: i64| {
        Command::new_order(OrderSpec {
            order_type: OrderType::StopLimit,
            stop_price,
            outcome: Outcome::Yes,
            ..OrderSpec::limit(1, BIN, cid, Side::Buy, 10, 1)
        })
    };
    h.ok(stop(1, 90));
    let mut events: Vec<Event> = Vec::with_capacity(256);
    let mut seq = 1_000;
    let engine = &mut h.engine;
    let mut triggered = 0;
    // Applies a command that must be accepted; returns the new order id, if any.
    let mut apply = |cmd: Command| -> u64 {
        seq += 1;
        events.clear();
        engine.apply(&cmd.stamped(seq, 1_000), &mut events);
        assert!(!events.iter().any(|e| e.kind == EventKind::Rejected as u8));
        triggered += events
            .iter()
            .filter(|e| e.kind == EventKind::StopTriggered as u8)
            .count();
        events
            .iter()
            .find(|e| e.kind == EventKind::OrderAccepted as u8)
            .map_or(0, |e| e.words[0])
    };
    let ((), allocations) = count_allocations(|| {
        for i in 0..1_000u64 {
            // One stop that waits, one that triggers at once and rests; then cancel both.
            let waiting = apply(stop(10 + 2 * i, 95));
            let resting = apply(stop(11 + 2 * i, 45));
            apply(Command::cancel(1, waiting));
            apply(Command::cancel(1, resting));
        }
    });
    assert_eq!(allocations, 0);
    assert_eq!(triggered, 1_000);
    h.engine.check_invariants().unwrap();
}
