//! Fuzz target: arbitrary bytes as the start of an HTTP connection's input,
//! through the request parser, request after request (pipelining).
//!
//! Nothing may panic; every refusal is a 4xx with a code; a parsed request
//! never claims more bytes than it was given, and its body respects the
//! limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringex_gateways::ws::http::{parse_request, ParseLimits, Parsed};

fuzz_target!(|data: &[u8]| {
    let limits = ParseLimits {
        max_header_bytes: 2048,
        max_body_bytes: 512,
    };
    let mut rest = data;
    loop {
        match parse_request(rest, &limits) {
            Parsed::Incomplete => break,
            Parsed::Error(e) => {
                assert!((400..500).contains(&e.status), "{e:?}");
                assert!(!e.code.is_empty());
                break;
            }
            Parsed::Complete(req, used) => {
                assert!(used > 0 && used <= rest.len());
                assert!(req.body.len() <= limits.max_body_bytes);
                assert!(req.path.starts_with('/'), "{:?}", req.path);
                rest = &rest[used..];
            }
        }
    }
});
