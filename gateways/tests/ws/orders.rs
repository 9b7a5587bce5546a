//! Order entry over WebSocket and REST, private channels, admin endpoints.

use crate::support::*;
use serde_json::json;

#[test]
fn ws_order_entry_creates_amends_cancels_and_reports_on_private_channels() {
    let ex = Exchange::start();
    let mut ws = ex.ws(Some(1));
    for channel in ["orders", "fill", "market_positions", "balances"] {
        let r = ws.call("subscribe", json!({"channels": [channel]}));
        assert_eq!(r["type"], "subscribed", "{r}");
    }
    let order = json!({"ticker": BINARY, "action": "buy", "side": "yes", "count": 5, "yes_price": 40, "client_order_id": "c-1"});
    let r = ws.call("create_order", order.clone());
    assert_eq!(r["type"], "order_created", "{r}");
    let o = &r["msg"]["order"];
    assert_eq!(
        (
            o["status"].as_str(),
            o["client_order_id"].as_str(),
            o["remaining_count"].as_u64()
        ),
        (Some("resting"), Some("c-1"), Some(5))
    );
    let order_id = o["order_id"].as_str().unwrap().to_owned();
    let upd = ws.recv_until(|v| v["type"] == "order_update");
    assert_eq!(upd["msg"]["order_id"], order_id.as_str());
    // The client order id is an idempotency key.
    let r = ws.call("create_order", order);
    assert_eq!(
        (
            r["msg"]["code"].as_u64(),
            r["msg"]["reject_reason"].as_str()
        ),
        (Some(20), Some("DuplicateClientOrderId")),
        "{r}"
    );
    // Amend to 3 at the same price, then cancel by client order id.
    let r = ws.call("amend_order", json!({"order_id": order_id, "count": 3}));
    assert_eq!(
        (r["type"].as_str(), r["msg"]["order"]["count"].as_u64()),
        (Some("order_amended"), Some(3)),
        "{r}"
    );
    let r = ws.call("cancel_order", json!({"client_order_id": "c-1"}));
    assert_eq!(
        (r["type"].as_str(), r["msg"]["order"]["status"].as_str()),
        (Some("order_canceled"), Some("canceled")),
        "{r}"
    );
    let r = ws.call("cancel_order", json!({"client_order_id": "c-1"}));
    assert_eq!(r["msg"]["reject_reason"], "TooLate", "{r}");

    // A fill: account 1 rests NO 60 (a YES ask at 40), account 2 buys YES over REST.
    let r = ws.call("create_order", json!({"ticker": BINARY, "action": "buy", "side": "no", "count": 5, "price": "0.60", "client_order_id": "c-2"}));
    assert_eq!(r["msg"]["order"]["no_price"], 60, "{r}");
    let k2 = key(2);
    let (s, body) = ex.call("POST", "/api/v1/portfolio/orders", &[("X-Api-Key", &k2)], Some(&json!({"ticker": BINARY, "action": "buy", "side": "yes", "count": 2, "yes_price": 45, "time_in_force": "ioc"})));
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        (
            body["order"]["status"].as_str(),
            body["order"]["fill_count"].as_u64()
        ),
        (Some("executed"), Some(2)),
        "{body}"
    );
    let fill = ws.recv_until(|v| v["type"] == "fill");
    assert_eq!(
        (
            fill["msg"]["count"].as_u64(),
            fill["msg"]["side"].as_str(),
            fill["msg"]["is_taker"].as_bool()
        ),
        (Some(2), Some("no"), Some(false)),
        "{fill}"
    );
    // Engine order: the maker's cash, then its position.
    let bal = ws.recv_until(|v| v["type"] == "balance");
    assert_eq!(bal["msg"]["asset"], 0);
    let pos = ws.recv_until(|v| v["type"] == "market_position");
    assert_eq!(pos["msg"]["position"], -2);
    let (_, positions) = ex.get_auth("/api/v1/portfolio/positions", 1);
    assert_eq!(positions["market_positions"][0]["position"], -2);
    let r = ws.call("get_portfolio", json!({}));
    assert_eq!(r["msg"]["market_positions"][0]["position"], -2, "{r}");
    // Account 2 can neither see nor touch account 1's order.
    let (_, orders) = ex.get_auth("/api/v1/portfolio/orders", 2);
    assert_eq!(orders["orders"], json!([]));
    let (_, orders) = ex.get_auth("/api/v1/portfolio/orders", 1);
    let id = orders["orders"][0]["order_id"].as_str().unwrap().to_owned();
    assert_eq!(orders["orders"][0]["remaining_count"], 3);
    let (s, body) = ex.call(
        "DELETE",
        &format!("/api/v1/portfolio/orders/{id}"),
        &[("X-Api-Key", &k2)],
        None,
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (404, Some("UnknownOrder")),
        "{body}"
    );
    let (s, _) = ex.get_auth(&format!("/api/v1/portfolio/orders/{id}"), 2);
    assert_eq!(s, 404);
    // Mass cancel.
    let r = ws.call("mass_cancel", json!({"ticker": BINARY}));
    assert_eq!(
        (r["type"].as_str(), r["msg"]["canceled_count"].as_u64()),
        (Some("orders_canceled"), Some(1)),
        "{r}"
    );
    ex.stop();
}

