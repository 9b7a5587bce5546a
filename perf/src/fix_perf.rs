//! `ringex-perf fix`: NewOrderSingle → ExecutionReport round trips through
//! the FIX acceptor over loopback, next to a raw TCP ping-pong of the same
//! message sizes measured in the same run.
//!
//! Each measurement starts a fresh venue in this process: a pipeline
//! (journal in a temporary folder), the FIX acceptor
//! ([`FixServer`] with the [`ExchangeApplication`]) on `127.0.0.1:0`, one
//! binary market and one funded account per session, sessions with
//! `ResetOnLogon` and the per-session order throttle raised to
//! [`FixOptions::throttle`], session stores as files in the venue's
//! folder and a ClOrdID table sized for [`FixOptions::order_capacity`]
//! orders, as the `ringex` server runs them. The load generator is a
//! minimal initiator of its own: it logs on, then writes NewOrderSingles
//! whose MsgSeqNum, SendingTime, BodyLength and CheckSum it fills in per
//! message. The order
//! stream keeps the book bounded: order `i` of a session buys one contract
//! at 50 when `i` is even and sells one at 50 when it is odd, so every
//! second order fills the one before it and at most one order rests.
//!
//! **Latency** (`--rate`, one session): order `i` is due at
//! `t0 + i / rate`; the writer sends everything that is due whenever it
//! wakes (open loop, several orders in one `write` when it is late). The
//! reader takes the first ExecutionReport carrying ClOrdID `i` as the end
//! of the round trip and records `now − due(i)` (not the actual send
//! time: no coordinated omission). The raw TCP baseline then runs at the
//! same rate with the same method against an echo server that answers each
//! NewOrderSingle-sized message with one message of the average
//! ExecutionReport size seen in the FIX run.
//!
//! **Throughput** (`--sessions`): closed loop, each session keeps
//! [`FixOptions::window`] orders without an ExecutionReport in flight and
//! sends as fast as it may; orders/s counts first ExecutionReports in the
//! measured window, over all sessions.
//!
//! Threads: the pipeline's stages, the acceptor's event loop, and per
//! session a writer and a reader (plus the echo server's thread in the TCP
//! baseline). Writers sleep until the next order is due when it is more
//! than [`SPIN_BELOW_NS`] away and yield-spin below that; readers block in
//! `read`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringex_core::pipeline::{CommandSender, OverflowPolicy, Pipeline, PipelineConfig};
use ringex_core::records::{Command, InstrumentSpec};
use ringex_gateways::fix::frame::checksum;
use ringex_gateways::fix::time::{now_millis, write_timestamp_millis, Millis};
use ringex_gateways::fix::{
    Dictionaries, ExchangeApplication, FixServer, FixServerConfig, FixServerHandle, SessionConfig,
};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::hgrm::new_histogram;
use crate::pipeline::{Durability, Percentiles};
use crate::progress::Progress;
use crate::sys::Machine;

/// The latency target: FIX round-trip p99 at most this many times
/// the raw TCP ping-pong p99 at the same rate.
pub const TARGET_P99_RATIO: f64 = 2.0;
/// The throughput target through one session, orders/s.
pub const TARGET_ONE_SESSION: f64 = 200_000.0;
/// A writer sleeps when the next order is further away than this, and
/// yield-spins otherwise (`thread::sleep` overshoots by tens of µs).
pub const SPIN_BELOW_NS: u64 = 200_000;
/// Orders the acceptor's ClOrdID table is sized for unless `--order-capacity`
/// says otherwise: a venue sizes it for its day, and two million covers
/// the default runs (the largest open-loop run is capped at
/// `--max-orders`, two million), so it does not rehash mid-run.
pub const DEFAULT_ORDER_CAPACITY: usize = 2_000_000;
/// Price of every order, cents.
const PRICE: &str = "50";
/// Cash each account is funded with, cents.
const FUNDS: u64 = 1_000_000_000;
/// The acceptor's CompID.
const ACCEPTOR: &str = "RINGEX";

/// Options of `ringex-perf fix`.
#[derive(Debug, Clone, Serialize)]
pub struct FixOptions {
    /// Open-loop target rates, orders/s (one session; each rate gets a fresh venue).
    pub rates: Vec<u64>,
    /// Session counts for the closed-loop throughput runs.
    pub sessions: Vec<usize>,
    /// Measured seconds per run.
    pub duration: f64,
    /// Warm-up seconds per run (sent, not recorded).
    pub warmup: f64,
    /// Orders in flight per session in the throughput runs.
    pub window: u64,
    /// Each session's order throttle (orders/s) in the acceptor.
    pub throttle: u32,
    /// Journal durability.
    pub durability: Durability,
    /// A configuration file's pipeline, engine and journal settings
    /// (its durability is replaced by `durability`).
    pub config: Option<crate::config::RingexConfig>,
    /// Most orders one open-loop run may send (warm-up included).
    pub max_orders: u64,
    /// Orders the acceptor's ClOrdID table is sized for at start
    /// (`[fix] order_capacity`).
    pub order_capacity: usize,
}

