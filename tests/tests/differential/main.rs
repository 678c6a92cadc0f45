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

mod apply;
#[path = "../common/mod.rs"]
mod common;
mod harness;
mod ops;
mod steps;

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
use ff_engine::core::retry::{Jitter, RetryPolicy};
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
use harness::*;
use ops::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use steps::*;

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
