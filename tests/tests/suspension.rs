//! Suspension, waitpoints and signals — on a real redis-server and on the
//! in-process MemoryStore (the same bodies run on both), plus a cluster run
//! and the SHA-256 / HMAC test vectors of the Lua implementation.

mod common;

use common::*;
use ff_engine::client::{Signal, Suspension};
use ff_engine::core::contract::execution::Claimed;
use ff_engine::core::contract::scan::BatchFunction;
use ff_engine::core::contract::suspension::{
    ResumeCondition, SecretKid, SignalEffect, SuspendOutcome, TimeoutBehaviour, WaitpointSecret,
    WaitpointState, WaitpointToken,
};
use ff_engine::core::keys::PartitionKeys;
use ff_engine::core::reply::Reply;
use ff_engine::core::state::{AttemptState, PublicState};
use ff_engine::core::{FfError, SignalName, WaitpointId};
use ff_engine::store::{cmd, Store};
use ff_engine::{Client, Error, ExecutionSpec};
use std::sync::Arc;
use std::time::Duration;

fn kid(s: &str) -> SecretKid {
    SecretKid::new(s).unwrap()
}

fn secret(byte: u8) -> WaitpointSecret {
    WaitpointSecret::new(vec![byte; 32]).unwrap()
}

/// A client of a deployment with 8 partitions (a rotation writes to each,
/// and the in-process store's HMAC is slow in a debug build).
async fn small(store: Arc<dyn Store>) -> Client {
    let config = ff_engine::core::PartitionConfig {
        flow_partitions: 8,
        ..Default::default()
    };
    Client::with_partitions(store, config).await.unwrap()
}

/// A client with a waitpoint secret rotated in.
async fn ready(store: Arc<dyn Store>) -> Client {
    let c = small(store).await;
    c.rotate_waitpoint_secret(&kid("k1"), &secret(1), Duration::ZERO)
        .await
        .unwrap();
    c
}

async fn claimed(c: &Client) -> Claimed {
    c.create(ExecutionSpec::new("wait")).await.unwrap();
    claim_one(c).await
}

fn names(v: &[&str]) -> Vec<SignalName> {
    v.iter().map(|s| SignalName::new(*s).unwrap()).collect()
}

fn rejected(e: Error) -> FfError {
    match e {
        Error::Rejected(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

async fn scan(c: &Client, f: BatchFunction, eid: &ff_engine::core::ExecutionId) {
    run_scan(c, f, eid.partition()).await;
}

async fn signal_after_suspend_resumes_once(store: Arc<dyn Store>) {
    let c = ready(store.clone()).await;
    let cl = claimed(&c).await;
    let eid = cl.lease.execution.clone();
    let wp = c.new_waitpoint_id();
    let s = c
        .suspend(
            &cl.lease,
            &Suspension::on([wp.clone()]).timeout(Duration::from_secs(60), TimeoutBehaviour::Fail),
        )
        .await
        .unwrap();
    assert!(matches!(
        s.outcome,
        SuspendOutcome::Suspended {
            timeout_at_ms: Some(_)
        }
    ));
    let token = s.tokens[0].1.clone();
    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Suspended);
    assert_eq!(rec.attempt_state, Some(AttemptState::Suspended));
    assert_eq!(rec.suspended_on, vec![wp.clone()]);
    assert!(rec.lease.is_none());
    let pk = PartitionKeys::of(&eid);
    assert_eq!(
        zmembers(&*store, &pk.suspension_timeout()).await,
        vec![eid.to_string()]
    );
    assert!(zmembers(&*store, &pk.lease_expiry()).await.is_empty());
    // The old lease is fenced out.
    assert!(c
        .complete(&cl.lease, b"x")
        .await
        .unwrap_err()
        .is_fenced_out());
    // A repeat of the suspend answers the same, tokens included.
    let again = c
        .suspend(
            &cl.lease,
            &Suspension::on([wp.clone()]).timeout(Duration::from_secs(60), TimeoutBehaviour::Fail),
        )
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.tokens, s.tokens);

    let got = c
        .signal(&eid, &wp, &token, Signal::new("approved").payload("yes"))
        .await
        .unwrap();
    assert_eq!(got.effect, SignalEffect::Resumed);
    assert!(!got.duplicate);
    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Waiting);
    assert_eq!(rec.resumes, 1);
    assert!(zmembers(&*store, &pk.suspension_timeout()).await.is_empty());
    // Closed: a second signal is refused and changes nothing.
    let e = c
        .signal(&eid, &wp, &token, Signal::new("approved"))
        .await
        .unwrap_err();
    assert!(matches!(rejected(e), FfError::WaitpointClosed(_)));
    let w = c.waitpoint(&eid, &wp).await.unwrap();
    assert_eq!(w.state, WaitpointState::Closed);
    assert_eq!(w.signals.len(), 1);
    assert_eq!(w.signals[0].payload, b"yes");
    assert_eq!(w.signals[0].effect, SignalEffect::Resumed);
    // The same execution, claimed again: its next attempt.
    let again = claim_one(&c).await;
    assert_eq!(again.lease.execution, eid);
    assert_eq!(again.attempt, 2);
    c.complete(&again.lease, b"done").await.unwrap();
}

