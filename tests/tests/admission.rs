//! Budgets, quotas and admission: breach and block, reset and unblock, window
//! admission at its boundary, concurrency slots given back however the
//! execution ends, duplicate usage reports — on a real redis-server and on
//! MemoryStore (the same bodies), plus a Worker and engine run and a cluster run.

mod common;

use common::*;
use ff_engine::core::admission::QuotaLimits;
use ff_engine::core::contract::admission::{BreachPolicy, BudgetDef, DimensionLimits, UsageReport};
use ff_engine::core::contract::execution::Claimed;
use ff_engine::core::flow::JoinPolicy;
use ff_engine::core::keys::flow_partition;
use ff_engine::core::keys::PartitionKeys;
use ff_engine::core::scan::WakeMessage;
use ff_engine::core::state::PublicState;
use ff_engine::core::{ExecutionId, WorkerInstance};
use ff_engine::engine::{scan_admission_once, AdmissionPass};
use ff_engine::store::{Store, SubEvent};
use ff_engine::{Client, ExecutionSpec};
use std::sync::Arc;
use std::time::Duration;

fn tokens(hard: u64, every_ms: u64) -> BudgetDef {
    BudgetDef {
        limits: [(
            "tokens".to_owned(),
            DimensionLimits {
                hard,
                soft: hard / 2,
            },
        )]
        .into(),
        reset_every_ms: every_ms,
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

async fn claim_all(c: &Client) -> Vec<Claimed> {
    let (lane, w, i) = worker();
    c.claim(&lane, &w, &i, LEASE, 100).await.expect("claim")
}

async fn pass(c: &Client, reconcile: bool) -> AdmissionPass {
    scan_admission_once(c.store(), c.config(), reconcile)
        .await
        .expect("admission pass")
}

async fn state(c: &Client, id: &ExecutionId) -> PublicState {
    c.get(id).await.unwrap().public_state
}

async fn blocked_in(c: &Client, id: &ExecutionId, quota: bool) -> bool {
    let pk = PartitionKeys::of(id);
    let idx = if quota {
        pk.blocked_quota()
    } else {
        pk.blocked_budget()
    };
    zmembers(&**c.store(), &idx).await.contains(&id.to_string())
}

/// Sleep until the server clock reaches `ms` (real time on Redis; MemoryStore
/// follows the wall clock too unless moved).
async fn until_server(c: &Client, ms: u64) {
    loop {
        let now = server_ms(&**c.store()).await;
        if now >= ms {
            return;
        }
        tokio::time::sleep(Duration::from_millis((ms - now).min(50))).await;
    }
}

async fn breach_blocks_and_reset_unblocks(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    assert!(c.define_budget("t1.month", &tokens(100, 0)).await.unwrap());
    let a = c
        .create(ExecutionSpec::new("llm").budget("t1.month"))
        .await
        .unwrap()
        .execution;
    let got = claim_all(&c).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].lease.execution, a);
    assert_eq!(got[0].admission.budgets[0].as_str(), "t1.month");
    let r = c
        .report_usage("t1.month", &usage(&got[0], 1, 60))
        .await
        .unwrap();
    assert!(r.applied && !r.breached && r.soft_reached);
    let r = c
        .report_usage("t1.month", &usage(&got[0], 2, 40))
        .await
        .unwrap();
    assert!(r.applied && r.breached);
    c.complete(&got[0].lease, b"").await.unwrap();

    // A new execution drawing on the breached budget is not handed out.
    let b = c
        .create(ExecutionSpec::new("llm").budget("t1.month"))
        .await
        .unwrap()
        .execution;
    let free = c
        .create(ExecutionSpec::new("plain"))
        .await
        .unwrap()
        .execution;
    let got = claim_all(&c).await;
    assert_eq!(got.len(), 1, "only the execution without a budget runs");
    assert_eq!(got[0].lease.execution, free);
    assert_eq!(state(&c, &b).await, PublicState::RateLimited);
    assert!(blocked_in(&c, &b, false).await);
    let rec = c.get(&b).await.unwrap();
    assert_eq!(rec.retries, 0, "a block is not a failed attempt");

    // Still breached: the unblock scanner leaves it.
    let p = pass(&c, true).await;
    assert_eq!((p.unblocked, p.still_blocked), (0, 1));
    assert_eq!(state(&c, &b).await, PublicState::RateLimited);

    c.reset_budget("t1.month").await.unwrap();
    assert!(!c.get_budget("t1.month").await.unwrap().breached);
    assert_eq!(pass(&c, false).await.unblocked, 1);
    assert!(!blocked_in(&c, &b, false).await);
    assert_eq!(state(&c, &b).await, PublicState::Waiting);
    let got = claim_all(&c).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].lease.execution, b);
}

