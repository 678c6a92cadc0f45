//! The unblock scanner (event-driven, flow partitions): blocked executions
//! (oldest first) are re-checked against their budgets and quotas (reads on
//! those slots), or, when blocked for their route, against the live worker
//! registrations, and the admissible ones moved back to eligible with one
//! single-slot call per partition. A quota lets through at most as many as it
//! has free places, so a freed slot does not send every waiter back to be
//! refused again. A partition's blocked indexes are read only when something
//! could have changed: an execution was blocked there (`blocked {fp:N}`), a
//! breach cleared, a quota place freed or a worker registered (`admission -
//! 0`: every partition holding blocked executions), a rate window frees a
//! place (its time is known), or as a fallback every interval for partitions
//! known to hold blocked executions.
//!
//! [`decide`] is the decision, pure over what the rounds before it read.

use super::admission::{Needs, Outcome, MAX_NEEDS};
use super::schedule::Want;
use crate::admission::{budget_key, capable, free_slots, in_window, Admission};
use crate::contract::admission::{self as ad, BlockReason, BreachPolicy, QuotaRecord};
use crate::contract::{Call, CallError};
use crate::id::{BudgetId, ExecutionId, QuotaId};
use crate::keys;
use crate::partition::{Partition, PartitionConfig};
use crate::reply::Reply;
use std::collections::BTreeMap;

/// A blocked execution read for re-checking.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiter {
    /// When it was blocked (its score).
    pub blocked_at: f64,
    /// Index into the partitions given.
    pub slot: usize,
    /// Which blocked index it is in.
    pub reason: BlockReason,
    /// The execution.
    pub execution: ExecutionId,
}

/// What a quota can admit now, and when a rate window next frees a place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaRoom {
    /// Places free now.
    pub free: u64,
    /// When the window next frees a place, if it is full (server ms).
    pub frees_at: Option<u64>,
}

impl QuotaRoom {
    /// No such quota: it limits nothing.
    pub const UNLIMITED: QuotaRoom = QuotaRoom {
        free: u64::MAX,
        frees_at: None,
    };

    /// The room of a quota as read.
    pub fn of(rec: &QuotaRecord) -> Self {
        let inside = in_window(&rec.limits, rec.now_ms, &rec.admitted_at);
        let max = rec.limits.max_per_window as usize;
        QuotaRoom {
            free: free_slots(&rec.limits, rec.now_ms, &rec.admitted_at, rec.holders),
            // The admission that must leave for a place to open.
            frees_at: (max > 0 && inside.len() >= max)
                .then(|| inside[inside.len() - max] + rec.limits.window_ms),
        }
    }
}

/// What the waiters' needs, as read, are checked against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Each budget drawn on: `Some(policy)` when breached.
    pub breached: BTreeMap<String, Option<BreachPolicy>>,
    /// Each quota drawn on, its room.
    pub room: BTreeMap<QuotaId, QuotaRoom>,
    /// The live workers' capabilities.
    pub live: Vec<(String, Vec<String>)>,
}

