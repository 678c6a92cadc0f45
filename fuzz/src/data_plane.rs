//! The `data_plane` target: arbitrary sequences of client calls, scanner
//! batches and raw writes, with arbitrary arguments, run against the `lua/`
//! library on a fresh in-process [`MemoryStore`] per input.
//!
//! The input is read with `arbitrary` as up to [`MAX_OPS`] [`Op`]s (see
//! [`ops_from_bytes`]). Eight executions ([`exec_id`]) in two partitions are
//! the ones the operations name, and four flows ([`flow_id`]), two in each
//! partition; leases are those earlier claims handed out
//! (lease ids from a counter), so every run is deterministic. The store's
//! clock stands still at [`START_MS`] unless an [`Op::Advance`] moves it.
//!
//! # What is checked
//!
//! Nothing may panic. Then, after every call and step:
//!
//! 1. **Replies.** Every FCALL answers either a success that its contract
//!    decodes (`decode_create`, `decode_claim`, `decode_batch`, …) or a typed
//!    refusal `{0, code, detail}` with a code [`FfError::from_code`] knows.
//!    A Lua runtime error (the store's `StoreError::Server`, "… script:
//!    ff_x, on @user_function:N") or a success reply that does not decode is a
//!    finding, with one exception: a per-execution call (create, renew,
//!    complete, fail, delay, release, cancel, get) whose execution record the
//!    input *corrupted* (an [`Op::HSet`], [`Op::HDel`] or [`Op::Del`] on it
//!    earlier; for create, also the record its idempotency key names) may
//!    raise or answer something its contract refuses — those functions trust
//!    the record they were given. `ff_claim` and the six scanner batch
//!    functions get no exception: they are documented to count malformed
//!    records and skip them, so they must never raise, whatever the data.
//! 2. **Messages.** Every `ff:wake` and `ff:ready` message parses
//!    ([`WakeMessage::parse`], [`ReadyMessage::parse`]) — until the input has
//!    corrupted anything (a corrupted due time may make an unparsable
//!    wake-up; the engine drops it and looks at its next interval anyway).
//! 3. **Index invariant.** Every record decodes and every execution is in
//!    exactly the index sets its state says, with the right scores, and no
//!    index holds a member without a record
//!    ([`ff_core::invariant::index_violations`], as the simulator checks) —
//!    except for *tainted* members: those whose record the input corrupted
//!    or whose index entries it wrote directly (ZADD/ZREM/SADD/SREM).
//!    Raw writes keep each key's type (on `all`, ZADD and ZREM act as SADD
//!    and SREM): a wrongly typed index key is not data the Lua guards against.
//! 4. **Nothing lost, outcomes final.** An untainted execution disappears only
//!    when it was terminal and past its retention (purged), and its terminal
//!    state never changes while it exists.
//! 5. **Flows.** Every flow hash has `done <= n` and its per-outcome counts
//!    sum to `done` (unless an execution of its partition is tainted); every
//!    `ff:deps:<eid>` hash has `#s + #i <= #n`; every `flow_work` member is
//!    `d:<eid>` or `x:<eid>` (an execution id of that partition) or
//!    `f:<flow id>`. Indexes that do not hold executions (`flow_work`,
//!    `flows`: [`holds_executions`]) stay out of the index invariant.
//!
//! Flow calls cascade: ending a member resolves its edges and decides its
//! children, cancelling a flow ends its members. So the exception of rule 1
//! widens there: while a corrupted execution of a call's partition is tied to
//! a flow (a member, or has edges), any call on that partition may raise or
//! answer what its contract refuses — and when one does, its partition's
//! executions count as tainted from then on (a raise leaves the writes made
//! before it).

use arbitrary::{Arbitrary, Unstructured};
use ff_core::admission::{budget_key, quota_key};
use ff_core::contract::admission as ad;
use ff_core::contract::execution::ExecutionRecord;
use ff_core::contract::execution::{self as ex, Lease};
use ff_core::contract::flow as fl;
use ff_core::contract::limits::MAX_PAYLOAD_BYTES;
use ff_core::contract::scan::{decode_batch, BatchFunction};
use ff_core::contract::{Call, CallError};
use ff_core::invariant::{holds_executions, index_violations};
use ff_core::keys::{self, flow_partition, FlowKeys, PartitionKeys};
use ff_core::partition::PartitionConfig;
use ff_core::reply::Reply;
use ff_core::scan::{ReadyMessage, WakeMessage};
use ff_core::state::PublicState;
use ff_core::{
    BudgetId, ExecutionId, FfError, FlowId, LeaseId, Partition, PartitionFamily, QuotaId,
};
use ff_engine::error::StoreError;
use ff_engine::store::{cmd, MemoryStore, Store, SubEvent};
use futures::executor::block_on;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Executions the operations name (ids in [`PARTITIONS`] partitions).
pub const EXECS: usize = 8;
/// Flows the operations name (half in each partition).
pub const FLOWS: usize = 4;
pub const PARTITIONS: u16 = 2;
/// Most operations read from one input.
pub const MAX_OPS: usize = 48;
/// The store's clock before any [`Op::Advance`] (server ms).
pub const START_MS: u64 = 1_700_000_000_000;

pub fn exec_id(i: u8) -> ExecutionId {
    let i = usize::from(i) % EXECS;
    ExecutionId::new((i % PARTITIONS as usize) as u16, 0xf022_0000 + i as u128)
}

fn partition(p: u8) -> Partition {
    Partition::new(PartitionFamily::Flow, u16::from(p) % PARTITIONS)
}

/// The target's partition layout: flows spread over [`PARTITIONS`].
fn config() -> PartitionConfig {
    PartitionConfig {
        flow_partitions: PARTITIONS,
        ..PartitionConfig::default()
    }
}

/// Flow `i % FLOWS`: the first ids from `f1000…` on, taken so that flow `i`
/// lands in partition `i % PARTITIONS` (see [`flow_partition`]).
pub fn flow_id(i: u8) -> FlowId {
    let i = usize::from(i) % FLOWS;
    let want = (i % PARTITIONS as usize) as u16;
    let config = config();
    (0u128..)
        .map(|k| FlowId::from_u128(0xf100_0000_0000_0000_0000_0000_0000_0000 + k))
        .filter(|f| flow_partition(f, &config).index == want)
        .nth(i / PARTITIONS as usize)
        .expect("an id in every partition")
}

fn flow_keys(flow: &FlowId) -> FlowKeys {
    FlowKeys::new(flow, &config())
}

/// Execution `i` of partition `p` (so a member of that partition's flows).
pub fn local_exec(i: u8, p: u16) -> ExecutionId {
    let per = (EXECS / PARTITIONS as usize) as u8;
    exec_id((i % per) * PARTITIONS as u8 + p as u8)
}

// ---------------------------------------------------------------------------
// Argument types

/// Arbitrary bytes: a length byte, then that many bytes (fewer at the end of
/// the input).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = usize::from(u8::arbitrary(u)?).min(u.len());
        Ok(Text(u.bytes(n)?.to_vec()))
    }
}

