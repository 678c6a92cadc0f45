//! A call sent again after "applied, reply lost": a store that loses its
//! connection before the reply reconnects and sends the same FCALL again.
//! Each test makes calls through the Client over a store that records them,
//! then sends a recorded `Call` again, unchanged, through `Store::fcall`
//! (exactly what the server sees from such a retry), and checks the
//! documented answer (each contract's `Repeat:`; docs/architecture.md, "A
//! repeated call") and that the data is as after one call — on a real
//! redis-server and on MemoryStore (the same bodies).

mod common;

use common::*;
use ff_engine::client::{Signal, Suspension};
use ff_engine::core::admission::QuotaLimits;
use ff_engine::core::contract::admission::{
    self as ad, Admitted, BudgetDef, DimensionLimits, UsageReport,
};
use ff_engine::core::contract::execution::ExecutionRecord;
use ff_engine::core::contract::execution::{self as ex, Claimed, EndOutcome, Ended, Report};
use ff_engine::core::contract::flow::{self as fl, EdgeDecision};
use ff_engine::core::contract::ownership::{self as own, Ring};
use ff_engine::core::contract::scan::{self, BatchFunction};
use ff_engine::core::contract::suspension::{
    self as sp, ResumeCondition, SecretKid, SignalArgs, SignalEffect, SuspendOutcome,
    WaitpointSecret,
};
use ff_engine::core::contract::Call;
use ff_engine::core::flow::JoinPolicy;
use ff_engine::core::keys::PartitionKeys;
use ff_engine::core::reply::Reply;
use ff_engine::core::retry::RetryPolicy;
use ff_engine::core::state::PublicState;
use ff_engine::core::{ExecutionId, FfError, Partition, QuotaId, SignalName};
use ff_engine::engine::scan_admission_once;
use ff_engine::error::StoreError;
use ff_engine::store::{Store, SubEvent};
use ff_engine::{Client, Error, ExecutionSpec};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A store that keeps every FCALL it sends, to send one again.
struct Recorder {
    inner: Arc<dyn Store>,
    calls: Mutex<Vec<Call>>,
}

impl Recorder {
    /// The calls of `function` sent so far, oldest first.
    fn sent(&self, function: &str) -> Vec<Call> {
        let calls = self.calls.lock().unwrap();
        calls
            .iter()
            .filter(|c| c.function == function)
            .cloned()
            .collect()
    }

    /// The last call of `function`.
    fn last(&self, function: &str) -> Call {
        self.sent(function)
            .pop()
            .unwrap_or_else(|| panic!("no {function} call was sent"))
    }

    /// Send `call` again, as the store's retry would (the recorded one is
    /// left as it was).
    async fn again(&self, call: &Call) -> Reply {
        assert!(call.repeatable, "{} is not repeatable", call.function);
        self.inner.fcall(call).await.expect("repeat")
    }

    /// The last call of `function`, sent again.
    async fn repeat(&self, function: &str) -> Reply {
        self.again(&self.last(function)).await
    }
}

