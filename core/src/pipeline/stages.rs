//! The three stage bodies. Each runs on its own thread, owned by the
//! `disruptor` crate; its state is created on that thread's behalf at start
//! and dropped on it when the ring shuts down. With
//! [`super::StageThreads::Fused`] all three run on one thread instead
//! ([`super::fused`]), through the same bodies' parts: the journaler's
//! [`JournalerStage::append`] and [`JournalerStage::end_batch`], the
//! engine's [`EngineCore::apply`] and the publisher's
//! [`PublisherStage::offer`] and [`PublisherStage::end_batch`].

use super::config::{Backoff, StageGate, StageWait, WaitKind};
use super::metrics::new_latency_histogram;
use super::output::JOURNAL_KIND_EVENT;
use super::sender::{monotonic_ns, stamp, OutSlot, Slot};
use super::sink::SinkEntry;
use super::snapshots::SnapshotMeta;
use super::Shared;
use crate::records::{Command, Event, EventSink};
use crate::Engine;
use crossbeam_channel::{Receiver, Sender};
use disruptor::{Producer, SingleConsumerBarrier, SingleProducer};
use hdrhistogram::Histogram;
use ringex_journal::fs::FileSystem;
use ringex_journal::{Journal, RetentionPolicy, SnapshotStore};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `kind` byte of a command record in the input journal.
pub const JOURNAL_KIND_COMMAND: u8 = 1;

pub(crate) type OutputProducer = SingleProducer<OutSlot, SingleConsumerBarrier>;

/// Bytes of the active segment the journaler keeps prepared
/// ([`Journal::prepare_ahead`]) beyond its write position while idle.
pub const JOURNALER_PREPARE_LEAD: usize = 4 << 20;
/// Bytes one idle call prepares at most: bounds the delay a command that
/// arrives during idle work sees (a `pwrite` and an `madvise` of 256 KiB).
pub const JOURNALER_PREPARE_STEP: usize = 256 << 10;

/// The journaler as built on the caller's thread: plain data, sent to the
/// journaler thread, which turns it into a [`JournalerStage`] there
/// ([`JournalerSetup::start`]).
pub(crate) struct JournalerSetup<F: FileSystem> {
    pub(crate) journal: Journal<F>,
    pub(crate) base: u64,
    pub(crate) last_ts: u64,
    pub(crate) shared: Arc<Shared>,
    pub(crate) gate: Option<StageGate>,
    /// Told when the journal is closed (after the last batch).
    pub(crate) done: Sender<()>,
    /// Prepare pages while idle ([`super::JournalPretouch::Idle`]).
    pub(crate) prepare_when_idle: bool,
}

impl<F: FileSystem> JournalerSetup<F> {
    /// Runs on the journaler thread: shares the journal between the stage
    /// (appends) and the thread's idle hook ([`IdleWorkWait`]: time-based
    /// syncs and page preparation while the input ring is empty). Both run
    /// on this thread only, never at the same time, hence `Rc<RefCell>`.
    pub(crate) fn start(self) -> JournalerStage<F> {
        let journal = Rc::new(RefCell::new(Some(self.journal)));
        install_idle_work(JournalIdle {
            journal: Rc::clone(&journal),
            shared: Arc::clone(&self.shared),
            prepare: self.prepare_when_idle,
            role: JournalRole::Input,
        });
        JournalerStage {
            journal,
            base: self.base,
            last_ts: self.last_ts,
            pending: self.base - 1,
            shared: self.shared,
            gate: self.gate,
            done: Some(self.done),
        }
    }
}

/// What a stage thread does when its ring is empty.
trait IdleWork {
    fn idle(&mut self);
}

thread_local! {
    /// This thread's idle work: the journaler's (input journal), the
    /// publisher's (output journal), or on the fused stage thread both, in
    /// that order; installed when a stage starts on the thread and cleared
    /// when it is dropped. Empty on every other thread.
    static STAGE_IDLE: RefCell<Vec<Box<dyn IdleWork>>> = const { RefCell::new(Vec::new()) };
}

fn install_idle_work(work: impl IdleWork + 'static) {
    STAGE_IDLE.with(|hook| hook.borrow_mut().push(Box::new(work)));
}

/// Drops this thread's idle work (and with it its references to the
/// journals): a stage that closes its journal stops the idle work first.
fn remove_idle_work() {
    let _ = STAGE_IDLE.try_with(|hook| hook.borrow_mut().clear());
}