impl Text {
    pub fn of(s: &str) -> Self {
        Text(s.as_bytes().to_vec())
    }

    fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// A payload or result: as [`Text`], except that a length byte of 255 followed
/// by 0 or 1 stands for the largest accepted size or one byte more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blob {
    Bytes(Vec<u8>),
    Max,
    TooLarge,
}

impl<'a> Arbitrary<'a> for Blob {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u8::arbitrary(u)?;
        if n == 255 {
            match u.peek_bytes(1) {
                Some([0]) => {
                    u.bytes(1)?;
                    return Ok(Blob::Max);
                }
                Some([1]) => {
                    u.bytes(1)?;
                    return Ok(Blob::TooLarge);
                }
                _ => {}
            }
        }
        let n = usize::from(n).min(u.len());
        Ok(Blob::Bytes(u.bytes(n)?.to_vec()))
    }
}

impl Blob {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Blob::Bytes(b) => b.clone(),
            Blob::Max => vec![b'x'; MAX_PAYLOAD_BYTES],
            Blob::TooLarge => vec![b'x'; MAX_PAYLOAD_BYTES + 1],
        }
    }
}

/// Up to 8 elements: a count byte (mod 9), then the elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<'a, T: Arbitrary<'a>> Arbitrary<'a> for List<T> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u8::arbitrary(u)? % 9;
        let mut v = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            if u.is_empty() {
                break;
            }
            v.push(T::arbitrary(u)?);
        }
        Ok(List(v))
    }
}

/// Numbers as they may reach an FCALL argument: mostly small, sometimes at a
/// bound or in an odd spelling, sometimes anything.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Num {
    Zero,
    Small(u8),
    Thousands(u8),
    Edge(u8),
    Any(u64),
    Text(Text),
}

/// Boundary values and odd spellings Lua's `tonumber` accepts or refuses.
pub const EDGES: &[&str] = &[
    "0",
    "1",
    "-1",
    "-0",
    "99",
    "100",
    "1000",
    "1001",
    "10000",
    "10001",
    "86400000",
    "86400001",
    "2592000000",
    "2592000001",
    "31536000000",
    "31536000001",
    "9007199254740991",
    "9007199254740993",
    "18446744073709551616",
    "1.5",
    "1e3",
    "0x10",
    " 7",
    "7 ",
    "",
    "inf",
    "nan",
    "-inf",
    "1e400",
];

impl Num {
    pub fn render(&self) -> Vec<u8> {
        match self {
            Num::Zero => b"0".to_vec(),
            Num::Small(n) => n.to_string().into_bytes(),
            Num::Thousands(n) => (u64::from(*n) * 1000).to_string().into_bytes(),
            Num::Edge(i) => EDGES[usize::from(*i) % EDGES.len()].as_bytes().to_vec(),
            Num::Any(n) => n.to_string().into_bytes(),
            Num::Text(t) => t.0.clone(),
        }
    }

    /// The value as a plain decimal u64, if it is one.
    fn as_u64(&self) -> Option<u64> {
        std::str::from_utf8(&self.render()).ok()?.parse().ok()
    }
}

/// A name argument (lane, namespace, kind, worker, tag name): mostly valid.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Name {
    Known(u8),
    Raw(Text),
}

pub const NAMES: &[&str] = &[
    "default",
    "default",
    "l2",
    "ns1",
    "email.send",
    "w-1_x",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "",
    "bad name",
    "caf\u{e9}",
    "{fp:1}",
];

impl Name {
    pub fn render(&self) -> Vec<u8> {
        match self {
            Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()].as_bytes().to_vec(),
            Name::Raw(t) => t.0.clone(),
        }
    }

    fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.render()).into_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Retry {
    Fixed(u8, Num),
    Exponential(u8, Num, Num),
    Raw(Text),
}

impl Retry {
    fn render(&self) -> Vec<u8> {
        let s = |n: &Num| String::from_utf8_lossy(&n.render()).into_owned();
        match self {
            Retry::Fixed(m, d) => format!("{m}:f:{}", s(d)).into_bytes(),
            Retry::Exponential(m, i, x) => format!("{m}:e:{}:{}", s(i), s(x)).into_bytes(),
            Retry::Raw(t) => t.0.clone(),
        }
    }
}

/// An index member: one of the executions, or anything.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Member {
    Exec(u8),
    Raw(Text),
}

