//! Partition ownership decisions: safety of one decision, and convergence of
//! replicas that follow them against a model of `lua/ownership.lua`.

use ff_core::ownership::{decide, fair_share, Lease, View};
use proptest::prelude::*;
use std::collections::BTreeMap;

const TTL: u64 = 3_000;

/// The model of the Lua: members' heartbeats and partition leases.
#[derive(Debug, Clone, Default)]
struct Model {
    now: u64,
    members: BTreeMap<String, u64>,
    leases: BTreeMap<u16, Lease>,
}

impl Model {
    fn view(&self) -> View {
        View {
            now_ms: self.now,
            members: self.members.iter().map(|(m, e)| (m.clone(), *e)).collect(),
            leases: self.leases.clone(),
        }
    }

    /// `ff_own_sync`, as the Lua does it.
    fn sync(&mut self, me: &str, claim: &[u16], release: &[u16]) -> View {
        let now = self.now;
        self.members.insert(me.to_owned(), now + TTL);
        self.members.retain(|_, e| *e > now);
        for p in release {
            if let Some(l) = self.leases.get_mut(p) {
                if l.is_held_by(me, now) {
                    l.owner.clear();
                    l.expires_ms = now;
                }
            }
        }
        for p in claim {
            let free = self.leases.get(p).is_none_or(|l| !l.is_live(now));
            if free {
                let epoch = self.leases.get(p).map_or(0, |l| l.epoch) + 1;
                self.leases.insert(
                    *p,
                    Lease {
                        owner: me.to_owned(),
                        epoch,
                        expires_ms: now + TTL,
                    },
                );
            }
        }
        for l in self.leases.values_mut() {
            if l.is_held_by(me, now) {
                l.expires_ms = now + TTL;
            }
        }
        self.view()
    }

    /// One heartbeat of a replica, as the engine does it.
    fn beat(&mut self, me: &str, n: u16) {
        let v = self.sync(me, &[], &[]);
        let d = decide(&v, me, n);
        if !d.is_empty() {
            self.sync(me, &d.claim, &d.release);
        }
    }
}

fn arb_view(n: u16) -> impl Strategy<Value = (View, String)> {
    let members = prop::collection::vec(("[a-e]", 0u64..2_000), 0..5);
    let leases = prop::collection::btree_map(
        0..n,
        ("[a-f]?", 1u64..5, 0u64..2_000).prop_map(|(owner, epoch, expires_ms)| Lease {
            owner,
            epoch,
            expires_ms,
        }),
        0..n as usize,
    );
    (members, leases, 0u64..2_000, "[a-e]").prop_map(|(members, leases, now_ms, me)| {
        (
            View {
                now_ms,
                members,
                leases,
            },
            me,
        )
    })
}

proptest! {
    #[test]
    fn fair_shares_sum_to_the_partition_count(n in 1u16..300, k in 1usize..9) {
        let shares: Vec<usize> = (0..k).map(|r| fair_share(n, k, r)).collect();
        prop_assert_eq!(shares.iter().sum::<usize>(), n as usize);
        prop_assert!(shares.iter().max().unwrap() - shares.iter().min().unwrap() <= 1);
    }

    /// A decision never claims a live lease, never releases one it does not
    /// hold, and lands exactly on the fair share when it can.
    #[test]
    fn a_decision_is_safe((view, me) in arb_view(24)) {
        let n = 24u16;
        let d = decide(&view, &me, n);
        let mut live = view.live_members();
        if !live.contains(&me.as_str()) { live.push(&me); live.sort_unstable(); }
        let rank = live.iter().position(|m| *m == me).unwrap();
        let target = fair_share(n, live.len(), rank);
        let mine = view.held_by(&me, n).len();
        prop_assert!(d.claim.is_empty() || d.release.is_empty());
        for p in &d.claim {
            prop_assert!(*p < n);
            prop_assert!(view.owner_of(*p).is_none(), "claims a live lease {}", p);
        }
        for p in &d.release {
            prop_assert_eq!(view.owner_of(*p), Some(me.as_str()));
        }
        prop_assert!(mine + d.claim.len() <= target.max(mine));
        if mine > target { prop_assert_eq!(mine - d.release.len(), target); }
        let free = (0..n).filter(|p| view.owner_of(*p).is_none()).count();
        if mine < target { prop_assert_eq!(d.claim.len(), (target - mine).min(free)); }
    }

    /// Replicas that join, leave silently and heartbeat in any order end, once
    /// the churn stops, with every partition held by exactly one live member
    /// and each member at its fair share.
    #[test]
    fn replicas_converge(
        n in 1u16..64,
        churn in prop::collection::vec((0usize..6, any::<bool>(), 0u64..1_500), 0..40),
        survivors in 1usize..5,
    ) {
        let names = ["a", "b", "c", "d", "e", "f"];
        let mut m = Model::default();
        let mut alive = [false; 6];
        // Churn: members beat, die silently or come back, time passes.
        for (who, beat, dt) in churn {
            m.now += dt;
            if beat {
                alive[who] = true;
                m.beat(names[who], n);
            } else {
                alive[who] = false;
            }
        }
        // Calm: the survivors beat every TTL/3 for a while; the rest stay dead.
        let live: Vec<&str> = names[..survivors].to_vec();
        for _ in 0..12 {
            m.now += TTL / 3;
            for who in &live {
                m.beat(who, n);
            }
        }
        let v = m.view();
        prop_assert_eq!(v.live_members(), live.clone());
        for p in 0..n {
            let owner = v.owner_of(p);
            prop_assert!(owner.is_some_and(|o| live.contains(&o)), "partition {} owned by {:?}", p, owner);
        }
        for (rank, who) in live.iter().enumerate() {
            prop_assert_eq!(v.held_by(who, n).len(), fair_share(n, live.len(), rank));
        }
    }

    /// Epochs only grow: a partition claimed again has a new epoch.
    #[test]
    fn epochs_grow(n in 1u16..16, steps in prop::collection::vec((0usize..3, 0u64..4_000), 1..40)) {
        let names = ["a", "b", "c"];
        let mut m = Model::default();
        let mut last: BTreeMap<u16, (String, u64)> = BTreeMap::new();
        for (who, dt) in steps {
            m.now += dt;
            m.beat(names[who], n);
            for (p, l) in &m.leases {
                if let Some((owner, epoch)) = last.get(p) {
                    prop_assert!(l.epoch >= *epoch);
                    if l.is_live(m.now) && *owner != l.owner { prop_assert!(l.epoch > *epoch); }
                }
                if l.is_live(m.now) { last.insert(*p, (l.owner.clone(), l.epoch)); }
            }
        }
    }
}
