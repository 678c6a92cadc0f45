//! `e2e`: N no-op executions created by bulk submit (`Client::create_many`,
//! the submit rate; BullMQ's figure is its `addBulk`), then one `Worker` runs
//! them all to completion (claim → handler → complete rate).

use super::util::{self, progress, Report};
use super::{BenchResult, Ctx, Scenario};
use ff_core::keys::PartitionKeys;
use ff_engine::ExecutionSpec;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Figures to reach: completed jobs per second, and submits per second.
const TARGET_JOBS: f64 = 45_000.0;
const TARGET_SUBMIT: f64 = 60_000.0;

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let n = ctx.n;
    let mut r = ctx.report(Scenario::E2e);
    progress!("submitting {n} no-op executions in bulk");
    let created =
        util::create_many(ctx, n, |_| ExecutionSpec::new("bench.noop").payload("x")).await?;
    let submit_per_sec = util::rate(n, created.secs);

    // No-op handlers finish at once, so the concurrency is the depth of the
    // claim → report pipeline: 4096 keeps the server busy (512 left it idle
    // about a fifth of the time; against 2048, 4096 made the server 94% →
    // 95% busy and the calls fuller, 0.0244 → 0.0220 per job: 52.6 k → 57.3 k
    // jobs/s, medians of 7 alternating runs; 8192 gained nothing more).
    let concurrency = 4096;
    let cpu = ctx.admin.load_start().await?;
    let (worker, secs) =
        util::noop_worker_until(ctx, n, concurrency, Duration::from_secs(600)).await?;
    let load = ctx.admin.load_since(cpu).await?;
    let completed = worker.stats().completed.load(Relaxed);
    let max_running = worker.stats().max_running.load(Relaxed);
    let report_errors = worker.stats().report_errors.load(Relaxed);
    worker.shutdown().await;
    let cfg = *ctx.client.config();
    let terminal =
        util::index_total(ctx.store.as_ref(), &cfg, PartitionKeys::terminal, false).await?;

    r.set("seconds", util::round(secs, 4));
    r.set("jobs_per_sec", util::round(util::rate(completed, secs), 0));
    r.set("submit_per_sec", util::round(submit_per_sec, 0));
    r.set("ok", completed == n && terminal == n);
    r.set("target_jobs_per_sec", TARGET_JOBS);
    r.set("target_submit_per_sec", TARGET_SUBMIT);
    r.set(
        "meets_target",
        util::rate(completed, secs) >= TARGET_JOBS && submit_per_sec >= TARGET_SUBMIT,
    );
    r.set("completed", completed);
    r.set("terminal_after", terminal);
    r.set("concurrency", concurrency as u64);
    r.set("max_running", max_running);
    r.set("report_errors", report_errors);
    load.report(&mut r, ctx.admin.node_count(), secs, completed);
    created.report(&mut r);
    Ok(r)
}
