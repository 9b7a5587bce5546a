//! The acceptor: one `mio` event loop serving every configured session.
//!
//! A new connection is bound to a session by its first frame (BeginString,
//! and SenderCompID/TargetCompID reversed); a frame that names no
//! configured session, or a session that already has a connection, closes
//! the connection without a reply, as QuickFIX does. Sockets are
//! non-blocking with TCP_NODELAY. Output is buffered per connection and
//! flushed when the socket is writable. A connection that sends no valid
//! first frame within [`UNBOUND_TIMEOUT_MS`] is closed. Sessions are ticked
//! every [`TICK_MS`] for heartbeats and timeouts. An application that
//! [`polls`](Application::polls) (the exchange, whose ExecutionReports come
//! from the engine on a queue `mio` cannot wait on) is given the loop's
//! `mio` waker as a doorbell ([`Application::set_wakeup`]): the exchange
//! has its engine sink ring it, so the loop blocks in `epoll_wait` until
//! input, a tick or an event, and wakes within microseconds of an
//! ExecutionReport. After a turn with input or output it first polls
//! without blocking, yielding the CPU between turns, for [`APP_LINGER`]:
//! the ExecutionReports of the orders it just submitted are usually back
//! within that time, and are then taken without a wake-up of this thread.
//! A polling application without a doorbell keeps the
//! loop polling without blocking for [`BUSY_POLL`] after each turn with
//! input or output, and blocking at most [`APP_POLL_TIMEOUT`] otherwise.
//!
//! Thread: the loop runs on the thread that calls [`FixServer::run`]
//! ([`FixServer::spawn`] starts one); it owns every session, connection and
//! the application. [`FixServerHandle::stop`] wakes it from another thread.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use serde::Deserialize;

use super::app::Application;
use super::dictionary::Dictionaries;
use super::frame::{Cut, FrameCutter, DEFAULT_MAX_FRAME};
use super::message::{Message, OutMessage};
use super::session::{Io, Session, SessionConfig, SessionError};
use super::store::MessageStore;
use super::time::{now_millis, Millis};

/// How often sessions are ticked.
pub const TICK_MS: i64 = 100;
/// How long a connection may stay without a session.
pub const UNBOUND_TIMEOUT_MS: i64 = 10_000;
/// Bytes read from one connection before the loop turns to the others
/// (the connection is read again on the next turn).
pub const READ_BUDGET: usize = 256 * 1024;
/// Unsent output above which a connection whose peer does not read is
/// closed.
pub const MAX_PENDING_OUTPUT: usize = 16 * 1024 * 1024;
/// How long the loop keeps polling without blocking after a turn that
/// took input or delivered application messages, when the application
/// [`polls`](Application::polls). Its replies (ExecutionReports from the
/// engine) arrive on a queue `mio` cannot wait on, typically tens of
/// microseconds after the order went in; blocking in `poll` would hold
/// them until the next input or timeout.
pub const BUSY_POLL: Duration = Duration::from_micros(1000);
/// How long the loop of an application with a doorbell keeps polling
/// without blocking (yielding between turns) after a turn with input or
/// output, before it arms the doorbell and blocks. Blocking straight away
/// made every order's ExecutionReport wait for a wake-up of this thread
/// (tens of µs on a VM). With the pipeline's stages fused on one thread,
/// 200 µs took the FIX round trip's p50 on the 2-vCPU VM from 128–144 to
/// 93–100 µs at 1,000 orders/s and its p99 at 50,000/s from 1.1–1.9 ms to
/// 0.6–0.8 ms (`docs/performance.md` §12). Yielding gives way to any other
/// runnable thread; an idle gateway costs nothing.
pub const APP_LINGER: Duration = Duration::from_micros(200);
/// The blocking poll timeout while the application polls: bounds how long
/// an application message with no input behind it (a fill caused by
/// another gateway's order) waits.
pub const APP_POLL_TIMEOUT: Duration = Duration::from_millis(1);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

fn default_max_frame() -> usize {
    DEFAULT_MAX_FRAME
}

