//! The small file-system interface all journal and snapshot I/O goes through.
//!
//! [`StdFs`] is the real implementation (std files, `memmap2` mappings,
//! `flock` for the writer's lock). [`crate::fault::FaultyFs`] wraps any
//! implementation and fails chosen operations, so tests can show that a
//! failed write, fsync or rename surfaces as an error and stops the writer.
//!
//! The interface is deliberately narrow, in the spirit of raft-engine's
//! `FileSystem`: open or create a file, positional reads and writes,
//! `set_len` (truncate or extend with zeros), fsync, a writable shared
//! mapping with synchronous and asynchronous flushes, rename, remove, list a
//! directory, fsync a directory, and an advisory exclusive lock.
//!
//! Unix only: positional I/O uses `std::os::unix::fs::FileExt`.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;

/// How [`FileSystem::open`] opens a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only; the file must exist.
    Read,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write; the file must not exist yet.
    CreateNew,
    /// Read and write; created if missing, emptied if present.
    CreateTruncate,
}

impl OpenMode {
    /// Whether this mode may create a file.
    pub fn creates(self) -> bool {
        matches!(self, OpenMode::CreateNew | OpenMode::CreateTruncate)
    }
}

/// File-system operations used by the journal and the snapshot store.
///
/// Implementations are cheap to clone (a handle) and usable from several
/// threads; each returned file or mapping is used by one thread at a time.
pub trait FileSystem: Clone + Send + Sync + 'static {
    /// An open file.
    type File: FsFile;
    /// A writable shared mapping of a file.
    type MapMut: MappedMut;
    /// A held exclusive lock, released when dropped.
    type Lock: Send;

    /// Creates `dir` and its parents if missing.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The names of the entries in `dir` (not sorted).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Opens `path` in `mode`.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Self::File>;
    /// Maps the first `len` bytes of `file` (opened for writing) shared and
    /// writable. The file must be at least `len` bytes long.
    fn map_mut(&self, file: &Self::File, len: usize) -> io::Result<Self::MapMut>;
    /// Renames `from` to `to`, replacing `to` atomically if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file at `path`.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Makes `dir`'s entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive advisory lock on `dir` without waiting. Fails with
    /// [`io::ErrorKind::WouldBlock`] when another holder has it.
    fn try_lock_dir(&self, dir: &Path) -> io::Result<Self::Lock>;
}

/// An open file.
pub trait FsFile: Send + Sync {
    /// The file's current size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes a new file `len` bytes long with its blocks reserved, so that
    /// stores into a mapping of it cannot fail for want of disk space (which
    /// would kill the process with `SIGBUS`). The default is `set_len`.
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
    /// Reads into `buf` from `offset`; returns the bytes read (fewer than
    /// `buf.len()` only at the end of the file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Makes the file's data and metadata durable (`fsync`).
    fn sync_all(&self) -> io::Result<()>;

    /// Reads the whole file into `buf` (replacing its contents).
    fn read_to_vec(&self, buf: &mut Vec<u8>) -> io::Result<()> {
        let size = usize::try_from(self.size()?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        buf.clear();
        buf.resize(size, 0);
        let mut done = 0;
        while done < size {
            let n = self.read_at(&mut buf[done..], done as u64)?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        Ok(())
    }
}

/// A writable shared mapping of a file: stores reach the page cache (and so
/// other readers of the file) directly.
///
/// # Safety
///
/// The journal writer takes a raw pointer from [`Self::as_mut_slice`] once,
/// right after mapping, and stores records through it for as long as the
/// mapping lives; the background pretoucher (see `JournalConfig::pretouch`)
/// meanwhile calls [`Self::populate_write`] through a shared reference on
/// another thread. An implementation must therefore:
///
/// - return the same memory from every call of [`Self::as_slice`] and
///   [`Self::as_mut_slice`] for the value's whole life, even when the value
///   is moved (as a real `mmap` does: the bytes are not inside the value);
/// - never read or write the mapped bytes through a Rust reference in
///   [`Self::populate_write`], [`Self::flush_range`] or
///   [`Self::flush_async_range`] (system calls on the address range, such
///   as `madvise` and `msync`, are fine), nor in `Drop`, other than unmapping.
pub unsafe trait MappedMut: Send + Sync {
    /// The mapped bytes.
    fn as_slice(&self) -> &[u8];
    /// The mapped bytes, writable.
    fn as_mut_slice(&mut self) -> &mut [u8];
    /// Writes `[offset, offset + len)` back to the file and waits for it
    /// (`msync(MS_SYNC)`: durable on return).
    fn flush_range(&self, offset: usize, len: usize) -> io::Result<()>;
    /// Asks the OS to write `[offset, offset + len)` back without waiting
    /// (`msync(MS_ASYNC)`).
    fn flush_async_range(&self, offset: usize, len: usize) -> io::Result<()>;
    /// Maps `[offset, offset + len)` in writable ahead of use, so that later
    /// stores into it take no page fault. A hint: the default does nothing,
    /// and an error only means the stores will fault as usual. It must not
    /// change the bytes: it may run on another thread while the writer
    /// stores records into the same range.
    fn populate_write(&self, offset: usize, len: usize) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// Asks the OS not to read ahead when a page of the mapping faults
    /// (`madvise(MADV_RANDOM)`). A hint: the default does nothing.
    fn no_readahead(&self) -> io::Result<()> {
        Ok(())
    }
}

/// The real file system: `std::fs`, `memmap2` and `flock`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StdFs;

/// A [`StdFs`] file.
#[derive(Debug)]
pub struct StdFile(File);

/// A [`StdFs`] mapping.
#[derive(Debug)]
pub struct StdMapMut(memmap2::MmapMut);

/// A [`StdFs`] directory lock: an open `LOCK` file holding `flock(LOCK_EX)`.
#[derive(Debug)]
pub struct StdLock(#[allow(dead_code)] File);

/// Name of the lock file the writer holds in the journal directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

impl FileSystem for StdFs {
    type File = StdFile;
    type MapMut = StdMapMut;
    type Lock = StdLock;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<StdFile> {
        let mut o = OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::ReadWrite => o.read(true).write(true),
            OpenMode::CreateNew => o.read(true).write(true).create_new(true),
            OpenMode::CreateTruncate => o.read(true).write(true).create(true).truncate(true),
        };
        o.open(path).map(StdFile)
    }

    fn map_mut(&self, file: &StdFile, len: usize) -> io::Result<StdMapMut> {
        if file.size()? < len as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "mapping past the end of the file",
            ));
        }
        // SAFETY: the mapping covers bytes that exist in the file (checked
        // just above). memmap2 requires that nothing else truncates or
        // modifies the file while it is mapped: the journal maps only its
        // active segment, which only the single writer holding the directory
        // lock (`try_lock_dir`) writes or truncates, and it drops the mapping
        // before it truncates during recovery. Readers never write segment
        // files. Modifying the files behind the writer's back (by hand, or a
        // second writer that ignores the lock) is outside this contract.
        let map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(&file.0)? };
        Ok(StdMapMut(map))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn try_lock_dir(&self, dir: &Path) -> io::Result<StdLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE_NAME))?;
        // SAFETY: `flock` is called with a file descriptor that `file` owns
        // and keeps open for the duration of the call; it does not touch
        // memory.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(StdLock(file))
    }
}