impl FixOptions {
    /// Checks the options before anything runs.
    pub fn check(&self) -> Result<()> {
        let bad = |s: &str| Err(Error::Unexpected(s.to_string()));
        if self.rates.contains(&0) {
            return bad("rates must be positive");
        }
        if self.sessions.iter().any(|&s| s == 0 || s > 64) {
            return bad("session counts must be in 1..=64");
        }
        if self.rates.is_empty() && self.sessions.is_empty() {
            return bad("nothing to run: give --rate or --sessions");
        }
        if !(self.duration > 0.0 && self.duration <= 600.0) {
            return bad("duration must be in (0, 600] seconds");
        }
        if !(self.warmup >= 0.0 && self.warmup <= 60.0) {
            return bad("warm-up must be in [0, 60] seconds");
        }
        if self.window == 0 || self.window > 1_000_000 {
            return bad("window must be in 1..=1000000");
        }
        if self.throttle == 0 {
            return bad("throttle must be positive");
        }
        if self.max_orders == 0 {
            return bad("max_orders must be positive");
        }
        if let Some(c) = &self.config {
            c.pipeline_config(Path::new("unused"))
                .validate()
                .map_err(|e| Error::Unexpected(format!("configuration: {e}")))?;
        }
        Ok(())
    }

    /// (warm-up, measured) orders of an open-loop run at `rate`.
    fn plan(&self, rate: u64) -> (u64, u64) {
        let warm = ((rate as f64 * self.warmup).round() as u64).min(self.max_orders / 2);
        let measured = ((rate as f64 * self.duration).round() as u64)
            .min(self.max_orders - warm)
            .max(1);
        (warm, measured)
    }
}

/// One open-loop run (FIX or raw TCP) at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyRun {
    /// `fix` or `tcp`.
    pub transport: &'static str,
    /// Target rate, messages/s.
    pub target_rate: u64,
    /// Messages scheduled in the warm-up (sent, not recorded).
    pub warmup_messages: u64,
    /// Messages scheduled in the measured window.
    pub measured_messages: u64,
    /// Messages sent (warm-up included).
    pub sent: u64,
    /// Messages answered (first reply per message, warm-up included).
    pub answered: u64,
    /// Answers that were rejects (ExecType 8); always 0 for TCP.
    pub rejected: u64,
    /// Engine events the acceptor's sink queue dropped because the acceptor
    /// fell behind (their ExecutionReports were never sent); 0 for TCP.
    pub sink_dropped: u64,
    /// Measured answers per second, from the first due time to the last answer.
    pub achieved_rate: f64,
    /// Average size of a sent message, bytes.
    pub request_bytes: f64,
    /// Average size of the answer that ended a round trip, bytes.
    pub reply_bytes: f64,
    /// Round trip from the scheduled send time, ns.
    pub latency: Percentiles,
    /// The `.hgrm` file, once written.
    pub hgrm: Option<String>,
    /// The histogram itself.
    #[serde(skip)]
    pub histogram: Histogram<u64>,
}

/// FIX and TCP at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct RatePair {
    /// The FIX round trip.
    pub fix: LatencyRun,
    /// The raw TCP ping-pong.
    pub tcp: LatencyRun,
    /// FIX p99 / TCP p99.
    pub p99_ratio: f64,
}

/// One closed-loop throughput run.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputRun {
    /// Sessions (one connection, account and market each).
    pub sessions: usize,
    /// Orders in flight per session.
    pub window: u64,
    /// Measured seconds.
    pub seconds: f64,
    /// Orders sent (warm-up included).
    pub sent: u64,
    /// First ExecutionReports received in the measured window.
    pub answered_in_window: u64,
    /// Rejects among all answers.
    pub rejected: u64,
    /// Orders whose ExecutionReport never came.
    pub unanswered: u64,
    /// Engine events the acceptor's sink queue dropped (see [`LatencyRun::sink_dropped`]).
    pub sink_dropped: u64,
    /// Orders per second in the measured window (all sessions).
    pub orders_per_sec: f64,
}

/// The full result of `ringex-perf fix`.
#[derive(Debug, Clone, Serialize)]
pub struct FixReport {
    /// Always `"fix"`.
    pub bench: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// The options.
    pub options: FixOptions,
    /// One pair per rate, in the order given.
    pub rates: Vec<RatePair>,
    /// One run per session count, in the order given.
    pub throughput: Vec<ThroughputRun>,
    /// The results folder, once written.
    pub results_dir: Option<String>,
}

impl FixReport {
    /// Whether every sent order got an ExecutionReport (and no reject) in
    /// every run.
    pub fn all_answered(&self) -> bool {
        self.rates.iter().all(|p| {
            p.fix.answered == p.fix.sent
                && p.fix.rejected == 0
                && p.fix.sink_dropped == 0
                && p.tcp.answered == p.tcp.sent
        }) && self
            .throughput
            .iter()
            .all(|t| t.unanswered == 0 && t.rejected == 0 && t.sink_dropped == 0)
    }
}

/// Runs every rate (FIX then TCP) and every session count, one progress
/// step each; [`write_fix_results`] writes the results folder.
pub fn run_fix(opts: FixOptions, progress: &Progress) -> Result<FixReport> {
    opts.check()?;
    let mut rates = Vec::new();
    for &rate in &opts.rates {
        progress.set_message(format!("FIX at {rate} orders/s"));
        let fix = run_fix_latency(&opts, rate)?;
        progress.set_message(format!("TCP at {rate} messages/s"));
        let tcp = run_tcp_latency(
            &opts,
            rate,
            fix.request_bytes.round() as usize,
            fix.reply_bytes.round() as usize,
        )?;
        let p99_ratio = fix.latency.p99 as f64 / tcp.latency.p99.max(1) as f64;
        rates.push(RatePair {
            fix,
            tcp,
            p99_ratio,
        });
        progress.inc(1);
    }
    let mut throughput = Vec::new();
    for &sessions in &opts.sessions {
        progress.set_message(format!("{sessions} session(s), closed loop"));
        throughput.push(run_fix_throughput(&opts, sessions)?);
        progress.inc(1);
    }
    Ok(FixReport {
        bench: "fix",
        machine: Machine::detect(),
        options: opts,
        rates,
        throughput,
        results_dir: None,
    })
}

