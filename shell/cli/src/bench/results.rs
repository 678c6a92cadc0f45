//! `results`: enqueue → awaited result, with a `Worker` running the jobs.
//! First one at a time (the latency a caller sees: enqueue, claim, run,
//! complete, the end announced, the record read), then many callers at
//! once, each enqueueing and awaiting in a loop (throughput with that many
//! concurrent waiters, and their latency).

use super::util::{self, progress, Report};
use super::{BenchResult, Ctx, Scenario};
use ff_engine::worker::{Job, JobError, Worker};
use ff_engine::{Client, JobType, Outcome};
use futures::future::join_all;
use std::time::{Duration, Instant};

/// Callers at once in the second half.
const CALLERS: u64 = 1_000;
/// Round trips of the first half (one at a time).
const SEQUENTIAL: u64 = 1_000;

struct Echo;
impl JobType for Echo {
    const KIND: &'static str = "bench.echo";
    type Args = u64;
    type Output = u64;
}

fn percentiles(r: &mut Report, name: &str, mut v: Vec<i64>) {
    v.sort_unstable();
    let ms = |us: i64| util::round(us as f64 / 1000.0, 3);
    r.set(&format!("{name}_p50_ms"), ms(util::percentile(&v, 0.50)));
    r.set(&format!("{name}_p99_ms"), ms(util::percentile(&v, 0.99)));
}

async fn round_trip(c: &Client, i: u64) -> BenchResult<i64> {
    let t = Instant::now();
    let h = c.enqueue(Echo, &i).await?;
    match h.result_within(Duration::from_secs(60)).await? {
        Outcome::Succeeded(o) if o == i => Ok(t.elapsed().as_micros() as i64),
        other => Err(format!("job {i} ended {other:?}").into()),
    }
}

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let n = ctx.n;
    let mut r = ctx.report(Scenario::Results);
    let worker_client = Client::new(ctx.engine_store().await?).await?;
    let worker = Worker::builder(worker_client, "bench")
        .concurrency(4096)
        .job(
            Echo,
            |_job: Job, i: u64| async move { Ok::<_, JobError>(i) },
        )
        .start()?;
    let c = &ctx.client;

    let seq = SEQUENTIAL.min(n);
    progress!("{seq} enqueue → result round trips, one at a time");
    let mut one = Vec::with_capacity(seq as usize);
    for i in 0..seq {
        one.push(round_trip(c, i).await?);
    }
    percentiles(&mut r, "sequential", one);

    let callers = CALLERS.min(n);
    progress!("{n} round trips by {callers} callers at once");
    let t = Instant::now();
    let lanes = join_all((0..callers).map(|k| async move {
        let mut v = Vec::new();
        let mut i = k;
        while i < n {
            v.push(round_trip(c, i).await?);
            i += callers;
        }
        Ok::<_, super::BenchError>(v)
    }))
    .await;
    let secs = t.elapsed().as_secs_f64();
    let mut all = Vec::with_capacity(n as usize);
    for l in lanes {
        all.extend(l?);
    }
    r.set("callers", callers);
    r.set("seconds", util::round(secs, 3));
    r.set(
        "results_per_sec",
        util::round(util::rate(all.len() as u64, secs), 0),
    );
    percentiles(&mut r, "concurrent", all);
    r.set("waiting_after", c.waiting() as u64);
    worker.shutdown().await;
    Ok(r)
}
