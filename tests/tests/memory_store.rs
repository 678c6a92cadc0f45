//! The execution lifecycle on MemoryStore: the outcomes lifecycle.rs checks on
//! a real redis-server, with the same Client and the same `lua/` library run
//! in process. Time moves with `advance_clock` instead of sleeps.

mod common;

use common::*;
use ff_engine::core::contract::execution::EndOutcome;
use ff_engine::core::contract::scan::BatchFunction;
use ff_engine::core::keys::{self, PartitionKeys};
use ff_engine::core::retry::RetryPolicy;
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
async fn happy_path_create_claim_renew_complete() {
    let (store, c) = memory_client().await;
    let created = c
        .create(
            ExecutionSpec::new("resize")
                .payload("img-1")
                .priority(5)
                .tag("tenant", "acme"),
        )
        .await
        .unwrap();
    assert!(created.created);
    assert_eq!(created.state, PublicState::Waiting);
    let eid = created.execution.clone();
    let pk = PartitionKeys::of(&eid);

    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Waiting);
    assert_eq!(rec.payload, b"img-1");
    assert_eq!(rec.priority, 5);
    assert_eq!(rec.tags.get("tenant").map(String::as_str), Some("acme"));
    assert_eq!(
        zmembers(&*store, &pk.eligible(&rec.lane)).await,
        vec![eid.to_string()]
    );

    let claimed = claim_one(&c).await;
    assert_eq!(claimed.lease.execution, eid);
    assert_eq!(claimed.lease.epoch, 1);
    assert_eq!(claimed.attempt, 1);
    assert_eq!(claimed.payload, b"img-1");
    assert_eq!(claimed.kind.as_str(), "resize");
    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Active);
    assert_eq!(rec.lease.as_ref(), Some(&claimed.lease));
    assert_eq!(rec.attempt_state, Some(AttemptState::Running));
    assert!(zmembers(&*store, &pk.eligible(&rec.lane)).await.is_empty());
    assert_eq!(
        zmembers(&*store, &pk.lease_expiry()).await,
        vec![eid.to_string()]
    );

    let before = rec.lease_expires_at_ms.unwrap();
    store.advance_clock(5);
    let renewed = c
        .renew(&claimed.lease, Duration::from_secs(60))
        .await
        .unwrap();
    assert!(renewed > before);

    let ended = c.complete(&claimed.lease, b"done").await.unwrap();
    assert_eq!(ended.outcome, EndOutcome::Completed);
    assert!(!ended.replayed);
    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Completed);
    assert_eq!(rec.result.as_deref(), Some(&b"done"[..]));
    assert_eq!(rec.attempt_state, Some(AttemptState::Succeeded));
    assert!(rec.lease.is_none());
    assert!(zmembers(&*store, &pk.lease_expiry()).await.is_empty());
    assert_eq!(
        zmembers(&*store, &pk.terminal()).await,
        vec![eid.to_string()]
    );
}

#[tokio::test]
async fn retry_with_backoff_then_success() {
    let (store, c) = memory_client().await;
    let policy = RetryPolicy::exponential(3, 40, 1_000);
    let eid = c
        .create(ExecutionSpec::new("flaky").retry(policy))
        .await
        .unwrap()
        .execution;
    for n in 1..=2u32 {
        let claimed = claim_one(&c).await;
        assert_eq!(claimed.attempt, n);
        let t0 = server_ms(&*store).await;
        let ended = c.fail(&claimed.lease, "boom", true).await.unwrap();
        let t1 = server_ms(&*store).await;
        let EndOutcome::RetryScheduled { due_at_ms } = ended.outcome else {
            panic!("expected a retry, got {ended:?}")
        };
        let backoff = policy.backoff_ms(n);
        assert!(due_at_ms >= t0 + backoff && due_at_ms <= t1 + backoff);
        let rec = c.get(&eid).await.unwrap();
        assert_eq!(rec.public_state, PublicState::Delayed);
        assert_eq!(rec.retries, n);
        assert_eq!(rec.last_error.as_deref(), Some("boom"));
        let (lane, w, i) = worker();
        assert!(c.claim(&lane, &w, &i, LEASE, 1).await.unwrap().is_empty());
        // Not due yet: the promoter leaves it and says when to look again.
        let early = promote(&c, eid.partition()).await;
        assert_eq!(early.acted, 0);
        assert_eq!(early.next_due_ms, Some(due_at_ms));
        store.advance_clock(backoff + 5);
        let promoted = promote(&c, eid.partition()).await;
        assert_eq!(promoted.acted, 1);
        assert_eq!(promoted.next_due_ms, None);
    }
    let claimed = claim_one(&c).await;
    assert_eq!(claimed.attempt, 3);
    c.complete(&claimed.lease, b"ok").await.unwrap();
    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Completed);
    assert_eq!(rec.retries, 2);
}

