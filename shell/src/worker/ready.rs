//! Which (lane, partition) pairs have eligible work, as far as this worker
//! knows: learnt from the data plane's `ff:ready` announcements (a lane's index
//! in a partition went from empty to non-empty; parsed by
//! [`ff_core::scan::ReadyMessage`]) and from full looks at every partition (at
//! start, after a resubscribe, and as a slow fallback).

use ff_core::Lane;
use std::collections::BTreeSet;

/// The partitions to claim from next, per lane, in a rotating order so no
/// partition starves.
#[derive(Debug, Default)]
pub(crate) struct ReadySet {
    set: BTreeSet<(usize, u16)>,
    cursor: Option<(usize, u16)>,
}

impl ReadySet {
    pub(crate) fn insert(&mut self, lane: usize, partition: u16) {
        self.set.insert((lane, partition));
    }

    pub(crate) fn remove(&mut self, lane: usize, partition: u16) {
        self.set.remove(&(lane, partition));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Up to `n` entries, continuing after the last one handed out.
    pub(crate) fn next(&mut self, n: usize) -> Vec<(usize, u16)> {
        let start = self.cursor;
        let after = start.map_or_else(
            || self.set.range(..),
            |c| {
                self.set
                    .range((std::ops::Bound::Excluded(c), std::ops::Bound::Unbounded))
            },
        );
        let mut out: Vec<(usize, u16)> = after.take(n).copied().collect();
        if out.len() < n {
            for e in self.set.iter() {
                if out.len() >= n || out.contains(e) {
                    break;
                }
                out.push(*e);
            }
        }
        self.cursor = out.last().copied();
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
        assert_eq!(r.next(2), vec![(0, 1), (0, 2)]);
        assert_eq!(r.next(2), vec![(0, 3), (0, 1)]);
        r.remove(0, 1);
        assert_eq!(r.next(5), vec![(0, 2), (0, 3)]);
    }
}
