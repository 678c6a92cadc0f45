//! An operator's calls on both stores: pause and resume a lane, requeue
//! what ended badly, delete a terminal execution now.

mod common;

use common::*;
use ff_engine::core::state::PublicState;
use ff_engine::core::{FfError, Lane};
use ff_engine::store::{MemoryStore, Store};
use ff_engine::worker::{Job, JobError, Worker};
use ff_engine::{Engine, Error, ExecutionSpec, ListQuery, Requeued};
use ff_sim::invariants::Checker;
use ff_tests::TestRedis;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

fn refused(e: Error) -> FfError {
    match e {
        Error::Rejected(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn pause_and_resume(store: Arc<dyn Store>) {
    let engine = Engine::start(Default::default(), store.clone())
        .await
        .unwrap();
    let c = client_on(store).await;
    let mail = Lane::new("mail").unwrap();
    c.register_lane(&mail).await.unwrap();
    assert!(matches!(
        refused(c.pause_lane("nolane").await.unwrap_err()),
        FfError::UnknownLane(_)
    ));
    c.pause_lane("mail").await.unwrap();
    c.pause_lane("mail").await.unwrap(); // a repeat changes nothing
    assert_eq!(c.paused_lanes().await.unwrap(), vec!["mail".to_owned()]);

    let mut ids = Vec::new();
    for i in 0..6 {
        let spec = ExecutionSpec::new("send")
            .lane("mail")
            .payload(format!("{i}"));
        ids.push(c.create(spec).await.unwrap().execution);
    }
    // Delayed work is still made eligible while paused.
    let later = c
        .create(
            ExecutionSpec::new("send")
                .lane("mail")
                .delay(Duration::from_millis(100)),
        )
        .await
        .unwrap()
        .execution;
    ids.push(later.clone());
    let (_, wn, wi) = worker();
    assert!(matches!(
        refused(
            c.claim(&mail, &wn, &wi, LEASE, 10)
                .await
                .unwrap_err()
        ),
        FfError::LanePaused(l) if l == "mail"
    ));
    let w = Worker::builder(c.clone(), "mailer")
        .lanes(["mail"])
        .poll_interval(Duration::from_millis(100))
        .fallback(|job: Job| async move { Ok::<_, JobError>(job.payload) })
        .start()
        .unwrap();
    wait_for(
        "the delayed one promoted",
        Duration::from_secs(5),
        || async { c.get(&later).await.unwrap().public_state == PublicState::Waiting },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.stats().claimed.load(Relaxed),
        0,
        "a paused lane handed out work"
    );

    // Resumed: the worker starts at once (announced), everything completes.
    c.resume_lane("mail").await.unwrap();
    assert!(c.paused_lanes().await.unwrap().is_empty());
    wait_for(
        "all completed after the resume",
        Duration::from_secs(5),
        || async {
            let mut done = true;
            for id in &ids {
                done &= c.get(id).await.unwrap().public_state == PublicState::Completed;
            }
            done
        },
    )
    .await;
    w.shutdown().await;
    assert!(engine.shutdown().await);
}

async fn requeue_and_delete(store: Arc<dyn Store>) {
    let c = client_on(store.clone()).await;
    // A failure for good, requeued: a new attempt, history kept.
    let id = c
        .create(ExecutionSpec::new("flaky"))
        .await
        .unwrap()
        .execution;
    let cl = claim_one(&c).await;
    c.fail(&cl.lease, "upstream down", false).await.unwrap();
    assert_eq!(c.get(&id).await.unwrap().public_state, PublicState::Failed);
    assert_eq!(c.requeue(&id).await.unwrap(), Requeued::Requeued);
    assert_eq!(
        c.requeue(&id).await.unwrap(),
        Requeued::Live,
        "a repeat changes nothing"
    );
    let r = c.get(&id).await.unwrap();
    assert_eq!(r.public_state, PublicState::Waiting);
    assert_eq!(
        (r.attempt, r.last_error.as_deref()),
        (1, Some("upstream down"))
    );
    let again = claim_one(&c).await;
    assert_eq!(
        (again.lease.execution.clone(), again.attempt),
        (id.clone(), 2)
    );
    c.complete(&again.lease, b"ok").await.unwrap();
    assert_eq!(
        c.get(&id).await.unwrap().public_state,
        PublicState::Completed
    );
    // A completed one is not requeued; a cancelled one is.
    assert!(matches!(
        refused(c.requeue(&id).await.unwrap_err()),
        FfError::InvalidState(_)
    ));
    let gone = c.create(ExecutionSpec::new("x")).await.unwrap().execution;
    c.cancel(&gone, "by hand").await.unwrap();
    assert_eq!(c.requeue(&gone).await.unwrap(), Requeued::Requeued);
    c.cancel(&gone, "again").await.unwrap();
    // A flow member is refused: its end decided its dependents.
    let flow = c.create_flow("default").await.unwrap();
    let member = c
        .create(ExecutionSpec::new("m").in_flow(&flow, ff_engine::core::flow::JoinPolicy::AllOf))
        .await
        .unwrap()
        .execution;
    c.cancel(&member, "stop").await.unwrap();
    assert!(matches!(
        refused(c.requeue(&member).await.unwrap_err()),
        FfError::InvalidState(m) if m.contains("flow member")
    ));

    // Delete: terminal only; a repeat finds nothing; the indexes agree.
    let live = c.create(ExecutionSpec::new("x")).await.unwrap().execution;
    assert!(matches!(
        refused(c.delete(&live).await.unwrap_err()),
        FfError::InvalidState(_)
    ));
    assert!(c.delete(&id).await.unwrap());
    assert!(!c.delete(&id).await.unwrap());
    assert!(matches!(
        c.get(&id).await,
        Err(Error::Rejected(FfError::NotFound))
    ));
    let obs = Checker::default()
        .check(&*store, &[gone.clone(), live.clone(), member.clone()])
        .await;
    assert!(obs.violations.is_empty(), "{:#?}", obs.violations);
    assert!(!obs.records.contains_key(id.as_str()));
}

#[tokio::test]
async fn a_paused_lane_hands_out_nothing_until_resumed_on_redis() {
    let redis = TestRedis::standalone();
    pause_and_resume(store(&redis.url()).await).await;
}

#[tokio::test]
async fn a_paused_lane_hands_out_nothing_until_resumed_in_process() {
    pause_and_resume(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn requeue_and_delete_on_redis() {
    let redis = TestRedis::standalone();
    requeue_and_delete(store(&redis.url()).await).await;
}

#[tokio::test]
async fn requeue_and_delete_in_process() {
    requeue_and_delete(Arc::new(MemoryStore::new())).await;
}

async fn listing(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    let (lane, wn, wi) = worker();
    // 450 waiting, 120 failed (60 of kind "a" with error "boom …"), 30 completed.
    let mut specs = Vec::new();
    for i in 0..600 {
        specs.push(ExecutionSpec::new(if i % 2 == 0 { "a" } else { "b" }).payload(format!("{i}")));
    }
    for r in c.create_many(specs).await {
        r.unwrap();
    }
    let claimed = c.claim(&lane, &wn, &wi, LEASE, 150).await.unwrap();
    assert_eq!(claimed.len(), 150);
    for (i, cl) in claimed.iter().enumerate() {
        if i < 120 {
            let msg = if i % 2 == 0 {
                format!("boom {i}")
            } else {
                format!("other {i}")
            };
            c.fail(&cl.lease, &msg, false).await.unwrap();
        } else {
            c.complete(&cl.lease, b"").await.unwrap();
        }
    }
    // Every page complete and stable: the waiting ones, 7 per page.
    let all_pages = |q: ListQuery| {
        let c = c.clone();
        async move {
            let (mut seen, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
            loop {
                let page = c.list(&q, cursor.as_deref()).await.unwrap();
                assert!(page.items.len() <= 7);
                seen.extend(page.items.into_iter().map(|r| r.execution.to_string()));
                pages += 1;
                match page.next {
                    Some(n) => cursor = Some(n),
                    None => return (seen, pages),
                }
            }
        }
    };
    let (waiting, pages) =
        all_pages(ListQuery::new(lane.clone(), PublicState::Waiting).limit(7)).await;
    assert_eq!(waiting.len(), 450);
    assert!(pages >= 450 / 7);
    let unique: std::collections::BTreeSet<_> = waiting.iter().collect();
    assert_eq!(unique.len(), 450, "no execution listed twice");
    let (failed, _) = all_pages(ListQuery::new(lane.clone(), PublicState::Failed).limit(7)).await;
    assert_eq!(failed.len(), 120);
    let (booms, _) = all_pages(
        ListQuery::new(lane.clone(), PublicState::Failed)
            .error_prefix("boom")
            .limit(7),
    )
    .await;
    assert_eq!(booms.len(), 60);
    let (completed, _) =
        all_pages(ListQuery::new(lane.clone(), PublicState::Completed).limit(7)).await;
    assert_eq!(completed.len(), 30);
    let first = c
        .list(
            &ListQuery::new(lane.clone(), PublicState::Waiting).kind("a"),
            None,
        )
        .await
        .unwrap();
    assert!(first.items.iter().all(|r| r.kind.as_str() == "a"));
    // Bad input: a cursor not made here, an unknown lane.
    assert!(matches!(
        c.list(
            &ListQuery::new(lane.clone(), PublicState::Waiting),
            Some("x.y")
        )
        .await,
        Err(Error::Invalid {
            field: "cursor",
            ..
        })
    ));
    assert!(matches!(
        c.list(
            &ListQuery::new(Lane::new("nope").unwrap(), PublicState::Waiting),
            None
        )
        .await,
        Err(Error::Rejected(FfError::UnknownLane(_)))
    ));
}

#[tokio::test]
async fn listing_pages_are_complete_and_stable_on_redis() {
    let redis = TestRedis::standalone();
    listing(store(&redis.url()).await).await;
}

#[tokio::test]
async fn listing_pages_are_complete_and_stable_in_process() {
    listing(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn the_operator_verbs_of_the_ff_command() {
    use ff_cli::ops;
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let mut failed = Vec::new();
    for i in 0..5 {
        c.create(ExecutionSpec::new("job").payload(format!("{i}")))
            .await
            .unwrap();
    }
    for _ in 0..5 {
        let cl = claim_one(&c).await;
        c.fail(&cl.lease, "<script>alert(1)</script> smtp down", false)
            .await
            .unwrap();
        failed.push(cl.lease.execution.to_string());
    }
    // get: text and JSON; an unknown id and a malformed one are clear errors.
    let text = ops::get(&c, &failed[0], false).await.unwrap();
    assert!(
        text.contains("state     failed") && text.contains("smtp down"),
        "{text}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ops::get(&c, &failed[0], true).await.unwrap()).unwrap();
    assert_eq!(v["state"], "failed");
    assert_eq!(
        v["failure"]["message"],
        "<script>alert(1)</script> smtp down"
    );
    let unknown = ff_engine::core::ExecutionId::new(3, 42).to_string();
    assert_eq!(
        ops::get(&c, &unknown, false).await.unwrap_err().to_string(),
        format!("no execution {unknown}")
    );
    assert!(ops::get(&c, "not-an-id", false).await.is_err());
    // list --json, then retry every failed one by filter.
    let args = ops::ListArgs {
        lane: "default".into(),
        state: "failed".into(),
        kind: None,
        error_prefix: Some("<script>".into()),
        limit: 50,
        cursor: None,
    };
    let v: serde_json::Value =
        serde_json::from_str(&ops::list(&c, &args, true).await.unwrap()).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 5);
    assert!(v["next"].is_null());
    let bad_state = ops::ListArgs {
        state: "sleeping".into(),
        ..args.clone()
    };
    assert!(ops::list(&c, &bad_state, false)
        .await
        .unwrap_err()
        .to_string()
        .starts_with("unknown state \"sleeping\""));
    // Pages of 2: requeueing while paging would shift the list and skip some.
    let small = ops::ListArgs {
        limit: 2,
        ..args.clone()
    };
    assert_eq!(
        ops::retry_all(&c, &small).await.unwrap(),
        "5 requeued, 0 refused"
    );
    assert_eq!(
        c.get(&ff_engine::core::ExecutionId::parse(&failed[0]).unwrap())
            .await
            .unwrap()
            .public_state,
        PublicState::Waiting
    );
    assert_eq!(
        ops::pause(&c, "default", true).await.unwrap(),
        "lane default: paused"
    );
    assert!(ops::pause(&c, "ghost", true)
        .await
        .unwrap_err()
        .to_string()
        .contains("unknown lane"));
    assert_eq!(
        ops::pause(&c, "default", false).await.unwrap(),
        "lane default: resumed"
    );
    assert!(ops::cancel(&c, &failed[1], "no longer needed")
        .await
        .unwrap()
        .ends_with("Cancelled"));
    assert_eq!(
        ops::delete(&c, &failed[1]).await.unwrap(),
        format!("{}: deleted", failed[1])
    );
}

#[tokio::test]
async fn a_bulk_retry_gathers_before_it_requeues() {
    use ff_engine::core::PartitionConfig;
    let redis = TestRedis::standalone();
    // One flow partition: every failure shares one index, so requeueing
    // while paging would shift it under the cursor.
    let one = PartitionConfig {
        flow_partitions: 1,
        ..Default::default()
    };
    let c = ff_engine::Client::with_partitions(store(&redis.url()).await, one)
        .await
        .unwrap();
    for _ in 0..5 {
        c.create(ExecutionSpec::new("job")).await.unwrap();
        let cl = claim_one(&c).await;
        c.fail(&cl.lease, "down", false).await.unwrap();
    }
    let args = ff_cli::ops::ListArgs {
        lane: "default".into(),
        state: "failed".into(),
        kind: None,
        error_prefix: None,
        limit: 2,
        cursor: None,
    };
    assert_eq!(
        ff_cli::ops::retry_all(&c, &args).await.unwrap(),
        "5 requeued, 0 refused"
    );
}

#[tokio::test]
async fn ff_flow_prints_a_flow_with_its_members_and_edges() {
    use ff_cli::ops;
    use ff_engine::core::flow::JoinPolicy;
    let (_store, c) = memory_client().await;
    let flow = c.create_flow("default").await.unwrap();
    let (a, b) = (c.new_member_id(&flow), c.new_member_id(&flow));
    let member = |id: &ff_engine::core::ExecutionId| {
        ExecutionSpec::new("step")
            .in_flow(&flow, JoinPolicy::AllOf)
            .id(id.clone())
    };
    c.create(member(&a)).await.unwrap();
    c.add_edge(&flow, &a, &b, true).await.unwrap();
    c.create(member(&b)).await.unwrap();
    let text = ops::flow(&c, flow.as_str(), 0, 1, false).await.unwrap();
    assert!(text.contains("members 2  ended 0"), "{text}");
    assert!(text.contains("(more: --offset 1)"), "{text}");
    let v: serde_json::Value =
        serde_json::from_str(&ops::flow(&c, flow.as_str(), 0, 10, true).await.unwrap()).unwrap();
    assert_eq!(v["state"], "running");
    let page = v["page"].as_array().unwrap();
    assert_eq!(page.len(), 2);
    let child = page.iter().find(|m| m["id"] == b.as_str()).unwrap();
    assert_eq!(child["state"], "waiting_children");
    assert_eq!(child["parents"][0]["parent"], a.as_str());
    assert_eq!(child["parents"][0]["state"], "pending");
    assert_eq!(child["parents"][0]["pass_data"], true);
    assert!(v["next"].is_null());
    let nobody = "0".repeat(32);
    assert_eq!(
        ops::flow(&c, &nobody, 0, 10, false)
            .await
            .unwrap_err()
            .to_string(),
        format!("no flow {nobody}")
    );
    assert!(ops::flow(&c, "not-a-flow", 0, 10, false).await.is_err());
    assert!(ops::flow(&c, flow.as_str(), 0, 0, false).await.is_err());
}
