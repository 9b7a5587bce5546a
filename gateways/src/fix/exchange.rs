//! The exchange behind the FIX sessions: NewOrderSingle (D) and
//! OrderCancelRequest (F) become engine commands on the pipeline's input
//! ring; the engine's events come back from a publisher sink as
//! ExecutionReports (8) and OrderCancelRejects (9).
//!
//! Order entry: market, limit, stop and stop-limit orders; time in force
//! GTC (and Day), IOC, FOK and GTD with ExpireTime (126); ExecInst (18)
//! `6` for post-only. Binary markets trade the YES leg in whole cents; the
//! NO leg is the symbol with a `-NO` suffix (`RAIN-NO`), and a NO order is
//! the engine's YES order on the other side at 100 − P (the engine
//! normalises it; reports to the client are in NO prices). Spot symbols
//! (see [`ExchangeApplication::with_spot_symbols`]) trade without a leg.
//! Cancels and cancel/replaces by OrigClOrdID, order status requests, mass
//! cancels (all orders or one symbol), and cancel-on-disconnect (a
//! journaled mass cancel when a configured session logs out or drops).
//!
//! The account is the session's first configured account, or the one named
//! by Account (1) or, failing that, by a Parties (453) entry with PartyRole
//! (452) 24 (customer account) — when the session may trade it.
//!
//! Market data: MarketDataRequest (V) is answered with a
//! MarketDataSnapshotFullRefresh (W) per symbol from the book levels this
//! application has seen since it started, then (SubscriptionRequestType 1)
//! MarketDataIncrementalRefresh (X) for every level change and trade.
//! SecurityListRequest (x) is answered with a SecurityList (y) of every
//! configured symbol. Other application messages get a
//! BusinessMessageReject (j). Anything refused gets a reject that says why;
//! nothing is half-accepted.
//!
//! Restarts: with an order log ([`ExchangeApplication::with_order_log`])
//! the order table survives a restart. [`ExchangeApplication::rebuild`]
//! reads the log (the FIX identity of every order, written before its
//! command is submitted) and replays the output journal's events through
//! the live event handler, so status requests, cancels, replaces, fills
//! and duplicate checks work for orders placed before the restart.
//!
//! Thread: the FIX event loop owns it (it holds a `CommandSender` clone and
//! the sink's receiver; `poll` drains the sink without blocking).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use compact_str::CompactString;
use crossbeam_channel::Receiver;
use ringex_core::pipeline::{wall_clock_ns, CommandSender, SinkWakeup, SubmitError};
use ringex_core::records::{
    Command, CommandKind, Event, EventView, OrderSpec, OrderType, Outcome, SelfTradePrevention,
    Side, TimeInForce,
};

use super::app::{AppReject, Application};
use super::message::{Message, OutMessage};
use super::session::SessionConfig;
use super::time::{now_millis, parse_timestamp, Millis};
use crate::hash::FxHashMap;
use crate::text::decimal_digits;
use crate::ws::{EventHistory, GatewayError};
use ringex_core::ORDER_SLOT_BITS;

/// A ClOrdID (or OrigClOrdID) as the application keeps it: up to 24
/// bytes inline, so the usual ids cost no allocation per order.
type ClOrdId = CompactString;

/// The ClOrdID table's hasher: its keys are client input, so randomly
/// keyed (flooding-resistant), and much cheaper than SipHash per order.
type ClientKeyHasher = ahash::RandomState;

struct Order {
    /// The session's name (`BeginString-Sender-Target`), shared by its orders.
    session: Arc<str>,
    account: u32,
    cl_ord_id: ClOrdId,
    /// The Symbol as the client wrote it, shared by the instrument's orders.
    symbol: Arc<str>,
    side: Side,
    /// `No` orders are reported in NO prices (100 − the engine's price).
    outcome: Outcome,
    quantity: u64,
    order_id: u64,
    cum_qty: u64,
    notional: u128,
    /// The ClOrdID of a cancel request in flight for this order.
    cancel_cl_ord_id: Option<ClOrdId>,
    /// The order was cancelled (by request, IOC/FOK remainder, mass cancel...).
    cancelled: bool,
}

/// What the application keeps per session: its name, made once and shared
/// by its orders, and its throttle's token bucket.
struct SessionState {
    begin_string: String,
    sender_comp_id: String,
    name: Arc<str>,
    /// Tokens left and the last refill (ms).
    bucket: (f64, Millis),
}

/// A cancel/replace in flight: the new ClOrdID and engine client order id.
struct PendingReplace {
    account: u32,
    orig_client_order_id: u64,
    cl_ord_id: ClOrdId,
}

/// Orders in a chunk of [`OrderTable`]: 16,384 of about 150 bytes, 2.4 MB.
const ORDER_CHUNK: usize = 1 << 14;

/// Slots [`OrderTable`] indexes directly at most (a guard: this run's ids
/// are consecutive, so it never gets near this).
const MAX_DIRECT_SLOTS: u64 = 1 << 32;

/// Every order the application knows, found by (account, engine client
/// order id).
///
/// The application hands out engine client order ids one by one from a
/// counter, so the orders of this run are found without hashing: the
/// order with id `direct_from + i` lives in slot `i` of fixed-size chunks
/// that never move. The table grows by a chunk, whose pages are touched in
/// order as orders arrive, instead of rehashing every order into a twice
/// as large allocation (a stall of milliseconds, mostly page faults, once
/// it holds a few hundred thousand orders), and consecutive orders sit
/// next to each other in memory. A slot stays empty for an id that names
/// no order (a cancel/replace's id until its order moves there, a submit
/// the ring refused). Orders of earlier runs, read back from the order
/// log with lower ids, are kept in a hash map.
struct OrderTable {
    /// The first id of the directly indexed range.
    direct_from: u64,
    chunks: Vec<Vec<Option<Order>>>,
    /// Orders with ids outside the direct range, by id.
    other: FxHashMap<u64, Order>,
    len: usize,
}

impl OrderTable {
    /// A table whose direct range starts at `direct_from`, the next id the
    /// application will hand out.
    fn new(direct_from: u64) -> Self {
        Self {
            direct_from,
            chunks: Vec::new(),
            other: FxHashMap::default(),
            len: 0,
        }
    }

