//! The shell's error type: everything a call through [`crate::Client`] can return.

use ff_core::contract::CallError;
use ff_core::reply::DecodeError;
use ff_core::{FfError, ParseError};
use thiserror::Error;

/// A failure talking to the store.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    /// Connection lost, timeout, I/O: the call may or may not have applied.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The server answered with an error reply.
    #[error("server error: {0}")]
    Server(String),
    /// The function library is not loaded on the node that answered.
    #[error("function not found: {0}")]
    FunctionNotFound(String),
    /// Bad URL, TLS or authentication settings.
    #[error("store configuration: {0}")]
    Config(String),
}

/// Everything a [`Client`](crate::Client) or [`Engine`](crate::Engine) call can fail with.
#[derive(Debug, Error)]
pub enum Error {
    /// The data plane refused the call; nothing changed.
    #[error(transparent)]
    Rejected(#[from] FfError),
    /// An argument was invalid before anything was sent.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The argument.
        field: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// An id or name that does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A reply did not have the shape its contract declares.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// The store failed (connection, timeout, configuration).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A wait ran out before the execution ended.
    #[error("{execution} did not end in time")]
    TimedOut {
        /// The execution waited on.
        execution: ff_core::ExecutionId,
    },
    /// A typed job's arguments or output did not encode or decode.
    #[error(transparent)]
    Codec(#[from] crate::job_type::CodecError),
    /// A scanner cycle run by hand met a failure (the first one).
    #[error("scanner cycle failed: {0}")]
    Cycle(String),
    /// The partition counts recorded in Valkey differ from this process's.
    #[error("partition counts mismatch: Valkey has {stored}, this process is configured with {configured}")]
    PartitionMismatch {
        /// The counts recorded in Valkey.
        stored: String,
        /// The counts this process has.
        configured: String,
    },
}

impl From<CallError> for Error {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Rejected(r) => Error::Rejected(r),
            CallError::Decode(d) => Error::Decode(d),
        }
    }
}

impl Error {
    /// True when the caller lost its lease (another worker has or had it).
    pub fn is_fenced_out(&self) -> bool {
        matches!(
            self,
            Error::Rejected(FfError::StaleLease) | Error::Rejected(FfError::NotActive(_))
        )
    }
}

/// `Result` with [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