/// Orders the `ringex` server sizes the FIX order tables for when `[fix]`
/// does not say (`order_capacity`): 262,144 orders, a 21 MB ClOrdID table
/// (touched as orders arrive).
pub const DEFAULT_ORDER_CAPACITY: usize = 1 << 18;

fn default_order_capacity() -> usize {
    DEFAULT_ORDER_CAPACITY
}

/// The FIX gateway's configuration (the `fix` section of the server's
/// config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where sessions keep sequence numbers and sent messages; none keeps
    /// them in memory only.
    #[serde(default)]
    pub store_dir: Option<PathBuf>,
    /// Largest accepted frame in bytes.
    #[serde(default = "default_max_frame")]
    pub max_frame_bytes: usize,
    /// Orders the exchange application's ClOrdID table is sized for at
    /// start ([`crate::fix::ExchangeApplication::with_order_capacity`]):
    /// below this count it never rehashes while trading.
    #[serde(default = "default_order_capacity")]
    pub order_capacity: usize,
    /// The sessions.
    pub sessions: Vec<SessionConfig>,
}

/// Why the server cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Socket or store I/O.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// A session is misconfigured.
    #[error("session: {0}")]
    Session(#[from] SessionError),
    /// Two sessions have the same identity.
    #[error("session {0} is configured twice")]
    Duplicate(String),
}

struct Conn {
    stream: TcpStream,
    cutter: FrameCutter,
    out: Vec<u8>,
    session: Option<usize>,
    closing: bool,
    accepted_at: Millis,
}

/// The acceptor and everything it serves.
pub struct FixServer<A: Application> {
    poll: Poll,
    listener: TcpListener,
    waker: Arc<Waker>,
    stop: Arc<AtomicBool>,
    conns: Vec<Option<Conn>>,
    sessions: Vec<Session>,
    session_conn: Vec<Option<usize>>,
    lookup: HashMap<(String, String, String), usize>,
    by_name: HashMap<String, usize>,
    app: A,
    max_frame: usize,
    /// Connections with input left to read (their read budget ran out).
    ready: Vec<usize>,
    /// Application messages being routed (kept to reuse its allocation).
    outgoing: Vec<(usize, OutMessage)>,
    /// Input was processed or application messages delivered during this
    /// loop turn (see [`BUSY_POLL`], [`APP_LINGER`]).
    active: bool,
    /// The application rings the loop's waker when it has messages.
    app_wakes: bool,
}

