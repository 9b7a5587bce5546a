//! The running exchange core: rings, stages, journal, sinks.
//!
//! ```text
//!  gateways ─┐  try_submit                      ┌──────────── input ring (multi-producer) ───────────┐
//!  timer    ─┴─> CommandSender ──> [ Slot ] ──> │ journaler ──(and_then)──> engine                     │
//!                (Busy if full)                  │  append + end_batch        apply(cmd) ──> output ring │
//!                                                └─────────────────────────────────────────────┬───────┘
//!                                                                    [ OutSlot ] ──> publisher ──┼─> sink queues (bounded,
//!                                                                                                │   try_send: drop/disconnect)
//!                                                                                                ├─> output journal (mmap appends,
//!                                                                                                │   end_batch per publisher batch)
//!                                                                                                └─> metrics
//! ```
//!
//! ```
//! use ringex_core::pipeline::{OverflowPolicy, Pipeline, PipelineConfig};
//! use ringex_core::records::{Command, EventKind};
//! use ringex_core::EngineConfig;
//!
//! let dir = tempfile::tempdir()?;
//! let config = PipelineConfig::two_core_default(dir.path())
//!     .with_engine(EngineConfig::small())
//!     .with_timer(None);
//! let pipeline = Pipeline::start(config)?;
//! let sink = pipeline.register_sink("gateway", 1024, OverflowPolicy::DropNewest);
//! let mut sender = pipeline.sender();
//! let seq = sender.try_submit(Command::state_digest())?; // Err(Busy) if the ring is full
//! let event = sink.receiver.recv()?;
//! assert_eq!((event.kind, event.sequence), (EventKind::StateDigest as u8, seq));
//! drop(sender); // shutdown waits for every sender
//! let report = pipeline.shutdown();
//! assert!(report.health.is_ok());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Threads
//!
//! | Thread | Owns | Waits with |
//! |--------|------|------------|
//! | gateways (any number) | a [`CommandSender`] clone each | never: a full ring is [`SubmitError::Busy`] |
//! | `ringex-journaler` | the input [`Journal`] (single writer) | [`StageConfig`] of `journaler` |
//! | `ringex-pretouch` (with [`JournalPretouch::Thread`]; one per journal) | nothing but clones of its journal's mappings; it maps pages in and prepares the next segment file, which the journal's writer takes over | parks until the writer crosses a chunk |
//! | `ringex-engine` | the [`Engine`] (**single writer: engine thread**) and the output ring's producer | `engine` |
//! | `ringex-publisher` | the sink senders, the output [`Journal`] (single writer), the latency histogram | `publisher` |
//! | `ringex-timer` (optional) | a [`CommandSender`] | sleeps |
//! | `ringex-core` (instead of the three stage threads, with [`StageThreads::Fused`]) | the input journal, the engine, the sink senders, the output journal: all three stages' state, run one batch at a time (journal, apply, publish; see `pipeline/fused.rs`) | `journaler` |
//!
//! With [`StageThreads::Fused`] (the `two-core` preset,
//! [`PipelineConfig::two_core_default`]) one thread runs the three stages
//! and there is no output ring; with [`StageThreads::Separate`] (the
//! `dedicated-server` preset) each stage has its thread. The rest of this
//! page holds for both.
//!
//! # Sequence numbers and time
//!
//! A command's sequence is `base + ring position`, where `base` is the
//! journal's next sequence at start-up (1 for a new journal); the
//! producer's [`CommandSender::try_submit`] returns it. The producer writes
//! its wall clock into the slot; the consumers stamp the command
//! (sequence, non-decreasing timestamp) identically, and the engine only
//! reads the stamped command. Replaying the journal therefore reproduces
//! the run exactly.
//!
//! # The durability invariant
//!
//! The engine consumes the input ring *after* the journaler (the
//! disruptor's `and_then` dependency). The journaler calls
//! [`Journal::end_batch`] — which applies the durability policy — on the
//! last command of every batch, before the disruptor advances its sequence.
//! So no command reaches the engine, and no event reaches a sink, before the
//! command is durable under the configured policy. After a journal error
//! the journaler journals nothing more and records the error
//! ([`Pipeline::health`]); the engine also checks every command against the
//! journaled position and halts at the first one beyond it.
//!
//! # The output journal
//!
//! The publisher appends every event it takes off the output ring to the
//! output journal ([`PipelineConfig::output_journal_path`]; by default the
//! `events` subdirectory of the input journal's directory), in the same
//! journal format: sequence = the event's running index (1, 2, 3, ...,
//! continued across restarts), timestamp = the producing command's stamped
//! timestamp, kind = [`JOURNAL_KIND_EVENT`], payload = the 96 event bytes.
//! It applies the configured durability policy ([`Journal::end_batch`]) at
//! the end of every publisher batch, so the engine never waits for it; the
//! appends are memory writes into the mapping. Because the engine is
//! deterministic, replaying the input journal through a fresh engine
//! regenerates the output journal byte for byte.
//!
//! It is a sink, not a gate: an output-journal I/O error never stops the
//! engine or the other sinks. The publisher stops writing it for good and
//! reports the error in [`Health::output_journal_failed`] /
//! [`Health::output_journal_error`]; [`Metrics::output_journaled_sequence`]
//! stops moving. A restart regenerates the missing events (below).
//!
//! # Start-up and shutdown
//!
//! [`Pipeline::start`] opens the journal (recovery), restores the engine
//! from the newest usable snapshot (see [Snapshots](#snapshots)), replays
//! the journaled commands after it without publishing — all of them when
//! there is no snapshot — and starts the stages continuing the sequence.
//! During the replay the regenerated events are reconciled with the output
//! journal ([`StartupReport::output`]), starting at the first event after
//! the snapshot: events it already holds are compared byte for byte and
//! not appended again; events it lacks (it lags after a crash, or its
//! directory was deleted) are appended, so it is complete before the first
//! new command. If it holds an event that differs, or more events than the
//! replay produces, it does not belong to this input journal: it is left
//! untouched, not written in this run, and the problem is reported in
//! [`OutputJournalReport::error`] and [`Health::output_journal_error`]; the
//! engine starts regardless.
//!
//! [`Pipeline::shutdown`] refuses new commands, stops the timer, and waits
//! until every [`CommandSender`] is dropped; the `disruptor` then lets each
//! stage finish everything published, the journal is synced and closed, a
//! snapshot is written ([`PipelineConfig::snapshot_on_shutdown`]) and the
//! engine is handed back. [`Pipeline::shutdown_within`] waits at most a
//! grace period for the senders; then it publishes a stop marker into the
//! input ring (a [`Slot`] whose `enqueued_ns` is [`STOP_MARKER_NS`]): the
//! journaler ends its batch and closes the journal there, the engine
//! applies everything before it and hands the engine back, and a sender
//! still alive gets [`SubmitError::Closed`] (also for a slot that raced in
//! after the marker, which no stage touches).
//!
//! # Idle work of the journal writers
//!
//! The journaler's wait strategy runs idle work before it waits (on the
//! journaler thread, which owns the input journal), and so does the
//! publisher's for the output journal: under
//! `FsyncEveryMillis(n)` it syncs the last batch once `n` ms have passed
//! ([`Journal::sync_if_due`]), so a command followed by silence still
//! becomes durable within about `n` ms plus one idle poll; and, with
//! [`JournalPretouch::Idle`] (the default), it keeps
//! [`JOURNALER_PREPARE_LEAD`] bytes of the active segment prepared
//! ([`Journal::prepare_ahead`], [`JOURNALER_PREPARE_STEP`] per poll), so
//! appends after a quiet spell take no page faults.
//!
//! With [`JournalPretouch::Thread`] each journal owns one more thread,
//! `ringex-pretouch` (unpinned, asleep unless its writer has moved a
//! chunk): it keeps the pages ahead of the writer mapped in and the next
//! segment ready, so appends under saturation take no page fault either.
//! It is started by [`Journal::open`] and joined when the journal is
//! closed; its failures show in [`Health::pretouch_error`] and stop
//! nothing.
//!
//! # Snapshots
//!
//! A snapshot at sequence `S` is the engine state after command `S`
//! ([`Engine::write_snapshot`]) plus the number of events emitted up to
//! then, the last command timestamp and the state digest, in a
//! `ringex_journal::SnapshotStore` file (atomic write, CRC, retention) in
//! [`PipelineConfig::snapshot_path`]; the payload layout is in the
//! `snapshots` module source and `docs/journal-format.md`.
//!
//! - **Written** at clean shutdown (default on), and optionally every
//!   [`PipelineConfig::snapshot_every`] commands by the engine thread at
//!   the end of a batch (it stalls the engine while it writes; default
//!   off). A write failure is reported in [`Health::snapshot_error`] and
//!   stops nothing. [`PipelineConfig::snapshot_retention`] snapshots are
//!   kept; journal segments are never removed by the pipeline.
//! - **Chosen** at start-up newest first: one is used when its file and
//!   payload validate, it is neither ahead of the input journal nor
//!   separated from it by trimmed history, the output journal holds the
//!   events before it, and the restored engine has the recorded digest.
//!   Each one passed over is listed with its reason in
//!   [`StartupReport::skipped_snapshots`]. With none usable, the whole
//!   journal is replayed — which needs it to start at sequence 1: a
//!   trimmed journal without a usable snapshot is refused with an error
//!   naming every snapshot's defect.
//! - **Reported**: [`StartupReport::snapshot`] names the snapshot used and
//!   [`StartupReport::replayed`] the commands replayed after it.

