//! The one error type of the core.
//!
//! Every public operation returns [`Result`]. Kinds mean something to a caller:
//! bad input, an unknown id, a lost claim/lease, a forbidden state transition,
//! a remote provider failure, or storage trouble. Messages name the field or id.
//! A failed operation has written nothing: each runs in one transaction.

use thiserror::Error;

/// Errors raised by the agent-factory core.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The caller passed a value that is missing, malformed or out of range.
    #[error("{0}")]
    Validation(String),
    /// An id named by the caller does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The operation lost a race: a lease, claim or ownership is held elsewhere.
    #[error("{0}")]
    Conflict(String),
    /// The operation is not allowed from the current state.
    #[error("{0}")]
    InvalidState(String),
    /// A remote provider (Fly Machines, Telegram) failed.
    #[error("{0}")]
    Provider(String),
    /// SQLite, the blob store or the file system failed.
    #[error("{0}")]
    Storage(String),
    /// The caller could not prove who it is (e.g. a Telegram webhook request
    /// without the configured secret token).
    #[error("{0}")]
    Unauthorized(String),
}

/// Result alias used across the core.
pub type Result<T> = std::result::Result<T, Error>;

/// What went wrong in a failed provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderErrorKind {
    /// The input was refused before any request was sent.
    InvalidInput,
    /// The API answered with an error status.
    Http,
    /// No usable answer: connection refused, timeout, broken response.
    Transport,
    /// A success status whose body is not the documented shape.
    Protocol,
}

/// A failed provider call (Fly Machines, local processes) with what a caller
/// needs to decide what to do next. Messages never contain credentials.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct ProviderError {
    /// Category of the failure.
    pub kind: ProviderErrorKind,
    /// Human-readable message, e.g. `Fly API DELETE /apps/a/machines/m failed: 500 ...`.
    pub message: String,
    /// HTTP status of the last answer, when there was one.
    pub status: Option<u16>,
    /// Whether the same call may succeed later (429, 5xx, timeouts, connect errors).
    pub retryable: bool,
}

/// Result alias of provider calls.
pub type ProviderResult<T> = std::result::Result<T, ProviderError>;

impl ProviderError {
    /// Input refused before sending anything; never retryable.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        ProviderError {
            kind: ProviderErrorKind::InvalidInput,
            message: message.into(),
            status: None,
            retryable: false,
        }
    }
    /// A success answer with an unexpected body; not retryable.
    pub fn protocol(message: impl Into<String>) -> Self {
        ProviderError {
            kind: ProviderErrorKind::Protocol,
            message: message.into(),
            status: None,
            retryable: false,
        }
    }
}

impl From<ProviderError> for Error {
    fn from(err: ProviderError) -> Self {
        match err.kind {
            ProviderErrorKind::InvalidInput => Error::Validation(err.message),
            _ => Error::Provider(err.message),
        }
    }
}

impl Error {
    /// Shorthand for a validation error.
    pub fn validation(msg: impl Into<String>) -> Self {
        Error::Validation(msg.into())
    }
    /// Shorthand for a not-found error.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Error::NotFound(msg.into())
    }
    /// Shorthand for an invalid-state error.
    pub fn invalid_state(msg: impl Into<String>) -> Self {
        Error::InvalidState(msg.into())
    }
    /// Shorthand for a conflict error.
    pub fn conflict(msg: impl Into<String>) -> Self {
        Error::Conflict(msg.into())
    }
    /// The same kind of error with `prefix: ` before its message.
    pub fn with_context(self, prefix: &str) -> Self {
        match self {
            Error::Validation(m) => Error::Validation(format!("{prefix}: {m}")),
            Error::NotFound(m) => Error::NotFound(format!("{prefix}: {m}")),
            Error::Conflict(m) => Error::Conflict(format!("{prefix}: {m}")),
            Error::InvalidState(m) => Error::InvalidState(format!("{prefix}: {m}")),
            Error::Provider(m) => Error::Provider(format!("{prefix}: {m}")),
            Error::Storage(m) => Error::Storage(format!("{prefix}: {m}")),
            Error::Unauthorized(m) => Error::Unauthorized(format!("{prefix}: {m}")),
        }
    }
    /// Shorthand for an unauthorized error.
    pub fn unauthorized(msg: impl Into<String>) -> Self {
        Error::Unauthorized(msg.into())
    }
    /// Shorthand for a storage error.
    pub fn storage(msg: impl Into<String>) -> Self {
        Error::Storage(msg.into())
    }
}

impl From<rusqlite::Error> for Error {
    fn from(err: rusqlite::Error) -> Self {
        Error::Storage(format!("sqlite: {err}"))
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::Storage(format!("io: {err}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(err: serde_json::Error) -> Self {
        Error::Storage(format!("stored JSON is corrupt: {err}"))
    }
}

/// A stored value that does not decode (a status outside its set, bad JSON), as
/// the error type `rusqlite` row mappers return; column `i` is reported.
pub(crate) fn column_error(i: usize, e: Error) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
}