async fn periodic_reset_by_the_scanner(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    c.define_budget("daily", &tokens(10, 300)).await.unwrap();
    let id = c
        .create(ExecutionSpec::new("llm").budget("daily"))
        .await
        .unwrap()
        .execution;
    let got = claim_all(&c).await;
    c.report_usage("daily", &usage(&got[0], 1, 10))
        .await
        .unwrap();
    let before = c.get_budget("daily").await.unwrap();
    assert!(before.breached);
    let due = before.next_reset_ms.expect("a reset is scheduled");
    assert_eq!(pass(&c, false).await.budgets_reset, 0, "not due yet");
    until_server(&c, due).await;
    assert_eq!(pass(&c, false).await.budgets_reset, 1);
    let after = c.get_budget("daily").await.unwrap();
    assert!(!after.breached);
    assert_eq!(after.usage.get("tokens").copied().unwrap_or(0), 0);
    let next = after.next_reset_ms.unwrap();
    assert!(
        next > due && (next - due) % 300 == 0,
        "on the grid: {due} -> {next}"
    );
    c.complete(&got[0].lease, b"").await.unwrap();
    assert_eq!(state(&c, &id).await, PublicState::Completed);
}

async fn duplicate_usage_reports_count_once(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    c.define_budget("b", &tokens(1000, 0)).await.unwrap();
    c.create(ExecutionSpec::new("llm").budget("b"))
        .await
        .unwrap();
    let got = claim_all(&c).await;
    let r1 = c.report_usage("b", &usage(&got[0], 1, 5)).await.unwrap();
    let again = c.report_usage("b", &usage(&got[0], 1, 5)).await.unwrap();
    assert!(r1.applied && !again.applied);
    // An older sequence number arriving late is a duplicate too.
    c.report_usage("b", &usage(&got[0], 3, 7)).await.unwrap();
    assert!(
        !c.report_usage("b", &usage(&got[0], 2, 7))
            .await
            .unwrap()
            .applied
    );
    // Another attempt has its own sequence.
    let mut other = usage(&got[0], 1, 100);
    other.attempt += 1;
    assert!(c.report_usage("b", &other).await.unwrap().applied);
    let rec = c.get_budget("b").await.unwrap();
    assert_eq!(rec.usage["tokens"], 5 + 7 + 100);
    // Unknown budgets and bad dimensions are typed refusals.
    assert!(c.report_usage("nope", &usage(&got[0], 1, 1)).await.is_err());
}

async fn window_admission_at_the_boundary(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    let limits = QuotaLimits {
        window_ms: 400,
        max_per_window: 2,
        concurrency: 0,
    };
    assert!(c.define_quota("api", &limits).await.unwrap());
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            c.create(ExecutionSpec::new("call").quota("api"))
                .await
                .unwrap()
                .execution,
        );
    }
    let got = claim_all(&c).await;
    assert_eq!(got.len(), 2, "two admissions per window");
    let blocked: Vec<_> = ids
        .iter()
        .filter(|id| !got.iter().any(|g| &g.lease.execution == *id))
        .collect();
    assert_eq!(blocked.len(), 1);
    assert_eq!(state(&c, blocked[0]).await, PublicState::RateLimited);
    for g in &got {
        c.complete(&g.lease, b"").await.unwrap();
        c.release_admission(&g.lease, &g.admission).await.unwrap();
    }
    // Completing frees no window place: still refused inside the window.
    let q = c.get_quota("api").await.unwrap();
    assert_eq!(q.admitted_at.len(), 2);
    let first = *q.admitted_at.iter().min().unwrap();
    if q.now_ms < first + limits.window_ms {
        assert_eq!(pass(&c, false).await.unblocked, 0);
    }
    // The oldest admission leaves the window at first + window.
    until_server(&c, first + limits.window_ms).await;
    assert_eq!(pass(&c, false).await.unblocked, 1);
    let got = claim_all(&c).await;
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].lease.execution, blocked[0]);
}

/// How an admitted execution leaves its slot.
#[derive(Debug, Clone, Copy)]
enum End {
    Complete,
    Fail,
    Cancel,
    Expire,
    /// Completed by a worker that dies before giving the slot back.
    Crash,
}