// ---------------------------------------------------------------------------
// The venue

/// A pipeline and the FIX acceptor in this process.
struct Venue {
    /// The acceptor's sink counters (events lost to a full queue are
    /// ExecutionReports never sent).
    sink: Arc<ringex_core::pipeline::SinkStats>,
    server: Option<FixServerHandle>,
    pipeline: Option<Pipeline>,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn client_comp_id(session: usize) -> String {
    format!("PERF{session}")
}

fn symbol(session: usize) -> String {
    format!("PERF{session}")
}

fn account(session: usize) -> u32 {
    1000 + session as u32
}

impl Venue {
    fn start(opts: &FixOptions, sessions: usize) -> Result<Venue> {
        let dir = tempfile::Builder::new()
            .prefix("ringex-perf-fix-")
            .tempdir()?;
        let config = match &opts.config {
            Some(c) => c.pipeline_config(dir.path()),
            None => PipelineConfig::two_core_default(dir.path()),
        }
        .with_durability(opts.durability.0)
        .with_timer(None);
        let pipeline = Pipeline::start(config).map_err(|e| Error::Unexpected(e.to_string()))?;
        // ExecutionReports must not be lost: the server's policy (the
        // publisher waits for a full queue), with the server's depth.
        let sink = pipeline.register_sink(
            "fix",
            1 << 16,
            OverflowPolicy::Wait(ringex_gateways::server::FIX_SINK_WAIT),
        );
        let mut setup = Vec::new();
        for s in 0..sessions {
            setup.push(Command::add_instrument(InstrumentSpec::binary(
                s as u32 + 1,
                0,
            )));
            setup.push(Command::add_account(account(s)));
            setup.push(Command::deposit(account(s), 0, FUNDS));
        }
        submit_and_wait(&pipeline, &setup)?;
        let symbols: HashMap<String, u32> =
            (0..sessions).map(|s| (symbol(s), s as u32 + 1)).collect();
        let sink_stats = Arc::clone(&sink.stats);
        let app = ExchangeApplication::new(pipeline.sender(), sink.receiver, symbols)
            .with_wakeup(sink.wakeup)
            .with_order_capacity(opts.order_capacity);
        let session_configs = (0..sessions)
            .map(|s| {
                let mut c = SessionConfig::new("FIX.4.4", ACCEPTOR, &client_comp_id(s));
                c.accounts = vec![account(s).to_string()];
                c.reset_on_logon = true;
                c.max_orders_per_sec = Some(opts.throttle);
                c
            })
            .collect();
        let server = FixServer::spawn(
            FixServerConfig {
                listen: "127.0.0.1:0".parse().expect("a socket address"),
                // Files, as the `ringex` server keeps them.
                store_dir: Some(dir.path().join("fix")),
                max_frame_bytes: 16 * 1024,
                order_capacity: opts.order_capacity,
                sessions: session_configs,
            },
            Dictionaries::shared(),
            app,
        )
        .map_err(|e| Error::Unexpected(format!("FIX acceptor: {e}")))?;
        Ok(Venue {
            sink: sink_stats,
            addr: server.local_addr(),
            server: Some(server),
            pipeline: Some(pipeline),
            _dir: dir,
        })
    }

