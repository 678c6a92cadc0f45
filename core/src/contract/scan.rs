//! Contracts of the scanners' batch functions (`lua/scanners.lua`): each acts
//! on the given due members of one index of one partition.

use super::{ok_fields, Call, CallError};
use crate::keys::PartitionKeys;
use crate::name::{Namespace, TagName};
use crate::partition::Partition;
use crate::reply::Reply;
use crate::scan::ItemResult;

/// Which executions an engine acts on (seed 003, 0.11): by namespace and/or
/// by an instance tag, so several engines can share one Valkey.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScannerFilter {
    /// Only executions of this namespace.
    pub namespace: Option<Namespace>,
    /// Only executions carrying this tag with this value.
    pub instance_tag: Option<(TagName, String)>,
}

/// The batch functions, one per scanner that acts on an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BatchFunction {
    /// delayed → eligible.
    PromoteDelayed,
    /// Expired leases → eligible again (or failed when the reclaim limit is spent).
    ReclaimExpired,
    /// Attempts past their timeout → expired.
    ExpireAttempts,
    /// Executions past their deadline → expired.
    ExpireDeadlines,
    /// Terminal executions past retention → purged (every key).
    PurgeRetained,
    /// Index memberships made to match each execution's state (walks `all`).
    ReconcileIndexes,
    /// Queued flow work nobody drained after an announcement (dependency
    /// dispatch, edge-cancel and flow-cancel backlog).
    ReconcileFlowWork,
    /// Waiting children whose parents ended without resolving their edges.
    ReconcileDependencies,
    /// Flows whose members changed: counters recounted and repaired.
    ProjectFlows,
    /// Suspensions past their timeout → their timeout behaviour.
    ExpireSuspensions,
    /// Pending waitpoints no suspension took up in time → expired.
    ExpireWaitpoints,
}

impl BatchFunction {
    /// Every batch function.
    pub const ALL: [BatchFunction; 11] = [
        BatchFunction::PromoteDelayed,
        BatchFunction::ReclaimExpired,
        BatchFunction::ExpireAttempts,
        BatchFunction::ExpireDeadlines,
        BatchFunction::PurgeRetained,
        BatchFunction::ReconcileIndexes,
        BatchFunction::ReconcileFlowWork,
        BatchFunction::ReconcileDependencies,
        BatchFunction::ProjectFlows,
        BatchFunction::ExpireSuspensions,
        BatchFunction::ExpireWaitpoints,
    ];

    /// The library function's name.
    pub fn function(self) -> &'static str {
        match self {
            BatchFunction::PromoteDelayed => "ff_promote_delayed",
            BatchFunction::ReclaimExpired => "ff_reclaim_expired",
            BatchFunction::ExpireAttempts => "ff_expire_attempts",
            BatchFunction::ExpireDeadlines => "ff_expire_deadlines",
            BatchFunction::PurgeRetained => "ff_purge_retained",
            BatchFunction::ReconcileIndexes => "ff_reconcile_indexes",
            BatchFunction::ReconcileFlowWork => "ff_flow_reconcile",
            BatchFunction::ReconcileDependencies => "ff_reconcile_dependencies",
            BatchFunction::ProjectFlows => "ff_project_flows",
            BatchFunction::ExpireSuspensions => "ff_expire_suspensions",
            BatchFunction::ExpireWaitpoints => "ff_expire_waitpoints",
        }
    }

    /// The index (a sorted set scored by due time) or set the function reads.
    pub fn index(self, keys: &PartitionKeys) -> String {
        match self {
            BatchFunction::PromoteDelayed => keys.delayed(),
            BatchFunction::ReclaimExpired => keys.lease_expiry(),
            BatchFunction::ExpireAttempts => keys.attempt_timeout(),
            BatchFunction::ExpireDeadlines => keys.deadline(),
            BatchFunction::PurgeRetained => keys.terminal(),
            BatchFunction::ReconcileIndexes => keys.all(),
            BatchFunction::ReconcileFlowWork => keys.flow_work(),
            BatchFunction::ReconcileDependencies => keys.waiting_children(),
            BatchFunction::ProjectFlows => keys.flows(),
            BatchFunction::ExpireSuspensions => keys.suspension_timeout(),
            BatchFunction::ExpireWaitpoints => keys.pending_waitpoints(),
        }
    }

    /// The index's short name, as in its key and in wake-up messages.
    pub fn index_name(self) -> &'static str {
        match self {
            BatchFunction::PromoteDelayed => "delayed",
            BatchFunction::ReclaimExpired => "lease_expiry",
            BatchFunction::ExpireAttempts => "attempt_timeout",
            BatchFunction::ExpireDeadlines => "deadline",
            BatchFunction::PurgeRetained => "terminal",
            BatchFunction::ReconcileIndexes => "all",
            BatchFunction::ReconcileFlowWork => "flow_work",
            BatchFunction::ReconcileDependencies => "waiting_children",
            BatchFunction::ProjectFlows => "flows",
            BatchFunction::ExpireSuspensions => "suspension_timeout",
            BatchFunction::ExpireWaitpoints => "pending_waitpoints",
        }
    }

    /// Due-time index (snapshot by score) or a set walked with a cursor.
    pub fn is_sweep(self) -> bool {
        self == BatchFunction::ReconcileIndexes
    }
}