impl Member {
    fn render(&self) -> String {
        match self {
            Member::Exec(i) => exec_id(*i).to_string(),
            Member::Raw(t) => t.lossy(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum IndexSel {
    Eligible(Name),
    Delayed,
    LeaseExpiry,
    AttemptTimeout,
    Deadline,
    Terminal,
    All,
}

impl IndexSel {
    fn key(&self, p: u8) -> String {
        let pk = PartitionKeys::new(partition(p));
        match self {
            IndexSel::Eligible(lane) => format!("ff:idx:{}:eligible:{}", pk.tag(), lane.lossy()),
            IndexSel::Delayed => pk.delayed(),
            IndexSel::LeaseExpiry => pk.lease_expiry(),
            IndexSel::AttemptTimeout => pk.attempt_timeout(),
            IndexSel::Deadline => pk.deadline(),
            IndexSel::Terminal => pk.terminal(),
            IndexSel::All => pk.all(),
        }
    }
}

/// A field of an execution hash: one the Lua uses, or anything.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Field {
    Known(u8),
    Raw(Text),
}

pub const FIELDS: &[&str] = &[
    "id",
    "phase",
    "elig",
    "outcome",
    "ns",
    "lane",
    "kind",
    "pri",
    "payload",
    "created",
    "att",
    "retries",
    "reclaims",
    "epoch",
    "att_timeout",
    "retry",
    "max_reclaims",
    "retention",
    "idem",
    "deadline",
    "due",
    "lease_id",
    "lease_exp",
    "by",
    "att_state",
    "att_due",
    "fence",
    "result",
    "error",
    "ended",
    "tag.team",
    "flow",
    "join",
    "jc",
    "ready_at",
    "dcur",
];

impl Field {
    fn render(&self) -> Vec<u8> {
        match self {
            Field::Known(i) => FIELDS[usize::from(*i) % FIELDS.len()].as_bytes().to_vec(),
            Field::Raw(t) => t.0.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Value {
    Known(u8),
    Num(Num),
    Raw(Text),
}

pub const VALUES: &[&str] = &[
    "",
    "garbage",
    "runnable",
    "active",
    "suspended",
    "terminal",
    "eligible",
    "delayed",
    "success",
    "failed",
    "cancelled",
    "expired",
    "default",
    "l2",
    "1:f:0",
    "3:e:10:1000",
    "00000000000000000000000000000001",
    "00000000000000000000000000000001:1|complete|completed:0",
    "00000000000000000000000000000001:1|fail|bogus:5",
    "{fp:0}:000000000000000000000000f0220000",
];

impl Value {
    fn render(&self) -> Vec<u8> {
        match self {
            Value::Known(i) => VALUES[usize::from(*i) % VALUES.len()].as_bytes().to_vec(),
            Value::Num(n) => n.render(),
            Value::Raw(t) => t.0.clone(),
        }
    }
}

/// One of the leases handed out so far (or a made-up one before any), as is
/// or altered (`tweak % 4`: as is, next epoch, another lease id, epoch 0).
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct LeaseSel {
    pub index: u8,
    pub tweak: u8,
}

/// A scanner filter: namespace and instance tag, each optional.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct Filter {
    pub namespace: Option<Name>,
    pub tag: Option<(Name, Text)>,
}

/// A member's join, as `ff_create` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Join {
    All,
    Any,
    /// `q:<n>`, 0 and above the largest quorum included.
    Quorum(u8),
    Raw(Text),
}

impl Join {
    fn render(&self) -> Vec<u8> {
        match self {
            Join::All => b"all".to_vec(),
            Join::Any => b"any".to_vec(),
            Join::Quorum(n) => format!("q:{n}").into_bytes(),
            Join::Raw(t) => t.0.clone(),
        }
    }
}

/// A `0`/`1` argument.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Flag {
    No,
    Yes,
    Raw(Text),
}

impl Flag {
    fn render(&self) -> Vec<u8> {
        match self {
            Flag::No => b"0".to_vec(),
            Flag::Yes => b"1".to_vec(),
            Flag::Raw(t) => t.0.clone(),
        }
    }
}

/// A flow argument: one of the flows, or anything.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum FlowSel {
    Known(u8),
    Raw(Text),
}

/// The flow membership arguments of a create.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct MembershipOp {
    pub flow: FlowSel,
    pub join: Join,
    pub cancel_remaining: Flag,
    /// `place % 4 == 0`: the execution stays as named (maybe in another
    /// partition than the flow); otherwise it is moved to the flow's, and
    /// with 3 the other arguments are replaced by valid ones
    /// ([`CreateOp::plain`]) so that members, edges and joins get going.
    pub place: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct CreateOp {
    pub exec: u8,
    pub namespace: Name,
    pub lane: Name,
    pub kind: Name,
    pub priority: Num,
    pub payload: Blob,
    pub delay_ms: Num,
    pub attempt_timeout_ms: Num,
    pub deadline_ms: Num,
    pub retry: Retry,
    pub max_reclaims: Num,
    pub retention_ms: Num,
    /// Key and TTL.
    pub idempotency: Option<(Text, Num)>,
    pub tags: List<(Name, Text)>,
    pub membership: Option<MembershipOp>,
}

impl CreateOp {
    /// A valid create of `exec` with these membership arguments.
    pub fn plain(exec: u8, membership: Option<MembershipOp>) -> Self {
        CreateOp {
            exec,
            namespace: Name::Known(0),
            lane: Name::Known(0),
            kind: Name::Known(4),
            priority: Num::Zero,
            payload: Blob::Bytes(Vec::new()),
            delay_ms: Num::Zero,
            attempt_timeout_ms: Num::Zero,
            deadline_ms: Num::Zero,
            retry: Retry::Fixed(0, Num::Zero),
            max_reclaims: Num::Zero,
            retention_ms: Num::Thousands(60),
            idempotency: None,
            tags: List(Vec::new()),
            membership,
        }
    }
}

/// A KEYS entry of a [`Op::Raw`] call.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Key {
    Exec(u8),
    Index(u8, IndexSel),
    Idempotency(u8, Text),
    Raw(Text),
    Flow(u8),
    /// One of two budgets ([`budget_name`]).
    Budget(u8),
    /// One of two quotas ([`quota_name`]).
    Quota(u8),
    /// The worker registrations.
    Workers,
    /// A blocked index (budget, quota, route) of a partition.
    Blocked(u8, u8),
}

/// An ARGV entry of a [`Op::Raw`] call.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Arg {
    Exec(u8),
    LeaseId(LeaseSel),
    Epoch(LeaseSel),
    Name(Name),
    Num(Num),
    Text(Text),
    Flow(u8),
    /// A budget's name ([`budget_name`]).
    Budget(u8),
    /// A quota's name ([`quota_name`]).
    Quota(u8),
}

/// The two budgets and two quotas raw calls name.
fn budget_name(i: u8) -> BudgetId {
    BudgetId::parse(["b0", "b1"][usize::from(i % 2)]).expect("a budget name")
}

fn quota_name(i: u8) -> QuotaId {
    QuotaId::parse(["q0", "q1"][usize::from(i % 2)]).expect("a quota name")
}

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
        /// Lease ids sent: `count % 6`.
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
fn create_call(c: &CreateOp) -> Call {
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

// ---------------------------------------------------------------------------
// The run

/// Which contract decodes a function's reply, and whether the function acts
/// on one execution record (and so trusts it).
fn per_execution(function: &str) -> bool {
    matches!(
        function,
        "ff_create"
            | "ff_renew"
            | "ff_complete"
            | "ff_fail"
            | "ff_delay"
            | "ff_release"
            | "ff_cancel"
            | "ff_get"
            | "ff_version"
            | "ff_add_edge"
            | "ff_block"
            | "ff_end_many"
            | "ff_create_many"
    )
}

/// The item count a batch reply states (`{1, n, ...}`); a malformed one is
/// caught by the decoder it is then handed to.
fn batch_count(reply: &Reply) -> usize {
    match reply {
        Reply::Array(v) => v
            .get(1)
            .and_then(Reply::int)
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0),
        _ => 0,
    }
}

/// A batch's item replies: refusals with a known code are answers; an item
/// that does not decode, or is refused with an unknown code, is the call's.
fn first_failure<T>(items: Vec<Result<T, CallError>>) -> Result<Option<Vec<Lease>>, CallError> {
    for item in items {
        match item {
            Err(e @ CallError::Rejected(FfError::Other { .. })) | Err(e @ CallError::Decode(_)) => {
                return Err(e)
            }
            Ok(_) | Err(CallError::Rejected(_)) => {}
        }
    }
    Ok(None)
}

/// The lease ids an `ff_claim` call sent (after its five leading arguments).
fn called_lease_ids(call: &Call) -> Vec<LeaseId> {
    call.args
        .iter()
        .skip(5)
        .map_while(|a| {
            std::str::from_utf8(a)
                .ok()
                .and_then(|s| LeaseId::parse(s).ok())
        })
        .collect()
}

/// The execution a call's first argument names (a placeholder when it names none).
fn called_execution(call: &Call) -> ExecutionId {
    call.args
        .first()
        .and_then(|a| std::str::from_utf8(a).ok())
        .and_then(|s| ExecutionId::parse(s).ok())
        .unwrap_or_else(|| ExecutionId::new(0, 0))
}