async fn concurrency_slot_given_back(store: Arc<dyn Store>) {
    for end in [
        End::Complete,
        End::Fail,
        End::Cancel,
        End::Expire,
        End::Crash,
    ] {
        let c = client_on(store.clone()).await;
        let quota = format!("gpu-{end:?}");
        c.define_quota(
            &quota,
            &QuotaLimits {
                window_ms: 60_000,
                max_per_window: 0,
                concurrency: 1,
            },
        )
        .await
        .unwrap();
        let lane = ff_engine::core::Lane::new(format!("lane-{end:?}")).unwrap();
        c.register_lane(&lane).await.unwrap();
        for _ in 0..2 {
            c.create(
                ExecutionSpec::new("train")
                    .quota(&quota)
                    .lane(lane.as_str())
                    .retry(ff_engine::core::retry::RetryPolicy::none()),
            )
            .await
            .unwrap();
        }
        let (_, w, i) = worker();
        let ttl = match end {
            End::Expire => Duration::from_millis(200),
            _ => LEASE,
        };
        let got = c.claim(&lane, &w, &i, ttl, 10).await.unwrap();
        assert_eq!(got.len(), 1, "{end:?}: one slot");
        let held = &got[0];
        assert_eq!(c.get_quota(&quota).await.unwrap().holders, 1);
        match end {
            End::Complete => {
                c.complete(&held.lease, b"").await.unwrap();
                c.release_admission(&held.lease, &held.admission)
                    .await
                    .unwrap();
            }
            End::Fail => {
                c.fail(&held.lease, "boom", false).await.unwrap();
                c.release_admission(&held.lease, &held.admission)
                    .await
                    .unwrap();
            }
            End::Cancel => {
                c.cancel(&held.lease.execution, "stop").await.unwrap();
            }
            End::Expire => {
                until_server(&c, held.lease_expires_at_ms + 1).await;
                reclaim(&c, held.lease.execution.partition()).await;
            }
            End::Crash => {
                c.complete(&held.lease, b"").await.unwrap();
            }
        }
        let explicit = matches!(end, End::Complete | End::Fail);
        let p = pass(&c, true).await;
        assert_eq!(
            p.slots_released,
            u32::from(!explicit),
            "{end:?}: the reconciler gives back only slots nobody released"
        );
        assert_eq!(p.unblocked, 1, "{end:?}: the waiter is let through");
        assert_eq!(c.get_quota(&quota).await.unwrap().holders, 0);
        let next = c.claim(&lane, &w, &i, LEASE, 10).await.unwrap();
        assert_eq!(next.len(), 1, "{end:?}: the slot is free again");
        // A live holder's slot is never taken back by the reconciler.
        assert_eq!(pass(&c, true).await.slots_released, 0);
        assert_eq!(c.get_quota(&quota).await.unwrap().holders, 1);
    }
}

async fn a_blocked_execution_can_be_cancelled(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    c.define_budget("zero", &tokens(1, 0)).await.unwrap();
    let a = c
        .create(ExecutionSpec::new("x").budget("zero"))
        .await
        .unwrap()
        .execution;
    let got = claim_all(&c).await;
    c.report_usage("zero", &usage(&got[0], 1, 1)).await.unwrap();
    c.complete(&got[0].lease, b"").await.unwrap();
    let b = c
        .create(ExecutionSpec::new("x").budget("zero"))
        .await
        .unwrap()
        .execution;
    assert!(claim_all(&c).await.is_empty());
    assert!(blocked_in(&c, &b, false).await);
    c.cancel(&b, "no budget").await.unwrap();
    assert_eq!(state(&c, &b).await, PublicState::Cancelled);
    assert!(!blocked_in(&c, &b, false).await, "left the blocked index");
    assert_eq!(state(&c, &a).await, PublicState::Completed);
}

fn cancelling(hard: u64) -> BudgetDef {
    BudgetDef {
        on_breach: BreachPolicy::Cancel,
        ..tokens(hard, 0)
    }
}

async fn cancelled_for_breach(c: &Client, id: &ExecutionId) -> bool {
    let r = c.get(id).await.unwrap();
    r.public_state == PublicState::Cancelled
        && r.last_error.as_deref() == Some("budget breached: capped")
}

