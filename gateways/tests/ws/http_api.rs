//! HTTP: routing, health, metrics, the REST market data, precise 4xx.

use crate::support::*;
use ringex_core::records::{Outcome, Side};
use serde_json::{json, Value};

#[test]
fn healthz_and_metrics_report_the_pipeline_and_connections() {
    let ex = Exchange::start();
    let (status, body) = ex.get("/healthz");
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let _ws = ex.ws(None);
    ex.wait_for(|| {
        let (_, _, b) = request(ex.addr, "GET", "/metrics", &[], None);
        String::from_utf8(b)
            .unwrap()
            .contains("\nringex_ws_connections 1\n")
    });
    let (status, head, body) = request(ex.addr, "GET", "/metrics", &[], None);
    assert_eq!(status, 200);
    assert!(head.contains("text/plain"));
    let text = String::from_utf8(body).unwrap();
    for name in [
        "ringex_commands_applied_total",
        "ringex_commands_per_second",
        "ringex_input_ring_occupancy",
        "ringex_journal_lag",
        "ringex_pipeline_latency_ns{quantile=\"0.99\"}",
        "ringex_http_connections",
        "ringex_fix_sessions",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    // 2 markets + 3 × (account, 2 deposits) were applied.
    let applied: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("ringex_commands_applied_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(applied >= 11, "{applied}");
    ex.stop();
}

#[test]
fn markets_list_and_detail_show_both_kinds() {
    let ex = Exchange::start();
    let (status, body) = ex.get("/api/v1/markets");
    assert_eq!(status, 200);
    let tickers: Vec<&str> = body["markets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["ticker"].as_str().unwrap())
        .collect();
    assert_eq!(tickers, [BINARY, SPOT]);
    let (_, m) = ex.get(&format!("/api/v1/markets/{SPOT}"));
    assert_eq!(m["market"]["kind"], "spot");
    assert_eq!(m["market"]["price_decimals"], 2);
    let (status, body) = ex.get("/api/v1/markets/NOPE");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("market_not_found"))
    );
    ex.stop();
}

#[test]
fn the_binary_order_book_shows_yes_and_no_bids_with_depth() {
    let mut ex = Exchange::start();
    let s = ex.sender();
    submit(s, limit(1, 1, Side::Buy, Outcome::Yes, 40, 10));
    submit(s, limit(1, 1, Side::Buy, Outcome::Yes, 42, 5));
    submit(s, limit(2, 1, Side::Sell, Outcome::Yes, 60, 3)); // a NO bid at 40
    submit(s, limit(2, 1, Side::Buy, Outcome::No, 45, 2)); // a YES ask at 55
    let path = format!("/api/v1/markets/{BINARY}/orderbook");
    ex.wait_for(|| {
        ex.get(&path).1["orderbook"]["no"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    let (_, body) = ex.get(&path);
    let book = &body["orderbook"];
    assert_eq!(book["yes"], json!([[40, 10], [42, 5]]));
    assert_eq!(book["no"], json!([[40, 3], [45, 2]]));
    assert_eq!(book["yes_dollars"], json!([["0.4000", 10], ["0.4200", 5]]));
    let (_, body) = ex.get(&format!("{path}?depth=1"));
    assert_eq!(body["orderbook"]["yes"], json!([[42, 5]]));
    assert_eq!(body["orderbook"]["no"], json!([[45, 2]]));
    let (status, body) = ex.get(&format!("{path}?depth=x"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_parameter"))
    );
    let (_, m) = ex.get(&format!("/api/v1/markets/{BINARY}"));
    assert_eq!(
        (
            m["market"]["yes_bid"].as_i64(),
            m["market"]["yes_ask"].as_i64()
        ),
        (Some(42), Some(55))
    );
    ex.stop();
}

#[test]
fn the_spot_book_and_trades_use_decimal_strings() {
    let mut ex = Exchange::start();
    let s = ex.sender();
    submit(s, limit(1, 2, Side::Sell, Outcome::None, 10_125, 1_500)); // 1.5 @ 101.25
    submit(s, limit(2, 2, Side::Buy, Outcome::None, 10_000, 2_000)); // 2 @ 100.00
    submit(s, limit(3, 2, Side::Buy, Outcome::None, 10_125, 500)); // takes 0.5
    let trades = format!("/api/v1/markets/{SPOT}/trades");
    ex.wait_for(|| {
        ex.get(&trades).1["trades"]
            .as_array()
            .is_some_and(|t| t.len() == 1)
    });
    let (_, body) = ex.get(&trades);
    let t = &body["trades"][0];
    assert_eq!(
        (
            t["price"].as_str(),
            t["quantity"].as_str(),
            t["taker_side"].as_str()
        ),
        (Some("101.25"), Some("0.500"), Some("buy"))
    );
    let (_, body) = ex.get(&format!("/api/v1/markets/{SPOT}/orderbook"));
    assert_eq!(body["orderbook"]["bids"], json!([["100.00", "2.000"]]));
    assert_eq!(body["orderbook"]["asks"], json!([["101.25", "1.000"]]));
    ex.stop();
}

#[test]
fn malformed_requests_get_precise_4xx_answers() {
    let mut cfg = config();
    cfg.limits.max_body_bytes = 256;
    let ex = Exchange::start_with(cfg);
    let status_of = |raw: &[u8]| {
        let out = raw_exchange(ex.addr, raw);
        assert!(
            !out.is_empty(),
            "no answer to {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(80)])
        );
        parse_response(&out)
    };
    let (s, _, b) = status_of(b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(s, 400, "{}", String::from_utf8_lossy(&b));
    assert_eq!(
        status_of(b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").0,
        411
    );
    assert_eq!(
        status_of(b"POST /api/v1/portfolio/orders HTTP/1.1\r\nContent-Length: 9999\r\n\r\n").0,
        413
    );
    let mut big = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 20_000));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(status_of(&big).0, 431);
    // A request cut off by the client.
    assert_eq!(
        status_of(b"POST /api/v1/portfolio/orders HTTP/1.1\r\nContent-Length: 50\r\n\r\n{\"a\"").0,
        400
    );

    let k = key(1);
    let auth = [("X-Api-Key", k.as_str())];
    let (s, body) = ex.call("GET", "/api/v1/nothing", &[], None);
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("unknown_route"))
    );
    let (s, _, head) = {
        let (s, h, b) = request(ex.addr, "PUT", "/api/v1/markets", &[], None);
        (s, b, h)
    };
    assert_eq!(s, 405);
    assert!(head.contains("Allow: GET"), "{head}");
    let (s, body) = ex.call("GET", "/api/v1/portfolio/orders", &[], None);
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("missing_api_key"))
    );
    let (s, body) = ex.call(
        "GET",
        "/api/v1/portfolio/orders",
        &[("X-Api-Key", "wrong")],
        None,
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let (s, _, b) = request(
        ex.addr,
        "POST",
        "/api/v1/portfolio/orders",
        &[auth[0], ("Content-Type", "application/json")],
        Some(b"{not json"),
    );
    let body: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid_json"))
    );
    let (s, body) = ex.call(
        "POST",
        "/api/v1/portfolio/orders",
        &auth,
        Some(&json!({"ticker": BINARY, "action": "buy", "bogus": 1})),
    );
    assert_eq!(s, 400);
    assert!(
        body["error"]["message"].as_str().unwrap().contains("bogus"),
        "{body}"
    );
    let (s, body) = ex.call(
        "POST",
        "/api/v1/portfolio/orders",
        &auth,
        Some(&json!({"ticker": BINARY, "action": "buy", "side": "yes", "count": 1})),
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("invalid_order"))
    );
    let (s, _, _) = request(
        ex.addr,
        "POST",
        "/api/v1/portfolio/orders",
        &[auth[0], ("Content-Type", "text/plain")],
        Some(b"{}"),
    );
    assert_eq!(s, 415);
    let (s, body) = ex.call(
        "POST",
        "/api/v1/admin/kill_switch",
        &[("X-Admin-Key", "nope")],
        Some(&json!({"on": true})),
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (403, Some("invalid_admin_key"))
    );
    // The server is still serving.
    assert_eq!(ex.get("/healthz").0, 200);
    ex.stop();
}

