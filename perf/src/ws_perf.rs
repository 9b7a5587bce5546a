//! `ringex-perf ws`: WebSocket market-data fan-out over loopback.
//!
//! Two processes. The gateway process (the one the user started) holds a
//! pipeline, a [`WsGateway`] on `127.0.0.1:0` and an open-loop load
//! driver. The subscribers run in a second process: the same binary
//! re-executed (`std::env::current_exe()`) with the hidden subcommand
//! [`SUBSCRIBER_COMMAND`]. Each process then holds one descriptor per
//! subscriber (the gateway's socket, the client's socket), so 10,000
//! subscribers fit under a hard `RLIMIT_NOFILE` of 20,000; in one process
//! they would need two each. It is also how a real measurement separates
//! the system under test from its load.
//!
//! # Processes and threads
//!
//! | Process | Thread | Owns |
//! |---------|--------|------|
//! | gateway | the calling thread (the driver) | the pipeline, the gateway handle, the [`CommandSender`] and the submit-time table (writes it); submits the order flow at `--rate` |
//! | gateway | `ws-child-out`, `ws-child-err` | the subscriber process's stdout (lines to a channel) and stderr (its tail) |
//! | gateway | pipeline stages, `ringex-ws` | as in `ringex_core::pipeline` and `ringex_gateways::ws` |
//! | gateway | the driver, stall phase | also the one stalled subscriber's socket (it never reads; no subscriber process then) |
//! | subscriber | its main thread | connects the subscribers (with a few helper threads), then waits for its stdin to close and reports |
//! | subscriber | `ws-client-N` (a few) | a `mio` poll and its share of the subscriber sockets, each with its partial-frame buffer and `seq` check; a latency histogram |
//!
//! The submit-time table is a memory-mapped file in a temporary folder:
//! the driver stores, per command, the `CLOCK_MONOTONIC` time of its
//! `try_submit` ([`monotonic_ns`]; the clock is system-wide, so it
//! compares across the two processes), and the measured window; the
//! client threads read it. The subscriber process says `ready <n>` on its
//! stdout once connected; the gateway process closes the child's stdin to
//! stop it, and the child answers with one `report <json>` line: its
//! counters and its latency histogram's buckets. Every wait on the child
//! is bounded; a child that exits or hangs ends the run with an error
//! naming its exit status and its stderr, and it is killed, never left
//! behind. A gateway process that dies closes the child's stdin, so the
//! child stops too.
//!
//! # What one book update is, and what is timed
//!
//! The flow is pairs of commands on one binary market: place order `k`
//! (YES bid, price `1 + k % 45`, quantity `k + 1`, never crossing) and
//! cancel order `k - live`. Each command changes one price level by its
//! order's quantity, so each is one `orderbook_delta` whose `delta` is
//! `±(k + 1)`: a subscriber reads `k` back from the message and looks up
//! the time the driver submitted that command. The latency recorded per
//! delivered delta is **driver submit (`try_submit`) → subscriber's
//! `read` returned the frame**: input ring, journal, engine, publisher,
//! the gateway's sink, its JSON and queue, the socket and the client's
//! poll wake-up. Deltas conflated away are not delivered and so not
//! timed; the conflation snapshots that replace them are counted.
//!
//! The subscribers speak raw WebSocket (the HTTP upgrade written by hand,
//! frames parsed in place, pongs answered) so that the client side costs
//! as little CPU as possible on the machine it shares with the gateway.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use ringex_core::pipeline::{CommandSender, Pipeline, PipelineConfig, SubmitError};
use ringex_core::records::{Command, OrderSpec, Outcome, Side};
use ringex_core::EngineConfig;
use ringex_gateways::ws::{GatewayConfig, MarketConfig, WsGateway};
use serde::{Deserialize, Serialize};

use crate::config::RingexConfig;
use crate::error::{Error, Result};
use crate::hgrm::new_histogram;
use crate::pipeline::Percentiles;
use crate::progress::Progress;
use crate::sys::Machine;

/// The market every subscriber follows.
pub const TICKER: &str = "WSPERF-BOOK";
const INSTRUMENT: u32 = 1;
const ACCOUNT: u32 = 1;
/// Largest server frame a subscriber accepts (the gateway's are far smaller).
const MAX_FRAME: usize = 1 << 24;
/// File descriptors kept free for the journal, the poll instances and the
/// rest of the process when sizing the subscriber count.
const FD_RESERVE: u64 = 256;

/// Options of `ringex-perf ws`.
#[derive(Debug, Clone, Serialize)]
pub struct WsOptions {
    /// Subscriber counts, one fan-out phase each (fresh pipeline and gateway).
    pub subscribers: Vec<usize>,
    /// Book updates (commands) per second offered by the driver.
    pub rate: u64,
    /// Measured seconds per phase.
    pub duration: f64,
    /// Warm-up seconds per phase (sent, not recorded).
    pub warmup: f64,
    /// Client threads sharing the subscriber sockets.
    pub client_threads: usize,
    /// Orders kept resting (each pair places one and cancels the oldest).
    pub live_orders: u64,
    /// The gateway's outbound queue per connection
    /// (`Limits::outbound_queue_messages`): the conflation threshold.
    pub queue_messages: usize,
    /// A configuration file's pipeline and engine sections (default: the
    /// two-core preset with an engine sized for the flow).
    pub config: Option<RingexConfig>,
}

impl WsOptions {
    /// Refuses options that cannot run.
    pub fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::Unexpected(m.into()));
        if self.subscribers.is_empty() || self.subscribers.contains(&0) {
            return bad("--subscribers must be positive");
        }
        if self.rate == 0 || self.rate > 10_000_000 {
            return bad("--rate must be in 1..=10000000");
        }
        if !(self.duration > 0.0 && self.duration <= 600.0) {
            return bad("--duration must be in (0, 600]");
        }
        if !(self.warmup >= 0.0 && self.warmup <= 60.0) {
            return bad("--warmup must be in [0, 60]");
        }
        if self.client_threads == 0 || self.client_threads > 64 {
            return bad("--client-threads must be in 1..=64");
        }
        if self.live_orders == 0 || self.live_orders > 100_000 {
            return bad("--live-orders must be in 1..=100000");
        }
        if self.queue_messages < 2 || self.queue_messages > 1 << 20 {
            return bad("--queue-messages must be in 2..=1048576");
        }
        if let Some(c) = &self.config {
            c.pipeline_config(Path::new("unused"))
                .validate()
                .map_err(|e| Error::Unexpected(format!("configuration: {e}")))?;
            if u64::from(c.engine.max_orders) < self.live_orders + 16 {
                return bad("configuration [engine] max_orders cannot hold --live-orders");
            }
        }
        Ok(())
    }

    /// Commands one phase offers (warm-up plus measured).
    fn planned_commands(&self) -> u64 {
        ((self.warmup + self.duration) * self.rate as f64).ceil() as u64 + 2
    }

    /// Orders one phase places: the resting ones, then one per two commands.
    fn planned_orders(&self) -> usize {
        (self.live_orders + self.planned_commands() / 2 + 1) as usize
    }
}