async fn early_signal_is_buffered_and_resumes_at_suspend(store: Arc<dyn Store>) {
    let c = ready(store.clone()).await;
    let cl = claimed(&c).await;
    let eid = cl.lease.execution.clone();
    let pending = c
        .create_waitpoint(&eid, Duration::from_secs(60))
        .await
        .unwrap();
    let pk = PartitionKeys::of(&eid);
    assert_eq!(
        zmembers(&*store, &pk.pending_waitpoints()).await,
        vec![pending.id.to_string()]
    );
    let got = c
        .signal(&eid, &pending.id, &pending.token, Signal::new("done"))
        .await
        .unwrap();
    assert_eq!(got.effect, SignalEffect::Buffered);
    let s = c
        .suspend(&cl.lease, &Suspension::on([pending.id.clone()]))
        .await
        .unwrap();
    assert_eq!(s.outcome, SuspendOutcome::Resumed);
    assert_eq!(s.tokens[0].1, pending.token);
    assert!(zmembers(&*store, &pk.pending_waitpoints()).await.is_empty());
    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.public_state, PublicState::Waiting);
    assert_eq!(rec.resumes, 1);
    assert_eq!(claim_one(&c).await.attempt, 2);
}

async fn all_any_and_count_conditions(store: Arc<dyn Store>) {
    let c = ready(store).await;
    // all:a,b over two waitpoints: 'a' twice is not enough; 'b' completes it.
    let cl = claimed(&c).await;
    let eid = cl.lease.execution.clone();
    let (w1, w2) = (c.new_waitpoint_id(), c.new_waitpoint_id());
    let s = c
        .suspend(
            &cl.lease,
            &Suspension::on([w1.clone(), w2.clone()])
                .condition(ResumeCondition::AllOf(names(&["a", "b"]))),
        )
        .await
        .unwrap();
    let (t1, t2) = (s.tokens[0].1.clone(), s.tokens[1].1.clone());
    for _ in 0..2 {
        let r = c.signal(&eid, &w1, &t1, Signal::new("a")).await.unwrap();
        assert_eq!(r.effect, SignalEffect::Recorded);
    }
    let r = c.signal(&eid, &w2, &t2, Signal::new("b")).await.unwrap();
    assert_eq!(r.effect, SignalEffect::Resumed);
    // Each token is its own waitpoint's.
    let e = c
        .signal(&eid, &w1, &t2, Signal::new("a"))
        .await
        .unwrap_err();
    assert!(matches!(rejected(e), FfError::InvalidToken(ref d) if d == "mismatch"));
    let cl = claim_one(&c).await;

    // any:x,y: other names are recorded, x resumes.
    let w = c.new_waitpoint_id();
    let s = c
        .suspend(
            &cl.lease,
            &Suspension::on([w.clone()]).condition(ResumeCondition::AnyOf(names(&["x", "y"]))),
        )
        .await
        .unwrap();
    let t = s.tokens[0].1.clone();
    let r = c.signal(&eid, &w, &t, Signal::new("z")).await.unwrap();
    assert_eq!(r.effect, SignalEffect::Recorded);
    let r = c.signal(&eid, &w, &t, Signal::new("x")).await.unwrap();
    assert_eq!(r.effect, SignalEffect::Resumed);
    let cl = claim_one(&c).await;
    assert_eq!(cl.attempt, 3);

    // count:3.
    let w = c.new_waitpoint_id();
    let s = c
        .suspend(
            &cl.lease,
            &Suspension::on([w.clone()]).condition(ResumeCondition::Count(3)),
        )
        .await
        .unwrap();
    let t = s.tokens[0].1.clone();
    let effects: Vec<SignalEffect> = {
        let mut v = Vec::new();
        for i in 0..3 {
            v.push(
                c.signal(&eid, &w, &t, Signal::new(format!("s{i}")))
                    .await
                    .unwrap()
                    .effect,
            );
        }
        v
    };
    assert_eq!(
        effects,
        vec![
            SignalEffect::Recorded,
            SignalEffect::Recorded,
            SignalEffect::Resumed
        ]
    );
    let rec = c.get(&eid).await.unwrap();
    assert_eq!(rec.resumes, 3);
    assert_eq!(rec.signals, 8);
    assert_eq!(rec.waitpoints.len(), 4);
}