impl FsFile for StdFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        let len_off = libc::off_t::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length too large"))?;
        // SAFETY: `posix_fallocate` is called with a descriptor that `self`
        // owns and keeps open for the duration of the call; it does not
        // touch memory.
        let rc = unsafe { libc::posix_fallocate(self.0.as_raw_fd(), 0, len_off) };
        match rc {
            0 => Ok(()),
            // File systems without fallocate: fall back to a sparse file.
            libc::EOPNOTSUPP | libc::EINVAL => self.0.set_len(len),
            errno => Err(io::Error::from_raw_os_error(errno)),
        }
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match self.0.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }
}

// SAFETY: the bytes live in the kernel's mapping, not in the value (memmap2
// keeps a raw pointer), so they do not move with it; `populate_write` and the
// flushes are `madvise` and `msync` on the address range, which create no
// reference to the bytes.
unsafe impl MappedMut for StdMapMut {
    #[inline]
    fn as_slice(&self) -> &[u8] {
        &self.0
    }

    #[inline]
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.0
    }

    fn flush_range(&self, offset: usize, len: usize) -> io::Result<()> {
        self.0.flush_range(offset, len)
    }

    fn flush_async_range(&self, offset: usize, len: usize) -> io::Result<()> {
        self.0.flush_async_range(offset, len)
    }

    /// `madvise(MADV_POPULATE_WRITE)` (Linux 5.14+): write-faults the pages
    /// in now, without changing their contents. Stores into a shared file
    /// mapping get no fault-around, so without this every fresh 4 KiB page
    /// costs the appender one page fault even when it is in the page cache.
    #[cfg(target_os = "linux")]
    fn populate_write(&self, offset: usize, len: usize) -> io::Result<()> {
        self.0
            .advise_range(memmap2::Advice::PopulateWrite, offset, len)
    }

    fn no_readahead(&self) -> io::Result<()> {
        self.0.advise(memmap2::Advice::Random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_writes_through_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let fs = StdFs;
        let f = fs.open(&path, OpenMode::CreateNew).unwrap();
        f.set_len(8192).unwrap();
        let mut m = fs.map_mut(&f, 8192).unwrap();
        m.as_mut_slice()[5000..5003].copy_from_slice(b"abc");
        m.flush_range(5000, 3).unwrap();
        m.flush_async_range(0, 8192).unwrap();
        let mut buf = [0u8; 3];
        assert_eq!(f.read_at(&mut buf, 5000).unwrap(), 3);
        assert_eq!(&buf, b"abc");
        assert!(fs.map_mut(&f, 9000).is_err());
        assert!(fs.open(&path, OpenMode::CreateNew).is_err());
    }

    #[test]
    fn the_directory_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFs;
        let held = fs.try_lock_dir(dir.path()).unwrap();
        let err = fs.try_lock_dir(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        drop(held);
        fs.try_lock_dir(dir.path()).unwrap();
    }

    #[test]
    fn read_to_vec_reads_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs = StdFs;
        let f = fs
            .open(&dir.path().join("g"), OpenMode::CreateTruncate)
            .unwrap();
        f.write_all_at(&[7u8; 10_000], 0).unwrap();
        let mut v = vec![1, 2, 3];
        f.read_to_vec(&mut v).unwrap();
        assert_eq!(v, vec![7u8; 10_000]);
    }
}
