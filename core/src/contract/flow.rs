//! Contracts of the flow functions (`lua/flows.lua`, `lua/flow_calls.lua`,
//! `lua/flow_scanners.lua`).

use super::{ok_fields, Call, CallError};
use crate::counts::{Counted, FLOW_LIVE_PREFIX};
use crate::flow::{FlowSummary, JoinPolicy};
use crate::id::{ExecutionId, FlowId};
use crate::keys::{FlowKeys, PartitionKeys};
use crate::name::Namespace;
use crate::partition::Partition;
use crate::reply::{Fields, Reply};
use std::collections::BTreeMap;

/// How a new execution joins a flow (the `flow` part of `ff_create`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The flow (the member must be created in its partition).
    pub flow: FlowId,
    /// When its parents release it.
    pub join: JoinPolicy,
    /// Once the join is decided, cancel the parents still unresolved.
    pub cancel_remaining: bool,
}

/// `ff_create_flow`: a new, empty flow (idempotent for the same namespace).
///
/// Repeat: answered `exists` (false); nothing changes.
pub fn create_flow(keys: &FlowKeys, flow: &FlowId, namespace: &Namespace) -> Call {
    Call::new("ff_create_flow", vec![keys.flow()])
        .arg(flow)
        .arg(namespace)
}

/// True when the flow was created, false when it existed (same namespace).
pub fn decode_create_flow(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_create_flow", reply)?;
    match f.text("outcome")?.as_str() {
        "created" => Ok(true),
        "exists" => Ok(false),
        o => Err(f.error(format!("unknown outcome {o:?}")).into()),
    }
}

/// A dependency edge parent → child of one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeArgs {
    /// The flow both ends belong to.
    pub flow: FlowId,
    /// The execution the child waits on (an existing member).
    pub parent: ExecutionId,
    /// The waiting execution (a member not started yet, or not created yet).
    pub child: ExecutionId,
    /// The parent's result is passed to the child when the edge is satisfied
    /// while the child waits (or is not created yet): it becomes the child's
    /// payload, and a child with several such parents (at most
    /// [`MAX_DATA_PARENTS`](super::limits::MAX_DATA_PARENTS)) reads each by
    /// parent with [`parent_results`].
    pub pass_data: bool,
}

/// `ff_add_edge`: make `child` wait on `parent`. Refused `too_large` past
/// [`MAX_EDGES_PER_CHILD`](super::limits::MAX_EDGES_PER_CHILD) parents, or
/// with `pass_data` past
/// [`MAX_DATA_PARENTS`](super::limits::MAX_DATA_PARENTS) data-passing ones.
///
/// Repeat: answered `duplicate` / [`EdgeDecision::Unchanged`] whatever happened
/// since (the child started, the flow was cancelled); nothing changes.
pub fn add_edge(keys: &FlowKeys, a: &EdgeArgs) -> Call {
    Call::new("ff_add_edge", vec![keys.flow()])
        .arg(&a.flow)
        .arg(&a.parent)
        .arg(&a.child)
        .arg(u8::from(a.pass_data))
}

/// What adding an edge did to its child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeDecision {
    /// The child waits on its parents.
    Waiting,
    /// The join was decided: the child may run (the parent had already succeeded).
    Ready,
    /// The join can no longer be met: the child was skipped.
    Impossible,
    /// The child does not exist yet; it starts waiting when created.
    Recorded,
    /// The edge existed: nothing changed.
    Unchanged,
}

/// The answer to `ff_add_edge`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeAdded {
    /// False for a repeat of an existing edge.
    pub added: bool,
    /// What it did to the child.
    pub decision: EdgeDecision,
}

/// Decode `ff_add_edge`'s reply.
pub fn decode_add_edge(reply: &Reply) -> Result<EdgeAdded, CallError> {
    let mut f = ok_fields("ff_add_edge", reply)?;
    let added = match f.text("outcome")?.as_str() {
        "added" => true,
        "duplicate" => false,
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    };
    let decision = match f.text("decision")?.as_str() {
        "waiting" => EdgeDecision::Waiting,
        "ready" => EdgeDecision::Ready,
        "impossible" => EdgeDecision::Impossible,
        "recorded" => EdgeDecision::Recorded,
        "unchanged" => EdgeDecision::Unchanged,
        d => return Err(f.error(format!("unknown decision {d:?}")).into()),
    };
    Ok(EdgeAdded { added, decision })
}

/// `ff_cancel_flow`: cancel every live member, durably and in bounded steps.
///
/// Repeat: answered `already` (false); the members are cancelled once.
pub fn cancel_flow(keys: &FlowKeys, flow: &FlowId, reason: &str) -> Call {
    Call::new("ff_cancel_flow", vec![keys.flow()])
        .arg(flow)
        .arg(reason)
}

/// True when this call started the cancel, false when it was already asked.
pub fn decode_cancel_flow(reply: &Reply) -> Result<bool, CallError> {
    let mut f = ok_fields("ff_cancel_flow", reply)?;
    match f.text("outcome")?.as_str() {
        "cancelling" => Ok(true),
        "already" => Ok(false),
        o => Err(f.error(format!("unknown outcome {o:?}")).into()),
    }
}