async fn duplicate_signal_is_answered_as_the_first(store: Arc<dyn Store>) {
    let c = ready(store).await;
    let cl = claimed(&c).await;
    let eid = cl.lease.execution.clone();
    let w = c.new_waitpoint_id();
    let s = c
        .suspend(
            &cl.lease,
            &Suspension::on([w.clone()]).condition(ResumeCondition::Count(2)),
        )
        .await
        .unwrap();
    let t = s.tokens[0].1.clone();
    let sig = Signal::new("tick").idempotency_key("delivery-1");
    let first = c.signal(&eid, &w, &t, sig.clone()).await.unwrap();
    let again = c.signal(&eid, &w, &t, sig.clone()).await.unwrap();
    assert!(again.duplicate);
    assert_eq!((again.index, again.effect), (first.index, first.effect));
    // The duplicate did not count towards the condition.
    assert_eq!(
        c.get(&eid).await.unwrap().public_state,
        PublicState::Suspended
    );
    let r = c
        .signal(
            &eid,
            &w,
            &t,
            Signal::new("tick").idempotency_key("delivery-2"),
        )
        .await
        .unwrap();
    assert_eq!(r.effect, SignalEffect::Resumed);
    // After the resume, the repeat of a delivered key is still a duplicate.
    let late = c
        .signal(
            &eid,
            &w,
            &t,
            Signal::new("tick").idempotency_key("delivery-2"),
        )
        .await
        .unwrap();
    assert!(late.duplicate);
    assert_eq!(late.effect, SignalEffect::Resumed);
    assert_eq!(c.waitpoint(&eid, &w).await.unwrap().signals.len(), 2);
    assert_eq!(c.get(&eid).await.unwrap().resumes, 1);
}

