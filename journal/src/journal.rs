//! The journal writer: append, durability, rolling, recovery on open.
//!
//! **Single writer: the journaler thread.** A [`Journal`] is `Send` but not
//! shared: exactly one thread owns it and calls [`Journal::append`],
//! [`Journal::end_batch`] and the rest. A second writer, in this process or
//! another, is kept out by an exclusive `flock` on `LOCK` in the journal
//! directory ([`Error::Locked`]). Readers use their own read-only file handles
//! ([`crate::JournalReader`]) and never touch the writer's mapping. The
//! optional background pretoucher ([`JournalConfig::pretouch`],
//! [`crate::pretouch`]) is a thread the journal owns: it maps pages of the
//! writer's mapping in without writing them and prepares the next segment,
//! which the writer takes over; the writer never waits for it.
//!
//! # Sequence numbers
//!
//! The caller assigns sequence numbers (the journaler stamps them on entry)
//! and passes them to [`Journal::append`], which checks that each one is the
//! next: [`Journal::next_sequence`] + 1 after the previous append. An empty
//! journal accepts any first sequence number.
//!
//! # Durability
//!
//! Appends are stores into a shared memory mapping of the active segment, so
//! they survive a crash of the process as soon as `append` returns; what
//! survives a crash of the machine depends on [`DurabilityPolicy`], applied
//! when the caller ends a batch ([`Journal::end_batch`]).
//! [`Journal::durable_sequence`] is the last sequence number made durable
//! under the policy: the pipeline acknowledges nothing beyond it.
//!
//! # Failures
//!
//! Any I/O failure while appending, rolling or flushing is returned as
//! [`Error::Io`] and leaves the journal *stopped*: every later call that
//! writes returns [`Error::Stopped`], and [`Journal::durable_sequence`] stays
//! where it was. The journaler stage stops cleanly on it; reopening the
//! journal runs recovery.

use crate::error::{CorruptReason, Error, Result};
use crate::format::{
    align_frame, frame_size, nonzero_extent, segment_file_name, SegmentHeader, CHAIN_GENESIS,
    FRAME_HEADER_SIZE, MAX_SEGMENT_SIZE, MIN_SEGMENT_SIZE, SEGMENT_HEADER_SIZE,
};
use crate::fs::{FileSystem, FsFile, MappedMut, OpenMode, StdFs};
use crate::inspect::{inspect_segment, list_segments, Continuation, Verdict};
use crate::pretouch::{
    NextSegment, PretouchConfig, PretouchStatus, Pretoucher, SegmentWriter, PRETOUCH_SUFFIX,
};
use crate::reader::JournalReader;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// When appended records are made durable (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DurabilityPolicy {
    /// Records are in the shared mapping: they survive a process crash, and
    /// reach the disk whenever the OS writes the pages back. `end_batch`
    /// makes no system call.
    None,
    /// `end_batch` asks the OS to write the batch back (`msync(MS_ASYNC)`)
    /// without waiting. On Linux the pages are already in the page cache and
    /// `MS_ASYNC` starts no I/O, so this protects against the same failures
    /// as `None`; it costs one system call per batch. It is the policy that
    /// matches "written to the OS" on platforms where `MS_ASYNC` schedules
    /// write-back.
    #[default]
    Write,
    /// `end_batch` waits until the batch is on disk (`msync(MS_SYNC)` of the
    /// new bytes, which is `fdatasync` of that range). Survives power loss.
    FsyncPerBatch,
    /// Like `FsyncPerBatch`, but `end_batch` syncs only when at least this
    /// many milliseconds passed since the last sync; between syncs the
    /// durable sequence does not move. Call [`Journal::sync_if_due`] when
    /// idle so the last batch does not wait for the next one.
    FsyncEveryMillis(u64),
}

impl DurabilityPolicy {
    /// Whether the policy waits for the disk (and so also syncs new segment
    /// files and the directory when it rolls).
    pub fn syncs(self) -> bool {
        matches!(
            self,
            DurabilityPolicy::FsyncPerBatch | DurabilityPolicy::FsyncEveryMillis(_)
        )
    }
}

/// What recovery does with corruption before the tail of the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Stop with [`Error::Corrupt`], naming the file, byte offset and
    /// sequence number. A torn tail is still truncated.
    #[default]
    Strict,
    /// Truncate the journal at the first bad record: the bytes after it in
    /// its segment are saved to `<segment>.tail.dropped`, later segments are
    /// renamed to `<segment>.dropped`, and the report says what was dropped.
    /// Only an operator should choose this.
    Tolerant,
}

/// Default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// How a [`Journal`] is opened and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalConfig {
    /// Size of each new segment file, header included
    /// ([`MIN_SEGMENT_SIZE`]..=[`MAX_SEGMENT_SIZE`], a multiple of 8).
    pub segment_size: u64,
    /// When records are made durable.
    pub durability: DurabilityPolicy,
    /// What recovery does with corruption before the tail.
    pub recovery: RecoveryMode,
    /// The background pretoucher thread (`None`, the default: no thread).
    /// See [`crate::pretouch`]: it keeps [`PretouchConfig::ahead`] bytes
    /// past the writer mapped in and the next segment ready, so appends
    /// take no page fault and a roll creates no file, even when the
    /// journaler never idles.
    pub pretouch: Option<PretouchConfig>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            segment_size: DEFAULT_SEGMENT_SIZE,
            durability: DurabilityPolicy::default(),
            recovery: RecoveryMode::default(),
            pretouch: None,
        }
    }
}

