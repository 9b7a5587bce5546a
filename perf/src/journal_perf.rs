//! `ringex-perf journal`: append throughput of the input journal per
//! durability policy, next to a raw sequential `write(2)` of the same
//! bytes to the same file system in the same run.
//!
//! For each policy a fresh journal is opened in a fresh temporary folder
//! (under `--dir`, default the system's temporary folder). After a warm-up,
//! batches of `batch` records (`payload`-byte payloads, the size of a
//! command record) are appended, each batch ending in `end_batch`, until
//! the duration or the byte cap is reached; each batch's time is recorded
//! in a histogram. Then the same number of framed bytes (encoded the way
//! the journal encodes them) is written with `write(2)` in batch-sized
//! chunks to a fresh file in the same folder, ending each chunk with
//! `fdatasync` where the policy syncs (for `fsync-ms:N`, at most every N
//! ms), and timed the same way. Both histograms go to `.hgrm` files.
//!
//! Everything runs on the calling thread; nothing spins.

use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringex_journal::format::{encode_frame, frame_size};
use ringex_journal::{DurabilityPolicy, Journal, JournalConfig};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::hgrm::new_histogram;
use crate::pipeline::{Durability, Percentiles};
use crate::progress::Progress;
use crate::sys::Machine;

/// Options of `ringex-perf journal`.
#[derive(Debug, Clone, Serialize)]
pub struct JournalOptions {
    /// Policies to measure, in order.
    pub durabilities: Vec<Durability>,
    /// Payload bytes per record (80: a command record).
    pub payload: usize,
    /// Records per batch (`end_batch` after each).
    pub batch: usize,
    /// Measured seconds per policy (upper bound; see `max_bytes`).
    pub duration: f64,
    /// Seconds of appends before measuring (same journal, not recorded).
    pub warmup: f64,
    /// Most framed bytes measured per policy (bounds disk use).
    pub max_bytes: u64,
    /// Segment size of the journal, bytes.
    pub segment_size: u64,
    /// Parent folder of the temporary journals; `None`: the system's temporary folder.
    pub dir: Option<PathBuf>,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            durabilities: ["none", "write", "fsync-batch"]
                .iter()
                .map(|s| s.parse().expect("known policy"))
                .collect(),
            payload: 80,
            batch: 64,
            duration: 1.0,
            warmup: 0.2,
            max_bytes: 256 << 20,
            segment_size: ringex_journal::DEFAULT_SEGMENT_SIZE,
            dir: None,
        }
    }
}

/// Throughput and batch latency of one writer.
#[derive(Debug, Clone, Serialize)]
pub struct WriterResult {
    /// Records written (measured part).
    pub records: u64,
    /// Framed bytes written.
    pub bytes: u64,
    /// Wall seconds.
    pub seconds: f64,
    /// Records per second.
    pub records_per_sec: f64,
    /// Megabytes (10^6 bytes) of framed records per second.
    pub mb_per_sec: f64,
    /// Time per batch (appends plus `end_batch`, or `write` plus optional `fdatasync`), ns.
    pub batch_latency: Percentiles,
    /// The `.hgrm` file of the batch latency, if files were written.
    pub hgrm: Option<String>,
    /// The histogram itself.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

/// One policy: the journal next to its raw baseline.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    /// The durability policy.
    pub durability: Durability,
    /// `Journal::append` + `end_batch`.
    pub journal: WriterResult,
    /// `write(2)` (+ `fdatasync` where the policy syncs) of the same bytes.
    pub raw: WriterResult,
    /// Journal MB/s over raw MB/s.
    pub ratio_vs_raw: f64,
}

/// The result of `ringex-perf journal`.
#[derive(Debug, Clone, Serialize)]
pub struct JournalReport {
    /// Always `"journal"`.
    pub bench: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// The options.
    pub options: JournalOptions,
    /// Framed bytes per record.
    pub frame_bytes: usize,
    /// One per policy.
    pub policies: Vec<PolicyResult>,
    /// The results folder, if written.
    pub results_dir: Option<String>,
}

fn writer_result(records: u64, frame: usize, seconds: f64, h: Histogram<u64>) -> WriterResult {
    let bytes = records * frame as u64;
    WriterResult {
        records,
        bytes,
        seconds,
        records_per_sec: if seconds > 0.0 {
            records as f64 / seconds
        } else {
            0.0
        },
        mb_per_sec: if seconds > 0.0 {
            bytes as f64 / seconds / 1e6
        } else {
            0.0
        },
        batch_latency: Percentiles::of(&h),
        hgrm: None,
        histogram: h,
    }
}

fn jerr(e: ringex_journal::Error) -> Error {
    Error::Unexpected(format!("journal: {e}"))
}

