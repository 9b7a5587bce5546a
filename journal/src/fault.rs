//! A fault-injecting [`FileSystem`] for tests.
//!
//! [`FaultyFs`] wraps another file system (by default [`StdFs`]) and counts
//! every operation by class ([`FaultOp`]). A [`FaultPlan`] shared with the
//! test says which operations fail: the Nth one of a class from now, or every
//! one from the Nth on. A failed operation does nothing and returns an
//! [`io::Error`] whose message starts with `"injected fault"`.
//!
//! ```
//! use ringex_journal::fault::{FaultOp, FaultyFs};
//!
//! let fs = FaultyFs::new();
//! // The next fsync-class operation fails, and every one after it.
//! fs.plan().fail_from_next(FaultOp::Sync, 1);
//! ```
//!
//! Stores into a mapping cannot fail (they are memory writes); the mapping's
//! flushes are counted as [`FaultOp::Sync`].

use crate::fs::{FileSystem, FsFile, MappedMut, OpenMode, StdFs};
use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The classes of operation a [`FaultPlan`] can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// `write_all_at`, `set_len` and `allocate`.
    Write,
    /// `sync_all`, `sync_dir`, and a mapping's `flush_range` and
    /// `flush_async_range`.
    Sync,
    /// `rename`.
    Rename,
    /// `remove_file`.
    Remove,
    /// `open` in a creating mode, and `map_mut`.
    Create,
}

impl FaultOp {
    const ALL: [FaultOp; 5] = [
        FaultOp::Write,
        FaultOp::Sync,
        FaultOp::Rename,
        FaultOp::Remove,
        FaultOp::Create,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy)]
struct Rule {
    op: FaultOp,
    /// 1-based index (in this class's count) of the first failing operation.
    first: u64,
    /// Fail every operation from `first` on, not just `first`.
    sticky: bool,
}

/// Which operations fail, and how many of each class have run.
///
/// Counters use `Relaxed` ordering: they are plain statistics, and a test
/// arms a plan before the operations it targets on the same thread (or
/// before handing the file system to another thread, which synchronises).
#[derive(Debug, Default)]
pub struct FaultPlan {
    counts: [AtomicU64; 5],
    injected: AtomicU64,
    rules: Mutex<Vec<Rule>>,
}

impl FaultPlan {
    /// How many operations of class `op` have been attempted.
    pub fn count(&self, op: FaultOp) -> u64 {
        self.counts[op.index()].load(Ordering::Relaxed)
    }

    /// How many operations have failed by injection.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// The `n`th operation of class `op` from now (1 = the next one) fails;
    /// the others succeed.
    pub fn fail_nth_next(&self, op: FaultOp, n: u64) {
        self.push(op, n, false);
    }

    /// Every operation of class `op` from the `n`th from now on (1 = the next
    /// one) fails.
    pub fn fail_from_next(&self, op: FaultOp, n: u64) {
        self.push(op, n, true);
    }

    /// Removes every rule; later operations succeed.
    pub fn clear(&self) {
        self.rules.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn push(&self, op: FaultOp, n: u64, sticky: bool) {
        assert!(n >= 1, "fault plans count from 1");
        let first = self.count(op) + n;
        self.rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Rule { op, first, sticky });
    }

    /// Counts one operation of class `op` and says whether it must fail.
    fn check(&self, op: FaultOp, what: &str) -> io::Result<()> {
        let n = self.counts[op.index()].fetch_add(1, Ordering::Relaxed) + 1;
        let fail = self
            .rules
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|r| r.op == op && (n == r.first || (r.sticky && n > r.first)));
        if fail {
            self.injected.fetch_add(1, Ordering::Relaxed);
            Err(io::Error::other(format!(
                "injected fault: {what} ({op:?} #{n})"
            )))
        } else {
            Ok(())
        }
    }

    /// Total operations attempted, all classes.
    pub fn total(&self) -> u64 {
        FaultOp::ALL.iter().map(|&op| self.count(op)).sum()
    }
}

/// A [`FileSystem`] that fails operations chosen by its [`FaultPlan`].
#[derive(Debug, Clone)]
pub struct FaultyFs<F: FileSystem = StdFs> {
    inner: F,
    plan: Arc<FaultPlan>,
}

impl FaultyFs<StdFs> {
    /// Wraps the real file system with an empty plan.
    pub fn new() -> Self {
        FaultyFs::wrap(StdFs)
    }
}