/// One fan-out phase.
#[derive(Debug, Clone, Serialize)]
pub struct FanoutResult {
    /// Subscribers asked for.
    pub requested: usize,
    /// Subscribers connected and subscribed (less than `requested` only
    /// where the file-descriptor limit does not allow more).
    pub subscribers: usize,
    /// Offered book updates per second.
    pub target_rate: u64,
    /// Book updates (commands) submitted in the measured window.
    pub measured_updates: u64,
    /// Commands the engine applied per second over the measured window.
    pub engine_rate: f64,
    /// `try_submit` answered `Busy` (the input ring was full).
    pub busy: u64,
    /// Deltas of measured commands delivered to subscribers.
    pub deltas: u64,
    /// Conflation snapshots delivered (a subscription's dropped deltas
    /// replaced by a fresh snapshot), measured window.
    pub conflation_snapshots: u64,
    /// `conflation_snapshots / deltas`.
    pub conflation_rate: f64,
    /// Deltas delivered out of `measured_updates × subscribers`.
    pub delivered_fraction: f64,
    /// Messages (deltas and snapshots) received per second, all
    /// subscribers, over the measured window.
    pub messages_per_sec: f64,
    /// The gateway's conflation counter over the measured window.
    pub gateway_conflations: u64,
    /// Connections the gateway closed as stuck or too slow.
    pub slow_disconnects: u64,
    /// Connections closed by the server during the run.
    pub closed: u64,
    /// Events the gateway's sink dropped (the gateway thread fell behind).
    pub sink_dropped: u64,
    /// `seq` rule violations seen by subscribers (a delta not `last + 1`,
    /// a snapshot going back); must be 0.
    pub seq_errors: u64,
    /// Subscribers that got no update (delta or snapshot) after their
    /// initial snapshot.
    pub subscribers_without_updates: usize,
    /// Fewest updates one subscriber got.
    pub min_updates_per_subscriber: u64,
    /// Delivery latency, submit → client receipt, ns.
    pub latency: Percentiles,
    /// The `.hgrm` file written for this phase.
    pub hgrm: Option<String>,
    #[serde(skip)]
    histogram: Histogram<u64>,
}

/// The engine's throughput in one stall sub-phase.
#[derive(Debug, Clone, Serialize)]
pub struct StallPhase {
    /// Whether a stalled subscriber was connected.
    pub stalled_client: bool,
    /// Commands the engine applied per second over the measured window.
    pub engine_rate: f64,
    /// `try_submit` answered `Busy`.
    pub busy: u64,
    /// Commands the driver could not send before its deadline.
    pub unsent: u64,
    /// The pipeline's own latency (ring → publish) over the run, ns.
    pub pipeline_latency: Percentiles,
    /// The gateway's conflations.
    pub gateway_conflations: u64,
    /// Events the gateway's sink dropped.
    pub sink_dropped: u64,
}

/// One stalled client against none, same rate and duration.
#[derive(Debug, Clone, Serialize)]
pub struct StallResult {
    /// Offered rate.
    pub target_rate: u64,
    /// Without, then with the stalled client.
    pub phases: Vec<StallPhase>,
    /// Engine rate with the stalled client over the rate without.
    pub ratio: f64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct WsReport {
    /// Always `"ws"`.
    pub bench: &'static str,
    /// Where it ran.
    pub machine: Machine,
    /// The options.
    pub options: WsOptions,
    /// `RLIMIT_NOFILE` (soft, hard) after raising the soft limit.
    pub nofile_limit: (u64, u64),
    /// Most subscribers the descriptor limit allows (each costs one
    /// descriptor in the gateway process and one in the subscriber process).
    pub max_subscribers: usize,
    /// One per subscriber count.
    pub fanout: Vec<FanoutResult>,
    /// The stalled-client comparison.
    pub stall: StallResult,
    /// Where the results were written.
    pub results_dir: Option<String>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; (soft, hard) after.
pub fn raise_nofile_limit() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (0, 0);
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: a valid rlimit no higher than the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    (lim.rlim_cur, lim.rlim_max)
}

/// Now on `CLOCK_MONOTONIC`, nanoseconds. The clock is system-wide, so
/// the driver's submit times and the subscriber process's receive times
/// compare directly (an [`Instant`] cannot cross a process boundary).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the call;
    // CLOCK_MONOTONIC is always supported on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Marks a file as this harness's submit-time table (and its layout version).
const SHARED_MAGIC: u64 = 0x5753_5045_5246_0001;
/// Words before the two tables: magic, orders, window start, window end.
const SHARED_HEADER: usize = 4;

/// The submit-time table the driver writes and the subscribers read: a
/// memory-mapped file shared by the gateway process (the driver writes
/// it) and the subscriber process (its client threads read it).
///
/// Layout, all `u64` words accessed only atomically: `magic`, `orders`,
/// `window_start`, `window_end` (monotonic ns, `u64::MAX` until known),
/// then `placed[orders]` and `cancelled[orders]`: the `CLOCK_MONOTONIC`
/// time at which the driver submitted the command that placed (cancelled)
/// order `k`, 0 = not sent.
struct Shared {
    map: memmap2::MmapMut,
    orders: usize,
}

impl Shared {
    fn words_for(orders: usize) -> usize {
        SHARED_HEADER + 2 * orders
    }

    /// Creates the table in a new file at `path`.
    fn create(path: &Path, orders: usize) -> Result<Shared> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        file.set_len((Shared::words_for(orders) * 8) as u64)?;
        // SAFETY: the file was just created by this process and is only
        // ever accessed through `Shared`, i.e. with atomic word operations
        // (by this process and the subscriber process); nobody truncates it.
        let map = unsafe { memmap2::MmapMut::map_mut(&file)? };
        Ok(Shared::init(map, orders))
    }

    /// A table in anonymous memory, for a driver with no subscriber process.
    fn anonymous(orders: usize) -> Result<Shared> {
        let map = memmap2::MmapMut::map_anon(Shared::words_for(orders) * 8)?;
        Ok(Shared::init(map, orders))
    }

    fn init(map: memmap2::MmapMut, orders: usize) -> Shared {
        let s = Shared { map, orders };
        let w = s.words();
        w[1].store(orders as u64, Ordering::Relaxed);
        w[2].store(u64::MAX, Ordering::Relaxed);
        w[3].store(u64::MAX, Ordering::Relaxed);
        w[0].store(SHARED_MAGIC, Ordering::Release);
        s
    }

