//! WebSocket market data: subscriptions, snapshot + deltas, errors, limits.

use crate::support::*;
use ringex_core::records::{Outcome, Side};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tungstenite::Message;

fn subscribed_sid(reply: &Value) -> u64 {
    assert_eq!(reply["type"], "subscribed", "{reply}");
    reply["msg"]["sid"].as_u64().unwrap()
}

#[test]
fn an_order_book_subscription_gets_a_snapshot_then_numbered_deltas() {
    let mut ex = Exchange::start();
    submit(ex.sender(), limit(1, 1, Side::Buy, Outcome::Yes, 40, 10));
    ex.wait_for(|| ex.get(&format!("/api/v1/markets/{BINARY}")).1["market"]["yes_bid"] == 40);
    let mut ws = ex.ws(None);
    let sid = subscribed_sid(&ws.call(
        "subscribe",
        json!({"channels": ["orderbook_delta"], "market_tickers": [BINARY]}),
    ));
    let snap = ws.recv();
    assert_eq!(
        (
            snap["type"].as_str(),
            snap["sid"].as_u64(),
            snap["seq"].as_u64()
        ),
        (Some("orderbook_snapshot"), Some(sid), Some(1))
    );
    assert_eq!(snap["msg"]["yes"], json!([[40, 10]]));
    assert_eq!(snap["msg"]["no"], json!([]));
    submit(ex.sender(), limit(2, 1, Side::Buy, Outcome::No, 45, 3)); // YES ask 55 = NO bid 45
    submit(ex.sender(), limit(2, 1, Side::Buy, Outcome::Yes, 40, 5));
    submit(ex.sender(), limit(3, 1, Side::Sell, Outcome::Yes, 40, 15)); // takes the whole YES 40 level
    let expected = [
        json!({"market_ticker": BINARY, "price": 45, "price_dollars": "0.4500", "delta": 3, "side": "no"}),
        json!({"market_ticker": BINARY, "price": 40, "price_dollars": "0.4000", "delta": 5, "side": "yes"}),
        json!({"market_ticker": BINARY, "price": 40, "price_dollars": "0.4000", "delta": -10, "side": "yes"}),
        json!({"market_ticker": BINARY, "price": 40, "price_dollars": "0.4000", "delta": -5, "side": "yes"}),
    ];
    for (i, want) in expected.iter().enumerate() {
        let d = ws.recv();
        assert_eq!(d["type"], "orderbook_delta", "{d}");
        assert_eq!(d["seq"].as_u64(), Some(2 + i as u64));
        assert_eq!(&d["msg"], want);
    }
    // Resync on request: a snapshot with the next seq.
    let reply = ws.call(
        "update_subscription",
        json!({"sids": [sid], "action": "get_snapshot"}),
    );
    assert_eq!(reply["type"], "ok");
    let snap = ws.recv();
    assert_eq!(
        (snap["type"].as_str(), snap["seq"].as_u64()),
        (Some("orderbook_snapshot"), Some(6))
    );
    assert_eq!(snap["msg"]["yes"], json!([]));
    assert_eq!(snap["msg"]["no"], json!([[45, 3]]));
    ex.stop();
}

#[test]
fn spot_deltas_use_decimal_strings_and_markets_can_be_added_and_removed() {
    let mut ex = Exchange::start();
    let mut ws = ex.ws(None);
    let sid = subscribed_sid(&ws.call(
        "subscribe",
        json!({"channels": ["orderbook_delta"], "market_tickers": [BINARY]}),
    ));
    assert_eq!(ws.recv()["type"], "orderbook_snapshot");
    let reply = ws.call(
        "update_subscription",
        json!({"sids": [sid], "market_tickers": [SPOT], "action": "add_markets"}),
    );
    assert_eq!(reply["type"], "ok", "{reply}");
    let snap = ws.recv();
    assert_eq!(
        (snap["seq"].as_u64(), snap["msg"]["market_ticker"].as_str()),
        (Some(2), Some(SPOT))
    );
    assert_eq!(snap["msg"]["bids"], json!([]));
    submit(
        ex.sender(),
        limit(1, 2, Side::Buy, Outcome::None, 10_050, 1_250),
    );
    let d = ws.recv();
    assert_eq!(d["seq"].as_u64(), Some(3));
    assert_eq!(
        d["msg"],
        json!({"market_ticker": SPOT, "price": "100.50", "delta": "1.250", "side": "bid"})
    );
    ws.call(
        "update_subscription",
        json!({"sids": [sid], "market_tickers": [SPOT], "action": "delete_markets"}),
    );
    submit(
        ex.sender(),
        limit(1, 2, Side::Buy, Outcome::None, 10_040, 1_000),
    );
    submit(ex.sender(), limit(1, 1, Side::Buy, Outcome::Yes, 30, 1));
    let d = ws.recv();
    assert_eq!(
        (d["seq"].as_u64(), d["msg"]["market_ticker"].as_str()),
        (Some(4), Some(BINARY)),
        "{d}"
    );
    let reply = ws.call("unsubscribe", json!({"sids": [sid]}));
    assert_eq!(
        (reply["type"].as_str(), reply["sid"].as_u64()),
        (Some("unsubscribed"), Some(sid))
    );
    let reply = ws.call("unsubscribe", json!({"sids": [sid]}));
    assert_eq!(reply["msg"]["code"], 7);
    ex.stop();
}

