//! Sinks: bounded queues from the publisher to gateway threads.
//!
//! A sink whose queue is full loses the event
//! ([`OverflowPolicy::DropNewest`]), is cut off
//! ([`OverflowPolicy::Disconnect`]), or makes the publisher wait for room
//! for a bounded time ([`OverflowPolicy::Wait`]) — back-pressure that slows
//! the engine and, behind it, fills the input ring, so producers see `Busy`
//! instead of a gateway silently losing events. A sink still full after the
//! wait is cut off, so a gateway that has stopped reading can never hold the
//! pipeline up for longer than the bound.

use crate::records::Event;
use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// What happens to a sink whose queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// The event that does not fit is dropped and counted; later events are
    /// delivered when there is room again (a gap the client must handle).
    DropNewest,
    /// The sink is disconnected: its receiver drains what is queued and then
    /// sees the channel closed.
    Disconnect,
    /// The publisher waits (parked, not spinning) up to this long for room,
    /// then disconnects the sink as [`OverflowPolicy::Disconnect`] does. For
    /// consumers that must see every event — a FIX gateway's execution
    /// reports, a market-data gateway's book — and would rather slow the
    /// exchange than be wrong.
    Wait(Duration),
}

/// Counters of one sink. Written by the publisher only (`Relaxed`; the
/// `disconnected` flag is `Release`/`Acquire`).
#[derive(Debug, Default)]
pub struct SinkStats {
    delivered: AtomicU64,
    dropped: AtomicU64,
    waited: AtomicU64,
    disconnected: AtomicBool,
}

impl SinkStats {
    /// Events queued to the sink.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// Events the sink lost to a full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events the publisher had to wait for room to deliver
    /// ([`OverflowPolicy::Wait`]): how often this sink held the pipeline up.
    pub fn waited(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }

    /// Whether the publisher cut the sink off (overflow under
    /// [`OverflowPolicy::Disconnect`]).
    pub fn is_disconnected(&self) -> bool {
        self.disconnected.load(Ordering::Acquire)
    }
}

/// The receiving end of a sink, for a gateway thread.
#[derive(Debug)]
pub struct SinkHandle {
    /// The sink's name (for logs).
    pub name: String,
    /// Events, in publication order.
    pub receiver: Receiver<Event>,
    /// The sink's counters.
    pub stats: Arc<SinkStats>,
}

/// The publisher's end of a sink.
#[derive(Debug)]
pub(crate) struct SinkEntry {
    pub(crate) tx: Sender<Event>,
    pub(crate) policy: OverflowPolicy,
    pub(crate) stats: Arc<SinkStats>,
}

impl SinkEntry {
    pub(crate) fn new(
        name: String,
        capacity: usize,
        policy: OverflowPolicy,
    ) -> (SinkEntry, SinkHandle) {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let stats = Arc::new(SinkStats::default());
        (
            SinkEntry {
                tx,
                policy,
                stats: Arc::clone(&stats),
            },
            SinkHandle {
                name,
                receiver: rx,
                stats,
            },
        )
    }

    /// Offers one event; returns `false` when the sink must be removed.
    /// `dropped` counts events lost.
    #[inline]
    pub(crate) fn offer(&self, event: &Event, dropped: &mut u64) -> bool {
        match self.tx.try_send(*event) {
            Ok(()) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(event)) => {
                if let OverflowPolicy::Wait(max_wait) = self.policy {
                    self.stats.waited.fetch_add(1, Ordering::Relaxed);
                    match self.tx.send_timeout(event, max_wait) {
                        Ok(()) => {
                            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                            return true;
                        }
                        Err(SendTimeoutError::Disconnected(_)) => {
                            self.stats.disconnected.store(true, Ordering::Release);
                            return false;
                        }
                        // Still full: cut off below, like `Disconnect`.
                        Err(SendTimeoutError::Timeout(_)) => {}
                    }
                }
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                *dropped += 1;
                match self.policy {
                    OverflowPolicy::DropNewest => true,
                    OverflowPolicy::Disconnect | OverflowPolicy::Wait(_) => {
                        self.stats.disconnected.store(true, Ordering::Release);
                        false
                    }
                }
            }
            // The receiver is gone: nobody to deliver to.
            Err(TrySendError::Disconnected(_)) => {
                self.stats.disconnected.store(true, Ordering::Release);
                false
            }
        }
    }
}
