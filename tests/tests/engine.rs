//! The engine end to end on a real redis-server: each scanner's effect,
//! wake-ups, repair, supervision and shutdown.

mod common;

use ff_engine::core::scan::WakeMessage;

use common::*;
use ff_engine::core::contract::execution::EndOutcome;
use ff_engine::core::contract::scan::BatchFunction;
use ff_engine::core::keys::{self, PartitionKeys};
use ff_engine::core::reply::Reply;
use ff_engine::core::retry::RetryPolicy;
use ff_engine::core::state::{AttemptState, PublicState};
use ff_engine::core::ExecutionId;
use ff_engine::engine::{Engine, EngineConfig, ScannerStats};
use ff_engine::store::{cmd, Store};
use ff_engine::{Client, ExecutionSpec};
use ff_tests::TestRedis;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The eligible score's enqueue time (server ms): score = (1000 - pri) * 2^42 + ms.
fn enqueued_ms(score: f64, priority: u64) -> u64 {
    score as u64 - (1000 - priority) * (1u64 << 42)
}

async fn state(c: &Client, e: &ExecutionId) -> PublicState {
    c.get(e).await.unwrap().public_state
}

fn stats(engine: &Engine, name: &str) -> ScannerStats {
    engine
        .metrics()
        .into_iter()
        .find(|s| s.scanner == name)
        .expect("scanner")
}

#[tokio::test]
async fn an_expired_lease_is_reclaimed_and_claimable_again() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    let eid = c.create(ExecutionSpec::new("job")).await.unwrap().execution;
    let (lane, w, i) = worker();
    let first = c
        .claim(&lane, &w, &i, Duration::from_millis(150), 1)
        .await
        .unwrap()
        .pop()
        .unwrap();
    let started = Instant::now();
    wait_for("reclaim", Duration::from_secs(3), || async {
        state(&c, &eid).await == PublicState::Waiting
    })
    .await;
    // Woken by the data plane at expiry, not by the 1.5 s interval.
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "reclaimed after {:?}",
        started.elapsed()
    );
    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.reclaims, 1);
    assert_eq!(rec.attempt_state, Some(AttemptState::Reclaimed));
    let second = claim_one(&c).await;
    assert_eq!(second.lease.epoch, first.lease.epoch + 1);
    assert!(c
        .complete(&first.lease, b"late")
        .await
        .unwrap_err()
        .is_fenced_out());
    c.complete(&second.lease, b"ok").await.unwrap();
    assert!(stats(&engine, "lease_expiry").acted >= 1);
    assert!(engine.shutdown().await);
}

#[tokio::test]
async fn reclaim_limit_spent_fails_the_execution() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    let eid = c
        .create(ExecutionSpec::new("job").max_reclaims(1))
        .await
        .unwrap()
        .execution;
    let (lane, w, i) = worker();
    for _ in 0..2 {
        wait_for("claimable", Duration::from_secs(3), || async {
            state(&c, &eid).await == PublicState::Waiting
        })
        .await;
        c.claim(&lane, &w, &i, Duration::from_millis(100), 1)
            .await
            .unwrap()
            .pop()
            .unwrap();
    }
    wait_for("failed", Duration::from_secs(3), || async {
        state(&c, &eid).await == PublicState::Failed
    })
    .await;
    assert!(c
        .get(&eid)
        .await
        .unwrap()
        .last_error
        .unwrap()
        .contains("reclaim limit"));
    engine.shutdown().await;
}

