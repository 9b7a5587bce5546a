//! The background pretoucher: an optional thread, owned by the [`Journal`]
//! writer, that keeps the pages ahead of the append position mapped in and
//! prepares the next segment before the writer rolls to it
//! ([`JournalConfig::pretouch`], off by default).
//!
//! [`Journal`]: crate::Journal
//! [`JournalConfig::pretouch`]: crate::JournalConfig::pretouch
//!
//! # Why
//!
//! The first store into each page of a fresh segment faults: the kernel
//! allocates and zeroes a page-cache page, and a store into a *shared file
//! mapping* gets no fault-around, so that is one fault per 4 KiB (every 34
//! commands). [`crate::Journal::prepare_ahead`] moves that work into the
//! journaler's idle time; a journaler that never idles (saturation) still
//! pays it. The pretoucher pays it on another thread, the way Chronicle
//! Queue's pretoucher does.
//!
//! # What it does
//!
//! - **Pages ahead.** It keeps up to [`PretouchConfig::ahead`] bytes past the
//!   writer's position mapped in writable, with
//!   [`MappedMut::populate_write`] (`madvise(MADV_POPULATE_WRITE)`) on the
//!   writer's own mapping, [`PretouchConfig::chunk`] bytes per call. It never
//!   writes a byte: populating does not change the file, so it cannot race
//!   with the writer's stores. When the distance reaches past the end of the
//!   active segment, the rest is populated at the start of the next one.
//! - **The next segment.** It creates the next segment file under a
//!   temporary name (`next-<n>.seg.pretouch`, which readers, `verify` and
//!   recovery ignore), reserves its blocks (`allocate`, and `fsync` under a
//!   syncing policy) and maps it. At the roll the writer takes it over by
//!   ownership, writes the header, renames it to its real name and maps
//!   nothing, instead of creating, allocating and mapping on the hot path.
//!   The name has to wait for the roll because it is the segment's first
//!   sequence number.
//! - **Then it sleeps** ([`std::thread::park`]) until the writer has used
//!   up half the distance. The writer publishes its offset in an atomic
//!   each time it crosses a [`PretouchConfig::chunk`] boundary, and unparks
//!   the thread only when that offset reached the one the thread asked to
//!   be woken at (a `futex` wake once per `ahead / 2` bytes of a steady
//!   writer), at a roll and when it is dropped. It never spins.
//!
//! # Correctness does not depend on it
//!
//! Every page it maps in is a hint: when it falls behind, the writer faults
//! (or maps in the next 256 KiB itself) as it would without it. When it
//! fails to prepare a segment, it records the error
//! ([`crate::Journal::take_pretouch_error`]), does not try again until the
//! writer has rolled, and the writer creates its next segment itself, with
//! the usual failure policy. A refused `madvise` (a kernel before 5.14)
//! turns population off for that segment.
//!
//! # Mapping lifetime
//!
//! A segment's mapping lives in an [`Arc`]ed `SegmentMap`. The writer
//! holds the only `SegmentWriter` (the raw pointer it stores through);
//! the pretoucher holds clones of the `Arc` and only ever calls
//! `populate_write` through them. A mapping is unmapped when the last
//! holder drops it, so the pretoucher can never touch an unmapped range,
//! even while the writer rolls or is dropped. The `Pretoucher` handle's `Drop`
//! stops and joins the thread and removes a prepared segment nobody took.

use crate::error::{Error, Result};
use crate::fs::{FileSystem, FsFile, MappedMut, OpenMode};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{JoinHandle, Thread};

const PAGE: usize = 4096;

/// Suffix of a segment file the pretoucher prepared and the writer has not
/// taken yet. [`crate::Journal::open`] removes leftovers (a crash).
pub const PRETOUCH_SUFFIX: &str = ".seg.pretouch";

/// How far ahead the background pretoucher works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PretouchConfig {
    /// Bytes past the writer's position kept mapped in (default 8 MiB).
    /// Past the end of the active segment, the next segment's first pages
    /// count. The page cache holds about this much more than it would
    /// without the pretoucher.
    pub ahead: usize,
    /// Bytes mapped in per `madvise` (default 256 KiB), a multiple of 4096.
    /// The writer wakes the pretoucher once per chunk it crosses.
    pub chunk: usize,
}

