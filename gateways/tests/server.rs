//! The `ringex` server: in-process restart recovery of the gateway's view,
//! and the built binary run as a child process (monitor page, markets,
//! demo trades, SIGTERM, restart). Everything listens on 127.0.0.1 with a
//! free port and keeps its data in a temporary directory.

mod common;

use common::{get_json, request, wait_for, Ringex};
use ringex_gateways::fix::time::{format_timestamp_millis, now_millis};
use ringex_gateways::server::{Server, ServerConfig, ServerOptions};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const TICKERS: [&str; 4] = [
    "MARKET_MAKER",
    "RAIN-NYC-TOMORROW",
    "FED-25DEC-T4.00",
    "BTC-USD",
];
const MAKER: &str = "demo-maker";
const TRADER: &str = "demo-trader-1";

/// Trades without their `ts` (a live trade is stamped when the gateway saw
/// it, a rebuilt one with its command's time; both are whole seconds).
fn trades(addr: SocketAddr, ticker: &str) -> Vec<Value> {
    let mut body = get_json(
        addr,
        &format!("/api/v1/markets/{ticker}/trades?limit=100"),
        None,
    );
    let trades = body["trades"].as_array_mut().unwrap();
    for t in trades.iter_mut() {
        assert!(t["ts"].as_u64().is_some_and(|ts| ts > 1_600_000_000), "{t}");
        t.as_object_mut().unwrap().remove("ts");
    }
    trades.clone()
}

/// Everything a client can read about the markets and two accounts.
fn exchange_state(addr: SocketAddr) -> Value {
    let mut state = json!({"markets": get_json(addr, "/api/v1/markets", None)});
    for ticker in TICKERS {
        state[ticker] = json!({
            "orderbook": get_json(addr, &format!("/api/v1/markets/{ticker}/orderbook?depth=50"), None),
            "trades": trades(addr, ticker),
        });
    }
    for key in [MAKER, TRADER] {
        state[key] = json!({
            "orders": get_json(addr, "/api/v1/portfolio/orders", Some(key)),
            "balance": get_json(addr, "/api/v1/portfolio/balance", Some(key)),
            "positions": get_json(addr, "/api/v1/portfolio/positions", Some(key)),
        });
    }
    state
}

fn place(addr: SocketAddr, key: &str, order: Value) {
    let (status, body) = request(
        addr,
        "POST",
        "/api/v1/portfolio/orders",
        Some(key),
        Some(&order),
    );
    assert_eq!(status, 201, "{order} -> {body}");
}

fn start_in_process(data_dir: &Path) -> Server {
    let options = ServerOptions {
        data_dir: Some(data_dir.to_path_buf()),
        listen: Some("127.0.0.1:0".parse().unwrap()),
        no_demo: true,
        fix_listen: Some("127.0.0.1:0".parse().unwrap()),
    };
    Server::start(&ServerConfig::default_config(), &options).unwrap()
}

