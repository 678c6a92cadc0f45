//! The admission half of [`Client`]: define budgets and quotas, report usage,
//! and admit what a claim hands out.
//!
//! Budgets (`{b:M}`) and quotas (`{q:K}`) live on their own partitions, so no
//! call spans an execution and a budget. `ff_claim` stays single-slot and
//! returns what each execution draws on; [`Client::claim_in`] then admits
//! each such execution with single-slot calls on the budget and quota
//! partitions (a breach read per budget, `ff_admit` per quota, which takes a
//! window place and a concurrency slot for the execution at its lease epoch).
//! When one refuses, the places already taken are given back and a fenced
//! `ff_block` on the execution's own slot ends the lease (no retry used) and
//! parks it in `blocked_budget` / `blocked_quota`; the engine's unblock
//! scanner moves it back once admissible. A budget breached under the
//! cancel policy ([`BreachPolicy::Cancel`]) makes that `ff_block` end the
//! execution cancelled instead (and the unblock scanner cancels those
//! already blocked). A slot is given back when the lease
//! ends ([`Client::release_admission`], which the `Worker` calls) or, after a
//! crash, cancel or expiry, by the quota reconciler.

use super::{random_u128, Client};
use crate::error::{Error, Result};
use crate::store::cmd;
use ff_core::admission::{budget_key, capable, Admission, QuotaLimits};
use ff_core::contract::admission::{
    self as ad, Admitted, BlockReason, BreachPolicy, BudgetDef, BudgetRecord, QuotaRecord,
    UsageReport, UsageReported,
};
use ff_core::contract::execution::{Claimed, Lease, Unroutable};
use ff_core::reply::Reply;
use ff_core::{BudgetId, QuotaId, WorkerInstance};

impl Client {
    /// Create a budget or replace its limits (its usage is kept).
    /// True when created.
    pub async fn define_budget(&self, budget: &str, def: &BudgetDef) -> Result<bool> {
        let b = BudgetId::parse(budget)?;
        self.mark_in_use().await?;
        Ok(ad::decode_define(
            "ff_budget_define",
            &self.call(&ad::define_budget(&self.config, &b, def)).await?,
        )?)
    }

    /// Add an attempt's usage to a budget. Idempotent: `report.seq` must
    /// increase with each report of one attempt, and a report whose `seq` is
    /// not above the last applied one is answered `applied: false`.
    pub async fn report_usage(&self, budget: &str, report: &UsageReport) -> Result<UsageReported> {
        let b = BudgetId::parse(budget)?;
        self.check_partition(&report.execution)?;
        Ok(ad::decode_report_usage(
            &self
                .call(&ad::report_usage(&self.config, &b, report))
                .await?,
        )?)
    }

    /// Reset a budget's usage now (a periodic reset does this on schedule).
    /// Each call is one reset: sent again by the store after a lost reply, it
    /// does not zero the usage reported in between.
    pub async fn reset_budget(&self, budget: &str) -> Result<()> {
        let b = BudgetId::parse(budget)?;
        ad::decode_reset_budget(
            &self
                .call(&ad::reset_budget(&self.config, &b, random_u128()))
                .await?,
        )?;
        Ok(())
    }

    /// Read a budget: limits, usage, breach markers, reset schedule.
    pub async fn get_budget(&self, budget: &str) -> Result<BudgetRecord> {
        let b = BudgetId::parse(budget)?;
        Ok(ad::decode_get_budget(
            &self.call(&ad::get_budget(&self.config, &b)).await?,
        )?)
    }

    /// Create a quota or replace its limits. True when created.
    pub async fn define_quota(&self, quota: &str, limits: &QuotaLimits) -> Result<bool> {
        let q = QuotaId::parse(quota)?;
        if limits.window_ms == 0 {
            return Err(Error::Invalid {
                field: "window_ms",
                reason: "must be at least 1".into(),
            });
        }
        self.mark_in_use().await?;
        Ok(ad::decode_define(
            "ff_quota_define",
            &self
                .call(&ad::define_quota(&self.config, &q, limits))
                .await?,
        )?)
    }

