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
//!
//! A consumer that sleeps somewhere other than on the queue (a `mio` event
//! loop in `epoll_wait`) installs a waker on the sink's [`SinkWakeup`] and
//! [arms](SinkWakeup::arm) it before it blocks; the publisher calls the
//! waker once after delivering to an armed sink, so the consumer neither
//! polls the queue on a timer nor spins.

use crate::records::Event;
use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
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
    /// The sink's doorbell, for a consumer that blocks outside the queue.
    pub wakeup: SinkWakeup,
}

type Waker = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct WakeupState {
    /// Set by the consumer before it blocks, cleared by the publisher when
    /// it rings. `SeqCst`, with a `SeqCst` fence on each side between the
    /// queue access and this flag (see [`SinkWakeup::arm`]).
    armed: AtomicBool,
    /// Called by the publisher thread; installed once by the consumer.
    waker: OnceLock<Waker>,
}

/// A sink's doorbell: lets its consumer block in its own event loop until
/// the publisher delivers (clones share it).
///
/// The consumer installs a waker once ([`SinkWakeup::set_waker`]; a `mio`
/// `Waker::wake`, for example), drains the queue, and before blocking calls
/// [`SinkWakeup::arm`]: if that returns `true` the queue was empty after
/// arming, and the publisher will call the waker after its next delivery
/// to the sink (or before it waits on the full queue). One call per arming:
/// a busy consumer that never arms costs the publisher one relaxed load per
/// event.
#[derive(Clone, Default)]
pub struct SinkWakeup(Arc<WakeupState>);

impl std::fmt::Debug for SinkWakeup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkWakeup")
            .field("armed", &self.0.armed.load(Ordering::Relaxed))
            .field("has_waker", &self.0.waker.get().is_some())
            .finish()
    }
}

impl SinkWakeup {
    /// Installs the waker the publisher calls; `false` if one is already
    /// installed (the first one stays).
    pub fn set_waker(&self, wake: impl Fn() + Send + Sync + 'static) -> bool {
        self.0.waker.set(Box::new(wake)).is_ok()
    }

    /// Arms the doorbell before the consumer blocks. Returns `true` when
    /// `receiver` (the sink's) is empty after arming, so blocking is safe:
    /// the next delivery rings. `false`: events are already waiting; drain
    /// them instead of blocking.
    pub fn arm(&self, receiver: &Receiver<Event>) -> bool {
        self.0.armed.store(true, Ordering::SeqCst);
        // Pairs with the publisher's fence between its send and its check
        // of `armed`: either the publisher sees the flag, or this load sees
        // the event (never neither).
        fence(Ordering::SeqCst);
        receiver.is_empty()
    }

    /// Rings if armed (publisher thread). The caller has just queued an
    /// event (or found the queue full); the fence orders that before the
    /// check of `armed`.
    #[inline]
    fn ring_if_armed(&self) {
        fence(Ordering::SeqCst);
        if self.0.armed.load(Ordering::Relaxed) && self.0.armed.swap(false, Ordering::SeqCst) {
            if let Some(wake) = self.0.waker.get() {
                wake();
            }
        }
    }

    /// Cheap test on the publisher's hot path (no fence).
    #[inline]
    fn maybe_armed(&self) -> bool {
        self.0.armed.load(Ordering::Relaxed)
    }
}

/// The publisher's end of a sink.
#[derive(Debug)]
pub(crate) struct SinkEntry {
    pub(crate) tx: Sender<Event>,
    pub(crate) policy: OverflowPolicy,
    pub(crate) stats: Arc<SinkStats>,
    pub(crate) wakeup: SinkWakeup,
}

impl SinkEntry {
    pub(crate) fn new(
        name: String,
        capacity: usize,
        policy: OverflowPolicy,
    ) -> (SinkEntry, SinkHandle) {
        let (tx, rx) = crossbeam_channel::bounded(capacity.max(1));
        let stats = Arc::new(SinkStats::default());
        let wakeup = SinkWakeup::default();
        (
            SinkEntry {
                tx,
                policy,
                stats: Arc::clone(&stats),
                wakeup: wakeup.clone(),
            },
            SinkHandle {
                name,
                receiver: rx,
                stats,
                wakeup,
            },
        )
    }

    /// Rings the consumer's doorbell if it is armed: called by the
    /// publisher at the end of each batch, so a consumer that armed while
    /// the batch was delivered is never left asleep.
    #[inline]
    pub(crate) fn end_batch(&self) {
        self.wakeup.ring_if_armed();
    }

    /// Offers one event; returns `false` when the sink must be removed.
    /// `dropped` counts events lost.
    #[inline]
    pub(crate) fn offer(&self, event: &Event, dropped: &mut u64) -> bool {
        match self.tx.try_send(*event) {
            Ok(()) => {
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                // An idle consumer hears of the first event at once rather
                // than at the end of a long batch.
                if self.wakeup.maybe_armed() {
                    self.wakeup.ring_if_armed();
                }
                true
            }
            Err(TrySendError::Full(event)) => {
                // A consumer asleep on a full queue must wake to drain it.
                self.wakeup.ring_if_armed();
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
