//! Fuzz target: the two text formats `ringex-perf` reads — `.hgrm`
//! percentile distributions (`ringex_perf::hgrm::parse`, used by
//! `compare`) and the TOML configuration file
//! (`ringex_perf::config::RingexConfig::from_toml`). The first input byte
//! picks which; the rest is the text.
//!
//! Nothing may panic, and:
//! - a parsed distribution answers `value_at` for every percentile with a
//!   value from its rows or its maximum;
//! - an accepted configuration converts to the core's pipeline
//!   configuration, and printing it as TOML and reading it back gives the
//!   same configuration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringex_perf::config::RingexConfig;
use ringex_perf::hgrm;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    if which & 1 == 0 {
        if let Ok(d) = hgrm::parse(text) {
            assert!(!d.points.is_empty());
            for p in [0.0, 0.5, 0.9, 0.99, 0.999, 1.0] {
                let v = d.value_at(p);
                assert!(v == d.max_us || d.points.iter().any(|r| r.value_us == v));
            }
        }
    } else if let Ok(config) = RingexConfig::from_toml(text) {
        let _ = config.pipeline_config(std::path::Path::new("/nonexistent"));
        let printed = toml::to_string(&config).expect("a resolved configuration prints");
        let again = RingexConfig::from_toml(&printed).expect("a printed configuration reads back");
        assert_eq!(again, config);
    }
});
