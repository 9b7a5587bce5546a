//! Journal benches: record encoding, append throughput per durability
//! policy, read throughput, each next to its baseline in the same run.
//!
//! ```text
//! cargo bench -p ringex-journal                 # ~1.5 minutes
//! cargo bench -p ringex-journal -- --quick      # ~30 seconds
//! RINGEX_BENCH_DIR=/mnt/nvme cargo bench -p ringex-journal   # another file system
//! ```
//!
//! Every throughput is in bytes of framed records (120 bytes for an
//! 80-byte command, 136 for a 96-byte event); records/s = bytes/s / frame.
//!
//! - `encode/{80,96}`: `encode_frame` into memory (CRC32C + XXH3 chain),
//!   next to `memcpy/{80,96}`, copying the same bytes (the harness and
//!   memory baseline).
//! - `append/{None,Write}/{80,96}`: `Journal::append` of 4096 records and
//!   `end_batch`, into fresh 64 MiB segments (page faults and block
//!   allocation included), next to `append/raw_write/{80,96}`: `write(2)`
//!   of the same encoded bytes to a fresh file in the same directory.
//! - `append/None_prepared/{80,96}`: as `None`, with the journaler's
//!   idle-time `prepare_ahead` done outside the timed region before each
//!   batch (a journaler that had idle time).
//! - `append/None_pretouch_thread/{80,96}`: as `None`, with the background
//!   pretoucher thread (`JournalConfig::pretouch`, 8 MiB ahead) running
//!   beside the appends (a journaler that never idles).
//! - `append_fsync/FsyncPerBatch/80`: batches of 64 records, each ending in
//!   `msync(MS_SYNC)`, next to `append_fsync/raw_write_fdatasync/80`.
//! - `read/reader/80`: `JournalReader` over 256K records (CRC, sequence and
//!   chain checked), next to `read/raw_read/80`: `read(2)` of the same
//!   segment files.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringex_journal::format::{encode_frame, frame_size};
use ringex_journal::{DurabilityPolicy, Journal, JournalConfig, JournalReader, PretouchConfig};
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Records per `append` iteration.
const BATCH: usize = 4096;
/// Records per `append_fsync` iteration.
const FSYNC_BATCH: usize = 64;
/// Records in the `read` journal.
const READ_RECORDS: u64 = 256 * 1024;

fn bench_root() -> PathBuf {
    std::env::var_os("RINGEX_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ringex-journal-bench-")
        .tempdir_in(bench_root())
        .expect("bench directory")
}

fn config(durability: DurabilityPolicy) -> JournalConfig {
    JournalConfig::default().with_durability(durability)
}

/// `count` encoded frames of `size`-byte payloads, as the journal writes them.
fn encoded(count: usize, size: usize) -> Vec<u8> {
    let frame = frame_size(size);
    let mut out = vec![0u8; count * frame];
    let payload = vec![0x5Au8; size];
    let mut chain = 0;
    for (i, f) in out.chunks_exact_mut(frame).enumerate() {
        chain = encode_frame(f, i as u64 + 1, 1_000 + i as u64, 5, &payload, chain);
    }
    out
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for size in [80usize, 96] {
        let frame = frame_size(size);
        g.throughput(Throughput::Bytes((BATCH * frame) as u64));
        let payload = vec![0x5Au8; size];
        let mut buf = vec![0u8; BATCH * frame];
        g.bench_function(BenchmarkId::new("encode_frame", size), |b| {
            b.iter(|| {
                let mut chain = 0;
                for (i, f) in buf.chunks_exact_mut(frame).enumerate() {
                    chain = encode_frame(f, i as u64, i as u64, 5, black_box(&payload), chain);
                }
                black_box(chain)
            })
        });
        let src = encoded(BATCH, size);
        g.bench_function(BenchmarkId::new("memcpy", size), |b| {
            b.iter(|| {
                buf.copy_from_slice(black_box(&src));
                black_box(&buf);
            })
        });
    }
    g.finish();
}

