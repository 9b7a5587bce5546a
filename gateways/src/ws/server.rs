//! The event loop: one `mio` thread serving HTTP and WebSocket on one port.
//!
//! Single writer: the `ringex-ws` thread owns every connection, every
//! subscription, the pending replies and the [`ExchangeView`]. Each turn it
//! (1) polls sockets for up to [`POLL_INTERVAL`] (the sink's doorbell,
//! armed before the poll, ends the wait as soon as the publisher delivers
//! an event; a sink with events already waiting is polled without
//! waiting), (2) drains the
//! publisher's sink and applies each event to the view, fanning the
//! effects out to subscribers and answering requests waiting on that
//! command's sequence, (3) flushes connections that got output, and
//! (4) every [`TIMER_INTERVAL`] pings, expires and disconnects.
//!
//! It talks to the pipeline only through a [`CommandSender`]
//! (`try_submit`: a full ring is a "busy" error to the client, never a
//! wait) and its sink's bounded receiver: it never blocks the publisher.

use super::config::{GatewayConfig, MarketConfig};
use super::http::{self, ParseLimits, Parsed, Request};
use super::protocol::{
    self, codes, AmendRequest, Channel, OrderRef, OrderRequest, UpdateAction, WsCommand, WsError,
};
use super::routes::{self, Auth, Lookup, RouteId};
use super::state::{cancel_reason_str, Effect, ExchangeView, OrderInfo};
use super::units::dollars;
use super::{GatewayError, GatewayStats};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use ringex_core::pipeline::{
    wall_clock_ns, CommandSender, Metrics, MetricsSnapshot, SinkHandle, SubmitError,
};
use ringex_core::records::{Command, Event, EventKind, EventView, Outcome, RejectReason, Side};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

/// Longest wait in `poll` before the sink is drained again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(2);
/// How often pings, stuck clients and request timeouts are checked.
pub const TIMER_INTERVAL: Duration = Duration::from_millis(50);
const LISTENER: Token = Token(0);
/// The sink's doorbell (connection tokens count up from 1 and never reach it).
const DOORBELL: Token = Token(usize::MAX);
/// Most events drained from the sink per turn. Applying an event to the
/// view is cheap and its fan-out is bounded by `Limits::deltas_per_turn`,
/// so a turn drains up to a whole sink's worth: a gateway that fell behind
/// catches up on the view in one turn instead of letting the sink overflow.
const EVENTS_PER_TURN: usize = 1 << 18;
/// WebSocket paths accepted for the upgrade.
pub const WS_PATHS: &[&str] = &["/ws", "/trade-api/ws/v2"];

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    wall_clock_ns() / 1_000_000_000
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// One queued outbound WebSocket message.
struct Outbound {
    text: Text,
    sid: u64,
    seq: u64,
    /// An order-book message (snapshot or delta): conflatable.
    book: bool,
}

/// A queued message's text. Book messages keep the per-event part shared
/// by every subscriber (rendered once per event, or per snapshot refill)
/// and are put together with their `sid` and `seq` only when handed to
/// tungstenite, so the fan-out costs a reference count per subscriber and
/// messages dropped by conflation are never rendered.
enum Text {
    /// A whole message.
    Owned(String),
    /// `{"type":"<kind>","sid":<sid>,"seq":<seq>` followed by `tail`
    /// (`,"msg":{...}}`).
    Book { kind: BookKind, tail: Arc<str> },
}

#[derive(Clone, Copy)]
enum BookKind {
    Delta,
    Snapshot,
}

