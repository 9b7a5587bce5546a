//! Integration tests of `ringex-replay`: one binary, a module per area.

mod support;