#[tokio::test]
async fn a_delayed_execution_is_promoted_by_its_wake_up_not_the_interval() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    let c = client(&redis.url()).await;
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    // Let the first full look finish, so the wake-up path is what is measured.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut ids = Vec::new();
    for delay in [150u64, 400, 900] {
        let created = c
            .create(ExecutionSpec::new("later").delay(Duration::from_millis(delay)))
            .await
            .unwrap();
        ids.push((created.execution, delay));
    }
    for (eid, delay) in &ids {
        wait_for("promotion", Duration::from_secs(3), || async {
            state(&c, eid).await == PublicState::Waiting
        })
        .await;
        let rec = c.get(eid).await.unwrap();
        let due = rec.created_at_ms + delay;
        let score = match store
            .command(&cmd([
                "ZSCORE",
                &PartitionKeys::of(eid).eligible(&rec.lane),
                eid.as_str(),
            ]))
            .await
            .unwrap()
        {
            Reply::Bulk(b) => String::from_utf8(b).unwrap().parse::<f64>().unwrap(),
            other => panic!("{other:?}"),
        };
        let promoted = enqueued_ms(score, 0);
        assert!(promoted >= due, "promoted at {promoted} before due {due}");
        // Well inside the promoter's 750 ms interval: the wake-up did it.
        // (How late, measured: `ff bench lateness`; a loaded test machine
        // adds its own delay, so the bound here is loose.)
        assert!(
            promoted - due <= 400,
            "promoted {} ms after due",
            promoted - due
        );
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn retries_flow_through_the_promoter() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    let eid = c
        .create(ExecutionSpec::new("flaky").retry(RetryPolicy::exponential(2, 50, 200)))
        .await
        .unwrap()
        .execution;
    for attempt in 1..=3 {
        wait_for("claimable", Duration::from_secs(3), || async {
            state(&c, &eid).await == PublicState::Waiting
        })
        .await;
        let claimed = claim_one(&c).await;
        assert_eq!(claimed.attempt, attempt);
        let ended = c.fail(&claimed.lease, "boom", true).await.unwrap();
        if attempt < 3 {
            assert!(matches!(ended.outcome, EndOutcome::RetryScheduled { .. }));
        } else {
            assert_eq!(ended.outcome, EndOutcome::Failed);
        }
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn attempt_timeouts_and_deadlines_expire() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    let c = client(&redis.url()).await;
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    let timed = c
        .create(ExecutionSpec::new("slow").attempt_timeout(Duration::from_millis(150)))
        .await
        .unwrap()
        .execution;
    let claimed = claim_one(&c).await;
    assert_eq!(claimed.lease.execution, timed);
    // A deadline expires whatever the phase: one waiting, one delayed past it.
    let waiting = c
        .create(
            ExecutionSpec::new("j")
                .lane("other")
                .deadline(Duration::from_millis(200)),
        )
        .await;
    assert!(waiting.is_err(), "unknown lane");
    c.register_lane(&ff_engine::core::Lane::new("other").unwrap())
        .await
        .unwrap();
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
                .deadline(Duration::from_millis(250)),
        )
        .await
        .unwrap()
        .execution;
    for e in [&timed, &waiting, &delayed] {
        wait_for("expiry", Duration::from_secs(3), || async {
            state(&c, e).await == PublicState::Expired
        })
        .await;
    }
    let rec = c.get(&timed).await.unwrap();
    assert_eq!(rec.attempt_state, Some(AttemptState::TimedOut));
    assert!(rec.lease.is_none());
    assert!(c
        .complete(&claimed.lease, b"late")
        .await
        .unwrap_err()
        .is_fenced_out());
    for e in [&timed, &waiting, &delayed] {
        let pk = PartitionKeys::of(e);
        for idx in [
            pk.lease_expiry(),
            pk.attempt_timeout(),
            pk.deadline(),
            pk.delayed(),
        ] {
            assert!(
                !zmembers(&*store, &idx).await.contains(&e.to_string()),
                "{e} still in {idx}"
            );
        }
    }
    assert!(stats(&engine, "attempt_timeout").acted >= 1);
    assert!(stats(&engine, "execution_deadline").acted >= 2);
    engine.shutdown().await;
}

