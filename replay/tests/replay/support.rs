//! Shared helpers: sessions run through a real pipeline, the CLI, and
//! frame offsets inside segment files.

use ringex_core::pipeline::{CommandSender, OverflowPolicy, Pipeline, PipelineConfig, SubmitError};
use ringex_core::records::Command;
use ringex_core::EngineConfig;
use ringex_journal::format::{FRAME_HEADER_SIZE, SEGMENT_HEADER_SIZE};
use ringex_replay::generate::{SessionGenerator, SessionParams};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

/// The pipeline configuration of the test sessions: the 2-core preset,
/// 1 MiB segments (so sessions span several and torn-write tests stay
/// cheap), no timer (sessions are exactly the generated commands).
pub fn config(dir: &Path) -> PipelineConfig {
    let mut config = PipelineConfig::two_core_default(dir).with_timer(None);
    config.journal = config.journal.with_segment_size(1 << 20);
    config
}

/// Submits `cmd`, retrying while the ring is full.
pub fn submit(sender: &mut CommandSender, cmd: Command) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sender.try_submit(cmd) {
            Ok(seq) => return seq,
            Err(SubmitError::Busy) if Instant::now() < deadline => std::thread::yield_now(),
            Err(e) => panic!("submit: {e}"),
        }
    }
}

/// What [`run_session`] left behind.
#[derive(Debug)]
pub struct Session {
    /// Commands journaled.
    pub commands: u64,
    /// Events published.
    pub events: u64,
    /// The pipeline engine's digest at shutdown.
    pub digest: u64,
}

/// Runs the set-up and `commands` random commands of `seed` through a
/// real pipeline in `dir`, then a `StateDigest` (so the last command has
/// exactly one event), and shuts it down cleanly.
pub fn run_session(dir: &Path, commands: u64, seed: u64) -> Session {
    run_session_with(config(dir), commands, seed)
}

/// [`run_session`] with another pipeline configuration.
pub fn run_session_with(config: PipelineConfig, commands: u64, seed: u64) -> Session {
    let pipeline = Pipeline::start(config).expect("start");
    let sink = pipeline.register_sink("test", 1 << 16, OverflowPolicy::DropNewest);
    let drain = std::thread::spawn(move || sink.receiver.iter().count());
    let mut sender = pipeline.sender();
    let mut generator = SessionGenerator::new(SessionParams::new(seed));
    for cmd in generator.setup() {
        submit(&mut sender, cmd);
    }
    let mut now = ringex_core::pipeline::wall_clock_ns();
    for i in 0..commands {
        if i % 512 == 0 {
            now = ringex_core::pipeline::wall_clock_ns();
        }
        submit(&mut sender, generator.next_command(now));
    }
    submit(&mut sender, Command::state_digest());
    drop(sender);
    let report = pipeline.shutdown();
    drain.join().unwrap();
    assert!(report.health.is_ok(), "{:?}", report.health);
    Session {
        commands: report.metrics.applied,
        events: report.metrics.events,
        digest: report.engine.expect("engine").state_digest(),
    }
}

/// The default engine configuration (what the pipeline presets use).
pub fn engine() -> EngineConfig {
    EngineConfig::default()
}

/// Runs the `ringex-replay` binary.
pub fn cli(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ringex-replay"))
        .args(args)
        .output()
        .expect("run ringex-replay")
}

/// Standard output and error of a run, for assertion messages.
pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The segment files of the journal in `dir`, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

/// A record frame inside a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Byte offset in the file.
    pub offset: usize,
    /// Length of the frame (header and payload, without padding).
    pub len: usize,
    /// Its sequence number.
    pub sequence: u64,
}

/// The frames of a segment file, walked by their length fields.
pub fn frames(segment: &Path) -> Vec<Frame> {
    let bytes = std::fs::read(segment).unwrap();
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER_SIZE;
    while pos + FRAME_HEADER_SIZE <= bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if len < FRAME_HEADER_SIZE {
            break;
        }
        let sequence = u64::from_le_bytes(bytes[pos + 16..pos + 24].try_into().unwrap());
        out.push(Frame {
            offset: pos,
            len,
            sequence,
        });
        pos += ringex_journal::format::frame_size(len - FRAME_HEADER_SIZE);
    }
    out
}

/// Copies a journal directory tree (segments, `events/`), skipping lock files.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        } else if entry.file_name() != "LOCK" {
            std::fs::copy(&path, to.join(entry.file_name())).unwrap();
        }
    }
}

/// Writes `commands` (stamped here with sequence 1, 2, ... and timestamps
/// 1 µs apart) as an input journal in `dir`, as the journaler would.
pub fn write_input_journal(dir: &Path, commands: &[Command]) {
    let (mut journal, _) = ringex_journal::Journal::open(
        dir,
        ringex_journal::JournalConfig::default().with_segment_size(1 << 20),
    )
    .unwrap();
    for (i, cmd) in commands.iter().enumerate() {
        let seq = i as u64 + 1;
        let ts = 1_700_000_000_000_000_000 + 1_000 * seq;
        let cmd = cmd.stamped(seq, ts);
        journal
            .append(
                seq,
                ts,
                ringex_core::pipeline::JOURNAL_KIND_COMMAND,
                bytemuck::bytes_of(&cmd),
            )
            .unwrap();
    }
    journal.close().unwrap();
}
