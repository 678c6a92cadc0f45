//! `lease-drain`: N executions claimed with the shortest lease (100 ms), all
//! expired by the time the engine starts; the time from `Engine::start` until
//! the lease-expiry scanner has reclaimed every one.

use super::util::{self, progress, round, Report};
use super::{BenchResult, Ctx, Scenario};
use ff_core::contract::limits::{MAX_CLAIM_BATCH, MIN_LEASE_MS};
use ff_core::keys::PartitionKeys;
use ff_core::{Lane, WorkerInstance, WorkerName};
use ff_engine::ExecutionSpec;
use futures::StreamExt;
use std::time::Duration;
use tokio::time::Instant;

/// The figure to reach, in items per second.
const TARGET: f64 = 80_000.0;

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let n = ctx.n;
    let mut r = ctx.report(Scenario::LeaseDrain);
    progress!("creating {n} eligible executions");
    let created =
        util::create_many(ctx, n, |_| ExecutionSpec::new("bench.lease").payload("x")).await?;

    progress!("claiming them all with a {MIN_LEASE_MS} ms lease");
    let lane = Lane::default_lane();
    let worker = WorkerName::new("bench")?;
    let instance = WorkerInstance::new("bench-1")?;
    let ttl = Duration::from_millis(MIN_LEASE_MS);
    let cfg = *ctx.client.config();
    let t = Instant::now();
    let claimed: Vec<BenchResult<u64>> =
        futures::stream::iter(util::flow_partitions(&cfg).into_iter().map(|p| {
            let (lane, worker, instance, client) = (&lane, &worker, &instance, &ctx.client);
            async move {
                let mut total = 0u64;
                loop {
                    let got = client
                        .claim_in(p, lane, worker, instance, ttl, MAX_CLAIM_BATCH)
                        .await?
                        .len();
                    total += got as u64;
                    if got < MAX_CLAIM_BATCH {
                        return Ok(total);
                    }
                }
            }
        }))
        .buffer_unordered(64)
        .collect()
        .await;
    let claimed: u64 = claimed.into_iter().sum::<BenchResult<u64>>()?;
    let claim_secs = t.elapsed().as_secs_f64();
    if claimed != n {
        return Err(format!("claimed {claimed} of {n} executions").into());
    }
    // Let the last leases expire.
    tokio::time::sleep(Duration::from_millis(MIN_LEASE_MS + 50)).await;
    let store = ctx.store.as_ref();
    let leased = util::index_total(store, &cfg, PartitionKeys::lease_expiry, false).await?;

    let d = util::drain(ctx, "lease_expiry", n).await?;

    let eligible = util::index_total(store, &cfg, |k| k.eligible(&lane), false).await?;
    let still_leased = util::index_total(store, &cfg, PartitionKeys::lease_expiry, false).await?;
    d.report(&mut r, ctx, n);
    let ok = d.reached && leased == n && eligible == n && still_leased == 0;
    r.set("ok", ok);
    r.set_target("items_per_sec", TARGET);
    r.set("eligible_after", eligible);
    r.set("leased_before", leased);
    r.set("leased_after", still_leased);
    created.report(&mut r);
    r.set("claim_seconds", round(claim_secs, 3));
    r.set("claim_per_sec", round(util::rate(n, claim_secs), 0));
    Ok(r)
}
