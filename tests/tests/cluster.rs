//! The same lifecycle on a 3-master Redis Cluster: every call is single-slot.

mod common;

use common::*;
use ff_engine::core::contract::execution::EndOutcome;
use ff_engine::core::retry::RetryPolicy;
use ff_engine::core::state::PublicState;
use ff_engine::ExecutionSpec;
use ff_tests::RedisCluster;
use std::collections::HashSet;
use std::time::Duration;

#[tokio::test]
async fn lifecycle_on_a_cluster() {
    let cluster = RedisCluster::start();
    let c = cluster_client(cluster.urls()).await;
    let mut ids = Vec::new();
    for i in 0..30 {
        let spec = ExecutionSpec::new("job")
            .payload(format!("{i}"))
            .retry(RetryPolicy::fixed(1, 0));
        ids.push(c.create(spec).await.unwrap().execution);
    }
    // Spread over many partitions, so over all three masters.
    let parts: HashSet<u16> = ids.iter().map(|e| e.partition_index()).collect();
    assert!(parts.len() > 10);

    let (lane, w, i) = worker();
    let claimed = c.claim(&lane, &w, &i, LEASE, 30).await.unwrap();
    assert_eq!(claimed.len(), 30);
    for (n, cl) in claimed.iter().enumerate() {
        match n % 3 {
            0 => assert_eq!(
                c.complete(&cl.lease, b"ok").await.unwrap().outcome,
                EndOutcome::Completed
            ),
            1 => assert!(matches!(
                c.fail(&cl.lease, "e", true).await.unwrap().outcome,
                EndOutcome::RetryScheduled { .. }
            )),
            _ => assert_eq!(
                c.cancel(&cl.lease.execution, "stop").await.unwrap().outcome,
                EndOutcome::Cancelled
            ),
        }
    }
    for p in parts {
        promote(
            &c,
            ff_engine::core::Partition::new(ff_engine::core::PartitionFamily::Flow, p),
        )
        .await;
    }
    let retried = c.claim(&lane, &w, &i, LEASE, 30).await.unwrap();
    assert_eq!(retried.len(), 10);
    for cl in &retried {
        assert_eq!(cl.attempt, 2);
        c.complete(&cl.lease, b"ok").await.unwrap();
    }
    let mut states = std::collections::BTreeMap::new();
    for e in &ids {
        *states
            .entry(c.get(e).await.unwrap().public_state.as_str())
            .or_insert(0) += 1;
    }
    assert_eq!(states.get(PublicState::Completed.as_str()), Some(&20));
    assert_eq!(states.get(PublicState::Cancelled.as_str()), Some(&10));

    // Idempotent create and lease fencing hold on the cluster too.
    let a = c
        .create(ExecutionSpec::new("job").idempotency_key("k", Duration::from_secs(60)))
        .await
        .unwrap();
    let b = c
        .create(ExecutionSpec::new("job").idempotency_key("k", Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(a.execution, b.execution);
    assert!(!b.created);
}
