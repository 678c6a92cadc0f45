//! Budgets, quotas and admission: breach and block, reset and unblock, window
//! admission at its boundary, concurrency slots given back however the
//! execution ends, duplicate usage reports — on a real redis-server and on
//! MemoryStore (the same bodies), plus a Worker and engine run and a cluster run.

mod common;

use common::*;
use ff_engine::core::admission::QuotaLimits;
use ff_engine::core::contract::admission::{BudgetDef, DimensionLimits, UsageReport};
use ff_engine::core::contract::execution::Claimed;
use ff_engine::core::keys::PartitionKeys;
use ff_engine::core::state::PublicState;
use ff_engine::core::ExecutionId;
use ff_engine::engine::{scan_admission_once, AdmissionPass};
use ff_engine::store::Store;
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

on_both_stores!(
    breach_blocks_and_reset_unblocks,
    periodic_reset_by_the_scanner,
    duplicate_usage_reports_count_once,
    window_admission_at_the_boundary,
    concurrency_slot_given_back,
    a_blocked_execution_can_be_cancelled,
    bad_admission_arguments_are_refused,
);
