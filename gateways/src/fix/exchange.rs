//! The exchange behind the FIX sessions: NewOrderSingle (D) and
//! OrderCancelRequest (F) become engine commands on the pipeline's input
//! ring; the engine's events come back from a publisher sink as
//! ExecutionReports (8) and OrderCancelRejects (9).
//!
//! Scope of this first slice: limit and market orders on binary markets
//! (the YES leg, prices in whole cents), time in force GTC (and Day),
//! IOC and FOK, cancels and cancel/replaces by OrigClOrdID, order status
//! requests, mass cancels
//! (all orders or one symbol), and cancel-on-disconnect (a
//! journaled mass cancel when a configured session logs out or drops).
//! The account is the session's
//! first configured account, or Account (1) when it names another account
//! the session may trade. Anything else is refused with a reject that says
//! why; nothing is half-accepted.
//!
//! Thread: the FIX event loop owns it (it holds a `CommandSender` clone and
//! the sink's receiver; `poll` drains the sink without blocking).

use std::collections::HashMap;

use crossbeam_channel::Receiver;
use ringex_core::pipeline::{wall_clock_ns, CommandSender, SubmitError};
use ringex_core::records::{
    Command, CommandKind, Event, EventView, OrderSpec, OrderType, Outcome, SelfTradePrevention,
    Side, TimeInForce,
};

use super::app::{AppReject, Application};
use super::message::{Message, OutMessage};
use super::session::SessionConfig;
use super::time::{now_millis, Millis};

struct Order {
    session: String,
    account: u32,
    cl_ord_id: String,
    symbol: String,
    side: Side,
    quantity: u64,
    order_id: u64,
    cum_qty: u64,
    notional: u128,
    /// The ClOrdID of a cancel request in flight for this order.
    cancel_cl_ord_id: Option<String>,
    /// The order was cancelled (by request, IOC/FOK remainder, mass cancel...).
    cancelled: bool,
}

/// A cancel/replace in flight: the new ClOrdID and engine client order id.
struct PendingReplace {
    account: u32,
    orig_client_order_id: u64,
    cl_ord_id: String,
}

/// Maps FIX order entry onto the engine.
pub struct ExchangeApplication {
    sender: CommandSender,
    events: Receiver<Event>,
    symbols: HashMap<String, u32>,
    next_client_order_id: u64,
    /// By (account, engine client order id).
    orders: HashMap<(u32, u64), Order>,
    /// (account, ClOrdID) to the engine client order id.
    by_cl_ord_id: HashMap<(u32, String), u64>,
    /// Engine order id to (account, engine client order id).
    by_order_id: HashMap<u64, (u32, u64)>,
    next_exec_id: u64,
    /// Cancel/replace requests in flight, by (account, new engine client order id).
    replaces: HashMap<(u32, u64), PendingReplace>,
    /// Per-session token buckets: (tokens, last refill in ms).
    throttles: HashMap<String, (f64, Millis)>,
}

impl std::fmt::Debug for ExchangeApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeApplication")
            .field("symbols", &self.symbols)
            .field("orders", &self.orders.len())
            .finish()
    }
}

fn not_authorized(text: &str) -> AppReject {
    AppReject::Business {
        reason: 6,
        ref_tag: None,
        text: Some(text.to_string()),
    }
}

/// A whole number written as FIX decimal ("40", "40.", "40.00").
fn whole_number(value: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(value).ok()?;
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.is_empty() || !frac.bytes().all(|b| b == b'0') {
        return None;
    }
    int.parse().ok()
}

impl ExchangeApplication {
    /// An application submitting through `sender` and reading `events`
    /// (a sink registered on the same pipeline); `symbols` maps FIX Symbol
    /// (55) to instrument ids.
    pub fn new(
        sender: CommandSender,
        events: Receiver<Event>,
        symbols: HashMap<String, u32>,
    ) -> Self {
        Self {
            sender,
            events,
            symbols,
            // Engine client order ids must not repeat within an account, also
            // across restarts: start from the clock.
            next_client_order_id: wall_clock_ns() / 1000,
            orders: HashMap::new(),
            by_cl_ord_id: HashMap::new(),
            by_order_id: HashMap::new(),
            next_exec_id: 1,
            replaces: HashMap::new(),
            throttles: HashMap::new(),
        }
    }

