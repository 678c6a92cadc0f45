//! Typed errors: parse errors for ids and names, and the data-plane errors a
//! Lua function returns as a value.

use thiserror::Error;

/// Why a string is not a valid id or name.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Nothing given.
    #[error("{kind} is empty")]
    Empty {
        /// What was being parsed.
        kind: &'static str,
    },
    /// Longer than allowed.
    #[error("{kind} is {len} bytes, longer than the {max}-byte limit")]
    TooLong {
        /// What was being parsed.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A character that is not allowed.
    #[error("{kind} contains {ch:?} at byte {at}; allowed: ASCII letters, digits, '-', '_', '.'")]
    BadChar {
        /// What was being parsed.
        kind: &'static str,
        /// The character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// Not of the expected shape.
    #[error("{kind} {value:?} is malformed: {reason}")]
    Malformed {
        /// What was being parsed.
        kind: &'static str,
        /// The input (at most 80 characters of it).
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// An error the data plane reports as a value (never raised half-way through a
/// write: a function that returns one of these changed nothing).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FfError {
    /// Not found: the execution, flow or member named (`not_found`).
    #[error("not found")]
    NotFound,
    /// The lease or its epoch is not the current one (`stale_lease`).
    #[error("lease is not the current one (stale worker fenced out)")]
    StaleLease,
    /// The call needs an active execution; the detail is its state (`not_active`).
    #[error("execution is not active (state: {0})")]
    NotActive(String),
    /// The execution already ended; the detail is its outcome (`already_terminal`).
    #[error("execution is already terminal ({0})")]
    AlreadyTerminal(String),
    /// An argument the data plane refused (`invalid_argument`).
    #[error("invalid argument {field}: {reason}")]
    InvalidArgument {
        /// The argument.
        field: String,
        /// Why it was refused.
        reason: String,
    },
    /// A payload or result over the limit (`payload_too_large`).
    #[error("payload of {len} bytes exceeds the {max}-byte limit")]
    PayloadTooLarge {
        /// Its size in bytes.
        len: u64,
        /// The limit in bytes.
        max: u64,
    },
    /// A lane that was never registered (`unknown_lane`).
    #[error("unknown lane {0:?}")]
    UnknownLane(String),
    /// The lane is paused: its claims hand out nothing (`lane_paused`).
    #[error("lane {0:?} is paused")]
    LanePaused(String),
    /// The execution cannot be claimed in its state (`not_eligible`).
    #[error("execution is not eligible (state: {0})")]
    NotEligible(String),
    /// The dependency edge would close a cycle (the flow is left unchanged).
    #[error("dependency cycle: {0}")]
    Cycle(String),
    /// The flow is being cancelled: no new members or edges.
    #[error("flow {0} is cancelled")]
    FlowCancelled(String),
    /// Every member of the flow has ended: an existing execution is not
    /// added to it (`flow_ended`).
    #[error("flow {0} has ended")]
    FlowEnded(String),
    /// The target is in a state the call does not apply to.
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// A size bound of the data plane (flow members, parents per child).
    #[error("too large: {0}")]
    TooLarge(String),
    /// No such waitpoint on the execution: it does not exist or belongs to
    /// another execution (`waitpoint_not_found`).
    #[error("waitpoint not found")]
    WaitpointNotFound,
    /// The waitpoint is closed or expired and takes no signal or suspension
    /// (`waitpoint_closed`); the detail gives its state.
    #[error("waitpoint no longer takes signals ({0})")]
    WaitpointClosed(String),
    /// The token does not prove the waitpoint (malformed, unknown or expired
    /// key, or a mismatch); the detail says which, never the token.
    #[error("waitpoint token rejected: {0}")]
    InvalidToken(String),
    /// No waitpoint secret has been rotated in on the partition, so no token
    /// can be made (`no_secret`); nothing was changed.
    #[error("no waitpoint secret has been rotated in")]
    NoSecret,
    /// A per-execution bound is reached (waitpoints created, signals accepted;
    /// `limit_reached`); the detail names it.
    #[error("limit reached: {0}")]
    LimitReached(String),
    /// A code this version does not know: kept verbatim so nothing is lost.
    #[error("data plane error {code}: {detail}")]
    Other {
        /// The code.
        code: String,
        /// The detail.
        detail: String,
    },
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
            "lane_paused" => FfError::LanePaused(detail.to_owned()),
            "cycle" => FfError::Cycle(detail.to_owned()),
            "flow_cancelled" => FfError::FlowCancelled(detail.to_owned()),
            "flow_ended" => FfError::FlowEnded(detail.to_owned()),
            "invalid_state" => FfError::InvalidState(detail.to_owned()),
            "too_large" => FfError::TooLarge(detail.to_owned()),
            _ => FfError::Other {
                code: code.to_owned(),
                detail: detail.to_owned(),
            },
        }
    }
}
