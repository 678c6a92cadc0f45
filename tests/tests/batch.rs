//! Batch calls — bulk submit (`Client::create_many`, `ff_create_many`) and
//! batched reports (`Client::report_many`, `ff_end_many`): each item is
//! answered as its single call would be, and a malformed batch is refused
//! whole, writing nothing.

mod common;

use common::*;
use ff_engine::core::contract::execution::{self as ex, EndOutcome, Report};
use ff_engine::core::contract::{ok_fields, CallError};
use ff_engine::core::flow::JoinPolicy;
use ff_engine::core::keys::PartitionKeys;
use ff_engine::core::retry::RetryPolicy;
use ff_engine::core::state::{AttemptState, PublicState};
use ff_engine::core::{ExecutionId, FfError, LeaseId};
use ff_engine::store::Store;
use ff_engine::{Error, ExecutionSpec};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

async fn bulk_submit_answers_each_spec_as_create_would(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let mut specs: Vec<ExecutionSpec> = (0..300)
        .map(|i| ExecutionSpec::new("bulk").payload(format!("p{i}")))
        .collect();
    let day = Duration::from_secs(86_400);
    specs.push(ExecutionSpec::new("bulk").idempotency_key("order-1", day));
    specs.push(ExecutionSpec::new("bulk").idempotency_key("order-1", day));
    specs.push(ExecutionSpec::new("bad kind!"));
    specs.push(ExecutionSpec::new("later").delay(Duration::from_secs(3600)));

    let out = c.create_many(specs).await;
    assert_eq!(out.len(), 304);
    for r in &out[..300] {
        let created = r.as_ref().expect("created");
        assert!(created.created);
        assert_eq!(created.state, PublicState::Waiting);
    }
    let first = out[300].as_ref().unwrap();
    let again = out[301].as_ref().unwrap();
    assert!(first.created);
    assert!(
        !again.created,
        "the repeated idempotency key is a duplicate"
    );
    assert_eq!(again.execution, first.execution);
    assert!(matches!(out[302], Err(Error::Parse(_))), "{:?}", out[302]);
    let later = out[303].as_ref().unwrap();
    assert_eq!(later.state, PublicState::Delayed);
    assert_eq!(
        zmembers(&*store, &PartitionKeys::of(&later.execution).delayed()).await,
        vec![later.execution.to_string()]
    );

    // Every created execution is claimable, once, with its own payload.
    let rec = c.get(&out[7].as_ref().unwrap().execution).await.unwrap();
    assert_eq!(rec.payload, b"p7");

    // A batch of interleaved shapes (each sent once): every record has its own.
    let other = ff_engine::core::Lane::new("other").unwrap();
    c.register_lane(&other).await.unwrap();
    let mixed: Vec<ExecutionSpec> = (0..40)
        .map(|i| match i % 3 {
            0 => ExecutionSpec::new("shape.a").payload(format!("a{i}")),
            1 => ExecutionSpec::new("shape.b").priority(7).tag("team", "x"),
            _ => ExecutionSpec::new("shape.c")
                .lane("other")
                .payload(format!("c{i}")),
        })
        .collect();
    let made = c.create_many(mixed).await;
    for (i, r) in made.iter().enumerate() {
        let rec = c
            .get(&r.as_ref().expect("created").execution)
            .await
            .unwrap();
        let (kind, priority, lane, payload, tags) = match i % 3 {
            0 => ("shape.a", 0, "default", format!("a{i}"), 0),
            1 => ("shape.b", 7, "default", String::new(), 1),
            _ => ("shape.c", 0, "other", format!("c{i}"), 0),
        };
        assert_eq!(rec.kind.as_str(), kind);
        assert_eq!(rec.priority, priority);
        assert_eq!(rec.lane.as_str(), lane);
        assert_eq!(rec.payload, payload.as_bytes());
        assert_eq!(rec.tags.len(), tags);
    }
    let got = c
        .claim(&other, &worker().1, &worker().2, LEASE, 100)
        .await
        .unwrap();
    assert_eq!(got.len(), 13, "the 13 of lane other");
    assert!(got.iter().all(|g| g.kind.as_str() == "shape.c"));
    let (lane, w, i) = worker();
    let mut seen = HashSet::new();
    loop {
        let got = c.claim(&lane, &w, &i, LEASE, 100).await.unwrap();
        if got.is_empty() {
            break;
        }
        for g in got {
            assert!(seen.insert(g.lease.execution.clone()), "claimed twice");
        }
    }
    assert_eq!(seen.len(), 301 + 27, "300 plain + 1 idempotent + 27 mixed");
}