#[test]
fn trades_ticker_and_lifecycle_channels_publish() {
    let mut ex = Exchange::start();
    let mut ws = ex.ws(None);
    let reply = ws.call(
        "subscribe",
        json!({"channels": ["trade", "ticker", "market_lifecycle"], "market_tickers": [BINARY]}),
    );
    subscribed_sid(&reply);
    submit(ex.sender(), limit(1, 1, Side::Sell, Outcome::Yes, 60, 5));
    submit(ex.sender(), limit(2, 1, Side::Buy, Outcome::No, 40, 2)); // sells YES at 60: a NO taker
    submit(ex.sender(), limit(3, 1, Side::Buy, Outcome::Yes, 61, 1));
    let trade = ws.recv_until(|v| {
        v["type"] == "trade" && v["msg"]["yes_price"] == 60 && v["msg"]["count"] == 1
    });
    assert_eq!(trade["msg"]["taker_side"], "yes");
    assert_eq!(trade["msg"]["no_price"], 40);
    let ticker = ws.recv_until(|v| v["type"] == "ticker" && v["msg"]["volume"] == 1);
    assert_eq!(
        (
            ticker["msg"]["price"].as_i64(),
            ticker["msg"]["yes_ask"].as_i64()
        ),
        (Some(60), Some(60))
    );
    let admin = [("X-Admin-Key", ADMIN_KEY)];
    let (s, _) = ex.call(
        "POST",
        &format!("/api/v1/admin/markets/{BINARY}/halt"),
        &admin,
        None,
    );
    assert_eq!(s, 200);
    let status =
        ws.recv_until(|v| v["type"] == "market_lifecycle" && v["msg"]["status"] == "halted");
    assert_eq!(status["msg"]["market_ticker"], BINARY);
    ex.stop();
}

#[test]
fn bad_commands_get_coded_errors() {
    let mut cfg = config();
    cfg.limits.max_subscriptions = 2;
    let ex = Exchange::start_with(cfg);
    let mut ws = ex.ws(None);
    let code = |v: Value| {
        assert_eq!(v["type"], "error", "{v}");
        v["msg"]["code"].as_u64().unwrap()
    };
    ws.ws.send(Message::text("{nope")).unwrap();
    assert_eq!(code(ws.recv()), 1);
    assert_eq!(
        code(ws.call(
            "subscribe",
            json!({"channels": ["weather"], "market_tickers": [BINARY]})
        )),
        8
    );
    assert_eq!(
        code(ws.call(
            "subscribe",
            json!({"channels": ["trade"], "market_tickers": ["NOPE"]})
        )),
        16
    );
    assert_eq!(code(ws.call("subscribe", json!({"channels": ["fill"]}))), 9);
    assert_eq!(
        code(ws.call("create_order", json!({"ticker": BINARY, "action": "buy"}))),
        9
    );
    assert_eq!(code(ws.call("dance", json!({}))), 5);
    subscribed_sid(&ws.call(
        "subscribe",
        json!({"channels": ["trade"], "market_tickers": [BINARY]}),
    ));
    assert_eq!(
        code(ws.call(
            "subscribe",
            json!({"channels": ["trade"], "market_tickers": [BINARY]})
        )),
        6
    );
    subscribed_sid(&ws.call(
        "subscribe",
        json!({"channels": ["ticker"], "market_tickers": [BINARY]}),
    ));
    let _initial_ticker = ws.recv();
    assert_eq!(
        code(ws.call(
            "subscribe",
            json!({"channels": ["market_lifecycle"], "market_tickers": [BINARY]})
        )),
        18
    );
    assert_eq!(
        code(ws.call(
            "update_subscription",
            json!({"sids": [99], "action": "get_snapshot"})
        )),
        7
    );
    ex.stop();
}

#[test]
fn oversized_messages_are_refused_and_the_connection_closed() {
    let mut cfg = config();
    cfg.limits.max_message_bytes = 1024;
    let ex = Exchange::start_with(cfg);
    let mut ws = ex.ws(None);
    ws.ws.send(Message::text("x".repeat(4096))).unwrap();
    let err = ws.recv();
    assert_eq!(err["msg"]["code"], 21, "{err}");
    let closed = loop {
        match ws.ws.read() {
            Ok(Message::Close(frame)) => break frame,
            Ok(_) => continue,
            Err(e) => panic!("{e}"),
        }
    };
    assert_eq!(u16::from(closed.unwrap().code), 1009);
    ex.stop();
}

