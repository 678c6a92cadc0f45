//! The cycle of a batch scanner: read the head of each due partition's index
//! (or, for a sweep, the next page of its set), ask [`plan`] what to act on,
//! one batch call per partition, feed the results back, loop until nothing
//! more is due. A batch call that fails as a whole is retried member by
//! member, to find the member at fault.

use super::schedule::{Notice, State, Want};
use super::{plan, read_limit, record_results, ItemResult, Member, Snapshot};
use crate::contract::scan::{self as contract, BatchFunction, BatchOutcome};
use crate::keys::PartitionKeys;
use crate::reply::Reply;
use std::collections::HashMap;

/// One batch call to make: the partition's slot, the member ids, and whether
/// more was due than this batch takes.
type Work = (usize, Vec<String>, bool);

enum Stage {
    /// Read the due heads of these slots.
    Heads(Vec<usize>),
    /// Read the next page of these slots' sets (a sweep).
    Pages(Vec<(usize, String)>),
    /// Make these calls; then read `again` (due) or `next` (sweep).
    Calls {
        work: Vec<Work>,
        singles: bool,
        again: Vec<usize>,
        next: Vec<(usize, String)>,
    },
    Done,
}

pub(super) struct BatchCycle {
    f: BatchFunction,
    first: bool,
    limit: usize,
    stage: Stage,
}

/// Parse `ZRANGEBYSCORE … WITHSCORES`: member, score, member, score, …
pub fn parse_members(reply: &Reply) -> Result<Vec<Member>, String> {
    let Reply::Array(items) = reply else {
        return Err(format!("expected an array, got {reply:?}"));
    };
    items
        .chunks(2)
        .map(|pair| match pair {
            [m, s] => {
                let id = m.text().ok_or("member is not text")?;
                let score = s
                    .text()
                    .and_then(|t| t.parse::<f64>().ok())
                    .ok_or("score is not a number")?;
                Ok(Member {
                    id,
                    score: if score <= 0.0 { 0 } else { score as u64 },
                })
            }
            _ => Err("odd number of elements".to_owned()),
        })
        .collect()
}

/// Parse `SSCAN`: [cursor, [members]].
pub fn parse_page(reply: &Reply) -> Result<(String, Vec<String>), String> {
    match reply {
        Reply::Array(v) if v.len() == 2 => {
            let cursor = v[0].text().ok_or("cursor is not text")?;
            let Reply::Array(ms) = &v[1] else {
                return Err("members are not an array".into());
            };
            Ok((cursor, ms.iter().filter_map(Reply::text).collect()))
        }
        other => Err(format!("unexpected SSCAN reply {other:?}")),
    }
}