impl<A: Application> FixServer<A> {
    /// Binds the listener and opens every session's store.
    pub fn bind(
        config: FixServerConfig,
        dictionaries: Arc<Dictionaries>,
        app: A,
    ) -> Result<Self, ServerError> {
        let poll = Poll::new()?;
        let mut listener = TcpListener::bind(config.listen)?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let mut app = app;
        let app_wakes = app.polls() && {
            let waker = Arc::clone(&waker);
            app.set_wakeup(Box::new(move || {
                // A failed wake leaves the loop to its tick timeout.
                let _ = waker.wake();
            }))
        };
        let mut sessions = Vec::new();
        let mut lookup = HashMap::new();
        let mut by_name = HashMap::new();
        for sc in config.sessions {
            let key = (
                sc.begin_string.clone(),
                sc.sender_comp_id.clone(),
                sc.target_comp_id.clone(),
            );
            if lookup.contains_key(&key) {
                return Err(ServerError::Duplicate(sc.session_name()));
            }
            let store = match &config.store_dir {
                Some(dir) => MessageStore::open(dir, &sc.session_name())?,
                None => MessageStore::in_memory(),
            };
            by_name.insert(sc.session_name(), sessions.len());
            lookup.insert(key, sessions.len());
            sessions.push(Session::new(sc, dictionaries.clone(), store)?);
        }
        let n = sessions.len();
        Ok(Self {
            poll,
            listener,
            waker,
            stop: Arc::new(AtomicBool::new(false)),
            conns: Vec::new(),
            sessions,
            session_conn: vec![None; n],
            lookup,
            by_name,
            app,
            max_frame: config.max_frame_bytes,
            ready: Vec::new(),
            outgoing: Vec::new(),
            active: false,
            app_wakes,
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The sessions, in configuration order.
    pub fn sessions(&self) -> &[Session] {
        &self.sessions
    }

    /// Runs the loop until [`FixServerHandle::stop`] (or a poll error).
    pub fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut last_tick = now_millis();
        let polls = self.app.polls();
        let mut busy_until = std::time::Instant::now();
        while !self.stop.load(Ordering::Acquire) {
            let timeout = if !polls {
                Duration::from_millis(TICK_MS as u64 / 2)
            } else if self.app_wakes {
                // Block only when the application has armed its doorbell
                // with nothing waiting, and not within APP_LINGER of a
                // busy turn: replies to what it just submitted are due.
                if self.active {
                    busy_until = std::time::Instant::now() + APP_LINGER;
                    Duration::ZERO
                } else if std::time::Instant::now() < busy_until {
                    std::thread::yield_now();
                    Duration::ZERO
                } else if self.app.ready_to_sleep() {
                    Duration::from_millis(TICK_MS as u64 / 2)
                } else {
                    Duration::ZERO
                }
            } else if self.active || std::time::Instant::now() < busy_until {
                if self.active {
                    busy_until = std::time::Instant::now() + BUSY_POLL;
                } else {
                    // Nothing this turn: let other threads of a busy
                    // machine run before polling again.
                    std::thread::yield_now();
                }
                Duration::ZERO
            } else {
                APP_POLL_TIMEOUT
            };
            self.active = false;
            match self.poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept()?,
                    WAKER => {}
                    Token(t) => {
                        let ci = t - FIRST_CONN;
                        if event.is_readable() || event.is_read_closed() {
                            self.read(ci);
                        }
                        if event.is_writable() {
                            self.flush(ci);
                        }
                    }
                }
            }
            for ci in std::mem::take(&mut self.ready) {
                self.read(ci);
            }
            if self.app.polls() {
                self.deliver_app_messages();
            }
            let now = now_millis();
            if now - last_tick >= TICK_MS {
                last_tick = now;
                self.tick(now);
            }
            // Every session's store is written once per turn: also those
            // whose turn produced no output (an inbound message moves the
            // expected sequence number) and those without a connection
            // (what the application sends them is stored for a resend).
            // A session that cannot write asks to be disconnected.
            for session in &mut self.sessions {
                let _ = session.flush_store();
            }
            for ci in 0..self.conns.len() {
                if self.conns[ci]
                    .as_ref()
                    .is_some_and(|c| !c.out.is_empty() || c.closing)
                {
                    self.flush(ci);
                }
            }
        }
        Ok(())
    }

    /// Routes what the application produced on its own to the sessions.
    fn deliver_app_messages(&mut self) {
        // Resolved to session indexes while the application produces them:
        // no copy of the session name per message.
        let mut outgoing = std::mem::take(&mut self.outgoing);
        let by_name = &self.by_name;
        self.app.poll(&mut |name, msg| {
            if let Some(&si) = by_name.get(name) {
                outgoing.push((si, msg));
            }
        });
        if outgoing.is_empty() {
            self.outgoing = outgoing;
            return;
        }
        self.active = true;
        let now = now_millis();
        let mut scratch = Vec::new();
        for (si, msg) in outgoing.drain(..) {
            let conn = self.session_conn[si].and_then(|ci| self.conns[ci].as_mut());
            let out = match conn {
                Some(c) => &mut c.out,
                // Not connected: stored for a resend, not written.
                None => &mut scratch,
            };
            let mut io = Io {
                now,
                out,
                app: &mut self.app,
            };
            self.sessions[si].send_app(msg, &mut io);
            scratch.clear();
        }
        self.outgoing = outgoing;
    }