/// Under the cancel policy a hard breach cancels the pending executions that
/// draw on the budget — those already blocked on it (the unblock scanner) and
/// those a claim hands out (instead of blocking them) — while a running one
/// finishes; a flow member cancelled so ends its dependents as usual.
async fn a_breach_under_the_cancel_policy_cancels_pending_work(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    assert!(c.define_budget("capped", &tokens(1, 0)).await.unwrap());
    assert_eq!(
        c.get_budget("capped").await.unwrap().on_breach,
        BreachPolicy::Block
    );
    let running = c
        .create(ExecutionSpec::new("x").budget("capped"))
        .await
        .unwrap()
        .execution;
    let got = claim_all(&c).await;
    assert_eq!(got.len(), 1);
    c.report_usage("capped", &usage(&got[0], 1, 1))
        .await
        .unwrap();
    // Breached while the policy blocks: a new one waits.
    let waiting = c
        .create(ExecutionSpec::new("x").budget("capped"))
        .await
        .unwrap()
        .execution;
    assert!(claim_all(&c).await.is_empty());
    assert!(blocked_in(&c, &waiting, false).await);

    // The policy becomes cancel: the blocked one is cancelled by the scanner.
    assert!(!c.define_budget("capped", &cancelling(1)).await.unwrap());
    assert_eq!(
        c.get_budget("capped").await.unwrap().on_breach,
        BreachPolicy::Cancel
    );
    let p = pass(&c, false).await;
    assert_eq!((p.cancelled, p.unblocked, p.still_blocked), (1, 0, 0));
    assert!(cancelled_for_breach(&c, &waiting).await);
    assert!(
        !blocked_in(&c, &waiting, false).await,
        "left the blocked index"
    );

    // A claim hands out one that draws on it: cancelled, not blocked; a
    // flow child waiting on it is skipped; work without the budget runs.
    let flow = c.create_flow("default").await.unwrap();
    let parent = c.new_member_id(&flow);
    let child = c.new_member_id(&flow);
    c.create(
        ExecutionSpec::new("x")
            .id(parent.clone())
            .in_flow(&flow, JoinPolicy::AllOf)
            .budget("capped"),
    )
    .await
    .unwrap();
    c.create(
        ExecutionSpec::new("x")
            .id(child.clone())
            .in_flow(&flow, JoinPolicy::AllOf),
    )
    .await
    .unwrap();
    c.add_edge(&flow, &parent, &child, false).await.unwrap();
    let free = c
        .create(ExecutionSpec::new("plain"))
        .await
        .unwrap()
        .execution;
    let got2 = claim_all(&c).await;
    assert_eq!(
        got2.iter().map(|g| &g.lease.execution).collect::<Vec<_>>(),
        vec![&free]
    );
    assert!(cancelled_for_breach(&c, &parent).await);
    assert!(!blocked_in(&c, &parent, false).await);
    assert_eq!(state(&c, &child).await, PublicState::Skipped);

    // The running one was not touched and finishes.
    c.complete(&got[0].lease, b"").await.unwrap();
    assert_eq!(state(&c, &running).await, PublicState::Completed);
    // After a reset nothing is refused any more.
    c.reset_budget("capped").await.unwrap();
    let later = c
        .create(ExecutionSpec::new("x").budget("capped"))
        .await
        .unwrap()
        .execution;
    let got3 = claim_all(&c).await;
    assert_eq!(got3.len(), 1);
    assert_eq!(got3[0].lease.execution, later);
}

/// Admission announcements seen on `ff:wake` since the last call.
async fn admission_announced(rx: &mut tokio::sync::mpsc::UnboundedReceiver<SubEvent>) -> bool {
    // (a publish is delivered within a moment on either store)
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut seen = false;
    while let Ok(ev) = rx.try_recv() {
        if let SubEvent::Message(m) = ev {
            seen |= m == b"admission - 0";
        }
    }
    seen
}

/// A quota slot given back is announced to the unblock scanner only when
/// someone may wait for it (a refusal, or the scanner leaving executions
/// blocked on the quota): a finished job with nobody waiting costs no message.
async fn a_release_is_announced_only_when_someone_waits(store: Arc<dyn Store>) {
    let mut rx = store.subscribe(WakeMessage::CHANNEL).await.unwrap();
    let c = client_on(store).await;
    c.define_quota(
        "one",
        &QuotaLimits {
            window_ms: 60_000,
            max_per_window: 0,
            concurrency: 1,
        },
    )
    .await
    .unwrap();
    admission_announced(&mut rx).await;
    c.create(ExecutionSpec::new("x").quota("one"))
        .await
        .unwrap();
    let got = claim_all(&c).await;
    c.complete(&got[0].lease, b"").await.unwrap();
    c.release_admission(&got[0].lease, &got[0].admission)
        .await
        .unwrap();
    assert!(!admission_announced(&mut rx).await, "nobody waited");

    // Now one waits: the release is announced (once), and the scanner's
    // re-check arms the next one while executions still wait.
    c.create(ExecutionSpec::new("x").quota("one"))
        .await
        .unwrap();
    let a = claim_all(&c).await;
    for _ in 0..2 {
        c.create(ExecutionSpec::new("x").quota("one"))
            .await
            .unwrap();
    }
    assert!(claim_all(&c).await.is_empty(), "refused: blocked");
    c.complete(&a[0].lease, b"").await.unwrap();
    c.release_admission(&a[0].lease, &a[0].admission)
        .await
        .unwrap();
    assert!(admission_announced(&mut rx).await, "a waiter is told");
    assert_eq!(pass(&c, false).await.unblocked, 1);
    let b = claim_all(&c).await;
    assert_eq!(b.len(), 1);
    c.complete(&b[0].lease, b"").await.unwrap();
    c.release_admission(&b[0].lease, &b[0].admission)
        .await
        .unwrap();
    assert!(
        admission_announced(&mut rx).await,
        "the one still waiting is told too"
    );
}

