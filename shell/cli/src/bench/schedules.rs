//! `schedules`: N schedules firing every second (their phases spread over
//! the second), the engine running for SECONDS; the distribution of
//! (created at − fire time) of the executions the fires made, a check that
//! every fire time made exactly one execution, and then the engine's
//! commands/s while N schedules (and N/10) are defined but not due (idle
//! between fires). The full size: `--n 10000 --seconds 60`; the
//! default is smaller (1 000 for 10 s) to fit a shared machine.

use super::util::{self, progress, round, Report};
use super::{BenchResult, Ctx, Scenario};
use ff_core::reply::Reply;
use ff_engine::client::Schedule;
use ff_engine::engine::{Engine, EngineConfig};
use ff_engine::store::cmd;
use ff_engine::ExecutionSpec;
use futures::StreamExt;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// The lateness figure not to exceed, in ms.
const TARGET_P99_MS: f64 = 50.0;
/// Definitions in flight at once.
const DEFINE_CONCURRENCY: usize = 64;
/// Executions read back at most (a sample past this).
const MAX_READ: usize = 200_000;
/// How long each idle measurement counts.
const IDLE: Duration = Duration::from_secs(5);

async fn define(
    ctx: &Ctx,
    prefix: &str,
    n: u64,
    every: Duration,
    base_ms: u64,
) -> BenchResult<f64> {
    let t = Instant::now();
    let results: Vec<_> = futures::stream::iter(0..n)
        .map(|i| {
            let client = ctx.client.clone();
            let name = format!("{prefix}-{i}");
            // Phases spread over the interval: i·every/n after the base.
            let start = base_ms + i * every.as_millis() as u64 / n.max(1);
            async move {
                client
                    .define_schedule(
                        &name,
                        Schedule::every(every)
                            .start_at_ms(start)
                            .template(ExecutionSpec::new("bench.tick").payload("x")),
                    )
                    .await
            }
        })
        .buffer_unordered(DEFINE_CONCURRENCY)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(t.elapsed().as_secs_f64())
}

