//! The input ring's slots and the gateways' handle on it.

use super::Shared;
use crate::records::{Command, Event};
use disruptor::{MultiProducer, Producer, SingleConsumerBarrier};
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One slot of the input ring.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// The command as submitted, with `timestamp` set by the producer (wall
    /// clock, ns since the epoch). Its `sequence` field is not trusted:
    /// consumers derive the sequence from the ring position (see the
    /// module docs on sequence numbers).
    pub cmd: Command,
    /// [`monotonic_ns`] when the producer claimed the slot (latency only).
    /// [`STOP_MARKER_NS`] marks the stop marker of
    /// [`super::Pipeline::shutdown_within`], which carries no command.
    pub enqueued_ns: u64,
}

/// [`Slot::enqueued_ns`] of the forced-shutdown stop marker (a monotonic
/// clock reading never reaches it).
pub const STOP_MARKER_NS: u64 = u64::MAX;

impl Slot {
    /// Whether this slot is the stop marker of a forced shutdown.
    #[inline]
    pub fn is_stop_marker(&self) -> bool {
        self.enqueued_ns == STOP_MARKER_NS
    }
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            cmd: bytemuck::Zeroable::zeroed(),
            enqueued_ns: 0,
        }
    }
}

/// One slot of the output ring.
#[derive(Debug, Clone, Copy)]
pub struct OutSlot {
    /// The event.
    pub event: Event,
    /// The `enqueued_ns` of the command that produced it.
    pub enqueued_ns: u64,
    /// The stamped timestamp of the command that produced it (the output
    /// journal record's timestamp).
    pub timestamp: u64,
    /// This is the last event of its command (set by the engine stage,
    /// which publishes each event one behind so it knows).
    pub last_of_command: bool,
}

impl Default for OutSlot {
    fn default() -> Self {
        OutSlot {
            event: bytemuck::Zeroable::zeroed(),
            enqueued_ns: 0,
            timestamp: 0,
            last_of_command: false,
        }
    }
}

pub(crate) type InputProducer = MultiProducer<Slot, SingleConsumerBarrier>;

/// Nanoseconds on a process-wide monotonic clock (for latencies only; it
/// never reaches the engine).
pub fn monotonic_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// How long the journaler must have been asleep for a sender that wakes it
/// to wake the engine and the publisher as well. After a short nap (orders
/// some tens of µs apart) the two system calls would cost the sender more
/// than the overlap saves: at 50,000 orders/s through the FIX acceptor,
/// waking all three stages for every order doubled p50; at 1,000 orders/s
/// it cut p50 by about a fifth.
pub const PREWAKE_AFTER_IDLE: Duration = Duration::from_micros(200);

/// Wall-clock nanoseconds since the Unix epoch (the command timestamp).
pub fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The command a consumer of ring position `ring_seq` sees: sequence
/// `base + ring_seq`, timestamp the producer's clock made non-decreasing
/// (`max` with the previous command's). Both the journaler and the engine
/// stage call this on every slot in order, so they compute the same stamps;
/// the engine only ever reads the stamped command.
#[inline]
pub(crate) fn stamp(
    slot: &Slot,
    ring_seq: disruptor::Sequence,
    base: u64,
    last_ts: &mut u64,
) -> Command {
    let ts = slot.cmd.timestamp.max(*last_ts);
    *last_ts = ts;
    slot.cmd.stamped(base + ring_seq as u64, ts)
}

/// Why a command was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The input ring is full: tell the client to retry later. Never waits.
    #[error("busy: the input ring is full")]
    Busy,
    /// The pipeline is shutting down.
    #[error("the pipeline is shutting down")]
    Closed,
    /// The journal failed; the pipeline accepts nothing more (see
    /// [`super::Pipeline::health`]).
    #[error("the pipeline halted after a journal failure")]
    Halted,
}

/// A gateway's handle for submitting commands. Clone one per producer
/// thread (each clone is an independent producer of the multi-producer
/// ring).
///
/// Shutdown: the rings drain and the stage threads stop once the
/// [`super::Pipeline`] is shut down *and* every `CommandSender` is dropped;
/// after shutdown starts, `try_submit` answers [`SubmitError::Closed`].
pub struct CommandSender {
    pub(crate) producer: InputProducer,
    pub(crate) shared: Arc<Shared>,
    pub(crate) base: u64,
}

impl Clone for CommandSender {
    fn clone(&self) -> Self {
        self.shared.live_senders.fetch_add(1, Ordering::AcqRel);
        CommandSender {
            producer: self.producer.clone(),
            shared: Arc::clone(&self.shared),
            base: self.base,
        }
    }
}

impl Drop for CommandSender {
    fn drop(&mut self) {
        self.shared.live_senders.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for CommandSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSender")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl CommandSender {
    /// Puts `cmd` into the input ring, stamped with the next sequence number
    /// and the current wall-clock time, and returns that sequence number.
    /// A full ring answers [`SubmitError::Busy`] at once.
    #[inline]
    pub fn try_submit(&mut self, cmd: Command) -> Result<u64, SubmitError> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(SubmitError::Closed);
        }
        if self.shared.journal_failed.load(Ordering::Acquire) {
            return Err(SubmitError::Halted);
        }
        let metrics = &self.shared.metrics;
        match self.producer.try_publish(|slot| {
            slot.cmd = cmd;
            slot.cmd.timestamp = wall_clock_ns();
            slot.enqueued_ns = monotonic_ns();
        }) {
            Ok(ring_seq) => {
                if self.shared.closed.load(Ordering::SeqCst) && self.after_stop_marker(ring_seq) {
                    return Err(SubmitError::Closed);
                }
                metrics.submitted.fetch_add(1, Ordering::Relaxed);
                let idle = self.shared.bells.journaler.ring();
                if idle.is_some_and(|idle| idle >= PREWAKE_AFTER_IDLE) {
                    // The pipeline was idle: wake the engine and the
                    // publisher now too, so that their wake-ups run while
                    // the journaler's does instead of one after the other.
                    // Each spins when woken, and parks again if the work
                    // does not reach it in time (the stage before rings it
                    // at the end of its batch, as always).
                    let bells = &self.shared.bells;
                    bells.engine.ring();
                    bells.publisher.ring();
                }
                Ok(self.base + ring_seq as u64)
            }
            Err(disruptor::RingBufferFull) => {
                metrics.busy.fetch_add(1, Ordering::Relaxed);
                Err(SubmitError::Busy)
            }
        }
    }

    /// Whether the slot this sender just published at `ring_seq` lies past
    /// a forced stop's marker (the stages skip it). Runs only once shutdown
    /// has begun. A forced stop announces itself (`PENDING`) before it
    /// claims the marker's slot, and slot claims are totally ordered, so a
    /// slot claimed after the marker always sees `PENDING` or the marker's
    /// position here, never `NO_FORCED_STOP`.
    #[cold]
    fn after_stop_marker(&self, ring_seq: disruptor::Sequence) -> bool {
        loop {
            match self.shared.forced_stop_at.load(Ordering::SeqCst) {
                super::NO_FORCED_STOP => return false,
                super::FORCED_STOP_PENDING => std::hint::spin_loop(),
                at => return ring_seq > at,
            }
        }
    }

    /// Publishes the forced-shutdown stop marker; its ring position, or
    /// `None` when the ring is full.
    pub(crate) fn publish_stop_marker(&mut self) -> Option<disruptor::Sequence> {
        self.producer
            .try_publish(|slot| {
                slot.cmd = bytemuck::Zeroable::zeroed();
                slot.enqueued_ns = STOP_MARKER_NS;
            })
            .ok()
    }
}
