//! The QuickFIX session acceptance definitions, played against the gateway
//! running the echo fixture.
//!
//! Each `.def` file of `fix44/` and `fix50sp2/` runs against its own
//! gateway on its own loopback port, several at once (a few definitions
//! wait on heartbeat timers for half a minute). The test prints a table of
//! every definition's result to stderr and fails when a definition fails
//! that is not in [`EXPECTED_FAILURES`], or when one listed there passes.
//!
//! The definitions are read from `$RINGEX_FIX_ACCEPTANCE_DIR`, else from
//! `../shared/fix-acceptance` relative to the repository root when it is
//! there, else from the copy in `gateways/tests/fix/definitions` (the same
//! files with their licence, so a checkout on its own runs the suite).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;
use ringex_gateways::fix::frame::checksum;

use super::support::{acceptance_sessions, start_echo_gateway, time_text, Client, Received};

/// Definitions known to fail, with the reason (keep in step with
/// `docs/fix.md`). The test fails if one of them passes.
const EXPECTED_FAILURES: &[(&str, &str)] = &[];

const SUITES: [&str; 2] = ["fix44", "fix50sp2"];
const EXPECT_TIMEOUT: Duration = Duration::from_secs(20);
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WORKERS: usize = 24;

fn acceptance_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RINGEX_FIX_ACCEPTANCE_DIR") {
        return PathBuf::from(dir);
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fix-acceptance");
    if shared.is_dir() {
        return shared;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fix/definitions")
}

#[derive(Debug, Clone)]
enum Step {
    Connect(u32),
    Disconnect(u32),
    ExpectConnect(u32),
    ExpectDisconnect(u32),
    Send(u32, String),
    Expect(u32, String),
}

fn parse_definition(text: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() || line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (kind, rest) = line.split_at(1);
        let (conn, rest) = match rest.split_once(',') {
            Some((id, r)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
                (id.parse().map_err(|e| format!("line {}: {e}", n + 1))?, r)
            }
            _ => (1, rest),
        };
        let step = match (kind, rest) {
            ("i", "CONNECT") => Step::Connect(conn),
            ("i", "DISCONNECT") => Step::Disconnect(conn),
            ("e", "CONNECT") => Step::ExpectConnect(conn),
            ("e", "DISCONNECT") => Step::ExpectDisconnect(conn),
            ("I", m) => Step::Send(conn, m.to_string()),
            ("E", m) => Step::Expect(conn, m.to_string()),
            _ => return Err(format!("line {}: cannot read {line:?}", n + 1)),
        };
        steps.push(step);
    }
    Ok(steps)
}

/// Replaces `<TIME>`, `<TIME+n>` and `<TIME-n>`.
fn substitute_time(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("<TIME") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('>') else {
            break;
        };
        let inner = &rest[start + 5..start + end];
        let offset = inner.parse::<i64>().unwrap_or(0);
        out.push_str(&time_text(offset));
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    out
}

fn fields_of(msg: &str) -> Vec<(String, String)> {
    msg.split('\x01')
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('=') {
            Some((t, v)) => (t.to_string(), v.to_string()),
            None => (f.to_string(), String::new()),
        })
        .collect()
}

/// Adds BodyLength after the first field and CheckSum at the end when the
/// definition leaves them out.
fn complete(msg: &str) -> Vec<u8> {
    let mut fields = fields_of(msg);
    if !fields.iter().any(|(t, _)| t == "9") {
        let len: usize = fields
            .iter()
            .skip(1)
            .filter(|(t, _)| t != "10")
            .map(|(t, v)| t.len() + v.len() + 2)
            .sum();
        fields.insert(1.min(fields.len()), ("9".to_string(), len.to_string()));
    }
    let mut out: Vec<u8> = fields
        .iter()
        .filter(|(t, _)| t != "10")
        .flat_map(|(t, v)| format!("{t}={v}\x01").into_bytes())
        .collect();
    match fields.iter().find(|(t, _)| t == "10") {
        Some((_, v)) => out.extend_from_slice(format!("10={v}\x01").as_bytes()),
        None => {
            let sum = checksum(&out);
            out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        }
    }
    out
}

