//! Commands and events as named fields, for people (`key=value`) and for
//! programs (JSON objects).
//!
//! A record that does not decode (an unknown kind or version, an invalid
//! enum byte) is not an error here: it is shown as `malformed` with its raw
//! bytes in hex, because a journal may legitimately hold a malformed
//! command (the engine rejected it).

use ringex_core::records::{
    Command, CommandView, Event, EventView, Outcome, SelfTradePrevention, TimeInForce,
};
use serde_json::{json, Map, Value};

/// A record's kind name and its fields in a fixed order.
#[derive(Debug, Clone, PartialEq)]
pub struct Described {
    /// `"NewOrder"`, `"Trade"`, ... or `"Malformed"`.
    pub kind: String,
    /// Field names and values.
    pub fields: Vec<(&'static str, Value)>,
}

impl Described {
    fn new(kind: impl Into<String>) -> Described {
        Described {
            kind: kind.into(),
            fields: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: impl Into<Value>) -> Described {
        self.fields.push((name, value.into()));
        self
    }

    /// `Kind name=value name=value ...`.
    pub fn human(&self) -> String {
        let mut s = self.kind.clone();
        for (name, value) in &self.fields {
            s.push(' ');
            s.push_str(name);
            s.push('=');
            match value {
                Value::String(v) => s.push_str(v),
                v => s.push_str(&v.to_string()),
            }
        }
        s
    }

    /// `{"kind": ..., fields...}`.
    pub fn json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("kind".into(), Value::String(self.kind.clone()));
        for (name, value) in &self.fields {
            m.insert((*name).into(), value.clone());
        }
        m
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn name<T: std::fmt::Debug>(v: T) -> String {
    format!("{v:?}")
}

/// The fields of a command (without its sequence and timestamp).
pub fn describe_command(cmd: &Command) -> Described {
    let view = match cmd.decode() {
        Ok(v) => v,
        Err(reason) => {
            return Described::new("Malformed")
                .with("kind_byte", cmd.kind)
                .with("version", cmd.version)
                .with("account", cmd.account)
                .with("problem", reason.text())
                .with("bytes", hex(bytemuck::bytes_of(cmd)))
        }
    };
    match view {
        CommandView::AddInstrument(s) => Described::new("AddInstrument")
            .with("instrument", s.id)
            .with("instrument_kind", name(s.kind))
            .with("tick_size", s.tick_size)
            .with("lot_size", s.lot_size)
            .with("min_price", s.min_price)
            .with("max_price", s.max_price)
            .with("maker_fee_bps", s.maker_fee_bps)
            .with("taker_fee_bps", s.taker_fee_bps)
            .with("base_asset", s.base_asset)
            .with("quote_asset", s.quote_asset),
        CommandView::AddAccount { account } => {
            Described::new("AddAccount").with("account", account)
        }
        CommandView::Deposit {
            account,
            asset,
            amount,
        } => Described::new("Deposit")
            .with("account", account)
            .with("asset", asset)
            .with("amount", amount),
        CommandView::Withdraw {
            account,
            asset,
            amount,
        } => Described::new("Withdraw")
            .with("account", account)
            .with("asset", asset)
            .with("amount", amount),
        CommandView::NewOrder(o) => {
            let mut d = Described::new("NewOrder")
                .with("account", o.account)
                .with("instrument", o.instrument)
                .with("client_order_id", o.client_order_id)
                .with("side", name(o.side));
            if o.outcome != Outcome::None {
                d = d.with("outcome", name(o.outcome));
            }
            d = d
                .with("order_type", name(o.order_type))
                .with("time_in_force", name(o.time_in_force))
                .with("price", o.price)
                .with("quantity", o.quantity);
            if o.stop_price != 0 {
                d = d.with("stop_price", o.stop_price);
            }
            if o.time_in_force == TimeInForce::Gtd {
                d = d.with("expire_time", o.expire_time);
            }
            if o.quote_budget != 0 {
                d = d.with("quote_budget", o.quote_budget);
            }
            if o.post_only {
                d = d.with("post_only", true);
            }
            if o.stp != SelfTradePrevention::None {
                d = d.with("stp", name(o.stp));
            }
            d
        }
        CommandView::Cancel {
            account,
            order_id,
            client_order_id,
        } => Described::new("Cancel")
            .with("account", account)
            .with("order_id", order_id)
            .with("client_order_id", client_order_id),
        CommandView::Replace {
            account,
            order_id,
            orig_client_order_id,
            new_client_order_id,
            price,
            quantity,
        } => Described::new("Replace")
            .with("account", account)
            .with("order_id", order_id)
            .with("orig_client_order_id", orig_client_order_id)
            .with("client_order_id", new_client_order_id)
            .with("price", price)
            .with("quantity", quantity),
        CommandView::MassCancel {
            account,
            instrument,
        } => Described::new("MassCancel")
            .with("account", account)
            .with("instrument", instrument.map_or(Value::Null, Value::from)),
        CommandView::SetLimits { account, limits } => Described::new("SetLimits")
            .with("account", account)
            .with("max_order_quantity", limits.max_order_quantity)
            .with("max_open_orders", limits.max_open_orders)
            .with("max_notional", limits.max_notional)
            .with("max_position", limits.max_position),
        CommandView::KillSwitch { account, on } => Described::new("KillSwitch")
            .with("account", account.map_or(Value::from("all"), Value::from))
            .with("on", on),
        CommandView::Halt { instrument } => Described::new("Halt").with("instrument", instrument),
        CommandView::Resume { instrument } => {
            Described::new("Resume").with("instrument", instrument)
        }
        CommandView::Settle {
            instrument,
            outcome,
        } => Described::new("Settle")
            .with("instrument", instrument)
            .with("outcome", name(outcome)),
        CommandView::TimerTick => Described::new("TimerTick"),
        CommandView::StateDigest => Described::new("StateDigest"),
    }
}

/// The fields of an event (without the producing command's sequence).
pub fn describe_event(event: &Event) -> Described {
    let Some(view) = event.decode() else {
        return Described::new("Malformed")
            .with("kind_byte", event.kind)
            .with("version", event.version)
            .with("bytes", hex(bytemuck::bytes_of(event)));
    };
    match view {
        EventView::OrderAccepted {
            instrument,
            account,
            side,
            order_id,
            client_order_id,
            price,
            quantity,
            stop_price,
            order_type,
            time_in_force,
            outcome,
        } => {
            let mut d = Described::new("OrderAccepted")
                .with("instrument", instrument)
                .with("account", account)
                .with("order_id", order_id)
                .with("client_order_id", client_order_id)
                .with("side", name(side));
            if outcome != Outcome::None {
                d = d.with("outcome", name(outcome));
            }
            d = d
                .with("order_type", name(order_type))
                .with("time_in_force", name(time_in_force))
                .with("price", price)
                .with("quantity", quantity);
            if stop_price != 0 {
                d = d.with("stop_price", stop_price);
            }
            d
        }
        EventView::Rejected {
            account,
            instrument,
            command,
            reason,
            client_order_id,
            order_id,
        } => Described::new("Rejected")
            .with("account", account)
            .with("instrument", instrument)
            .with(
                "command",
                command.map_or(Value::Null, |c| Value::from(name(c))),
            )
            .with("code", reason as u16)
            .with("reason", name(reason))
            .with("text", reason.text())
            .with("client_order_id", client_order_id)
            .with("order_id", order_id),
        EventView::Trade {
            instrument,
            aggressor,
            taker_account,
            maker_account,
            trade_id,
            maker_order_id,
            taker_order_id,
            price,
            quantity,
            maker_fee,
            taker_fee,
            maker_leaves,
            taker_leaves,
        } => Described::new("Trade")
            .with("instrument", instrument)
            .with("trade_id", trade_id)
            .with("price", price)
            .with("quantity", quantity)
            .with("aggressor", name(aggressor))
            .with("taker_account", taker_account)
            .with("taker_order_id", taker_order_id)
            .with("maker_account", maker_account)
            .with("maker_order_id", maker_order_id)
            .with("maker_fee", maker_fee)
            .with("taker_fee", taker_fee)
            .with("maker_leaves", maker_leaves)
            .with("taker_leaves", taker_leaves),
        EventView::OrderCancelled {
            instrument,
            account,
            reason,
            order_id,
            client_order_id,
            cancelled_quantity,
            filled_quantity,
        } => Described::new("OrderCancelled")
            .with("instrument", instrument)
            .with("account", account)
            .with("order_id", order_id)
            .with("client_order_id", client_order_id)
            .with("reason", name(reason))
            .with("cancelled_quantity", cancelled_quantity)
            .with("filled_quantity", filled_quantity),
        EventView::OrderReplaced {
            instrument,
            account,
            order_id,
            client_order_id,
            orig_client_order_id,
            price,
            quantity,
            leaves,
            kept_priority,
        } => Described::new("OrderReplaced")
            .with("instrument", instrument)
            .with("account", account)
            .with("order_id", order_id)
            .with("client_order_id", client_order_id)
            .with("orig_client_order_id", orig_client_order_id)
            .with("price", price)
            .with("quantity", quantity)
            .with("leaves", leaves)
            .with("kept_priority", kept_priority),
        EventView::StopTriggered {
            instrument,
            account,
            order_id,
            client_order_id,
            stop_price,
            last_price,
        } => Described::new("StopTriggered")
            .with("instrument", instrument)
            .with("account", account)
            .with("order_id", order_id)
            .with("client_order_id", client_order_id)
            .with("stop_price", stop_price)
            .with("last_price", last_price),
        EventView::BookLevel {
            instrument,
            side,
            price,
            quantity,
            orders,
        } => Described::new("BookLevel")
            .with("instrument", instrument)
            .with("side", name(side))
            .with("price", price)
            .with("quantity", quantity)
            .with("orders", orders),
        EventView::BalanceChanged {
            account,
            asset,
            available,
            reserved,
        } => Described::new("BalanceChanged")
            .with("account", account)
            .with("asset", asset)
            .with("available", available)
            .with("reserved", reserved),
        EventView::PositionChanged {
            account,
            instrument,
            position,
            open_interest,
        } => Described::new("PositionChanged")
            .with("account", account)
            .with("instrument", instrument)
            .with("position", position)
            .with("open_interest", open_interest),
        EventView::InstrumentStatusChanged { instrument, status } => {
            Described::new("InstrumentStatusChanged")
                .with("instrument", instrument)
                .with("status", name(status))
        }
        EventView::MarketSettled {
            instrument,
            outcome,
            open_interest,
            paid,
        } => Described::new("MarketSettled")
            .with("instrument", instrument)
            .with("outcome", name(outcome))
            .with("open_interest", open_interest)
            .with("paid", paid),
        EventView::Ack {
            command,
            account,
            instrument,
            value,
        } => Described::new("Ack")
            .with("command", name(command))
            .with("account", account)
            .with("instrument", instrument)
            .with("value", value),
        EventView::StateDigest {
            digest,
            open_orders,
            accounts,
            instruments,
        } => Described::new("StateDigest")
            .with("digest", format!("{digest:#018x}"))
            .with("open_orders", open_orders)
            .with("accounts", accounts)
            .with("instruments", instruments),
    }
}

/// The instrument a command names, if its kind names one (deposits carry
/// an asset in the same field, cancels and replaces name an order).
pub fn command_instrument(cmd: &Command) -> Option<u32> {
    match cmd.decode().ok()? {
        CommandView::AddInstrument(s) => Some(s.id),
        CommandView::NewOrder(o) => Some(o.instrument),
        CommandView::MassCancel { instrument, .. } => instrument,
        CommandView::Halt { instrument }
        | CommandView::Resume { instrument }
        | CommandView::Settle { instrument, .. } => Some(instrument),
        _ => None,
    }
}

/// The account a command acts for, if any.
pub fn command_account(cmd: &Command) -> Option<u32> {
    match cmd.decode().ok()? {
        CommandView::AddAccount { account }
        | CommandView::Deposit { account, .. }
        | CommandView::Withdraw { account, .. }
        | CommandView::Cancel { account, .. }
        | CommandView::Replace { account, .. }
        | CommandView::MassCancel { account, .. }
        | CommandView::SetLimits { account, .. } => Some(account),
        CommandView::NewOrder(o) => Some(o.account),
        CommandView::KillSwitch { account, .. } => account,
        _ => None,
    }
}

/// Whether an event concerns `instrument`.
pub fn event_has_instrument(event: &Event, instrument: u32) -> bool {
    match event.decode() {
        Some(EventView::BalanceChanged { .. }) | Some(EventView::StateDigest { .. }) | None => {
            false
        }
        Some(_) => event.instrument == instrument,
    }
}

/// Whether an event concerns `account` (a trade concerns both its taker and
/// its maker).
pub fn event_has_account(event: &Event, account: u32) -> bool {
    match event.decode() {
        Some(EventView::Trade {
            taker_account,
            maker_account,
            ..
        }) => taker_account == account || maker_account == account,
        Some(EventView::BookLevel { .. })
        | Some(EventView::InstrumentStatusChanged { .. })
        | Some(EventView::MarketSettled { .. })
        | Some(EventView::StateDigest { .. })
        | None => false,
        Some(_) => event.account == account,
    }
}

/// A command as one JSON line's object, with its sequence and timestamp.
pub fn command_json(cmd: &Command) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("command"));
    m.insert("sequence".into(), json!(cmd.sequence));
    m.insert("timestamp".into(), json!(cmd.timestamp));
    m.extend(describe_command(cmd).json());
    Value::Object(m)
}

/// An event as one JSON line's object, with its index, timestamp and the
/// producing command's sequence.
pub fn event_json(index: u64, timestamp: u64, event: &Event) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("event"));
    m.insert("index".into(), json!(index));
    m.insert("sequence".into(), json!(event.sequence));
    m.insert("timestamp".into(), json!(timestamp));
    m.extend(describe_event(event).json());
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringex_core::records::{EventKind, OrderSpec, Side};

    #[test]
    fn a_new_order_reads_as_key_value_pairs() {
        let cmd = Command::new_order(OrderSpec {
            outcome: Outcome::Yes,
            ..OrderSpec::limit(7, 1, 42, Side::Buy, 40, 10)
        });
        assert_eq!(
            describe_command(&cmd).human(),
            "NewOrder account=7 instrument=1 client_order_id=42 side=Buy outcome=Yes order_type=Limit time_in_force=Gtc price=40 quantity=10"
        );
        assert_eq!(command_instrument(&cmd), Some(1));
        assert_eq!(command_account(&cmd), Some(7));
    }

    #[test]
    fn a_malformed_record_shows_its_bytes_instead_of_failing() {
        let mut cmd = Command::timer_tick();
        cmd.kind = 200;
        let d = describe_command(&cmd);
        assert_eq!(d.kind, "Malformed");
        assert!(d.human().contains("bytes=c801"), "{}", d.human());
        let mut ev = Event::new(EventKind::Trade, 3);
        ev.version = 9;
        assert_eq!(describe_event(&ev).kind, "Malformed");
    }

    #[test]
    fn a_trade_concerns_both_accounts_and_its_instrument() {
        let mut ev = Event::new(EventKind::Trade, 3);
        ev.instrument = 4;
        ev.account = 7;
        ev.code = 8;
        assert!(event_has_account(&ev, 7) && event_has_account(&ev, 8));
        assert!(!event_has_account(&ev, 9));
        assert!(event_has_instrument(&ev, 4) && !event_has_instrument(&ev, 5));
        let json = event_json(1, 2, &ev);
        assert_eq!(json["kind"], "Trade");
        assert_eq!(json["maker_account"], 8);
    }
}
