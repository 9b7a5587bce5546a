//! Integration tests for ringex-journal, one module per area.

mod chain;
mod corruption;
mod faults;
mod pretouch;
mod properties;
mod roundtrip;
mod snapshots;
mod support;
mod torn_tail;
