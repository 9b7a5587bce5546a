//! `dump`, `book`, `export` and `stats` over a pipeline session.

use crate::support::*;
use ringex_core::records::EventKind;
use ringex_replay::book::{book_at, L2Book, OrderTracker};
use ringex_replay::generate::{BINARY_MARKETS, SPOT_PAIRS};
use ringex_replay::{walk, EventSource, Flow, SessionPaths, WalkOptions};
use std::collections::HashMap;

const INSTRUMENTS: u32 = BINARY_MARKETS + SPOT_PAIRS;

#[test]
fn the_l3_book_rebuilt_from_order_events_matches_the_published_l2_after_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let session = run_session(dir.path(), 30_000, 31);
    let paths = SessionPaths::new(dir.path(), None);
    let mut tracker = OrderTracker::new();
    let mut l2: HashMap<u32, L2Book> = HashMap::new();
    let mut checked = 0u64;
    let mut deepest = 0usize;
    walk(
        &WalkOptions::new(paths.clone(), EventSource::Journal),
        None,
        |g| {
            for e in g.events {
                tracker.observe(&e.event, |_| {});
                if e.event.kind == EventKind::BookLevel as u8 {
                    l2.entry(e.event.instrument).or_default().observe(&e.event);
                }
            }
            for i in 1..=INSTRUMENTS {
                let rebuilt = tracker.l3(i).to_l2();
                let published = l2.get(&i).cloned().unwrap_or_default();
                assert_eq!(
                    rebuilt, published,
                    "instrument {i} after command {}",
                    g.command.sequence
                );
                deepest = deepest.max(published.bids.len() + published.asks.len());
            }
            checked += 1;
            Ok(Flow::Continue)
        },
    )
    .unwrap();
    assert_eq!(checked, session.commands);
    assert!(deepest > 10, "books stayed trivial: {deepest} levels");

    // book_at agrees with the engine's own best prices, at several points.
    for at in [500, 10_000, session.commands] {
        for i in 1..=INSTRUMENTS {
            let b = book_at(&paths, engine(), i, Some(at), None).unwrap();
            assert!(
                b.is_consistent(),
                "instrument {i} at {at}: {:?} vs {:?}",
                b.l2.best(),
                b.engine_best
            );
            assert_eq!(b.sequence, at);
            assert!(b.spec.is_some());
        }
    }
}