impl Default for PretouchConfig {
    fn default() -> Self {
        PretouchConfig {
            ahead: Self::DEFAULT_AHEAD,
            chunk: Self::DEFAULT_CHUNK,
        }
    }
}

impl PretouchConfig {
    /// Default [`Self::ahead`]: 8 MiB.
    pub const DEFAULT_AHEAD: usize = 8 << 20;
    /// Default [`Self::chunk`]: 256 KiB.
    pub const DEFAULT_CHUNK: usize = 256 << 10;

    /// This configuration with another distance ahead.
    pub fn with_ahead(mut self, bytes: usize) -> Self {
        self.ahead = bytes;
        self
    }

    /// This configuration with another chunk size.
    pub fn with_chunk(mut self, bytes: usize) -> Self {
        self.chunk = bytes;
        self
    }

    /// Checks the sizes: `chunk` a non-zero multiple of 4096, `ahead`
    /// between `chunk` and 1 GiB.
    pub fn validate(&self) -> Result<()> {
        if self.chunk == 0 || self.chunk % PAGE != 0 {
            return Err(Error::InvalidConfig(
                "pretouch chunk must be a non-zero multiple of 4096",
            ));
        }
        if self.ahead < self.chunk || self.ahead > 1 << 30 {
            return Err(Error::InvalidConfig(
                "pretouch ahead must be at least the chunk and at most 1 GiB",
            ));
        }
        Ok(())
    }
}

/// What the pretoucher has done ([`crate::Journal::pretouch_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PretouchStatus {
    /// A next segment is prepared and waiting for the roll.
    pub next_ready: bool,
    /// Bytes mapped in past the writer's position, in the active segment
    /// and a prepared next one.
    pub populated_ahead: usize,
    /// Failed attempts to prepare a segment so far.
    pub failures: u64,
    /// The kernel refused `MADV_POPULATE_WRITE` in the active segment: the
    /// pretoucher only prepares segments there.
    pub populate_refused: bool,
    /// Times the thread went to sleep (it sleeps whenever it is done; a
    /// steady writer wakes it about once per `ahead / 2` bytes).
    pub sleeps: u64,
}

/// A segment's mapping, shared by the writer (which stores records into it
/// through its one [`SegmentWriter`]) and the pretoucher (which only maps
/// pages in). Unmapped when the last holder drops it.
pub(crate) struct SegmentMap<M> {
    map: M,
    len: usize,
    /// The writer's offset as last published (at chunk boundaries).
    written: AtomicUsize,
    /// Pages before this offset are mapped in writable.
    populated: AtomicUsize,
    /// `populate_write` failed here: nobody asks again.
    refused: AtomicBool,
    /// The pretoucher sleeps until the writer reaches this offset (half
    /// the distance ahead used up), so a steady writer wakes it once per
    /// `ahead / 2` bytes, not once per chunk.
    wake_at: AtomicUsize,
}