    fn account(session: &SessionConfig, message: &Message) -> Result<u32, AppReject> {
        let requested = message
            .body_value(1)
            .map(|a| String::from_utf8_lossy(a).into_owned());
        let name = match requested {
            Some(a) if session.accounts.contains(&a) => a,
            Some(_) => return Err(not_authorized("this session may not trade that account")),
            None => session
                .accounts
                .first()
                .cloned()
                .ok_or_else(|| not_authorized("this session has no account"))?,
        };
        name.parse()
            .map_err(|_| not_authorized("the account is not numeric"))
    }

    /// Takes one token from the session's bucket (refilled continuously at
    /// `max_orders_per_sec`, holding at most one second's worth).
    fn throttled(&mut self, session: &SessionConfig) -> bool {
        let Some(rate) = session.max_orders_per_sec else {
            return false;
        };
        let rate = f64::from(rate);
        let now = now_millis();
        let bucket = self
            .throttles
            .entry(session.session_name())
            .or_insert((rate, now));
        bucket.0 = (bucket.0 + (now - bucket.1) as f64 / 1000.0 * rate).min(rate);
        bucket.1 = now;
        if bucket.0 >= 1.0 {
            bucket.0 -= 1.0;
            false
        } else {
            true
        }
    }

    fn exec_report(
        &mut self,
        key: (u32, u64),
        exec_type: &str,
        status: &str,
    ) -> Option<(String, OutMessage)> {
        let exec_id = self.next_exec_id;
        self.next_exec_id += 1;
        let o = self.orders.get(&key)?;
        let mut er = OutMessage::new("8");
        let avg = if o.cum_qty == 0 {
            "0".to_string()
        } else {
            format!("{:.4}", o.notional as f64 / o.cum_qty as f64)
        };
        er.set(1, o.account.to_string())
            .set(6, avg)
            .set(11, o.cl_ord_id.clone())
            .set(14, o.cum_qty.to_string())
            .set(17, exec_id.to_string())
            .set(37, o.order_id.to_string())
            .set(38, o.quantity.to_string())
            .set(39, status)
            .set(54, if o.side == Side::Buy { "1" } else { "2" })
            .set(55, o.symbol.clone())
            .set(150, exec_type)
            .set(151, o.quantity.saturating_sub(o.cum_qty).to_string());
        Some((o.session.clone(), er))
    }

    fn reject_new(message: &Message, text: &str, replies: &mut Vec<OutMessage>) {
        let mut er = OutMessage::new("8");
        er.set(6, "0")
            .set(11, message.body_value(11).unwrap_or_default())
            .set(14, "0")
            .set(17, "0")
            .set(37, "NONE")
            .set(39, "8")
            .set(54, message.body_value(54).unwrap_or(b"1"))
            .set(55, message.body_value(55).unwrap_or_default())
            .set(58, text)
            .set(150, "8")
            .set(151, "0");
        replies.push(er);
    }

