//! Which (lane, partition) pairs have eligible work, as far as this worker
//! knows: learnt from the data plane's `ff:ready` announcements (a lane's index
//! in a partition went from empty to non-empty; parsed by
//! [`ff_core::scan::ReadyMessage`]) and from full looks at every partition (at
//! start, after a resubscribe, and as a slow fallback).

use ff_core::Lane;
use std::collections::BTreeMap;

/// The partitions to claim from next, per lane, in a rotating order so no
/// partition starves. Each entry counts its announcements: a claim round
/// that found a partition exhausted removes it only if no announcement came
/// meanwhile (the work announced may have arrived just after the claim ran
/// on the server, its message just before the claim's reply).
#[derive(Debug, Default)]
pub(crate) struct ReadySet {
    set: BTreeMap<(usize, u16), u64>,
    cursor: Option<(usize, u16)>,
}

/// A (lane, partition) handed out by [`ReadySet::next`], with the count of
/// announcements it had then.
pub(crate) type Pick = (usize, u16, u64);

impl ReadySet {
    pub(crate) fn insert(&mut self, lane: usize, partition: u16) {
        *self.set.entry((lane, partition)).or_default() += 1;
    }

    /// Forget an entry a claim round found exhausted, unless it was
    /// announced again since it was picked.
    pub(crate) fn exhausted(&mut self, (lane, partition, seen): Pick) {
        if self.set.get(&(lane, partition)) == Some(&seen) {
            self.set.remove(&(lane, partition));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Up to `n` entries, continuing after the last one handed out.
    pub(crate) fn next(&mut self, n: usize) -> Vec<Pick> {
        let start = self.cursor;
        let after = start.map_or_else(
            || self.set.range(..),
            |c| {
                self.set
                    .range((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
            },
        );
        let mut out: Vec<Pick> = after.take(n).map(|(&(l, p), &g)| (l, p, g)).collect();
        if out.len() < n {
            for (&(l, p), &g) in self.set.iter() {
                if out.len() >= n || out.iter().any(|o| (o.0, o.1) == (l, p)) {
                    break;
                }
                out.push((l, p, g));
            }
        }
        self.cursor = out.last().map(|&(l, p, _)| (l, p));
        out
    }
}

pub(crate) fn lane_index(lanes: &[Lane], name: &str) -> Option<usize> {
    lanes.iter().position(|l| l.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates() {
        let mut r = ReadySet::default();
        for p in [1, 2, 3] {
            r.insert(0, p);
        }
        assert_eq!(r.next(2), vec![(0, 1, 1), (0, 2, 1)]);
        assert_eq!(r.next(2), vec![(0, 3, 1), (0, 1, 1)]);
        r.exhausted((0, 1, 1));
        assert_eq!(r.next(5), vec![(0, 2, 1), (0, 3, 1)]);
    }

    /// Found exhausted by a claim that ran before new work arrived, whose
    /// announcement came in before the claim's reply: it stays.
    #[test]
    fn an_announcement_during_a_claim_keeps_the_partition() {
        let mut r = ReadySet::default();
        r.insert(0, 7);
        let picked = r.next(1)[0];
        r.insert(0, 7);
        r.exhausted(picked);
        assert_eq!(r.next(1), vec![(0, 7, 2)]);
        r.exhausted((0, 7, 2));
        assert!(r.is_empty());
    }
}
