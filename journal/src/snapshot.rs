//! Snapshots of engine state at a sequence number, and retention.
//!
//! A snapshot at sequence `S` holds opaque state bytes *after* the record
//! with sequence `S` was applied: recovery loads it and replays the journal
//! from `S + 1`.
//!
//! # File layout (format version 1)
//!
//! One file per snapshot, `snapshot-{sequence:020}.snap`:
//!
//! ```text
//!  0       1       2       3       4       5       6       7       8
//!  +-------+-------+-------+-------+-------+-------+-------+-------+
//!  |               magic  "RGXSNAP\0"  (8 bytes)                   |   0
//!  +---------------+---------------+-------------------------------+
//!  | version (u16) | flags (u16)=0 |       header_crc (u32)        |   8
//!  +---------------+---------------+-------------------------------+
//!  |                       sequence (u64)                          |  16
//!  +---------------------------------------------------------------+
//!  |               created_unix_nanos (u64)                        |  24
//!  +---------------------------------------------------------------+
//!  |                 length (u64, payload bytes)                   |  32
//!  +-------------------------------+-------------------------------+
//!  |      payload_crc (u32)        |       reserved (u32) = 0      |  40
//!  +-------------------------------+-------------------------------+
//!  |                     payload (length bytes)                    |  48
//!  +---------------------------------------------------------------+
//! ```
//!
//! `header_crc` is the CRC32C of the 48 header bytes with the `header_crc`
//! field taken as zero; `payload_crc` the CRC32C of the payload. The file is
//! exactly 48 + `length` bytes.
//!
//! # Atomicity
//!
//! [`SnapshotStore::write`] writes `snapshot-….snap.tmp`, fsyncs it, renames
//! it to its final name and fsyncs the directory. A crash or failure at any
//! step leaves either no new snapshot (the temporary file is ignored and
//! removed later) or the complete new one; the previous snapshots are never
//! touched.
//!
//! # Threads
//!
//! A [`SnapshotStore`] is a handle (directory + file system); writing one
//! snapshot per sequence number from one thread at a time is the caller's
//! rule. Loading can happen anywhere.

use crate::error::{Error, Result};
use crate::format::{get_u16, get_u32, get_u64, put_u16, put_u32, put_u64};
use crate::fs::{FileSystem, FsFile, OpenMode, StdFs};
use crate::journal::Journal;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Magic bytes at the start of a snapshot file.
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"RGXSNAP\0";
/// The snapshot format version this build writes and reads.
pub const SNAPSHOT_FORMAT_VERSION: u16 = 1;
/// Size of the snapshot header; the payload starts here.
pub const SNAPSHOT_HEADER_SIZE: usize = 48;

/// Byte offsets of the snapshot header fields.
pub mod snapshot_header {
    /// `magic` (8 bytes).
    pub const MAGIC: usize = 0;
    /// `version` (u16).
    pub const VERSION: usize = 8;
    /// `flags` (u16, zero).
    pub const FLAGS: usize = 10;
    /// `header_crc` (u32).
    pub const HEADER_CRC: usize = 12;
    /// `sequence` (u64).
    pub const SEQUENCE: usize = 16;
    /// `created_unix_nanos` (u64).
    pub const CREATED_UNIX_NANOS: usize = 24;
    /// `length` (u64).
    pub const LENGTH: usize = 32;
    /// `payload_crc` (u32).
    pub const PAYLOAD_CRC: usize = 40;
    /// `reserved` (u32, zero).
    pub const RESERVED: usize = 44;
}

/// The file name of the snapshot at `sequence`.
pub fn snapshot_file_name(sequence: u64) -> String {
    format!("snapshot-{sequence:020}.snap")
}

const TMP_SUFFIX: &str = ".tmp";

fn parse_snapshot_name(name: &str) -> Option<(u64, bool)> {
    let (stem, tmp) = match name.strip_suffix(TMP_SUFFIX) {
        Some(s) => (s, true),
        None => (name, false),
    };
    let digits = stem.strip_prefix("snapshot-")?.strip_suffix(".snap")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits.parse().ok()?, tmp))
}

