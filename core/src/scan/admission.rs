//! The four admission scanners' cycles:
//!
//! - **budget reset** (due-driven, budget partitions): budgets whose periodic
//!   reset is due (`resets` index) are reset and rescheduled on their grid;
//!   the data plane announces a new earliest reset (`resets {b:N} <due>`);
//! - **budget reconciler** (sweep, budget partitions): each budget's breach
//!   marker is made to match its usage against its limits (and a lost reset
//!   schedule restored);
//! - **quota reconciler** (sweep, quota partitions): windows trimmed; every
//!   concurrency slot holder is checked against its execution (another slot:
//!   read here, then a release fenced by the holder's epoch), so a slot held
//!   by an execution no longer active at that epoch — crashed worker, cancel,
//!   expiry, a worker that never released — is given back;
//! - **unblock** (event-driven, flow partitions): see [`super::unblock`].
//!
//! Until admission is used in the store, a cycle is one `EXISTS`.

use super::schedule::{Notice, State, Want};
use super::unblock::UnblockRun;
use crate::admission::{Admission, IN_USE};
use crate::contract::admission::{self as ad, Holder};
use crate::contract::{Call, CallError};
use crate::id::ExecutionId;
use crate::keys;
use crate::partition::{Partition, PartitionFamily};
use crate::reply::Reply;
use std::collections::HashMap;

/// An admission scanner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdmissionScan {
    /// Due periodic budget resets.
    BudgetReset,
    /// Budget breach markers and reset schedules made right.
    BudgetReconcile,
    /// Quota windows trimmed, slots of dead holders given back.
    QuotaReconcile,
    /// Blocked executions now admissible moved back to eligible.
    Unblock,
}

impl AdmissionScan {
    /// The partitions it walks.
    pub fn family(self) -> PartitionFamily {
        match self {
            AdmissionScan::BudgetReset | AdmissionScan::BudgetReconcile => PartitionFamily::Budget,
            AdmissionScan::QuotaReconcile => PartitionFamily::Quota,
            AdmissionScan::Unblock => PartitionFamily::Flow,
        }
    }

    /// Walks every partition each interval (not driven by due times).
    pub fn is_sweep(self) -> bool {
        matches!(
            self,
            AdmissionScan::BudgetReconcile | AdmissionScan::QuotaReconcile
        )
    }

    /// The index it reads, as in wake-up messages and metric labels
    /// (`blocked`: the three blocked indexes).
    pub fn index_name(self) -> &'static str {
        match self {
            AdmissionScan::BudgetReset => "resets",
            AdmissionScan::BudgetReconcile => "budgets",
            AdmissionScan::QuotaReconcile => "quotas",
            AdmissionScan::Unblock => "blocked",
        }
    }
}

/// What blocked executions draw on (`adm` is written once, at create), kept
/// between cycles so a re-check of a partition whose waiters were seen costs
/// its three index reads, not a read per waiter.
#[derive(Debug, Default)]
pub(super) struct Needs(pub HashMap<ExecutionId, Admission>);

/// Entries [`Needs`] keeps at most (then it starts over).
pub(super) const MAX_NEEDS: usize = 100_000;

/// What one admission cycle did on the partitions it was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Outcome {
    /// Budgets reset / budgets found right / slots given back / executions unblocked.
    pub acted: u64,
    /// Budgets repaired / admissions trimmed from windows.
    pub repaired: u64,
    /// Still blocked (unblock), or names walked (reconcilers).
    pub backlog: u64,
    /// Blocked executions cancelled for a budget breached under the cancel policy.
    pub cancelled: u64,
    /// Per partition given (same order): when to look again (server ms).
    pub next_due: Vec<Option<u64>>,
    /// Per partition given: more is due now (a full batch was taken).
    pub again: Vec<bool>,
}

enum Stage {
    InUse,
    Resets,
    /// A reconciler's cursor walk (budgets or quotas), by index into `parts`.
    Walk(Vec<(usize, String)>),
    /// Quota slot holders, to check against their executions.
    Holders(Vec<Holder>),
    Releases(Vec<Call>),
    Unblock(Box<UnblockRun>),
    Done,
}

