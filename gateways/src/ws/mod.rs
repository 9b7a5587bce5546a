//! WebSocket and HTTP gateway: one `mio` event loop serving WebSocket
//! (`tungstenite`) and HTTP (`httparse`) on one port.
//!
//! ```text
//!  clients ──TCP──> [ ringex-ws thread: mio poll ]──try_submit──> input ring
//!                     │  HTTP: parse, route, REST, /metrics, upgrade
//!                     │  WS:   commands, subscriptions, outbound queues
//!                     └<── bounded sink receiver <── publisher
//! ```
//!
//! # Threads
//!
//! | Thread | Owns |
//! |--------|------|
//! | `ringex-ws` (one) | the listener, every connection, subscriptions, outbound queues, pending replies, and the [`state::ExchangeView`] (L2 books, trades, open orders, balances, positions) rebuilt from the event stream |
//! | caller of [`WsGateway::start`] | the [`WsGateway`] handle: stop flag, join handle, [`GatewayStats`] |
//!
//! The gateway never queries the engine thread: it registers a sink with
//! the pipeline at start and applies every event in order.
//!
//! # Restarts: rebuilding the view from the output journal
//!
//! A journal replayed at start-up is not published, so a sink alone sees
//! only the events of this run. [`WsGateway::start_with_history`] closes
//! that gap: on the caller's thread, before the `ringex-ws` thread starts,
//! it registers the sink and then applies the first
//! [`EventHistory::events`] events of the output journal (every event of
//! the earlier runs, see `ringex_core::pipeline`) to the view; the thread
//! then consumes the sink. There is no gap and no double count when no
//! command was submitted between [`Pipeline::start`] and this call: the
//! sink gets every event of every command submitted after it is
//! registered, and the output journal holds exactly the
//! `StartupReport::output.next_sequence - 1` events before those. So start
//! the pipeline with its timer off, start the gateway, and only then start
//! a timer, other gateways and clients (the `ringex` server does this, see
//! [`crate::server`]). A trade rebuilt from the journal is stamped with its
//! command's timestamp; a live one with the time the gateway saw it.
//!
//! # Slow consumers
//!
//! Each WebSocket connection has a bounded queue of outbound messages
//! ([`Limits::outbound_queue_messages`]). When it is full, an order-book
//! delta is not queued: that subscription's queued book messages are
//! dropped and a fresh snapshot is sent with the next `seq` once the
//! queue has drained to half (conflation). A gateway thread that falls
//! behind conflates the same way: past [`Limits::deltas_per_turn`] deltas
//! queued in one turn (over all connections), further deltas conflate their
//! subscription instead of being formatted, so the work of one turn stays
//! bounded however many clients subscribe. A connection whose socket
//! takes no data for [`Limits::stuck_timeout_ms`] is closed, as is one
//! whose queue of other messages reaches twice the limit. The publisher
//! is never blocked: the gateway's sink drops (and counts) events only if
//! the gateway thread itself falls behind by [`Limits::sink_capacity`].
//!
//! The protocol is described for clients in `docs/websocket.md`.

mod config;
pub mod http;
mod monitor;
pub mod protocol;
pub mod routes;
mod server;
pub mod state;
pub mod units;

pub use config::{AccountConfig, GatewayConfig, Limits, MarketConfig, MarketKind};
pub use server::{POLL_INTERVAL, WS_PATHS};

use ringex_core::pipeline::{OverflowPolicy, Pipeline, JOURNAL_KIND_EVENT};
use ringex_core::records::{Event, EVENT_SIZE};
use ringex_journal::JournalReader;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the publisher waits for this gateway's full event queue before
/// cutting it off (`/healthz` then reports it unavailable).
pub const SINK_WAIT: Duration = Duration::from_secs(5);

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is invalid.
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// The output journal could not be read back (see [`EventHistory`]).
    #[error("event history: {0}")]
    History(String),
    /// Binding or polling failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The events a gateway's view starts from: the first `events` records
/// of the output journal in `dir` (`PipelineConfig::output_journal_path`;
/// `events` = `StartupReport::output.next_sequence - 1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHistory {
    /// The output journal's directory.
    pub dir: PathBuf,
    /// How many events (from index 1) to apply.
    pub events: u64,
}

impl EventHistory {
    /// The history a freshly started `pipeline` was built on.
    pub fn of(pipeline: &Pipeline) -> EventHistory {
        let output = &pipeline.startup().output;
        EventHistory {
            dir: output.dir.clone(),
            events: output.next_sequence.saturating_sub(1),
        }
    }