mod config;
mod fused;
mod metrics;
mod output;
mod sender;
mod sink;
mod snapshots;
mod stages;
mod timer;

pub(crate) use config::StageBell;
pub use config::{
    Backoff, JournalPretouch, PipelineConfig, StageConfig, StageGate, StageThreads, StageWait,
    WaitKind,
};
pub use metrics::{Metrics, MetricsSnapshot};
pub use output::{OutputJournalReport, JOURNAL_KIND_EVENT};
pub use sender::{
    monotonic_ns, wall_clock_ns, CommandSender, OutSlot, Slot, SubmitError, PREWAKE_AFTER_IDLE,
    STOP_MARKER_NS,
};
pub use sink::{OverflowPolicy, SinkHandle, SinkStats, SinkWakeup};
pub use snapshots::{
    restore_snapshot_for, SnapshotSkipped, SnapshotStart, SnapshotUsed,
    PIPELINE_SNAPSHOT_META_SIZE, PIPELINE_SNAPSHOT_VERSION,
};
pub use stages::{JOURNALER_PREPARE_LEAD, JOURNALER_PREPARE_STEP, JOURNAL_KIND_COMMAND};

use crate::records::{Command, COMMAND_SIZE};
use crate::Engine;
use crossbeam_channel::{Receiver, Sender};
use disruptor::ProcessorSettings;
use fused::FusedStage;
use output::Reconciler;
use ringex_journal::fs::{FileSystem, StdFs};
use ringex_journal::{Journal, RecoveryReport, SnapshotStore};
use sink::SinkEntry;
use snapshots::{JournalView, SnapshotMeta};
use stages::{
    EngineCore, EngineFinal, EngineStage, IdleWorkWait, JournalerSetup, JournalerStage,
    PeriodicSnapshots, PublisherStage,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use timer::Timer;

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// A configuration value is unusable.
    #[error("invalid pipeline configuration: {0}")]
    InvalidConfig(String),
    /// The journal could not be opened or read.
    #[error("journal: {0}")]
    Journal(#[from] ringex_journal::Error),
    /// The engine configuration is invalid.
    #[error("engine: {0}")]
    Engine(#[from] crate::Error),
    /// Starting a thread failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A journaled record is not a command this engine can replay.
    #[error("replay of the journal failed at sequence {sequence}: {problem}")]
    Replay {
        /// The record's sequence number.
        sequence: u64,
        /// What was wrong.
        problem: String,
    },
}

/// State shared by the stages, the senders and the [`Pipeline`].
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) metrics: Arc<Metrics>,
    /// Set by [`Pipeline::shutdown`]: senders refuse new commands.
    pub(crate) closed: AtomicBool,
    /// Set by the journaler on an I/O failure.
    pub(crate) journal_failed: AtomicBool,
    /// Set by the engine stage when it stopped at an unjournaled command.
    pub(crate) engine_halted: AtomicBool,
    pub(crate) journal_error: Mutex<Option<String>>,
    /// Set when the output journal is disabled or failed.
    pub(crate) output_journal_failed: AtomicBool,
    pub(crate) output_journal_error: Mutex<Option<String>>,
    /// The first failure to write a snapshot (snapshots never stop the engine).
    pub(crate) snapshot_error: Mutex<Option<String>>,
    /// The input journal's pretoucher thread's first failure (it stops
    /// nothing).
    pub(crate) pretouch_error: Mutex<Option<String>>,
    /// Live [`CommandSender`]s, the pipeline's own included (clone and drop
    /// count; [`Pipeline::shutdown_within`] reads it).
    pub(crate) live_senders: AtomicUsize,
    /// Ring position of the stop marker of a forced shutdown:
    /// [`NO_FORCED_STOP`] until one starts, [`FORCED_STOP_PENDING`] while
    /// its marker is being published. A sender whose slot lands after the
    /// marker answers `Closed` (see [`CommandSender::try_submit`]).
    pub(crate) forced_stop_at: AtomicI64,
    /// The stages' doorbells ([`StageBell`]): rung by whoever publishes
    /// work for a stage that waits with [`WaitKind::Backoff`].
    pub(crate) bells: StageBells,
}