/// The wait strategy of a stage that owns a journal (the journaler, the
/// publisher): first the thread's idle work, then the stage's configured
/// [`WaitKind`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct IdleWorkWait(pub(crate) WaitKind);

impl disruptor::wait_strategies::WaitStrategy for IdleWorkWait {
    #[inline]
    fn wait_for(&self, sequence: disruptor::Sequence) {
        STAGE_IDLE.with(|hook| {
            if let Ok(mut hook) = hook.try_borrow_mut() {
                for work in hook.iter_mut() {
                    work.idle();
                }
            }
        });
        StageWait(self.0).wait_for(sequence);
    }
}

/// Which journal an idle hook looks after: where its syncs and failures
/// are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JournalRole {
    /// The input journal (journaler thread): a sync moves the durable
    /// position; a failure stops journaling.
    Input,
    /// The output journal (publisher thread): a failure stops only the
    /// output journal.
    Output,
}

struct JournalIdle<F: FileSystem> {
    journal: Rc<RefCell<Option<Journal<F>>>>,
    shared: Arc<Shared>,
    /// Prepare pages ahead ([`super::JournalPretouch::Idle`]).
    prepare: bool,
    role: JournalRole,
}

impl<F: FileSystem> IdleWork for JournalIdle<F> {
    /// Under `FsyncEveryMillis`, syncs the last batch once its interval has
    /// passed (otherwise it would wait for the next batch); then, with
    /// [`super::JournalPretouch::Idle`], keeps [`JOURNALER_PREPARE_LEAD`]
    /// bytes of the segment prepared, one [`JOURNALER_PREPARE_STEP`] per
    /// call, so that the stage's next appends land on mapped pages instead
    /// of faulting (and zeroing) them. Both are cheap checks when there is
    /// nothing to do. It also passes on a pretoucher thread's failure (one
    /// atomic load when none).
    fn idle(&mut self) {
        let mut slot = self.journal.borrow_mut();
        let Some(journal) = slot.as_mut() else {
            return;
        };
        let result = journal.sync_if_due().and_then(|synced| {
            if synced && self.role == JournalRole::Input {
                let durable = journal.durable_sequence().unwrap_or(0);
                self.shared
                    .metrics
                    .durable
                    .store(durable, Ordering::Release);
            }
            if self.prepare && journal.prepared_ahead() < JOURNALER_PREPARE_LEAD {
                journal.prepare_ahead(JOURNALER_PREPARE_STEP)?;
            }
            Ok(())
        });
        if let Some(e) = journal.take_pretouch_error() {
            self.shared.record_pretouch_failure(e.to_string());
        }
        if let Err(e) = result {
            *slot = None;
            match self.role {
                JournalRole::Input => self.shared.record_journal_failure(e.to_string()),
                JournalRole::Output => self
                    .shared
                    .record_output_journal_failure(format!("idle work: {e}")),
            }
        }
    }
}

/// The journaler: the only writer of the input journal.
pub(crate) struct JournalerStage<F: FileSystem> {
    journal: Rc<RefCell<Option<Journal<F>>>>,
    base: u64,
    last_ts: u64,
    pending: u64,
    shared: Arc<Shared>,
    gate: Option<StageGate>,
    /// Told when the journal is closed (after the last batch).
    done: Option<Sender<()>>,
}

impl<F: FileSystem> JournalerStage<F> {
    /// Appends the command; at the end of a batch applies the durability
    /// policy and only then publishes the journal position. The disruptor
    /// advances this consumer's sequence (which gates the engine) after the
    /// handler returns for the last event of the batch, i.e. after
    /// `end_batch`.
    #[inline]
    pub(crate) fn handle(
        &mut self,
        slot: &Slot,
        ring_seq: disruptor::Sequence,
        end_of_batch: bool,
    ) {
        self.shared.bells.journaler.register_current();
        if self.stops_at(slot) {
            return;
        }
        self.append(slot, ring_seq);
        // The ring advances this stage's sequence when the handler returns;
        // the engine, woken now, spins first.
        if end_of_batch && self.end_batch() {
            self.shared.bells.engine.ring();
        }
    }

    /// Waits at the test gate; then, at a forced stop's marker (or any slot
    /// after it), ends the batch, closes the journal and answers `true`:
    /// everything before the marker is appended, nothing after it ever is.
    #[inline]
    pub(crate) fn stops_at(&mut self, slot: &Slot) -> bool {
        if let Some(gate) = &self.gate {
            gate.wait_open();
        }
        if slot.is_stop_marker() || self.done.is_none() {
            self.finish();
            return true;
        }
        false
    }

