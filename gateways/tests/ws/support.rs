//! A pipeline with the gateway on 127.0.0.1, two markets and three
//! accounts, plus small HTTP and WebSocket clients over real sockets.

use ringex_core::pipeline::{CommandSender, Pipeline, PipelineConfig};
use ringex_core::records::Command;
use ringex_core::EngineConfig;
use ringex_gateways::ws::{AccountConfig, GatewayConfig, MarketConfig, WsGateway};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

/// How long a test client's blocking read waits for the next message.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

pub const BINARY: &str = "FED-25DEC-T4.00";
pub const SPOT: &str = "BTC-USD";
pub const ADMIN_KEY: &str = "admin-secret";

pub fn key(account: u32) -> String {
    format!("key-{account}")
}

pub struct Exchange {
    pub gateway: Option<WsGateway>,
    pub pipeline: Option<Pipeline>,
    pub sender: Option<CommandSender>,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

pub fn config() -> GatewayConfig {
    let mut c = GatewayConfig::new("127.0.0.1:0".parse().unwrap());
    c.markets = vec![
        MarketConfig::binary(BINARY, 1),
        MarketConfig::spot(SPOT, 2, (2, 3), (5_000, 60_000), (0, 1)),
    ];
    c.accounts = (1..=3)
        .map(|a| AccountConfig {
            api_key: key(a),
            account: a,
        })
        .collect();
    c.admin_key = Some(ADMIN_KEY.into());
    c
}

impl Exchange {
    pub fn start() -> Exchange {
        Exchange::start_with(config())
    }

    /// Starts the pipeline and the gateway, creates the configured markets
    /// and accounts 1..=3 with 1,000,000,000 of assets 0 and 1 each, and waits
    /// until the gateway has seen them.
    pub fn start_with(config: GatewayConfig) -> Exchange {
        let dir = tempfile::tempdir().unwrap();
        let pc = PipelineConfig::two_core_default(dir.path())
            .with_engine(EngineConfig::small())
            .with_timer(None);
        let pipeline = Pipeline::start(pc).unwrap();
        let markets = config.markets.clone();
        let gateway = WsGateway::start(config, &pipeline).unwrap();
        let addr = gateway.local_addr();
        let mut sender = pipeline.sender();
        for m in &markets {
            submit(&mut sender, m.add_instrument_command());
        }
        for a in 1..=3 {
            submit(&mut sender, Command::add_account(a));
            submit(&mut sender, Command::deposit(a, 0, 1_000_000_000));
            submit(&mut sender, Command::deposit(a, 1, 1_000_000_000));
        }
        let ex = Exchange {
            gateway: Some(gateway),
            pipeline: Some(pipeline),
            sender: Some(sender),
            addr,
            _dir: dir,
        };
        for m in &markets {
            ex.wait_for(|| {
                let (_, body) = ex.get(&format!("/api/v1/markets/{}", m.ticker));
                body["market"]["status"] == "open"
            });
        }
        ex.wait_for(|| {
            ex.get_auth("/api/v1/portfolio/balance", 3).1["balances"]
                .as_array()
                .is_some_and(|b| b.len() == 2)
        });
        ex
    }

    pub fn sender(&mut self) -> &mut CommandSender {
        self.sender.as_mut().unwrap()
    }

