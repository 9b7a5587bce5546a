//! Pipeline configuration: ring sizes, per-stage cores and wait strategies,
//! the journal, the engine, the timer; two documented presets.

use crate::EngineConfig;
use ringex_journal::{DurabilityPolicy, JournalConfig, PretouchConfig, RetentionPolicy};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use super::PipelineError;

/// How a stage waits when it has nothing to do.
///
/// | Strategy | Idle CPU | Wake-up latency | Use |
/// |----------|----------|-----------------|-----|
/// | `BusySpin` | 100% of a core | lowest | a dedicated, pinned core per stage |
/// | `SpinLoopHint` | 100% of a core (kinder to a hyper-thread sibling) | ~lowest | as above, with SMT |
/// | `Backoff` | near zero once idle | spins, then yields, then parks 20–500 µs; rung awake by the stage that gives it work | shared cores (the 2-core default) |
/// | `Sleep(µs)` | near zero | the sleep plus timer slack | background / tests |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitKind {
    /// Re-check immediately (the crate's `BusySpin`).
    BusySpin,
    /// Re-check after `std::hint::spin_loop` (the crate's `BusySpinWithSpinLoopHint`).
    SpinLoopHint,
    /// Spin, then `yield_now`, then park with a growing timeout ([`Backoff`]);
    /// the stage that publishes work for it unparks it.
    Backoff,
    /// Sleep this many microseconds between checks.
    Sleep(u64),
}

impl WaitKind {
    /// Whether this strategy keeps a core busy while idle.
    pub fn spins(self) -> bool {
        matches!(self, WaitKind::BusySpin | WaitKind::SpinLoopHint)
    }
}

/// Spin-then-yield-then-sleep backoff. Each call to [`Backoff::snooze`]
/// waits a little longer: [`Backoff::SPINS`] spin-loop hints, then
/// [`Backoff::YIELDS`] `yield_now`s, then sleeps that double from
/// [`Backoff::MIN_SLEEP`] up to [`Backoff::MAX_SLEEP`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backoff {
    step: u32,
}

impl Backoff {
    /// Spin-loop hints before yielding.
    pub const SPINS: u32 = 64;
    /// Yields before sleeping.
    pub const YIELDS: u32 = 16;
    /// First sleep.
    pub const MIN_SLEEP: Duration = Duration::from_micros(20);
    /// Longest sleep.
    pub const MAX_SLEEP: Duration = Duration::from_micros(500);

    /// A fresh backoff (starts by spinning).
    pub const fn new() -> Backoff {
        Backoff { step: 0 }
    }

    /// Waits once, longer than the previous call.
    #[inline]
    pub fn snooze(&mut self) {
        match self.next_sleep() {
            Some(sleep) => std::thread::sleep(sleep),
            None if self.step < Self::SPINS => std::hint::spin_loop(),
            None => std::thread::yield_now(),
        }
        self.step = self.step.saturating_add(1);
    }

    /// Starts over (after the awaited thing arrived).
    #[inline]
    pub fn reset(&mut self) {
        self.step = 0;
    }

    /// The sleep the next [`Backoff::snooze`] would take, or `None` while
    /// it would still spin or yield.
    #[inline]
    fn next_sleep(&self) -> Option<Duration> {
        let past = self.step.checked_sub(Self::SPINS + Self::YIELDS)?;
        let doublings = past.min(5);
        Some((Self::MIN_SLEEP * (1 << doublings)).min(Self::MAX_SLEEP))
    }

    /// Counts a sleep taken elsewhere (a park) as if `snooze` had slept.
    #[inline]
    fn slept(&mut self) {
        self.step = self.step.saturating_add(1);
    }
}

