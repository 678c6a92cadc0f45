//! `lateness`: executions delayed by short random delays (20–500 ms), created
//! at a steady rate for a while with the engine running; the distribution of
//! (promoted at − due at). Due at is the execution's `created` field plus its
//! delay; promoted at is the enqueue time in its eligible score.

use super::util::{self, progress, round, Report};
use super::{BenchResult, Ctx, Scenario};
use ff_core::contract::limits::MAX_PRIORITY;
use ff_core::{ExecutionId, Lane};
use ff_engine::engine::{Engine, EngineConfig};
use ff_engine::ExecutionSpec;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// The figure not to exceed, in ms.
const TARGET_P99_MS: f64 = 50.0;

/// Shortest and longest delay, ms.
const DELAYS: std::ops::RangeInclusive<u64> = 20..=500;

/// Creations are started every TICK.
const TICK: Duration = Duration::from_millis(10);

/// 2^42: the eligible score is (MAX_PRIORITY - priority) * 2^42 + enqueued_ms.
const PRIORITY_SCALE: u64 = 1 << 42;

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let n = ctx.n;
    let mut r = ctx.report(Scenario::Lateness);
    let engine = Engine::start(EngineConfig::default(), ctx.engine_store().await?).await?;
    // Let the start-up cycle finish and the wake-up subscription come up.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let period = Duration::from_secs_f64(ctx.seconds.max(0.1));
    let ticks = (period.as_millis() / TICK.as_millis()).max(1) as u64;
    progress!(
        "creating {n} executions over {period:?} ({:.0}/s), delays {}-{} ms",
        n as f64 / period.as_secs_f64(),
        DELAYS.start(),
        DELAYS.end()
    );
    let cpu = ctx.admin.load_start().await?;
    let t = Instant::now();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut handles = Vec::with_capacity(n as usize);
    let mut started = 0u64;
    for k in 0..ticks {
        interval.tick().await;
        let upto = n * (k + 1) / ticks;
        while started < upto {
            let client = ctx.client.clone();
            handles.push(tokio::spawn(async move {
                let delay = rand::random_range(DELAYS);
                let spec = ExecutionSpec::new("bench.lateness")
                    .payload("x")
                    .delay(Duration::from_millis(delay));
                client.create(spec).await.map(|c| (c.execution, delay))
            }));
            started += 1;
        }
    }
    let mut created: Vec<(ExecutionId, u64)> = Vec::with_capacity(n as usize);
    for h in handles {
        created.push(h.await??);
    }
    let create_secs = t.elapsed().as_secs_f64();
    progress!("created {n} in {create_secs:.2} s; waiting for the last promotions");
    let (reached, _, stats) = util::wait_acted(
        &engine,
        "delayed_promoter",
        n,
        Duration::from_millis(*DELAYS.end()) + Duration::from_secs(10),
    )
    .await;
    let load = ctx.admin.load_since(cpu).await?;
    let load_secs = t.elapsed().as_secs_f64();
    let errors = util::engine_errors(&engine);
    let all_scanners = util::scanners_json(&engine);
    let clean = engine.shutdown().await;

    // promoted at: the eligible scores; due at: created + delay.
    let lane = Lane::default_lane();
    let scores: HashMap<String, f64> =
        util::index_members(ctx.store.as_ref(), ctx.client.config(), |k| {
            k.eligible(&lane)
        })
        .await?
        .into_iter()
        .collect();
    let records: Vec<BenchResult<(u64, u64, u32)>> =
        futures::stream::iter(created.iter().map(|(id, delay)| {
            let client = &ctx.client;
            async move {
                let rec = client.get(id).await?;
                Ok((rec.created_at_ms, *delay, rec.priority))
            }
        }))
        .buffered(util::IN_FLIGHT)
        .collect()
        .await;
    let mut lateness = Vec::with_capacity(created.len());
    let mut missing = 0u64;
    for ((id, _), rec) in created.iter().zip(records) {
        let (created_ms, delay, priority) = rec?;
        let Some(score) = scores.get(id.as_str()) else {
            missing += 1;
            continue;
        };
        let base = u64::from(MAX_PRIORITY - priority) * PRIORITY_SCALE;
        let promoted = (*score as u64).saturating_sub(base) as i64;
        lateness.push(promoted - (created_ms + delay) as i64);
    }
    lateness.sort_unstable();
    let p = |q| util::percentile(&lateness, q);
    let mean = if lateness.is_empty() {
        0.0
    } else {
        lateness.iter().sum::<i64>() as f64 / lateness.len() as f64
    };
    let p99 = p(0.99) as f64;

    r.set("seconds", round(create_secs, 3));
    r.set("p50_ms", p(0.5));
    r.set("p99_ms", p(0.99));
    r.set("ok", reached && missing == 0 && errors == 0);
    r.set("target_p99_ms", TARGET_P99_MS);
    r.set(
        "meets_target",
        reached && missing == 0 && p99 <= TARGET_P99_MS,
    );
    r.set("p90_ms", p(0.9));
    r.set("p999_ms", p(0.999));
    r.set("max_ms", lateness.last().copied().unwrap_or(0));
    r.set("min_ms", lateness.first().copied().unwrap_or(0));
    r.set("mean_ms", round(mean, 2));
    r.set("early", lateness.iter().filter(|&&x| x < 0).count());
    r.set("measured", lateness.len());
    r.set("missing", missing);
    r.set("create_per_sec", round(util::rate(n, create_secs), 0));
    if let Some(s) = &stats {
        r.set("scanner", util::stats_json(s));
    }
    r.set("all_scanners", all_scanners);
    r.set("engine_errors", errors);
    r.set("clean_shutdown", clean);
    load.report(&mut r, ctx.admin.node_count(), load_secs, n);
    Ok(r)
}
