use ringex_core::pipeline::{Pipeline, PipelineConfig, PipelineError, StageThreads, WaitKind};

#[test]
fn the_two_core_preset_fuses_and_never_busy_spins_and_the_server_preset_pins() {
    let c = PipelineConfig::two_core_default("/tmp/x");
    for stage in [c.journaler, c.engine, c.publisher] {
        assert!(!stage.wait.spins());
        assert_eq!(stage.core, None);
    }
    assert_eq!(c.stage_threads, StageThreads::Fused);
    assert_eq!(c.stage_configs(), vec![("journaler", c.journaler)]);
    let s = PipelineConfig::dedicated_server("/tmp/x", &[2, 3, 4]);
    assert_eq!(s.stage_threads, StageThreads::Separate);
    assert_eq!(s.stage_configs().len(), 3);
    assert_eq!(
        [s.journaler.core, s.engine.core, s.publisher.core],
        [Some(2), Some(3), Some(4)]
    );
    assert!([s.journaler, s.engine, s.publisher]
        .iter()
        .all(|s| s.wait == WaitKind::BusySpin));
}

#[test]
fn bad_configurations_are_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = crate::support::config(dir.path());
    c.input_ring_size = 1000;
    assert!(matches!(
        Pipeline::start(c),
        Err(PipelineError::InvalidConfig(_))
    ));
    let c = PipelineConfig {
        engine_config: crate::support::config(dir.path()).engine_config,
        timer_interval: None,
        ..PipelineConfig::dedicated_server(dir.path(), &[100_000, 100_001, 100_002])
    };
    assert!(matches!(
        Pipeline::start(c),
        Err(PipelineError::InvalidConfig(_))
    ));
}

#[test]
fn the_output_journal_defaults_to_a_subdirectory_and_must_not_share_the_input_journals() {
    let dir = tempfile::tempdir().unwrap();
    let c = crate::support::config(dir.path());
    assert_eq!(c.output_journal_path(), dir.path().join("events"));
    let elsewhere = dir.path().join("out");
    assert_eq!(
        c.clone()
            .with_output_journal_dir(&elsewhere)
            .output_journal_path(),
        elsewhere
    );
    assert!(matches!(
        Pipeline::start(c.with_output_journal_dir(dir.path())),
        Err(PipelineError::InvalidConfig(_))
    ));
}