#[test]
fn a_restarted_server_shows_the_same_books_trades_and_portfolios() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in_process(dir.path());
    assert_eq!(server.summary().markets_created.len(), TICKERS.len());
    assert_eq!(server.summary().accounts_created, vec![1, 2, 3, 4]);
    let addr = server.local_addr();
    // Resting quotes on both markets, then takers that trade with part of them.
    let binary = |action: &str, price: i64, count: u64, tif: &str| {
        json!({"ticker": "MARKET_MAKER", "action": action, "side": "yes",
               "yes_price": price, "count": count, "time_in_force": tif})
    };
    let spot = |action: &str, price: &str, quantity: &str, tif: &str| {
        json!({"ticker": "BTC-USD", "action": action, "price": price,
               "quantity": quantity, "time_in_force": tif})
    };
    place(addr, MAKER, binary("buy", 40, 10, "gtc"));
    place(addr, MAKER, binary("buy", 38, 7, "gtc"));
    place(addr, MAKER, binary("sell", 60, 10, "gtc"));
    place(addr, TRADER, binary("buy", 99, 4, "ioc"));
    place(addr, TRADER, binary("sell", 1, 12, "ioc"));
    place(addr, MAKER, spot("sell", "60010", "0.500", "gtc"));
    place(addr, MAKER, spot("buy", "59990", "0.250", "gtc"));
    place(addr, TRADER, spot("buy", "80000", "0.125", "ioc"));
    wait_for("five trades in the view", Duration::from_secs(10), || {
        trades(addr, "MARKET_MAKER").len() == 3 && trades(addr, "BTC-USD").len() == 1
    });
    let before = exchange_state(addr);
    assert_eq!(
        before["MARKET_MAKER"]["orderbook"]["orderbook"]["yes"],
        json!([[38, 5]]),
        "the sell IOC took 10 at 40 and 2 at 38"
    );
    let report = server.shutdown();
    assert!(report.health.is_ok(), "{:?}", report.health);
    assert!(
        report.snapshot.is_some(),
        "a snapshot is written at shutdown"
    );

    // Restart: from the snapshot, nothing created again, the same view.
    let server = start_in_process(dir.path());
    let summary = server.summary();
    assert!(summary.markets_created.is_empty() && summary.accounts_created.is_empty());
    assert!(summary.pipeline.snapshot.is_some());
    assert!(summary.history_events > 0);
    let after = exchange_state(server.local_addr());
    assert_eq!(before, after);
    server.shutdown();

    // Without the snapshot (a full replay) the view is the same too.
    std::fs::remove_dir_all(dir.path().join("journal/snapshots")).unwrap();
    let server = start_in_process(dir.path());
    assert!(server.summary().pipeline.snapshot.is_none());
    assert!(server.summary().pipeline.replayed > 0);
    assert_eq!(before, exchange_state(server.local_addr()));
    server.shutdown();
}

#[test]
fn the_ringex_binary_runs_the_demo_market_and_recovers_after_sigterm() {
    let work = tempfile::tempdir().unwrap();
    // Defaults: data under ./ringex-data of the working folder, demo on.
    let first = Ringex::start(work.path(), &[]);
    assert!(
        first
            .seen
            .iter()
            .any(|l| l.contains("created markets MARKET_MAKER")),
        "{:?}",
        first.seen
    );
    assert!(
        first
            .seen
            .iter()
            .any(|l| l.contains("demo market on: FIX clients DEMO-MAKER (maker)")),
        "{:?}",
        first.seen
    );
    let addr = first.addr;
    let (status, page) = request(addr, "GET", "/", None, None);
    assert_eq!(status, 200);
    assert!(page.contains("ringex monitor"));
    let markets = get_json(addr, "/api/v1/markets", None);
    let listed: Vec<&str> = markets["markets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ticker"].as_str().unwrap())
        .collect();
    assert_eq!(listed, TICKERS);
    // The demo's traders take the makers' quotes within a few intervals.
    let mut seen_trade = None;
    wait_for("a demo trade", Duration::from_secs(30), || {
        seen_trade = TICKERS
            .iter()
            .find_map(|t| trades(addr, t).into_iter().next());
        seen_trade.is_some()
    });
    let seen_trade = seen_trade.unwrap();
    let stdout = first.terminate();
    assert!(
        stdout
            .iter()
            .any(|l| l.starts_with("ringex: snapshot written")),
        "{stdout:?}"
    );
    assert!(work.path().join("ringex-data/journal/events").is_dir());

    // Restart without the demo: recovered, nothing re-created, and the
    // trade seen before is still on the tape.
    let second = Ringex::start(work.path(), &["--no-demo"]);
    assert!(
        second
            .seen
            .iter()
            .any(|l| l.contains("recovered from snapshot")),
        "{:?}",
        second.seen
    );
    assert!(
        !second.seen.iter().any(|l| l.contains("created")),
        "{:?}",
        second.seen
    );
    let ticker = seen_trade["market_ticker"].as_str().unwrap();
    assert!(
        trades(second.addr, ticker).contains(&seen_trade),
        "{seen_trade} after restart"
    );
    let state = exchange_state(second.addr);
    second.terminate();

    // A third start shows exactly the same markets, books and tapes.
    let third = Ringex::start(work.path(), &["--no-demo"]);
    assert_eq!(state, exchange_state(third.addr));
    third.terminate();
}