    fn new_order(
        &mut self,
        session: &SessionConfig,
        message: &Message,
        replies: &mut Vec<OutMessage>,
    ) -> Result<(), AppReject> {
        let account = Self::account(session, message)?;
        let cl_ord_id =
            String::from_utf8_lossy(message.body_value(11).unwrap_or_default()).into_owned();
        if let Some(&known) = self.by_cl_ord_id.get(&(account, cl_ord_id.clone())) {
            if message.header_flag(97) {
                // PossResend of an order we have: answer with its status
                // instead of placing it twice.
                let status = self.order_status((account, known));
                if let Some((_, er)) = self.exec_report((account, known), "I", status) {
                    replies.push(er);
                }
                return Ok(());
            }
            Self::reject_new(message, "Duplicate ClOrdID", replies);
            return Ok(());
        }
        if self.throttled(session) {
            Self::reject_new(message, "Throttle limit exceeded", replies);
            return Ok(());
        }
        let symbol =
            String::from_utf8_lossy(message.body_value(55).unwrap_or_default()).into_owned();
        let Some(&instrument) = self.symbols.get(&symbol) else {
            Self::reject_new(message, "Unknown symbol", replies);
            return Ok(());
        };
        let side = match message.body_value(54) {
            Some(b"1") => Side::Buy,
            Some(b"2") => Side::Sell,
            _ => {
                Self::reject_new(message, "Side must be 1 (buy) or 2 (sell)", replies);
                return Ok(());
            }
        };
        let order_type = match message.body_value(40) {
            Some(b"1") => OrderType::Market,
            Some(b"2") => OrderType::Limit,
            _ => {
                Self::reject_new(message, "OrdType must be 1 (market) or 2 (limit)", replies);
                return Ok(());
            }
        };
        let time_in_force = match message.body_value(59) {
            None | Some(b"0") | Some(b"1") => TimeInForce::Gtc,
            Some(b"3") => TimeInForce::Ioc,
            Some(b"4") => TimeInForce::Fok,
            _ => {
                Self::reject_new(message, "TimeInForce must be 0, 1, 3 or 4", replies);
                return Ok(());
            }
        };
        let Some(quantity) = message
            .body_value(38)
            .and_then(whole_number)
            .filter(|q| *q > 0)
        else {
            Self::reject_new(message, "OrderQty must be a positive whole number", replies);
            return Ok(());
        };
        let price = match (order_type, message.body_value(44)) {
            (OrderType::Limit, Some(p)) => match whole_number(p) {
                Some(p) => p as i64,
                None => {
                    Self::reject_new(message, "Price must be whole cents", replies);
                    return Ok(());
                }
            },
            (OrderType::Limit, None) => {
                Self::reject_new(message, "A limit order needs a Price", replies);
                return Ok(());
            }
            _ => 0,
        };
        let client_order_id = self.next_client_order_id;
        self.next_client_order_id += 1;
        let spec = OrderSpec {
            account,
            instrument,
            client_order_id,
            side,
            outcome: Outcome::Yes,
            order_type,
            time_in_force,
            price,
            quantity,
            stop_price: 0,
            expire_time: 0,
            quote_budget: 0,
            post_only: false,
            stp: SelfTradePrevention::None,
        };
        match self.sender.try_submit(Command::new_order(spec)) {
            Ok(_) => {
                self.by_cl_ord_id
                    .insert((account, cl_ord_id.clone()), client_order_id);
                self.orders.insert(
                    (account, client_order_id),
                    Order {
                        session: session.session_name(),
                        account,
                        cl_ord_id,
                        symbol,
                        side,
                        quantity,
                        order_id: 0,
                        cum_qty: 0,
                        notional: 0,
                        cancel_cl_ord_id: None,
                        cancelled: false,
                    },
                );
            }
            Err(SubmitError::Busy) => Self::reject_new(message, "Busy: try again", replies),
            Err(e) => Self::reject_new(message, &e.to_string(), replies),
        }
        Ok(())
    }

    fn cancel(
        &mut self,
        session: &SessionConfig,
        message: &Message,
        replies: &mut Vec<OutMessage>,
    ) -> Result<(), AppReject> {
        let account = Self::account(session, message)?;
        let orig = String::from_utf8_lossy(message.body_value(41).unwrap_or_default()).into_owned();
        let cl_ord_id =
            String::from_utf8_lossy(message.body_value(11).unwrap_or_default()).into_owned();
        let target = self.by_cl_ord_id.get(&(account, orig.clone())).copied();
        let reject = |text: &str, replies: &mut Vec<OutMessage>| {
            let mut r = OutMessage::new("9");
            r.set(11, cl_ord_id.clone())
                .set(37, "NONE")
                .set(39, "8")
                .set(41, orig.clone())
                .set(58, text)
                .set(102, "1")
                .set(434, "1");
            replies.push(r);
        };
        let Some(target) = target else {
            reject("Unknown order", replies);
            return Ok(());
        };
        match self
            .sender
            .try_submit(Command::cancel_by_client_id(account, target))
        {
            Ok(_) => {
                if let Some(o) = self.orders.get_mut(&(account, target)) {
                    o.cancel_cl_ord_id = Some(cl_ord_id.clone());
                }
            }
            Err(e) => reject(&e.to_string(), replies),
        }
        Ok(())
    }