    /// Calls `apply(event, command_timestamp)` for events 1..=`events` in
    /// order. Fails if a record is not an event or the journal holds fewer.
    pub fn for_each(&self, mut apply: impl FnMut(&Event, u64)) -> Result<u64> {
        if self.events == 0 {
            return Ok(0);
        }
        let bad = |problem: String| {
            GatewayError::History(format!("output journal {}: {problem}", self.dir.display()))
        };
        let mut reader = JournalReader::open(&self.dir, 1).map_err(|e| bad(e.to_string()))?;
        for index in 1..=self.events {
            let record = match reader.next_record() {
                Ok(Some(record)) => record,
                Ok(None) => return Err(bad(format!("ends before event {index}"))),
                Err(e) => return Err(bad(e.to_string())),
            };
            if record.sequence != index
                || record.kind != JOURNAL_KIND_EVENT
                || record.payload.len() != EVENT_SIZE
            {
                return Err(bad(format!(
                    "record {} (kind {}, {} bytes) is not event {index}",
                    record.sequence,
                    record.kind,
                    record.payload.len()
                )));
            }
            let event: Event = bytemuck::pod_read_unaligned(record.payload);
            apply(&event, record.timestamp);
        }
        Ok(self.events)
    }
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, GatewayError>;

/// Gateway counters. Written by the `ringex-ws` thread (except
/// `fix_sessions`, which a FIX gateway may set), read by anyone; all
/// `Relaxed` (statistics).
#[derive(Debug, Default)]
pub struct GatewayStats {
    /// Open WebSocket connections.
    pub ws_connections: AtomicU64,
    /// Open HTTP connections (not upgraded).
    pub http_connections: AtomicU64,
    /// Live subscriptions.
    pub subscriptions: AtomicU64,
    /// WebSocket messages written.
    pub messages_sent: AtomicU64,
    /// Order-book conflations (a subscription's pending deltas replaced by a snapshot).
    pub conflations: AtomicU64,
    /// Connections closed as stuck or too slow.
    pub slow_disconnects: AtomicU64,
    /// Connections refused at the connection limit.
    pub refused: AtomicU64,
    /// HTTP requests parsed.
    pub http_requests: AtomicU64,
    /// Malformed HTTP requests.
    pub http_errors: AtomicU64,
    /// FIX sessions, shown by `/metrics` (set by whoever runs a FIX gateway).
    pub fix_sessions: AtomicU64,
}

/// A running WebSocket + HTTP gateway. Dropping it stops the thread.
#[derive(Debug)]
pub struct WsGateway {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<GatewayStats>,
    thread: Option<JoinHandle<()>>,
}

impl WsGateway {
    /// Binds `config.listen`, registers a sink with `pipeline` and starts
    /// the `ringex-ws` thread. The view starts empty: start it before the
    /// run's first command, or use [`WsGateway::start_with_history`].
    pub fn start(config: GatewayConfig, pipeline: &Pipeline) -> Result<WsGateway> {
        WsGateway::start_with_history(config, pipeline, None)
    }

    /// [`WsGateway::start`], rebuilding the view first from the events the
    /// output journal held when `pipeline` started (see [the module
    /// docs](self#restarts-rebuilding-the-view-from-the-output-journal)
    /// for the race-free order of calls). `None`: no history.
    pub fn start_with_history(
        config: GatewayConfig,
        pipeline: &Pipeline,
        history: Option<&EventHistory>,
    ) -> Result<WsGateway> {
        config.validate().map_err(GatewayError::Config)?;
        let listener = mio::net::TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        // Registered before the history is read: events of commands
        // submitted from now on reach the sink, all earlier ones are in
        // the output journal.
        let sink = pipeline.register_sink(
            "ws-gateway",
            config.limits.sink_capacity,
            // A full queue makes the publisher wait for this thread (its
            // books and private channels must see every event); slow
            // *clients* never reach here — they are conflated per connection.
            OverflowPolicy::Wait(SINK_WAIT),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(GatewayStats::default());
        let mut server = server::Server::new(
            config,
            listener,
            pipeline.sender(),
            sink,
            pipeline.metrics(),
            Arc::clone(&stats),
            Arc::clone(&stop),
        )?;
        if let Some(history) = history {
            history.for_each(|event, timestamp| server.apply_history(event, timestamp))?;
        }
        let thread = std::thread::Builder::new()
            .name("ringex-ws".into())
            .spawn(move || server.run())?;
        Ok(WsGateway {
            addr,
            stop,
            stats,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<GatewayStats> {
        Arc::clone(&self.stats)
    }

    /// Stops the thread (closing every connection and dropping its
    /// `CommandSender`, which [`Pipeline::shutdown`] waits for).
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for WsGateway {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}
