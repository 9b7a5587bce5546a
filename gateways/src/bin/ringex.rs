//! `ringex`: the exchange server (pipeline, HTTP/WebSocket gateway, FIX
//! acceptor, demo market). With no arguments it runs the embedded default
//! configuration with its data under `./ringex-data`; see `docs/server.md`.
//!
//! Threads: the main thread starts the [`Server`], waits for SIGINT or
//! SIGTERM (a signal handler only sets a flag), and shuts it down.

use ringex_gateways::server::{absolute, Server, ServerConfig, ServerOptions, DEFAULT_CONFIG};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const USAGE: &str = "\
usage: ringex [--config FILE] [--data-dir DIR] [--listen ADDR] [--fix-listen ADDR] [--no-demo]
       ringex --print-default-config

  --config FILE            use FILE instead of the embedded default configuration
  --data-dir DIR           journal and snapshots here (default: data_dir of the config, ./ringex-data)
  --listen ADDR            HTTP/WebSocket address, e.g. 127.0.0.1:0 for any free port
  --fix-listen ADDR        FIX acceptor address (when the config has a [fix] section)
  --no-demo                do not run the simulated market maker and traders
  --print-default-config   print the embedded configuration (a commented TOML file) and exit
";

/// Set by the signal handler, read by the main thread.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Async-signal-safe: one atomic store.
    STOP.store(true, Ordering::Release);
}

fn install_signal_handlers() -> std::io::Result<()> {
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
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[derive(Debug)]
enum Mode {
    Run(Option<PathBuf>, ServerOptions),
    PrintDefault,
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Mode, String> {
    let mut args = args.into_iter();
    let mut config = None;
    let mut options = ServerOptions::default();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--config" => config = Some(PathBuf::from(value("--config")?)),
            "--data-dir" => options.data_dir = Some(PathBuf::from(value("--data-dir")?)),
            "--listen" => {
                let text = value("--listen")?;
                let addr: SocketAddr = text.parse().map_err(|_| {
                    format!("--listen {text:?} is not an address like 127.0.0.1:8080")
                })?;
                options.listen = Some(addr);
            }
            "--fix-listen" => {
                let text = value("--fix-listen")?;
                let addr: SocketAddr = text.parse().map_err(|_| {
                    format!("--fix-listen {text:?} is not an address like 127.0.0.1:9878")
                })?;
                options.fix_listen = Some(addr);
            }
            "--no-demo" => options.no_demo = true,
            "--print-default-config" => return Ok(Mode::PrintDefault),
            "-h" | "--help" => return Ok(Mode::Help),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Mode::Run(config, options))
}

fn main() -> ExitCode {
    let (config_path, options) = match parse_args(std::env::args().skip(1)) {
        Ok(Mode::Run(config, options)) => (config, options),
        Ok(Mode::PrintDefault) => {
            print!("{DEFAULT_CONFIG}");
            return ExitCode::SUCCESS;
        }
        Ok(Mode::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(problem) => {
            eprintln!("ringex: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let config = match &config_path {
        Some(path) => ServerConfig::load(path),
        None => Ok(ServerConfig::default_config()),
    };
    let config = match config {
        Ok(config) => config,
        Err(problem) => {
            eprintln!("ringex: configuration: {problem}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = install_signal_handlers() {
        eprintln!("ringex: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let server = match Server::start(&config, &options) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("ringex: {e}");
            return ExitCode::FAILURE;
        }
    };
    report_start(&server, &config, config_path.is_some());
    while !STOP.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("ringex: stopping");
    let report = server.shutdown();
    match &report.snapshot {
        Some(path) => println!("ringex: snapshot written: {}", path.display()),
        None => println!("ringex: no snapshot written (nothing changed since the last one)"),
    }
    if let Some(problem) = &report.health.snapshot_error {
        eprintln!("ringex: snapshot failed: {problem}");
    }
    if report.health.is_ok() {
        println!("ringex: stopped cleanly");
        ExitCode::SUCCESS
    } else {
        eprintln!("ringex: stopped with errors: {:?}", report.health);
        ExitCode::FAILURE
    }
}

fn report_start(server: &Server, config: &ServerConfig, custom_config: bool) {
    let s = server.summary();
    let p = &s.pipeline;
    println!(
        "ringex: data directory {} ({})",
        absolute(&s.data_dir).display(),
        if custom_config {
            "--config"
        } else {
            "embedded default configuration"
        }
    );
    match (&p.snapshot, p.replayed) {
        (_, 0) if p.next_sequence == 1 => println!("ringex: new journal"),
        (Some(snap), replayed) => println!(
            "ringex: recovered from snapshot at command {} + {replayed} journaled commands; \
             view rebuilt from {} events",
            snap.sequence, s.history_events
        ),
        (None, replayed) => println!(
            "ringex: recovered by replaying {replayed} journaled commands; view rebuilt from {} events",
            s.history_events
        ),
    }
    if let Some(problem) = &p.output.error {
        eprintln!("ringex: warning: output journal not in use: {problem}");
    }
    if !s.markets_created.is_empty() {
        println!("ringex: created markets {}", s.markets_created.join(", "));
    }
    if !s.accounts_created.is_empty() {
        println!(
            "ringex: created and funded accounts {:?}",
            s.accounts_created
        );
    }
    if server.demo_stats().is_some() {
        let mut makers: Vec<&str> = config
            .demo
            .makers
            .iter()
            .map(|m| m.session.as_str())
            .collect();
        makers.sort_unstable();
        makers.dedup();
        let traders: Vec<&str> = config
            .demo
            .traders
            .iter()
            .map(|t| t.session.as_str())
            .collect();
        println!(
            "ringex: demo market on: FIX clients {} (maker) and {} (traders); --no-demo turns it off",
            makers.join(", "),
            traders.join(", ")
        );
    } else {
        println!("ringex: demo market off");
    }
    println!(
        "ringex: REST and WebSocket API on http://{}/api/v1/",
        server.local_addr()
    );
    // The line the integration test (and a newcomer) looks for.
    if let Some(addr) = server.fix_addr() {
        println!(
            "ringex: FIX 4.4 / FIXT.1.1 acceptor on {addr} (sessions: [fix] in the configuration)"
        );
    }
    println!("ringex: monitor page {}", server.monitor_url());
    println!("ringex: press Ctrl-C to stop");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Mode, String> {
        parse_args(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn arguments_parse_or_fail_clearly() {
        assert!(matches!(parse(&[]), Ok(Mode::Run(None, _))));
        assert!(matches!(
            parse(&["--print-default-config"]),
            Ok(Mode::PrintDefault)
        ));
        let Ok(Mode::Run(Some(path), options)) =
            parse(&["--config", "x.toml", "--no-demo", "--listen", "127.0.0.1:0"])
        else {
            panic!("parsed");
        };
        assert_eq!(path, PathBuf::from("x.toml"));
        assert!(options.no_demo);
        assert_eq!(options.listen, Some("127.0.0.1:0".parse().unwrap()));
        assert!(parse(&["--config"]).unwrap_err().contains("needs a value"));
        assert!(parse(&["--listen", "nope"])
            .unwrap_err()
            .contains("not an address"));
        assert!(parse(&["--bogus"]).unwrap_err().contains("unknown"));
    }
}
