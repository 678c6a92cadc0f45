//! The worker runtime on a real redis-server.

mod common;

use common::*;
use ff_engine::core::contract::scan::BatchFunction;
use ff_engine::core::keys::{self, PartitionKeys};
use ff_engine::core::retry::RetryPolicy;
use ff_engine::core::state::{AttemptState, PublicState};
use ff_engine::core::ExecutionId;
use ff_engine::store::{cmd, Store};
use ff_engine::worker::{Job, JobError, Worker};
use ff_engine::{Client, Engine, EngineConfig, ExecutionSpec};
use ff_tests::TestRedis;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn state(c: &Client, e: &ExecutionId) -> PublicState {
    c.get(e).await.unwrap().public_state
}

async fn all_in(c: &Client, ids: &[ExecutionId], want: PublicState) -> bool {
    for e in ids {
        if state(c, e).await != want {
            return false;
        }
    }
    true
}

#[tokio::test]
async fn handlers_by_kind_and_fallback() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let worker = Worker::builder(c.clone(), "w")
        .handle("upper", |job: Job| async move {
            Ok(job.payload.to_ascii_uppercase())
        })
        .handle("len", |job: Job| async move {
            Ok(job.payload.len().to_string().into_bytes())
        })
        .fallback(|job: Job| async move { Ok(format!("fallback:{}", job.kind).into_bytes()) })
        .start()
        .unwrap();
    let a = c
        .create(ExecutionSpec::new("upper").payload("abc"))
        .await
        .unwrap()
        .execution;
    let b = c
        .create(ExecutionSpec::new("len").payload("abcd"))
        .await
        .unwrap()
        .execution;
    let d = c
        .create(ExecutionSpec::new("other"))
        .await
        .unwrap()
        .execution;
    let ids = [a.clone(), b.clone(), d.clone()];
    wait_for("completion", Duration::from_secs(5), || {
        all_in(&c, &ids, PublicState::Completed)
    })
    .await;
    assert_eq!(c.get(&a).await.unwrap().result.unwrap(), b"ABC");
    assert_eq!(c.get(&b).await.unwrap().result.unwrap(), b"4");
    assert_eq!(c.get(&d).await.unwrap().result.unwrap(), b"fallback:other");
    worker.shutdown().await;
}

#[tokio::test]
async fn concurrency_is_never_exceeded() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let (n2, m2) = (now.clone(), max.clone());
    let worker = Worker::builder(c.clone(), "w")
        .concurrency(4)
        .handle("job", move |_job: Job| {
            let (now, max) = (n2.clone(), m2.clone());
            async move {
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(running, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                Ok(Vec::new())
            }
        })
        .start()
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(c.create(ExecutionSpec::new("job")).await.unwrap().execution);
    }
    wait_for("all done", Duration::from_secs(10), || {
        all_in(&c, &ids, PublicState::Completed)
    })
    .await;
    assert_eq!(
        max.load(Ordering::SeqCst),
        4,
        "ran at most (and, with 40 queued, exactly) 4 at once"
    );
    assert!(worker.stats().max_running.load(Ordering::SeqCst) <= 4);
    assert_eq!(worker.stats().completed.load(Ordering::SeqCst), 40);
    worker.shutdown().await;
}

#[tokio::test]
async fn heartbeats_keep_a_slow_handler_alive_past_several_ttls() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    let worker = Worker::builder(c.clone(), "w")
        .lease_ttl(Duration::from_millis(300))
        .handle("slow", |_job: Job| async move {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            Ok(b"finally".to_vec())
        })
        .start()
        .unwrap();
    let eid = c
        .create(ExecutionSpec::new("slow"))
        .await
        .unwrap()
        .execution;
    wait_for("completion", Duration::from_secs(5), || async {
        state(&c, &eid).await == PublicState::Completed
    })
    .await;
    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.attempt, 1, "never reclaimed");
    assert_eq!(rec.reclaims, 0);
    assert!(worker.stats().renewals.load(Ordering::SeqCst) >= 3);
    worker.shutdown().await;
    engine.shutdown().await;
}