#[tokio::test]
async fn retention_purges_every_key_of_an_old_execution_and_nothing_of_a_young_one() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    let c = client(&redis.url()).await;
    let baseline = all_keys(&*store).await;
    let young = c
        .create(
            ExecutionSpec::new("j")
                .retention(Duration::from_secs(3600))
                .idempotency_key("young", Duration::from_secs(3600)),
        )
        .await
        .unwrap()
        .execution;
    let old = c
        .create(
            ExecutionSpec::new("j")
                .retention(Duration::from_millis(100))
                .idempotency_key("old", Duration::from_secs(3600))
                .deadline(Duration::from_secs(600)),
        )
        .await
        .unwrap()
        .execution;
    for e in [&young, &old] {
        c.cancel(e, "done").await.unwrap();
    }
    let with_both = all_keys(&*store).await;
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    wait_for("purge", Duration::from_secs(3), || async {
        c.get(&old).await.is_err()
    })
    .await;
    let after = all_keys(&*store).await;
    let old_keys: Vec<&String> = after
        .iter()
        .filter(|k| k.contains(old.as_str().split(':').nth(1).unwrap()) || k.contains(":old"))
        .collect();
    assert!(old_keys.is_empty(), "left behind: {old_keys:?}");
    assert!(after.contains(&keys::exec(&young)));
    // What vanished: the old one's record, its idempotency record, and index
    // keys of its partition that it alone was in (an empty set is no key),
    // and the partition's counts once nothing is counted in them.
    let old_tag = format!("ff:idx:{}:", old.partition().hash_tag());
    for k in &with_both {
        if !after.contains(k) {
            assert!(
                k == &keys::exec(&old)
                    || k.ends_with(":old")
                    || *k == PartitionKeys::of(&old).counts()
                    || (k.starts_with(&old_tag) && !baseline.contains(k)),
                "purged {k}"
            );
        }
    }
    // The young one is intact and still indexed; the old one is in no index.
    assert_eq!(
        c.get(&young).await.unwrap().public_state,
        PublicState::Cancelled
    );
    let pk = PartitionKeys::of(&old);
    for idx in [pk.terminal(), pk.deadline()] {
        assert!(!zmembers(&*store, &idx).await.contains(&old.to_string()));
    }
    assert!(zmembers(&*store, &PartitionKeys::of(&young).terminal())
        .await
        .contains(&young.to_string()));
    // The idempotency key of the purged one is free again.
    let again = c
        .create(ExecutionSpec::new("j").idempotency_key("old", Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(again.created);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_corrupted_index_is_repaired() {
    let redis = TestRedis::standalone();
    let store = store(&redis.url()).await;
    let c = client(&redis.url()).await;
    let waiting = c.create(ExecutionSpec::new("j")).await.unwrap().execution;
    let delayed = create_delayed(&c, "j", Duration::from_secs(3600)).await;
    let pk = PartitionKeys::of(&waiting);
    let lane = ff_engine::core::Lane::default_lane();
    // Drift: one missing from its index, one in an index it does not belong to,
    // one with a wrong due score.
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
    let dpk = PartitionKeys::of(&delayed);
    store
        .command(&cmd(["ZADD", &dpk.delayed(), "12345", delayed.as_str()]))
        .await
        .unwrap();
    // A ghost: listed in `all`, no record.
    let ghost = ExecutionId::new(waiting.partition_index(), 99);
    store
        .command(&cmd(["SADD", &pk.all(), ghost.as_str()]))
        .await
        .unwrap();
    store
        .command(&cmd(["SADD", &pk.all(), "garbage"]))
        .await
        .unwrap();

    let config = EngineConfig {
        index_reconciler_interval: Duration::from_millis(200),
        ..Default::default()
    };
    let engine = Engine::start(config, c.store().clone()).await.unwrap();
    wait_for("repair", Duration::from_secs(5), || async {
        zmembers(&*store, &pk.eligible(&lane))
            .await
            .contains(&waiting.to_string())
    })
    .await;
    wait_for("repair", Duration::from_secs(5), || async {
        !smembers(&*store, &pk.all())
            .await
            .contains(&ghost.to_string())
    })
    .await;
    assert!(!zmembers(&*store, &pk.lease_expiry())
        .await
        .contains(&waiting.to_string()));
    assert!(!smembers(&*store, &pk.all())
        .await
        .contains(&"garbage".to_string()));
    // The delayed one keeps its real due time (it was not promoted early).
    assert_eq!(state(&c, &delayed).await, PublicState::Delayed);
    let s = stats(&engine, "index_reconciler");
    assert!(s.repaired >= 2, "{s:?}");
    assert!(s.malformed >= 1, "{s:?}");
    // The repaired execution is claimable.
    assert_eq!(claim_one(&c).await.lease.execution, waiting);
    engine.shutdown().await;
}

/// The scanners that walk everything once per interval: their first cycle
/// waits an interval.
const SWEEPS: [&str; 3] = ["index_reconciler", "budget_reconciler", "quota_reconciler"];

#[tokio::test]
async fn a_panicking_scanner_is_restarted_and_shutdown_is_bounded() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let flaky = Arc::new(Flaky::new(c.store().clone(), true));
    let config = EngineConfig {
        restart_backoff: Duration::from_millis(50),
        ..Default::default()
    };
    let engine = Engine::start(config, flaky.clone()).await.unwrap();
    wait_for("a restart", Duration::from_secs(3), || async {
        engine.metrics().iter().map(|s| s.restarts).sum::<u64>() == 1
    })
    .await;
    // The restarted scanner works: every scanner completes cycles.
    wait_for("cycles", Duration::from_secs(3), || async {
        engine
            .metrics()
            .iter()
            .all(|s| s.cycles >= 1 || SWEEPS.contains(&s.scanner))
    })
    .await;
    let eid = create_delayed(&c, "j", Duration::from_millis(50)).await;
    wait_for(
        "promotion after restart",
        Duration::from_secs(3),
        || async { state(&c, &eid).await == PublicState::Waiting },
    )
    .await;
    let t = Instant::now();
    assert!(engine.shutdown().await, "shutdown within its bound");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "shutdown took {:?}",
        t.elapsed()
    );
}