    /// Moves the direct range to start at `direct_from` (after the order
    /// log raised the next id); orders already held keep their ids.
    fn restart_at(&mut self, direct_from: u64) {
        let old_from = self.direct_from;
        let held: Vec<(u64, Order)> = std::mem::take(&mut self.chunks)
            .into_iter()
            .enumerate()
            .flat_map(|(c, chunk)| {
                chunk
                    .into_iter()
                    .enumerate()
                    .filter_map(move |(i, o)| Some((Self::direct_id(old_from, c, i), o?)))
            })
            .collect();
        self.direct_from = direct_from;
        self.len -= held.len();
        for (id, order) in held {
            self.insert((order.account, id), order);
        }
    }

    /// The direct slot of `id`, if it is in the direct range.
    fn slot_of(&self, id: u64) -> Option<usize> {
        id.checked_sub(self.direct_from)
            .filter(|slot| *slot < MAX_DIRECT_SLOTS)
            .map(|slot| slot as usize)
    }

    /// The id held at `index` of chunk `chunk` of a range starting at
    /// `direct_from`: the inverse of [`Self::slot_of`]. Chunks are filled
    /// only up to their highest id, so a slot's id comes from its chunk and
    /// its place in it, never from a count over the chunks before it.
    fn direct_id(direct_from: u64, chunk: usize, index: usize) -> u64 {
        direct_from + (chunk * ORDER_CHUNK + index) as u64
    }

    fn len(&self) -> usize {
        self.len
    }

    fn entry_mut(&mut self, id: u64) -> Option<&mut Option<Order>> {
        let slot = self.slot_of(id)?;
        self.chunks
            .get_mut(slot / ORDER_CHUNK)?
            .get_mut(slot % ORDER_CHUNK)
    }

    fn get(&self, key: &(u32, u64)) -> Option<&Order> {
        let order = match self.slot_of(key.1) {
            Some(slot) => self
                .chunks
                .get(slot / ORDER_CHUNK)?
                .get(slot % ORDER_CHUNK)?
                .as_ref(),
            None => self.other.get(&key.1),
        }?;
        (order.account == key.0).then_some(order)
    }

    fn get_mut(&mut self, key: &(u32, u64)) -> Option<&mut Order> {
        let order = match self.slot_of(key.1) {
            Some(_) => self.entry_mut(key.1)?.as_mut(),
            None => self.other.get_mut(&key.1),
        }?;
        (order.account == key.0).then_some(order)
    }

    /// Adds `order` (of account `key.0`) under id `key.1`, replacing an
    /// order already there.
    fn insert(&mut self, key: (u32, u64), order: Order) {
        debug_assert_eq!(order.account, key.0);
        let Some(slot) = self.slot_of(key.1) else {
            if self.other.insert(key.1, order).is_none() {
                self.len += 1;
            }
            return;
        };
        let (chunk, index) = (slot / ORDER_CHUNK, slot % ORDER_CHUNK);
        while self.chunks.len() <= chunk {
            self.chunks.push(Vec::with_capacity(ORDER_CHUNK));
        }
        let chunk = &mut self.chunks[chunk];
        if chunk.len() <= index {
            chunk.resize_with(index + 1, || None);
        }
        if chunk[index].replace(order).is_none() {
            self.len += 1;
        }
    }

    fn remove(&mut self, key: &(u32, u64)) -> Option<Order> {
        // Only the order of this account.
        self.get(key)?;
        let removed = match self.slot_of(key.1) {
            Some(_) => self.entry_mut(key.1)?.take(),
            None => self.other.remove(&key.1),
        };
        self.len -= usize::from(removed.is_some());
        removed
    }

    fn iter(&self) -> impl Iterator<Item = ((u32, u64), &Order)> {
        let from = self.direct_from;
        self.chunks
            .iter()
            .enumerate()
            .flat_map(move |(c, chunk)| {
                chunk.iter().enumerate().filter_map(move |(i, o)| {
                    let o = o.as_ref()?;
                    Some(((o.account, Self::direct_id(from, c, i)), o))
                })
            })
            .chain(self.other.iter().map(|(&id, o)| ((o.account, id), o)))
    }
}

/// Engine order id to the order's key, for the orders that can still trade.
///
/// Engine order ids carry the engine's arena slot in their low
/// [`ORDER_SLOT_BITS`] bits, and a slot holds one live order at a time, so
/// the index is a vector by slot holding the full id: a lookup is one
/// load and a compare, and the vector is as long as the engine's
/// high-water mark of live orders. An entry left by a finished order is
/// overwritten when its slot is reused; until then the id compare keeps
/// it from matching another order (also one of another gateway).
#[derive(Default)]
struct LiveOrderIds {
    by_slot: Vec<(u64, (u32, u64))>,
}

impl LiveOrderIds {
    fn slot(order_id: u64) -> usize {
        (order_id & ((1 << ORDER_SLOT_BITS) - 1)) as usize
    }

    fn insert(&mut self, order_id: u64, key: (u32, u64)) {
        let slot = Self::slot(order_id);
        if self.by_slot.len() <= slot {
            self.by_slot.resize(slot + 1, (0, (0, 0)));
        }
        self.by_slot[slot] = (order_id, key);
    }

    fn get(&self, order_id: u64) -> Option<(u32, u64)> {
        match self.by_slot.get(Self::slot(order_id)) {
            // Engine order ids are never 0 (the counter starts at 1).
            Some(&(id, key)) if id == order_id && id != 0 => Some(key),
            _ => None,
        }
    }

    fn remove(&mut self, order_id: u64) {
        if let Some(entry) = self.by_slot.get_mut(Self::slot(order_id)) {
            if entry.0 == order_id {
                entry.0 = 0;
            }
        }
    }
}

/// What a FIX Symbol names: the instrument, the leg, and the symbol text
/// shared by the orders that use it.
#[derive(Clone)]
struct SymbolEntry {
    instrument: u32,
    outcome: Outcome,
    text: Arc<str>,
}

/// One MarketDataRequest subscription.
struct Subscription {
    session: String,
    req_id: Vec<u8>,
    instrument: u32,
    symbol: String,
    trades: bool,
}

/// The levels of one instrument's book, from the engine's BookLevel events.
#[derive(Default)]
struct Book {
    bids: BTreeMap<i64, u64>,
    asks: BTreeMap<i64, u64>,
}

