//! Differential test: the same operation sequences against MemoryStore and a
//! real redis-server must give the same replies and leave the same data.
//!
//! Each proptest case is a sequence of 5–30 operations on a small pool of
//! executions in two partitions: creates (random specs, delays, timeouts,
//! deadlines, retry policies, idempotency keys, tags, sometimes invalid),
//! claims, renewals, completions, failures, delays, releases, cancels, reads,
//! suspension (secret rotations, pending waitpoints, suspends on one to three
//! waitpoints with every condition and timeout behaviour, signals with valid,
//! tampered or stale tokens and idempotency keys, waitpoint reads),
//! one look of each scanner's batch function (with filters), raw corruption of
//! records and indexes (to drive the repair paths), and short sleeps. Calls
//! are built with the FCALL contracts directly and deterministic ids (lease
//! ids from a counter), so both sides receive byte-identical calls.
//!
//! Time. The server's clock cannot be set, so MemoryStore's is made to follow
//! it: before each call the harness reads the server's TIME (t0, waiting for a
//! fresh millisecond when near the end of one), runs the call on the server,
//! reads TIME again (t1), and runs the call on MemoryStore with its clock set
//! to t0. A function reads TIME once, so when t0 == t1 (nearly always) both
//! sides ran at the same millisecond and every reply and stored timestamp
//! must be *equal* — nothing is masked, so an off-by-one in time arithmetic
//! is caught. When the server's millisecond changed during the call, the
//! harness replays the sequence so far on a fresh MemoryStore once per
//! candidate millisecond and keeps the candidate whose reply *and* whole
//! dataset match the server's; if none does, that is a divergence. (Only
//! there, expiries may differ by the ms the server moved: inside a function
//! Redis bases SET … PX on a fresh clock read, MemoryStore on the call's one
//! time; the harness checks the gap is within the move and aligns the key
//! with PEXPIREAT.) Scanner snapshots (which members are due) are taken once,
//! at the server's time, and the same ids are passed to both sides; the
//! reconciler gets the sorted set members (SSCAN pages in hash order on the
//! server). About 1–3 % of calls need a replay.
//!
//! Compared after every call: the replies (the fields of `ff_get`'s record
//! sorted by name, since Redis lists a hash in insertion or hash order), and
//! at the end of every sequence a canonical dump of every key — type, value
//! (hash fields and set members sorted, sorted sets in their order with
//! scores as printed) and absolute expiry (PEXPIRETIME). The dump runs as a
//! read-only function on both sides, so the server's dump is one atomic read
//! at one known time (a function judges expiry at its start, a little before
//! its TIME: see `dump_time`). FF_DIFF_STATS=1 prints what the server
//! answered, by kind, to check the sequences reach the interesting paths.
//!
//! A divergence fails the case; proptest shrinks it and prints the minimal
//! sequence with both replies and the seed (FF_DIFF_SEED replays a run).
//! Cases: FF_DIFF_CASES per test (default 500) in each of four tests, each
//! with its own server: 2000 sequences, ~25–40 s in a debug build here.

mod common;

use ff_engine::core::admission::{budget_partition, quota_partition, Admission, QuotaLimits};
use ff_engine::core::contract::admission::{
    self as ad, BlockReason, BudgetDef, DimensionLimits, UsageReport,
};
use ff_engine::core::contract::execution::{self as ex, ClaimArgs, CreateArgs, Lease, Report};
use ff_engine::core::contract::flow::{self as fl, Membership};
use ff_engine::core::contract::ownership as own;
use ff_engine::core::contract::scan::{self as sc, BatchFunction, ScannerFilter};
use ff_engine::core::contract::suspension::{
    self as sp, ResumeCondition, SecretKid, SignalArgs, SuspendArgs, TimeoutBehaviour,
    WaitpointSecret, WaitpointToken,
};
use ff_engine::core::contract::Call;
use ff_engine::core::flow::JoinPolicy;
use ff_engine::core::keys::{self, flow_partition, FlowKeys, IdempotencyKey, PartitionKeys};
use ff_engine::core::reply::Reply;
use ff_engine::core::retry::RetryPolicy;
use ff_engine::core::scan::{plan, Member, Snapshot};
use ff_engine::core::tracker::FailureTracker;
use ff_engine::core::{
    BudgetId, ExecutionId, FlowId, Kind, Lane, LeaseId, Namespace, Partition, PartitionConfig,
    PartitionFamily, QuotaId, SignalName, TagName, WaitpointId, WorkerInstance, WorkerName,
};
use ff_engine::error::StoreError;
use ff_engine::store::{cmd, MemoryStore, RedisStore, RedisStoreOptions, Store};
use ff_engine::Client;
use ff_tests::RedisServer;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PARTITIONS: u16 = 2;
const EXECS: usize = 6;
const LANES: [&str; 2] = ["default", "l2"];

