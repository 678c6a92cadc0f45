//! The execution lifecycle, every transition — on a real redis-server and on
//! the in-process MemoryStore (the same test bodies run on both).

mod common;

use ff_engine::store::Store;
use std::sync::Arc;

use common::*;
use ff_engine::core::contract::execution::{self as ex, EndOutcome};
use ff_engine::core::contract::scan::{self, BatchFunction, BatchOutcome, ScannerFilter};
use ff_engine::core::keys::PartitionKeys;
use ff_engine::core::retry::{Jitter, RetryPolicy, MAX_BACKOFF_MS};
use ff_engine::core::state::{AttemptState, PublicState};
use ff_engine::core::ExecutionId;
use ff_engine::store::cmd;
use ff_engine::ExecutionSpec;
use std::time::Duration;

async fn happy_path_create_claim_renew_complete(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
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
    let (_, w, i) = worker();
    assert_eq!(rec.worker.as_deref(), Some(w.as_str()));
    assert_eq!(rec.worker_instance.as_deref(), Some(i.as_str()));
    assert!(zmembers(&*store, &pk.eligible(&rec.lane)).await.is_empty());
    assert_eq!(
        zmembers(&*store, &pk.lease_expiry()).await,
        vec![eid.to_string()]
    );

    let before = rec.lease_expires_at_ms.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
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

async fn retry_with_backoff_then_success(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
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
        // The Lua backoff agrees with core's formula.
        let backoff = policy.backoff_ms(n);
        assert!(
            due_at_ms >= t0 + backoff && due_at_ms <= t1 + backoff,
            "due {due_at_ms} not in [{t0}+{backoff}, {t1}+{backoff}]"
        );
        let rec = c.get(&eid).await.unwrap();
        assert_eq!(rec.public_state, PublicState::Delayed);
        assert_eq!(rec.retries, n);
        assert_eq!(rec.last_error.as_deref(), Some("boom"));
        // Not claimable before it is due and promoted.
        let (lane, w, i) = worker();
        assert!(c.claim(&lane, &w, &i, LEASE, 1).await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(backoff + 5)).await;
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

/// The Lua schedules a jittered retry exactly as core's
/// `RetryPolicy::delay_ms` computes it: full and equal jitter, retries 1 to 3
/// of an exponential backoff, and the largest backoff allowed (where
/// `(d + 1) * r` is closest to the doubles' 2^53).
async fn jittered_retries_are_scheduled_as_core_computes(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let mut policies = std::collections::HashMap::new();
    for i in 0..24u128 {
        let jitter = if i % 2 == 0 {
            Jitter::Full
        } else {
            Jitter::Equal
        };
        let policy = if i < 16 {
            RetryPolicy::exponential(3, 100, 400)
        } else {
            RetryPolicy::fixed(1, MAX_BACKOFF_MS)
        }
        .jitter(jitter);
        // (ids of one partition, built by hand: the contract, not the Client)
        let mut args = create_args(5, 0x7177_0000_0000 + i * 0x1_0001);
        args.retry = policy;
        let eid = args.execution.clone();
        ex::decode_create(&store.fcall(&ex::create(&args)).await.unwrap()).unwrap();
        assert_eq!(c.get(&eid).await.unwrap().retry, policy);
        policies.insert(eid, policy);
    }
    let partition = ExecutionId::new(5, 0).partition();
    let (lane, w, i) = worker();
    let mut spread = std::collections::BTreeSet::new();
    for n in 1..=3u32 {
        let claimed = c
            .claim_in(partition, &lane, &w, &i, LEASE, 100)
            .await
            .unwrap();
        assert_eq!(claimed.len(), if n == 1 { 24 } else { 16 });
        let mut last_due = 0;
        for cl in claimed {
            assert_eq!(cl.attempt, n);
            let t0 = server_ms(&*store).await;
            let ended = c.fail(&cl.lease, "boom", true).await.unwrap();
            let t1 = server_ms(&*store).await;
            let EndOutcome::RetryScheduled { due_at_ms } = ended.outcome else {
                panic!("expected a retry, got {ended:?}")
            };
            let delay = policies[&cl.lease.execution].delay_ms(&cl.lease.execution, n);
            assert!(
                due_at_ms >= t0 + delay && due_at_ms <= t1 + delay,
                "retry {n} of {}: due {due_at_ms} not in [{t0}, {t1}] + {delay}",
                cl.lease.execution
            );
            spread.insert(delay);
            if delay <= 400 {
                last_due = last_due.max(due_at_ms);
            }
        }
        while server_ms(&*store).await <= last_due {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        promote(&c, partition).await;
    }
    // 56 delays drawn from windows hundreds of ms wide (and one 30 days wide).
    assert!(spread.len() >= 40, "{spread:?}");
}

async fn retries_exhausted_and_non_retryable_fail(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
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

    // A non-retryable failure is final even with retries left.
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
    assert_eq!(c.get(&eid).await.unwrap().public_state, PublicState::Failed);
}

async fn cancel_waiting_active_and_terminal(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;

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
        c.get(&claimed.lease.execution).await.unwrap().public_state,
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

async fn worker_delay_reschedules_without_using_a_retry(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
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
    // The lease ended with the delay: renewing it is refused.
    assert!(c
        .renew(&claimed.lease, LEASE)
        .await
        .unwrap_err()
        .is_fenced_out());
    // Promotion waits for the due time.
    assert_eq!(promote(&c, eid.partition()).await.acted, 0);
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(promote(&c, eid.partition()).await.acted, 1);
    let again = claim_one(&c).await;
    assert_eq!(again.attempt, 2);
    assert_eq!(again.lease.epoch, 2);
    c.complete(&again.lease, b"").await.unwrap();
}

async fn delayed_create_is_not_claimable_until_promoted(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
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
    tokio::time::sleep(Duration::from_millis(90)).await;
    assert_eq!(promote(&c, eid.execution.partition()).await.acted, 1);
    assert_eq!(claim_one(&c).await.lease.execution, eid.execution);
}

/// One call of a scanner's batch function on exactly `ids` (as a stale
/// snapshot would pass them).
async fn batch_on(
    store: &dyn Store,
    f: BatchFunction,
    eid: &ExecutionId,
    ids: &[&ExecutionId],
) -> BatchOutcome {
    let ids: Vec<String> = ids.iter().map(|e| e.to_string()).collect();
    let call = scan::batch(f, eid.partition(), &ScannerFilter::default(), &ids);
    scan::decode_batch(f.function(), &store.fcall(&call).await.unwrap()).unwrap()
}

/// Put `eid` in its delayed index as due long ago, then promote it alone.
async fn promote_misindexed(store: &dyn Store, eid: &ExecutionId) -> BatchOutcome {
    let key = PartitionKeys::of(eid).delayed();
    store
        .command(&cmd(["ZADD", &key, "1", eid.as_str()]))
        .await
        .unwrap();
    batch_on(store, BatchFunction::PromoteDelayed, eid, &[eid]).await
}

async fn a_stale_snapshot_is_neither_acted_on_nor_repaired(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let due = create_delayed(&c, "j", Duration::from_millis(30)).await;
    let later = create_delayed(&c, "j", Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(40)).await;
    let f = BatchFunction::PromoteDelayed;
    let first = batch_on(&*store, f, &due, &[&due]).await;
    assert_eq!((first.acted, first.repaired), (1, 0), "{first:?}");
    // Passed again (another engine's snapshot): already promoted, nothing to do.
    let again = batch_on(&*store, f, &due, &[&due]).await;
    assert_eq!((again.acted, again.repaired), (0, 0), "{again:?}");
    assert!(again.exceptions.is_empty(), "{again:?}");
    // Not due by its record, and its index entry agrees: nothing to do.
    let early = batch_on(&*store, f, &later, &[&later]).await;
    assert_eq!((early.acted, early.repaired), (0, 0), "{early:?}");
    assert_eq!(
        c.get(&later).await.unwrap().public_state,
        PublicState::Delayed
    );
    // An entry that disagrees with its record is repaired: an eligible
    // execution in the delayed index, and one due there too early.
    let fixed = promote_misindexed(&*store, &due).await;
    assert_eq!((fixed.acted, fixed.repaired), (0, 1), "{fixed:?}");
    assert!(!zmembers(&*store, &PartitionKeys::of(&due).delayed())
        .await
        .contains(&due.to_string()));
    let moved = promote_misindexed(&*store, &later).await;
    assert_eq!((moved.acted, moved.repaired), (0, 1), "{moved:?}");
    assert_eq!(
        c.get(&later).await.unwrap().public_state,
        PublicState::Delayed
    );
}

async fn priority_orders_claims_within_a_partition_and_across(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
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
    // One claim at a time takes the best head across partitions. (A claim of
    // several takes a batch from the best partition first: priority is exact
    // within a partition and by partition head across them.)
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(claim_one(&c).await.lease.execution);
    }
    assert_eq!(got, vec![high, mid, low]);
}

async fn stale_lease_is_fenced_out_and_changes_nothing(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
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
    // The first lease expires and is reclaimed; a second worker claims (epoch 2).
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(reclaim(&c, eid.partition()).await.acted, 1);
    // Taken back but not yet claimed again: the lease's fields stay as a
    // record, and the lease is stale all the same.
    assert!(matches!(
        c.renew(&first.lease, LEASE).await.unwrap_err(),
        ff_engine::Error::Rejected(ff_engine::core::FfError::StaleLease)
    ));
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

    // A lease id that never existed is fenced out too.
    let mut forged = second.lease.clone();
    forged.id = ff_engine::core::LeaseId::from_u128(42);
    assert!(c.complete(&forged, b"").await.unwrap_err().is_fenced_out());
    c.complete(&second.lease, b"ok").await.unwrap();
}

async fn repeated_terminal_calls_replay_the_same_outcome(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    c.create(ExecutionSpec::new("job")).await.unwrap();
    let claimed = claim_one(&c).await;
    let first = c.complete(&claimed.lease, b"r").await.unwrap();
    let again = c.complete(&claimed.lease, b"r").await.unwrap();
    assert_eq!(first.outcome, again.outcome);
    assert!(!first.replayed && again.replayed);
    // The same lease may not switch to another outcome.
    assert!(c
        .fail(&claimed.lease, "x", false)
        .await
        .unwrap_err()
        .is_fenced_out());

    // A completion leaves no fence of its own (its success says it): a
    // completion after an earlier attempt's fenced call replays as such,
    // and so does that earlier call.
    c.create(ExecutionSpec::new("job")).await.unwrap();
    let first_attempt = claim_one(&c).await;
    let released = c.release(&first_attempt.lease).await.unwrap();
    let second_attempt = claim_one(&c).await;
    assert_eq!(
        second_attempt.lease.execution,
        first_attempt.lease.execution
    );
    let done = c.complete(&second_attempt.lease, b"").await.unwrap();
    let done_again = c.complete(&second_attempt.lease, b"").await.unwrap();
    assert_eq!(done.outcome, done_again.outcome);
    assert!(done_again.replayed);
    let released_again = c.release(&first_attempt.lease).await.unwrap();
    assert_eq!(released.outcome, released_again.outcome);
    assert!(released_again.replayed);
    assert!(c
        .complete(&first_attempt.lease, b"r")
        .await
        .unwrap_err()
        .is_fenced_out());
    let rec = c.get(&second_attempt.lease.execution).await.unwrap();
    assert_eq!(rec.attempt_state, Some(AttemptState::Succeeded));
    assert_eq!(rec.attempt, 2);
    // (an empty result is stored as none, and reads back empty)
    assert_eq!(rec.result.as_deref(), Some(&b""[..]));

    c.create(ExecutionSpec::new("job").retry(RetryPolicy::fixed(3, 10_000)))
        .await
        .unwrap();
    let claimed = claim_one(&c).await;
    let first = c.fail(&claimed.lease, "x", true).await.unwrap();
    let again = c.fail(&claimed.lease, "x", true).await.unwrap();
    assert_eq!(
        first.outcome, again.outcome,
        "a lost reply's retry must see the same due time"
    );
    assert!(again.replayed);
    assert_eq!(
        c.get(&claimed.lease.execution).await.unwrap().retries,
        1,
        "the repeat used no second retry"
    );
}

async fn idempotent_create_returns_the_first_execution(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
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
}

// Each body runs twice: against its own redis-server and on a MemoryStore.
/// Hot paths read a record's optional fields (here its deadline) only when
/// its `opt` marker says it has some; a record that lost the marker is read
/// in full, so either way a claim honours a deadline and a completion leaves
/// the deadline index.
async fn optional_fields_are_honoured_with_or_without_their_marker(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let (lane, w, i) = worker();
    let lose_marker = |e: &ff_engine::core::ExecutionId| {
        let key = ff_engine::core::keys::exec(e);
        let store = store.clone();
        async move {
            store
                .command(&ff_engine::store::cmd(["HDEL", &key, "opt"]))
                .await
                .unwrap();
        }
    };
    for damaged in [false, true] {
        let late = c
            .create(ExecutionSpec::new("late").deadline(Duration::from_millis(50)))
            .await
            .unwrap()
            .execution;
        if damaged {
            lose_marker(&late).await;
        }
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(c.claim(&lane, &w, &i, LEASE, 10).await.unwrap().is_empty());
        assert_eq!(
            c.get(&late).await.unwrap().public_state,
            PublicState::Expired
        );

        let on_time = c
            .create(ExecutionSpec::new("on-time").deadline(Duration::from_secs(60)))
            .await
            .unwrap()
            .execution;
        if damaged {
            lose_marker(&on_time).await;
        }
        let job = claim_one(&c).await;
        assert_eq!(job.lease.execution, on_time);
        c.complete(&job.lease, b"").await.unwrap();
        assert!(zmembers(&*store, &PartitionKeys::of(&on_time).deadline())
            .await
            .is_empty());
    }
}

async fn fields_at_their_defaults_are_left_out_and_read_as_them(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let names = [
        "ns",
        "pri",
        "att_timeout",
        "retry",
        "retention",
        "max_reclaims",
    ];
    let stored = |eid: ExecutionId| {
        let store = store.clone();
        async move {
            let mut args = vec!["HMGET".to_owned(), ff_engine::core::keys::exec(&eid)];
            args.extend(names.map(str::to_owned));
            match store.command(&cmd(args)).await.unwrap() {
                ff_engine::core::reply::Reply::Array(v) => {
                    v.iter().map(|r| r.text()).collect::<Vec<_>>()
                }
                other => panic!("HMGET answered {other:?}"),
            }
        }
    };
    let plain = c
        .create(ExecutionSpec::new("plain"))
        .await
        .unwrap()
        .execution;
    assert_eq!(stored(plain.clone()).await, vec![None; 6]);
    let rec = c.get(&plain).await.unwrap();
    assert_eq!(
        (rec.namespace.as_str(), rec.priority, rec.attempt_timeout_ms),
        ("default", 0, 0)
    );
    assert_eq!(rec.retry, RetryPolicy::default());
    assert_eq!((rec.max_reclaims, rec.retention_ms), (3, 86_400_000));
    // The default retry policy applies to a record without one.
    let job = claim_one(&c).await;
    let ended = c.fail(&job.lease, "boom", true).await.unwrap();
    assert!(matches!(ended.outcome, EndOutcome::RetryScheduled { .. }));

    let set = c
        .create(
            ExecutionSpec::new("set")
                .namespace("shop")
                .priority(3)
                .attempt_timeout(Duration::from_secs(5))
                .retry(RetryPolicy::none())
                .max_reclaims(1)
                .retention(Duration::from_secs(60)),
        )
        .await
        .unwrap()
        .execution;
    let want = ["shop", "3", "5000", "0:f:0", "60000", "1"].map(|s| Some(s.to_owned()));
    assert_eq!(stored(set.clone()).await, want);
    let rec = c.get(&set).await.unwrap();
    assert_eq!((rec.namespace.as_str(), rec.priority), ("shop", 3));
    assert_eq!(rec.retry, RetryPolicy::none());
    assert_eq!((rec.max_reclaims, rec.retention_ms), (1, 60_000));
}

on_both_stores!(
    fields_at_their_defaults_are_left_out_and_read_as_them,
    optional_fields_are_honoured_with_or_without_their_marker,
    happy_path_create_claim_renew_complete,
    retry_with_backoff_then_success,
    jittered_retries_are_scheduled_as_core_computes,
    retries_exhausted_and_non_retryable_fail,
    cancel_waiting_active_and_terminal,
    worker_delay_reschedules_without_using_a_retry,
    delayed_create_is_not_claimable_until_promoted,
    priority_orders_claims_within_a_partition_and_across,
    stale_lease_is_fenced_out_and_changes_nothing,
    repeated_terminal_calls_replay_the_same_outcome,
    idempotent_create_returns_the_first_execution,
    a_stale_snapshot_is_neither_acted_on_nor_repaired,
);