    /// Stamps the slot's command (sequence from the ring position,
    /// non-decreasing timestamp) and appends it, unless the journal failed
    /// earlier; returns the stamped command either way. It is durable, and
    /// may be applied, only once [`JournalerStage::end_batch`] has published
    /// its position ([`super::Metrics::journaled_sequence`]).
    #[inline]
    pub(crate) fn append(&mut self, slot: &Slot, ring_seq: disruptor::Sequence) -> Command {
        let cmd = stamp(slot, ring_seq, self.base, &mut self.last_ts);
        let mut journal_slot = self.journal.borrow_mut();
        let Some(journal) = journal_slot.as_mut() else {
            return cmd; // failed earlier: journal nothing more.
        };
        if let Err(e) = journal.append(
            cmd.sequence,
            cmd.timestamp,
            JOURNAL_KIND_COMMAND,
            bytemuck::bytes_of(&cmd),
        ) {
            *journal_slot = None;
            fail(&self.shared, e);
            return cmd;
        }
        self.pending = cmd.sequence;
        cmd
    }

    /// Applies the durability policy to the batch appended since the last
    /// call, then publishes the journal position. Answers whether it did
    /// (`false` once the journal has failed: the position never moves
    /// again).
    #[inline]
    pub(crate) fn end_batch(&mut self) -> bool {
        let mut journal_slot = self.journal.borrow_mut();
        let Some(journal) = journal_slot.as_mut() else {
            return false;
        };
        match journal.end_batch() {
            Ok(()) => {
                let durable = journal.durable_sequence().unwrap_or(0);
                let m = &self.shared.metrics;
                m.durable.store(durable, Ordering::Release);
                m.journaled.store(self.pending, Ordering::Release);
                // A journaler that never idles still reports it.
                if let Some(e) = journal.take_pretouch_error() {
                    self.shared.record_pretouch_failure(e.to_string());
                }
                true
            }
            Err(e) => {
                *journal_slot = None;
                fail(&self.shared, e);
                false
            }
        }
    }
}

/// Stops journaling for good (the caller dropped the journal): the journal
/// position never moves again, so the engine (which checks it) applies
/// nothing past the last journaled command.
#[cold]
fn fail(shared: &Shared, error: ringex_journal::Error) {
    shared.record_journal_failure(error.to_string());
}

impl<F: FileSystem> JournalerStage<F> {
    /// Ends the open batch (publishing the journal position, so the engine
    /// applies it), closes the journal and says so; once only.
    fn finish(&mut self) {
        if self.done.is_none() {
            return;
        }
        // The idle hook holds the other reference to the journal.
        remove_idle_work();
        let journal = self.journal.borrow_mut().take();
        if let Some(mut journal) = journal {
            if let Err(e) = journal.end_batch() {
                fail(&self.shared, e);
            } else {
                let m = &self.shared.metrics;
                m.durable
                    .store(journal.durable_sequence().unwrap_or(0), Ordering::Release);
                m.journaled.store(self.pending, Ordering::Release);
                self.close(journal);
            }
        }
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }

    fn close(&self, journal: Journal<F>) {
        let durable = journal.last_sequence();
        match journal.close() {
            Ok(()) => {
                if let Some(d) = durable {
                    self.shared.metrics.durable.store(d, Ordering::Release);
                }
            }
            Err(e) => self.shared.record_journal_failure(e.to_string()),
        }
    }
}

impl<F: FileSystem> Drop for JournalerStage<F> {
    fn drop(&mut self) {
        // The idle hook holds the other reference to the journal.
        remove_idle_work();
        let journal = self.journal.borrow_mut().take();
        if let Some(journal) = journal {
            self.close(journal);
        }
        if let Some(done) = self.done.take() {
            let _ = done.send(());
        }
    }
}

/// The engine stage: the single writer of trading state and the only
/// producer of the output ring.
pub(crate) struct EngineStage {
    pub(crate) core: EngineCore,
    pub(crate) out: Option<OutputProducer>,
    pub(crate) wait: WaitKind,
}

/// The engine and what goes with it, whichever thread applies commands:
/// the engine stage's, or the fused stage thread.
pub(crate) struct EngineCore {
    pub(crate) engine: Option<Engine>,
    pub(crate) base: u64,
    pub(crate) last_ts: u64,
    pub(crate) halted: bool,
    pub(crate) shared: Arc<Shared>,
    /// Gets the engine when the stage stops.
    pub(crate) done: Option<Sender<EngineFinal>>,
    /// Events emitted over the engine's life (the output journal index of
    /// the last one), for snapshots.
    pub(crate) events_emitted: u64,
    /// Sequence of the last command applied (replayed ones included).
    pub(crate) last_applied: u64,
    /// That command (a snapshot records its CRC).
    pub(crate) last_command: Command,
    /// Periodic snapshots, when configured.
    pub(crate) periodic: Option<PeriodicSnapshots>,
}

