//! The fused stage ([`super::StageThreads::Fused`]): the journaler, the
//! engine and the publisher on one thread, `ringex-core`, the single
//! consumer of the input ring. There is no output ring.
//!
//! A command crosses no thread between the gateway's submit and the sinks:
//! on a machine with fewer free cores than stages, each hand-off between
//! stage threads is a wake-up or a wait for a CPU, and this takes two of
//! them out. What it gives up is the overlap: journaling batch N+1 while
//! the engine applies batch N and the publisher fans out batch N−1.
//!
//! The thread owns what the three stage threads own: the input journal, the
//! engine, the sink senders and the output journal. For each batch the ring
//! hands it, it
//!
//! 1. appends every command to the input journal
//!    ([`JournalerStage::append`]), keeping the stamped commands;
//! 2. ends the journal batch ([`JournalerStage::end_batch`]): the
//!    durability policy, then the journal position is published;
//! 3. applies each command ([`EngineCore::apply`], which still refuses a
//!    command beyond the published journal position), handing each event
//!    straight to the publisher ([`PublisherStage::offer`]: sinks, output
//!    journal, latency histogram);
//! 4. ends the publisher's batch ([`PublisherStage::end_batch`]: wakes the
//!    sinks' readers, the output journal's durability policy).
//!
//! So the durability invariant holds as with three threads: no command is
//! applied, and no event reaches a sink, before its batch is durable. The
//! engine sees the same stamped commands in the same order, so the events,
//! the output journal and the snapshots are byte for byte those of the
//! three-thread pipeline (`tests/pipeline_fused.rs` checks it).
//!
//! Idle work: the thread runs both journals' idle work
//! (`FsyncEveryMillis` syncs and page preparation) before it waits, and
//! waits with the journaler's [`super::StageConfig`]; gateways ring the
//! journaler's bell.

use super::sender::{OutSlot, Slot};
use super::stages::{CommandOutput, EngineCore, JournalerStage, PublisherStage};
use crate::records::{Command, Event};
use ringex_journal::fs::FileSystem;

/// The fused stage's state, created on its thread.
pub(crate) struct FusedStage<F: FileSystem, G: FileSystem> {
    pub(crate) journaler: JournalerStage<F>,
    pub(crate) engine: EngineCore,
    /// `None` once stopped (closed before the engine is handed back, as
    /// the engine stage joins the publisher thread first).
    pub(crate) publisher: Option<PublisherStage<G>>,
    /// The commands appended in the current batch, with their
    /// `enqueued_ns`; applied once the batch is durable. Capacity: the
    /// input ring's size, the longest batch the ring can hand over.
    pub(crate) batch: Vec<(Command, u64)>,
}

/// [`CommandOutput`] straight into the publisher.
struct DirectOutput<'a, G: FileSystem> {
    publisher: &'a mut PublisherStage<G>,
    enqueued_ns: u64,
    timestamp: u64,
}

impl<G: FileSystem> CommandOutput for DirectOutput<'_, G> {
    #[inline]
    fn pass_on(&mut self, event: &Event, last_of_command: bool) {
        self.publisher.offer(&OutSlot {
            event: *event,
            enqueued_ns: self.enqueued_ns,
            timestamp: self.timestamp,
            last_of_command,
        });
    }
}

impl<F: FileSystem, G: FileSystem> FusedStage<F, G> {
    #[inline]
    pub(crate) fn handle(
        &mut self,
        slot: &Slot,
        ring_seq: disruptor::Sequence,
        end_of_batch: bool,
    ) {
        // The only bell this thread answers to: gateways ring it.
        self.engine.shared.bells.journaler.register_current();
        if self.journaler.stops_at(slot) {
            // A forced stop: the journal batch is ended and closed; apply
            // and publish what it holds, then stop.
            self.stop();
            return;
        }
        let cmd = self.journaler.append(slot, ring_seq);
        self.batch.push((cmd, slot.enqueued_ns));
        if end_of_batch {
            self.journaler.end_batch();
            self.apply_batch();
        }
    }

    /// Applies the batch's commands (each refused by the engine if the
    /// journal position does not cover it) and publishes their events.
    fn apply_batch(&mut self) {
        let Some(publisher) = self.publisher.as_mut() else {
            self.batch.clear();
            return;
        };
        let last = self.batch.len().saturating_sub(1);
        for (i, (cmd, enqueued_ns)) in self.batch.drain(..).enumerate() {
            let mut output = DirectOutput {
                publisher: &mut *publisher,
                enqueued_ns,
                timestamp: cmd.timestamp,
            };
            self.engine.apply(&cmd, &mut output, i == last);
        }
        if publisher.in_batch() {
            publisher.end_batch();
        }
    }

    /// Applies what is left, closes the output journal (dropping the
    /// publisher) and hands the engine back; once.
    fn stop(&mut self) {
        self.apply_batch();
        drop(self.publisher.take());
        self.engine.finish();
    }
}

impl<F: FileSystem, G: FileSystem> Drop for FusedStage<F, G> {
    fn drop(&mut self) {
        // The ring ends every batch before it shuts down, so the batch is
        // empty here unless the stage panicked mid-batch; a batch whose
        // journal end was never applied is refused by the engine.
        self.stop();
    }
}
