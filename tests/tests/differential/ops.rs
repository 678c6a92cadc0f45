//! Operations: what a sequence is made of, and their strategies.

use super::*;

#[derive(Debug, Clone)]
pub(crate) struct CreateOp {
    pub(crate) exec: usize,
    pub(crate) ns: usize,
    pub(crate) lane: usize,
    pub(crate) priority: u32,
    pub(crate) payload: Vec<u8>,
    pub(crate) delay_ms: u64,
    pub(crate) attempt_timeout_ms: u64,
    pub(crate) deadline_ms: u64,
    /// (max retries, shape: fixed when even, jitter by shape / 2, delay, cap - delay)
    pub(crate) retry: (u32, u8, u64, u64),
    pub(crate) max_reclaims: u32,
    pub(crate) retention_ms: u64,
    pub(crate) idempotency: Option<(usize, u64)>,
    pub(crate) tag: Option<usize>,
    /// A flow member: (flow, join, cancel the remaining parents).
    pub(crate) flow: Option<(usize, usize, bool)>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Index {
    Delayed,
    LeaseExpiry,
    AttemptTimeout,
    Deadline,
    Terminal,
    SuspensionTimeout,
    Eligible(usize),
}

#[derive(Debug, Clone)]
pub(crate) enum Op {
    Create(CreateOp),
    Claim {
        partition: usize,
        lane: usize,
        n: usize,
        ttl_ms: u64,
    },
    Renew {
        lease: usize,
        ttl_ms: u64,
    },
    Complete {
        lease: usize,
        result: Vec<u8>,
    },
    /// Bulk submit: the batch goes to the first one's partition (others
    /// there make it refused whole).
    CreateMany(Vec<CreateOp>),
    /// Batched reports (lease, 0 complete | 1 retryable fail | 2 fatal fail),
    /// sent to the first lease's partition.
    EndMany(Vec<(usize, u8)>),
    Fail {
        lease: usize,
        retryable: bool,
    },
    Delay {
        lease: usize,
        delay_ms: u64,
    },
    Release {
        lease: usize,
    },
    Cancel {
        exec: usize,
    },
    Get {
        exec: usize,
    },
    /// What an execution's data-passing parents passed it.
    ParentResults {
        exec: usize,
    },
    Scan {
        function: usize,
        partition: usize,
        filter: usize,
        batch: usize,
    },
    ZAdd {
        exec: usize,
        index: Index,
        score: &'static str,
        foreign: bool,
    },
    ZRem {
        exec: usize,
        index: Index,
    },
    HSet {
        exec: usize,
        field: &'static str,
        value: &'static str,
    },
    SAdd {
        exec: usize,
        garbage: bool,
    },
    SRem {
        exec: usize,
    },
    Del {
        exec: usize,
    },
    Sleep {
        ms: u64,
    },
    /// A call of lua/admission.lua: `what` picks it, `target` an execution
    /// or lease, `n` its numbers.
    Admission {
        what: usize,
        target: usize,
        n: u64,
    },
    CreateFlow {
        flow: usize,
    },
    AddEdge {
        flow: usize,
        parent: usize,
        child: usize,
        data: bool,
    },
    CancelFlow {
        flow: usize,
    },
    /// An existing execution joins a flow with (parent, pass_data) edges;
    /// `join` picks all, any or q:2.
    AddToFlow {
        flow: usize,
        exec: usize,
        join: usize,
        parents: Vec<(usize, bool)>,
    },
    /// A page of a flow's members.
    FlowMembers {
        flow: usize,
        offset: u64,
        limit: u32,
    },
    Drain {
        partition: usize,
        budget: usize,
    },
    /// Partition ownership: a sync of one of three members (or a bad one).
    OwnSync {
        member: usize,
        ttl_ms: u64,
        claim: Vec<u16>,
        release: Vec<u16>,
    },
    OwnLeave {
        member: usize,
    },
    OwnView,
    Rotate {
        partition: usize,
        kid: usize,
        secret: u8,
        grace_ms: u64,
    },
    CreateWaitpoint {
        exec: usize,
        wp: usize,
        ttl_ms: u64,
    },
    Suspend {
        lease: usize,
        wps: Vec<usize>,
        condition: usize,
        timeout_ms: u64,
        behaviour: usize,
    },
    Signal {
        exec: usize,
        wp: usize,
        /// 0: the token the server handed out (if any), 1: it tampered, 2: another waitpoint's.
        token: usize,
        name: usize,
        idempotency: Option<usize>,
    },
    GetWaitpoint {
        exec: usize,
        wp: usize,
    },
    /// A create (refused if the id exists), a claim of one in its partition,
    /// then a suspend of what it got (three steps): reaches the suspended
    /// paths far more often than independent ops.
    ClaimSuspend {
        exec: usize,
        wps: Vec<usize>,
        condition: usize,
        timeout_ms: u64,
        behaviour: usize,
    },
}

pub(crate) fn suspension_op() -> impl Strategy<Value = Op> {
    let lease = 0..64usize;
    prop_oneof![
        1 => (0..2usize, 0..3usize, 1u8..3, prop_oneof![Just(0u64), 1u64..5, Just(60_000)])
            .prop_map(|(partition, kid, secret, grace_ms)| Op::Rotate { partition, kid, secret, grace_ms }),
        2 => (0..EXECS, 0..WAITPOINTS, prop_oneof![1u64..6, Just(60_000u64)])
            .prop_map(|(exec, wp, ttl_ms)| Op::CreateWaitpoint { exec, wp, ttl_ms }),
        1 => (lease, proptest::collection::vec(0..WAITPOINTS, 1..3), 0..5usize, prop_oneof![Just(0u64), 1u64..6, Just(60_000)], 0..4usize)
            .prop_map(|(lease, wps, condition, timeout_ms, behaviour)| Op::Suspend { lease, wps, condition, timeout_ms, behaviour }),
        4 => (0..EXECS, proptest::collection::vec(0..WAITPOINTS, 1..3), 0..5usize, prop_oneof![Just(0u64), 1u64..6, Just(60_000)], 0..4usize)
            .prop_map(|(exec, wps, condition, timeout_ms, behaviour)| Op::ClaimSuspend { exec, wps, condition, timeout_ms, behaviour }),
        4 => (0..EXECS, 0..WAITPOINTS, prop_oneof![6 => Just(0usize), 1 => 1..3usize], 0..3usize, proptest::option::weighted(0.4, 0..2usize))
            .prop_map(|(exec, wp, token, name, idempotency)| Op::Signal { exec, wp, token, name, idempotency }),
        1 => (0..EXECS, 0..WAITPOINTS).prop_map(|(exec, wp)| Op::GetWaitpoint { exec, wp }),
    ]
}

/// Member ids of the ownership ops; the last is refused (not a name).
pub(crate) const MEMBERS: [&str; 4] = ["e-a", "e-b", "e-c", "bad member"];
/// Partition count of the ownership ops (claims reach past it: refused).
pub(crate) const OWN_PARTITIONS: u16 = 4;

/// How many admission calls `Run::admission_call` knows.
pub(crate) const ADMISSION_CALLS: usize = 19;

pub(crate) fn small_ms() -> impl Strategy<Value = u64> {
    prop_oneof![3 => Just(0u64), 3 => 1u64..6, 1 => Just(60_000u64)]
}

/// Mostly the default lane, so that claims find work.
pub(crate) fn lane() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 1 => Just(1usize)]
}

