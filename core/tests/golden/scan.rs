//! `contract::scan`: the scanners' batch calls and the partition heads.

use crate::support::*;
use ff_core::contract::scan::*;
use ff_core::keys::PartitionKeys;
use ff_core::scan::ItemResult;
use ff_core::{Namespace, Partition, PartitionFamily, TagName};

#[test]
fn batch_functions_name_their_function_and_index() {
    let p = Partition::new(PartitionFamily::Flow, 1);
    let keys = PartitionKeys::new(p);
    let want = [
        ("ff_promote_delayed", "delayed"),
        ("ff_reclaim_expired", "lease_expiry"),
        ("ff_expire_attempts", "attempt_timeout"),
        ("ff_expire_deadlines", "deadline"),
        ("ff_purge_retained", "terminal"),
        ("ff_reconcile_indexes", "all"),
        ("ff_flow_reconcile", "flow_work"),
        ("ff_reconcile_dependencies", "waiting_children"),
        ("ff_project_flows", "flows"),
        ("ff_expire_suspensions", "suspension_timeout"),
        ("ff_expire_waitpoints", "pending_waitpoints"),
    ];
    for (f, (function, index)) in BatchFunction::ALL.into_iter().zip(want) {
        assert_eq!(f.function(), function);
        assert_eq!(f.index_name(), index);
        assert_eq!(f.index(&keys), format!("ff:idx:{{fp:1}}:{index}"));
        assert_eq!(f.is_sweep(), index == "all");
    }
}

#[test]
fn batch_call_carries_the_filter() {
    let p = Partition::new(PartitionFamily::Flow, 3);
    let ids = vec!["m1".to_owned(), "m2".to_owned()];
    assert_call(
        &batch(
            BatchFunction::PromoteDelayed,
            p,
            &ScannerFilter::default(),
            &ids,
        ),
        "ff_promote_delayed",
        &["ff:idx:{fp:3}:delayed"],
        &["", "", "", "m1", "m2"],
        false,
    );
    let f = ScannerFilter {
        namespace: Some(Namespace::new("shop").unwrap()),
        instance_tag: Some((TagName::new("region").unwrap(), "eu".into())),
    };
    assert_call(
        &batch(BatchFunction::PurgeRetained, p, &f, &[]),
        "ff_purge_retained",
        &["ff:idx:{fp:3}:terminal"],
        &["shop", "region", "eu"],
        false,
    );
}

#[test]
fn batch_reply() {
    let r = decode_batch(
        "ff_promote_delayed",
        &ok(vec![
            i(5),
            i(2),
            i(1234),
            b("a"),
            b("filtered"),
            b("b"),
            b("malformed"),
            b("c"),
            b("stale_lease"),
            b("d"),
            b("malformed"),
        ]),
    )
    .unwrap();
    assert_eq!(
        r,
        BatchOutcome {
            acted: 5,
            repaired: 2,
            next_due_ms: Some(1234),
            exceptions: vec![
                ("a".into(), ItemResult::Filtered),
                ("b".into(), ItemResult::Done),
                ("c".into(), ItemResult::Failed("stale_lease".into())),
                ("d".into(), ItemResult::Done),
            ],
            malformed: 2,
        }
    );
    assert_eq!(
        decode_batch("f", &ok(vec![i(0), i(0), i(-1)]))
            .unwrap()
            .next_due_ms,
        None
    );
    assert_decode_error(decode_batch("f", &ok(vec![i(-1), i(0), i(0)])));
    assert_decode_error(decode_batch("f", &ok(vec![i(0), i(-1), i(0)])));
    assert_decode_error(decode_batch("f", &ok(vec![i(0), i(0), i(0), b("a")])));
}

#[test]
fn partition_heads_call_and_reply() {
    let p = Partition::new(PartitionFamily::Flow, 2);
    let c = partition_heads(p);
    assert_call(
        &c,
        "ff_partition_heads",
        &["ff:idx:{fp:2}:all"],
        &HEAD_INDEXES,
        true,
    );
    assert_eq!(HEAD_INDEXES.len(), 14);
    let mut items: Vec<_> = (0..14)
        .map(|n| i(if n % 2 == 0 { n * 10 } else { -1 }))
        .collect();
    let heads = decode_partition_heads(&ok(items.clone())).unwrap();
    assert_eq!(heads.len(), 14);
    for (n, (name, head)) in heads.into_iter().enumerate() {
        assert_eq!(name, HEAD_INDEXES[n]);
        assert_eq!(head, (n % 2 == 0).then_some(n as u64 * 10));
    }
    items.push(i(0));
    assert_decode_error(decode_partition_heads(&ok(items)));
    assert_decode_error(decode_partition_heads(&ok(vec![i(0)])));
}
