//! MemoryStore-specific behaviour (lifecycle.rs runs the common lifecycle on
//! both stores): time moved with `advance_clock`, every batch function, index
//! repair, a restart that loses the library, and the engine on it.

mod common;

use common::*;
use ff_engine::core::contract::scan::BatchFunction;
use ff_engine::core::keys::{self, PartitionKeys};
use ff_engine::core::state::{AttemptState, PublicState};
use ff_engine::core::{ExecutionId, Lane};
use ff_engine::engine::{Engine, EngineConfig};
use ff_engine::store::{cmd, MemoryStore, Store, SubEvent};
use ff_engine::{Client, ExecutionSpec};
use std::sync::Arc;
use std::time::Duration;

async fn state(c: &Client, e: &ExecutionId) -> PublicState {
    c.get(e).await.unwrap().public_state
}

#[tokio::test]
async fn idempotent_create_returns_the_first_execution_until_the_key_expires() {
    let (store, c) = memory_client().await;
    let ttl = Duration::from_secs(60);
    let a = c
        .create(
            ExecutionSpec::new("charge")
                .idempotency_key("order-17", ttl)
                .payload("1"),
        )
        .await
        .unwrap();
    let b = c
        .create(
            ExecutionSpec::new("charge")
                .idempotency_key("order-17", ttl)
                .payload("2"),
        )
        .await
        .unwrap();
    assert!(a.created && !b.created);
    assert_eq!(a.execution, b.execution);
    assert_eq!(c.get(&a.execution).await.unwrap().payload, b"1");
    let other_ns = c
        .create(
            ExecutionSpec::new("charge")
                .namespace("tenant2")
                .idempotency_key("order-17", ttl),
        )
        .await
        .unwrap();
    assert!(other_ns.created);
    assert_ne!(other_ns.execution, a.execution);
    // The record's TTL runs out: the key names nothing any more.
    store.advance_clock(60_001);
    let later = c
        .create(ExecutionSpec::new("charge").idempotency_key("order-17", ttl))
        .await
        .unwrap();
    assert!(later.created);
    assert_ne!(later.execution, a.execution);
}

#[tokio::test]
async fn scan_once_acts_for_every_batch_function() {
    let (store, c) = memory_client().await;
    // Attempt timeout.
    let timed = c
        .create(ExecutionSpec::new("slow").attempt_timeout(Duration::from_millis(150)))
        .await
        .unwrap()
        .execution;
    let claimed = claim_one(&c).await;
    assert_eq!(claimed.lease.execution, timed);
    // Deadlines: one waiting, one delayed past it.
    let other = Lane::new("other").unwrap();
    c.register_lane(&other).await.unwrap();
    let waiting = c
        .create(
            ExecutionSpec::new("j")
                .lane("other")
                .deadline(Duration::from_millis(200)),
        )
        .await
        .unwrap()
        .execution;
    let delayed = c
        .create(
            ExecutionSpec::new("j")
                .delay(Duration::from_secs(60))
                .deadline(Duration::from_millis(250))
                .retention(Duration::from_millis(100)),
        )
        .await
        .unwrap()
        .execution;
    // Nothing is due yet.
    for f in [
        BatchFunction::ExpireAttempts,
        BatchFunction::ExpireDeadlines,
    ] {
        for p in [timed.partition(), waiting.partition(), delayed.partition()] {
            assert_eq!(run_scan(&c, f, p).await.acted, 0);
        }
    }
    store.advance_clock(300);
    assert_eq!(
        run_scan(&c, BatchFunction::ExpireAttempts, timed.partition())
            .await
            .acted,
        1
    );
    let mut expired = 0;
    for p in [waiting.partition(), delayed.partition()] {
        expired += run_scan(&c, BatchFunction::ExpireDeadlines, p).await.acted;
    }
    // Both may share a partition: then the first scan expired both.
    assert_eq!(expired, 2);
    for e in [&timed, &waiting, &delayed] {
        assert_eq!(state(&c, e).await, PublicState::Expired);
    }
    let rec = c.get(&timed).await.unwrap();
    assert_eq!(rec.attempt_state, Some(AttemptState::TimedOut));
    assert!(c
        .complete(&claimed.lease, b"late")
        .await
        .unwrap_err()
        .is_fenced_out());
    // The lease of the timed-out attempt left the lease index with it.
    assert_eq!(
        run_scan(&c, BatchFunction::ReclaimExpired, timed.partition())
            .await
            .acted,
        0
    );
    // Retention: the delayed one (100 ms) goes, with every key; the others
    // (24 h by default) stay.
    store.advance_clock(200);
    let mut purged = 0;
    // (A partition scanned twice finds nothing the second time.)
    for p in [timed.partition(), waiting.partition(), delayed.partition()] {
        purged += run_scan(&c, BatchFunction::PurgeRetained, p).await.acted;
    }
    assert_eq!(purged, 1);
    assert!(c.get(&delayed).await.is_err());
    let left = all_keys(&*store).await;
    assert!(!left.contains(&keys::exec(&delayed)));
    for e in [&timed, &waiting] {
        assert_eq!(state(&c, e).await, PublicState::Expired);
        assert!(left.contains(&keys::exec(e)));
    }
    // Lease expiry: reclaimed and claimable again.
    let eid = c.create(ExecutionSpec::new("job")).await.unwrap().execution;
    let (lane, w, i) = worker();
    c.claim(&lane, &w, &i, Duration::from_millis(100), 1)
        .await
        .unwrap();
    store.advance_clock(101);
    assert_eq!(
        run_scan(&c, BatchFunction::ReclaimExpired, eid.partition())
            .await
            .acted,
        1
    );
    assert_eq!(state(&c, &eid).await, PublicState::Waiting);
    assert_eq!(c.get(&eid).await.unwrap().reclaims, 1);
}

