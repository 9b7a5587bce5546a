use ringex_core::pipeline::{
    CommandSender, PipelineConfig, SinkHandle, SubmitError, JOURNAL_KIND_COMMAND,
};
use ringex_core::records::*;
use ringex_core::{Engine, EngineConfig};
use ringex_journal::JournalReader;
use std::path::Path;
use std::time::{Duration, Instant};

pub const CASH: u16 = 0;
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// Small rings, small engine, no timer, 1 MiB segments, backoff
/// everywhere, and no shutdown snapshot: a restart replays the whole
/// journal (the path most tests check). `snapshots` tests turn snapshots on.
/// The stages run as this test binary's `STAGE_THREADS` says.
pub fn config(dir: &Path) -> PipelineConfig {
    let mut config = PipelineConfig::two_core_default(dir)
        .with_engine(EngineConfig::small())
        .with_timer(None)
        .with_snapshot_on_shutdown(false)
        .with_stage_threads(crate::STAGE_THREADS);
    config.input_ring_size = 1024;
    config.output_ring_size = 4096;
    config.journal = config.journal.with_segment_size(1 << 20);
    config
}

/// A binary market with two funded accounts whose orders cross: one trade
/// of 10 at 40.
pub fn market() -> Vec<Command> {
    vec![
        Command::add_instrument(InstrumentSpec::binary(1, CASH)),
        Command::add_account(7),
        Command::add_account(8),
        Command::deposit(7, CASH, 10_000),
        Command::deposit(8, CASH, 10_000),
        Command::new_order(OrderSpec {
            outcome: Outcome::Yes,
            ..OrderSpec::limit(7, 1, 1, Side::Buy, 40, 10)
        }),
        Command::new_order(OrderSpec {
            outcome: Outcome::Yes,
            ..OrderSpec::limit(8, 1, 1, Side::Sell, 40, 10)
        }),
    ]
}

/// `n` more orders alternating between the two accounts of [`market`],
/// some of which trade.
pub fn orders(first_client_id: u64, n: u64) -> Vec<Command> {
    (0..n)
        .map(|i| {
            let (account, side) = if i % 2 == 0 {
                (7, Side::Buy)
            } else {
                (8, Side::Sell)
            };
            Command::new_order(OrderSpec {
                outcome: Outcome::Yes,
                ..OrderSpec::limit(
                    account,
                    1,
                    first_client_id + i,
                    side,
                    30 + (i % 20) as i64,
                    1,
                )
            })
        })
        .collect()
}

/// Submits every command in order, retrying (with a short sleep) on `Busy`.
pub fn submit_all(sender: &mut CommandSender, cmds: &[Command]) -> Vec<u64> {
    cmds.iter()
        .map(|cmd| {
            let deadline = Instant::now() + TIMEOUT;
            loop {
                match sender.try_submit(*cmd) {
                    Ok(seq) => break seq,
                    Err(SubmitError::Busy) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_micros(200))
                    }
                    Err(e) => panic!("submit failed: {e}"),
                }
            }
        })
        .collect()
}

/// Receives events until the `StateDigest` answer to command `digest_seq`.
pub fn collect_until_digest(sink: &SinkHandle, digest_seq: u64) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let event = sink
            .receiver
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("sink {}: {e} after {} events", sink.name, events.len()));
        events.push(event);
        if event.kind == EventKind::StateDigest as u8 && event.sequence == digest_seq {
            return events;
        }
    }
}

/// Every command in the journal, checked to be a command record.
pub fn journaled_commands(dir: &Path) -> Vec<Command> {
    let mut reader = JournalReader::open(dir, 1).expect("open reader");
    let records = reader.read_to_end().expect("read journal");
    records
        .iter()
        .map(|r| {
            assert_eq!(r.kind, JOURNAL_KIND_COMMAND);
            let cmd: Command = bytemuck::pod_read_unaligned(&r.payload);
            assert_eq!((cmd.sequence, cmd.timestamp), (r.sequence, r.timestamp));
            cmd
        })
        .collect()
}

/// The events a fresh engine produces for `cmds`.
pub fn replay(cmds: &[Command]) -> (Vec<Event>, Engine) {
    let mut engine = Engine::new(EngineConfig::small());
    let mut events = Vec::new();
    for cmd in cmds {
        engine.apply(cmd, &mut events);
    }
    (events, engine)
}

/// `cmd` with the stamp cleared, for comparing submitted and journaled commands.
pub fn unstamped(cmd: &Command) -> Command {
    cmd.stamped(0, 0)
}
