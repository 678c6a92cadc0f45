//! Partition ownership between engine replicas: which partitions this replica
//! should hold, given what Valkey says (the live members, the leases, the
//! server time).
//!
//! Every replica heartbeats its membership and renews the leases it holds in
//! one call (`lua/ownership.lua`); after each call it hands the returned
//! [`View`] to [`decide`], which says what to claim and what to hand back.
//! The target is a fair share: the live members sorted by id, each gets
//! `n / k` partitions and the first `n % k` one more, so the targets sum to
//! `n` and every replica computes the same targets from the same view. A
//! replica over its target releases its extras (someone is then under theirs);
//! a replica under its target claims free partitions — never held, released,
//! or whose lease expired (its owner died or was cut off). Which partitions a
//! replica prefers is rendezvous hashing of (member, partition), so replicas
//! rarely race for the same free partition and a rebalance moves few.
//!
//! The Lua re-checks every claim (free or expired at the server's time) and
//! renews only the caller's own live leases, so a stale view can only make a
//! claim fail, never take a live lease from its owner.

use std::collections::BTreeMap;

/// One partition's lease as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Empty when the last owner released it.
    pub owner: String,
    /// Bumped each time the partition is claimed: a replica that sees a new
    /// epoch for a partition it held knows it lost it in between.
    pub epoch: u64,
    /// Server ms; the lease is free from this time on.
    pub expires_ms: u64,
}

impl Lease {
    /// Held by someone at `now_ms`.
    pub fn is_live(&self, now_ms: u64) -> bool {
        !self.owner.is_empty() && self.expires_ms > now_ms
    }

    /// Live and held by `member`.
    pub fn is_held_by(&self, member: &str, now_ms: u64) -> bool {
        self.is_live(now_ms) && self.owner == member
    }
}

/// Ownership as one call read it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// Server time of the read.
    pub now_ms: u64,
    /// Members and their heartbeat expiry (server ms); expired ones are dead.
    pub members: Vec<(String, u64)>,
    /// Partition index → its lease (absent: never claimed).
    pub leases: BTreeMap<u16, Lease>,
}

impl View {
    /// Live members, sorted by id (the order fair shares are handed out in).
    pub fn live_members(&self) -> Vec<&str> {
        let mut live: Vec<&str> = self
            .members
            .iter()
            .filter(|(_, exp)| *exp > self.now_ms)
            .map(|(m, _)| m.as_str())
            .collect();
        live.sort_unstable();
        live.dedup();
        live
    }

    /// Partitions below `partitions` whose lease `member` holds, with their epochs.
    pub fn held_by(&self, member: &str, partitions: u16) -> Vec<(u16, &Lease)> {
        self.leases
            .iter()
            .filter(|(p, l)| **p < partitions && l.is_held_by(member, self.now_ms))
            .map(|(p, l)| (*p, l))
            .collect()
    }

    /// The live owner of a partition, if any.
    pub fn owner_of(&self, partition: u16) -> Option<&str> {
        self.leases
            .get(&partition)
            .filter(|l| l.is_live(self.now_ms))
            .map(|l| l.owner.as_str())
    }
}

/// What to change at the next call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Partitions to take (free, expired, or the fair share's).
    pub claim: Vec<u16>,
    /// Partitions to hand back (above the fair share).
    pub release: Vec<u16>,
}

impl Decision {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.claim.is_empty() && self.release.is_empty()
    }
}

/// The fair share of the member at `rank` among `members` live ones.
pub fn fair_share(partitions: u16, members: usize, rank: usize) -> usize {
    if members == 0 {
        return 0;
    }
    let n = partitions as usize;
    n / members + usize::from(rank < n % members)
}

/// How much `member` wants `partition` (rendezvous hashing): each replica
/// ranks the partitions differently, so free ones are spread without talk.
pub fn preference(member: &str, partition: u16) -> u64 {
    // FNV-1a over the member id and the partition, then a final mix so that
    // nearby partitions do not get nearby weights.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in member.bytes().chain(partition.to_be_bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// `me`'s fair share in `view`; `me` counts as live even if the view
/// predates its first heartbeat.
pub fn target(view: &View, me: &str, partitions: u16) -> usize {
    let mut live = view.live_members();
    if let Err(at) = live.binary_search(&me) {
        live.insert(at, me);
    }
    let rank = live.binary_search(&me).unwrap_or(0);
    fair_share(partitions, live.len(), rank)
}

/// What `me` should claim and release, given `view` and the partition count.
pub fn decide(view: &View, me: &str, partitions: u16) -> Decision {
    let target = target(view, me, partitions);
    let mut mine: Vec<u16> = view
        .held_by(me, partitions)
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    let mut d = Decision::default();
    if mine.len() > target {
        // Hand back the ones this replica cares least about.
        mine.sort_by_key(|&p| std::cmp::Reverse(preference(me, p)));
        d.release = mine.split_off(target);
        d.release.sort_unstable();
    } else if mine.len() < target {
        let mut free: Vec<u16> = (0..partitions)
            .filter(|p| view.owner_of(*p).is_none())
            .collect();
        free.sort_by_key(|&p| std::cmp::Reverse(preference(me, p)));
        free.truncate(target - mine.len());
        free.sort_unstable();
        d.claim = free;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(owner: &str, epoch: u64, expires_ms: u64) -> Lease {
        Lease {
            owner: owner.into(),
            epoch,
            expires_ms,
        }
    }

    #[test]
    fn a_lone_replica_claims_everything() {
        let v = View {
            now_ms: 1_000,
            ..Default::default()
        };
        let d = decide(&v, "a", 8);
        assert_eq!(d.claim, (0..8).collect::<Vec<_>>());
        assert!(d.release.is_empty());
    }

    #[test]
    fn a_newcomer_makes_the_holder_release_half() {
        let mut v = View {
            now_ms: 1_000,
            members: vec![("a".into(), 5_000), ("b".into(), 5_000)],
            ..Default::default()
        };
        for p in 0..8 {
            v.leases.insert(p, lease("a", 1, 5_000));
        }
        let d = decide(&v, "a", 8);
        assert_eq!(d.release.len(), 4);
        assert!(d.claim.is_empty());
        // b sees nothing free yet: it waits for a's release.
        assert!(decide(&v, "b", 8).is_empty());
    }

    #[test]
    fn expired_leases_of_a_dead_member_are_taken_over() {
        let mut v = View {
            now_ms: 10_000,
            members: vec![("a".into(), 20_000), ("dead".into(), 9_000)],
            ..Default::default()
        };
        for p in 0..4 {
            v.leases.insert(p, lease("dead", 3, 9_500));
        }
        for p in 4..8 {
            v.leases.insert(p, lease("a", 1, 20_000));
        }
        assert_eq!(decide(&v, "a", 8).claim, vec![0, 1, 2, 3]);
    }
}
