//! Typed errors: parse errors for ids and names, and the data-plane errors a
//! Lua function returns as a value.

use thiserror::Error;

/// Why a string is not a valid id or name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is {len} bytes, longer than the {max}-byte limit")]
    TooLong {
        kind: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{kind} contains {ch:?} at byte {at}; allowed: ASCII letters, digits, '-', '_', '.'")]
    BadChar {
        kind: &'static str,
        ch: char,
        at: usize,
    },
    #[error("{kind} {value:?} is malformed: {reason}")]
    Malformed {
        kind: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// An error the data plane reports as a value (never raised half-way through a
/// write: a function that returns one of these changed nothing).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FfError {
    #[error("execution not found")]
    NotFound,
    #[error("lease is not the current one (stale worker fenced out)")]
    StaleLease,
    #[error("execution is not active (state: {0})")]
    NotActive(String),
    #[error("execution is already terminal ({0})")]
    AlreadyTerminal(String),
    #[error("invalid argument {field}: {reason}")]
    InvalidArgument { field: String, reason: String },
    #[error("payload of {len} bytes exceeds the {max}-byte limit")]
    PayloadTooLarge { len: u64, max: u64 },
    #[error("unknown lane {0:?}")]
    UnknownLane(String),
    #[error("execution is not eligible (state: {0})")]
    NotEligible(String),
    #[error("waitpoint not found")]
    WaitpointNotFound,
    #[error("waitpoint no longer takes signals ({0})")]
    WaitpointClosed(String),
    /// The token does not prove the waitpoint (malformed, unknown or expired
    /// key, or a mismatch); the detail says which, never the token.
    #[error("waitpoint token rejected: {0}")]
    InvalidToken(String),
    #[error("no waitpoint secret has been rotated in")]
    NoSecret,
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// A code this version does not know: kept verbatim so nothing is lost.
    #[error("data plane error {code}: {detail}")]
    Other { code: String, detail: String },
}

impl FfError {
    /// Decode the `(code, detail)` pair a Lua function returns.
    pub fn from_code(code: &str, detail: &str) -> Self {
        match code {
            "not_found" => FfError::NotFound,
            "stale_lease" => FfError::StaleLease,
            "not_active" => FfError::NotActive(detail.to_owned()),
            "already_terminal" => FfError::AlreadyTerminal(detail.to_owned()),
            "not_eligible" => FfError::NotEligible(detail.to_owned()),
            "waitpoint_not_found" => FfError::WaitpointNotFound,
            "waitpoint_closed" => FfError::WaitpointClosed(detail.to_owned()),
            "invalid_token" => FfError::InvalidToken(detail.to_owned()),
            "no_secret" => FfError::NoSecret,
            "limit_reached" => FfError::LimitReached(detail.to_owned()),
            "payload_too_large" => {
                let mut it = detail.split(':');
                let len = it.next().and_then(|s| s.parse().ok());
                let max = it.next().and_then(|s| s.parse().ok());
                match (len, max) {
                    (Some(len), Some(max)) => FfError::PayloadTooLarge { len, max },
                    _ => FfError::Other {
                        code: code.to_owned(),
                        detail: detail.to_owned(),
                    },
                }
            }
            "invalid_argument" => {
                let (field, reason) = detail.split_once(':').unwrap_or((detail, ""));
                FfError::InvalidArgument {
                    field: field.to_owned(),
                    reason: reason.to_owned(),
                }
            }
            "unknown_lane" => FfError::UnknownLane(detail.to_owned()),
            _ => FfError::Other {
                code: code.to_owned(),
                detail: detail.to_owned(),
            },
        }
    }
}