async fn timeout_applies_each_behaviour(store: Arc<dyn Store>) {
    let c = ready(store.clone()).await;
    let cases = [
        (TimeoutBehaviour::Fail, PublicState::Failed),
        (TimeoutBehaviour::Cancel, PublicState::Cancelled),
        (TimeoutBehaviour::Expire, PublicState::Expired),
        (TimeoutBehaviour::Resume, PublicState::Waiting),
    ];
    for (behaviour, want) in cases {
        let cl = claimed(&c).await;
        let eid = cl.lease.execution.clone();
        let w = c.new_waitpoint_id();
        let s = c
            .suspend(
                &cl.lease,
                &Suspension::on([w.clone()]).timeout(Duration::from_millis(200), behaviour),
            )
            .await
            .unwrap();
        // Not due yet: nothing happens.
        scan(&c, BatchFunction::ExpireSuspensions, &eid).await;
        assert_eq!(
            c.get(&eid).await.unwrap().public_state,
            PublicState::Suspended
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
        let out = run_scan(&c, BatchFunction::ExpireSuspensions, eid.partition()).await;
        assert_eq!(out.acted, 1, "{behaviour:?}");
        let rec = c.get(&eid).await.unwrap();
        assert_eq!(rec.public_state, want, "{behaviour:?}");
        assert!(
            zmembers(&*store, &PartitionKeys::of(&eid).suspension_timeout())
                .await
                .is_empty()
        );
        assert_eq!(
            c.waitpoint(&eid, &w).await.unwrap().state,
            WaitpointState::Closed
        );
        let e = c
            .signal(&eid, &w, &s.tokens[0].1, Signal::new("late"))
            .await
            .unwrap_err();
        assert!(matches!(
            rejected(e),
            FfError::WaitpointClosed(_) | FfError::AlreadyTerminal(_)
        ));
        if behaviour == TimeoutBehaviour::Resume {
            let again = claim_one(&c).await;
            assert_eq!(again.lease.execution, eid);
            c.complete(&again.lease, b"").await.unwrap();
        }
    }
}

async fn pending_waitpoint_expires(store: Arc<dyn Store>) {
    let c = ready(store.clone()).await;
    let cl = claimed(&c).await;
    let eid = cl.lease.execution.clone();
    let p = c
        .create_waitpoint(&eid, Duration::from_millis(30))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(60)).await;
    let out = run_scan(&c, BatchFunction::ExpireWaitpoints, eid.partition()).await;
    assert_eq!(out.acted, 1);
    assert!(
        zmembers(&*store, &PartitionKeys::of(&eid).pending_waitpoints())
            .await
            .is_empty()
    );
    let w = c.waitpoint(&eid, &p.id).await.unwrap();
    assert_eq!(w.state, WaitpointState::Expired);
    let e = c
        .signal(&eid, &p.id, &p.token, Signal::new("late"))
        .await
        .unwrap_err();
    assert!(matches!(rejected(e), FfError::WaitpointClosed(ref s) if s == "expired"));
    let e = c
        .suspend(&cl.lease, &Suspension::on([p.id.clone()]))
        .await
        .unwrap_err();
    assert!(matches!(rejected(e), FfError::WaitpointClosed(_)));
    // The refused suspend changed nothing: the lease still holds.
    c.complete(&cl.lease, b"ok").await.unwrap();
}