/// Runs every policy.
pub fn run_journal(opts: JournalOptions, progress: &Progress) -> Result<JournalReport> {
    if opts.durabilities.is_empty() {
        return Err(Error::Unexpected("no durability policy to measure".into()));
    }
    if opts.batch == 0 || opts.batch > 1 << 20 {
        return Err(Error::Unexpected("batch must be in 1..=1048576".into()));
    }
    if !(opts.duration > 0.0 && opts.duration <= 600.0 && (0.0..=60.0).contains(&opts.warmup)) {
        return Err(Error::Unexpected(
            "duration must be in (0, 600] and warm-up in [0, 60]".into(),
        ));
    }
    let config = JournalConfig::default().with_segment_size(opts.segment_size);
    config.validate().map_err(jerr)?;
    if opts.payload == 0 || opts.payload > config.max_payload() {
        return Err(Error::Unexpected(format!(
            "payload must be in 1..={} for this segment size",
            config.max_payload()
        )));
    }
    let mut policies = Vec::new();
    for &d in &opts.durabilities {
        progress.set_message(format!("durability {d}"));
        policies.push(run_policy(d, &opts, config.with_durability(d.0))?);
        progress.inc(1);
    }
    Ok(JournalReport {
        bench: "journal",
        machine: Machine::detect(),
        frame_bytes: frame_size(opts.payload),
        options: opts,
        policies,
        results_dir: None,
    })
}

