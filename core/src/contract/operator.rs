//! An operator's calls: pause and resume a lane (`ff_lane_pause`, one call
//! per partition), requeue an execution that ended badly (`ff_requeue`),
//! delete a terminal one now (`ff_delete`).

use super::{ok_fields, Call, CallError};
use crate::id::ExecutionId;
use crate::keys::{self, PartitionKeys};
use crate::name::Lane;
use crate::partition::Partition;
use crate::reply::Reply;

/// `ff_lane_pause`: pause (`paused`) or resume `lane` in one partition.
/// Claims of a paused lane are refused (`lane_paused`) and hand out
/// nothing; the engine keeps making its executions eligible. Resuming a
/// lane with eligible executions announces it on the ready channel.
///
/// Repeat: changes nothing (answers `false`: nothing changed).
pub fn pause_lane(partition: Partition, lane: &Lane, paused: bool) -> Call {
    Call::new(
        "ff_lane_pause",
        vec![PartitionKeys::new(partition).paused()],
    )
    .arg(lane)
    .arg(u8::from(paused))
}

/// Whether the partition's pause state changed.
pub fn decode_pause_lane(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_lane_pause", reply)?;
    Ok(f.int("changed")? == 1)
}

/// `ff_requeue`: run a failed, cancelled or expired execution again —
/// eligible at once, its retries and reclaims counted afresh, its attempts,
/// last error and lease epoch kept (the next claim is its next attempt).
/// Refused for a completed or skipped one, a flow member (its end already
/// decided its dependents), and one whose deadline has passed.
///
/// Repeat: finds it live and changes nothing (answers [`Requeued::Live`]).
pub fn requeue(execution: &ExecutionId) -> Call {
    Call::new("ff_requeue", vec![keys::exec(execution)]).arg(execution)
}

/// What `ff_requeue` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requeued {
    /// Eligible again.
    Requeued,
    /// It was not terminal (already requeued, or never ended): unchanged.
    Live,
}

/// Decode `ff_requeue`.
pub fn decode_requeue(reply: &Reply) -> Result<Requeued, CallError> {
    let mut f = ok_fields("ff_requeue", reply)?;
    match f.text("requeue")?.as_str() {
        "requeued" => Ok(Requeued::Requeued),
        "live" => Ok(Requeued::Live),
        other => Err(f.error(format!("unknown answer {other:?}")).into()),
    }
}

/// `ff_delete`: purge a terminal execution now (its record, index entries,
/// idempotency record and waitpoints), as retention would. Refused for one
/// that has not ended, or a flow member whose dependents are still being
/// resolved.
///
/// Repeat: answers `false` (nothing left to delete), as an unknown id does.
pub fn delete(execution: &ExecutionId) -> Call {
    Call::new("ff_delete", vec![keys::exec(execution)]).arg(execution)
}

/// True when it was deleted, false when there was nothing to delete.
pub fn decode_delete(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_delete", reply)?;
    match f.text("delete")?.as_str() {
        "deleted" => Ok(true),
        "absent" => Ok(false),
        other => Err(f.error(format!("unknown answer {other:?}")).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::PartitionFamily;

    #[test]
    fn pause_is_one_call_per_partition_on_its_paused_set() {
        let p = Partition::new(PartitionFamily::Flow, 7);
        let c = pause_lane(p, &Lane::new("mail").unwrap(), true);
        assert_eq!(c.keys, vec!["ff:paused:{fp:7}".to_owned()]);
        assert_eq!(c.args, vec![b"mail".to_vec(), b"1".to_vec()]);
        assert_eq!(
            pause_lane(p, &Lane::new("mail").unwrap(), false).args[1],
            b"0"
        );
    }

    #[test]
    fn answers_decode() {
        let r = |s: &str| Reply::Array(vec![Reply::Int(1), Reply::bulk(s)]);
        assert_eq!(decode_requeue(&r("requeued")), Ok(Requeued::Requeued));
        assert_eq!(decode_requeue(&r("live")), Ok(Requeued::Live));
        assert!(decode_requeue(&r("maybe")).is_err());
        assert_eq!(decode_delete(&r("deleted")), Ok(true));
        assert_eq!(decode_delete(&r("absent")), Ok(false));
        let changed = Reply::Array(vec![Reply::Int(1), Reply::Int(1)]);
        assert_eq!(decode_pause_lane(&changed), Ok(true));
    }
}