/// The doorbell of a pipeline stage that waits with [`WaitKind::Backoff`].
///
/// Instead of sleeping blind for 20–500 µs, a stage thread in the sleep
/// phase of its backoff parks, and whoever gives it work rings the bell
/// after publishing: the `CommandSender`s for the journaler, the journaler
/// at the end of a batch for the engine, the engine at the end of a batch
/// for the publisher. The stage then starts its backoff over (spinning),
/// so it sees the work as soon as the ring shows it.
///
/// A stage asks to be woken in two steps: it raises `asleep` and lets the
/// ring be checked once more, and only on the next wait parks. A producer
/// publishes, then (after a `SeqCst` fence) reads `asleep`. So either the
/// stage's last check sees the work, or the producer sees the flag and
/// unparks it. The park keeps the backoff's timeout, so a stage whose
/// producer does not ring (or one not yet registered) waits no longer
/// than before. Producers pay one fence and one load per publish or batch;
/// they make a system call only for a stage that is really asleep.
#[derive(Debug, Default)]
pub(crate) struct StageBell {
    asleep: AtomicBool,
    /// When the stage last asked to be woken ([`super::monotonic_ns`]).
    armed_at_ns: AtomicU64,
    thread: OnceLock<std::thread::Thread>,
}

/// What a stage's wait did with its bell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BellWait {
    /// Asked to be woken; the ring is checked once more before parking.
    Armed,
    /// Parked and rung: work was published.
    Woken,
    /// Parked until the backoff's timeout.
    TimedOut,
}

impl StageBell {
    /// Makes the calling thread the stage this bell wakes. The stage calls
    /// it for every event it handles; only the first call does anything.
    #[inline]
    pub(crate) fn register_current(self: &Arc<Self>) {
        if self.thread.get().is_none() {
            self.register_slow();
        }
    }

    #[cold]
    fn register_slow(self: &Arc<Self>) {
        let _ = self.thread.set(std::thread::current());
        let bell = Arc::clone(self);
        STAGE_BELL.with(|slot| *slot.borrow_mut() = Some(bell));
    }

    /// Wakes the stage if it asked to be woken; called after publishing
    /// work for it. If it had asked (and was woken): how long ago it asked.
    #[inline]
    pub(crate) fn ring(&self) -> Option<Duration> {
        fence(Ordering::SeqCst);
        if self.asleep.load(Ordering::Relaxed) && self.asleep.swap(false, Ordering::AcqRel) {
            if let Some(thread) = self.thread.get() {
                thread.unpark();
            }
            let armed_at = self.armed_at_ns.load(Ordering::Relaxed);
            return Some(Duration::from_nanos(
                super::monotonic_ns().saturating_sub(armed_at),
            ));
        }
        None
    }

    /// One wait of the stage thread in its backoff's sleep phase.
    fn wait(&self, timeout: Duration) -> BellWait {
        if !self.asleep.load(Ordering::Relaxed) {
            self.armed_at_ns
                .store(super::monotonic_ns(), Ordering::Relaxed);
            self.asleep.store(true, Ordering::Relaxed);
            fence(Ordering::SeqCst);
            return BellWait::Armed;
        }
        std::thread::park_timeout(timeout);
        if self.asleep.swap(false, Ordering::AcqRel) {
            BellWait::TimedOut
        } else {
            BellWait::Woken
        }
    }
}

thread_local! {
    /// The sequence a consumer thread is waiting for, and its backoff.
    static CONSUMER_BACKOFF: Cell<(i64, Backoff)> = const { Cell::new((i64::MIN, Backoff::new())) };
    /// The bell of the stage running on this thread, once it registered.
    static STAGE_BELL: RefCell<Option<Arc<StageBell>>> = const { RefCell::new(None) };
}

/// A stage's wait strategy as the `disruptor` crate sees it: implements its
/// [`disruptor::wait_strategies::WaitStrategy`] trait for every [`WaitKind`].
///
/// The trait is stateless (`wait_for(&self, sequence)`, `Copy`), so the
/// [`WaitKind::Backoff`] state lives in a thread-local keyed by the awaited
/// sequence: a wait for a new sequence starts over with spinning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageWait(pub WaitKind);

