//! Errors of the core crate's fallible set-up APIs.
//!
//! Commands never fail with an `Error`: a command that cannot be carried
//! out becomes a `Rejected` event with a [`crate::records::RejectReason`].
//! `Error` is for the engine's owner — building an engine from a
//! configuration that cannot work.

/// What went wrong setting up the core.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// An [`crate::EngineConfig`] field is out of range.
    #[error("invalid engine configuration: {field} {problem}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A configuration file ([`crate::config`]) is unreadable or has a bad
    /// value; the text names the section and key.
    #[error("configuration: {0}")]
    Config(String),
    /// Engine snapshot bytes could not be restored
    /// ([`crate::Engine::from_snapshot`]).
    #[error("engine snapshot rejected at byte {offset} ({section}): {problem}")]
    Snapshot {
        /// Byte offset in the snapshot where the problem was found.
        offset: usize,
        /// The section being read.
        section: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