/// Every execution's (fire time, created at), by schedule (read back with
/// pipelined HMGETs of the partitions' `all` sets).
async fn read_back(ctx: &Ctx) -> BenchResult<Vec<(String, u64, u64)>> {
    let parts = util::flow_partitions(ctx.client.config());
    let calls: Vec<_> = parts
        .iter()
        .map(|p| cmd(["SMEMBERS", &ff_core::keys::PartitionKeys::new(*p).all()]))
        .collect();
    let mut ids = Vec::new();
    for r in ctx.store.command_many(&calls).await {
        if let Reply::Array(items) = r? {
            ids.extend(items.iter().filter_map(Reply::text));
        }
    }
    ids.truncate(MAX_READ);
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(10_000) {
        let cmds: Vec<_> = chunk
            .iter()
            .map(|id| {
                cmd([
                    "HMGET",
                    &format!("{}{id}", ff_core::keys::EXEC_PREFIX),
                    "tag.ff.schedule",
                    "tag.ff.fire",
                    "created",
                ])
            })
            .collect();
        for r in ctx.store.command_many(&cmds).await {
            if let Reply::Array(v) = r? {
                let t = |i: usize| v.get(i).and_then(Reply::text);
                if let (Some(s), Some(f), Some(c)) = (t(0), t(1), t(2)) {
                    if let (Ok(f), Ok(c)) = (f.parse(), c.parse()) {
                        out.push((s, f, c));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// CPU time this process has used (user + system, seconds; Linux only:
/// `/proc/self/stat`, in clock ticks of 1/100 s).
fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // (fields after the command name, which is in parentheses)
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some((ticks(11)? + ticks(12)?) as f64 / 100.0)
}

async fn idle_rate(ctx: &Ctx) -> BenchResult<(f64, u64)> {
    let engine = Engine::start(EngineConfig::default(), ctx.engine_store().await?).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cpu = ctx.admin.load_start().await?;
    let t = Instant::now();
    tokio::time::sleep(IDLE).await;
    let load = ctx.admin.load_since(cpu).await?;
    let secs = t.elapsed().as_secs_f64();
    let errors = util::engine_errors(&engine);
    engine.shutdown().await;
    Ok((
        util::rate(load.stats.engine_calls(ctx.admin.node_count()), secs),
        errors,
    ))
}

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let n = ctx.n;
    let mut r = ctx.report(Scenario::Schedules);
    let period = Duration::from_secs_f64(ctx.seconds.max(1.0));
    let now = ctx.store.time_ms().await?;
    // The first fires 2 s from now, so defining does not race them.
    let base = now + 2_000;
    progress!("defining {n} schedules, every second, phases spread over the second");
    let define_secs = define(ctx, "tick", n, Duration::from_secs(1), base).await?;
    r.set("define_per_sec", round(util::rate(n, define_secs), 0));
    let mut config = EngineConfig::default();
    if let Some(i) = ctx.opts.index_reconciler {
        config.index_reconciler_interval = i;
    }
    r.set(
        "index_reconciler_secs",
        config.index_reconciler_interval.as_secs(),
    );
    let engine = Engine::start(config, ctx.engine_store().await?).await?;
    let begin = ctx.store.time_ms().await?.max(base);
    progress!("engine running for {period:?}");
    let cpu = ctx.admin.load_start().await?;
    let own_cpu = process_cpu_secs();
    let t = Instant::now();
    tokio::time::sleep(period).await;
    let load = ctx.admin.load_since(cpu).await?;
    let secs = t.elapsed().as_secs_f64();
    let engine_cpu = process_cpu_secs().zip(own_cpu).map(|(b, a)| (b - a) / secs);
    let errors = util::engine_errors(&engine);
    let stats = util::scanner(&engine, "schedules");
    engine.shutdown().await;
    let end = ctx.store.time_ms().await?;

    progress!("reading the executions back");
    let made = read_back(ctx).await?;
    let mut per: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut late: Vec<i64> = Vec::with_capacity(made.len());
    // Lateness by 10 s of fire times: a sweep (the index reconciler's, every
    // 45 s by default) shows as one window.
    let mut windows: Vec<Vec<i64>> = Vec::new();
    for (s, fire, created) in &made {
        per.entry(s.as_str()).or_default().push(*fire);
        // Fires before the engine started measure the start-up, not the scanner.
        if *fire >= begin + 1_000 {
            let l = *created as i64 - *fire as i64;
            late.push(l);
            let w = ((fire - begin) / 10_000) as usize;
            if windows.len() <= w {
                windows.resize(w + 1, Vec::new());
            }
            windows[w].push(l);
        }
    }
    late.sort_unstable();
    let window_p99: Vec<i64> = windows
        .iter_mut()
        .map(|w| {
            w.sort_unstable();
            util::percentile(w, 0.99)
        })
        .collect();
    // Exactly once: per schedule, consecutive fire times, none twice.
    let mut doubles = 0u64;
    let mut gaps = 0u64;
    for fires in per.values_mut() {
        fires.sort_unstable();
        for w in fires.windows(2) {
            match w[1] - w[0] {
                0 => doubles += 1,
                1000 => {}
                // (a sample read back has gaps of its own)
                _ if made.len() >= MAX_READ => {}
                _ => gaps += 1,
            }
        }
    }
    let records = ctx.client.list_schedules().await?;
    let counted: u64 = records.iter().map(|s| s.fired).sum();
    let missed: u64 = records.iter().map(|s| s.missed).sum();
    let complete = made.len() < MAX_READ;
    r.set("seconds", round(secs, 3));
    r.set("executions", made.len() as u64);
    r.set(
        "fires_per_sec",
        round(util::rate(counted, (end - begin) as f64 / 1000.0), 0),
    );
    r.set("lateness_p50_ms", util::percentile(&late, 0.50));
    r.set("lateness_p99_ms", util::percentile(&late, 0.99));
    r.set("lateness_max_ms", late.last().copied().unwrap_or(0));
    r.set("lateness_min_ms", late.first().copied().unwrap_or(0));
    r.set("lateness_p99_ms_by_10s", window_p99);
    r.set_target("lateness_p99_ms", TARGET_P99_MS);
    r.set("doubles", doubles);
    r.set("gaps", gaps);
    r.set("missed", missed);
    r.set("counted_fires", counted);
    r.set("engine_errors", errors);
    if let Some(f) = engine_cpu {
        // The engine runs in this process (which does nothing else
        // meanwhile): the CPU it took, beside the server's.
        r.set("engine_cpu_fraction", round(f, 3));
    }
    if let Some(s) = &stats {
        r.set("scanner", util::stats_json(s));
    }
    load.report(&mut r, ctx.admin.node_count(), secs, counted);

    // Idle between fires: the same number of hourly schedules (none due
    // while counting), then a tenth of them: the cost must not grow with N.
    ctx.admin.flushall_async().await?;
    // (the partition counts go with the flush: the client records them again)
    ff_engine::Client::new(ctx.store.clone()).await?;
    let far = end + 3_600_000;
    define(ctx, "idle", n / 10, Duration::from_secs(3600), far).await?;
    let (tenth, e1) = idle_rate(ctx).await?;
    define(ctx, "idle2", n - n / 10, Duration::from_secs(3600), far).await?;
    let (all, e2) = idle_rate(ctx).await?;
    r.set("idle_commands_per_sec_n", round(all, 2));
    r.set("idle_commands_per_sec_tenth", round(tenth, 2));
    let ok = errors + e1 + e2 == 0
        && doubles == 0
        && gaps == 0
        && missed == 0
        && (!complete || counted == made.len() as u64);
    r.set("ok", ok);
    r.set(
        "meets_target",
        (util::percentile(&late, 0.99) as f64) <= TARGET_P99_MS,
    );
    Ok(r)
}