/// Why a snapshot file was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotDefect {
    /// A temporary file left by a write that did not complete.
    #[error("incomplete temporary file")]
    Incomplete,
    /// Shorter than a header.
    #[error("file of {0} bytes is shorter than a snapshot header")]
    TooShort(u64),
    /// Wrong magic bytes.
    #[error("bad magic (not a ringex snapshot)")]
    BadMagic,
    /// A version this build does not read.
    #[error("unsupported snapshot format version {0}")]
    UnsupportedVersion(u16),
    /// Header CRC mismatch.
    #[error("header CRC mismatch")]
    HeaderCrc,
    /// Non-zero flags or reserved bytes.
    #[error("unknown flags or non-zero reserved bytes")]
    UnknownFlags,
    /// The header's sequence number differs from the file name's.
    #[error("file name says sequence {name}, header says {header}")]
    SequenceMismatch {
        /// From the file name.
        name: u64,
        /// From the header.
        header: u64,
    },
    /// The file is not header + `length` bytes long.
    #[error("header says {header} payload bytes, file has {file}")]
    LengthMismatch {
        /// From the header.
        header: u64,
        /// In the file.
        file: u64,
    },
    /// Payload CRC mismatch.
    #[error("payload CRC mismatch")]
    PayloadCrc,
    /// The file could not be read.
    #[error("read failed: {0}")]
    Unreadable(std::io::ErrorKind),
}

/// A loaded snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The sequence number it was taken at.
    pub sequence: u64,
    /// When it was written, nanoseconds since the Unix epoch.
    pub created_unix_nanos: u64,
    /// Its file.
    pub path: PathBuf,
    /// The state bytes.
    pub bytes: Vec<u8>,
}

/// A snapshot file that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedSnapshot {
    /// The file.
    pub path: PathBuf,
    /// The reason.
    pub defect: SnapshotDefect,
}

/// What [`SnapshotStore::load_newest_valid`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotLoad {
    /// The newest valid snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Newer (or temporary) files that were skipped, newest first.
    pub skipped: Vec<SkippedSnapshot>,
}

/// A snapshot file in the directory (not yet validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The sequence number from its name.
    pub sequence: u64,
    /// The file.
    pub path: PathBuf,
}

/// What a retention pass removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetentionReport {
    /// The oldest snapshot kept, whose sequence bounded segment removal.
    pub oldest_kept: Option<u64>,
    /// Snapshot (and temporary) files removed.
    pub removed_snapshots: Vec<PathBuf>,
    /// Journal segments removed.
    pub removed_segments: Vec<PathBuf>,
}

/// How many snapshots to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep this many newest valid snapshots (at least 1).
    pub keep_snapshots: usize,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy { keep_snapshots: 2 }
    }
}

/// A directory of snapshots on a file system.
#[derive(Debug, Clone)]
pub struct SnapshotStore<F: FileSystem = StdFs> {
    fs: F,
    dir: PathBuf,
}

impl SnapshotStore<StdFs> {
    /// The snapshot directory `dir` on the real file system (created if
    /// missing).
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        SnapshotStore::open_with(StdFs, dir)
    }
}