#[tokio::test]
async fn a_handler_whose_lease_was_taken_is_fenced_out() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    let c = client(&redis.url()).await;
    let saw_cancel = Arc::new(AtomicUsize::new(0));
    let seen = saw_cancel.clone();
    // Concurrency 1: busy with the job, this worker cannot claim it back itself.
    let worker = Worker::builder(c.clone(), "w")
        .concurrency(1)
        .lease_ttl(Duration::from_millis(300))
        .handle("long", move |job: Job| {
            let seen = seen.clone();
            async move {
                tokio::select! {
                    _ = job.cancelled() => { seen.fetch_add(1, Ordering::SeqCst); }
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                Ok(b"stale result".to_vec())
            }
        })
        .start()
        .unwrap();
    let eid = c
        .create(ExecutionSpec::new("long"))
        .await
        .unwrap()
        .execution;
    wait_for("claimed", Duration::from_secs(3), || async {
        state(&c, &eid).await == PublicState::Active
    })
    .await;
    // Take the lease over: expire it, reclaim it, and claim it elsewhere.
    let pk = PartitionKeys::of(&eid);
    store
        .command(&cmd(["HSET", &keys::exec(&eid), "lease_exp", "1"]))
        .await
        .unwrap();
    store
        .command(&cmd(["ZADD", &pk.lease_expiry(), "1", eid.as_str()]))
        .await
        .unwrap();
    run_scan(&c, BatchFunction::ReclaimExpired, eid.partition()).await;
    let (lane, w, i) = common::worker();
    let thief = c
        .claim(&lane, &w, &i, LEASE, 1)
        .await
        .unwrap()
        .pop()
        .expect("the other worker gets it");
    wait_for("the handler sees it", Duration::from_secs(3), || async {
        saw_cancel.load(Ordering::SeqCst) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The first worker's result was not reported; the thief's is.
    assert_eq!(state(&c, &eid).await, PublicState::Active);
    c.complete(&thief.lease, b"thief").await.unwrap();
    assert_eq!(c.get(&eid).await.unwrap().result.unwrap(), b"thief");
    assert_eq!(worker.stats().lease_lost.load(Ordering::SeqCst), 1);
    assert_eq!(worker.stats().completed.load(Ordering::SeqCst), 0);
    worker.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_hands_back_unfinished_work() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let worker = Worker::builder(c.clone(), "w")
        .concurrency(3)
        .shutdown_grace(Duration::from_millis(200))
        .handle("quick", |_job: Job| async move { Ok(Vec::new()) })
        .handle("stuck", |_job: Job| async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Vec::new())
        })
        .start()
        .unwrap();
    let mut stuck = Vec::new();
    for _ in 0..3 {
        stuck.push(
            c.create(ExecutionSpec::new("stuck"))
                .await
                .unwrap()
                .execution,
        );
    }
    wait_for("all running", Duration::from_secs(3), || {
        all_in(&c, &stuck, PublicState::Active)
    })
    .await;
    let started = Instant::now();
    let report = worker.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(report.released, 3);
    // Claimable again at once, not after lease expiry; no retry or reclaim used.
    for e in &stuck {
        let rec = c.get(e).await.unwrap();
        assert_eq!(rec.public_state, PublicState::Waiting);
        assert_eq!(rec.attempt_state, Some(AttemptState::Released));
        assert_eq!((rec.retries, rec.reclaims), (0, 0));
    }
    let (lane, w, i) = common::worker();
    assert_eq!(c.claim(&lane, &w, &i, LEASE, 10).await.unwrap().len(), 3);
}

#[tokio::test]
async fn retries_with_backoff_then_success() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    let worker = Worker::builder(c.clone(), "w")
        .handle("flaky", |job: Job| async move {
            if job.attempt < 3 {
                Err(JobError::retry(format!("attempt {} failed", job.attempt)))
            } else {
                Ok(b"third time".to_vec())
            }
        })
        .handle("doomed", |_job: Job| async move {
            Err(JobError::fatal("bad input"))
        })
        .start()
        .unwrap();
    let flaky = c
        .create(ExecutionSpec::new("flaky").retry(RetryPolicy::exponential(5, 50, 500)))
        .await
        .unwrap()
        .execution;
    let doomed = c
        .create(ExecutionSpec::new("doomed").retry(RetryPolicy::exponential(5, 50, 500)))
        .await
        .unwrap()
        .execution;
    wait_for("success", Duration::from_secs(5), || async {
        state(&c, &flaky).await == PublicState::Completed
    })
    .await;
    let rec = c.get(&flaky).await.unwrap();
    assert_eq!((rec.attempt, rec.retries), (3, 2));
    wait_for("fatal", Duration::from_secs(5), || async {
        state(&c, &doomed).await == PublicState::Failed
    })
    .await;
    assert_eq!(c.get(&doomed).await.unwrap().attempt, 1);
    worker.shutdown().await;
    engine.shutdown().await;
}