fn decode(call: &Call, reply: &Reply) -> Result<Option<Vec<Lease>>, CallError> {
    let function = call.function;
    Ok(match function {
        "ff_create" => ex::decode_create(reply).map(|_| None)?,
        "ff_claim" => Some(
            ex::decode_claim(reply, &called_lease_ids(call))?
                .into_iter()
                .map(|c| c.lease)
                .collect(),
        ),
        "ff_renew" => ex::decode_renew(reply).map(|_| None)?,
        "ff_complete" | "ff_fail" | "ff_delay" | "ff_release" | "ff_cancel" => {
            ex::decode_ended(function, reply).map(|_| None)?
        }
        // (an id the server would refuse decodes as that refusal under any id)
        "ff_get" => ex::decode_get(&called_execution(call), reply).map(|_| None)?,
        "ff_version" => None,
        "ff_create_flow" => fl::decode_create_flow(reply).map(|_| None)?,
        "ff_add_edge" => fl::decode_add_edge(reply).map(|_| None)?,
        "ff_cancel_flow" => fl::decode_cancel_flow(reply).map(|_| None)?,
        "ff_flow_get" => fl::decode_get_flow(&flow_id(0), reply).map(|_| None)?,
        "ff_flow_drain" => fl::decode_drain(reply).map(|_| None)?,
        // A batch: each item must decode as its single call's reply would.
        "ff_create_many" => {
            let n = batch_count(reply);
            first_failure(ex::decode_create_many(reply, n)?)?
        }
        "ff_end_many" => {
            let n = batch_count(reply);
            first_failure(ex::decode_end_many(reply, n)?)?
        }
        "ff_block_route" => ad::decode_block_route(reply).map(|_| None)?,
        "ff_worker_register" => ad::decode_register_worker(reply).map(|_| None)?,
        "ff_workers_live" => ad::decode_live_workers(reply).map(|_| None)?,
        "ff_budget_define" | "ff_quota_define" => {
            ad::decode_define(function, reply).map(|_| None)?
        }
        "ff_report_usage" => ad::decode_report_usage(reply).map(|_| None)?,
        "ff_budget_get" => ad::decode_get_budget(reply).map(|_| None)?,
        "ff_budget_resets" => ad::decode_budget_resets(reply).map(|_| None)?,
        "ff_budget_reconcile" => ad::decode_budget_reconcile(reply).map(|_| None)?,
        "ff_admit" => ad::decode_admit(reply).map(|_| None)?,
        "ff_quota_release" => ad::decode_release_slot(reply).map(|_| None)?,
        "ff_quota_get" => ad::decode_get_quota(reply).map(|_| None)?,
        "ff_quota_reconcile" => ad::decode_quota_reconcile(reply).map(|_| None)?,
        "ff_block" => ad::decode_block(reply).map(|_| None)?,
        "ff_unblock" => ad::decode_unblock(reply).map(|_| None)?,
        "ff_breach_cancel" => ad::decode_breach_cancel(reply).map(|_| None)?,
        "ff_quota_watch" => ad::decode_watch_quota(reply).map(|_| None)?,
        "ff_budget_reset" | "ff_partition_heads" => {
            // Only numbers after the status (the heads of the indexes asked for).
            let mut f = ff_core::contract::ok_fields(function, reply)?;
            while f.remaining() > 0 {
                if function == "ff_budget_reset" {
                    f.text("outcome")?;
                } else {
                    f.int("head")?;
                }
            }
            None
        }
        f => {
            let out = decode_batch(f, reply)?;
            assert!(
                out.malformed as usize <= out.exceptions.len(),
                "{f}: more malformed than exceptions"
            );
            None
        }
    })
}

fn texts(r: &Reply) -> Vec<String> {
    match r {
        Reply::Array(items) => items.iter().filter_map(Reply::text).collect(),
        _ => Vec::new(),
    }
}

/// A subscription's receiver, polled without a runtime.
type Inbox = Box<dyn FnMut() -> Option<SubEvent>>;

/// What the calls of one run answered, by function: successes, refusals and
/// raised errors (the seeds' tests check they reach the paths they mean to).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub ok: BTreeMap<&'static str, u32>,
    pub refused: BTreeMap<String, u32>,
    pub raised: u32,
}

struct Run {
    store: MemoryStore,
    wake: Inbox,
    ready: Inbox,
    stats: Stats,
    leases: Vec<Lease>,
    next_lease: u128,
    /// Executions whose record the input wrote to directly.
    corrupted: BTreeSet<String>,
    /// Members whose record or index entries the input wrote to directly.
    tainted: BTreeSet<String>,
    /// Records at the last look.
    seen: BTreeMap<String, ExecutionRecord>,
    /// The first terminal state seen of each execution, while it exists.
    terminal: BTreeMap<String, PublicState>,
    log: Vec<String>,
}

