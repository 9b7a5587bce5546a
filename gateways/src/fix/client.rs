//! A FIX initiator over blocking `std::net` TCP: what a trading client of
//! the exchange needs, and what the demo market maker, the demo traders,
//! `ringex-perf maker` and the end-to-end tests trade through.
//!
//! The session layer: Logon (FIX.4.4, or FIXT.1.1 with DefaultApplVerID),
//! optionally with ResetSeqNumFlag; MsgSeqNum on every message, kept in
//! [`SeqNums`] across reconnects when the session is not reset; Heartbeats
//! when idle and answers to TestRequests; a TestRequest when the
//! counterparty goes quiet and a disconnect when it stays quiet; a
//! ResendRequest for a gap in inbound sequence numbers (messages after the
//! gap are dropped until the resend fills it); a ResendRequest from the
//! counterparty answered with one SequenceReset-GapFill (the client keeps
//! no store: its orders are not replayed, the application resynchronises
//! after a reconnect); Logout both ways. Application messages and
//! session-level Rejects are handed to the caller by [`FixClient::recv`].
//!
//! Messages are built with [`OutMessage`] and decoded with the acceptor's
//! frame cutter and parser against the same dictionaries.
//!
//! Thread: a [`FixClient`] is owned by one thread, which blocks in
//! [`FixClient::recv`] (socket read timeouts, no spinning) and sends from
//! the same thread.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dictionary::Dictionaries;
use super::frame::{Cut, FrameCutter, DEFAULT_MAX_FRAME};
use super::message::{Message, OutMessage};
use super::time::{format_timestamp_millis, now_millis};

/// How long [`FixClient::logon`] waits for the Logon reply, and
/// [`FixClient::logout`] for the Logout reply.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom to log on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The acceptor's address.
    pub addr: SocketAddr,
    /// `FIX.4.4` or `FIXT.1.1`.
    pub begin_string: String,
    /// Our CompID (the acceptor's session `target_comp_id`).
    pub sender_comp_id: String,
    /// The acceptor's CompID.
    pub target_comp_id: String,
    /// Password (554) sent with the Logon.
    pub password: Option<String>,
    /// HeartBtInt (108) asked for in the Logon.
    pub heartbeat_secs: u32,
    /// Send ResetSeqNumFlag (141=Y): both sides start at 1 on every Logon.
    pub reset_on_logon: bool,
    /// DefaultApplVerID (1137) of a FIXT.1.1 Logon (`9`: FIX 5.0 SP2).
    pub default_appl_ver_id: String,
}

impl ClientConfig {
    /// A FIX.4.4 session with a 30 s heartbeat, reset on every Logon.
    pub fn new(addr: SocketAddr, sender_comp_id: &str, target_comp_id: &str) -> Self {
        Self {
            addr,
            begin_string: "FIX.4.4".into(),
            sender_comp_id: sender_comp_id.into(),
            target_comp_id: target_comp_id.into(),
            password: None,
            heartbeat_secs: 30,
            reset_on_logon: true,
            default_appl_ver_id: "9".into(),
        }
    }
}

/// Why the session ended or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, reading or writing failed, or the peer closed the socket.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// The acceptor answered the Logon with a Logout.
    #[error("logon refused: {0}")]
    LogonRefused(String),
    /// The acceptor logged out.
    #[error("logged out by the acceptor: {0}")]
    LoggedOut(String),
    /// The acceptor broke the session protocol (or went quiet).
    #[error("session protocol: {0}")]
    Protocol(String),
}

/// The next sequence numbers of both directions. Kept by the caller across
/// reconnects of a session that is not reset on Logon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqNums {
    /// MsgSeqNum of our next message.
    pub next_out: u64,
    /// MsgSeqNum expected of the acceptor's next message.
    pub next_in: u64,
}

impl Default for SeqNums {
    fn default() -> Self {
        Self {
            next_out: 1,
            next_in: 1,
        }
    }
}

