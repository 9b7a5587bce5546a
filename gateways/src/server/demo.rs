//! The live demo market: a market maker and liquidity takers that trade
//! over FIX as real clients of the acceptor ([`crate::fix::client`]), on
//! 127.0.0.1, with the sessions of the `[fix]` configuration.
//!
//! - The **maker** ([`Maker`]) quotes a bid and an ask around a
//!   random-walk mid on each of its markets, and every interval moves the
//!   mid and requotes with OrderCancelReplaceRequests (a new order where a
//!   quote was filled or cancelled). It tracks its quotes from the
//!   ExecutionReports. On every Logon it first sends an
//!   OrderMassCancelRequest per market, so quotes left from an earlier
//!   connection or run cannot pile up, and starts its view afresh. When
//!   stopped it cancels its quotes (OrderCancelRequest) and logs out.
//! - Each **trader** ([`Trader`]) sends an immediate-or-cancel order at a
//!   market's price bound (so it takes whatever rests) every interval.
//! - Both survive disconnects: [`run_session`] logs on again after a
//!   doubling backoff, with ResetSeqNumFlag or the kept sequence numbers
//!   as the session is configured.
//!
//! `ringex-perf maker` runs the same [`Maker`] against any ringex server.
//!
//! **Threads.** One thread per FIX session (`ringex-demo-maker`,
//! `ringex-demo-trader-N`), each owning its [`FixClient`] and its actor.
//! A thread blocks in the socket read until its next action is due (at
//! most 200 ms, to notice a stop), so the demo costs a few messages a
//! second and no spinning.

use super::config::{ServerConfig, TraderConfig};
use crate::fix::message::{Message, OutMessage};
use crate::fix::session::SessionConfig;
use crate::fix::time::{format_timestamp_millis, now_millis};
use crate::fix::{Backoff, ClientConfig, ClientError, FixClient, SeqNums};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The longest a demo thread blocks before it looks at its stop flag.
const STOP_CHECK: Duration = Duration::from_millis(200);
/// How long a stopping maker waits for answers to what it has in flight.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnect delays.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Counters of FIX clients, read by anyone (`Relaxed`).
#[derive(Debug, Default)]
pub struct SessionStats {
    /// Successful Logons.
    pub logons: AtomicU64,
    /// Sessions that ended other than by a stop (dropped, logged out) and
    /// Logons that failed (refused, or no connection): one per retry.
    pub disconnects: AtomicU64,
    /// NewOrderSingles sent.
    pub orders_sent: AtomicU64,
    /// OrderCancelReplaceRequests sent.
    pub replaces_sent: AtomicU64,
    /// OrderMassCancelRequests sent.
    pub mass_cancels_sent: AtomicU64,
    /// OrderCancelRequests sent.
    pub cancels_sent: AtomicU64,
    /// Fills reported (ExecutionReports with ExecType F).
    pub fills: AtomicU64,
    /// Rejects received (ExecType 8, OrderCancelReject, session or business reject).
    pub rejects: AtomicU64,
}

impl SessionStats {
    fn add(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// One line for logs: every counter.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "logons {} disconnects {} orders {} replaces {} mass-cancels {} cancels {} fills {} rejects {}",
            get(&self.logons),
            get(&self.disconnects),
            get(&self.orders_sent),
            get(&self.replaces_sent),
            get(&self.mass_cancels_sent),
            get(&self.cancels_sent),
            get(&self.fills),
            get(&self.rejects)
        )
    }
}

/// A FIX client's behaviour, driven by [`run_session`].
pub trait FixActor {
    /// Called after every Logon, before anything else is sent.
    fn on_logon(&mut self, client: &mut FixClient) -> Result<(), ClientError>;
    /// When [`FixActor::act`] is next due.
    fn next_due(&self) -> Instant;
    /// Sends what is due.
    fn act(&mut self, client: &mut FixClient) -> Result<(), ClientError>;
    /// An application message (or session-level Reject) arrived.
    fn on_message(&mut self, message: &Message);
    /// The session ended (the next Logon starts afresh).
    fn on_disconnect(&mut self) {}
    /// A stop was asked for: the last messages before the Logout.
    fn on_stop(&mut self, _client: &mut FixClient) -> Result<(), ClientError> {
        Ok(())
    }
}

