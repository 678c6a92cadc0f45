//! What a record's state says about its index memberships: the invariant the
//! index reconciler restores, the simulator checks after every step, and
//! `ff inspect` reports on. The Lua mirror is `expected_indexes` in
//! `lua/scanners.lua`.

use crate::contract::execution::ExecutionRecord;
use crate::keys::PartitionKeys;
use crate::state::{Eligibility, LifecyclePhase};

/// One index an execution must be in, with the score it must have there
/// (`None`: any score — the eligible index's score is a priority order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Membership {
    pub index: String,
    pub score: Option<u64>,
}

/// Every sorted-set index of an execution's partition that an execution of
/// `lane` could be in.
pub fn candidate_indexes(keys: &PartitionKeys, lane: &crate::Lane) -> Vec<String> {
    vec![
        keys.eligible(lane),
        keys.delayed(),
        keys.lease_expiry(),
        keys.attempt_timeout(),
        keys.deadline(),
        keys.terminal(),
    ]
}

/// The sorted-set indexes `rec` must be in; it must be in no other (and always
/// in the partition's `all` set).
pub fn expected_memberships(rec: &ExecutionRecord) -> Vec<Membership> {
    let keys = PartitionKeys::of(&rec.execution);
    let mut out = Vec::new();
    let s = rec.state;
    match (s.phase, s.eligibility) {
        (LifecyclePhase::Runnable, Some(Eligibility::Eligible)) => out.push(Membership {
            index: keys.eligible(&rec.lane),
            score: None,
        }),
        (LifecyclePhase::Runnable, Some(Eligibility::Delayed)) => out.push(Membership {
            index: keys.delayed(),
            score: rec.delayed_until_ms,
        }),
        (LifecyclePhase::Active, _) => {
            out.push(Membership {
                index: keys.lease_expiry(),
                score: rec.lease_expires_at_ms,
            });
            if let Some(d) = rec.attempt_due_ms {
                out.push(Membership {
                    index: keys.attempt_timeout(),
                    score: Some(d),
                });
            }
        }
        (LifecyclePhase::Terminal, _) => out.push(Membership {
            index: keys.terminal(),
            score: Some(rec.ended_at_ms.unwrap_or(0) + rec.retention_ms),
        }),
        _ => {}
    }
    if s.phase != LifecyclePhase::Terminal {
        if let Some(d) = rec.deadline_at_ms {
            out.push(Membership {
                index: keys.deadline(),
                score: Some(d),
            });
        }
    }
    out
}