async fn bad_admission_arguments_are_refused(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    assert!(c
        .create(ExecutionSpec::new("x").budget("a,b"))
        .await
        .is_err());
    assert!(c.create(ExecutionSpec::new("x").quota("")).await.is_err());
    let mut spec = ExecutionSpec::new("x");
    for i in 0..9 {
        spec = spec.quota(format!("q{i}"));
    }
    assert!(c.create(spec).await.is_err());
    assert!(c
        .define_quota(
            "q",
            &QuotaLimits {
                window_ms: 0,
                max_per_window: 1,
                concurrency: 0
            }
        )
        .await
        .is_err());
    // A quota nobody defined limits nothing.
    c.create(ExecutionSpec::new("x").quota("undefined"))
        .await
        .unwrap();
    assert_eq!(claim_all(&c).await.len(), 1);
}

/// 200 executions needing a capability at the head of a lane (a capable
/// worker is live, so they stay eligible for it), then plain ones: a worker
/// without the capability still gets the plain ones, paging past the heads
/// in bounded steps; the capable worker then gets the rest.
async fn an_incapable_worker_gets_past_capability_heads(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    let gpu_worker = WorkerInstance::new("gpu-1").unwrap();
    c.register_worker(&gpu_worker, &["gpu".to_owned()], Duration::from_secs(60))
        .await
        .unwrap();
    // Members of one flow share its partition: one lane's eligible index.
    let flow = c.create_flow("default").await.unwrap();
    for _ in 0..200 {
        c.create(
            ExecutionSpec::new("render")
                .capability("gpu")
                .id(c.new_member_id(&flow))
                .in_flow(&flow, JoinPolicy::AllOf),
        )
        .await
        .unwrap();
    }
    let mut plain = Vec::new();
    for _ in 0..10 {
        let id = c.new_member_id(&flow);
        c.create(
            ExecutionSpec::new("plain")
                .id(id.clone())
                .in_flow(&flow, JoinPolicy::AllOf),
        )
        .await
        .unwrap();
        plain.push(id.to_string());
    }
    let part = flow_partition(&flow, c.config());
    let (lane, w, i) = worker();
    let got = c
        .claim_in_capable(part, &lane, &w, &i, LEASE, 10, &[])
        .await
        .unwrap();
    let mut ids: Vec<String> = got.iter().map(|g| g.lease.execution.to_string()).collect();
    ids.sort();
    plain.sort();
    assert_eq!(ids, plain, "the plain work behind the heads");
    let gpu = c
        .claim_in_capable(part, &lane, &w, &gpu_worker, LEASE, 50, &["gpu".to_owned()])
        .await
        .unwrap();
    assert_eq!(gpu.len(), 50);
    assert!(gpu.iter().all(|g| g.kind.as_str() == "render"));
}

async fn capability_routing_with_a_worker_joining_later(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    let (lane, w, _) = worker();
    let cpu = ff_engine::core::WorkerInstance::new("cpu-1").unwrap();
    let gpu = ff_engine::core::WorkerInstance::new("gpu-1").unwrap();
    c.register_worker(&cpu, &["ssd".to_owned()], LEASE)
        .await
        .unwrap();
    let x = c
        .create(ExecutionSpec::new("render").capability("gpu"))
        .await
        .unwrap()
        .execution;
    let y = c
        .create(ExecutionSpec::new("plain"))
        .await
        .unwrap()
        .execution;
    // A worker without the capability skips it; nobody live has it: blocked_route.
    let got = c
        .claim_in_capable(
            x.partition(),
            &lane,
            &w,
            &cpu,
            LEASE,
            10,
            &["ssd".to_owned()],
        )
        .await
        .unwrap();
    assert!(got.iter().all(|g| g.lease.execution != x));
    let got = claim_all(&c).await;
    assert!(got.iter().all(|g| g.lease.execution != x));
    assert!(
        got.iter().any(|g| g.lease.execution == y) || state(&c, &y).await == PublicState::Active
    );
    let pk = PartitionKeys::of(&x);
    assert!(zmembers(&**c.store(), &pk.blocked_route())
        .await
        .contains(&x.to_string()));
    assert_eq!(state(&c, &x).await, PublicState::Waiting);
    let p = pass(&c, false).await;
    assert_eq!((p.unblocked, p.still_blocked), (0, 1));

    // A capable worker registers: the unblock scanner brings it back.
    c.register_worker(&gpu, &["gpu".to_owned(), "ssd".to_owned()], LEASE)
        .await
        .unwrap();
    assert_eq!(pass(&c, false).await.unblocked, 1);
    assert!(zmembers(&**c.store(), &pk.eligible(&lane))
        .await
        .contains(&x.to_string()));
    // Skipped again by the incapable one, but now left eligible (a gpu worker lives).
    let got = c
        .claim_in_capable(x.partition(), &lane, &w, &cpu, LEASE, 10, &[])
        .await
        .unwrap();
    assert!(got.is_empty());
    assert!(zmembers(&**c.store(), &pk.eligible(&lane))
        .await
        .contains(&x.to_string()));
    let got = c
        .claim_in_capable(
            x.partition(),
            &lane,
            &w,
            &gpu,
            LEASE,
            10,
            &["gpu".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].lease.execution, x);
    assert_eq!(got[0].admission.capabilities, ["gpu"]);

    // A registration that is not renewed expires.
    let short = ff_engine::core::WorkerInstance::new("short").unwrap();
    c.register_worker(&short, &["tpu".to_owned()], Duration::from_millis(100))
        .await
        .unwrap();
    assert!(c
        .live_workers()
        .await
        .unwrap()
        .iter()
        .any(|(i, _)| i == "short"));
    let now = server_ms(&**c.store()).await;
    until_server(&c, now + 150).await;
    assert!(!c
        .live_workers()
        .await
        .unwrap()
        .iter()
        .any(|(i, _)| i == "short"));
}