/// One [`StageBell`] per stage thread.
#[derive(Debug, Default)]
pub(crate) struct StageBells {
    pub(crate) journaler: Arc<StageBell>,
    pub(crate) engine: Arc<StageBell>,
    pub(crate) publisher: Arc<StageBell>,
}

/// [`Shared::forced_stop_at`]: no forced stop.
pub(crate) const NO_FORCED_STOP: i64 = i64::MAX;
/// [`Shared::forced_stop_at`]: the marker's position is not known yet.
pub(crate) const FORCED_STOP_PENDING: i64 = i64::MAX - 1;

impl Shared {
    #[cold]
    pub(crate) fn record_snapshot_failure(&self, error: String) {
        let mut slot = self
            .snapshot_error
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(error);
    }

    #[cold]
    pub(crate) fn record_pretouch_failure(&self, error: String) {
        let mut slot = self
            .pretouch_error
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(error);
    }

    #[cold]
    pub(crate) fn record_journal_failure(&self, error: String) {
        let mut slot = self.journal_error.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(error);
        drop(slot);
        self.journal_failed.store(true, Ordering::Release);
    }

    #[cold]
    pub(crate) fn record_output_journal_failure(&self, error: String) {
        let mut slot = self
            .output_journal_error
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert(error);
        drop(slot);
        self.output_journal_failed.store(true, Ordering::Release);
    }
}

