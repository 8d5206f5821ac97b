//! Errors of the engine and its connectors.
//!
//! Each variant says whose fault it is, which tells the user what to do about it.

use arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// Result with [`StreamError`] as the error type.
pub type Result<T, E = StreamError> = std::result::Result<T, E>;

/// An error raised while configuring or running a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The user's table options or declared schema are wrong. Not retryable: fix the DDL.
    #[error("{0}")]
    Config(String),
    /// An input record could not be decoded (and the table's policy is to fail).
    #[error("{0}")]
    Data(String),
    /// Reading or writing a file or stream failed.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A remote system a sink writes to refused or failed (after any retries).
    #[error("{0}")]
    Remote(String),
    /// An error from evaluating expressions or aggregates.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// An error from an Arrow kernel.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// A broken invariant inside streamsql: a bug, never the user's fault.
    #[error("internal error (please report): {0}")]
    Internal(String),
}

impl StreamError {
    /// An [`StreamError::Io`] error with a description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StreamError::Io { context: context.into(), source }
    }
}
