//! A sorted set: members ordered by score, ties by member bytes (as Redis
//! orders them), with lookups by member.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

/// A score that is never NaN, so it has a total order. `-0` is stored as `0`
/// (what a small Redis sorted set, listpack-encoded, gives back).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(f64);

impl Score {
    pub fn new(x: f64) -> Option<Self> {
        if x.is_nan() {
            None
        } else if x == 0.0 {
            Some(Score(0.0))
        } else {
            Some(Score(x))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// One end of a score range: `-inf`, `(5`, `5`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreBound {
    pub value: f64,
    pub exclusive: bool,
}

impl ScoreBound {
    fn admits_from_below(&self, s: f64) -> bool {
        if self.exclusive {
            s > self.value
        } else {
            s >= self.value
        }
    }

    fn admits_from_above(&self, s: f64) -> bool {
        if self.exclusive {
            s < self.value
        } else {
            s <= self.value
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZSet {
    scores: BTreeMap<Vec<u8>, Score>,
    order: BTreeSet<(Score, Vec<u8>)>,
}

impl ZSet {
    pub fn len(&self) -> usize {
        self.scores.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).map(|s| s.get())
    }

    /// Add or update; true when the member is new.
    pub fn insert(&mut self, member: &[u8], score: Score) -> bool {
        match self.scores.insert(member.to_vec(), score) {
            Some(old) => {
                if old != score {
                    self.order.remove(&(old, member.to_vec()));
                    self.order.insert((score, member.to_vec()));
                }
                false
            }
            None => {
                self.order.insert((score, member.to_vec()));
                true
            }
        }
    }

    pub fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(old) => {
                self.order.remove(&(old, member.to_vec()));
                true
            }
            None => false,
        }
    }

    /// Members in order (or reverse order), with scores.
    pub fn iter(&self, rev: bool) -> Box<dyn Iterator<Item = (&[u8], f64)> + '_> {
        let it = self.order.iter().map(|(s, m)| (m.as_slice(), s.get()));
        if rev {
            Box::new(it.rev())
        } else {
            Box::new(it)
        }
    }

    /// ZRANGE by index: `start`/`stop` may be negative (from the end).
    pub fn range_by_index(&self, start: i64, stop: i64, rev: bool) -> Vec<(&[u8], f64)> {
        let len = self.len() as i64;
        let mut start = if start < 0 { len + start } else { start };
        let mut stop = if stop < 0 { len + stop } else { stop };
        if start < 0 {
            start = 0;
        }
        if start > stop || start >= len {
            return Vec::new();
        }
        if stop >= len {
            stop = len - 1;
        }
        self.iter(rev)
            .skip(start as usize)
            .take((stop - start + 1) as usize)
            .collect()
    }

    /// Members with `min <= score <= max` (bounds may be exclusive), in order
    /// (or, with `rev`, from `max` down to `min`), after skipping `offset`
    /// and keeping at most `count` (negative: all).
    pub fn range_by_score(
        &self,
        min: ScoreBound,
        max: ScoreBound,
        rev: bool,
        offset: usize,
        count: Option<usize>,
    ) -> Vec<(&[u8], f64)> {
        let lo = Score::new(min.value).unwrap_or(Score(f64::NEG_INFINITY));
        let hi = Score::new(max.value).unwrap_or(Score(f64::INFINITY));
        if lo > hi {
            return Vec::new();
        }
        let in_range = self
            .order
            .range((Bound::Included((lo, Vec::new())), Bound::Unbounded))
            .skip_while(|(s, _)| !min.admits_from_below(s.get()))
            .take_while(|(s, _)| max.admits_from_above(s.get()))
            .map(|(s, m)| (m.as_slice(), s.get()));
        let count = count.unwrap_or(usize::MAX);
        if rev {
            let all: Vec<_> = in_range.collect();
            all.into_iter().rev().skip(offset).take(count).collect()
        } else {
            in_range.skip(offset).take(count).collect()
        }
    }

    /// How many members score within the bounds.
    pub fn count_in(&self, min: ScoreBound, max: ScoreBound) -> usize {
        self.range_by_score(min, max, false, 0, None).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zs(items: &[(f64, &str)]) -> ZSet {
        let mut z = ZSet::default();
        for (s, m) in items {
            z.insert(m.as_bytes(), Score::new(*s).unwrap());
        }
        z
    }

    fn names(v: Vec<(&[u8], f64)>) -> Vec<String> {
        v.into_iter()
            .map(|(m, _)| String::from_utf8(m.to_vec()).unwrap())
            .collect()
    }

    fn incl(v: f64) -> ScoreBound {
        ScoreBound {
            value: v,
            exclusive: false,
        }
    }

    fn excl(v: f64) -> ScoreBound {
        ScoreBound {
            value: v,
            exclusive: true,
        }
    }

    #[test]
    fn order_by_score_then_member_bytes() {
        let z = zs(&[(3.0, "c"), (1.0, "a"), (3.0, "bb"), (3.0, "ba"), (2.0, "b")]);
        assert_eq!(
            names(z.range_by_index(0, -1, false)),
            ["a", "b", "ba", "bb", "c"]
        );
        assert_eq!(
            names(z.range_by_index(0, -1, true)),
            ["c", "bb", "ba", "b", "a"]
        );
    }

    #[test]
    fn update_moves_the_member() {
        let mut z = zs(&[(1.0, "a"), (2.0, "b")]);
        assert!(!z.insert(b"a", Score::new(5.0).unwrap()));
        assert_eq!(names(z.range_by_index(0, -1, false)), ["b", "a"]);
        assert_eq!(z.score(b"a"), Some(5.0));
        assert!(z.remove(b"a"));
        assert!(!z.remove(b"a"));
        assert_eq!(z.len(), 1);
    }

    #[test]
    fn index_ranges_like_redis() {
        let z = zs(&[(1.0, "a"), (2.0, "b"), (3.0, "c"), (3.0, "ba"), (3.0, "bb")]);
        assert_eq!(names(z.range_by_index(-2, -1, false)), ["bb", "c"]);
        assert_eq!(names(z.range_by_index(-100, 100, false)).len(), 5);
        assert!(z.range_by_index(2, 1, false).is_empty());
        assert!(z.range_by_index(1, -100, false).is_empty());
        assert!(z.range_by_index(5, 10, false).is_empty());
        assert_eq!(names(z.range_by_index(0, 0, false)), ["a"]);
    }

    #[test]
    fn score_ranges_like_redis() {
        let z = zs(&[(1.0, "a"), (2.0, "b"), (3.0, "c"), (3.0, "ba"), (3.0, "bb")]);
        let all = |rev| {
            names(z.range_by_score(incl(f64::NEG_INFINITY), incl(f64::INFINITY), rev, 0, None))
        };
        assert_eq!(all(false), ["a", "b", "ba", "bb", "c"]);
        assert_eq!(all(true), ["c", "bb", "ba", "b", "a"]);
        assert_eq!(
            names(z.range_by_score(excl(1.0), incl(3.0), false, 0, None)),
            ["b", "ba", "bb", "c"]
        );
        assert_eq!(
            names(z.range_by_score(excl(1.0), excl(3.0), false, 0, None)),
            ["b"]
        );
        assert_eq!(
            names(z.range_by_score(incl(1.0), incl(3.0), false, 1, Some(2))),
            ["b", "ba"]
        );
        assert_eq!(
            names(z.range_by_score(incl(1.0), excl(3.0), true, 0, None)),
            ["b", "a"]
        );
        assert_eq!(
            names(z.range_by_score(incl(2.0), incl(3.0), true, 1, Some(2))),
            ["bb", "ba"]
        );
        assert!(z
            .range_by_score(incl(3.0), incl(1.0), false, 0, None)
            .is_empty());
        assert_eq!(z.count_in(incl(3.0), incl(3.0)), 3);
        assert_eq!(z.count_in(excl(f64::NEG_INFINITY), excl(f64::INFINITY)), 5);
    }

    #[test]
    fn infinities_and_negative_zero() {
        let z = zs(&[
            (f64::INFINITY, "top"),
            (f64::NEG_INFINITY, "bottom"),
            (-0.0, "zero"),
        ]);
        assert_eq!(
            names(z.range_by_index(0, -1, false)),
            ["bottom", "zero", "top"]
        );
        assert_eq!(z.score(b"zero").map(f64::is_sign_negative), Some(false));
        assert_eq!(
            names(z.range_by_score(incl(f64::INFINITY), incl(f64::INFINITY), false, 0, None)),
            ["top"]
        );
        assert!(Score::new(f64::NAN).is_none());
    }
}
