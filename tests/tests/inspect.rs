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
    let later = c
        .create(ExecutionSpec::new("j").delay(Duration::from_secs(60)))
        .await
        .unwrap()
        .execution;
    let sooner = c
        .create(ExecutionSpec::new("j").delay(Duration::from_secs(30)))
        .await
        .unwrap()
        .execution;
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

    let i = ff_engine::inspect::inspect(&c).await.unwrap();
    assert_eq!(i.executions, 6);
    assert_eq!(i.malformed, 1);
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