async fn batched_reports_answer_each_as_its_single_call(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    for kind in ["a", "b", "c", "d", "e"] {
        c.create(ExecutionSpec::new(kind).retry(RetryPolicy::fixed(2, 50)))
            .await
            .unwrap();
    }
    let (lane, w, i) = worker();
    let mut claimed = c.claim(&lane, &w, &i, LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 5);
    claimed.sort_by(|x, y| x.kind.as_str().cmp(y.kind.as_str()));
    let lease = |k: usize| claimed[k].lease.clone();
    let mut forged = lease(3);
    forged.id = LeaseId::from_u128(42);

    let reports = vec![
        Report::Complete {
            lease: lease(0),
            result: b"done".to_vec(),
        },
        Report::Complete {
            lease: lease(0),
            result: b"done".to_vec(),
        },
        Report::Fail {
            lease: lease(1),
            error: "try again".into(),
            retryable: true,
        },
        Report::Fail {
            lease: lease(2),
            error: "broken".into(),
            retryable: false,
        },
        Report::Complete {
            lease: forged,
            result: vec![],
        },
        Report::Complete {
            lease: lease(4),
            result: vec![0; ff_engine::core::contract::limits::MAX_PAYLOAD_BYTES + 1],
        },
    ];
    let out = c.report_many(reports).await;
    assert_eq!(out.len(), 6);
    let ended = |k: usize| out[k].as_ref().expect("accepted").clone();
    assert_eq!(ended(0).outcome, EndOutcome::Completed);
    assert!(!ended(0).replayed);
    assert_eq!(ended(1).outcome, EndOutcome::Completed);
    assert!(
        ended(1).replayed,
        "the repeat in the same batch is a replay"
    );
    assert!(matches!(
        ended(2).outcome,
        EndOutcome::RetryScheduled { .. }
    ));
    assert_eq!(ended(3).outcome, EndOutcome::Failed);
    assert!(
        matches!(out[4], Err(Error::Rejected(FfError::StaleLease))),
        "{:?}",
        out[4]
    );
    assert!(
        matches!(
            out[5],
            Err(Error::Rejected(FfError::PayloadTooLarge { .. }))
        ),
        "{:?}",
        out[5]
    );

    let state = |k: usize| {
        let c = c.clone();
        let eid = claimed[k].lease.execution.clone();
        async move { c.get(&eid).await.unwrap() }
    };
    let a = state(0).await;
    assert_eq!(a.public_state, PublicState::Completed);
    assert_eq!(a.result.as_deref(), Some(&b"done"[..]));
    assert_eq!(a.attempt_state, Some(AttemptState::Succeeded));
    assert!(a.lease.is_none());
    let b = state(1).await;
    assert_eq!(b.public_state, PublicState::Delayed);
    assert_eq!(b.retries, 1);
    assert_eq!(state(2).await.public_state, PublicState::Failed);
    // The refused reports changed nothing: both still run under their leases.
    for k in [3, 4] {
        let r = state(k).await;
        assert_eq!(r.public_state, PublicState::Active);
        assert_eq!(r.lease.as_ref(), Some(&claimed[k].lease));
    }

    // Every index agrees with every record.
    for (k, job) in claimed.iter().enumerate() {
        let eid = &job.lease.execution;
        let pk = PartitionKeys::of(eid);
        let leased = zmembers(&*store, &pk.lease_expiry()).await;
        let terminal = zmembers(&*store, &pk.terminal()).await;
        let delayed = zmembers(&*store, &pk.delayed()).await;
        let has = |v: &Vec<String>| v.contains(&eid.to_string());
        match k {
            0 | 2 => assert!(has(&terminal) && !has(&leased)),
            1 => assert!(has(&delayed) && !has(&leased)),
            _ => assert!(has(&leased) && !has(&terminal)),
        }
    }
}

