//! `idle`: an engine with the default config and nothing to do; the Valkey
//! commands per second it causes (INFO commandstats over the period, after a
//! settling second, less the bench's own INFO and CONFIG RESETSTAT).

use super::util::{self, progress, round, Report};
use super::{BenchResult, Ctx, Scenario};
use ff_engine::engine::{Engine, EngineConfig};
use std::time::Duration;
use tokio::time::Instant;

/// The figure not to exceed, in commands per second.
const TARGET: f64 = 50.0;

/// Time the engine gets to finish its start-up cycle before counting.
const SETTLE: Duration = Duration::from_secs(1);

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let mut r = ctx.report(Scenario::Idle);
    let period = Duration::from_secs_f64(ctx.seconds.max(0.1));
    let engine = Engine::start(EngineConfig::default(), ctx.engine_store().await?).await?;
    tokio::time::sleep(SETTLE).await;
    let cpu = ctx.admin.load_start().await?;
    progress!("engine idle; counting commands for {period:?}");
    let t = Instant::now();
    tokio::time::sleep(period).await;
    let load = ctx.admin.load_since(cpu).await?;
    let secs = t.elapsed().as_secs_f64();
    let errors = util::engine_errors(&engine);
    let all_scanners = util::scanners_json(&engine);
    let cycles: u64 = engine.metrics().iter().map(|s| s.cycles).sum();
    let clean = engine.shutdown().await;

    let calls = load.stats.engine_calls(ctx.admin.node_count());
    let per_sec = util::rate(calls, secs);
    r.set("seconds", round(secs, 3));
    r.set("commands_per_sec", round(per_sec, 2));
    r.set("ok", errors == 0);
    r.set("target_commands_per_sec", TARGET);
    r.set("meets_target", per_sec <= TARGET);
    r.set("commands", calls);
    r.set("scanner_cycles", cycles);
    r.set("all_scanners", all_scanners);
    r.set("engine_errors", errors);
    r.set("clean_shutdown", clean);
    r.set("server_cpu_fraction", round(load.cpu_seconds / secs, 4));
    r.set("server_top_commands", load.stats.top(10));
    Ok(r)
}