impl<F: FileSystem> SnapshotStore<F> {
    /// The snapshot directory `dir` on `fs` (created if missing).
    pub fn open_with(fs: F, dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs.create_dir_all(&dir)
            .map_err(|e| Error::io("create directory", &dir, e))?;
        Ok(SnapshotStore { fs, dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes the snapshot at `sequence` atomically (see the module docs)
    /// and returns its path. An existing snapshot at the same sequence is
    /// replaced atomically.
    pub fn write(&self, sequence: u64, bytes: &[u8]) -> Result<PathBuf> {
        let final_path = self.dir.join(snapshot_file_name(sequence));
        let tmp = self
            .dir
            .join(format!("{}{TMP_SUFFIX}", snapshot_file_name(sequence)));
        let header = encode_header(sequence, now_unix_nanos(), bytes);
        let written = (|| {
            let f = self
                .fs
                .open(&tmp, OpenMode::CreateTruncate)
                .map_err(|e| Error::io("create snapshot", &tmp, e))?;
            f.write_all_at(&header, 0)
                .and_then(|()| f.write_all_at(bytes, SNAPSHOT_HEADER_SIZE as u64))
                .map_err(|e| Error::io("write snapshot", &tmp, e))?;
            f.sync_all()
                .map_err(|e| Error::io("fsync snapshot", &tmp, e))?;
            drop(f);
            self.fs
                .rename(&tmp, &final_path)
                .map_err(|e| Error::io("rename snapshot", &tmp, e))
        })();
        if let Err(e) = written {
            // Best effort: a leftover temporary file is ignored by loading
            // and removed by retention.
            let _ = self.fs.remove_file(&tmp);
            return Err(e);
        }
        self.fs
            .sync_dir(&self.dir)
            .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        Ok(final_path)
    }

    /// The snapshot files (valid names only, not validated), oldest first,
    /// and the temporary files.
    fn entries(&self) -> Result<(Vec<SnapshotEntry>, Vec<PathBuf>)> {
        let mut entries = Vec::new();
        let mut tmps = Vec::new();
        let names = self
            .fs
            .list_dir(&self.dir)
            .map_err(|e| Error::io("list directory", &self.dir, e))?;
        for name in names {
            let Some((sequence, tmp)) = name.to_str().and_then(parse_snapshot_name) else {
                continue;
            };
            let path = self.dir.join(&name);
            if tmp {
                tmps.push(path);
            } else {
                entries.push(SnapshotEntry { sequence, path });
            }
        }
        entries.sort_unstable_by_key(|e| e.sequence);
        tmps.sort_unstable();
        Ok((entries, tmps))
    }

    /// The snapshot files, oldest first (not validated).
    pub fn list(&self) -> Result<Vec<SnapshotEntry>> {
        Ok(self.entries()?.0)
    }

    /// Reads and validates one snapshot file.
    pub fn load(&self, entry: &SnapshotEntry) -> Result<Snapshot, SnapshotDefect> {
        let f = self
            .fs
            .open(&entry.path, OpenMode::Read)
            .map_err(|e| SnapshotDefect::Unreadable(e.kind()))?;
        let mut buf = Vec::new();
        f.read_to_vec(&mut buf)
            .map_err(|e| SnapshotDefect::Unreadable(e.kind()))?;
        let (sequence, created_unix_nanos) = decode(&buf, entry.sequence)?;
        buf.drain(..SNAPSHOT_HEADER_SIZE);
        Ok(Snapshot {
            sequence,
            created_unix_nanos,
            path: entry.path.clone(),
            bytes: buf,
        })
    }

    /// The newest snapshot that validates; newer ones that do not, and
    /// temporary files, are listed in [`SnapshotLoad::skipped`] with the
    /// reason.
    pub fn load_newest_valid(&self) -> Result<SnapshotLoad> {
        let (entries, tmps) = self.entries()?;
        let mut load = SnapshotLoad::default();
        for path in tmps.into_iter().rev() {
            load.skipped.push(SkippedSnapshot {
                path,
                defect: SnapshotDefect::Incomplete,
            });
        }
        for entry in entries.iter().rev() {
            match self.load(entry) {
                Ok(s) => {
                    load.snapshot = Some(s);
                    break;
                }
                Err(defect) => load.skipped.push(SkippedSnapshot {
                    path: entry.path.clone(),
                    defect,
                }),
            }
        }
        Ok(load)
    }

    /// Keeps the `policy.keep_snapshots` newest valid snapshots, removes
    /// every snapshot file older than the oldest of them (valid or not) and
    /// every temporary file. The report says which sequence is the oldest
    /// kept (segments are [`Self::apply_retention`]'s business). Removes
    /// nothing when no snapshot is valid.
    pub fn retain(&self, policy: RetentionPolicy) -> Result<RetentionReport> {
        let keep = policy.keep_snapshots.max(1);
        let (entries, tmps) = self.entries()?;
        let mut report = RetentionReport::default();
        let mut kept = 0;
        for entry in entries.iter().rev() {
            if kept == keep {
                break;
            }
            if self.load(entry).is_ok() {
                kept += 1;
                report.oldest_kept = Some(entry.sequence);
            }
        }
        let Some(oldest) = report.oldest_kept else {
            return Ok(report);
        };
        for path in entries
            .iter()
            .filter(|e| e.sequence < oldest)
            .map(|e| &e.path)
            .chain(tmps.iter())
        {
            self.fs
                .remove_file(path)
                .map_err(|e| Error::io("remove snapshot", path, e))?;
            report.removed_snapshots.push(path.clone());
        }
        if !report.removed_snapshots.is_empty() {
            self.fs
                .sync_dir(&self.dir)
                .map_err(|e| Error::io("fsync directory", &self.dir, e))?;
        }
        Ok(report)
    }

    /// [`Self::retain`], then removes the journal segments whose records
    /// are all at or before the oldest kept snapshot
    /// ([`Journal::remove_segments_through`]).
    pub fn apply_retention<G: FileSystem>(
        &self,
        journal: &mut Journal<G>,
        policy: RetentionPolicy,
    ) -> Result<RetentionReport> {
        let mut report = self.retain(policy)?;
        if let Some(oldest) = report.oldest_kept {
            report.removed_segments = journal.remove_segments_through(oldest)?;
        }
        Ok(report)
    }
}

/// Writes a snapshot at `sequence` into `dir` on the real file system,
/// atomically (see [`SnapshotStore::write`]).
pub fn write_snapshot(dir: impl AsRef<Path>, sequence: u64, bytes: &[u8]) -> Result<PathBuf> {
    SnapshotStore::open(dir)?.write(sequence, bytes)
}

/// Loads the newest valid snapshot in `dir` on the real file system,
/// saying why newer files were skipped (see
/// [`SnapshotStore::load_newest_valid`]).
pub fn load_newest_valid_snapshot(dir: impl AsRef<Path>) -> Result<SnapshotLoad> {
    SnapshotStore::open(dir)?.load_newest_valid()
}

fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn header_crc(h: &[u8]) -> u32 {
    use snapshot_header as s;
    let crc = crc32c::crc32c(&h[..s::HEADER_CRC]);
    crc32c::crc32c_append(
        crc32c::crc32c_append(crc, &[0u8; 4]),
        &h[s::HEADER_CRC + 4..SNAPSHOT_HEADER_SIZE],
    )
}

fn encode_header(sequence: u64, created: u64, payload: &[u8]) -> [u8; SNAPSHOT_HEADER_SIZE] {
    use snapshot_header as s;
    let mut h = [0u8; SNAPSHOT_HEADER_SIZE];
    h[s::MAGIC..s::MAGIC + 8].copy_from_slice(&SNAPSHOT_MAGIC);
    put_u16(&mut h, s::VERSION, SNAPSHOT_FORMAT_VERSION);
    put_u16(&mut h, s::FLAGS, 0);
    put_u64(&mut h, s::SEQUENCE, sequence);
    put_u64(&mut h, s::CREATED_UNIX_NANOS, created);
    put_u64(&mut h, s::LENGTH, payload.len() as u64);
    put_u32(&mut h, s::PAYLOAD_CRC, crc32c::crc32c(payload));
    put_u32(&mut h, s::RESERVED, 0);
    let crc = header_crc(&h);
    put_u32(&mut h, s::HEADER_CRC, crc);
    h
}

/// Validates a whole snapshot file; returns (sequence, created).
fn decode(file: &[u8], name_seq: u64) -> Result<(u64, u64), SnapshotDefect> {
    use snapshot_header as s;
    if file.len() < SNAPSHOT_HEADER_SIZE {
        return Err(SnapshotDefect::TooShort(file.len() as u64));
    }
    if file[s::MAGIC..s::MAGIC + 8] != SNAPSHOT_MAGIC {
        return Err(SnapshotDefect::BadMagic);
    }
    let version = get_u16(file, s::VERSION);
    if version != SNAPSHOT_FORMAT_VERSION {
        return Err(SnapshotDefect::UnsupportedVersion(version));
    }
    if get_u32(file, s::HEADER_CRC) != header_crc(file) {
        return Err(SnapshotDefect::HeaderCrc);
    }
    if get_u16(file, s::FLAGS) != 0 || get_u32(file, s::RESERVED) != 0 {
        return Err(SnapshotDefect::UnknownFlags);
    }
    let sequence = get_u64(file, s::SEQUENCE);
    if sequence != name_seq {
        return Err(SnapshotDefect::SequenceMismatch {
            name: name_seq,
            header: sequence,
        });
    }
    let length = get_u64(file, s::LENGTH);
    let have = (file.len() - SNAPSHOT_HEADER_SIZE) as u64;
    if length != have {
        return Err(SnapshotDefect::LengthMismatch {
            header: length,
            file: have,
        });
    }
    if get_u32(file, s::PAYLOAD_CRC) != crc32c::crc32c(&file[SNAPSHOT_HEADER_SIZE..]) {
        return Err(SnapshotDefect::PayloadCrc);
    }
    Ok((sequence, get_u64(file, s::CREATED_UNIX_NANOS)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_temporary_files_are_recognised() {
        assert_eq!(snapshot_file_name(7), "snapshot-00000000000000000007.snap");
        assert_eq!(
            parse_snapshot_name(&snapshot_file_name(7)),
            Some((7, false))
        );
        assert_eq!(
            parse_snapshot_name("snapshot-00000000000000000007.snap.tmp"),
            Some((7, true))
        );
        assert_eq!(parse_snapshot_name("snapshot-7.snap"), None);
        assert_eq!(parse_snapshot_name("00000000000000000007.seg"), None);
    }

    #[test]
    fn a_header_round_trips_and_every_damaged_byte_is_caught() {
        let payload = b"engine state";
        let h = encode_header(9, 123, payload);
        let mut file = h.to_vec();
        file.extend_from_slice(payload);
        assert_eq!(decode(&file, 9), Ok((9, 123)));
        assert!(matches!(
            decode(&file, 8),
            Err(SnapshotDefect::SequenceMismatch { .. })
        ));
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x40;
            assert!(decode(&bad, 9).is_err(), "byte {i}");
        }
        assert!(matches!(
            decode(&file[..file.len() - 1], 9),
            Err(SnapshotDefect::LengthMismatch { .. })
        ));
        assert_eq!(decode(&file[..10], 9), Err(SnapshotDefect::TooShort(10)));
    }
}
