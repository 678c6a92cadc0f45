//! The schedule scanner's cycle: read the head of each due partition's
//! `schedules` index, read the due schedules' records (one `HMGET` each, one
//! pipelined round), decide each one's fire in Rust ([`crate::schedule::decide`]:
//! the data plane has no cron parser), then one fenced `ff_schedule_fire`
//! per partition; loop while more is due.
//!
//! A record that does not decode is counted as malformed and taken out of
//! the due index (marked broken, so a listing shows why it stopped); an
//! index entry without a record, or whose record is paused or has no next
//! fire, is repaired to what the record says.

use super::schedule::{Notice, State, Want};
use super::{plan, read_limit, record_results, ItemResult, Member, Snapshot};
use crate::contract::schedule::{self as contract, FireItem, DUE_FIELDS};
use crate::partition::Partition;
use crate::reply::Reply;
use crate::schedule::{
    decide, due_index, fire_execution_id, record_key, Misfire, ScheduleName, Timetable, Trigger,
};
use std::collections::{HashMap, HashSet};

enum Stage {
    /// Read the due heads of these slots.
    Heads(Vec<usize>),
    /// Read the records of these due members (slot, name, due), then
    /// decide; the items of `ready` are decided already (from the cache).
    Records(Vec<(usize, String, u64)>, Ready),
    /// Make these calls; then read `again`.
    Calls(Ready),
    Done,
}

/// Items decided so far, by slot, the slots to read again, and which
/// items were decided from the cache (a stale entry is dropped when the
/// call finds its record moved on).
#[derive(Default)]
struct Ready {
    work: Vec<(usize, Vec<FireItem>)>,
    again: Vec<usize>,
    cached: HashSet<(usize, String)>,
}

pub(super) struct FireCycle {
    first: bool,
    limit: usize,
    stage: Stage,
}

/// Schedules' decided timetables kept at most (past this the cache starts
/// over).
const MAX_CACHED: usize = 100_000;
/// Due members read per partition in a cycle's first round: a partition's
/// index holds every schedule of it, and only its due head is wanted (more
/// due: read again at once, a batch's worth).
const HEAD_READ: usize = 4;

/// What deciding a schedule's fires needs of its record, compiled once per
/// revision: a fire then reads nothing first (its call is fenced by the
/// revision and next fire time, so a stale entry fires nothing; it is
/// dropped when its call answers `gone`).
pub(super) struct Compiled {
    rev: u64,
    table: Timetable,
    misfire: Misfire,
    grace: u64,
}

/// Per (slot, schedule name), its compiled record.
pub(super) type FireCache = HashMap<(usize, String), Compiled>;

/// A record's fields (`DUE_FIELDS`) compiled: `Err(None)` when there is
/// no usable record to decide from (none, paused, no next fire: the entry
/// follows the record), `Err(Some(why))` when it does not decode.
fn compile(fields: &[Option<String>]) -> Result<(Compiled, u64), Option<String>> {
    let field = |i: usize| fields.get(i).cloned().flatten().unwrap_or_default();
    let Ok(rev) = field(0).parse::<u64>() else {
        return Err(None);
    };
    if field(8) == "1" {
        return Err(None);
    }
    let Ok(next) = field(1).parse::<u64>() else {
        return Err(None);
    };
    let opt = |i: usize| -> Result<Option<u64>, String> {
        match field(i).as_str() {
            "" => Ok(None),
            t => t
                .parse()
                .map(Some)
                .map_err(|_| format!("{}: {t:?}", DUE_FIELDS[i])),
        }
    };
    (|| -> Result<_, String> {
        let trigger = Trigger::parse(&field(2)).map_err(|e| e.to_string())?;
        let table =
            Timetable::new(&trigger, &field(3), opt(4)?, opt(5)?).map_err(|e| e.to_string())?;
        let misfire = Misfire::parse(&field(6)).map_err(|e| e.to_string())?;
        let grace = opt(7)?.ok_or("grace: missing")?;
        Ok((
            Compiled {
                rev,
                table,
                misfire,
                grace,
            },
            next,
        ))
    })()
    .map_err(Some)
}