/// A read-only function that dumps the whole keyspace with the time it was
/// read: {secs, micros, {key, type, pexpiretime, {data...}}...}. Loaded on
/// both sides next to the ff library.
const DUMP_LIB: &str = r#"#!lua name=difftest
redis.register_function{function_name = 'difftest_dump', flags = {'no-writes'}, callback = function()
  local t = redis.call('TIME')
  local out = {t[1], t[2]}
  for _, k in ipairs(redis.call('KEYS', '*')) do
    local ty = redis.call('TYPE', k).ok
    local v = {}
    if ty == 'string' then v = {redis.call('GET', k)}
    elseif ty == 'hash' then v = redis.call('HGETALL', k)
    elseif ty == 'set' then v = redis.call('SMEMBERS', k)
    elseif ty == 'zset' then v = redis.call('ZRANGE', k, 0, -1, 'WITHSCORES')
    end
    out[#out + 1] = {k, ty, redis.call('PEXPIRETIME', k), v}
  end
  return out
end}
"#;

fn exec_id(i: usize) -> ExecutionId {
    ExecutionId::new((i % PARTITIONS as usize) as u16, 0xd1ff_0000 + i as u128)
}

const FLOWS: usize = 2;

/// Flow `i`, in partition `i % PARTITIONS` (flows of partition 0: 0 and 2).
fn flow_id(i: usize) -> FlowId {
    (0u128..)
        .map(|k| FlowId::from_u128(0xf10e_0000 + (i as u128) * 1000 + k))
        .find(|f| flow_partition(f, &config()).index == (i % PARTITIONS as usize) as u16)
        .expect("a flow id in the partition")
}

const WAITPOINTS: usize = 4;

fn wp_id(i: usize) -> WaitpointId {
    WaitpointId::from_u128(0x0a17_0000 + i as u128)
}

fn rotate_call(p: usize, kid: usize, secret: u8, grace_ms: u64) -> Call {
    sp::rotate_secret(
        partition(p),
        &SecretKid::new(format!("k{kid}")).unwrap(),
        &WaitpointSecret::new(vec![secret; 16 + kid]).unwrap(),
        grace_ms,
    )
}

fn partition(i: usize) -> Partition {
    Partition::new(PartitionFamily::Flow, (i % PARTITIONS as usize) as u16)
}

fn config() -> PartitionConfig {
    PartitionConfig {
        flow_partitions: PARTITIONS,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone)]
struct CreateOp {
    exec: usize,
    ns: usize,
    lane: usize,
    priority: u32,
    payload: Vec<u8>,
    delay_ms: u64,
    attempt_timeout_ms: u64,
    deadline_ms: u64,
    retry: (u32, u8, u64, u64),
    max_reclaims: u32,
    retention_ms: u64,
    idempotency: Option<(usize, u64)>,
    tag: Option<usize>,
    /// A flow member: (flow, join, cancel the remaining parents).
    flow: Option<(usize, usize, bool)>,
}

#[derive(Debug, Clone, Copy)]
enum Index {
    Delayed,
    LeaseExpiry,
    AttemptTimeout,
    Deadline,
    Terminal,
    SuspensionTimeout,
    Eligible(usize),
}

#[derive(Debug, Clone)]
enum Op {
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

fn suspension_op() -> impl Strategy<Value = Op> {
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
const MEMBERS: [&str; 4] = ["e-a", "e-b", "e-c", "bad member"];
/// Partition count of the ownership ops (claims reach past it: refused).
const OWN_PARTITIONS: u16 = 4;

/// How many admission calls `Run::admission_call` knows.
const ADMISSION_CALLS: usize = 19;

fn small_ms() -> impl Strategy<Value = u64> {
    prop_oneof![3 => Just(0u64), 3 => 1u64..6, 1 => Just(60_000u64)]
}

/// Mostly the default lane, so that claims find work.
fn lane() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 1 => Just(1usize)]
}

fn create_op() -> impl Strategy<Value = Op> {
    create_spec().prop_map(Op::Create)
}

fn create_spec() -> impl Strategy<Value = CreateOp> {
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
        (0u32..3, 0u8..2, 0u64..4, 1u64..8),
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

fn index() -> impl Strategy<Value = Index> {
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

const FIELDS: &[&str] = &[
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
const VALUES: &[&str] = &[
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

fn op() -> impl Strategy<Value = Op> {
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

// ---------------------------------------------------------------------------
// Steps: what is sent, identically, to both sides

#[derive(Debug, Clone)]
enum Step {
    Call(Call),
    Cmd(Vec<Vec<u8>>),
}

type Outcome = Result<Reply, StoreError>;

async fn run_step(store: &dyn Store, step: &Step) -> Outcome {
    match step {
        Step::Call(c) => store.fcall(c).await,
        Step::Cmd(c) => store.command(c).await,
    }
}

/// RedisStore spells an error nested in an array as the driver's Debug text;
/// read the code and detail back out of it.
fn nested_error_text(s: &str) -> String {
    let grab = |from: &str, to: &str| {
        s.find(from)
            .map(|i| &s[i + from.len()..])
            .and_then(|rest| rest.find(to).map(|j| rest[..j].to_owned()))
    };
    if s.starts_with("ServerError(") {
        let code = grab("code: \"", "\"")
            .or_else(|| grab("kind: ", ","))
            .unwrap_or_default();
        let detail = grab("detail: Some(\"", "\")").unwrap_or_default();
        format!("{code} {detail}").trim_end().to_owned()
    } else {
        s.trim_end().to_owned()
    }
}

fn norm_reply(r: &Reply) -> Reply {
    match r {
        Reply::Error(e) => Reply::Error(nested_error_text(e)),
        Reply::Array(items) => Reply::Array(items.iter().map(norm_reply).collect()),
        other => other.clone(),
    }
}

/// The comparable form of an outcome.
fn norm(step: &Step, o: &Outcome) -> Result<Reply, String> {
    match o {
        Ok(r) => {
            let mut r = norm_reply(r);
            // Calls listing a hash or set in the order the store keeps it.
            if let (Step::Call(c), Reply::Array(items)) = (step, &mut r) {
                let unordered = |skip: usize, width: usize, items: &mut Vec<Reply>| {
                    let mut groups: Vec<Vec<Reply>> =
                        items[skip..].chunks(width).map(<[Reply]>::to_vec).collect();
                    groups.sort_by_key(|g| format!("{g:?}"));
                    items.truncate(skip);
                    items.extend(groups.into_iter().flatten());
                };
                if items.first() == Some(&Reply::Int(1)) {
                    match c.function {
                        "ff_budget_get" if items.len() > 2 => unordered(2, 2, items),
                        "ff_workers_live" => unordered(1, 2, items),
                        "ff_quota_reconcile" if items.len() > 3 => unordered(3, 3, items),
                        "ff_get_waitpoint" if items.len() > 2 => unordered(2, 2, items),
                        "ff_flow_get" if items.len() > 1 => unordered(1, 2, items),
                        _ => {}
                    }
                }
                if c.function == "ff_get" && items.len() > 2 && items[0] == Reply::Int(1) {
                    let mut pairs: Vec<Vec<Reply>> =
                        items[2..].chunks(2).map(<[Reply]>::to_vec).collect();
                    pairs.sort_by_key(|p| format!("{:?}", p[0]));
                    items.truncate(2);
                    items.extend(pairs.into_iter().flatten());
                }
            }
            Ok(r)
        }
        Err(StoreError::Server(t)) => Err(format!("server: {}", t.trim_end())),
        Err(StoreError::FunctionNotFound(t)) => Err(format!("function not found: {t}")),
        Err(e) => Err(format!("other: {e}")),
    }
}

/// One key of a dump: name, type, expiry, contents (canonical order).
type DumpEntry = (Vec<u8>, String, i64, Vec<Vec<u8>>);

fn parse_dump(r: &Outcome) -> Result<(u64, Vec<DumpEntry>), String> {
    let Ok(Reply::Array(items)) = r else {
        return Err(format!("dump failed: {r:?}"));
    };
    let secs = items.first().and_then(Reply::int).ok_or("dump: no time")?;
    let micros = items.get(1).and_then(Reply::int).ok_or("dump: no time")?;
    let mut out = Vec::new();
    for e in &items[2..] {
        let Reply::Array(parts) = e else {
            return Err(format!("dump: bad entry {e:?}"));
        };
        let bytes = |r: &Reply| match r {
            Reply::Bulk(b) => b.clone(),
            Reply::Int(i) => i.to_string().into_bytes(),
            other => format!("{other:?}").into_bytes(),
        };
        let key = bytes(&parts[0]);
        let ty = String::from_utf8_lossy(&bytes(&parts[1])).into_owned();
        let exp = parts[2].int().unwrap_or(-99);
        let Reply::Array(data) = &parts[3] else {
            return Err(format!("dump: bad data {e:?}"));
        };
        let mut data: Vec<Vec<u8>> = data.iter().map(bytes).collect();
        match ty.as_str() {
            "hash" => {
                let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = data
                    .chunks(2)
                    .map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or_default()))
                    .collect();
                pairs.sort();
                data = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
            }
            "set" => data.sort(),
            _ => {}
        }
        out.push((key, ty, exp, data));
    }
    out.sort();
    Ok((secs as u64 * 1000 + micros as u64 / 1000, out))
}

fn show(e: &DumpEntry) -> String {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    format!(
        "{} ({}, exp {}): {:?}",
        s(&e.0),
        e.1,
        e.2,
        e.3.iter().map(|b| s(b)).collect::<Vec<_>>()
    )
}

fn dump_diff(redis: &[DumpEntry], mem: &[DumpEntry]) -> Option<String> {
    if redis == mem {
        return None;
    }
    let mut out = String::new();
    for e in redis.iter().filter(|e| !mem.contains(e)) {
        out.push_str(&format!("\n  redis : {}", show(e)));
    }
    for e in mem.iter().filter(|e| !redis.contains(e)) {
        out.push_str(&format!("\n  memory: {}", show(e)));
    }
    Some(out)
}

/// When the server's dump judged expiry: a function sees keys as of its
/// start, a little before it read TIME, so a key the server still listed
/// although its expiry had passed by that TIME says the start was earlier.
fn dump_time(at: u64, redis: &[DumpEntry]) -> u64 {
    redis
        .iter()
        .filter_map(|e| u64::try_from(e.2).ok())
        .filter(|&exp| exp < at)
        .fold(at, u64::min)
}

/// The dumps agree, but for expiries off by at most `slack` ms: returns the
/// keys whose expiry differs, with the server's.
fn dump_match(
    redis: &[DumpEntry],
    mem: &[DumpEntry],
    slack: u64,
) -> Result<Vec<(Vec<u8>, i64)>, String> {
    let differ = || dump_diff(redis, mem).unwrap_or_default();
    if redis.len() != mem.len() {
        return Err(differ());
    }
    let mut fix = Vec::new();
    for (r, m) in redis.iter().zip(mem) {
        if r.0 != m.0 || r.1 != m.1 || r.3 != m.3 {
            return Err(differ());
        }
        if r.2 != m.2 {
            if r.2 >= 0 && m.2 >= 0 && (r.2 - m.2).unsigned_abs() <= slack {
                fix.push((r.0.clone(), r.2));
            } else {
                return Err(differ());
            }
        }
    }
    Ok(fix)
}

fn dump_call() -> Call {
    Call::new("difftest_dump", vec![]).read_only()
}

// ---------------------------------------------------------------------------
// The harness

struct Env {
    redis: Arc<RedisStore>,
    _server: RedisServer,
    rt: tokio::runtime::Runtime,
}

fn env() -> Env {
    let server = RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let redis = rt.block_on(async {
        let s = RedisStore::connect(&[server.url()], RedisStoreOptions::default())
            .await
            .expect("connect");
        s.command(&cmd(["FUNCTION", "LOAD", "REPLACE", DUMP_LIB]))
            .await
            .expect("load the dump function");
        Arc::new(s)
    });
    Env {
        redis,
        _server: server,
        rt,
    }
}

fn memory_store(clock: &Arc<AtomicU64>) -> MemoryStore {
    let c = clock.clone();
    let mem = MemoryStore::with_clock(Arc::new(move || c.load(Ordering::SeqCst)));
    mem.execute(&cmd(["FUNCTION", "LOAD", DUMP_LIB]))
        .expect("load the dump function");
    mem
}

struct Run<'a> {
    redis: &'a RedisStore,
    mem: MemoryStore,
    clock: Arc<AtomicU64>,
    /// Every call and command so far, with the time it ran at.
    history: Vec<(Step, u64)>,
    /// Leases handed out (current and stale ones), from the server's replies.
    leases: Vec<Lease>,
    next_lease: u128,
    /// The lease ids the last claim sent (its reply hands them out in order).
    claim_ids: Vec<LeaseId>,
    /// Waitpoint tokens handed out, from the server's replies.
    tokens: std::collections::BTreeMap<(usize, usize), WaitpointToken>,
    log: Vec<String>,
}

/// Calls compared, and those during which the server's millisecond moved.
static STEPS: AtomicU64 = AtomicU64::new(0);
static AMBIGUOUS: AtomicU64 = AtomicU64::new(0);
/// What the server answered, by kind (printed with FF_DIFF_STATS=1).
static KINDS: std::sync::Mutex<std::collections::BTreeMap<String, u64>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

fn count_kind(step: &Step, o: &Outcome) {
    let what = match step {
        Step::Call(c) => c.function.to_owned(),
        Step::Cmd(c) => String::from_utf8_lossy(&c[0]).into_owned(),
    };
    let how = match o {
        Ok(Reply::Array(v)) => match (v.first(), v.get(1)) {
            (Some(Reply::Int(0)), Some(code)) => format!(
                "refused {} {}",
                code.text().unwrap_or_default(),
                v.get(2)
                    .and_then(Reply::text)
                    .unwrap_or_default()
                    .split(':')
                    .next()
                    .unwrap_or_default()
            ),
            (Some(Reply::Int(1)), Some(Reply::Int(n))) if what.starts_with("ff_claim") => {
                format!("claimed {n}")
            }
            (Some(Reply::Int(1)), Some(_)) if what == "ff_own_sync" || what == "ff_own_view" => {
                format!(
                    "ok members={} leases={}",
                    v.get(2).and_then(Reply::int).unwrap_or(0),
                    v.len().saturating_sub(
                        3 + 2 * v.get(2).and_then(Reply::int).unwrap_or(0) as usize
                    ) / 4
                )
            }
            (Some(Reply::Int(1)), Some(Reply::Int(n)))
                if what != "ff_get" && what != "ff_renew" =>
            {
                format!(
                    "ok acted={n} repaired={:?} exceptions={}",
                    v.get(2).and_then(Reply::int),
                    v.len().saturating_sub(4) / 2
                )
            }
            (Some(Reply::Int(1)), Some(x)) if what == "ff_get" || what == "ff_renew" => {
                let _ = x;
                "ok".into()
            }
            (Some(Reply::Int(1)), Some(x)) => format!("ok {}", x.text().unwrap_or_default()),
            _ => "array".into(),
        },
        Ok(r) => format!("{r:?}").chars().take(20).collect(),
        Err(e) => format!(
            "error {}",
            e.to_string().chars().take(60).collect::<String>()
        ),
    };
    let mut k = KINDS.lock().unwrap_or_else(|e| e.into_inner());
    *k.entry(format!("{what}: {how}")).or_default() += 1;
}

fn fail(msg: String) -> TestCaseError {
    TestCaseError::fail(msg)
}

impl<'a> Run<'a> {
    async fn redis_time(&self) -> (u64, u64) {
        match self.redis.command(&cmd(["TIME"])).await {
            Ok(Reply::Array(v)) if v.len() == 2 => {
                let s = v[0].int().unwrap_or(0) as u64;
                let us = v[1].int().unwrap_or(0) as u64;
                (s * 1000 + us / 1000, us % 1000)
            }
            other => panic!("TIME answered {other:?}"),
        }
    }

    /// The server's ms, early enough in it that a call fits before the next.
    async fn fresh_ms(&self) -> u64 {
        loop {
            let (ms, us) = self.redis_time().await;
            if us < 600 {
                return ms;
            }
        }
    }

    async fn redis_dump(&self) -> Result<(u64, Vec<DumpEntry>), String> {
        parse_dump(&self.redis.fcall(&dump_call()).await)
    }

    async fn mem_dump(&self, mem: &MemoryStore, clock: &AtomicU64, at: u64) -> Vec<DumpEntry> {
        clock.store(at, Ordering::SeqCst);
        parse_dump(&mem.fcall(&dump_call()).await)
            .expect("memory dump")
            .1
    }

    /// A read both sides must answer the same (no time involved).
    async fn read_both(&mut self, step: Step) -> Result<Outcome, TestCaseError> {
        let (ms, _) = self.redis_time().await;
        let r = run_step(self.redis, &step).await;
        self.clock.store(ms, Ordering::SeqCst);
        let m = run_step(&self.mem, &step).await;
        self.log.push(format!("  read {step:?}"));
        // Set members come in hash order from the server.
        let sorted = |o: &Outcome| match norm(&step, o) {
            Ok(Reply::Array(mut v)) => {
                v.sort_by_key(|r| format!("{r:?}"));
                Ok(Reply::Array(v))
            }
            other => other,
        };
        if sorted(&r) != sorted(&m) {
            return Err(fail(format!(
                "read {step:?}\n  redis : {r:?}\n  memory: {m:?}"
            )));
        }
        Ok(r)
    }

    /// Run one step on both sides at the same server millisecond; returns the
    /// server's outcome.
    async fn step(&mut self, step: Step) -> Result<Outcome, TestCaseError> {
        STEPS.fetch_add(1, Ordering::Relaxed);
        let t0 = self.fresh_ms().await;
        let r = run_step(self.redis, &step).await;
        let (t1, _) = self.redis_time().await;
        count_kind(&step, &r);
        if let Err(StoreError::Unavailable(e)) = &r {
            panic!("redis unavailable: {e}");
        }
        if t0 == t1 {
            self.clock.store(t0, Ordering::SeqCst);
            let m = run_step(&self.mem, &step).await;
            if norm(&step, &r) != norm(&step, &m) {
                return Err(fail(format!(
                    "{step:?} at {t0}\n  redis : {r:?}\n  memory: {m:?}"
                )));
            }
            self.history.push((step, t0));
            return Ok(r);
        }
        // The server's millisecond moved during the call: find the one it
        // ran at by replaying on fresh stores.
        let (at, redis_dump) = self.redis_dump().await.map_err(fail)?;
        let mut report = String::new();
        AMBIGUOUS.fetch_add(1, Ordering::Relaxed);
        for t in (t0..=t1).rev() {
            let clock = Arc::new(AtomicU64::new(0));
            let mem = memory_store(&clock);
            for (s, when) in &self.history {
                clock.store(*when, Ordering::SeqCst);
                let _ = run_step(&mem, s).await;
            }
            clock.store(t, Ordering::SeqCst);
            let m = run_step(&mem, &step).await;
            let dump = self
                .mem_dump(&mem, &clock, dump_time(at, &redis_dump))
                .await;
            let same_reply = norm(&step, &r) == norm(&step, &m);
            match dump_match(&redis_dump, &dump, t1 - t0) {
                Ok(fix) if same_reply => {
                    self.history.push((step, t));
                    // Inside a function the server reads its clock afresh for
                    // SET … PX, so when its millisecond moved during the call
                    // an expiry may be a little later than the function's
                    // TIME; MemoryStore uses one time per call. Align it.
                    for (key, exp) in fix {
                        let align = Step::Cmd(vec![
                            b"PEXPIREAT".to_vec(),
                            key,
                            exp.to_string().into_bytes(),
                        ]);
                        clock.store(t, Ordering::SeqCst);
                        let _ = run_step(&mem, &align).await;
                        self.history.push((align, t));
                    }
                    self.mem = mem;
                    self.clock = clock;
                    return Ok(r);
                }
                result => {
                    if report.len() < 20_000 {
                        report.push_str(&format!(
                            "\n at {t}: memory {m:?}{}",
                            result.err().unwrap_or_default()
                        ));
                    }
                }
            }
        }
        Err(fail(format!(
            "{step:?} between {t0} and {t1}\n  redis : {r:?}{report}"
        )))
    }

    fn lease(&self, i: usize) -> Lease {
        if self.leases.is_empty() {
            Lease {
                execution: exec_id(i),
                id: LeaseId::from_u128(0xbad),
                epoch: 1,
            }
        } else {
            self.leases[i % self.leases.len()].clone()
        }
    }

    fn suspend_args(
        &self,
        lease: usize,
        wps: &[usize],
        condition: usize,
        timeout_ms: u64,
        behaviour: usize,
    ) -> SuspendArgs {
        let names = |v: &[&str]| v.iter().map(|n| SignalName::new(*n).unwrap()).collect();
        let mut ids: Vec<WaitpointId> = wps.iter().map(|w| wp_id(*w)).collect();
        ids.dedup();
        SuspendArgs {
            lease: self.lease(lease),
            waitpoints: ids,
            condition: match condition {
                0 => ResumeCondition::any(),
                1 => ResumeCondition::Count(2),
                2 => ResumeCondition::AnyOf(names(&["b", "c"])),
                3 => ResumeCondition::AllOf(names(&["a", "b"])),
                _ => ResumeCondition::Count(0),
            },
            timeout_ms,
            on_timeout: [
                TimeoutBehaviour::Fail,
                TimeoutBehaviour::Cancel,
                TimeoutBehaviour::Expire,
                TimeoutBehaviour::Resume,
            ][behaviour % 4],
        }
    }

    fn token(&self, exec: usize, wp: usize, how: usize) -> WaitpointToken {
        let forged = || WaitpointToken::parse(&format!("k0.{}", "0".repeat(64))).unwrap();
        match how {
            0 => self.tokens.get(&(exec, wp)).cloned().unwrap_or_else(forged),
            1 => self.tokens.get(&(exec, wp)).map_or_else(forged, |t| {
                let s = t.expose();
                WaitpointToken::parse(&format!(
                    "{}{}",
                    &s[..s.len() - 1],
                    if s.ends_with('0') { '1' } else { '0' }
                ))
                .unwrap()
            }),
            _ => self
                .tokens
                .get(&(exec, (wp + 1) % WAITPOINTS))
                .cloned()
                .unwrap_or_else(forged),
        }
    }

    fn index_key(&self, exec: usize, index: Index, foreign: bool) -> String {
        let p = if foreign { exec + 1 } else { exec };
        let pk = PartitionKeys::new(partition(p));
        match index {
            Index::Delayed => pk.delayed(),
            Index::LeaseExpiry => pk.lease_expiry(),
            Index::AttemptTimeout => pk.attempt_timeout(),
            Index::Deadline => pk.deadline(),
            Index::Terminal => pk.terminal(),
            Index::SuspensionTimeout => pk.suspension_timeout(),
            Index::Eligible(l) => pk.eligible(&Lane::new(LANES[l]).unwrap()),
        }
    }

    fn create_call(&self, c: &CreateOp) -> Call {
        ex::create(&self.create_args(c))
    }

    fn create_args(&self, c: &CreateOp) -> CreateArgs {
        let ns = Namespace::new(["ns1", "ns2"][c.ns]).unwrap();
        let (max, kind, a, b) = c.retry;
        let retry = if kind == 0 {
            RetryPolicy::fixed(max, a)
        } else {
            RetryPolicy::exponential(max, a, a + b)
        };
        CreateArgs {
            execution: exec_id(c.exec),
            namespace: ns,
            lane: Lane::new(LANES[c.lane]).unwrap(),
            kind: Kind::new("job").unwrap(),
            priority: c.priority,
            payload: c.payload.clone(),
            delay_ms: c.delay_ms,
            attempt_timeout_ms: c.attempt_timeout_ms,
            deadline_ms: c.deadline_ms,
            retry,
            max_reclaims: c.max_reclaims,
            retention_ms: c.retention_ms,
            idempotency: c
                .idempotency
                .map(|(k, ttl)| (IdempotencyKey::new(format!("k{k}")).unwrap(), ttl)),
            tags: c
                .tag
                .map(|v| (TagName::new("t").unwrap(), ["a", "b"][v].to_owned()))
                .into_iter()
                .collect(),
            // (the flow of the member's partition, sometimes the other one)
            flow: c.flow.map(|(f, join, cancel_remaining)| Membership {
                flow: flow_id(if f == 0 { 1 - c.exec % 2 } else { c.exec % 2 }),
                join: [
                    JoinPolicy::AllOf,
                    JoinPolicy::AnyOf,
                    JoinPolicy::Quorum(1),
                    JoinPolicy::Quorum(2),
                ][join],
                cancel_remaining,
            }),
            // Every third execution draws on a budget, a quota or needs a capability.
            admission: match c.exec % 9 {
                0 => Admission::parse("b0;;").unwrap(),
                3 => Admission::parse(";q0,q1;").unwrap(),
                6 => Admission::parse("b1;q0;gpu").unwrap(),
                _ => Admission::default(),
            },
        }
    }

    /// One call of lua/admission.lua.
    fn admission_call(&self, what: usize, target: usize, n: u64) -> Call {
        let cfg = config();
        let b = BudgetId::parse(["b0", "b1"][target % 2]).unwrap();
        let q = QuotaId::parse(["q0", "q1"][target % 2]).unwrap();
        let lease = self.lease(target);
        let reason = [BlockReason::Budget, BlockReason::Quota, BlockReason::Route][n as usize % 3];
        match what {
            0 => ad::define_quota(
                &cfg,
                &q,
                &QuotaLimits {
                    window_ms: [1, 5, 60_000][n as usize % 3],
                    max_per_window: n % 3,
                    concurrency: n % 4 / 2,
                },
            ),
            1 => ad::admit(&cfg, &q, &lease),
            2 => ad::release_slot(&cfg, &q, &lease.execution, lease.epoch, n % 2 == 0),
            3 => ad::define_budget(
                &cfg,
                &b,
                &BudgetDef {
                    limits: [(
                        "tokens".to_owned(),
                        DimensionLimits {
                            hard: n % 4,
                            soft: 1,
                        },
                    )]
                    .into(),
                    reset_every_ms: [0, 3, 60_000][n as usize % 3],
                    on_breach: [ad::BreachPolicy::Block, ad::BreachPolicy::Cancel]
                        [n as usize / 3 % 2],
                },
            ),
            4 => ad::report_usage(
                &cfg,
                &b,
                &UsageReport {
                    execution: exec_id(target),
                    attempt: 1,
                    seq: n % 3 + 1,
                    deltas: vec![("tokens".to_owned(), n)],
                },
            ),
            5 if n % 3 == 2 => ad::cancel_for_breach(&lease, &b),
            5 => ad::block(
                &lease,
                [BlockReason::Budget, BlockReason::Quota][n as usize % 2],
                "x",
            ),
            6 => ad::unblock(
                partition(target),
                reason,
                &[exec_id(target), exec_id(target + 1)],
            ),
            7 => ad::reset_budget(&cfg, &b),
            8 => ad::budget_resets(budget_partition(&cfg, &b), 10),
            9 => ad::budget_reconcile(budget_partition(&cfg, &b), "0", 1000),
            10 => ad::quota_reconcile(quota_partition(&cfg, &q), "0", 1000),
            11 => ad::block_route(&exec_id(target)),
            12 => ad::register_worker(
                ["wa", "wb"][target % 2],
                100 + n,
                &[["gpu", "ssd"][n as usize % 2].to_owned()],
            ),
            13 => ad::live_workers(),
            14 => ad::get_budget(&cfg, &b),
            15 => ff_engine::core::contract::scan::partition_heads(partition(target)),
            17 => ad::watch_quota(&cfg, &q),
            16 => ad::breach_cancel(
                partition(target),
                reason,
                &b,
                &[exec_id(target), exec_id(target + 1)],
            ),
            _ => ad::get_quota(&cfg, &q),
        }
    }

    async fn scan_step(
        &mut self,
        function: usize,
        p: usize,
        filter: usize,
        batch: usize,
    ) -> Result<Step, TestCaseError> {
        let f = BatchFunction::ALL[function % BatchFunction::ALL.len()];
        let partition = partition(p);
        let key = f.index(&PartitionKeys::new(partition));
        let ids: Vec<String> = if f.is_sweep() {
            // SSCAN pages differ (hash order on the server): read all, sorted.
            let r = self
                .read_both(Step::Cmd(cmd(["SMEMBERS", key.as_str()])))
                .await?;
            let mut ids: Vec<String> = match r {
                Ok(Reply::Array(v)) => v.iter().filter_map(Reply::text).collect(),
                _ => Vec::new(),
            };
            ids.sort();
            ids.truncate(batch);
            ids
        } else {
            let (now, _) = self.redis_time().await;
            let r = self
                .read_both(Step::Cmd(cmd([
                    "ZRANGEBYSCORE",
                    key.as_str(),
                    "-inf",
                    "+inf",
                    "WITHSCORES",
                    "LIMIT",
                    "0",
                    &batch.to_string(),
                ])))
                .await?;
            let members = match r {
                Ok(Reply::Array(v)) => v
                    .chunks(2)
                    .filter_map(|p| {
                        let id = p[0].text()?;
                        let score: f64 = p.get(1)?.text()?.parse().ok()?;
                        Some(Member {
                            id,
                            score: if score <= 0.0 { 0 } else { score as u64 },
                        })
                    })
                    .collect(),
                _ => Vec::new(),
            };
            let snap = Snapshot {
                now_ms: now,
                members,
                limit: batch,
            };
            plan(&snap, &FailureTracker::default(), batch).act
        };
        let filter = match filter {
            0 => ScannerFilter::default(),
            1 => ScannerFilter {
                namespace: Some(Namespace::new("ns1").unwrap()),
                instance_tag: None,
            },
            _ => ScannerFilter {
                namespace: None,
                instance_tag: Some((TagName::new("t").unwrap(), "a".into())),
            },
        };
        Ok(Step::Call(sc::batch(f, partition, &filter, &ids)))
    }

    async fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        self.log.push(format!("{op:?}"));
        let step = match op {
            Op::Sleep { ms } => {
                tokio::time::sleep(Duration::from_millis(*ms)).await;
                return Ok(());
            }
            Op::Create(c) => Step::Call(self.create_call(c)),
            Op::CreateMany(cs) => {
                let args: Vec<CreateArgs> = cs.iter().map(|c| self.create_args(c)).collect();
                Step::Call(ex::create_many(args[0].execution.partition(), &args))
            }
            Op::EndMany(items) => {
                let reports: Vec<Report> = items
                    .iter()
                    .map(|&(lease, how)| {
                        let lease = self.lease(lease);
                        match how {
                            0 => Report::Complete {
                                lease,
                                result: b"r".to_vec(),
                            },
                            n => Report::Fail {
                                lease,
                                error: "boom".into(),
                                retryable: n == 1,
                            },
                        }
                    })
                    .collect();
                Step::Call(ex::end_many(
                    reports[0].lease().execution.partition(),
                    &reports,
                ))
            }
            Op::Claim {
                partition: p,
                lane,
                n,
                ttl_ms,
            } => {
                let lease_ids: Vec<LeaseId> = (0..*n)
                    .map(|_| {
                        self.next_lease += 1;
                        LeaseId::from_u128(0x0001_ea5e_0000 + self.next_lease)
                    })
                    .collect();
                self.claim_ids = lease_ids.clone();
                Step::Call(ex::claim(&ClaimArgs {
                    partition: partition(*p),
                    lane: Lane::new(LANES[*lane]).unwrap(),
                    worker: WorkerName::new("w").unwrap(),
                    instance: WorkerInstance::new("i1").unwrap(),
                    lease_ttl_ms: *ttl_ms,
                    lease_ids,
                    capabilities: if *n == 3 {
                        vec!["gpu".into()]
                    } else {
                        Vec::new()
                    },
                    // Now and then past the first entries (as after skipped ones).
                    skip: u32::from(*ttl_ms == 100 && *n == 2),
                }))
            }
            Op::Renew { lease, ttl_ms } => Step::Call(ex::renew(&self.lease(*lease), *ttl_ms)),
            Op::Complete { lease, result } => Step::Call(ex::complete(&self.lease(*lease), result)),
            Op::Fail { lease, retryable } => {
                Step::Call(ex::fail(&self.lease(*lease), "boom", *retryable))
            }
            Op::Delay { lease, delay_ms } => Step::Call(ex::delay(&self.lease(*lease), *delay_ms)),
            Op::Release { lease } => Step::Call(ex::release(&self.lease(*lease))),
            Op::Cancel { exec } => Step::Call(ex::cancel(&exec_id(*exec), "stop")),
            Op::Get { exec } => Step::Call(ex::get(&exec_id(*exec))),
            Op::CreateFlow { flow } => {
                let f = flow_id(*flow);
                Step::Call(fl::create_flow(
                    &FlowKeys::new(&f, &config()),
                    &f,
                    &Namespace::new("ns1").unwrap(),
                ))
            }
            Op::AddEdge {
                flow,
                parent,
                child,
                data,
            } => {
                let f = flow_id(*flow);
                Step::Call(fl::add_edge(
                    &FlowKeys::new(&f, &config()),
                    &fl::EdgeArgs {
                        flow: f.clone(),
                        parent: exec_id(*parent),
                        child: exec_id(*child),
                        pass_data: *data,
                    },
                ))
            }
            Op::CancelFlow { flow } => {
                let f = flow_id(*flow);
                Step::Call(fl::cancel_flow(&FlowKeys::new(&f, &config()), &f, "halt"))
            }
            Op::Drain {
                partition: p,
                budget,
            } => Step::Call(fl::drain(partition(*p), *budget)),
            Op::Scan {
                function,
                partition,
                filter,
                batch,
            } => {
                self.scan_step(*function, *partition, *filter, *batch)
                    .await?
            }
            Op::ZAdd {
                exec,
                index,
                score,
                foreign,
            } => Step::Cmd(cmd([
                "ZADD",
                &self.index_key(*exec, *index, *foreign),
                score,
                exec_id(*exec).as_str(),
            ])),
            Op::ZRem { exec, index } => Step::Cmd(cmd([
                "ZREM",
                &self.index_key(*exec, *index, false),
                exec_id(*exec).as_str(),
            ])),
            Op::HSet { exec, field, value } => {
                Step::Cmd(cmd(["HSET", &keys::exec(&exec_id(*exec)), field, value]))
            }
            Op::SAdd { exec, garbage } => {
                let pk = PartitionKeys::of(&exec_id(*exec));
                let member = if *garbage {
                    "garbage".to_owned()
                } else {
                    exec_id(*exec).to_string()
                };
                Step::Cmd(cmd(["SADD", &pk.all(), &member]))
            }
            Op::SRem { exec } => {
                let pk = PartitionKeys::of(&exec_id(*exec));
                Step::Cmd(cmd(["SREM", &pk.all(), exec_id(*exec).as_str()]))
            }
            Op::Del { exec } => Step::Cmd(cmd(["DEL", &keys::exec(&exec_id(*exec))])),
            Op::OwnSync {
                member,
                ttl_ms,
                claim,
                release,
            } => Step::Call(own::sync(
                MEMBERS[*member],
                *ttl_ms,
                OWN_PARTITIONS,
                claim,
                release,
            )),
            Op::OwnLeave { member } => Step::Call(own::leave(MEMBERS[*member])),
            Op::OwnView => Step::Call(own::view()),
            Op::Rotate {
                partition,
                kid,
                secret,
                grace_ms,
            } => Step::Call(rotate_call(*partition, *kid, *secret, *grace_ms)),
            Op::CreateWaitpoint { exec, wp, ttl_ms } => {
                Step::Call(sp::create_waitpoint(&exec_id(*exec), &wp_id(*wp), *ttl_ms))
            }
            Op::Suspend {
                lease,
                wps,
                condition,
                timeout_ms,
                behaviour,
            } => Step::Call(sp::suspend(&self.suspend_args(
                *lease,
                wps,
                *condition,
                *timeout_ms,
                *behaviour,
            ))),
            Op::Signal {
                exec,
                wp,
                token,
                name,
                idempotency,
            } => {
                // A valid token mostly goes where it belongs (the exec and
                // waitpoint then pick one of those handed out).
                let (exec, wp) = match self
                    .tokens
                    .keys()
                    .nth((exec * WAITPOINTS + wp) % self.tokens.len().max(1))
                {
                    Some(k) if *token == 0 => *k,
                    _ => (*exec, *wp),
                };
                Step::Call(sp::signal(&SignalArgs {
                    execution: exec_id(exec),
                    waitpoint: wp_id(wp),
                    token: self.token(exec, wp, *token),
                    name: SignalName::new(["a", "b", "c"][*name]).unwrap(),
                    payload: vec![*name as u8; *name],
                    idempotency: idempotency.map(|k| IdempotencyKey::new(format!("s{k}")).unwrap()),
                }))
            }
            Op::GetWaitpoint { exec, wp } => {
                Step::Call(sp::get_waitpoint(&exec_id(*exec), &wp_id(*wp)))
            }
            Op::ClaimSuspend {
                exec,
                wps,
                condition,
                timeout_ms,
                behaviour,
            } => {
                let create = self.create_call(&CreateOp {
                    exec: *exec,
                    ns: 0,
                    lane: 0,
                    priority: 0,
                    payload: Vec::new(),
                    delay_ms: 0,
                    attempt_timeout_ms: 0,
                    deadline_ms: 0,
                    retry: (0, 0, 0, 1),
                    max_reclaims: 0,
                    retention_ms: 60_000,
                    idempotency: None,
                    tag: None,
                    flow: None,
                });
                let _ = self.step(Step::Call(create)).await?;
                self.next_lease += 1;
                let lease_ids = vec![LeaseId::from_u128(0x0001_ea5e_0000 + self.next_lease)];
                let claim = Step::Call(ex::claim(&ClaimArgs {
                    partition: partition(*exec),
                    lane: Lane::new(LANES[0]).unwrap(),
                    worker: WorkerName::new("w").unwrap(),
                    instance: WorkerInstance::new("i1").unwrap(),
                    lease_ttl_ms: 30_000,
                    lease_ids: lease_ids.clone(),
                    capabilities: Vec::new(),
                    skip: 0,
                }));
                let got = match self.step(claim).await? {
                    Ok(reply) => ex::decode_claim(&reply, &lease_ids).unwrap_or_default(),
                    Err(_) => Vec::new(),
                };
                let Some(c) = got.into_iter().next() else {
                    return Ok(());
                };
                self.leases.push(c.lease);
                let op = Op::Suspend {
                    lease: self.leases.len() - 1,
                    wps: wps.clone(),
                    condition: *condition,
                    timeout_ms: *timeout_ms,
                    behaviour: *behaviour,
                };
                return Box::pin(self.apply(&op)).await;
            }
            Op::Admission { what, target, n } => {
                Step::Call(self.admission_call(*what, *target, *n))
            }
        };
        let r = self.step(step).await?;
        match (op, &r) {
            (Op::CreateWaitpoint { exec, wp, .. }, Ok(reply)) => {
                if let Ok(c) = sp::decode_create_waitpoint(reply) {
                    self.tokens.insert((*exec, *wp), c.token);
                }
            }
            (
                Op::Suspend {
                    lease,
                    wps,
                    condition,
                    timeout_ms,
                    behaviour,
                },
                Ok(reply),
            ) => {
                let args = self.suspend_args(*lease, wps, *condition, *timeout_ms, *behaviour);
                if let Ok(s) = sp::decode_suspend(&args, reply) {
                    let exec = (0..EXECS)
                        .find(|i| exec_id(*i) == args.lease.execution)
                        .unwrap_or(0);
                    for (i, (_, t)) in s.tokens.into_iter().enumerate() {
                        self.tokens.insert((exec, wps[i]), t);
                    }
                }
            }
            _ => {}
        }
        if let (Op::Claim { .. }, Ok(reply)) = (op, &r) {
            if let Ok(claimed) = ex::decode_claim(reply, &self.claim_ids) {
                self.leases.extend(claimed.into_iter().map(|c| c.lease));
            }
        }
        Ok(())
    }
}

async fn run_sequence(redis: &RedisStore, ops: &[Op]) -> Result<(), TestCaseError> {
    redis.command(&cmd(["FLUSHALL"])).await.expect("FLUSHALL");
    let clock = Arc::new(AtomicU64::new(0));
    let mem = memory_store(&clock);
    let mut run = Run {
        redis,
        mem,
        clock,
        history: Vec::new(),
        leases: Vec::new(),
        next_lease: 0,
        claim_ids: Vec::new(),
        tokens: Default::default(),
        log: Vec::new(),
    };
    // The same start on both sides: what Client::new records.
    let (ms, _) = run.redis_time().await;
    run.clock.store(ms, Ordering::SeqCst);
    let redis_arc: Arc<dyn Store> = Arc::new(redis.clone());
    Client::new(redis_arc, config())
        .await
        .expect("client on redis");
    Client::new(Arc::new(run.mem.clone()), config())
        .await
        .expect("client on memory");
    for (k, v) in [
        ("flow_partitions", PARTITIONS.to_string()),
        ("budget_partitions", config().budget_partitions.to_string()),
        ("quota_partitions", config().quota_partitions.to_string()),
    ] {
        run.history
            .push((Step::Cmd(cmd(["HSETNX", keys::CONFIG, k, &v])), ms));
    }
    run.history
        .push((Step::Cmd(cmd(["SADD", keys::LANES, "default"])), ms));
    run.step(Step::Cmd(cmd(["SADD", keys::LANES, "l2"])))
        .await?
        .map_err(|e| fail(format!("SADD: {e}")))?;
    // Mostly a secret from the start (without one, waitpoints are refused).
    if ops.len() % 4 != 0 {
        for p in 0..PARTITIONS as usize {
            run.step(Step::Call(rotate_call(p, 0, 1, 0)))
                .await?
                .map_err(|e| fail(format!("rotate: {e}")))?;
        }
    }

    // Most sequences work with flows that exist (so members and edges land).
    let flows = (0..FLOWS).filter(|_| ops.len() % 5 != 0);
    for (i, op) in flows
        .map(|flow| Op::CreateFlow { flow })
        .chain(ops.iter().cloned())
        .enumerate()
    {
        if let Err(e) = run.apply(&op).await {
            return Err(fail(format!("op #{i}: {e}\nlog:\n{}", run.log.join("\n"))));
        }
    }
    let (at, redis_dump) = run.redis_dump().await.map_err(fail)?;
    let mem_dump = run
        .mem_dump(&run.mem, &run.clock, dump_time(at, &redis_dump))
        .await;
    if let Some(diff) = dump_diff(&redis_dump, &mem_dump) {
        return Err(fail(format!(
            "final dump at {at} differs:{diff}\nlog:\n{}",
            run.log.join("\n")
        )));
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("FF_DIFF_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

fn differential(seed_name: &str) {
    let env = env();
    let seed_text = seed_text();
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        proptest::test_runner::TestRng::from_seed(
            proptest::test_runner::RngAlgorithm::ChaCha,
            &seed(seed_name, &seed_text),
        ),
    );
    let strategy = proptest::collection::vec(op(), 5..=30);
    let started = std::time::Instant::now();
    let result = runner.run(&strategy, |ops| {
        env.rt.block_on(run_sequence(&env.redis, &ops))
    });
    eprintln!(
        "differential {seed_name}: {} sequences in {:?} ({} calls so far in this process, {} needed a replay)",
        cases(),
        started.elapsed(),
        STEPS.load(Ordering::Relaxed),
        AMBIGUOUS.load(Ordering::Relaxed),
    );
    if std::env::var("FF_DIFF_STATS").is_ok() {
        for (k, n) in KINDS.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            eprintln!("{n:>7}  {k}");
        }
    }
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, ops)) => {
            panic!("MemoryStore and Redis diverge (replay: FF_DIFF_SEED={seed_text}).\nMinimal sequence: {ops:#?}\n{reason}")
        }
        Err(e) => panic!("{e} (FF_DIFF_SEED={seed_text})"),
    }
}

/// The run's seed: FF_DIFF_SEED to replay one, otherwise a fresh one.
fn seed_text() -> String {
    std::env::var("FF_DIFF_SEED").unwrap_or_else(|_| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        format!("{:016x}", h.finish())
    })
}

fn seed(name: &str, text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in name.bytes().chain(text.bytes()).enumerate() {
        out[i % 32] = out[i % 32].wrapping_mul(31).wrapping_add(b);
    }
    out
}

#[test]
fn differential_a() {
    differential("a");
}

#[test]
fn differential_b() {
    differential("b");
}

#[test]
fn differential_c() {
    differential("c");
}

#[test]
fn differential_d() {
    differential("d");
}