impl JournalConfig {
    /// This configuration with another segment size.
    pub fn with_segment_size(mut self, segment_size: u64) -> Self {
        self.segment_size = segment_size;
        self
    }

    /// This configuration with another durability policy.
    pub fn with_durability(mut self, durability: DurabilityPolicy) -> Self {
        self.durability = durability;
        self
    }

    /// This configuration with another recovery mode.
    pub fn with_recovery(mut self, recovery: RecoveryMode) -> Self {
        self.recovery = recovery;
        self
    }

    /// This configuration with the background pretoucher on (`Some`) or
    /// off (`None`).
    pub fn with_pretouch(mut self, pretouch: Option<PretouchConfig>) -> Self {
        self.pretouch = pretouch;
        self
    }

    /// Checks the configuration.
    pub fn validate(&self) -> Result<()> {
        if let Some(p) = &self.pretouch {
            p.validate()?;
        }
        if self.segment_size < MIN_SEGMENT_SIZE || self.segment_size > MAX_SEGMENT_SIZE {
            return Err(Error::InvalidConfig(
                "segment_size must be between MIN_SEGMENT_SIZE and MAX_SEGMENT_SIZE",
            ));
        }
        if self.segment_size % 8 != 0 {
            return Err(Error::InvalidConfig("segment_size must be a multiple of 8"));
        }
        Ok(())
    }

    /// The largest payload a record may carry in a segment of this size.
    pub fn max_payload(&self) -> usize {
        self.segment_size as usize - SEGMENT_HEADER_SIZE - FRAME_HEADER_SIZE
    }
}

/// A torn tail that recovery truncated (or that `verify` found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The last segment.
    pub file: PathBuf,
    /// Offset of the first byte that was not a complete, valid record.
    pub offset: u64,
    /// The sequence number the next record there would have carried.
    pub sequence: u64,
    /// Non-zero bytes from `offset` on that were discarded.
    pub bytes_discarded: u64,
    /// What was wrong at `offset`.
    pub reason: CorruptReason,
}

/// What [`RecoveryMode::Tolerant`] dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedData {
    /// The segment where the first bad record is.
    pub file: PathBuf,
    /// The bad record's byte offset (0 for a bad header).
    pub offset: u64,
    /// The sequence number the bad record should have carried: every record
    /// from it on was dropped.
    pub sequence: u64,
    /// What was wrong.
    pub reason: CorruptReason,
    /// Where the discarded bytes of that segment were saved, if any.
    pub saved_tail: Option<PathBuf>,
    /// Later segments, renamed with a `.dropped` suffix (new names).
    pub renamed_segments: Vec<PathBuf>,
}

/// What [`Journal::open`] found and repaired.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// Segments kept.
    pub segments: usize,
    /// Records kept.
    pub records: u64,
    /// First sequence number in the journal.
    pub first_sequence: Option<u64>,
    /// Last sequence number in the journal.
    pub last_sequence: Option<u64>,
    /// The chain value after the last record (the chain head).
    pub chain_head: u64,
    /// A torn tail that was truncated.
    pub torn_tail: Option<TornTail>,
    /// Data dropped in [`RecoveryMode::Tolerant`].
    pub dropped: Option<DroppedData>,
    /// A last segment whose creation did not complete (invalid header, no
    /// records), removed.
    pub removed_incomplete_segment: Option<PathBuf>,
    /// Segments that were complete but not sealed (a crash while rolling),
    /// sealed now.
    pub resealed_segments: Vec<PathBuf>,
}

impl RecoveryReport {
    /// Whether recovery found nothing to repair.
    pub fn is_clean(&self) -> bool {
        self.torn_tail.is_none()
            && self.dropped.is_none()
            && self.removed_incomplete_segment.is_none()
            && self.resealed_segments.is_empty()
    }
}

#[derive(Debug, Clone)]
struct SegmentMeta {
    first_seq: u64,
    path: PathBuf,
}

struct Active<F: FileSystem> {
    /// The mapping (shared with the pretoucher, which only maps pages in).
    map: SegmentWriter<F::MapMut>,
    /// Kept open for as long as it is mapped (and used by `prepare_ahead`).
    file: F::File,
    header: SegmentHeader,
    path: PathBuf,
    /// Offset of the next frame.
    offset: usize,
    /// Bytes before this offset (after the header) have been flushed under
    /// the policy.
    synced: usize,
    /// Bytes before this offset were pre-written by `prepare_ahead`.
    prepared: usize,
    /// Pages before this offset are mapped in writable
    /// ([`MappedMut::populate_write`]): stores into them take no page fault.
    populated: usize,
    /// `populate_write` failed in this segment (an old kernel): append
    /// stops asking and takes page faults as they come.
    populate_refused: bool,
    /// The mapping does no readahead (there is no pretoucher thread): pages
    /// are written with zeros before they are mapped in, so that mapping
    /// them finds them cached instead of faulting each one in alone.
    zeros_before_populate: bool,
    records: u64,
    /// When `offset` reaches this, the writer publishes its position to
    /// the pretoucher and wakes it (once per chunk; `usize::MAX` without a
    /// pretoucher).
    report_at: usize,
}