/// A lease id or epoch that is not one is refused as invalid on its own
/// report, writing nothing for it; the others in the batch go on. (An epoch
/// sent in another form of the same number is that epoch.)
async fn a_malformed_lease_in_a_batch_is_refused_alone(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    c.create(ExecutionSpec::new("k")).await.unwrap();
    let lease = claim_one(&c).await.lease;
    let complete = Report::Complete {
        lease: lease.clone(),
        result: vec![],
    };
    let reports = [complete.clone(), complete.clone(), complete];
    let mut call = ex::end_many(lease.execution.partition(), &reports);
    // (report k's lease id and epoch are arguments 3 + 6k and 4 + 6k)
    call.args[3] = b"not-a-lease".to_vec();
    call.args[10] = b"x".to_vec();
    call.args[16] = format!("0{}", lease.epoch).into_bytes();
    let out = ex::decode_end_many(&store.fcall(&call).await.unwrap(), 3).unwrap();
    for r in &out[..2] {
        assert!(
            matches!(r, Err(CallError::Rejected(FfError::InvalidArgument { .. }))),
            "{r:?}"
        );
    }
    let last = out[2].as_ref().expect("the well-formed report is accepted");
    assert_eq!(last.outcome, EndOutcome::Completed);
    assert!(!last.replayed);
    let rec = c.get(&lease.execution).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Completed);
    assert_eq!(u64::from(rec.attempt), lease.epoch);
}

