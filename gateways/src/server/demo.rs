//! The live demo market: market makers and liquidity takers that trade
//! through the gateway's REST API on 127.0.0.1, as any client would.
//!
//! **Thread.** One `ringex-demo` thread owns every maker and trader and
//! wakes only when the next one is due (at most a few requests a second
//! with the defaults). Each request opens its own connection
//! (`Connection: close`), so a dropped connection or a restarted gateway
//! costs at most one tick: the next tick connects again.

use super::config::{is_binary, DemoSection, MakerConfig, ServerConfig, TraderConfig};
use crate::ws::units::fmt_decimal;
use crate::ws::MarketConfig;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Per-request socket timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Demo counters, read by anyone (`Relaxed`).
#[derive(Debug, Default)]
pub struct DemoStats {
    /// Requests answered 2xx.
    pub requests_ok: AtomicU64,
    /// Requests refused or failed (connection errors included).
    pub requests_failed: AtomicU64,
}

/// The running demo thread.
#[derive(Debug)]
pub struct Demo {
    stop: Arc<AtomicBool>,
    stats: Arc<DemoStats>,
    thread: Option<JoinHandle<()>>,
}

impl Demo {
    /// Starts the makers and traders of `config.demo` against the gateway
    /// at `gateway`.
    pub fn start(config: &ServerConfig, gateway: SocketAddr) -> std::io::Result<Demo> {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(DemoStats::default());
        let mut actors = build_actors(&config.demo, config, gateway, Arc::clone(&stats));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("ringex-demo".into())
            .spawn(move || run(&mut actors, &thread_stop))?;
        Ok(Demo {
            stop,
            stats,
            thread: Some(thread),
        })
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<DemoStats> {
        Arc::clone(&self.stats)
    }

    /// Stops the thread (within one request timeout) and waits for it.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop_and_join();
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

enum Role {
    Maker { config: MakerConfig, mid: i64 },
    Trader { config: TraderConfig },
}

struct Actor {
    role: Role,
    api_key: String,
    interval: Duration,
    next_due: Instant,
    client: Client,
    rng: Rng,
    markets: Vec<MarketConfig>,
}

fn build_actors(
    demo: &DemoSection,
    config: &ServerConfig,
    gateway: SocketAddr,
    stats: Arc<DemoStats>,
) -> Vec<Actor> {
    let now = Instant::now();
    let client = Client { gateway, stats };
    let mut actors = Vec::new();
    for (i, m) in demo.makers.iter().enumerate() {
        let mut rng = Rng::seeded(i as u64);
        let (low, high) = m.mid_bounds();
        let mid = rng.range(low, high);
        actors.push(Actor {
            api_key: m.api_key.clone(),
            interval: Duration::from_millis(m.interval_ms),
            // Makers quote at once so takers find a book.
            next_due: now,
            client: client.clone(),
            rng,
            markets: config.market(&m.ticker).into_iter().cloned().collect(),
            role: Role::Maker {
                config: m.clone(),
                mid,
            },
        });
    }
    for (i, t) in demo.traders.iter().enumerate() {
        let interval = Duration::from_millis(t.interval_ms);
        actors.push(Actor {
            api_key: t.api_key.clone(),
            interval,
            next_due: now + interval,
            client: client.clone(),
            rng: Rng::seeded(1000 + i as u64),
            markets: t
                .tickers
                .iter()
                .filter_map(|ticker| config.market(ticker).cloned())
                .collect(),
            role: Role::Trader { config: t.clone() },
        });
    }
    actors
}

fn run(actors: &mut [Actor], stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        for actor in actors.iter_mut() {
            if actor.next_due <= now && !stop.load(Ordering::Acquire) {
                actor.act();
                actor.next_due = Instant::now() + actor.interval;
            }
        }
        let next = actors.iter().map(|a| a.next_due).min();
        let wait = next
            .map(|n| n.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        std::thread::sleep(wait);
    }
}

impl Actor {
    fn act(&mut self) {
        let Some(market) = self.pick_market() else {
            return;
        };
        match &mut self.role {
            Role::Maker { config, mid } => {
                let half = config.spread / 2;
                let step = self.rng.range(-half, half);
                let (low, high) = config.mid_bounds();
                *mid = (*mid + step).clamp(low, high);
                let bid = *mid - half;
                let (ask, quantity) = (bid + config.spread, config.quantity);
                // Cancel the previous quotes (and any left from an earlier
                // run of this account), then quote both sides again.
                self.client.call(
                    "DELETE",
                    &format!("/api/v1/portfolio/orders?ticker={}", market.ticker),
                    &self.api_key,
                    None,
                );
                for (action, price) in [("buy", bid), ("sell", ask)] {
                    let body = order_body(&market, action, price, quantity, "gtc");
                    self.client.call(
                        "POST",
                        "/api/v1/portfolio/orders",
                        &self.api_key,
                        Some(&body),
                    );
                }
            }
            Role::Trader { config } => {
                let quantity = self.rng.range(1, config.max_quantity as i64) as u64;
                let buy = self.rng.next() % 2 == 0;
                let (action, price) = if buy {
                    ("buy", market.max_price)
                } else {
                    ("sell", market.min_price)
                };
                let body = order_body(&market, action, price, quantity, "ioc");
                self.client.call(
                    "POST",
                    "/api/v1/portfolio/orders",
                    &self.api_key,
                    Some(&body),
                );
            }
        }
    }

    fn pick_market(&mut self) -> Option<MarketConfig> {
        if self.markets.is_empty() {
            return None;
        }
        let i = (self.rng.next() % self.markets.len() as u64) as usize;
        Some(self.markets[i].clone())
    }
}

/// A `create_order` body: binary orders buy or sell YES at `price` cents;
/// spot prices and quantities are written as decimals of the market.
fn order_body(
    market: &MarketConfig,
    action: &str,
    price: i64,
    quantity: u64,
    time_in_force: &str,
) -> Value {
    if is_binary(market) {
        json!({"ticker": market.ticker, "action": action, "side": "yes",
               "yes_price": price, "count": quantity, "time_in_force": time_in_force})
    } else {
        json!({"ticker": market.ticker, "action": action,
               "price": fmt_decimal(price as i128, market.price_scale(), 0),
               "quantity": fmt_decimal(quantity as i128, market.quantity_scale(), 0),
               "time_in_force": time_in_force})
    }
}

#[derive(Clone)]
struct Client {
    gateway: SocketAddr,
    stats: Arc<DemoStats>,
}

impl Client {
    /// One request on a fresh connection; counts the outcome.
    fn call(&self, method: &str, path: &str, api_key: &str, body: Option<&Value>) {
        let ok = matches!(self.request(method, path, api_key, body), Ok(200..=299));
        let counter = if ok {
            &self.stats.requests_ok
        } else {
            &self.stats.requests_failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        api_key: &str,
        body: Option<&Value>,
    ) -> std::io::Result<u16> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect_timeout(&self.gateway, REQUEST_TIMEOUT)?;
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: ringex-demo\r\nConnection: close\r\n\
             X-Api-Key: {api_key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes())?;
        stream.write_all(body.as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        // "HTTP/1.1 201 Created": the status is the second word.
        std::str::from_utf8(&response)
            .ok()
            .and_then(|text| text.split(' ').nth(1))
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| std::io::Error::other("malformed HTTP response"))
    }
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

    #[test]
    fn order_bodies_use_each_markets_units() {
        let config = ServerConfig::default_config();
        let binary = config.market("MARKET_MAKER").unwrap();
        let body = order_body(binary, "buy", 45, 100, "gtc");
        assert_eq!(
            (body["yes_price"].as_i64(), body["count"].as_u64()),
            (Some(45), Some(100))
        );
        let spot = config.market("BTC-USD").unwrap();
        let body = order_body(spot, "sell", 60_012, 500, "ioc");
        assert_eq!(body["price"], "60012");
        assert_eq!(body["quantity"], "0.500");
    }
}
