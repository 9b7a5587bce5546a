//! The `ringex` server: the pipeline, the HTTP/WebSocket gateway, a timer,
//! the markets and accounts of the configuration, and the live demo, in
//! one process (see `docs/server.md`).
//!
//! ```text
//!  clients ──REST/WebSocket──> [ ringex-ws ] ──try_submit──> pipeline ──sinks──> ringex-ws, ringex-fix
//!  ringex-demo-* ──FIX (127.0.0.1)──> [ ringex-fix ] ──┘       (journal, output journal,
//!  ringex-server-timer ──TimerTick─────────────────────┘        snapshots, FIX stores in data_dir)
//!  start-up: markets/accounts the journal lacks ───────┘
//! ```
//!
//! # Start-up order (race-free recovery)
//!
//! 1. [`Pipeline::start`] over `data_dir/journal` with **no timer**: it
//!    restores the newest usable snapshot, replays the journal after it
//!    and reconciles the output journal (`data_dir/journal/events`).
//!    Nothing is submitted yet.
//! 2. [`WsGateway::start_with_history`]: registers the gateway's sink, then
//!    rebuilds its view from the output journal's events before that
//!    point. Every later event reaches the sink, none twice.
//! 3. The FIX acceptor (`[fix]`), with its sink registered before the
//!    first command. Its [`ExchangeApplication`] rebuilds its order table
//!    and market-data books the same way: the FIX identity of each order
//!    (session, ClOrdID) from its order log (`data_dir/fix/orders.log`),
//!    what became of it from the output journal's events. Sessions'
//!    sequence numbers and sent messages come back from their stores
//!    under `data_dir/fix`.
//! 4. The bootstrap: for each configured market whose instrument the
//!    history never reported, a journaled `AddInstrument`; for each
//!    configured account the history never acknowledged, `AddAccount` and
//!    its deposits. A restart finds them all and submits nothing.
//! 5. The `ringex-server-timer` thread (`TimerTick` every
//!    `[pipeline] timer_interval_ms`) and the demo ([`demo::Demo`]): FIX
//!    clients of the acceptor, so it needs the `[fix]` section.
//!
//! # Threads
//!
//! | Thread | Owns |
//! |--------|------|
//! | caller of [`Server::start`] (the binary's main thread) | the [`Server`]: pipeline handle, gateway handle, timer and demo handles |
//! | `ringex-core` (`[pipeline] stage_threads = "fused"`, the default), or `ringex-journaler`, `ringex-engine`, `ringex-publisher` (`"separate"`) | the pipeline's stages (`ringex_core::pipeline`) |
//! | `ringex-ws` | the gateway ([`crate::ws`]) |
//! | `ringex-fix` | the FIX acceptor and its [`ExchangeApplication`] ([`crate::fix`]) |
//! | `ringex-server-timer` | a `CommandSender` submitting `TimerTick` |
//! | `ringex-demo-maker-<session>`, `ringex-demo-trader-N` | a demo FIX client each ([`demo`]) |
//!
//! # Shutdown
//!
//! [`Server::shutdown`] stops the demo, the timer and the gateways (each
//! drops its `CommandSender`), then [`Pipeline::shutdown`] drains the
//! rings, closes the journal and writes a snapshot, so the next start
//! replays nothing.

pub mod config;
pub mod demo;

pub use config::{ServerConfig, DEFAULT_CONFIG};

use crate::fix::{Dictionaries, ExchangeApplication, FixServer, FixServerHandle};
use crate::ws::{EventHistory, GatewayError, MarketKind, WsGateway};
use crossbeam_channel::{RecvTimeoutError, Sender};
use demo::Demo;
use ringex_core::pipeline::{
    CommandSender, OverflowPolicy, Pipeline, PipelineError, ShutdownReport, StartupReport,
    SubmitError,
};
use ringex_core::records::{Command, CommandKind, EventView};
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The FIX order log's file name in the FIX store directory (see
/// [`ExchangeApplication::with_order_log`]).
pub const ORDER_LOG: &str = "orders.log";