    /// Read a quota: limits, slot holders, admissions in the window.
    pub async fn get_quota(&self, quota: &str) -> Result<QuotaRecord> {
        let q = QuotaId::parse(quota)?;
        Ok(ad::decode_get_quota(
            &self.call(&ad::get_quota(&self.config, &q)).await?,
        )?)
    }

    /// Give back the concurrency slots a claimed execution holds under
    /// `lease` (`admission` is [`Claimed::admission`]): call once the lease
    /// ended (complete, fail, delay, release). Harmless to repeat, and a no-op
    /// for an execution that draws on no quota.
    pub async fn release_admission(&self, lease: &Lease, admission: &Admission) -> Result<()> {
        let calls: Vec<_> = admission
            .quotas
            .iter()
            .map(|q| ad::release_slot(&self.config, q, &lease.execution, lease.epoch, false))
            .collect();
        for r in self.store().fcall_many(&calls).await {
            ad::decode_release_slot(&r?)?;
        }
        Ok(())
    }

    /// Register this worker instance and its capabilities, or renew the
    /// registration (a heartbeat); it expires `ttl` after the last one.
    pub async fn register_worker(
        &self,
        instance: &WorkerInstance,
        capabilities: &[String],
        ttl: std::time::Duration,
    ) -> Result<u64> {
        for c in capabilities {
            ff_core::admission::parse_capabilities(c)?;
        }
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.mark_in_use().await?;
        Ok(ad::decode_register_worker(
            &self
                .call(&ad::register_worker(
                    instance.as_str(),
                    ttl_ms,
                    capabilities,
                ))
                .await?,
        )?)
    }

    /// The live worker registrations: (instance, capabilities).
    pub async fn live_workers(&self) -> Result<Vec<(String, Vec<String>)>> {
        Ok(ad::decode_live_workers(
            &self.call(&ad::live_workers()).await?,
        )?)
    }

