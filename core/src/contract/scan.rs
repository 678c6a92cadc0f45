//! Contracts of the scanners' batch functions (`lua/scanners.lua`): each acts
//! on at most `max` due members of one index of one partition.

use super::{ok_fields, Call, CallError};
use crate::keys::PartitionKeys;
use crate::partition::Partition;
use crate::reply::Reply;

/// What one batch call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    /// Members acted on (entries that disagreed with their record are repaired
    /// and not counted).
    pub acted: u32,
    /// The earliest score left in the index (server ms), if any.
    pub next_due_ms: Option<u64>,
}

/// Due delayed executions become eligible.
pub fn promote_delayed(partition: Partition, max: u32) -> Call {
    Call::new(
        "ff_promote_delayed",
        vec![PartitionKeys::new(partition).delayed()],
    )
    .arg(max)
}

/// Expired leases are reclaimed.
pub fn reclaim_expired(partition: Partition, max: u32) -> Call {
    Call::new(
        "ff_reclaim_expired",
        vec![PartitionKeys::new(partition).lease_expiry()],
    )
    .arg(max)
}

pub fn decode_batch(function: &'static str, reply: &Reply) -> Result<BatchOutcome, CallError> {
    let mut f = ok_fields(function, reply)?;
    let acted = u32::try_from(f.int("acted")?).map_err(|_| f.error("acted out of range"))?;
    let next = f.int("next due")?;
    Ok(BatchOutcome {
        acted,
        next_due_ms: u64::try_from(next).ok(),
    })
}