impl Default for FaultyFs<StdFs> {
    fn default() -> Self {
        FaultyFs::new()
    }
}

impl<F: FileSystem> FaultyFs<F> {
    /// Wraps `inner` with an empty plan.
    pub fn wrap(inner: F) -> Self {
        FaultyFs {
            inner,
            plan: Arc::new(FaultPlan::default()),
        }
    }

    /// The plan shared by this file system and its clones.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }
}

/// A [`FaultyFs`] file.
#[derive(Debug)]
pub struct FaultyFile<F: FsFile> {
    inner: F,
    plan: Arc<FaultPlan>,
}

/// A [`FaultyFs`] mapping.
#[derive(Debug)]
pub struct FaultyMapMut<M: MappedMut> {
    inner: M,
    plan: Arc<FaultPlan>,
}

impl<F: FileSystem> FileSystem for FaultyFs<F> {
    type File = FaultyFile<F::File>;
    type MapMut = FaultyMapMut<F::MapMut>;
    type Lock = F::Lock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.inner.list_dir(dir)
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Self::File> {
        if mode.creates() {
            self.plan.check(FaultOp::Create, "open")?;
        }
        Ok(FaultyFile {
            inner: self.inner.open(path, mode)?,
            plan: self.plan.clone(),
        })
    }

    fn map_mut(&self, file: &Self::File, len: usize) -> io::Result<Self::MapMut> {
        self.plan.check(FaultOp::Create, "map_mut")?;
        Ok(FaultyMapMut {
            inner: self.inner.map_mut(&file.inner, len)?,
            plan: self.plan.clone(),
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.plan.check(FaultOp::Rename, "rename")?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.plan.check(FaultOp::Remove, "remove_file")?;
        self.inner.remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.plan.check(FaultOp::Sync, "sync_dir")?;
        self.inner.sync_dir(dir)
    }

    fn try_lock_dir(&self, dir: &Path) -> io::Result<Self::Lock> {
        self.inner.try_lock_dir(dir)
    }
}

impl<F: FsFile> FsFile for FaultyFile<F> {
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.plan.check(FaultOp::Write, "set_len")?;
        self.inner.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        self.plan.check(FaultOp::Write, "allocate")?;
        self.inner.allocate(len)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.plan.check(FaultOp::Write, "write_all_at")?;
        self.inner.write_all_at(buf, offset)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.plan.check(FaultOp::Sync, "sync_all")?;
        self.inner.sync_all()
    }
}

// SAFETY: every method forwards to the inner mapping, which upholds the
// contract; the plan's bookkeeping touches no mapped byte.
unsafe impl<M: MappedMut> MappedMut for FaultyMapMut<M> {
    #[inline]
    fn as_slice(&self) -> &[u8] {
        self.inner.as_slice()
    }

    #[inline]
    fn as_mut_slice(&mut self) -> &mut [u8] {
        self.inner.as_mut_slice()
    }

    fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        self.plan.check(FaultOp::Sync, "msync")?;
        self.inner.flush_range(offset, len)
    }

    fn flush_async_range(&self, offset: usize, len: usize) -> io::Result<()> {
        self.plan.check(FaultOp::Sync, "msync async")?;
        self.inner.flush_async_range(offset, len)
    }

    fn populate_write(&self, offset: usize, len: usize) -> io::Result<()> {
        self.inner.populate_write(offset, len)
    }

    fn no_readahead(&self) -> io::Result<()> {
        self.inner.no_readahead()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_operation_fails_once_and_sticky_rules_keep_failing() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new();
        let f = fs.open(&dir.path().join("a"), OpenMode::CreateNew).unwrap();
        fs.plan().fail_nth_next(FaultOp::Write, 2);
        f.write_all_at(b"1", 0).unwrap();
        assert!(f.write_all_at(b"2", 1).is_err());
        f.write_all_at(b"3", 2).unwrap();
        fs.plan().fail_from_next(FaultOp::Sync, 1);
        assert!(f.sync_all().is_err());
        assert!(fs.sync_dir(dir.path()).is_err());
        assert_eq!(fs.plan().injected(), 3);
        fs.plan().clear();
        f.sync_all().unwrap();
        assert_eq!(fs.plan().count(FaultOp::Write), 3);
        assert_eq!(fs.plan().count(FaultOp::Sync), 3);
    }
}
