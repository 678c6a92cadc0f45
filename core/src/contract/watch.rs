//! Waiting for an execution's end (`ff_watch`, announced on
//! [`ENDED_CHANNEL`]) and a running attempt's progress (`ff_progress`).
//!
//! A waiter subscribes to [`ENDED_CHANNEL`] first, then marks the execution;
//! its end is then published (the execution id) to every subscriber. Only
//! marked executions are announced, so nobody pays for ends nobody waits for.

use super::execution::Lease;
use super::{ok_fields, Call, CallError};
use crate::id::ExecutionId;
use crate::keys;
use crate::reply::Reply;

/// Where the end of a watched execution is announced (message: its id).
pub const ENDED_CHANNEL: &str = "ff:ended";

/// `ff_watch`: announce this execution's end on [`ENDED_CHANNEL`].
///
/// Repeat: idempotent (the mark is set once; a repeat finds it, or the end).
pub fn watch(execution: &ExecutionId) -> Call {
    Call::new("ff_watch", vec![keys::exec(execution)]).arg(execution)
}

/// True when the execution is already terminal (nothing will be announced).
pub fn decode_watch(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_watch", reply)?;
    match f.text("watch state")?.as_str() {
        "terminal" => Ok(true),
        "watching" => Ok(false),
        other => Err(f.error(format!("unknown watch state {other:?}")).into()),
    }
}

/// `ff_progress`: store `value` as the running attempt's progress (at most
/// [`super::limits::MAX_PROGRESS_BYTES`]), fenced by the lease.
///
/// Repeat: stores the same value again.
pub fn progress(lease: &Lease, value: &[u8]) -> Call {
    Call::new("ff_progress", vec![keys::exec(&lease.execution)])
        .arg(&lease.execution)
        .arg(&lease.id)
        .arg(lease.epoch)
        .arg_bytes(value)
}

/// Decode `ff_progress`.
pub fn decode_progress(reply: &Reply) -> Result<(), CallError> {
    ok_fields("ff_progress", reply).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_answers_decode() {
        let r = |s: &str| Reply::Array(vec![Reply::Int(1), Reply::bulk(s)]);
        assert_eq!(decode_watch(&r("terminal")), Ok(true));
        assert_eq!(decode_watch(&r("watching")), Ok(false));
        assert!(decode_watch(&r("later")).is_err());
    }

    #[test]
    fn progress_is_fenced_by_the_lease() {
        let lease = Lease {
            execution: ExecutionId::new(3, 9),
            id: crate::id::LeaseId::from_u128(7),
            epoch: 2,
        };
        let c = progress(&lease, b"{\"done\":3}");
        assert_eq!(c.function, "ff_progress");
        assert_eq!(c.keys, vec![keys::exec(&lease.execution)]);
        assert_eq!(c.args[2], b"2");
        assert_eq!(c.args[3], b"{\"done\":3}");
    }
}
