//! Contracts of the flow functions (`lua/flows.lua`, `lua/flow_calls.lua`,
//! `lua/flow_scanners.lua`).

use super::execution::parse_state;
use super::{ok_fields, Call, CallError};
use crate::counts::{Counted, FLOW_LIVE_PREFIX};
use crate::flow::{FlowSummary, JoinPolicy};
use crate::id::{ExecutionId, FlowId};
use crate::keys::{FlowKeys, PartitionKeys};
use crate::name::{Kind, Lane, Namespace};
use crate::partition::Partition;
use crate::reply::{Fields, Reply};
use crate::state::PublicState;
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

/// `ff_add_execution_to_flow`'s arguments: an existing execution joins a
/// flow, waiting on the given parents (members of the flow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddToFlowArgs {
    /// The flow to join (the execution must be in its partition).
    pub flow: FlowId,
    /// The execution: in no flow, not ended; with parents, never claimed yet.
    pub execution: ExecutionId,
    /// When its parents release it.
    pub join: JoinPolicy,
    /// Once the join is decided, cancel the parents still unresolved.
    pub cancel_remaining: bool,
    /// Its parents, each with whether it passes its result (as
    /// [`EdgeArgs::pass_data`]).
    pub parents: Vec<(ExecutionId, bool)>,
}

impl AddToFlowArgs {
    /// `execution` joins `flow` with no parents, joining `AllOf`.
    pub fn new(flow: &FlowId, execution: &ExecutionId) -> Self {
        Self {
            flow: flow.clone(),
            execution: execution.clone(),
            join: JoinPolicy::AllOf,
            cancel_remaining: false,
            parents: Vec::new(),
        }
    }

    /// Its join policy.
    pub fn join(mut self, join: JoinPolicy) -> Self {
        self.join = join;
        self
    }

    /// Cancel the parents left unresolved once its join is decided.
    pub fn cancel_remaining_parents(mut self) -> Self {
        self.cancel_remaining = true;
        self
    }

    /// Wait on `parent` (a member of the flow), passing its result or not.
    pub fn parent(mut self, parent: &ExecutionId, pass_data: bool) -> Self {
        self.parents.push((parent.clone(), pass_data));
        self
    }
}

/// `ff_add_execution_to_flow`: make an existing execution of the flow's
/// partition a member, with edges from `parents` (at most
/// [`MAX_EDGES_PER_CHILD`](super::limits::MAX_EDGES_PER_CHILD), of which at
/// most [`MAX_DATA_PARENTS`](super::limits::MAX_DATA_PARENTS) pass data).
/// With unresolved parents it waits for them as a member created after its
/// edges does. Everything is checked before anything is written: refused
/// `flow_cancelled` on a cancelled flow, `flow_ended` on one whose members
/// all ended, `already_terminal` for an ended
/// execution, `invalid_state` for a member of another flow (or of this one
/// with another join or fewer edges) and, with parents, for one claimed
/// before, `not_found` for an unknown flow, execution or parent,
/// `invalid_argument` for an id of another partition, `too_large` past
/// [`MAX_FLOW_MEMBERS`](super::limits::MAX_FLOW_MEMBERS).
///
/// Repeat: answered `already` (false) with the member's state now, whatever
/// happened since (it ended, the flow was cancelled); nothing changes.
pub fn add_execution_to_flow(keys: &FlowKeys, a: &AddToFlowArgs) -> Call {
    let mut call = Call::new("ff_add_execution_to_flow", vec![keys.flow()])
        .arg(&a.flow)
        .arg(&a.execution)
        .arg(a.join.encode())
        .arg(u8::from(a.cancel_remaining));
    for (parent, data) in &a.parents {
        call = call.arg(parent).arg(u8::from(*data));
    }
    call
}

/// The answer to `ff_add_execution_to_flow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddedToFlow {
    /// False when it was a member with those edges already (a repeat).
    pub added: bool,
    /// Its state after the call (waiting on its parents, or released or
    /// skipped by parents that had ended).
    pub state: PublicState,
}

/// Decode `ff_add_execution_to_flow`'s reply.
pub fn decode_add_execution_to_flow(reply: &Reply) -> Result<AddedToFlow, CallError> {
    let mut f = ok_fields("ff_add_execution_to_flow", reply)?;
    let added = match f.text("outcome")?.as_str() {
        "added" => true,
        "already" => false,
        o => return Err(f.error(format!("unknown outcome {o:?}")).into()),
    };
    let state = parse_state(&mut f)?;
    let state = state
        .public_state()
        .ok_or_else(|| f.error(format!("contradictory state {state:?}")))?;
    Ok(AddedToFlow { added, state })
}