/// Bytes `append` maps in at a time when it reaches the end of the pages
/// mapped so far: one `madvise` for 64 pages instead of 64 page faults.
const POPULATE_CHUNK: usize = 256 << 10;

impl<F: FileSystem> Active<F> {
    /// Maps in the chunk of pages from the one holding `at` on, unless the
    /// pretoucher already has (then only notes how far it got).
    #[cold]
    #[inline(never)]
    fn populate_from(&mut self, at: usize, end: usize) {
        const PAGE: usize = 4096;
        let seg = self.map.shared();
        let theirs = seg.populated();
        if theirs >= end {
            self.populated = theirs;
            return;
        }
        if seg.refused() {
            self.populate_refused = true;
            return;
        }
        let len = seg.len();
        let from = (at / PAGE * PAGE).min(len);
        let to = from.saturating_add(POPULATE_CHUNK).min(len);
        if self.zeros_before_populate {
            // As `Journal::prepare_ahead` does: whole pages past the one
            // the writer is in, not yet prepared. A failed write is only a
            // lost hint (the stores then fault the pages in).
            let mut zeroed = self.prepared.max(at.div_ceil(PAGE) * PAGE).min(to);
            while zeroed < to {
                let n = (to - zeroed).min(ZEROS.len());
                if self.file.write_all_at(&ZEROS[..n], zeroed as u64).is_err() {
                    break;
                }
                zeroed += n;
            }
            self.prepared = self.prepared.max(zeroed);
        }
        if seg.populate(from, to) {
            self.populated = to;
        } else {
            self.populate_refused = true;
        }
    }

    fn new(
        map: SegmentWriter<F::MapMut>,
        file: F::File,
        header: SegmentHeader,
        path: PathBuf,
        offset: usize,
        records: u64,
        pretouch: Option<&Pretoucher<F>>,
    ) -> Self {
        let populated = map.shared().populated().max(offset);
        Active {
            map,
            file,
            header,
            path,
            offset,
            synced: offset,
            prepared: offset,
            populated,
            populate_refused: false,
            zeros_before_populate: pretouch.is_none(),
            records,
            report_at: pretouch.map_or(usize::MAX, |p| next_report(offset, p.chunk())),
        }
    }
}

/// The first chunk boundary after `offset`.
#[inline]
fn next_report(offset: usize, chunk: usize) -> usize {
    (offset / chunk + 1) * chunk
}

/// Zeros for `prepare_ahead`.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

#[derive(Debug, Clone)]
struct Failure {
    op: &'static str,
    path: PathBuf,
    kind: io::ErrorKind,
}

/// The append-only journal writer (see the module docs).
pub struct Journal<F: FileSystem = StdFs> {
    /// The background pretoucher, if configured. First, so that it is
    /// stopped and joined before anything else is dropped (the lock among
    /// them).
    pretouch: Option<Pretoucher<F>>,
    fs: F,
    dir: PathBuf,
    config: JournalConfig,
    _lock: F::Lock,
    segments: Vec<SegmentMeta>,
    active: Option<Active<F>>,
    next_seq: Option<u64>,
    chain: u64,
    last_appended: Option<u64>,
    durable: Option<u64>,
    last_sync: Instant,
    failure: Option<Failure>,
}

impl<F: FileSystem> std::fmt::Debug for Journal<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .field("segments", &self.segments.len())
            .field("next_seq", &self.next_seq)
            .field("durable", &self.durable)
            .field("stopped", &self.failure.is_some())
            .finish_non_exhaustive()
    }
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Journal<StdFs> {
    /// Opens (creating if needed) the journal in `dir` on the real file
    /// system, running recovery.
    pub fn open(dir: impl AsRef<Path>, config: JournalConfig) -> Result<(Self, RecoveryReport)> {
        Journal::open_with(StdFs, dir, config)
    }
}

