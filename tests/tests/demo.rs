//! `ff demo`'s workload finishes on both stores.

mod common;

use ff_cli::demo::{run, DemoOptions};
use ff_engine::store::MemoryStore;
use ff_tests::TestRedis;
use std::sync::Arc;

fn check(s: &ff_cli::demo::DemoSummary, n: usize) {
    assert!(s.all_terminal, "{s:?}");
    assert_eq!(s.states.values().sum::<usize>(), n);
    assert!(
        s.states.get("completed").copied().unwrap_or(0) > n / 2,
        "{s:?}"
    );
    assert!(
        s.states.get("failed").copied().unwrap_or(0) > 0,
        "retries run out for some: {s:?}"
    );
    assert!(s.retries > 0 && s.reclaims > 0, "{s:?}");
}

#[tokio::test]
async fn the_demo_runs_on_the_in_process_store() {
    let s = run(
        Arc::new(MemoryStore::new()),
        DemoOptions {
            executions: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    check(&s, 100);
}

#[tokio::test]
async fn the_demo_runs_on_redis() {
    let redis = TestRedis::standalone();
    let s = run(
        common::store(&redis.url()).await,
        DemoOptions {
            executions: 100,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    check(&s, 100);
}