impl<M: MappedMut> SegmentMap<M> {
    /// The mapping, for flushes (never for its bytes).
    #[inline]
    pub(crate) fn map(&self) -> &M {
        &self.map
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Pages before this offset are mapped in (by either thread).
    #[inline]
    pub(crate) fn populated(&self) -> usize {
        self.populated.load(Ordering::Acquire)
    }

    #[inline]
    pub(crate) fn refused(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// Publishes the writer's offset; returns whether the pretoucher
    /// asked to be woken by now. `SeqCst` with the pretoucher's
    /// [`Self::sleep_until`]: either the writer sees the new `wake_at` or
    /// the pretoucher sees the new offset, so no wake-up is lost.
    #[inline]
    pub(crate) fn publish_written(&self, offset: usize) -> bool {
        self.written.store(offset, Ordering::SeqCst);
        offset >= self.wake_at.load(Ordering::SeqCst)
    }

    fn written(&self) -> usize {
        self.written.load(Ordering::SeqCst)
    }

    /// Asks the writer to wake the pretoucher at `offset`; returns whether
    /// the writer is still where it was seen (`seen`), so sleeping is safe.
    fn sleep_until(&self, offset: usize, seen: usize) -> bool {
        self.wake_at.store(offset, Ordering::SeqCst);
        self.written() == seen
    }

    /// Maps `[from, to)` in (from the page holding `from`). A refusal turns
    /// population off for this segment. Returns whether it worked.
    pub(crate) fn populate(&self, from: usize, to: usize) -> bool {
        let from = from / PAGE * PAGE;
        if from >= to {
            return true;
        }
        match self.map.populate_write(from, to - from) {
            Ok(()) => {
                self.populated.fetch_max(to, Ordering::AcqRel);
                true
            }
            Err(_) => {
                self.refused.store(true, Ordering::Relaxed);
                false
            }
        }
    }
}

/// The writer's handle on a [`SegmentMap`]: the only way to store into the
/// mapping. There is exactly one per mapping (made by [`Self::new`], not
/// `Clone`).
pub(crate) struct SegmentWriter<M> {
    seg: Arc<SegmentMap<M>>,
    ptr: NonNull<u8>,
}

// SAFETY: the pointer is into a mapping that the `Arc` keeps mapped, and
// this handle is its only writer; moving the handle to another thread moves
// the right to write with it. `M: Send + Sync` (a `MappedMut` bound) makes
// the `Arc` itself sendable.
unsafe impl<M: MappedMut> Send for SegmentWriter<M> {}

impl<M: MappedMut> SegmentWriter<M> {
    /// Takes over a fresh mapping. `offset`: the writer's position in it
    /// (whole pages before it count as populated: nobody stores there
    /// again).
    pub(crate) fn new(mut map: M, offset: usize) -> Self {
        let bytes = map.as_mut_slice();
        let len = bytes.len();
        let ptr = NonNull::new(bytes.as_mut_ptr()).unwrap_or(NonNull::dangling());
        // Moving `map` into the `Arc` does not move the bytes (the
        // `MappedMut` contract), so `ptr` stays valid.
        let seg = Arc::new(SegmentMap {
            map,
            len,
            written: AtomicUsize::new(offset),
            populated: AtomicUsize::new(offset / PAGE * PAGE),
            refused: AtomicBool::new(false),
            wake_at: AtomicUsize::new(0),
        });
        SegmentWriter { seg, ptr }
    }

    #[inline]
    pub(crate) fn shared(&self) -> &Arc<SegmentMap<M>> {
        &self.seg
    }

    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.seg.len
    }

    /// The mapped bytes `[from, to)`, writable.
    ///
    /// # Panics
    /// If the range is not inside the mapping.
    #[inline]
    pub(crate) fn bytes_mut(&mut self, from: usize, to: usize) -> &mut [u8] {
        assert!(from <= to && to <= self.seg.len, "outside the mapping");
        // SAFETY: `[from, to)` is inside the mapping (checked), which stays
        // mapped while `self.seg` holds it. Only this handle stores into the
        // mapping, and `&mut self` makes the returned slice the only
        // reference to these bytes made through it. Other holders of the
        // `Arc` (the pretoucher) only call `populate_write`, which by the
        // `MappedMut` contract creates no reference to the bytes and does
        // not change them.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(from), to - from) }
    }
}

/// A segment file the pretoucher created, sized and mapped, waiting under
/// its temporary name for the writer's next roll.
pub(crate) struct NextSegment<F: FileSystem> {
    pub(crate) file: F::File,
    pub(crate) writer: SegmentWriter<F::MapMut>,
    /// Its temporary name.
    pub(crate) path: PathBuf,
}

struct State<F: FileSystem> {
    /// The writer's active segment.
    current: Option<Arc<SegmentMap<F::MapMut>>>,
    /// Bumped whenever `current` changes.
    generation: u64,
    /// A prepared segment for the next roll.
    next: Option<NextSegment<F>>,
    /// Preparation failed in this generation: no retry before the next roll.
    failed_at: Option<u64>,
    /// The first failure the writer has not taken yet.
    error: Option<Error>,
    failures: u64,
}

struct Shared<F: FileSystem> {
    state: Mutex<State<F>>,
    stop: AtomicBool,
    /// `state.error` is set (a cheap check for the writer).
    has_error: AtomicBool,
    /// [`PretouchStatus::sleeps`].
    sleeps: AtomicU64,
}

impl<F: FileSystem> Shared<F> {
    fn lock(&self) -> MutexGuard<'_, State<F>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The writer's handle on the pretoucher thread. Dropping it stops and
/// joins the thread.
pub(crate) struct Pretoucher<F: FileSystem> {
    shared: Arc<Shared<F>>,
    thread: Option<JoinHandle<()>>,
    waker: Thread,
    fs: F,
    chunk: usize,
}

impl<F: FileSystem> Pretoucher<F> {
    /// Starts the thread (`ringex-pretouch`). It starts preparing the next
    /// segment at once; `current` is the active segment, if any.
    pub(crate) fn start(
        fs: F,
        dir: &Path,
        segment_size: u64,
        syncs: bool,
        config: PretouchConfig,
        current: Option<Arc<SegmentMap<F::MapMut>>>,
    ) -> Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                current,
                generation: 0,
                next: None,
                failed_at: None,
                error: None,
                failures: 0,
            }),
            stop: AtomicBool::new(false),
            has_error: AtomicBool::new(false),
            sleeps: AtomicU64::new(0),
        });
        let worker = Worker {
            shared: Arc::clone(&shared),
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            segment_size,
            syncs,
            config,
            current: None,
            next: None,
            generation: None,
            serial: 0,
        };
        let thread = std::thread::Builder::new()
            .name("ringex-pretouch".into())
            .spawn(move || worker.run())
            .map_err(|e| Error::io("start pretoucher thread", dir, e))?;
        Ok(Pretoucher {
            shared,
            waker: thread.thread().clone(),
            thread: Some(thread),
            fs,
            chunk: config.chunk,
        })
    }

    /// Bytes between the writer's position reports.
    #[inline]
    pub(crate) fn chunk(&self) -> usize {
        self.chunk
    }

    /// Wakes the thread if it sleeps (an atomic swap otherwise).
    #[inline]
    pub(crate) fn wake(&self) {
        self.waker.unpark();
    }

    /// Takes the prepared next segment, if one is ready.
    pub(crate) fn take_next(&self) -> Option<NextSegment<F>> {
        self.shared.lock().next.take()
    }

    /// The writer's new active segment (after a roll).
    pub(crate) fn set_current(&self, seg: Arc<SegmentMap<F::MapMut>>) {
        {
            let mut st = self.shared.lock();
            st.current = Some(seg);
            st.generation += 1;
        }
        self.wake();
    }

    /// The first unreported preparation failure (cheap when there is none).
    pub(crate) fn take_error(&self) -> Option<Error> {
        if !self.shared.has_error.load(Ordering::Acquire) {
            return None;
        }
        let mut st = self.shared.lock();
        self.shared.has_error.store(false, Ordering::Release);
        st.error.take()
    }

    pub(crate) fn status(&self, written: usize) -> PretouchStatus {
        let st = self.shared.lock();
        let (mut ahead, refused) = match &st.current {
            Some(cur) => (cur.populated().saturating_sub(written), cur.refused()),
            None => (0, false),
        };
        if let Some(next) = &st.next {
            ahead += next.writer.shared().populated();
        }
        PretouchStatus {
            next_ready: st.next.is_some(),
            populated_ahead: ahead,
            failures: st.failures,
            populate_refused: refused,
            sleeps: self.shared.sleeps.load(Ordering::Relaxed),
        }
    }
}

