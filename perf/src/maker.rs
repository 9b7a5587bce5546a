//! `ringex-perf maker`: the exchange's demo market maker
//! ([`ringex_gateways::server::demo::Maker`]) as a FIX client of any
//! ringex server. It quotes a bid and an ask around a random-walk mid,
//! requotes with OrderCancelReplaceRequests every interval, and logs on
//! again after a disconnect (doubling backoff; on every Logon it first
//! mass-cancels its account's orders on the market, so its view starts
//! clean). It runs until Ctrl-C (or `--seconds`), then cancels its quotes
//! and logs out.
//!
//! This is a client, not a measurement: it writes no results folder. Its
//! counters go to stderr every few seconds and in a summary at the end.
//!
//! Threads: the caller's thread installs the SIGINT/SIGTERM handler,
//! prints the counters and owns the stop flag; one `ringex-maker` thread
//! owns the FIX session and the maker.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringex_gateways::fix::ClientConfig;
use ringex_gateways::server::demo::{run_session, Maker, Quoting, SessionStats};
use serde::Serialize;

use anyhow::{anyhow, Result};

/// Set by the signal handler, read by [`run_maker`].
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Async-signal-safe: one atomic store.
    INTERRUPTED.store(true, Ordering::Release);
}

/// What `ringex-perf maker` was asked to do.
#[derive(Debug, Clone)]
pub struct MakerOptions {
    /// The FIX acceptor, `HOST:PORT`.
    pub fix: String,
    /// Our SenderCompID (the server's session `target_comp_id`).
    pub sender: String,
    /// The server's CompID.
    pub target: String,
    /// Logon password.
    pub password: Option<String>,
    /// `FIX.4.4` or `FIXT.1.1`.
    pub begin_string: String,
    /// HeartBtInt.
    pub heartbeat_secs: u32,
    /// Keep sequence numbers across reconnects instead of ResetSeqNumFlag.
    pub no_reset: bool,
    /// What to quote.
    pub quoting: Quoting,
    /// Stop after this long (none: until Ctrl-C).
    pub seconds: Option<f64>,
    /// Seconds between counter lines on stderr (0: none).
    pub report_every: f64,
}

/// The counters at the end.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct MakerSummary {
    /// The acceptor's address.
    pub fix: String,
    /// The market quoted.
    pub ticker: String,
    /// Seconds it ran.
    pub seconds: u64,
    /// Successful Logons.
    pub logons: u64,
    /// Sessions that ended by a drop or a logout, and failed Logons (one per retry).
    pub disconnects: u64,
    /// NewOrderSingles.
    pub orders: u64,
    /// OrderCancelReplaceRequests.
    pub replaces: u64,
    /// OrderMassCancelRequests (one per Logon).
    pub mass_cancels: u64,
    /// OrderCancelRequests (its quotes, when stopped).
    pub cancels: u64,
    /// Fills of its quotes.
    pub fills: u64,
    /// Rejects received.
    pub rejects: u64,
}

impl MakerSummary {
    fn of(options: &MakerOptions, stats: &SessionStats, elapsed: Duration) -> Self {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        Self {
            fix: options.fix.clone(),
            ticker: options.quoting.ticker.clone(),
            seconds: elapsed.as_secs(),
            logons: get(&stats.logons),
            disconnects: get(&stats.disconnects),
            orders: get(&stats.orders_sent),
            replaces: get(&stats.replaces_sent),
            mass_cancels: get(&stats.mass_cancels_sent),
            cancels: get(&stats.cancels_sent),
            fills: get(&stats.fills),
            rejects: get(&stats.rejects),
        }
    }

    /// The summary as text.
    pub fn render(&self) -> String {
        format!(
            "maker on {} via {} for {} s: {} logons, {} disconnects, {} orders, {} replaces, \
             {} mass cancels, {} cancels, {} fills, {} rejects\n",
            self.ticker,
            self.fix,
            self.seconds,
            self.logons,
            self.disconnects,
            self.orders,
            self.replaces,
            self.mass_cancels,
            self.cancels,
            self.fills,
            self.rejects
        )
    }
}

impl MakerOptions {
    /// The FIX session configuration, after checking the options.
    pub fn client_config(&self) -> Result<ClientConfig> {
        self.quoting.validate().map_err(|e| anyhow!(e))?;
        let addr: SocketAddr = self
            .fix
            .to_socket_addrs()
            .map_err(|e| anyhow!("--fix {:?}: {e}", self.fix))?
            .next()
            .ok_or_else(|| anyhow!("--fix {:?}: no address", self.fix))?;
        if !matches!(self.begin_string.as_str(), "FIX.4.4" | "FIXT.1.1") {
            return Err(anyhow!(
                "--begin-string {:?}: FIX.4.4 or FIXT.1.1",
                self.begin_string
            ));
        }
        let mut config = ClientConfig::new(addr, &self.sender, &self.target);
        config.begin_string = self.begin_string.clone();
        config.password = self.password.clone();
        config.heartbeat_secs = self.heartbeat_secs;
        config.reset_on_logon = !self.no_reset;
        Ok(config)
    }
}