/// Moves back to eligible, per (slot, reason).
pub type Moves = BTreeMap<(usize, &'static str), (BlockReason, Vec<ExecutionId>)>;
/// Cancels for a breach, per (slot, reason, budget).
pub type Cancels = BTreeMap<(usize, &'static str, String), (BlockReason, Vec<ExecutionId>)>;

/// What to do with the waiters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decision {
    /// Admissible now: back to eligible.
    pub moves: Moves,
    /// A budget they draw on is breached under the cancel policy.
    pub cancels: Cancels,
    /// Quotas left with waiters (full), and the slots they wait in.
    pub watch: BTreeMap<QuotaId, Vec<usize>>,
    /// Waiters left blocked.
    pub backlog: u64,
    /// Per slot: when to look again without an announcement.
    pub next_due: Vec<Option<u64>>,
}

/// Decide, for waiters oldest first (with what each draws on), who is
/// admissible now, who is cancelled, and when to look again: at the
/// `fallback`, or sooner when a rate window a waiter needs frees a place.
/// Each admitted waiter takes a place of its quotas.
pub fn decide(
    waiters: &[Waiter],
    needs: &[Admission],
    limits: &Limits,
    fallback: u64,
    slots: usize,
) -> Decision {
    let mut d = Decision {
        next_due: vec![None; slots],
        ..Decision::default()
    };
    let mut room = limits.room.clone();
    let breached = |b: &BudgetId| limits.breached.get(b.as_str()).copied().flatten();
    let room_of = |room: &BTreeMap<QuotaId, QuotaRoom>, q: &QuotaId| {
        room.get(q).copied().unwrap_or(QuotaRoom::UNLIMITED)
    };
    for (w, a) in waiters.iter().zip(needs) {
        // Whatever it waits for, a budget breached under the cancel policy ends it.
        if let Some(b) = a
            .budgets
            .iter()
            .find(|b| breached(b) == Some(BreachPolicy::Cancel))
        {
            d.cancels
                .entry((w.slot, w.reason.as_str(), b.to_string()))
                .or_insert_with(|| (w.reason, Vec::new()))
                .1
                .push(w.execution.clone());
            continue;
        }
        let admissible = match w.reason {
            // (its budgets and quotas are checked when a capable worker claims it)
            BlockReason::Route => limits
                .live
                .iter()
                .any(|(_, have)| capable(&a.capabilities, have)),
            BlockReason::Budget | BlockReason::Quota => {
                a.budgets.iter().all(|b| breached(b).is_none())
                    && a.quotas.iter().all(|q| room_of(&room, q).free > 0)
            }
        };
        if !admissible {
            d.backlog += 1;
            if w.reason != BlockReason::Route {
                for q in a.quotas.iter().filter(|q| room_of(&room, q).free == 0) {
                    d.watch.entry(q.clone()).or_default().push(w.slot);
                }
            }
            // Looked at again on an announcement, when a window it waits
            // for frees a place, or at the fallback.
            let at = a
                .quotas
                .iter()
                .filter_map(|q| room_of(&room, q).frees_at)
                .filter(|_| w.reason == BlockReason::Quota)
                .fold(fallback, u64::min);
            if let Some(due) = d.next_due.get_mut(w.slot) {
                *due = Some(due.map_or(at, |x| x.min(at)));
            }
            continue;
        }
        if w.reason != BlockReason::Route {
            for q in &a.quotas {
                if let Some(r) = room.get_mut(q) {
                    r.free = r.free.saturating_sub(1);
                }
            }
        }
        d.moves
            .entry((w.slot, w.reason.as_str()))
            .or_insert_with(|| (w.reason, Vec::new()))
            .1
            .push(w.execution.clone());
    }
    d
}

/// Parse the blocked indexes' heads (`ZRANGE … WITHSCORES`) into waiters,
/// oldest first; whether each slot's read was full. A malformed entry is the
/// index reconciler's to drop.
pub fn parse_waiters(
    targets: &[(usize, BlockReason)],
    replies: &[Reply],
    batch: u32,
    slots: usize,
) -> (Vec<Waiter>, Vec<bool>) {
    let mut waiters = Vec::new();
    let mut full = vec![false; slots];
    for ((slot, reason), r) in targets.iter().zip(replies) {
        let Reply::Array(items) = r else { continue };
        full[*slot] |= items.len() / 2 >= batch as usize;
        for pair in items.chunks(2) {
            let (Some(id), Some(score)) = (
                pair.first().and_then(Reply::text),
                pair.get(1).and_then(Reply::text),
            ) else {
                continue;
            };
            if let (Ok(execution), Ok(blocked_at)) = (ExecutionId::parse(&id), score.parse::<f64>())
            {
                waiters.push(Waiter {
                    blocked_at,
                    slot: *slot,
                    reason: *reason,
                    execution,
                });
            }
        }
    }
    waiters.sort_by(|a, b| a.blocked_at.total_cmp(&b.blocked_at));
    (waiters, full)
}

enum Stage {
    /// Read each partition's three blocked indexes.
    Blocked,
    /// Read what the waiters not seen before draw on.
    Needs(Vec<ExecutionId>),
    /// Read the breach marker of each budget drawn on.
    Budgets,
    /// Read each quota's room, and the live workers when a waiter needs one.
    Quotas {
        live: bool,
    },
    /// Unblock and cancel; then watch the full quotas.
    Act {
        moves: usize,
        slots: Vec<usize>,
    },
    /// Ask the full quotas to announce their next release.
    Watch(Vec<Vec<usize>>),
    Done,
}

/// One unblock cycle in progress.
pub(super) struct UnblockRun {
    parts: Vec<Partition>,
    batch: u32,
    fallback: u64,
    stage: Stage,
    targets: Vec<(usize, BlockReason)>,
    waiters: Vec<Waiter>,
    full: Vec<bool>,
    needs: Vec<Admission>,
    budgets: BTreeMap<String, BudgetId>,
    quotas: Vec<QuotaId>,
    limits: Limits,
    decision: Decision,
}

impl UnblockRun {
    pub fn new(parts: Vec<Partition>, batch: u32, fallback: u64) -> Self {
        let targets = (0..parts.len())
            .flat_map(|i| BlockReason::ALL.map(|r| (i, r)))
            .collect();
        Self {
            parts,
            batch,
            fallback,
            stage: Stage::Blocked,
            targets,
            waiters: Vec::new(),
            full: Vec::new(),
            needs: Vec::new(),
            budgets: BTreeMap::new(),
            quotas: Vec::new(),
            limits: Limits::default(),
            decision: Decision::default(),
        }
    }

    pub fn want(&self, config: &PartitionConfig) -> Want {
        match &self.stage {
            Stage::Blocked => Want::Reads(
                self.targets
                    .iter()
                    .map(|(i, r)| {
                        [
                            "ZRANGE",
                            &r.index(self.parts[*i]),
                            "0",
                            &(self.batch - 1).to_string(),
                            "WITHSCORES",
                        ]
                        .map(str::to_owned)
                        .to_vec()
                    })
                    .collect(),
            ),
            Stage::Needs(unknown) => Want::Reads(
                unknown
                    .iter()
                    .map(|e| vec!["HGET".to_owned(), keys::exec(e), "adm".to_owned()])
                    .collect(),
            ),
            Stage::Budgets => Want::Reads(
                self.budgets
                    .values()
                    .map(|b| {
                        ["HMGET", &budget_key(config, b), "breached", "on_breach"]
                            .map(str::to_owned)
                            .to_vec()
                    })
                    .collect(),
            ),
            Stage::Quotas { live } => {
                let mut calls: Vec<Call> = self
                    .quotas
                    .iter()
                    .map(|q| ad::get_quota(config, q))
                    .collect();
                if *live {
                    calls.push(ad::live_workers());
                }
                Want::Calls(calls)
            }
            Stage::Act { .. } => {
                let d = &self.decision;
                let moves = d
                    .moves
                    .iter()
                    .map(|((i, _), (reason, ids))| ad::unblock(self.parts[*i], *reason, ids));
                let cancels = d.cancels.iter().filter_map(|((i, _, b), (reason, ids))| {
                    let b = self.budgets.get(b)?;
                    Some(ad::breach_cancel(self.parts[*i], *reason, b, ids))
                });
                Want::Calls(moves.chain(cancels).collect())
            }
            Stage::Watch(_) => Want::Calls(
                self.decision
                    .watch
                    .keys()
                    .map(|q| ad::watch_quota(config, q))
                    .collect(),
            ),
            Stage::Done => Want::Done,
        }
    }

    /// Take in one round's replies; `Ok(true)` when the cycle is done.
    pub fn feed(
        &mut self,
        cache: &mut Needs,
        out: &mut Outcome,
        replies: Vec<Result<Reply, String>>,
    ) -> Result<bool, String> {
        let replies: Vec<Reply> = replies.into_iter().collect::<Result<_, _>>()?;
        let err = |e: CallError| e.to_string();
        match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Blocked => {
                let (waiters, full) =
                    parse_waiters(&self.targets, &replies, self.batch, self.parts.len());
                if waiters.is_empty() {
                    return Ok(true);
                }
                self.waiters = waiters;
                self.full = full;
                let unknown: Vec<ExecutionId> = self
                    .waiters
                    .iter()
                    .map(|w| &w.execution)
                    .filter(|e| !cache.0.contains_key(*e))
                    .cloned()
                    .collect();
                if cache.0.len() + unknown.len() > MAX_NEEDS {
                    cache.0.clear();
                }
                self.stage = Stage::Needs(unknown);
                if matches!(&self.stage, Stage::Needs(u) if u.is_empty()) {
                    return self.after_needs(cache, out);
                }
            }
            Stage::Needs(unknown) => {
                for (e, r) in unknown.into_iter().zip(&replies) {
                    let a = Admission::parse(&r.text().unwrap_or_default()).unwrap_or_default();
                    cache.0.insert(e, a);
                }
                return self.after_needs(cache, out);
            }
            Stage::Budgets => {
                for (b, r) in self.budgets.keys().zip(&replies) {
                    let state = match r {
                        Reply::Array(v)
                            if v.first().and_then(Reply::text).as_deref() == Some("1") =>
                        {
                            Some(BreachPolicy::parse(
                                v.get(1).and_then(Reply::text).as_deref(),
                            ))
                        }
                        _ => None,
                    };
                    self.limits.breached.insert(b.clone(), state);
                }
                return Ok(self.after_budgets(cache, out));
            }
            Stage::Quotas { live } => {
                for (q, r) in self.quotas.iter().zip(&replies) {
                    let room = match ad::decode_get_quota(r) {
                        Ok(rec) => QuotaRoom::of(&rec),
                        // No such quota: it limits nothing.
                        Err(_) => QuotaRoom::UNLIMITED,
                    };
                    self.limits.room.insert(q.clone(), room);
                }
                if live {
                    let r = replies.last().ok_or("no live workers reply")?;
                    self.limits.live = ad::decode_live_workers(r).map_err(err)?;
                }
                return Ok(self.act(cache, out));
            }
            Stage::Act { moves, slots } => {
                for (k, (i, r)) in slots.iter().zip(&replies).enumerate() {
                    if k < moves {
                        out.acted += u64::from(ad::decode_unblock(r).map_err(err)?.0);
                    } else {
                        out.cancelled += u64::from(ad::decode_breach_cancel(r).map_err(err)?.0);
                    }
                    // Beyond the batch read, more may wait behind the ones let through.
                    out.again[*i] |= self.full[*i];
                }
                return Ok(self.watch());
            }
            Stage::Watch(waiting) => {
                for (slots, r) in waiting.iter().zip(&replies) {
                    // One freed meanwhile: look again now.
                    if ad::decode_watch_quota(r).map_err(err)? {
                        for i in slots {
                            out.again[*i] = true;
                        }
                    }
                }
                return Ok(true);
            }
            Stage::Done => return Ok(true),
        }
        Ok(false)
    }

    fn after_needs(&mut self, cache: &mut Needs, out: &mut Outcome) -> Result<bool, String> {
        self.needs = self
            .waiters
            .iter()
            .map(|w| cache.0.get(&w.execution).cloned().unwrap_or_default())
            .collect();
        // Each budget's marker and each quota's room, read once.
        self.budgets = self
            .needs
            .iter()
            .flat_map(|a| a.budgets.iter().map(|b| (b.to_string(), b.clone())))
            .collect();
        let mut quotas: Vec<QuotaId> = self.needs.iter().flat_map(|a| a.quotas.clone()).collect();
        quotas.sort();
        quotas.dedup();
        self.quotas = quotas;
        if self.budgets.is_empty() {
            return Ok(self.after_budgets(cache, out));
        }
        self.stage = Stage::Budgets;
        Ok(false)
    }

    fn after_budgets(&mut self, cache: &mut Needs, out: &mut Outcome) -> bool {
        let live = self.waiters.iter().any(|w| w.reason == BlockReason::Route);
        if self.quotas.is_empty() && !live {
            return self.act(cache, out);
        }
        self.stage = Stage::Quotas { live };
        false
    }

    fn act(&mut self, cache: &mut Needs, out: &mut Outcome) -> bool {
        self.decision = decide(
            &self.waiters,
            &self.needs,
            &self.limits,
            self.fallback,
            self.parts.len(),
        );
        let d = &self.decision;
        out.backlog += d.backlog;
        for (slot, due) in d.next_due.iter().enumerate() {
            if let Some(at) = due {
                let o = &mut out.next_due[slot];
                *o = Some(o.map_or(*at, |x| x.min(*at)));
            }
        }
        // Those leaving their blocked index are forgotten.
        for (_, ids) in d.moves.values().chain(d.cancels.values()) {
            for id in ids {
                cache.0.remove(id);
            }
        }
        let mut slots: Vec<usize> = d.moves.keys().map(|(i, _)| *i).collect();
        let moves = slots.len();
        slots.extend(
            d.cancels
                .keys()
                .filter(|(_, _, b)| self.budgets.contains_key(b))
                .map(|(i, _, _)| *i),
        );
        if slots.is_empty() {
            return self.watch();
        }
        self.stage = Stage::Act { moves, slots };
        false
    }

    fn watch(&mut self) -> bool {
        if self.decision.watch.is_empty() {
            return true;
        }
        self.stage = Stage::Watch(self.decision.watch.values().cloned().collect());
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eid(i: usize) -> ExecutionId {
        ExecutionId::new(0, i as u128)
    }

    fn waiter(i: usize, reason: BlockReason) -> Waiter {
        Waiter {
            blocked_at: i as f64,
            slot: i % 2,
            reason,
            execution: eid(i),
        }
    }

    fn needs(budgets: &[&str], quotas: &[&str], caps: &[&str]) -> Admission {
        Admission {
            budgets: budgets
                .iter()
                .map(|b| BudgetId::parse(b).unwrap())
                .collect(),
            quotas: quotas.iter().map(|q| QuotaId::parse(q).unwrap()).collect(),
            capabilities: caps.iter().map(|c| c.to_string()).collect(),
        }
    }

    fn room(free: u64, frees_at: Option<u64>) -> QuotaRoom {
        QuotaRoom { free, frees_at }
    }

    #[test]
    fn a_quota_lets_through_only_its_free_places_oldest_first() {
        let ws: Vec<Waiter> = (0..4).map(|i| waiter(i, BlockReason::Quota)).collect();
        let ns = vec![needs(&[], &["q"], &[]); 4];
        let limits = Limits {
            room: BTreeMap::from([(QuotaId::parse("q").unwrap(), room(2, Some(700)))]),
            ..Limits::default()
        };
        let d = decide(&ws, &ns, &limits, 1_000, 2);
        let moved: Vec<ExecutionId> = d.moves.values().flat_map(|(_, ids)| ids.clone()).collect();
        assert_eq!(moved.len(), 2);
        assert!(moved.contains(&eid(0)) && moved.contains(&eid(1)));
        assert_eq!(d.backlog, 2);
        assert_eq!(
            d.next_due,
            vec![Some(700), Some(700)],
            "when the window frees a place"
        );
        assert_eq!(d.watch.len(), 1);
    }

    #[test]
    fn a_breach_blocks_or_cancels_by_its_policy() {
        let ws = vec![
            waiter(0, BlockReason::Budget),
            waiter(1, BlockReason::Route),
        ];
        let ns = vec![needs(&["hard"], &[], &[]), needs(&["gone"], &[], &["gpu"])];
        let limits = Limits {
            breached: BTreeMap::from([
                ("hard".to_owned(), Some(BreachPolicy::Block)),
                ("gone".to_owned(), Some(BreachPolicy::Cancel)),
            ]),
            live: vec![("w".into(), vec!["gpu".into()])],
            ..Limits::default()
        };
        let d = decide(&ws, &ns, &limits, 1_000, 2);
        assert!(d.moves.is_empty());
        assert_eq!(d.cancels.len(), 1, "cancelled whatever it waits for");
        assert_eq!(d.backlog, 1);
        assert_eq!(d.next_due[0], Some(1_000), "the fallback");
    }

    /// What the cache of needs holds after a cycle's blocked read that
    /// found one waiter not seen before, the cache holding `held` others.
    fn cache_after_one_unknown(held: usize) -> (usize, Want) {
        let mut cache = Needs::default();
        cache
            .0
            .extend((0..held).map(|i| (eid(1_000_000 + i), Admission::default())));
        let part = Partition::new(crate::partition::PartitionFamily::Flow, 0);
        let mut run = UnblockRun::new(vec![part], 10, 1_000);
        let one = Reply::Array(vec![Reply::bulk(eid(7).as_str()), Reply::bulk("5")]);
        let empty = Reply::Array(vec![]);
        let replies = vec![Ok(empty.clone()), Ok(one), Ok(empty)];
        let done = run.feed(&mut cache, &mut Outcome::default(), replies);
        assert_eq!(done, Ok(false), "its needs are read next");
        let config = PartitionConfig::default();
        (cache.0.len(), run.want(&config))
    }

    #[test]
    fn the_cache_of_needs_starts_over_only_past_its_bound() {
        // Room for the one unknown waiter, exactly: the cache is kept.
        let (kept, want) = cache_after_one_unknown(MAX_NEEDS - 1);
        assert_eq!(kept, MAX_NEEDS - 1);
        let Want::Reads(reads) = want else {
            panic!("reads its needs")
        };
        assert_eq!(
            reads,
            [["HGET", &keys::exec(&eid(7)), "adm"].map(str::to_owned)]
        );
        // One over: it starts over.
        let (kept, _) = cache_after_one_unknown(MAX_NEEDS);
        assert_eq!(kept, 0);
    }

    proptest! {
        #[test]
        fn decisions_keep_the_limits(
            spec in prop::collection::vec((0usize..3, 0usize..3, 0usize..3, any::<bool>()), 0..30),
            free in prop::collection::vec(0u64..4, 3),
            breach in prop::collection::vec(0u8..3, 3),
            live in any::<bool>(),
        ) {
            let reasons = [BlockReason::Budget, BlockReason::Quota, BlockReason::Route];
            let (bs, qs) = (["b0", "b1", "b2"], ["q0", "q1", "q2"]);
            let ws: Vec<Waiter> = spec.iter().enumerate().map(|(i, s)| waiter(i, reasons[s.0])).collect();
            let ns: Vec<Admission> = spec
                .iter()
                .map(|s| needs(&[bs[s.1]], &[qs[s.2]], if s.3 { &["gpu"] } else { &[] }))
                .collect();
            let limits = Limits {
                breached: (0..3)
                    .map(|i| (bs[i].to_owned(), [None, Some(BreachPolicy::Block), Some(BreachPolicy::Cancel)][breach[i] as usize]))
                    .collect(),
                room: (0..3).map(|i| (QuotaId::parse(qs[i]).unwrap(), room(free[i], None))).collect(),
                live: if live { vec![("w".into(), vec!["gpu".into()])] } else { vec![] },
            };
            let d = decide(&ws, &ns, &limits, 5_000, 2);
            let moved: Vec<&ExecutionId> = d.moves.values().flat_map(|(_, ids)| ids).collect();
            let cancelled: Vec<&ExecutionId> = d.cancels.values().flat_map(|(_, ids)| ids).collect();
            // Every waiter is moved, cancelled or left, once.
            prop_assert_eq!(moved.len() + cancelled.len() + d.backlog as usize, ws.len());
            for (w, s) in ws.iter().zip(&spec) {
                let policy = [None, Some(BreachPolicy::Block), Some(BreachPolicy::Cancel)][breach[s.1] as usize];
                let is_moved = moved.contains(&&w.execution);
                prop_assert_eq!(cancelled.contains(&&w.execution), policy == Some(BreachPolicy::Cancel));
                if is_moved && w.reason != BlockReason::Route {
                    prop_assert!(policy.is_none(), "moved past a breach");
                }
                if is_moved && w.reason == BlockReason::Route {
                    prop_assert!(live || !s.3, "moved without a capable worker");
                }
            }
            // No quota admits more than its free places.
            for (q, free) in free.iter().enumerate() {
                let admitted = ws
                    .iter()
                    .zip(&spec)
                    .filter(|(w, s)| s.2 == q && w.reason != BlockReason::Route && moved.contains(&&w.execution))
                    .count() as u64;
                prop_assert!(admitted <= *free);
            }
        }
    }
}
