//! Shared helpers: starting a gateway with the echo fixture, a raw FIX
//! client, and message building.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ringex_gateways::fix::frame::checksum;
use ringex_gateways::fix::time::{format_timestamp_seconds, now_millis};
use ringex_gateways::fix::{
    Dictionaries, EchoApplication, FixServer, FixServerConfig, FixServerHandle, SessionConfig,
};

/// The sessions the acceptance definitions assume (README "The engine
/// configuration the definitions assume").
pub fn acceptance_sessions() -> Vec<SessionConfig> {
    let mut sessions = Vec::new();
    for (begin, target) in [
        ("FIX.4.4", "TW44"),
        ("FIX.4.4", "TW"),
        ("FIXT.1.1", "TW50SP2"),
    ] {
        let mut s = SessionConfig::new(begin, "ISLD", target);
        s.reset_on_logon = true;
        sessions.push(s);
    }
    sessions
}

/// Starts a gateway with the echo fixture on an ephemeral loopback port.
pub fn start_echo_gateway(
    sessions: Vec<SessionConfig>,
    store_dir: Option<PathBuf>,
) -> FixServerHandle {
    let config = FixServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        store_dir,
        max_frame_bytes: 16 * 1024,
        order_capacity: 1024,
        sessions,
    };
    FixServer::spawn(config, Dictionaries::shared(), EchoApplication::new())
        .expect("gateway starts")
}

/// `<TIME>` shifted by `offset` seconds, as the definitions write it.
pub fn time_text(offset_secs: i64) -> String {
    format_timestamp_seconds(now_millis() + offset_secs * 1000)
}

/// Completes `fields` (`|`-separated, no 9 and 10) into a frame.
pub fn frame(fields: &str) -> Vec<u8> {
    let fields = fields.replace('|', "\x01");
    let (begin, rest) = fields.split_once('\x01').expect("8= first");
    let mut out = format!("{begin}\x019={}\x01{rest}", rest.len()).into_bytes();
    let sum = checksum(&out);
    out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    out
}

/// A raw FIX client.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

/// What the client read.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Message(Vec<u8>),
    Closed,
    Timeout,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        // A write to a connection the gateway closed may fail; the
        // following read reports it.
        let _ = self.stream.write_all(bytes);
    }

    /// Bytes received and not yet returned as a message.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    fn cut(&mut self) -> Option<Vec<u8>> {
        let start = self.buf.windows(2).position(|w| w == b"8=")?;
        let nine = start + self.buf[start..].windows(3).position(|w| w == b"\x019=")?;
        let len_end = nine + 3 + self.buf[nine + 3..].iter().position(|&b| b == 1)?;
        let len: usize = std::str::from_utf8(&self.buf[nine + 3..len_end])
            .ok()?
            .parse()
            .ok()?;
        let body_end = len_end + 1 + len;
        if self.buf.len() < body_end + 4 {
            return None;
        }
        let end = body_end + self.buf[body_end..].iter().position(|&b| b == 1)? + 1;
        let msg = self.buf[start..end].to_vec();
        self.buf.drain(..end);
        Some(msg)
    }

    /// The next message, EOF, or a timeout.
    pub fn receive(&mut self, timeout: Duration) -> Received {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.cut() {
                return Received::Message(m);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Received::Timeout;
            }
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0u8; 8192];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Received::Closed,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Received::Timeout
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Received::Closed,
            }
        }
    }

    /// The next message's `tag=value` fields, `|`-joined (panics otherwise).
    pub fn expect_message(&mut self, timeout: Duration) -> String {
        match self.receive(timeout) {
            Received::Message(m) => String::from_utf8_lossy(&m).replace('\x01', "|"),
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

/// The value of `tag` in a `|`-joined message.
pub fn field<'a>(msg: &'a str, tag: &str) -> Option<&'a str> {
    msg.split('|')
        .find_map(|f| f.strip_prefix(tag).and_then(|r| r.strip_prefix('=')))
}