fn install_signal_handlers() -> Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` only performs an atomic store, which is
        // async-signal-safe; the sigaction struct is fully initialised.
        let failed = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut()) != 0
        };
        if failed {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

/// Runs the maker until Ctrl-C, SIGTERM or `options.seconds`; returns
/// its counters. Counter lines go to stderr every `report_every` seconds.
pub fn run_maker(options: &MakerOptions) -> Result<MakerSummary> {
    let client = options.client_config()?;
    install_signal_handlers()?;
    let stats = Arc::new(SessionStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let (stats, stop) = (Arc::clone(&stats), Arc::clone(&stop));
        let quoting = options.quoting.clone();
        std::thread::Builder::new()
            .name("ringex-maker".into())
            .spawn(move || {
                let mut maker = Maker::new(vec![quoting], Arc::clone(&stats));
                run_session(&client, &mut maker, &stop, &stats);
            })?
    };
    let start = Instant::now();
    let end = options
        .seconds
        .map(|s| start + Duration::from_secs_f64(s.max(0.0)));
    let every = Duration::from_secs_f64(options.report_every.max(0.0));
    let mut next_report = start + every;
    eprintln!(
        "ringex-perf maker: quoting {} as {} on {} (Ctrl-C stops)",
        options.quoting.ticker, options.sender, options.fix
    );
    while !INTERRUPTED.load(Ordering::Acquire) && end.is_none_or(|e| Instant::now() < e) {
        std::thread::sleep(Duration::from_millis(100));
        if !every.is_zero() && Instant::now() >= next_report {
            next_report += every;
            eprintln!("ringex-perf maker: {}", stats.summary());
        }
    }
    stop.store(true, Ordering::Release);
    thread
        .join()
        .map_err(|_| anyhow!("the maker thread panicked"))?;
    Ok(MakerSummary::of(options, &stats, start.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringex_gateways::server::{Server, ServerConfig, ServerOptions};

    fn options(fix: String) -> MakerOptions {
        MakerOptions {
            fix,
            // No cancel-on-disconnect: the maker's own cancels clear the book.
            sender: "DEMO-YOU".into(),
            target: "RINGEX".into(),
            password: Some("demo".into()),
            begin_string: "FIX.4.4".into(),
            heartbeat_secs: 30,
            no_reset: false,
            quoting: Quoting {
                ticker: "MARKET_MAKER".into(),
                interval: Duration::from_millis(100),
                min_price: 33,
                max_price: 67,
                spread: 10,
                quantity: 100,
            },
            seconds: Some(1.5),
            report_every: 0.0,
        }
    }

    #[test]
    fn bad_options_are_refused_before_connecting() {
        let bad_addr = options("no port here".into());
        assert!(bad_addr.client_config().is_err());
        let mut wide = options("127.0.0.1:1".into());
        wide.quoting.spread = 50;
        assert!(wide
            .client_config()
            .unwrap_err()
            .to_string()
            .contains("spread"));
        let mut old = options("127.0.0.1:1".into());
        old.begin_string = "FIX.4.2".into();
        assert!(old.client_config().is_err());
        assert!(options("localhost:9878".into()).client_config().is_ok());
    }

    #[test]
    fn the_maker_quotes_on_a_ringex_server_over_fix() {
        let dir = tempfile::tempdir().unwrap();
        let server_options = ServerOptions {
            data_dir: Some(dir.path().to_path_buf()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            no_demo: true,
            fix_listen: Some("127.0.0.1:0".parse().unwrap()),
        };
        let server = Server::start(&ServerConfig::default_config(), &server_options).unwrap();
        let fix = server.fix_addr().unwrap().to_string();
        let summary = run_maker(&options(fix.clone())).unwrap();
        assert_eq!(
            (summary.logons, summary.mass_cancels),
            (1, 1),
            "{summary:?}"
        );
        assert_eq!(
            summary.orders, 2,
            "one order per side, then replaces: {summary:?}"
        );
        assert!(summary.replaces >= 2, "{summary:?}");
        assert_eq!(
            (summary.disconnects, summary.rejects),
            (0, 0),
            "{summary:?}"
        );
        assert_eq!(summary.cancels, 2, "{summary:?}");
        assert!(summary.render().contains(&fix));
        // Its quotes are gone although the session keeps orders on logout.
        let book = || {
            let mut s = std::net::TcpStream::connect(server.local_addr()).unwrap();
            let request = "GET /api/v1/markets/MARKET_MAKER/orderbook HTTP/1.1\r\n\
                           Host: t\r\nConnection: close\r\n\r\n";
            std::io::Write::write_all(&mut s, request.as_bytes()).unwrap();
            let mut text = String::new();
            std::io::Read::read_to_string(&mut s, &mut text).unwrap();
            text
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !book().contains(r#""yes":[]"#) || !book().contains(r#""no":[]"#) {
            assert!(Instant::now() < deadline, "{}", book());
            std::thread::sleep(Duration::from_millis(50));
        }
        server.shutdown();
    }
}