pub(super) struct AdmissionCycle {
    scan: AdmissionScan,
    /// Slots given, and their partitions.
    selected: Vec<usize>,
    parts: Vec<Partition>,
    batch: u32,
    stage: Stage,
    /// Quota slot holders the walk found.
    holders: Vec<Holder>,
    /// Whether the work ran (admission in use), and how it ended.
    result: Option<Result<(), String>>,
    out: Outcome,
}

impl AdmissionCycle {
    pub fn new(scan: AdmissionScan, st: &State, selected: Vec<usize>) -> Self {
        let parts: Vec<Partition> = selected.iter().map(|&i| st.partition(i)).collect();
        let n = parts.len();
        let mut c = Self {
            scan,
            selected,
            parts,
            batch: u32::try_from(st.settings.batch.clamp(1, 1000)).unwrap_or(1000),
            stage: Stage::Done,
            holders: Vec::new(),
            result: None,
            out: Outcome {
                next_due: vec![None; n],
                again: vec![false; n],
                ..Outcome::default()
            },
        };
        c.stage = if st.admission_in_use {
            c.first_stage(st)
        } else {
            Stage::InUse
        };
        c
    }

    fn first_stage(&mut self, st: &State) -> Stage {
        self.result = Some(Ok(()));
        let walk = || Stage::Walk((0..self.parts.len()).map(|i| (i, "0".to_owned())).collect());
        match self.scan {
            AdmissionScan::BudgetReset => Stage::Resets,
            AdmissionScan::BudgetReconcile | AdmissionScan::QuotaReconcile => walk(),
            AdmissionScan::Unblock => Stage::Unblock(Box::new(UnblockRun::new(
                self.parts.clone(),
                self.batch,
                st.now_ms.saturating_add(st.settings.interval_ms),
            ))),
        }
    }

    pub fn want(&mut self, st: &mut State) -> Want {
        let batch = self.batch;
        let config = st.settings.config;
        match &mut self.stage {
            Stage::InUse => Want::Reads(vec![vec!["EXISTS".to_owned(), IN_USE.to_owned()]]),
            Stage::Resets => Want::Calls(
                self.parts
                    .iter()
                    .map(|p| ad::budget_resets(*p, batch))
                    .collect(),
            ),
            Stage::Walk(cursors) if cursors.is_empty() => Want::Done,
            Stage::Walk(cursors) => Want::Calls(
                cursors
                    .iter()
                    .map(|(i, c)| match self.scan {
                        AdmissionScan::BudgetReconcile => {
                            ad::budget_reconcile(self.parts[*i], c, batch)
                        }
                        _ => ad::quota_reconcile(self.parts[*i], c, batch),
                    })
                    .collect(),
            ),
            Stage::Holders(holders) => Want::Reads(
                holders
                    .iter()
                    .map(|h| {
                        ["HMGET", &keys::exec(&h.execution), "phase", "epoch"]
                            .map(str::to_owned)
                            .to_vec()
                    })
                    .collect(),
            ),
            Stage::Releases(calls) => Want::Calls(std::mem::take(calls)),
            Stage::Unblock(run) => run.want(&config),
            Stage::Done => Want::Done,
        }
    }

    pub fn feed(&mut self, st: &mut State, replies: Vec<Result<Reply, String>>) {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        self.stage = match self.step(st, stage, replies) {
            Ok(next) => next,
            Err(e) => {
                self.result = Some(Err(e));
                Stage::Done
            }
        };
    }