/// How the pipeline is doing ([`Pipeline::health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The journal failed: nothing after [`Metrics::journaled_sequence`] was
    /// journaled or applied, and new commands are refused.
    pub journal_failed: bool,
    /// The first journal error, if any.
    pub journal_error: Option<String>,
    /// The engine stopped at a command beyond the journaled position.
    pub engine_halted: bool,
    /// Shutdown has started.
    pub closed: bool,
    /// The output journal is not being written: it could not be opened,
    /// did not match the input journal at start-up, or failed later. The
    /// engine and the sinks are unaffected.
    pub output_journal_failed: bool,
    /// Why, if so.
    pub output_journal_error: Option<String>,
    /// The first failure to write a snapshot, if any (the engine and the
    /// journals are unaffected; the next start-up replays more).
    pub snapshot_error: Option<String>,
    /// The first failure of the input journal's pretoucher thread to
    /// prepare a segment ([`JournalPretouch::Thread`]), if any. The journal
    /// is unaffected: the journaler created that segment itself.
    pub pretouch_error: Option<String>,
}

impl Health {
    /// No failure (of the input journal, the engine or the output journal).
    pub fn is_ok(&self) -> bool {
        !self.journal_failed && !self.engine_halted && !self.output_journal_failed
    }
}

/// What start-up found.
#[derive(Debug, Clone)]
pub struct StartupReport {
    /// The journal's recovery report.
    pub recovery: RecoveryReport,
    /// The snapshot the engine was restored from (`None`: replayed from
    /// sequence 1, or a new journal).
    pub snapshot: Option<SnapshotUsed>,
    /// Snapshots passed over (newer than the one used, or all of them), and why.
    pub skipped_snapshots: Vec<SnapshotSkipped>,
    /// Commands replayed through the engine (not published): the journal
    /// after the snapshot, or all of it.
    pub replayed: u64,
    /// The sequence number the first new command gets.
    pub next_sequence: u64,
    /// The engine's state digest after the replay.
    pub digest_after_replay: u64,
    /// What start-up did with the output journal.
    pub output: OutputJournalReport,
}

/// What [`Pipeline::shutdown`] hands back.
pub struct ShutdownReport {
    /// The engine, with every applied command's effect (`None` only if the
    /// engine thread panicked).
    pub engine: Option<Engine>,
    /// Health at the end (a journal error on close shows here).
    pub health: Health,
    /// Final counters.
    pub metrics: MetricsSnapshot,
    /// The snapshot written at shutdown, if any (see
    /// [`PipelineConfig::snapshot_on_shutdown`]); a failure shows in
    /// [`Health::snapshot_error`].
    pub snapshot: Option<PathBuf>,
    /// [`Pipeline::shutdown_within`] had to stop the stages while some
    /// [`CommandSender`] was still alive.
    pub forced: bool,
}