/// Compares a received message with an expected one, field by field.
fn compare(
    expected: &[u8],
    received: &[u8],
    formats: &HashMap<String, Regex>,
) -> Result<(), String> {
    let exp = fields_of(&String::from_utf8_lossy(expected));
    let got = fields_of(&String::from_utf8_lossy(received));
    let show = |m: &[u8]| String::from_utf8_lossy(m).replace('\x01', "|");
    let mismatch = |why: String| {
        Err(format!(
            "{why}\n      expected {}\n      received {}",
            show(expected),
            show(received)
        ))
    };
    if exp.len() != got.len() {
        return mismatch(format!(
            "{} fields expected, {} received",
            exp.len(),
            got.len()
        ));
    }
    for ((et, ev), (gt, gv)) in exp.iter().zip(&got) {
        if et != gt {
            return mismatch(format!("tag {gt} where {et} was expected"));
        }
        let ok = match formats.get(et) {
            Some(re) => re.is_match(gv),
            None => ev == gv,
        };
        if !ok {
            return mismatch(format!("tag {et}: {gv:?} does not match {ev:?}"));
        }
    }
    Ok(())
}

fn load_formats(dir: &Path) -> HashMap<String, Regex> {
    let text = std::fs::read_to_string(dir.join("fields.fmt")).expect("fields.fmt");
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(t, re)| {
            (
                t.to_string(),
                Regex::new(&format!("^(?:{re})$")).expect("regex"),
            )
        })
        .collect()
}

fn run_definition(
    steps: &[Step],
    addr: SocketAddr,
    formats: &HashMap<String, Regex>,
) -> Result<(), String> {
    let mut clients: HashMap<u32, Client> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        let at = |e: String| format!("step {}: {e}", i + 1);
        match step {
            Step::Connect(c) | Step::ExpectConnect(c) => {
                clients.insert(*c, Client::connect(addr));
            }
            Step::Disconnect(c) => {
                clients.remove(c);
            }
            Step::Send(c, m) => {
                let client = clients
                    .get_mut(c)
                    .ok_or_else(|| at(format!("connection {c} is not open")))?;
                client.send(&complete(&substitute_time(m)));
            }
            Step::Expect(c, m) => {
                let client = clients
                    .get_mut(c)
                    .ok_or_else(|| at(format!("connection {c} is not open")))?;
                let expected = complete(&substitute_time(m));
                match client.receive(EXPECT_TIMEOUT) {
                    Received::Message(got) => compare(&expected, &got, formats).map_err(at)?,
                    other => {
                        return Err(at(format!(
                            "expected {}, got {other:?}",
                            String::from_utf8_lossy(&expected).replace('\x01', "|")
                        )))
                    }
                }
            }
            Step::ExpectDisconnect(c) => {
                let client = clients
                    .get_mut(c)
                    .ok_or_else(|| at(format!("connection {c} is not open")))?;
                if !client.pending().is_empty() {
                    return Err(at("data received before the disconnect".to_string()));
                }
                match client.receive(DISCONNECT_TIMEOUT) {
                    Received::Closed => {
                        clients.remove(c);
                    }
                    Received::Message(m) => {
                        return Err(at(format!(
                            "expected a disconnect, got {}",
                            String::from_utf8_lossy(&m).replace('\x01', "|")
                        )))
                    }
                    Received::Timeout => {
                        return Err(at("the gateway did not disconnect".to_string()))
                    }
                }
            }
        }
    }
    Ok(())
}

struct Outcome {
    name: String,
    result: Result<(), String>,
    seconds: f64,
}

