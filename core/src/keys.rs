//! Key builders: the one place key names are spelled.
//!
//! Per execution there is exactly one key, its hash `ff:exec:{fp:N}:<hex>`
//! (state, payload, result, lease and current attempt live in its fields); the
//! partition's indexes are sorted sets `ff:idx:{fp:N}:<index>`. Waitpoints
//! (created only by executions that suspend) are one hash each, on their
//! execution's partition. Memory per
//! execution is a measured figure, so adding a key here needs a reason.

use crate::error::ParseError;
use crate::id::{ExecutionId, FlowId, WaitpointId};
use crate::name::{Lane, Namespace};
use crate::partition::{Partition, PartitionConfig, PartitionFamily};

/// The fixed part of an execution's hash: `ff:exec:<execution id>`.
pub const EXEC_PREFIX: &str = "ff:exec:";
/// The fixed part of a partition's indexes: `ff:idx:<tag>:<index>`.
pub const IDX_PREFIX: &str = "ff:idx:";
/// The fixed part of a flow's keys: `ff:flow:<tag>:<flow>`.
pub const FLOW_PREFIX: &str = "ff:flow:";
/// The fixed part of a flow member's incoming edges: `ff:deps:<execution id>`.
pub const DEPS_PREFIX: &str = "ff:deps:";
/// The fixed part of a flow member's children: `ff:out:<execution id>`.
pub const OUT_PREFIX: &str = "ff:out:";
/// The fixed part of the results passed to a flow member with several
/// data-passing parents: `ff:passed:<execution id>`.
pub const PASSED_PREFIX: &str = "ff:passed:";
/// The fixed part of a waitpoint's hash: `ff:wp:<tag>:<waitpoint id>`.
pub const WAITPOINT_PREFIX: &str = "ff:wp:";
/// The fixed part of a partition's keyring copy: `ff:secret:<tag>`.
pub const SECRET_PREFIX: &str = "ff:secret:";
/// The fixed part of an idempotency record: `ff:idem:<tag>:<namespace>:<key>`.
pub const IDEMPOTENCY_PREFIX: &str = "ff:idem:";
/// The fixed part of a budget's hash: `ff:budget:<tag>:<budget>`.
pub const BUDGET_PREFIX: &str = "ff:budget:";
/// The fixed part of a quota's hash: `ff:quota:<tag>:<quota>`.
pub const QUOTA_PREFIX: &str = "ff:quota:";
/// The fixed part of a partition's paused lanes: `ff:paused:<tag>` (a set;
/// claims of a lane in it hand out nothing).
pub const PAUSED_PREFIX: &str = "ff:paused:";

/// The hash holding one execution.
pub fn exec(eid: &ExecutionId) -> String {
    format!("{EXEC_PREFIX}{}", eid.as_str())
}

/// Deployment-wide settings (partition counts): `ff:config`.
pub const CONFIG: &str = "ff:config";
/// Registered lanes: `ff:lanes` (a set).
pub const LANES: &str = "ff:lanes";
/// Paused lanes, deployment-wide: `ff:lanes:paused` (a set; what operators
/// and workers read; each partition's [`PartitionKeys::paused`] enforces it).
pub const PAUSED_LANES: &str = "ff:lanes:paused";

/// The per-partition indexes of the flow/execution family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionKeys {
    tag: String,
}

impl PartitionKeys {
    /// The keys of a flow partition.
    pub fn new(partition: Partition) -> Self {
        debug_assert_eq!(partition.family, PartitionFamily::Flow);
        Self {
            tag: partition.hash_tag(),
        }
    }

    /// The keys of the partition `eid` lives in.
    pub fn of(eid: &ExecutionId) -> Self {
        Self::new(eid.partition())
    }

    /// The partition's hash tag, `{fp:N}`.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The partition's sorted-set index `name` (one of
    /// [`crate::invariant::SCORED_INDEXES`] or the other named indexes below).
    pub fn idx(&self, name: &str) -> String {
        format!("{IDX_PREFIX}{}:{name}", self.tag)
    }

    /// The partition's exact counters per (lane, state) (a hash;
    /// [`crate::counts`]).
    pub fn counts(&self) -> String {
        format!("{}{}", crate::counts::COUNTS_PREFIX, self.tag)
    }

    /// The partition's per-lane counts per minute of one hour (a hash that
    /// expires; [`crate::counts`]).
    pub fn series(&self, hour: u64) -> String {
        format!("{}{}:{hour}", crate::counts::SERIES_PREFIX, self.tag)
    }

    /// The lanes paused in this partition (a set; `ff_claim` reads it).
    pub fn paused(&self) -> String {
        format!("{PAUSED_PREFIX}{}", self.tag)
    }

