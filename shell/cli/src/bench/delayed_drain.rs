//! `delayed-drain`: N executions, all delayed a little (1–50 ms) and all due
//! by the time the engine starts; the time from `Engine::start` until the
//! delayed promoter has made every one eligible.

use super::util::{self, progress, Report};
use super::{BenchResult, Ctx, Scenario};
use ff_core::keys::PartitionKeys;
use ff_core::Lane;
use ff_engine::ExecutionSpec;
use std::time::Duration;

/// The figure to reach, in items per second.
const TARGET: f64 = 100_000.0;

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let n = ctx.n;
    let mut r = ctx.report(Scenario::DelayedDrain);
    progress!("creating {n} executions delayed by 1-50 ms");
    let created = util::create_many(ctx, n, |_| {
        ExecutionSpec::new("bench.delayed")
            .payload("x")
            .delay(Duration::from_millis(rand::random_range(1..=50)))
    })
    .await?;
    // Let the last ones come due.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let cfg = *ctx.client.config();
    let store = ctx.store.as_ref();
    let delayed = util::index_total(store, &cfg, PartitionKeys::delayed, false).await?;

    let d = util::drain(ctx, "delayed_promoter", n).await?;

    let lane = Lane::default_lane();
    let eligible = util::index_total(store, &cfg, |k| k.eligible(&lane), false).await?;
    let still_delayed = util::index_total(store, &cfg, PartitionKeys::delayed, false).await?;
    d.report(&mut r, ctx, n);
    let ok = d.reached && delayed == n && eligible == n && still_delayed == 0;
    r.set("ok", ok);
    r.set_target("items_per_sec", TARGET);
    r.set("eligible_after", eligible);
    r.set("delayed_before", delayed);
    r.set("delayed_after", still_delayed);
    created.report(&mut r);
    Ok(r)
}