#[test]
fn rest_orders_are_idempotent_amendable_and_validated() {
    let ex = Exchange::start();
    let k = key(3);
    let h = [("X-Api-Key", k.as_str())];
    let spot = json!({"ticker": SPOT, "action": "sell", "quantity": "0.250", "price": "101.5", "client_order_id": "s-1"});
    let (s, body) = ex.call("POST", "/api/v1/portfolio/orders", &h, Some(&spot));
    assert_eq!(s, 201, "{body}");
    assert_eq!(
        (
            body["order"]["price"].as_str(),
            body["order"]["quantity"].as_str()
        ),
        (Some("101.50"), Some("0.250"))
    );
    let (s, body) = ex.call("POST", "/api/v1/portfolio/orders", &h, Some(&spot));
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("DuplicateClientOrderId")),
        "{body}"
    );
    let id = {
        let (_, o) = ex.get_auth("/api/v1/portfolio/orders", 3);
        o["orders"][0]["order_id"].as_str().unwrap().to_owned()
    };
    let (s, body) = ex.call(
        "POST",
        &format!("/api/v1/portfolio/orders/{id}/amend"),
        &h,
        Some(&json!({"price": "102.00"})),
    );
    assert_eq!(
        (s, body["order"]["price"].as_str()),
        (200, Some("102.00")),
        "{body}"
    );
    let bad = json!({"ticker": SPOT, "action": "sell", "quantity": "0.0001", "price": "101.5"});
    let (s, body) = ex.call("POST", "/api/v1/portfolio/orders", &h, Some(&bad));
    assert_eq!(s, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("decimal places"),
        "{body}"
    );
    let (_, book) = ex.get(&format!("/api/v1/markets/{SPOT}/orderbook"));
    assert_eq!(book["orderbook"]["asks"], json!([["102.00", "0.250"]]));
    let (s, body) = ex.call("DELETE", "/api/v1/portfolio/orders", &h, None);
    assert_eq!(
        (s, body["canceled_count"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    ex.stop();
}

#[test]
fn admin_endpoints_add_markets_deposit_kill_and_settle() {
    let ex = Exchange::start();
    let admin = [("X-Admin-Key", ADMIN_KEY)];
    let (s, body) = ex.call("POST", "/api/v1/admin/markets", &admin, Some(&json!({"ticker": "RAIN-NYC", "instrument": 3, "kind": "binary", "title": "Rain in NYC"})));
    assert_eq!(
        (s, body["market"]["status"].as_str()),
        (201, Some("open")),
        "{body}"
    );
    let (s, body) = ex.call(
        "POST",
        "/api/v1/admin/markets",
        &admin,
        Some(&json!({"ticker": "RAIN-NYC", "instrument": 4, "kind": "binary"})),
    );
    assert_eq!(s, 409, "{body}");
    let (s, body) = ex.call(
        "POST",
        "/api/v1/admin/markets",
        &admin,
        Some(&json!({"ticker": "BAD", "instrument": 5, "kind": "binary", "max_price": 100})),
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (400, Some("InvalidInstrumentSpec")),
        "{body}"
    );
    assert_eq!(ex.get("/api/v1/markets/BAD").0, 404);
    let (s, body) = ex.call(
        "POST",
        "/api/v1/admin/deposits",
        &admin,
        Some(&json!({"account": 2, "asset": 0, "amount": 500})),
    );
    assert_eq!((s, body["amount"].as_u64()), (200, Some(500)), "{body}");
    let k = key(2);
    let order =
        json!({"ticker": "RAIN-NYC", "action": "buy", "side": "yes", "count": 1, "yes_price": 30});
    let (s, _) = ex.call(
        "POST",
        "/api/v1/portfolio/orders",
        &[("X-Api-Key", &k)],
        Some(&order),
    );
    assert_eq!(s, 201);
    let (s, body) = ex.call(
        "POST",
        "/api/v1/admin/kill_switch",
        &admin,
        Some(&json!({"on": true, "account": 2})),
    );
    assert_eq!(
        (s, body["canceled_count"].as_u64()),
        (200, Some(1)),
        "{body}"
    );
    let (s, body) = ex.call(
        "POST",
        "/api/v1/portfolio/orders",
        &[("X-Api-Key", &k)],
        Some(&order),
    );
    assert_eq!(
        (s, body["error"]["code"].as_str()),
        (409, Some("KillSwitchActive")),
        "{body}"
    );
    let (s, body) = ex.call(
        "POST",
        "/api/v1/admin/markets/RAIN-NYC/settle",
        &admin,
        Some(&json!({"result": "no"})),
    );
    assert_eq!(
        (
            s,
            body["market"]["status"].as_str(),
            body["market"]["result"].as_str()
        ),
        (200, Some("settled"), Some("no")),
        "{body}"
    );
    ex.stop();
}

#[test]
fn an_unknown_api_key_is_refused_before_the_upgrade() {
    let ex = Exchange::start();
    let err = tungstenite::connect(format!("ws://{}/ws?api_key=stolen", ex.addr)).unwrap_err();
    match err {
        tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("{other}"),
    }
    // Without a key the connection is public: order entry needs a key.
    let mut ws = ex.ws(None);
    let r = ws.call("list_orders", json!({}));
    assert_eq!(r["msg"]["code"], 9, "{r}");
    ex.stop();
}