    /// Executions a claim skipped for their capabilities: those no live
    /// worker can run go to `blocked_route` (the unblock scanner brings them
    /// back when a capable worker registers); the others stay eligible.
    pub(crate) async fn route_skipped(&self, skipped: &[Unroutable]) {
        let live = match self.live_workers().await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "reading worker registrations failed");
                return;
            }
        };
        for s in skipped {
            if live.iter().any(|(_, have)| capable(&s.capabilities, have)) {
                continue;
            }
            if let Err(e) = self.mark_in_use().await {
                tracing::warn!(error = %e, "marking admission in use failed");
                continue;
            }
            match self.call(&ad::block_route(&s.execution)).await {
                Ok(r) => {
                    if let Ok(true) = ad::decode_block_route(&r) {
                        tracing::debug!(execution = %s.execution, "no live worker can run it: blocked_route");
                    }
                }
                Err(e) => {
                    tracing::warn!(execution = %s.execution, error = %e, "block_route failed")
                }
            }
        }
    }

    /// Tell the engine's admission pass it has work to look for (set before
    /// the thing it must look at exists).
    pub(super) async fn mark_in_use(&self) -> Result<()> {
        self.store()
            .command(&cmd(["SET", ff_core::admission::IN_USE, "1"]))
            .await?;
        Ok(())
    }

    /// Admit what a claim handed out: the executions that draw on nothing, or
    /// whose budgets and quotas admit them, are returned; the others are
    /// blocked (their lease ended) and left out. One that could not be
    /// checked (store error) is handed back eligible.
    pub(crate) async fn admit_claimed(&self, claimed: Vec<Claimed>) -> Vec<Claimed> {
        let mut out = Vec::with_capacity(claimed.len());
        // Every execution of the batch is checked at once (each check is a
        // few single-slot calls; one batch's checks share the round trips).
        let checks = futures::future::join_all(claimed.iter().map(|c| async move {
            if c.admission.needs_admission() {
                Some(self.admit_one(c).await)
            } else {
                None
            }
        }))
        .await;
        for (c, check) in claimed.into_iter().zip(checks) {
            let Some(check) = check else {
                out.push(c);
                continue;
            };
            match check {
                Ok(None) => out.push(c),
                Ok(Some(Refusal::Cancel(budget))) => {
                    tracing::debug!(execution = %c.lease.execution, on = %budget, "budget breached under the cancel policy: cancelled");
                    match self.call(&ad::cancel_for_breach(&c.lease, &budget)).await {
                        Ok(r) => {
                            if let Err(e) = ad::decode_block(&r) {
                                tracing::warn!(execution = %c.lease.execution, error = %e, "cancel refused");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(execution = %c.lease.execution, error = %e, "cancel failed; the lease will expire")
                        }
                    }
                }
                Ok(Some(Refusal::Block(reason, name))) => {
                    tracing::debug!(execution = %c.lease.execution, reason = reason.as_str(), on = %name, "not admitted: blocked");
                    match self.call(&ad::block(&c.lease, reason, &name)).await {
                        Ok(r) => {
                            if let Err(e) = ad::decode_block(&r) {
                                tracing::warn!(execution = %c.lease.execution, error = %e, "block refused");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(execution = %c.lease.execution, error = %e, "block failed; the lease will expire")
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(execution = %c.lease.execution, error = %e, "admission not checked; handing it back");
                    let _ = self.release_admission(&c.lease, &c.admission).await;
                    let _ = self.release(&c.lease).await;
                }
            }
        }
        out
    }

    /// None when admitted (every quota slot taken); otherwise why not and on what.
    async fn admit_one(&self, c: &Claimed) -> Result<Option<Refusal>> {
        let reads: Vec<_> = c
            .admission
            .budgets
            .iter()
            .map(|b| {
                cmd([
                    "HMGET",
                    &budget_key(&self.config, b),
                    "breached",
                    "on_breach",
                ])
            })
            .collect();
        let mut blocked_on = None;
        for (b, r) in c
            .admission
            .budgets
            .iter()
            .zip(self.store().command_many(&reads).await)
        {
            let (breached, policy) = match r? {
                Reply::Array(v) => (
                    v.first().and_then(Reply::text),
                    v.get(1).and_then(Reply::text),
                ),
                _ => (None, None),
            };
            if breached.as_deref() != Some("1") {
                continue;
            }
            // A cancelling budget wins over one that only blocks.
            if BreachPolicy::parse(policy.as_deref()) == BreachPolicy::Cancel {
                return Ok(Some(Refusal::Cancel(b.clone())));
            }
            blocked_on.get_or_insert_with(|| b.to_string());
        }
        if let Some(b) = blocked_on {
            return Ok(Some(Refusal::Block(BlockReason::Budget, b)));
        }
        let mut taken: Vec<&QuotaId> = Vec::new();
        for q in &c.admission.quotas {
            let admitted = self
                .call(&ad::admit(&self.config, q, &c.lease))
                .await
                .and_then(|r| Ok(ad::decode_admit(&r)?));
            match admitted {
                Ok(Admitted::Yes) => taken.push(q),
                Ok(_) | Err(_) => {
                    // Give back what this claim took before refusing or failing.
                    let undo: Vec<_> = taken
                        .iter()
                        .map(|t| {
                            ad::release_slot(
                                &self.config,
                                t,
                                &c.lease.execution,
                                c.lease.epoch,
                                true,
                            )
                        })
                        .collect();
                    let _ = self.store().fcall_many(&undo).await;
                    admitted?;
                    return Ok(Some(Refusal::Block(BlockReason::Quota, q.to_string())));
                }
            }
        }
        Ok(None)
    }
}

/// Why a claimed execution is not handed out.
enum Refusal {
    /// It waits in a blocked index (on this budget or quota).
    Block(BlockReason, String),
    /// A budget it draws on is breached under the cancel policy.
    Cancel(BudgetId),
}