    /// Stops the acceptor, then the pipeline; whether the pipeline was
    /// healthy, and the events the acceptor's sink lost.
    fn stop(mut self) -> (bool, u64) {
        if let Some(s) = self.server.take() {
            let _ = s.stop();
        }
        let healthy = self
            .pipeline
            .take()
            .is_some_and(|p| p.shutdown().health.is_ok());
        (healthy, self.sink.dropped())
    }
}

/// Submits the setup commands and waits (on a sink of its own) until the
/// last one has been published.
fn submit_and_wait(pipeline: &Pipeline, commands: &[Command]) -> Result<()> {
    let sink = pipeline.register_sink("perf-setup", 1 << 16, OverflowPolicy::DropNewest);
    let mut sender: CommandSender = pipeline.sender();
    let mut last = 0;
    for &c in commands {
        last = sender
            .try_submit(c)
            .map_err(|e| Error::Unexpected(format!("setup submit: {e:?}")))?;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match sink.receiver.recv_timeout(left) {
            Ok(e) if e.sequence >= last => return Ok(()),
            Ok(_) => {}
            Err(_) => {
                return Err(Error::Unexpected(
                    "the venue's setup commands were not published within 30 s".into(),
                ))
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Wire formats

/// Writes the messages of one connection.
trait Wire: Send {
    /// Appends message `index` to `out`.
    fn encode(&mut self, index: u64, out: &mut Vec<u8>);
}

/// Cuts answers out of one connection's input.
trait Replies: Send {
    /// Consumes the complete answers at the front of `buf`, calling
    /// `answer(index, bytes, rejected)` for each answer that ends a round
    /// trip (the caller keeps only the first per index).
    fn feed(&mut self, buf: &mut Vec<u8>, answer: &mut dyn FnMut(u64, usize, bool));
}

/// The initiator's encoder: header, body, BodyLength and CheckSum per
/// message; SendingTime is reformatted only when the millisecond changes.
struct FixWire {
    seq: u64,
    sender: String,
    symbol: String,
    body: Vec<u8>,
    time: Vec<u8>,
    time_ms: Millis,
}

impl FixWire {
    fn new(session: usize) -> Self {
        Self {
            seq: 1,
            sender: client_comp_id(session),
            symbol: symbol(session),
            body: Vec::with_capacity(256),
            time: Vec::with_capacity(24),
            time_ms: Millis::MIN,
        }
    }

    fn field(out: &mut Vec<u8>, tag: &str, value: &[u8]) {
        out.extend_from_slice(tag.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(0x01);
    }

    fn refresh_time(&mut self) {
        let now = now_millis();
        if now != self.time_ms {
            self.time.clear();
            write_timestamp_millis(&mut self.time, now);
            self.time_ms = now;
        }
    }

    /// One message of `msg_type` with `body` fields after the header.
    fn message(&mut self, msg_type: &str, body: &[(&str, &[u8])], out: &mut Vec<u8>) {
        self.refresh_time();
        let mut b = std::mem::take(&mut self.body);
        b.clear();
        Self::field(&mut b, "35", msg_type.as_bytes());
        Self::field(&mut b, "34", self.seq.to_string().as_bytes());
        Self::field(&mut b, "49", self.sender.as_bytes());
        Self::field(&mut b, "52", &self.time);
        Self::field(&mut b, "56", ACCEPTOR.as_bytes());
        for (tag, value) in body {
            Self::field(&mut b, tag, value);
        }
        let start = out.len();
        out.extend_from_slice(b"8=FIX.4.4\x019=");
        out.extend_from_slice(b.len().to_string().as_bytes());
        out.push(0x01);
        out.extend_from_slice(&b);
        let sum = checksum(&out[start..]);
        out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        self.body = b;
        self.seq += 1;
    }

    fn logon(&mut self, out: &mut Vec<u8>) {
        self.message("A", &[("98", b"0"), ("108", b"30"), ("141", b"Y")], out);
    }
}

impl Wire for FixWire {
    fn encode(&mut self, index: u64, out: &mut Vec<u8>) {
        let id = index.to_string();
        let side: &[u8] = if index % 2 == 0 { b"1" } else { b"2" };
        self.refresh_time();
        let time = self.time.clone();
        let symbol = self.symbol.clone();
        self.message(
            "D",
            &[
                ("11", id.as_bytes()),
                ("38", b"1"),
                ("40", b"2"),
                ("44", PRICE.as_bytes()),
                ("54", side),
                ("55", symbol.as_bytes()),
                ("59", b"1"),
                ("60", &time),
            ],
            out,
        );
    }
}

/// The value of the first `tag=` field in `msg` (`tag` written as `\x01TAG=`).
fn field<'a>(msg: &'a [u8], tag: &[u8]) -> Option<&'a [u8]> {
    let at = msg.windows(tag.len()).position(|w| w == tag)? + tag.len();
    let end = msg[at..].iter().position(|&b| b == 0x01)? + at;
    Some(&msg[at..end])
}

/// The length of the complete frame at the front of `buf`, if there is one
/// (frames from the acceptor are well formed: BodyLength is trusted).
fn frame_len(buf: &[u8]) -> Option<usize> {
    let nine = buf.windows(3).take(32).position(|w| w == b"\x019=")? + 3;
    let len_end = buf[nine..].iter().take(12).position(|&b| b == 0x01)? + nine;
    let body: usize = std::str::from_utf8(&buf[nine..len_end])
        .ok()?
        .parse()
        .ok()?;
    let end = len_end + 1 + body + 7;
    (buf.len() >= end).then_some(end)
}

/// Answers on a FIX connection: the ExecutionReports, by ClOrdID.
#[derive(Default)]
struct FixReplies {
    logged_on: bool,
}

impl Replies for FixReplies {
    fn feed(&mut self, buf: &mut Vec<u8>, answer: &mut dyn FnMut(u64, usize, bool)) {
        let mut at = 0;
        while let Some(len) = frame_len(&buf[at..]) {
            let msg = &buf[at..at + len];
            match field(msg, b"\x0135=") {
                Some(b"8") => {
                    let index = field(msg, b"\x0111=")
                        .and_then(|v| std::str::from_utf8(v).ok())
                        .and_then(|v| v.parse::<u64>().ok());
                    if let Some(i) = index {
                        answer(i, len, field(msg, b"\x01150=") == Some(b"8"));
                    }
                }
                Some(b"A") => self.logged_on = true,
                _ => {}
            }
            at += len;
        }
        buf.drain(..at);
    }
}

/// Raw TCP: fixed-size messages whose first eight bytes are the index.
struct TcpWire {
    size: usize,
}

impl Wire for TcpWire {
    fn encode(&mut self, index: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&index.to_le_bytes());
        out.resize(out.len() + self.size - 8, b'x');
    }
}

struct TcpReplies {
    size: usize,
}

impl Replies for TcpReplies {
    fn feed(&mut self, buf: &mut Vec<u8>, answer: &mut dyn FnMut(u64, usize, bool)) {
        let whole = buf.len() / self.size * self.size;
        for msg in buf[..whole].chunks_exact(self.size) {
            let index = u64::from_le_bytes(msg[..8].try_into().expect("eight bytes"));
            answer(index, self.size, false);
        }
        buf.drain(..whole);
    }
}

/// The ping-pong server: answers each `request`-byte message with one
/// `reply`-byte message carrying the same index. One connection, then exits.
fn echo_server(request: usize, reply: usize) -> Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let thread = std::thread::Builder::new()
        .name("perf-tcp-echo".into())
        .spawn(move || {
            let Ok((mut stream, _)) = listener.accept() else {
                return;
            };
            let _ = stream.set_nodelay(true);
            let mut input = Vec::with_capacity(64 * 1024);
            let mut out = Vec::with_capacity(64 * 1024);
            let mut chunk = vec![0u8; 64 * 1024];
            loop {
                let n = match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                input.extend_from_slice(&chunk[..n]);
                let whole = input.len() / request * request;
                out.clear();
                for msg in input[..whole].chunks_exact(request) {
                    out.extend_from_slice(&msg[..8]);
                    out.resize(out.len() + reply - 8, b'y');
                }
                input.drain(..whole);
                if stream.write_all(&out).is_err() {
                    return;
                }
            }
        })?;
    Ok((addr, thread))
}

// ---------------------------------------------------------------------------
// The load generator

/// How a connection's writer paces itself.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// Message `i` is due at `t0 + i / rate`.
    Open { rate: u64 },
    /// As fast as possible with at most `window` messages unanswered.
    Window { window: u64 },
}

/// What one connection's writer and reader saw.
struct ConnResult {
    sent: u64,
    answered: u64,
    rejected: u64,
    answered_in_window: u64,
    request_bytes: u64,
    reply_bytes: u64,
    last_answer_ns: u64,
    latency: Histogram<u64>,
}

#[inline]
fn scheduled(i: u64, rate: u64) -> u64 {
    (i as u128 * 1_000_000_000 / rate as u128) as u64
}

fn ns_since(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

/// A writer's state: the next index, bytes written, its batch buffer.
struct Writer<W> {
    stream: TcpStream,
    wire: W,
    next: u64,
    bytes: u64,
    buf: Vec<u8>,
}

impl<W: Wire> Writer<W> {
    /// Writes messages `next..upto` in one `write`; false when the peer is gone.
    fn send_upto(&mut self, upto: u64) -> bool {
        self.buf.clear();
        while self.next < upto {
            self.wire.encode(self.next, &mut self.buf);
            self.next += 1;
        }
        self.bytes += self.buf.len() as u64;
        self.stream.write_all(&self.buf).is_ok()
    }
}

/// Drives one connection (`total` messages at most, none sent after
/// `send_until_ns`; times in ns since `origin`, the schedule starting at
/// `t0_ns`). Open loop: a writer thread sends on the schedule and a reader
/// thread records the round trips of messages `warm..`. Closed loop: one
/// thread writes while fewer than `window` messages are unanswered and
/// blocks in `read` otherwise, counting answers inside `window_ns`.
#[allow(clippy::too_many_arguments)]
fn drive<W: Wire + 'static>(
    stream: TcpStream,
    wire: W,
    mut replies: impl Replies + 'static,
    pace: Pace,
    total: u64,
    warm: u64,
    origin: Instant,
    t0_ns: u64,
    send_until_ns: u64,
    window_ns: (u64, u64),
) -> Result<std::thread::JoinHandle<ConnResult>> {
    stream.set_nodelay(true)?;
    let mut reader_stream = stream.try_clone()?;
    reader_stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let sent_total = Arc::new(AtomicU64::new(u64::MAX));
    let request_bytes = Arc::new(AtomicU64::new(0));
    let writer = Writer {
        stream,
        wire,
        next: 0,
        bytes: 0,
        buf: Vec::with_capacity(64 * 1024),
    };
    let (open_writer, mut inline_writer) = match pace {
        Pace::Open { rate } => {
            let sent_total = Arc::clone(&sent_total);
            let request_bytes = Arc::clone(&request_bytes);
            let mut w = writer;
            let handle = std::thread::Builder::new()
                .name("perf-fix-writer".into())
                .spawn(move || {
                    while w.next < total {
                        let now = ns_since(origin);
                        if now >= send_until_ns {
                            break;
                        }
                        let due = t0_ns + scheduled(w.next, rate);
                        if now < due {
                            if due - now > SPIN_BELOW_NS {
                                std::thread::sleep(Duration::from_nanos(
                                    due - now - SPIN_BELOW_NS / 2,
                                ));
                            } else {
                                std::thread::yield_now();
                            }
                            continue;
                        }
                        // Everything due by now, in one write.
                        let elapsed = (now - t0_ns) as u128;
                        let upto = ((elapsed * rate as u128 / 1_000_000_000) as u64 + 1).min(total);
                        if !w.send_upto(upto) {
                            break;
                        }
                    }
                    request_bytes.store(w.bytes, Ordering::Relaxed);
                    sent_total.store(w.next, Ordering::Release);
                })?;
            (Some(handle), None)
        }
        Pace::Window { .. } => (None, Some(writer)),
    };
    let handle = std::thread::Builder::new()
        .name("perf-fix-reader".into())
        .spawn(move || {
            let mut r = ConnResult {
                sent: 0,
                answered: 0,
                rejected: 0,
                answered_in_window: 0,
                request_bytes: 0,
                reply_bytes: 0,
                last_answer_ns: 0,
                latency: new_histogram(),
            };
            let mut seen = vec![0u64; (total as usize).div_ceil(64)];
            let mut buf = Vec::with_capacity(256 * 1024);
            let mut chunk = vec![0u8; 64 * 1024];
            // Answers may trail the last send by the time the venue needs
            // to drain; give up 10 s after the writer stopped.
            let mut give_up = u64::MAX;
            loop {
                if let (Some(w), Pace::Window { window }) = (&mut inline_writer, pace) {
                    if sent_total.load(Ordering::Relaxed) == u64::MAX {
                        let room = (r.answered + window).min(total);
                        let stop = ns_since(origin) >= send_until_ns || w.next >= total;
                        if stop || (room > w.next && !w.send_upto(room)) {
                            request_bytes.store(w.bytes, Ordering::Relaxed);
                            sent_total.store(w.next, Ordering::Release);
                        }
                    }
                }
                let sent = sent_total.load(Ordering::Acquire);
                if sent != u64::MAX {
                    if r.answered >= sent {
                        break;
                    }
                    if give_up == u64::MAX {
                        give_up = ns_since(origin) + 10_000_000_000;
                    } else if ns_since(origin) > give_up {
                        break;
                    }
                }
                let n = match reader_stream.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock
                                | std::io::ErrorKind::TimedOut
                                | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    Err(_) => break,
                };
                let now = ns_since(origin);
                buf.extend_from_slice(&chunk[..n]);
                replies.feed(&mut buf, &mut |index, bytes, rejected| {
                    if index >= total {
                        return;
                    }
                    let (word, bit) = ((index / 64) as usize, 1u64 << (index % 64));
                    if seen[word] & bit != 0 {
                        return;
                    }
                    seen[word] |= bit;
                    r.answered += 1;
                    r.reply_bytes += bytes as u64;
                    r.rejected += u64::from(rejected);
                    r.last_answer_ns = now;
                    match pace {
                        Pace::Open { rate } if index >= warm => {
                            let due = t0_ns + scheduled(index, rate);
                            r.latency.saturating_record(now.saturating_sub(due).max(1));
                        }
                        Pace::Window { .. } if now >= window_ns.0 && now < window_ns.1 => {
                            r.answered_in_window += 1;
                        }
                        _ => {}
                    }
                });
            }
            if let Some(w) = open_writer {
                // The writer has stopped (it set `sent_total`) or it is
                // blocked writing to a peer that stopped reading; the
                // stream is shut down below either way.
                let _ = reader_stream.shutdown(std::net::Shutdown::Both);
                let _ = w.join();
            }
            r.sent = sent_total.load(Ordering::Acquire);
            if r.sent == u64::MAX {
                r.sent = 0;
            }
            r.request_bytes = request_bytes.load(Ordering::Relaxed);
            r
        })?;
    Ok(handle)
}