/// The reconcilers repair what drifted: a breach marker lost while usage is
/// over the hard limit is restored, and admissions that left their window are
/// trimmed from it.
async fn the_reconcilers_repair_what_drifted(store: Arc<dyn Store>) {
    let c = client_on(store).await;
    c.define_budget("drift", &tokens(100, 0)).await.unwrap();
    c.create(ExecutionSpec::new("llm").budget("drift"))
        .await
        .unwrap();
    let got = claim_all(&c).await;
    assert!(
        c.report_usage("drift", &usage(&got[0], 1, 100))
            .await
            .unwrap()
            .breached
    );
    let key = ff_engine::core::admission::budget_key(
        c.config(),
        &ff_engine::core::BudgetId::parse("drift").unwrap(),
    );
    c.store()
        .command(&ff_engine::store::cmd(["HDEL", key.as_str(), "breached"]))
        .await
        .unwrap();
    assert!(
        !c.get_budget("drift").await.unwrap().breached,
        "marker lost"
    );
    assert_eq!(pass(&c, true).await.budgets_repaired, 1);
    assert!(
        c.get_budget("drift").await.unwrap().breached,
        "marker restored"
    );
    assert_eq!(
        pass(&c, true).await.budgets_repaired,
        0,
        "nothing left to repair"
    );

    let limits = QuotaLimits {
        window_ms: 200,
        max_per_window: 5,
        concurrency: 0,
    };
    c.define_quota("win", &limits).await.unwrap();
    for _ in 0..2 {
        c.create(ExecutionSpec::new("call").quota("win"))
            .await
            .unwrap();
    }
    let got = claim_all(&c).await;
    assert_eq!(got.len(), 2);
    for g in &got {
        c.complete(&g.lease, b"").await.unwrap();
        c.release_admission(&g.lease, &g.admission).await.unwrap();
    }
    let q = c.get_quota("win").await.unwrap();
    assert_eq!(q.admitted_at.len(), 2);
    until_server(
        &c,
        q.admitted_at.iter().max().unwrap() + limits.window_ms + 1,
    )
    .await;
    assert_eq!(pass(&c, true).await.windows_trimmed, 2);
    assert!(c.get_quota("win").await.unwrap().admitted_at.is_empty());
}

on_both_stores!(
    capability_routing_with_a_worker_joining_later,
    breach_blocks_and_reset_unblocks,
    periodic_reset_by_the_scanner,
    duplicate_usage_reports_count_once,
    window_admission_at_the_boundary,
    concurrency_slot_given_back,
    a_blocked_execution_can_be_cancelled,
    bad_admission_arguments_are_refused,
    a_breach_under_the_cancel_policy_cancels_pending_work,
    an_incapable_worker_gets_past_capability_heads,
    a_release_is_announced_only_when_someone_waits,
    the_reconcilers_repair_what_drifted,
);