    /// Maps the table another process created at `path`.
    fn open(path: &Path) -> Result<Shared> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        // SAFETY: as in `create`: the file is only accessed through
        // `Shared`'s atomic word operations and never truncated while mapped.
        let map = unsafe { memmap2::MmapMut::map_mut(&file)? };
        let bad = |m: &str| Error::Unexpected(format!("{}: {m}", path.display()));
        if map.len() < SHARED_HEADER * 8 {
            return Err(bad("too short for a submit-time table"));
        }
        let s = Shared { map, orders: 0 };
        if s.words()[0].load(Ordering::Acquire) != SHARED_MAGIC {
            return Err(bad("not a submit-time table"));
        }
        let orders = s.words()[1].load(Ordering::Relaxed) as usize;
        if s.map.len() != Shared::words_for(orders) * 8 {
            return Err(bad("size does not match its order count"));
        }
        Ok(Shared { orders, ..s })
    }

    fn words(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned (so 8-aligned), its length
        // is a multiple of 8 and it lives as long as `self`. `AtomicU64`
        // has the size and alignment of `u64`. The memory is never
        // accessed through a `&mut [u8]` (no `DerefMut` of the map), only
        // through these atomics, in this process and the other.
        unsafe {
            std::slice::from_raw_parts(self.map.as_ptr().cast::<AtomicU64>(), self.map.len() / 8)
        }
    }

    fn window_start(&self) -> &AtomicU64 {
        &self.words()[2]
    }

    fn window_end(&self) -> &AtomicU64 {
        &self.words()[3]
    }

    /// Submit time of the command that placed order `k`.
    fn placed(&self, k: usize) -> Option<&AtomicU64> {
        (k < self.orders).then(|| &self.words()[SHARED_HEADER + k])
    }

    /// Submit time of the command that cancelled order `k`.
    fn cancelled(&self, k: usize) -> Option<&AtomicU64> {
        (k < self.orders).then(|| &self.words()[SHARED_HEADER + self.orders + k])
    }

    fn now(&self) -> u64 {
        monotonic_ns()
    }

    fn in_window(&self, t: u64) -> bool {
        t >= self.window_start().load(Ordering::Acquire)
            && t < self.window_end().load(Ordering::Acquire)
    }
}

/// A running pipeline and gateway with the market created and funded.
struct Exchange {
    pipeline: Pipeline,
    gateway: WsGateway,
    sender: CommandSender,
    _dir: tempfile::TempDir,
}

impl Exchange {
    fn start(opts: &WsOptions, max_connections: usize) -> Result<Exchange> {
        let dir = tempfile::Builder::new()
            .prefix("ringex-perf-ws-")
            .tempdir()?;
        let config = match &opts.config {
            Some(c) => c.pipeline_config(dir.path()),
            None => PipelineConfig::two_core_default(dir.path()).with_engine(EngineConfig {
                max_orders: (opts.live_orders as u32 + 1024).max(4096),
                ..EngineConfig::small()
            }),
        }
        .with_timer(None);
        let pipeline = Pipeline::start(config).map_err(|e| Error::Unexpected(e.to_string()))?;
        let mut gc = GatewayConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        let market = MarketConfig::binary(TICKER, INSTRUMENT);
        gc.markets = vec![market.clone()];
        gc.limits.max_connections = max_connections + 16;
        gc.limits.outbound_queue_messages = opts.queue_messages;
        let gateway = WsGateway::start(gc, &pipeline)
            .map_err(|e| Error::Unexpected(format!("gateway: {e}")))?;
        let mut sender = pipeline.sender();
        let mut busy = 0;
        for cmd in [
            market.add_instrument_command(),
            Command::add_account(ACCOUNT),
            Command::deposit(ACCOUNT, 0, 1 << 52),
        ]
        .into_iter()
        .chain((0..opts.live_orders).map(place))
        {
            submit(&mut sender, cmd, &mut busy)?;
        }
        let ex = Exchange {
            pipeline,
            gateway,
            sender,
            _dir: dir,
        };
        ex.wait_for_market()?;
        Ok(ex)
    }