impl std::fmt::Debug for ShutdownReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownReport")
            .field("engine", &self.engine.as_ref().map(|e| e.state_digest()))
            .field("health", &self.health)
            .field("metrics", &self.metrics)
            .field("snapshot", &self.snapshot)
            .finish()
    }
}

/// A running pipeline. See the module docs.
#[derive(Debug)]
pub struct Pipeline {
    sender: Option<CommandSender>,
    shared: Arc<Shared>,
    registrations: Sender<SinkEntry>,
    engine_done: Receiver<EngineFinal>,
    journal_done: Receiver<()>,
    timer: Option<Timer>,
    startup: StartupReport,
    /// For the shutdown snapshot (`None` when it is off).
    shutdown_snapshot: Option<(SnapshotStore, ringex_journal::RetentionPolicy)>,
}

impl Pipeline {
    /// Opens the journal (running recovery), replays it through a fresh
    /// engine without publishing (reconciling the output journal), and
    /// starts the stages.
    pub fn start(config: PipelineConfig) -> Result<Pipeline, PipelineError> {
        Pipeline::start_with(StdFs, config)
    }

    /// [`Pipeline::start`] with the input journal on the file system `fs`
    /// (tests inject I/O failures with `ringex_journal::fault::FaultyFs`);
    /// the output journal is on the real file system.
    pub fn start_with<F: FileSystem>(
        fs: F,
        config: PipelineConfig,
    ) -> Result<Pipeline, PipelineError> {
        Pipeline::start_with_output_fs(fs, StdFs, config)
    }

