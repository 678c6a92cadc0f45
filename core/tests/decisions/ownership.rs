//! Partition ownership: leases at their expiry boundary, fair shares, the
//! rendezvous preference (golden: replicas of different builds must rank
//! partitions alike), decisions, and the ownership calls.

use ff_core::contract::ownership::{self as own, Ring};
use ff_core::contract::CallError;
use ff_core::ownership::*;
use ff_core::reply::Reply;
use std::collections::BTreeMap;

fn lease(owner: &str, epoch: u64, expires_ms: u64) -> Lease {
    Lease {
        owner: owner.into(),
        epoch,
        expires_ms,
    }
}

#[test]
fn a_lease_is_live_until_its_expiry() {
    let l = lease("a", 1, 100);
    assert!(l.is_live(99));
    assert!(!l.is_live(100));
    assert!(l.is_held_by("a", 99));
    assert!(!l.is_held_by("b", 99));
    assert!(!l.is_held_by("a", 100));
    // Released: nobody's, whatever its expiry.
    assert!(!lease("", 1, 100).is_live(0));
}

#[test]
fn views() {
    let v = View {
        now_ms: 100,
        members: vec![
            ("c".into(), 200),
            ("a".into(), 101),
            ("dead".into(), 100),
            ("a".into(), 150),
        ],
        leases: BTreeMap::from([
            (0, lease("a", 1, 200)),
            (1, lease("c", 1, 100)),
            (2, lease("a", 2, 300)),
            (9, lease("a", 1, 300)),
        ]),
    };
    assert_eq!(v.live_members(), ["a", "c"]);
    let held: Vec<u16> = v.held_by("a", 9).into_iter().map(|(p, _)| p).collect();
    assert_eq!(held, [0, 2]);
    assert_eq!(v.held_by("a", 10).len(), 3);
    assert_eq!(v.held_by("a", 9)[1].1.epoch, 2);
    assert_eq!(v.owner_of(0), Some("a"));
    assert_eq!(v.owner_of(1), None);
    assert_eq!(v.owner_of(5), None);
}

#[test]
fn fair_shares() {
    assert_eq!(fair_share(8, 0, 0), 0);
    assert_eq!(
        (0..3).map(|r| fair_share(8, 3, r)).collect::<Vec<_>>(),
        [3, 3, 2]
    );
    assert_eq!(
        (0..3).map(|r| fair_share(9, 3, r)).collect::<Vec<_>>(),
        [3, 3, 3]
    );
    assert_eq!(
        (0..4).map(|r| fair_share(2, 4, r)).collect::<Vec<_>>(),
        [1, 1, 0, 0]
    );
    let v = View {
        now_ms: 10,
        members: vec![("b".into(), 20), ("c".into(), 20)],
        ..Default::default()
    };
    // `a` is not in the view yet: it counts itself, first in id order.
    assert_eq!(target(&v, "a", 8), 3);
    // The others see two members (a's first heartbeat is not in the view).
    assert_eq!(target(&v, "b", 8), 4);
    assert_eq!(target(&v, "c", 8), 4);
    assert_eq!(target(&v, "d", 8), 2);
}

#[test]
fn preference_is_these_exact_weights() {
    assert_eq!(preference("a", 0), 0xeadb40954efcec2a);
    assert_eq!(preference("a", 1), 0xeccfa6545a7b841d);
    assert_eq!(preference("engine-1", 7), 0x9fc6be0286c18557);
    assert_eq!(preference("", 0), 0x9bf1ace3400183e7);
}