    /// Every execution of the partition (a set; the index reconciler walks it).
    pub fn all(&self) -> String {
        self.idx("all")
    }
    /// Eligible executions of one lane, scored by priority then enqueue time.
    pub fn eligible(&self, lane: &Lane) -> String {
        format!("{IDX_PREFIX}{}:eligible:{lane}", self.tag)
    }
    /// Delayed executions of every lane, scored by due time (ms).
    pub fn delayed(&self) -> String {
        self.idx("delayed")
    }
    /// Flow members waiting on their parents, scored by when the dependency
    /// reconciler next re-checks them.
    pub fn waiting_children(&self) -> String {
        self.idx("waiting_children")
    }
    /// Queued flow work (`d:<eid>` resolve an ended member's outgoing edges,
    /// `x:<eid>` cancel a decided child's remaining parents, `f:<flow>` cancel
    /// a flow's members), scored by when the flow reconciler takes it over.
    pub fn flow_work(&self) -> String {
        self.idx("flow_work")
    }
    /// Flows whose members changed, scored by when the projector recounts them.
    pub fn flows(&self) -> String {
        self.idx("flows")
    }
    /// Executions whose budget is breached, scored by when they were blocked.
    pub fn blocked_budget(&self) -> String {
        self.idx("blocked_budget")
    }
    /// Executions a quota refused, scored by when they were blocked.
    pub fn blocked_quota(&self) -> String {
        self.idx("blocked_quota")
    }
    /// Executions needing capabilities no live worker has, scored by when they were blocked.
    pub fn blocked_route(&self) -> String {
        self.idx("blocked_route")
    }
    /// Active executions, scored by lease expiry (ms).
    pub fn lease_expiry(&self) -> String {
        self.idx("lease_expiry")
    }
    /// Active executions with an attempt timeout, scored by its due time.
    pub fn attempt_timeout(&self) -> String {
        self.idx("attempt_timeout")
    }
    /// Non-terminal executions with a deadline, scored by the deadline.
    pub fn deadline(&self) -> String {
        self.idx("deadline")
    }
    /// Terminal executions, scored by when retention may purge them.
    pub fn terminal(&self) -> String {
        self.idx("terminal")
    }
    /// Suspended executions with a timeout, scored by its due time.
    pub fn suspension_timeout(&self) -> String {
        self.idx("suspension_timeout")
    }
    /// Pending waitpoints (members: waitpoint ids), scored by their expiry.
    pub fn pending_waitpoints(&self) -> String {
        self.idx("pending_waitpoints")
    }
    /// A waitpoint and its signals (a hash on its execution's partition).
    pub fn waitpoint(&self, wp: &WaitpointId) -> String {
        format!("{WAITPOINT_PREFIX}{}:{}", self.tag, wp.as_str())
    }
    /// The partition's copy of the waitpoint-token keyring (a hash).
    pub fn secret(&self) -> String {
        format!("{SECRET_PREFIX}{}", self.tag)
    }
    /// An idempotency key's record (a string holding the execution id, with TTL).
    pub fn idempotency(&self, namespace: &Namespace, key: &IdempotencyKey) -> String {
        format!(
            "{IDEMPOTENCY_PREFIX}{}:{namespace}:{}",
            self.tag,
            key.as_str()
        )
    }
}

/// The keys of one flow. Its partition is CRC16 of the flow id, and its
/// members are created in that partition, so every key of a flow shares a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowKeys {
    tag: String,
    flow: String,
}

impl FlowKeys {
    /// The keys of `flow` under `config`'s partition counts.
    pub fn new(flow: &FlowId, config: &PartitionConfig) -> Self {
        Self {
            tag: flow_partition(flow, config).hash_tag(),
            flow: flow.as_str().to_owned(),
        }
    }
    /// The flow's hash: namespace, creation time, exact member counters.
    pub fn flow(&self) -> String {
        format!("{FLOW_PREFIX}{}:{}", self.tag, self.flow)
    }
    /// The flow's members (a sorted set, score 0).
    pub fn members(&self) -> String {
        format!("{FLOW_PREFIX}{}:{}:members", self.tag, self.flow)
    }
}

/// The partition of a flow, where its members are created.
pub fn flow_partition(flow: &FlowId, config: &PartitionConfig) -> Partition {
    config.partition_of(PartitionFamily::Flow, flow.as_str())
}

/// A flow member's incoming edges (a hash: parent → edge state).
pub fn deps(eid: &ExecutionId) -> String {
    format!("{DEPS_PREFIX}{}", eid.as_str())
}

/// A flow member's children (a sorted set, score 0).
pub fn out(eid: &ExecutionId) -> String {
    format!("{OUT_PREFIX}{}", eid.as_str())
}

/// The results a flow member's data-passing parents passed it, once it has
/// more than one (a hash: parent → result). A member with one keeps it as
/// its payload only.
pub fn passed(eid: &ExecutionId) -> String {
    format!("{PASSED_PREFIX}{}", eid.as_str())
}

/// A caller's idempotency key: printable ASCII without spaces, at most 200 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest key, in bytes.
    pub const MAX_LEN: usize = 200;

    /// Validate (1..=200 printable ASCII bytes) and wrap.
    pub fn new(s: impl Into<String>) -> Result<Self, ParseError> {
        let s = s.into();
        let kind = "idempotency key";
        if s.is_empty() {
            return Err(ParseError::Empty { kind });
        }
        if s.len() > Self::MAX_LEN {
            return Err(ParseError::TooLong {
                kind,
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        if let Some((at, ch)) = s.char_indices().find(|(_, c)| !c.is_ascii_graphic()) {
            return Err(ParseError::BadChar { kind, ch, at });
        }
        Ok(Self(s))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The partition an idempotent create goes to, so that the record and the
    /// execution share a slot and a retry of the create finds the record.
    pub fn partition(&self, namespace: &Namespace, config: &PartitionConfig) -> Partition {
        config.partition_of(PartitionFamily::Flow, &format!("{namespace}:{}", self.0))
    }
}