impl<F: FileSystem> Drop for Pretoucher<F> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.wake();
        if let Some(thread) = self.thread.take() {
            // It does not panic; if it did, there is nothing to add here.
            let _ = thread.join();
        }
        let next = {
            let mut st = self.shared.lock();
            st.current = None;
            st.next.take()
        };
        if let Some(next) = next {
            let path = next.path.clone();
            drop(next);
            // Best effort: a leftover is removed by the next open.
            let _ = self.fs.remove_file(&path);
        }
    }
}

/// The pretoucher thread's state.
struct Worker<F: FileSystem> {
    shared: Arc<Shared<F>>,
    fs: F,
    dir: PathBuf,
    segment_size: u64,
    syncs: bool,
    config: PretouchConfig,
    /// Clones of the active and prepared segments (kept mapped by them).
    current: Option<Arc<SegmentMap<F::MapMut>>>,
    next: Option<Arc<SegmentMap<F::MapMut>>>,
    /// The `State::generation` `current` is from.
    generation: Option<u64>,
    /// For the temporary names.
    serial: u64,
}

impl<F: FileSystem> Worker<F> {
    fn run(mut self) {
        while !self.shared.stop.load(Ordering::Acquire) {
            let need_next = self.refresh();
            if self.populate_step() {
                continue;
            }
            if need_next {
                self.prepare_next();
                continue;
            }
            // Nothing to do until the writer has used up half the distance
            // (or rolls, or drops the journal). An unpark that came since
            // `refresh` makes `park` return at once.
            if let Some(cur) = &self.current {
                let seen = cur.written();
                if !cur.sleep_until(seen.saturating_add(self.config.ahead / 2), seen) {
                    continue;
                }
            }
            self.shared.sleeps.fetch_add(1, Ordering::Relaxed);
            std::thread::park();
        }
    }