/// One FIX message with BodyLength and CheckSum computed; `body` is
/// `tag=value` fields after MsgType, joined by `|`.
fn fix_message(msg_type: &str, seq: u32, body: &str) -> Vec<u8> {
    // SendingTime must be within the session's max latency of now.
    let now = format_timestamp_millis(now_millis());
    let mut fields =
        format!("35={msg_type}\u{1}34={seq}\u{1}49=DEMO-YOU\u{1}52={now}\u{1}56=RINGEX\u{1}");
    for field in body.split('|').filter(|f| !f.is_empty()) {
        fields.push_str(field);
        fields.push('\u{1}');
    }
    let mut out = format!("8=FIX.4.4\u{1}9={}\u{1}{fields}", fields.len()).into_bytes();
    let sum = out.iter().map(|&b| u32::from(b)).sum::<u32>() % 256;
    out.extend_from_slice(format!("10={sum:03}\u{1}").as_bytes());
    out
}

/// Reads FIX messages until one has `35=<msg_type>`; returns it with SOH as `|`.
fn read_fix_until(stream: &mut TcpStream, msg_type: &str) -> String {
    let mut buffer = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        while let Some(end) = find_message_end(&buffer) {
            let message: Vec<u8> = buffer.drain(..end).collect();
            let text = String::from_utf8_lossy(&message).replace('\u{1}', "|");
            if text.contains(&format!("|35={msg_type}|")) {
                return text;
            }
        }
        assert!(Instant::now() < deadline, "no 35={msg_type} within 10 s");
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk) {
            Ok(0) => panic!("the FIX acceptor closed the connection"),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("FIX read: {e}"),
        }
    }
}

/// The end of the first complete message in `buffer` (after `10=nnn<SOH>`).
fn find_message_end(buffer: &[u8]) -> Option<usize> {
    let start = buffer.windows(4).position(|w| w == b"\x0110=")?;
    let end = buffer[start + 1..].iter().position(|&b| b == 1)?;
    Some(start + 1 + end + 1)
}

#[test]
fn an_order_entered_over_the_servers_fix_acceptor_rests_on_the_rest_book() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_in_process(dir.path());
    let fix_addr = server
        .fix_addr()
        .expect("the default config has a [fix] section");
    let mut stream = TcpStream::connect(fix_addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // A wrong password is refused with a Logout.
    stream
        .write_all(&fix_message("A", 1, "98=0|108=30|141=Y|554=wrong"))
        .unwrap();
    let logout = read_fix_until(&mut stream, "5");
    assert!(logout.contains("|49=RINGEX|"), "{logout}");

    let mut stream = TcpStream::connect(fix_addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream
        .write_all(&fix_message("A", 1, "98=0|108=30|141=Y|554=demo"))
        .unwrap();
    read_fix_until(&mut stream, "A");
    // Buy 7 YES at 41 on MARKET_MAKER for account 4 (the session's account).
    stream
        .write_all(&fix_message(
            "D",
            2,
            &format!(
                "11=fix-order-1|1=4|55=MARKET_MAKER|54=1|60={}|38=7|40=2|44=41|59=1",
                format_timestamp_millis(now_millis())
            ),
        ))
        .unwrap();
    let report = read_fix_until(&mut stream, "8");
    assert!(
        report.contains("|150=0|"),
        "a New execution report: {report}"
    );
    assert!(report.contains("|11=fix-order-1|"), "{report}");
    // The WebSocket/HTTP gateway's view shows the FIX order on the book.
    let addr = server.local_addr();
    wait_for(
        "the FIX order on the REST book",
        Duration::from_secs(10),
        || {
            let book = get_json(addr, "/api/v1/markets/MARKET_MAKER/orderbook?depth=5", None);
            book["orderbook"]["yes"] == json!([[41, 7]])
        },
    );
    let report = server.shutdown();
    assert!(report.health.is_ok(), "{:?}", report.health);
}

#[test]
fn bad_command_lines_and_configs_exit_with_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ringex"))
            .args(args)
            .current_dir(work.path())
            .output()
            .unwrap()
    };
    let printed = run(&["--print-default-config"]);
    assert!(printed.status.success());
    let text = String::from_utf8(printed.stdout).unwrap();
    assert!(ServerConfig::parse(&text).is_ok());
    let bad = run(&["--bogus"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown argument"));
    std::fs::write(
        work.path().join("bad.toml"),
        text.replace("[engine]", "[engine]\nturbo = true"),
    )
    .unwrap();
    let bad = run(&["--config", "bad.toml"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("turbo"));
    let missing = run(&["--config", "missing.toml"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(!work.path().join("ringex-data").exists(), "nothing started");
}