#[tokio::test]
async fn retries_exhausted_and_non_retryable_fail() {
    let (_store, c) = memory_client().await;
    let eid = c
        .create(ExecutionSpec::new("job").retry(RetryPolicy::fixed(1, 0)))
        .await
        .unwrap()
        .execution;
    let first = claim_one(&c).await;
    assert!(matches!(
        c.fail(&first.lease, "e1", true).await.unwrap().outcome,
        EndOutcome::RetryScheduled { .. }
    ));
    assert_eq!(promote(&c, eid.partition()).await.acted, 1);
    let second = claim_one(&c).await;
    assert_eq!(second.lease.epoch, 2);
    assert_eq!(
        c.fail(&second.lease, "e2", true).await.unwrap().outcome,
        EndOutcome::Failed
    );
    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Failed);
    assert_eq!(rec.last_error.as_deref(), Some("e2"));

    let eid = c
        .create(ExecutionSpec::new("job").retry(RetryPolicy::fixed(5, 0)))
        .await
        .unwrap()
        .execution;
    let claimed = claim_one(&c).await;
    assert_eq!(
        c.fail(&claimed.lease, "bad input", false)
            .await
            .unwrap()
            .outcome,
        EndOutcome::Failed
    );
    assert_eq!(state(&c, &eid).await, PublicState::Failed);
}

#[tokio::test]
async fn cancel_waiting_active_and_terminal() {
    let (store, c) = memory_client().await;
    let waiting = c.create(ExecutionSpec::new("job")).await.unwrap().execution;
    let ended = c.cancel(&waiting, "not needed").await.unwrap();
    assert_eq!(ended.outcome, EndOutcome::Cancelled);
    assert!(!ended.replayed);
    assert!(c.cancel(&waiting, "again").await.unwrap().replayed);
    let rec = c.get(&waiting).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Cancelled);
    assert_eq!(rec.last_error.as_deref(), Some("not needed"));
    assert!(
        zmembers(&*store, &PartitionKeys::of(&waiting).eligible(&rec.lane))
            .await
            .is_empty()
    );

    c.create(ExecutionSpec::new("job")).await.unwrap();
    let claimed = claim_one(&c).await;
    c.cancel(&claimed.lease.execution, "operator")
        .await
        .unwrap();
    let err = c.complete(&claimed.lease, b"late").await.unwrap_err();
    assert!(err.is_fenced_out(), "{err:?}");
    assert_eq!(
        state(&c, &claimed.lease.execution).await,
        PublicState::Cancelled
    );
    assert!(zmembers(
        &*store,
        &PartitionKeys::of(&claimed.lease.execution).lease_expiry()
    )
    .await
    .is_empty());

    let done = c.create(ExecutionSpec::new("job")).await.unwrap().execution;
    let claimed = claim_one(&c).await;
    c.complete(&claimed.lease, b"").await.unwrap();
    let err = c.cancel(&done, "too late").await.unwrap_err();
    assert!(
        matches!(err, ff_engine::Error::Rejected(ff_engine::core::FfError::AlreadyTerminal(ref o)) if o == "success"),
        "{err:?}"
    );
}

#[tokio::test]
async fn worker_delay_reschedules_without_using_a_retry() {
    let (store, c) = memory_client().await;
    let eid = c
        .create(ExecutionSpec::new("poll").retry(RetryPolicy::none()))
        .await
        .unwrap()
        .execution;
    let claimed = claim_one(&c).await;
    let t0 = server_ms(&*store).await;
    let ended = c
        .delay(&claimed.lease, Duration::from_millis(50))
        .await
        .unwrap();
    let EndOutcome::Delayed { due_at_ms } = ended.outcome else {
        panic!("{ended:?}")
    };
    assert!(due_at_ms >= t0 + 50);
    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Delayed);
    assert_eq!(rec.delayed_until_ms, Some(due_at_ms));
    assert_eq!(rec.retries, 0);
    assert_eq!(
        zmembers(&*store, &PartitionKeys::of(&eid).delayed()).await,
        vec![eid.to_string()]
    );
    assert!(c
        .renew(&claimed.lease, LEASE)
        .await
        .unwrap_err()
        .is_fenced_out());
    assert_eq!(promote(&c, eid.partition()).await.acted, 0);
    store.advance_clock(60);
    assert_eq!(promote(&c, eid.partition()).await.acted, 1);
    let again = claim_one(&c).await;
    assert_eq!(again.attempt, 2);
    assert_eq!(again.lease.epoch, 2);
    c.complete(&again.lease, b"").await.unwrap();
}

#[tokio::test]
async fn delayed_create_is_not_claimable_until_promoted() {
    let (store, c) = memory_client().await;
    let eid = c
        .create(ExecutionSpec::new("later").delay(Duration::from_millis(80)))
        .await
        .unwrap();
    assert_eq!(eid.state, PublicState::Delayed);
    let (lane, w, i) = worker();
    assert!(c.claim(&lane, &w, &i, LEASE, 5).await.unwrap().is_empty());
    let early = promote(&c, eid.execution.partition()).await;
    assert_eq!(early.acted, 0);
    assert!(early.next_due_ms.is_some());
    store.advance_clock(90);
    assert_eq!(promote(&c, eid.execution.partition()).await.acted, 1);
    assert_eq!(claim_one(&c).await.lease.execution, eid.execution);
}