async fn reports_and_a_claim_ride_one_call(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    let (lane, w, i) = worker();
    // A two-level DAG: the child becomes eligible when its parent completes.
    let flow = c.create_flow("default").await.unwrap();
    let (parent, child) = (c.new_member_id(&flow), c.new_member_id(&flow));
    let member = || ExecutionSpec::new("step").in_flow(&flow, JoinPolicy::AllOf);
    c.create(member().id(parent.clone())).await.unwrap();
    c.add_edge(&flow, &parent, &child, false).await.unwrap();
    c.create(member().id(child.clone())).await.unwrap();
    let p = parent.partition();
    let first = c.claim_in(p, &lane, &w, &i, LEASE, 5).await.unwrap();
    assert_eq!(first.len(), 1, "only the parent is eligible");
    let done = Report::Complete {
        lease: first[0].lease.clone(),
        result: b"up".to_vec(),
    };
    let (ended, claimed) = c
        .report_many_claim(
            vec![done.clone()],
            &[(p, lane.clone(), 5)],
            &w,
            &i,
            LEASE,
            &[],
        )
        .await;
    assert_eq!(ended.len(), 1);
    let e = ended[0].as_ref().expect("the report is accepted");
    assert_eq!((e.outcome, e.replayed), (EndOutcome::Completed, false));
    let claimed = claimed
        .into_iter()
        .next()
        .unwrap()
        .expect("the claim half answers");
    assert_eq!(
        claimed.len(),
        1,
        "the child its parent's report made eligible"
    );
    assert_eq!(claimed[0].lease.execution, child);
    assert_eq!(claimed[0].attempt, 1);
    assert_eq!(
        c.get(&child).await.unwrap().public_state,
        PublicState::Active
    );

    // A repeat of the call after a lost reply: the report is answered as a
    // replay, the claim finds nothing more.
    let (ended, claimed) = c
        .report_many_claim(vec![done], &[(p, lane.clone(), 5)], &w, &i, LEASE, &[])
        .await;
    assert!(ended[0].as_ref().unwrap().replayed);
    assert!(claimed[0].as_ref().unwrap().is_empty());

    // A paused lane: the reports still apply, the claim hands out nothing.
    let waiting = c.new_member_id(&flow);
    c.create(ExecutionSpec::new("plain").id(waiting.clone()))
        .await
        .unwrap();
    c.pause_lane(lane.as_str()).await.unwrap();
    let report = Report::Complete {
        lease: claimed_lease(&c, &child).await,
        result: vec![],
    };
    let (ended, claimed) = c
        .report_many_claim(vec![report], &[(p, lane.clone(), 5)], &w, &i, LEASE, &[])
        .await;
    assert_eq!(ended[0].as_ref().unwrap().outcome, EndOutcome::Completed);
    assert!(
        matches!(claimed[0], Err(Error::Rejected(FfError::LanePaused(_)))),
        "{claimed:?}"
    );
    assert_eq!(
        c.get(&waiting).await.unwrap().public_state,
        PublicState::Waiting
    );
    let live = c.get_flow(&flow).await.unwrap();
    assert_eq!(live.summary.done, 2, "{live:?}");

    // A malformed claim refuses the whole call: the report is not applied.
    c.resume_lane(lane.as_str()).await.unwrap();
    let job = c
        .claim_in(p, &lane, &w, &i, LEASE, 5)
        .await
        .unwrap()
        .remove(0);
    let args = ex::ClaimArgs {
        partition: p,
        lane: lane.clone(),
        worker: w.clone(),
        instance: i.clone(),
        lease_ttl_ms: 30_000,
        max: 1,
        lease_id: LeaseId::from_u128(7),
        capabilities: vec![],
        skip: 0,
    };
    let report = Report::Complete {
        lease: job.lease.clone(),
        result: vec![],
    };
    let mut call = ex::end_many_claim(&[report], &args);
    // (ARGV: n, 6 per report, then lane, worker, instance, ttl, count, ids)
    let id_at = 1 + 6 + 5;
    call.args[id_at] = b"not-a-lease".to_vec();
    let e = refusal("ff_end_many", &store.fcall(&call).await.unwrap());
    assert!(matches!(e, FfError::InvalidArgument { .. }), "{e:?}");
    assert_eq!(
        c.get(&job.lease.execution).await.unwrap().public_state,
        PublicState::Active
    );
    // A claim of another partition's lane is refused too.
    let mut other = args.clone();
    other.partition = ff_engine::core::Partition::new(
        ff_engine::core::PartitionFamily::Flow,
        (p.index + 1) % c.config().flow_partitions,
    );
    let mut call = ex::end_many_claim(&[], &other);
    call.keys[0] = PartitionKeys::new(p).lease_expiry();
    call.args[0] = b"1".to_vec();
    let e = refusal("ff_end_many", &store.fcall(&call).await.unwrap());
    assert!(matches!(e, FfError::InvalidArgument { .. }), "{e:?}");
}

/// The lease `id` is held under now (read from its record).
async fn claimed_lease(
    c: &ff_engine::Client,
    id: &ExecutionId,
) -> ff_engine::core::contract::execution::Lease {
    let rec = c.get(id).await.unwrap();
    rec.lease.expect("an active execution has a lease")
}

on_both_stores!(
    bulk_submit_answers_each_spec_as_create_would,
    batched_reports_answer_each_as_its_single_call,
    a_malformed_lease_in_a_batch_is_refused_alone,
    reports_and_a_claim_ride_one_call,
);