async fn token_rotation_keeps_old_tokens_for_their_grace(store: Arc<dyn Store>) {
    let c = small(store).await;
    c.create(ExecutionSpec::new("wait")).await.unwrap();
    let cl = claim_one(&c).await;
    let eid = cl.lease.execution.clone();
    // No secret yet: refused, nothing created.
    let e = c
        .create_waitpoint(&eid, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(matches!(rejected(e), FfError::NoSecret));
    assert!(c.get(&eid).await.unwrap().waitpoints.is_empty());

    c.rotate_waitpoint_secret(&kid("k1"), &secret(1), Duration::ZERO)
        .await
        .unwrap();
    // Repeating a rotation is harmless; reusing a key id for another secret is refused.
    c.rotate_waitpoint_secret(&kid("k1"), &secret(1), Duration::ZERO)
        .await
        .unwrap();
    let e = c
        .rotate_waitpoint_secret(&kid("k1"), &secret(2), Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(rejected(e), FfError::InvalidArgument { .. }));

    let old = c
        .create_waitpoint(&eid, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(old.token.kid(), "k1");
    c.rotate_waitpoint_secret(&kid("k2"), &secret(2), Duration::from_millis(300))
        .await
        .unwrap();
    let new = c
        .create_waitpoint(&eid, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(new.token.kid(), "k2");
    // Within the grace, the old key still proves its waitpoint.
    let r = c
        .signal(&eid, &old.id, &old.token, Signal::new("a"))
        .await
        .unwrap();
    assert_eq!(r.effect, SignalEffect::Buffered);
    tokio::time::sleep(Duration::from_millis(350)).await;
    let e = c
        .signal(&eid, &old.id, &old.token, Signal::new("b"))
        .await
        .unwrap_err();
    assert!(matches!(rejected(e), FfError::InvalidToken(ref d) if d == "expired key"));
    assert_eq!(c.waitpoint(&eid, &old.id).await.unwrap().signals.len(), 1);
    c.signal(&eid, &new.id, &new.token, Signal::new("c"))
        .await
        .unwrap();
    // A later rotation drops the expired key: its tokens are then unknown.
    c.rotate_waitpoint_secret(&kid("k3"), &secret(3), Duration::from_secs(60))
        .await
        .unwrap();
    let e = c
        .signal(&eid, &old.id, &old.token, Signal::new("d"))
        .await
        .unwrap_err();
    assert!(matches!(rejected(e), FfError::InvalidToken(ref d) if d == "unknown key"));
    c.signal(&eid, &new.id, &new.token, Signal::new("e"))
        .await
        .unwrap();
}

async fn tampered_token_is_refused_and_changes_nothing(store: Arc<dyn Store>) {
    let c = ready(store.clone()).await;
    let cl = claimed(&c).await;
    let eid = cl.lease.execution.clone();
    let w = c.new_waitpoint_id();
    let s = c
        .suspend(&cl.lease, &Suspension::on([w.clone()]))
        .await
        .unwrap();
    let good = s.tokens[0].1.expose().to_owned();
    let other = claimed(&c).await;
    let before = all_keys(&*store).await;
    let flip = |at: usize| {
        let mut b = good.clone().into_bytes();
        b[at] = if b[at] == b'0' { b'1' } else { b'0' };
        WaitpointToken::parse(std::str::from_utf8(&b).unwrap()).unwrap()
    };
    let forged = [
        flip(good.len() - 1),
        flip(3),
        WaitpointToken::parse(&format!("k9.{}", &good[3..])).unwrap(),
    ];
    let mut reasons = Vec::new();
    for t in &forged {
        let e = c.signal(&eid, &w, t, Signal::new("a")).await.unwrap_err();
        match rejected(e) {
            FfError::InvalidToken(d) => reasons.push(d),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(reasons, vec!["mismatch", "mismatch", "unknown key"]);
    // The token of the same waitpoint id for another execution does not fit either.
    let e = c
        .signal(&other.lease.execution, &w, &s.tokens[0].1, Signal::new("a"))
        .await
        .unwrap_err();
    assert!(matches!(rejected(e), FfError::InvalidToken(_)));
    assert_eq!(all_keys(&*store).await, before);
    assert!(c.waitpoint(&eid, &w).await.unwrap().signals.is_empty());
    assert_eq!(
        c.get(&eid).await.unwrap().public_state,
        PublicState::Suspended
    );
    // A malformed one is refused by the client before it is sent.
    assert!(WaitpointToken::parse("k1.xyz").is_err());
    assert!(!format!("{:?}", s.tokens[0].1).contains(&good[3..]));
}

async fn cancel_and_reconcile_a_suspended_execution(store: Arc<dyn Store>) {
    let c = ready(store.clone()).await;
    let cl = claimed(&c).await;
    let eid = cl.lease.execution.clone();
    let w = c.new_waitpoint_id();
    c.suspend(
        &cl.lease,
        &Suspension::on([w.clone()]).timeout(Duration::from_secs(60), TimeoutBehaviour::Resume),
    )
    .await
    .unwrap();
    // The reconciler finds it consistent.
    let out = run_scan(&c, BatchFunction::ReconcileIndexes, eid.partition()).await;
    assert_eq!((out.acted, out.repaired), (1, 0));
    c.cancel(&eid, "no longer needed").await.unwrap();
    assert_eq!(
        c.get(&eid).await.unwrap().public_state,
        PublicState::Cancelled
    );
    assert!(
        zmembers(&*store, &PartitionKeys::of(&eid).suspension_timeout())
            .await
            .is_empty()
    );
    assert_eq!(
        c.waitpoint(&eid, &w).await.unwrap().state,
        WaitpointState::Closed
    );
}

async fn reconciler_restores_a_lost_pending_waitpoint(store: Arc<dyn Store>) {
    let c = ready(store.clone()).await;
    let cl = claimed(&c).await;
    let eid = cl.lease.execution.clone();
    let p = c
        .create_waitpoint(&eid, Duration::from_secs(60))
        .await
        .unwrap();
    let pk = PartitionKeys::of(&eid);
    let index = pk.pending_waitpoints();
    store
        .command(&cmd(["ZREM", index.as_str(), p.id.to_string().as_str()]))
        .await
        .unwrap();
    assert!(zmembers(&*store, &index).await.is_empty());
    let out = run_scan(&c, BatchFunction::ReconcileIndexes, eid.partition()).await;
    assert_eq!(out.repaired, 1);
    assert_eq!(zmembers(&*store, &index).await, vec![p.id.to_string()]);
    let score = store
        .command(&cmd(["ZSCORE", index.as_str(), p.id.to_string().as_str()]))
        .await
        .unwrap();
    assert_eq!(
        score.text().and_then(|s| s.parse::<u64>().ok()),
        Some(p.expires_at_ms)
    );
    // Consistent now: a second sweep repairs nothing.
    let out = run_scan(&c, BatchFunction::ReconcileIndexes, eid.partition()).await;
    assert_eq!(out.repaired, 0);
}

async fn worker_handler_suspends_and_runs_again_after_the_signal(store: Arc<dyn Store>) {
    use ff_engine::worker::{Job, JobError, Worker};
    let c = ready(store).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let client = c.clone();
    let worker = Worker::builder(c.clone(), "approver")
        .handle("approve", move |job: Job| {
            let (client, tx) = (client.clone(), tx.clone());
            async move {
                if job.attempt > 1 {
                    return Ok(b"approved".to_vec());
                }
                let p = client
                    .create_waitpoint(&job.execution, Duration::from_secs(60))
                    .await
                    .map_err(JobError::retry)?;
                tx.send(p.clone()).unwrap();
                Err(JobError::Suspend(Suspension::on([p.id])))
            }
        })
        .start()
        .unwrap();
    let eid = c
        .create(ExecutionSpec::new("approve"))
        .await
        .unwrap()
        .execution;
    let p = rx.recv().await.unwrap();
    let c2 = c.clone();
    wait_for("the suspension", Duration::from_secs(10), || {
        let (c, eid) = (c2.clone(), eid.clone());
        async move { c.get(&eid).await.unwrap().public_state == PublicState::Suspended }
    })
    .await;
    c.signal(&eid, &p.id, &p.token, Signal::new("ok"))
        .await
        .unwrap();
    wait_for("completion", Duration::from_secs(10), || {
        let (c, eid) = (c2.clone(), eid.clone());
        async move { c.get(&eid).await.unwrap().public_state == PublicState::Completed }
    })
    .await;
    assert_eq!(c.get(&eid).await.unwrap().attempt, 2);
    worker.shutdown().await;
}

/// Each body runs twice: against its own redis-server and on a MemoryStore.
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod on_redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let redis = ff_tests::TestRedis::standalone();
                    super::$name(super::common::store(&redis.url()).await).await
                }
            )*
        }
        mod on_memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(std::sync::Arc::new(ff_engine::store::MemoryStore::new())).await
                }
            )*
        }
    };
}

