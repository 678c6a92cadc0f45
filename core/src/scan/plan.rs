//! Scanner decisions over snapshots.
//!
//! The shell reads a snapshot of one partition's index — its earliest members
//! with their scores, and the server time — and [`plan`] decides which members
//! to act on now, which to leave (failure backoff, another engine's filter),
//! whether more is due right away, and when to look again. After the action the
//! shell feeds the per-member results back with [`record_results`].

use crate::tracker::FailureTracker;

/// One index member and its score (a due time in server ms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member (an execution id).
    pub id: String,
    /// Its score: a due time in server ms.
    pub score: u64,
}

/// The head of one index of one partition, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Server time of the read, in ms.
    pub now_ms: u64,
    /// Members in score order (the read's `LIMIT`).
    pub members: Vec<Member>,
    /// The read's limit: a full read may have left members unread.
    pub limit: usize,
}

/// What `plan` decided for one snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// Members to act on now, in due order (at most the batch size).
    pub act: Vec<String>,
    /// Due members left aside (failure backoff or another engine's filter).
    pub skipped: usize,
    /// Due members in the snapshot (the backlog this index shows).
    pub due: usize,
    /// More is due than this batch takes: run again without sleeping.
    pub again: bool,
    /// The earliest future score seen, if any (server ms).
    pub next_due_ms: Option<u64>,
}

/// How many members to read so that `batch` actionable ones fit even when
/// some due members are in backoff (they would otherwise crowd out the rest).
pub fn read_limit(batch: usize, tracker: &FailureTracker) -> usize {
    batch + tracker.skipped_count() + 1
}

/// Decide what to do with one snapshot.
pub fn plan(snapshot: &Snapshot, tracker: &FailureTracker, batch: usize) -> Plan {
    let mut p = Plan::default();
    for m in &snapshot.members {
        if m.score > snapshot.now_ms {
            p.next_due_ms = Some(m.score);
            break;
        }
        p.due += 1;
        if tracker.is_skipped(&m.id) {
            p.skipped += 1;
        } else if p.act.len() < batch {
            p.act.push(m.id.clone());
        } else {
            p.again = true;
        }
    }
    // Every member read was due and the read was full: there may be more.
    if p.next_due_ms.is_none() && snapshot.members.len() >= snapshot.limit && !p.act.is_empty() {
        p.again = true;
    }
    p
}

/// What happened to one member the shell acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    /// Acted on, or found already handled (stale entry repaired): either way done.
    Done,
    /// Outside this engine's filter: leave it for the engine it belongs to.
    Filtered,
    /// The action failed for this member.
    Failed(String),
}

/// Feed one batch's results back into the tracker. Returns how many members
/// entered failure backoff with this batch.
pub fn record_results<'a>(
    tracker: &mut FailureTracker,
    results: impl IntoIterator<Item = (&'a str, &'a ItemResult)>,
) -> usize {
    let mut entered = 0;
    for (id, r) in results {
        match r {
            ItemResult::Done => tracker.record_success(id),
            ItemResult::Filtered => tracker.set_aside(id),
            ItemResult::Failed(_) => entered += usize::from(tracker.record_failure(id)),
        }
    }
    entered
}

/// When to look at a partition again: its next due time, but never later than
/// `now + interval` (all in server ms).
pub fn next_wake(next_due_ms: Option<u64>, now_ms: u64, interval_ms: u64) -> u64 {
    let cap = now_ms.saturating_add(interval_ms);
    next_due_ms.map_or(cap, |d| d.min(cap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn snap(now: u64, scores: &[u64], limit: usize) -> Snapshot {
        Snapshot {
            now_ms: now,
            members: scores
                .iter()
                .enumerate()
                .map(|(i, &s)| Member {
                    id: format!("m{i}"),
                    score: s,
                })
                .collect(),
            limit,
        }
    }

    #[test]
    fn acts_on_due_members_up_to_the_batch() {
        let p = plan(
            &snap(100, &[10, 20, 30, 150], 10),
            &FailureTracker::default(),
            2,
        );
        assert_eq!(p.act, vec!["m0", "m1"]);
        assert!(p.again);
        assert_eq!(p.due, 3);
        assert_eq!(p.next_due_ms, Some(150));
    }

    #[test]
    fn skipped_members_do_not_take_batch_slots() {
        let mut t = FailureTracker::default();
        for _ in 0..3 {
            t.record_failure("m0");
        }
        let limit = read_limit(2, &t);
        assert_eq!(limit, 4);
        let p = plan(&snap(100, &[10, 20, 30, 40], limit), &t, 2);
        assert_eq!(p.act, vec!["m1", "m2"]);
        assert_eq!(p.skipped, 1);
        assert!(p.again, "m3 is due and unread capacity remains");
    }

    #[test]
    fn a_full_read_of_due_members_asks_for_another_round() {
        let p = plan(&snap(100, &[1, 2, 3], 3), &FailureTracker::default(), 10);
        assert_eq!(p.act.len(), 3);
        assert!(p.again);
        let p = plan(&snap(100, &[1, 2], 3), &FailureTracker::default(), 10);
        assert!(!p.again);
        assert_eq!(p.next_due_ms, None);
    }

    proptest! {
        #[test]
        fn plan_laws(now in 0u64..1000, mut scores in prop::collection::vec(0u64..2000, 0..50), batch in 1usize..20, bad in prop::collection::vec(0usize..50, 0..10)) {
            scores.sort();
            let mut t = FailureTracker::default();
            for b in &bad { for _ in 0..3 { t.record_failure(&format!("m{b}")); } }
            let limit = scores.len().max(1);
            let s = snap(now, &scores, limit);
            let p = plan(&s, &t, batch);
            prop_assert!(p.act.len() <= batch);
            let due: Vec<&Member> = s.members.iter().filter(|m| m.score <= now).collect();
            prop_assert_eq!(p.due, due.len());
            for id in &p.act {
                prop_assert!(!t.is_skipped(id));
                prop_assert!(due.iter().any(|m| &m.id == id));
            }
            // The earliest actionable members are taken, in order.
            let expect: Vec<String> = due.iter().filter(|m| !t.is_skipped(&m.id)).take(batch).map(|m| m.id.clone()).collect();
            prop_assert_eq!(&p.act, &expect);
            prop_assert_eq!(p.next_due_ms, s.members.iter().map(|m| m.score).find(|&sc| sc > now));
            let w = next_wake(p.next_due_ms, now, 500);
            prop_assert!(w <= now + 500);
            if let Some(d) = p.next_due_ms { prop_assert!(w <= d); }
        }
    }
}