/// One batch call of `f` on the given members of one partition's index.
///
/// Repeat: every member is re-checked against its record and index: those the
/// first send acted on are no longer due, so nothing acts twice; the second
/// answers smaller counts.
pub fn batch(
    f: BatchFunction,
    partition: Partition,
    filter: &ScannerFilter,
    ids: &[String],
) -> Call {
    let keys = PartitionKeys::new(partition);
    let (tag_name, tag_value) = match &filter.instance_tag {
        Some((n, v)) => (n.as_str(), v.as_str()),
        None => ("", ""),
    };
    let mut call = Call::new(f.function(), vec![f.index(&keys)])
        .arg(filter.namespace.as_ref().map_or("", |n| n.as_str()))
        .arg(tag_name)
        .arg(tag_value);
    for id in ids {
        call = call.arg(id);
    }
    call
}

/// What one batch call did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchOutcome {
    /// Members acted on (for the reconciler: checked and consistent).
    pub acted: u32,
    /// Index entries that disagreed with their record and were repaired.
    pub repaired: u32,
    /// The earliest score left in the index (server ms), if any.
    pub next_due_ms: Option<u64>,
    /// Members not acted on, with why.
    pub exceptions: Vec<(String, ItemResult)>,
    /// Of those, malformed entries found in Valkey (removed from the index).
    pub malformed: u32,
}

/// Decode a batch call's reply.
pub fn decode_batch(function: &'static str, reply: &Reply) -> Result<BatchOutcome, CallError> {
    let mut f = ok_fields(function, reply)?;
    let count = |f: &mut crate::reply::Fields<'_>, what: &str| -> Result<u32, CallError> {
        let v = f.int(what)?;
        Ok(u32::try_from(v).map_err(|_| f.error(format!("{what} out of range")))?)
    };
    let acted = count(&mut f, "acted")?;
    let repaired = count(&mut f, "repaired")?;
    let next = f.int("next due")?;
    let mut out = BatchOutcome {
        acted,
        repaired,
        next_due_ms: u64::try_from(next).ok(),
        ..Default::default()
    };
    while f.remaining() > 0 {
        let id = f.text("member")?;
        let code = f.text("code")?;
        let result = match code.as_str() {
            "filtered" => ItemResult::Filtered,
            "malformed" => {
                out.malformed += 1;
                ItemResult::Done
            }
            other => ItemResult::Failed(other.to_owned()),
        };
        out.exceptions.push((id, result));
    }
    Ok(out)
}

/// The indexes of a flow partition whose heads [`partition_heads`] reads:
/// every due-time index a scanner reads (the schedule scanner's too), and the blocked indexes the unblock
/// scanner re-checks (the Lua's whitelist, from [`crate::lua_facts`]).
pub const HEAD_INDEXES: [&str; 14] = [
    "delayed",
    "lease_expiry",
    "attempt_timeout",
    "deadline",
    "terminal",
    "flow_work",
    "waiting_children",
    "flows",
    "suspension_timeout",
    "pending_waitpoints",
    "schedules",
    "blocked_budget",
    "blocked_quota",
    "blocked_route",
];

/// The earliest score of each of [`HEAD_INDEXES`] in one partition, in one
/// read-only call (the engine's periodic rescan).
///
/// Repeat: read-only: the heads as they are now.
pub fn partition_heads(partition: Partition) -> Call {
    let keys = PartitionKeys::new(partition);
    HEAD_INDEXES
        .iter()
        .fold(Call::new("ff_partition_heads", vec![keys.all()]), |c, n| {
            c.arg(n)
        })
        .read_only()
}

/// Decode `ff_partition_heads`: per index of [`HEAD_INDEXES`], its earliest
/// score (server ms), `None` when empty.
pub fn decode_partition_heads(
    reply: &Reply,
) -> Result<Vec<(&'static str, Option<u64>)>, CallError> {
    let mut f = ok_fields("ff_partition_heads", reply)?;
    let mut out = Vec::with_capacity(HEAD_INDEXES.len());
    for name in HEAD_INDEXES {
        out.push((name, u64::try_from(f.int("head")?).ok()));
    }
    if f.remaining() > 0 {
        return Err(f.error("more heads than asked for").into());
    }
    Ok(out)
}
