//! Interop with the official QuickFIX engine: the Python `quickfix`
//! package (built into a cached virtual environment by `scripts/test.sh`,
//! `setup_quickfix`) runs as initiator against an `ExchangeApplication`-
//! backed gateway on a real pipeline. Each scenario is one run of
//! `tests/python/fix_interop.py`, which checks what QuickFIX receives and
//! prints `PASS <scenario>`.
//!
//! The interpreter is `$RINGEX_QUICKFIX_PYTHON`, by default
//! `~/.cache/ringex/quickfix-venv/bin/python`; the test fails (it does not
//! skip) when it is missing or cannot import `quickfix`.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ringex_core::pipeline::{OverflowPolicy, Pipeline, PipelineConfig};
use ringex_core::records::{Command as EngineCommand, InstrumentSpec};
use ringex_core::EngineConfig;
use ringex_gateways::fix::{
    Dictionaries, ExchangeApplication, FixServer, FixServerConfig, SessionConfig,
};

/// The longest one scenario may run before it is killed and failed.
const SCENARIO_LIMIT: Duration = Duration::from_secs(40);

/// QMAKER's second account.
const SECOND_ACCOUNT: u32 = 61;

/// FIX symbol, instrument id.
const SYMBOLS: [(&str, u32); 5] = [
    ("RAIN", 1),
    ("SNOW", 2),
    ("SUN", 3),
    ("WIND", 4),
    ("FOG", 5),
];

/// CompID of the client, its account.
const SESSIONS: [(&str, u32); 11] = [
    ("QLOGON", 50),
    ("QMAKER", 51),
    ("QTAKER", 52),
    ("QAMEND", 53),
    ("QMD", 54),
    ("QMDTRADER", 55),
    ("QRECON", 56),
    ("QRECONCP", 57),
    ("QPASS", 58),
    ("QVICTIM", 59),
    ("QTHIEF", 60),
];

fn quickfix_python() -> PathBuf {
    let path = std::env::var_os("RINGEX_QUICKFIX_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is set");
            PathBuf::from(home).join(".cache/ringex/quickfix-venv/bin/python")
        });
    let imports = Command::new(&path)
        .args(["-c", "import quickfix"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        imports,
        "the QuickFIX interop tests need a Python with the `quickfix` package at {} \
         (set RINGEX_QUICKFIX_PYTHON, or run `bash scripts/test.sh`, whose setup_quickfix \
         builds it into ~/.cache/ringex/quickfix-venv)",
        path.display()
    );
    path
}

fn session(client: &str, account: u32) -> SessionConfig {
    let mut s = SessionConfig::new("FIX.4.4", "ISLD", client);
    s.accounts = vec![account.to_string()];
    match client {
        // Allowed two accounts: orders name one in Parties.
        "QMAKER" => {
            s.reset_on_logon = true;
            s.accounts.push(SECOND_ACCOUNT.to_string());
        }
        // Sequence recovery across reconnects: no reset.
        "QRECON" | "QRECONCP" => s.reset_on_logon = false,
        "QPASS" => {
            s.reset_on_logon = true;
            s.password = Some("secret".to_string());
        }
        _ => s.reset_on_logon = true,
    }
    s
}

struct Venue {
    _dir: tempfile::TempDir,
    addr: SocketAddr,
    gateway: ringex_gateways::fix::FixServerHandle,
    _pipeline: Pipeline,
}

fn start_venue() -> Venue {
    let dir = tempfile::tempdir().unwrap();
    let config = PipelineConfig::two_core_default(dir.path())
        .with_engine(EngineConfig::small())
        .with_timer(None);
    let pipeline = Pipeline::start(config).unwrap();
    let sink = pipeline.register_sink("fix", 1 << 16, OverflowPolicy::DropNewest);
    let mut admin = pipeline.sender();
    let mut setup = Vec::new();
    for (_, id) in SYMBOLS {
        setup.push(EngineCommand::add_instrument(InstrumentSpec::binary(id, 0)));
    }
    for (_, account) in SESSIONS {
        setup.push(EngineCommand::add_account(account));
        setup.push(EngineCommand::deposit(account, 0, 1_000_000));
    }
    setup.push(EngineCommand::add_account(SECOND_ACCOUNT));
    setup.push(EngineCommand::deposit(SECOND_ACCOUNT, 0, 1_000_000));
    for cmd in setup {
        admin.try_submit(cmd).unwrap();
    }
    let symbols: HashMap<String, u32> =
        SYMBOLS.iter().map(|(s, id)| (s.to_string(), *id)).collect();
    let app = ExchangeApplication::new(pipeline.sender(), sink.receiver.clone(), symbols);
    let gateway = FixServer::spawn(
        FixServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            store_dir: Some(dir.path().join("fix-store")),
            max_frame_bytes: 16 * 1024,
            order_capacity: 1024,
            sessions: SESSIONS.iter().map(|(c, a)| session(c, *a)).collect(),
        },
        Dictionaries::shared(),
        app,
    )
    .unwrap();
    Venue {
        addr: gateway.local_addr(),
        gateway,
        _pipeline: pipeline,
        _dir: dir,
    }
}

/// Runs one scenario to completion (bounded), returning its output or the
/// reason it failed.
fn run_scenario(python: &PathBuf, addr: SocketAddr, name: &str) -> Result<String, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/fix_interop.py");
    let work = tempfile::tempdir().unwrap();
    let mut child = Command::new(python)
        .args([
            script,
            &addr.port().to_string(),
            name,
            work.path().to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: cannot start {}: {e}", python.display()))?;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > SCENARIO_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut text = String::new();
    child.stdout.take().unwrap().read_to_string(&mut text).ok();
    child.stderr.take().unwrap().read_to_string(&mut text).ok();
    let logs = quickfix_logs(work.path());
    match status {
        Some(s) if s.success() && text.contains(&format!("PASS {name}")) => Ok(text),
        Some(s) => Err(format!("{name}: exit {s}\n{text}\nQuickFIX logs:\n{logs}")),
        None => Err(format!(
            "{name}: killed after {SCENARIO_LIMIT:?}\n{text}\nQuickFIX logs:\n{logs}"
        )),
    }
}

/// The message logs QuickFIX wrote, for a failure's report.
fn quickfix_logs(work: &std::path::Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(work.join("log")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".messages.current.log") {
                let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                out.push_str(&format!("-- {name}\n{}\n", text.replace('\x01', "|")));
            }
        }
    }
    out
}

#[test]
fn quickfix_initiators_trade_with_the_gateway() {
    let python = quickfix_python();
    let venue = start_venue();
    let mut failures = Vec::new();
    for name in [
        "logon",
        "bad_password",
        "orders",
        "amend_cancel",
        "foreign_cancel",
        "market_data",
        "reconnect",
    ] {
        let started = Instant::now();
        match run_scenario(&python, venue.addr, name) {
            Ok(_) => eprintln!(
                "quickfix scenario {name}: passed in {:?}",
                started.elapsed()
            ),
            Err(e) => failures.push(e),
        }
    }
    venue.gateway.stop().unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
