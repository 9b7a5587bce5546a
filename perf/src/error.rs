//! The library's error type.

/// What can go wrong in the harness (never in the engine: it rejects, it does not fail).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading `/proc` or writing the report failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// `/proc/self/status` had no (parsable) line for a field.
    #[error("no {0} line in /proc/self/status")]
    MissingProcField(&'static str),
    /// A run did not do what the harness set up (for example, a reject where none was expected).
    #[error("{0}")]
    Unexpected(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
