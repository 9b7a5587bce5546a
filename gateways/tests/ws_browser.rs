//! The monitor page in a real browser: headless Chromium (Debian's
//! `chromium`, installed by `scripts/test.sh`, `setup_chromium`) loads `/`
//! from a running gateway while orders flow; the rendered ladder must show
//! the resting levels, and its `seq` must have moved past the snapshot
//! (deltas were applied). A screenshot is saved to
//! `target/test-artifacts/ws-monitor.png`. Fails, rather than skips, when
//! Chromium is missing.

#[allow(dead_code)]
#[path = "ws/support.rs"]
mod support;

use ringex_core::records::{Outcome, Side};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

fn chromium(args: &[&str]) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
        ])
        .args(args)
        .output()
        .expect("chromium runs (bash scripts/test.sh installs Debian's chromium)")
}

#[test]
fn the_monitor_page_shows_the_live_ladder_in_chromium() {
    let mut ex = Exchange::start();
    submit(ex.sender(), limit(1, 1, Side::Buy, Outcome::Yes, 40, 10));
    submit(ex.sender(), limit(2, 1, Side::Buy, Outcome::No, 45, 2));
    // Live order flow below the best levels while the page is open.
    let stop = Arc::new(AtomicBool::new(false));
    let flow = {
        let stop = Arc::clone(&stop);
        let mut sender = ex.sender().clone();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) && n < 20_000 {
                n += 1;
                let mut spec = ringex_core::records::OrderSpec::limit(
                    3,
                    1,
                    1_000 + n,
                    Side::Buy,
                    1 + (n % 20) as i64,
                    1,
                );
                spec.outcome = Outcome::Yes;
                submit(&mut sender, ringex_core::records::Command::new_order(spec));
                if n > 10 {
                    submit(
                        &mut sender,
                        ringex_core::records::Command::cancel_by_client_id(3, 1_000 + n - 10),
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let url = format!("http://{}/?market={BINARY}", ex.addr);
    let ladder_ok = |dom: &str| {
        dom.contains(r#"class="bid level" data-price="40" data-qty="10""#)
            && dom.contains(r#"class="ask level" data-price="45" data-qty="2""#)
            && seq_of(dom).is_some_and(|s| s > 1)
    };
    // A loaded machine can be slow to start the browser: a few tries.
    let mut dom = String::new();
    for _ in 0..3 {
        let out = chromium(&["--virtual-time-budget=4000", "--dump-dom", &url]);
        dom = String::from_utf8_lossy(&out.stdout).into_owned();
        if ladder_ok(&dom) {
            break;
        }
    }
    let artifacts = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-artifacts");
    std::fs::create_dir_all(artifacts).unwrap();
    let shot = format!("{artifacts}/ws-monitor.png");
    let _ = std::fs::remove_file(&shot);
    let s = chromium(&[
        "--virtual-time-budget=3000",
        "--window-size=1280,800",
        &format!("--screenshot={shot}"),
        &url,
    ]);
    stop.store(true, Ordering::Relaxed);
    flow.join().unwrap();
    assert!(
        dom.contains(r#"class="bid level" data-price="40" data-qty="10""#),
        "YES 40 x 10 missing:\n{dom}"
    );
    assert!(
        dom.contains(r#"class="ask level" data-price="45" data-qty="2""#),
        "NO 45 x 2 missing:\n{dom}"
    );
    let seq = seq_of(&dom).unwrap_or_else(|| panic!("no seq in the ladder title:\n{dom}"));
    assert!(
        seq > 1,
        "the ladder applied deltas after its snapshot (seq {seq})"
    );
    assert!(
        std::fs::metadata(&shot).is_ok_and(|m| m.len() > 1000),
        "screenshot: {}",
        String::from_utf8_lossy(&s.stderr)
    );
    ex.stop();
}

/// The `seq` the page shows in its ladder title.
fn seq_of(dom: &str) -> Option<u64> {
    dom.split("(seq ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.parse().ok())
}