pub(crate) fn create_op() -> impl Strategy<Value = Op> {
    create_spec().prop_map(Op::Create)
}

pub(crate) fn create_spec() -> impl Strategy<Value = CreateOp> {
    (
        (0..EXECS, 0..2usize, lane()),
        prop_oneof![3 => Just(0u32), 3 => Just(5), 2 => Just(1000), 1 => Just(1001)],
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..8),
            1 => proptest::collection::vec(any::<u8>(), 70..80),
        ],
        (
            small_ms(),
            small_ms(),
            prop_oneof![Just(0u64), 1u64..12, Just(60_000)],
        ),
        (0u32..3, 0u8..6, 0u64..4, 1u64..8),
        0u32..3,
        prop_oneof![Just(0u64), 1u64..6, Just(3_600_000)],
        proptest::option::weighted(0.3, (0..2usize, prop_oneof![1u64..15, Just(60_000u64)])),
        (
            proptest::option::of(0..2usize),
            proptest::option::weighted(0.6, (0..6usize, 0..4usize, proptest::bool::weighted(0.3))),
        ),
    )
        .prop_map(
            |(
                (exec, ns, lane),
                priority,
                payload,
                (delay_ms, attempt_timeout_ms, deadline_ms),
                retry,
                max_reclaims,
                retention_ms,
                idempotency,
                (tag, flow),
            )| {
                CreateOp {
                    exec,
                    ns,
                    lane,
                    priority,
                    payload,
                    delay_ms,
                    attempt_timeout_ms,
                    deadline_ms,
                    retry,
                    max_reclaims,
                    retention_ms,
                    idempotency,
                    tag,
                    flow,
                }
            },
        )
}

