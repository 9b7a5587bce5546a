//! End to end: the real `ringex` binary with its default configuration
//! (temporary working folder, free ports), a WebSocket market-data client
//! and FIX clients ([`FixClient`]) trading, then SIGTERM and a restart on
//! the same data that shows the same book, tape and FIX order state. And
//! the demo market maker over FIX surviving a dropped connection.

mod common;

use common::{get_json, wait_for, Ringex};
use ringex_gateways::fix::message::{Message, OutMessage};
use ringex_gateways::fix::time::{format_timestamp_millis, now_millis};
use ringex_gateways::fix::{ClientConfig, FixClient, SeqNums};
use ringex_gateways::server::demo::{client_config, run_session, Maker, Quoting, SessionStats};
use ringex_gateways::server::{Server, ServerConfig, ServerOptions};
use serde_json::{json, Value};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::WebSocket;

const TICKER: &str = "MARKET_MAKER";
const WAIT: Duration = Duration::from_secs(20);

/// A FIX client of one of the default configuration's sessions.
fn fix_logon(addr: SocketAddr, session: &str) -> FixClient {
    let mut config = ClientConfig::new(addr, session, "RINGEX");
    config.password = Some("demo".into());
    FixClient::logon(config, SeqNums::default()).unwrap()
}

/// Waits for an ExecutionReport for `cl_ord_id` with ExecType `exec_type`.
fn expect_report(client: &mut FixClient, cl_ord_id: &str, exec_type: &str) -> Message {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let Some(m) = client.recv(Duration::from_millis(200)).unwrap() else {
            continue;
        };
        if m.msg_type() == b"8"
            && m.str_value(11) == Some(cl_ord_id)
            && m.str_value(150) == Some(exec_type)
        {
            return m;
        }
        seen.push(String::from_utf8_lossy(m.raw()).replace('\x01', "|"));
    }
    panic!("no ExecutionReport 150={exec_type} for {cl_ord_id}; got {seen:#?}");
}

fn limit(cl_ord_id: &str, side: &str, quantity: u64, price: i64, tif: &str) -> OutMessage {
    let mut order = OutMessage::new("D");
    order
        .set(11, cl_ord_id)
        .set(38, quantity.to_string())
        .set(40, "2")
        .set(44, price.to_string())
        .set(54, side)
        .set(55, TICKER)
        .set(59, tif)
        .set(60, format_timestamp_millis(now_millis()));
    order
}

struct Ws {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    fn subscribe(addr: SocketAddr) -> Ws {
        let (socket, _) = tungstenite::connect(format!("ws://{addr}/ws")).unwrap();
        if let MaybeTlsStream::Plain(s) = socket.get_ref() {
            s.set_read_timeout(Some(WAIT)).unwrap();
        }
        let mut ws = Ws { socket };
        let subscribe = json!({"id": 1, "cmd": "subscribe", "params": {
            "channels": ["orderbook_delta", "trade"], "market_tickers": [TICKER]}});
        ws.socket
            .send(tungstenite::Message::text(subscribe.to_string()))
            .unwrap();
        ws
    }

    /// The next message of `msg_type`, skipping others.
    fn next(&mut self, msg_type: &str) -> Value {
        self.first_of(&[msg_type]).remove(0)
    }

    /// The first message of each of `types`, whatever order they come in.
    fn first_of(&mut self, types: &[&str]) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut found: Vec<Option<Value>> = vec![None; types.len()];
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if found.iter().all(Option::is_some) {
                return found.into_iter().flatten().collect();
            }
            let frame = self.socket.read().unwrap();
            let Ok(text) = frame.to_text() else { continue };
            let Ok(value) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            match types.iter().position(|t| value["type"] == *t) {
                Some(i) if found[i].is_none() => found[i] = Some(value),
                _ => seen.push(value),
            }
        }
        panic!("not all of {types:?}: found {found:?}, also got {seen:#?}");
    }
}

fn book(addr: SocketAddr) -> Value {
    get_json(
        addr,
        &format!("/api/v1/markets/{TICKER}/orderbook?depth=50"),
        None,
    )
}

fn tape(addr: SocketAddr) -> Vec<Value> {
    let trades = get_json(
        addr,
        &format!("/api/v1/markets/{TICKER}/trades?limit=100"),
        None,
    );
    trades["trades"].as_array().unwrap().clone()
}