/// Runs `actor` on a FIX session until `stop` is set: logs on (again
/// after each disconnect, with a doubling backoff), passes messages to the
/// actor and calls it when due; on stop, logs out.
pub fn run_session(
    config: &ClientConfig,
    actor: &mut dyn FixActor,
    stop: &AtomicBool,
    stats: &SessionStats,
) {
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let mut seq = SeqNums::default();
    while !stop.load(Ordering::Acquire) {
        if let Ok(mut client) = FixClient::logon(config.clone(), seq) {
            SessionStats::add(&stats.logons);
            backoff.reset();
            let result = serve(&mut client, actor, stop);
            if result.is_ok() {
                let _ = actor.on_stop(&mut client);
                actor.on_disconnect();
                let _ = client.logout("stopping");
                return;
            }
            seq = client.seq_nums();
            actor.on_disconnect();
        }
        SessionStats::add(&stats.disconnects);
        let resume = Instant::now() + backoff.next_delay();
        while !stop.load(Ordering::Acquire) && Instant::now() < resume {
            std::thread::sleep(STOP_CHECK.min(resume.saturating_duration_since(Instant::now())));
        }
    }
}

/// One logged-on session: `Ok` when stopped, the error when it ended.
fn serve(
    client: &mut FixClient,
    actor: &mut dyn FixActor,
    stop: &AtomicBool,
) -> Result<(), ClientError> {
    actor.on_logon(client)?;
    while !stop.load(Ordering::Acquire) {
        let wait = actor
            .next_due()
            .saturating_duration_since(Instant::now())
            .min(STOP_CHECK);
        if let Some(message) = client.recv(wait)? {
            actor.on_message(&message);
        }
        if Instant::now() >= actor.next_due() {
            actor.act(client)?;
        }
    }
    Ok(())
}

/// The [`ClientConfig`] of a client of `session` (the acceptor's view of
/// it) at `addr`.
pub fn client_config(session: &SessionConfig, addr: SocketAddr) -> ClientConfig {
    ClientConfig {
        addr,
        begin_string: session.begin_string.clone(),
        sender_comp_id: session.target_comp_id.clone(),
        target_comp_id: session.sender_comp_id.clone(),
        password: session.password.clone(),
        heartbeat_secs: session.heartbeat_secs.unwrap_or(30),
        reset_on_logon: session.reset_on_logon,
        default_appl_ver_id: session.default_appl_ver_id.clone(),
    }
}

/// What a maker quotes on one market: prices and quantities in the
/// engine's integers (cents for binary markets), as FIX carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoting {
    /// FIX Symbol (the market ticker).
    pub ticker: String,
    /// Time between requotes.
    pub interval: Duration,
    /// Lowest price quoted.
    pub min_price: i64,
    /// Highest price quoted.
    pub max_price: i64,
    /// Ask minus bid.
    pub spread: i64,
    /// Quantity per side.
    pub quantity: u64,
}

impl Quoting {
    /// The range of the mid: both quotes stay within `[min_price, max_price]`.
    pub fn mid_bounds(&self) -> (i64, i64) {
        let half = self.spread / 2;
        (self.min_price + half, self.max_price - (self.spread - half))
    }

    /// Checks the numbers: positive interval and quantity, a spread of at
    /// least 2 that fits between the bounds, positive prices.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval.is_zero()
            || self.quantity == 0
            || self.spread < 2
            || self.min_price < 1
            || self.max_price - self.min_price < self.spread
        {
            return Err(format!(
                "maker {}: needs interval and quantity > 0, spread >= 2, min_price >= 1 \
                 and max_price - min_price >= spread",
                self.ticker
            ));
        }
        Ok(())
    }
}