/// Appends `iters` batches of `BATCH` records of `size` bytes into a fresh
/// journal opened with `cfg`; the time from the first append to the last
/// `end_batch`.
fn timed_appends(cfg: JournalConfig, size: usize, iters: u64) -> Duration {
    let payload = vec![0x5Au8; size];
    let dir = tempdir();
    let (mut j, _) = Journal::open(dir.path(), cfg).unwrap();
    let mut seq = 1;
    let start = Instant::now();
    for _ in 0..iters {
        for _ in 0..BATCH {
            j.append(seq, seq, 5, &payload).unwrap();
            seq += 1;
        }
        j.end_batch().unwrap();
    }
    let elapsed = start.elapsed();
    drop(j);
    elapsed
}

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for size in [80usize, 96] {
        let frame = frame_size(size);
        g.throughput(Throughput::Bytes((BATCH * frame) as u64));
        for policy in [DurabilityPolicy::None, DurabilityPolicy::Write] {
            g.bench_function(BenchmarkId::new(format!("{policy:?}"), size), |b| {
                b.iter_custom(|iters| timed_appends(config(policy), size, iters))
            });
        }
        // The journaler's idle-time `prepare_ahead`, done outside the timed
        // region: what appending costs when the journaler had idle time.
        g.bench_function(BenchmarkId::new("None_prepared", size), |b| {
            let payload = vec![0x5Au8; size];
            b.iter_custom(|iters| {
                let dir = tempdir();
                let cfg = config(DurabilityPolicy::None);
                let (mut j, _) = Journal::open(dir.path(), cfg).unwrap();
                let mut seq = 1;
                let mut elapsed = Duration::ZERO;
                let chunk = BATCH * frame;
                for _ in 0..iters {
                    j.prepare_ahead(chunk + 8192).unwrap();
                    let start = Instant::now();
                    for _ in 0..BATCH {
                        j.append(seq, seq, 5, &payload).unwrap();
                        seq += 1;
                    }
                    j.end_batch().unwrap();
                    elapsed += start.elapsed();
                }
                elapsed
            })
        });
        // The background pretoucher (`JournalConfig::pretouch`) running
        // beside the appends, into fresh segments as in `None`: what
        // appending costs when the journaler never idles.
        g.bench_function(BenchmarkId::new("None_pretouch_thread", size), |b| {
            let cfg = config(DurabilityPolicy::None).with_pretouch(Some(PretouchConfig::default()));
            b.iter_custom(|iters| timed_appends(cfg, size, iters))
        });
        g.bench_function(BenchmarkId::new("raw_write", size), |b| {
            let bytes = encoded(BATCH, size);
            b.iter_custom(|iters| {
                let dir = tempdir();
                let mut f = std::fs::File::create(dir.path().join("raw")).unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    f.write_all(&bytes).unwrap();
                }
                start.elapsed()
            })
        });
    }
    g.finish();
}

fn append_fsync(c: &mut Criterion) {
    let mut g = c.benchmark_group("append_fsync");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20);
    let size = 80;
    g.throughput(Throughput::Bytes((FSYNC_BATCH * frame_size(size)) as u64));
    g.bench_function(BenchmarkId::new("FsyncPerBatch", size), |b| {
        let payload = vec![0x5Au8; size];
        b.iter_custom(|iters| {
            let dir = tempdir();
            let (mut j, _) =
                Journal::open(dir.path(), config(DurabilityPolicy::FsyncPerBatch)).unwrap();
            let mut seq = 1;
            let start = Instant::now();
            for _ in 0..iters {
                for _ in 0..FSYNC_BATCH {
                    j.append(seq, seq, 5, &payload).unwrap();
                    seq += 1;
                }
                j.end_batch().unwrap();
            }
            start.elapsed()
        })
    });
    g.bench_function(BenchmarkId::new("raw_write_fdatasync", size), |b| {
        let bytes = encoded(FSYNC_BATCH, size);
        b.iter_custom(|iters| {
            let dir = tempdir();
            let mut f = std::fs::File::create(dir.path().join("raw")).unwrap();
            let start = Instant::now();
            for _ in 0..iters {
                f.write_all(&bytes).unwrap();
                f.sync_data().unwrap();
            }
            start.elapsed()
        })
    });
    g.finish();
}

fn read(c: &mut Criterion) {
    let size = 80;
    let dir = tempdir();
    {
        let (mut j, _) = Journal::open(dir.path(), config(DurabilityPolicy::None)).unwrap();
        let payload = vec![0x5Au8; size];
        for seq in 1..=READ_RECORDS {
            j.append(seq, seq, 5, &payload).unwrap();
        }
        j.close().unwrap();
    }
    let files: Vec<PathBuf> = {
        let mut v: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v
    };
    let mut g = c.benchmark_group("read");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g.throughput(Throughput::Bytes(READ_RECORDS * frame_size(size) as u64));
    g.bench_function(BenchmarkId::new("reader", size), |b| {
        b.iter(|| {
            let mut r = JournalReader::open(dir.path(), 1).unwrap();
            let mut sum = 0u64;
            while let Some(rec) = r.next_record().unwrap() {
                sum += u64::from(rec.payload[0]);
            }
            assert_eq!(r.next_sequence(), READ_RECORDS + 1);
            black_box(sum)
        })
    });
    // The same segment files (only their used part counts in the
    // throughput; the rest of a preallocated segment is zero and sparse).
    let used = READ_RECORDS as usize * frame_size(size) + 128 * files.len();
    g.bench_function(BenchmarkId::new("raw_read", size), |b| {
        let mut buf = vec![0u8; 1 << 20];
        b.iter(|| {
            let mut left = used;
            for path in &files {
                let mut f = std::fs::File::open(path).unwrap();
                while left > 0 {
                    let n = f.read(&mut buf[..left.min(1 << 20)]).unwrap();
                    if n == 0 {
                        break;
                    }
                    left -= n;
                }
            }
            black_box(left)
        })
    });
    g.finish();
}

criterion_group!(benches, encode, append, append_fsync, read);
criterion_main!(benches);