/// What the engine stage hands back when it stops.
pub(crate) struct EngineFinal {
    pub(crate) engine: Engine,
    pub(crate) events_emitted: u64,
    pub(crate) last_applied: u64,
    pub(crate) last_command: Command,
    pub(crate) last_ts: u64,
}

/// Periodic snapshots, written on the engine thread between batches.
pub(crate) struct PeriodicSnapshots {
    pub(crate) store: SnapshotStore,
    pub(crate) retention: RetentionPolicy,
    pub(crate) every: u64,
    pub(crate) since_last: u64,
    /// Reused serialisation buffer.
    pub(crate) buf: Vec<u8>,
}

/// Where the engine's events for one command go: the output ring, or on
/// the fused stage thread the publisher itself. [`EngineCore::apply`]
/// passes each event on one behind ([`OneBehind`]), so it knows which is
/// the command's last ([`OutSlot::last_of_command`]).
pub(crate) trait CommandOutput {
    /// Passes on one event; `last_of_command` on the command's last.
    fn pass_on(&mut self, event: &Event, last_of_command: bool);
}

/// An [`EventSink`] over a [`CommandOutput`] that holds each event until
/// the next (or the end of the command) and counts them.
struct OneBehind<'a, O: CommandOutput> {
    output: &'a mut O,
    emitted: u64,
    held: Option<Event>,
}

impl<'a, O: CommandOutput> OneBehind<'a, O> {
    fn new(output: &'a mut O) -> Self {
        OneBehind {
            output,
            emitted: 0,
            held: None,
        }
    }

    /// Passes on the command's last event, marked; returns the count.
    fn finish(mut self) -> u64 {
        if let Some(last) = self.held.take() {
            self.output.pass_on(&last, true);
        }
        self.emitted
    }
}

impl<O: CommandOutput> EventSink for OneBehind<'_, O> {
    #[inline]
    fn emit(&mut self, event: &Event) {
        self.emitted += 1;
        if let Some(previous) = self.held.replace(*event) {
            self.output.pass_on(&previous, false);
        }
    }
}

/// The engine stage's [`CommandOutput`]: the output ring.
struct OutputRing<'a> {
    out: &'a mut OutputProducer,
    enqueued_ns: u64,
    timestamp: u64,
    wait: WaitKind,
}

impl CommandOutput for OutputRing<'_> {
    fn pass_on(&mut self, event: &Event, last_of_command: bool) {
        let (enqueued_ns, timestamp) = (self.enqueued_ns, self.timestamp);
        let mut backoff = Backoff::new();
        // The publisher never blocks on sinks, so the ring frees up soon.
        while self
            .out
            .try_publish(|slot| {
                slot.event = *event;
                slot.enqueued_ns = enqueued_ns;
                slot.timestamp = timestamp;
                slot.last_of_command = last_of_command;
            })
            .is_err()
        {
            match self.wait {
                WaitKind::BusySpin => {}
                WaitKind::SpinLoopHint => std::hint::spin_loop(),
                WaitKind::Backoff => backoff.snooze(),
                WaitKind::Sleep(us) => std::thread::sleep(Duration::from_micros(us)),
            }
        }
    }
}

impl EngineStage {
    #[inline]
    pub(crate) fn handle(
        &mut self,
        slot: &Slot,
        ring_seq: disruptor::Sequence,
        end_of_batch: bool,
    ) {
        let core = &mut self.core;
        core.shared.bells.engine.register_current();
        if slot.is_stop_marker() || core.done.is_none() {
            // A forced stop: everything before the marker is applied.
            self.finish();
            return;
        }
        let cmd = stamp(slot, ring_seq, core.base, &mut core.last_ts);
        let Some(out) = self.out.as_mut() else {
            return;
        };
        let mut output = OutputRing {
            out,
            enqueued_ns: slot.enqueued_ns,
            timestamp: cmd.timestamp,
            wait: self.wait,
        };
        core.apply(&cmd, &mut output, end_of_batch);
        if end_of_batch {
            core.shared.bells.publisher.ring();
        }
    }
}

