//! `suspend-signal`: the round trip of a suspension — a claimed execution
//! suspends on a new waitpoint, a signal arrives with its token, and the
//! execution is claimed again (its next attempt) — one at a time, so each
//! figure is a latency: p50/p99 of the whole round trip and of each call.
//! (Suspend and signal each compute an HMAC-SHA256 in Lua.)

use super::util::{self, progress, Report};
use super::{BenchResult, Ctx, Scenario};
use ff_core::contract::suspension::{SecretKid, SignalEffect, SuspendOutcome};
use ff_core::{Lane, WorkerInstance, WorkerName};
use ff_engine::client::{Signal, Suspension};
use ff_engine::ExecutionSpec;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(300);

fn micros(t: Instant) -> i64 {
    t.elapsed().as_micros() as i64
}

fn percentiles(r: &mut Report, name: &str, mut v: Vec<i64>) {
    v.sort_unstable();
    let ms = |us: i64| util::round(us as f64 / 1000.0, 3);
    r.set(&format!("{name}_p50_ms"), ms(util::percentile(&v, 0.50)));
    r.set(&format!("{name}_p99_ms"), ms(util::percentile(&v, 0.99)));
}

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let n = ctx.n;
    let c = &ctx.client;
    let mut r = ctx.report(Scenario::SuspendSignal);
    c.rotate_waitpoint_secret(
        &SecretKid::new("bench")?,
        &ff_engine::Client::generate_waitpoint_secret(),
        Duration::ZERO,
    )
    .await?;
    progress!("creating and claiming {n} executions");
    util::create_many(ctx, n, |_| ExecutionSpec::new("bench.wait")).await?;
    let (lane, worker, instance) = (
        Lane::default_lane(),
        WorkerName::new("bench")?,
        WorkerInstance::new("b1")?,
    );
    let mut leases = Vec::with_capacity(n as usize);
    while (leases.len() as u64) < n {
        let got = c.claim(&lane, &worker, &instance, LEASE, 1000).await?;
        if got.is_empty() {
            break;
        }
        leases.extend(got.into_iter().map(|cl| cl.lease));
    }
    progress!("{} round trips, one at a time", leases.len());
    let (mut total, mut suspend, mut signal, mut claim) = (vec![], vec![], vec![], vec![]);
    let mut ok = leases.len() as u64 == n;
    let t = Instant::now();
    for lease in &leases {
        let start = Instant::now();
        let wp = c.new_waitpoint_id();
        let s = c.suspend(lease, &Suspension::on([wp.clone()])).await?;
        suspend.push(micros(start));
        let at = Instant::now();
        let sig = c
            .signal(&lease.execution, &wp, &s.tokens[0].1, Signal::new("go"))
            .await?;
        signal.push(micros(at));
        let at = Instant::now();
        // Only this execution is eligible in its partition: the others are held.
        let again = c
            .claim_in(
                lease.execution.partition(),
                &lane,
                &worker,
                &instance,
                LEASE,
                1,
            )
            .await?;
        claim.push(micros(at));
        total.push(micros(start));
        ok &= matches!(s.outcome, SuspendOutcome::Suspended { .. })
            && sig.effect == SignalEffect::Resumed
            && again.first().map(|cl| &cl.lease.execution) == Some(&lease.execution);
    }
    let secs = t.elapsed().as_secs_f64();
    r.set("seconds", util::round(secs, 3));
    r.set(
        "round_trips_per_sec",
        util::round(util::rate(total.len() as u64, secs), 0),
    );
    percentiles(&mut r, "round_trip", total);
    percentiles(&mut r, "suspend", suspend);
    percentiles(&mut r, "signal", signal);
    percentiles(&mut r, "claim", claim);
    r.set("ok", ok);
    Ok(r)
}
