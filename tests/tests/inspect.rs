//! `ff inspect` on a seeded database.

mod common;

use common::*;
use ff_engine::core::keys;
use ff_engine::core::ExecutionId;
use ff_engine::store::{cmd, Store};
use ff_engine::ExecutionSpec;
use ff_tests::TestRedis;
use std::time::Duration;

#[tokio::test]
async fn inspect_counts_states_lanes_indexes_and_the_oldest_due() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    let c = client(&redis.url()).await;
    c.register_lane(&ff_engine::core::Lane::new("mail").unwrap())
        .await
        .unwrap();
    for _ in 0..3 {
        c.create(ExecutionSpec::new("j")).await.unwrap();
    }
    c.create(ExecutionSpec::new("j").lane("mail"))
        .await
        .unwrap();
    let later = create_delayed(&c, "j", Duration::from_secs(60)).await;
    let sooner = create_delayed(&c, "j", Duration::from_secs(30)).await;
    let claimed = claim_one(&c).await;
    c.complete(&claimed.lease, b"").await.unwrap();
    claim_one(&c).await;
    // A record nobody can decode is counted, not fatal.
    let broken = ExecutionId::new(3, 5);
    store
        .command(&cmd([
            "HSET",
            &keys::exec(&broken),
            "id",
            broken.as_str(),
            "phase",
            "melted",
        ]))
        .await
        .unwrap();
    store
        .command(&cmd([
            "SADD",
            &keys::PartitionKeys::of(&broken).all(),
            broken.as_str(),
        ]))
        .await
        .unwrap();

    // So is a counter field that does not read as one.
    store
        .command(&cmd([
            "HSET",
            &keys::PartitionKeys::of(&broken).counts(),
            "default:melted",
            "1",
        ]))
        .await
        .unwrap();

    let i = ff_engine::inspect::inspect(&c).await.unwrap();
    assert_eq!(i.executions, 6);
    assert_eq!(i.malformed, 1);
    let r = ff_engine::inspect::recount(&c).await.unwrap();
    assert_eq!(r.malformed_records, 1);
    assert_eq!(r.drift, vec![]);
    assert_eq!(i.by_state.get("waiting"), Some(&2));
    assert_eq!(i.by_state.get("delayed"), Some(&2));
    assert_eq!(i.by_state.get("active"), Some(&1));
    assert_eq!(i.by_state.get("completed"), Some(&1));
    assert_eq!(i.by_lane.get("mail"), Some(&1));
    assert_eq!(i.index_sizes.get("eligible:default"), Some(&1));
    assert_eq!(i.index_sizes.get("eligible:mail"), Some(&1));
    assert_eq!(i.index_sizes.get("delayed"), Some(&2));
    assert_eq!(i.index_sizes.get("lease_expiry"), Some(&1));
    assert_eq!(
        i.oldest_due.get("delayed").map(|(m, _)| m.as_str()),
        Some(sooner.as_str())
    );
    assert_ne!(sooner, later);
    assert!(i.to_text().contains("malformed records: 1"));
}

/// Blocked executions per reason, budgets (usage vs limits, breach, policy)
/// and quotas (holders vs cap, window) on a seeded database.
#[tokio::test]
async fn inspect_shows_blocked_work_budgets_and_quotas() {
    use ff_engine::core::admission::QuotaLimits;
    use ff_engine::core::contract::admission::{
        BreachPolicy, BudgetDef, DimensionLimits, UsageReport,
    };
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let def = BudgetDef {
        limits: [("tokens".to_owned(), DimensionLimits { hard: 10, soft: 5 })].into(),
        reset_every_ms: 0,
        on_breach: BreachPolicy::Block,
    };
    c.define_budget("spend", &def).await.unwrap();
    c.define_quota(
        "gpu",
        &QuotaLimits {
            window_ms: 60_000,
            max_per_window: 100,
            concurrency: 1,
        },
    )
    .await
    .unwrap();
    let first = c
        .create(ExecutionSpec::new("j").budget("spend").quota("gpu"))
        .await
        .unwrap()
        .execution;
    let held = claim_one(&c).await;
    assert_eq!(held.lease.execution, first);
    let report = UsageReport {
        execution: first.clone(),
        attempt: held.attempt,
        seq: 1,
        deltas: vec![("tokens".to_owned(), 10)],
    };
    c.report_usage("spend", &report).await.unwrap();
    // Breached: the next one waits on the budget; another waits on the quota.
    let on_budget = c
        .create(ExecutionSpec::new("j").budget("spend"))
        .await
        .unwrap()
        .execution;
    let on_quota = c
        .create(ExecutionSpec::new("j").quota("gpu"))
        .await
        .unwrap()
        .execution;
    let (lane, w, i) = worker();
    assert!(c
        .claim(&lane, &w, &i, Duration::from_secs(30), 10)
        .await
        .unwrap()
        .is_empty());

    let i = ff_engine::inspect::inspect(&c).await.unwrap();
    assert_eq!(i.blocked.get("budget"), Some(&1));
    assert_eq!(i.blocked.get("quota"), Some(&1));
    assert_eq!(i.blocked.get("route"), Some(&0));
    assert_eq!(
        i.oldest_blocked.get("budget").map(|(m, _)| m.as_str()),
        Some(on_budget.as_str())
    );
    assert_eq!(
        i.oldest_blocked.get("quota").map(|(m, _)| m.as_str()),
        Some(on_quota.as_str())
    );
    let b = &i.budgets["spend"];
    assert!(b.breached && b.soft_reached);
    assert_eq!(b.usage.get("tokens"), Some(&10));
    assert_eq!(b.limits["tokens"].hard, 10);
    let (q, holders) = &i.quotas["gpu"];
    assert_eq!((q.holders, q.limits.concurrency), (1, 1));
    assert_eq!(holders, &vec![(first.to_string(), held.lease.epoch)]);
    assert_eq!(q.admitted_at.len(), 1);
    let text = i.to_text();
    assert!(
        text.contains(
            "budget spend: BREACHED, soft limit reached on breach block; tokens 10/10 (soft 5)"
        ),
        "{text}"
    );
    assert!(text.contains("quota gpu: holders 1/1"), "{text}");
    assert!(text.contains("oldest blocked on budget"), "{text}");
}
