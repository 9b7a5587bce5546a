//! The pipeline's integration tests (`tests/pipeline/`) run with the
//! journaler, the engine and the publisher fused on one thread
//! (`StageThreads::Fused`): every guarantee they check — durability before
//! delivery, back-pressure, sinks, the output journal, restarts,
//! snapshots, forced shutdown, crash recovery — must hold for that mode
//! too. `pipeline/main.rs` lists what each module covers.

#[path = "pipeline/backpressure.rs"]
mod backpressure;
#[path = "pipeline/config.rs"]
mod config;
#[path = "pipeline/crash.rs"]
mod crash;
#[path = "pipeline/durability.rs"]
mod durability;
#[path = "pipeline/end_to_end.rs"]
mod end_to_end;
#[path = "pipeline/failure.rs"]
mod failure;
#[path = "pipeline/output_journal.rs"]
mod output_journal;
#[path = "pipeline/restart.rs"]
mod restart;
#[path = "pipeline/shutdown.rs"]
mod shutdown;
#[path = "pipeline/sinks.rs"]
mod sinks;
#[path = "pipeline/snapshots.rs"]
mod snapshots;
#[path = "pipeline/support.rs"]
mod support;
#[path = "pipeline/timer.rs"]
mod timer;

/// How the pipelines of this test binary run their stages.
pub const STAGE_THREADS: ringex_core::pipeline::StageThreads =
    ringex_core::pipeline::StageThreads::Fused;