/// The fire of a compiled schedule whose next fire time is `next` (`None`:
/// not due after all; its entry is put right).
fn fire_of(
    partition: Partition,
    name: &ScheduleName,
    c: &Compiled,
    next: u64,
    now: u64,
) -> Option<FireItem> {
    let d = decide(&c.table, c.misfire, c.grace, next, now)?;
    Some(FireItem::Fire {
        name: name.as_str().to_owned(),
        rev: c.rev,
        next,
        last: d.last,
        new_next: d.next,
        missed: d.missed,
        fires: d
            .fire
            .iter()
            .map(|&t| (t, fire_execution_id(partition, name, t)))
            .collect(),
    })
}

/// What the scanner decides for one due schedule from its record (kept
/// compiled in `cache` when it decodes).
fn item_for(
    cache: &mut FireCache,
    slot: usize,
    partition: Partition,
    name: &str,
    reply: &Reply,
    now: u64,
) -> FireItem {
    let Ok(parsed) = ScheduleName::new(name) else {
        return FireItem::Repair {
            name: name.to_owned(),
            rev: None,
            broken: Some("malformed name".into()),
        };
    };
    let fields: Vec<Option<String>> = match reply {
        Reply::Array(v) => v.iter().map(Reply::text).collect(),
        _ => Vec::new(),
    };
    let rev = fields
        .first()
        .cloned()
        .flatten()
        .and_then(|r| r.parse::<u64>().ok());
    let repair = |broken: Option<String>| FireItem::Repair {
        name: name.to_owned(),
        rev,
        broken,
    };
    match compile(&fields) {
        // No record (deleted meanwhile), paused or ended: the entry follows it.
        Err(None) => repair(None),
        Err(Some(reason)) => repair(Some(reason)),
        Ok((compiled, next)) => {
            let item = fire_of(partition, &parsed, &compiled, next, now);
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert((slot, name.to_owned()), compiled);
            // The record's next fire is ahead of its index entry: put it right.
            item.unwrap_or_else(|| repair(None))
        }
    }
}

impl FireCycle {
    pub fn new(selected: Vec<usize>) -> Self {
        Self {
            first: true,
            limit: 0,
            stage: Stage::Heads(selected),
        }
    }

    pub fn want(&mut self, st: &mut State) -> Want {
        match &mut self.stage {
            Stage::Heads(slots) => {
                slots.retain(|&i| st.is_held(i));
                if slots.is_empty() {
                    self.stage = Stage::Done;
                    return Want::Done;
                }
                // A cycle's first read takes a partition's due head; a
                // partition read again has a backlog: a whole batch.
                let want = if self.first {
                    st.settings.batch.min(HEAD_READ)
                } else {
                    st.settings.batch
                };
                self.limit = read_limit(want, &st.tracker);
                let limit = self.limit.to_string();
                Want::Reads(
                    slots
                        .iter()
                        .map(|&i| {
                            [
                                "ZRANGEBYSCORE",
                                &due_index(st.partition(i)),
                                "-inf",
                                "+inf",
                                "WITHSCORES",
                                "LIMIT",
                                "0",
                                &limit,
                            ]
                            .map(str::to_owned)
                            .to_vec()
                        })
                        .collect(),
                )
            }
            Stage::Records(members, _) => Want::Reads(
                members
                    .iter()
                    .map(|(i, name, _)| {
                        // (a malformed name is read as a key all the same: HMGET of nothing)
                        let key = match ScheduleName::new(name.clone()) {
                            Ok(n) => record_key(st.partition(*i), &n),
                            Err(_) => due_index(st.partition(*i)),
                        };
                        let mut cmd = vec!["HMGET".to_owned(), key];
                        cmd.extend(DUE_FIELDS.iter().map(|f| (*f).to_owned()));
                        cmd
                    })
                    .collect(),
            ),
            Stage::Calls(ready) => Want::Calls(
                ready
                    .work
                    .iter()
                    .map(|(i, items)| contract::fire(st.partition(*i), &st.settings.filter, items))
                    .collect(),
            ),
            Stage::Done => Want::Done,
        }
    }