/// The read of the `limit` earliest members of `f`'s index in a partition.
pub fn read_heads(f: BatchFunction, keys: &PartitionKeys, limit: usize) -> Vec<String> {
    [
        "ZRANGEBYSCORE",
        &f.index(keys),
        "-inf",
        "+inf",
        "WITHSCORES",
        "LIMIT",
        "0",
        &limit.to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// The read of one page of `f`'s set in a partition.
pub fn read_page(
    f: BatchFunction,
    keys: &PartitionKeys,
    cursor: &str,
    count: usize,
) -> Vec<String> {
    ["SSCAN", &f.index(keys), cursor, "COUNT", &count.to_string()]
        .map(str::to_owned)
        .to_vec()
}

impl BatchCycle {
    pub fn new(f: BatchFunction, selected: Vec<usize>) -> Self {
        let stage = if f.is_sweep() {
            Stage::Pages(selected.into_iter().map(|i| (i, "0".to_owned())).collect())
        } else {
            Stage::Heads(selected)
        };
        Self {
            f,
            first: true,
            limit: 0,
            stage,
        }
    }

    pub fn want(&mut self, st: &mut State) -> Want {
        let f = self.f;
        match &mut self.stage {
            Stage::Heads(slots) => {
                // A partition lost meanwhile is left to its new owner.
                slots.retain(|&i| st.is_held(i));
                if slots.is_empty() {
                    self.stage = Stage::Done;
                    return Want::Done;
                }
                self.limit = read_limit(st.settings.batch, &st.tracker);
                let limit = self.limit;
                Want::Reads(
                    slots
                        .iter()
                        .map(|&i| read_heads(f, &PartitionKeys::new(st.partition(i)), limit))
                        .collect(),
                )
            }
            Stage::Pages(cursors) => {
                cursors.retain(|(i, _)| st.is_held(*i));
                if cursors.is_empty() {
                    self.stage = Stage::Done;
                    return Want::Done;
                }
                let batch = st.settings.batch;
                Want::Reads(
                    cursors
                        .iter()
                        .map(|(i, c)| read_page(f, &PartitionKeys::new(st.partition(*i)), c, batch))
                        .collect(),
                )
            }
            Stage::Calls { work, .. } => Want::Calls(
                work.iter()
                    .map(|(i, ids, _)| {
                        contract::batch(f, st.partition(*i), &st.settings.filter, ids)
                    })
                    .collect(),
            ),
            Stage::Done => Want::Done,
        }
    }

    pub fn feed(&mut self, st: &mut State, replies: Vec<Result<Reply, String>>) {
        self.stage = match std::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Heads(slots) => self.heads(st, &slots, replies),
            Stage::Pages(cursors) => self.pages(st, &cursors, replies),
            Stage::Calls {
                work,
                singles,
                again: before,
                next,
            } => {
                let (mut again, split) = self.absorb(st, &work, replies);
                if !singles && !split.is_empty() {
                    // The rest of a split partition is still due: keep it in the loop.
                    again.extend(split.iter().filter(|w| w.2).map(|w| w.0));
                    let work = split
                        .into_iter()
                        .flat_map(|(slot, ids, _)| {
                            ids.into_iter().map(move |id| (slot, vec![id], false))
                        })
                        .collect();
                    Stage::Calls {
                        work,
                        singles: true,
                        again,
                        next,
                    }
                } else {
                    let again = if singles { before } else { again };
                    if self.f.is_sweep() {
                        if next.is_empty() {
                            Stage::Done
                        } else {
                            Stage::Pages(next)
                        }
                    } else if again.is_empty() {
                        Stage::Done
                    } else {
                        Stage::Heads(again)
                    }
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
        let mut work = Vec::new();
        for (&i, reply) in slots.iter().zip(replies) {
            let members = match reply.and_then(|r| parse_members(&r)) {
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
            let snapshot = Snapshot {
                now_ms: st.now_ms,
                members,
                limit: self.limit,
            };
            let plan = plan(&snapshot, &st.tracker, st.settings.batch);
            let slot = &mut st.slots[i];
            slot.dirty = false;
            slot.next_due = plan.next_due_ms;
            if plan.skipped > 0 {
                // Due members in backoff: look again after an interval (each
                // look is a cycle of their backoff). No wake-up would come
                // for what is behind them: they stay the index's earliest.
                let at = st.now_ms + st.settings.interval_ms.max(1);
                slot.next_due = Some(slot.next_due.map_or(at, |d| d.min(at)));
            }
            if self.first {
                st.report.backlog += plan.due as u64;
                st.report.skipped += plan.skipped as u64;
            }
            if !plan.act.is_empty() {
                work.push((i, plan.act, plan.again));
            }
        }
        self.first = false;
        if work.is_empty() {
            Stage::Done
        } else {
            Stage::Calls {
                work,
                singles: false,
                again: Vec::new(),
                next: Vec::new(),
            }
        }
    }

    fn pages(
        &mut self,
        st: &mut State,
        cursors: &[(usize, String)],
        replies: Vec<Result<Reply, String>>,
    ) -> Stage {
        let (mut next, mut work) = (Vec::new(), Vec::new());
        for ((i, _), reply) in cursors.iter().zip(replies) {
            match reply.and_then(|r| parse_page(&r)) {
                Ok((cursor, ids)) => {
                    st.report.backlog += ids.len() as u64;
                    let ids: Vec<String> = ids
                        .into_iter()
                        .filter(|id| !st.tracker.is_skipped(id))
                        .collect();
                    for chunk in ids.chunks(st.settings.batch.max(1)) {
                        work.push((*i, chunk.to_vec(), false));
                    }
                    if cursor != "0" {
                        next.push((*i, cursor));
                    }
                }
                Err(error) => {
                    st.report.errors += 1;
                    st.report.notices.push(Notice::ReadFailed {
                        partition: st.partition(*i).index,
                        error,
                    });
                }
            }
        }
        if !work.is_empty() {
            Stage::Calls {
                work,
                singles: false,
                again: Vec::new(),
                next,
            }
        } else if next.is_empty() {
            Stage::Done
        } else {
            Stage::Pages(next)
        }
    }

    /// Take in one round of batch results; returns the slots to run again at
    /// once and the failed batches to split.
    fn absorb(
        &self,
        st: &mut State,
        work: &[Work],
        results: Vec<Result<Reply, String>>,
    ) -> (Vec<usize>, Vec<Work>) {
        let f = self.f;
        let now = st.now_ms;
        let (mut again, mut split) = (Vec::new(), Vec::new());
        for ((slot, ids, more), r) in work.iter().zip(results) {
            let outcome: Result<BatchOutcome, String> = r.and_then(|reply| {
                contract::decode_batch(f.function(), &reply).map_err(|e| e.to_string())
            });
            match outcome {
                Ok(out) => {
                    let report = &mut st.report;
                    report.acted += u64::from(out.acted);
                    report.repaired += u64::from(out.repaired);
                    report.malformed += u64::from(out.malformed);
                    let exceptions: HashMap<&str, &ItemResult> = out
                        .exceptions
                        .iter()
                        .map(|(id, r)| (id.as_str(), r))
                        .collect();
                    let done = ItemResult::Done;
                    let results = ids.iter().map(|id| {
                        (
                            id.as_str(),
                            exceptions.get(id.as_str()).copied().unwrap_or(&done),
                        )
                    });
                    let entered = record_results(&mut st.tracker, results);
                    let failed = out
                        .exceptions
                        .iter()
                        .filter(|(_, r)| matches!(r, ItemResult::Failed(_)))
                        .count();
                    if failed > 0 {
                        st.report.errors += failed as u64;
                        st.report.notices.push(Notice::MembersFailed {
                            failed,
                            entered_backoff: entered,
                        });
                        // Failed members are still due: try them again next cycle.
                        st.retry_soon(*slot);
                    }
                    if out.malformed > 0 {
                        st.report.notices.push(Notice::Malformed(out.malformed));
                    }
                    if let (Some(d), false) = (out.next_due_ms, f.is_sweep()) {
                        if d > now {
                            let s = &mut st.slots[*slot];
                            s.next_due = Some(s.next_due.map_or(d, |x| x.min(d)));
                        }
                    }
                    if *more {
                        again.push(*slot);
                    }
                }
                Err(error) => {
                    st.report.errors += 1;
                    st.report.notices.push(Notice::BatchFailed {
                        partition: st.partition(*slot).index,
                        error,
                        batch: ids.len(),
                    });
                    if ids.len() > 1 {
                        // Find the member at fault: retry each on its own.
                        split.push((*slot, ids.clone(), *more));
                    } else {
                        for id in ids {
                            st.tracker.record_failure(id);
                        }
                        st.retry_soon(*slot);
                    }
                }
            }
        }
        (again, split)
    }
}