    fn step(
        &mut self,
        st: &mut State,
        stage: Stage,
        replies: Vec<Result<Reply, String>>,
    ) -> Result<Stage, String> {
        let err = |e: CallError| e.to_string();
        Ok(match stage {
            Stage::InUse => match replies.into_iter().next() {
                Some(Ok(r)) if r.int() == Some(1) => {
                    st.admission_in_use = true;
                    self.first_stage(st)
                }
                Some(Err(e)) => {
                    st.report.errors += 1;
                    st.report.notices.push(Notice::InUseUnknown(e));
                    for &i in &self.selected {
                        st.retry_soon(i);
                    }
                    Stage::Done
                }
                _ => Stage::Done,
            },
            Stage::Resets => {
                for (i, r) in replies.into_iter().enumerate() {
                    let (done, next) = ad::decode_budget_resets(&r?).map_err(err)?;
                    self.out.acted += u64::from(done);
                    self.out.next_due[i] = next;
                    self.out.again[i] = done >= self.batch;
                }
                Stage::Done
            }
            Stage::Walk(cursors) => {
                let mut next = Vec::new();
                for ((i, _), r) in cursors.iter().zip(replies) {
                    let r = r?;
                    let cursor = if self.scan == AdmissionScan::BudgetReconcile {
                        let (cursor, checked, repaired) =
                            ad::decode_budget_reconcile(&r).map_err(err)?;
                        self.out.backlog += u64::from(checked);
                        self.out.repaired += u64::from(repaired);
                        self.out.acted += u64::from(checked.saturating_sub(repaired));
                        cursor
                    } else {
                        let step = ad::decode_quota_reconcile(&r).map_err(err)?;
                        self.out.repaired += u64::from(step.trimmed);
                        self.out.backlog += step.holders.len() as u64;
                        self.holders.extend(step.holders);
                        step.cursor
                    };
                    if cursor != "0" {
                        next.push((*i, cursor));
                    }
                }
                if !next.is_empty() {
                    Stage::Walk(next)
                } else if self.holders.is_empty() {
                    Stage::Done
                } else {
                    // Holders are checked once the walk is done.
                    Stage::Holders(std::mem::take(&mut self.holders))
                }
            }
            Stage::Holders(holders) => {
                let config = st.settings.config;
                let mut releases = Vec::new();
                for (h, r) in holders.iter().zip(replies) {
                    // A holder is live while its execution is active at the
                    // epoch it was admitted under.
                    let (phase, epoch) = match r? {
                        Reply::Array(v) => (
                            v.first().and_then(Reply::text),
                            v.get(1).and_then(Reply::text),
                        ),
                        _ => (None, None),
                    };
                    let live = phase.as_deref() == Some("active")
                        && epoch.and_then(|e| e.parse::<u64>().ok()) == Some(h.epoch);
                    if !live {
                        releases.push(ad::release_slot(
                            &config,
                            &h.quota,
                            &h.execution,
                            h.epoch,
                            false,
                        ));
                    }
                }
                if releases.is_empty() {
                    Stage::Done
                } else {
                    Stage::Releases(releases)
                }
            }
            Stage::Releases(_) => {
                for r in replies {
                    if ad::decode_release_slot(&r?).map_err(err)? {
                        self.out.acted += 1;
                    }
                }
                Stage::Done
            }
            Stage::Unblock(mut run) => {
                if run.feed(&mut st.needs, &mut self.out, replies)? {
                    Stage::Done
                } else {
                    Stage::Unblock(run)
                }
            }
            Stage::Done => Stage::Done,
        })
    }

    /// Put what the cycle found into the schedule and its report.
    pub fn finish(self, st: &mut State) {
        match self.result {
            // Admission not in use: nothing was looked at.
            None => {}
            Some(Ok(())) => {
                let r = &mut st.report;
                r.acted += self.out.acted + self.out.cancelled;
                r.cancelled += self.out.cancelled;
                r.repaired += self.out.repaired;
                r.backlog += self.out.backlog;
                for (k, &i) in self.selected.iter().enumerate() {
                    let s = &mut st.slots[i];
                    s.next_due = self.out.next_due[k];
                    s.dirty = self.out.again[k];
                }
            }
            Some(Err(error)) => {
                st.report.errors += 1;
                st.report.notices.push(Notice::AdmissionFailed {
                    partitions: self.parts.len(),
                    error,
                });
                for &i in &self.selected {
                    st.retry_soon(i);
                }
            }
        }
    }
}