/// xorshift64*: reproducible enough for a demo, no dependency.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn seeded(salt: u64) -> Rng {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng((now ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi` (`lo <= hi`).
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo) as u64 + 1;
        lo + (self.next() % span) as i64
    }
}

/// ClOrdIDs unique across runs: a prefix, the start time, a counter.
#[derive(Debug)]
struct ClOrdIds {
    prefix: String,
    next: u64,
}

impl ClOrdIds {
    fn new(tag: &str) -> Self {
        Self {
            prefix: format!("{tag}-{:x}-", now_millis()),
            next: 1,
        }
    }

    fn next(&mut self) -> String {
        self.next += 1;
        format!("{}{}", self.prefix, self.next - 1)
    }
}

/// A NewOrderSingle for a limit order.
fn limit_order(
    cl_ord_id: &str,
    ticker: &str,
    buy: bool,
    price: i64,
    quantity: u64,
    tif: &str,
) -> OutMessage {
    let mut order = OutMessage::new("D");
    order
        .set(11, cl_ord_id)
        .set(38, quantity.to_string())
        .set(40, "2")
        .set(44, price.to_string())
        .set(54, if buy { "1" } else { "2" })
        .set(55, ticker)
        .set(59, tif)
        .set(60, format_timestamp_millis(now_millis()));
    order
}

/// One side's quote as the maker knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Quote {
    cl_ord_id: String,
    price: i64,
    cum_qty: u64,
    /// The exchange acknowledged it (New or Replaced).
    live: bool,
    /// A cancel/replace in flight: its ClOrdID and price.
    pending: Option<(String, i64)>,
}

#[derive(Debug)]
struct MarketQuotes {
    quoting: Quoting,
    mid: i64,
    next_due: Instant,
    /// Index 0: bid, 1: ask.
    sides: [Option<Quote>; 2],
}

/// The market maker. See the module docs.
#[derive(Debug)]
pub struct Maker {
    markets: Vec<MarketQuotes>,
    rng: Rng,
    ids: ClOrdIds,
    stats: Arc<SessionStats>,
}

impl Maker {
    /// A maker quoting `markets`, counting into `stats`.
    pub fn new(markets: Vec<Quoting>, stats: Arc<SessionStats>) -> Maker {
        let mut rng = Rng::seeded(markets.len() as u64);
        let now = Instant::now();
        let markets = markets
            .into_iter()
            .map(|quoting| {
                let (low, high) = quoting.mid_bounds();
                MarketQuotes {
                    mid: rng.range(low, high),
                    next_due: now,
                    sides: [None, None],
                    quoting,
                }
            })
            .collect();
        Maker {
            markets,
            rng,
            ids: ClOrdIds::new("MM"),
            stats,
        }
    }

    /// The current mid of each market (for reports and tests).
    pub fn mids(&self) -> BTreeMap<String, i64> {
        self.markets
            .iter()
            .map(|m| (m.quoting.ticker.clone(), m.mid))
            .collect()
    }

    /// Moves the mid one random step within its bounds.
    fn step(market: &mut MarketQuotes, rng: &mut Rng) -> (i64, i64) {
        let q = &market.quoting;
        let half = q.spread / 2;
        let (low, high) = q.mid_bounds();
        market.mid = (market.mid + rng.range(-half, half)).clamp(low, high);
        let bid = market.mid - half;
        (bid, bid + q.spread)
    }