    pub fn feed(&mut self, st: &mut State, replies: Vec<Result<Reply, String>>) {
        self.stage = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Heads(slots) => self.heads(st, &slots, replies),
            Stage::Records(members, ready) => Self::decide(st, members, ready, replies),
            Stage::Calls(ready) => {
                Self::absorb(st, &ready, replies);
                if ready.again.is_empty() {
                    Stage::Done
                } else {
                    Stage::Heads(ready.again)
                }
            }
            Stage::Done => Stage::Done,
        };
    }

    fn heads(
        &mut self,
        st: &mut State,
        slots: &[usize],
        replies: Vec<Result<Reply, String>>,
    ) -> Stage {
        let mut members = Vec::new();
        let mut ready = Ready::default();
        for (&i, reply) in slots.iter().zip(replies) {
            let read: Result<Vec<Member>, String> = reply.and_then(|r| super::parse_members(&r));
            let read = match read {
                Ok(m) => m,
                Err(error) => {
                    st.report.errors += 1;
                    st.report.notices.push(Notice::ReadFailed {
                        partition: st.partition(i).index,
                        error,
                    });
                    st.slots[i].dirty = false;
                    st.retry_soon(i);
                    continue;
                }
            };
            let scores: HashMap<&str, u64> =
                read.iter().map(|m| (m.id.as_str(), m.score)).collect();
            let plan = plan(
                &Snapshot {
                    now_ms: st.now_ms,
                    members: read.clone(),
                    limit: self.limit,
                },
                &st.tracker,
                st.settings.batch,
            );
            let slot = &mut st.slots[i];
            slot.dirty = false;
            slot.next_due = plan.next_due_ms;
            if plan.skipped > 0 {
                let at = st.now_ms + st.settings.interval_ms.max(1);
                slot.next_due = Some(slot.next_due.map_or(at, |d| d.min(at)));
            }
            if self.first {
                st.report.backlog += plan.due as u64;
                st.report.skipped += plan.skipped as u64;
            }
            if plan.again {
                ready.again.push(i);
            }
            members.extend(plan.act.into_iter().map(|m| {
                let due = scores.get(m.as_str()).copied().unwrap_or(0);
                (i, m, due)
            }));
        }
        self.first = false;
        // Decided from the cache where it has the schedule; read the rest.
        let now = st.now_ms;
        let mut unread = Vec::new();
        for (i, name, due) in members {
            let hit = match (
                st.fire_cache.get(&(i, name.clone())),
                ScheduleName::new(name.clone()),
            ) {
                (Some(c), Ok(n)) => fire_of(st.partition(i), &n, c, due, now),
                _ => None,
            };
            match hit {
                Some(item) => {
                    ready.cached.insert((i, name));
                    Self::add(st, &mut ready, i, item);
                }
                None => unread.push((i, name, due)),
            }
        }
        if !unread.is_empty() {
            Stage::Records(unread, ready)
        } else {
            Self::calls(ready)
        }
    }

    /// (A partition to read again has work: its due members are fired,
    /// or were refused and are no longer in `again`.)
    fn calls(ready: Ready) -> Stage {
        if ready.work.is_empty() {
            Stage::Done
        } else {
            Stage::Calls(ready)
        }
    }

    /// Add an item to its slot's call, unless the call is full (then the
    /// rest of the partition waits for the next round).
    fn add(st: &State, ready: &mut Ready, i: usize, item: FireItem) {
        // Fires one call makes, at most (a call stays a few ms).
        let budget = st
            .settings
            .batch
            .max(crate::schedule::MAX_FIRES_PER_DECISION);
        let n = match &item {
            FireItem::Fire { fires, .. } => fires.len(),
            FireItem::Repair { .. } => 1,
        };
        let used: usize = ready
            .work
            .iter()
            .find(|(s, _)| *s == i)
            .map_or(0, |(_, items)| {
                items
                    .iter()
                    .map(|it| match it {
                        FireItem::Fire { fires, .. } => fires.len(),
                        FireItem::Repair { .. } => 1,
                    })
                    .sum()
            });
        if used > 0 && used + n > budget {
            ready.cached.remove(&(i, item.name().to_owned()));
            if !ready.again.contains(&i) {
                ready.again.push(i);
            }
            return;
        }
        match ready.work.iter_mut().find(|(s, _)| *s == i) {
            Some((_, items)) => items.push(item),
            None => ready.work.push((i, vec![item])),
        }
    }

    fn decide(
        st: &mut State,
        members: Vec<(usize, String, u64)>,
        mut ready: Ready,
        replies: Vec<Result<Reply, String>>,
    ) -> Stage {
        let now = st.now_ms;
        for ((i, name, _), reply) in members.into_iter().zip(replies) {
            let reply = match reply {
                Ok(r) => r,
                Err(error) => {
                    // Counted against the schedule, so a record that cannot
                    // be read (WRONGTYPE) goes into backoff; its partition is
                    // looked at again soon, not again in this cycle.
                    st.report.errors += 1;
                    st.report.notices.push(Notice::ReadFailed {
                        partition: st.partition(i).index,
                        error,
                    });
                    st.tracker.record_failure(&name);
                    ready.again.retain(|&s| s != i);
                    st.retry_soon(i);
                    continue;
                }
            };
            let p = st.partition(i);
            let item = item_for(&mut st.fire_cache, i, p, &name, &reply, now);
            Self::add(st, &mut ready, i, item);
        }
        Self::calls(ready)
    }

    fn absorb(st: &mut State, ready: &Ready, replies: Vec<Result<Reply, String>>) {
        let now = st.now_ms;
        for ((slot, items), r) in ready.work.iter().zip(replies) {
            let outcome =
                r.and_then(|reply| contract::decode_fire(&reply).map_err(|e| e.to_string()));
            match outcome {
                Ok(out) => {
                    st.report.acted += u64::from(out.fired);
                    let mut failed = 0;
                    let mut stale = false;
                    let results: Vec<(&str, ItemResult)> = items
                        .iter()
                        .map(|it| {
                            let code = out
                                .exceptions
                                .iter()
                                .find(|(n, _)| n == it.name())
                                .map(|(_, c)| c.as_str());
                            if matches!(code, Some("gone") | Some("malformed")) {
                                // The record moved on: compile it again when next due.
                                let key = (*slot, it.name().to_owned());
                                stale |= ready.cached.contains(&key);
                                st.fire_cache.remove(&key);
                            }
                            let result = match code {
                                // (early: decided on a clock the server has not reached; due again later)
                                None | Some("gone") | Some("early") => ItemResult::Done,
                                Some("filtered") => ItemResult::Filtered,
                                Some("malformed") => {
                                    st.report.malformed += 1;
                                    ItemResult::Done
                                }
                                Some("repaired") => {
                                    st.report.repaired += 1;
                                    ItemResult::Done
                                }
                                Some(other) => {
                                    failed += 1;
                                    ItemResult::Failed(other.to_owned())
                                }
                            };
                            (it.name(), result)
                        })
                        .collect();
                    let entered =
                        record_results(&mut st.tracker, results.iter().map(|(n, r)| (*n, r)));
                    if failed > 0 {
                        st.report.errors += failed as u64;
                        st.report.notices.push(Notice::MembersFailed {
                            failed,
                            entered_backoff: entered,
                        });
                        st.retry_soon(*slot);
                    }
                    if let Some(d) = out.next_due_ms {
                        if d > now {
                            let s = &mut st.slots[*slot];
                            s.next_due = Some(s.next_due.map_or(d, |x| x.min(d)));
                        }
                    }
                    // Decided from a stale cache entry: read the partition
                    // again at the next cycle (its entry may still be due).
                    if stale {
                        st.slots[*slot].dirty = true;
                    }
                }
                Err(error) => {
                    st.report.errors += 1;
                    st.report.notices.push(Notice::BatchFailed {
                        partition: st.partition(*slot).index,
                        error,
                        batch: items.len(),
                    });
                    for it in items {
                        st.tracker.record_failure(it.name());
                        st.fire_cache.remove(&(*slot, it.name().to_owned()));
                    }
                    st.retry_soon(*slot);
                }
            }
        }
    }
}