fn refusal(function: &'static str, reply: &ff_engine::core::reply::Reply) -> FfError {
    match ok_fields(function, reply) {
        Err(CallError::Rejected(e)) => e,
        Err(other) => panic!("{function}: expected a refusal, got {other:?}"),
        Ok(_) => panic!("{function}: expected a refusal, the call succeeded"),
    }
}

#[tokio::test]
async fn an_unknown_lane_is_asked_about_once_per_bulk_submit() {
    let redis = ff_tests::TestRedis::standalone();
    let store = store(&redis.url()).await;
    let c = client(&redis.url()).await;
    store
        .command(&ff_engine::store::cmd(["CONFIG", "RESETSTAT"]))
        .await
        .unwrap();
    let specs = (0..5)
        .map(|_| ExecutionSpec::new("k").lane("nope"))
        .collect();
    for r in c.create_many(specs).await {
        assert!(
            matches!(r, Err(Error::Rejected(FfError::UnknownLane(ref l))) if l == "nope"),
            "{r:?}"
        );
    }
    let stats = store
        .command(&ff_engine::store::cmd(["INFO", "commandstats"]))
        .await
        .unwrap()
        .text()
        .unwrap();
    assert!(stats.contains("cmdstat_sismember:calls=1,"), "{stats}");
}

/// The hot indexes are created as skiplists (moves.lua, SKIPLIST_SEED): a
/// listpack finds its tail, where they take their members, by a scan of the
/// whole. The member that makes Redis choose one is gone when the call ends.
#[tokio::test]
async fn hot_indexes_are_created_as_skiplists() {
    let redis = ff_tests::TestRedis::standalone();
    let store = store(&redis.url()).await;
    let c = client(&redis.url()).await;
    let created = c.create(ExecutionSpec::new("k")).await.unwrap().execution;
    let pk = PartitionKeys::of(&created);
    let encoding = |key: String| {
        let store = store.clone();
        async move {
            store
                .command(&ff_engine::store::cmd(["OBJECT", "ENCODING", key.as_str()]))
                .await
                .unwrap()
                .text()
                .unwrap()
        }
    };
    let eligible = pk.eligible(&ff_engine::core::Lane::default_lane());
    assert_eq!(encoding(eligible.clone()).await, "skiplist");
    assert_eq!(
        zmembers(&*store, &eligible).await,
        vec![created.to_string()]
    );
    let lease = claim_one(&c).await.lease;
    assert_eq!(encoding(pk.lease_expiry()).await, "skiplist");
    assert_eq!(
        zmembers(&*store, &pk.lease_expiry()).await,
        vec![created.to_string()]
    );
    c.complete(&lease, b"").await.unwrap();
    assert_eq!(encoding(pk.terminal()).await, "skiplist");
    assert_eq!(
        zmembers(&*store, &pk.terminal()).await,
        vec![created.to_string()]
    );
}

#[tokio::test]
async fn a_malformed_batch_is_refused_whole_and_writes_nothing() {
    let redis = ff_tests::TestRedis::standalone();
    let store = store(&redis.url()).await;
    let c = client(&redis.url()).await;

    // Creations: one bad item (an id of another partition) refuses the batch.
    let good = create_args(5, 1);
    let mut stray = create_args(6, 2);
    let call = ex::create_many(good.execution.partition(), &[good.clone(), stray.clone()]);
    let keys_before = all_keys(&*store).await;
    let e = refusal("ff_create_many", &store.fcall(&call).await.unwrap());
    assert!(matches!(e, FfError::InvalidArgument { .. }), "{e:?}");
    assert_eq!(all_keys(&*store).await, keys_before);
    stray.execution = ExecutionId::new(5, 2);
    stray.priority = 5000;
    let call = ex::create_many(good.execution.partition(), &[good.clone(), stray]);
    let e = refusal("ff_create_many", &store.fcall(&call).await.unwrap());
    assert!(matches!(e, FfError::InvalidArgument { .. }), "{e:?}");
    assert_eq!(all_keys(&*store).await, keys_before);

    // Reports: a bad operation, or a count that does not match, refuses the batch.
    c.create(ExecutionSpec::new("k")).await.unwrap();
    let job = claim_one(&c).await;
    let before = c.get(&job.lease.execution).await.unwrap();
    let report = Report::Complete {
        lease: job.lease.clone(),
        result: vec![],
    };
    let mut call = ex::end_many(job.lease.execution.partition(), &[report.clone(), report]);
    call.args[7] = b"explode".to_vec();
    let e = refusal("ff_end_many", &store.fcall(&call).await.unwrap());
    assert!(matches!(e, FfError::InvalidArgument { .. }), "{e:?}");
    call.args[7] = b"complete".to_vec();
    call.args[0] = b"3".to_vec();
    let e = refusal("ff_end_many", &store.fcall(&call).await.unwrap());
    assert!(matches!(e, FfError::InvalidArgument { .. }), "{e:?}");
    let mut after = c.get(&job.lease.execution).await.unwrap();
    after.read_at_ms = before.read_at_ms;
    assert_eq!(after, before, "a refused batch changed the record");
}