impl EngineCore {
    /// Applies the stamped command, passing its events to `output`, unless
    /// the engine halted or the command is not journaled yet; then the
    /// counters and, at the end of a batch, a periodic snapshot if due.
    #[inline]
    pub(crate) fn apply<O: CommandOutput>(
        &mut self,
        cmd: &Command,
        output: &mut O,
        end_of_batch: bool,
    ) {
        if self.halted {
            return;
        }
        // Belt and braces: the ring's dependency (or, on the fused thread,
        // the order of the calls) already keeps the engine behind the
        // journaler; this check also holds after a journal failure, when
        // the journaler skips commands without journaling them.
        if cmd.sequence > self.shared.metrics.journaled.load(Ordering::Acquire) {
            self.halted = true;
            self.shared.engine_halted.store(true, Ordering::Release);
            return;
        }
        let Some(engine) = self.engine.as_mut() else {
            return;
        };
        let mut events = OneBehind::new(output);
        engine.apply(cmd, &mut events);
        self.events_emitted += events.finish();
        self.last_ts = cmd.timestamp;
        self.last_applied = cmd.sequence;
        self.last_command = *cmd;
        let m = &self.shared.metrics;
        m.applied.fetch_add(1, Ordering::Relaxed);
        m.last_applied.store(cmd.sequence, Ordering::Relaxed);
        if let Some(periodic) = self.periodic.as_mut() {
            periodic.since_last += 1;
            if end_of_batch && periodic.since_last >= periodic.every {
                periodic.since_last = 0;
                let meta = SnapshotMeta {
                    sequence: cmd.sequence,
                    output_events: self.events_emitted,
                    last_timestamp: self.last_ts,
                    state_digest: engine.state_digest(),
                    command_crc: super::snapshots::command_crc(cmd),
                };
                let written = super::snapshots::write(
                    &periodic.store,
                    periodic.retention,
                    engine,
                    meta,
                    &mut periodic.buf,
                );
                if let Err(problem) = written {
                    self.shared.record_snapshot_failure(problem);
                }
            }
        }
    }

    /// Hands the engine back (once).
    pub(crate) fn finish(&mut self) {
        if let (Some(engine), Some(done)) = (self.engine.take(), self.done.take()) {
            let _ = done.send(EngineFinal {
                engine,
                events_emitted: self.events_emitted,
                last_applied: self.last_applied,
                last_command: self.last_command,
                last_ts: self.last_ts,
            });
        }
    }
}

impl Drop for EngineStage {
    fn drop(&mut self) {
        self.finish();
    }
}

impl EngineStage {
    /// Drains the output ring, stops the publisher and hands the engine
    /// back; at a forced stop's marker or when the ring shuts down, once.
    fn finish(&mut self) {
        // Dropping the output producer drains the output ring and joins the
        // publisher thread.
        drop(self.out.take());
        self.core.finish();
    }
}

/// The publisher: fans events out to the sinks (blocking only for the bounded
/// wait an [`OverflowPolicy::Wait`](super::OverflowPolicy::Wait) sink asks for), and
/// appends them to the output journal (the only writer of it).
pub(crate) struct PublisherStage<G: FileSystem> {
    pub(crate) sinks: Vec<SinkEntry>,
    /// The output journal; `None` when disabled or failed. Shared with this
    /// thread's idle hook (page preparation and time-based syncs while the
    /// output ring is empty), as the journaler shares the input journal.
    output: Rc<RefCell<Option<Journal<G>>>>,
    /// Index of the next event in the output journal.
    pub(crate) output_next: u64,
    pub(crate) registrations: Receiver<SinkEntry>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) at_batch_start: bool,
    pub(crate) histogram: Histogram<u64>,
    pub(crate) last_flush: Instant,
    pub(crate) events: u64,
    pub(crate) dropped: u64,
}

impl<G: FileSystem> PublisherStage<G> {
    /// How often local latency samples are merged into the shared histogram.
    const FLUSH_EVERY: Duration = Duration::from_millis(5);

    /// Runs on the publisher thread (the ring's state initialiser), where
    /// it installs the output journal's idle work; `prepare_when_idle` as
    /// for the journaler ([`super::JournalPretouch::Idle`]).
    pub(crate) fn new(
        registrations: Receiver<SinkEntry>,
        shared: Arc<Shared>,
        output: Option<Journal<G>>,
        output_next: u64,
        prepare_when_idle: bool,
    ) -> PublisherStage<G> {
        let output = Rc::new(RefCell::new(output));
        install_idle_work(JournalIdle {
            journal: Rc::clone(&output),
            shared: Arc::clone(&shared),
            prepare: prepare_when_idle,
            role: JournalRole::Output,
        });
        PublisherStage {
            sinks: Vec::new(),
            output,
            output_next,
            registrations,
            shared,
            at_batch_start: true,
            histogram: new_latency_histogram(),
            last_flush: Instant::now(),
            events: 0,
            dropped: 0,
        }
    }