    /// [`Pipeline::start_with`] with the output journal on the file system
    /// `output_fs`.
    pub fn start_with_output_fs<F: FileSystem, G: FileSystem>(
        fs: F,
        output_fs: G,
        config: PipelineConfig,
    ) -> Result<Pipeline, PipelineError> {
        config.validate()?;
        let (journal, recovery) =
            Journal::open_with(fs, &config.journal_dir, config.journal_config())?;
        let mut reconciler = Reconciler::open(
            output_fs,
            &config.output_journal_path(),
            config.journal_config(),
        );
        let mut skipped_snapshots = Vec::new();
        let command_crc_at = |sequence: u64| -> Result<u32, String> {
            let problem = |e: String| format!("read command {sequence} of the input journal: {e}");
            let mut reader = journal
                .reader(sequence)
                .map_err(|e| problem(e.to_string()))?;
            match reader.next_record() {
                Ok(Some(r)) if r.sequence == sequence && r.payload.len() == COMMAND_SIZE => {
                    Ok(crc32c::crc32c(r.payload))
                }
                Ok(_) => Err(problem("not a command record".into())),
                Err(e) => Err(problem(e.to_string())),
            }
        };
        let restored = snapshots::choose(
            &config.snapshot_path(),
            config.engine_config,
            JournalView {
                first: journal.first_sequence(),
                last: journal.last_sequence(),
                command_crc_at: &command_crc_at,
            },
            reconciler.held(),
            &mut skipped_snapshots,
        )?;
        let (mut engine, snapshot, after) = match restored {
            Some(r) => {
                if let Some(problem) = r.output_problem {
                    reconciler.disable(problem);
                }
                (r.engine, Some(r.used), r.meta)
            }
            None => (
                Engine::try_new(config.engine_config)?,
                None,
                SnapshotMeta {
                    sequence: 0,
                    output_events: 0,
                    last_timestamp: 0,
                    state_digest: 0,
                    command_crc: 0,
                },
            ),
        };
        reconciler.start_at(after.output_events + 1);
        let (replayed, last_ts, last_replayed) = replay(
            &journal,
            after.sequence + 1,
            after.last_timestamp,
            &mut engine,
            &mut reconciler,
        )?;
        let (output_journal, output_report, events_emitted) = reconciler.finish();
        let base = journal.next_sequence().unwrap_or(after.sequence + 1);
        let digest_after_replay = engine.state_digest();
        let snapshot_store = if config.snapshot_on_shutdown || config.snapshot_every.is_some() {
            Some(SnapshotStore::open(config.snapshot_path())?)
        } else {
            None
        };

        let metrics = Arc::new(Metrics::new());
        metrics.journaled.store(base - 1, Ordering::Release);
        metrics
            .output_journaled
            .store(output_report.next_sequence - 1, Ordering::Release);
        metrics
            .durable
            .store(journal.durable_sequence().unwrap_or(0), Ordering::Release);
        let shared = Arc::new(Shared {
            metrics,
            closed: AtomicBool::new(false),
            journal_failed: AtomicBool::new(false),
            engine_halted: AtomicBool::new(false),
            journal_error: Mutex::new(None),
            output_journal_failed: AtomicBool::new(false),
            output_journal_error: Mutex::new(None),
            snapshot_error: Mutex::new(None),
            pretouch_error: Mutex::new(None),
            live_senders: AtomicUsize::new(1),
            forced_stop_at: AtomicI64::new(NO_FORCED_STOP),
            bells: StageBells::default(),
        });
        if let Some(problem) = &output_report.error {
            shared.record_output_journal_failure(problem.clone());
        }
        let output_next = output_report.next_sequence;

        let (registrations, registered) = crossbeam_channel::unbounded();
        let prepare_when_idle = config.journal_pretouch == JournalPretouch::Idle;
        let (journal_done_tx, journal_done) = crossbeam_channel::bounded(1);
        let (engine_done_tx, engine_done) = crossbeam_channel::bounded(1);
        let journaler = JournalerSetup {
            journal,
            base,
            last_ts,
            shared: Arc::clone(&shared),
            gate: config.journaler_gate.clone(),
            done: journal_done_tx,
            prepare_when_idle,
        };
        let engine_core = EngineCore {
            engine: Some(engine),
            base,
            last_ts,
            halted: false,
            shared: Arc::clone(&shared),
            done: Some(engine_done_tx),
            events_emitted,
            last_applied: base - 1,
            last_command: last_replayed.unwrap_or_else(bytemuck::Zeroable::zeroed),
            periodic: match (config.snapshot_every, &snapshot_store) {
                (Some(every), Some(store)) => Some(PeriodicSnapshots {
                    store: store.clone(),
                    retention: config.snapshot_retention,
                    every,
                    since_last: 0,
                    buf: Vec::new(),
                }),
                _ => None,
            },
        };
        let publisher_shared = Arc::clone(&shared);
        let new_publisher = move || {
            PublisherStage::new(
                registered,
                publisher_shared,
                output_journal,
                output_next,
                prepare_when_idle,
            )
        };
        let mut in_builder = disruptor::build_multi_producer(
            config.input_ring_size,
            Slot::default,
            IdleWorkWait(config.journaler.wait),
        );
        if let Some(core) = config.journaler.core {
            in_builder = in_builder.pin_at_core(core);
        }
        let producer = match config.stage_threads {
            StageThreads::Fused => {
                let batch_capacity = config.input_ring_size;
                in_builder
                    .thread_name("ringex-core")
                    .handle_events_and_state_with(
                        |stage: &mut FusedStage<F, G>, slot: &Slot, seq, eob| {
                            stage.handle(slot, seq, eob)
                        },
                        // On the stage thread: both journals' idle work is
                        // installed there.
                        move || FusedStage {
                            journaler: journaler.start(),
                            engine: engine_core,
                            publisher: Some(new_publisher()),
                            batch: Vec::with_capacity(batch_capacity),
                        },
                    )
                    .build()
            }
            StageThreads::Separate => {
                // Output ring and publisher.
                let mut out_builder = disruptor::build_single_producer(
                    config.output_ring_size,
                    OutSlot::default,
                    IdleWorkWait(config.publisher.wait),
                );
                if let Some(core) = config.publisher.core {
                    out_builder = out_builder.pin_at_core(core);
                }
                let output = out_builder
                    .thread_name("ringex-publisher")
                    .handle_events_and_state_with(
                        |stage: &mut PublisherStage<G>, slot: &OutSlot, seq, eob| {
                            stage.handle(slot, seq, eob)
                        },
                        new_publisher,
                    )
                    .build();
                let engine_stage = EngineStage {
                    core: engine_core,
                    out: Some(output),
                    wait: config.engine.wait,
                };
                // Input ring: journaler, then engine.
                let in_builder = in_builder
                    .thread_name("ringex-journaler")
                    .handle_events_and_state_with(
                        |stage: &mut JournalerStage<F>, slot: &Slot, seq, eob| {
                            stage.handle(slot, seq, eob)
                        },
                        move || journaler.start(),
                    )
                    .and_then();
                let mut in_builder = in_builder.thread_name("ringex-engine");
                if let Some(core) = config.engine.core {
                    in_builder = in_builder.pin_at_core(core);
                }
                in_builder
                    .handle_events_and_state_with_wait_strategy(
                        |stage: &mut EngineStage, slot: &Slot, seq, eob| {
                            stage.handle(slot, seq, eob)
                        },
                        move || engine_stage,
                        StageWait(config.engine.wait),
                    )
                    .build()
            }
        };

        let sender = CommandSender {
            producer,
            shared: Arc::clone(&shared),
            base,
        };
        let mut pipeline = Pipeline {
            sender: Some(sender),
            shared,
            registrations,
            engine_done,
            journal_done,
            timer: None,
            shutdown_snapshot: snapshot_store
                .filter(|_| config.snapshot_on_shutdown)
                .map(|store| (store, config.snapshot_retention)),
            startup: StartupReport {
                recovery,
                snapshot,
                skipped_snapshots,
                replayed,
                next_sequence: base,
                digest_after_replay,
                output: output_report,
            },
        };
        if let Some(interval) = config.timer_interval {
            pipeline.timer = Some(Timer::start(pipeline.sender(), interval)?);
        }
        Ok(pipeline)
    }