/// Maps FIX order entry onto the engine.
pub struct ExchangeApplication {
    sender: CommandSender,
    events: Receiver<Event>,
    /// The doorbell of the sink behind `events`, if given: the event loop
    /// sleeps until the publisher rings it ([`Application::set_wakeup`]).
    wakeup: Option<SinkWakeup>,
    symbols: HashMap<String, u32>,
    /// Symbols of spot instruments (orders carry no leg).
    spot: HashSet<String>,
    /// Every Symbol an order may carry (`SYM`, and `SYM-NO` for binary
    /// markets), made from `symbols` and `spot`: one lookup per order.
    resolve: FxHashMap<Box<str>, SymbolEntry>,
    books: HashMap<u32, Book>,
    subscriptions: Vec<Subscription>,
    next_client_order_id: u64,
    /// By (account, engine client order id).
    orders: OrderTable,
    /// (account, ClOrdID) to the engine client order id. Keyed by client
    /// input, so hashed with a randomly keyed hasher.
    by_cl_ord_id: HashMap<(u32, ClOrdId), u64, ClientKeyHasher>,
    /// Engine order id to (account, engine client order id), for orders
    /// that can still trade.
    by_order_id: LiveOrderIds,
    next_exec_id: u64,
    /// Cancel/replace requests in flight, by (account, new engine client order id).
    replaces: HashMap<(u32, u64), PendingReplace>,
    /// Per-session name and token bucket, by TargetCompID (see
    /// [`ExchangeApplication::session_state`]).
    sessions: FxHashMap<String, Vec<SessionState>>,
    /// Where each order's FIX identity is appended before it is submitted
    /// (see [`ExchangeApplication::with_order_log`]).
    order_log: Option<File>,
}

impl std::fmt::Debug for ExchangeApplication {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExchangeApplication")
            .field("symbols", &self.symbols)
            .field("orders", &self.orders.len())
            .finish()
    }
}

/// AvgPx (6): `notional / quantity` in decimal with four places, rounded
/// half up from the exact quotient (no floating point), or `0` before the
/// first fill. Written into `buf`; the text is returned.
fn average_price(notional: u128, quantity: u64, buf: &mut [u8; 25]) -> &[u8] {
    if quantity == 0 {
        return b"0";
    }
    let q = u128::from(quantity);
    let scaled = notional.saturating_mul(10_000);
    let mut ten_thousandths = scaled / q;
    if (scaled % q) * 2 >= q {
        ten_thousandths += 1;
    }
    // An average never exceeds the highest fill price (an i64), so the
    // whole part fits a u64.
    let whole = u64::try_from(ten_thousandths / 10_000).unwrap_or(u64::MAX);
    let fraction = (ten_thousandths % 10_000) as u64;
    let mut digits = [0u8; 20];
    let whole = decimal_digits(whole, &mut digits);
    let n = whole.len();
    buf[..n].copy_from_slice(whole);
    buf[n] = b'.';
    // Written as 1xxxx so that the fraction keeps its leading zeros.
    let mut digits = [0u8; 20];
    buf[n + 1..n + 5].copy_from_slice(&decimal_digits(10_000 + fraction, &mut digits)[1..]);
    &buf[..n + 5]
}

/// A text field (ClOrdID, OrigClOrdID) as the application keeps it; bytes
/// that are not UTF-8 become U+FFFD.
fn text_field(message: &Message, tag: i64) -> ClOrdId {
    ClOrdId::from(String::from_utf8_lossy(
        message.body_value(tag).unwrap_or_default(),
    ))
}

fn not_authorized(text: &str) -> AppReject {
    AppReject::Business {
        reason: 6,
        ref_tag: None,
        text: Some(text.to_string()),
    }
}

