//! Integration tests of `ringex-replay`: one binary, a module per area.
//!
//! - `verify`: byte-for-byte verification and its divergences;
//! - `torn`: torn writes, flipped bytes, missing input;
//! - `tools`: dump, book, export and stats;
//! - `crash`: `kill -9` of a loaded pipeline, restart, recovery;
//! - `scale`: a long random session verifies byte for byte.

mod crash;
mod scale;
mod support;
mod tools;
mod torn;
mod verify;