    /// Waits until the gateway's view has the market (REST answers 200).
    fn wait_for_market(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = self.gateway.local_addr();
        loop {
            let answer = http_get(addr, &format!("/api/v1/markets/{TICKER}"));
            if answer.starts_with("HTTP/1.1 200") {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Unexpected(format!(
                    "the gateway did not show market {TICKER}: {answer}"
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stop(self) -> ringex_core::pipeline::ShutdownReport {
        let Exchange {
            pipeline,
            gateway,
            sender,
            _dir,
        } = self;
        gateway.shutdown();
        drop(sender);
        pipeline.shutdown()
    }
}

fn http_get(addr: SocketAddr, path: &str) -> String {
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: perf\r\nConnection: close\r\n\r\n"
    );
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// Submits `cmd`, retrying (and counting) while the ring is full.
fn submit(sender: &mut CommandSender, cmd: Command, busy: &mut u64) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sender.try_submit(cmd) {
            Ok(seq) => return Ok(seq),
            Err(SubmitError::Busy) if Instant::now() < deadline => {
                *busy += 1;
                std::thread::sleep(Duration::from_micros(20));
            }
            Err(e) => return Err(Error::Unexpected(format!("submit failed: {e:?}"))),
        }
    }
}

/// Places order `k` (client id `k + 1`): a YES bid at `1 + k % 45` cents
/// for `k + 1` contracts, never crossing (nothing sells).
fn place(k: u64) -> Command {
    let mut spec = OrderSpec::limit(
        ACCOUNT,
        INSTRUMENT,
        k + 1,
        Side::Buy,
        1 + (k % 45) as i64,
        k + 1,
    );
    spec.outcome = Outcome::Yes;
    Command::new_order(spec)
}

/// Command `i` of the flow, once orders `0..live` rest: even `i` places
/// order `live + i / 2`, odd `i` cancels order `i / 2`. Returns the order
/// and whether it is a placement.
fn flow_command(i: u64, live: u64) -> (Command, u64, bool) {
    let pair = i / 2;
    if i % 2 == 0 {
        (place(live + pair), live + pair, true)
    } else {
        (Command::cancel_by_client_id(ACCOUNT, pair + 1), pair, false)
    }
}

/// What the driver did.
struct Driven {
    busy: u64,
    unsent: u64,
    measured: u64,
    engine_rate: f64,
}

/// Offers the flow open loop at `opts.rate` for warm-up plus duration,
/// stamping each command's submit time, and sets the measured window.
fn drive(ex: &mut Exchange, shared: &Shared, opts: &WsOptions) -> Result<Driven> {
    let total = opts.planned_commands();
    let warm = (opts.warmup * opts.rate as f64) as u64;
    let rate = opts.rate as u128;
    let metrics = ex.pipeline.metrics();
    let start = shared.now() + 1_000_000;
    let deadline = start + ((opts.warmup + opts.duration) * 2.0e9) as u64 + 1_000_000_000;
    let at = |i: u64| start + (i as u128 * 1_000_000_000 / rate) as u64;
    shared.window_start().store(at(warm), Ordering::Release);
    let mut busy = 0u64;
    let mut i = 0u64;
    let mut before = None;
    let mut measured = 0u64;
    while i < total {
        let now = shared.now();
        if now >= deadline {
            break;
        }
        if now < at(i) {
            std::thread::sleep(Duration::from_nanos(at(i) - now));
            continue;
        }
        let due = ((now - start) as u128 * rate / 1_000_000_000) as u64 + 1;
        while i < due.min(total) {
            if i == warm && before.is_none() {
                before = Some(metrics.snapshot());
            }
            let (cmd, order, placed) = flow_command(i, opts.live_orders);
            let slot = if placed {
                shared.placed(order as usize)
            } else {
                shared.cancelled(order as usize)
            };
            slot.ok_or_else(|| Error::Unexpected(format!("order {order} past the table")))?
                .store(shared.now().max(1), Ordering::Release);
            submit(&mut ex.sender, cmd, &mut busy)?;
            if i >= warm {
                measured += 1;
            }
            i += 1;
        }
    }
    let end = shared.now();
    shared.window_end().store(end, Ordering::Release);
    // The engine's rate over the window: wait (bounded) for it to apply
    // what was sent, so a backlog counts against it.
    let sent_total = metrics.snapshot().submitted;
    let wait_until = Instant::now() + Duration::from_secs(30);
    while metrics.snapshot().applied < sent_total && Instant::now() < wait_until {
        std::thread::sleep(Duration::from_millis(1));
    }
    let after = metrics.snapshot();
    let engine_rate = before.map_or(0.0, |b| {
        let secs = after.elapsed.saturating_sub(b.elapsed).as_secs_f64();
        if secs > 0.0 {
            (after.applied - b.applied) as f64 / secs
        } else {
            0.0
        }
    });
    Ok(Driven {
        busy,
        unsent: total - i,
        measured,
        engine_rate,
    })
}

// ------------------------------------------------------------ subscribers

/// A connected, subscribed socket and the bytes read past its upgrade answer.
type Connected = (std::net::TcpStream, Vec<u8>);

/// One subscriber connection on a client thread.
struct Sub {
    stream: TcpStream,
    buf: Vec<u8>,
    last_seq: Option<u64>,
    got_initial: bool,
    updates: u64,
    closed: bool,
}

/// What a client thread counted.
#[derive(Default)]
struct ClientTally {
    deltas: u64,
    conflation_snapshots: u64,
    window_messages: u64,
    seq_errors: u64,
    closed: u64,
    updates: Vec<u64>,
    latency: Option<Histogram<u64>>,
}

const HANDSHAKE: &str = "GET /ws HTTP/1.1\r\nHost: perf\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// A masked client frame (`opcode`, `payload` < 64 KiB).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x5a, 0x17, 0xc3, 0x9e];
    let mut f = vec![0x80 | opcode];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Connects, upgrades and subscribes one blocking socket; bytes read past
/// the upgrade answer are returned with it.
fn connect(addr: SocketAddr, channels: &str) -> std::io::Result<Connected> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(HANDSHAKE.as_bytes())?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    let head_end = loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::other("closed during the upgrade"));
        }
        got.extend_from_slice(&chunk[..n]);
        if let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    if !got.starts_with(b"HTTP/1.1 101") {
        return Err(std::io::Error::other(format!(
            "upgrade refused: {}",
            String::from_utf8_lossy(&got[..head_end])
        )));
    }
    let sub = format!(
        r#"{{"id":1,"cmd":"subscribe","params":{{"channels":[{channels}],"market_tickers":["{TICKER}"]}}}}"#
    );
    s.write_all(&client_frame(1, sub.as_bytes()))?;
    Ok((s, got.split_off(head_end)))
}

/// The integer after `key` in `hay`.
fn number_after(hay: &[u8], key: &[u8]) -> Option<i64> {
    let at = hay.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &hay[at..];
    let (neg, digits) = match rest.first() {
        Some(b'-') => (true, &rest[1..]),
        _ => (false, rest),
    };
    let mut v: i64 = 0;
    let mut any = false;
    for &b in digits.iter().take_while(|b| b.is_ascii_digit()) {
        v = v.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
        any = true;
    }
    any.then_some(if neg { -v } else { v })
}

impl Sub {
    /// Handles one text message received at `now`.
    fn on_text(&mut self, text: &[u8], now: u64, shared: &Shared, t: &mut ClientTally) {
        let delta = text.starts_with(br#"{"type":"orderbook_delta""#);
        let snapshot = text.starts_with(br#"{"type":"orderbook_snapshot""#);
        if !(delta || snapshot) {
            return;
        }
        let Some(seq) = number_after(text, br#""seq":"#).map(|s| s as u64) else {
            t.seq_errors += 1;
            return;
        };
        let expected = self.last_seq.map_or(1, |s| s + 1);
        let in_window = shared.in_window(now);
        if in_window {
            t.window_messages += 1;
        }
        if snapshot {
            if seq < expected {
                t.seq_errors += 1;
            }
            if self.got_initial {
                self.updates += 1;
                if in_window {
                    t.conflation_snapshots += 1;
                }
            }
            self.got_initial = true;
        } else {
            if seq != expected {
                t.seq_errors += 1;
            }
            self.updates += 1;
            let sent = number_after(text, br#""delta":"#).and_then(|d| {
                let k = (d.unsigned_abs() as usize).checked_sub(1)?;
                let slot = if d > 0 {
                    shared.placed(k)?
                } else {
                    shared.cancelled(k)?
                };
                Some(slot.load(Ordering::Acquire))
            });
            if let Some(sent) = sent.filter(|&s| s > 0 && shared.in_window(s)) {
                t.deltas += 1;
                if let Some(h) = t.latency.as_mut() {
                    h.saturating_record(now.saturating_sub(sent).max(1));
                }
            }
        }
        self.last_seq = Some(seq);
    }

    /// Parses the complete frames in `buf`; answers pings.
    fn frames(&mut self, now: u64, shared: &Shared, t: &mut ClientTally) {
        let mut pos = 0;
        let mut pongs = Vec::new();
        loop {
            let b = &self.buf[pos..];
            if b.len() < 2 {
                break;
            }
            let (len, head): (usize, usize) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
                127 if b.len() >= 10 => {
                    let mut n = [0u8; 8];
                    n.copy_from_slice(&b[2..10]);
                    (u64::from_be_bytes(n) as usize, 10)
                }
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if len > MAX_FRAME {
                // Not what the gateway sends: stop reading this connection
                // rather than buffer without bound.
                self.closed = true;
                self.buf.clear();
                return;
            }
            if b.len() < head + len {
                break;
            }
            let (start, end) = (pos + head, pos + head + len);
            match b[0] & 0x0f {
                1 => {
                    // Taken out for the call, which borrows the rest of `self`.
                    let buf = std::mem::take(&mut self.buf);
                    self.on_text(&buf[start..end], now, shared, t);
                    self.buf = buf;
                }
                8 => self.closed = true,
                9 => pongs.push(client_frame(10, &b[head..head + len])),
                _ => {}
            }
            pos = end;
        }
        self.buf.drain(..pos);
        for p in pongs {
            let _ = self.stream.write_all(&p);
        }
    }
}

/// A client thread: owns `socks`, reads until `stop`.
fn client_thread(
    socks: Vec<Connected>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<ClientTally> {
    let mut poll = Poll::new()?;
    let mut subs = Vec::with_capacity(socks.len());
    for (i, (s, leftover)) in socks.into_iter().enumerate() {
        s.set_nonblocking(true)?;
        let mut stream = TcpStream::from_std(s);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        subs.push(Sub {
            stream,
            buf: leftover,
            last_seq: None,
            got_initial: false,
            updates: 0,
            closed: false,
        });
    }
    let mut tally = ClientTally {
        latency: Some(new_histogram()),
        ..ClientTally::default()
    };
    // Frames that arrived with the upgrade answer.
    let now = shared.now();
    for s in &mut subs {
        s.frames(now, &shared, &mut tally);
    }
    let mut events = Events::with_capacity(1024);
    let mut chunk = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Acquire) {
        if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(5))) {
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        for ev in events.iter() {
            let sub = &mut subs[ev.token().0];
            if sub.closed {
                continue;
            }
            loop {
                match sub.stream.read(&mut chunk) {
                    Ok(0) => {
                        sub.closed = true;
                        break;
                    }
                    Ok(n) => {
                        sub.buf.extend_from_slice(&chunk[..n]);
                        sub.frames(shared.now(), &shared, &mut tally);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        sub.closed = true;
                        break;
                    }
                }
            }
        }
    }
    tally.closed = subs.iter().filter(|s| s.closed).count() as u64;
    tally.updates = subs.iter().map(|s| s.updates).collect();
    Ok(tally)
}

