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
use std::collections::HashMap;

enum Stage {
    /// Read the due heads of these slots.
    Heads(Vec<usize>),
    /// Read the records of these due members (slot, name), then decide.
    Records(Vec<(usize, String)>, Vec<usize>),
    /// Make these calls (slot, items); then read `again`.
    Calls(Vec<(usize, Vec<FireItem>)>, Vec<usize>),
    Done,
}

pub(super) struct FireCycle {
    first: bool,
    limit: usize,
    stage: Stage,
}

/// What the scanner decides for one due schedule from its record.
fn item_for(partition: Partition, name: &str, reply: &Reply, now: u64) -> FireItem {
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
    let field = |i: usize| fields.get(i).cloned().flatten().unwrap_or_default();
    let Ok(rev) = field(0).parse::<u64>() else {
        // No record (deleted meanwhile): the entry goes if nothing is there.
        return FireItem::Repair {
            name: name.to_owned(),
            rev: None,
            broken: None,
        };
    };
    let repair = |broken: Option<String>| FireItem::Repair {
        name: name.to_owned(),
        rev: Some(rev),
        broken,
    };
    if field(8) == "1" {
        return repair(None);
    }
    let Ok(next) = field(1).parse::<u64>() else {
        return repair(None);
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
    let decided = (|| -> Result<_, String> {
        let trigger = Trigger::parse(&field(2)).map_err(|e| e.to_string())?;
        let table =
            Timetable::new(&trigger, &field(3), opt(4)?, opt(5)?).map_err(|e| e.to_string())?;
        let misfire = Misfire::parse(&field(6)).map_err(|e| e.to_string())?;
        let grace = opt(7)?.ok_or("grace: missing")?;
        Ok(decide(&table, misfire, grace, next, now))
    })();
    match decided {
        Err(reason) => repair(Some(reason)),
        // The record's next fire is ahead of its index entry: put it right.
        Ok(None) => repair(None),
        Ok(Some(d)) => FireItem::Fire {
            name: name.to_owned(),
            rev,
            next,
            last: d.last,
            new_next: d.next,
            missed: d.missed,
            fires: d
                .fire
                .iter()
                .map(|&t| (t, fire_execution_id(partition, &parsed, t)))
                .collect(),
        },
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
                self.limit = read_limit(st.settings.batch, &st.tracker);
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
                    .map(|(i, name)| {
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
            Stage::Calls(work, _) => Want::Calls(
                work.iter()
                    .map(|(i, items)| contract::fire(st.partition(*i), &st.settings.filter, items))
                    .collect(),
            ),
            Stage::Done => Want::Done,
        }
    }

    pub fn feed(&mut self, st: &mut State, replies: Vec<Result<Reply, String>>) {
        self.stage = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Heads(slots) => self.heads(st, &slots, replies),
            Stage::Records(members, again) => Self::decide(st, members, again, replies),
            Stage::Calls(work, again) => {
                Self::absorb(st, &work, replies);
                if again.is_empty() {
                    Stage::Done
                } else {
                    Stage::Heads(again)
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
        let (mut members, mut again) = (Vec::new(), Vec::new());
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
            let plan = plan(
                &Snapshot {
                    now_ms: st.now_ms,
                    members: read,
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
                again.push(i);
            }
            members.extend(plan.act.into_iter().map(|m| (i, m)));
        }
        self.first = false;
        if members.is_empty() {
            Stage::Done
        } else {
            Stage::Records(members, again)
        }
    }

    fn decide(
        st: &mut State,
        members: Vec<(usize, String)>,
        mut again: Vec<usize>,
        replies: Vec<Result<Reply, String>>,
    ) -> Stage {
        let now = st.now_ms;
        // Fires one call makes, at most (a call stays a few ms).
        let budget = st
            .settings
            .batch
            .max(crate::schedule::MAX_FIRES_PER_DECISION);
        let mut work: Vec<(usize, Vec<FireItem>)> = Vec::new();
        let mut fires: HashMap<usize, usize> = HashMap::new();
        for ((i, name), reply) in members.into_iter().zip(replies) {
            let reply = match reply {
                Ok(r) => r,
                Err(error) => {
                    st.report.errors += 1;
                    st.report.notices.push(Notice::ReadFailed {
                        partition: st.partition(i).index,
                        error,
                    });
                    st.retry_soon(i);
                    continue;
                }
            };
            let item = item_for(st.partition(i), &name, &reply, now);
            let n = match &item {
                FireItem::Fire { fires, .. } => fires.len(),
                FireItem::Repair { .. } => 1,
            };
            let used = fires.entry(i).or_default();
            if *used > 0 && *used + n > budget {
                // The rest of this partition waits for the next round.
                if !again.contains(&i) {
                    again.push(i);
                }
                continue;
            }
            *used += n;
            match work.iter_mut().find(|(s, _)| *s == i) {
                Some((_, items)) => items.push(item),
                None => work.push((i, vec![item])),
            }
        }
        if work.is_empty() {
            if again.is_empty() {
                Stage::Done
            } else {
                Stage::Heads(again)
            }
        } else {
            Stage::Calls(work, again)
        }
    }

    fn absorb(
        st: &mut State,
        work: &[(usize, Vec<FireItem>)],
        replies: Vec<Result<Reply, String>>,
    ) {
        let now = st.now_ms;
        for ((slot, items), r) in work.iter().zip(replies) {
            let outcome =
                r.and_then(|reply| contract::decode_fire(&reply).map_err(|e| e.to_string()));
            match outcome {
                Ok(out) => {
                    st.report.acted += u64::from(out.fired);
                    let mut failed = 0;
                    let results: Vec<(&str, ItemResult)> = items
                        .iter()
                        .map(|it| {
                            let code = out
                                .exceptions
                                .iter()
                                .find(|(n, _)| n == it.name())
                                .map(|(_, c)| c.as_str());
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
                    }
                    st.retry_soon(*slot);
                }
            }
        }
    }
}
