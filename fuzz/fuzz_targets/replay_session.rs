//! Fuzz target: arbitrary bytes as the command and event records of a
//! session, written into valid journals (intact CRCs and hash chain, so
//! the fuzzer reaches the replay instead of the journal checks), then
//! everything `ringex-replay` does with them: `verify`, walks with events
//! from the journal and from a replay, the describers, `book_at` and the
//! order export. Nothing may panic; `verify` must either fail with an
//! error or reach a verdict whose counters add up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringex_core::pipeline::{JOURNAL_KIND_COMMAND, JOURNAL_KIND_EVENT};
use ringex_core::records::{COMMAND_SIZE, EVENT_SIZE};
use ringex_core::EngineConfig;
use ringex_journal::{DurabilityPolicy, Journal, JournalConfig};
use ringex_replay::book::book_at;
use ringex_replay::describe::{command_json, describe_command, describe_event, event_json};
use ringex_replay::export::{Format, OrderExport, RowWriter, ORDER_COLUMNS};
use ringex_replay::{verify, walk, EventSource, Flow, SessionPaths, WalkOptions};

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ringex-fuzz-replay-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap()
}

fn chunk<const N: usize>(data: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = data.len().min(N);
    out[..n].copy_from_slice(&data[..n]);
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&shape, body)) = data.split_first() else {
        return;
    };
    let commands = usize::from(shape & 0x1f);
    let restamp = shape & 0x80 == 0;
    let (cmd_bytes, event_bytes) = body.split_at((commands * COMMAND_SIZE).min(body.len()));
    let dir = tempdir();
    let config = JournalConfig::default()
        .with_segment_size(4096)
        .with_durability(DurabilityPolicy::None);
    {
        let (mut input, _) = Journal::open(dir.path(), config).unwrap();
        for (i, c) in cmd_bytes.chunks(COMMAND_SIZE).enumerate() {
            let mut payload: [u8; COMMAND_SIZE] = chunk(c);
            let seq = i as u64 + 1;
            let ts = 1_000 * seq;
            if restamp {
                // A journaler stamps the command with its record's
                // sequence and timestamp; without it, the record is bad.
                payload[16..24].copy_from_slice(&seq.to_le_bytes());
                payload[24..32].copy_from_slice(&ts.to_le_bytes());
            }
            input.append(seq, ts, JOURNAL_KIND_COMMAND, &payload).unwrap();
        }
        input.close().unwrap();
        let (mut output, _) = Journal::open(dir.path().join("events"), config).unwrap();
        for (i, e) in event_bytes.chunks(EVENT_SIZE).take(64).enumerate() {
            let payload: [u8; EVENT_SIZE] = chunk(e);
            let kind = if shape & 0x40 == 0 { JOURNAL_KIND_EVENT } else { 9 };
            output.append(i as u64 + 1, 1_000, kind, &payload).unwrap();
        }
        output.close().unwrap();
    }
    let paths = SessionPaths::new(dir.path(), None);
    let engine = EngineConfig::small();
    if let Ok(report) = verify(&paths, engine, None) {
        assert!(report.matched <= report.events);
        assert!(report.commands <= commands as u64);
    }
    for source in [EventSource::Journal, EventSource::Replay] {
        let mut opts = WalkOptions::new(paths.clone(), source);
        opts.engine = engine;
        let mut export = OrderExport::new(
            RowWriter::new(Vec::new(), Format::Csv, &ORDER_COLUMNS).unwrap(),
            None,
            None,
        );
        let _ = walk(&opts, None, |g| {
            let _ = describe_command(g.command).human();
            let _ = command_json(g.command);
            for e in g.events {
                let _ = describe_event(&e.event).human();
                let _ = event_json(e.index, e.timestamp, &e.event);
                export.observe(e)?;
            }
            Ok(Flow::Continue)
        });
        let _ = export.finish();
    }
    for instrument in [1, 2] {
        if let Ok(book) = book_at(&paths, engine, instrument, None, None) {
            // Whatever the commands, the rebuilt L3 agrees with the engine.
            assert!(book.is_consistent(), "{book:?}");
        }
    }
});