impl Outbound {
    /// The message as clients see it.
    fn render(self) -> String {
        let (kind, tail) = match self.text {
            Text::Owned(s) => return s,
            Text::Book { kind, tail } => (kind, tail),
        };
        let head: &str = match kind {
            BookKind::Delta => r#"{"type":"orderbook_delta","sid":"#,
            BookKind::Snapshot => r#"{"type":"orderbook_snapshot","sid":"#,
        };
        // 20 digits bound a u64.
        let mut s = String::with_capacity(head.len() + 20 + 7 + 20 + tail.len());
        s.push_str(head);
        push_u64(&mut s, self.sid);
        s.push_str(r#","seq":"#);
        push_u64(&mut s, self.seq);
        s.push_str(&tail);
        s
    }
}

/// Appends `v` in decimal (what `format!("{v}")` writes).
fn push_u64(s: &mut String, v: u64) {
    let mut buf = [0u8; 20];
    for &digit in crate::text::decimal_digits(v, &mut buf) {
        s.push(char::from(digit));
    }
}

/// Connection tokens are the gateway's own keys: no client chooses them.
type IdMap<K, V> = crate::hash::FxHashMap<K, V>;
type IdSet<K> = crate::hash::FxHashSet<K>;

/// `,"msg":<body>}`: the shared tail of a book message.
fn book_tail(body: &str) -> Arc<str> {
    let mut s = String::with_capacity(body.len() + 8);
    s.push_str(r#","msg":"#);
    s.push_str(body);
    s.push('}');
    s.into()
}

struct Subscription {
    channel: Channel,
    /// Instruments (public channels); empty for private channels.
    markets: BTreeSet<u32>,
    /// Last seq assigned (order book).
    seq: u64,
    /// Last seq handed to the socket (order book).
    sent_seq: u64,
    /// Pending deltas were dropped; snapshots follow once the queue drains.
    resync: bool,
}

struct WsConn {
    ws: WebSocket<TcpStream>,
    account: Option<u32>,
    queue: VecDeque<Outbound>,
    subs: BTreeMap<u64, Subscription>,
    next_sid: u64,
    resync_pending: bool,
    blocked_since: Option<Instant>,
    last_seen: Instant,
    last_ping: Instant,
}

struct HttpConn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    out_pos: usize,
    /// Waiting for the engine's answer to this command sequence.
    awaiting: Option<(u64, Instant, bool)>,
    close_after_write: bool,
    peer_closed: bool,
    last_seen: Instant,
    blocked_since: Option<Instant>,
    /// The answer is written and our side shut down: unread input is
    /// discarded until the peer closes, so closing does not reset the
    /// connection before the client has read the answer.
    draining_since: Option<Instant>,
}

/// How long a half-closed HTTP connection waits for the peer to close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

enum Conn {
    Http(HttpConn),
    Ws(Box<WsConn>),
}

/// Who waits for a command's outcome.
#[derive(Clone, Copy)]
enum ReplyTo {
    Ws { conn: usize, id: Option<u64> },
    Http { conn: usize },
}

#[derive(Clone)]
enum PendingOp {
    Create,
    Cancel,
    Amend,
    MassCancel,
    AddMarket(String),
    Status,
    Settle,
    KillSwitch,
    Deposit,
}

struct Pending {
    reply: ReplyTo,
    op: PendingOp,
}

/// An order reply held until the end of the turn, so that it shows the
/// order after the fills and cancels its own command caused (an IOC that
/// filled reads "executed", not "resting").
struct Deferred {
    /// The command's sequence: answered once all its events are in.
    sequence: u64,
    reply: ReplyTo,
    kind: &'static str,
    http_status: u16,
    order: OrderInfo,
    status: &'static str,
}

/// How a pending request ends: (status, reply type, body) or the engine's reject.
type Answer = Result<(u16, &'static str, Value), (u16, RejectReason)>;

/// What handling a request produced.
enum HttpOutcome {
    Respond(Vec<u8>),
    Await(u64, PendingOp),
    Upgrade(Option<u32>, Vec<u8>),
}

pub(super) struct Server {
    poll: Poll,
    listener: TcpListener,
    conns: IdMap<usize, Conn>,
    next_token: usize,
    config: GatewayConfig,
    keys: HashMap<String, u32>,
    view: ExchangeView,
    sender: CommandSender,
    sink: SinkHandle,
    metrics: Arc<Metrics>,
    stats: Arc<GatewayStats>,
    stop: Arc<AtomicBool>,
    /// (channel, instrument) → subscribers (conn, sid).
    market_subs: HashMap<(Channel, u32), BTreeSet<(usize, u64)>>,
    /// (channel, account) → subscribers (conn, sid).
    account_subs: HashMap<(Channel, u32), BTreeSet<(usize, u64)>>,
    pending: HashMap<u64, Pending>,
    deferred: Vec<Deferred>,
    client_ids: HashMap<(u32, u64), String>,
    dirty: IdSet<usize>,
    ticker_dirty: BTreeSet<usize>,
    to_close: Vec<usize>,
    halted: bool,
    /// Order-book snapshot tails (`,"msg":{book}}`) by market, valid until
    /// the next event: conflated subscribers refilled in one turn share one
    /// serialisation.
    snapshot_cache: HashMap<usize, Arc<str>>,
    /// Deltas queued in this turn, against `Limits::deltas_per_turn`: with
    /// thousands of subscribers the fan-out, not the view, is what costs,
    /// and an unbounded turn would let the sink overflow (the view then
    /// misses events) while no socket is written.
    turn_deltas: usize,
    last_scrape: Option<MetricsSnapshot>,
    ws_config: WebSocketConfig,
}

impl Server {
    pub(super) fn new(
        config: GatewayConfig,
        listener: TcpListener,
        sender: CommandSender,
        sink: SinkHandle,
        metrics: Arc<Metrics>,
        stats: Arc<GatewayStats>,
        stop: Arc<AtomicBool>,
    ) -> Result<Server, GatewayError> {
        let poll = Poll::new()?;
        let mut listener = listener;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let doorbell = Arc::new(Waker::new(poll.registry(), DOORBELL)?);
        // Owned by the sink from here on; a failed wake leaves the loop to
        // its poll interval.
        sink.wakeup.set_waker(move || {
            let _ = doorbell.wake();
        });
        let keys = config
            .accounts
            .iter()
            .map(|a| (a.api_key.clone(), a.account))
            .collect();
        let view = ExchangeView::new(&config.markets, config.limits.recent_trades);
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(16 * 1024)
            .write_buffer_size(64 * 1024)
            .max_message_size(Some(config.limits.max_message_bytes))
            .max_frame_size(Some(config.limits.max_message_bytes));
        Ok(Server {
            poll,
            listener,
            conns: IdMap::default(),
            next_token: 1,
            config,
            keys,
            view,
            sender,
            sink,
            metrics,
            stats,
            stop,
            market_subs: HashMap::new(),
            account_subs: HashMap::new(),
            pending: HashMap::new(),
            deferred: Vec::new(),
            client_ids: HashMap::new(),
            dirty: IdSet::default(),
            ticker_dirty: BTreeSet::new(),
            to_close: Vec::new(),
            halted: false,
            snapshot_cache: HashMap::new(),
            turn_deltas: 0,
            last_scrape: None,
            ws_config,
        })
    }

    /// Runs until the stop flag is set.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        let mut last_timer = Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            // Answers waiting for the rest of their command's events are
            // microseconds away: look again without sleeping.
            let wait = if self.deferred.is_empty() && self.sink.wakeup.arm(&self.sink.receiver) {
                POLL_INTERVAL
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    DOORBELL => {}
                    Token(t) => {
                        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                            self.on_readable(t);
                        }
                        self.dirty.insert(t);
                    }
                }
            }
            self.drain_sink();
            self.publish_tickers();
            let dirty: Vec<usize> = self.dirty.drain().collect();
            for t in dirty {
                self.pump(t);
            }
            if last_timer.elapsed() >= TIMER_INTERVAL {
                last_timer = Instant::now();
                self.on_timer();
            }
            self.close_marked();
        }
    }

    // ------------------------------------------------------------ sockets

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    if self.config.limits.socket_send_buffer > 0 {
                        set_send_buffer(&stream, self.config.limits.socket_send_buffer);
                    }
                    if self.conns.len() >= self.config.limits.max_connections {
                        // Best effort: a fresh socket takes a short reply at once.
                        let _ = stream.write(&http::error_response(
                            503,
                            "too_many_connections",
                            &format!(
                                "connection limit of {} reached",
                                self.config.limits.max_connections
                            ),
                            false,
                        ));
                        self.stats.refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    let token = self.next_token;
                    self.next_token += 1;
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(token),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        continue;
                    }
                    self.conns.insert(
                        token,
                        Conn::Http(HttpConn {
                            stream,
                            inbuf: Vec::new(),
                            outbuf: Vec::new(),
                            out_pos: 0,
                            awaiting: None,
                            close_after_write: false,
                            peer_closed: false,
                            last_seen: Instant::now(),
                            blocked_since: None,
                            draining_since: None,
                        }),
                    );
                    self.stats.http_connections.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) if would_block(&e) => return,
                Err(_) => return,
            }
        }
    }

    fn on_readable(&mut self, token: usize) {
        match self.conns.get_mut(&token) {
            Some(Conn::Http(_)) => self.read_http(token),
            Some(Conn::Ws(_)) => self.read_ws(token),
            None => {}
        }
    }

    fn mark_close(&mut self, token: usize) {
        self.to_close.push(token);
    }

    fn close_marked(&mut self) {
        let tokens = std::mem::take(&mut self.to_close);
        for token in tokens {
            let Some(conn) = self.conns.remove(&token) else {
                continue;
            };
            match conn {
                Conn::Http(mut h) => {
                    let _ = self.poll.registry().deregister(&mut h.stream);
                    self.stats.http_connections.fetch_sub(1, Ordering::Relaxed);
                }
                Conn::Ws(mut w) => {
                    for (&sid, sub) in &w.subs {
                        unindex(
                            &mut self.market_subs,
                            &mut self.account_subs,
                            token,
                            sid,
                            sub,
                            w.account,
                        );
                    }
                    self.stats
                        .subscriptions
                        .fetch_sub(w.subs.len() as u64, Ordering::Relaxed);
                    let _ = w.ws.flush();
                    let _ = self.poll.registry().deregister(w.ws.get_mut());
                    self.stats.ws_connections.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    // ------------------------------------------------------------ HTTP

    fn read_http(&mut self, token: usize) {
        let limit = self.config.limits.max_header_bytes + self.config.limits.max_body_bytes + 4096;
        let Some(Conn::Http(h)) = self.conns.get_mut(&token) else {
            return;
        };
        let mut buf = [0u8; 16 * 1024];
        if h.draining_since.is_some() {
            loop {
                match h.stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if would_block(&e) => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
            self.to_close.push(token);
            return;
        }
        loop {
            match h.stream.read(&mut buf) {
                Ok(0) => {
                    h.peer_closed = true;
                    break;
                }
                Ok(n) => {
                    h.inbuf.extend_from_slice(&buf[..n]);
                    h.last_seen = Instant::now();
                    if h.inbuf.len() > limit {
                        break;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    h.peer_closed = true;
                    break;
                }
            }
        }
        self.process_http(token);
    }

    /// Parses and answers the requests buffered on an HTTP connection.
    fn process_http(&mut self, token: usize) {
        let limits = ParseLimits {
            max_header_bytes: self.config.limits.max_header_bytes,
            max_body_bytes: self.config.limits.max_body_bytes,
        };
        loop {
            let Some(Conn::Http(h)) = self.conns.get_mut(&token) else {
                return;
            };
            if h.awaiting.is_some() || h.close_after_write {
                break;
            }
            match http::parse_request(&h.inbuf, &limits) {
                Parsed::Incomplete => {
                    if h.peer_closed {
                        if !h.inbuf.is_empty() {
                            h.outbuf.extend(http::error_response(
                                400,
                                "malformed_request",
                                "connection closed in the middle of a request",
                                false,
                            ));
                        }
                        h.close_after_write = true;
                    }
                    break;
                }
                Parsed::Error(e) => {
                    h.outbuf
                        .extend(http::error_response(e.status, e.code, &e.message, false));
                    h.close_after_write = true;
                    h.inbuf.clear();
                    self.stats.http_errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Parsed::Complete(req, used) => {
                    h.inbuf.drain(..used);
                    let keep_alive = req.keep_alive;
                    self.stats.http_requests.fetch_add(1, Ordering::Relaxed);
                    let outcome = self.handle_request(token, &req);
                    let Some(Conn::Http(h)) = self.conns.get_mut(&token) else {
                        return;
                    };
                    match outcome {
                        HttpOutcome::Respond(bytes) => {
                            h.outbuf.extend(bytes);
                            if !keep_alive {
                                h.close_after_write = true;
                            }
                        }
                        HttpOutcome::Await(seq, op) => {
                            let deadline = Instant::now()
                                + Duration::from_millis(self.config.limits.request_timeout_ms);
                            h.awaiting = Some((seq, deadline, keep_alive));
                            self.pending.insert(
                                seq,
                                Pending {
                                    reply: ReplyTo::Http { conn: token },
                                    op,
                                },
                            );
                        }
                        HttpOutcome::Upgrade(account, reply) => {
                            self.upgrade(token, account, reply);
                            return;
                        }
                    }
                }
            }
        }
        self.dirty.insert(token);
    }

    fn write_http(&mut self, token: usize) {
        let Some(Conn::Http(h)) = self.conns.get_mut(&token) else {
            return;
        };
        if h.draining_since.is_some() {
            return;
        }
        while h.out_pos < h.outbuf.len() {
            match h.stream.write(&h.outbuf[h.out_pos..]) {
                Ok(0) => {
                    h.peer_closed = true;
                    break;
                }
                Ok(n) => {
                    h.out_pos += n;
                    h.blocked_since = None;
                }
                Err(e) if would_block(&e) => {
                    h.blocked_since.get_or_insert_with(Instant::now);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.to_close.push(token);
                    return;
                }
            }
        }
        h.outbuf.clear();
        h.out_pos = 0;
        if h.peer_closed && h.awaiting.is_none() {
            self.to_close.push(token);
        } else if h.close_after_write {
            let _ = h.stream.shutdown(std::net::Shutdown::Write);
            h.draining_since = Some(Instant::now());
            h.inbuf.clear();
        } else if !h.inbuf.is_empty() && h.awaiting.is_none() {
            // Pipelined requests waited for the previous answer.
            self.process_http(token);
        }
    }

    fn upgrade(&mut self, token: usize, account: Option<u32>, reply: Vec<u8>) {
        let Some(Conn::Http(mut h)) = self.conns.remove(&token) else {
            return;
        };
        // The 101 reply is ~130 bytes on a socket that has sent nothing yet:
        // it fits in the send buffer, so a short write means a broken peer.
        if h.stream.write(&reply).ok() != Some(reply.len()) {
            let _ = self.poll.registry().deregister(&mut h.stream);
            self.stats.http_connections.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let leftover = std::mem::take(&mut h.inbuf);
        let ws =
            WebSocket::from_partially_read(h.stream, leftover, Role::Server, Some(self.ws_config));
        self.stats.http_connections.fetch_sub(1, Ordering::Relaxed);
        self.stats.ws_connections.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        self.conns.insert(
            token,
            Conn::Ws(Box::new(WsConn {
                ws,
                account,
                queue: VecDeque::new(),
                subs: BTreeMap::new(),
                next_sid: 1,
                resync_pending: false,
                blocked_since: None,
                last_seen: now,
                last_ping: now,
            })),
        );
        // Frames may have arrived with the upgrade request.
        self.read_ws(token);
    }

    fn account_of(&self, req: &Request) -> Result<Option<u32>, Vec<u8>> {
        let key = req.header("x-api-key").map(str::to_owned).or_else(|| {
            req.header("authorization")
                .and_then(|a| a.strip_prefix("Bearer ").map(|k| k.trim().to_owned()))
        });
        let key = key.or_else(|| {
            req.is_websocket_upgrade()
                .then(|| req.query_param("api_key").map(str::to_owned))
                .flatten()
        });
        match key {
            None => Ok(None),
            Some(k) => match self.keys.get(&k) {
                Some(&account) => Ok(Some(account)),
                None => Err(http::error_response(
                    401,
                    "invalid_api_key",
                    "unknown API key",
                    req.keep_alive,
                )),
            },
        }
    }

    fn handle_request(&mut self, _token: usize, req: &Request) -> HttpOutcome {
        let ka = req.keep_alive;
        if req.is_websocket_upgrade() {
            return self.handle_upgrade(req);
        }
        let (route, captures) = match routes::lookup(&req.method, &req.path) {
            Lookup::Found(r, c) => (r, c.into_iter().map(str::to_owned).collect::<Vec<_>>()),
            Lookup::MethodNotAllowed(allowed) => {
                let allow = allowed.join(", ");
                let body = http::error_body(
                    "method_not_allowed",
                    &format!(
                        "{} is not allowed on {}; allowed: {allow}",
                        req.method, req.path
                    ),
                );
                return HttpOutcome::Respond(http::response(
                    405,
                    "application/json",
                    body.to_string().as_bytes(),
                    ka,
                    &[("Allow", &allow)],
                ));
            }
            Lookup::NotFound => {
                return HttpOutcome::Respond(http::error_response(
                    404,
                    "unknown_route",
                    &format!("no route for {} {}", req.method, req.path),
                    ka,
                ))
            }
        };
        let account = match route.auth {
            Auth::Public => None,
            Auth::Account => match self.account_of(req) {
                Ok(Some(a)) => Some(a),
                Ok(None) => {
                    return HttpOutcome::Respond(http::error_response(
                        401,
                        "missing_api_key",
                        "this endpoint needs an API key (X-Api-Key header)",
                        ka,
                    ))
                }
                Err(resp) => return HttpOutcome::Respond(resp),
            },
            Auth::Admin => {
                let ok = match (&self.config.admin_key, req.header("x-admin-key")) {
                    (None, _) => {
                        return HttpOutcome::Respond(http::error_response(
                            403,
                            "admin_disabled",
                            "admin endpoints are disabled (no admin key configured)",
                            ka,
                        ))
                    }
                    (Some(_), None) => {
                        return HttpOutcome::Respond(http::error_response(
                            401,
                            "missing_admin_key",
                            "this endpoint needs the admin key (X-Admin-Key header)",
                            ka,
                        ))
                    }
                    (Some(k), Some(given)) => k == given,
                };
                if !ok {
                    return HttpOutcome::Respond(http::error_response(
                        403,
                        "invalid_admin_key",
                        "wrong admin key",
                        ka,
                    ));
                }
                None
            }
        };
        match self.route(route.id, &captures, account, req) {
            Ok(outcome) => outcome,
            Err((status, code, message)) => {
                HttpOutcome::Respond(http::error_response(status, code, &message, ka))
            }
        }
    }

    fn handle_upgrade(&mut self, req: &Request) -> HttpOutcome {
        let ka = req.keep_alive;
        let fail = |status, code, msg: &str| {
            HttpOutcome::Respond(http::error_response(status, code, msg, ka))
        };
        if !WS_PATHS.contains(&req.path.as_str()) {
            return fail(
                404,
                "unknown_route",
                &format!("no WebSocket endpoint at {}; use /ws", req.path),
            );
        }
        if req.method != "GET" {
            return fail(
                405,
                "method_not_allowed",
                "a WebSocket upgrade must be a GET",
            );
        }
        if req.header("sec-websocket-version") != Some("13") {
            let body = http::error_body(
                "unsupported_websocket_version",
                "Sec-WebSocket-Version must be 13",
            );
            return HttpOutcome::Respond(http::response(
                426,
                "application/json",
                body.to_string().as_bytes(),
                ka,
                &[("Sec-WebSocket-Version", "13")],
            ));
        }
        let Some(key) = req.header("sec-websocket-key") else {
            return fail(400, "malformed_request", "Sec-WebSocket-Key is missing");
        };
        let account = match self.account_of(req) {
            Ok(a) => a,
            Err(resp) => return HttpOutcome::Respond(resp),
        };
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let reply = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        HttpOutcome::Upgrade(account, reply.into_bytes())
    }

    fn submit(&mut self, cmd: Command) -> Result<u64, (u16, &'static str, String)> {
        match self.sender.try_submit(cmd) {
            Ok(seq) => Ok(seq),
            Err(SubmitError::Busy) => Err((503, "busy", "the exchange is busy; retry".into())),
            Err(e) => {
                self.halted = matches!(e, SubmitError::Halted);
                Err((503, "unavailable", e.to_string()))
            }
        }
    }

    fn market_or_404(&self, ticker: &str) -> Result<usize, (u16, &'static str, String)> {
        self.view
            .market_index(ticker)
            .ok_or_else(|| (404, "market_not_found", format!("no market {ticker:?}")))
    }

    fn route(
        &mut self,
        id: RouteId,
        captures: &[String],
        account: Option<u32>,
        req: &Request,
    ) -> Result<HttpOutcome, (u16, &'static str, String)> {
        let ka = req.keep_alive;
        let ok = |v: Value| Ok(HttpOutcome::Respond(http::json_response(200, &v, ka)));
        let acct = account.unwrap_or(0);
        match id {
            RouteId::Health => {
                // A view that lost events no longer matches the engine: say so.
                let failed = self.halted
                    || self.sink.stats.is_disconnected()
                    || self.sink.stats.dropped() > 0;
                let body = json!({
                    "status": if failed { "unavailable" } else { "ok" },
                    "gateway_events_dropped": self.sink.stats.dropped(),
                });
                Ok(HttpOutcome::Respond(http::json_response(
                    if failed { 503 } else { 200 },
                    &body,
                    ka,
                )))
            }
            RouteId::Metrics => {
                let text = self.metrics_text();
                Ok(HttpOutcome::Respond(http::response(
                    200,
                    "text/plain; version=0.0.4",
                    text.as_bytes(),
                    ka,
                    &[],
                )))
            }
            RouteId::OpenApi => ok(routes::openapi()),
            RouteId::Monitor => Ok(HttpOutcome::Respond(http::response(
                200,
                "text/html; charset=utf-8",
                super::monitor::PAGE.as_bytes(),
                ka,
                &[],
            ))),
            RouteId::ListMarkets => ok(json!({
                "markets": self.view.markets().iter().map(|m| m.to_json()).collect::<Vec<_>>()
            })),
            RouteId::GetMarket => {
                let m = self.market_or_404(&captures[0])?;
                ok(json!({"market": self.view.market(m).to_json()}))
            }
            RouteId::GetOrderbook => {
                let m = self.market_or_404(&captures[0])?;
                let depth = match req.query_param("depth") {
                    None => 0,
                    Some(d) => d.parse::<usize>().map_err(|_| {
                        (
                            400,
                            "invalid_parameter",
                            format!("depth {d:?} is not a non-negative integer"),
                        )
                    })?,
                };
                ok(json!({"orderbook": self.view.market(m).book_json(depth)}))
            }
            RouteId::GetTrades => {
                let m = self.market_or_404(&captures[0])?;
                let limit = match req.query_param("limit") {
                    None => 100,
                    Some(d) => d.parse::<usize>().map_err(|_| {
                        (
                            400,
                            "invalid_parameter",
                            format!("limit {d:?} is not a non-negative integer"),
                        )
                    })?,
                };
                let market = self.view.market(m);
                ok(
                    json!({"trades": market.trades.iter().rev().take(limit).map(|t| market.trade_json(t)).collect::<Vec<_>>()}),
                )
            }
            RouteId::CreateOrder => {
                let order: OrderRequest = parse_body(req)?;
                let (cmd, cid) = self.order_command(acct, &order).map_err(|(c, m)| {
                    (
                        if c == codes::MARKET_NOT_FOUND {
                            404
                        } else {
                            400
                        },
                        "invalid_order",
                        m,
                    )
                })?;
                let seq = self.submit(cmd)?;
                if let Some(cid) = cid {
                    self.client_ids.insert((acct, cmd.client_order_id), cid);
                }
                Ok(HttpOutcome::Await(seq, PendingOp::Create))
            }
            RouteId::ListOrders => {
                let filter = match req.query_param("ticker") {
                    Some(t) => Some(self.view.market(self.market_or_404(t)?).config.instrument),
                    None => None,
                };
                let orders: Vec<Value> = self
                    .view
                    .open_orders(acct)
                    .filter(|o| filter.is_none_or(|i| o.instrument == i))
                    .map(|o| self.order_json(o, "resting"))
                    .collect();
                ok(json!({ "orders": orders }))
            }
            RouteId::GetOrder => {
                let id = protocol::parse_order_id(&Value::String(captures[0].clone()))
                    .map_err(|m| (400, "invalid_parameter", m))?;
                match self.view.order(id).filter(|o| o.account == acct) {
                    Some(o) => ok(json!({"order": self.order_json(o, "resting")})),
                    None => Err((
                        404,
                        "order_not_found",
                        format!("no open order {id} of this account"),
                    )),
                }
            }
            RouteId::MassCancel => {
                let instrument = match req.query_param("ticker") {
                    Some(t) => Some(self.view.market(self.market_or_404(t)?).config.instrument),
                    None => None,
                };
                let seq = self.submit(Command::mass_cancel(acct, instrument))?;
                Ok(HttpOutcome::Await(seq, PendingOp::MassCancel))
            }
            RouteId::CancelOrder => {
                let r = OrderRef {
                    order_id: Some(Value::String(captures[0].clone())),
                    client_order_id: None,
                };
                let cmd = r
                    .to_command(acct)
                    .map_err(|m| (400, "invalid_parameter", m))?;
                let seq = self.submit(cmd)?;
                Ok(HttpOutcome::Await(seq, PendingOp::Cancel))
            }
            RouteId::AmendOrder => {
                let mut amend: AmendRequest = parse_body(req)?;
                amend.order_id = Some(Value::String(captures[0].clone()));
                amend.client_order_id = None;
                let cmd = self.amend_command(acct, &amend).map_err(|(c, m)| {
                    (
                        if c == codes::MARKET_NOT_FOUND {
                            404
                        } else {
                            400
                        },
                        "invalid_order",
                        m,
                    )
                })?;
                let seq = self.submit(cmd)?;
                Ok(HttpOutcome::Await(seq, PendingOp::Amend))
            }
            RouteId::GetBalance => ok(self.balances_json(acct)),
            RouteId::GetPositions => ok(self.positions_json(acct)),
            RouteId::AdminAddMarket => {
                let market: MarketConfig = parse_body(req)?;
                let mut check = self.config.clone();
                check.markets = vec![market.clone()];
                check.validate().map_err(|m| (400, "invalid_market", m))?;
                self.snapshot_cache.clear();
                if !self.view.list_market(market.clone()) {
                    return Err((
                        409,
                        "market_exists",
                        format!(
                            "ticker {} or instrument {} is already listed",
                            market.ticker, market.instrument
                        ),
                    ));
                }
                match self.submit(market.add_instrument_command()) {
                    Ok(seq) => Ok(HttpOutcome::Await(seq, PendingOp::AddMarket(market.ticker))),
                    Err(e) => {
                        self.snapshot_cache.clear();
                        self.view.unlist_market(&market.ticker);
                        Err(e)
                    }
                }
            }
            RouteId::AdminHalt | RouteId::AdminResume => {
                let m = self.market_or_404(&captures[0])?;
                let inst = self.view.market(m).config.instrument;
                let cmd = if id == RouteId::AdminHalt {
                    Command::halt(inst)
                } else {
                    Command::resume(inst)
                };
                let seq = self.submit(cmd)?;
                Ok(HttpOutcome::Await(seq, PendingOp::Status))
            }
            RouteId::AdminSettle => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Settle {
                    result: String,
                }
                let m = self.market_or_404(&captures[0])?;
                let body: Settle = parse_body(req)?;
                let outcome = match body.result.as_str() {
                    "yes" => Outcome::Yes,
                    "no" => Outcome::No,
                    other => {
                        return Err((
                            400,
                            "invalid_parameter",
                            format!("result must be \"yes\" or \"no\", not {other:?}"),
                        ))
                    }
                };
                let seq = self.submit(Command::settle(
                    self.view.market(m).config.instrument,
                    outcome,
                ))?;
                Ok(HttpOutcome::Await(seq, PendingOp::Settle))
            }
            RouteId::AdminKillSwitch => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Kill {
                    on: bool,
                    #[serde(default)]
                    account: Option<u32>,
                }
                let body: Kill = parse_body(req)?;
                let seq = self.submit(Command::kill_switch(body.account, body.on))?;
                Ok(HttpOutcome::Await(seq, PendingOp::KillSwitch))
            }
            RouteId::AdminDeposit => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Deposit {
                    account: u32,
                    asset: u16,
                    amount: u64,
                }
                let body: Deposit = parse_body(req)?;
                let seq = self.submit(Command::deposit(body.account, body.asset, body.amount))?;
                Ok(HttpOutcome::Await(seq, PendingOp::Deposit))
            }
        }
    }

    // ------------------------------------------------------------ orders

    /// The engine command for an order request, and the client order id
    /// string to remember.
    fn order_command(
        &self,
        account: u32,
        order: &OrderRequest,
    ) -> Result<(Command, Option<String>), (u32, String)> {
        let m = self.view.market_index(&order.ticker).ok_or_else(|| {
            (
                codes::MARKET_NOT_FOUND,
                format!("market not found: {:?}", order.ticker),
            )
        })?;
        let cmd = order
            .to_command(account, &self.view.market(m).config, wall_clock_ns())
            .map_err(|e| (codes::INVALID_PARAMETER, e))?;
        Ok((cmd, order.client_order_id.clone()))
    }

    fn amend_command(&self, account: u32, amend: &AmendRequest) -> Result<Command, (u32, String)> {
        let current = match (&amend.order_id, &amend.client_order_id) {
            (Some(id), _) => protocol::parse_order_id(id)
                .ok()
                .and_then(|id| self.view.order(id).copied()),
            (None, Some(c)) => {
                let key = protocol::client_order_key(c);
                self.view
                    .open_orders(account)
                    .find(|o| o.client_order_id == key)
                    .copied()
            }
            (None, None) => None,
        }
        .filter(|o| o.account == account);
        let Some(order) = current else {
            // The engine decides between unknown and too late; the market is
            // needed only for units, and an unknown order has none.
            let cmd = match (&amend.order_id, &amend.client_order_id) {
                (Some(id), None) => Command::replace(
                    account,
                    protocol::parse_order_id(id).map_err(|e| (codes::INVALID_PARAMETER, e))?,
                    0,
                    1,
                    1,
                ),
                (None, Some(c)) => {
                    Command::replace_by_client_id(account, protocol::client_order_key(c), 0, 1, 1)
                }
                _ => {
                    return Err((
                        codes::INVALID_PARAMETER,
                        "give exactly one of order_id and client_order_id".into(),
                    ))
                }
            };
            return Ok(cmd);
        };
        let market = self
            .view
            .market_of_instrument(order.instrument)
            .ok_or_else(|| {
                (
                    codes::MARKET_NOT_FOUND,
                    "the order's market is not listed".into(),
                )
            })?;
        let (_, client_price) = order.client_terms();
        amend
            .to_command(
                account,
                &self.view.market(market).config,
                Some((order.outcome, client_price, order.quantity)),
            )
            .map_err(|e| (codes::INVALID_PARAMETER, e))
    }

    fn client_id_str(&self, account: u32, key: u64) -> String {
        if key == 0 {
            return String::new();
        }
        self.client_ids
            .get(&(account, key))
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    fn order_json(&self, o: &OrderInfo, status: &str) -> Value {
        let market = self
            .view
            .market_of_instrument(o.instrument)
            .map(|m| self.view.market(m));
        let ticker = market.map_or(String::new(), |m| m.config.ticker.clone());
        let (action, client_price) = o.client_terms();
        let mut v = json!({
            "order_id": o.order_id.to_string(),
            "client_order_id": self.client_id_str(o.account, o.client_order_id),
            "ticker": ticker,
            "status": status,
            "action": if action == Side::Buy { "buy" } else { "sell" },
            "type": format!("{:?}", o.order_type).to_lowercase(),
            "time_in_force": format!("{:?}", o.time_in_force).to_lowercase(),
        });
        match market {
            Some(m) if !m.is_binary() => {
                v["price"] = json!(m.price_str(o.price));
                v["quantity"] = json!(m.qty_str(i128::from(o.quantity)));
                v["filled_quantity"] = json!(m.qty_str(i128::from(o.filled)));
                v["remaining_quantity"] = json!(m.qty_str(i128::from(o.leaves)));
            }
            _ => {
                v["side"] = json!(if o.outcome == Outcome::No {
                    "no"
                } else {
                    "yes"
                });
                v["yes_price"] = json!(o.price);
                v["no_price"] = json!(100 - o.price);
                v["yes_price_dollars"] = json!(dollars(o.price));
                v["no_price_dollars"] = json!(dollars(100 - o.price));
                v["price"] = json!(client_price);
                v["count"] = json!(o.quantity);
                v["fill_count"] = json!(o.filled);
                v["remaining_count"] = json!(o.leaves);
            }
        }
        v
    }

    fn balances_json(&self, account: u32) -> Value {
        json!({"balances": self.view.balances(account).map(|(asset, a, r)| json!({"asset": asset, "available": a, "reserved": r})).collect::<Vec<_>>()})
    }

    fn positions_json(&self, account: u32) -> Value {
        json!({"market_positions": self.view.positions(account).map(|(inst, p)| {
            let ticker = self.view.market_of_instrument(inst).map(|m| self.view.market(m).config.ticker.clone());
            json!({"ticker": ticker, "instrument_id": inst, "position": p})
        }).collect::<Vec<_>>()})
    }

    // ------------------------------------------------------------ WebSocket

    fn read_ws(&mut self, token: usize) {
        let mut texts = Vec::new();
        let mut close = false;
        {
            let Some(Conn::Ws(w)) = self.conns.get_mut(&token) else {
                return;
            };
            loop {
                match w.ws.read() {
                    Ok(Message::Text(t)) => {
                        w.last_seen = Instant::now();
                        texts.push(Ok(t.as_str().to_owned()));
                    }
                    Ok(Message::Binary(_)) => {
                        w.last_seen = Instant::now();
                        texts.push(Err(WsError {
                            id: None,
                            code: codes::UNABLE_TO_PROCESS,
                            msg: "binary messages are not supported; send JSON text".into(),
                        }));
                    }
                    Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {
                        w.last_seen = Instant::now();
                    }
                    Ok(Message::Close(_)) => {
                        // tungstenite queued the close reply; flush it, then drop.
                        let _ = w.ws.flush();
                        close = true;
                        break;
                    }
                    Err(tungstenite::Error::Io(e)) if would_block(&e) => break,
                    Err(tungstenite::Error::Capacity(e)) => {
                        let limit = self.config.limits.max_message_bytes;
                        let err = WsError {
                            id: None,
                            code: codes::MESSAGE_TOO_LARGE,
                            msg: format!("message too large: {e} (limit {limit} bytes)"),
                        };
                        let _ = w.ws.write(Message::text(err.to_json().to_string()));
                        let _ = w.ws.close(Some(CloseFrame {
                            code: CloseCode::Size,
                            reason: format!("message larger than {limit} bytes").into(),
                        }));
                        let _ = w.ws.flush();
                        close = true;
                        break;
                    }
                    Err(_) => {
                        close = true;
                        break;
                    }
                }
            }
        }
        for t in texts {
            match t {
                Ok(text) => self.handle_ws_text(token, &text),
                Err(e) => self.push_ws(token, e.to_json().to_string()),
            }
        }
        if close {
            self.mark_close(token);
        }
        self.dirty.insert(token);
    }

    /// Queues a non-book message (replies, trades, private updates).
    fn push_ws(&mut self, token: usize, text: String) {
        let hard = self.config.limits.outbound_queue_messages * 2;
        if let Some(Conn::Ws(w)) = self.conns.get_mut(&token) {
            if w.queue.len() >= hard {
                self.stats.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                self.to_close.push(token);
                return;
            }
            w.queue.push_back(Outbound {
                text: Text::Owned(text),
                sid: 0,
                seq: 0,
                book: false,
            });
            self.dirty.insert(token);
        }
    }

    fn ws_reply(&mut self, token: usize, id: Option<u64>, mut v: Value) {
        if let Some(id) = id {
            v["id"] = id.into();
        }
        self.push_ws(token, v.to_string());
    }

    fn ws_error(&mut self, token: usize, id: Option<u64>, code: u32, msg: impl Into<String>) {
        let e = WsError {
            id,
            code,
            msg: msg.into(),
        };
        self.push_ws(token, e.to_json().to_string());
    }

    fn handle_ws_text(&mut self, token: usize, text: &str) {
        let (id, cmd) = match protocol::decode_client_message(text.as_bytes()) {
            Ok(x) => x,
            Err(e) => {
                self.push_ws(token, e.to_json().to_string());
                return;
            }
        };
        let account = match self.conns.get(&token) {
            Some(Conn::Ws(w)) => w.account,
            _ => return,
        };
        let needs_account = matches!(
            cmd,
            WsCommand::CreateOrder(_)
                | WsCommand::CancelOrder(_)
                | WsCommand::AmendOrder(_)
                | WsCommand::MassCancel { .. }
                | WsCommand::ListOrders
                | WsCommand::Portfolio
        );
        if needs_account && account.is_none() {
            self.ws_error(
                token,
                id,
                codes::AUTH_REQUIRED,
                "authentication required: connect with an API key",
            );
            return;
        }
        let acct = account.unwrap_or(0);
        match cmd {
            WsCommand::Subscribe { channels, tickers } => {
                self.subscribe(token, id, channels, tickers)
            }
            WsCommand::Unsubscribe { sids } => self.unsubscribe(token, id, sids),
            WsCommand::UpdateSubscription {
                sid,
                tickers,
                action,
            } => self.update_subscription(token, id, sid, tickers, action),
            WsCommand::ListSubscriptions => {
                let Some(Conn::Ws(w)) = self.conns.get(&token) else {
                    return;
                };
                let list: Vec<Value> = w
                    .subs
                    .iter()
                    .map(|(sid, s)| {
                        json!({"sid": sid, "channel": s.channel.name(), "market_tickers": s.markets.iter().filter_map(|i| self.view.market_of_instrument(*i)).map(|m| self.view.market(m).config.ticker.clone()).collect::<Vec<_>>()})
                    })
                    .collect();
                self.ws_reply(token, id, json!({"type": "subscriptions", "msg": list}));
            }
            WsCommand::CreateOrder(order) => match self.order_command(acct, &order) {
                Ok((cmd, cid)) => {
                    self.ws_submit(token, id, cmd, PendingOp::Create, cid.map(|c| (acct, c)))
                }
                Err((code, msg)) => self.ws_error(token, id, code, msg),
            },
            WsCommand::CancelOrder(r) => match r.to_command(acct) {
                Ok(cmd) => self.ws_submit(token, id, cmd, PendingOp::Cancel, None),
                Err(msg) => self.ws_error(token, id, codes::INVALID_PARAMETER, msg),
            },
            WsCommand::AmendOrder(a) => match self.amend_command(acct, &a) {
                Ok(cmd) => {
                    let cid = a.new_client_order_id.clone().map(|c| (acct, c));
                    self.ws_submit(token, id, cmd, PendingOp::Amend, cid)
                }
                Err((code, msg)) => self.ws_error(token, id, code, msg),
            },
            WsCommand::MassCancel { ticker } => {
                let instrument = match ticker {
                    None => None,
                    Some(t) => match self.view.market_index(&t) {
                        Some(m) => Some(self.view.market(m).config.instrument),
                        None => {
                            self.ws_error(
                                token,
                                id,
                                codes::MARKET_NOT_FOUND,
                                format!("market not found: {t:?}"),
                            );
                            return;
                        }
                    },
                };
                self.ws_submit(
                    token,
                    id,
                    Command::mass_cancel(acct, instrument),
                    PendingOp::MassCancel,
                    None,
                )
            }
            WsCommand::ListOrders => {
                let orders: Vec<Value> = self
                    .view
                    .open_orders(acct)
                    .map(|o| self.order_json(o, "resting"))
                    .collect();
                self.ws_reply(
                    token,
                    id,
                    json!({"type": "orders", "msg": {"orders": orders}}),
                );
            }
            WsCommand::Portfolio => {
                let mut msg = self.balances_json(acct);
                msg["market_positions"] = self.positions_json(acct)["market_positions"].take();
                self.ws_reply(token, id, json!({"type": "portfolio", "msg": msg}));
            }
        }
    }

    fn ws_submit(
        &mut self,
        token: usize,
        id: Option<u64>,
        cmd: Command,
        op: PendingOp,
        cid: Option<(u32, String)>,
    ) {
        match self.sender.try_submit(cmd) {
            Ok(seq) => {
                if let Some((acct, c)) = cid {
                    self.client_ids
                        .insert((acct, protocol::client_order_key(&c)), c);
                }
                self.pending.insert(
                    seq,
                    Pending {
                        reply: ReplyTo::Ws { conn: token, id },
                        op,
                    },
                );
            }
            Err(SubmitError::Busy) => {
                self.ws_error(token, id, codes::BUSY, "the exchange is busy; retry")
            }
            Err(e) => {
                self.halted = matches!(e, SubmitError::Halted);
                self.ws_error(token, id, codes::INTERNAL, e.to_string());
            }
        }
    }

    fn subscribe(
        &mut self,
        token: usize,
        id: Option<u64>,
        channels: Vec<Channel>,
        tickers: Vec<String>,
    ) {
        let max_subs = self.config.limits.max_subscriptions;
        let mut instruments = BTreeSet::new();
        for t in &tickers {
            match self.view.market_index(t) {
                Some(m) => {
                    instruments.insert(self.view.market(m).config.instrument);
                }
                None => {
                    self.ws_error(
                        token,
                        id,
                        codes::MARKET_NOT_FOUND,
                        format!("market not found: {t:?}"),
                    );
                    return;
                }
            }
        }
        for channel in channels {
            let Some(Conn::Ws(w)) = self.conns.get_mut(&token) else {
                return;
            };
            if channel.is_private() && w.account.is_none() {
                self.ws_error(
                    token,
                    id,
                    codes::AUTH_REQUIRED,
                    format!(
                        "channel {} needs authentication: connect with an API key",
                        channel.name()
                    ),
                );
                continue;
            }
            if w.subs.len() >= max_subs {
                self.ws_error(
                    token,
                    id,
                    codes::TOO_MANY_SUBSCRIPTIONS,
                    format!("subscription limit of {max_subs} reached"),
                );
                continue;
            }
            let dup = w.subs.values().any(|s| {
                s.channel == channel
                    && (channel.is_private()
                        || s.markets.intersection(&instruments).next().is_some())
            });
            if dup {
                self.ws_error(
                    token,
                    id,
                    codes::ALREADY_SUBSCRIBED,
                    format!("already subscribed to {}", channel.name()),
                );
                continue;
            }
            let sid = w.next_sid;
            w.next_sid += 1;
            let markets = if channel.is_private() {
                BTreeSet::new()
            } else {
                instruments.clone()
            };
            let sub = Subscription {
                channel,
                markets,
                seq: 0,
                sent_seq: 0,
                resync: false,
            };
            index(
                &mut self.market_subs,
                &mut self.account_subs,
                token,
                sid,
                &sub,
                w.account,
            );
            w.subs.insert(sid, sub);
            self.stats.subscriptions.fetch_add(1, Ordering::Relaxed);
            self.ws_reply(
                token,
                id,
                json!({"type": "subscribed", "msg": {"channel": channel.name(), "sid": sid}}),
            );
            let markets: Vec<u32> = instruments.iter().copied().collect();
            self.initial_messages(token, sid, channel, &markets);
        }
    }

    /// What a new subscription (or newly added markets) gets first.
    fn initial_messages(&mut self, token: usize, sid: u64, channel: Channel, instruments: &[u32]) {
        for &inst in instruments {
            let Some(m) = self.view.market_of_instrument(inst) else {
                continue;
            };
            match channel {
                Channel::OrderbookDelta => self.push_snapshot(token, sid, m),
                Channel::Ticker => {
                    let msg = self.view.market(m).ticker_json();
                    self.push_ws(
                        token,
                        json!({"type": "ticker", "sid": sid, "msg": msg}).to_string(),
                    );
                }
                Channel::MarketLifecycle => {
                    let msg = self.view.market(m).status_json();
                    self.push_ws(
                        token,
                        json!({"type": "market_lifecycle", "sid": sid, "msg": msg}).to_string(),
                    );
                }
                _ => {}
            }
        }
    }

    fn push_snapshot(&mut self, token: usize, sid: u64, market: usize) {
        let view = &self.view;
        let body = Arc::clone(
            self.snapshot_cache
                .entry(market)
                .or_insert_with(|| book_tail(&view.market(market).book_json(0).to_string())),
        );
        let Some(Conn::Ws(w)) = self.conns.get_mut(&token) else {
            return;
        };
        let Some(sub) = w.subs.get_mut(&sid) else {
            return;
        };
        sub.seq += 1;
        let seq = sub.seq;
        w.queue.push_back(Outbound {
            text: Text::Book {
                kind: BookKind::Snapshot,
                tail: body,
            },
            sid,
            seq,
            book: true,
        });
        self.dirty.insert(token);
    }

    fn unsubscribe(&mut self, token: usize, id: Option<u64>, sids: Vec<u64>) {
        for sid in sids {
            let Some(Conn::Ws(w)) = self.conns.get_mut(&token) else {
                return;
            };
            match w.subs.remove(&sid) {
                Some(sub) => {
                    unindex(
                        &mut self.market_subs,
                        &mut self.account_subs,
                        token,
                        sid,
                        &sub,
                        w.account,
                    );
                    w.queue.retain(|m| m.sid != sid);
                    self.stats.subscriptions.fetch_sub(1, Ordering::Relaxed);
                    self.ws_reply(token, id, json!({"type": "unsubscribed", "sid": sid}));
                }
                None => self.ws_error(
                    token,
                    id,
                    codes::UNKNOWN_SID,
                    format!("unknown subscription id {sid}"),
                ),
            }
        }
    }

    fn update_subscription(
        &mut self,
        token: usize,
        id: Option<u64>,
        sid: u64,
        tickers: Vec<String>,
        action: UpdateAction,
    ) {
        let mut instruments = Vec::new();
        for t in &tickers {
            match self.view.market_index(t) {
                Some(m) => instruments.push(self.view.market(m).config.instrument),
                None => {
                    self.ws_error(
                        token,
                        id,
                        codes::MARKET_NOT_FOUND,
                        format!("market not found: {t:?}"),
                    );
                    return;
                }
            }
        }
        let Some(Conn::Ws(w)) = self.conns.get_mut(&token) else {
            return;
        };
        let account = w.account;
        let Some(sub) = w.subs.get_mut(&sid) else {
            self.ws_error(
                token,
                id,
                codes::UNKNOWN_SID,
                format!("unknown subscription id {sid}"),
            );
            return;
        };
        let channel = sub.channel;
        if channel.is_private() {
            self.ws_error(
                token,
                id,
                codes::UNSUPPORTED_ACTION,
                format!("channel {} has no markets to update", channel.name()),
            );
            return;
        }
        match action {
            UpdateAction::AddMarkets => {
                let added: Vec<u32> = instruments
                    .iter()
                    .copied()
                    .filter(|i| sub.markets.insert(*i))
                    .collect();
                for &i in &added {
                    self.market_subs
                        .entry((channel, i))
                        .or_default()
                        .insert((token, sid));
                }
                let _ = account;
                self.ws_reply(
                    token,
                    id,
                    json!({"type": "ok", "sid": sid, "msg": {"market_tickers": tickers}}),
                );
                self.initial_messages(token, sid, channel, &added);
            }
            UpdateAction::DeleteMarkets => {
                for i in &instruments {
                    if sub.markets.remove(i) {
                        if let Some(set) = self.market_subs.get_mut(&(channel, *i)) {
                            set.remove(&(token, sid));
                        }
                    }
                }
                self.ws_reply(
                    token,
                    id,
                    json!({"type": "ok", "sid": sid, "msg": {"market_tickers": tickers}}),
                );
            }
            UpdateAction::GetSnapshot => {
                if channel != Channel::OrderbookDelta {
                    self.ws_error(
                        token,
                        id,
                        codes::UNSUPPORTED_ACTION,
                        "get_snapshot applies to orderbook_delta subscriptions",
                    );
                    return;
                }
                let targets: Vec<u32> = if instruments.is_empty() {
                    sub.markets.iter().copied().collect()
                } else {
                    instruments.clone()
                };
                if let Some(missing) = targets.iter().find(|i| !sub.markets.contains(i)) {
                    self.ws_error(
                        token,
                        id,
                        codes::MARKET_NOT_FOUND,
                        format!("instrument {missing} is not in subscription {sid}"),
                    );
                    return;
                }
                self.ws_reply(
                    token,
                    id,
                    json!({"type": "ok", "sid": sid, "msg": {"action": "get_snapshot"}}),
                );
                for i in targets {
                    if let Some(m) = self.view.market_of_instrument(i) {
                        self.push_snapshot(token, sid, m);
                    }
                }
            }
        }
    }

    /// Refills conflated snapshots, then writes what the socket takes.
    fn pump(&mut self, token: usize) {
        match self.conns.get(&token) {
            Some(Conn::Http(_)) => self.write_http(token),
            Some(Conn::Ws(_)) => {
                self.refill_snapshots(token);
                self.write_ws(token);
                // Writing either blocked (the socket's next writable event
                // pumps again) or emptied the queue. Emptied, with a
                // snapshot still owed (the queue held more than the refill
                // mark of unconflatable messages), nothing else would ever
                // pump this connection if the market then goes quiet: an
                // edge-triggered socket that took everything reports no
                // further writability. Refill and write now.
                if self.refill_snapshots(token) {
                    self.write_ws(token);
                }
            }
            None => {}
        }
    }

    /// Queues the snapshots owed to conflated subscriptions once the queue
    /// is at or below half its limit; whether it queued any.
    fn refill_snapshots(&mut self, token: usize) -> bool {
        let low = self.config.limits.outbound_queue_messages / 2;
        let Some(Conn::Ws(w)) = self.conns.get_mut(&token) else {
            return false;
        };
        if !w.resync_pending || w.queue.len() > low {
            return false;
        }
        w.resync_pending = false;
        let mut todo = Vec::new();
        for (&sid, sub) in w.subs.iter_mut() {
            if sub.resync {
                sub.resync = false;
                // Deltas reach it again (see `conflate`).
                index(
                    &mut self.market_subs,
                    &mut self.account_subs,
                    token,
                    sid,
                    sub,
                    w.account,
                );
                todo.extend(sub.markets.iter().map(|&i| (sid, i)));
            }
        }
        for (sid, inst) in todo {
            if let Some(m) = self.view.market_of_instrument(inst) {
                self.push_snapshot(token, sid, m);
            }
        }
        true
    }

    fn write_ws(&mut self, token: usize) {
        let Some(Conn::Ws(w)) = self.conns.get_mut(&token) else {
            return;
        };
        let mut failed = false;
        'outer: loop {
            match w.ws.flush() {
                Ok(()) => w.blocked_since = None,
                Err(tungstenite::Error::Io(e)) if would_block(&e) => {
                    w.blocked_since.get_or_insert_with(Instant::now);
                    break;
                }
                Err(_) => {
                    failed = true;
                    break;
                }
            }
            if w.queue.is_empty() {
                break;
            }
            for _ in 0..256 {
                let Some(m) = w.queue.pop_front() else { break };
                if m.book {
                    if let Some(sub) = w.subs.get_mut(&m.sid) {
                        sub.sent_seq = m.seq;
                    }
                }
                self.stats.messages_sent.fetch_add(1, Ordering::Relaxed);
                match w.ws.write(Message::text(m.render())) {
                    Ok(()) => {}
                    // The frame is buffered inside tungstenite; wait for writable.
                    Err(tungstenite::Error::Io(e)) if would_block(&e) => {
                        w.blocked_since.get_or_insert_with(Instant::now);
                        break 'outer;
                    }
                    Err(_) => {
                        failed = true;
                        break 'outer;
                    }
                }
            }
        }
        if failed {
            self.to_close.push(token);
        }
    }

    /// Queues an order-book delta for one subscription, conflating when the
    /// connection's queue is full: the subscription's queued book messages
    /// are dropped and its `seq` rewinds to the last one handed to the
    /// socket, so the snapshot sent when the queue drains carries the next
    /// `seq` and the client never sees a gap. It also conflates (keeping
    /// what is queued) once this turn's `Limits::deltas_per_turn` are spent.
    fn push_delta(&mut self, token: usize, sid: u64, tail: &Arc<str>) {
        let limit = self.config.limits.outbound_queue_messages;
        let budget = self.config.limits.deltas_per_turn;
        let Some(Conn::Ws(w)) = self.conns.get_mut(&token) else {
            return;
        };
        let Some(sub) = w.subs.get_mut(&sid) else {
            return;
        };
        if sub.resync {
            return;
        }
        if w.queue.len() >= limit {
            sub.seq = sub.sent_seq;
            w.queue.retain(|m| !(m.book && m.sid == sid));
        } else if self.turn_deltas < budget {
            self.turn_deltas += 1;
            sub.seq += 1;
            let seq = sub.seq;
            w.queue.push_back(Outbound {
                text: Text::Book {
                    kind: BookKind::Delta,
                    tail: Arc::clone(tail),
                },
                sid,
                seq,
                book: true,
            });
            self.dirty.insert(token);
            return;
        }
        // Conflate. Over the queue limit the subscription's queued book
        // messages were dropped and `seq` rewound to the last one handed to
        // the socket; over the turn's budget the queued deltas stay (a
        // gap-free prefix). Either way the refill snapshot carries the next
        // `seq`. Until then the subscription is taken out of the delta
        // index, so that a gateway that is behind spends nothing per event
        // on the subscribers it has already conflated.
        sub.resync = true;
        w.resync_pending = true;
        unindex(
            &mut self.market_subs,
            &mut self.account_subs,
            token,
            sid,
            sub,
            w.account,
        );
        self.stats.conflations.fetch_add(1, Ordering::Relaxed);
        // Dropping may have taken the queue below the refill mark.
        self.dirty.insert(token);
    }

    // ------------------------------------------------------------ events

    fn drain_sink(&mut self) {
        self.turn_deltas = 0;
        // Read before draining: every event of the commands up to here is
        // already in the queue, so it is drained below.
        let complete = self.metrics.delivered_sequence();
        for _ in 0..EVENTS_PER_TURN {
            let Ok(event) = self.sink.receiver.try_recv() else {
                break;
            };
            self.on_event(&event);
        }
        // An order is answered with its state after its whole command (an
        // IOC's fills and the cancel of its remainder), not after the
        // first event of it that happened to be queued.
        let (ready, waiting): (Vec<Deferred>, Vec<Deferred>) = std::mem::take(&mut self.deferred)
            .into_iter()
            .partition(|d| d.sequence <= complete);
        self.deferred = waiting;
        for d in ready {
            let body = json!({"order": self.order_json(&d.order, d.status)});
            self.send_answer(d.reply, Ok((d.http_status, d.kind, body)));
        }
    }

    fn track_deferred(&mut self, order: &OrderInfo, status: &'static str) {
        for d in &mut self.deferred {
            if d.order.order_id == order.order_id {
                d.order = *order;
                d.status = status;
            }
        }
    }

    /// Applies an event of an earlier run (before the thread starts: no
    /// connection, subscription or pending reply exists yet).
    pub(super) fn apply_history(&mut self, event: &Event, command_timestamp: u64) {
        self.view.apply(event, command_timestamp);
    }

    fn on_event(&mut self, event: &Event) {
        if !self.snapshot_cache.is_empty() {
            self.snapshot_cache.clear();
        }
        // Only trades carry a time stamp: the clock is read for them alone.
        let now_ns = if event.event_kind() == Some(EventKind::Trade) {
            wall_clock_ns()
        } else {
            0
        };
        let effect = self.view.apply(event, now_ns);
        self.fan_out(&effect);
        if self.pending.contains_key(&event.sequence) {
            self.answer_pending(event, &effect);
        }
    }

    fn subscribers(
        map: &HashMap<(Channel, u32), BTreeSet<(usize, u64)>>,
        channel: Channel,
        key: u32,
    ) -> Vec<(usize, u64)> {
        map.get(&(channel, key))
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    fn fan_out(&mut self, effect: &Effect) {
        if !self.deferred.is_empty() {
            match effect {
                Effect::Order { order, status, .. } => self.track_deferred(order, status),
                Effect::Trade { maker, taker, .. } => {
                    for o in [maker, taker].into_iter().flatten() {
                        let status = if o.leaves == 0 { "executed" } else { "resting" };
                        self.track_deferred(o, status);
                    }
                }
                _ => {}
            }
        }
        match *effect {
            Effect::None => {}
            Effect::Book { market, change } => {
                let m = self.view.market(market);
                let inst = m.config.instrument;
                let subs = Self::subscribers(&self.market_subs, Channel::OrderbookDelta, inst);
                if !subs.is_empty() {
                    // Rendered once for every subscriber of the event.
                    let tail = book_tail(&m.delta_json(&change).to_string());
                    for (token, sid) in subs {
                        self.push_delta(token, sid, &tail);
                    }
                }
                self.ticker_dirty.insert(market);
            }
            Effect::Trade {
                market,
                trade,
                maker_account,
                taker_account,
                maker,
                taker,
            } => {
                let m = self.view.market(market);
                let inst = m.config.instrument;
                let subs = Self::subscribers(&self.market_subs, Channel::Trade, inst);
                if !subs.is_empty() {
                    let body = m.trade_json(&trade).to_string();
                    for (token, sid) in subs {
                        self.push_ws(
                            token,
                            format!(r#"{{"type":"trade","sid":{sid},"msg":{body}}}"#),
                        );
                    }
                }
                self.ticker_dirty.insert(market);
                for (account, order, is_taker) in
                    [(maker_account, maker, false), (taker_account, taker, true)]
                {
                    let subs = Self::subscribers(&self.account_subs, Channel::Fill, account);
                    let m = self.view.market(market);
                    let mut out = Vec::with_capacity(subs.len());
                    for (token, sid) in &subs {
                        let mut msg = json!({
                            "trade_id": trade.trade_id.to_string(),
                            "market_ticker": m.config.ticker,
                            "is_taker": is_taker,
                            "ts": trade.ts_ns / 1_000_000_000,
                        });
                        if m.is_binary() {
                            msg["yes_price"] = json!(trade.price);
                            msg["no_price"] = json!(100 - trade.price);
                            msg["count"] = json!(trade.quantity);
                        } else {
                            msg["price"] = json!(m.price_str(trade.price));
                            msg["quantity"] = json!(m.qty_str(i128::from(trade.quantity)));
                        }
                        if let Some(o) = &order {
                            let (action, _) = o.client_terms();
                            msg["order_id"] = json!(o.order_id.to_string());
                            msg["action"] = json!(if action == Side::Buy { "buy" } else { "sell" });
                            if m.is_binary() {
                                msg["side"] = json!(if o.outcome == Outcome::No {
                                    "no"
                                } else {
                                    "yes"
                                });
                            }
                        }
                        out.push((
                            *token,
                            json!({"type": "fill", "sid": sid, "msg": msg}).to_string(),
                        ));
                    }
                    for (token, text) in out {
                        self.push_ws(token, text);
                    }
                    if let Some(o) = order {
                        let status = if o.leaves == 0 { "executed" } else { "resting" };
                        self.order_update(&o, status, None);
                    }
                }
            }
            Effect::Status { market } => {
                let m = self.view.market(market);
                let subs = Self::subscribers(
                    &self.market_subs,
                    Channel::MarketLifecycle,
                    m.config.instrument,
                );
                let body = m.status_json().to_string();
                for (token, sid) in subs {
                    self.push_ws(
                        token,
                        format!(r#"{{"type":"market_lifecycle","sid":{sid},"msg":{body}}}"#),
                    );
                }
            }
            Effect::Order {
                order,
                status,
                reason,
            } => self.order_update(&order, status, reason),
            Effect::Balance { account, asset } => {
                let subs = Self::subscribers(&self.account_subs, Channel::Balances, account);
                if !subs.is_empty() {
                    let (a, r) = self.view.balance(account, asset);
                    for (token, sid) in subs {
                        self.push_ws(token, json!({"type": "balance", "sid": sid, "msg": {"asset": asset, "available": a, "reserved": r}}).to_string());
                    }
                }
            }
            Effect::Position {
                account,
                instrument,
            } => {
                let subs = Self::subscribers(&self.account_subs, Channel::MarketPositions, account);
                if !subs.is_empty() {
                    let p = self.view.position(account, instrument);
                    let ticker = self
                        .view
                        .market_of_instrument(instrument)
                        .map(|m| self.view.market(m).config.ticker.clone());
                    for (token, sid) in subs {
                        self.push_ws(token, json!({"type": "market_position", "sid": sid, "msg": {"market_ticker": ticker, "position": p}}).to_string());
                    }
                }
            }
        }
    }

    fn order_update(
        &mut self,
        order: &OrderInfo,
        status: &str,
        reason: Option<ringex_core::records::CancelReason>,
    ) {
        let subs = Self::subscribers(&self.account_subs, Channel::Orders, order.account);
        if subs.is_empty() {
            return;
        }
        let mut msg = self.order_json(order, status);
        if let Some(r) = reason {
            msg["cancel_reason"] = json!(cancel_reason_str(r));
        }
        for (token, sid) in subs {
            self.push_ws(
                token,
                json!({"type": "order_update", "sid": sid, "msg": msg}).to_string(),
            );
        }
    }

    fn publish_tickers(&mut self) {
        let dirty = std::mem::take(&mut self.ticker_dirty);
        for market in dirty {
            let m = self.view.market(market);
            let subs = Self::subscribers(&self.market_subs, Channel::Ticker, m.config.instrument);
            if subs.is_empty() {
                continue;
            }
            let body = m.ticker_json().to_string();
            for (token, sid) in subs {
                // Tickers are snapshots: under pressure, skip rather than queue.
                if let Some(Conn::Ws(w)) = self.conns.get(&token) {
                    if w.queue.len() >= self.config.limits.outbound_queue_messages {
                        continue;
                    }
                }
                self.push_ws(
                    token,
                    format!(r#"{{"type":"ticker","sid":{sid},"msg":{body}}}"#),
                );
            }
        }
    }

    /// Answers the request waiting on `event.sequence` if this event decides it.
    fn answer_pending(&mut self, event: &Event, effect: &Effect) {
        let Some(pending) = self.pending.get(&event.sequence) else {
            return;
        };
        let view = event.decode();
        let result: Option<Answer> = match (&pending.op, view) {
            (op, Some(EventView::Rejected { reason, .. })) => {
                if let PendingOp::AddMarket(t) = op {
                    let t = t.clone();
                    self.snapshot_cache.clear();
                    self.view.unlist_market(&t);
                }
                Some(Err((reject_status(reason), reason)))
            }
            (PendingOp::Create | PendingOp::Cancel | PendingOp::Amend, Some(v)) => {
                let decided = matches!(
                    (&pending.op, v),
                    (PendingOp::Create, EventView::OrderAccepted { .. })
                        | (PendingOp::Cancel, EventView::OrderCancelled { .. })
                        | (PendingOp::Amend, EventView::OrderReplaced { .. })
                );
                match effect {
                    Effect::Order { order, status, .. } if decided => {
                        let (kind, http_status) = match pending.op {
                            PendingOp::Create => ("order_created", 201),
                            PendingOp::Cancel => ("order_canceled", 200),
                            _ => ("order_amended", 200),
                        };
                        let pending = self.pending.remove(&event.sequence).expect("present");
                        self.deferred.push(Deferred {
                            sequence: event.sequence,
                            reply: pending.reply,
                            kind,
                            http_status,
                            order: *order,
                            status,
                        });
                        return;
                    }
                    _ => None,
                }
            }
            (PendingOp::MassCancel, Some(EventView::Ack { value, .. })) => Some(Ok((
                200,
                "orders_canceled",
                json!({"canceled_count": value}),
            ))),
            (PendingOp::KillSwitch, Some(EventView::Ack { value, .. })) => Some(Ok((
                200,
                "kill_switch",
                json!({"on": value == 1, "canceled_count": event.words[1]}),
            ))),
            (
                PendingOp::Deposit,
                Some(EventView::Ack {
                    account,
                    instrument,
                    value,
                    ..
                }),
            ) => Some(Ok((
                200,
                "deposited",
                json!({"account": account, "asset": instrument, "amount": value}),
            ))),
            (
                PendingOp::AddMarket(_) | PendingOp::Status,
                Some(EventView::InstrumentStatusChanged { instrument, .. }),
            )
            | (PendingOp::Settle, Some(EventView::MarketSettled { instrument, .. })) => {
                let m = self
                    .view
                    .market_of_instrument(instrument)
                    .map(|m| self.view.market(m).to_json());
                let status = if matches!(pending.op, PendingOp::AddMarket(_)) {
                    201
                } else {
                    200
                };
                Some(Ok((status, "market", json!({"market": m}))))
            }
            _ => None,
        };
        let Some(result) = result else { return };
        let pending = self.pending.remove(&event.sequence).expect("present");
        self.send_answer(pending.reply, result);
    }

    fn send_answer(&mut self, reply: ReplyTo, result: Answer) {
        match (reply, result) {
            (ReplyTo::Ws { conn, id }, Ok((_, kind, msg))) => {
                self.ws_reply(conn, id, json!({"type": kind, "msg": msg}))
            }
            (ReplyTo::Ws { conn, id }, Err((_, reason))) => {
                let e = json!({"type": "error", "msg": {
                    "code": codes::ORDER_REJECTED,
                    "msg": format!("rejected: {}", reason.text()),
                    "reject_code": reason as u16,
                    "reject_reason": format!("{reason:?}"),
                }});
                self.ws_reply(conn, id, e);
            }
            (ReplyTo::Http { conn }, result) => {
                let Some(Conn::Http(h)) = self.conns.get_mut(&conn) else {
                    return;
                };
                let keep_alive = h.awaiting.take().is_some_and(|(_, _, ka)| ka);
                let bytes = match result {
                    Ok((status, _, body)) => http::json_response(status, &body, keep_alive),
                    Err((status, reason)) => http::json_response(
                        status,
                        &json!({"error": {"code": format!("{reason:?}"), "message": reason.text(), "reject_code": reason as u16}}),
                        keep_alive,
                    ),
                };
                h.outbuf.extend(bytes);
                if !keep_alive {
                    h.close_after_write = true;
                }
                self.dirty.insert(conn);
            }
        }
    }

    // ------------------------------------------------------------ timers

    fn on_timer(&mut self) {
        let now = Instant::now();
        let l = &self.config.limits;
        let stuck = Duration::from_millis(l.stuck_timeout_ms);
        let ping = Duration::from_millis(l.ping_interval_ms);
        let idle = Duration::from_millis(l.idle_timeout_ms);
        let mut expired = Vec::new();
        for (&token, conn) in self.conns.iter_mut() {
            match conn {
                Conn::Ws(w) => {
                    if w.blocked_since.is_some_and(|t| now - t > stuck) {
                        self.stats.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                        self.to_close.push(token);
                    } else if now - w.last_seen > idle {
                        let _ = w.ws.close(Some(CloseFrame {
                            code: CloseCode::Away,
                            reason: "idle timeout".into(),
                        }));
                        let _ = w.ws.flush();
                        self.to_close.push(token);
                    } else if now - w.last_ping >= ping {
                        w.last_ping = now;
                        let _ = w.ws.write(Message::Ping(Vec::new().into()));
                        self.dirty.insert(token);
                    } else if w.resync_pending && w.blocked_since.is_none() {
                        // A safety net: a snapshot is owed and the socket
                        // is not waiting to become writable, so no socket
                        // event would pump it.
                        self.dirty.insert(token);
                    }
                }
                Conn::Http(h) => {
                    if h.draining_since.is_some_and(|t| now - t > DRAIN_TIMEOUT) {
                        self.to_close.push(token);
                    } else if let Some((seq, deadline, _)) = h.awaiting {
                        if now > deadline {
                            expired.push((token, seq));
                        }
                    } else if h.blocked_since.is_some_and(|t| now - t > stuck)
                        || (h.outbuf.is_empty() && now - h.last_seen > idle)
                    {
                        self.to_close.push(token);
                    }
                }
            }
        }
        for (token, seq) in expired {
            self.pending.remove(&seq);
            if let Some(Conn::Http(h)) = self.conns.get_mut(&token) {
                h.awaiting = None;
                h.outbuf.extend(http::error_response(
                    504,
                    "timeout",
                    "the exchange did not answer in time",
                    false,
                ));
                h.close_after_write = true;
                self.dirty.insert(token);
            }
        }
        // Pending WebSocket replies whose connection is gone are dropped.
        let conns = &self.conns;
        self.pending.retain(|_, p| match p.reply {
            ReplyTo::Ws { conn, .. } | ReplyTo::Http { conn } => conns.contains_key(&conn),
        });
    }

    // ------------------------------------------------------------ metrics

    fn metrics_text(&mut self) -> String {
        use std::fmt::Write as _;
        let s = self.metrics.snapshot();
        let rate = self
            .last_scrape
            .map_or(0.0, |prev| s.commands_per_sec_since(&prev));
        self.last_scrape = Some(s);
        let hist = self.metrics.latency();
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "ringex_commands_submitted_total",
            "counter",
            "Commands accepted into the input ring",
            s.submitted.to_string(),
        );
        metric(
            "ringex_commands_busy_total",
            "counter",
            "Submissions refused because the input ring was full",
            s.busy.to_string(),
        );
        metric(
            "ringex_commands_applied_total",
            "counter",
            "Commands applied by the engine",
            s.applied.to_string(),
        );
        metric(
            "ringex_commands_per_second",
            "gauge",
            "Commands applied per second since the previous scrape",
            format!("{rate:.1}"),
        );
        metric(
            "ringex_input_ring_occupancy",
            "gauge",
            "Commands in the input ring not yet applied",
            s.input_occupancy.to_string(),
        );
        metric(
            "ringex_journaled_sequence",
            "gauge",
            "Last journaled command sequence",
            s.journaled_sequence.to_string(),
        );
        metric(
            "ringex_durable_sequence",
            "gauge",
            "Last durable command sequence",
            s.durable_sequence.to_string(),
        );
        metric(
            "ringex_last_applied_sequence",
            "gauge",
            "Sequence of the last applied command",
            s.last_applied_sequence.to_string(),
        );
        metric(
            "ringex_journal_lag",
            "gauge",
            "Journaled but not yet applied commands",
            s.journaled_sequence
                .saturating_sub(s.last_applied_sequence)
                .to_string(),
        );
        metric(
            "ringex_events_total",
            "counter",
            "Events published",
            s.events.to_string(),
        );
        metric(
            "ringex_events_dropped_total",
            "counter",
            "Events dropped across sinks",
            s.dropped.to_string(),
        );
        metric(
            "ringex_output_journaled_sequence",
            "gauge",
            "Last event index in the output journal",
            s.output_journaled_sequence.to_string(),
        );
        let _ = writeln!(out, "# HELP ringex_pipeline_latency_ns Enqueue to publish latency\n# TYPE ringex_pipeline_latency_ns summary");
        for q in [0.5, 0.9, 0.99, 0.999] {
            let _ = writeln!(
                out,
                "ringex_pipeline_latency_ns{{quantile=\"{q}\"}} {}",
                hist.value_at_quantile(q)
            );
        }
        let _ = writeln!(out, "ringex_pipeline_latency_ns_count {}", hist.len());
        let g = &self.stats;
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        metric(
            "ringex_ws_connections",
            "gauge",
            "Open WebSocket connections",
            g.ws_connections.load(Ordering::Relaxed),
        );
        metric(
            "ringex_http_connections",
            "gauge",
            "Open HTTP connections",
            g.http_connections.load(Ordering::Relaxed),
        );
        metric(
            "ringex_ws_subscriptions",
            "gauge",
            "WebSocket subscriptions",
            g.subscriptions.load(Ordering::Relaxed),
        );
        metric(
            "ringex_ws_messages_sent_total",
            "counter",
            "WebSocket messages written",
            g.messages_sent.load(Ordering::Relaxed),
        );
        metric(
            "ringex_ws_conflations_total",
            "counter",
            "Order-book subscriptions conflated for a slow client",
            g.conflations.load(Ordering::Relaxed),
        );
        metric(
            "ringex_ws_slow_disconnects_total",
            "counter",
            "Connections closed as stuck or too slow",
            g.slow_disconnects.load(Ordering::Relaxed),
        );
        metric(
            "ringex_connections_refused_total",
            "counter",
            "Connections refused at the limit",
            g.refused.load(Ordering::Relaxed),
        );
        metric(
            "ringex_http_requests_total",
            "counter",
            "HTTP requests parsed",
            g.http_requests.load(Ordering::Relaxed),
        );
        metric(
            "ringex_http_malformed_total",
            "counter",
            "Malformed HTTP requests",
            g.http_errors.load(Ordering::Relaxed),
        );
        metric(
            "ringex_gateway_events_dropped_total",
            "counter",
            "Events the gateway's sink lost",
            self.sink.stats.dropped(),
        );
        metric(
            "ringex_fix_sessions",
            "gauge",
            "FIX sessions (reported by the FIX gateway)",
            g.fix_sessions.load(Ordering::Relaxed),
        );
        out
    }
}

fn parse_body<T: for<'de> Deserialize<'de>>(
    req: &Request,
) -> Result<T, (u16, &'static str, String)> {
    if req.body.is_empty() {
        return Err((
            400,
            "missing_body",
            "this endpoint needs a JSON body".into(),
        ));
    }
    if let Some(ct) = req.header("content-type") {
        if !ct.to_ascii_lowercase().starts_with("application/json") {
            return Err((
                415,
                "unsupported_media_type",
                format!("Content-Type must be application/json, not {ct:?}"),
            ));
        }
    }
    serde_json::from_slice(&req.body)
        .map_err(|e| (400, "invalid_json", format!("invalid JSON body: {e}")))
}

fn reject_status(reason: RejectReason) -> u16 {
    match reason {
        RejectReason::UnknownOrder => 404,
        RejectReason::DuplicateClientOrderId
        | RejectReason::TooLate
        | RejectReason::InstrumentExists
        | RejectReason::AccountExists
        | RejectReason::InvalidStatusTransition
        | RejectReason::InstrumentHalted
        | RejectReason::InstrumentClosed
        | RejectReason::KillSwitchActive => 409,
        RejectReason::OrderCapacityExhausted | RejectReason::CapacityExhausted => 503,
        _ => 400,
    }
}

fn index(
    market_subs: &mut HashMap<(Channel, u32), BTreeSet<(usize, u64)>>,
    account_subs: &mut HashMap<(Channel, u32), BTreeSet<(usize, u64)>>,
    token: usize,
    sid: u64,
    sub: &Subscription,
    account: Option<u32>,
) {
    if sub.channel.is_private() {
        if let Some(a) = account {
            account_subs
                .entry((sub.channel, a))
                .or_default()
                .insert((token, sid));
        }
    } else {
        for &i in &sub.markets {
            market_subs
                .entry((sub.channel, i))
                .or_default()
                .insert((token, sid));
        }
    }
}

fn unindex(
    market_subs: &mut HashMap<(Channel, u32), BTreeSet<(usize, u64)>>,
    account_subs: &mut HashMap<(Channel, u32), BTreeSet<(usize, u64)>>,
    token: usize,
    sid: u64,
    sub: &Subscription,
    account: Option<u32>,
) {
    if sub.channel.is_private() {
        if let Some(a) = account {
            if let Some(set) = account_subs.get_mut(&(sub.channel, a)) {
                set.remove(&(token, sid));
            }
        }
    } else {
        for &i in &sub.markets {
            if let Some(set) = market_subs.get_mut(&(sub.channel, i)) {
                set.remove(&(token, sid));
            }
        }
    }
}

/// Sets `SO_SNDBUF` on an accepted socket (best effort).
fn set_send_buffer(stream: &TcpStream, bytes: usize) {
    use std::os::fd::AsRawFd;
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: the fd is a valid open socket owned by `stream` for the whole
    // call; the option value points to a live c_int of the size passed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(kind: BookKind, sid: u64, seq: u64, body: &str) -> String {
        Outbound {
            text: Text::Book {
                kind,
                tail: book_tail(body),
            },
            sid,
            seq,
            book: true,
        }
        .render()
    }

    #[test]
    fn shared_tails_render_the_messages_clients_see() {
        let body = r#"{"market_ticker":"X","price":4,"delta":-3,"side":"yes"}"#;
        for (sid, seq) in [(0, 0), (1, 9), (7, 10), (42, 1234567), (u64::MAX, u64::MAX)] {
            assert_eq!(
                book(BookKind::Delta, sid, seq, body),
                format!(r#"{{"type":"orderbook_delta","sid":{sid},"seq":{seq},"msg":{body}}}"#)
            );
            assert_eq!(
                book(BookKind::Snapshot, sid, seq, body),
                format!(r#"{{"type":"orderbook_snapshot","sid":{sid},"seq":{seq},"msg":{body}}}"#)
            );
        }
        let owned = Outbound {
            text: Text::Owned("as is".into()),
            sid: 0,
            seq: 0,
            book: false,
        };
        assert_eq!(owned.render(), "as is");
    }
}
