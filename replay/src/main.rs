//! `ringex-replay`: verify, dump, book, export, stats and generate over a
//! ringex session's journals. See `docs/replay.md`.
//!
//! Exit codes: 0 ok, 1 divergence, 2 bad input or usage, 3 a damaged
//! (corrupted or edited) journal.

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ringex_core::pipeline::{OverflowPolicy, Pipeline, PipelineConfig, SubmitError};
use ringex_core::EngineConfig;
use ringex_journal::DurabilityPolicy;
use ringex_replay::book::{book_at, BookAt};
use ringex_replay::describe::{
    command_account, command_instrument, command_json, describe_command, describe_event,
    event_has_account, event_has_instrument, event_json,
};
use ringex_replay::export::{self, OrderExport, RowWriter, ORDER_COLUMNS, TRADE_COLUMNS};
use ringex_replay::generate::{SessionGenerator, SessionParams};
use ringex_replay::stats::SessionStats;
use ringex_replay::{
    format_timestamp, verify, walk, Divergence, EventSource, Flow, JournalCheck, RawRecord,
    ReplayError, SessionPaths, Verdict, VerifyReport, WalkOptions,
};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Exit code: the replay and the output journal differ.
const EXIT_DIVERGENCE: u8 = 1;
/// Exit code: missing or unusable input, or a usage error.
const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: a journal is damaged (CRC, hash chain or segment link broken).
const EXIT_DAMAGED: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "ringex-replay",
    version,
    about = "Deterministic replay and audit of ringex journals",
    after_help = "Exit codes: 0 ok, 1 divergence (the replay and the output journal differ), \
                  2 bad input or usage, 3 a damaged journal (CRC, hash chain or segment link broken).\n\
                  The output journal is DIR/events unless --output-journal names it. See docs/replay.md."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Replay the input journal and compare every event with the output journal, byte for byte.
    Verify {
        #[command(flatten)]
        session: SessionArgs,
        /// Treat an output journal that ends early (a crash before restart) as a divergence.
        #[arg(long)]
        require_complete: bool,
        /// Print the summary as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print commands and/or events, readably or as JSON lines.
    Dump {
        #[command(flatten)]
        session: SessionArgs,
        #[command(flatten)]
        filter: FilterArgs,
        /// Print commands (default: commands and events).
        #[arg(long)]
        commands: bool,
        /// Print events (default: commands and events).
        #[arg(long)]
        events: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Where events come from.
        #[arg(long, value_enum, default_value_t = Source::Journal)]
        source: Source,
    },
    /// Show an instrument's L2 and L3 book after a sequence number.
    Book {
        #[command(flatten)]
        session: SessionArgs,
        /// The instrument id.
        #[arg(long)]
        instrument: u32,
        /// After this command's sequence number (default: the end).
        #[arg(long)]
        at: Option<u64>,
        /// Price levels per side to show.
        #[arg(long, default_value_t = 10)]
        depth: usize,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Export trades or orders as CSV or JSON lines.
    Export {
        #[command(flatten)]
        session: SessionArgs,
        #[command(flatten)]
        what: ExportWhat,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
        /// Write here instead of standard output.
        #[arg(long, short)]
        out: Option<PathBuf>,
        /// Only this instrument.
        #[arg(long)]
        instrument: Option<u32>,
        /// Only this account (a trade matches its taker or its maker).
        #[arg(long)]
        account: Option<u32>,
        /// Where events come from.
        #[arg(long, value_enum, default_value_t = Source::Journal)]
        source: Source,
    },
    /// Counts per command and event kind, instruments, time range and replay speed.
    Stats {
        #[command(flatten)]
        session: SessionArgs,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Run a random session through a real pipeline into DIR (for tests and measurements).
    Generate {
        /// The journal directory to create (must not hold a journal yet).
        dir: PathBuf,
        /// Commands after the set-up.
        #[arg(long, default_value_t = 100_000)]
        commands: u64,
        /// Seed of the random session.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Durability policy of both journals.
        #[arg(long, value_enum, default_value_t = Durability::Write)]
        durability: Durability,
    },
}

#[derive(Args, Debug)]
struct SessionArgs {
    /// The input journal's directory (the pipeline's journal_dir).
    dir: PathBuf,
    /// The output journal's directory [default: DIR/events].
    #[arg(long, value_name = "DIR")]
    output_journal: Option<PathBuf>,
    /// Engine configuration as JSON (fields of EngineConfig; missing ones keep the default).
    #[arg(long, value_name = "FILE", conflicts_with = "engine")]
    config: Option<PathBuf>,
    /// Engine configuration preset [default: the pipeline's default].
    #[arg(long, value_enum)]
    engine: Option<EnginePreset>,
}

impl SessionArgs {
    fn paths(&self) -> SessionPaths {
        SessionPaths::new(&self.dir, self.output_journal.clone())
    }

    fn engine_config(&self) -> Result<EngineConfig, ReplayError> {
        match (&self.config, self.engine) {
            (Some(path), _) => ringex_replay::config::load_engine_config(path),
            (None, Some(EnginePreset::Small)) => Ok(EngineConfig::small()),
            (None, _) => Ok(EngineConfig::default()),
        }
    }
}

#[derive(Args, Debug)]
struct FilterArgs {
    /// From this command sequence number.
    #[arg(long, default_value_t = 1)]
    from: u64,
    /// To this command sequence number (inclusive).
    #[arg(long)]
    to: Option<u64>,
    /// Only what concerns this instrument.
    #[arg(long)]
    instrument: Option<u32>,
    /// Only what concerns this account.
    #[arg(long)]
    account: Option<u32>,
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
struct ExportWhat {
    /// One row per trade.
    #[arg(long)]
    trades: bool,
    /// One row per order.
    #[arg(long)]
    orders: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EnginePreset {
    /// EngineConfig::default() (what both pipeline presets use).
    Default,
    /// EngineConfig::small() (tests).
    Small,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Source {
    /// The output journal.
    Journal,
    /// A replay of the input journal.
    Replay,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Csv,
    Jsonl,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Durability {
    None,
    Write,
    Fsync,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // A reader that stopped early (`| head`) is not an error.
            let broken_pipe = |io: &std::io::Error| io.kind() == std::io::ErrorKind::BrokenPipe;
            if e.downcast_ref::<std::io::Error>().is_some_and(broken_pipe)
                || matches!(e.downcast_ref::<ReplayError>(), Some(ReplayError::Output(io)) if broken_pipe(io))
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("ringex-replay: error: {e:#}");
            match e.downcast_ref::<ReplayError>() {
                Some(r) if r.is_damage() => ExitCode::from(EXIT_DAMAGED),
                _ => ExitCode::from(EXIT_BAD_INPUT),
            }
        }
    }
}

/// A progress bar on standard error, only when it is a terminal.
fn progress_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} replay [{bar:40}] {pos}/{len} commands ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    Some(bar)
}

fn with_progress<T>(f: impl FnOnce(Option<ringex_replay::ProgressFn<'_>>) -> T) -> T {
    match progress_bar() {
        Some(bar) => {
            let mut update = |done: u64, total: u64| {
                bar.set_length(total);
                bar.set_position(done);
            };
            let out = f(Some(&mut update));
            bar.finish_and_clear();
            out
        }
        None => f(None),
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let code = match cli.command {
        Cmd::Verify {
            session,
            require_complete,
            json,
        } => {
            let config = session.engine_config()?;
            let report = with_progress(|p| verify(&session.paths(), config, p))?;
            print_verify(&mut out, &report, require_complete, json)?;
            match report.verdict(require_complete) {
                Verdict::Ok => 0,
                Verdict::Divergence => EXIT_DIVERGENCE,
            }
        }
        Cmd::Dump {
            session,
            filter,
            commands,
            events,
            json,
            source,
        } => {
            let (show_commands, show_events) = if commands || events {
                (commands, events)
            } else {
                (true, true)
            };
            let mut opts = walk_options(&session, source)?;
            opts.from = filter.from;
            opts.to = filter.to.unwrap_or(u64::MAX);
            let summary = walk(&opts, None, |g| {
                dump_group(&mut out, &g, &filter, show_commands, show_events, json)?;
                Ok(Flow::Continue)
            })
            .map_err(hint_replay_source)?;
            notes(&summary.notes);
            0
        }
        Cmd::Book {
            session,
            instrument,
            at,
            depth,
            json,
        } => {
            let config = session.engine_config()?;
            let book = with_progress(|p| book_at(&session.paths(), config, instrument, at, p))?;
            print_book(&mut out, &book, depth, json)?;
            if !book.is_consistent() {
                eprintln!(
                    "ringex-replay: warning: the rebuilt L3 book, the published L2 book and the engine disagree"
                );
            }
            0
        }
        Cmd::Export {
            session,
            what,
            format,
            out: path,
            instrument,
            account,
            source,
        } => {
            let opts = walk_options(&session, source)?;
            let format = match format {
                Format::Csv => export::Format::Csv,
                Format::Jsonl => export::Format::Jsonl,
            };
            let sink: Box<dyn Write> = match &path {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).with_context(|| format!("create {}", p.display()))?,
                )),
                None => Box::new(&mut out),
            };
            let (rows, notes_) = if what.trades {
                let mut w = RowWriter::new(sink, format, &TRADE_COLUMNS)?;
                let summary = walk(&opts, None, |g| {
                    for e in g.events {
                        if instrument.is_some_and(|i| !event_has_instrument(&e.event, i))
                            || account.is_some_and(|a| !event_has_account(&e.event, a))
                        {
                            continue;
                        }
                        if let Some(row) = export::trade_row(e) {
                            w.row(&row)?;
                        }
                    }
                    Ok(Flow::Continue)
                })
                .map_err(hint_replay_source)?;
                w.finish()?.flush()?;
                (summary.commands, summary.notes)
            } else {
                let w = RowWriter::new(sink, format, &ORDER_COLUMNS)?;
                let mut orders = OrderExport::new(w, instrument, account);
                let summary = walk(&opts, None, |g| {
                    for e in g.events {
                        orders.observe(e)?;
                    }
                    Ok(Flow::Continue)
                })
                .map_err(hint_replay_source)?;
                orders.finish()?.finish()?.flush()?;
                (summary.commands, summary.notes)
            };
            let _ = rows;
            notes(&notes_);
            0
        }
        Cmd::Stats { session, json } => {
            let opts = walk_options(&session, Source::Replay)?;
            let mut stats = SessionStats::default();
            let summary = with_progress(|p| {
                walk(&opts, p, |g| {
                    stats.add(&g);
                    Ok(Flow::Continue)
                })
            })?;
            let digest = summary.engine.as_ref().map(|e| e.state_digest());
            print_stats(&mut out, &stats, &summary, digest, json)?;
            notes(&summary.notes);
            0
        }
        Cmd::Generate {
            dir,
            commands,
            seed,
            durability,
        } => {
            generate(&mut out, &dir, commands, seed, durability)?;
            0
        }
    };
    out.flush()?;
    Ok(code)
}

fn walk_options(session: &SessionArgs, source: Source) -> Result<WalkOptions, ReplayError> {
    let mut opts = WalkOptions::new(
        session.paths(),
        match source {
            Source::Journal => EventSource::Journal,
            Source::Replay => EventSource::Replay,
        },
    );
    opts.engine = session.engine_config()?;
    Ok(opts)
}

/// Points a user without an output journal to `--source replay`.
fn hint_replay_source(e: ReplayError) -> anyhow::Error {
    match e {
        ReplayError::MissingDir {
            which: ringex_replay::Which::Output,
            ..
        } => anyhow::Error::new(e)
            .context("no output journal: use --source replay to regenerate the events"),
        e => e.into(),
    }
}

fn notes(notes: &[String]) {
    for n in notes {
        eprintln!("ringex-replay: note: {n}");
    }
}

fn dump_group(
    out: &mut impl Write,
    g: &ringex_replay::Group<'_>,
    f: &FilterArgs,
    show_commands: bool,
    show_events: bool,
    json: bool,
) -> std::io::Result<()> {
    let cmd = g.command;
    let event_ok = |e: &ringex_core::records::Event| {
        f.instrument.is_none_or(|i| event_has_instrument(e, i))
            && f.account.is_none_or(|a| event_has_account(e, a))
    };
    let any_event = g.events.iter().any(|e| event_ok(&e.event));
    let cmd_ok = f
        .instrument
        .is_none_or(|i| command_instrument(cmd) == Some(i))
        && f.account.is_none_or(|a| command_account(cmd) == Some(a));
    if !(cmd_ok || any_event) {
        return Ok(());
    }
    if show_commands {
        if json {
            writeln!(out, "{}", command_json(cmd))?;
        } else {
            writeln!(
                out,
                "#{:<9} {}  {}",
                cmd.sequence,
                format_timestamp(cmd.timestamp),
                describe_command(cmd).human()
            )?;
        }
    }
    if show_events {
        for e in g.events.iter().filter(|e| event_ok(&e.event)) {
            if json {
                writeln!(out, "{}", event_json(e.index, e.timestamp, &e.event))?;
            } else {
                writeln!(
                    out,
                    "    event {:<9} (command #{}) {}",
                    e.index,
                    e.event.sequence,
                    describe_event(&e.event).human()
                )?;
            }
        }
    }
    Ok(())
}

fn chain_line(c: &JournalCheck) -> String {
    let r = &c.report;
    format!(
        "{} record(s) {}..{} in {} segment(s), CRCs and hash chain intact (head {:#018x})",
        r.records,
        r.first_sequence.unwrap_or(0),
        r.last_sequence.unwrap_or(0),
        r.segments,
        r.chain_head
    )
}

fn raw_line(r: &RawRecord) -> String {
    match r.event() {
        Some(ev) if r.kind == ringex_core::pipeline::JOURNAL_KIND_EVENT => format!(
            "#{} ts={} (command #{}) {}",
            r.sequence,
            r.timestamp,
            ev.sequence,
            describe_event(&ev).human()
        ),
        _ => format!(
            "#{} ts={} kind={} {} payload bytes: {}",
            r.sequence,
            r.timestamp,
            r.kind,
            r.payload.len(),
            r.payload
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
    }
}

fn print_verify(
    out: &mut impl Write,
    r: &VerifyReport,
    require_complete: bool,
    json: bool,
) -> anyhow::Result<()> {
    let verdict = r.verdict(require_complete);
    if json {
        let divergence = r.divergence.as_ref().map(|d| match d {
            Divergence::EventDiffers {
                index,
                command,
                expected,
                found,
            } => serde_json::json!({
                "type": "event_differs",
                "index": index,
                "command": command_json(command),
                "expected": event_json(*index, command.timestamp, expected),
                "found": found.event().map(|e| event_json(found.sequence, found.timestamp, &e)),
                "found_kind": found.kind,
                "found_timestamp": found.timestamp,
            }),
            Divergence::ExtraEvents {
                regenerated,
                journaled,
                first_extra,
            } => serde_json::json!({
                "type": "extra_events",
                "regenerated": regenerated,
                "journaled": journaled,
                "first_extra_index": first_extra.sequence,
            }),
        });
        let v = serde_json::json!({
            "verdict": match verdict { Verdict::Ok => "ok", Verdict::Divergence => "divergence" },
            "commands": r.commands,
            "events": r.events,
            "matched": r.matched,
            "digest": format!("{:#018x}", r.digest),
            "input_chain_head": format!("{:#018x}", r.input.report.chain_head),
            "output_chain_head": format!("{:#018x}", r.output.report.chain_head),
            "input_torn_tail": r.input.torn_tail_note(),
            "output_torn_tail": r.output.torn_tail_note(),
            "output_lag": r.output_lag.map(|l| serde_json::json!({
                "journaled": l.journaled, "regenerated": l.regenerated,
                "first_missing_command": l.first_missing_command })),
            "divergence": divergence,
            "replay_seconds": r.replay_elapsed.as_secs_f64(),
            "check_seconds": r.check_elapsed.as_secs_f64(),
            "commands_per_sec": r.commands_per_sec(),
            "snapshot": r.snapshot.as_ref().map(|s| serde_json::json!({
                "path": s.path.display().to_string(), "sequence": s.sequence,
                "output_events": s.output_events,
                "state_digest": format!("{:#018x}", s.state_digest) })),
            "skipped_snapshots": r.skipped_snapshots.iter().map(|s| serde_json::json!({
                "path": s.path.display().to_string(), "reason": s.reason })).collect::<Vec<_>>(),
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "input journal   {}", r.input.dir.display())?;
    writeln!(out, "                {}", chain_line(&r.input))?;
    writeln!(out, "output journal  {}", r.output.dir.display())?;
    writeln!(out, "                {}", chain_line(&r.output))?;
    for note in [r.input.torn_tail_note(), r.output.torn_tail_note()]
        .into_iter()
        .flatten()
    {
        writeln!(out, "note            {note}")?;
    }
    for s in &r.skipped_snapshots {
        writeln!(
            out,
            "snapshot        passed over {}: {}",
            s.path.display(),
            s.reason
        )?;
    }
    if let Some(s) = &r.snapshot {
        writeln!(
            out,
            "snapshot        {} (after command #{}, event {}; the journal before it is trimmed)",
            s.path.display(),
            s.sequence,
            s.output_events
        )?;
    }
    writeln!(
        out,
        "replay          {} commands -> {} events, {} byte-identical in {:.3} s ({:.0} commands/s; chain checks {:.3} s)",
        r.commands,
        r.events,
        r.matched,
        r.replay_elapsed.as_secs_f64(),
        r.commands_per_sec(),
        r.check_elapsed.as_secs_f64()
    )?;
    writeln!(out, "state digest    {:#018x}", r.digest)?;
    if let Some(lag) = r.output_lag {
        writeln!(
            out,
            "{}output journal ends at event {} of {}: the events of commands #{}.. are missing (a pipeline restart regenerates them)",
            if require_complete { "DIVERGENCE: " } else { "warning: " },
            lag.journaled,
            lag.regenerated,
            lag.first_missing_command
        )?;
    }
    match &r.divergence {
        None if verdict == Verdict::Ok => writeln!(
            out,
            "OK: the replay reproduces the output journal byte for byte"
        )?,
        None => {}
        Some(Divergence::EventDiffers {
            index,
            command,
            expected,
            found,
        }) => {
            writeln!(
                out,
                "DIVERGENCE at event {index}, produced by command #{}",
                command.sequence
            )?;
            writeln!(
                out,
                "  command            #{} ts={} {}",
                command.sequence,
                command.timestamp,
                describe_command(command).human()
            )?;
            writeln!(
                out,
                "  expected (replay)  #{index} ts={} (command #{}) {}",
                command.timestamp,
                expected.sequence,
                describe_event(expected).human()
            )?;
            writeln!(out, "  found (journal)    {}", raw_line(found))?;
            let mut diffs = Vec::new();
            if found.sequence != *index {
                diffs.push(format!("record sequence {} != {index}", found.sequence));
            }
            if found.timestamp != command.timestamp {
                diffs.push(format!(
                    "timestamp {} != {}",
                    found.timestamp, command.timestamp
                ));
            }
            if let Some(ev) = found.event() {
                let (a, b) = (describe_event(expected), describe_event(&ev));
                if a.kind != b.kind {
                    diffs.push(format!("kind: journal {}, replay {}", b.kind, a.kind));
                } else {
                    for ((name, x), (_, y)) in a.fields.iter().zip(&b.fields) {
                        if x != y {
                            diffs.push(format!("{name}: journal {y}, replay {x}"));
                        }
                    }
                }
                let bytes: Vec<usize> = bytemuck::bytes_of(expected)
                    .iter()
                    .zip(bytemuck::bytes_of(&ev))
                    .enumerate()
                    .filter(|(_, (x, y))| x != y)
                    .map(|(i, _)| i)
                    .collect();
                if !bytes.is_empty() {
                    diffs.push(format!("payload bytes differ at offsets {bytes:?}"));
                }
            } else {
                diffs.push(format!(
                    "not an event record (kind {}, {} bytes)",
                    found.kind,
                    found.payload.len()
                ));
            }
            writeln!(out, "  differences        {}", diffs.join("; "))?;
        }
        Some(Divergence::ExtraEvents {
            regenerated,
            journaled,
            first_extra,
        }) => {
            writeln!(
                out,
                "DIVERGENCE: the output journal holds {journaled} events but the replay produces {regenerated}"
            )?;
            writeln!(out, "  first extra        {}", raw_line(first_extra))?;
        }
    }
    Ok(())
}

fn print_book(out: &mut impl Write, b: &BookAt, depth: usize, json: bool) -> anyhow::Result<()> {
    let binary = b
        .spec
        .is_some_and(|s| s.kind == ringex_core::records::InstrumentKind::Binary);
    if json {
        let level = |(p, l): (&i64, &ringex_replay::book::Level)| serde_json::json!({"price": p, "quantity": l.quantity, "orders": l.orders});
        let orders = |(p, os): (&i64, &Vec<ringex_replay::book::TrackedOrder>)| {
            serde_json::json!({"price": p, "orders": os.iter().map(|o| serde_json::json!({
                "order_id": o.order_id, "account": o.account, "client_order_id": o.client_order_id,
                "leaves": o.leaves, "quantity": o.quantity})).collect::<Vec<_>>()})
        };
        let v = serde_json::json!({
            "instrument": b.instrument,
            "kind": b.spec.map(|s| format!("{:?}", s.kind)),
            "status": b.status.map(|s| format!("{s:?}")),
            "sequence": b.sequence,
            "timestamp": b.timestamp,
            "last_trade": b.last_trade.map(|(p, q)| serde_json::json!({"price": p, "quantity": q})),
            "engine_best": {"bid": b.engine_best.0, "ask": b.engine_best.1},
            "consistent": b.is_consistent(),
            "l2": {"bids": b.l2.bids.iter().rev().take(depth).map(level).collect::<Vec<_>>(),
                   "asks": b.l2.asks.iter().take(depth).map(level).collect::<Vec<_>>()},
            "l3": {"bids": b.l3.bids.iter().rev().take(depth).map(orders).collect::<Vec<_>>(),
                   "asks": b.l3.asks.iter().take(depth).map(orders).collect::<Vec<_>>()},
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    match &b.spec {
        Some(s) => writeln!(
            out,
            "instrument {} ({:?}, tick {}, lot {}, prices {}..={}), status {}",
            b.instrument,
            s.kind,
            s.tick_size,
            s.lot_size,
            s.min_price,
            s.max_price,
            b.status.map_or("?".into(), |s| format!("{s:?}"))
        )?,
        None => writeln!(out, "instrument {} (not added by then)", b.instrument)?,
    }
    writeln!(
        out,
        "after command #{} ({}), {} commands replayed",
        b.sequence,
        format_timestamp(b.timestamp),
        b.commands
    )?;
    if let Some((p, q)) = b.last_trade {
        writeln!(out, "last trade {q} @ {p}")?;
    }
    let fmt_best = |p: Option<i64>| p.map_or("-".to_string(), |p| p.to_string());
    writeln!(
        out,
        "best bid {} / ask {} (engine: {} / {})",
        fmt_best(b.l2.best().0),
        fmt_best(b.l2.best().1),
        fmt_best(b.engine_best.0),
        fmt_best(b.engine_best.1)
    )?;
    let no = |p: i64| {
        if binary {
            format!(" (NO {})", 100 - p)
        } else {
            String::new()
        }
    };
    writeln!(
        out,
        "\nL2{}",
        if binary {
            " (YES book; a NO price is 100 - YES)"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "  {:>5} {:>12} {:>14} {:>8}",
        "side", "price", "quantity", "orders"
    )?;
    for (p, l) in b.l2.asks.iter().take(depth).rev() {
        writeln!(
            out,
            "  {:>5} {:>12} {:>14} {:>8}{}",
            "ask",
            p,
            l.quantity,
            l.orders,
            no(*p)
        )?;
    }
    for (p, l) in b.l2.bids.iter().rev().take(depth) {
        writeln!(
            out,
            "  {:>5} {:>12} {:>14} {:>8}{}",
            "bid",
            p,
            l.quantity,
            l.orders,
            no(*p)
        )?;
    }
    writeln!(
        out,
        "\nL3 (queue order: first in line first; order_id/account/leaves)"
    )?;
    let level =
        |out: &mut dyn Write, side: &str, p: &i64, os: &[ringex_replay::book::TrackedOrder]| {
            let list: Vec<String> = os
                .iter()
                .map(|o| format!("#{}/a{}/{}", o.order_id, o.account, o.leaves))
                .collect();
            writeln!(out, "  {side} {p:>8}: {}", list.join(" "))
        };
    for (p, os) in b.l3.asks.iter().take(depth).rev() {
        level(out, "ask", p, os)?;
    }
    for (p, os) in b.l3.bids.iter().rev().take(depth) {
        level(out, "bid", p, os)?;
    }
    writeln!(
        out,
        "\nconsistency: L3 rebuilt from order events {} the engine's L2 events; best prices {} the engine's",
        if b.l3.to_l2() == b.l2 { "matches" } else { "DIFFERS FROM" },
        if b.l2.best() == b.engine_best { "match" } else { "DIFFER FROM" }
    )?;
    Ok(())
}

fn print_stats(
    out: &mut impl Write,
    s: &SessionStats,
    summary: &ringex_replay::WalkSummary,
    digest: Option<u64>,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(s)?;
        v["replay_seconds"] = summary.elapsed.as_secs_f64().into();
        v["commands_per_sec"] = summary.commands_per_sec().into();
        v["digest"] = digest.map(|d| format!("{d:#018x}")).into();
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(
        out,
        "commands      {} (sequences {}..={})",
        s.commands,
        s.first_sequence.unwrap_or(0),
        s.last_sequence.unwrap_or(0)
    )?;
    writeln!(out, "events        {}", s.events)?;
    if let (Some(a), Some(b)) = (s.first_timestamp, s.last_timestamp) {
        writeln!(
            out,
            "time range    {} .. {} ({:.3} s)",
            format_timestamp(a),
            format_timestamp(b),
            Duration::from_nanos(b.saturating_sub(a)).as_secs_f64()
        )?;
    }
    writeln!(
        out,
        "replay        {:.3} s, {:.0} commands/s",
        summary.elapsed.as_secs_f64(),
        summary.commands_per_sec()
    )?;
    if let Some(d) = digest {
        writeln!(out, "state digest  {d:#018x}")?;
    }
    writeln!(out, "accounts      {}", s.accounts)?;
    writeln!(out, "\ncommands by kind")?;
    for (k, n) in &s.commands_by_kind {
        writeln!(out, "  {k:<24} {n:>12}")?;
    }
    writeln!(out, "\nevents by kind")?;
    for (k, n) in &s.events_by_kind {
        writeln!(out, "  {k:<24} {n:>12}")?;
    }
    if !s.rejects_by_reason.is_empty() {
        writeln!(out, "\nrejects by reason")?;
        for (k, n) in &s.rejects_by_reason {
            writeln!(out, "  {k:<28} {n:>10}")?;
        }
    }
    writeln!(out, "\ninstruments")?;
    writeln!(
        out,
        "  {:>6} {:<8} {:>10} {:>10} {:>12}",
        "id", "kind", "orders", "trades", "volume"
    )?;
    for (id, i) in &s.instruments {
        writeln!(
            out,
            "  {:>6} {:<8} {:>10} {:>10} {:>12}",
            id,
            i.kind.unwrap_or("?"),
            i.orders,
            i.trades,
            i.volume
        )?;
    }
    Ok(())
}

fn generate(
    out: &mut impl Write,
    dir: &std::path::Path,
    commands: u64,
    seed: u64,
    durability: Durability,
) -> anyhow::Result<()> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .with_context(|| format!("read {}", dir.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "{} is not empty: generate writes a new session",
            dir.display()
        );
    }
    let config = PipelineConfig::two_core_default(dir).with_durability(match durability {
        Durability::None => DurabilityPolicy::None,
        Durability::Write => DurabilityPolicy::Write,
        Durability::Fsync => DurabilityPolicy::FsyncPerBatch,
    });
    let pipeline = Pipeline::start(config).context("start the pipeline")?;
    // A sink as a gateway would have, so the publisher does its full work.
    let sink = pipeline.register_sink("generate", 1 << 16, OverflowPolicy::DropNewest);
    let drain = std::thread::spawn(move || sink.receiver.iter().count());
    let mut sender = pipeline.sender();
    let mut generator = SessionGenerator::new(SessionParams::new(seed));
    let started = Instant::now();
    let submit = |sender: &mut ringex_core::pipeline::CommandSender,
                  cmd: ringex_core::records::Command|
     -> anyhow::Result<()> {
        loop {
            match sender.try_submit(cmd) {
                Ok(_) => return Ok(()),
                Err(SubmitError::Busy) => std::thread::yield_now(),
                Err(e) => anyhow::bail!("submit: {e}"),
            }
        }
    };
    let setup = generator.setup();
    let n_setup = setup.len() as u64;
    for cmd in setup {
        submit(&mut sender, cmd)?;
    }
    let mut now = ringex_core::pipeline::wall_clock_ns();
    for i in 0..commands {
        if i % 1024 == 0 {
            now = ringex_core::pipeline::wall_clock_ns();
        }
        let cmd = generator.next_command(now);
        submit(&mut sender, cmd)?;
    }
    drop(sender);
    let report = pipeline.shutdown();
    let elapsed = started.elapsed();
    let delivered = drain.join().unwrap_or(0);
    if !report.health.is_ok() {
        anyhow::bail!("the pipeline reported a failure: {:?}", report.health);
    }
    writeln!(
        out,
        "generated {} commands ({n_setup} set-up + {commands} random, seed {seed}) and {} events in {:.2} s ({:.0} commands/s through the pipeline); sink got {delivered}",
        report.metrics.applied,
        report.metrics.events,
        elapsed.as_secs_f64(),
        report.metrics.applied as f64 / elapsed.as_secs_f64().max(1e-9),
    )?;
    if let Some(engine) = report.engine {
        writeln!(out, "state digest {:#018x}", engine.state_digest())?;
    }
    Ok(())
}