impl Run {
    fn new() -> Self {
        let store = MemoryStore::with_clock(Arc::new(|| START_MS));
        let inbox = |channel: &str| -> Inbox {
            let mut rx = block_on(store.subscribe(channel)).expect("subscribe");
            Box::new(move || rx.try_recv().ok())
        };
        Self {
            wake: inbox(WakeMessage::CHANNEL),
            ready: inbox(ReadyMessage::CHANNEL),
            store,
            stats: Stats::default(),
            leases: Vec::new(),
            next_lease: 0,
            corrupted: BTreeSet::new(),
            tainted: BTreeSet::new(),
            seen: BTreeMap::new(),
            terminal: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    #[track_caller]
    fn finding(&self, what: String) -> ! {
        panic!(
            "data_plane finding: {what}\nsteps so far:\n  {}",
            self.log.join("\n  ")
        );
    }

    fn command(&self, parts: &[&[u8]]) -> Result<Reply, StoreError> {
        block_on(
            self.store
                .command(&parts.iter().map(|p| p.to_vec()).collect::<Vec<_>>()),
        )
    }

    fn lease(&self, sel: &LeaseSel) -> Lease {
        let mut lease = if self.leases.is_empty() {
            Lease {
                execution: exec_id(sel.index),
                id: LeaseId::from_u128(1),
                epoch: 1,
            }
        } else {
            self.leases[usize::from(sel.index) % self.leases.len()].clone()
        };
        match sel.tweak % 4 {
            1 => lease.epoch += 1,
            2 => {
                let v = u128::from_str_radix(lease.id.as_str(), 16).unwrap_or(0);
                lease.id = LeaseId::from_u128(v.wrapping_add(0x1000));
            }
            3 => lease.epoch = 0,
            _ => {}
        }
        lease
    }

    fn fresh_lease_id(&mut self) -> String {
        self.next_lease += 1;
        format!("{:032x}", self.next_lease)
    }

    /// Run one FCALL and check its answer (see the module doc).
    fn fcall(&mut self, call: &Call) {
        // The records the call reads, for the exception of per-execution calls.
        let mut reads: Vec<String> = Vec::new();
        if let Some(eid) = call.keys.first().and_then(|k| k.strip_prefix("ff:exec:")) {
            reads.push(eid.to_owned());
        }
        if call.function == "ff_create" {
            if let Some(idem) = call.keys.get(1) {
                if let Ok(r) = self.command(&[b"GET", idem.as_bytes()]) {
                    reads.extend(r.text());
                }
            }
        }
        if call.function == "ff_create_many" {
            // (shape, eid, payload, idempotency record) per creation, after
            // the shapes: a duplicate reads the execution its record names.
            let n = call.args.len();
            let count = call.args.first().and_then(|a| std::str::from_utf8(a).ok());
            let count = count.and_then(|c| c.parse::<usize>().ok()).unwrap_or(0);
            for idem in call
                .args
                .iter()
                .skip(n.saturating_sub(4 * count) + 3)
                .step_by(4)
            {
                if !idem.is_empty() {
                    if let Ok(r) = self.command(&[b"GET", idem]) {
                        reads.extend(r.text());
                    }
                }
            }
        }
        if call.function == "ff_end_many" {
            // (op, eid, lease, epoch, text, flag) per report
            reads.extend(
                call.args
                    .iter()
                    .skip(2)
                    .step_by(6)
                    .map(|a| String::from_utf8_lossy(a).into_owned()),
            );
        }
        if call.function == "ff_add_edge" {
            // The parent and the child.
            reads.extend(
                call.args
                    .iter()
                    .skip(1)
                    .take(2)
                    .map(|a| String::from_utf8_lossy(a).into_owned()),
            );
        }
        let tag = call
            .keys
            .first()
            .and_then(|k| hash_tag(k))
            .map(str::to_owned);
        let trusted_corrupt = (per_execution(call.function)
            && reads.iter().any(|e| self.corrupted.contains(e)))
            || tag.as_deref().is_some_and(|t| self.flow_corrupted(t));
        let result = block_on(self.store.fcall(call));
        self.log.push(format!(
            "{} {:?} {:?} -> {}",
            call.function,
            call.keys,
            call.args
                .iter()
                .map(|a| String::from_utf8_lossy(&a[..a.len().min(80)]).into_owned())
                .collect::<Vec<_>>(),
            match &result {
                Ok(r) => format!("{r:?}").chars().take(300).collect::<String>(),
                Err(e) => format!("error {e}"),
            }
        ));
        match &result {
            Ok(Reply::Array(v)) if v.first() == Some(&Reply::Int(0)) => {
                let code = v.get(1).and_then(Reply::text).unwrap_or_default();
                *self
                    .stats
                    .refused
                    .entry(format!("{} {code}", call.function))
                    .or_default() += 1;
            }
            Ok(_) => *self.stats.ok.entry(call.function).or_default() += 1,
            Err(_) => self.stats.raised += 1,
        }
        match result {
            Ok(reply) => match decode(call, &reply) {
                Ok(leases) => {
                    if let Some(leases) = leases {
                        let n = call.args.get(4).and_then(|a| {
                            std::str::from_utf8(a)
                                .ok()
                                .and_then(|s| s.parse::<usize>().ok())
                        });
                        if n.is_some_and(|n| leases.len() > n) {
                            self.finding(format!("claim handed out {} leases", leases.len()));
                        }
                        self.leases.extend(leases);
                    }
                }
                Err(CallError::Rejected(FfError::Other { code, detail })) => self.finding(format!(
                    "{} refused with an unknown code {code:?} ({detail:?})",
                    call.function
                )),
                Err(CallError::Rejected(_)) => {}
                Err(CallError::Decode(e)) if !trusted_corrupt => {
                    self.finding(format!("{}: reply does not decode: {e}", call.function))
                }
                Err(CallError::Decode(_)) => self.taint_partition(tag.as_deref()),
            },
            Err(StoreError::Server(e)) if !trusted_corrupt => {
                self.finding(format!("{} raised: {e}", call.function))
            }
            Err(StoreError::Server(_)) => self.taint_partition(tag.as_deref()),
            Err(e) => self.finding(format!("{}: store error {e}", call.function)),
        }
    }

    /// Is a corrupted execution of partition `tag` tied to a flow (a member,
    /// or has edges)? Then flow cascades may reach its record from any call.
    fn flow_corrupted(&self, tag: &str) -> bool {
        self.corrupted.iter().any(|eid| {
            hash_tag(eid) == Some(tag)
                && [
                    vec![b"EXISTS".to_vec(), format!("ff:deps:{eid}").into_bytes()],
                    vec![b"EXISTS".to_vec(), format!("ff:out:{eid}").into_bytes()],
                    vec![
                        b"HEXISTS".to_vec(),
                        format!("ff:exec:{eid}").into_bytes(),
                        b"flow".to_vec(),
                    ],
                ]
                .iter()
                .any(|c| matches!(block_on(self.store.command(c)), Ok(Reply::Int(1))))
        })
    }

    /// A call raised or answered garbage on corrupted data: the writes it made
    /// before may have touched any execution of its partition.
    fn taint_partition(&mut self, tag: Option<&str>) {
        let Some(tag) = tag else { return };
        for i in 0..EXECS as u8 {
            let eid = exec_id(i).to_string();
            if hash_tag(&eid) == Some(tag) {
                self.tainted.insert(eid);
            }
        }
    }

    /// Does the input's tainting reach partition `p`'s flows?
    fn partition_tainted(&self, p: u16) -> bool {
        (0..EXECS as u8)
            .map(exec_id)
            .any(|e| e.partition_index() == p && self.tainted.contains(e.as_str()))
    }

    /// A raw write; its result does not matter (it may well be an error).
    fn corrupt(&mut self, parts: &[&[u8]], member: String, record: bool) {
        let r = self.command(parts);
        self.log.push(format!(
            "{:?} -> {r:?}",
            parts
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect::<Vec<_>>()
        ));
        if record {
            self.corrupted.insert(member.clone());
        }
        self.tainted.insert(member);
    }

    fn step(&mut self, op: &Op) {
        match op {
            Op::Create(c) => {
                let plain;
                let c = match &c.membership {
                    Some(m) if m.place % 4 == 3 => {
                        plain = CreateOp::plain(c.exec, c.membership.clone());
                        &plain
                    }
                    _ => c,
                };
                self.fcall(&create_call(c));
            }
            Op::Claim {
                partition: p,
                lane,
                worker,
                instance,
                ttl_ms,
                count,
            } => {
                let n = count % 6;
                let lane = lane.render();
                let key = format!(
                    "ff:idx:{}:eligible:{}",
                    partition(*p).hash_tag(),
                    String::from_utf8_lossy(&lane)
                );
                let mut call = Call::new("ff_claim", vec![key])
                    .arg_bytes(&lane)
                    .arg_bytes(&worker.render())
                    .arg_bytes(&instance.render())
                    .arg_bytes(&ttl_ms.render())
                    .arg(n);
                for _ in 0..n {
                    let id = self.fresh_lease_id();
                    call = call.arg(id);
                }
                self.fcall(&call);
            }
            Op::Renew { lease, ttl_ms } => {
                let lease = self.lease(lease);
                let call = match ttl_ms.as_u64() {
                    Some(ttl) => ex::renew(&lease, ttl),
                    None => fenced("ff_renew", &lease).arg_bytes(&ttl_ms.render()),
                };
                self.fcall(&call);
            }
            Op::Complete { lease, result } => {
                let lease = self.lease(lease);
                self.fcall(&ex::complete(&lease, &result.bytes()));
            }
            Op::Fail {
                lease,
                error,
                retryable,
            } => {
                let lease = self.lease(lease);
                let call = match (std::str::from_utf8(&error.0), retryable.as_u64()) {
                    (Ok(e), Some(r @ (0 | 1))) => ex::fail(&lease, e, r == 1),
                    _ => fenced("ff_fail", &lease)
                        .arg_bytes(&error.0)
                        .arg_bytes(&retryable.render()),
                };
                self.fcall(&call);
            }
            Op::Delay { lease, delay_ms } => {
                let lease = self.lease(lease);
                let call = match delay_ms.as_u64() {
                    Some(d) => ex::delay(&lease, d),
                    None => fenced("ff_delay", &lease).arg_bytes(&delay_ms.render()),
                };
                self.fcall(&call);
            }
            Op::Release { lease } => {
                let lease = self.lease(lease);
                self.fcall(&ex::release(&lease));
            }
            Op::Cancel { exec, reason } => {
                let eid = exec_id(*exec);
                let call = match std::str::from_utf8(&reason.0) {
                    Ok(r) => ex::cancel(&eid, r),
                    Err(_) => Call::new("ff_cancel", vec![keys::exec(&eid)])
                        .arg(&eid)
                        .arg_bytes(&reason.0),
                };
                self.fcall(&call);
            }
            Op::Get { exec } => self.fcall(&ex::get(&exec_id(*exec))),
            Op::Scan {
                function,
                partition: p,
                filter,
                ids,
            } => {
                let f = BatchFunction::ALL[usize::from(*function) % BatchFunction::ALL.len()];
                let ids: Vec<String> = ids.0.iter().map(Member::render).collect();
                self.fcall(&batch_call(f, partition(*p), filter, &ids));
            }
            Op::ScanDue {
                function,
                partition: p,
                filter,
                batch,
            } => {
                let f = BatchFunction::ALL[usize::from(*function) % BatchFunction::ALL.len()];
                let limit = (usize::from(*batch) % 8 + 1).to_string();
                let key = f.index(&PartitionKeys::new(partition(*p)));
                let now = self.store.now_ms().to_string();
                let read = if f.is_sweep() {
                    self.command(&[b"SMEMBERS", key.as_bytes()]).map(|r| {
                        texts(&r)
                            .into_iter()
                            .take(usize::from(*batch) % 8 + 1)
                            .collect()
                    })
                } else {
                    self.command(&[
                        b"ZRANGEBYSCORE",
                        key.as_bytes(),
                        b"-inf",
                        now.as_bytes(),
                        b"LIMIT",
                        b"0",
                        limit.as_bytes(),
                    ])
                    .map(|r| texts(&r))
                };
                let ids: Vec<String> = match read {
                    Ok(ids) => ids,
                    Err(e) => self.finding(format!("reading {key}: {e}")),
                };
                self.fcall(&batch_call(f, partition(*p), filter, &ids));
            }
            Op::HSet { exec, field, value } => {
                let eid = exec_id(*exec);
                self.corrupt(
                    &[
                        b"HSET",
                        keys::exec(&eid).as_bytes(),
                        &field.render(),
                        &value.render(),
                    ],
                    eid.to_string(),
                    true,
                );
            }
            Op::HDel { exec, field } => {
                let eid = exec_id(*exec);
                self.corrupt(
                    &[b"HDEL", keys::exec(&eid).as_bytes(), &field.render()],
                    eid.to_string(),
                    true,
                );
            }
            Op::Del { exec } => {
                let eid = exec_id(*exec);
                self.corrupt(
                    &[b"DEL", keys::exec(&eid).as_bytes()],
                    eid.to_string(),
                    true,
                );
            }
            // Corruption keeps each key's type (a ZADD could otherwise make
            // `all` a sorted set, which no function is meant to survive): on
            // `all`, ZADD and ZREM act as SADD and SREM.
            Op::ZAdd {
                partition: p,
                index: IndexSel::All,
                member,
                ..
            }
            | Op::SAdd {
                partition: p,
                member,
            } => {
                let m = member.render();
                let key = PartitionKeys::new(partition(*p)).all();
                self.corrupt(&[b"SADD", key.as_bytes(), m.as_bytes()], m.clone(), false);
            }
            Op::ZRem {
                partition: p,
                index: IndexSel::All,
                member,
            }
            | Op::SRem {
                partition: p,
                member,
            } => {
                let m = member.render();
                let key = PartitionKeys::new(partition(*p)).all();
                self.corrupt(&[b"SREM", key.as_bytes(), m.as_bytes()], m.clone(), false);
            }
            Op::ZAdd {
                partition: p,
                index,
                member,
                score,
            } => {
                let m = member.render();
                self.corrupt(
                    &[
                        b"ZADD",
                        index.key(*p).as_bytes(),
                        &score.render(),
                        m.as_bytes(),
                    ],
                    m.clone(),
                    false,
                );
            }
            Op::ZRem {
                partition: p,
                index,
                member,
            } => {
                let m = member.render();
                self.corrupt(
                    &[b"ZREM", index.key(*p).as_bytes(), m.as_bytes()],
                    m.clone(),
                    false,
                );
            }
            Op::Advance { ms } => {
                let ms = match ms {
                    Num::Any(v) => v % (1 << 32),
                    other => other.as_u64().unwrap_or(0).min(1 << 32),
                };
                self.store.advance_clock(ms);
                self.log.push(format!("advance {ms} ms"));
            }
            Op::Raw {
                function,
                keys: ks,
                args,
            } => {
                let function = FUNCTIONS[usize::from(*function) % FUNCTIONS.len()];
                let keys = ks.0.iter().map(|k| self.key(k)).collect();
                let mut call = Call::new(function, keys);
                for a in &args.0 {
                    call = call.arg_bytes(&self.arg(a));
                }
                self.fcall(&call);
            }
            Op::CreateFlow { flow, namespace } => {
                let flow = flow_id(*flow);
                let call = Call::new("ff_create_flow", vec![flow_keys(&flow).flow()])
                    .arg(&flow)
                    .arg_bytes(&namespace.render());
                self.fcall(&call);
            }
            Op::AddEdge {
                flow: f,
                parent,
                child,
                pass_data,
                twist,
            } => {
                let flow = flow_id(*f);
                let fk = flow_keys(&flow);
                let p = flow_partition(&flow, &config()).index;
                // Two distinct executions of the partition (the child named as
                // an offset from the parent), unless twist says otherwise.
                let per = (EXECS / PARTITIONS as usize) as u8;
                let mut a = fl::EdgeArgs {
                    flow: flow.clone(),
                    parent: local_exec(*parent, p),
                    child: local_exec(parent % per + 1 + child % (per - 1), p),
                    pass_data: *pass_data,
                };
                let mut key = fk.flow();
                let mut data = u8::from(*pass_data).to_string();
                match twist % 8 {
                    0 => a.parent = exec_id(*parent),
                    1 => a.child = exec_id(*child),
                    2 => a.child = a.parent.clone(),
                    3 => data = "2".to_owned(),
                    4 => key = flow_keys(&flow_id(f.wrapping_add(1))).flow(),
                    _ => {}
                }
                let call = Call::new("ff_add_edge", vec![key])
                    .arg(&a.flow)
                    .arg(&a.parent)
                    .arg(&a.child)
                    .arg(data);
                self.fcall(&call);
            }
            Op::CancelFlow { flow, reason } => {
                let flow = flow_id(*flow);
                let fk = flow_keys(&flow);
                let call = match std::str::from_utf8(&reason.0) {
                    Ok(r) => fl::cancel_flow(&fk, &flow, r),
                    Err(_) => Call::new("ff_cancel_flow", vec![fk.flow()])
                        .arg(&flow)
                        .arg_bytes(&reason.0),
                };
                self.fcall(&call);
            }
            Op::Drain {
                partition: p,
                budget,
            } => {
                let call = match budget.as_u64() {
                    Some(b) if b <= 1 << 20 => fl::drain(partition(*p), b as usize),
                    _ => Call::new(
                        "ff_flow_drain",
                        vec![PartitionKeys::new(partition(*p)).flow_work()],
                    )
                    .arg_bytes(&budget.render()),
                };
                self.fcall(&call);
            }
            Op::GetFlow { flow } => {
                let flow = flow_id(*flow);
                self.fcall(&fl::get_flow(&flow_keys(&flow), &flow));
            }
            Op::CreateMany(cs) => {
                let Some(first) = cs.0.first() else { return };
                let all = PartitionKeys::new(exec_id(first.exec).partition()).all();
                // Each creation as its own shape (its ff_create ARGV without
                // the id and the payload), so malformed ones stay malformed.
                let mut call = Call::new("ff_create_many", vec![all])
                    .arg(cs.0.len())
                    .arg(cs.0.len());
                let mut tail = Vec::new();
                for (i, c) in cs.0.iter().enumerate() {
                    let one = create_call(c);
                    let idem = one.keys.get(1).cloned().unwrap_or_default();
                    let mut one = one.args.into_iter();
                    let eid = one.next().unwrap_or_default();
                    let mut shape: Vec<Vec<u8>> = one.by_ref().take(4).collect();
                    let payload = one.next().unwrap_or_default();
                    shape.extend(one);
                    call = call.arg(shape.len());
                    call.args.extend(shape);
                    tail.extend([
                        (i + 1).to_string().into_bytes(),
                        eid,
                        payload,
                        idem.into_bytes(),
                    ]);
                }
                call.args.extend(tail);
                self.fcall(&call);
            }
            Op::EndMany(items) => {
                let Some(first) = items.0.first() else { return };
                let key = PartitionKeys::of(&self.lease(&first.lease).execution).lease_expiry();
                let mut call = Call::new("ff_end_many", vec![key]).arg(items.0.len());
                for ReportOp { lease, how, text } in &items.0 {
                    let lease = self.lease(lease);
                    let op = ["complete", "fail", "fail", "explode"][usize::from(how % 4)];
                    call = call
                        .arg(op)
                        .arg(&lease.execution)
                        .arg(&lease.id)
                        .arg(lease.epoch)
                        .arg_bytes(&text.0)
                        .arg(u8::from(how % 4 == 1));
                }
                self.fcall(&call);
            }
        }
        self.check_messages();
        self.check_store();
    }

    fn key(&self, k: &Key) -> String {
        match k {
            Key::Exec(i) => keys::exec(&exec_id(*i)),
            Key::Index(p, idx) => idx.key(*p),
            Key::Idempotency(p, t) => format!("ff:idem:{}:{}", partition(*p).hash_tag(), t.lossy()),
            Key::Raw(t) => t.lossy(),
            Key::Flow(f) => flow_keys(&flow_id(*f)).flow(),
            Key::Budget(i) => budget_key(&config(), &budget_name(*i)),
            Key::Quota(i) => quota_key(&config(), &quota_name(*i)),
            Key::Workers => ad::WORKERS.to_owned(),
            Key::Blocked(p, r) => ad::BlockReason::ALL
                [usize::from(*r) % ad::BlockReason::ALL.len()]
            .index(partition(*p)),
        }
    }

    fn arg(&self, a: &Arg) -> Vec<u8> {
        match a {
            Arg::Exec(i) => exec_id(*i).to_string().into_bytes(),
            Arg::LeaseId(l) => self.lease(l).id.as_str().as_bytes().to_vec(),
            Arg::Epoch(l) => self.lease(l).epoch.to_string().into_bytes(),
            Arg::Name(n) => n.render(),
            Arg::Num(n) => n.render(),
            Arg::Text(t) => t.0.clone(),
            Arg::Flow(f) => flow_id(*f).to_string().into_bytes(),
            Arg::Budget(i) => budget_name(*i).as_str().as_bytes().to_vec(),
            Arg::Quota(i) => quota_name(*i).as_str().as_bytes().to_vec(),
        }
    }

    fn check_messages(&mut self) {
        let mut got = Vec::new();
        for (rx, wake) in [(&mut self.wake, true), (&mut self.ready, false)] {
            while let Some(ev) = rx() {
                if let SubEvent::Message(m) = ev {
                    got.push((wake, m));
                }
            }
        }
        if !self.tainted.is_empty() {
            return;
        }
        for (wake, m) in got {
            let ok = if wake {
                WakeMessage::parse(&m).is_some()
            } else {
                ReadyMessage::parse(&m).is_some()
            };
            if !ok {
                self.finding(format!(
                    "unparsable {} message {:?}",
                    if wake { "wake" } else { "ready" },
                    String::from_utf8_lossy(&m)
                ));
            }
        }
    }

    /// Read everything and check the invariants (see the module doc).
    fn check_store(&mut self) {
        let read = |parts: &[&str]| -> Reply {
            block_on(self.store.command(&cmd(parts.iter().copied())))
                .unwrap_or_else(|e| self.finding(format!("{parts:?}: {e}")))
        };
        let mut records = BTreeMap::new();
        let mut zsets: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut alls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        // Indexes of other things than executions (flow_work, flows).
        let mut others: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut problems = Vec::new();
        let hash = |k: &str| -> BTreeMap<String, String> {
            texts(&read(&["HGETALL", k]))
                .chunks(2)
                .filter(|p| p.len() == 2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect()
        };
        for k in texts(&read(&["KEYS", "*"])) {
            let ty = read(&["TYPE", &k]);
            let ty = match &ty {
                Reply::Status(s) => s.as_str(),
                _ => "",
            };
            if let Some(eid) = k.strip_prefix("ff:exec:") {
                if ty != "hash" {
                    continue; // only a raw write could make it
                }
                let Reply::Array(flat) = read(&["HGETALL", &k]) else {
                    continue;
                };
                let m: BTreeMap<String, Vec<u8>> = flat
                    .chunks(2)
                    .filter(|p| p.len() == 2)
                    .filter_map(|p| match (&p[0], &p[1]) {
                        (Reply::Bulk(f), Reply::Bulk(v)) => {
                            Some((String::from_utf8_lossy(f).into_owned(), v.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                match ExecutionRecord::from_hash(eid, &m, 0) {
                    Ok(rec) => {
                        records.insert(eid.to_owned(), rec);
                    }
                    Err(e) => {
                        problems.push((eid.to_owned(), format!("{k}: malformed record: {e}")))
                    }
                }
            } else if k.starts_with("ff:idx:{fp:") && ty == "set" {
                alls.insert(
                    k.clone(),
                    texts(&read(&["SMEMBERS", &k])).into_iter().collect(),
                );
            } else if k.starts_with("ff:idx:") && ty == "zset" && !holds_executions(&k) {
                others.insert(k.clone(), texts(&read(&["ZRANGE", &k, "0", "-1"])));
            } else if k.starts_with("ff:idx:") && ty == "zset" {
                let flat = texts(&read(&["ZRANGE", &k, "0", "-1", "WITHSCORES"]));
                let members = flat
                    .chunks(2)
                    .filter(|p| p.len() == 2)
                    .map(|p| (p[0].clone(), p[1].parse::<f64>().unwrap_or(-1.0) as u64))
                    .collect();
                zsets.insert(k.clone(), members);
            } else if let Some(eid) = k.strip_prefix("ff:deps:").filter(|_| ty == "hash") {
                let m = hash(&k);
                let (n, s, i) = (count(&m, "#n"), count(&m, "#s"), count(&m, "#i"));
                if n < 0 || s < 0 || i < 0 || s + i > n {
                    problems.push((eid.to_owned(), format!("{k}: #n {n}, #s {s}, #i {i}")));
                }
            } else if k.starts_with("ff:flow:") && !k.ends_with(":members") && ty == "hash" {
                let p = hash_tag(&k)
                    .and_then(|t| t.strip_prefix("{fp:")?.strip_suffix('}')?.parse().ok());
                if p.is_some_and(|p| self.partition_tainted(p)) {
                    continue;
                }
                let m = hash(&k);
                let (n, done) = (count(&m, "n"), count(&m, "done"));
                let outcomes: i64 = ["success", "failed", "cancelled", "expired", "skipped"]
                    .iter()
                    .map(|o| count(&m, o))
                    .sum();
                if n < 0 || done < 0 || done > n || outcomes != done {
                    problems.push((
                        String::new(),
                        format!("{k}: n {n}, done {done}, outcomes sum to {outcomes}: {m:?}"),
                    ));
                }
            }
        }
        for p in 0..PARTITIONS {
            let key = PartitionKeys::new(partition(p as u8)).flow_work();
            for item in others.get(&key).into_iter().flatten() {
                let ok = match item.split_at_checked(2) {
                    Some(("d:" | "x:", eid)) => {
                        ExecutionId::parse(eid).is_ok_and(|e| e.partition_index() == p)
                    }
                    Some(("f:", flow)) => FlowId::parse(flow).is_ok(),
                    _ => false,
                };
                if !ok {
                    problems.push((String::new(), format!("{key} holds {item:?}")));
                }
            }
        }
        for v in index_violations(&records, &zsets, &alls) {
            problems.push((v.member, v.message));
        }
        let now = self.store.now_ms();
        for (eid, before) in &self.seen {
            if records.contains_key(eid) {
                continue;
            }
            let purgeable = before.public_state.is_terminal()
                && before.ended_at_ms.unwrap_or(0) + before.retention_ms <= now;
            if !purgeable {
                problems.push((
                    eid.clone(),
                    format!("{eid} ({}) disappeared", before.public_state),
                ));
            }
        }
        self.terminal.retain(|eid, _| records.contains_key(eid));
        for (eid, rec) in &records {
            match self.terminal.get(eid) {
                Some(first) if *first != rec.public_state => problems.push((
                    eid.clone(),
                    format!(
                        "{eid}: terminal state changed from {first} to {}",
                        rec.public_state
                    ),
                )),
                Some(_) => {}
                None if rec.public_state.is_terminal() => {
                    self.terminal.insert(eid.clone(), rec.public_state);
                }
                None => {}
            }
        }
        problems.retain(|(member, _)| !self.tainted.contains(member));
        if !problems.is_empty() {
            let text: Vec<String> = problems.into_iter().map(|(_, p)| p).collect();
            self.finding(format!("invariant violated:\n    {}", text.join("\n    ")));
        }
        self.seen = records;
    }
}

/// The hash tag (`{fp:N}`) in a key or execution id.
fn hash_tag(s: &str) -> Option<&str> {
    let start = s.find('{')?;
    let end = start + s[start..].find('}')?;
    Some(&s[start..=end])
}

/// A count field of a flow or deps hash (absent: 0; not a number: -1, which
/// fails every check).
fn count(m: &BTreeMap<String, String>, field: &str) -> i64 {
    m.get(field).map_or(0, |v| v.parse().unwrap_or(-1))
}

/// A fenced call's KEYS and first three ARGV, for arguments the contract's
/// typed builders cannot carry.
fn fenced(function: &'static str, lease: &Lease) -> Call {
    Call::new(function, vec![keys::exec(&lease.execution)])
        .arg(&lease.execution)
        .arg(&lease.id)
        .arg(lease.epoch)
}

/// [`ff_core::contract::scan::batch`], with filter names that need not be valid.
fn batch_call(f: BatchFunction, p: Partition, filter: &Filter, ids: &[String]) -> Call {
    let keys = PartitionKeys::new(p);
    let (tag_name, tag_value) = match &filter.tag {
        Some((n, v)) => (n.render(), v.0.clone()),
        None => (Vec::new(), Vec::new()),
    };
    let mut call = Call::new(f.function(), vec![f.index(&keys)])
        .arg_bytes(&filter.namespace.as_ref().map_or(Vec::new(), Name::render))
        .arg_bytes(&tag_name)
        .arg_bytes(&tag_value);
    for id in ids {
        call = call.arg(id);
    }
    call
}

/// Fuzz target `data_plane`.
pub fn data_plane(data: &[u8]) {
    run_ops(&ops_from_bytes(data));
}

/// Run `ops` on a fresh store, checking after every step.
pub fn run_ops(ops: &[Op]) -> Stats {
    let mut run = Run::new();
    for op in ops {
        run.step(op);
    }
    run.stats
}