#[test]
fn decisions_are_these_exact_partitions() {
    let mut v = View {
        now_ms: 1000,
        members: vec![("a".into(), 5000), ("b".into(), 5000)],
        ..Default::default()
    };
    for p in 0..8 {
        v.leases.insert(p, lease("a", 1, 5000));
    }
    // `a` keeps the four it prefers most and hands back the rest.
    let d = decide(&v, "a", 8);
    assert_eq!(
        d,
        Decision {
            claim: vec![],
            release: vec![2, 4, 6, 7]
        }
    );
    assert!(!d.is_empty());
    let v = View {
        now_ms: 1000,
        members: vec![("a".into(), 5000), ("b".into(), 5000), ("c".into(), 5000)],
        ..Default::default()
    };
    // Everything free: each claims its share, the ones it prefers most.
    assert_eq!(decide(&v, "a", 8).claim, [0, 1, 3]);
    assert_eq!(decide(&v, "b", 8).claim, [2, 3, 4]);
    assert_eq!(decide(&v, "c", 8).claim, [3, 6]);
    // At its share: nothing to do.
    let mut at = v.clone();
    for p in [0, 1, 3] {
        at.leases.insert(p, lease("a", 1, 5000));
    }
    assert!(decide(&at, "a", 8).is_empty());
    assert!(Decision::default().is_empty());
    assert!(!Decision {
        claim: vec![1],
        release: vec![]
    }
    .is_empty());
}

fn ok(items: Vec<Reply>) -> Reply {
    let mut v = vec![Reply::Int(1)];
    v.extend(items);
    Reply::Array(v)
}

#[test]
fn ownership_calls() {
    let r = Ring::default();
    let c = own::view(&r);
    assert_eq!(c.function, "ff_own_view");
    assert_eq!(c.keys, [own::MEMBERS_KEY, own::LEASES_KEY]);
    assert!(c.read_only);
    assert!(c.args.is_empty());
    let c = own::leave(&r, "e-1");
    assert_eq!(
        (c.function, c.args.clone()),
        ("ff_own_leave", vec![b"e-1".to_vec()])
    );
    assert!(!c.read_only);
    assert_eq!(own::decode_leave(&ok(vec![Reply::Int(3)])), Ok(3));
    assert!(matches!(
        own::decode_leave(&ok(vec![Reply::Int(-3)])),
        Err(CallError::Decode(_))
    ));
    assert_eq!(own::SYNC, "ff_own_sync");

    let reply = ok(vec![
        Reply::Int(1000),
        Reply::Int(2),
        Reply::bulk("a"),
        Reply::Int(5000),
        Reply::bulk("b"),
        Reply::Int(900),
        Reply::Int(3),
        Reply::bulk("a"),
        Reply::Int(7),
        Reply::Int(4000),
        Reply::Int(65535),
        Reply::bulk(""),
        Reply::Int(1),
        Reply::Int(0),
    ]);
    assert_eq!(
        own::decode_view("ff_own_view", &reply),
        Ok(View {
            now_ms: 1000,
            members: vec![("a".into(), 5000), ("b".into(), 900)],
            leases: BTreeMap::from([(3, lease("a", 7, 4000)), (65535, lease("", 1, 0))]),
        })
    );
    let bad = |items| {
        matches!(
            own::decode_view("ff_own_view", &ok(items)),
            Err(CallError::Decode(_))
        )
    };
    use Reply::Int;
    assert!(bad(vec![Int(-1), Int(0)]));
    assert!(bad(vec![Int(0), Int(-1)]));
    assert!(bad(vec![Int(0), Int(1), Reply::bulk("a"), Int(-5)]));
    assert!(bad(vec![
        Int(0),
        Int(0),
        Int(65536),
        Reply::bulk("a"),
        Int(1),
        Int(1)
    ]));
    assert!(bad(vec![
        Int(0),
        Int(0),
        Int(-1),
        Reply::bulk("a"),
        Int(1),
        Int(1)
    ]));
    assert!(bad(vec![
        Int(0),
        Int(0),
        Int(1),
        Reply::bulk("a"),
        Int(-1),
        Int(1)
    ]));
    assert!(bad(vec![
        Int(0),
        Int(0),
        Int(1),
        Reply::bulk("a"),
        Int(1),
        Int(-1)
    ]));
    assert!(bad(vec![Int(0), Int(2), Reply::bulk("a"), Int(1)]));
}
