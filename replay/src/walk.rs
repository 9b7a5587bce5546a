//! Walking a session command by command, each with its events.
//!
//! The events come either from the output journal (what the pipeline
//! published) or from a replay of the input journal through a fresh
//! [`Engine`] (what the engine produces now). `dump`, `export` and `stats`
//! are built on [`walk`]; `book` replays.
//!
//! **Threads.** Runs on the caller's thread; the replay engine is owned by
//! the walk.

use crate::error::{ReplayError, Result, Which};
use crate::source::{
    check_journal, CommandReader, EventReader, JournalCheck, JournaledEvent, SessionPaths,
};
use ringex_core::records::{Command, Event};
use ringex_core::{Engine, EngineConfig};
use std::time::{Duration, Instant};

/// Where a walk's events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventSource {
    /// The output journal.
    #[default]
    Journal,
    /// A replay of the input journal through a fresh engine.
    Replay,
}

/// Called with (commands done, commands in total) every
/// [`PROGRESS_EVERY`] commands and at the end.
pub type ProgressFn<'a> = &'a mut dyn FnMut(u64, u64);

/// How often progress is reported, in commands.
pub const PROGRESS_EVERY: u64 = 1 << 14;

/// A command and the events it produced.
#[derive(Debug, Clone, Copy)]
pub struct Group<'a> {
    /// The command, as journaled.
    pub command: &'a Command,
    /// Its events in order (none when the output journal ends before them).
    pub events: &'a [JournaledEvent],
}

/// What the visitor wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop the walk here.
    Stop,
}

/// What to walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// The journals.
    pub paths: SessionPaths,
    /// Where events come from.
    pub source: EventSource,
    /// The engine configuration of a replay.
    pub engine: EngineConfig,
    /// Skip commands before this sequence (they are still replayed).
    pub from: u64,
    /// Stop after this sequence.
    pub to: u64,
}

impl WalkOptions {
    /// The whole session, events from `source`, the default engine.
    pub fn new(paths: SessionPaths, source: EventSource) -> WalkOptions {
        WalkOptions {
            paths,
            source,
            engine: EngineConfig::default(),
            from: 1,
            to: u64::MAX,
        }
    }
}

/// What a walk read.
pub struct WalkSummary {
    /// The input journal's check.
    pub input: JournalCheck,
    /// The output journal's check (when events came from it).
    pub output: Option<JournalCheck>,
    /// Commands read (replayed, if replaying).
    pub commands: u64,
    /// Events seen.
    pub events: u64,
    /// Time spent walking.
    pub elapsed: Duration,
    /// The replay engine at the end (when replaying).
    pub engine: Option<Engine>,
    /// Torn tails and other things the user should know.
    pub notes: Vec<String>,
}

impl std::fmt::Debug for WalkSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalkSummary")
            .field("commands", &self.commands)
            .field("events", &self.events)
            .field("elapsed", &self.elapsed)
            .field("digest", &self.engine.as_ref().map(|e| e.state_digest()))
            .field("notes", &self.notes)
            .finish_non_exhaustive()
    }
}

impl WalkSummary {
    /// Commands per second of the walk.
    pub fn commands_per_sec(&self) -> f64 {
        self.commands as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Walks the session, calling `visit` for each command from `from` to `to`
/// with its events. See the module docs.
pub fn walk(
    opts: &WalkOptions,
    mut progress: Option<ProgressFn<'_>>,
    mut visit: impl FnMut(Group<'_>) -> Result<Flow>,
) -> Result<WalkSummary> {
    let input = check_journal(Which::Input, &opts.paths.input)?;
    let mut notes: Vec<String> = input.torn_tail_note().into_iter().collect();
    let mut commands = CommandReader::open(&input)?;
    let total = commands.last_sequence().min(opts.to);
    let (mut engine, mut output, output_check) = match opts.source {
        EventSource::Replay => (Some(Engine::try_new(opts.engine)?), None, None),
        EventSource::Journal => {
            let check = check_journal(Which::Output, &opts.paths.output)?;
            notes.extend(check.torn_tail_note());
            (None, Some(EventReader::open(&check)?), Some(check))
        }
    };
    let started = Instant::now();
    let mut produced: Vec<Event> = Vec::with_capacity(64);
    let mut group: Vec<JournaledEvent> = Vec::with_capacity(64);
    let mut pending: Option<JournaledEvent> = None;
    let (mut n_commands, mut n_events, mut index) = (0u64, 0u64, 0u64);
    while let Some(cmd) = commands.next_command()? {
        if cmd.sequence > opts.to {
            break;
        }
        group.clear();
        if let Some(engine) = engine.as_mut() {
            produced.clear();
            engine.apply(&cmd, &mut produced);
            for event in &produced {
                index += 1;
                group.push(JournaledEvent {
                    index,
                    timestamp: cmd.timestamp,
                    event: *event,
                });
            }
        } else if let Some(reader) = output.as_mut() {
            loop {
                if pending.is_none() {
                    pending = reader.next_event()?;
                }
                match pending {
                    Some(e) if e.event.sequence == cmd.sequence => {
                        group.push(e);
                        pending = None;
                    }
                    Some(e) if e.event.sequence < cmd.sequence => {
                        return Err(ReplayError::BadRecord {
                            which: Which::Output,
                            sequence: e.index,
                            problem: format!(
                                "event of command {} out of order (after command {})",
                                e.event.sequence,
                                cmd.sequence - 1
                            ),
                        });
                    }
                    Some(_) => break,
                    // The output journal ended: the rest of the commands
                    // have no journaled events (a command may have none
                    // at all, so this alone is no sign of a lag; `verify`
                    // tells).
                    None => {
                        break;
                    }
                }
            }
        }
        n_commands += 1;
        n_events += group.len() as u64;
        if let Some(p) = progress.as_mut() {
            if n_commands % PROGRESS_EVERY == 0 {
                p(cmd.sequence, total);
            }
        }
        if cmd.sequence >= opts.from
            && visit(Group {
                command: &cmd,
                events: &group,
            })? == Flow::Stop
        {
            break;
        }
    }
    if let Some(p) = progress.as_mut() {
        p(n_commands, total);
    }
    Ok(WalkSummary {
        input,
        output: output_check,
        commands: n_commands,
        events: n_events,
        elapsed: started.elapsed(),
        engine,
        notes,
    })
}