fn join<T>(h: std::thread::JoinHandle<T>) -> Result<T> {
    h.join()
        .map_err(|_| Error::Unexpected("a load generator thread panicked".into()))
}

/// Connects session `s` and logs on (ResetSeqNumFlag=Y); returns the
/// stream and the encoder, whose next MsgSeqNum is 2.
fn logon(addr: SocketAddr, s: usize) -> Result<(TcpStream, FixWire)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut wire = FixWire::new(s);
    let mut out = Vec::new();
    wire.logon(&mut out);
    stream.write_all(&out)?;
    let mut replies = FixReplies::default();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !replies.logged_on {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(Error::Unexpected(format!(
                "the acceptor closed session {s} during Logon"
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
        replies.feed(&mut buf, &mut |_, _, _| {});
    }
    stream.set_read_timeout(None)?;
    Ok((stream, wire))
}

fn latency_run(
    transport: &'static str,
    rate: u64,
    warm: u64,
    measured: u64,
    r: ConnResult,
    t0_ns: u64,
) -> LatencyRun {
    let measure_start = t0_ns + scheduled(warm, rate);
    let seconds = r.last_answer_ns.saturating_sub(measure_start) as f64 / 1e9;
    let measured_answers = r.latency.len();
    LatencyRun {
        transport,
        target_rate: rate,
        warmup_messages: warm,
        measured_messages: measured,
        sent: r.sent,
        answered: r.answered,
        rejected: r.rejected,
        sink_dropped: 0,
        achieved_rate: if seconds > 0.0 {
            measured_answers as f64 / seconds
        } else {
            0.0
        },
        request_bytes: r.request_bytes as f64 / r.sent.max(1) as f64,
        reply_bytes: r.reply_bytes as f64 / r.answered.max(1) as f64,
        latency: Percentiles::of(&r.latency),
        hgrm: None,
        histogram: r.latency,
    }
}

/// Open-loop deadline: the writer stops offering at twice the planned time.
fn send_deadline(opts: &FixOptions, t0_ns: u64) -> u64 {
    t0_ns + ((opts.warmup + opts.duration) * 2.0 * 1e9) as u64 + 1_000_000_000
}

fn run_fix_latency(opts: &FixOptions, rate: u64) -> Result<LatencyRun> {
    let (warm, measured) = opts.plan(rate);
    let venue = Venue::start(opts, 1)?;
    let (stream, wire) = logon(venue.addr, 0)?;
    let origin = Instant::now();
    let t0 = ns_since(origin) + 2_000_000;
    let r = drive(
        stream,
        wire,
        FixReplies::default(),
        Pace::Open { rate },
        warm + measured,
        warm,
        origin,
        t0,
        send_deadline(opts, t0),
        (0, 0),
    )?;
    let result = join(r)?;
    let (healthy, sink_dropped) = venue.stop();
    if !healthy {
        return Err(Error::Unexpected(
            "the pipeline failed during the FIX run".into(),
        ));
    }
    Ok(LatencyRun {
        sink_dropped,
        ..latency_run("fix", rate, warm, measured, result, t0)
    })
}

fn run_tcp_latency(
    opts: &FixOptions,
    rate: u64,
    request: usize,
    reply: usize,
) -> Result<LatencyRun> {
    let (request, reply) = (request.max(16), reply.max(16));
    let (warm, measured) = opts.plan(rate);
    let (addr, server) = echo_server(request, reply)?;
    let stream = TcpStream::connect(addr)?;
    let origin = Instant::now();
    let t0 = ns_since(origin) + 2_000_000;
    let r = drive(
        stream,
        TcpWire { size: request },
        TcpReplies { size: reply },
        Pace::Open { rate },
        warm + measured,
        warm,
        origin,
        t0,
        send_deadline(opts, t0),
        (0, 0),
    )?;
    let result = join(r)?;
    join(server)?;
    Ok(latency_run("tcp", rate, warm, measured, result, t0))
}

fn run_fix_throughput(opts: &FixOptions, sessions: usize) -> Result<ThroughputRun> {
    let venue = Venue::start(opts, sessions)?;
    let mut conns = Vec::new();
    for s in 0..sessions {
        conns.push(logon(venue.addr, s)?);
    }
    let origin = Instant::now();
    let t0 = ns_since(origin) + 2_000_000;
    let window_start = t0 + (opts.warmup * 1e9) as u64;
    let window_end = window_start + (opts.duration * 1e9) as u64;
    // Enough order ids for the fastest plausible acceptor.
    let total = ((opts.warmup + opts.duration) * 2_000_000.0) as u64 + opts.window;
    let mut handles = Vec::new();
    for (stream, wire) in conns {
        handles.push(drive(
            stream,
            wire,
            FixReplies::default(),
            Pace::Window {
                window: opts.window,
            },
            total,
            0,
            origin,
            t0,
            window_end,
            (window_start, window_end),
        )?);
    }
    let mut run = ThroughputRun {
        sessions,
        window: opts.window,
        seconds: opts.duration,
        sent: 0,
        answered_in_window: 0,
        rejected: 0,
        unanswered: 0,
        sink_dropped: 0,
        orders_per_sec: 0.0,
    };
    for r in handles {
        let c = join(r)?;
        run.sent += c.sent;
        run.answered_in_window += c.answered_in_window;
        run.rejected += c.rejected;
        run.unanswered += c.sent.saturating_sub(c.answered);
    }
    run.orders_per_sec = run.answered_in_window as f64 / opts.duration;
    let (healthy, sink_dropped) = venue.stop();
    run.sink_dropped = sink_dropped;
    if !healthy {
        return Err(Error::Unexpected(
            "the pipeline failed during the throughput run".into(),
        ));
    }
    Ok(run)
}

// ---------------------------------------------------------------------------
// Results

/// Writes `fix-<rate>.hgrm` and `tcp-<rate>.hgrm` per rate,
/// `latency-percentiles.svg` (FIX and TCP per rate),
/// `throughput-latency.svg` (p50/p99 of both against the achieved rate),
/// the summary and the context into `dir`.
pub fn write_fix_results(
    dir: &crate::results::ResultsDir,
    report: &mut FixReport,
    config_file: Option<(&Path, &str)>,
) -> Result<()> {
    use crate::plot::{percentile_plot, percentile_series, throughput_latency_chart, Series};
    let mut lines = Vec::new();
    for pair in &mut report.rates {
        for run in [&mut pair.fix, &mut pair.tcp] {
            let name = dir.write_hgrm(
                &format!("{}-{}", run.transport, run.target_rate),
                &run.histogram,
            )?;
            let d = crate::hgrm::parse(&std::fs::read_to_string(dir.path().join(&name))?)?;
            lines.push(percentile_series(
                format!("{} {}/s", run.transport, run.target_rate),
                &d,
            ));
            run.hgrm = Some(name);
        }
    }
    if !lines.is_empty() {
        percentile_plot(
            &dir.path().join("latency-percentiles.svg"),
            "FIX NewOrderSingle -> ExecutionReport vs raw TCP ping-pong (open loop)",
            &lines,
        )?;
        let mut pairs: Vec<&RatePair> = report.rates.iter().collect();
        pairs.sort_by(|a, b| a.fix.achieved_rate.total_cmp(&b.fix.achieved_rate));
        let line = |label: &str, pick: fn(&RatePair) -> (f64, u64)| Series {
            label: label.into(),
            points: pairs
                .iter()
                .map(|p| {
                    let (x, ns) = pick(p);
                    (x, ns as f64 / 1000.0)
                })
                .collect(),
        };
        throughput_latency_chart(
            &dir.path().join("throughput-latency.svg"),
            "FIX round trip and TCP ping-pong against achieved rate",
            "achieved messages/s",
            &[
                line("fix p50", |p| (p.fix.achieved_rate, p.fix.latency.p50)),
                line("fix p99", |p| (p.fix.achieved_rate, p.fix.latency.p99)),
                line("tcp p50", |p| (p.tcp.achieved_rate, p.tcp.latency.p50)),
                line("tcp p99", |p| (p.tcp.achieved_rate, p.tcp.latency.p99)),
            ],
        )?;
    }
    report.results_dir = Some(dir.path().display().to_string());
    dir.write_context(&report.machine, &report.options, config_file)?;
    dir.write_json("summary.json", report)?;
    dir.write_text("summary.txt", &render_fix(report))?;
    Ok(())
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

/// The human-readable report.
pub fn render_fix(r: &FixReport) -> String {
    use std::fmt::Write;
    let o = &r.options;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ringex-perf fix: NewOrderSingle -> ExecutionReport over loopback vs raw TCP ping-pong"
    );
    let _ = writeln!(s, "machine:    {}", r.machine);
    let _ = writeln!(
        s,
        "config:     durability {}, warm-up {} s, measured {} s per run, throttle {}/s per session",
        o.durability, o.warmup, o.duration, o.throttle
    );
    if !r.rates.is_empty() {
        let _ = writeln!(
            s,
            "latency:    open loop, one session, from the scheduled send time to the first reply (us)"
        );
        let _ = writeln!(
            s,
            "{:>9} {:>5} {:>11} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6} {:>6} {:>8}",
            "rate/s",
            "wire",
            "achieved/s",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "answered",
            "req B",
            "rep B",
            "p99 x"
        );
        for p in &r.rates {
            for (run, ratio) in [(&p.fix, format!("{:.2}", p.p99_ratio)), (&p.tcp, "".into())] {
                let l = &run.latency;
                let _ = writeln!(
                    s,
                    "{:>9} {:>5} {:>11.0} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>6.0} {:>6.0} {:>8}",
                    run.target_rate,
                    run.transport,
                    run.achieved_rate,
                    us(l.p50),
                    us(l.p90),
                    us(l.p99),
                    us(l.p99_9),
                    us(l.max),
                    format!("{}/{}", run.answered, run.sent),
                    run.request_bytes,
                    run.reply_bytes,
                    ratio
                );
            }
        }
    }
    if !r.throughput.is_empty() {
        let _ = writeln!(
            s,
            "throughput: closed loop, {} orders in flight per session, first ExecutionReports per second",
            o.window
        );
        let _ = writeln!(
            s,
            "{:>9} {:>12} {:>10} {:>9} {:>11} {:>11}",
            "sessions", "orders/s", "sent", "rejected", "unanswered", "sink drops"
        );
        for t in &r.throughput {
            let _ = writeln!(
                s,
                "{:>9} {:>12.0} {:>10} {:>9} {:>11} {:>11}",
                t.sessions, t.orders_per_sec, t.sent, t.rejected, t.unanswered, t.sink_dropped
            );
        }
    }
    for p in &r.rates {
        if p.fix.answered < p.fix.sent || p.fix.rejected > 0 || p.fix.sink_dropped > 0 {
            let _ = writeln!(
                s,
                "WARNING: FIX at {}/s: {} of {} answered, {} rejected, {} engine events dropped by the acceptor's sink (it fell behind)",
                p.fix.target_rate, p.fix.answered, p.fix.sent, p.fix.rejected, p.fix.sink_dropped
            );
        }
    }
    let _ = writeln!(
        s,
        "targets:    FIX p99 <= {TARGET_P99_RATIO}x TCP p99; >= {TARGET_ONE_SESSION:.0} orders/s through one session"
    );
    if let Some(dir) = &r.results_dir {
        let _ = writeln!(s, "results:    {dir}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> FixOptions {
        FixOptions {
            rates: vec![1000],
            sessions: vec![],
            duration: 1.0,
            warmup: 0.5,
            window: 100,
            throttle: 1_000_000,
            durability: Durability(ringex_journal::DurabilityPolicy::None),
            config: None,
            max_orders: 10_000,
            order_capacity: 1024,
        }
    }

    #[test]
    fn the_initiator_writes_frames_the_acceptor_parses() {
        let mut wire = FixWire::new(3);
        let mut out = Vec::new();
        wire.logon(&mut out);
        wire.encode(7, &mut out);
        wire.encode(8, &mut out);
        let d = Dictionaries::shared();
        let mut at = 0;
        let mut seqs = Vec::new();
        while at < out.len() {
            let len = frame_len(&out[at..]).expect("a whole frame");
            let m =
                ringex_gateways::fix::message::Message::parse(out[at..at + len].to_vec(), &d.fix44)
                    .expect("a valid frame");
            ringex_gateways::fix::validate::validate(&m, &d.fix44).expect("valid fields");
            seqs.push(m.header_uint(34).unwrap());
            if m.msg_type() == b"D" {
                assert_eq!(m.str_value(55), Some("PERF3"));
            }
            at += len;
        }
        assert_eq!(seqs, vec![1, 2, 3]);
        let text = String::from_utf8_lossy(&out).replace('\x01', "|");
        assert!(text.contains("|11=7|") && text.contains("|54=1|"), "{text}");
        assert!(text.contains("|11=8|") && text.contains("|54=2|"), "{text}");
    }

    #[test]
    fn replies_are_cut_by_clordid_and_rejects_are_flagged() {
        let mut wire = FixWire::new(0);
        let mut buf = Vec::new();
        wire.message("8", &[("11", b"42"), ("150", b"0")], &mut buf);
        wire.message("0", &[], &mut buf);
        wire.message("8", &[("11", b"43"), ("150", b"8")], &mut buf);
        let partial = b"8=FIX.4.4\x019=5";
        buf.extend_from_slice(partial);
        let mut got = Vec::new();
        FixReplies::default().feed(&mut buf, &mut |i, _, rej| got.push((i, rej)));
        assert_eq!(got, vec![(42, false), (43, true)]);
        assert_eq!(buf, partial, "the partial frame stays");
    }

    #[test]
    fn tcp_messages_carry_their_index_at_the_given_size() {
        let mut out = Vec::new();
        TcpWire { size: 40 }.encode(5, &mut out);
        TcpWire { size: 40 }.encode(6, &mut out);
        assert_eq!(out.len(), 80);
        let mut got = Vec::new();
        out.truncate(79);
        TcpReplies { size: 40 }.feed(&mut out, &mut |i, n, _| got.push((i, n)));
        assert_eq!(got, vec![(5, 40)]);
        assert_eq!(out.len(), 39);
    }

    #[test]
    fn options_are_checked_and_the_plan_is_capped() {
        let o = opts();
        assert!(o.check().is_ok());
        assert_eq!(o.plan(1000), (500, 1000));
        assert_eq!(o.plan(100_000), (5000, 5000));
        for bad in [
            FixOptions {
                rates: vec![0],
                ..opts()
            },
            FixOptions {
                sessions: vec![0],
                ..opts()
            },
            FixOptions {
                duration: 0.0,
                ..opts()
            },
            FixOptions {
                window: 0,
                ..opts()
            },
            FixOptions {
                rates: vec![],
                ..opts()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