    pub fn wait_for(&self, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "condition not met within 10 s");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let (s, _, b) = request(self.addr, "GET", path, &[], None);
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    pub fn get_auth(&self, path: &str, account: u32) -> (u16, Value) {
        let k = key(account);
        let (s, _, b) = request(self.addr, "GET", path, &[("X-Api-Key", &k)], None);
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> (u16, Value) {
        let body = body.map(|b| b.to_string());
        let mut h = headers.to_vec();
        if body.is_some() {
            h.push(("Content-Type", "application/json"));
        }
        let (s, _, b) = request(
            self.addr,
            method,
            path,
            &h,
            body.as_deref().map(str::as_bytes),
        );
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    }

    pub fn ws(&self, account: Option<u32>) -> Ws {
        let url = match account {
            Some(a) => format!("ws://{}/ws?api_key={}", self.addr, key(a)),
            None => format!("ws://{}/ws", self.addr),
        };
        let (ws, _) = tungstenite::connect(url).unwrap();
        if let MaybeTlsStream::Plain(s) = ws.get_ref() {
            s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        }
        Ws {
            ws,
            next_id: 1,
            backlog: Default::default(),
        }
    }

    /// Stops the gateway and the pipeline; returns the engine.
    pub fn stop(mut self) -> ringex_core::Engine {
        drop(self.gateway.take());
        drop(self.sender.take());
        let report = self.pipeline.take().unwrap().shutdown();
        assert!(report.health.is_ok(), "{:?}", report.health);
        report.engine.unwrap()
    }
}

pub fn submit(sender: &mut CommandSender, cmd: Command) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match sender.try_submit(cmd) {
            Ok(seq) => return seq,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
            Err(e) => panic!("submit: {e}"),
        }
    }
}

/// One HTTP/1.1 request with `Connection: close`; (status, head, body).
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> (u16, String, Vec<u8>) {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (n, v) in headers {
        raw.push_str(&format!("{n}: {v}\r\n"));
    }
    if let Some(b) = body {
        raw.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    parse_response(&raw_exchange(addr, &bytes))
}

/// Sends bytes, reads until the server closes.
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    // A client that has said everything (a cut-off request reads as one).
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

pub fn parse_response(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let text_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..text_end]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, raw[text_end + 4..].to_vec())
}

pub struct Ws {
    pub ws: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
    /// Messages read past while waiting for another (kept in order).
    backlog: std::collections::VecDeque<Value>,
}

impl Ws {
    pub fn send(&mut self, cmd: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let msg = serde_json::json!({"id": id, "cmd": cmd, "params": params});
        self.ws.send(Message::text(msg.to_string())).unwrap();
        id
    }

    pub fn recv(&mut self) -> Value {
        if let Some(v) = self.backlog.pop_front() {
            return v;
        }
        self.read_socket()
    }