    /// A new producer handle for a gateway thread.
    pub fn sender(&self) -> CommandSender {
        self.sender
            .as_ref()
            .expect("the sender lives until shutdown")
            .clone()
    }

    /// Registers a sink with a bounded queue of `capacity` events. It gets
    /// every event of every command submitted after this call returns.
    pub fn register_sink(
        &self,
        name: impl Into<String>,
        capacity: usize,
        policy: OverflowPolicy,
    ) -> SinkHandle {
        let (entry, handle) = SinkEntry::new(name.into(), capacity, policy);
        // The publisher holds the receiver until it stops; after that the
        // entry is dropped with the message and the sink sees a closed channel.
        let _ = self.registrations.send(entry);
        handle
    }

    /// Live counters.
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.shared.metrics)
    }

    /// What start-up found.
    pub fn startup(&self) -> &StartupReport {
        &self.startup
    }

    /// Failures so far.
    pub fn health(&self) -> Health {
        health_of(&self.shared)
    }

    /// Stops taking commands, stops the timer, waits until every
    /// [`CommandSender`] has been dropped and every stage has processed all
    /// that was published, closes the journal and returns the engine.
    pub fn shutdown(mut self) -> ShutdownReport {
        self.close();
        self.finish(false)
    }

    /// [`Pipeline::shutdown`] that waits at most `grace` for the other
    /// [`CommandSender`]s to be dropped, then stops anyway: it publishes a
    /// stop marker into the input ring, and the stages journal, apply and
    /// publish everything published before the marker, close the journal
    /// and hand back the engine (the shutdown snapshot is written as
    /// usual). A sender still alive gets [`SubmitError::Closed`] from then
    /// on, including one that raced the marker into the ring (its slot is
    /// skipped, never journaled). The stage threads themselves exit when
    /// the last sender is dropped (the `disruptor` crate joins them then);
    /// until then they only skip slots.
    pub fn shutdown_within(mut self, grace: Duration) -> ShutdownReport {
        self.shared.closed.store(true, Ordering::SeqCst);
        if let Some(timer) = self.timer.take() {
            timer.stop();
        }
        let deadline = Instant::now() + grace;
        // Only the pipeline's own sender left: nobody can clone a new one.
        while self.shared.live_senders.load(Ordering::Acquire) > 1 {
            if Instant::now() >= deadline {
                self.publish_stop_marker();
                return self.finish(true);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.close();
        self.finish(false)
    }

    /// The forced stop: announces it, publishes the marker with the
    /// pipeline's own sender, records the marker's position, drops the
    /// sender.
    fn publish_stop_marker(&mut self) {
        let Some(mut sender) = self.sender.take() else {
            return;
        };
        self.shared
            .forced_stop_at
            .store(FORCED_STOP_PENDING, Ordering::SeqCst);
        // The stages drain the ring (a failed journaler skips slots), so a
        // full ring frees up.
        let at = loop {
            match sender.publish_stop_marker() {
                Some(at) => break at,
                None => std::thread::yield_now(),
            }
        };
        self.shared.forced_stop_at.store(at, Ordering::SeqCst);
        drop(sender);
    }

    fn finish(&mut self, forced: bool) -> ShutdownReport {
        let last = self.engine_done.recv().ok();
        let _ = self.journal_done.recv();
        let mut snapshot = None;
        if let (Some(last), Some((store, retention))) = (&last, &self.shutdown_snapshot) {
            snapshot = self.write_shutdown_snapshot(last, store, *retention);
        }
        ShutdownReport {
            engine: last.map(|l| l.engine),
            health: health_of(&self.shared),
            metrics: self.shared.metrics.snapshot(),
            snapshot,
            forced,
        }
    }

    /// The shutdown snapshot: at the last applied command, once the journal
    /// is closed (synced), unless the journal failed (then its durable
    /// position is uncertain and the next start-up replays instead) or
    /// nothing changed since the snapshot start-up restored.
    fn write_shutdown_snapshot(
        &self,
        last: &EngineFinal,
        store: &SnapshotStore,
        retention: ringex_journal::RetentionPolicy,
    ) -> Option<PathBuf> {
        if self.shared.journal_failed.load(Ordering::Acquire) || last.last_applied == 0 {
            return None;
        }
        let unchanged = self
            .startup
            .snapshot
            .as_ref()
            .is_some_and(|s| s.sequence == last.last_applied);
        // Without a command of this run or the replay, there is nothing
        // to tie the snapshot to (and nothing new to save).
        if unchanged || last.last_command.sequence != last.last_applied {
            return None;
        }
        let meta = SnapshotMeta {
            sequence: last.last_applied,
            output_events: last.events_emitted,
            last_timestamp: last.last_ts,
            command_crc: snapshots::command_crc(&last.last_command),
            state_digest: last.engine.state_digest(),
        };
        match snapshots::write(store, retention, &last.engine, meta, &mut Vec::new()) {
            Ok(path) => Some(path),
            Err(problem) => {
                self.shared.record_snapshot_failure(problem);
                None
            }
        }
    }

    fn close(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if let Some(timer) = self.timer.take() {
            timer.stop();
        }
        drop(self.sender.take());
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.close();
    }
}

fn health_of(shared: &Shared) -> Health {
    Health {
        journal_failed: shared.journal_failed.load(Ordering::Acquire),
        journal_error: shared
            .journal_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        engine_halted: shared.engine_halted.load(Ordering::Acquire),
        closed: shared.closed.load(Ordering::Acquire),
        output_journal_failed: shared.output_journal_failed.load(Ordering::Acquire),
        output_journal_error: shared
            .output_journal_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        snapshot_error: shared
            .snapshot_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        pretouch_error: shared
            .pretouch_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
    }
}

/// Applies the journaled commands from sequence `from` on to `engine`,
/// publishing nothing; the regenerated events go to the output journal's
/// [`Reconciler`]. Returns the number replayed and the last timestamp
/// (`last_ts` if none) and the last command replayed.
fn replay<F: FileSystem, G: FileSystem>(
    journal: &Journal<F>,
    from: u64,
    last_ts: u64,
    engine: &mut Engine,
    sink: &mut Reconciler<G>,
) -> Result<(u64, u64, Option<Command>), PipelineError> {
    let Some(last) = journal.last_sequence().filter(|&last| last >= from) else {
        return Ok((0, last_ts, None));
    };
    let first = journal.first_sequence().unwrap_or(1);
    if first > from {
        // Snapshot selection rules this out; kept as a guard.
        return Err(PipelineError::Replay {
            sequence: first,
            problem: format!("the journal starts at {first}, after {from} where replay must begin"),
        });
    }
    let mut reader = journal.reader(from)?;
    let (mut count, mut last_ts, mut expected) = (0u64, last_ts, from);
    let mut last_cmd = None;
    while let Some(record) = reader.next_record()? {
        let bad = |problem: String| PipelineError::Replay {
            sequence: record.sequence,
            problem,
        };
        if record.sequence != expected {
            return Err(bad(format!("expected sequence {expected}")));
        }
        if record.kind != JOURNAL_KIND_COMMAND || record.payload.len() != COMMAND_SIZE {
            return Err(bad(format!(
                "kind {} with {} payload bytes is not a command record",
                record.kind,
                record.payload.len()
            )));
        }
        let cmd: Command = bytemuck::pod_read_unaligned(record.payload);
        if cmd.sequence != record.sequence || cmd.timestamp != record.timestamp {
            return Err(bad("the command's stamp differs from its record's".into()));
        }
        sink.timestamp = cmd.timestamp;
        engine.apply(&cmd, sink);
        last_cmd = Some(cmd);
        count += 1;
        last_ts = record.timestamp;
        expected += 1;
        if record.sequence == last {
            break;
        }
    }
    if expected != last + 1 {
        return Err(PipelineError::Replay {
            sequence: expected,
            problem: format!("the journal ends at {last} but reading stopped before"),
        });
    }
    Ok((count, last_ts, last_cmd))
}