/// How long start-up waits for the engine to apply the bootstrap commands.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The pipeline (journal, snapshots, replay) could not start.
    #[error("pipeline: {0}")]
    Pipeline(#[from] PipelineError),
    /// The gateway could not start (bind, history).
    #[error("gateway: {0}")]
    Gateway(#[from] GatewayError),
    /// The FIX acceptor could not start (bind, session stores).
    #[error("FIX gateway: {0}")]
    Fix(#[from] crate::fix::ServerError),
    /// A bootstrap command could not be applied.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    /// Creating the data directory or a thread failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// What start-up found and did.
#[derive(Debug, Clone)]
pub struct StartSummary {
    /// The data directory in use.
    pub data_dir: PathBuf,
    /// The pipeline's start-up report (snapshot used, commands replayed).
    pub pipeline: StartupReport,
    /// Events of earlier runs the gateway's view was rebuilt from.
    pub history_events: u64,
    /// Markets created in this start (empty on a restart).
    pub markets_created: Vec<String>,
    /// Accounts created and funded in this start (empty on a restart).
    pub accounts_created: Vec<u32>,
}

/// Options the command line adds to a [`ServerConfig`].
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Overrides `data_dir`.
    pub data_dir: Option<PathBuf>,
    /// Overrides `[gateway] listen`.
    pub listen: Option<SocketAddr>,
    /// Forces the demo off (`--no-demo`).
    pub no_demo: bool,
    /// Overrides `[fix] listen`.
    pub fix_listen: Option<SocketAddr>,
}

/// A running server. See the module docs.
#[derive(Debug)]
pub struct Server {
    pipeline: Option<Pipeline>,
    gateway: Option<WsGateway>,
    fix: Option<FixServerHandle>,
    timer: Option<TickTimer>,
    demo: Option<Demo>,
    summary: StartSummary,
}

impl Server {
    /// Starts everything in the order of the module docs.
    pub fn start(config: &ServerConfig, options: &ServerOptions) -> Result<Server, ServerError> {
        let mut config = config.clone();
        if let Some(dir) = &options.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(listen) = options.listen {
            config.gateway.listen = listen;
        }
        if options.no_demo {
            config.demo.enabled = false;
        }
        config.validate().map_err(ServerError::Config)?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        config.check_fits(cpus).map_err(ServerError::Config)?;
        std::fs::create_dir_all(&config.data_dir)?;

        // 1. No timer and no other producer yet: nothing is submitted
        //    before the gateway's sink is registered.
        let pipeline = Pipeline::start(config.pipeline_config(&config.data_dir))?;
        let history = EventHistory::of(&pipeline);
        // 2. The gateway's view: history first, then its sink.
        let gateway =
            WsGateway::start_with_history(config.gateway_config(), &pipeline, Some(&history))?;
        // 3. The FIX acceptor, its sink registered before any command.
        let fix = match config.fix_config(&config.data_dir) {
            Some(mut fix_config) => {
                if let Some(listen) = options.fix_listen {
                    fix_config.listen = listen;
                }
                Some(start_fix(&config, fix_config, &pipeline, &history)?)
            }
            None => None,
        };
        // 4. Markets and accounts the journal does not know yet.
        let known = Known::scan(&history)?;
        let mut sender = pipeline.sender();
        let (markets_created, accounts_created) =
            bootstrap(&config, &known, &mut sender, &pipeline)?;
        drop(sender);
        // 5. Time, then the demo clients.
        let timer = match config.timer_interval() {
            Some(interval) => Some(TickTimer::start(pipeline.sender(), interval)?),
            None => None,
        };
        let demo = match (&fix, config.demo.enabled) {
            (Some(fix), true) => Some(Demo::start(&config, fix.local_addr())?),
            _ => None,
        };
        let summary = StartSummary {
            data_dir: config.data_dir.clone(),
            pipeline: pipeline.startup().clone(),
            history_events: history.events,
            markets_created,
            accounts_created,
        };
        Ok(Server {
            pipeline: Some(pipeline),
            gateway: Some(gateway),
            fix,
            timer,
            demo,
            summary,
        })
    }

    /// The HTTP/WebSocket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.gateway
            .as_ref()
            .expect("the gateway lives until shutdown")
            .local_addr()
    }

    /// The FIX acceptor's address (`None` without a `[fix]` section).
    pub fn fix_addr(&self) -> Option<SocketAddr> {
        self.fix.as_ref().map(FixServerHandle::local_addr)
    }

    /// The monitor page.
    pub fn monitor_url(&self) -> String {
        format!("http://{}/", self.local_addr())
    }

    /// What start-up found and did.
    pub fn summary(&self) -> &StartSummary {
        &self.summary
    }

    /// The demo's counters (`None` with the demo off).
    pub fn demo_stats(&self) -> Option<std::sync::Arc<demo::SessionStats>> {
        self.demo.as_ref().map(Demo::stats)
    }

    /// Stops the demo, the timer and the gateway, then the pipeline
    /// (snapshot written), and returns the pipeline's report.
    pub fn shutdown(mut self) -> ShutdownReport {
        self.stop_producers();
        self.pipeline
            .take()
            .expect("the pipeline lives until shutdown")
            .shutdown()
    }

    fn stop_producers(&mut self) {
        if let Some(demo) = self.demo.take() {
            demo.stop();
        }
        if let Some(timer) = self.timer.take() {
            timer.stop();
        }
        if let Some(fix) = self.fix.take() {
            // Joins the FIX thread, which drops the application's sender.
            let _ = fix.stop();
        }
        if let Some(gateway) = self.gateway.take() {
            gateway.shutdown();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Without `shutdown`: stop the producers so the pipeline's drop
        // does not wait on their senders.
        self.stop_producers();
    }
}

/// How long the publisher waits for a full FIX event queue before cutting
/// the FIX gateway off (it then reports itself unhealthy rather than send
/// execution reports from a view that lost events).
pub const FIX_SINK_WAIT: Duration = Duration::from_secs(5);

/// Binds the FIX acceptor with an [`ExchangeApplication`] on `pipeline`:
/// FIX Symbol = market ticker.
fn start_fix(
    config: &ServerConfig,
    fix_config: crate::fix::FixServerConfig,
    pipeline: &Pipeline,
    history: &EventHistory,
) -> Result<FixServerHandle, ServerError> {
    // Execution reports must not be lost: a queue deep enough for bursts
    // (the FIX thread drains it every loop turn), and past it the publisher
    // waits for the FIX thread — slowing the exchange, never dropping a
    // report — unless that thread stops reading for FIX_SINK_WAIT.
    let sink = pipeline.register_sink("fix", 1 << 16, OverflowPolicy::Wait(FIX_SINK_WAIT));
    let symbols: HashMap<String, u32> = config
        .markets
        .iter()
        .map(|m| (m.ticker.clone(), m.instrument))
        .collect();
    let spot = config
        .markets
        .iter()
        .filter(|m| m.kind == MarketKind::Spot)
        .map(|m| m.ticker.clone());
    let mut app = ExchangeApplication::new(pipeline.sender(), sink.receiver, symbols)
        .with_wakeup(sink.wakeup)
        .with_spot_symbols(spot)
        .with_order_capacity(fix_config.order_capacity);
    // The order table of earlier runs: their orders' FIX identities from
    // the order log, their fills and cancels from the output journal.
    if let Some(dir) = &fix_config.store_dir {
        let log = dir.join(ORDER_LOG);
        app.rebuild(&log, history)?;
        app = app.with_order_log(&log)?;
    }
    Ok(FixServer::spawn(fix_config, Dictionaries::shared(), app)?)
}

/// Instruments and accounts the output journal shows the engine knows.
#[derive(Debug, Default)]
struct Known {
    instruments: BTreeSet<u32>,
    accounts: BTreeSet<u32>,
}

impl Known {
    fn scan(history: &EventHistory) -> Result<Known, ServerError> {
        let mut known = Known::default();
        history.for_each(|event, _| match event.decode() {
            Some(EventView::InstrumentStatusChanged { instrument, .. }) => {
                known.instruments.insert(instrument);
            }
            Some(EventView::Ack {
                command: CommandKind::AddAccount,
                account,
                ..
            }) => {
                known.accounts.insert(account);
            }
            _ => {}
        })?;
        Ok(known)
    }
}

/// Submits the missing markets and accounts, waits for their events on a
/// sink of its own and fails on any reject; returns the tickers and
/// accounts created.
fn bootstrap(
    config: &ServerConfig,
    known: &Known,
    sender: &mut CommandSender,
    pipeline: &Pipeline,
) -> Result<(Vec<String>, Vec<u32>), ServerError> {
    let mut commands = Vec::new();
    let mut markets = Vec::new();
    let mut accounts = Vec::new();
    for m in &config.markets {
        if !known.instruments.contains(&m.instrument) {
            commands.push((format!("market {}", m.ticker), m.add_instrument_command()));
            markets.push(m.ticker.clone());
        }
    }
    for a in &config.accounts {
        if !known.accounts.contains(&a.account) {
            let label = format!("account {}", a.account);
            commands.push((label.clone(), Command::add_account(a.account)));
            for d in &a.deposits {
                let deposit = Command::deposit(a.account, d.asset, d.amount);
                commands.push((format!("{label} deposit of asset {}", d.asset), deposit));
            }
            accounts.push(a.account);
        }
    }
    if commands.is_empty() {
        return Ok((markets, accounts));
    }
    // Registered before the first submit: it sees every bootstrap event.
    let sink = pipeline.register_sink(
        "bootstrap",
        4 * commands.len() + 64,
        OverflowPolicy::DropNewest,
    );
    let deadline = Instant::now() + BOOTSTRAP_TIMEOUT;
    let mut labels = HashMap::new();
    let mut last = 0;
    for (label, command) in commands {
        loop {
            match sender.try_submit(command) {
                Ok(sequence) => {
                    labels.insert(sequence, label);
                    last = sequence;
                    break;
                }
                Err(SubmitError::Busy) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(ServerError::Bootstrap(format!("{label}: submit: {e:?}"))),
            }
        }
    }
    // Every bootstrap command emits at least one event (its effect or a
    // reject); the last command's first event means all were applied.
    let mut rejects = Vec::new();
    loop {
        let wait = deadline.saturating_duration_since(Instant::now());
        let event = sink.receiver.recv_timeout(wait).map_err(|_| {
            ServerError::Bootstrap(format!(
                "the engine did not apply command {last} within {BOOTSTRAP_TIMEOUT:?} ({:?})",
                pipeline.health()
            ))
        })?;
        if let Some(EventView::Rejected { reason, .. }) = event.decode() {
            if let Some(label) = labels.get(&event.sequence) {
                rejects.push(format!("{label}: rejected {reason:?}"));
            }
        }
        if event.sequence >= last {
            break;
        }
    }
    // Dropping the receiver makes the publisher remove the sink.
    drop(sink);
    if !rejects.is_empty() {
        return Err(ServerError::Bootstrap(rejects.join("; ")));
    }
    Ok((markets, accounts))
}

/// The server's timer: a `TimerTick` every interval (the pipeline's own
/// timer would start before the gateway's sink exists).
#[derive(Debug)]
struct TickTimer {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl TickTimer {
    fn start(mut sender: CommandSender, interval: Duration) -> std::io::Result<TickTimer> {
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("ringex-server-timer".into())
            .spawn(move || {
                let mut next = Instant::now() + interval;
                // Until stopped (or the handle is dropped): a tick per interval.
                while let Err(RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(next.saturating_duration_since(Instant::now()))
                {
                    next += interval;
                    match sender.try_submit(Command::timer_tick()) {
                        // A refused tick is skipped: the next carries a later time.
                        Ok(_) | Err(SubmitError::Busy) => {}
                        Err(SubmitError::Closed | SubmitError::Halted) => break,
                    }
                }
            })?;
        Ok(TickTimer { stop, thread })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// `data_dir` made absolute against the working folder (for messages).
pub fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}