    fn requote(&mut self, index: usize, client: &mut FixClient) -> Result<(), ClientError> {
        let market = &mut self.markets[index];
        let (bid, ask) = Self::step(market, &mut self.rng);
        let q = market.quoting.clone();
        for (side, price) in [(0, bid), (1, ask)] {
            let buy = side == 0;
            match &mut market.sides[side] {
                // Not acknowledged yet, or a replace in flight: wait.
                Some(quote) if !quote.live || quote.pending.is_some() => {}
                Some(quote) if quote.price == price && quote.cum_qty == 0 => {}
                Some(quote) => {
                    let cl_ord_id = self.ids.next();
                    let mut replace = OutMessage::new("G");
                    replace
                        .set(11, &cl_ord_id)
                        .set(41, &quote.cl_ord_id)
                        // Total quantity: what is filled plus a full quote.
                        .set(38, (quote.cum_qty + q.quantity).to_string())
                        .set(40, "2")
                        .set(44, price.to_string())
                        .set(54, if buy { "1" } else { "2" })
                        .set(55, &q.ticker)
                        .set(60, format_timestamp_millis(now_millis()));
                    client.send(&replace)?;
                    SessionStats::add(&self.stats.replaces_sent);
                    quote.pending = Some((cl_ord_id, price));
                }
                slot @ None => {
                    let cl_ord_id = self.ids.next();
                    client.send(&limit_order(
                        &cl_ord_id, &q.ticker, buy, price, q.quantity, "1",
                    ))?;
                    SessionStats::add(&self.stats.orders_sent);
                    *slot = Some(Quote {
                        cl_ord_id,
                        price,
                        cum_qty: 0,
                        live: false,
                        pending: None,
                    });
                }
            }
        }
        Ok(())
    }

    /// Applies an ExecutionReport or OrderCancelReject to the quote it is about.
    fn on_report(&mut self, message: &Message) {
        let Some(cl_ord_id) = message.str_value(11) else {
            return;
        };
        let exec_type = message.body_value(150).unwrap_or_default();
        let status = message.body_value(39).unwrap_or_default();
        let cum_qty = message.body_uint(14);
        for market in &mut self.markets {
            for slot in &mut market.sides {
                let Some(quote) = slot else { continue };
                let is_pending = quote.pending.as_ref().is_some_and(|p| p.0 == cl_ord_id);
                if quote.cl_ord_id != cl_ord_id && !is_pending {
                    continue;
                }
                if message.msg_type() == b"9" {
                    // A refused replace: the order is gone if the exchange
                    // does not know it, else it stands as it was.
                    SessionStats::add(&self.stats.rejects);
                    if status == b"8" {
                        *slot = None;
                    } else {
                        quote.pending = None;
                    }
                    return;
                }
                match exec_type {
                    b"0" => quote.live = true,
                    b"5" => {
                        if let Some((id, price)) = quote.pending.take() {
                            quote.cl_ord_id = id;
                            quote.price = price;
                        }
                        quote.live = true;
                        quote.cum_qty = cum_qty.unwrap_or(quote.cum_qty);
                    }
                    b"F" => {
                        SessionStats::add(&self.stats.fills);
                        quote.cum_qty = cum_qty.unwrap_or(quote.cum_qty);
                    }
                    b"8" => SessionStats::add(&self.stats.rejects),
                    _ => {}
                }
                if matches!(status, b"2" | b"4" | b"8") {
                    *slot = None;
                }
                return;
            }
        }
    }
}

impl FixActor for Maker {
    /// Cancels whatever this account has resting on each market (from an
    /// earlier connection or run) and quotes afresh.
    fn on_logon(&mut self, client: &mut FixClient) -> Result<(), ClientError> {
        let now = Instant::now();
        for market in &mut self.markets {
            let mut cancel = OutMessage::new("q");
            cancel
                .set(11, self.ids.next())
                .set(55, &market.quoting.ticker)
                .set(530, "1")
                .set(60, format_timestamp_millis(now_millis()));
            client.send(&cancel)?;
            SessionStats::add(&self.stats.mass_cancels_sent);
            market.sides = [None, None];
            market.next_due = now;
        }
        Ok(())
    }

    fn next_due(&self) -> Instant {
        self.markets
            .iter()
            .map(|m| m.next_due)
            .min()
            .unwrap_or_else(|| Instant::now() + STOP_CHECK)
    }