/// `ff_flow_members` (read-only): up to `limit` members of the flow (at
/// most [`MAX_FLOW_PAGE`](super::limits::MAX_FLOW_PAGE)) in id order from
/// `offset`, each with its incoming edges; fewer once the page's edges pass
/// [`MAX_FLOW_PAGE_EDGES`](super::limits::MAX_FLOW_PAGE_EDGES).
///
/// Repeat: read-only: the members as they are now.
pub fn flow_members(keys: &FlowKeys, flow: &FlowId, offset: u64, limit: u32) -> Call {
    Call::new("ff_flow_members", vec![keys.flow()])
        .arg(flow)
        .arg(offset)
        .arg(limit)
        .read_only()
}

/// Where an edge is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeState {
    /// The parent has not ended.
    Pending,
    /// The parent succeeded.
    Satisfied,
    /// The parent ended otherwise: it counts against the child's join.
    Impossible,
}

impl EdgeState {
    /// The spelling users see.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeState::Pending => "pending",
            EdgeState::Satisfied => "satisfied",
            EdgeState::Impossible => "impossible",
        }
    }
}

/// An incoming edge of a flow member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEdge {
    /// The parent it waits on.
    pub parent: ExecutionId,
    /// Pending or resolved, and how.
    pub state: EdgeState,
    /// The parent's result is passed to the child.
    pub pass_data: bool,
}

/// One member of a flow with its incoming edges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowMember {
    /// The member.
    pub execution: ExecutionId,
    /// Its public state.
    pub state: PublicState,
    /// Its lane.
    pub lane: Lane,
    /// Its kind.
    pub kind: Kind,
    /// When its parents release it.
    pub join: JoinPolicy,
    /// Its incoming edges (parent → this member), in parent id order.
    pub parents: Vec<MemberEdge>,
}

/// One page of a flow's members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembersPage {
    /// The members, in id order.
    pub members: Vec<FlowMember>,
    /// The flow's member count when read.
    pub total: u64,
    /// The offset of the next page; `None` after the last one.
    pub next: Option<u64>,
}

/// Decode `ff_flow_members`' reply.
pub fn decode_flow_members(reply: &Reply) -> Result<MembersPage, CallError> {
    let mut f = ok_fields("ff_flow_members", reply)?;
    let count = |f: &mut Fields, what: &str| -> Result<u64, CallError> {
        let n = f.int(what)?;
        u64::try_from(n).map_err(|_| f.error(format!("{what} is negative")).into())
    };
    let total = count(&mut f, "total")?;
    let next = count(&mut f, "next")?;
    let mut members = Vec::new();
    while f.remaining() > 0 {
        let id = f.text("member")?;
        let execution = ExecutionId::parse(&id).map_err(|e| f.error(e.to_string()))?;
        let state = parse_state(&mut f)?;
        let state = state
            .public_state()
            .ok_or_else(|| f.error(format!("contradictory state {state:?}")))?;
        let lane = Lane::new(f.text("lane")?).map_err(|e| f.error(e.to_string()))?;
        let kind = Kind::new(f.text("kind")?).map_err(|e| f.error(e.to_string()))?;
        let join = match f.text("join")?.as_str() {
            // (written by every path that makes a member; absent only if damaged)
            "" => JoinPolicy::AllOf,
            j => JoinPolicy::parse(j).map_err(|e| f.error(e.to_string()))?,
        };
        let n = count(&mut f, "edge count")?;
        if n > f.remaining() as u64 / 2 {
            return Err(f.error(format!("{n} edges announced, fewer sent")).into());
        }
        let mut parents = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let p = f.text("parent")?;
            let parent = ExecutionId::parse(&p).map_err(|e| f.error(e.to_string()))?;
            let (state, pass_data) = match f.text("edge state")?.as_str() {
                "p" => (EdgeState::Pending, false),
                "P" => (EdgeState::Pending, true),
                "s" => (EdgeState::Satisfied, false),
                "S" => (EdgeState::Satisfied, true),
                "i" => (EdgeState::Impossible, false),
                "I" => (EdgeState::Impossible, true),
                s => return Err(f.error(format!("unknown edge state {s:?}")).into()),
            };
            parents.push(MemberEdge {
                parent,
                state,
                pass_data,
            });
        }
        members.push(FlowMember {
            execution,
            state,
            lane,
            kind,
            join,
            parents,
        });
    }
    Ok(MembersPage {
        members,
        total,
        next: (next > 0).then_some(next),
    })
}
