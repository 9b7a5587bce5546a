//! The ringex configuration file, as `ringex-perf` reads it: the
//! `[pipeline]`, `[engine]` and `[journal]` sections the `ringex` server
//! reads too. The format, its defaults and presets live in
//! [`ringex_core::config`] so both programs parse the same file the same
//! way; this module re-exports it for the scenarios.

pub use ringex_core::config::*;