/// A price field in whole cents when the order type `needed` it (0
/// otherwise); the reject text when it is missing or not whole cents.
fn required_cents(
    message: &Message,
    tag: i64,
    needed: bool,
    not_whole: &'static str,
    missing: &'static str,
) -> Result<i64, &'static str> {
    if !needed {
        return Ok(0);
    }
    let value = message.body_value(tag).ok_or(missing)?;
    whole_number(value).map(|p| p as i64).ok_or(not_whole)
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
        // Engine client order ids must not repeat within an account, also
        // across restarts: start from the clock.
        let next_client_order_id = wall_clock_ns() / 1000;
        let mut app = Self {
            sender,
            events,
            wakeup: None,
            symbols,
            spot: HashSet::new(),
            resolve: FxHashMap::default(),
            books: HashMap::new(),
            subscriptions: Vec::new(),
            next_client_order_id,
            orders: OrderTable::new(next_client_order_id),
            by_cl_ord_id: HashMap::default(),
            by_order_id: LiveOrderIds::default(),
            next_exec_id: 1,
            replaces: HashMap::new(),
            sessions: FxHashMap::default(),
            order_log: None,
        };
        app.index_symbols();
        app
    }

    /// Sizes the ClOrdID table for `orders` orders up front, as a venue
    /// sizes its tables for a day's volume: below that count it never
    /// rehashes (above it, it grows as usual; a doubling is a pause of
    /// milliseconds at large sizes). Call before trading starts. It takes
    /// 40 bytes per bucket, with between 8/7 and 16/7 buckets per order of
    /// capacity. The other order tables need no sizing: they are indexed
    /// by ids the application or the engine hands out, and grow without
    /// moving what they hold.
    pub fn with_order_capacity(mut self, orders: usize) -> Self {
        self.by_cl_ord_id
            .reserve(orders.saturating_sub(self.by_cl_ord_id.len()));
        self
    }

    /// Rebuilds [`Self::resolve`] from the configured symbols.
    fn index_symbols(&mut self) {
        self.resolve.clear();
        for (symbol, &instrument) in &self.symbols {
            let spot = self.spot.contains(symbol);
            let entry = |text: String, outcome| SymbolEntry {
                instrument,
                outcome,
                text: text.into(),
            };
            let yes = entry(
                symbol.clone(),
                if spot { Outcome::None } else { Outcome::Yes },
            );
            self.resolve.insert(symbol.as_str().into(), yes);
            if !spot {
                let no = format!("{symbol}-NO");
                self.resolve
                    .insert(no.as_str().into(), entry(no, Outcome::No));
            }
        }
    }

    /// Lets the FIX event loop sleep until the engine has events for it:
    /// `wakeup` is the doorbell of the sink `events` comes from
    /// ([`SinkHandle::wakeup`](ringex_core::pipeline::SinkHandle)). Without
    /// it the loop polls the sink every millisecond while idle.
    pub fn with_wakeup(mut self, wakeup: SinkWakeup) -> Self {
        self.wakeup = Some(wakeup);
        self
    }

    /// Marks symbols as spot instruments: their orders carry no binary leg
    /// and they have no `-NO` symbol.
    pub fn with_spot_symbols(mut self, spot: impl IntoIterator<Item = String>) -> Self {
        self.spot.extend(spot);
        self.index_symbols();
        self
    }

    /// Keeps the FIX identity of every order (session, ClOrdID, symbol,
    /// side, leg, quantity, and the ClOrdID of each cancel/replace) in an
    /// append-only file at `path`, written before the command is submitted.
    /// The engine's events carry only its numeric client order id; with
    /// this file [`ExchangeApplication::rebuild`] can restore the order
    /// table after a restart.
    pub fn with_order_log(mut self, path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        self.order_log = Some(OpenOptions::new().create(true).append(true).open(path)?);
        Ok(self)
    }

    /// Rebuilds the order table (ClOrdID to order, order ids, cumulative
    /// quantities, cancels, replaces) and the market-data books from the
    /// orders in the log at `log` and the events of earlier runs in
    /// `history`, the way [`crate::ws::WsGateway::start_with_history`]
    /// rebuilds its view: call it after the application's sink is
    /// registered and before any command is submitted. Each event goes
    /// through the same code as a live one, with its reports discarded
    /// (they were sent, and stored by the session, when it happened).
    /// Returns how many orders are known afterwards.
    pub fn rebuild(&mut self, log: &Path, history: &EventHistory) -> Result<usize, GatewayError> {
        let text = match std::fs::read_to_string(log) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(GatewayError::History(format!(
                    "FIX order log {}: {e}",
                    log.display()
                )))
            }
        };
        for line in text.lines() {
            // A line cut short by a crash is skipped: its command was
            // never submitted (the line is written first).
            match parse_log_line(line) {
                Some(ParsedEntry::New(client_order_id, order)) => {
                    let key = (order.account, client_order_id);
                    self.by_cl_ord_id
                        .insert((order.account, order.cl_ord_id.clone()), client_order_id);
                    self.orders.insert(key, order);
                }
                Some(ParsedEntry::Replace(new_id, pending)) => {
                    self.replaces.insert((pending.account, new_id), pending);
                }
                None => {}
            }
        }
        history.for_each(|event, _| self.on_event(event, &mut |_, _| {}))?;
        // What the engine never saw (a submit refused after the line was
        // written) is forgotten, as it would have been then.
        let unseen: Vec<(u32, u64)> = self
            .orders
            .iter()
            .filter(|(_, o)| o.order_id == 0 && !o.cancelled)
            .map(|(k, _)| k)
            .collect();
        for key in unseen {
            if let Some(o) = self.orders.remove(&key) {
                let id = (o.account, o.cl_ord_id);
                if self.by_cl_ord_id.get(&id) == Some(&key.1) {
                    self.by_cl_ord_id.remove(&id);
                }
            }
        }
        self.replaces.clear();
        // New engine client order ids stay above every logged one.
        let highest = self.orders.iter().map(|(k, _)| k.1).max().unwrap_or(0);
        self.next_client_order_id = self.next_client_order_id.max(highest + 1);
        self.orders.restart_at(self.next_client_order_id);
        Ok(self.orders.len())
    }

    fn log(&mut self, entry: &LogEntry<'_>) -> std::io::Result<()> {
        let Some(file) = self.order_log.as_mut() else {
            return Ok(());
        };
        // One write per line: a crash leaves at most a cut last line.
        file.write_all(log_line(entry).as_bytes())
    }

    /// The instrument and leg a FIX Symbol names: `SYM` (YES, or spot) or
    /// `SYM-NO` (the NO leg of a binary).
    fn resolve_symbol(&self, symbol: &str) -> Option<(u32, Outcome)> {
        self.resolve
            .get(symbol)
            .map(|entry| (entry.instrument, entry.outcome))
    }

    /// Account (1), else the PartyID of a Parties entry with PartyRole 24.
    fn requested_account(message: &Message) -> Option<String> {
        if let Some(a) = message.body_value(1) {
            return Some(String::from_utf8_lossy(a).into_owned());
        }
        let parties = message.body.group(453)?;
        parties.entries.iter().find_map(|entry| {
            let role = entry.get(452).map(|f| message.value(f))?;
            if role != b"24" {
                return None;
            }
            let id = entry.get(448).map(|f| message.value(f))?;
            Some(String::from_utf8_lossy(id).into_owned())
        })
    }

    fn account(session: &SessionConfig, message: &Message) -> Result<u32, AppReject> {
        let requested = Self::requested_account(message);
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

    /// The state of `session`, made on first use. Found by TargetCompID and
    /// then the other two identity fields, without allocating.
    fn session_state(&mut self, session: &SessionConfig) -> &mut SessionState {
        if !self.sessions.contains_key(session.target_comp_id.as_str()) {
            self.sessions
                .insert(session.target_comp_id.clone(), Vec::new());
        }
        let states = self
            .sessions
            .get_mut(session.target_comp_id.as_str())
            .expect("inserted above");
        let i = match states.iter().position(|s| {
            s.begin_string == session.begin_string && s.sender_comp_id == session.sender_comp_id
        }) {
            Some(i) => i,
            None => {
                states.push(SessionState {
                    begin_string: session.begin_string.clone(),
                    sender_comp_id: session.sender_comp_id.clone(),
                    name: session.session_name().into(),
                    bucket: (
                        f64::from(session.max_orders_per_sec.unwrap_or(0)),
                        now_millis(),
                    ),
                });
                states.len() - 1
            }
        };
        &mut states[i]
    }

    /// Takes one token from the session's bucket (refilled continuously at
    /// `max_orders_per_sec`, holding at most one second's worth).
    fn throttled(&mut self, session: &SessionConfig) -> bool {
        let Some(rate) = session.max_orders_per_sec else {
            return false;
        };
        let rate = f64::from(rate);
        let now = now_millis();
        let bucket = &mut self.session_state(session).bucket;
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
    ) -> Option<(Arc<str>, OutMessage)> {
        let exec_id = self.next_exec_id;
        self.next_exec_id += 1;
        let o = self.orders.get(&key)?;
        let mut er = OutMessage::new("8");
        let mut avg = [0u8; 25];
        er.set_uint(1, u64::from(o.account))
            .set(6, average_price(o.notional, o.cum_qty, &mut avg))
            .set(11, &o.cl_ord_id)
            .set_uint(14, o.cum_qty)
            .set_uint(17, exec_id)
            .set_uint(37, o.order_id)
            .set_uint(38, o.quantity)
            .set(39, status)
            .set(54, if o.side == Side::Buy { "1" } else { "2" })
            .set(55, o.symbol.as_bytes())
            .set(150, exec_type)
            .set_uint(151, o.quantity.saturating_sub(o.cum_qty));
        Some((Arc::clone(&o.session), er))
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
        // Looked up as the table's own key type, then taken apart again:
        // no copy of the ClOrdID just to ask.
        let lookup = (account, text_field(message, 11));
        let known = self.by_cl_ord_id.get(&lookup).copied();
        let (account, cl_ord_id) = lookup;
        if let Some(known) = known {
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
        let symbol = std::str::from_utf8(message.body_value(55).unwrap_or_default())
            .ok()
            .and_then(|s| self.resolve.get(s));
        let Some(SymbolEntry {
            instrument,
            outcome,
            text: symbol,
        }) = symbol.cloned()
        else {
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
            Some(b"3") => OrderType::StopMarket,
            Some(b"4") => OrderType::StopLimit,
            _ => {
                let text = "OrdType must be 1 (market), 2 (limit), 3 (stop) or 4 (stop limit)";
                Self::reject_new(message, text, replies);
                return Ok(());
            }
        };
        let time_in_force = match message.body_value(59) {
            None | Some(b"0") | Some(b"1") => TimeInForce::Gtc,
            Some(b"3") => TimeInForce::Ioc,
            Some(b"4") => TimeInForce::Fok,
            Some(b"6") => TimeInForce::Gtd,
            _ => {
                Self::reject_new(message, "TimeInForce must be 0, 1, 3, 4 or 6", replies);
                return Ok(());
            }
        };
        let expire_time = if time_in_force == TimeInForce::Gtd {
            match message.body_value(126).and_then(parse_timestamp) {
                Some(ms) if ms > now_millis() => ms as u64 * 1_000_000,
                Some(_) => {
                    Self::reject_new(message, "ExpireTime is in the past", replies);
                    return Ok(());
                }
                None => {
                    let text = "A GTD order needs ExpireTime (126) as a UTCTimestamp";
                    Self::reject_new(message, text, replies);
                    return Ok(());
                }
            }
        } else {
            0
        };
        // ExecInst is a multiple-char value: '6' (participate don't
        // initiate) anywhere in it makes the order post-only.
        let post_only = message
            .body_value(18)
            .is_some_and(|v| v.split(|b| *b == b' ').any(|i| i == b"6"));
        let Some(quantity) = message
            .body_value(38)
            .and_then(whole_number)
            .filter(|q| *q > 0)
        else {
            Self::reject_new(message, "OrderQty must be a positive whole number", replies);
            return Ok(());
        };
        let needs_price = matches!(order_type, OrderType::Limit | OrderType::StopLimit);
        let price = match required_cents(
            message,
            44,
            needs_price,
            "Price must be whole cents",
            "A limit order needs a Price",
        ) {
            Ok(p) => p,
            Err(text) => {
                Self::reject_new(message, text, replies);
                return Ok(());
            }
        };
        let needs_stop = matches!(order_type, OrderType::StopMarket | OrderType::StopLimit);
        let stop_price = match required_cents(
            message,
            99,
            needs_stop,
            "StopPx must be whole cents",
            "A stop order needs a StopPx (99)",
        ) {
            Ok(p) => p,
            Err(text) => {
                Self::reject_new(message, text, replies);
                return Ok(());
            }
        };
        let client_order_id = self.next_client_order_id;
        self.next_client_order_id += 1;
        let order = Order {
            session: Arc::clone(&self.session_state(session).name),
            account,
            cl_ord_id,
            symbol,
            side,
            outcome,
            quantity,
            order_id: 0,
            cum_qty: 0,
            notional: 0,
            cancel_cl_ord_id: None,
            cancelled: false,
        };
        if self.log(&LogEntry::New(client_order_id, &order)).is_err() {
            Self::reject_new(message, "Order log unavailable", replies);
            return Ok(());
        }
        let spec = OrderSpec {
            account,
            instrument,
            client_order_id,
            side,
            outcome,
            order_type,
            time_in_force,
            price,
            quantity,
            stop_price,
            expire_time,
            quote_budget: 0,
            post_only,
            stp: SelfTradePrevention::None,
        };
        match self.sender.try_submit(Command::new_order(spec)) {
            Ok(_) => {
                self.by_cl_ord_id
                    .insert((account, order.cl_ord_id.clone()), client_order_id);
                self.orders.insert((account, client_order_id), order);
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
        let orig = text_field(message, 41);
        let cl_ord_id = text_field(message, 11);
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
        let orig = text_field(message, 41);
        let cl_ord_id = text_field(message, 11);
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
        let pending = PendingReplace {
            account,
            orig_client_order_id: target,
            cl_ord_id,
        };
        if self.log(&LogEntry::Replace(new_id, &pending)).is_err() {
            let text = "Order log unavailable";
            replies.push(Self::cancel_reject(
                &pending.cl_ord_id,
                &orig,
                "NONE",
                "2",
                text,
            ));
            return Ok(());
        }
        let cl_ord_id = pending.cl_ord_id.clone();
        let cmd = Command::replace_by_client_id(account, target, new_id, price as i64, quantity);
        match self.sender.try_submit(cmd) {
            Ok(_) => {
                self.replaces.insert((account, new_id), pending);
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
        let cl_ord_id = text_field(message, 11);
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
                self.resolve_symbol(&symbol)
                    .map(|(id, _)| Some(id))
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

    /// MarketDataRequest (V): a snapshot (W) per symbol, and for
    /// SubscriptionRequestType 1 incremental refreshes (X) until a request
    /// with type 2 and the same MDReqID unsubscribes.
    fn market_data_request(
        &mut self,
        session: &SessionConfig,
        message: &Message,
        replies: &mut Vec<OutMessage>,
    ) -> Result<(), AppReject> {
        let req_id = message.body_value(262).unwrap_or_default().to_vec();
        let name = session.session_name();
        let reject = |reason: &str, text: &str| {
            let mut r = OutMessage::new("Y");
            r.set(262, &req_id).set(281, reason).set(58, text);
            r
        };
        let request_type = message.body_value(263).unwrap_or_default();
        if request_type == b"2" {
            self.subscriptions
                .retain(|s| !(s.session == name && s.req_id == req_id));
            return Ok(());
        }
        if !matches!(request_type, b"0" | b"1") {
            replies.push(reject("4", "SubscriptionRequestType must be 0, 1 or 2"));
            return Ok(());
        }
        if self
            .subscriptions
            .iter()
            .any(|s| s.session == name && s.req_id == req_id)
        {
            replies.push(reject("1", "Duplicate MDReqID"));
            return Ok(());
        }
        let mut trades = false;
        if let Some(types) = message.body.group(267) {
            for entry in &types.entries {
                match entry.get(269).map(|f| message.value(f)) {
                    Some(b"0") | Some(b"1") => {}
                    Some(b"2") => trades = true,
                    _ => {
                        replies.push(reject("8", "MDEntryType must be 0, 1 or 2"));
                        return Ok(());
                    }
                }
            }
        }
        let mut symbols = Vec::new();
        if let Some(related) = message.body.group(146) {
            for entry in &related.entries {
                let symbol = entry
                    .get(55)
                    .map(|f| String::from_utf8_lossy(message.value(f)).into_owned())
                    .unwrap_or_default();
                let Some((instrument, _)) = self.resolve_symbol(&symbol) else {
                    replies.push(reject("0", &format!("Unknown symbol {symbol}")));
                    return Ok(());
                };
                symbols.push((symbol, instrument));
            }
        }
        if symbols.is_empty() {
            replies.push(reject("0", "No symbol requested"));
            return Ok(());
        }
        for (symbol, instrument) in symbols {
            let mut entries = Vec::new();
            if let Some(book) = self.books.get(&instrument) {
                let bids = book.bids.iter().rev().map(|(p, q)| (b"0", p, q));
                let asks = book.asks.iter().map(|(p, q)| (b"1", p, q));
                for (entry_type, price, quantity) in bids.chain(asks) {
                    entries.push(vec![
                        (269, entry_type.to_vec()),
                        (270, price.to_string().into_bytes()),
                        (271, quantity.to_string().into_bytes()),
                    ]);
                }
            }
            let mut snapshot = OutMessage::new("W");
            snapshot
                .set(262, &req_id)
                .set(55, &symbol)
                .set_group(268, &entries);
            replies.push(snapshot);
            if request_type == b"1" {
                self.subscriptions.push(Subscription {
                    session: name.clone(),
                    req_id: req_id.clone(),
                    instrument,
                    symbol,
                    trades,
                });
            }
        }
        Ok(())
    }

    /// SecurityListRequest (x): every configured symbol, NO legs included.
    fn security_list(&self, message: &Message, replies: &mut Vec<OutMessage>) {
        let mut symbols: Vec<String> = Vec::new();
        for symbol in self.symbols.keys() {
            symbols.push(symbol.clone());
            if !self.spot.contains(symbol) {
                symbols.push(format!("{symbol}-NO"));
            }
        }
        symbols.sort();
        let entries: Vec<Vec<(i64, Vec<u8>)>> = symbols
            .into_iter()
            .map(|s| vec![(55, s.into_bytes())])
            .collect();
        let req_id = message.body_value(320).unwrap_or_default();
        let mut list = OutMessage::new("y");
        list.set(320, req_id)
            .set(322, req_id)
            .set(560, "0")
            .set_group(146, &entries);
        replies.push(list);
    }

    /// An incremental refresh entry for every subscription to `instrument`
    /// (trades only to those that asked for them).
    fn publish_market_data(
        &self,
        instrument: u32,
        entry: &[(i64, Vec<u8>)],
        trade: bool,
        send: &mut dyn FnMut(&str, OutMessage),
    ) {
        for sub in &self.subscriptions {
            if sub.instrument != instrument || (trade && !sub.trades) {
                continue;
            }
            let mut full = entry.to_vec();
            // Instrument (55) sits after MDEntryType in the group.
            full.insert(2, (55, sub.symbol.clone().into_bytes()));
            let mut x = OutMessage::new("X");
            x.set(262, &sub.req_id).set_group(268, &[full]);
            send(&sub.session, x);
        }
    }

    /// Whether a subscription wants `instrument`'s level changes (or, with
    /// `trade`, its trades): entries are built only for those.
    fn subscribed(&self, instrument: u32, trade: bool) -> bool {
        self.subscriptions
            .iter()
            .any(|s| s.instrument == instrument && (!trade || s.trades))
    }

    fn on_event(&mut self, event: &Event, send: &mut dyn FnMut(&str, OutMessage)) {
        let Some(view) = event.decode() else {
            return;
        };
        if let EventView::BookLevel {
            instrument,
            side,
            price,
            quantity,
            ..
        } = view
        {
            let book = self.books.entry(instrument).or_default();
            let levels = if side == Side::Buy {
                &mut book.bids
            } else {
                &mut book.asks
            };
            let action = if quantity == 0 {
                levels.remove(&price);
                "2"
            } else if levels.insert(price, quantity).is_some() {
                "1"
            } else {
                "0"
            };
            if self.subscribed(instrument, false) {
                let entry = [
                    (279, action.as_bytes().to_vec()),
                    (269, if side == Side::Buy { b"0" } else { b"1" }.to_vec()),
                    (270, price.to_string().into_bytes()),
                    (271, quantity.to_string().into_bytes()),
                ];
                self.publish_market_data(instrument, &entry, false, send);
            }
            return;
        }
        if let EventView::Trade {
            instrument,
            price,
            quantity,
            ..
        } = view
        {
            if self.subscribed(instrument, true) {
                let entry = [
                    (279, b"0".to_vec()),
                    (269, b"2".to_vec()),
                    (270, price.to_string().into_bytes()),
                    (271, quantity.to_string().into_bytes()),
                ];
                self.publish_market_data(instrument, &entry, true, send);
            }
        }
        self.on_order_event(view, send);
    }

    fn on_order_event(&mut self, view: EventView, send: &mut dyn FnMut(&str, OutMessage)) {
        let mut emit = |item: Option<(Arc<str>, OutMessage)>| {
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
                    let Some(key) = self.by_order_id.get(order_id) else {
                        continue;
                    };
                    let mut client_price = price;
                    if let Some(o) = self.orders.get_mut(&key) {
                        if o.outcome == Outcome::No {
                            client_price = 100 - price;
                        }
                        o.cum_qty += quantity;
                        o.notional += u128::from(quantity) * client_price.max(0) as u128;
                        o.quantity = o.cum_qty + leaves;
                    }
                    let status = if leaves == 0 { "2" } else { "1" };
                    if let Some((session, mut er)) = self.exec_report(key, "F", status) {
                        er.set_int(31, client_price).set_uint(32, quantity);
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
                self.by_order_id.remove(o.order_id);
                o.order_id = order_id;
                o.quantity = quantity.max(o.cum_qty + leaves);
                self.by_order_id.insert(order_id, new_key);
                self.orders.insert(new_key, o);
                let status = if self.orders.get(&new_key).is_some_and(|o| o.cum_qty > 0) {
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

/// One line of the order log, as written.
enum LogEntry<'a> {
    /// A NewOrderSingle: the engine client order id and the order.
    New(u64, &'a Order),
    /// A cancel/replace: the new engine client order id and the request.
    Replace(u64, &'a PendingReplace),
}

/// One line of the order log, as read back.
enum ParsedEntry {
    New(u64, Order),
    Replace(u64, PendingReplace),
}

/// The order log's line for `entry` (tab-separated, newline-terminated).
fn log_line(entry: &LogEntry<'_>) -> String {
    match entry {
        LogEntry::New(id, o) => format!(
            "N\t{}\t{id}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            o.account,
            escape(&o.session),
            escape(&o.symbol),
            o.side as u8,
            o.outcome as u8,
            o.quantity,
            escape(&o.cl_ord_id)
        ),
        LogEntry::Replace(id, p) => format!(
            "R\t{}\t{id}\t{}\t{}\n",
            p.account,
            p.orig_client_order_id,
            escape(&p.cl_ord_id)
        ),
    }
}

/// Tabs, line ends and `%` in a FIX string value become `%XX`.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '%' | '\t' | '\n' | '\r' => out.push_str(&format!("%{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn unescape(value: &str) -> Option<String> {
    let mut out = Vec::with_capacity(value.len());
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_log_line(line: &str) -> Option<ParsedEntry> {
    let fields: Vec<&str> = line.split('\t').collect();
    match fields.as_slice() {
        ["N", account, id, session, symbol, side, outcome, quantity, cl_ord_id] => {
            Some(ParsedEntry::New(
                id.parse().ok()?,
                Order {
                    session: unescape(session)?.into(),
                    account: account.parse().ok()?,
                    cl_ord_id: unescape(cl_ord_id)?.into(),
                    symbol: unescape(symbol)?.into(),
                    side: Side::from_u8(side.parse().ok()?)?,
                    outcome: Outcome::from_u8(outcome.parse().ok()?)?,
                    quantity: quantity.parse().ok()?,
                    order_id: 0,
                    cum_qty: 0,
                    notional: 0,
                    cancel_cl_ord_id: None,
                    cancelled: false,
                },
            ))
        }
        ["R", account, id, orig, cl_ord_id] => Some(ParsedEntry::Replace(
            id.parse().ok()?,
            PendingReplace {
                account: account.parse().ok()?,
                orig_client_order_id: orig.parse().ok()?,
                cl_ord_id: unescape(cl_ord_id)?.into(),
            },
        )),
        _ => None,
    }
}

impl Application for ExchangeApplication {
    /// Drops the session's market data subscriptions; cancel-on-disconnect:
    /// a journaled mass cancel of every account the
    /// session trades, when the session is configured for it.
    fn on_logout(&mut self, session: &SessionConfig) {
        let name = session.session_name();
        self.subscriptions.retain(|s| s.session != name);
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
            b"V" => self.market_data_request(session, message, replies),
            b"x" => {
                self.security_list(message, replies);
                Ok(())
            }
            _ => Err(AppReject::UnsupportedMessageType),
        }
    }

    fn polls(&self) -> bool {
        true
    }

    fn set_wakeup(&mut self, wake: Box<dyn Fn() + Send + Sync>) -> bool {
        self.wakeup.as_ref().is_some_and(|w| w.set_waker(wake))
    }

    fn ready_to_sleep(&mut self) -> bool {
        self.wakeup.as_ref().is_none_or(|w| w.arm(&self.events))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_price_is_exact_with_four_places() {
        let mut buf = [0u8; 25];
        let mut avg =
            |n: u128, q: u64| String::from_utf8(average_price(n, q, &mut buf).to_vec()).unwrap();
        assert_eq!(avg(0, 0), "0");
        assert_eq!(avg(50, 1), "50.0000");
        assert_eq!(avg(100, 3), "33.3333");
        assert_eq!(avg(200, 3), "66.6667");
        assert_eq!(avg(1, 20_000), "0.0001", "half rounds up");
        assert_eq!(avg(1, 30_000), "0.0000");
        assert_eq!(avg(99 * 7 + 1, 7), "99.1429");
        // Whatever f64 formatting gives away from exact ties.
        for (n, q) in [(12_345u128, 7u64), (5, 9), (99_999, 1_001)] {
            assert_eq!(
                avg(n, q),
                format!("{:.4}", n as f64 / q as f64),
                "{n} / {q}"
            );
        }
        // Where f64 has run out of digits, the exact quotient has not.
        assert_eq!(avg(1 << 60, 3), "384307168202282325.3333");
    }

    fn order(account: u32, cl_ord_id: &str) -> Order {
        Order {
            session: "FIX.4.4-RINGEX-C".into(),
            account,
            cl_ord_id: cl_ord_id.into(),
            symbol: "RAIN".into(),
            side: Side::Buy,
            outcome: Outcome::Yes,
            quantity: 1,
            order_id: 0,
            cum_qty: 0,
            notional: 0,
            cancel_cl_ord_id: None,
            cancelled: false,
        }
    }

    #[test]
    fn the_order_table_indexes_this_runs_ids_directly_and_keeps_others_by_hash() {
        let from = 1_000_000u64;
        let mut table = OrderTable::new(from);
        let n = ORDER_CHUNK as u64 * 2 + 5;
        // Every third id names no order (a cancel/replace's id, a refused submit).
        let ids: Vec<u64> = (from..from + n).filter(|id| id % 3 != 0).collect();
        for &id in &ids {
            table.insert(
                ((id % 7) as u32, id),
                order((id % 7) as u32, &id.to_string()),
            );
        }
        assert_eq!(table.len(), ids.len());
        assert_eq!(table.chunks.len(), 3);
        assert!(
            table.other.is_empty(),
            "this run's ids are indexed directly"
        );
        for &id in [ids[0], ids[ids.len() / 2], *ids.last().unwrap()].iter() {
            let key = ((id % 7) as u32, id);
            assert_eq!(table.get(&key).unwrap().cl_ord_id, id.to_string().as_str());
        }
        let hole = ids[0] + 1 + ids[0] % 3; // an id with id % 3 == 0
        assert_eq!(hole % 3, 0);
        assert!(table.get(&((hole % 7) as u32, hole)).is_none());
        assert!(
            table.get(&(99, ids[0])).is_none(),
            "the account is part of the key"
        );
        assert!(table.remove(&(99, ids[0])).is_none());
        assert!(
            table.get(&(0, from + 10 * n)).is_none(),
            "beyond the last chunk"
        );
        // An id before the range (an earlier run's, from the order log).
        table.insert((3, 42), order(3, "old"));
        assert_eq!(table.get(&(3, 42)).unwrap().cl_ord_id, "old");
        assert_eq!(table.len(), ids.len() + 1);
        // Replacing keeps one entry; removing empties the slot.
        let first = ((ids[0] % 7) as u32, ids[0]);
        table.insert(first, order(first.0, "again"));
        assert_eq!(table.get(&first).unwrap().cl_ord_id, "again");
        assert_eq!(table.len(), ids.len() + 1);
        assert_eq!(table.remove(&first).unwrap().cl_ord_id, "again");
        assert!(table.remove(&first).is_none());
        assert_eq!(table.len(), ids.len());
        // A cancel/replace's order moves into the hole its id left.
        table.insert(((hole % 7) as u32, hole), order((hole % 7) as u32, "moved"));
        assert_eq!(
            table.get(&((hole % 7) as u32, hole)).unwrap().cl_ord_id,
            "moved"
        );
        let second = ((ids[1] % 7) as u32, ids[1]);
        table.get_mut(&second).unwrap().cum_qty = 4;
        let mut seen: Vec<(u32, u64)> = table.iter().map(|(k, _)| k).collect();
        assert_eq!(seen.len(), table.len());
        seen.sort_unstable_by_key(|k| k.1);
        assert!(seen.contains(&(3, 42)) && !seen.contains(&first) && seen.contains(&second));
        // The order log raised the next id: what is held keeps its id.
        let held = table.len();
        table.restart_at(from + 2 * n);
        assert_eq!(table.len(), held);
        assert_eq!(table.get(&second).unwrap().cum_qty, 4);
        assert_eq!(table.get(&(3, 42)).unwrap().cl_ord_id, "old");
        table.insert((1, from + 2 * n), order(1, "next run"));
        assert_eq!(table.get(&(1, from + 2 * n)).unwrap().cl_ord_id, "next run");
        assert_eq!(table.chunks.len(), 1);
    }

    #[test]
    fn order_ids_survive_a_chunk_left_short_by_missing_ids() {
        // The last ids of the first chunk named no order (refused submits),
        // so that chunk holds fewer slots than a full one: ids in the next
        // chunks must still come out as they went in.
        let from = 500u64;
        let mut table = OrderTable::new(from);
        let ids = [
            from,
            from + 3,
            from + ORDER_CHUNK as u64 + 1,
            from + 2 * ORDER_CHUNK as u64,
        ];
        for (n, &id) in ids.iter().enumerate() {
            table.insert((n as u32, id), order(n as u32, &id.to_string()));
        }
        assert!(table.chunks[0].len() < ORDER_CHUNK);
        let mut seen: Vec<(u32, u64)> = table.iter().map(|(k, _)| k).collect();
        seen.sort_unstable_by_key(|k| k.1);
        let expected: Vec<(u32, u64)> = ids
            .iter()
            .enumerate()
            .map(|(n, &id)| (n as u32, id))
            .collect();
        assert_eq!(seen, expected);
        table.restart_at(from + 3 * ORDER_CHUNK as u64);
        assert!(table.chunks.is_empty());
        for (n, &id) in ids.iter().enumerate() {
            let key = (n as u32, id);
            assert_eq!(table.get(&key).unwrap().cl_ord_id, id.to_string().as_str());
        }
        assert_eq!(table.len(), ids.len());
    }

    #[test]
    fn live_order_ids_resolve_by_slot_and_never_match_another_order() {
        let id = |counter: u64, slot: u64| (counter << ORDER_SLOT_BITS) | slot;
        let mut live = LiveOrderIds::default();
        assert_eq!(live.get(id(1, 0)), None);
        assert_eq!(live.get(0), None, "an empty entry matches nothing");
        live.insert(id(1, 5), (7, 100));
        live.insert(id(2, 0), (7, 101));
        assert_eq!(live.get(id(1, 5)), Some((7, 100)));
        assert_eq!(live.get(id(2, 0)), Some((7, 101)));
        assert_eq!(live.get(id(3, 5)), None, "same slot, another order");
        assert_eq!(live.get(id(1, 4)), None);
        // The slot is reused by a later order.
        live.insert(id(3, 5), (8, 102));
        assert_eq!(live.get(id(1, 5)), None);
        assert_eq!(live.get(id(3, 5)), Some((8, 102)));
        live.remove(id(1, 5)); // no longer there: nothing happens
        assert_eq!(live.get(id(3, 5)), Some((8, 102)));
        live.remove(id(3, 5));
        assert_eq!(live.get(id(3, 5)), None);
    }

    #[test]
    fn order_log_lines_round_trip_awkward_values_and_refuse_bad_ones() {
        assert_eq!(escape("a\tb%c\nd"), "a%09b%25c%0Ad");
        assert_eq!(unescape("a%09b%25c%0Ad").as_deref(), Some("a\tb%c\nd"));
        assert_eq!(unescape("bad%4"), None);
        let order = Order {
            session: "FIX.4.4-RINGEX-DEMO YOU".into(),
            account: 4,
            cl_ord_id: "id\twith%tab".into(),
            symbol: "RAIN-NO".into(),
            side: Side::Sell,
            outcome: Outcome::No,
            quantity: 12,
            order_id: 99,
            cum_qty: 3,
            notional: 120,
            cancel_cl_ord_id: None,
            cancelled: false,
        };
        let pending = PendingReplace {
            account: 4,
            orig_client_order_id: 7,
            cl_ord_id: "next".into(),
        };
        let text = log_line(&LogEntry::New(7, &order)) + &log_line(&LogEntry::Replace(8, &pending));
        assert_eq!(text.lines().count(), 2, "{text}");
        let mut lines = text.lines();
        let Some(ParsedEntry::New(7, back)) = parse_log_line(lines.next().unwrap()) else {
            panic!("{text}");
        };
        assert_eq!(
            (
                back.session,
                back.cl_ord_id,
                back.symbol,
                back.side,
                back.outcome
            ),
            (
                order.session,
                order.cl_ord_id,
                order.symbol,
                order.side,
                order.outcome
            )
        );
        assert_eq!((back.quantity, back.order_id, back.cum_qty), (12, 0, 0));
        let Some(ParsedEntry::Replace(8, back)) = parse_log_line(lines.next().unwrap()) else {
            panic!("{text}");
        };
        assert_eq!(
            (back.orig_client_order_id, back.cl_ord_id),
            (7, "next".into())
        );
        for bad in [
            "",
            "N\t1\t2",
            "N\tx\t7\ts\tS\t1\t1\t5\tc",
            "R\t1\t2\t3",
            "Z\t1",
        ] {
            assert!(parse_log_line(bad).is_none(), "{bad:?}");
        }
    }
}