#[test]
fn pings_are_answered_and_the_server_pings_idle_clients() {
    let mut cfg = config();
    cfg.limits.ping_interval_ms = 100;
    let ex = Exchange::start_with(cfg);
    let mut ws = ex.ws(None);
    ws.ws.send(Message::Ping(b"hi".to_vec().into())).unwrap();
    let (mut pong, mut ping) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(pong && ping) && Instant::now() < deadline {
        match ws.ws.read().unwrap() {
            Message::Pong(p) => pong |= p.as_ref() == b"hi",
            Message::Ping(_) => ping = true,
            _ => {}
        }
    }
    assert!(pong && ping, "pong {pong} ping {ping}");
    ex.stop();
}

#[test]
fn connections_beyond_the_limit_are_refused_with_503() {
    let mut cfg = config();
    cfg.limits.max_connections = 2;
    let ex = Exchange::start_with(cfg);
    let _a = ex.ws(None);
    let _b = ex.ws(None);
    ex.wait_for(|| {
        ex.gateway
            .as_ref()
            .unwrap()
            .stats()
            .ws_connections
            .load(std::sync::atomic::Ordering::Relaxed)
            == 2
    });
    let out = raw_exchange(ex.addr, b"GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(parse_response(&out).0, 503);
    drop(_a);
    ex.wait_for(|| {
        ex.gateway
            .as_ref()
            .unwrap()
            .stats()
            .ws_connections
            .load(std::sync::atomic::Ordering::Relaxed)
            == 1
    });
    assert_eq!(ex.get("/healthz").0, 200);
    ex.stop();
}

fn slow_config() -> ringex_gateways::ws::GatewayConfig {
    let mut cfg = config();
    cfg.limits.outbound_queue_messages = 16;
    cfg.limits.socket_send_buffer = 4096;
    cfg
}

fn stat(ex: &Exchange, f: impl Fn(&ringex_gateways::ws::GatewayStats) -> u64) -> u64 {
    f(&ex.gateway.as_ref().unwrap().stats())
}

#[test]
fn a_slow_client_is_conflated_to_a_fresh_snapshot_without_a_seq_gap() {
    let mut ex = Exchange::start_with(slow_config());
    let mut slow = ex.ws(None);
    shrink_receive_buffer(&slow, 2048);
    subscribed_sid(&slow.call(
        "subscribe",
        json!({"channels": ["orderbook_delta"], "market_tickers": [BINARY]}),
    ));
    // The slow client reads nothing while the book changes a lot.
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stat(&ex, |s| {
        s.conflations.load(std::sync::atomic::Ordering::Relaxed)
    }) == 0
    {
        assert!(Instant::now() < deadline, "no conflation after {n} orders");
        for _ in 0..100 {
            n += 1;
            churn(ex.sender(), n, 40);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    // A marker order: once the gateway shows it, it has applied all before.
    submit(ex.sender(), limit(3, 1, Side::Buy, Outcome::No, 10, 7));
    let path = format!("/api/v1/markets/{BINARY}/orderbook");
    ex.wait_for(|| ex.get(&path).1["orderbook"]["no"] == json!([[10, 7]]));
    let (_, rest) = ex.get(&path);
    // Now it reads: it must converge on the real book, seq never skipping.
    let mut book = LocalBook::default();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "did not converge: {book:?}");
        let msg = slow.recv();
        book.apply(&msg).unwrap();
        let (yes, no) = book.as_rest();
        if yes == rest["orderbook"]["yes"] && no == rest["orderbook"]["no"] {
            break;
        }
    }
    assert!(
        book.snapshots >= 2,
        "a conflation snapshot was delivered: {book:?}"
    );
    assert!(
        book.deltas < 2 * n,
        "deltas were dropped: {} of {n}",
        book.deltas
    );
    ex.stop();
}

#[test]
fn a_stuck_client_is_disconnected_after_the_timeout() {
    let mut cfg = slow_config();
    cfg.limits.stuck_timeout_ms = 300;
    let mut ex = Exchange::start_with(cfg);
    let mut stuck = ex.ws(None);
    shrink_receive_buffer(&stuck, 2048);
    subscribed_sid(&stuck.call(
        "subscribe",
        json!({"channels": ["orderbook_delta"], "market_tickers": [BINARY]}),
    ));
    let mut healthy = ex.ws(None);
    subscribed_sid(&healthy.call(
        "subscribe",
        json!({"channels": ["trade"], "market_tickers": [BINARY]}),
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    while stat(&ex, |s| {
        s.slow_disconnects
            .load(std::sync::atomic::Ordering::Relaxed)
    }) == 0
    {
        assert!(
            Instant::now() < deadline,
            "never disconnected after {n} orders"
        );
        for _ in 0..100 {
            n += 1;
            churn(ex.sender(), n, 40);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    ex.wait_for(|| {
        stat(&ex, |s| {
            s.ws_connections.load(std::sync::atomic::Ordering::Relaxed)
        }) == 1
    });
    // The healthy client is unaffected.
    submit(ex.sender(), limit(2, 1, Side::Sell, Outcome::Yes, 1, 1));
    let t = healthy.recv_until(|v| v["type"] == "trade");
    assert_eq!(t["msg"]["count"], 1);
    ex.stop();
}