/// Workers and the engine together: a quota with 2 slots never has more than
/// 2 handlers running, blocked executions come back as slots free up, and a
/// breached budget holds its executions until it is reset.
#[tokio::test]
async fn workers_respect_quota_and_budget_under_the_engine() {
    use ff_engine::worker::{Job, Worker};
    use ff_engine::{Engine, EngineConfig};
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    let redis = ff_tests::TestRedis::standalone();
    let c = client(&redis.url()).await;
    let engine = Engine::start(
        EngineConfig {
            // Only announcements bring blocked executions back: the
            // fallback re-check never comes within the test.
            unblock_interval: Duration::from_secs(3600),
            ..EngineConfig::default()
        },
        c.store().clone(),
    )
    .await
    .unwrap();
    c.define_quota(
        "gpu",
        &QuotaLimits {
            window_ms: 60_000,
            max_per_window: 0,
            concurrency: 2,
        },
    )
    .await
    .unwrap();
    c.define_budget("spend", &tokens(3, 0)).await.unwrap();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let reporter = c.clone();
    let worker = Worker::builder(c.clone(), "w")
        .concurrency(8)
        .poll_interval(Duration::from_millis(20))
        .handle("train", move |_job: Job| {
            let (r, p) = (r.clone(), p.clone());
            async move {
                let now = r.fetch_add(1, SeqCst) + 1;
                p.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                r.fetch_sub(1, SeqCst);
                Ok(Vec::new())
            }
        })
        .handle("spend", move |job: Job| {
            let c = reporter.clone();
            async move {
                let report = UsageReport {
                    execution: job.execution.clone(),
                    attempt: job.attempt,
                    seq: 1,
                    deltas: vec![("tokens".to_owned(), 1)],
                };
                c.report_usage("spend", &report).await?;
                Ok(Vec::new())
            }
        })
        .start()
        .unwrap();
    let mut trains = Vec::new();
    for _ in 0..12 {
        trains.push(
            c.create(ExecutionSpec::new("train").quota("gpu"))
                .await
                .unwrap()
                .execution,
        );
    }
    wait_for(
        "every quota-limited execution",
        Duration::from_secs(20),
        || {
            let c = c.clone();
            let ids = trains.clone();
            async move {
                for id in &ids {
                    if state(&c, id).await != PublicState::Completed {
                        return false;
                    }
                }
                true
            }
        },
    )
    .await;
    assert!(peak.load(SeqCst) <= 2, "peak {} > cap 2", peak.load(SeqCst));
    assert_eq!(c.get_quota("gpu").await.unwrap().holders, 0);

    // Each "spend" uses 1 token of 3: after 3, the rest wait for a reset.
    let mut spends = Vec::new();
    for _ in 0..5 {
        spends.push(
            c.create(ExecutionSpec::new("spend").budget("spend"))
                .await
                .unwrap()
                .execution,
        );
        // One at a time, so usage is reported before the next is admitted.
        let last = spends.last().unwrap().clone();
        let c2 = c.clone();
        wait_for("a spend to end or block", Duration::from_secs(10), || {
            let (c, id) = (c2.clone(), last.clone());
            async move {
                matches!(
                    state(&c, &id).await,
                    PublicState::Completed | PublicState::RateLimited
                )
            }
        })
        .await;
    }
    let mut done = 0;
    for id in &spends {
        if state(&c, id).await == PublicState::Completed {
            done += 1;
        }
    }
    assert_eq!(done, 3, "the budget admits until usage reaches the limit");
    c.reset_budget("spend").await.unwrap();
    wait_for(
        "the blocked spends after the reset",
        Duration::from_secs(10),
        || {
            let c = c.clone();
            let ids = spends.clone();
            async move {
                let mut n = 0;
                for id in &ids {
                    if state(&c, id).await == PublicState::Completed {
                        n += 1;
                    }
                }
                n == 5
            }
        },
    )
    .await;
    let unblock = engine
        .metrics()
        .into_iter()
        .find(|s| s.scanner == "unblock")
        .expect("the unblock scanner's counters");
    assert!(unblock.acted >= 2, "{unblock:?}");
    assert!(unblock.cycles >= 1 && unblock.errors == 0, "{unblock:?}");
    worker.shutdown().await;
    engine.shutdown().await;
}

/// Budgets and quotas live on their own partitions, on other nodes than the
/// executions that draw on them: admission, block and unblock still work.
#[tokio::test]
async fn admission_on_a_cluster() {
    let cluster = ff_tests::RedisCluster::start();
    let c = cluster_client(cluster.urls()).await;
    c.define_budget("tenant-1", &tokens(2, 0)).await.unwrap();
    c.define_quota(
        "api",
        &QuotaLimits {
            window_ms: 60_000,
            max_per_window: 0,
            concurrency: 1,
        },
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(
            c.create(ExecutionSpec::new("x").budget("tenant-1").quota("api"))
                .await
                .unwrap()
                .execution,
        );
    }
    let got = claim_all(&c).await;
    assert_eq!(got.len(), 1, "one concurrency slot");
    let mut rate_limited = 0;
    for id in &ids {
        if state(&c, id).await == PublicState::RateLimited {
            rate_limited += 1;
        }
    }
    assert_eq!(rate_limited, 3);
    let r = c
        .report_usage("tenant-1", &usage(&got[0], 1, 2))
        .await
        .unwrap();
    assert!(r.breached);
    c.complete(&got[0].lease, b"").await.unwrap();
    c.release_admission(&got[0].lease, &got[0].admission)
        .await
        .unwrap();
    // The slot is free but the budget is breached: nothing comes back.
    let p = pass(&c, true).await;
    assert_eq!((p.unblocked, p.still_blocked), (0, 3));
    c.reset_budget("tenant-1").await.unwrap();
    // One slot: one execution comes back per pass, oldest first.
    let p = pass(&c, true).await;
    assert_eq!(p.unblocked, 1);
    let got = claim_all(&c).await;
    assert_eq!(got.len(), 1);
    assert_eq!(c.get_quota("api").await.unwrap().holders, 1);
}