#[tokio::test]
async fn a_panicking_handler_fails_the_attempt_not_the_worker() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let worker = Worker::builder(c.clone(), "w")
        .handle("boom", |_job: Job| async move {
            if true {
                panic!("kaboom in the handler");
            }
            Ok(Vec::new())
        })
        .handle("fine", |_job: Job| async move { Ok(b"ok".to_vec()) })
        .start()
        .unwrap();
    let boom = c
        .create(ExecutionSpec::new("boom").retry(RetryPolicy::none()))
        .await
        .unwrap()
        .execution;
    wait_for("failed", Duration::from_secs(5), || async {
        state(&c, &boom).await == PublicState::Failed
    })
    .await;
    assert!(c
        .get(&boom)
        .await
        .unwrap()
        .last_error
        .unwrap()
        .contains("kaboom in the handler"));
    let fine = c
        .create(ExecutionSpec::new("fine"))
        .await
        .unwrap()
        .execution;
    wait_for("still working", Duration::from_secs(5), || async {
        state(&c, &fine).await == PublicState::Completed
    })
    .await;
    assert_eq!(worker.stats().panicked.load(Ordering::SeqCst), 1);
    worker.shutdown().await;
}

#[tokio::test]
async fn an_idle_worker_waits_quietly_and_wakes_promptly() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let counting = Arc::new(Flaky::new(c.store().clone(), false));
    let wc = Client::new(counting.clone()).await.unwrap();
    let worker = Worker::builder(wc, "w")
        .handle("job", |_job: Job| async move { Ok(Vec::new()) })
        .start()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = counting.calls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        counting.calls.load(Ordering::SeqCst) - before <= 1,
        "an idle worker polled"
    );
    // Work arrives: picked up by the announcement, long before the 5 s poll.
    let t = Instant::now();
    let eid = c.create(ExecutionSpec::new("job")).await.unwrap().execution;
    wait_for("pickup", Duration::from_secs(2), || async {
        state(&c, &eid).await == PublicState::Completed
    })
    .await;
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "picked up after {:?}",
        t.elapsed()
    );
    worker.shutdown().await;
}

#[tokio::test]
async fn workers_on_a_cluster() {
    let cluster = ff_tests::RedisCluster::start();
    let c = cluster_client(cluster.urls()).await;
    let worker = Worker::builder(c.clone(), "w")
        .concurrency(20)
        .handle("job", |job: Job| async move { Ok(job.payload) })
        .start()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..50 {
        ids.push(
            c.create(ExecutionSpec::new("job").payload(format!("{i}")))
                .await
                .unwrap()
                .execution,
        );
    }
    wait_for("all done", Duration::from_secs(10), || {
        all_in(&c, &ids, PublicState::Completed)
    })
    .await;
    assert_eq!(worker.stats().completed.load(Ordering::SeqCst), 50);
    worker.shutdown().await;
}

#[tokio::test]
async fn a_chain_advances_with_each_report() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let flow = c.create_flow("default").await.unwrap();
    let ids: Vec<ExecutionId> = (0..5).map(|_| c.new_member_id(&flow)).collect();
    let member =
        || ExecutionSpec::new("step").in_flow(&flow, ff_engine::core::flow::JoinPolicy::AllOf);
    c.create(member().id(ids[0].clone())).await.unwrap();
    for pair in ids.windows(2) {
        c.add_edge(&flow, &pair[0], &pair[1], false).await.unwrap();
        c.create(member().id(pair[1].clone())).await.unwrap();
    }
    // One slot: each level's child can only be claimed into the slot its
    // parent's report frees, in the report's own call.
    let worker = Worker::builder(c.clone(), "w")
        .concurrency(1)
        .handle("step", |_job: Job| async move { Ok(Vec::new()) })
        .start()
        .unwrap();
    wait_for("the chain", Duration::from_secs(10), || {
        all_in(&c, &ids, PublicState::Completed)
    })
    .await;
    let s = worker.stats();
    assert_eq!(s.claimed.load(Ordering::Relaxed), 5);
    assert_eq!(
        s.refilled.load(Ordering::Relaxed),
        4,
        "every level after the first came with its parent's report"
    );
    worker.shutdown().await;
}
