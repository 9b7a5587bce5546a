//! Operator metrics, shared through an `Arc<Metrics>`.
//!
//! # Memory orderings
//!
//! Every counter is written by exactly one stage thread (named per field)
//! and read by anyone. Counters are `Relaxed`: they are statistics, and a
//! reader may see them slightly stale and mutually inconsistent. The two
//! journal positions are different: `journaled` and `durable` are stored
//! with `Release` by the journaler after `end_batch` returns and loaded with
//! `Acquire`, because the engine stage gates on `journaled` and tests check
//! the durability invariant against `durable`. The latency histogram sits
//! behind a `Mutex` that only the publisher (every few milliseconds) and
//! readers take.

use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Live counters of a running pipeline.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    /// Commands accepted into the input ring (producers; `Relaxed`).
    pub(crate) submitted: AtomicU64,
    /// `try_submit` calls answered `Busy` (producers; `Relaxed`).
    pub(crate) busy: AtomicU64,
    /// Last command sequence appended and batch-ended (journaler; `Release`/`Acquire`).
    pub(crate) journaled: AtomicU64,
    /// Journal's durable sequence after the last `end_batch` (journaler; `Release`/`Acquire`).
    pub(crate) durable: AtomicU64,
    /// Commands applied by the engine in this run (engine; `Relaxed`).
    pub(crate) applied: AtomicU64,
    /// Sequence of the last command applied (engine; `Relaxed`).
    pub(crate) last_applied: AtomicU64,
    /// Events taken off the output ring by the publisher (publisher; `Relaxed`).
    pub(crate) events: AtomicU64,
    /// Events dropped across all sinks (publisher; `Relaxed`).
    pub(crate) dropped: AtomicU64,
    /// Last event index appended to the output journal and batch-ended (publisher; `Release`/`Acquire`).
    pub(crate) output_journaled: AtomicU64,
    /// Sequence of the last command whose every event has been offered to
    /// every sink (publisher; `Release`/`Acquire`).
    pub(crate) delivered: AtomicU64,
    /// Enqueue → publish latency in ns (publisher merges into it periodically).
    pub(crate) latency: Mutex<Histogram<u64>>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics {
            started: Instant::now(),
            submitted: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            journaled: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            last_applied: AtomicU64::new(0),
            events: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            output_journaled: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            latency: Mutex::new(new_latency_histogram()),
        }
    }

    /// The last command sequence the journaler appended and batch-ended
    /// (0 before any). The engine never applies a command beyond it.
    pub fn journaled_sequence(&self) -> u64 {
        self.journaled.load(Ordering::Acquire)
    }

    /// The journal's durable sequence under the configured policy after the
    /// journaler's last `end_batch` (0 before any).
    pub fn durable_sequence(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// The sequence of the last command whose every event the publisher
    /// has offered to every sink; 0 before any. A consumer that reads this
    /// first and then drains its sink has seen all the events of every
    /// command up to it (a gateway answering a request with the order's
    /// state after its whole command, not after its first event).
    pub fn delivered_sequence(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
    }

    /// The last event index appended to the output journal and
    /// batch-ended (the durability policy applied); 0 before any. It stops
    /// moving when the output journal fails.
    pub fn output_journaled_sequence(&self) -> u64 {
        self.output_journaled.load(Ordering::Acquire)
    }

    /// A copy of the enqueue → publish latency histogram (ns). The publisher
    /// merges its samples every few milliseconds and when it stops.
    pub fn latency(&self) -> Histogram<u64> {
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A consistent-enough copy of the counters.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let submitted = self.submitted.load(Ordering::Relaxed);
        let applied = self.applied.load(Ordering::Relaxed);
        MetricsSnapshot {
            elapsed: self.started.elapsed(),
            submitted,
            busy: self.busy.load(Ordering::Relaxed),
            journaled_sequence: self.journaled_sequence(),
            durable_sequence: self.durable_sequence(),
            applied,
            last_applied_sequence: self.last_applied.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            output_journaled_sequence: self.output_journaled_sequence(),
            input_occupancy: submitted.saturating_sub(applied),
        }
    }
}

pub(crate) fn new_latency_histogram() -> Histogram<u64> {
    // 1 ns .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// Counters at one moment ([`Metrics::snapshot`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Time since the pipeline started.
    pub elapsed: Duration,
    /// Commands accepted into the input ring in this run.
    pub submitted: u64,
    /// Submissions refused with `Busy`.
    pub busy: u64,
    /// Last journaled command sequence (journal position).
    pub journaled_sequence: u64,
    /// Last durable command sequence.
    pub durable_sequence: u64,
    /// Commands applied by the engine in this run.
    pub applied: u64,
    /// Sequence of the last applied command (journal lag = `journaled_sequence - last_applied_sequence`).
    pub last_applied_sequence: u64,
    /// Events published.
    pub events: u64,
    /// Events dropped across sinks.
    pub dropped: u64,
    /// Last event index in the output journal (batch-ended).
    pub output_journaled_sequence: u64,
    /// Commands in the input ring not yet applied (approximate).
    pub input_occupancy: u64,
}

impl MetricsSnapshot {
    /// Commands applied per second between `earlier` and this snapshot.
    pub fn commands_per_sec_since(&self, earlier: &MetricsSnapshot) -> f64 {
        let secs = self.elapsed.saturating_sub(earlier.elapsed).as_secs_f64();
        if secs == 0.0 {
            return 0.0;
        }
        self.applied.saturating_sub(earlier.applied) as f64 / secs
    }
}