    fn act(&mut self, client: &mut FixClient) -> Result<(), ClientError> {
        let now = Instant::now();
        for i in 0..self.markets.len() {
            if self.markets[i].next_due <= now {
                self.requote(i, client)?;
                let market = &mut self.markets[i];
                market.next_due = now + market.quoting.interval;
            }
        }
        Ok(())
    }

    fn on_message(&mut self, message: &Message) {
        match message.msg_type() {
            b"8" | b"9" => self.on_report(message),
            b"3" | b"j" => SessionStats::add(&self.stats.rejects),
            _ => {}
        }
    }

    fn on_disconnect(&mut self) {
        for market in &mut self.markets {
            market.sides = [None, None];
        }
    }

    /// Takes its quotes off with an OrderCancelRequest each (a session
    /// without cancel-on-disconnect would leave them resting), once what
    /// is in flight is answered: a cancel names the order by its current
    /// ClOrdID, which a replace in flight is about to change. A market
    /// still unsettled after 2 s gets a mass cancel.
    fn on_stop(&mut self, client: &mut FixClient) -> Result<(), ClientError> {
        let unsettled = |maker: &Maker| {
            maker
                .markets
                .iter()
                .flat_map(|m| m.sides.iter().flatten())
                .any(|q| !q.live || q.pending.is_some())
        };
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while unsettled(self) && Instant::now() < deadline {
            if let Some(message) = client.recv(Duration::from_millis(50))? {
                self.on_message(&message);
            }
        }
        for market in &self.markets {
            let settled = market
                .sides
                .iter()
                .flatten()
                .all(|q| q.live && q.pending.is_none());
            if !settled {
                let mut cancel = OutMessage::new("q");
                cancel
                    .set(11, self.ids.next())
                    .set(55, &market.quoting.ticker)
                    .set(530, "1")
                    .set(60, format_timestamp_millis(now_millis()));
                client.send(&cancel)?;
                SessionStats::add(&self.stats.mass_cancels_sent);
                continue;
            }
            for (side, quote) in market.sides.iter().enumerate() {
                let Some(quote) = quote else { continue };
                let mut cancel = OutMessage::new("F");
                cancel
                    .set(11, self.ids.next())
                    .set(41, &quote.cl_ord_id)
                    .set(54, if side == 0 { "1" } else { "2" })
                    .set(55, &market.quoting.ticker)
                    .set(60, format_timestamp_millis(now_millis()));
                client.send(&cancel)?;
                SessionStats::add(&self.stats.cancels_sent);
            }
        }
        Ok(())
    }
}

/// A market a trader takes liquidity on: its ticker and price bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakerMarket {
    /// FIX Symbol.
    pub ticker: String,
    /// Sell price (takes every bid).
    pub min_price: i64,
    /// Buy price (takes every ask).
    pub max_price: i64,
}

/// A liquidity taker. See the module docs.
#[derive(Debug)]
pub struct Trader {
    markets: Vec<TakerMarket>,
    interval: Duration,
    max_quantity: u64,
    next_due: Instant,
    rng: Rng,
    ids: ClOrdIds,
    stats: Arc<SessionStats>,
}

impl Trader {
    /// A trader sending an IOC order of 1..=`max_quantity` on one of
    /// `markets` every `interval`.
    pub fn new(
        markets: Vec<TakerMarket>,
        interval: Duration,
        max_quantity: u64,
        salt: u64,
        stats: Arc<SessionStats>,
    ) -> Trader {
        Trader {
            markets,
            interval,
            max_quantity: max_quantity.max(1),
            next_due: Instant::now() + interval,
            rng: Rng::seeded(1000 + salt),
            ids: ClOrdIds::new(&format!("T{salt}")),
            stats,
        }
    }
}

impl FixActor for Trader {
    fn on_logon(&mut self, _: &mut FixClient) -> Result<(), ClientError> {
        Ok(())
    }

    fn next_due(&self) -> Instant {
        self.next_due
    }