/// The tasks that are not scanners run under the supervisor too: a wake
/// listener that panics is restarted (and counted), and wake-ups work again.
#[tokio::test]
async fn a_panicking_wake_listener_is_restarted() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let flaky = Arc::new(Flaky::new(c.store().clone(), false));
    *flaky.panic_on_subscribe.lock().unwrap() = Some(WakeMessage::CHANNEL);
    let config = EngineConfig {
        restart_backoff: Duration::from_millis(50),
        // Promoted on time only through a wake-up.
        delayed_promoter_interval: Duration::from_secs(60),
        ..Default::default()
    };
    let engine = Engine::start(config, flaky.clone()).await.unwrap();
    let mut registry = ff_engine::prometheus_client::registry::Registry::default();
    engine.register_metrics(&mut registry);
    wait_for("the restart counted", Duration::from_secs(3), || async {
        ff_engine::engine::prometheus::encode(&registry)
            .contains("ff_task_restarts_total{task=\"wake_listener\"} 1\n")
    })
    .await;
    // The rescan after the new subscription settles first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let eid = create_delayed(&c, "j", Duration::from_millis(200)).await;
    wait_for("promotion by wake-up", Duration::from_secs(5), || async {
        state(&c, &eid).await == PublicState::Waiting
    })
    .await;
    assert!(engine.shutdown().await);
}

#[tokio::test]
async fn dropping_the_engine_stops_its_tasks() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let counting = Arc::new(Flaky::new(c.store().clone(), false));
    let config = EngineConfig {
        delayed_promoter_interval: Duration::from_millis(10),
        lease_expiry_interval: Duration::from_millis(10),
        ..Default::default()
    };
    let engine = Engine::start(config, counting.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(counting.calls.load(Ordering::SeqCst) > 0);
    drop(engine);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_drop = counting.calls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        counting.calls.load(Ordering::SeqCst),
        after_drop,
        "tasks kept calling the store after the engine was dropped"
    );
}

#[tokio::test]
async fn idle_engine_sends_almost_nothing() {
    let redis = TestRedis::standalone();
    let counting = {
        let c = client(&redis.url()).await;
        Arc::new(Flaky::new(c.store().clone(), false))
    };
    let engine = Engine::start(EngineConfig::default(), counting.clone())
        .await
        .unwrap();
    // The first look reads every partition once (the reconciler sweeps only
    // after an interval); after that, idle.
    wait_for("first cycles", Duration::from_secs(3), || async {
        engine
            .metrics()
            .iter()
            .all(|s| s.cycles >= 1 || SWEEPS.contains(&s.scanner))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = counting.calls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = counting.calls.load(Ordering::SeqCst) - before;
    // Only the scanners' interval wake-ups with nothing known due: no reads.
    assert!(calls <= 10, "{calls} store calls in 2 s of idling");
    engine.shutdown().await;
}

#[tokio::test]
async fn the_engine_on_a_cluster() {
    let cluster = ff_tests::RedisCluster::start();
    let c = cluster_client(cluster.urls()).await;
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    let mut delayed = Vec::new();
    for _ in 0..20 {
        delayed.push(
            c.create(ExecutionSpec::new("j").delay(Duration::from_millis(100)))
                .await
                .unwrap()
                .execution,
        );
    }
    for e in &delayed {
        wait_for("promotion", Duration::from_secs(5), || async {
            state(&c, e).await == PublicState::Waiting
        })
        .await;
    }
    let (lane, w, i) = worker();
    let claimed = c
        .claim(&lane, &w, &i, Duration::from_millis(150), 20)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 20);
    for cl in &claimed {
        wait_for("reclaim", Duration::from_secs(5), || async {
            state(&c, &cl.lease.execution).await == PublicState::Waiting
        })
        .await;
    }
    assert!(stats(&engine, "lease_expiry").acted >= 20);
    assert!(stats(&engine, "delayed_promoter").acted >= 20);
    let _ = BatchFunction::ALL;
    assert!(engine.shutdown().await);
}
