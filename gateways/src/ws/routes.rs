//! The REST routes: one table that both the router and the OpenAPI
//! document (`GET /api/v1/openapi.json`) are built from, so they cannot
//! disagree about which paths and methods exist.

use serde_json::{json, Map, Value};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone.
    Public,
    /// A configured API key (`X-Api-Key` or `Authorization: Bearer`).
    Account,
    /// The admin key (`X-Admin-Key`).
    Admin,
}

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum RouteId {
    Health,
    Metrics,
    OpenApi,
    ListMarkets,
    GetMarket,
    GetOrderbook,
    GetTrades,
    CreateOrder,
    ListOrders,
    MassCancel,
    GetOrder,
    CancelOrder,
    AmendOrder,
    GetBalance,
    GetPositions,
    AdminAddMarket,
    AdminHalt,
    AdminResume,
    AdminSettle,
    AdminKillSwitch,
    AdminDeposit,
    Monitor,
}

/// One route: method, path pattern (`{name}` matches one segment), who may
/// call it, what it does, and for OpenAPI a summary and a request body.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// HTTP method.
    pub method: &'static str,
    /// Path pattern.
    pub path: &'static str,
    /// Access.
    pub auth: Auth,
    /// Handler.
    pub id: RouteId,
    /// One line for the OpenAPI document.
    pub summary: &'static str,
    /// Name of the JSON body schema, if it takes one.
    pub body: Option<&'static str>,
    /// Query parameters.
    pub query: &'static [&'static str],
}

const fn route(
    method: &'static str,
    path: &'static str,
    auth: Auth,
    id: RouteId,
    summary: &'static str,
) -> Route {
    Route {
        method,
        path,
        auth,
        id,
        summary,
        body: None,
        query: &[],
    }
}

/// Every route the server answers.
pub const ROUTES: &[Route] = &[
    route(
        "GET",
        "/healthz",
        Auth::Public,
        RouteId::Health,
        "Liveness: 200 while the gateway is fed by the pipeline",
    ),
    route(
        "GET",
        "/metrics",
        Auth::Public,
        RouteId::Metrics,
        "Prometheus text metrics of the pipeline and the gateway",
    ),
    route(
        "GET",
        "/",
        Auth::Public,
        RouteId::Monitor,
        "The monitor page",
    ),
    route(
        "GET",
        "/api/v1/openapi.json",
        Auth::Public,
        RouteId::OpenApi,
        "This document",
    ),
    route(
        "GET",
        "/api/v1/markets",
        Auth::Public,
        RouteId::ListMarkets,
        "All markets",
    ),
    route(
        "GET",
        "/api/v1/markets/{ticker}",
        Auth::Public,
        RouteId::GetMarket,
        "One market",
    ),
    Route {
        query: &["depth"],
        ..route(
            "GET",
            "/api/v1/markets/{ticker}/orderbook",
            Auth::Public,
            RouteId::GetOrderbook,
            "Order book: yes/no bid arrays (binary) or bids/asks (spot), best `depth` levels",
        )
    },
    Route {
        query: &["limit"],
        ..route(
            "GET",
            "/api/v1/markets/{ticker}/trades",
            Auth::Public,
            RouteId::GetTrades,
            "Recent trades, newest first",
        )
    },
    Route {
        body: Some("OrderRequest"),
        ..route(
            "POST",
            "/api/v1/portfolio/orders",
            Auth::Account,
            RouteId::CreateOrder,
            "Create an order (client_order_id is the idempotency key)",
        )
    },
    Route {
        query: &["ticker"],
        ..route(
            "GET",
            "/api/v1/portfolio/orders",
            Auth::Account,
            RouteId::ListOrders,
            "The account's open orders",
        )
    },
    Route {
        query: &["ticker"],
        ..route(
            "DELETE",
            "/api/v1/portfolio/orders",
            Auth::Account,
            RouteId::MassCancel,
            "Cancel all the account's orders (optionally in one market)",
        )
    },
    route(
        "GET",
        "/api/v1/portfolio/orders/{order_id}",
        Auth::Account,
        RouteId::GetOrder,
        "One open order",
    ),
    route(
        "DELETE",
        "/api/v1/portfolio/orders/{order_id}",
        Auth::Account,
        RouteId::CancelOrder,
        "Cancel an order",
    ),
    Route {
        body: Some("AmendRequest"),
        ..route(
            "POST",
            "/api/v1/portfolio/orders/{order_id}/amend",
            Auth::Account,
            RouteId::AmendOrder,
            "Amend an order's price and/or total count",
        )
    },
    route(
        "GET",
        "/api/v1/portfolio/balance",
        Auth::Account,
        RouteId::GetBalance,
        "The account's balances per asset",
    ),
    route(
        "GET",
        "/api/v1/portfolio/positions",
        Auth::Account,
        RouteId::GetPositions,
        "The account's positions in binary markets",
    ),
    Route {
        body: Some("MarketConfig"),
        ..route(
            "POST",
            "/api/v1/admin/markets",
            Auth::Admin,
            RouteId::AdminAddMarket,
            "Add a market (AddInstrument) and list it",
        )
    },
    route(
        "POST",
        "/api/v1/admin/markets/{ticker}/halt",
        Auth::Admin,
        RouteId::AdminHalt,
        "Halt trading",
    ),
    route(
        "POST",
        "/api/v1/admin/markets/{ticker}/resume",
        Auth::Admin,
        RouteId::AdminResume,
        "Resume trading",
    ),
    Route {
        body: Some("SettleRequest"),
        ..route(
            "POST",
            "/api/v1/admin/markets/{ticker}/settle",
            Auth::Admin,
            RouteId::AdminSettle,
            "Settle a binary market",
        )
    },
    Route {
        body: Some("KillSwitchRequest"),
        ..route(
            "POST",
            "/api/v1/admin/kill_switch",
            Auth::Admin,
            RouteId::AdminKillSwitch,
            "Turn the global or an account's kill switch on or off",
        )
    },
    Route {
        body: Some("DepositRequest"),
        ..route(
            "POST",
            "/api/v1/admin/deposits",
            Auth::Admin,
            RouteId::AdminDeposit,
            "Credit an account",
        )
    },
];