    fn accept(&mut self) -> io::Result<()> {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let ci = match self.conns.iter().position(Option::is_none) {
                        Some(i) => i,
                        None => {
                            self.conns.push(None);
                            self.conns.len() - 1
                        }
                    };
                    self.poll.registry().register(
                        &mut stream,
                        Token(ci + FIRST_CONN),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    self.conns[ci] = Some(Conn {
                        stream,
                        cutter: FrameCutter::new(self.max_frame),
                        out: Vec::new(),
                        session: None,
                        closing: false,
                        accepted_at: now_millis(),
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                // A connection that failed during accept affects only itself.
                Err(_) => return Ok(()),
            }
        }
    }

    fn read(&mut self, ci: usize) {
        let mut buf = [0u8; 16 * 1024];
        let mut eof = false;
        let mut budget = READ_BUDGET;
        loop {
            if budget == 0 {
                // Fairness: come back to this connection on the next turn.
                if !self.ready.contains(&ci) {
                    self.ready.push(ci);
                }
                break;
            }
            let Some(conn) = self.conns.get_mut(ci).and_then(Option::as_mut) else {
                return;
            };
            if conn.closing {
                // Input after we decided to close is discarded.
                match conn.stream.read(&mut buf) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(n) => {
                        budget = budget.saturating_sub(n);
                        continue;
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        eof = true;
                        break;
                    }
                }
            }
            match conn.stream.read(&mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    conn.cutter.extend(&buf[..n]);
                    self.process_frames(ci);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        if eof {
            self.close(ci);
        }
    }

    fn process_frames(&mut self, ci: usize) {
        let now = now_millis();
        loop {
            let (frame, bound) = {
                let Some(conn) = self.conns.get_mut(ci).and_then(Option::as_mut) else {
                    return;
                };
                if conn.closing {
                    return;
                }
                match conn.cutter.next_frame() {
                    Cut::NeedMore => return,
                    Cut::Dropped(_) => {
                        if conn.session.is_none() {
                            conn.closing = true;
                        }
                        continue;
                    }
                    Cut::Frame(f) => (f, conn.session),
                }
            };
            self.active = true;
            let si = match bound {
                Some(si) => si,
                None => match self.bind_session(&frame) {
                    Some(si) if self.session_conn[si].is_none() => {
                        self.session_conn[si] = Some(ci);
                        if let Some(conn) = self.conns[ci].as_mut() {
                            conn.session = Some(si);
                        }
                        si
                    }
                    _ => {
                        // Unknown session, or one already connected.
                        if let Some(conn) = self.conns[ci].as_mut() {
                            conn.closing = true;
                        }
                        return;
                    }
                },
            };
            let Some(conn) = self.conns[ci].as_mut() else {
                return;
            };
            let session = &mut self.sessions[si];
            let mut io = Io {
                now,
                out: &mut conn.out,
                app: &mut self.app,
            };
            session.on_frame(frame, &mut io);
            if session.wants_disconnect() {
                conn.closing = true;
                return;
            }
        }
    }

    fn bind_session(&self, frame: &[u8]) -> Option<usize> {
        let msg = Message::parse_loose(frame.to_vec()).ok()?;
        let begin = std::str::from_utf8(msg.begin_string()).ok()?;
        let their = msg.str_value(49)?;
        let ours = msg.str_value(56)?;
        self.lookup
            .get(&(begin.to_string(), ours.to_string(), their.to_string()))
            .copied()
    }

    fn tick(&mut self, now: Millis) {
        for ci in 0..self.conns.len() {
            let Some(conn) = self.conns[ci].as_mut() else {
                continue;
            };
            if conn.closing {
                continue;
            }
            match conn.session {
                None => {
                    if now - conn.accepted_at > UNBOUND_TIMEOUT_MS {
                        conn.closing = true;
                    }
                }
                Some(si) => {
                    let session = &mut self.sessions[si];
                    let mut io = Io {
                        now,
                        out: &mut conn.out,
                        app: &mut self.app,
                    };
                    session.on_tick(&mut io);
                    if session.wants_disconnect() {
                        conn.closing = true;
                    }
                }
            }
        }
    }

    fn flush(&mut self, ci: usize) {
        let Some(conn) = self.conns.get_mut(ci).and_then(Option::as_mut) else {
            return;
        };
        // Stored before sent: the session's records and sequence numbers
        // of this turn reach its files before its bytes reach the socket.
        if let Some(si) = conn.session {
            if self.sessions[si].flush_store().is_err() {
                conn.out.clear();
                self.close(ci);
                return;
            }
        }
        while !conn.out.is_empty() {
            match conn.stream.write(&conn.out) {
                Ok(0) => {
                    self.close(ci);
                    return;
                }
                Ok(n) => {
                    conn.out.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.close(ci);
                    return;
                }
            }
        }
        if conn.closing {
            self.close(ci);
        }
    }

    fn close(&mut self, ci: usize) {
        let Some(mut conn) = self.conns.get_mut(ci).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
        if let Some(si) = conn.session {
            self.sessions[si].on_disconnect(&mut self.app);
            self.session_conn[si] = None;
        }
    }
}

/// A server running on its own thread.
#[derive(Debug)]
pub struct FixServerHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl FixServerHandle {
    /// The listening address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the loop and waits for the thread.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| io::Error::other("FIX server thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for FixServerHandle {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

impl<A: Application + Send + 'static> FixServer<A> {
    /// Binds, then runs the loop on a new thread.
    pub fn spawn(
        config: FixServerConfig,
        dictionaries: Arc<Dictionaries>,
        app: A,
    ) -> Result<FixServerHandle, ServerError> {
        let mut server = Self::bind(config, dictionaries, app)?;
        let addr = server.local_addr()?;
        let stop = server.stop.clone();
        let waker = server.waker.clone();
        let thread = std::thread::Builder::new()
            .name("ringex-fix".to_string())
            .spawn(move || server.run())?;
        Ok(FixServerHandle {
            addr,
            stop,
            waker,
            thread: Some(thread),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_config_deserializes_and_binds() {
        let json = r#"{
            "listen": "127.0.0.1:0",
            "max_frame_bytes": 4096,
            "sessions": [
                {"begin_string": "FIX.4.4", "sender_comp_id": "RINGEX", "target_comp_id": "CLIENT1",
                 "accounts": ["1001", "1002"], "password": "secret", "heartbeat_secs": 30,
                 "reset_on_logon": false, "cancel_on_disconnect": true},
                {"begin_string": "FIXT.1.1", "sender_comp_id": "RINGEX", "target_comp_id": "CLIENT2",
                 "default_appl_ver_id": "9"}
            ]
        }"#;
        let config: FixServerConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.sessions[0].accounts, vec!["1001", "1002"]);
        assert!(config.sessions[0].cancel_on_disconnect);
        assert_eq!(config.sessions[1].max_latency_secs, 120);
        let server = FixServer::bind(
            config,
            Dictionaries::shared(),
            super::super::EchoApplication::new(),
        )
        .unwrap();
        assert_eq!(server.sessions().len(), 2);
        assert!(server.local_addr().unwrap().ip().is_loopback());
    }

    #[test]
    fn bad_configs_are_refused_with_a_reason() {
        let unknown_key = r#"{"listen": "127.0.0.1:0", "sessions": [], "bogus": 1}"#;
        assert!(serde_json::from_str::<FixServerConfig>(unknown_key).is_err());
        let config = FixServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            store_dir: None,
            max_frame_bytes: 4096,
            order_capacity: 1024,
            sessions: vec![SessionConfig::new("FIX.4.2", "A", "B")],
        };
        let err = FixServer::bind(
            config,
            Dictionaries::shared(),
            super::super::EchoApplication::new(),
        )
        .err()
        .unwrap();
        assert!(err.to_string().contains("FIX.4.2"), "{err}");
        let twice = FixServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            store_dir: None,
            max_frame_bytes: 4096,
            order_capacity: 1024,
            sessions: vec![
                SessionConfig::new("FIX.4.4", "A", "B"),
                SessionConfig::new("FIX.4.4", "A", "B"),
            ],
        };
        let err = FixServer::bind(
            twice,
            Dictionaries::shared(),
            super::super::EchoApplication::new(),
        )
        .err()
        .unwrap();
        assert!(matches!(err, ServerError::Duplicate(_)), "{err}");
    }
}