#[test]
fn the_quickfix_acceptance_definitions_pass_against_the_echo_fixture() {
    let dir = acceptance_dir();
    assert!(
        dir.join("fields.fmt").is_file(),
        "the acceptance definitions are not at {} (set RINGEX_FIX_ACCEPTANCE_DIR)",
        dir.display()
    );
    let formats = Arc::new(load_formats(&dir));
    let mut jobs = Vec::new();
    for suite in SUITES {
        let mut files: Vec<_> = std::fs::read_dir(dir.join(suite))
            .expect("suite folder")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "def"))
            .collect();
        files.sort();
        for path in files {
            let name = format!("{suite}/{}", path.file_name().unwrap().to_string_lossy());
            let text = std::fs::read(&path).expect("definition");
            let steps = parse_definition(&String::from_utf8_lossy(&text));
            // The timer-driven definitions first: they set the total time.
            let slow = name.contains("SendTestRequest") || name.contains("NoDataSent");
            jobs.push((slow, name, steps));
        }
    }
    assert!(
        jobs.len() >= 119,
        "found only {} definitions in {}",
        jobs.len(),
        dir.display()
    );
    jobs.sort_by_key(|j| !j.0);
    let queue = Arc::new(Mutex::new(
        jobs.into_iter().map(|(_, n, s)| (n, s)).collect::<Vec<_>>(),
    ));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let queue = queue.clone();
            let outcomes = outcomes.clone();
            let formats = formats.clone();
            std::thread::spawn(move || loop {
                let job = {
                    let mut q = queue.lock().unwrap();
                    if q.is_empty() {
                        break;
                    }
                    q.remove(0)
                };
                let (name, steps) = job;
                let t0 = Instant::now();
                let result = steps.and_then(|steps| {
                    let gateway = start_echo_gateway(acceptance_sessions(), None);
                    let r = run_definition(&steps, gateway.local_addr(), &formats);
                    gateway.stop().map_err(|e| format!("gateway: {e}"))?;
                    r
                });
                outcomes.lock().unwrap().push(Outcome {
                    name,
                    result,
                    seconds: t0.elapsed().as_secs_f64(),
                });
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let mut outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
    outcomes.sort_by(|a, b| a.name.cmp(&b.name));
    let expected: HashMap<&str, &str> = EXPECTED_FAILURES.iter().copied().collect();
    let mut report =
        String::from("\nFIX acceptance definitions (QuickFIX server suite, echo fixture)\n");
    let mut unexpected = Vec::new();
    let (mut passed, mut failed) = (0, 0);
    for o in &outcomes {
        let listed = expected.get(o.name.as_str());
        let status = match (&o.result, listed) {
            (Ok(()), None) => "passed",
            (Ok(()), Some(_)) => "PASSED (listed as an expected failure)",
            (Err(_), Some(_)) => "failed (expected)",
            (Err(_), None) => "FAILED",
        };
        if o.result.is_ok() {
            passed += 1;
        } else {
            failed += 1;
        }
        report.push_str(&format!(
            "  {:<52} {:<8} {:>5.1}s\n",
            o.name, status, o.seconds
        ));
        if let Err(e) = &o.result {
            report.push_str(&format!("      {e}\n"));
            if let Some(reason) = listed {
                report.push_str(&format!("      expected because: {reason}\n"));
            }
        }
        if o.result.is_ok() == listed.is_some() {
            unexpected.push(o.name.clone());
        }
    }
    report.push_str(&format!(
        "  {passed} passed, {failed} failed, {} definitions, {:.1}s\n",
        outcomes.len(),
        started.elapsed().as_secs_f64()
    ));
    // Straight to stderr, past the test harness's capture, so the table
    // shows in every run.
    let _ = std::io::stderr().write_all(report.as_bytes());
    assert!(
        unexpected.is_empty(),
        "definitions whose result differs from EXPECTED_FAILURES: {unexpected:?}"
    );
}

#[test]
fn the_comparison_applies_fields_fmt_and_nothing_else() {
    let formats: HashMap<String, Regex> = [
        (
            "52",
            r"\d{8}-\d{2}:\d{2}:\d{2}|\d{8}-\d{2}:\d{2}:\d{2}[.]\d{3}",
        ),
        ("10", r"\d{3}"),
    ]
    .into_iter()
    .map(|(t, r)| (t.to_string(), Regex::new(&format!("^(?:{r})$")).unwrap()))
    .collect();
    let expected = complete("8=FIX.4.4\x0135=0\x0134=2\x0152=00000000-00:00:00.000\x01");
    let good = complete("8=FIX.4.4\x0135=0\x0134=2\x0152=20240101-10:00:00.123\x01");
    assert_eq!(compare(&expected, &good, &formats), Ok(()));
    let wrong_seq = complete("8=FIX.4.4\x0135=0\x0134=3\x0152=20240101-10:00:00.123\x01");
    assert!(compare(&expected, &wrong_seq, &formats).is_err());
    let extra = complete("8=FIX.4.4\x0135=0\x0134=2\x0152=20240101-10:00:00.123\x01112=X\x01");
    assert!(compare(&expected, &extra, &formats).is_err());
    let bad_time = complete("8=FIX.4.4\x0135=0\x0134=2\x0152=2024-01-01\x01");
    assert!(compare(&expected, &bad_time, &formats).is_err());
    let steps =
        parse_definition("# c\n\ni1,CONNECT\nI1,8=FIX.4.4\x0135=0\x01\ne1,DISCONNECT\n").unwrap();
    assert!(matches!(
        steps[..],
        [
            Step::Connect(1),
            Step::Send(1, _),
            Step::ExpectDisconnect(1)
        ]
    ));
    assert!(substitute_time("52=<TIME-121>|").len() == "52=|".len() + 17);
}