impl disruptor::wait_strategies::WaitStrategy for StageWait {
    #[inline]
    fn wait_for(&self, sequence: disruptor::Sequence) {
        match self.0 {
            WaitKind::BusySpin => {}
            WaitKind::SpinLoopHint => std::hint::spin_loop(),
            WaitKind::Sleep(us) => std::thread::sleep(Duration::from_micros(us)),
            WaitKind::Backoff => CONSUMER_BACKOFF.with(|cell| {
                let (awaited, mut backoff) = cell.get();
                if awaited != sequence {
                    backoff.reset();
                }
                let parked = backoff.next_sleep().and_then(|timeout| {
                    STAGE_BELL.with(|bell| bell.borrow().as_ref().map(|b| b.wait(timeout)))
                });
                match parked {
                    None => backoff.snooze(),
                    Some(BellWait::Armed) => {}
                    Some(BellWait::Woken) => backoff.reset(),
                    Some(BellWait::TimedOut) => backoff.slept(),
                }
                cell.set((sequence, backoff));
            }),
        }
    }
}

/// Where one stage's thread runs and how it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageConfig {
    /// Core to pin the stage's thread to (`core_affinity` id), or `None` to
    /// let the OS schedule it. Checked against the machine's cores at start.
    pub core: Option<usize>,
    /// How the stage waits for work.
    pub wait: WaitKind,
}

impl StageConfig {
    /// Unpinned, backing off when idle.
    pub const fn backoff() -> StageConfig {
        StageConfig {
            core: None,
            wait: WaitKind::Backoff,
        }
    }

    /// Pinned to `core`, busy-spinning.
    pub const fn pinned_spin(core: usize) -> StageConfig {
        StageConfig {
            core: Some(core),
            wait: WaitKind::BusySpin,
        }
    }
}

/// How each journal's pages ahead of its writer are made ready
/// (`[journal] pretouch`): the input journal's ahead of the journaler, the
/// output journal's ahead of the publisher. The first store into a fresh page of the
/// journal's shared mapping faults (allocating and zeroing a page-cache
/// page, 1–4 µs per 4 KiB on the development VMs); this decides who
/// pays that, and when. See `docs/tuning.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JournalPretouch {
    /// Nobody in advance: the writer maps pages in as its appends reach
    /// them (256 KiB at a time: `pwrite`s of zeros, then one `madvise`),
    /// on the critical path.
    Off,
    /// The writer itself, while its ring is empty: the journaler for the
    /// input journal, the publisher for the output journal
    /// ([`ringex_journal::Journal::prepare_ahead`], keeping
    /// [`super::JOURNALER_PREPARE_LEAD`] ready, one
    /// [`super::JOURNALER_PREPARE_STEP`] per idle poll). No extra thread;
    /// a writer that never idles gets no help. The default, and the
    /// `two-core` preset's.
    #[default]
    Idle,
    /// Each journal's background pretoucher thread
    /// (`ringex_journal::pretouch`; unpinned, mostly asleep): pages kept
    /// mapped [`PretouchConfig::ahead`] past the writer and the next
    /// segment prepared before the roll, also under saturation. The
    /// `dedicated-server` preset's.
    Thread(PretouchConfig),
}

/// How many threads run the three stages (`[pipeline] stage_threads`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageThreads {
    /// One thread per stage (`ringex-journaler`, `ringex-engine`,
    /// `ringex-publisher`) with the output ring between engine and
    /// publisher: the stages overlap, each batch moving down the line while
    /// the next is journaled. For a machine where each stage has a core of
    /// its own (the `dedicated-server` preset).
    Separate,
    /// One thread, `ringex-core`, journals a batch, applies it and
    /// publishes its events, in that order (`pipeline/fused.rs`); no output
    /// ring. Takes the two thread hand-offs out of every command's path,
    /// which on a machine with fewer free cores than stages are wake-ups
    /// or waits for a CPU. It runs with the journaler's
    /// [`StageConfig`]; the engine's and publisher's are not used, nor is
    /// [`PipelineConfig::output_ring_size`]. Same durability invariant,
    /// same bytes out. The `two-core` preset's: on two vCPUs it halved the
    /// FIX round trip's p50 and p99 and raised one session's throughput
    /// (`docs/performance.md`).
    Fused,
}