#[test]
fn fix_orders_trade_show_on_the_websocket_and_survive_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let first = Ringex::start(work.path(), &["--no-demo"]);
    let fix_addr = first.fix_addr.expect("the FIX acceptor line");
    let mut ws = Ws::subscribe(first.addr);
    let snapshot = ws.next("orderbook_snapshot");
    assert_eq!(snapshot["msg"]["yes"], json!([]), "{snapshot}");

    // A resting bid of account 4 (DEMO-YOU) ...
    let mut resting = fix_logon(fix_addr, "DEMO-YOU");
    resting
        .send(&limit("e2e-rest-1", "1", 10, 40, "1"))
        .unwrap();
    let new = expect_report(&mut resting, "e2e-rest-1", "0");
    assert_eq!(new.str_value(39), Some("0"));
    let order_id = new.str_value(37).unwrap().to_string();
    let delta = ws.next("orderbook_delta");
    assert_eq!(
        (
            &delta["msg"]["price"],
            &delta["msg"]["delta"],
            &delta["msg"]["side"]
        ),
        (&json!(40), &json!(10), &json!("yes")),
        "{delta}"
    );

    // ... and a crossing IOC sell of account 2 (DEMO-TRADER-1).
    let mut taker = fix_logon(fix_addr, "DEMO-TRADER-1");
    taker.send(&limit("e2e-ioc-1", "2", 4, 40, "3")).unwrap();
    let taken = expect_report(&mut taker, "e2e-ioc-1", "F");
    assert_eq!(
        (
            taken.str_value(39),
            taken.str_value(14),
            taken.str_value(32)
        ),
        (Some("2"), Some("4"), Some("4"))
    );
    let fill = expect_report(&mut resting, "e2e-rest-1", "F");
    assert_eq!(
        (
            fill.str_value(39),
            fill.str_value(14),
            fill.str_value(151),
            fill.str_value(31)
        ),
        (Some("1"), Some("4"), Some("6"), Some("40"))
    );
    let [trade, delta] =
        <[Value; 2]>::try_from(ws.first_of(&["trade", "orderbook_delta"])).unwrap();
    assert_eq!(
        (
            &trade["msg"]["market_ticker"],
            &trade["msg"]["yes_price"],
            &trade["msg"]["count"],
            &trade["msg"]["taker_side"]
        ),
        (&json!(TICKER), &json!(40), &json!(4), &json!("no")),
        "{trade}"
    );
    assert_eq!(
        (&delta["msg"]["price"], &delta["msg"]["delta"]),
        (&json!(40), &json!(-4)),
        "{delta}"
    );
    let book_before = book(first.addr);
    assert_eq!(
        book_before["orderbook"]["yes"],
        json!([[40, 6]]),
        "{book_before}"
    );
    let trade_id = trade["msg"]["trade_id"].clone();
    assert!(tape(first.addr).iter().any(|t| t["trade_id"] == trade_id));
    resting.logout("").unwrap();
    taker.logout("").unwrap();
    first.terminate();

    // The same data directory: the same book, the trade on the tape, and
    // the FIX order table rebuilt.
    let second = Ringex::start(work.path(), &["--no-demo"]);
    assert_eq!(book(second.addr), book_before);
    let recovered = tape(second.addr);
    let again = recovered
        .iter()
        .find(|t| t["trade_id"] == trade_id)
        .unwrap_or_else(|| panic!("{trade_id} not in {recovered:?}"));
    assert_eq!(
        (&again["yes_price"], &again["count"]),
        (&json!(40), &json!(4))
    );
    let mut ws = Ws::subscribe(second.addr);
    let snapshot = ws.next("orderbook_snapshot");
    assert_eq!(snapshot["msg"]["yes"], json!([[40, 6]]), "{snapshot}");

    let mut resting = fix_logon(second.fix_addr.unwrap(), "DEMO-YOU");
    let mut status = OutMessage::new("H");
    status.set(11, "e2e-rest-1").set(54, "1").set(55, TICKER);
    resting.send(&status).unwrap();
    let report = expect_report(&mut resting, "e2e-rest-1", "I");
    assert_eq!(
        (
            report.str_value(39),
            report.str_value(14),
            report.str_value(151),
            report.str_value(37)
        ),
        (Some("1"), Some("4"), Some("6"), Some(order_id.as_str()))
    );
    // The ClOrdID is still taken, and the order can still be cancelled.
    resting.send(&limit("e2e-rest-1", "1", 1, 30, "1")).unwrap();
    let duplicate = expect_report(&mut resting, "e2e-rest-1", "8");
    assert_eq!(duplicate.str_value(58), Some("Duplicate ClOrdID"));
    let mut cancel = OutMessage::new("F");
    cancel
        .set(11, "e2e-cancel-1")
        .set(41, "e2e-rest-1")
        .set(54, "1")
        .set(55, TICKER)
        .set(60, format_timestamp_millis(now_millis()));
    resting.send(&cancel).unwrap();
    let cancelled = expect_report(&mut resting, "e2e-cancel-1", "4");
    assert_eq!(cancelled.str_value(41), Some("e2e-rest-1"));
    let delta = ws.next("orderbook_delta");
    assert_eq!(delta["msg"]["delta"], json!(-6), "{delta}");
    resting.logout("").unwrap();
    second.terminate();
}

