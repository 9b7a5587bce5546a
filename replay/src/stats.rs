//! `stats`: what a session holds, counted during a replay.
//!
//! **Threads.** Plain data, filled on the caller's thread.

use crate::walk::Group;
use ringex_core::records::{
    Command, CommandKind, CommandView, EventKind, EventView, InstrumentKind, RejectReason,
};
use serde::Serialize;
use std::collections::BTreeMap;

/// One instrument of the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct InstrumentStats {
    /// Binary or spot (from its `AddInstrument`; `None` if never added).
    pub kind: Option<&'static str>,
    /// Orders entered.
    pub orders: u64,
    /// Trades.
    pub trades: u64,
    /// Quantity traded.
    pub volume: u64,
}

/// Counts over a session.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SessionStats {
    /// Commands.
    pub commands: u64,
    /// Events.
    pub events: u64,
    /// Commands per kind (`Malformed` for ones that do not decode).
    pub commands_by_kind: BTreeMap<String, u64>,
    /// Events per kind.
    pub events_by_kind: BTreeMap<String, u64>,
    /// Rejects per reason.
    pub rejects_by_reason: BTreeMap<String, u64>,
    /// Per instrument id.
    pub instruments: BTreeMap<u32, InstrumentStats>,
    /// Accounts added.
    pub accounts: u64,
    /// First and last command sequence.
    pub first_sequence: Option<u64>,
    /// Last command sequence.
    pub last_sequence: Option<u64>,
    /// First command timestamp (ns since the epoch).
    pub first_timestamp: Option<u64>,
    /// Last command timestamp.
    pub last_timestamp: Option<u64>,
}

fn command_kind_name(cmd: &Command) -> String {
    match (cmd.decode(), CommandKind::from_u8(cmd.kind)) {
        (Ok(_), Some(kind)) => format!("{kind:?}"),
        _ => "Malformed".into(),
    }
}

impl SessionStats {
    /// Counts one command and its events.
    pub fn add(&mut self, group: &Group<'_>) {
        let cmd = group.command;
        self.commands += 1;
        self.first_sequence.get_or_insert(cmd.sequence);
        self.last_sequence = Some(cmd.sequence);
        self.first_timestamp.get_or_insert(cmd.timestamp);
        self.last_timestamp = Some(cmd.timestamp);
        *self
            .commands_by_kind
            .entry(command_kind_name(cmd))
            .or_default() += 1;
        match cmd.decode() {
            Ok(CommandView::NewOrder(o)) => {
                self.instrument(o.instrument).orders += 1;
            }
            Ok(CommandView::AddInstrument(spec)) => {
                let _ = self.instrument(spec.id);
            }
            _ => {}
        }
        for e in group.events {
            self.events += 1;
            let kind = EventKind::from_u8(e.event.kind).map_or_else(
                || format!("Unknown({})", e.event.kind),
                |k| format!("{k:?}"),
            );
            *self.events_by_kind.entry(kind).or_default() += 1;
            match e.event.decode() {
                Some(EventView::Rejected { reason, .. }) => {
                    *self
                        .rejects_by_reason
                        .entry(format!("{reason:?}"))
                        .or_default() += 1;
                }
                Some(EventView::Trade {
                    instrument,
                    quantity,
                    ..
                }) => {
                    let s = self.instrument(instrument);
                    s.trades += 1;
                    s.volume += quantity;
                }
                Some(EventView::InstrumentStatusChanged { instrument, .. }) => {
                    // `code` carries the instrument kind.
                    let kind = match InstrumentKind::from_u8(e.event.code as u8) {
                        Some(InstrumentKind::Binary) => Some("binary"),
                        Some(InstrumentKind::Spot) => Some("spot"),
                        None => None,
                    };
                    let s = self.instrument(instrument);
                    if s.kind.is_none() {
                        s.kind = kind;
                    }
                }
                Some(EventView::Ack {
                    command: CommandKind::AddAccount,
                    ..
                }) => self.accounts += 1,
                _ => {}
            }
        }
    }

    fn instrument(&mut self, id: u32) -> &mut InstrumentStats {
        self.instruments.entry(id).or_insert(InstrumentStats {
            kind: None,
            orders: 0,
            trades: 0,
            volume: 0,
        })
    }

    /// Rejects in total.
    pub fn rejects(&self) -> u64 {
        self.rejects_by_reason.values().sum()
    }
}

/// The reason names, for readers of [`SessionStats::rejects_by_reason`].
pub fn reject_reason_text(name: &str) -> Option<&'static str> {
    RejectReason::ALL
        .iter()
        .find(|r| format!("{r:?}") == name)
        .map(|r| r.text())
}
