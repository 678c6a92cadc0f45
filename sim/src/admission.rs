//! Budget and quota workloads: some executions draw on a quota with a small
//! concurrency cap or on a tight budget that breaches and resets every few
//! seconds; the client reports usage through faults (a lost reply makes it
//! report again). Checked: a quota's slot holders never exceed its cap; a
//! budget's usage is exactly the sum of the distinct reports (never counted
//! twice). Liveness (every blocked execution comes back once admissible) is
//! the run's own end check: everything must end.

use ff_core::admission::{quota_holders_key, QuotaLimits};
use ff_core::contract::admission::{BudgetDef, DimensionLimits, UsageReport};
use ff_core::{ExecutionId, PartitionConfig, QuotaId};
use ff_engine::store::{cmd, Store};
use ff_engine::{Client, Error, ExecutionSpec};
use rand::Rng;
use std::future::Future;
use std::time::Duration;

pub const QUOTA: &str = "sim-gpu";
pub const QUOTA_CAP: u64 = 2;
/// Breaches after a few reports; reset every 3 s.
pub const TIGHT: &str = "sim-tight";
/// No limit: its usage must equal the sum of the distinct reports.
pub const LEDGER: &str = "sim-ledger";

async fn retried<T, F, Fut>(mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    loop {
        match f().await {
            Err(Error::Store(_)) => tokio::time::sleep(Duration::from_millis(50)).await,
            other => return other,
        }
    }
}

fn tokens(hard: u64, every_ms: u64) -> BudgetDef {
    BudgetDef {
        limits: [("tokens".to_owned(), DimensionLimits { hard, soft: 0 })].into(),
        reset_every_ms: every_ms,
        ..BudgetDef::default()
    }
}

/// Define the quota and budgets (through faults).
pub async fn define(client: &Client) -> Result<(), Error> {
    let limits = QuotaLimits {
        window_ms: 1_000,
        max_per_window: 0,
        concurrency: QUOTA_CAP,
    };
    retried(|| client.define_quota(QUOTA, &limits)).await?;
    let (tight, ledger) = (tokens(4, 3_000), tokens(0, 0));
    retried(|| client.define_budget(TIGHT, &tight)).await?;
    retried(|| client.define_budget(LEDGER, &ledger)).await?;
    Ok(())
}

/// Maybe make `spec` draw on the quota or the tight budget; true when it
/// draws on the tight budget (the client then reports a token for it).
pub fn draw(rng: &mut impl Rng, spec: ExecutionSpec) -> (ExecutionSpec, bool) {
    let spec = if rng.random_ratio(1, 5) {
        spec.quota(QUOTA)
    } else {
        spec
    };
    if rng.random_ratio(1, 8) {
        (spec.budget(TIGHT), true)
    } else {
        (spec, false)
    }
}

/// Report `tokens` for `execution` to `budget` (attempt 1, seq 1), retried
/// through faults, and once more on purpose: refused when the repeat was
/// applied.
pub async fn report(
    client: &Client,
    budget: &str,
    execution: &ExecutionId,
    tokens: u64,
) -> Result<(), Error> {
    let r = UsageReport {
        execution: execution.clone(),
        attempt: 1,
        seq: 1,
        deltas: vec![("tokens".to_owned(), tokens)],
    };
    retried(|| client.report_usage(budget, &r)).await?;
    let again = retried(|| client.report_usage(budget, &r)).await?;
    if again.applied {
        return Err(Error::Invalid {
            field: "usage",
            reason: format!("a repeated report for {execution} was applied"),
        });
    }
    Ok(())
}

/// The quota's slot holders now (read straight from the store).
pub async fn holders(store: &dyn Store, partitions: &PartitionConfig) -> u64 {
    let q = QuotaId::parse(QUOTA).expect("a valid quota name");
    let key = quota_holders_key(partitions, &q);
    match store.command(&cmd(["HLEN", &key])).await {
        Ok(r) => r.int().unwrap_or(0).max(0) as u64,
        Err(_) => 0,
    }
}

/// The ledger budget's usage.
pub async fn ledger_usage(client: &Client) -> Result<u64, Error> {
    let rec = retried(|| client.get_budget(LEDGER)).await?;
    Ok(rec.usage.get("tokens").copied().unwrap_or(0))
}
