//! What a record's state says about its index memberships: the invariant the
//! index reconciler restores, the simulator and the `data_plane` fuzz target
//! check after every step ([`index_violations`]), and `ff inspect` reports on.
//! The Lua applies the same rule from the tables [`crate::lua_facts`] makes of
//! [`state_index`] and [`SCORED_INDEXES`] (`expected_indexes` in `lua/scanners.lua`).

use crate::contract::execution::ExecutionRecord;
use crate::contract::suspension::{WaitpointRecord, WaitpointState};
use crate::keys::PartitionKeys;
use crate::state::{Eligibility, LifecyclePhase};
use std::collections::{BTreeMap, BTreeSet};

/// One index an execution must be in, with the score it must have there
/// (`None`: any score — the eligible index's score is a priority order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Membership {
    /// The index's name (`delayed`, `eligible:<lane>`, ...).
    pub index: String,
    /// The score it must have, if fixed.
    pub score: Option<u64>,
}

/// The sorted-set indexes an execution can be in besides its lane's
/// eligible index (the Lua's `SCORED_INDEXES`, from [`crate::lua_facts`]).
pub const SCORED_INDEXES: [&str; 10] = [
    "delayed",
    "waiting_children",
    "lease_expiry",
    "attempt_timeout",
    "deadline",
    "terminal",
    "suspension_timeout",
    "blocked_budget",
    "blocked_quota",
    "blocked_route",
];

/// The one index a state puts an execution in (`eligible` meaning its lane's
/// eligible index), besides the two a record's fields add: `attempt_timeout`
/// while active with an attempt timeout, `deadline` while live with a
/// deadline. A suspended execution is in `suspension_timeout` only when it
/// has a timeout. The Lua reads this rule as a table ([`crate::lua_facts`]).
pub fn state_index(
    phase: LifecyclePhase,
    eligibility: Option<Eligibility>,
) -> Option<&'static str> {
    match (phase, eligibility) {
        (LifecyclePhase::Runnable, Some(e)) => Some(match e {
            Eligibility::Eligible => "eligible",
            Eligibility::Delayed => "delayed",
            Eligibility::WaitingChildren => "waiting_children",
            Eligibility::BlockedBudget => "blocked_budget",
            Eligibility::BlockedQuota => "blocked_quota",
            Eligibility::BlockedRoute => "blocked_route",
        }),
        (LifecyclePhase::Runnable, None) => None,
        (LifecyclePhase::Active, _) => Some("lease_expiry"),
        (LifecyclePhase::Suspended, _) => Some("suspension_timeout"),
        (LifecyclePhase::Terminal, _) => Some("terminal"),
    }
}

/// Every sorted-set index of an execution's partition that an execution of
/// `lane` could be in.
pub fn candidate_indexes(keys: &PartitionKeys, lane: &crate::Lane) -> Vec<String> {
    let mut out = vec![keys.eligible(lane)];
    let tag = keys.tag();
    out.extend(
        SCORED_INDEXES
            .iter()
            .map(|name| format!("{}{tag}:{name}", crate::keys::IDX_PREFIX)),
    );
    out
}