on_both_stores!(
    signal_after_suspend_resumes_once,
    early_signal_is_buffered_and_resumes_at_suspend,
    all_any_and_count_conditions,
    duplicate_signal_is_answered_as_the_first,
    timeout_applies_each_behaviour,
    pending_waitpoint_expires,
    token_rotation_keeps_old_tokens_for_their_grace,
    tampered_token_is_refused_and_changes_nothing,
    cancel_and_reconcile_a_suspended_execution,
    reconciler_restores_a_lost_pending_waitpoint,
    worker_handler_suspends_and_runs_again_after_the_signal,
    hmac_matches_rfc_4231,
);

/// lua/hmac.lua on its own, as a library with one test function.
async fn hmac_matches_rfc_4231(store: Arc<dyn Store>) {
    let code = format!(
        "#!lua name=hmactest\n{}\n{}",
        include_str!("../../lua/hmac.lua"),
        "redis.register_function('hmac_test', function(keys, args)
           local i, o = hmac_states(hex_to_bytes(args[1]))
           return {hmac_hex(i, o, hex_to_bytes(args[2])), sha256_hex(hex_to_bytes(args[2]))}
         end)"
    );
    let loaded = store
        .command(&cmd(["FUNCTION", "LOAD", "REPLACE", &code]))
        .await
        .unwrap();
    assert_eq!(loaded.text().as_deref(), Some("hmactest"));
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // (key, data, HMAC-SHA256) from RFC 4231 test cases 1, 2, 3, 4, 6, 7.
    let long_key = vec![0xaa; 131];
    let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
        (vec![0x0b; 20], b"Hi There".to_vec(), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
        (b"Jefe".to_vec(), b"what do ya want for nothing?".to_vec(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (vec![0xaa; 20], vec![0xdd; 50], "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
        ((1..=25).collect(), vec![0xcd; 50], "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
        (long_key.clone(), b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        (long_key, b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(), "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
    ];
    for (key, data, want) in cases {
        let reply = store
            .fcall(
                &ff_engine::core::contract::Call::new("hmac_test", vec![])
                    .arg(hex(&key))
                    .arg(hex(&data)),
            )
            .await
            .unwrap();
        let Reply::Array(items) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(items[0].text().as_deref(), Some(want));
    }
    // SHA-256 of "abc" (FIPS 180-4) and of a two-block message.
    for (msg, want) in [
        (
            &b"abc"[..],
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        ),
        (
            &b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"[..],
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
        ),
    ] {
        let reply = store
            .fcall(
                &ff_engine::core::contract::Call::new("hmac_test", vec![])
                    .arg("00")
                    .arg(hex(msg)),
            )
            .await
            .unwrap();
        let Reply::Array(items) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(items[1].text().as_deref(), Some(want));
    }
}

#[tokio::test]
async fn suspend_and_signal_on_a_cluster() {
    let cluster = ff_tests::RedisCluster::start();
    let c = cluster_client(cluster.urls()).await;
    c.rotate_waitpoint_secret(&kid("k1"), &secret(1), Duration::ZERO)
        .await
        .unwrap();
    for _ in 0..20 {
        c.create(ExecutionSpec::new("wait")).await.unwrap();
    }
    let (lane, w, i) = worker();
    let claimed = c.claim(&lane, &w, &i, LEASE, 20).await.unwrap();
    assert_eq!(claimed.len(), 20);
    let mut waiting: Vec<(ff_engine::core::ExecutionId, WaitpointId, WaitpointToken)> = Vec::new();
    for (n, cl) in claimed.iter().enumerate() {
        let eid = cl.lease.execution.clone();
        if n % 2 == 0 {
            // Early signal on a pending waitpoint, then the suspension.
            let p = c
                .create_waitpoint(&eid, Duration::from_secs(60))
                .await
                .unwrap();
            c.signal(&eid, &p.id, &p.token, Signal::new("go"))
                .await
                .unwrap();
            let s = c.suspend(&cl.lease, &Suspension::on([p.id])).await.unwrap();
            assert_eq!(s.outcome, SuspendOutcome::Resumed);
        } else {
            let wp = c.new_waitpoint_id();
            let s = c
                .suspend(&cl.lease, &Suspension::on([wp.clone()]))
                .await
                .unwrap();
            waiting.push((eid, wp, s.tokens[0].1.clone()));
        }
    }
    // A rotation reaches every partition: old tokens still work in their grace.
    c.rotate_waitpoint_secret(&kid("k2"), &secret(2), Duration::from_secs(60))
        .await
        .unwrap();
    for (eid, wp, token) in &waiting {
        let r = c.signal(eid, wp, token, Signal::new("go")).await.unwrap();
        assert_eq!(r.effect, SignalEffect::Resumed);
    }
    let again = c.claim(&lane, &w, &i, LEASE, 20).await.unwrap();
    assert_eq!(again.len(), 20);
    assert!(again.iter().all(|cl| cl.attempt == 2));
}
