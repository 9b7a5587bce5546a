//! Fuzz target: arbitrary text as a `ringex-replay --config` engine
//! configuration. Parsing never panics; what it accepts is valid and
//! round-trips through JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringex_replay::config::{parse_engine_config, EngineConfigFile};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = parse_engine_config(text, Path::new("fuzz.json")) {
        assert!(config.validate().is_ok());
        let json = serde_json::to_string(&EngineConfigFile::from(config)).unwrap();
        assert_eq!(parse_engine_config(&json, Path::new("again")).unwrap(), config);
    }
});