pub(crate) fn index() -> impl Strategy<Value = Index> {
    prop_oneof![
        Just(Index::Delayed),
        Just(Index::LeaseExpiry),
        Just(Index::AttemptTimeout),
        Just(Index::Deadline),
        Just(Index::Terminal),
        Just(Index::SuspensionTimeout),
        (0..2usize).prop_map(Index::Eligible),
    ]
}

pub(crate) const FIELDS: &[&str] = &[
    "phase",
    "elig",
    "lane",
    "lease_exp",
    "due",
    "att_due",
    "deadline",
    "ended",
    "retention",
    "epoch",
    "pri",
    "retry",
    "susp_due",
    "susp_tb",
];
pub(crate) const VALUES: &[&str] = &[
    "0",
    "1",
    "active",
    "runnable",
    "terminal",
    "delayed",
    "eligible",
    "",
    "garbage",
    "99999999999999",
    "default",
    "1:f:0",
    "suspended",
];

pub(crate) fn op() -> impl Strategy<Value = Op> {
    let lease = 0..64usize;
    prop_oneof![
        6 => create_op(),
        6 => (0..2usize, lane(), 1..4usize, prop_oneof![Just(100u64), Just(30_000)])
            .prop_map(|(partition, lane, n, ttl_ms)| Op::Claim { partition, lane, n, ttl_ms }),
        1 => (lease.clone(), prop_oneof![Just(100u64), Just(30_000)])
            .prop_map(|(lease, ttl_ms)| Op::Renew { lease, ttl_ms }),
        2 => (lease.clone(), proptest::collection::vec(any::<u8>(), 0..6))
            .prop_map(|(lease, result)| Op::Complete { lease, result }),
        2 => (lease.clone(), any::<bool>()).prop_map(|(lease, retryable)| Op::Fail { lease, retryable }),
        1 => proptest::collection::vec(create_spec(), 1..4).prop_map(Op::CreateMany),
        2 => proptest::collection::vec((lease.clone(), 0u8..3), 1..5).prop_map(Op::EndMany),
        1 => (lease.clone(), small_ms()).prop_map(|(lease, delay_ms)| Op::Delay { lease, delay_ms }),
        1 => lease.prop_map(|lease| Op::Release { lease }),
        1 => (0..EXECS).prop_map(|exec| Op::Cancel { exec }),
        2 => (0..EXECS).prop_map(|exec| Op::Get { exec }),
        1 => (0..EXECS).prop_map(|exec| Op::ParentResults { exec }),
        4 => suspension_op(),
        6 => (0..BatchFunction::ALL.len(), 0..2usize, prop_oneof![4 => Just(0usize), 1 => 1..3usize], prop_oneof![Just(1usize), Just(3), Just(100)])
            .prop_map(|(function, partition, filter, batch)| Op::Scan { function, partition, filter, batch }),
        1 => (0..EXECS, index(), proptest::sample::select(vec!["0", "1.5", "99999999999999"]), proptest::bool::weighted(0.2))
            .prop_map(|(exec, index, score, foreign)| Op::ZAdd { exec, index, score, foreign }),
        1 => (0..EXECS, index()).prop_map(|(exec, index)| Op::ZRem { exec, index }),
        1 => (0..EXECS, proptest::sample::select(FIELDS), proptest::sample::select(VALUES))
            .prop_map(|(exec, field, value)| Op::HSet { exec, field, value }),
        1 => prop_oneof![
            (0..EXECS, any::<bool>()).prop_map(|(exec, garbage)| Op::SAdd { exec, garbage }),
            (0..EXECS).prop_map(|exec| Op::SRem { exec }),
            (0..EXECS).prop_map(|exec| Op::Del { exec }),
        ],
        1 => (1u64..4).prop_map(|ms| Op::Sleep { ms }),
        3 => (0..ADMISSION_CALLS, 0..64usize, 0u64..8)
            .prop_map(|(what, target, n)| Op::Admission { what, target, n }),
        1 => (0..FLOWS).prop_map(|flow| Op::CreateFlow { flow }),
        // Mostly between members of the flow's partition (execution e is in
        // partition e % 2, flow f in partition f).
        4 => (0..FLOWS, 0..EXECS / 2, 0..EXECS / 2, proptest::bool::weighted(0.3), proptest::bool::weighted(0.9))
            .prop_map(|(flow, parent, child, data, local)| {
                let p = |e: usize| 2 * e + if local { flow } else { 1 - flow };
                Op::AddEdge { flow, parent: p(parent), child: p(child), data }
            }),
        // Mostly executions and parents of the flow's partition, as above.
        // (parents mostly other than the execution itself)
        2 => (0..FLOWS, 0..EXECS / 2, 0..3usize, proptest::collection::vec((0..EXECS / 2, proptest::bool::weighted(0.3)), 0..3), proptest::bool::weighted(0.9))
            .prop_map(|(flow, exec, join, parents, local)| {
                let p = |e: usize| 2 * e + if local { flow } else { 1 - flow };
                let parents = parents.into_iter().map(|(k, d)| (p((exec + 1 + k) % (EXECS / 2)), d)).collect();
                Op::AddToFlow { flow, exec: p(exec), join, parents }
            }),
        1 => (0..FLOWS, 0..4u64, 1..4u32)
            .prop_map(|(flow, offset, limit)| Op::FlowMembers { flow, offset, limit }),
        1 => prop_oneof![
            (0..FLOWS).prop_map(|flow| Op::CancelFlow { flow }),
            (0..2usize, prop_oneof![Just(1usize), Just(3), Just(100)])
                .prop_map(|(partition, budget)| Op::Drain { partition, budget }),
        ],
        2 => (
            prop_oneof![6 => 0..3usize, 1 => Just(3usize)],
            prop_oneof![3 => Just(30_000u64), 2 => Just(12), 1 => Just(5)],
            proptest::collection::vec(0u16..OWN_PARTITIONS + 1, 0..4),
            proptest::collection::vec(0u16..OWN_PARTITIONS, 0..3),
        )
            .prop_map(|(member, ttl_ms, claim, release)| Op::OwnSync { member, ttl_ms, claim, release }),
        1 => prop_oneof![
            (0..4usize).prop_map(|member| Op::OwnLeave { member }),
            Just(Op::OwnView),
        ],
    ]
}
