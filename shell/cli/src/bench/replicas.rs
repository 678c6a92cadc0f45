//! `replicas`: 1, 2 and 4 engine replicas sharing the partitions (ownership
//! on, the default). For each count, on a wiped server:
//!
//! * **rebalance**: the replicas start together; the time until every
//!   partition is held by exactly one of them, each at its fair share;
//! * **idle**: the Valkey commands per second they cause together with
//!   nothing to do (INFO commandstats over `seconds`) — it should not grow
//!   with the replica count beyond the heartbeats (one FCALL per replica per
//!   heartbeat interval);
//! * **drain**: N executions created delayed so that all come due at one
//!   instant; the time from that instant until the replicas together have
//!   promoted every one (items/s), and how the work was split.
//!
//! Last, 4 replicas with ownership off (each scans every partition), the
//! baseline the figures compare against.

use super::util::{self, progress, rate, round, Report};
use super::{BenchResult, Ctx, Scenario};
use ff_engine::engine::{Engine, EngineConfig};
use ff_engine::ExecutionSpec;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;

/// The replica counts compared.
const COUNTS: [usize; 3] = [1, 2, 4];
/// Rebalancing must finish within this.
const REBALANCE_LIMIT: Duration = Duration::from_secs(30);
/// Executions created to measure the create rate before the drain.
const CALIBRATION: u64 = 5_000;
/// Time the replicas get after rebalancing before the idle count.
const SETTLE: Duration = Duration::from_secs(1);

async fn start_replicas(ctx: &Ctx, k: usize, ownership: bool) -> BenchResult<Vec<Engine>> {
    let mut engines = Vec::with_capacity(k);
    for _ in 0..k {
        let config = EngineConfig {
            ownership,
            ..EngineConfig::default()
        };
        engines.push(Engine::start(config, ctx.engine_store().await?).await?);
    }
    Ok(engines)
}

/// Every partition held by exactly one replica, each at its fair share
/// (with ownership off, each scans everything from the start).
fn settled(engines: &[Engine], partitions: u16) -> bool {
    if engines.iter().all(|e| e.member_id().is_none()) {
        return true;
    }
    let counts: Vec<usize> = engines.iter().map(|e| e.owned_partitions().len()).collect();
    let mut all: Vec<u16> = engines.iter().flat_map(|e| e.owned_partitions()).collect();
    all.sort_unstable();
    all.dedup();
    let (min, max) = (counts.iter().min(), counts.iter().max());
    all.len() == partitions as usize
        && counts.iter().sum::<usize>() == partitions as usize
        && matches!((min, max), (Some(a), Some(b)) if b - a <= 1)
}

fn promoted(engines: &[Engine]) -> Vec<u64> {
    engines
        .iter()
        .map(|e| util::scanner(e, "delayed_promoter").map_or(0, |s| s.acted))
        .collect()
}