#[tokio::test]
async fn the_reconciler_repairs_a_corrupted_index() {
    let (store, c) = memory_client().await;
    let waiting = c.create(ExecutionSpec::new("j")).await.unwrap().execution;
    let pk = PartitionKeys::of(&waiting);
    let lane = Lane::default_lane();
    store
        .command(&cmd(["ZREM", &pk.eligible(&lane), waiting.as_str()]))
        .await
        .unwrap();
    store
        .command(&cmd([
            "ZADD",
            &pk.lease_expiry(),
            "99999999999999",
            waiting.as_str(),
        ]))
        .await
        .unwrap();
    let ghost = ExecutionId::new(waiting.partition_index(), 99);
    store
        .command(&cmd(["SADD", &pk.all(), ghost.as_str(), "garbage"]))
        .await
        .unwrap();
    let out = run_scan(&c, BatchFunction::ReconcileIndexes, waiting.partition()).await;
    assert_eq!(out.repaired, 2, "{out:?}");
    assert_eq!(out.malformed, 1, "{out:?}");
    assert_eq!(
        zmembers(&*store, &pk.eligible(&lane)).await,
        vec![waiting.to_string()]
    );
    assert!(zmembers(&*store, &pk.lease_expiry()).await.is_empty());
    assert_eq!(
        smembers(&*store, &pk.all()).await,
        vec![waiting.to_string()]
    );
    assert_eq!(claim_one(&c).await.lease.execution, waiting);
}

#[tokio::test]
async fn a_restart_that_loses_the_library_heals_on_the_next_call() {
    let (store, c) = memory_client().await;
    let mut wake = store.subscribe("ff:wake").await.unwrap();
    assert_eq!(wake.recv().await, Some(SubEvent::Subscribed));
    store.restart();
    assert_eq!(wake.recv().await, Some(SubEvent::Subscribed));
    let eid = create_delayed(&c, "j", Duration::from_secs(5)).await;
    // The data plane announced the new earliest delayed member.
    let Some(SubEvent::Message(m)) = wake.recv().await else {
        panic!("no wake-up")
    };
    let m = String::from_utf8(m).unwrap();
    assert!(
        m.starts_with(&format!("delayed {} ", eid.partition().hash_tag())),
        "{m}"
    );
    store.flush_functions();
    assert_eq!(state(&c, &eid).await, PublicState::Delayed);
}

#[tokio::test]
async fn the_engine_runs_on_memory_store() {
    let store = Arc::new(MemoryStore::new());
    let c = Client::new(store.clone()).await.unwrap();
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    let eid = c.create(ExecutionSpec::new("job")).await.unwrap().execution;
    let (lane, w, i) = worker();
    c.claim(&lane, &w, &i, Duration::from_millis(150), 1)
        .await
        .unwrap();
    wait_for("reclaim", Duration::from_secs(5), || async {
        state(&c, &eid).await == PublicState::Waiting
    })
    .await;
    let delayed = create_delayed(&c, "job", Duration::from_millis(100)).await;
    wait_for("promotion", Duration::from_secs(5), || async {
        state(&c, &delayed).await == PublicState::Waiting
    })
    .await;
    engine.shutdown().await;
}

#[tokio::test]
async fn hash_fields_come_back_in_redis_order() {
    let redis = ff_tests::TestRedis::standalone();
    let stores: [Arc<dyn Store>; 2] = [
        common::store(&redis.url()).await,
        Arc::new(MemoryStore::new()),
    ];
    let steps: &[&[&str]] = &[
        &["HSET", "h", "zeta", "1", "alpha", "2", "mid", "3"],
        &["HSET", "h", "alpha", "updated", "new", "4"],
        &["HDEL", "h", "zeta"],
        &["HSET", "h", "zeta", "back"],
        &["HINCRBY", "h", "mid", "5"],
        &["HSETNX", "h", "last", "x"],
    ];
    let mut answers = Vec::new();
    for store in &stores {
        for step in steps {
            store.command(&cmd(step.iter().copied())).await.unwrap();
        }
        let all = store.command(&cmd(["HGETALL", "h"])).await.unwrap();
        let keys = store.command(&cmd(["HKEYS", "h"])).await.unwrap();
        answers.push((all, keys));
    }
    assert_eq!(answers[0], answers[1], "Redis, then MemoryStore");
}