/// Connects `n` subscribers over `threads` connecting threads; they are
/// split over the same number of client threads afterwards.
fn connect_all(addr: SocketAddr, n: usize, threads: usize) -> Result<Vec<Vec<Connected>>> {
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let count = n / threads + usize::from(t < n % threads);
            std::thread::spawn(move || {
                (0..count)
                    .map(|_| connect(addr, r#""orderbook_delta","trade""#))
                    .collect::<std::io::Result<Vec<_>>>()
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        let socks = h
            .join()
            .map_err(|_| Error::Unexpected("a connecting thread panicked".into()))?
            .map_err(|e| Error::Unexpected(format!("connecting a subscriber: {e}")))?;
        out.push(socks);
    }
    Ok(out)
}

// ------------------------------------------------------ subscriber process

/// The hidden `ringex-perf` subcommand that runs the subscribers: the
/// gateway process re-executes its own binary with it.
pub const SUBSCRIBER_COMMAND: &str = "ws-subscribers";

/// A fault for the tests: with this set to `after-ready` in its
/// environment, the subscriber process exits with status 3 right after
/// saying `ready`, and the gateway process must end the run with an error.
pub const CHILD_EXIT_ENV: &str = "RINGEX_PERF_WS_CHILD_EXIT";

/// Arguments of the subscriber process ([`SUBSCRIBER_COMMAND`]).
#[derive(Debug, Clone)]
pub struct SubscriberArgs {
    /// The gateway's address.
    pub addr: SocketAddr,
    /// The submit-time table the driver writes.
    pub shared: PathBuf,
    /// Subscribers to connect.
    pub subscribers: usize,
    /// Client threads sharing them.
    pub client_threads: usize,
}

/// What the subscriber process reports back: one line on its stdout,
/// `report ` and this as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SubscriberReport {
    deltas: u64,
    conflation_snapshots: u64,
    window_messages: u64,
    seq_errors: u64,
    closed: u64,
    /// Updates per subscriber.
    updates: Vec<u64>,
    /// The latency histogram's recorded buckets: (value in ns, count).
    latency: Vec<(u64, u64)>,
}

impl SubscriberReport {
    fn add(&mut self, t: ClientTally) {
        self.deltas += t.deltas;
        self.conflation_snapshots += t.conflation_snapshots;
        self.window_messages += t.window_messages;
        self.seq_errors += t.seq_errors;
        self.closed += t.closed;
        self.updates.extend(t.updates);
        if let Some(h) = &t.latency {
            self.latency.extend(
                h.iter_recorded()
                    .map(|v| (v.value_iterated_to(), v.count_at_value())),
            );
        }
    }

    /// The latency histogram rebuilt from its buckets.
    fn histogram(&self) -> Result<Histogram<u64>> {
        let mut h = new_histogram();
        for &(value, count) in &self.latency {
            h.record_n(value, count)
                .map_err(|e| Error::Unexpected(format!("latency bucket {value}: {e}")))?;
        }
        Ok(h)
    }
}

/// The subscriber process: connects and subscribes `args.subscribers`
/// sockets to the gateway, writes `ready <n>` on stdout, reads them on
/// `args.client_threads` client threads until its stdin is closed (the
/// gateway process's signal to stop, which also comes if that process
/// dies), then writes `report <json>` and returns.
///
/// The calling thread connects (with a few helper threads), then waits
/// on stdin; each `ws-client-N` thread owns its sockets and tally. The
/// submit times come from the memory-mapped table at `args.shared`,
/// receive times from the same `CLOCK_MONOTONIC`.
pub fn run_subscriber_process(args: &SubscriberArgs) -> Result<()> {
    if args.subscribers == 0 || args.client_threads == 0 {
        return Err(Error::Unexpected(
            "--subscribers and --client-threads must be positive".into(),
        ));
    }
    raise_nofile_limit();
    let shared = Arc::new(Shared::open(&args.shared)?);
    let threads = args.client_threads.min(args.subscribers);
    let socks = connect_all(args.addr, args.subscribers, threads)?;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = socks
        .into_iter()
        .enumerate()
        .map(|(i, socks)| {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("ws-client-{i}"))
                .spawn(move || client_thread(socks, shared, stop))
        })
        .collect::<std::io::Result<_>>()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", args.subscribers)?;
    out.flush()?;
    if std::env::var_os(CHILD_EXIT_ENV).is_some_and(|v| v == "after-ready") {
        // The tests' way to check that the gateway process notices.
        eprintln!("exiting after ready as {CHILD_EXIT_ENV} asks");
        std::process::exit(3);
    }
    // Until the gateway process closes our stdin (or exits).
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
    stop.store(true, Ordering::Release);
    let mut report = SubscriberReport::default();
    for c in clients {
        report.add(
            c.join()
                .map_err(|_| Error::Unexpected("a client thread panicked".into()))??,
        );
    }
    let json = serde_json::to_string(&report)
        .map_err(|e| Error::Unexpected(format!("encoding the report: {e}")))?;
    writeln!(out, "report {json}")?;
    out.flush()?;
    Ok(())
}

/// The gateway process's handle on the subscriber process. Every wait on
/// it is bounded; on a failure, and when dropped, the child is killed
/// and reaped, so no path leaves it behind.
struct SubscriberProcess {
    child: std::process::Child,
    /// Closed to tell the child to stop.
    stdin: Option<std::process::ChildStdin>,
    /// The child's stdout lines, read by a helper thread; disconnected at
    /// its end of file.
    lines: std::sync::mpsc::Receiver<String>,
    /// The child's stderr, read by a helper thread (its last 4 KiB).
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl SubscriberProcess {
    fn spawn(
        addr: SocketAddr,
        table: &Path,
        n: usize,
        threads: usize,
    ) -> Result<SubscriberProcess> {
        use std::process::{Command, Stdio};
        let exe = std::env::current_exe()?;
        let mut child = Command::new(&exe)
            .arg(SUBSCRIBER_COMMAND)
            .arg("--addr")
            .arg(addr.to_string())
            .arg("--shared")
            .arg(table)
            .arg("--subscribers")
            .arg(n.to_string())
            .arg("--client-threads")
            .arg(threads.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::Unexpected(format!(
                    "starting the subscriber process {}: {e}",
                    exe.display()
                ))
            })?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let (tx, lines) = std::sync::mpsc::channel();
        if let Some(stdout) = stdout {
            std::thread::Builder::new()
                .name("ws-child-out".into())
                .spawn(move || {
                    use std::io::BufRead;
                    for line in std::io::BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                })?;
        }
        let stderr = match stderr {
            Some(mut e) => Some(
                std::thread::Builder::new()
                    .name("ws-child-err".into())
                    .spawn(move || {
                        let mut tail = Vec::new();
                        let mut chunk = [0u8; 4096];
                        while let Ok(n) = e.read(&mut chunk) {
                            if n == 0 {
                                break;
                            }
                            tail.extend_from_slice(&chunk[..n]);
                            let excess = tail.len().saturating_sub(4096);
                            tail.drain(..excess);
                        }
                        String::from_utf8_lossy(&tail).into_owned()
                    })?,
            ),
            None => None,
        };
        Ok(SubscriberProcess {
            child,
            stdin,
            lines,
            stderr,
        })
    }

    /// The child's next stdout line, waiting at most `timeout`.
    fn next_line(&mut self, what: &str, timeout: Duration) -> Result<String> {
        use std::sync::mpsc::RecvTimeoutError;
        match self.lines.recv_timeout(timeout) {
            Ok(line) => Ok(line),
            Err(RecvTimeoutError::Timeout) => Err(self.failure(format!(
                "did not report {what} within {} s",
                timeout.as_secs()
            ))),
            Err(RecvTimeoutError::Disconnected) => {
                Err(self.failure(format!("ended before reporting {what}")))
            }
        }
    }

    /// An error if the child has exited.
    fn check_alive(&mut self, when: &str) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            _ => Err(self.failure(format!("exited {when}"))),
        }
    }

    /// Kills and reaps the child; an error naming `what`, its exit status
    /// and the end of its stderr.
    fn failure(&mut self, what: String) -> Error {
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .map_or_else(|e| format!("unknown ({e})"), |s| s.to_string());
        // The pipe is closed now that the child is gone, so this ends.
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        Error::Unexpected(format!(
            "the subscriber process (pid {}) {what}; {status}; its stderr: {}",
            self.child.id(),
            if stderr.trim().is_empty() {
                "(empty)"
            } else {
                stderr.trim()
            }
        ))
    }

    /// Tells the child to stop, waits (at most `timeout`) for its report
    /// and then (at most 10 s) for its exit.
    fn finish(mut self, timeout: Duration) -> Result<SubscriberReport> {
        drop(self.stdin.take());
        let line = self.next_line("its results", timeout)?;
        let Some(json) = line.strip_prefix("report ") else {
            return Err(self.failure(format!("answered {line:?} instead of its results")));
        };
        let report: SubscriberReport = serde_json::from_str(json)
            .map_err(|e| self.failure(format!("sent results that do not parse ({e})")))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(report),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(Some(_)) => return Err(self.failure("failed after its results".into())),
                Ok(None) => {
                    return Err(self.failure("did not exit within 10 s of its results".into()))
                }
                Err(e) => return Err(self.failure(format!("could not be waited for ({e})"))),
            }
        }
    }
}

