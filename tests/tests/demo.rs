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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_finishes_across_a_sigkill_restart() {
    let server = std::sync::Arc::new(std::sync::Mutex::new(
        ff_tests::RedisServer::start_with_aof(),
    ));
    let url = server.lock().unwrap().url();
    let s = server.clone();
    let fault = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1_000));
        let mut s = s.lock().unwrap();
        s.kill();
        std::thread::sleep(std::time::Duration::from_millis(300));
        s.restart();
    });
    let summary = run(
        common::store(&url).await,
        DemoOptions {
            executions: 1_000,
            ..Default::default()
        },
    )
    .await
    .expect("the demo rides through the restart");
    fault.join().unwrap();
    assert!(
        summary.seconds > 1.0,
        "the restart came during the run: {summary:?}"
    );
    check(&summary, 1_000);
}