#[tokio::test]
async fn batches_on_a_cluster() {
    let cluster = ff_tests::RedisCluster::start();
    let c = cluster_client(cluster.urls()).await;
    let specs = (0..400).map(|i| ExecutionSpec::new("job").payload(format!("{i}")));
    let created: Vec<_> = c
        .create_many(specs.collect())
        .await
        .into_iter()
        .map(|r| r.unwrap().execution)
        .collect();
    let parts: HashSet<u16> = created.iter().map(|e| e.partition_index()).collect();
    assert!(parts.len() > 100, "spread over the three masters");

    let (lane, w, i) = worker();
    let mut reports = Vec::new();
    loop {
        let got = c.claim(&lane, &w, &i, LEASE, 200).await.unwrap();
        if got.is_empty() {
            break;
        }
        reports.extend(got.into_iter().map(|g| Report::Complete {
            lease: g.lease,
            result: g.payload,
        }));
    }
    assert_eq!(reports.len(), 400);
    for r in c.report_many(reports).await {
        assert_eq!(r.unwrap().outcome, EndOutcome::Completed);
    }
    let rec = c.get(&created[9]).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Completed);
    assert_eq!(rec.result.as_deref(), Some(&b"9"[..]));
}

#[tokio::test]
async fn a_busy_worker_batches_its_reports() {
    use ff_engine::worker::{Job, Worker};
    let redis = ff_tests::TestRedis::standalone();
    let rounds = Arc::new(Flaky::new(store(&redis.url()).await, false));
    let c = client_on(rounds.clone()).await;
    let n = 600;
    for r in c
        .create_many((0..n).map(|_| ExecutionSpec::new("noop")).collect())
        .await
    {
        r.unwrap();
    }
    rounds.fcalls.lock().unwrap().clear();
    let worker = Worker::builder(c.clone(), "batcher")
        .concurrency(n)
        .handle("noop", |_job: Job| async { Ok(Vec::new()) })
        .start()
        .unwrap();
    wait_for("every job completed", Duration::from_secs(20), || {
        let w = &worker;
        async move {
            w.stats()
                .completed
                .load(std::sync::atomic::Ordering::Relaxed)
                == n as u64
        }
    })
    .await;
    worker.shutdown().await;
    let seen = rounds.fcalls.lock().unwrap().clone();
    let ends: Vec<usize> = seen
        .iter()
        .filter(|(f, _)| *f == "ff_end_many")
        .map(|&(_, k)| k)
        .collect();
    assert!(
        !seen.iter().any(|(f, _)| *f == "ff_complete"),
        "completions go through ff_end_many"
    );
    // Each round trip carries one call per partition with reports; far fewer
    // round trips than jobs.
    assert!(
        ends.len() < n / 4,
        "{} report round trips for {n} jobs",
        ends.len()
    );
}