impl Drop for SubscriberProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits (bounded) until `cond` holds.
fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() > deadline {
            return Err(Error::Unexpected(format!("timed out waiting for {what}")));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(())
}

/// Lets the gateway finish writing what it still owes: until its count of
/// messages written stays put for 300 ms (at most 10 s).
fn wait_for_quiet(stats: &ringex_gateways::ws::GatewayStats) {
    let quiet_deadline = Instant::now() + Duration::from_secs(10);
    let mut last = u64::MAX;
    while Instant::now() < quiet_deadline {
        let now = stats.messages_sent.load(Ordering::Relaxed);
        if now == last {
            break;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn run_fanout(opts: &WsOptions, requested: usize, max_subscribers: usize) -> Result<FanoutResult> {
    let n = requested.min(max_subscribers);
    let mut ex = Exchange::start(opts, n)?;
    let stats = ex.gateway.stats();
    let threads = opts.client_threads.min(n);
    let table = tempfile::Builder::new()
        .prefix("ringex-perf-ws-times-")
        .tempdir()?;
    let table_path = table.path().join("submit-times");
    let shared = Shared::create(&table_path, opts.planned_orders())?;
    let mut child = SubscriberProcess::spawn(ex.gateway.local_addr(), &table_path, n, threads)?;
    // Connecting and upgrading is one round trip per subscriber.
    let connect_time = Duration::from_secs(60) + Duration::from_millis(5) * n as u32;
    let ready = child.next_line("its subscribers to connect", connect_time)?;
    if ready != format!("ready {n}") {
        return Err(child.failure(format!("answered {ready:?} instead of \"ready {n}\"")));
    }
    // Two subscriptions per subscriber: the book and the trades.
    let deadline = Instant::now() + Duration::from_secs(60);
    while stats.subscriptions.load(Ordering::Relaxed) < 2 * n as u64 {
        child.check_alive("while its subscriptions were set up")?;
        if Instant::now() > deadline {
            return Err(Error::Unexpected(format!(
                "timed out waiting for every subscription: {} of {}",
                stats.subscriptions.load(Ordering::Relaxed),
                2 * n
            )));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let conflations_before = stats.conflations.load(Ordering::Relaxed);
    let driven = drive(&mut ex, &shared, opts)?;
    let conflations = stats.conflations.load(Ordering::Relaxed) - conflations_before;
    wait_for_quiet(&stats);
    let tally = child.finish(Duration::from_secs(60))?;
    let latency = tally.histogram()?;
    let slow_disconnects = stats.slow_disconnects.load(Ordering::Relaxed);
    let report = ex.stop();
    let window = shared.window_end().load(Ordering::Acquire) as f64
        - shared.window_start().load(Ordering::Acquire) as f64;
    let secs = (window / 1e9).max(1e-9);
    Ok(FanoutResult {
        requested,
        subscribers: n,
        target_rate: opts.rate,
        measured_updates: driven.measured,
        engine_rate: driven.engine_rate,
        busy: driven.busy,
        deltas: tally.deltas,
        conflation_snapshots: tally.conflation_snapshots,
        conflation_rate: tally.conflation_snapshots as f64 / tally.deltas.max(1) as f64,
        delivered_fraction: tally.deltas as f64 / (driven.measured * n as u64).max(1) as f64,
        messages_per_sec: tally.window_messages as f64 / secs,
        gateway_conflations: conflations,
        slow_disconnects,
        closed: tally.closed,
        sink_dropped: report.metrics.dropped,
        seq_errors: tally.seq_errors,
        subscribers_without_updates: tally.updates.iter().filter(|&&u| u == 0).count(),
        min_updates_per_subscriber: tally.updates.iter().copied().min().unwrap_or(0),
        latency: Percentiles::of(&latency),
        hgrm: None,
        histogram: latency,
    })
}

fn run_stall_phase(opts: &WsOptions, stalled: bool) -> Result<StallPhase> {
    let mut ex = Exchange::start(opts, 1)?;
    let stats = ex.gateway.stats();
    // Connected, subscribed, never read: a tiny receive buffer makes the
    // gateway's queue for it fill (and conflate) at once.
    let _stalled = if stalled {
        let (s, _) = connect(ex.gateway.local_addr(), r#""orderbook_delta","trade""#)
            .map_err(|e| Error::Unexpected(format!("stalled client: {e}")))?;
        set_receive_buffer(&s, 4096);
        wait_until("the stalled subscription", Duration::from_secs(10), || {
            stats.subscriptions.load(Ordering::Relaxed) >= 2
        })?;
        Some(s)
    } else {
        None
    };
    let shared = Shared::anonymous(opts.planned_orders())?;
    let driven = drive(&mut ex, &shared, opts)?;
    let pipeline_latency = Percentiles::of(&ex.pipeline.metrics().latency());
    let conflations = stats.conflations.load(Ordering::Relaxed);
    let report = ex.stop();
    Ok(StallPhase {
        stalled_client: stalled,
        engine_rate: driven.engine_rate,
        busy: driven.busy,
        unsent: driven.unsent,
        pipeline_latency,
        gateway_conflations: conflations,
        sink_dropped: report.metrics.dropped,
    })
}

fn set_receive_buffer(s: &std::net::TcpStream, bytes: i32) {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket and a live c_int for the call; failure only
    // leaves the default buffer.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        );
    }
}

/// Runs every phase: one fan-out per subscriber count, then the engine
/// without and with a stalled subscriber.
pub fn run_ws(opts: WsOptions, progress: &Progress) -> Result<WsReport> {
    opts.check()?;
    let nofile_limit = raise_nofile_limit();
    // One descriptor per subscriber in each process: the gateway's socket
    // here, the client's in the subscriber process (which inherits the
    // raised limit).
    let max_subscribers = nofile_limit.0.saturating_sub(FD_RESERVE) as usize;
    if max_subscribers == 0 {
        return Err(Error::Unexpected(format!(
            "RLIMIT_NOFILE {nofile_limit:?} leaves no room for a subscriber"
        )));
    }
    let mut fanout = Vec::new();
    for &n in &opts.subscribers {
        progress.set_message(format!("{n} subscribers"));
        fanout.push(run_fanout(&opts, n, max_subscribers)?);
        progress.inc(1);
    }
    progress.set_message("engine with and without a stalled subscriber");
    let phases = vec![
        run_stall_phase(&opts, false)?,
        run_stall_phase(&opts, true)?,
    ];
    progress.inc(1);
    let ratio = phases[1].engine_rate / phases[0].engine_rate.max(1e-9);
    Ok(WsReport {
        bench: "ws",
        machine: Machine::detect(),
        options: opts.clone(),
        nofile_limit,
        max_subscribers,
        fanout,
        stall: StallResult {
            target_rate: opts.rate,
            phases,
            ratio,
        },
        results_dir: None,
    })
}

/// Writes `latency-ws-<N>.hgrm` per subscriber count,
/// `latency-percentiles.svg` (one line per count), the summary and the
/// context into `dir`.
pub fn write_ws_results(
    dir: &crate::results::ResultsDir,
    report: &mut WsReport,
    config_file: Option<(&Path, &str)>,
) -> Result<()> {
    use crate::plot::{percentile_plot, percentile_series};
    let mut lines = Vec::new();
    for r in &mut report.fanout {
        let name = dir.write_hgrm(&format!("latency-ws-{}", r.subscribers), &r.histogram)?;
        if !r.histogram.is_empty() {
            let d = crate::hgrm::parse(&std::fs::read_to_string(dir.path().join(&name))?)?;
            lines.push(percentile_series(
                format!("{} subscribers", r.subscribers),
                &d,
            ));
        }
        r.hgrm = Some(name);
    }
    percentile_plot(
        &dir.path().join("latency-percentiles.svg"),
        &format!(
            "WebSocket delivery latency (submit -> client receipt), {} book updates/s",
            report.options.rate
        ),
        &lines,
    )?;
    report.results_dir = Some(dir.path().display().to_string());
    dir.write_context(&report.machine, &report.options, config_file)?;
    dir.write_json("summary.json", report)?;
    dir.write_text("summary.txt", &render_ws(report))?;
    Ok(())
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1000.0)
}

/// The human-readable report.
pub fn render_ws(r: &WsReport) -> String {
    use std::fmt::Write;
    let o = &r.options;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "ringex-perf ws: order-book fan-out to WebSocket subscribers over loopback"
    );
    let _ = writeln!(s, "machine:    {}", r.machine);
    let _ = writeln!(
        s,
        "config:     {} book updates/s offered, warm-up {} s, measured {} s, {} client threads, {} resting orders, outbound queue {} messages, stages {}",
        o.rate,
        o.warmup,
        o.duration,
        o.client_threads,
        o.live_orders,
        o.queue_messages,
        if o.config.is_some() { "config" } else { "two-core" }
    );
    let _ = writeln!(
        s,
        "fds:        RLIMIT_NOFILE {} (hard {}): at most {} subscribers (one descriptor each in the gateway and in the subscriber process)",
        r.nofile_limit.0, r.nofile_limit.1, r.max_subscribers
    );
    let _ = writeln!(
        s,
        "latency:    driver submit -> subscriber read the delta (us), deltas of measured commands"
    );
    let _ = writeln!(
        s,
        "{:>7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>11} {:>10} {:>10} {:>9} {:>7}",
        "subs",
        "engine/s",
        "p50",
        "p90",
        "p99",
        "max",
        "msgs/s",
        "delivered",
        "conflated",
        "conf/dlt",
        "seqerr"
    );
    for x in &r.fanout {
        let l = &x.latency;
        let _ = writeln!(
            s,
            "{:>7} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>11.0} {:>9.1}% {:>10} {:>9.4} {:>7}",
            x.subscribers,
            x.engine_rate,
            us(l.p50),
            us(l.p90),
            us(l.p99),
            us(l.max),
            x.messages_per_sec,
            x.delivered_fraction * 100.0,
            x.conflation_snapshots,
            x.conflation_rate,
            x.seq_errors
        );
    }
    for x in &r.fanout {
        if x.subscribers < x.requested {
            let _ = writeln!(
                s,
                "WARNING: {} subscribers asked for, {} reached: RLIMIT_NOFILE hard limit {} (raise it, e.g. `ulimit -Hn`, to reach {})",
                x.requested, x.subscribers, r.nofile_limit.1, x.requested
            );
        }
        if x.seq_errors > 0
            || x.subscribers_without_updates > 0
            || x.closed > 0
            || x.sink_dropped > 0
        {
            let _ = writeln!(
                s,
                "WARNING: {} subscribers: {} seq errors, {} without updates, {} closed ({} as slow), sink dropped {}",
                x.subscribers,
                x.seq_errors,
                x.subscribers_without_updates,
                x.closed,
                x.slow_disconnects,
                x.sink_dropped
            );
        }
    }
    let _ = writeln!(
        s,
        "stall:      engine commands/s at {} offered, gateway attached",
        r.stall.target_rate
    );
    for p in &r.stall.phases {
        let _ = writeln!(
            s,
            "  {:<22} {:>10.0}/s  pipeline p99 {:>8} us  busy {:>6}  unsent {:>6}  conflations {:>7}",
            if p.stalled_client {
                "one stalled subscriber"
            } else {
                "no subscriber"
            },
            p.engine_rate,
            us(p.pipeline_latency.p99),
            p.busy,
            p.unsent,
            p.gateway_conflations
        );
    }
    let _ = writeln!(s, "  ratio (stalled / none): {:.3}", r.stall.ratio);
    if let Some(dir) = &r.results_dir {
        let _ = writeln!(s, "results:    {dir}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_read_after_their_key() {
        let m = br#"{"type":"orderbook_delta","sid":3,"seq":17,"msg":{"price":4,"delta":-123,"side":"yes"}}"#;
        assert_eq!(number_after(m, br#""seq":"#), Some(17));
        assert_eq!(number_after(m, br#""delta":"#), Some(-123));
        assert_eq!(number_after(m, br#""nope":"#), None);
        assert_eq!(number_after(br#""seq":x"#, br#""seq":"#), None);
        assert_eq!(
            number_after(br#""seq":99999999999999999999"#, br#""seq":"#),
            None
        );
    }

    #[test]
    fn the_flow_places_after_the_resting_orders_and_cancels_the_oldest() {
        let live = 3;
        let orders: Vec<(u64, bool)> = (0..6)
            .map(|i| {
                let (_, order, placed) = flow_command(i, live);
                (order, placed)
            })
            .collect();
        assert_eq!(
            orders,
            [
                (3, true),
                (0, false),
                (4, true),
                (1, false),
                (5, true),
                (2, false)
            ]
        );
    }

    #[test]
    fn client_frames_are_masked_and_sized() {
        let f = client_frame(1, b"abc");
        assert_eq!(f[0], 0x81);
        assert_eq!(f[1], 0x80 | 3);
        let unmasked: Vec<u8> = f[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ f[2 + i % 4])
            .collect();
        assert_eq!(unmasked, b"abc");
        let long = client_frame(1, &[b'x'; 300]);
        assert_eq!(
            (long[1], u16::from_be_bytes([long[2], long[3]])),
            (0x80 | 126, 300)
        );
    }

    fn sub_on_loopback() -> (Sub, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        client.set_nonblocking(true).unwrap();
        let sub = Sub {
            stream: TcpStream::from_std(client),
            buf: Vec::new(),
            last_seq: None,
            got_initial: false,
            updates: 0,
            closed: false,
        };
        (sub, server)
    }

    fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        if payload.len() < 126 {
            f.push(payload.len() as u8);
        } else {
            f.push(126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn frames_split_anywhere_are_parsed_and_checked_for_seq() {
        let (mut sub, _server) = sub_on_loopback();
        let shared = Shared::anonymous(16).unwrap();
        shared.placed(2).unwrap().store(5, Ordering::Release);
        shared.window_start().store(0, Ordering::Release);
        let mut t = ClientTally {
            latency: Some(new_histogram()),
            ..ClientTally::default()
        };
        let mut bytes = server_frame(
            1,
            br#"{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"yes":[]}}"#,
        );
        bytes.extend(server_frame(
            1,
            br#"{"type":"orderbook_delta","sid":1,"seq":2,"msg":{"delta":3,"price":3}}"#,
        ));
        // A delta that skips seq 3.
        bytes.extend(server_frame(
            1,
            br#"{"type":"orderbook_delta","sid":1,"seq":4,"msg":{"delta":3,"price":3}}"#,
        ));
        for chunk in bytes.chunks(7) {
            sub.buf.extend_from_slice(chunk);
            sub.frames(10, &shared, &mut t);
        }
        assert!(sub.buf.is_empty());
        assert_eq!((t.deltas, t.seq_errors, sub.updates), (2, 1, 2));
        assert_eq!(t.latency.as_ref().unwrap().max(), 5);
        // A frame longer than any the gateway sends ends the connection.
        sub.buf
            .extend_from_slice(&[0x81, 127, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        sub.frames(10, &shared, &mut t);
        assert!(sub.closed && sub.buf.is_empty());
    }

    #[test]
    fn bad_options_are_refused() {
        let ok = WsOptions {
            subscribers: vec![10],
            rate: 1000,
            duration: 1.0,
            warmup: 0.0,
            client_threads: 2,
            live_orders: 100,
            queue_messages: 4096,
            config: None,
        };
        assert!(ok.check().is_ok());
        for bad in [
            WsOptions {
                subscribers: vec![],
                ..ok.clone()
            },
            WsOptions {
                subscribers: vec![0],
                ..ok.clone()
            },
            WsOptions {
                rate: 0,
                ..ok.clone()
            },
            WsOptions {
                duration: 0.0,
                ..ok.clone()
            },
            WsOptions {
                warmup: -1.0,
                ..ok.clone()
            },
            WsOptions {
                client_threads: 0,
                ..ok.clone()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }
}
