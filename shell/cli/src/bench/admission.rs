//! `admission`: claim throughput with a budget and a quota in the path, and
//! how soon blocked work comes back after a budget reset.
//!
//! 1. **Plain** (baseline): N no-op executions, one `Worker` runs them.
//! 2. **Admitted**: N executions that each draw on one budget (a limit far
//!    above what the run uses) and one quota (a concurrency cap far above
//!    the worker's concurrency); the same `Worker` runs them: every claim
//!    also reads the budget's breach marker and takes a quota slot, every
//!    end gives the slot back.
//! 3. **Unblock after reset**: a budget breached, M executions drawing on it
//!    claimed and so blocked; with an engine running (default config), the
//!    budget is reset and the time until every one is eligible again is
//!    measured (the reset announces the change; the unblock scanner moves
//!    them back).

use super::util::{self, progress, Report};
use super::{BenchResult, Ctx, Scenario};
use ff_core::admission::QuotaLimits;
use ff_core::contract::admission::{BudgetDef, DimensionLimits, UsageReport};
use ff_core::keys::PartitionKeys;
use ff_core::{Lane, WorkerInstance, WorkerName};
use ff_engine::engine::{Engine, EngineConfig};
use ff_engine::ExecutionSpec;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

const BUDGET: &str = "bench.spend";
const QUOTA: &str = "bench.slots";
const CAPPED: &str = "bench.capped";
/// Blocked executions in the unblock phase (at most N).
const BLOCKED: u64 = 2_000;
const CONCURRENCY: usize = 512;
/// Longest a phase may take.
const LIMIT: Duration = Duration::from_secs(600);

/// One Worker runs everything eligible; returns (jobs/s, completed).
async fn run_worker(ctx: &Ctx, n: u64) -> BenchResult<(f64, u64)> {
    let (worker, secs) = util::noop_worker_until(ctx, n, CONCURRENCY, LIMIT).await?;
    let completed = worker.stats().completed.load(Relaxed);
    worker.shutdown().await;
    Ok((util::rate(completed, secs), completed))
}

fn budget(hard: u64) -> BudgetDef {
    BudgetDef {
        limits: [("calls".to_owned(), DimensionLimits { hard, soft: 0 })].into(),
        ..BudgetDef::default()
    }
}

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let n = ctx.n;
    let mut r = ctx.report(Scenario::Admission);
    let c = &ctx.client;

    progress!("plain: {n} no-op executions");
    util::create_many(ctx, n, |_| ExecutionSpec::new("bench.noop")).await?;
    let (plain_rate, plain_done) = run_worker(ctx, n).await?;

    progress!("admitted: {n} executions drawing on a budget and a quota");
    c.define_budget(BUDGET, &budget(1_000_000_000_000)).await?;
    c.define_quota(
        QUOTA,
        &QuotaLimits {
            window_ms: 60_000,
            max_per_window: 0,
            concurrency: 100_000,
        },
    )
    .await?;
    let created = util::create_many(ctx, n, |_| {
        ExecutionSpec::new("bench.noop").budget(BUDGET).quota(QUOTA)
    })
    .await?;
    let (admitted_rate, admitted_done) = run_worker(ctx, n).await?;
    let holders_after = c.get_quota(QUOTA).await?.holders;

    let m = BLOCKED.min(n.max(1));
    progress!("unblock: {m} executions blocked on a breached budget, then a reset");
    let engine = Engine::start(EngineConfig::default(), ctx.engine_store().await?).await?;
    c.define_budget(CAPPED, &budget(1)).await?;
    let first = c
        .create(ExecutionSpec::new("bench.noop").budget(CAPPED))
        .await?
        .execution;
    let (lane, worker, instance) = (
        Lane::new("default")?,
        WorkerName::new("bench")?,
        WorkerInstance::new("bench-1")?,
    );
    let ttl = Duration::from_secs(60);
    let got = c.claim(&lane, &worker, &instance, ttl, 1).await?;
    let Some(held) = got.into_iter().find(|g| g.lease.execution == first) else {
        return Err("the first capped execution was not handed out".into());
    };
    let report = UsageReport {
        execution: first,
        attempt: held.attempt,
        seq: 1,
        deltas: vec![("calls".to_owned(), 1)],
    };
    c.report_usage(CAPPED, &report).await?;
    c.complete(&held.lease, b"").await?;
    util::create_many(ctx, m, |_| ExecutionSpec::new("bench.noop").budget(CAPPED)).await?;
    // Claims hand them out and block them (nothing else is eligible).
    let t = Instant::now();
    let cfg = *c.config();
    let store = ctx.store.as_ref();
    while util::index_total(store, &cfg, PartitionKeys::blocked_budget, false).await? < m
        && t.elapsed() < LIMIT
    {
        c.claim(&lane, &worker, &instance, ttl, 1_000).await?;
    }
    let blocked = util::index_total(store, &cfg, PartitionKeys::blocked_budget, false).await?;
    let eligible = |cfg| util::index_total(store, cfg, |pk| pk.eligible(&lane), false);
    let t = Instant::now();
    c.reset_budget(CAPPED).await?;
    let mut first_back = None;
    let mut back = 0;
    while t.elapsed() < Duration::from_secs(60) {
        back = eligible(&cfg).await?;
        if back > 0 && first_back.is_none() {
            first_back = Some(t.elapsed());
        }
        if back >= blocked {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let all_back = t.elapsed();
    // The scanner counts a cycle's moves once all its calls returned.
    let counted = Instant::now();
    while util::scanner(&engine, "unblock").is_some_and(|s| s.acted < back)
        && counted.elapsed() < Duration::from_secs(2)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let unblock = util::scanner(&engine, "unblock");
    let errors = util::engine_errors(&engine);
    engine.shutdown().await;

    let ms = |d: Duration| util::round(d.as_secs_f64() * 1000.0, 1);
    r.set("plain_jobs_per_sec", util::round(plain_rate, 0));
    r.set("admitted_jobs_per_sec", util::round(admitted_rate, 0));
    r.set(
        "admitted_vs_plain",
        util::round(admitted_rate / plain_rate.max(1e-9), 3),
    );
    r.set("quota_holders_after", holders_after);
    r.set("blocked", blocked);
    r.set("unblocked", back);
    r.set("reset_to_first_eligible_ms", first_back.map(ms));
    r.set("reset_to_all_eligible_ms", ms(all_back));
    r.set(
        "unblock_scanner",
        unblock
            .as_ref()
            .map_or(serde_json::Value::Null, util::stats_json),
    );
    r.set("engine_errors", errors);
    r.set(
        "ok",
        plain_done == n
            && admitted_done == n
            && holders_after == 0
            && blocked == m
            && back == blocked
            && errors == 0,
    );
    created.report(&mut r);
    Ok(r)
}