#[async_trait::async_trait]
impl Store for Recorder {
    async fn fcall(&self, call: &Call) -> Result<Reply, StoreError> {
        self.calls.lock().unwrap().push(call.clone());
        self.inner.fcall(call).await
    }
    async fn fcall_many(&self, calls: &[Call]) -> Vec<Result<Reply, StoreError>> {
        self.calls.lock().unwrap().extend(calls.iter().cloned());
        self.inner.fcall_many(calls).await
    }
    async fn command(&self, args: &[Vec<u8>]) -> Result<Reply, StoreError> {
        self.inner.command(args).await
    }
    async fn command_many(&self, cmds: &[Vec<Vec<u8>>]) -> Vec<Result<Reply, StoreError>> {
        self.inner.command_many(cmds).await
    }
    async fn time_ms(&self) -> Result<u64, StoreError> {
        self.inner.time_ms().await
    }
    async fn ensure_library(&self) -> Result<(), StoreError> {
        self.inner.ensure_library().await
    }
    async fn subscribe(
        &self,
        channel: &str,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<SubEvent>, StoreError> {
        self.inner.subscribe(channel).await
    }
}

/// A client (8 flow partitions: a secret rotation writes to each) over a
/// recording store.
async fn recorded(store: Arc<dyn Store>) -> (Arc<Recorder>, Client) {
    let rec = Arc::new(Recorder {
        inner: store,
        calls: Mutex::default(),
    });
    let config = ff_engine::core::PartitionConfig {
        flow_partitions: 8,
        ..Default::default()
    };
    let c = Client::with_partitions(rec.clone(), config)
        .await
        .expect("client");
    (rec, c)
}

fn rejected(e: impl Into<Error>) -> FfError {
    match e.into() {
        Error::Rejected(r) => r,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn replayed(outcome: EndOutcome) -> Ended {
    Ended {
        outcome,
        replayed: true,
    }
}

async fn claim_in(c: &Client, p: Partition, ttl: Duration, n: usize) -> Vec<Claimed> {
    let (lane, w, i) = worker();
    c.claim_in(p, &lane, &w, &i, ttl, n).await.expect("claim")
}

/// Create `spec` and claim it (the only eligible execution of its partition).
async fn started(c: &Client, spec: ExecutionSpec) -> Claimed {
    let id = c.create(spec).await.unwrap().execution;
    let got = claim_in(c, id.partition(), LEASE, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].lease.execution, id);
    got.into_iter().next().unwrap()
}

/// Two eligible executions of one partition (members of one flow, no edges).
async fn pair(c: &Client) -> (ExecutionId, ExecutionId) {
    let flow = c.create_flow("default").await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let spec = ExecutionSpec::new("k").in_flow(&flow, JoinPolicy::AllOf);
        ids.push(c.create(spec).await.unwrap().execution);
    }
    (ids[0].clone(), ids[1].clone())
}

async fn create_repeats_answer_created_once(store: Arc<dyn Store>) {
    let (rec, c) = recorded(store.clone()).await;

    // Without an idempotency key: the id is the call's own.
    let first = c
        .create(ExecutionSpec::new("k").payload("p").tag("t", "v"))
        .await
        .unwrap();
    let eid = first.execution.clone();
    let created_at = c.get(&eid).await.unwrap().created_at_ms;
    let call = rec.last("ff_create");
    assert_eq!(ex::decode_create(&rec.again(&call).await).unwrap(), first);
    // Claimed in between: the repeat answers the state now and resets nothing.
    let cl = claim_in(&c, eid.partition(), LEASE, 1).await;
    assert_eq!(cl.len(), 1);
    let again = ex::decode_create(&rec.again(&call).await).unwrap();
    assert!(again.created);
    assert_eq!(
        (again.execution, again.state),
        (eid.clone(), PublicState::Active)
    );
    let r = c.get(&eid).await.unwrap();
    assert_eq!(r.created_at_ms, created_at);
    assert_eq!(r.lease.as_ref(), Some(&cl[0].lease));
    let pk = PartitionKeys::of(&eid);
    assert!(zmembers(&*store, &pk.eligible(&r.lane)).await.is_empty());
    // Another creation under the taken id is still refused.
    let mut other = call.clone();
    assert_eq!(other.args[5], b"p");
    other.args[5] = b"other".to_vec();
    assert!(matches!(
        rejected(ex::decode_create(&rec.again(&other).await).unwrap_err()),
        FfError::InvalidArgument { .. }
    ));
    // So is one that differs in a field the record left out at its default.
    let mut other = call.clone();
    assert_eq!(other.args[4], b"0", "priority");
    other.args[4] = b"7".to_vec();
    assert!(matches!(
        rejected(ex::decode_create(&rec.again(&other).await).unwrap_err()),
        FfError::InvalidArgument { .. }
    ));

    // With an idempotency key: the same, and a new creation with the key
    // (another id) is the duplicate it always was.
    let keyed = ExecutionSpec::new("k").idempotency_key("order-1", Duration::from_secs(3600));
    let first = c.create(keyed.clone()).await.unwrap();
    let call = rec.last("ff_create");
    assert_eq!(call.keys.len(), 2, "the idempotency record is a key");
    assert_eq!(ex::decode_create(&rec.again(&call).await).unwrap(), first);
    let dup = c.create(keyed).await.unwrap();
    assert!(!dup.created);
    assert_eq!(dup.execution, first.execution);

    // A bulk submit: each item answered as created, in full.
    let specs = vec![
        ExecutionSpec::new("bulk").payload("a"),
        ExecutionSpec::new("bulk").delay(Duration::from_secs(60)),
        ExecutionSpec::new("bulk").idempotency_key("bulk-1", Duration::from_secs(3600)),
    ];
    let firsts: Vec<_> = c
        .create_many(specs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut answered = Vec::new();
    for call in rec.sent("ff_create_many") {
        // (ARGV[1]: how many creations the call makes)
        let n = String::from_utf8(call.args[0].clone())
            .unwrap()
            .parse()
            .unwrap();
        for r in ex::decode_create_many(&rec.again(&call).await, n).unwrap() {
            answered.push(r.unwrap());
        }
    }
    assert_eq!(answered.len(), 3);
    for f in &firsts {
        let a = answered
            .iter()
            .find(|a| a.execution == f.execution)
            .unwrap();
        assert_eq!(a, f);
    }

    // A flow member sent again after its flow was cancelled: answered as
    // created (it was), not refused, and counted once.
    let flow = c.create_flow("default").await.unwrap();
    let m = c
        .create(ExecutionSpec::new("k").in_flow(&flow, JoinPolicy::AllOf))
        .await
        .unwrap();
    let call = rec.last("ff_create");
    assert!(c.cancel_flow(&flow, "stop").await.unwrap());
    let again = ex::decode_create(&rec.again(&call).await).unwrap();
    assert!(again.created);
    assert_eq!(
        (again.execution, again.state),
        (m.execution, PublicState::Cancelled)
    );
    let summary = c.get_flow(&flow).await.unwrap().summary;
    assert_eq!((summary.members, summary.cancelled), (1, 1));
}

async fn a_repeated_claim_orphans_a_lease_that_is_reclaimed(store: Arc<dyn Store>) {
    let (rec, c) = recorded(store.clone()).await;
    let (a, b) = pair(&c).await;
    let p = a.partition();
    let short = Duration::from_millis(300);
    let first = claim_in(&c, p, short, 1).await;
    assert_eq!(first.len(), 1);
    let orphan = first[0].lease.clone();
    // The worker got the repeat's answer: another execution, same lease id.
    let held = ex::decode_claim(&rec.repeat("ff_claim").await, &orphan.id, 1).unwrap();
    assert_eq!(held.len(), 1);
    let held = held[0].lease.clone();
    assert_ne!(held.execution, orphan.execution);
    assert!([&a, &b].contains(&&held.execution));
    assert_eq!((held.id.clone(), held.epoch), (orphan.id.clone(), 1));
    // The worker renews what it holds; nobody renews the orphan.
    c.renew(&held, LEASE).await.unwrap();
    tokio::time::sleep(short + Duration::from_millis(100)).await;
    assert_eq!(reclaim(&c, p).await.acted, 1);
    let r = c.get(&orphan.execution).await.unwrap();
    assert_eq!(r.public_state, PublicState::Waiting);
    assert_eq!((r.reclaims, r.attempt), (1, 1));
    assert_eq!(
        c.get(&held.execution).await.unwrap().public_state,
        PublicState::Active
    );
    // The held one finishes; the orphan runs at its next claim.
    c.complete(&held, b"").await.unwrap();
    let next = claim_in(&c, p, LEASE, 1).await;
    assert_eq!(next[0].lease.execution, orphan.execution);
    assert_eq!(next[0].lease.epoch, 2);
    c.complete(&next[0].lease, b"").await.unwrap();
}

async fn lease_ending_calls_answer_repeats_from_the_fence(store: Arc<dyn Store>) {
    let (rec, c) = recorded(store.clone()).await;
    let ended = |f: &'static str, r: &Reply| ex::decode_ended(f, r).unwrap();

    // renew: extended again, the same lease.
    let cl = started(&c, ExecutionSpec::new("k")).await;
    let exp = c.renew(&cl.lease, LEASE).await.unwrap();
    let again = ex::decode_renew(&rec.repeat("ff_renew").await).unwrap();
    assert!(again >= exp);
    assert_eq!(
        c.get(&cl.lease.execution)
            .await
            .unwrap()
            .lease_expires_at_ms,
        Some(again)
    );

    // complete
    let done = c.complete(&cl.lease, b"r").await.unwrap();
    assert_eq!(done.outcome, EndOutcome::Completed);
    let r = c.get(&cl.lease.execution).await.unwrap();
    assert_eq!(
        ended("ff_complete", &rec.repeat("ff_complete").await),
        replayed(EndOutcome::Completed)
    );
    unchanged(&c, &r).await;

    // fail, a retry scheduled: the same due, one retry counted.
    let cl = started(
        &c,
        ExecutionSpec::new("k").retry(RetryPolicy::fixed(3, 60_000)),
    )
    .await;
    let first = c.fail(&cl.lease, "boom", true).await.unwrap();
    assert!(matches!(first.outcome, EndOutcome::RetryScheduled { .. }));
    assert_eq!(
        ended("ff_fail", &rec.repeat("ff_fail").await),
        replayed(first.outcome)
    );
    let r = c.get(&cl.lease.execution).await.unwrap();
    assert_eq!((r.retries, r.public_state), (1, PublicState::Delayed));

    // fail for good
    let cl = started(&c, ExecutionSpec::new("k")).await;
    c.fail(&cl.lease, "fatal", false).await.unwrap();
    let r = c.get(&cl.lease.execution).await.unwrap();
    assert_eq!(
        ended("ff_fail", &rec.repeat("ff_fail").await),
        replayed(EndOutcome::Failed)
    );
    unchanged(&c, &r).await;

    // end_many: each report replayed, the completion in full.
    let (x, _) = pair(&c).await;
    let got = claim_in(&c, x.partition(), LEASE, 2).await;
    assert_eq!(got.len(), 2);
    let out = c
        .report_many(vec![
            Report::Complete {
                lease: got[0].lease.clone(),
                result: b"ok".to_vec(),
            },
            Report::Fail {
                lease: got[1].lease.clone(),
                error: "no".into(),
                retryable: false,
            },
        ])
        .await;
    assert_eq!(out[0].as_ref().unwrap().outcome, EndOutcome::Completed);
    assert_eq!(out[1].as_ref().unwrap().outcome, EndOutcome::Failed);
    let again = ex::decode_end_many(&rec.repeat("ff_end_many").await, 2).unwrap();
    assert_eq!(again[0], Ok(replayed(EndOutcome::Completed)));
    assert_eq!(again[1], Ok(replayed(EndOutcome::Failed)));

    // delay
    let cl = started(&c, ExecutionSpec::new("k")).await;
    let first = c.delay(&cl.lease, Duration::from_secs(60)).await.unwrap();
    assert_eq!(
        ended("ff_delay", &rec.repeat("ff_delay").await),
        replayed(first.outcome)
    );
    assert_eq!(
        c.get(&cl.lease.execution).await.unwrap().delayed_until_ms,
        match first.outcome {
            EndOutcome::Delayed { due_at_ms } => Some(due_at_ms),
            o => panic!("{o:?}"),
        }
    );

    // release: replayed while the fence is its own — even once the next
    // lease is taken and completed (a completion writes no fence) ...
    let cl = started(&c, ExecutionSpec::new("k")).await;
    c.release(&cl.lease).await.unwrap();
    let release = rec.last("ff_release");
    let next = claim_in(&c, cl.lease.execution.partition(), LEASE, 1).await;
    assert_eq!(next[0].lease.epoch, 2);
    assert_eq!(
        ended("ff_release", &rec.again(&release).await),
        replayed(EndOutcome::Released)
    );
    assert_eq!(
        c.get(&cl.lease.execution).await.unwrap().lease.as_ref(),
        Some(&next[0].lease),
        "the repeat took nothing from the next lease"
    );
    c.complete(&next[0].lease, b"").await.unwrap();
    assert_eq!(
        ended("ff_release", &rec.again(&release).await),
        replayed(EndOutcome::Released)
    );
    // ... and refused as fenced out once a later lease ended with a fence
    // of its own (the documented limit; the first release stands).
    let cl = started(&c, ExecutionSpec::new("k")).await;
    c.release(&cl.lease).await.unwrap();
    let release = rec.last("ff_release");
    let next = claim_in(&c, cl.lease.execution.partition(), LEASE, 1).await;
    c.release(&next[0].lease).await.unwrap();
    let e = ex::decode_ended("ff_release", &rec.again(&release).await).unwrap_err();
    assert_eq!(rejected(e), FfError::StaleLease);
    assert_eq!(
        c.get(&cl.lease.execution).await.unwrap().public_state,
        PublicState::Waiting
    );

    // cancel
    let id = c.create(ExecutionSpec::new("k")).await.unwrap().execution;
    c.cancel(&id, "no").await.unwrap();
    let r = c.get(&id).await.unwrap();
    assert_eq!(
        ended("ff_cancel", &rec.repeat("ff_cancel").await),
        replayed(EndOutcome::Cancelled)
    );
    unchanged(&c, &r).await;
}

/// The execution as `before` read it, unchanged but for the read time.
async fn unchanged(c: &Client, before: &ExecutionRecord) {
    let mut now = c.get(&before.execution).await.unwrap();
    now.read_at_ms = before.read_at_ms;
    assert_eq!(&now, before);
}

async fn suspension_repeats_deliver_once(store: Arc<dyn Store>) {
    let (rec, c) = recorded(store.clone()).await;
    let kid = SecretKid::new("k1").unwrap();
    let secret = WaitpointSecret::new(vec![1; 32]).unwrap();
    c.rotate_waitpoint_secret(&kid, &secret, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(rec.sent("ff_rotate_secret").len(), 8);
    assert!(!sp::decode_rotate_secret(&rec.repeat("ff_rotate_secret").await).unwrap());

    let cl = started(&c, ExecutionSpec::new("wait")).await;
    let eid = cl.lease.execution.clone();
    // A pending waitpoint: the repeat answers it as existing, same token.
    let pending = c
        .create_waitpoint(&eid, Duration::from_secs(60))
        .await
        .unwrap();
    let again = sp::decode_create_waitpoint(&rec.repeat("ff_create_waitpoint").await).unwrap();
    assert!(!again.created);
    assert_eq!(
        (again.token, again.expires_at_ms),
        (pending.token.clone(), pending.expires_at_ms)
    );
    assert_eq!(
        c.get(&eid).await.unwrap().waitpoints,
        vec![pending.id.clone()]
    );

    // Suspend on it and a new one, until two signals.
    let fresh = c.new_waitpoint_id();
    let how =
        Suspension::on([pending.id.clone(), fresh.clone()]).condition(ResumeCondition::Count(2));
    let first = c.suspend(&cl.lease, &how).await.unwrap();
    assert!(matches!(first.outcome, SuspendOutcome::Suspended { .. }));
    let call = rec.last("ff_suspend");
    let args = ff_engine::core::contract::suspension::SuspendArgs {
        lease: cl.lease.clone(),
        waitpoints: how.waitpoints.clone(),
        condition: how.condition.clone(),
        timeout_ms: 0,
        on_timeout: ff_engine::core::contract::suspension::TimeoutBehaviour::Fail,
    };
    assert_eq!(sp::suspend(&args), call);
    let again = sp::decode_suspend(&args, &rec.again(&call).await).unwrap();
    assert!(again.replayed);
    assert_eq!(
        (again.outcome, &again.tokens),
        (first.outcome, &first.tokens)
    );
    assert_eq!(c.get(&eid).await.unwrap().waitpoints.len(), 2);

    // A signal without a key of the caller's: the client gives it one, so
    // the repeat is a duplicate and does not count towards the condition.
    let s = c
        .signal(&eid, &pending.id, &pending.token, Signal::new("go"))
        .await
        .unwrap();
    assert_eq!((s.duplicate, s.effect), (false, SignalEffect::Recorded));
    let call = rec.last("ff_signal");
    let key = String::from_utf8(call.args[5].clone()).unwrap();
    assert!(key.starts_with("auto-"), "{key}");
    let again = sp::decode_signal(&rec.again(&call).await).unwrap();
    assert!(again.duplicate);
    assert_eq!((again.index, again.effect), (s.index, s.effect));
    let r = c.get(&eid).await.unwrap();
    assert_eq!((r.public_state, r.signals), (PublicState::Suspended, 1));
    let wp = c.waitpoint(&eid, &pending.id).await.unwrap();
    assert_eq!(wp.signals.len(), 1);
    // The second signal, a different one, resumes it; repeated, it is the
    // same duplicate answer (and resumes nothing again).
    let token = &first.tokens.iter().find(|(w, _)| *w == fresh).unwrap().1;
    let s2 = c
        .signal(&eid, &fresh, token, Signal::new("go"))
        .await
        .unwrap();
    assert_eq!(s2.effect, SignalEffect::Resumed);
    let again = sp::decode_signal(&rec.repeat("ff_signal").await).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.effect, SignalEffect::Resumed);
    let r = c.get(&eid).await.unwrap();
    assert_eq!(
        (r.public_state, r.resumes, r.signals),
        (PublicState::Waiting, 1, 2)
    );

    // Built without a key, the call says it must not be sent again.
    let bare = sp::signal(&SignalArgs {
        execution: eid.clone(),
        waitpoint: fresh.clone(),
        token: token.clone(),
        name: SignalName::new("go").unwrap(),
        payload: vec![],
        idempotency: None,
    });
    assert!(!bare.repeatable);
    assert!(rec.last("ff_create").repeatable);
}

async fn flow_repeats_change_nothing(store: Arc<dyn Store>) {
    let (rec, c) = recorded(store.clone()).await;
    let flow = c.create_flow("default").await.unwrap();
    assert!(!fl::decode_create_flow(&rec.repeat("ff_create_flow").await).unwrap());

    // An edge to a child not created yet; the child then starts.
    let (parent, child) = (c.new_member_id(&flow), c.new_member_id(&flow));
    c.create(
        ExecutionSpec::new("k")
            .in_flow(&flow, JoinPolicy::AllOf)
            .id(parent.clone()),
    )
    .await
    .unwrap();
    let added = c.add_edge(&flow, &parent, &child, false).await.unwrap();
    assert!(added.added);
    assert_eq!(added.decision, EdgeDecision::Recorded);
    let edge = rec.last("ff_add_edge");
    let again = fl::decode_add_edge(&rec.again(&edge).await).unwrap();
    assert_eq!(
        (again.added, again.decision),
        (false, EdgeDecision::Unchanged)
    );
    c.create(
        ExecutionSpec::new("k")
            .in_flow(&flow, JoinPolicy::AllOf)
            .id(child.clone()),
    )
    .await
    .unwrap();
    let p = claim_in(&c, parent.partition(), LEASE, 1).await;
    c.complete(&p[0].lease, b"").await.unwrap();
    let ch = claim_in(&c, child.partition(), LEASE, 1).await;
    assert_eq!(ch[0].lease.execution, child);
    // Sent again once the child started: still the duplicate, not a refusal.
    let again = fl::decode_add_edge(&rec.again(&edge).await).unwrap();
    assert_eq!(
        (again.added, again.decision),
        (false, EdgeDecision::Unchanged)
    );
    assert_eq!(
        c.get(&child).await.unwrap().lease.as_ref(),
        Some(&ch[0].lease)
    );

    // cancel_flow: the members are cancelled once.
    let other = c
        .create(ExecutionSpec::new("k").in_flow(&flow, JoinPolicy::AllOf))
        .await
        .unwrap()
        .execution;
    assert!(c.cancel_flow(&flow, "stop").await.unwrap());
    let before = c.get_flow(&flow).await.unwrap();
    assert!(!fl::decode_cancel_flow(&rec.repeat("ff_cancel_flow").await).unwrap());
    let after = c.get_flow(&flow).await.unwrap();
    assert_eq!(after.summary, before.summary);
    assert_eq!(
        (after.summary.members, after.summary.cancelled),
        (3, 2),
        "the started child and the new member cancelled, the parent completed"
    );
    assert_eq!(
        c.get(&other).await.unwrap().public_state,
        PublicState::Cancelled
    );
    // A drain sent again redoes nothing.
    let d = c.store().fcall(&fl::drain(parent.partition(), 64)).await;
    let d = fl::decode_drain(&d.unwrap()).unwrap();
    let again = fl::decode_drain(&rec.repeat("ff_flow_drain").await).unwrap();
    assert_eq!((again.worked, again.remaining), (0, d.remaining));
    assert_eq!(c.get_flow(&flow).await.unwrap().summary, after.summary);
}

/// A data-passing parent's complete, a second data edge and the read, each
/// sent again: every result is passed and kept once.
async fn data_passing_repeats_pass_each_result_once(store: Arc<dyn Store>) {
    let (rec, c) = recorded(store.clone()).await;
    let flow = c.create_flow("default").await.unwrap();
    let child = c.new_member_id(&flow);
    let member = || ExecutionSpec::new("k").in_flow(&flow, JoinPolicy::AllOf);
    let mut claimed = Vec::new();
    for _ in 0..2 {
        claimed.push(started(&c, member()).await);
    }
    let [a, b] = [0, 1].map(|i| claimed[i].lease.execution.clone());
    c.add_edge(&flow, &a, &child, true).await.unwrap();
    c.complete(&claimed[0].lease, b"ra").await.unwrap();
    let again = ex::decode_ended("ff_complete", &rec.repeat("ff_complete").await).unwrap();
    assert_eq!(again, replayed(EndOutcome::Completed));
    let only_a = [(a.clone(), b"ra".to_vec())].into();
    assert_eq!(c.parent_results(&child).await.unwrap(), only_a);

    // The second data edge keeps a's result by its id, once.
    c.add_edge(&flow, &b, &child, true).await.unwrap();
    let again = fl::decode_add_edge(&rec.repeat("ff_add_edge").await).unwrap();
    assert_eq!(
        (again.added, again.decision),
        (false, EdgeDecision::Unchanged)
    );
    assert_eq!(c.parent_results(&child).await.unwrap(), only_a);
    c.complete(&claimed[1].lease, b"rb").await.unwrap();
    rec.repeat("ff_complete").await;
    let both = [(a, b"ra".to_vec()), (b, b"rb".to_vec())].into();
    assert_eq!(c.parent_results(&child).await.unwrap(), both);
    let again = fl::decode_parent_results(&rec.repeat("ff_parent_results").await).unwrap();
    assert_eq!(again, both);
}

/// An existing execution added to a flow with a data-passing parent, the
/// add sent again (before and after the parent ended and the flow was
/// cancelled): one member, one edge, the result passed once.
async fn add_to_flow_repeats_add_once(store: Arc<dyn Store>) {
    let (rec, c) = recorded(store.clone()).await;
    let flow = c.create_flow("default").await.unwrap();
    let parent = started(
        &c,
        ExecutionSpec::new("k").in_flow(&flow, JoinPolicy::AllOf),
    )
    .await;
    let p = parent.lease.execution.clone();
    let x = c.new_member_id(&flow);
    c.create(ExecutionSpec::new("k").id(x.clone()))
        .await
        .unwrap();
    let args = fl::AddToFlowArgs::new(&flow, &x).parent(&p, true);
    let added = c.add_to_flow(&args).await.unwrap();
    assert_eq!(
        (added.added, added.state),
        (true, PublicState::WaitingChildren)
    );
    let call = rec.last("ff_add_execution_to_flow");
    let once = |again: Reply| fl::decode_add_execution_to_flow(&again).unwrap();
    let again = once(rec.again(&call).await);
    assert_eq!(
        (again.added, again.state),
        (false, PublicState::WaitingChildren)
    );
    let members = c.flow_members(&flow, 0, 10).await.unwrap();
    assert_eq!(members.total, 2);
    assert_eq!(c.get_flow(&flow).await.unwrap().summary.members, 2);
    c.complete(&parent.lease, b"r").await.unwrap();
    assert!(c.cancel_flow(&flow, "stop").await.unwrap());
    // Sent again once the parent ended and the flow was cancelled: still
    // `already`, and the result was passed once.
    let again = once(rec.again(&call).await);
    assert_eq!((again.added, again.state), (false, PublicState::Cancelled));
    let s = c.get_flow(&flow).await.unwrap().summary;
    assert_eq!((s.members, s.done, s.success, s.cancelled), (2, 2, 1, 1));
    assert_eq!(c.get(&x).await.unwrap().payload, b"r");
    let m = c.flow_members(&flow, 0, 10).await.unwrap();
    let xm = m.members.iter().find(|m| m.execution == x).unwrap();
    assert_eq!(xm.parents.len(), 1);
    assert!(xm.parents[0].pass_data);
    let again = rec.repeat("ff_flow_members").await;
    assert_eq!(fl::decode_flow_members(&again).unwrap(), m);
}

fn tokens(hard: u64) -> BudgetDef {
    BudgetDef {
        limits: [("tokens".to_owned(), DimensionLimits { hard, soft: 0 })].into(),
        ..BudgetDef::default()
    }
}

fn usage(c: &Claimed, seq: u64, n: u64) -> UsageReport {
    UsageReport {
        execution: c.lease.execution.clone(),
        attempt: c.attempt,
        seq,
        deltas: vec![("tokens".to_owned(), n)],
    }
}

async fn admission_repeats_count_once(store: Arc<dyn Store>) {
    let (rec, c) = recorded(store.clone()).await;
    assert!(c.define_budget("b", &tokens(1000)).await.unwrap());
    let define = rec.last("ff_budget_define");
    assert!(!ad::decode_define("ff_budget_define", &rec.again(&define).await).unwrap());

    // A usage report: counted once.
    let cl = started(&c, ExecutionSpec::new("llm").budget("b")).await;
    assert!(
        c.report_usage("b", &usage(&cl, 1, 10))
            .await
            .unwrap()
            .applied
    );
    let again = ad::decode_report_usage(&rec.repeat("ff_report_usage").await).unwrap();
    assert!(!again.applied);
    assert_eq!(c.get_budget("b").await.unwrap().usage["tokens"], 10);

    // A reset sent again after usage was reported: that usage is kept.
    c.reset_budget("b").await.unwrap();
    let reset = rec.last("ff_budget_reset");
    assert!(
        c.report_usage("b", &usage(&cl, 2, 7))
            .await
            .unwrap()
            .applied
    );
    assert!(!ad::decode_reset_budget(&rec.again(&reset).await).unwrap());
    assert_eq!(c.get_budget("b").await.unwrap().usage["tokens"], 7);
    // (a new reset is one)
    c.reset_budget("b").await.unwrap();
    let usage_now = c.get_budget("b").await.unwrap().usage;
    assert!(!usage_now.contains_key("tokens"));
    c.complete(&cl.lease, b"").await.unwrap();

    // admit, a rate-only quota: its window records the holder.
    // (one place: the repeat finds the window full, of its own admission)
    let mut rate = QuotaLimits {
        window_ms: 60_000,
        max_per_window: 1,
        concurrency: 0,
    };
    c.define_quota("rate", &rate).await.unwrap();
    assert!(!ad::decode_define("ff_quota_define", &rec.repeat("ff_quota_define").await).unwrap());
    let cl = started(&c, ExecutionSpec::new("k").quota("rate")).await;
    assert_eq!(
        ad::decode_admit(&rec.repeat("ff_admit").await).unwrap(),
        Admitted::Yes
    );
    assert_eq!(c.get_quota("rate").await.unwrap().admitted_at.len(), 1);
    c.complete(&cl.lease, b"").await.unwrap();
    // An undo (the admission refused elsewhere) sent again: its window
    // place is taken out once, the other holder's stays.
    rate.max_per_window = 2;
    c.define_quota("rate", &rate).await.unwrap();
    let other = started(&c, ExecutionSpec::new("k").quota("rate")).await;
    assert_eq!(c.get_quota("rate").await.unwrap().admitted_at.len(), 2);
    let undo = ad::release_slot(
        c.config(),
        &QuotaId::parse("rate").unwrap(),
        &other.lease.execution,
        other.lease.epoch,
        true,
    );
    c.store().fcall(&undo).await.unwrap();
    rec.again(&undo).await;
    assert_eq!(c.get_quota("rate").await.unwrap().admitted_at.len(), 1);
    c.complete(&other.lease, b"").await.unwrap();

    // admit with a concurrency cap, then its release: one slot, given back once.
    let cap = QuotaLimits {
        window_ms: 60_000,
        max_per_window: 0,
        concurrency: 1,
    };
    c.define_quota("cap", &cap).await.unwrap();
    let cl = started(&c, ExecutionSpec::new("k").quota("cap")).await;
    assert_eq!(
        ad::decode_admit(&rec.repeat("ff_admit").await).unwrap(),
        Admitted::Yes
    );
    assert_eq!(c.get_quota("cap").await.unwrap().holders, 1);
    c.complete(&cl.lease, b"").await.unwrap();
    c.release_admission(&cl.lease, &cl.admission).await.unwrap();
    let release = rec.last("ff_quota_release");
    assert!(!ad::decode_release_slot(&rec.again(&release).await).unwrap());
    assert_eq!(c.get_quota("cap").await.unwrap().holders, 0);

    // block: a breached budget blocks what draws on it; the repeat is a replay.
    c.define_budget("tight", &tokens(1)).await.unwrap();
    let x = started(&c, ExecutionSpec::new("llm").budget("tight")).await;
    c.report_usage("tight", &usage(&x, 1, 1)).await.unwrap();
    c.complete(&x.lease, b"").await.unwrap();
    let y = c
        .create(ExecutionSpec::new("llm").budget("tight"))
        .await
        .unwrap()
        .execution;
    assert!(claim_in(&c, y.partition(), LEASE, 1).await.is_empty());
    let r = c.get(&y).await.unwrap();
    assert_eq!(r.public_state, PublicState::RateLimited);
    assert!(!ad::decode_block(&rec.repeat("ff_block").await).unwrap());
    unchanged(&c, &r).await;
    // unblock: moved back once.
    c.reset_budget("tight").await.unwrap();
    let pass = scan_admission_once(c.store(), c.config(), false)
        .await
        .unwrap();
    assert_eq!(pass.unblocked, 1);
    assert_eq!(
        ad::decode_unblock(&rec.repeat("ff_unblock").await).unwrap(),
        (0, 0)
    );
    let r = c.get(&y).await.unwrap();
    assert_eq!((r.public_state, r.retries), (PublicState::Waiting, 0));
    let pk = PartitionKeys::of(&y);
    assert_eq!(
        zmembers(&*store, &pk.eligible(&r.lane)).await,
        vec![y.to_string()]
    );

    // A worker registration sent again is a heartbeat.
    let inst = ff_engine::core::WorkerInstance::new("w9").unwrap();
    let exp = c
        .register_worker(&inst, &["gpu".to_owned()], Duration::from_secs(10))
        .await
        .unwrap();
    let again = ad::decode_register_worker(&rec.repeat("ff_worker_register").await).unwrap();
    assert!(again >= exp);
    assert_eq!(
        c.live_workers().await.unwrap(),
        vec![("w9".to_owned(), vec!["gpu".to_owned()])]
    );
}

async fn scanner_and_ownership_repeats_act_once(store: Arc<dyn Store>) {
    let (rec, c) = recorded(store.clone()).await;
    let id = create_delayed(&c, "k", Duration::from_millis(50)).await;
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(promote(&c, id.partition()).await.acted, 1);
    let again = scan::decode_batch(
        "ff_promote_delayed",
        &rec.repeat("ff_promote_delayed").await,
    )
    .unwrap();
    assert_eq!((again.acted, again.repaired), (0, 0));
    assert!(again.exceptions.is_empty());
    let r = c.get(&id).await.unwrap();
    assert_eq!(r.public_state, PublicState::Waiting);
    let call = scan::batch(
        BatchFunction::PromoteDelayed,
        id.partition(),
        &Default::default(),
        &[id.to_string()],
    );
    assert_eq!(call, rec.last("ff_promote_delayed"));

    // Ownership: a sync claiming two partitions, sent again, claims nothing
    // more (same epochs); a release sent again leaves the partition free.
    let ring = Ring::default();
    let sync = own::sync(&ring, "e-1", 6_000, 8, &[1, 2], &[]);
    let first = own::decode_view(own::SYNC, &c.store().fcall(&sync).await.unwrap()).unwrap();
    let again = own::decode_view(own::SYNC, &rec.again(&sync).await).unwrap();
    for p in [1, 2] {
        assert_eq!(again.owner_of(p), Some("e-1"));
        assert_eq!(again.leases[&p].epoch, first.leases[&p].epoch);
    }
    let release = own::sync(&ring, "e-1", 6_000, 8, &[], &[1]);
    c.store().fcall(&release).await.unwrap();
    let again = own::decode_view(own::SYNC, &rec.again(&release).await).unwrap();
    assert_eq!(again.owner_of(1), None);
    assert_eq!(again.leases[&1].epoch, first.leases[&1].epoch);
    assert_eq!(again.owner_of(2), Some("e-1"));
    let leave = own::leave(&ring, "e-1");
    assert_eq!(
        own::decode_leave(&c.store().fcall(&leave).await.unwrap()).unwrap(),
        1
    );
    assert_eq!(own::decode_leave(&rec.again(&leave).await).unwrap(), 0);
}

on_both_stores!(
    create_repeats_answer_created_once,
    a_repeated_claim_orphans_a_lease_that_is_reclaimed,
    lease_ending_calls_answer_repeats_from_the_fence,
    suspension_repeats_deliver_once,
    flow_repeats_change_nothing,
    data_passing_repeats_pass_each_result_once,
    add_to_flow_repeats_add_once,
    admission_repeats_count_once,
    scanner_and_ownership_repeats_act_once,
);
