//! Fuzz target: arbitrary text as a `ringex --config` file. Parsing never
//! panics; what it accepts validates and yields usable pipeline and
//! gateway configurations.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringex_gateways::server::ServerConfig;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = ServerConfig::parse(text) {
        assert!(config.validate().is_ok());
        assert!(config.pipeline_config(Path::new("fuzz")).validate().is_ok());
        assert!(config.gateway_config().validate().is_ok());
    }
});