    fn cancel_reject(
        cl_ord_id: &str,
        orig: &str,
        order_id: &str,
        response_to: &str,
        text: &str,
    ) -> OutMessage {
        let mut r = OutMessage::new("9");
        r.set(11, cl_ord_id)
            .set(37, order_id)
            .set(39, "8")
            .set(41, orig)
            .set(58, text)
            .set(102, "1")
            .set(434, response_to);
        r
    }

    fn replace(
        &mut self,
        session: &SessionConfig,
        message: &Message,
        replies: &mut Vec<OutMessage>,
    ) -> Result<(), AppReject> {
        let account = Self::account(session, message)?;
        let orig = String::from_utf8_lossy(message.body_value(41).unwrap_or_default()).into_owned();
        let cl_ord_id =
            String::from_utf8_lossy(message.body_value(11).unwrap_or_default()).into_owned();
        let Some(target) = self.by_cl_ord_id.get(&(account, orig.clone())).copied() else {
            replies.push(Self::cancel_reject(
                &cl_ord_id,
                &orig,
                "NONE",
                "2",
                "Unknown order",
            ));
            return Ok(());
        };
        if self
            .by_cl_ord_id
            .contains_key(&(account, cl_ord_id.clone()))
        {
            replies.push(Self::cancel_reject(
                &cl_ord_id,
                &orig,
                "NONE",
                "2",
                "Duplicate ClOrdID",
            ));
            return Ok(());
        }
        let quantity = message
            .body_value(38)
            .and_then(whole_number)
            .filter(|q| *q > 0);
        let price = message.body_value(44).and_then(whole_number);
        let (Some(quantity), Some(price)) = (quantity, price) else {
            let text = "OrderQty and Price must be whole numbers";
            replies.push(Self::cancel_reject(&cl_ord_id, &orig, "NONE", "2", text));
            return Ok(());
        };
        let new_id = self.next_client_order_id;
        self.next_client_order_id += 1;
        let cmd = Command::replace_by_client_id(account, target, new_id, price as i64, quantity);
        match self.sender.try_submit(cmd) {
            Ok(_) => {
                self.replaces.insert(
                    (account, new_id),
                    PendingReplace {
                        account,
                        orig_client_order_id: target,
                        cl_ord_id,
                    },
                );
            }
            Err(e) => replies.push(Self::cancel_reject(
                &cl_ord_id,
                &orig,
                "NONE",
                "2",
                &e.to_string(),
            )),
        }
        Ok(())
    }

