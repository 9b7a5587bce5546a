//! `export`: trades or orders as CSV or JSON lines.
//!
//! - **trades**: one row per `Trade` event, in event order.
//! - **orders**: one row per order, written when the order finishes
//!   (filled or cancelled) and, at the end, for every order still open or
//!   waiting as a stop, in order id order. The rows stream, so a session
//!   of millions of orders needs memory only for its live orders.
//!
//! All values are integers or enum names, so the CSV needs no quoting.
//!
//! **Threads.** Runs on the caller's thread.

use crate::book::{OrderTracker, TrackedOrder};
use crate::source::JournaledEvent;
use ringex_core::records::EventView;
use serde_json::{json, Value};
use std::io::Write;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated, with a header line.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// Column names of the trades export.
pub const TRADE_COLUMNS: [&str; 14] = [
    "index",
    "sequence",
    "timestamp",
    "instrument",
    "trade_id",
    "price",
    "quantity",
    "aggressor",
    "taker_account",
    "taker_order_id",
    "maker_account",
    "maker_order_id",
    "maker_fee",
    "taker_fee",
];

/// Column names of the orders export.
pub const ORDER_COLUMNS: [&str; 16] = [
    "order_id",
    "client_order_id",
    "instrument",
    "account",
    "side",
    "outcome",
    "order_type",
    "time_in_force",
    "price",
    "quantity",
    "filled",
    "leaves",
    "status",
    "accepted_sequence",
    "last_sequence",
    "accepted_timestamp",
];

/// Writes rows in one format.
#[derive(Debug)]
pub struct RowWriter<W: Write> {
    out: W,
    format: Format,
    columns: &'static [&'static str],
    /// Rows written.
    pub rows: u64,
}

impl<W: Write> RowWriter<W> {
    /// A writer of rows with `columns`; a CSV gets its header now.
    pub fn new(
        mut out: W,
        format: Format,
        columns: &'static [&'static str],
    ) -> std::io::Result<Self> {
        if format == Format::Csv {
            writeln!(out, "{}", columns.join(","))?;
        }
        Ok(RowWriter {
            out,
            format,
            columns,
            rows: 0,
        })
    }

    /// Writes one row; `values` are in column order.
    pub fn row(&mut self, values: &[Value]) -> std::io::Result<()> {
        debug_assert_eq!(values.len(), self.columns.len());
        self.rows += 1;
        match self.format {
            Format::Csv => {
                let mut line = String::with_capacity(160);
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        line.push(',');
                    }
                    match v {
                        Value::String(s) => line.push_str(s),
                        Value::Null => {}
                        v => line.push_str(&v.to_string()),
                    }
                }
                writeln!(self.out, "{line}")
            }
            Format::Jsonl => {
                let obj: serde_json::Map<String, Value> = self
                    .columns
                    .iter()
                    .zip(values)
                    .map(|(c, v)| ((*c).to_string(), v.clone()))
                    .collect();
                writeln!(self.out, "{}", Value::Object(obj))
            }
        }
    }

    /// Flushes and hands back the writer.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The trade row of an event, if it is a trade.
pub fn trade_row(e: &JournaledEvent) -> Option<Vec<Value>> {
    let EventView::Trade {
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
        ..
    } = e.event.decode()?
    else {
        return None;
    };
    Some(vec![
        json!(e.index),
        json!(e.event.sequence),
        json!(e.timestamp),
        json!(instrument),
        json!(trade_id),
        json!(price),
        json!(quantity),
        json!(format!("{aggressor:?}")),
        json!(taker_account),
        json!(taker_order_id),
        json!(maker_account),
        json!(maker_order_id),
        json!(maker_fee),
        json!(taker_fee),
    ])
}

/// The row of an order.
pub fn order_row(o: &TrackedOrder, accepted_timestamp: u64) -> Vec<Value> {
    vec![
        json!(o.order_id),
        json!(o.client_order_id),
        json!(o.instrument),
        json!(o.account),
        json!(format!("{:?}", o.side)),
        json!(format!("{:?}", o.outcome)),
        json!(format!("{:?}", o.order_type)),
        json!(format!("{:?}", o.time_in_force)),
        json!(o.price),
        json!(o.quantity),
        json!(o.filled),
        json!(o.leaves),
        json!(o.status.name()),
        json!(o.accepted_sequence),
        json!(o.last_sequence),
        json!(accepted_timestamp),
    ]
}

/// Follows orders through the events and writes each when it finishes.
#[derive(Debug)]
pub struct OrderExport<W: Write> {
    tracker: OrderTracker,
    /// Accepted timestamps of live orders.
    accepted_at: std::collections::HashMap<u64, u64>,
    writer: RowWriter<W>,
    instrument: Option<u32>,
    account: Option<u32>,
}

impl<W: Write> OrderExport<W> {
    /// An export to `writer`, of orders of `instrument` and `account` only
    /// (when set).
    pub fn new(writer: RowWriter<W>, instrument: Option<u32>, account: Option<u32>) -> Self {
        OrderExport {
            tracker: instrument.map_or_else(OrderTracker::new, OrderTracker::for_instrument),
            accepted_at: std::collections::HashMap::new(),
            writer,
            instrument,
            account,
        }
    }

    fn wanted(&self, o: &TrackedOrder) -> bool {
        self.instrument.is_none_or(|i| i == o.instrument)
            && self.account.is_none_or(|a| a == o.account)
    }

    /// Applies one event, writing the orders it finished.
    pub fn observe(&mut self, e: &JournaledEvent) -> std::io::Result<()> {
        if let Some(EventView::OrderAccepted { order_id, .. }) = e.event.decode() {
            self.accepted_at.insert(order_id, e.timestamp);
        }
        let mut done: Vec<TrackedOrder> = Vec::new();
        self.tracker.observe(&e.event, |o| done.push(o));
        for o in done {
            let ts = self.accepted_at.remove(&o.order_id).unwrap_or(0);
            if self.wanted(&o) {
                self.writer.row(&order_row(&o, ts))?;
            }
        }
        Ok(())
    }

    /// Writes the orders still live, in order id order, and hands back the
    /// row writer.
    pub fn finish(mut self) -> std::io::Result<RowWriter<W>> {
        let mut live: Vec<TrackedOrder> = self.tracker.live().copied().collect();
        live.sort_by_key(|o| o.order_id);
        for o in live {
            if self.wanted(&o) {
                let ts = self.accepted_at.get(&o.order_id).copied().unwrap_or(0);
                self.writer.row(&order_row(&o, ts))?;
            }
        }
        Ok(self.writer)
    }
}