    /// Picks up a roll; returns whether a next segment is wanted.
    fn refresh(&mut self) -> bool {
        let st = self.shared.lock();
        if self.generation != Some(st.generation) {
            self.generation = Some(st.generation);
            self.current = st.current.clone();
            self.next = st.next.as_ref().map(|n| Arc::clone(n.writer.shared()));
        }
        st.next.is_none() && st.failed_at != Some(st.generation)
    }

    /// Maps in one chunk where the writer goes next, if anything within
    /// `ahead` of it is not mapped yet. Returns whether it did.
    fn populate_step(&mut self) -> bool {
        let PretouchConfig { ahead, chunk } = self.config;
        let spill = match &self.current {
            Some(cur) => {
                let written = cur.written();
                let target = written.saturating_add(ahead);
                if !cur.refused() {
                    let end = target.next_multiple_of(PAGE).min(cur.len());
                    let from = cur.populated().max(written / PAGE * PAGE);
                    if from < end {
                        cur.populate(from, (from + chunk).min(end));
                        return true;
                    }
                }
                target.saturating_sub(cur.len())
            }
            None => ahead,
        };
        if let Some(next) = &self.next {
            if !next.refused() && spill > 0 {
                let end = spill.next_multiple_of(PAGE).min(next.len());
                let from = next.populated();
                if from < end {
                    next.populate(from, (from + chunk).min(end));
                    return true;
                }
            }
        }
        false
    }

    /// Creates, sizes and maps the next segment under a temporary name and
    /// hands it to the writer's slot; on failure records the error.
    fn prepare_next(&mut self) {
        self.serial += 1;
        let path = self
            .dir
            .join(format!("next-{}{PRETOUCH_SUFFIX}", self.serial));
        match self.create(&path) {
            Ok(next) => {
                let seg = Arc::clone(next.writer.shared());
                self.shared.lock().next = Some(next);
                self.next = Some(seg);
            }
            Err(e) => {
                // Best effort; the next open removes a leftover.
                let _ = self.fs.remove_file(&path);
                let mut st = self.shared.lock();
                st.failed_at = self.generation;
                st.failures += 1;
                st.error.get_or_insert(e);
                self.shared.has_error.store(true, Ordering::Release);
            }
        }
    }

    fn create(&self, path: &Path) -> Result<NextSegment<F>> {
        let file = self
            .fs
            .open(path, OpenMode::CreateNew)
            .map_err(|e| Error::io("pretouch: create segment", path, e))?;
        file.allocate(self.segment_size)
            .map_err(|e| Error::io("pretouch: preallocate segment", path, e))?;
        if self.syncs {
            // The size and the reserved blocks, before any page is
            // dirtied; the roll then syncs only the header's page.
            file.sync_all()
                .map_err(|e| Error::io("pretouch: fsync segment", path, e))?;
        }
        let map = self
            .fs
            .map_mut(&file, self.segment_size as usize)
            .map_err(|e| Error::io("pretouch: mmap segment", path, e))?;
        Ok(NextSegment {
            file,
            writer: SegmentWriter::new(map, 0),
            path: path.to_path_buf(),
        })
    }
}