#[tokio::test]
async fn priority_orders_claims_within_a_partition_and_across() {
    let (_store, c) = memory_client().await;
    let low = c
        .create(ExecutionSpec::new("j").priority(1))
        .await
        .unwrap()
        .execution;
    let high = c
        .create(ExecutionSpec::new("j").priority(9))
        .await
        .unwrap()
        .execution;
    let mid = c
        .create(ExecutionSpec::new("j").priority(5))
        .await
        .unwrap()
        .execution;
    // One at a time: a claim of several drains the best partition first, so
    // with two of the three in one partition a batch would not be in global
    // priority order (Client::claim takes up to `max` from the head partition).
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(claim_one(&c).await.lease.execution);
    }
    assert_eq!(got, vec![high, mid, low]);
}

#[tokio::test]
async fn stale_lease_is_fenced_out_and_changes_nothing() {
    let (store, c) = memory_client().await;
    let eid = c.create(ExecutionSpec::new("job")).await.unwrap().execution;
    let first = c
        .claim(
            &worker().0,
            &worker().1,
            &worker().2,
            Duration::from_millis(100),
            1,
        )
        .await
        .unwrap()
        .pop()
        .unwrap();
    store.advance_clock(120);
    assert_eq!(reclaim(&c, eid.partition()).await.acted, 1);
    let second = claim_one(&c).await;
    assert_eq!(second.lease.epoch, first.lease.epoch + 1);
    assert_eq!(second.attempt, 2);

    let before = c.get(&eid).await.unwrap();
    for err in [
        c.complete(&first.lease, b"stale").await.unwrap_err(),
        c.fail(&first.lease, "stale", true).await.unwrap_err(),
        c.delay(&first.lease, Duration::from_secs(1))
            .await
            .unwrap_err(),
        c.renew(&first.lease, LEASE).await.unwrap_err(),
    ] {
        assert!(
            matches!(
                err,
                ff_engine::Error::Rejected(ff_engine::core::FfError::StaleLease)
            ),
            "{err:?}"
        );
    }
    let mut after = c.get(&eid).await.unwrap();
    after.read_at_ms = before.read_at_ms;
    assert_eq!(after, before, "a fenced-out call changed the record");
    let mut forged = second.lease.clone();
    forged.id = ff_engine::core::LeaseId::from_u128(42);
    assert!(c.complete(&forged, b"").await.unwrap_err().is_fenced_out());
    c.complete(&second.lease, b"ok").await.unwrap();
}

#[tokio::test]
async fn repeated_terminal_calls_replay_the_same_outcome() {
    let (_store, c) = memory_client().await;
    c.create(ExecutionSpec::new("job")).await.unwrap();
    let claimed = claim_one(&c).await;
    let first = c.complete(&claimed.lease, b"r").await.unwrap();
    let again = c.complete(&claimed.lease, b"r").await.unwrap();
    assert_eq!(first.outcome, again.outcome);
    assert!(!first.replayed && again.replayed);
    assert!(c
        .fail(&claimed.lease, "x", false)
        .await
        .unwrap_err()
        .is_fenced_out());

    c.create(ExecutionSpec::new("job").retry(RetryPolicy::fixed(3, 10_000)))
        .await
        .unwrap();
    let claimed = claim_one(&c).await;
    let first = c.fail(&claimed.lease, "x", true).await.unwrap();
    let again = c.fail(&claimed.lease, "x", true).await.unwrap();
    assert_eq!(first.outcome, again.outcome);
    assert!(again.replayed);
    assert_eq!(c.get(&claimed.lease.execution).await.unwrap().retries, 1);
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
    let eid = c
        .create(ExecutionSpec::new("j").delay(Duration::from_secs(5)))
        .await
        .unwrap()
        .execution;
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
    let c = Client::new(store.clone(), Default::default())
        .await
        .unwrap();
    let engine = Engine::start(EngineConfig::default(), c.store().clone()).unwrap();
    let eid = c.create(ExecutionSpec::new("job")).await.unwrap().execution;
    let (lane, w, i) = worker();
    c.claim(&lane, &w, &i, Duration::from_millis(150), 1)
        .await
        .unwrap();
    wait_for("reclaim", Duration::from_secs(5), || async {
        state(&c, &eid).await == PublicState::Waiting
    })
    .await;
    let delayed = c
        .create(ExecutionSpec::new("job").delay(Duration::from_millis(100)))
        .await
        .unwrap()
        .execution;
    wait_for("promotion", Duration::from_secs(5), || async {
        state(&c, &delayed).await == PublicState::Waiting
    })
    .await;
    engine.shutdown().await;
}
