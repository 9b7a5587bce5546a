use crate::support::*;
use ringex_core::pipeline::Pipeline;
use ringex_core::records::*;
use std::time::{Duration, Instant};

#[test]
fn timer_ticks_go_through_the_ring_and_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline =
        Pipeline::start(config(dir.path()).with_timer(Some(Duration::from_millis(5)))).unwrap();
    let metrics = pipeline.metrics();
    let deadline = Instant::now() + TIMEOUT;
    while metrics.snapshot().applied < 3 {
        assert!(Instant::now() < deadline, "no timer ticks applied");
        std::thread::sleep(Duration::from_millis(2));
    }
    let report = pipeline.shutdown();
    assert!(report.health.is_ok());
    let journaled = journaled_commands(dir.path());
    assert!(journaled.len() >= 3);
    assert_eq!(journaled.len() as u64, report.metrics.applied);
    assert!(journaled
        .iter()
        .all(|c| c.kind == CommandKind::TimerTick as u8 && c.timestamp > 0));
}