/// `ff_flow_get` (read-only): the flow's hash.
///
/// Repeat: read-only: the flow as it is now.
pub fn get_flow(keys: &FlowKeys, flow: &FlowId) -> Call {
    Call::new("ff_flow_get", vec![keys.flow()])
        .arg(flow)
        .read_only()
}

/// A flow as stored: its namespace, creation time and exact member counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    /// The flow read.
    pub flow: FlowId,
    /// Its namespace.
    pub namespace: Namespace,
    /// When it was created (server ms).
    pub created_at_ms: u64,
    /// Exact member counts per outcome.
    pub summary: FlowSummary,
    /// Exact counts of the members not ended, per state (absent: none).
    pub live: BTreeMap<Counted, u64>,
    /// When a member last changed state (server ms), once one has.
    pub changed_at_ms: Option<u64>,
    /// The reason given when the flow was cancelled.
    pub cancel_reason: Option<String>,
}

/// Decode `ff_flow_get`'s reply for `flow`.
pub fn decode_get_flow(flow: &FlowId, reply: &Reply) -> Result<FlowRecord, CallError> {
    let mut f = ok_fields("ff_flow_get", reply)?;
    let mut map = BTreeMap::new();
    while f.remaining() > 0 {
        let k = f.text("field")?;
        let v = f.lossy_text("value")?;
        map.insert(k, v);
    }
    let count = |f: &Fields, k: &str| -> Result<u64, CallError> {
        match map.get(k) {
            None => Ok(0),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| f.error(format!("field {k} = {v:?} is not a count")).into()),
        }
    };
    let namespace = map
        .get("ns")
        .ok_or_else(|| f.error("field ns missing"))
        .and_then(|s| Namespace::new(s.clone()).map_err(|e| f.error(e.to_string())))?;
    let cancel_reason = map.get("cancel").cloned();
    let summary = FlowSummary {
        members: count(&f, "n")?,
        done: count(&f, "done")?,
        success: count(&f, "success")?,
        failed: count(&f, "failed")?,
        cancelled: count(&f, "cancelled")?,
        expired: count(&f, "expired")?,
        skipped: count(&f, "skipped")?,
        cancel_requested: cancel_reason.is_some(),
    };
    let mut live = BTreeMap::new();
    for (k, _) in map.range(FLOW_LIVE_PREFIX.to_owned()..) {
        let Some(word) = k.strip_prefix(FLOW_LIVE_PREFIX) else {
            break;
        };
        let c = Counted::parse(word).ok_or_else(|| f.error(format!("field {k} is not a state")))?;
        let n = count(&f, k)?;
        if n > 0 {
            live.insert(c, n);
        }
    }
    Ok(FlowRecord {
        flow: flow.clone(),
        namespace,
        created_at_ms: count(&f, "created")?,
        summary,
        live,
        changed_at_ms: map
            .contains_key("changed")
            .then(|| count(&f, "changed"))
            .transpose()?,
        cancel_reason,
    })
}

/// `ff_parent_results` (read-only): the results `child`'s data-passing
/// parents passed it, by parent: those that succeeded while it waited for its
/// join (a parent that succeeded after the join released it passes nothing).
/// One such parent's result is the child's payload; with several, the payload
/// is the last one passed and each is kept by parent until the child is
/// purged. Empty for an execution without data-passing parents.
///
/// Repeat: read-only: the results as they are now (more may come while the
/// child waits; a parent's entry, once there, never changes).
pub fn parent_results(child: &ExecutionId) -> Call {
    Call::new("ff_parent_results", vec![crate::keys::exec(child)])
        .arg(child)
        .read_only()
}

/// Decode `ff_parent_results`'s reply: parent → its result.
pub fn decode_parent_results(reply: &Reply) -> Result<BTreeMap<ExecutionId, Vec<u8>>, CallError> {
    let mut f = ok_fields("ff_parent_results", reply)?;
    let mut out = BTreeMap::new();
    while f.remaining() > 0 {
        let parent = f.text("parent")?;
        let parent = ExecutionId::parse(&parent).map_err(|e| f.error(e.to_string()))?;
        out.insert(parent, f.bytes("result")?);
    }
    Ok(out)
}

/// The completion listener's call: work one partition's queued flow work.
///
/// Repeat: works what is still queued; the first send's work is not redone (a
/// resolved edge stays resolved, a cancelled member cancelled); the counts are
/// the second send's.
pub fn drain(partition: Partition, budget: usize) -> Call {
    Call::new(
        "ff_flow_drain",
        vec![PartitionKeys::new(partition).flow_work()],
    )
    .arg(budget)
}

/// What one drain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Units of work done (edges resolved, members cancelled).
    pub worked: u64,
    /// Work items still queued in the partition.
    pub remaining: u64,
}

/// Decode `ff_flow_drain`'s reply.
pub fn decode_drain(reply: &Reply) -> Result<Drained, CallError> {
    let mut f = ok_fields("ff_flow_drain", reply)?;
    let worked = f.int("worked")?;
    let remaining = f.int("remaining")?;
    if worked < 0 || remaining < 0 {
        return Err(f.error("negative count").into());
    }
    Ok(Drained {
        worked: worked as u64,
        remaining: remaining as u64,
    })
}
