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
//! the pipeline at start and applies every event in order. Start it
//! before submitting the run's first command (a journal replayed at
//! start-up is not published, so a view over a restarted journal misses
//! what came before; the FIX and WS gateways share this limit until
//! engine snapshots exist).
//!
//! # Slow consumers
//!
//! Each WebSocket connection has a bounded queue of outbound messages
//! ([`Limits::outbound_queue_messages`]). When it is full, an order-book
//! delta is not queued: that subscription's queued book messages are
//! dropped and a fresh snapshot is sent with the next `seq` once the
//! queue has drained to half (conflation). A connection whose socket
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

use ringex_core::pipeline::{OverflowPolicy, Pipeline};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The configuration is invalid.
    #[error("invalid gateway configuration: {0}")]
    Config(String),
    /// Binding or polling failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
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
    /// the `ringex-ws` thread.
    pub fn start(config: GatewayConfig, pipeline: &Pipeline) -> Result<WsGateway> {
        config.validate().map_err(GatewayError::Config)?;
        let listener = mio::net::TcpListener::bind(config.listen)?;
        let addr = listener.local_addr()?;
        let sink = pipeline.register_sink(
            "ws-gateway",
            config.limits.sink_capacity,
            OverflowPolicy::DropNewest,
        );
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(GatewayStats::default());
        let server = server::Server::new(
            config,
            listener,
            pipeline.sender(),
            sink,
            pipeline.metrics(),
            Arc::clone(&stats),
            Arc::clone(&stop),
        )?;
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