    fn act(&mut self, client: &mut FixClient) -> Result<(), ClientError> {
        self.next_due = Instant::now() + self.interval;
        if self.markets.is_empty() {
            return Ok(());
        }
        let market = &self.markets[(self.rng.next() % self.markets.len() as u64) as usize];
        let quantity = self.rng.range(1, self.max_quantity as i64) as u64;
        let buy = self.rng.next() % 2 == 0;
        let price = if buy {
            market.max_price
        } else {
            market.min_price
        };
        let order = limit_order(&self.ids.next(), &market.ticker, buy, price, quantity, "3");
        client.send(&order)?;
        SessionStats::add(&self.stats.orders_sent);
        Ok(())
    }

    fn on_message(&mut self, message: &Message) {
        match (message.msg_type(), message.body_value(150)) {
            (b"8", Some(b"F")) => SessionStats::add(&self.stats.fills),
            (b"8", Some(b"8")) | (b"3" | b"j", _) => SessionStats::add(&self.stats.rejects),
            _ => {}
        }
    }
}

/// The running demo threads.
#[derive(Debug)]
pub struct Demo {
    stop: Arc<AtomicBool>,
    stats: Arc<SessionStats>,
    threads: Vec<JoinHandle<()>>,
}

impl Demo {
    /// Starts the maker (one session for all `[[demo.makers]]` of a
    /// session) and the traders of `config.demo` against the FIX acceptor
    /// at `fix`. The configuration was validated: every session exists.
    pub fn start(config: &ServerConfig, fix: SocketAddr) -> std::io::Result<Demo> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(SessionStats::default());
        let mut demo = Demo {
            stop,
            stats,
            threads: Vec::new(),
        };
        let session = |name: &str| {
            config
                .fix
                .as_ref()
                .and_then(|f| f.sessions.iter().find(|s| s.target_comp_id == name))
                .map(|s| client_config(s, fix))
                .ok_or_else(|| std::io::Error::other(format!("no [fix] session {name}")))
        };
        let mut makers: BTreeMap<&str, Vec<Quoting>> = BTreeMap::new();
        for m in &config.demo.makers {
            makers.entry(&m.session).or_default().push(m.quoting());
        }
        for (name, markets) in makers {
            let maker = Maker::new(markets, Arc::clone(&demo.stats));
            demo.spawn(format!("ringex-demo-maker-{name}"), session(name)?, maker)?;
        }
        for (i, t) in config.demo.traders.iter().enumerate() {
            let trader = trader_of(config, t, i as u64, Arc::clone(&demo.stats));
            demo.spawn(
                format!("ringex-demo-trader-{}", i + 1),
                session(&t.session)?,
                trader,
            )?;
        }
        Ok(demo)
    }

    fn spawn(
        &mut self,
        name: String,
        client: ClientConfig,
        mut actor: impl FixActor + Send + 'static,
    ) -> std::io::Result<()> {
        let stop = Arc::clone(&self.stop);
        let stats = Arc::clone(&self.stats);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || run_session(&client, &mut actor, &stop, &stats))?;
        self.threads.push(thread);
        Ok(())
    }

    /// Its counters (all sessions together).
    pub fn stats(&self) -> Arc<SessionStats> {
        Arc::clone(&self.stats)
    }

    /// Stops the threads (each logs out) and waits for them.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