    /// The next message, or `None` if the socket's read timeout passes
    /// first.
    pub fn try_recv(&mut self) -> Option<Value> {
        if let Some(v) = self.backlog.pop_front() {
            return Some(v);
        }
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
                Ok(Message::Close(c)) => panic!("closed: {c:?}"),
                Ok(_) => {}
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The next message, or `None` if none arrives within `wait` (the
    /// socket's usual read timeout is restored afterwards).
    pub fn try_recv_within(&mut self, wait: Duration) -> Option<Value> {
        self.set_read_timeout(wait);
        let msg = self.try_recv();
        self.set_read_timeout(READ_TIMEOUT);
        msg
    }

    fn set_read_timeout(&mut self, wait: Duration) {
        if let MaybeTlsStream::Plain(s) = self.ws.get_ref() {
            s.set_read_timeout(Some(wait)).unwrap();
        }
    }

    fn read_socket(&mut self) -> Value {
        loop {
            match self.ws.read().expect("a message within the timeout") {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Close(c) => panic!("closed: {c:?}"),
                _ => {}
            }
        }
    }

    /// Reads until a message satisfies `pred` and returns it, dropping the
    /// messages before it.
    pub fn recv_until(&mut self, pred: impl FnMut(&Value) -> bool) -> Value {
        self.find(pred, true)
    }

    fn find(&mut self, mut pred: impl FnMut(&Value) -> bool, drop_others: bool) -> Value {
        if let Some(i) = self.backlog.iter().position(&mut pred) {
            let v = self.backlog.remove(i).unwrap();
            if drop_others {
                self.backlog.drain(..i);
            }
            return v;
        }
        if drop_others {
            self.backlog.clear();
        }
        loop {
            let v = self.read_socket();
            if pred(&v) {
                return v;
            }
            if !drop_others {
                self.backlog.push_back(v);
            }
        }
    }

    /// Sends a command and returns the reply with its id; other messages
    /// read meanwhile stay queued.
    pub fn call(&mut self, cmd: &str, params: Value) -> Value {
        let id = self.send(cmd, params);
        self.find(|v| v["id"] == id, false)
    }
}

/// Keeps at most `live` orders of account 1 on the YES bid side of market
/// 1: places order `n` (client id `n`, price `1 + n % 45`, quantity 1) and
/// cancels order `n - live`. Every call changes the book twice.
pub fn churn(sender: &mut CommandSender, n: u64, live: u64) {
    let mut spec = ringex_core::records::OrderSpec::limit(
        1,
        1,
        n,
        ringex_core::records::Side::Buy,
        1 + (n % 45) as i64,
        1,
    );
    spec.outcome = ringex_core::records::Outcome::Yes;
    submit(sender, Command::new_order(spec));
    if n > live {
        submit(sender, Command::cancel_by_client_id(1, n - live));
    }
}

/// A GTC limit order command.
pub fn limit(
    account: u32,
    instrument: u32,
    side: ringex_core::records::Side,
    outcome: ringex_core::records::Outcome,
    price: i64,
    qty: u64,
) -> Command {
    let mut spec = ringex_core::records::OrderSpec::limit(account, instrument, 0, side, price, qty);
    spec.outcome = outcome;
    Command::new_order(spec)
}

/// A client-side order book kept from `orderbook_snapshot` and
/// `orderbook_delta` messages of one binary market, checking `seq`.
#[derive(Debug, Default, Clone)]
pub struct LocalBook {
    /// YES bids: price → quantity.
    pub yes: std::collections::BTreeMap<i64, i64>,
    /// NO bids: price → quantity.
    pub no: std::collections::BTreeMap<i64, i64>,
    pub last_seq: Option<u64>,
    pub snapshots: u64,
    pub deltas: u64,
}

impl LocalBook {
    /// Applies one message; an error names a broken rule.
    pub fn apply(&mut self, msg: &Value) -> Result<(), String> {
        let seq = msg["seq"].as_u64().ok_or("no seq")?;
        let expected = self.last_seq.map_or(1, |s| s + 1);
        match msg["type"].as_str() {
            Some("orderbook_snapshot") => {
                if seq < expected {
                    return Err(format!(
                        "snapshot seq {seq} went back (expected {expected})"
                    ));
                }
                self.yes.clear();
                self.no.clear();
                for (side, map) in [("yes", &mut self.yes), ("no", &mut self.no)] {
                    for level in msg["msg"][side].as_array().ok_or("levels")? {
                        map.insert(level[0].as_i64().unwrap(), level[1].as_i64().unwrap());
                    }
                }
                self.snapshots += 1;
            }
            Some("orderbook_delta") => {
                if seq != expected {
                    return Err(format!(
                        "delta seq {seq} after {:?}: a gap without a snapshot",
                        self.last_seq
                    ));
                }
                let m = &msg["msg"];
                let map = if m["side"] == "yes" {
                    &mut self.yes
                } else {
                    &mut self.no
                };
                let price = m["price"].as_i64().unwrap();
                let q = map.entry(price).or_insert(0);
                *q += m["delta"].as_i64().unwrap();
                if *q < 0 {
                    return Err(format!("level {price} went negative"));
                }
                if *q == 0 {
                    map.remove(&price);
                }
                self.deltas += 1;
            }
            other => return Err(format!("not a book message: {other:?}")),
        }
        self.last_seq = Some(seq);
        Ok(())
    }

    /// The book as the REST endpoint shows it (`yes`/`no` arrays).
    pub fn as_rest(&self) -> (Value, Value) {
        let arr = |m: &std::collections::BTreeMap<i64, i64>| {
            Value::Array(m.iter().map(|(p, q)| serde_json::json!([p, q])).collect())
        };
        (arr(&self.yes), arr(&self.no))
    }
}

/// Shrinks a client socket's receive buffer so that a client that stops
/// reading backs the server up quickly.
pub fn shrink_receive_buffer(ws: &Ws, bytes: i32) {
    use std::os::fd::AsRawFd;
    let MaybeTlsStream::Plain(s) = ws.ws.get_ref() else {
        panic!("plain TCP")
    };
    // SAFETY: a valid socket fd for the call; the value is a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0);
}