impl<F: FileSystem> Journal<F> {
    /// Opens (creating if needed) the journal in `dir` on `fs`, running
    /// recovery (the rules are in the crate docs and
    /// `docs/journal-format.md`).
    pub fn open_with(
        fs: F,
        dir: impl AsRef<Path>,
        config: JournalConfig,
    ) -> Result<(Self, RecoveryReport)> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        fs.create_dir_all(&dir)
            .map_err(|e| Error::io("create directory", &dir, e))?;
        let lock = fs.try_lock_dir(&dir).map_err(|e| {
            if e.kind() == io::ErrorKind::WouldBlock {
                Error::Locked { dir: dir.clone() }
            } else {
                Error::io("lock directory", &dir, e)
            }
        })?;
        let mut rec = Recovery {
            fs: &fs,
            dir: &dir,
            config: &config,
            report: RecoveryReport::default(),
            kept: Vec::new(),
            prev: None,
            active: None,
        };
        rec.run()?;
        let Recovery {
            report,
            kept,
            prev,
            active,
            ..
        } = rec;
        remove_pretouch_leftovers(&fs, &dir);
        let map = match &active {
            Some((file, _, path, offset, _)) => {
                let len = file.size().map_err(|e| Error::io("stat", path, e))?;
                let map = fs
                    .map_mut(file, len as usize)
                    .map_err(|e| Error::io("mmap segment", path, e))?;
                if config.pretouch.is_none() {
                    // As for a new segment (`Journal::create_segment`).
                    let _ = map.no_readahead();
                }
                Some(SegmentWriter::new(map, *offset))
            }
            None => None,
        };
        let pretouch = match config.pretouch {
            Some(p) => Some(Pretoucher::start(
                fs.clone(),
                &dir,
                config.segment_size,
                config.durability.syncs(),
                p,
                map.as_ref().map(|m| std::sync::Arc::clone(m.shared())),
            )?),
            None => None,
        };
        let active = match (active, map) {
            (Some((file, header, path, offset, records)), Some(map)) => Some(Active::new(
                map,
                file,
                header,
                path,
                offset,
                records,
                pretouch.as_ref(),
            )),
            _ => None,
        };
        let last = prev.and_then(|p| {
            if report.records > 0 {
                p.next_seq.checked_sub(1)
            } else {
                None
            }
        });
        let journal = Journal {
            pretouch,
            fs,
            dir,
            config,
            _lock: lock,
            segments: kept,
            active,
            next_seq: prev.map(|p| p.next_seq),
            chain: prev.map_or(CHAIN_GENESIS, |p| p.chain),
            last_appended: last,
            durable: last,
            last_sync: Instant::now(),
            failure: None,
        };
        Ok((journal, report))
    }

    /// Appends one record. `sequence` must be [`Self::next_sequence`] (any
    /// value in an empty journal); `timestamp` is stored as given; `kind` and
    /// `payload` are opaque. Rolls to a new segment when the record does not
    /// fit in the active one. The record is durable once a later
    /// [`Self::end_batch`] has applied the policy.
    #[inline]
    pub fn append(
        &mut self,
        sequence: u64,
        timestamp: u64,
        kind: u8,
        payload: &[u8],
    ) -> Result<()> {
        if self.failure.is_some() {
            return Err(self.stopped());
        }
        if let Some(expected) = self.next_seq {
            if sequence != expected {
                return Err(Error::SequenceMismatch {
                    expected,
                    got: sequence,
                });
            }
        }
        let frame = frame_size(payload.len());
        if payload.len() > self.config.max_payload() {
            return Err(Error::RecordTooLarge {
                frame: frame as u64,
                segment_size: self.config.segment_size,
            });
        }
        let fits = match &self.active {
            Some(a) => a.offset + frame <= a.map.len(),
            None => false,
        };
        if !fits {
            self.roll(sequence)?;
        }
        let Some(a) = self.active.as_mut() else {
            unreachable!("roll leaves an active segment or fails");
        };
        if a.offset + frame > a.populated && !a.populate_refused {
            a.populate_from(a.offset, a.offset + frame);
        }
        let out = a.map.bytes_mut(a.offset, a.offset + frame);
        self.chain =
            crate::format::encode_frame(out, sequence, timestamp, kind, payload, self.chain);
        a.offset += frame;
        a.records += 1;
        if a.offset >= a.report_at {
            Self::report_position(a, self.pretouch.as_ref());
        }
        self.next_seq = Some(sequence.wrapping_add(1));
        self.last_appended = Some(sequence);
        Ok(())
    }

    /// Ends a batch of appends and applies the durability policy to it:
    /// `None` marks it durable, `Write` issues `msync(MS_ASYNC)`,
    /// `FsyncPerBatch` waits for `msync(MS_SYNC)`, `FsyncEveryMillis` does
    /// the latter only when the interval has passed. On success
    /// [`Self::durable_sequence`] covers whatever the policy made durable.
    pub fn end_batch(&mut self) -> Result<()> {
        if self.failure.is_some() {
            return Err(self.stopped());
        }
        match self.config.durability {
            DurabilityPolicy::None => {
                self.durable = self.last_appended;
                Ok(())
            }
            DurabilityPolicy::Write => self.flush(false),
            DurabilityPolicy::FsyncPerBatch => self.flush(true),
            DurabilityPolicy::FsyncEveryMillis(ms) => {
                if self.last_sync.elapsed() >= Duration::from_millis(ms) {
                    self.flush(true)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Under [`DurabilityPolicy::FsyncEveryMillis`], syncs pending records if
    /// the interval has passed (for an idle journaler); returns whether the
    /// durable sequence moved. Under the other policies it does nothing.
    pub fn sync_if_due(&mut self) -> Result<bool> {
        if self.failure.is_some() {
            return Err(self.stopped());
        }
        match self.config.durability {
            DurabilityPolicy::FsyncEveryMillis(ms)
                if self.durable != self.last_appended
                    && self.last_sync.elapsed() >= Duration::from_millis(ms) =>
            {
                self.flush(true)?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Idle-time work for the journaler: writes zeros with `pwrite` over up
    /// to `max_bytes` of the active segment ahead of the write position (the
    /// bytes are zero already; what matters is that their pages are now in
    /// the page cache and allocated), then maps them in writable
    /// ([`MappedMut::populate_write`]), so appends into prepared pages take
    /// no page fault and allocate nothing on the critical path; measured
    /// here, filling a prepared segment runs at several times the speed of a
    /// fresh one. Returns the bytes prepared (0 when the active
    /// segment is prepared to its end or there is none yet; the next
    /// segment is prepared after the roll).
    ///
    /// A write failure stops the journal like any other.
    pub fn prepare_ahead(&mut self, max_bytes: usize) -> Result<usize> {
        if self.failure.is_some() {
            return Err(self.stopped());
        }
        let Some(a) = self.active.as_mut() else {
            return Ok(0);
        };
        const PAGE: usize = 4096;
        let len = a.map.len();
        // Never the page the writer is in: only whole pages beyond it.
        let from = a.prepared.max(a.offset.div_ceil(PAGE) * PAGE).min(len);
        let to = from.saturating_add(max_bytes).min(len);
        let mut at = from;
        while at < to {
            let n = (to - at).min(ZEROS.len());
            if let Err(e) = a.file.write_all_at(&ZEROS[..n], at as u64) {
                let path = a.path.clone();
                return Err(self.fail("prepare segment", path, e));
            }
            at += n;
        }
        // Map the prepared pages in as well: a store into a shared file
        // mapping faults once per fresh page even when the page is cached.
        // A hint only: if the kernel refuses (older than 5.14), appends
        // fault as before.
        if to > from && a.map.shared().populate(from, to) {
            a.populated = a.populated.max(to);
        }
        a.prepared = to;
        Ok(to - from)
    }

    /// Bytes of the active segment prepared by [`Self::prepare_ahead`]
    /// beyond the page the next record goes to (0 without an active segment,
    /// or once the segment is prepared to its end and the writer caught up).
    pub fn prepared_ahead(&self) -> usize {
        self.active.as_ref().map_or(0, |a| {
            a.prepared.saturating_sub(a.offset.div_ceil(4096) * 4096)
        })
    }

    /// Makes every appended record durable now (`msync(MS_SYNC)`), whatever
    /// the policy.
    pub fn sync(&mut self) -> Result<()> {
        if self.failure.is_some() {
            return Err(self.stopped());
        }
        self.flush(true)
    }

    /// Syncs everything and closes the journal (the active segment stays
    /// unsealed; the next open continues it).
    pub fn close(mut self) -> Result<()> {
        self.sync()
    }

    fn flush(&mut self, wait: bool) -> Result<()> {
        if self.durable == self.last_appended {
            self.last_sync = Instant::now();
            return Ok(());
        }
        let result = match self.active.as_mut() {
            Some(a) if a.offset > a.synced => {
                let len = a.offset - a.synced;
                let map = a.map.shared().map();
                let r = if wait {
                    map.flush_range(a.synced, len)
                } else {
                    map.flush_async_range(a.synced, len)
                };
                match r {
                    Ok(()) => {
                        a.synced = a.offset;
                        Ok(())
                    }
                    Err(e) => Err((e, a.path.clone())),
                }
            }
            _ => Ok(()),
        };
        if let Err((e, path)) = result {
            return Err(self.fail(if wait { "msync" } else { "msync async" }, path, e));
        }
        self.durable = self.last_appended;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Seals the active segment and starts a new one whose first record is
    /// `first_seq`.
    fn roll(&mut self, first_seq: u64) -> Result<()> {
        if let Some(mut a) = self.active.take() {
            if a.records == 0 {
                // An empty segment left by recovery (an older, smaller
                // segment size): replace it rather than seal it empty.
                drop(a);
                let Some(meta) = self.segments.pop() else {
                    unreachable!("the active segment is listed");
                };
                if let Err(e) = self.fs.remove_file(&meta.path) {
                    return Err(self.fail("remove empty segment", meta.path, e));
                }
            } else {
                a.header.seal(a.records, a.offset as u64, self.chain);
                a.map
                    .bytes_mut(0, SEGMENT_HEADER_SIZE)
                    .copy_from_slice(&a.header.to_bytes());
                let map = a.map.shared().map();
                let r = match self.config.durability {
                    DurabilityPolicy::None => Ok(()),
                    DurabilityPolicy::Write => map.flush_async_range(0, a.offset),
                    DurabilityPolicy::FsyncPerBatch | DurabilityPolicy::FsyncEveryMillis(_) => {
                        map.flush_range(0, a.offset)
                    }
                };
                if let Err(e) = r {
                    return Err(self.fail("msync (seal segment)", a.path.clone(), e));
                }
            }
        }
        let path = self.dir.join(segment_file_name(first_seq));
        let size = self.config.segment_size;
        let header = SegmentHeader::new(first_seq, now_unix_nanos(), self.chain, size);
        let prepared = self.pretouch.as_ref().and_then(Pretoucher::take_next);
        let (file, map) = match prepared {
            Some(next) => self.adopt_segment(next, &header, &path)?,
            None => self.create_segment(&header, &path)?,
        };
        self.segments.push(SegmentMeta {
            first_seq,
            path: path.clone(),
        });
        if let Some(p) = &self.pretouch {
            p.set_current(std::sync::Arc::clone(map.shared()));
        }
        self.active = Some(Active::new(
            map,
            file,
            header,
            path,
            SEGMENT_HEADER_SIZE,
            0,
            self.pretouch.as_ref(),
        ));
        Ok(())
    }

    /// A new segment the slow way, on the writer's thread: create, reserve
    /// the blocks, write the header, sync (under a syncing policy), map.
    fn create_segment(
        &mut self,
        header: &SegmentHeader,
        path: &Path,
    ) -> Result<(F::File, SegmentWriter<F::MapMut>)> {
        let path = path.to_path_buf();
        let size = header.segment_size;
        let file = match self.fs.open(&path, OpenMode::CreateNew) {
            Ok(f) => f,
            Err(e) => return Err(self.fail("create segment", path, e)),
        };
        if let Err(e) = file.allocate(size) {
            return Err(self.fail("preallocate segment", path, e));
        }
        if let Err(e) = file.write_all_at(&header.to_bytes(), 0) {
            return Err(self.fail("write segment header", path, e));
        }
        if self.config.durability.syncs() {
            if let Err(e) = file.sync_all() {
                return Err(self.fail("fsync new segment", path, e));
            }
            if let Err(e) = self.fs.sync_dir(&self.dir) {
                let dir = self.dir.clone();
                return Err(self.fail("fsync directory", dir, e));
            }
        }
        let map = match self.fs.map_mut(&file, size as usize) {
            Ok(m) => m,
            Err(e) => return Err(self.fail("mmap segment", path, e)),
        };
        if self.config.pretouch.is_none() {
            // The writer (or its idle time, `prepare_ahead`) makes pages
            // ready itself: `pwrite`s of zeros, then `populate_write`. The
            // kernel's readahead for a fault there allocates and zeroes
            // large folios far past the range, in the fallocated, unwritten
            // rest of the segment: one `populate_write` of 256 KiB near a
            // segment's 32 MiB mark took 18 ms that way, a stall of the
            // stage that owns the journal. (A pretoucher thread keeps the
            // readahead: it faults unwritten pages in, where the large
            // folios help, and off the writer's path.)
            let _ = map.no_readahead();
        }
        Ok((file, SegmentWriter::new(map, SEGMENT_HEADER_SIZE)))
    }

    /// A segment the pretoucher prepared (created under a temporary name,
    /// blocks reserved and, under a syncing policy, synced; mapped): write
    /// the header, sync its page (syncing policies), rename it to `path`,
    /// sync the directory (syncing policies). A crash before the rename
    /// leaves a temporary file that the next open removes; after it, the
    /// same states as [`Self::create_segment`].
    fn adopt_segment(
        &mut self,
        next: NextSegment<F>,
        header: &SegmentHeader,
        path: &Path,
    ) -> Result<(F::File, SegmentWriter<F::MapMut>)> {
        let NextSegment {
            file,
            writer,
            path: temporary,
        } = next;
        if let Err(e) = file.write_all_at(&header.to_bytes(), 0) {
            return Err(self.fail("write segment header", temporary, e));
        }
        let syncs = self.config.durability.syncs();
        if syncs {
            if let Err(e) = writer.shared().map().flush_range(0, SEGMENT_HEADER_SIZE) {
                return Err(self.fail("fsync new segment", temporary, e));
            }
        }
        if let Err(e) = self.fs.rename(&temporary, path) {
            return Err(self.fail("rename prepared segment", temporary, e));
        }
        if syncs {
            if let Err(e) = self.fs.sync_dir(&self.dir) {
                let dir = self.dir.clone();
                return Err(self.fail("fsync directory", dir, e));
            }
        }
        Ok((file, writer))
    }

    /// Publishes the writer's position to the pretoucher (once per chunk)
    /// and wakes it if it asked to be woken by now.
    #[cold]
    #[inline(never)]
    fn report_position(a: &mut Active<F>, pretouch: Option<&Pretoucher<F>>) {
        if let Some(p) = pretouch {
            if a.map.shared().publish_written(a.offset) {
                p.wake();
            }
            a.report_at = next_report(a.offset, p.chunk());
        }
    }

    /// The background pretoucher's first failure to prepare a segment that
    /// has not been taken yet (`None` without a pretoucher or a failure; a
    /// single atomic load then). Such a failure does not stop the journal:
    /// the writer creates that segment itself at the roll, under the usual
    /// failure policy.
    pub fn take_pretouch_error(&mut self) -> Option<Error> {
        self.pretouch.as_ref().and_then(Pretoucher::take_error)
    }

    /// What the background pretoucher has done (`None` without one).
    pub fn pretouch_status(&self) -> Option<PretouchStatus> {
        let written = self.active.as_ref().map_or(0, |a| a.offset);
        self.pretouch.as_ref().map(|p| p.status(written))
    }

    fn fail(&mut self, op: &'static str, path: PathBuf, e: io::Error) -> Error {
        if self.failure.is_none() {
            self.failure = Some(Failure {
                op,
                path: path.clone(),
                kind: e.kind(),
            });
        }
        Error::io(op, path, e)
    }

    fn stopped(&self) -> Error {
        match &self.failure {
            Some(f) => Error::Stopped {
                op: f.op,
                path: f.path.clone(),
                kind: f.kind,
            },
            None => unreachable!("stopped() without a failure"),
        }
    }

    /// Whether an I/O failure stopped the journal (appends are refused).
    pub fn is_stopped(&self) -> bool {
        self.failure.is_some()
    }

    /// The sequence number the next append must carry (`None` for an empty
    /// journal, which accepts any).
    pub fn next_sequence(&self) -> Option<u64> {
        self.next_seq
    }

    /// The last sequence number appended (durable or not).
    pub fn last_sequence(&self) -> Option<u64> {
        self.last_appended
    }

    /// The last sequence number made durable under the policy. Records
    /// recovered on open count as durable.
    pub fn durable_sequence(&self) -> Option<u64> {
        self.durable
    }

    /// The first sequence number still in the journal.
    pub fn first_sequence(&self) -> Option<u64> {
        self.segments.first().map(|s| s.first_seq)
    }

    /// The chain value after the last appended record. Keeping a copy of it
    /// elsewhere (for example in the output journal or an audit log) is what
    /// makes the chain evidence against a forger who rewrites the files.
    pub fn chain_head(&self) -> u64 {
        self.chain
    }

    /// The journal directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &JournalConfig {
        &self.config
    }

    /// The segment files, oldest first.
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.iter().map(|s| s.path.clone()).collect()
    }

    /// A reader over this journal's directory, positioned at `from`
    /// (see [`JournalReader`]).
    pub fn reader(&self, from: u64) -> Result<JournalReader<F>> {
        JournalReader::open_with(self.fs.clone(), &self.dir, from)
    }

    /// Removes the sealed segments all of whose records have sequence
    /// numbers `<= sequence` (for example: covered by a snapshot at
    /// `sequence`). The active (last) segment is never removed. Returns the
    /// removed files. A failure here does not stop the journal.
    pub fn remove_segments_through(&mut self, sequence: u64) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        while self.segments.len() >= 2 {
            let next_first = self.segments[1].first_seq;
            // Segment 0 holds [first, next_first - 1].
            if next_first == 0 || next_first - 1 > sequence {
                break;
            }
            let path = self.segments[0].path.clone();
            self.fs
                .remove_file(&path)
                .map_err(|e| Error::io("remove segment", &path, e))?;
            self.segments.remove(0);
            removed.push(path);
        }
        if !removed.is_empty() {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        }
        Ok(removed)
    }
}

/// Recovery state while opening.
struct Recovery<'a, F: FileSystem> {
    fs: &'a F,
    dir: &'a Path,
    config: &'a JournalConfig,
    report: RecoveryReport,
    kept: Vec<SegmentMeta>,
    prev: Option<Continuation>,
    /// The last segment if it is unsealed: (file, header, path, next frame
    /// offset, records).
    active: Option<(F::File, SegmentHeader, PathBuf, usize, u64)>,
}

impl<F: FileSystem> Recovery<'_, F> {
    fn run(&mut self) -> Result<()> {
        let segments = list_segments(self.fs, self.dir)
            .map_err(|e| Error::io("list directory", self.dir, e))?;
        let mut buf = Vec::new();
        for (i, (name_seq, path)) in segments.iter().enumerate() {
            let is_last = i + 1 == segments.len();
            let file = self
                .fs
                .open(path, OpenMode::ReadWrite)
                .map_err(|e| Error::io("open segment", path, e))?;
            file.read_to_vec(&mut buf)
                .map_err(|e| Error::io("read segment", path, e))?;
            let found = inspect_segment(&buf, *name_seq, self.prev, is_last);
            match found.verdict {
                Verdict::Incomplete => {
                    drop(file);
                    self.fs
                        .remove_file(path)
                        .map_err(|e| Error::io("remove incomplete segment", path, e))?;
                    self.sync_dir()?;
                    self.report.removed_incomplete_segment = Some(path.clone());
                    break;
                }
                Verdict::Damaged {
                    offset,
                    sequence,
                    reason,
                } => {
                    if self.config.recovery == RecoveryMode::Strict {
                        return Err(Error::Corrupt {
                            file: path.clone(),
                            offset: offset as u64,
                            sequence,
                            reason,
                        });
                    }
                    let mut dropped = DroppedData {
                        file: path.clone(),
                        offset: offset as u64,
                        sequence,
                        reason,
                        saved_tail: None,
                        renamed_segments: Vec::new(),
                    };
                    let later = if offset == 0 || found.scan.is_none() {
                        // A bad header, gap or link: drop the whole segment.
                        drop(file);
                        &segments[i..]
                    } else {
                        dropped.saved_tail = self.save_tail(path, &buf[offset..])?;
                        self.keep(file, &found, path, &buf, Some(offset), is_last)?;
                        &segments[i + 1..]
                    };
                    for (_, later_path) in later {
                        let mut name = later_path.clone().into_os_string();
                        name.push(".dropped");
                        let to = PathBuf::from(name);
                        self.fs
                            .rename(later_path, &to)
                            .map_err(|e| Error::io("rename dropped segment", later_path, e))?;
                        dropped.renamed_segments.push(to);
                    }
                    self.sync_dir()?;
                    self.report.dropped = Some(dropped);
                    break;
                }
                Verdict::TornTail { offset, reason } => {
                    let scan = found.scan.expect("a torn tail was scanned");
                    self.report.torn_tail = Some(TornTail {
                        file: path.clone(),
                        offset: offset as u64,
                        sequence: scan.next_seq,
                        bytes_discarded: nonzero_extent(&buf[offset..]) as u64,
                        reason,
                    });
                    self.keep(file, &found, path, &buf, Some(offset), is_last)?;
                }
                Verdict::Clean => self.keep(file, &found, path, &buf, None, is_last)?,
            }
        }
        self.report.segments = self.kept.len();
        self.report.first_sequence = self.kept.first().map(|s| s.first_seq);
        self.report.last_sequence = match self.prev {
            Some(p) if self.report.records > 0 => p.next_seq.checked_sub(1),
            _ => None,
        };
        self.report.chain_head = self.prev.map_or(CHAIN_GENESIS, |p| p.chain);
        Ok(())
    }

    /// Keeps a segment whose records are valid up to `truncate_at` (or up to
    /// the scan's end). Truncates and unseals it if needed; makes it the
    /// active segment if it is now the last one and unsealed; reseals a
    /// complete unsealed segment that is not the last.
    fn keep(
        &mut self,
        file: F::File,
        found: &crate::inspect::Inspection,
        path: &Path,
        buf: &[u8],
        truncate_at: Option<usize>,
        is_last: bool,
    ) -> Result<()> {
        let (Some(mut header), Some(scan)) = (found.header, found.scan) else {
            unreachable!("kept segments have a header and a scan");
        };
        let file_len = buf.len() as u64;
        let becomes_last = is_last || truncate_at.is_some();
        if let Some(at) = truncate_at {
            // Cut the file at `at`, then extend it back with zeros.
            let target = file_len.max(header.segment_size);
            file.set_len(at as u64)
                .and_then(|()| file.set_len(target))
                .map_err(|e| Error::io("truncate segment", path, e))?;
            if header.is_sealed() {
                header.unseal();
                file.write_all_at(&header.to_bytes(), 0)
                    .map_err(|e| Error::io("rewrite segment header", path, e))?;
            }
            file.sync_all()
                .map_err(|e| Error::io("fsync segment", path, e))?;
        } else if !header.is_sealed() && !is_last {
            // Complete but unsealed, and a later segment exists: a crash
            // while rolling. Seal it now.
            let end = align_frame(scan.end);
            if end as u64 > file_len {
                file.set_len(end as u64)
                    .map_err(|e| Error::io("extend segment", path, e))?;
            }
            header.seal(scan.records, end as u64, scan.chain);
            file.write_all_at(&header.to_bytes(), 0)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io("seal segment", path, e))?;
            self.report.resealed_segments.push(path.to_path_buf());
        }
        let end = truncate_at.unwrap_or(scan.end);
        if becomes_last && !header.is_sealed() {
            // The active segment: make sure it has its full size, and start
            // appending at the next aligned offset.
            let offset = align_frame(end);
            let want = file_len.max(header.segment_size).max(offset as u64);
            if truncate_at.is_none() && want > file_len {
                file.set_len(want)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| Error::io("extend segment", path, e))?;
            }
            self.active = Some((file, header, path.to_path_buf(), offset, scan.records));
        }
        self.report.records += scan.records;
        self.prev = Some(Continuation {
            next_seq: scan.next_seq,
            chain: scan.chain,
        });
        self.kept.push(SegmentMeta {
            first_seq: header.first_sequence,
            path: path.to_path_buf(),
        });
        Ok(())
    }

    fn save_tail(&self, path: &Path, tail: &[u8]) -> Result<Option<PathBuf>> {
        let extent = nonzero_extent(tail);
        if extent == 0 {
            return Ok(None);
        }
        let mut name = path.to_path_buf().into_os_string();
        name.push(".tail.dropped");
        let to = PathBuf::from(name);
        let f = self
            .fs
            .open(&to, OpenMode::CreateTruncate)
            .map_err(|e| Error::io("create dropped tail", &to, e))?;
        f.write_all_at(&tail[..extent], 0)
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io("write dropped tail", &to, e))?;
        Ok(Some(to))
    }

    fn sync_dir(&self) -> Result<()> {
        self.fs
            .sync_dir(self.dir)
            .map_err(|e| Error::io("fsync directory", self.dir, e))
    }
}

/// Removes segment files a pretoucher prepared and nobody took (a crash
/// before the roll that would have renamed them). Best effort: they are
/// ignored anyway.
fn remove_pretouch_leftovers<F: FileSystem>(fs: &F, dir: &Path) {
    let Ok(names) = fs.list_dir(dir) else {
        return;
    };
    for name in names {
        if name.to_str().is_some_and(|n| n.ends_with(PRETOUCH_SUFFIX)) {
            let _ = fs.remove_file(&dir.join(name));
        }
    }
}