    fn order_status(&self, key: (u32, u64)) -> &'static str {
        match self.orders.get(&key) {
            Some(o) if o.cancelled => "4",
            Some(o) if o.cum_qty >= o.quantity => "2",
            Some(o) if o.cum_qty > 0 => "1",
            _ => "0",
        }
    }

    fn status(
        &mut self,
        session: &SessionConfig,
        message: &Message,
        replies: &mut Vec<OutMessage>,
    ) -> Result<(), AppReject> {
        let account = Self::account(session, message)?;
        let cl_ord_id =
            String::from_utf8_lossy(message.body_value(11).unwrap_or_default()).into_owned();
        let Some(&known) = self.by_cl_ord_id.get(&(account, cl_ord_id)) else {
            let mut er = OutMessage::new("8");
            er.set(6, "0")
                .set(11, message.body_value(11).unwrap_or_default())
                .set(14, "0")
                .set(17, "0")
                .set(37, "NONE")
                .set(39, "8")
                .set(54, message.body_value(54).unwrap_or(b"1"))
                .set(55, message.body_value(55).unwrap_or_default())
                .set(58, "Unknown order")
                .set(150, "I")
                .set(151, "0");
            replies.push(er);
            return Ok(());
        };
        let status = self.order_status((account, known));
        if let Some((_, er)) = self.exec_report((account, known), "I", status) {
            replies.push(er);
        }
        Ok(())
    }

    fn mass_cancel(
        &mut self,
        session: &SessionConfig,
        message: &Message,
        replies: &mut Vec<OutMessage>,
    ) -> Result<(), AppReject> {
        let account = Self::account(session, message)?;
        let cl_ord_id = message.body_value(11).unwrap_or_default().to_vec();
        let request_type = message.body_value(530).unwrap_or(b"7").to_vec();
        let instrument = match request_type.as_slice() {
            b"7" => Ok(None),
            b"1" => {
                let symbol = String::from_utf8_lossy(message.body_value(55).unwrap_or_default())
                    .into_owned();
                self.symbols
                    .get(&symbol)
                    .map(|id| Some(*id))
                    .ok_or("Unknown symbol")
            }
            _ => Err("MassCancelRequestType must be 1 (security) or 7 (all orders)"),
        };
        let mut report = OutMessage::new("r");
        report
            .set(11, &cl_ord_id)
            .set(37, "NONE")
            .set(530, &request_type);
        let outcome = instrument.and_then(|i| {
            self.sender
                .try_submit(Command::mass_cancel(account, i))
                .map_err(|_| "Busy: try again")
        });
        match outcome {
            // The cancelled orders follow as ExecutionReports.
            Ok(_) => {
                report.set(531, &request_type);
            }
            Err(text) => {
                report.set(531, "0").set(532, "99").set(58, text);
            }
        }
        replies.push(report);
        Ok(())
    }

    fn on_event(&mut self, event: &Event, send: &mut dyn FnMut(&str, OutMessage)) {
        let Some(view) = event.decode() else {
            return;
        };
        let mut emit = |item: Option<(String, OutMessage)>| {
            if let Some((session, msg)) = item {
                send(&session, msg);
            }
        };
        match view {
            EventView::OrderAccepted {
                account,
                client_order_id,
                order_id,
                ..
            } => {
                let key = (account, client_order_id);
                if let Some(o) = self.orders.get_mut(&key) {
                    o.order_id = order_id;
                    self.by_order_id.insert(order_id, key);
                    emit(self.exec_report(key, "0", "0"));
                }
            }
            EventView::Rejected {
                account,
                command,
                reason,
                client_order_id,
                ..
            } => {
                let key = (account, client_order_id);
                match command {
                    Some(CommandKind::NewOrder) => {
                        if let Some((session, mut er)) = self.exec_report(key, "8", "8") {
                            er.set(58, reason.text());
                            emit(Some((session, er)));
                            if let Some(o) = self.orders.remove(&key) {
                                self.by_cl_ord_id.remove(&(account, o.cl_ord_id));
                            }
                        }
                    }
                    Some(CommandKind::Replace) => {
                        // The reject names the new or the original client
                        // order id; find the request either way.
                        let pending = self.replaces.remove(&key).or_else(|| {
                            let new_key = self
                                .replaces
                                .iter()
                                .find(|(k, p)| {
                                    k.0 == account && p.orig_client_order_id == client_order_id
                                })
                                .map(|(k, _)| *k)?;
                            self.replaces.remove(&new_key)
                        });
                        if let Some(p) = pending {
                            let orig_key = (p.account, p.orig_client_order_id);
                            if let Some(o) = self.orders.get(&orig_key) {
                                let order_id = o.order_id.to_string();
                                let mut r = Self::cancel_reject(
                                    &p.cl_ord_id,
                                    &o.cl_ord_id,
                                    &order_id,
                                    "2",
                                    reason.text(),
                                );
                                r.set(39, if o.cum_qty > 0 { "1" } else { "0" });
                                emit(Some((o.session.clone(), r)));
                            }
                        }
                    }
                    Some(CommandKind::Cancel) => {
                        if let Some(o) = self.orders.get_mut(&key) {
                            let mut r = OutMessage::new("9");
                            r.set(11, o.cancel_cl_ord_id.take().unwrap_or_default())
                                .set(37, o.order_id.to_string())
                                .set(39, if o.cum_qty > 0 { "1" } else { "0" })
                                .set(41, o.cl_ord_id.clone())
                                .set(58, reason.text())
                                .set(102, "0")
                                .set(434, "1");
                            emit(Some((o.session.clone(), r)));
                        }
                    }
                    _ => {}
                }
            }
            EventView::Trade {
                maker_order_id,
                taker_order_id,
                price,
                quantity,
                maker_leaves,
                taker_leaves,
                ..
            } => {
                for (order_id, leaves) in [
                    (maker_order_id, maker_leaves),
                    (taker_order_id, taker_leaves),
                ] {
                    let Some(&key) = self.by_order_id.get(&order_id) else {
                        continue;
                    };
                    if let Some(o) = self.orders.get_mut(&key) {
                        o.cum_qty += quantity;
                        o.notional += u128::from(quantity) * price.max(0) as u128;
                        o.quantity = o.cum_qty + leaves;
                    }
                    let status = if leaves == 0 { "2" } else { "1" };
                    if let Some((session, mut er)) = self.exec_report(key, "F", status) {
                        er.set(31, price.to_string()).set(32, quantity.to_string());
                        emit(Some((session, er)));
                    }
                }
            }
            EventView::OrderReplaced {
                account,
                order_id,
                client_order_id,
                quantity,
                leaves,
                ..
            } => {
                let new_key = (account, client_order_id);
                let Some(p) = self.replaces.remove(&new_key) else {
                    return;
                };
                let Some(mut o) = self.orders.remove(&(account, p.orig_client_order_id)) else {
                    return;
                };
                let orig_cl_ord_id = std::mem::replace(&mut o.cl_ord_id, p.cl_ord_id.clone());
                self.by_cl_ord_id.remove(&(account, orig_cl_ord_id.clone()));
                self.by_cl_ord_id
                    .insert((account, p.cl_ord_id), client_order_id);
                self.by_order_id.remove(&o.order_id);
                o.order_id = order_id;
                o.quantity = quantity.max(o.cum_qty + leaves);
                self.by_order_id.insert(order_id, new_key);
                self.orders.insert(new_key, o);
                let status = if self.orders[&new_key].cum_qty > 0 {
                    "1"
                } else {
                    "0"
                };
                if let Some((session, mut er)) = self.exec_report(new_key, "5", status) {
                    er.set(41, orig_cl_ord_id);
                    emit(Some((session, er)));
                }
            }
            EventView::OrderCancelled {
                account,
                client_order_id,
                reason,
                ..
            } => {
                let key = (account, client_order_id);
                let cancel_id = self.orders.get_mut(&key).and_then(|o| {
                    o.cancelled = true;
                    o.cancel_cl_ord_id.take()
                });
                if let Some((session, mut er)) = self.exec_report(key, "4", "4") {
                    if let Some(cancel_id) = cancel_id {
                        let orig = self
                            .orders
                            .get(&key)
                            .map(|o| o.cl_ord_id.clone())
                            .unwrap_or_default();
                        er.set(11, cancel_id).set(41, orig);
                    }
                    er.set(58, format!("{reason:?}"));
                    er.set(151, "0");
                    emit(Some((session, er)));
                }
            }
            _ => {}
        }
    }
}

