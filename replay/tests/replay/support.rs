//! Shared helpers: sessions run through a real pipeline, the CLI, and
//! frame offsets inside segment files.