#[test]
fn the_cli_tools_agree_with_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let session = run_session(dir.path(), 5_000, 32);
    let d = dir.path().to_str().unwrap();

    // stats: counts per kind add up to the pipeline's totals.
    let out = cli(&["stats", d, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["commands"], session.commands);
    assert_eq!(stats["events"], session.events);
    let sum = |v: &serde_json::Value| -> u64 {
        v.as_object()
            .unwrap()
            .values()
            .map(|n| n.as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum(&stats["events_by_kind"]), session.events);
    assert_eq!(sum(&stats["commands_by_kind"]), session.commands);
    assert_eq!(stats["digest"], format!("{:#018x}", session.digest));
    assert_eq!(
        stats["instruments"].as_object().unwrap().len(),
        INSTRUMENTS as usize
    );
    let trades = stats["events_by_kind"]["Trade"].as_u64().unwrap();
    let accepted = stats["events_by_kind"]["OrderAccepted"].as_u64().unwrap();
    assert!(trades > 100 && accepted > 1000, "{stats}");

    // export --trades: one CSV row per Trade event, from the journal or a replay.
    for source in ["journal", "replay"] {
        let out = cli(&["export", d, "--trades", "--source", source]);
        let csv = String::from_utf8(out.stdout).unwrap();
        let mut lines = csv.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("index,sequence,timestamp,instrument,trade_id"));
        assert_eq!(lines.count() as u64, trades, "{source}");
    }
    // export --orders: every accepted order exactly once.
    let out = cli(&["export", d, "--orders", "--format", "jsonl"]);
    let rows: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len() as u64, accepted);
    let mut ids: Vec<u64> = rows
        .iter()
        .map(|r| r["order_id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len() as u64, accepted);
    for r in &rows {
        let (q, f, l) = (
            r["quantity"].as_u64().unwrap(),
            r["filled"].as_u64().unwrap(),
            r["leaves"].as_u64().unwrap(),
        );
        if r["status"] == "filled" {
            assert_eq!((f, l), (q, 0), "{r}");
        }
        assert!(f <= q, "{r}");
    }
    // The export filters by account.
    let out = cli(&[
        "export",
        d,
        "--orders",
        "--format",
        "jsonl",
        "--account",
        "7",
    ]);
    let text_ = String::from_utf8(out.stdout).unwrap();
    assert!(text_.lines().count() > 10);
    assert!(text_.lines().all(|l| l.contains("\"account\":7,")));

    // dump --json: a filtered range, every line concerns the filter.
    let out = cli(&[
        "dump",
        d,
        "--json",
        "--from",
        "1000",
        "--to",
        "3000",
        "--account",
        "7",
        "--events",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() > 20);
    for l in &lines {
        assert_eq!(l["type"], "event");
        let seq = l["sequence"].as_u64().unwrap();
        assert!((1000..=3000).contains(&seq), "{l}");
        let concerns = l["account"] == 7 || l["taker_account"] == 7 || l["maker_account"] == 7;
        assert!(concerns, "{l}");
    }
    // dump text: commands only, one line each.
    let out = cli(&["dump", d, "--commands", "--from", "10", "--to", "19"]);
    let dump = String::from_utf8(out.stdout).unwrap();
    assert_eq!(dump.lines().count(), 10, "{dump}");
    assert!(dump.lines().all(|l| l.starts_with('#')));
    // dump --source replay equals dump from the journal.
    let a = cli(&["dump", d, "--json", "--to", "2000"]);
    let b = cli(&["dump", d, "--json", "--to", "2000", "--source", "replay"]);
    assert_eq!(a.stdout, b.stdout);

    // book: text and JSON; consistent.
    let out = cli(&[
        "book",
        d,
        "--instrument",
        "4",
        "--at",
        "3000",
        "--depth",
        "3",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("instrument 4 (Spot"), "{stdout}");
    assert!(
        stdout.contains("L3 rebuilt from order events matches"),
        "{stdout}"
    );
    let out = cli(&["book", d, "--instrument", "1", "--json"]);
    let book: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(book["consistent"], true);
    assert_eq!(book["sequence"], session.commands);
}

#[test]
fn settlement_and_replaces_leave_the_rebuilt_book_consistent() {
    use ringex_core::records::InstrumentStatus;
    use ringex_core::records::{Command, InstrumentSpec, OrderSpec, Outcome, Side};
    let yes = |account, coid, side, price, qty| {
        Command::new_order(OrderSpec {
            outcome: Outcome::Yes,
            ..OrderSpec::limit(account, 1, coid, side, price, qty)
        })
    };
    let mut cmds = vec![Command::add_instrument(InstrumentSpec::binary(1, 0))];
    for a in 1..=3 {
        cmds.push(Command::add_account(a));
        cmds.push(Command::deposit(a, 0, 1_000_000));
    }
    cmds.extend([
        yes(1, 1, Side::Buy, 40, 10),
        yes(2, 2, Side::Buy, 40, 5),
        yes(3, 3, Side::Buy, 41, 7),
        yes(1, 4, Side::Sell, 45, 10),
        // Reduce in place (keeps priority), then move (re-queues).
        Command::replace_by_client_id(1, 1, 5, 40, 8),
        Command::replace_by_client_id(2, 2, 6, 41, 5),
        yes(2, 7, Side::Sell, 41, 3), // trades with 41s: 3's first
    ]);
    let before_settle = cmds.len() as u64;
    cmds.push(Command::settle(1, Outcome::Yes));
    let dir = tempfile::tempdir().unwrap();
    write_input_journal(dir.path(), &cmds);
    let paths = SessionPaths::new(dir.path(), None);

    let b = book_at(&paths, engine(), 1, Some(before_settle), None).unwrap();
    assert!(b.is_consistent());
    let level = |p: i64| -> Vec<(u32, u64)> {
        b.l3.bids[&p]
            .iter()
            .map(|o| (o.account, o.leaves))
            .collect()
    };
    assert_eq!(
        level(41),
        vec![(3, 4), (2, 5)],
        "3 was first at 41; 2 joined by replace"
    );
    assert_eq!(level(40), vec![(1, 8)]);
    assert_eq!(b.l3.asks[&45].len(), 1);
    assert_eq!(b.last_trade, Some((41, 3)));

    let after = book_at(&paths, engine(), 1, None, None).unwrap();
    assert!(after.is_consistent(), "{after:?}");
    assert!(after.l3.bids.is_empty() && after.l3.asks.is_empty());
    assert_eq!(after.status, Some(InstrumentStatus::Closed));
}