/// A test hook: a gate the journaler waits at before each command while it
/// is closed. Lets a test hold the input ring full deterministically. Not
/// for production use.
#[derive(Debug, Clone, Default)]
pub struct StageGate {
    inner: Arc<(Mutex<bool>, Condvar)>,
}

impl StageGate {
    /// A closed gate.
    pub fn closed() -> StageGate {
        StageGate::default()
    }

    /// Opens the gate for good, waking the waiting stage.
    pub fn open(&self) {
        let (lock, cvar) = &*self.inner;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
    }

    /// Blocks while the gate is closed.
    pub(crate) fn wait_open(&self) {
        let (lock, cvar) = &*self.inner;
        let mut open = lock.lock().unwrap_or_else(|e| e.into_inner());
        while !*open {
            open = cvar.wait(open).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Everything [`super::Pipeline::start`] needs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Slots in the input (command) ring; a power of two, at least 64 (the
    /// `disruptor` crate's multi-producer minimum). A full ring makes
    /// [`super::CommandSender::try_submit`] return `Busy`.
    pub input_ring_size: usize,
    /// Slots in the output (event) ring; a power of two. When it is full the
    /// engine waits (with its wait strategy) for the publisher, which never
    /// blocks on a sink.
    pub output_ring_size: usize,
    /// The journaler stage (first consumer of the input ring).
    pub journaler: StageConfig,
    /// The engine stage (second consumer of the input ring, the output ring's producer).
    pub engine: StageConfig,
    /// The publisher stage (consumer of the output ring).
    pub publisher: StageConfig,
    /// One thread per stage, or all three fused on one thread (which then
    /// runs with [`Self::journaler`]'s core and wait).
    pub stage_threads: StageThreads,
    /// Directory of the input journal (created if missing).
    pub journal_dir: PathBuf,
    /// Journal segment size, durability policy and recovery mode (of the
    /// input journal and the output journal alike). Its `pretouch` must be
    /// `None`: [`Self::journal_pretouch`] says what the journals get.
    pub journal: JournalConfig,
    /// Who makes each journal's pages ready ahead of its writer (the
    /// journaler, the publisher).
    pub journal_pretouch: JournalPretouch,
    /// Directory of the output journal (every event; see [the module
    /// docs](super#the-output-journal)). `None`: the `events`
    /// subdirectory of [`Self::journal_dir`] (the input journal ignores it).
    /// It must differ from `journal_dir`.
    pub output_journal_dir: Option<PathBuf>,
    /// Capacities and risk mode of the engine.
    pub engine_config: EngineConfig,
    /// Interval of the timer source's `TimerTick` commands; `None` for no timer.
    pub timer_interval: Option<Duration>,
    /// Test hook: the journaler waits at this gate while it is closed.
    pub journaler_gate: Option<StageGate>,
    /// Directory of the engine snapshots (see [the module
    /// docs](super#snapshots)). `None`: the `snapshots` subdirectory of
    /// [`Self::journal_dir`].
    pub snapshot_dir: Option<PathBuf>,
    /// Write a snapshot at [`super::Pipeline::shutdown`] (default on), so
    /// the next start-up replays nothing.
    pub snapshot_on_shutdown: bool,
    /// Also write a snapshot on the engine thread, between batches, once at
    /// least this many commands were applied since the last one (`None`,
    /// the default: never). The engine stalls while it serialises and
    /// fsyncs the state (see `docs/engine.md` for sizes and times), and
    /// the retention pass after each write re-reads and checks the kept
    /// snapshots, so choose a rare interval.
    pub snapshot_every: Option<u64>,
    /// How many snapshots to keep; older ones are removed after each write.
    /// Journal segments are never removed by the pipeline.
    pub snapshot_retention: RetentionPolicy,
}

impl PipelineConfig {
    /// The preset for small machines (these 2-core development boxes): the
    /// three stages fused on one thread ([`StageThreads::Fused`]), which
    /// backs off rather than busy-spins and is not pinned; modest rings,
    /// the journal's default durability (`Write`), a 100 ms timer.
    pub fn two_core_default(journal_dir: impl Into<PathBuf>) -> PipelineConfig {
        PipelineConfig {
            input_ring_size: 1 << 14,
            output_ring_size: 1 << 16,
            journaler: StageConfig::backoff(),
            engine: StageConfig::backoff(),
            publisher: StageConfig::backoff(),
            stage_threads: StageThreads::Fused,
            journal_dir: journal_dir.into(),
            journal: JournalConfig::default(),
            journal_pretouch: JournalPretouch::Idle,
            output_journal_dir: None,
            engine_config: EngineConfig::default(),
            timer_interval: Some(Duration::from_millis(100)),
            journaler_gate: None,
            snapshot_dir: None,
            snapshot_on_shutdown: true,
            snapshot_every: None,
            snapshot_retention: RetentionPolicy::default(),
        }
    }

    /// The preset for a dedicated many-core server: each stage on its own
    /// thread ([`StageThreads::Separate`]) busy-spins on its own pinned core, `cores[0]` journaler, `cores[1]` engine,
    /// `cores[2]` publisher (give at least three cores, isolated from the
    /// OS and the gateways); larger rings; durability `Write`; the journal's
    /// pretoucher thread ([`JournalPretouch::Thread`]), which the OS runs
    /// on the cores left to it.
    ///
    /// # Panics
    /// If `cores` has fewer than three entries.
    pub fn dedicated_server(journal_dir: impl Into<PathBuf>, cores: &[usize]) -> PipelineConfig {
        assert!(
            cores.len() >= 3,
            "dedicated_server needs three cores (journaler, engine, publisher)"
        );
        PipelineConfig {
            input_ring_size: 1 << 16,
            output_ring_size: 1 << 18,
            journaler: StageConfig::pinned_spin(cores[0]),
            engine: StageConfig::pinned_spin(cores[1]),
            publisher: StageConfig::pinned_spin(cores[2]),
            stage_threads: StageThreads::Separate,
            journal_pretouch: JournalPretouch::Thread(PretouchConfig::default()),
            ..PipelineConfig::two_core_default(journal_dir)
        }
    }

    /// This configuration with its stages on one thread each or all on one
    /// ([`Self::stage_threads`]).
    pub fn with_stage_threads(mut self, threads: StageThreads) -> Self {
        self.stage_threads = threads;
        self
    }

    /// The stages that get a thread of their own under
    /// [`Self::stage_threads`], with their configurations: the journaler's
    /// stands for the fused thread.
    pub fn stage_configs(&self) -> Vec<(&'static str, StageConfig)> {
        match self.stage_threads {
            StageThreads::Separate => vec![
                ("journaler", self.journaler),
                ("engine", self.engine),
                ("publisher", self.publisher),
            ],
            StageThreads::Fused => vec![("journaler", self.journaler)],
        }
    }

    /// This configuration with another durability policy.
    pub fn with_durability(mut self, durability: DurabilityPolicy) -> Self {
        self.journal = self.journal.with_durability(durability);
        self
    }

    /// This configuration with another [`Self::journal_pretouch`].
    pub fn with_journal_pretouch(mut self, pretouch: JournalPretouch) -> Self {
        self.journal_pretouch = pretouch;
        self
    }

    /// Each journal's configuration (input and output alike):
    /// [`Self::journal`] with a pretoucher thread if
    /// [`Self::journal_pretouch`] asks for it.
    pub fn journal_config(&self) -> JournalConfig {
        self.journal.with_pretouch(match self.journal_pretouch {
            JournalPretouch::Thread(p) => Some(p),
            JournalPretouch::Off | JournalPretouch::Idle => None,
        })
    }

    /// This configuration with the output journal in `dir`.
    pub fn with_output_journal_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.output_journal_dir = Some(dir.into());
        self
    }

    /// Where the output journal lives: [`Self::output_journal_dir`], or by
    /// default `journal_dir/events`.
    pub fn output_journal_path(&self) -> PathBuf {
        self.output_journal_dir
            .clone()
            .unwrap_or_else(|| self.journal_dir.join(Self::DEFAULT_OUTPUT_SUBDIR))
    }

    /// The default output journal's subdirectory of the input journal's.
    pub const DEFAULT_OUTPUT_SUBDIR: &'static str = "events";

    /// The snapshot directory: [`Self::snapshot_dir`] or its default.
    pub fn snapshot_path(&self) -> PathBuf {
        self.snapshot_dir
            .clone()
            .unwrap_or_else(|| self.journal_dir.join(Self::DEFAULT_SNAPSHOT_SUBDIR))
    }

    /// Default subdirectory of the journal directory for snapshots.
    pub const DEFAULT_SNAPSHOT_SUBDIR: &'static str = "snapshots";

    /// Sets [`Self::snapshot_dir`].
    pub fn with_snapshot_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.snapshot_dir = Some(dir.into());
        self
    }

    /// Sets [`Self::snapshot_every`].
    pub fn with_snapshot_every(mut self, commands: Option<u64>) -> Self {
        self.snapshot_every = commands;
        self
    }

    /// Sets [`Self::snapshot_on_shutdown`].
    pub fn with_snapshot_on_shutdown(mut self, on: bool) -> Self {
        self.snapshot_on_shutdown = on;
        self
    }

    /// This configuration with other engine capacities.
    pub fn with_engine(mut self, engine: EngineConfig) -> Self {
        self.engine_config = engine;
        self
    }

    /// This configuration with another timer interval (`None`: no timer).
    pub fn with_timer(mut self, interval: Option<Duration>) -> Self {
        self.timer_interval = interval;
        self
    }

    /// Checks ring sizes, core ids, the journal and engine configurations.
    pub fn validate(&self) -> Result<(), PipelineError> {
        let bad = |what: String| Err(PipelineError::InvalidConfig(what));
        if self.snapshot_every == Some(0) {
            return bad("snapshot_every must be at least 1 (or None)".into());
        }
        for (name, size, min) in [
            ("input_ring_size", self.input_ring_size, 64),
            ("output_ring_size", self.output_ring_size, 2),
        ] {
            if size < min || !size.is_power_of_two() {
                return bad(format!(
                    "{name} must be a power of two >= {min}, got {size}"
                ));
            }
        }
        let stages = self.stage_configs();
        if stages.iter().any(|(_, s)| s.core.is_some()) {
            let available: Vec<usize> = core_affinity::get_core_ids()
                .unwrap_or_default()
                .iter()
                .map(|c| c.id)
                .collect();
            for (name, stage) in stages {
                if let Some(core) = stage.core {
                    if !available.contains(&core) {
                        return bad(format!(
                            "{name} stage pinned to core {core}, which is not available ({available:?})"
                        ));
                    }
                }
            }
        }
        if matches!(self.timer_interval, Some(d) if d.is_zero()) {
            return bad("timer_interval must not be zero".into());
        }
        super::output::validate_dirs(&self.journal_dir, &self.output_journal_path())?;
        if self.journal.pretouch.is_some() {
            return bad(
                "journal.pretouch must be None: set journal_pretouch (the input journal's) instead"
                    .into(),
            );
        }
        self.journal_config().validate()?;
        self.engine_config.validate()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use disruptor::wait_strategies::WaitStrategy;
    use std::time::Instant;

    #[test]
    fn a_parked_stage_is_woken_by_its_bell_and_otherwise_times_out() {
        let bell = Arc::new(StageBell::default());
        // Nobody rings: the stage arms, then parks until the timeout.
        let stage = {
            let bell = Arc::clone(&bell);
            std::thread::spawn(move || {
                bell.register_current();
                let first = bell.wait(Duration::from_millis(1));
                let second = bell.wait(Duration::from_millis(1));
                (first, second)
            })
        };
        assert_eq!(stage.join().unwrap(), (BellWait::Armed, BellWait::TimedOut));
        // A producer rings once the stage asked to be woken: the park
        // returns as woken, long before its (60 s) timeout.
        let bell = Arc::new(StageBell::default());
        let stage = {
            let bell = Arc::clone(&bell);
            std::thread::spawn(move || {
                bell.register_current();
                assert_eq!(bell.wait(Duration::from_secs(60)), BellWait::Armed);
                bell.wait(Duration::from_secs(60))
            })
        };
        while !bell.asleep.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        assert!(bell.ring().is_some(), "the stage had asked to be woken");
        assert_eq!(stage.join().unwrap(), BellWait::Woken);
        assert!(
            !bell.asleep.load(Ordering::SeqCst),
            "a rung bell is cleared"
        );
        // Ringing a stage that is not waiting does nothing.
        assert!(bell.ring().is_none());
        assert!(!bell.asleep.load(Ordering::SeqCst));
    }

    #[test]
    fn backoff_counts_a_park_as_a_sleep_and_says_when_it_would_sleep() {
        let mut b = Backoff::new();
        for _ in 0..Backoff::SPINS + Backoff::YIELDS {
            assert_eq!(b.next_sleep(), None);
            b.snooze();
        }
        assert_eq!(b.next_sleep(), Some(Backoff::MIN_SLEEP));
        b.slept();
        assert_eq!(b.next_sleep(), Some(Backoff::MIN_SLEEP * 2));
        for _ in 0..10 {
            b.slept();
        }
        assert_eq!(b.next_sleep(), Some(Backoff::MAX_SLEEP));
    }

    #[test]
    fn backoff_spins_then_yields_then_sleeps() {
        let mut b = Backoff::new();
        let start = Instant::now();
        for _ in 0..Backoff::SPINS + Backoff::YIELDS {
            b.snooze();
        }
        let spun = start.elapsed();
        let start = Instant::now();
        b.snooze();
        assert!(start.elapsed() >= Backoff::MIN_SLEEP, "spun {spun:?}");
        b.reset();
        assert_eq!(b, Backoff::new());
    }

    #[test]
    fn the_backoff_wait_strategy_starts_over_for_a_new_sequence() {
        let wait = StageWait(WaitKind::Backoff);
        for _ in 0..Backoff::SPINS + Backoff::YIELDS + 1 {
            wait.wait_for(7);
        }
        assert_eq!(CONSUMER_BACKOFF.with(|c| c.get()).0, 7);
        wait.wait_for(8);
        assert_eq!(
            CONSUMER_BACKOFF.with(|c| c.get()),
            (8, {
                let mut b = Backoff::new();
                b.snooze();
                b
            })
        );
    }

    #[test]
    fn ring_sizes_must_be_powers_of_two_and_the_input_ring_at_least_64() {
        let mut c = PipelineConfig::two_core_default("/nonexistent");
        assert!(c.validate().is_ok());
        c.input_ring_size = 32;
        assert!(c.validate().is_err());
        c.input_ring_size = 64;
        c.output_ring_size = 100;
        assert!(c.validate().is_err());
    }
}