impl Application for ExchangeApplication {
    /// Cancel-on-disconnect: a journaled mass cancel of every account the
    /// session trades, when the session is configured for it.
    fn on_logout(&mut self, session: &SessionConfig) {
        if !session.cancel_on_disconnect {
            return;
        }
        for account in session
            .accounts
            .iter()
            .filter_map(|a| a.parse::<u32>().ok())
        {
            // A full ring cannot wait here; the ring is sized for bursts and
            // a failure is visible as orders left open (documented).
            let _ = self.sender.try_submit(Command::mass_cancel(account, None));
        }
    }

    fn on_app_message(
        &mut self,
        session: &SessionConfig,
        message: &Message,
        replies: &mut Vec<OutMessage>,
    ) -> Result<(), AppReject> {
        if matches!(message.msg_type(), b"F" | b"G" | b"q") && self.throttled(session) {
            return Err(AppReject::Business {
                reason: 0,
                ref_tag: None,
                text: Some("Throttle limit exceeded".to_string()),
            });
        }
        match message.msg_type() {
            b"D" => self.new_order(session, message, replies),
            b"F" => self.cancel(session, message, replies),
            b"G" => self.replace(session, message, replies),
            b"H" => self.status(session, message, replies),
            b"q" => self.mass_cancel(session, message, replies),
            _ => Err(AppReject::UnsupportedMessageType),
        }
    }

    fn polls(&self) -> bool {
        true
    }

    fn poll(&mut self, send: &mut dyn FnMut(&str, OutMessage)) {
        for _ in 0..4096 {
            let Ok(event) = self.events.try_recv() else {
                return;
            };
            self.on_event(&event, send);
        }
    }
}