async fn one_count(ctx: &Ctx, k: usize, ownership: bool) -> BenchResult<(Value, bool)> {
    ctx.admin.flushall().await?;
    let partitions = ctx.client.config().flow_partitions;
    progress!("{k} replica(s), ownership {ownership}: starting");
    let t = Instant::now();
    let engines = start_replicas(ctx, k, ownership).await?;
    while !settled(&engines, partitions) {
        if t.elapsed() > REBALANCE_LIMIT {
            return Err(format!("{k} replicas did not settle within {REBALANCE_LIMIT:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rebalance = t.elapsed().as_secs_f64();
    tokio::time::sleep(SETTLE).await;

    let period = Duration::from_secs_f64(ctx.seconds.max(0.1));
    progress!("{k} replica(s): idle for {period:?}");
    let cpu = ctx.admin.load_start().await?;
    let t = Instant::now();
    tokio::time::sleep(period).await;
    let idle = ctx.admin.load_since(cpu).await?;
    let idle_secs = t.elapsed().as_secs_f64();
    let idle_calls = idle.stats.engine_calls(ctx.admin.node_count());

    // Everything comes due at one instant, after creation ends: the create
    // rate is measured first on executions due far later (never promoted here).
    let n = ctx.n;
    let probe = util::create_many(ctx, CALIBRATION, |_| {
        ExecutionSpec::new("bench.replicas.probe").delay(Duration::from_secs(3600))
    })
    .await?;
    let create_rate = rate(CALIBRATION, probe.secs).max(1.0);
    let lead = Duration::from_secs_f64(1.0 + 3.0 * n as f64 / create_rate);
    let due_at = Instant::now() + lead;
    progress!("{k} replica(s): creating {n} executions due in {lead:?}");
    let created = util::create_many(ctx, n, move |_| {
        ExecutionSpec::new("bench.replicas").payload("x").delay(
            due_at
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        )
    })
    .await?;
    let created_late = Instant::now() > due_at;
    tokio::time::sleep_until(due_at).await;
    // A stall of the whole process past the leases moves partitions around;
    // this shows it.
    let owned_at_due: Vec<usize> = engines.iter().map(|e| e.owned_partitions().len()).collect();
    let cpu = ctx.admin.load_start().await?;
    let t = Instant::now();
    let timeout = Duration::from_secs(60) + Duration::from_millis(n);
    let mut last = Instant::now();
    let reached = loop {
        let total: u64 = promoted(&engines).iter().sum();
        if total >= n {
            break true;
        }
        if t.elapsed() > timeout {
            break false;
        }
        if last.elapsed() >= Duration::from_secs(1) {
            progress!("  promoted {total}/{n}");
            last = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    let drain_secs = t.elapsed().as_secs_f64();
    let drain = ctx.admin.load_since(cpu).await?;
    let split = promoted(&engines);
    let errors: u64 = engines.iter().map(util::engine_errors).sum();
    let mut clean = true;
    for e in engines {
        clean &= e.shutdown().await;
    }
    // Created after their due time: the drain was not measured from one instant.
    let ok = reached && errors == 0 && clean && split.iter().sum::<u64>() == n && !created_late;
    let figures = json!({
        "replicas": k,
        "ownership": ownership,
        "rebalance_seconds": round(rebalance, 3),
        "idle_seconds": round(idle_secs, 3),
        "idle_commands_per_sec": round(rate(idle_calls, idle_secs), 2),
        "idle_fcalls_per_sec": round(rate(idle.stats.calls("fcall"), idle_secs), 2),
        "idle_top_commands": idle.stats.top(6),
        "drain_seconds": round(drain_secs, 4),
        "drain_items_per_sec": round(rate(n, drain_secs), 0),
        "drain_server_commands_per_item": round(drain.stats.engine_calls(ctx.admin.node_count()) as f64 / n.max(1) as f64, 3),
        "drain_server_cpu_fraction": round(drain.cpu_seconds / drain_secs.max(1e-9), 3),
        "promoted_per_replica": split,
        "owned_at_due": owned_at_due,
        "created_after_due": created_late,
        "create_per_sec": round(rate(n, created.secs), 0),
        "engine_errors": errors,
        "clean_shutdown": clean,
        "ok": ok,
    });
    progress!("{k} replica(s): {figures}");
    Ok((figures, ok))
}

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let mut r = ctx.report(Scenario::Replicas);
    r.set("seconds", ctx.seconds);
    let mut runs = Vec::new();
    let mut all_ok = true;
    // The counts with ownership, then the largest without it: every replica
    // scanning every partition, as a baseline.
    let plan = COUNTS
        .iter()
        .map(|&k| (k, true))
        .chain([(COUNTS[COUNTS.len() - 1], false)]);
    for (k, ownership) in plan {
        let (figures, ok) = one_count(ctx, k, ownership).await?;
        all_ok &= ok;
        runs.push(figures);
    }
    r.set("ok", all_ok);
    r.set("runs", Value::Array(runs));
    Ok(r)
}