fn trader_of(
    config: &ServerConfig,
    t: &TraderConfig,
    salt: u64,
    stats: Arc<SessionStats>,
) -> Trader {
    let markets = t
        .tickers
        .iter()
        .filter_map(|ticker| config.market(ticker))
        .map(|m| TakerMarket {
            ticker: m.ticker.clone(),
            min_price: m.min_price,
            max_price: m.max_price,
        })
        .collect();
    Trader::new(
        markets,
        Duration::from_millis(t.interval_ms),
        t.max_quantity,
        salt,
        stats,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_range_stays_in_bounds_and_varies() {
        let mut rng = Rng::seeded(7);
        let draws: Vec<i64> = (0..1000).map(|_| rng.range(-5, 5)).collect();
        assert!(draws.iter().all(|d| (-5..=5).contains(d)));
        assert!(draws.contains(&-5) && draws.contains(&5));
    }

    fn quoting() -> Quoting {
        Quoting {
            ticker: "M".into(),
            interval: Duration::from_millis(3000),
            min_price: 33,
            max_price: 67,
            spread: 10,
            quantity: 100,
        }
    }

    #[test]
    fn the_random_walk_keeps_both_quotes_inside_the_bounds() {
        let mut maker = Maker::new(vec![quoting()], Arc::new(SessionStats::default()));
        let mut rng = Rng::seeded(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let (bid, ask) = Maker::step(&mut maker.markets[0], &mut rng);
            assert_eq!(ask - bid, 10);
            assert!(bid >= 33 && ask <= 67, "{bid} {ask}");
            seen.insert(bid);
        }
        // It walks across the whole range, ends included.
        assert!(seen.contains(&33) && seen.contains(&57), "{seen:?}");
        assert!(quoting().validate().is_ok());
        let narrow = Quoting {
            max_price: 40,
            ..quoting()
        };
        assert!(narrow.validate().unwrap_err().contains("spread"));
    }

    fn report(fields: &str) -> Message {
        let body = fields.replace('|', "\x01");
        let mut out = format!("8=FIX.4.4\x019={}\x01{}", body.len(), body).into_bytes();
        let sum = crate::fix::frame::checksum(&out);
        out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        let d = crate::fix::Dictionaries::shared();
        Message::parse(out, &d.fix44).unwrap()
    }

    #[test]
    fn execution_reports_move_the_makers_view_of_its_quotes() {
        let stats = Arc::new(SessionStats::default());
        let mut maker = Maker::new(vec![quoting()], Arc::clone(&stats));
        let quote = |id: &str| Quote {
            cl_ord_id: id.into(),
            price: 40,
            cum_qty: 0,
            live: false,
            pending: None,
        };
        maker.markets[0].sides = [Some(quote("b1")), Some(quote("a1"))];
        let head = "35=8|34=2|49=S|52=20240101-00:00:00|56=T|";
        maker.on_message(&report(&format!("{head}11=b1|14=0|39=0|150=0|")));
        assert!(maker.markets[0].sides[0].as_ref().unwrap().live);
        // A replace in flight is confirmed under its new ClOrdID and price.
        maker.markets[0].sides[0].as_mut().unwrap().pending = Some(("b2".into(), 42));
        maker.on_message(&report(&format!("{head}11=b2|14=0|39=0|41=b1|150=5|")));
        let bid = maker.markets[0].sides[0].clone().unwrap();
        assert_eq!(
            (bid.cl_ord_id.as_str(), bid.price, bid.pending),
            ("b2", 42, None)
        );
        // A partial fill counts, a full fill frees the side.
        maker.on_message(&report(&format!("{head}11=b2|14=30|39=1|150=F|")));
        assert_eq!(maker.markets[0].sides[0].as_ref().unwrap().cum_qty, 30);
        maker.on_message(&report(&format!("{head}11=b2|14=100|39=2|150=F|")));
        assert!(maker.markets[0].sides[0].is_none());
        assert_eq!(stats.fills.load(Ordering::Relaxed), 2);
        // A refused replace of an unknown order frees the side too.
        let ask = maker.markets[0].sides[1].as_mut().unwrap();
        ask.live = true;
        ask.pending = Some(("a2".into(), 50));
        let reject = "35=9|34=3|49=S|52=20240101-00:00:00|56=T|11=a2|37=NONE|39=8|41=a1|434=2|";
        maker.on_message(&report(reject));
        assert!(maker.markets[0].sides[1].is_none());
        // A report for someone else's order changes nothing.
        maker.markets[0].sides[1] = Some(quote("a3"));
        maker.on_message(&report(&format!("{head}11=zz|14=0|39=4|150=4|")));
        assert!(maker.markets[0].sides[1].is_some());
        maker.on_disconnect();
        assert!(maker.markets[0].sides.iter().all(Option::is_none));
    }
}
