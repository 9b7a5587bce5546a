//! Conflation followed by silence: a client whose bounded outbound queue
//! overflowed during a burst must still receive the final book once it
//! reads again, even though the market publishes nothing more.
//!
//! The hard case is a queue that still holds more than the refill mark of
//! messages that are never conflated (trades) when the burst ends: the
//! refill snapshot can only be queued after those are written, and once
//! the socket has taken them no further event arrives for it.

use crate::support::*;
use ringex_core::records::{Command, Outcome, Side};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[test]
fn a_conflated_client_gets_the_final_book_after_the_market_goes_quiet() {
    let mut cfg = config();
    // Refill mark 8, disconnect at 32 queued messages.
    cfg.limits.outbound_queue_messages = 16;
    cfg.limits.socket_send_buffer = 4096;
    cfg.limits.sink_capacity = 1 << 20;
    let mut ex = Exchange::start_with(cfg);
    let mut slow = ex.ws(None);
    shrink_receive_buffer(&slow, 2048);
    let reply = slow.call(
        "subscribe",
        json!({"channels": ["orderbook_delta"], "market_tickers": [BINARY]}),
    );
    assert_eq!(reply["type"], "subscribed", "{reply}");
    let sid = reply["msg"]["sid"].as_u64().unwrap();
    let reply = slow.call(
        "subscribe",
        json!({"channels": ["trade"], "market_tickers": [BINARY]}),
    );
    assert_eq!(reply["type"], "subscribed", "{reply}");
    let conflations = |ex: &Exchange| {
        ex.gateway
            .as_ref()
            .unwrap()
            .stats()
            .conflations
            .load(Ordering::Relaxed)
    };

    // The burst: the client reads nothing while the book changes a lot.
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while conflations(&ex) == 0 || n < 2_000 {
        assert!(Instant::now() < deadline, "no conflation after {n} orders");
        n += 1;
        churn(ex.sender(), n, 40);
    }
    // The burst ends with trades (each also a book change): more of them
    // than the refill mark are queued behind the conflated subscription.
    const TRADES: u64 = 12;
    for _ in 0..TRADES {
        submit(ex.sender(), limit(2, 1, Side::Sell, Outcome::Yes, 1, 1));
    }
    // Silence on the book. A deposit (no book change) marks the end of the
    // flow: once the gateway shows it, it has applied every book event.
    submit(ex.sender(), Command::deposit(3, 0, 1));
    ex.wait_for(|| {
        ex.get_auth("/api/v1/portfolio/balance", 3).1["balances"]
            .as_array()
            .is_some_and(|b| b.iter().any(|x| x.to_string().contains("1000000001")))
    });
    let (_, rest) = ex.get(&format!("/api/v1/markets/{BINARY}/orderbook"));
    let target = (
        rest["orderbook"]["yes"].clone(),
        rest["orderbook"]["no"].clone(),
    );
    assert!(target.0.as_array().is_some_and(|a| !a.is_empty()), "{rest}");

    // Now it drains: its book must reach the gateway's within a bounded
    // time, seq never skipping except where a snapshot restarts it.
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = slow.ws.get_ref() {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
    }
    let mut book = LocalBook::default();
    let mut trades = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (yes, no) = book.as_rest();
        if (yes.clone(), no.clone()) == target {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the conflated client never got the final book after {n} orders \
             ({} conflations): has yes {yes} no {no}, want {target:?}; {book:?}",
            conflations(&ex)
        );
        let Some(msg) = slow.try_recv() else {
            continue;
        };
        if msg["type"] == "trade" {
            trades += 1;
            continue;
        }
        assert_eq!(msg["sid"].as_u64(), Some(sid), "{msg}");
        book.apply(&msg).unwrap();
    }
    assert!(
        book.snapshots >= 2,
        "a refill snapshot was delivered: {book:?}"
    );
    // Nothing but the settled book follows: no stray message is queued.
    while let Some(msg) = slow.try_recv() {
        if msg["type"] == "trade" {
            trades += 1;
        } else {
            book.apply(&msg).unwrap();
        }
    }
    assert_eq!(book.as_rest(), target);
    assert_eq!(trades, TRADES, "trades are never conflated");
    ex.stop();
}

#[test]
fn a_gateway_over_its_fan_out_budget_conflates_and_every_client_still_converges() {
    let mut cfg = config();
    // A budget far below one burst's fan-out: most turns run out of it.
    cfg.limits.deltas_per_turn = 8;
    // A queue that never fills: every conflation here is the budget's.
    cfg.limits.outbound_queue_messages = 1 << 16;
    cfg.limits.sink_capacity = 1 << 20;
    let mut ex = Exchange::start_with(cfg);
    let mut clients: Vec<(Ws, u64)> = (0..6)
        .map(|_| {
            let mut ws = ex.ws(None);
            let reply = ws.call(
                "subscribe",
                json!({"channels": ["orderbook_delta"], "market_tickers": [BINARY]}),
            );
            assert_eq!(reply["type"], "subscribed", "{reply}");
            let sid = reply["msg"]["sid"].as_u64().unwrap();
            (ws, sid)
        })
        .collect();
    for n in 1..=3_000 {
        churn(ex.sender(), n, 40);
    }
    submit(ex.sender(), Command::deposit(3, 0, 1));
    ex.wait_for(|| {
        ex.get_auth("/api/v1/portfolio/balance", 3).1["balances"]
            .as_array()
            .is_some_and(|b| b.iter().any(|x| x.to_string().contains("1000000001")))
    });
    let (_, rest) = ex.get(&format!("/api/v1/markets/{BINARY}/orderbook"));
    let target = (
        rest["orderbook"]["yes"].clone(),
        rest["orderbook"]["no"].clone(),
    );
    let stats = ex.gateway.as_ref().unwrap().stats();
    assert!(
        stats.conflations.load(Ordering::Relaxed) > 0,
        "the budget conflated"
    );
    let mut snapshots = 0;
    for (ws, sid) in &mut clients {
        if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.ws.get_ref() {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
        }
        let mut book = LocalBook::default();
        let deadline = Instant::now() + Duration::from_secs(10);
        while book.as_rest() != target {
            assert!(Instant::now() < deadline, "did not converge: {book:?}");
            if let Some(msg) = ws.try_recv() {
                assert_eq!(msg["sid"].as_u64(), Some(*sid), "{msg}");
                book.apply(&msg).unwrap();
            }
        }
        assert!(book.deltas > 0, "deltas within the budget arrive: {book:?}");
        snapshots += book.snapshots;
    }
    assert!(snapshots > 6, "conflation snapshots after the initial ones");
    ex.stop();
}