/// A logged-on FIX session. See the module docs.
pub struct FixClient {
    config: ClientConfig,
    dictionaries: Arc<Dictionaries>,
    stream: TcpStream,
    cutter: FrameCutter,
    seq: SeqNums,
    heartbeat: Duration,
    last_sent: Instant,
    last_received: Instant,
    test_request_sent: bool,
    /// A ResendRequest is outstanding: out-of-order messages are dropped.
    resend_requested: bool,
    logging_out: bool,
    inbox: VecDeque<Message>,
    read_buf: Vec<u8>,
}

impl std::fmt::Debug for FixClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixClient")
            .field("config", &self.config)
            .field("seq", &self.seq)
            .finish()
    }
}

impl FixClient {
    /// Connects and logs on, starting from `seq` (ignored when the config
    /// resets sequence numbers). Returns once the acceptor's Logon arrived.
    pub fn logon(config: ClientConfig, seq: SeqNums) -> Result<FixClient, ClientError> {
        let dictionaries = Dictionaries::shared();
        if dictionaries.protocol(&config.begin_string).is_none() {
            return Err(ClientError::Protocol(format!(
                "unsupported BeginString {:?}",
                config.begin_string
            )));
        }
        let stream = TcpStream::connect_timeout(&config.addr, HANDSHAKE_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
        let seq = if config.reset_on_logon {
            SeqNums::default()
        } else {
            seq
        };
        let now = Instant::now();
        let mut client = FixClient {
            heartbeat: Duration::from_secs(u64::from(config.heartbeat_secs.max(1))),
            config,
            dictionaries,
            stream,
            cutter: FrameCutter::new(DEFAULT_MAX_FRAME),
            seq,
            last_sent: now,
            last_received: now,
            test_request_sent: false,
            resend_requested: false,
            logging_out: false,
            inbox: VecDeque::new(),
            read_buf: vec![0; 16 * 1024],
        };
        let mut logon = OutMessage::new("A");
        logon
            .set(98, "0")
            .set(108, client.config.heartbeat_secs.to_string());
        if client.config.reset_on_logon {
            logon.set(141, "Y");
        }
        if let Some(password) = &client.config.password {
            logon.set(554, password.clone());
        }
        if client.config.begin_string == "FIXT.1.1" {
            logon.set(1137, client.config.default_appl_ver_id.clone());
        }
        client.send(&logon)?;
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let Some(frame) = client.read_frame(deadline)? else {
            return Err(ClientError::Protocol(format!(
                "no Logon reply within {HANDSHAKE_TIMEOUT:?}"
            )));
        };
        match frame.msg_type() {
            b"A" => {
                client.check_sequence(&frame)?;
                Ok(client)
            }
            b"5" => {
                let _ = client.stream.shutdown(Shutdown::Both);
                Err(ClientError::LogonRefused(text_of(&frame)))
            }
            // Anything else before the Logon reply breaks the protocol.
            other => {
                let _ = client.stream.shutdown(Shutdown::Both);
                Err(ClientError::Protocol(format!(
                    "expected Logon, got MsgType {}",
                    String::from_utf8_lossy(other)
                )))
            }
        }
    }

    /// The session's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The sequence numbers now (to reconnect without a reset).
    pub fn seq_nums(&self) -> SeqNums {
        self.seq
    }

    /// Sends an application (or session) message with the next MsgSeqNum;
    /// returns that number.
    pub fn send(&mut self, message: &OutMessage) -> Result<u64, ClientError> {
        let seq = self.seq.next_out;
        self.write(message, seq)?;
        self.seq.next_out += 1;
        Ok(seq)
    }

    fn write(&mut self, message: &OutMessage, seq: u64) -> Result<(), ClientError> {
        let mut out = Vec::with_capacity(256);
        message.encode(
            &self.config.begin_string,
            seq,
            &self.config.sender_comp_id,
            &self.config.target_comp_id,
            now_millis(),
            &mut out,
        );
        self.stream.write_all(&out)?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The next application message (or session-level Reject) within
    /// `timeout`, `None` if none came. Answers TestRequests and
    /// ResendRequests, sends Heartbeats, and fails when the connection
    /// drops, the acceptor logs out or stays silent past two heartbeats.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Message>, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(message) = self.inbox.pop_front() {
                return Ok(Some(message));
            }
            self.keep_alive()?;
            let wake = deadline.min(self.next_timer());
            match self.read_frame(wake)? {
                Some(frame) => {
                    if let Some(app) = self.process(frame)? {
                        return Ok(Some(app));
                    }
                }
                None if Instant::now() >= deadline => return Ok(None),
                None => {}
            }
        }
    }

    /// Sends a Logout, waits (at most [`HANDSHAKE_TIMEOUT`]) for the
    /// acceptor's, and closes the connection. Returns the sequence numbers
    /// to log on with next time (without a reset).
    pub fn logout(mut self, text: &str) -> Result<SeqNums, ClientError> {
        let mut logout = OutMessage::new("5");
        if !text.is_empty() {
            logout.set(58, text);
        }
        self.send(&logout)?;
        self.logging_out = true;
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let result = loop {
            match self.read_frame(deadline) {
                Ok(Some(frame)) => match self.process(frame) {
                    Err(ClientError::LoggedOut(_)) => break Ok(self.seq),
                    Err(e) => break Err(e),
                    Ok(_) => {}
                },
                Ok(None) => break Err(ClientError::Protocol("no Logout reply".into())),
                Err(e) => break Err(e),
            }
        };
        let _ = self.stream.shutdown(Shutdown::Both);
        result
    }

    /// When the next heartbeat or TestRequest check is due.
    fn next_timer(&self) -> Instant {
        (self.last_sent + self.heartbeat).min(self.last_received + self.heartbeat)
    }

    /// Heartbeat when we have been quiet; TestRequest when the acceptor
    /// has; give up when it stays quiet after the TestRequest.
    fn keep_alive(&mut self) -> Result<(), ClientError> {
        let now = Instant::now();
        let silent = now.saturating_duration_since(self.last_received);
        if silent >= self.heartbeat * 2 + Duration::from_secs(1) && self.test_request_sent {
            return Err(ClientError::Protocol(format!(
                "no message from the acceptor for {silent:?}"
            )));
        }
        if silent >= self.heartbeat + self.heartbeat / 5 && !self.test_request_sent {
            let mut test = OutMessage::new("1");
            test.set(112, format!("TEST-{}", now_millis()));
            self.send(&test)?;
            self.test_request_sent = true;
        }
        if now.saturating_duration_since(self.last_sent) >= self.heartbeat {
            self.send(&OutMessage::new("0"))?;
        }
        Ok(())
    }

    /// Reads until a frame is cut or `deadline` passes (`None`). Garbled
    /// frames are dropped, as an acceptor drops them.
    fn read_frame(&mut self, deadline: Instant) -> Result<Option<Message>, ClientError> {
        loop {
            loop {
                match self.cutter.next_frame() {
                    Cut::Frame(raw) => {
                        let protocol = self
                            .dictionaries
                            .protocol(&self.config.begin_string)
                            .expect("checked at logon");
                        if let Ok(message) = Message::parse(raw, protocol) {
                            self.last_received = Instant::now();
                            self.test_request_sent = false;
                            return Ok(Some(message));
                        }
                    }
                    Cut::Dropped(_) => {}
                    Cut::NeedMore => break,
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let wait = (deadline - now).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(wait))?;
            match self.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    return Err(ClientError::Io(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the acceptor closed the connection",
                    )))
                }
                Ok(n) => self.cutter.extend(&self.read_buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Checks MsgSeqNum: `Ok(true)` to process the message, `Ok(false)` to
    /// drop it (a duplicate, or a message after a gap being resent).
    fn check_sequence(&mut self, message: &Message) -> Result<bool, ClientError> {
        let Some(seq) = message.header_uint(34) else {
            return Err(ClientError::Protocol("a message without MsgSeqNum".into()));
        };
        let expected = self.seq.next_in;
        if seq == expected {
            self.seq.next_in += 1;
            if !message.header_flag(43) {
                self.resend_requested = false;
            }
            return Ok(true);
        }
        if seq < expected {
            if message.header_flag(43) {
                return Ok(false);
            }
            let text = format!("MsgSeqNum too low, expecting {expected} but received {seq}");
            let mut logout = OutMessage::new("5");
            logout.set(58, &text);
            let _ = self.send(&logout);
            let _ = self.stream.shutdown(Shutdown::Both);
            return Err(ClientError::Protocol(text));
        }
        // A gap: ask for everything from the first missing message once.
        if !self.resend_requested {
            let mut resend = OutMessage::new("2");
            resend.set(7, expected.to_string()).set(16, "0");
            self.send(&resend)?;
            self.resend_requested = true;
        }
        // A Logon or Logout is acted on even after a gap (the resend of
        // what came before them follows).
        if matches!(message.msg_type(), b"A" | b"5") {
            self.seq.next_in = seq + 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// Handles one inbound message: session messages here, the rest
    /// returned for the caller.
    fn process(&mut self, message: Message) -> Result<Option<Message>, ClientError> {
        // A SequenceReset moves the expected number whatever its own says.
        if message.msg_type() == b"4" {
            let new = message.body_uint(36).unwrap_or(0);
            let gap_fill = message.body_value(123) == Some(b"Y");
            if gap_fill
                && message
                    .header_uint(34)
                    .is_some_and(|s| s < self.seq.next_in)
            {
                return Ok(None);
            }
            if new > self.seq.next_in {
                self.seq.next_in = new;
                self.resend_requested = false;
            }
            return Ok(None);
        }
        if !self.check_sequence(&message)? {
            return Ok(None);
        }
        match message.msg_type() {
            b"0" | b"A" => Ok(None),
            b"1" => {
                let mut heartbeat = OutMessage::new("0");
                heartbeat.set(112, message.body_value(112).unwrap_or_default());
                self.send(&heartbeat)?;
                Ok(None)
            }
            b"2" => {
                self.gap_fill(&message)?;
                Ok(None)
            }
            b"5" => {
                if !self.logging_out {
                    let _ = self.send(&OutMessage::new("5"));
                }
                let _ = self.stream.shutdown(Shutdown::Both);
                Err(ClientError::LoggedOut(text_of(&message)))
            }
            _ => Ok(Some(message)),
        }
    }

    /// Answers a ResendRequest with one SequenceReset-GapFill from its
    /// BeginSeqNo to our next number: this client keeps no message store.
    fn gap_fill(&mut self, request: &Message) -> Result<(), ClientError> {
        let begin = request.body_uint(7).unwrap_or(1).max(1);
        if begin >= self.seq.next_out {
            return Ok(());
        }
        let mut reset = OutMessage::new("4");
        reset
            .set(123, "Y")
            .set(36, self.seq.next_out.to_string())
            .set_header(43, "Y")
            .set_header(122, format_timestamp_millis(now_millis()));
        self.write(&reset, begin)
    }
}

impl Drop for FixClient {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// Text (58) of a message, or an empty string.
fn text_of(message: &Message) -> String {
    message.str_value(58).unwrap_or_default().to_string()
}

/// Reconnect delays: doubling from `min` up to `max`, back to `min` after
/// a session that got as far as a Logon.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `min` doubling to `max`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The delay before the next attempt (and doubles the one after).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the shortest delay.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(700));
        let delays: Vec<u64> = (0..5).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, vec![100, 200, 400, 700, 700]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    /// A scripted acceptor: reads the client's frames, answers with `reply`.
    fn scripted(reply: impl FnOnce(&mut TcpStream, Vec<Message>) + Send + 'static) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let logon = read_one(&mut stream);
            reply(&mut stream, vec![logon]);
        });
        addr
    }

    fn read_one(stream: &mut TcpStream) -> Message {
        let mut cutter = FrameCutter::new(DEFAULT_MAX_FRAME);
        let mut buf = [0u8; 4096];
        loop {
            if let Cut::Frame(raw) = cutter.next_frame() {
                return Message::parse(raw, &Dictionaries::shared().fix44).unwrap();
            }
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "the client closed");
            cutter.extend(&buf[..n]);
        }
    }

    fn send_as_acceptor(stream: &mut TcpStream, message: &OutMessage, seq: u64) {
        let mut out = Vec::new();
        message.encode("FIX.4.4", seq, "ACC", "CLI", now_millis(), &mut out);
        stream.write_all(&out).unwrap();
    }

    #[test]
    fn logon_carries_reset_password_and_heartbeat_and_a_refusal_is_an_error() {
        let addr = scripted(|stream, got| {
            let logon = &got[0];
            assert_eq!(logon.msg_type(), b"A");
            assert_eq!(logon.header_uint(34), Some(1));
            assert_eq!(logon.str_value(49), Some("CLI"));
            assert_eq!(logon.str_value(56), Some("ACC"));
            assert_eq!(logon.str_value(141), Some("Y"));
            assert_eq!(logon.str_value(554), Some("pw"));
            assert_eq!(logon.str_value(108), Some("7"));
            let mut logout = OutMessage::new("5");
            logout.set(58, "bad password");
            send_as_acceptor(stream, &logout, 1);
        });
        let mut config = ClientConfig::new(addr, "CLI", "ACC");
        config.password = Some("pw".into());
        config.heartbeat_secs = 7;
        let err = FixClient::logon(config, SeqNums::default()).unwrap_err();
        assert!(
            matches!(&err, ClientError::LogonRefused(t) if t == "bad password"),
            "{err}"
        );
    }

    #[test]
    fn test_requests_resend_requests_and_gaps_are_answered() {
        let addr = scripted(|stream, _| {
            let mut logon = OutMessage::new("A");
            logon.set(98, "0").set(108, "30");
            send_as_acceptor(stream, &logon, 1);
            let mut test = OutMessage::new("1");
            test.set(112, "PING");
            send_as_acceptor(stream, &test, 2);
            let heartbeat = read_one(stream);
            assert_eq!(heartbeat.msg_type(), b"0");
            assert_eq!(heartbeat.str_value(112), Some("PING"));
            // Ask the client to resend from 1: it gap-fills to its next number.
            let mut resend = OutMessage::new("2");
            resend.set(7, "1").set(16, "0");
            send_as_acceptor(stream, &resend, 3);
            let fill = read_one(stream);
            assert_eq!(fill.msg_type(), b"4");
            assert_eq!(fill.header_uint(34), Some(1));
            assert_eq!(fill.str_value(123), Some("Y"));
            assert_eq!(fill.body_uint(36), Some(3));
            assert!(fill.header_flag(43) && fill.header_value(122).is_some());
            // Skip 4: the client asks for it, drops 5, takes the gap fill.
            let mut app = OutMessage::new("8");
            app.set(11, "late");
            send_as_acceptor(stream, &app, 5);
            let ask = read_one(stream);
            assert_eq!(ask.msg_type(), b"2");
            assert_eq!((ask.body_uint(7), ask.body_uint(16)), (Some(4), Some(0)));
            let mut reset = OutMessage::new("4");
            reset.set(123, "Y").set(36, "5").set_header(43, "Y");
            reset.set_header(122, format_timestamp_millis(now_millis()));
            send_as_acceptor(stream, &reset, 4);
            app.set(11, "resent");
            app.set_header(43, "Y");
            app.set_header(122, format_timestamp_millis(now_millis()));
            send_as_acceptor(stream, &app, 5);
            let logout = read_one(stream);
            assert_eq!(logout.msg_type(), b"5");
            send_as_acceptor(stream, &OutMessage::new("5"), 6);
        });
        let mut client =
            FixClient::logon(ClientConfig::new(addr, "CLI", "ACC"), SeqNums::default()).unwrap();
        let app = client.recv(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(app.str_value(11), Some("resent"));
        assert_eq!(client.seq_nums().next_in, 6);
        client.logout("bye").unwrap();
    }

    #[test]
    fn a_dropped_connection_and_a_too_low_sequence_number_end_the_session() {
        let addr = scripted(|stream, _| {
            let mut logon = OutMessage::new("A");
            logon.set(98, "0").set(108, "30");
            send_as_acceptor(stream, &logon, 1);
            send_as_acceptor(stream, &OutMessage::new("0"), 1);
            let logout = read_one(stream);
            assert!(logout.str_value(58).unwrap().contains("too low"));
        });
        let mut client =
            FixClient::logon(ClientConfig::new(addr, "CLI", "ACC"), SeqNums::default()).unwrap();
        let err = client.recv(Duration::from_secs(10)).unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)), "{err}");

        let addr = scripted(|stream, _| {
            let mut logon = OutMessage::new("A");
            logon.set(98, "0").set(108, "30");
            send_as_acceptor(stream, &logon, 1);
        });
        let mut client =
            FixClient::logon(ClientConfig::new(addr, "CLI", "ACC"), SeqNums::default()).unwrap();
        let err = client.recv(Duration::from_secs(10)).unwrap_err();
        assert!(matches!(err, ClientError::Io(_)), "{err}");
    }

    #[test]
    fn against_the_acceptor_a_session_without_reset_continues_its_numbers() {
        use crate::fix::{EchoApplication, FixServer, FixServerConfig, SessionConfig};
        let mut session = SessionConfig::new("FIX.4.4", "ACC", "CLI");
        session.password = Some("pw".into());
        let server = FixServer::spawn(
            FixServerConfig {
                listen: "127.0.0.1:0".parse().unwrap(),
                store_dir: None,
                max_frame_bytes: DEFAULT_MAX_FRAME,
                order_capacity: 1024,
                sessions: vec![session],
            },
            Dictionaries::shared(),
            EchoApplication::new(),
        )
        .unwrap();
        let mut config = ClientConfig::new(server.local_addr(), "CLI", "ACC");
        config.reset_on_logon = false;
        config.password = Some("pw".into());
        let client = FixClient::logon(config.clone(), SeqNums::default()).unwrap();
        assert_eq!(
            client.seq_nums(),
            SeqNums {
                next_out: 2,
                next_in: 2
            }
        );
        let seq = client.logout("").unwrap();
        assert_eq!(
            seq,
            SeqNums {
                next_out: 3,
                next_in: 3
            }
        );
        // The acceptor kept its numbers too: the next Logon continues them.
        let client = FixClient::logon(config.clone(), seq).unwrap();
        assert_eq!(
            client.seq_nums(),
            SeqNums {
                next_out: 4,
                next_in: 4
            }
        );
        let seq = client.logout("").unwrap();
        // Starting over at 1 without a reset is refused, and so is a wrong password.
        let err = FixClient::logon(config.clone(), SeqNums::default()).unwrap_err();
        assert!(
            matches!(&err, ClientError::LogonRefused(t) if t.contains("too low")),
            "{err}"
        );
        config.password = Some("nope".into());
        let err = FixClient::logon(config.clone(), seq).unwrap_err();
        assert!(matches!(err, ClientError::LogonRefused(_)), "{err}");
        // With ResetSeqNumFlag both sides start at 1 again.
        config.password = Some("pw".into());
        config.reset_on_logon = true;
        let client = FixClient::logon(config, seq).unwrap();
        assert_eq!(
            client.seq_nums(),
            SeqNums {
                next_out: 2,
                next_in: 2
            }
        );
        client.logout("").unwrap();
        server.stop().unwrap();
    }

    #[test]
    fn without_reset_the_sequence_numbers_continue() {
        let addr = scripted(|stream, got| {
            assert_eq!(got[0].header_uint(34), Some(17));
            assert_eq!(got[0].body_value(141), None);
            let mut logon = OutMessage::new("A");
            logon.set(98, "0").set(108, "30");
            send_as_acceptor(stream, &logon, 9);
        });
        let mut config = ClientConfig::new(addr, "CLI", "ACC");
        config.reset_on_logon = false;
        let seq = SeqNums {
            next_out: 17,
            next_in: 9,
        };
        let client = FixClient::logon(config, seq).unwrap();
        assert_eq!(
            client.seq_nums(),
            SeqNums {
                next_out: 18,
                next_in: 10
            }
        );
    }
}