/// A TCP relay whose connections the test can cut, to drop a FIX session
/// without the acceptor or the client knowing beforehand.
struct Relay {
    addr: SocketAddr,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn to(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let live = Arc::new(Mutex::new(Vec::new()));
        let streams = Arc::clone(&live);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut held = streams.lock().unwrap();
                held.push(client.try_clone().unwrap());
                held.push(server.try_clone().unwrap());
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { addr, live }
    }

    fn cut(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// The maker's resting orders as the REST API shows them.
fn maker_orders(addr: SocketAddr) -> Vec<Value> {
    let orders = get_json(addr, "/api/v1/portfolio/orders", Some("demo-maker"));
    orders["orders"].as_array().unwrap().clone()
}

#[test]
fn the_fix_market_maker_requotes_and_comes_back_after_a_dropped_connection() {
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        data_dir: Some(dir.path().to_path_buf()),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        no_demo: true,
        fix_listen: Some("127.0.0.1:0".parse().unwrap()),
    };
    let config = ServerConfig::default_config();
    let server = Server::start(&config, &options).unwrap();
    let addr = server.local_addr();
    let relay = Relay::to(server.fix_addr().unwrap());
    let session = config
        .fix
        .as_ref()
        .unwrap()
        .sessions
        .iter()
        .find(|s| s.target_comp_id == "DEMO-MAKER")
        .unwrap();
    let client = client_config(session, relay.addr);
    let stats = Arc::new(SessionStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let quoting = Quoting {
        ticker: TICKER.into(),
        interval: Duration::from_millis(150),
        min_price: 33,
        max_price: 67,
        spread: 10,
        quantity: 100,
    };
    let maker = {
        let (stats, stop) = (Arc::clone(&stats), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut maker = Maker::new(vec![quoting], Arc::clone(&stats));
            run_session(&client, &mut maker, &stop, &stats);
        })
    };
    let two_sided = |orders: &[Value]| {
        orders.len() == 2
            && orders.iter().any(|o| o["action"] == "buy")
            && orders.iter().any(|o| o["action"] == "sell")
    };
    wait_for("a two-sided quote", WAIT, || two_sided(&maker_orders(addr)));
    // Requotes replace the orders: never more than one per side.
    wait_for("requotes", WAIT, || {
        let orders = maker_orders(addr);
        assert!(orders.len() <= 2, "{orders:?}");
        stats.replaces_sent.load(Ordering::Relaxed) >= 4
    });
    let quotes = maker_orders(addr);
    for o in &quotes {
        let price = o["yes_price"].as_i64().unwrap();
        assert!((33..=67).contains(&price), "{o}");
        assert_eq!(o["remaining_count"], json!(100), "{o}");
    }

    relay.cut();
    // Logged on again (DEMO-MAKER resets sequence numbers), the old
    // quotes cancelled (on disconnect and by the maker's mass cancel),
    // two fresh ones.
    wait_for("a second logon", WAIT, || {
        stats.logons.load(Ordering::Relaxed) >= 2
    });
    wait_for("quotes again", WAIT, || {
        let orders = maker_orders(addr);
        assert!(orders.len() <= 2, "{orders:?}");
        two_sided(&orders) && orders.iter().all(|o| !quotes.contains(o))
    });
    assert!(stats.disconnects.load(Ordering::Relaxed) >= 1);
    assert!(stats.mass_cancels_sent.load(Ordering::Relaxed) >= 2);
    stop.store(true, Ordering::Release);
    maker.join().unwrap();
    // cancel_on_disconnect: the logout took the quotes off.
    wait_for("no quotes after logout", WAIT, || {
        maker_orders(addr).is_empty()
    });
    server.shutdown();
}