/// The cancel policy across slots: the budget on one node, executions on
/// others; blocked ones are cancelled by the scanner's single-slot calls on
/// their partitions, claimed ones by the claimer's fenced call.
#[tokio::test]
async fn cancel_on_breach_on_a_cluster() {
    let cluster = ff_tests::RedisCluster::start();
    let c = cluster_client(cluster.urls()).await;
    c.define_budget("capped", &tokens(1, 0)).await.unwrap();
    let first = c
        .create(ExecutionSpec::new("x").budget("capped"))
        .await
        .unwrap()
        .execution;
    let got = claim_all(&c).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].lease.execution, first);
    c.report_usage("capped", &usage(&got[0], 1, 1))
        .await
        .unwrap();
    let mut blocked = Vec::new();
    for _ in 0..6 {
        blocked.push(
            c.create(ExecutionSpec::new("x").budget("capped"))
                .await
                .unwrap()
                .execution,
        );
    }
    assert!(claim_all(&c).await.is_empty());
    c.define_budget("capped", &cancelling(1)).await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..6 {
        pending.push(
            c.create(ExecutionSpec::new("x").budget("capped"))
                .await
                .unwrap()
                .execution,
        );
    }
    assert!(claim_all(&c).await.is_empty(), "claimed ones are cancelled");
    for id in &pending {
        assert!(cancelled_for_breach(&c, id).await);
    }
    let p = pass(&c, true).await;
    assert_eq!((p.cancelled, p.still_blocked), (6, 0));
    for id in &blocked {
        assert!(cancelled_for_breach(&c, id).await);
    }
    c.complete(&got[0].lease, b"").await.unwrap();
    assert_eq!(state(&c, &first).await, PublicState::Completed);
}

/// Workers with capabilities under the engine: work for a GPU waits (blocked
/// for its route) until a GPU worker joins, then runs there.
#[tokio::test]
async fn a_capable_worker_joining_later_runs_the_routed_work() {
    use ff_engine::worker::{Job, Worker};
    use ff_engine::{Engine, EngineConfig};

    let redis = ff_tests::TestRedis::standalone();
    let c = client(&redis.url()).await;
    let engine = Engine::start(
        EngineConfig {
            // Only announcements bring blocked executions back: the
            // fallback re-check never comes within the test.
            unblock_interval: Duration::from_secs(3600),
            ..EngineConfig::default()
        },
        c.store().clone(),
    )
    .await
    .unwrap();
    let cpu = Worker::builder(c.clone(), "cpu")
        .capabilities(["ssd"])
        .poll_interval(Duration::from_millis(20))
        .fallback(|_job: Job| async move { Ok(b"cpu".to_vec()) })
        .start()
        .unwrap();
    let x = c
        .create(ExecutionSpec::new("render").capability("gpu"))
        .await
        .unwrap()
        .execution;
    let plain = c
        .create(ExecutionSpec::new("plain"))
        .await
        .unwrap()
        .execution;
    let pk = PartitionKeys::of(&x);
    let c2 = c.clone();
    wait_for(
        "the gpu work to be blocked for its route",
        Duration::from_secs(10),
        || {
            let (c, key, id) = (c2.clone(), pk.blocked_route(), x.to_string());
            async move { zmembers(&**c.store(), &key).await.contains(&id) }
        },
    )
    .await;
    let gpu = Worker::builder(c.clone(), "gpu")
        .capabilities(["gpu"])
        .poll_interval(Duration::from_millis(20))
        .fallback(|_job: Job| async move { Ok(b"gpu".to_vec()) })
        .start()
        .unwrap();
    let c3 = c.clone();
    wait_for("the gpu work to complete", Duration::from_secs(10), || {
        let (c, id) = (c3.clone(), x.clone());
        async move { state(&c, &id).await == PublicState::Completed }
    })
    .await;
    assert_eq!(
        c.get(&x).await.unwrap().result.as_deref(),
        Some(&b"gpu"[..])
    );
    wait_for(
        "the plain work to complete",
        Duration::from_secs(10),
        || {
            let (c, id) = (c3.clone(), plain.clone());
            async move { state(&c, &id).await == PublicState::Completed }
        },
    )
    .await;
    gpu.shutdown().await;
    cpu.shutdown().await;
    engine.shutdown().await;
}
