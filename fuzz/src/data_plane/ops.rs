//! The operations: every [`Op`] a run can take, `ff_create`'s call, and how
//! an input is read as operations.

use super::*;

/// Every function of the library.
pub const FUNCTIONS: &[&str] = &[
    "ff_create",
    "ff_claim",
    "ff_renew",
    "ff_complete",
    "ff_fail",
    "ff_delay",
    "ff_release",
    "ff_cancel",
    "ff_get",
    "ff_promote_delayed",
    "ff_reclaim_expired",
    "ff_expire_attempts",
    "ff_expire_deadlines",
    "ff_purge_retained",
    "ff_reconcile_indexes",
    "ff_version",
    "ff_create_flow",
    "ff_add_edge",
    "ff_cancel_flow",
    "ff_flow_get",
    "ff_flow_drain",
    "ff_flow_reconcile",
    "ff_reconcile_dependencies",
    "ff_project_flows",
    "ff_block_route",
    "ff_worker_register",
    "ff_workers_live",
    "ff_budget_define",
    "ff_report_usage",
    "ff_budget_reset",
    "ff_budget_get",
    "ff_budget_resets",
    "ff_budget_reconcile",
    "ff_quota_define",
    "ff_admit",
    "ff_quota_release",
    "ff_quota_get",
    "ff_quota_reconcile",
    "ff_block",
    "ff_unblock",
    "ff_breach_cancel",
    "ff_partition_heads",
    "ff_quota_watch",
    "ff_create_many",
    "ff_end_many",
];

/// One report of a batch: the lease, an operation (`how % 4`: complete,
/// retryable fail, fatal fail, an unknown operation) and its text.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct ReportOp {
    pub lease: LeaseSel,
    pub how: u8,
    pub text: Text,
}

/// One step of a run. Append new variants at the end (seeds name variants by
/// index).
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Op {
    Create(Box<CreateOp>),
    Claim {
        partition: u8,
        lane: Name,
        worker: Name,
        instance: Name,
        ttl_ms: Num,
        /// The count sent: `count % 6` (0 is refused).
        count: u8,
    },
    Renew {
        lease: LeaseSel,
        ttl_ms: Num,
    },
    Complete {
        lease: LeaseSel,
        result: Blob,
    },
    Fail {
        lease: LeaseSel,
        error: Text,
        retryable: Num,
    },
    Delay {
        lease: LeaseSel,
        delay_ms: Num,
    },
    Release {
        lease: LeaseSel,
    },
    Cancel {
        exec: u8,
        reason: Text,
    },
    Get {
        exec: u8,
    },
    /// A batch function on the given ids.
    Scan {
        function: u8,
        partition: u8,
        filter: Filter,
        ids: List<Member>,
    },
    /// A batch function on what is due, as the engine's scanner does: the
    /// first `batch % 8 + 1` members due (for the reconciler: of `all`).
    ScanDue {
        function: u8,
        partition: u8,
        filter: Filter,
        batch: u8,
    },
    HSet {
        exec: u8,
        field: Field,
        value: Value,
    },
    HDel {
        exec: u8,
        field: Field,
    },
    Del {
        exec: u8,
    },
    ZAdd {
        partition: u8,
        index: IndexSel,
        member: Member,
        score: Num,
    },
    ZRem {
        partition: u8,
        index: IndexSel,
        member: Member,
    },
    SAdd {
        partition: u8,
        member: Member,
    },
    SRem {
        partition: u8,
        member: Member,
    },
    /// Move the store's clock forward.
    Advance {
        ms: Num,
    },
    /// Any function with any keys and arguments.
    Raw {
        function: u8,
        keys: List<Key>,
        args: List<Arg>,
    },
    CreateFlow {
        flow: u8,
        namespace: Name,
    },
    /// An edge between executions of the flow's partition, except as `twist
    /// % 8` says: 0 the parent and 1 the child as named (maybe elsewhere), 2
    /// a self-edge, 3 pass_data `2`, 4 another flow's key.
    AddEdge {
        flow: u8,
        parent: u8,
        child: u8,
        pass_data: bool,
        twist: u8,
    },
    CancelFlow {
        flow: u8,
        reason: Text,
    },
    /// The completion listener's drain of a partition's flow work.
    Drain {
        partition: u8,
        budget: Num,
    },
    GetFlow {
        flow: u8,
    },
    /// Bulk submit (`ff_create_many`) on the first creation's partition.
    CreateMany(List<CreateOp>),
    /// Batched reports (`ff_end_many`) on the first lease's partition: per
    /// report a lease, an operation selector and the result or error text.
    EndMany(List<ReportOp>),
}

/// `ff_create` with the op's (possibly malformed) arguments.
pub(crate) fn create_call(c: &CreateOp) -> Call {
    let eid = match &c.membership {
        Some(MembershipOp {
            flow: FlowSel::Known(f),
            place,
            ..
        }) if place % 4 != 0 => local_exec(c.exec, flow_partition(&flow_id(*f), &config()).index),
        _ => exec_id(c.exec),
    };
    let pk = PartitionKeys::of(&eid);
    let ns = c.namespace.render();
    let mut keys = vec![keys::exec(&eid)];
    let (ttl, idem) = match &c.idempotency {
        Some((k, ttl)) => (
            ttl.render(),
            Some(format!(
                "ff:idem:{}:{}:{}",
                pk.tag(),
                String::from_utf8_lossy(&ns),
                k.lossy()
            )),
        ),
        None => (b"0".to_vec(), None),
    };
    keys.extend(idem);
    let call = Call::new("ff_create", keys)
        .arg(&eid)
        .arg_bytes(&ns)
        .arg_bytes(&c.lane.render())
        .arg_bytes(&c.kind.render())
        .arg_bytes(&c.priority.render())
        .arg_bytes(&c.payload.bytes())
        .arg_bytes(&c.delay_ms.render())
        .arg_bytes(&c.attempt_timeout_ms.render())
        .arg_bytes(&c.deadline_ms.render())
        .arg_bytes(&c.retry.render())
        .arg_bytes(&c.max_reclaims.render())
        .arg_bytes(&c.retention_ms.render())
        .arg_bytes(&ttl);
    // The flow membership: flow id, join and cancel-remaining (all
    // empty: not a member).
    let mut call = match &c.membership {
        None => call.arg("").arg("").arg(""),
        Some(m) => call
            .arg_bytes(&match &m.flow {
                FlowSel::Known(f) => flow_id(*f).to_string().into_bytes(),
                FlowSel::Raw(t) => t.0.clone(),
            })
            .arg_bytes(&m.join.render())
            .arg_bytes(&m.cancel_remaining.render()),
    };
    call = call.arg(c.tags.0.len());
    for (n, v) in &c.tags.0 {
        call = call.arg_bytes(&n.render()).arg_bytes(&v.0);
    }
    call
}

/// The operations an input stands for: [`Op`]s read one after another until
/// the input or [`MAX_OPS`] runs out.
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    let mut u = Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < MAX_OPS {
        match Op::arbitrary(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}