fn run_policy(d: Durability, opts: &JournalOptions, config: JournalConfig) -> Result<PolicyResult> {
    let mut builder = tempfile::Builder::new();
    builder.prefix("ringex-perf-journal-");
    let dir = match &opts.dir {
        Some(parent) => {
            std::fs::create_dir_all(parent)?;
            builder.tempdir_in(parent)?
        }
        None => builder.tempdir()?,
    };
    let frame = frame_size(opts.payload);
    let payload: Vec<u8> = (0..opts.payload).map(|i| (i * 7 + 3) as u8).collect();
    let max_batches = (opts.max_bytes / (frame * opts.batch) as u64).max(1);

    // The journal.
    let (mut journal, _) = Journal::open(dir.path().join("journal"), config).map_err(jerr)?;
    let mut seq = 1u64;
    let warm_until = Instant::now() + Duration::from_secs_f64(opts.warmup);
    let mut warm_batches = 0;
    while Instant::now() < warm_until && warm_batches < max_batches {
        for _ in 0..opts.batch {
            journal.append(seq, seq, 1, &payload).map_err(jerr)?;
            seq += 1;
        }
        journal.end_batch().map_err(jerr)?;
        warm_batches += 1;
    }
    let mut h = new_histogram();
    let limit = Duration::from_secs_f64(opts.duration);
    let start = Instant::now();
    let mut batches = 0u64;
    while batches < max_batches && start.elapsed() < limit {
        let t = Instant::now();
        for _ in 0..opts.batch {
            journal.append(seq, seq, 1, &payload).map_err(jerr)?;
            seq += 1;
        }
        journal.end_batch().map_err(jerr)?;
        let _ = h.record((t.elapsed().as_nanos() as u64).max(1));
        batches += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    journal.close().map_err(jerr)?;
    let journal_result = writer_result(batches * opts.batch as u64, frame, seconds, h);

    // The raw baseline: the same framed bytes, chunk by chunk.
    let mut chunk = vec![0u8; frame * opts.batch];
    let mut chain = 0;
    for (i, f) in chunk.chunks_exact_mut(frame).enumerate() {
        chain = encode_frame(f, i as u64 + 1, i as u64 + 1, 1, &payload, chain);
    }
    let mut file = std::fs::File::create(dir.path().join("raw.bin"))?;
    let fd = file.as_raw_fd();
    let sync_every = match d.0 {
        DurabilityPolicy::FsyncPerBatch => Some(Duration::ZERO),
        DurabilityPolicy::FsyncEveryMillis(ms) => Some(Duration::from_millis(ms)),
        DurabilityPolicy::None | DurabilityPolicy::Write => None,
    };
    let mut last_sync = Instant::now();
    let mut h = new_histogram();
    let start = Instant::now();
    for _ in 0..batches {
        let t = Instant::now();
        file.write_all(&chunk)?;
        if let Some(every) = sync_every {
            if last_sync.elapsed() >= every {
                // SAFETY: `fd` is the open descriptor of `file`, alive for this call.
                if unsafe { libc::fdatasync(fd) } != 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
                last_sync = Instant::now();
            }
        }
        let _ = h.record((t.elapsed().as_nanos() as u64).max(1));
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(file);
    let raw = writer_result(batches * opts.batch as u64, frame, seconds, h);
    let ratio_vs_raw = if raw.mb_per_sec > 0.0 {
        journal_result.mb_per_sec / raw.mb_per_sec
    } else {
        0.0
    };
    Ok(PolicyResult {
        durability: d,
        journal: journal_result,
        raw,
        ratio_vs_raw,
    })
}

/// Writes the `.hgrm` files, the plots, the summary and the context into `dir`.
pub fn write_journal_results(
    dir: &crate::results::ResultsDir,
    report: &mut JournalReport,
    config_file: Option<(&std::path::Path, &str)>,
) -> Result<()> {
    use crate::plot::{percentile_plot, percentile_series, throughput_latency_chart, Series};
    let mut lines = Vec::new();
    let mut journal_points = Vec::new();
    let mut raw_points = Vec::new();
    for p in &mut report.policies {
        let name = dir.write_hgrm(&format!("journal-{}", p.durability), &p.journal.histogram)?;
        let raw_name = dir.write_hgrm(&format!("raw-{}", p.durability), &p.raw.histogram)?;
        for (n, label) in [
            (&name, format!("journal, {}", p.durability)),
            (&raw_name, format!("raw write, {}", p.durability)),
        ] {
            let d = crate::hgrm::parse(&std::fs::read_to_string(dir.path().join(n))?)?;
            lines.push(percentile_series(label, &d));
        }
        p.journal.hgrm = Some(name);
        p.raw.hgrm = Some(raw_name);
        journal_points.push((
            p.journal.records_per_sec,
            p.journal.batch_latency.p99 as f64 / 1000.0,
        ));
        raw_points.push((
            p.raw.records_per_sec,
            p.raw.batch_latency.p99 as f64 / 1000.0,
        ));
    }
    percentile_plot(
        &dir.path().join("latency-percentiles.svg"),
        &format!(
            "journal batch latency ({} records of {} bytes per batch)",
            report.options.batch, report.options.payload
        ),
        &lines,
    )?;
    journal_points.sort_by(|a, b| a.0.total_cmp(&b.0));
    raw_points.sort_by(|a, b| a.0.total_cmp(&b.0));
    throughput_latency_chart(
        &dir.path().join("throughput-latency.svg"),
        "journal: batch p99 against records/s, one point per durability policy",
        "records/s",
        &[
            Series {
                label: "journal p99".into(),
                points: journal_points,
            },
            Series {
                label: "raw write p99".into(),
                points: raw_points,
            },
        ],
    )?;
    report.results_dir = Some(dir.path().display().to_string());
    dir.write_context(&report.machine, &report.options, config_file)?;
    dir.write_json("summary.json", report)?;
    dir.write_text("summary.txt", &render_journal(report))?;
    Ok(())
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

/// The human-readable report.
pub fn render_journal(r: &JournalReport) -> String {
    use std::fmt::Write;
    let o = &r.options;
    let mut s = String::new();
    let _ = writeln!(s, "ringex-perf journal: append throughput per durability policy vs raw write(2) of the same bytes");
    let _ = writeln!(s, "machine:    {}", r.machine);
    let _ = writeln!(
        s,
        "config:     {}-byte payloads ({}-byte frames), {} records per batch, warm-up {} s, up to {} s or {} MiB per policy, segments {} MiB",
        o.payload, r.frame_bytes, o.batch, o.warmup, o.duration, o.max_bytes >> 20, o.segment_size >> 20
    );
    let _ = writeln!(
        s,
        "{:>12} {:>8} {:>12} {:>9} {:>10} {:>10} {:>12} {:>9} {:>10} {:>7}",
        "durability",
        "writer",
        "records/s",
        "MB/s",
        "batch p50",
        "batch p99",
        "raw rec/s",
        "raw MB/s",
        "raw p99",
        "ratio"
    );
    for p in &r.policies {
        let _ = writeln!(
            s,
            "{:>12} {:>8} {:>12.0} {:>9.1} {:>10} {:>10} {:>12.0} {:>9.1} {:>10} {:>7.2}",
            p.durability.to_string(),
            "journal",
            p.journal.records_per_sec,
            p.journal.mb_per_sec,
            us(p.journal.batch_latency.p50),
            us(p.journal.batch_latency.p99),
            p.raw.records_per_sec,
            p.raw.mb_per_sec,
            us(p.raw.batch_latency.p99),
            p.ratio_vs_raw
        );
    }
    let _ = writeln!(s, "latency in us per batch; ratio = journal MB/s / raw MB/s (raw: write(2), plus fdatasync per batch where the policy syncs)");
    if let Some(dir) = &r.results_dir {
        let _ = writeln!(s, "results:    {dir}");
    }
    s
}