/// Matches a path against a pattern; the captured `{...}` segments in order.
pub fn match_path<'a>(pattern: &str, path: &'a str) -> Option<Vec<&'a str>> {
    let mut captures = Vec::new();
    let mut p = pattern.split('/');
    let mut s = path.split('/');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return Some(captures),
            (Some(pp), Some(ss)) if pp.starts_with('{') && !ss.is_empty() => captures.push(ss),
            (Some(pp), Some(ss)) if pp == ss => {}
            _ => return None,
        }
    }
}

/// What the router found for a method and path.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A route and its captures.
    Found(&'static Route, Vec<&'a str>),
    /// The path exists, not with this method; the allowed methods.
    MethodNotAllowed(Vec<&'static str>),
    /// No such path.
    NotFound,
}

/// Finds the route for `method` and `path`.
pub fn lookup<'a>(method: &str, path: &'a str) -> Lookup<'a> {
    let mut allowed = Vec::new();
    for r in ROUTES {
        if let Some(captures) = match_path(r.path, path) {
            if r.method == method {
                return Lookup::Found(r, captures);
            }
            allowed.push(r.method);
        }
    }
    if allowed.is_empty() {
        Lookup::NotFound
    } else {
        Lookup::MethodNotAllowed(allowed)
    }
}

fn schemas() -> Value {
    let s = |props: Value, required: Value| json!({"type": "object", "properties": props, "required": required});
    json!({
        "OrderRequest": s(json!({
            "ticker": {"type": "string"},
            "action": {"type": "string", "enum": ["buy", "sell"]},
            "side": {"type": "string", "enum": ["yes", "no"], "description": "binary markets only"},
            "type": {"type": "string", "enum": ["limit", "market", "stop_limit", "stop_market"]},
            "count": {"type": "integer", "description": "contracts (binary)"},
            "quantity": {"type": "string", "description": "decimal quantity (spot)"},
            "yes_price": {"type": "integer", "description": "cents, for side yes"},
            "no_price": {"type": "integer", "description": "cents, for side no"},
            "price": {"type": "string", "description": "decimal price (spot), or dollars of the named side (binary)"},
            "stop_price": {"type": "string"},
            "client_order_id": {"type": "string"},
            "time_in_force": {"type": "string", "enum": ["gtc", "ioc", "fok", "gtd"]},
            "expiration_ts": {"type": "integer"},
            "post_only": {"type": "boolean"},
            "self_trade_prevention": {"type": "string", "enum": ["none", "cancel_taker", "cancel_maker", "cancel_both"]},
            "buy_max_cost": {"type": "string"}
        }), json!(["ticker", "action"])),
        "AmendRequest": s(json!({
            "new_client_order_id": {"type": "string"},
            "count": {"type": "integer"},
            "quantity": {"type": "string"},
            "yes_price": {"type": "integer"},
            "no_price": {"type": "integer"},
            "price": {"type": "string"}
        }), json!([])),
        "MarketConfig": s(json!({
            "ticker": {"type": "string"}, "instrument": {"type": "integer"},
            "kind": {"type": "string", "enum": ["binary", "spot"]}, "title": {"type": "string"},
            "price_decimals": {"type": "integer"}, "quantity_decimals": {"type": "integer"},
            "tick_size": {"type": "integer"}, "lot_size": {"type": "integer"},
            "min_price": {"type": "integer"}, "max_price": {"type": "integer"},
            "maker_fee_bps": {"type": "integer"}, "taker_fee_bps": {"type": "integer"},
            "quote_asset": {"type": "integer"}, "base_asset": {"type": "integer"}
        }), json!(["ticker", "instrument", "kind"])),
        "SettleRequest": s(json!({"result": {"type": "string", "enum": ["yes", "no"]}}), json!(["result"])),
        "KillSwitchRequest": s(json!({"on": {"type": "boolean"}, "account": {"type": "integer", "description": "omit for the global switch"}}), json!(["on"])),
        "DepositRequest": s(json!({"account": {"type": "integer"}, "asset": {"type": "integer"}, "amount": {"type": "integer"}}), json!(["account", "asset", "amount"])),
        "Error": s(json!({"error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}), json!(["error"]))
    })
}

/// The OpenAPI 3.0 document for [`ROUTES`].
pub fn openapi() -> Value {
    let mut paths = Map::new();
    for r in ROUTES {
        let mut op = Map::new();
        op.insert("summary".into(), json!(r.summary));
        op.insert("operationId".into(), json!(format!("{:?}", r.id)));
        let mut params: Vec<Value> = r
            .path
            .split('/')
            .filter(|s| s.starts_with('{'))
            .map(|s| {
                json!({"name": s.trim_matches(['{', '}']), "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .collect();
        params.extend(r.query.iter().map(
            |q| json!({"name": q, "in": "query", "required": false, "schema": {"type": "string"}}),
        ));
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(body) = r.body {
            op.insert(
                "requestBody".into(),
                json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}}),
            );
        }
        match r.auth {
            Auth::Public => {}
            Auth::Account => {
                op.insert("security".into(), json!([{"apiKey": []}]));
            }
            Auth::Admin => {
                op.insert("security".into(), json!([{"adminKey": []}]));
            }
        }
        op.insert(
            "responses".into(),
            json!({
                "200": {"description": "OK"},
                "4XX": {"description": "Client error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
            }),
        );
        let entry = paths
            .entry(r.path)
            .or_insert_with(|| Value::Object(Map::new()));
        entry[r.method.to_ascii_lowercase()] = Value::Object(op);
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "ringex REST API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
                "adminKey": {"type": "apiKey", "in": "header", "name": "X-Admin-Key"}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_capture_segments_and_methods_are_told_apart() {
        assert_eq!(
            match_path(
                "/api/v1/markets/{ticker}/orderbook",
                "/api/v1/markets/A-B/orderbook"
            ),
            Some(vec!["A-B"])
        );
        assert_eq!(
            match_path("/api/v1/markets/{ticker}", "/api/v1/markets/"),
            None
        );
        assert!(
            matches!(lookup("GET", "/api/v1/markets"), Lookup::Found(r, _) if r.id == RouteId::ListMarkets)
        );
        assert!(
            matches!(lookup("PUT", "/api/v1/markets"), Lookup::MethodNotAllowed(m) if m == vec!["GET"])
        );
        assert!(matches!(lookup("GET", "/nope"), Lookup::NotFound));
    }
}