#[test]
fn keep_alive_connections_answer_pipelined_requests_in_order() {
    let ex = Exchange::start();
    let raw = b"GET /healthz HTTP/1.1\r\n\r\nGET /api/v1/markets/NOPE HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n";
    let out = String::from_utf8(raw_exchange(ex.addr, raw)).unwrap();
    let statuses: Vec<&str> = out
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &out[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "404", "200"]);
    ex.stop();
}

#[test]
fn the_openapi_document_matches_the_routes() {
    let ex = Exchange::start();
    let (status, doc) = ex.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = Vec::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut routed: Vec<(String, String)> = ringex_gateways::ws::routes::ROUTES
        .iter()
        .map(|r| (r.method.to_owned(), r.path.to_owned()))
        .collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);
    // Every documented operation is served: a real request is never
    // answered "unknown route" or "method not allowed".
    let k = key(1);
    for (method, path) in &documented {
        let concrete = path
            .replace("{ticker}", BINARY)
            .replace("{order_id}", "12345");
        let (s, _, b) = request(
            ex.addr,
            method,
            &concrete,
            &[
                ("X-Api-Key", &k),
                ("X-Admin-Key", ADMIN_KEY),
                ("Content-Type", "application/json"),
            ],
            Some(b"{}"),
        );
        let body = String::from_utf8_lossy(&b);
        assert!(
            s != 405 && !body.contains("unknown_route"),
            "{method} {path}: {s} {body}"
        );
    }
    // And an undocumented one is.
    let (s, body) = ex.get("/api/v1/undocumented");
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("unknown_route"))
    );
    ex.stop();
}