    #[inline]
    pub(crate) fn handle(&mut self, slot: &OutSlot, _seq: disruptor::Sequence, end_of_batch: bool) {
        self.shared.bells.publisher.register_current();
        self.offer(slot);
        if end_of_batch {
            self.end_batch();
        }
    }

    /// Whether events were offered since the last [`Self::end_batch`].
    pub(crate) fn in_batch(&self) -> bool {
        !self.at_batch_start
    }

    /// Offers the event to every sink (dropping the sinks that are gone),
    /// counts it and appends it to the output journal.
    #[inline]
    pub(crate) fn offer(&mut self, slot: &OutSlot) {
        if self.at_batch_start {
            // Every sink registered before the commands of this batch were
            // submitted is visible here.
            while let Ok(sink) = self.registrations.try_recv() {
                self.sinks.push(sink);
            }
            self.at_batch_start = false;
        }
        let mut dropped = 0;
        let before = self.sinks.len();
        self.sinks.retain(|s| s.offer(&slot.event, &mut dropped));
        debug_assert!(self.sinks.len() <= before);
        if slot.last_of_command {
            self.shared
                .metrics
                .delivered
                .store(slot.event.sequence, Ordering::Release);
        }
        self.dropped += dropped;
        self.events += 1;
        let latency = monotonic_ns().saturating_sub(slot.enqueued_ns).max(1);
        self.histogram.saturating_record(latency);
        let mut output = self.output.borrow_mut();
        if let Some(journal) = output.as_mut() {
            let index = self.output_next;
            match journal.append(
                index,
                slot.timestamp,
                JOURNAL_KIND_EVENT,
                bytemuck::bytes_of(&slot.event),
            ) {
                Ok(()) => self.output_next = index + 1,
                Err(e) => {
                    *output = None;
                    fail_output(&self.shared, format!("append event {index}: {e}"));
                }
            }
        }
    }

    /// Ends the batch: tells each sink (which wakes its reader), applies
    /// the durability policy to the output journal and publishes the
    /// counters.
    pub(crate) fn end_batch(&mut self) {
        self.at_batch_start = true;
        for sink in &self.sinks {
            sink.end_batch();
        }
        let mut output = self.output.borrow_mut();
        if let Some(journal) = output.as_mut() {
            match journal.end_batch() {
                Ok(()) => self
                    .shared
                    .metrics
                    .output_journaled
                    .store(self.output_next - 1, Ordering::Release),
                Err(e) => {
                    *output = None;
                    fail_output(&self.shared, format!("end batch: {e}"));
                }
            }
        }
        drop(output);
        let m = &self.shared.metrics;
        m.events.store(self.events, Ordering::Relaxed);
        m.dropped.store(self.dropped, Ordering::Relaxed);
        if self.last_flush.elapsed() >= Self::FLUSH_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.last_flush = Instant::now();
        if self.histogram.is_empty() {
            return;
        }
        let mut shared = self
            .shared
            .metrics
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let _ = shared.add(&self.histogram);
        drop(shared);
        self.histogram.reset();
    }
}

/// Records why the output journal stopped (the caller dropped it): no
/// further event is written to it; sinks and the engine go on.
#[cold]
fn fail_output(shared: &Shared, error: String) {
    shared.record_output_journal_failure(error);
}

impl<G: FileSystem> Drop for PublisherStage<G> {
    fn drop(&mut self) {
        // The idle hook holds the other reference to the output journal.
        remove_idle_work();
        let journal = self.output.borrow_mut().take();
        if let Some(journal) = journal {
            match journal.close() {
                Ok(()) => self
                    .shared
                    .metrics
                    .output_journaled
                    .store(self.output_next - 1, Ordering::Release),
                Err(e) => self
                    .shared
                    .record_output_journal_failure(format!("close: {e}")),
            }
        }
        let m = &self.shared.metrics;
        m.events.store(self.events, Ordering::Relaxed);
        m.dropped.store(self.dropped, Ordering::Relaxed);
        self.flush();
        // Dropping the senders closes every sink's channel.
    }
}