/// The sorted-set indexes `rec` must be in; it must be in no other (and always
/// in the partition's `all` set).
pub fn expected_memberships(rec: &ExecutionRecord) -> Vec<Membership> {
    let keys = PartitionKeys::of(&rec.execution);
    let mut out = Vec::new();
    let s = rec.state;
    let index = |name: &str| match name {
        "eligible" => keys.eligible(&rec.lane),
        name => format!("{}{}:{name}", crate::keys::IDX_PREFIX, keys.tag()),
    };
    if let Some(name) = state_index(s.phase, s.eligibility) {
        // The score each index must have: a due time, or any (the eligible
        // index's is a priority order, the waiting and blocked indexes' when
        // they are next re-checked or were blocked).
        let score = match name {
            "delayed" => Some(rec.delayed_until_ms),
            "lease_expiry" => Some(rec.lease_expires_at_ms),
            "suspension_timeout" => rec.suspension_due_ms.map(Some),
            "terminal" => Some(Some(rec.ended_at_ms.unwrap_or(0) + rec.retention_ms)),
            _ => Some(None),
        };
        // (suspended without a timeout: in no index)
        if let Some(score) = score {
            out.push(Membership {
                index: index(name),
                score,
            });
        }
    }
    if s.phase == LifecyclePhase::Active {
        if let Some(d) = rec.attempt_due_ms {
            out.push(Membership {
                index: keys.attempt_timeout(),
                score: Some(d),
            });
        }
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

/// One way the store's indexes disagree with its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The execution id (or index member) it concerns.
    pub member: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// False for the partition indexes whose members are not execution ids
/// (queued flow work, changed flows, pending waitpoints: see
/// `waitpoint_violations`; the budget and quota partitions' indexes hold
/// budget and quota names).
pub fn holds_executions(index_key: &str) -> bool {
    index_key.starts_with("ff:idx:{fp:")
        && !(index_key.ends_with(":flow_work")
            || index_key.ends_with(":flows")
            || index_key.ends_with(PENDING_SUFFIX))
}

/// Check the index invariant over everything read from a store: `records`
/// (execution id → its decoded record), `zsets` (sorted-set index key → member
/// → score) and `alls` (`all` set key → members). Each execution must be in
/// its partition's `all` set and in exactly the sorted sets
/// [`expected_memberships`] names, with those scores; no index may hold a
/// member that has no record.
pub fn index_violations(
    records: &BTreeMap<String, ExecutionRecord>,
    zsets: &BTreeMap<String, BTreeMap<String, u64>>,
    alls: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut push = |member: &str, message: String| {
        out.push(Violation {
            member: member.to_owned(),
            message,
        })
    };
    let mut accounted: BTreeSet<(String, String)> = BTreeSet::new();
    for (eid, rec) in records {
        let pk = PartitionKeys::of(&rec.execution);
        if !alls.get(&pk.all()).is_some_and(|s| s.contains(eid)) {
            push(
                eid,
                format!("{eid} ({}) missing from {}", rec.public_state, pk.all()),
            );
        }
        let want = expected_memberships(rec);
        for idx in candidate_indexes(&pk, &rec.lane) {
            let have = zsets.get(&idx).and_then(|z| z.get(eid)).copied();
            match (want.iter().find(|m| m.index == idx), have) {
                (Some(m), Some(score)) => {
                    if m.score.is_some_and(|s| s != score) {
                        push(
                            eid,
                            format!(
                                "{eid} ({}) in {idx} with score {score}, state says {:?}",
                                rec.public_state, m.score
                            ),
                        );
                    }
                    accounted.insert((idx.clone(), eid.clone()));
                }
                (Some(_), None) => push(
                    eid,
                    format!("{eid} ({}) missing from {idx}", rec.public_state),
                ),
                (None, Some(_)) => push(
                    eid,
                    format!("{eid} ({}) wrongly in {idx}", rec.public_state),
                ),
                (None, None) => {}
            }
        }
    }
    // No index entry without its execution (eligible indexes of other lanes included).
    for (idx, members) in zsets.iter().filter(|(idx, _)| holds_executions(idx)) {
        for m in members.keys() {
            if !accounted.contains(&(idx.clone(), m.clone())) && !records.contains_key(m) {
                push(m, format!("{idx} holds {m}, which has no record"));
            }
        }
    }
    for (all, members) in alls {
        for m in members {
            if !records.contains_key(m) {
                push(m, format!("{all} lists {m}, which has no record"));
            }
        }
    }
    out
}

const PENDING_SUFFIX: &str = ":pending_waitpoints";

/// Check the waitpoint half of the invariant: a pending waitpoint is in its
/// partition's pending index, scored by its expiry; any other is not; every
/// member of a pending index is a pending waitpoint. `waitpoints` maps each
/// waitpoint's key to its record.
pub fn waitpoint_violations(
    waitpoints: &BTreeMap<String, WaitpointRecord>,
    zsets: &BTreeMap<String, BTreeMap<String, u64>>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for w in waitpoints.values() {
        let idx = PartitionKeys::of(&w.execution).pending_waitpoints();
        let id = w.id.as_str().to_owned();
        let have = zsets.get(&idx).and_then(|z| z.get(&id)).copied();
        let want = (w.state == WaitpointState::Pending).then_some(w.expires_at_ms);
        match (want, have) {
            (Some(exp), Some(score)) if exp != Some(score) => out.push(Violation {
                member: id.clone(),
                message: format!("waitpoint {id} in {idx} with score {score}, expires {exp:?}"),
            }),
            (Some(_), None) => out.push(Violation {
                member: id.clone(),
                message: format!("pending waitpoint {id} missing from {idx}"),
            }),
            (None, Some(_)) => out.push(Violation {
                member: id.clone(),
                message: format!("{} waitpoint {id} wrongly in {idx}", w.state),
            }),
            _ => {}
        }
        seen.insert((idx, id));
    }
    for (idx, members) in zsets.iter().filter(|(k, _)| k.ends_with(PENDING_SUFFIX)) {
        for m in members.keys() {
            if !seen.contains(&(idx.clone(), m.clone())) {
                out.push(Violation {
                    member: m.clone(),
                    message: format!("{idx} holds {m}, which is no waitpoint"),
                });
            }
        }
    }
    out
}
