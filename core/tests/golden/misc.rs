//! `contract` itself (the call builder and the reply envelope), the operator
//! and watch contracts, and the limits the Lua enforces.

use crate::support::*;
use ff_core::contract::execution::Lease;
use ff_core::contract::{limits, ok_fields, operator, watch, Call, CallError};
use ff_core::reply::Reply;
use ff_core::{ExecutionId, FfError, Lane, LeaseId, Partition, PartitionFamily};

#[test]
fn call_builder() {
    let c = Call::new("ff_x", vec!["k".into()]);
    assert_eq!((c.read_only, c.repeatable), (false, true));
    let c = c
        .arg(12)
        .arg("a")
        .arg_bytes(b"\xff\x00")
        .read_only()
        .not_repeatable();
    assert_eq!(c.function, "ff_x");
    assert_eq!(c.keys, ["k"]);
    assert_eq!(
        c.args,
        [b"12".to_vec(), b"a".to_vec(), b"\xff\x00".to_vec()]
    );
    assert!(c.read_only);
    assert!(!c.repeatable);
}

#[test]
fn reply_envelope() {
    let r = ok(vec![i(5)]);
    let mut f = ok_fields("f", &r).unwrap();
    assert_eq!(f.remaining(), 1);
    assert_eq!(f.int("x"), Ok(5));
    // A refusal with and without its detail.
    let r = Reply::Array(vec![i(0), b("not_active"), b("terminal")]);
    assert_eq!(
        ok_fields("f", &r).err(),
        Some(CallError::Rejected(FfError::NotActive("terminal".into())))
    );
    let r = Reply::Array(vec![i(0), b("not_active")]);
    assert_eq!(
        ok_fields("f", &r).err(),
        Some(CallError::Rejected(FfError::NotActive(String::new())))
    );
    assert_decode_error(ok_fields("f", &Reply::Array(vec![i(2)])).map(|_| ()));
    assert_decode_error(ok_fields("f", &Reply::Array(vec![])).map(|_| ()));
    assert_decode_error(ok_fields("f", &Reply::Array(vec![i(0)])).map(|_| ()));
    assert_decode_error(ok_fields("f", &Reply::Error("ERR boom".into())).map(|_| ()));
    assert_decode_error(ok_fields("f", &Reply::Int(1)).map(|_| ()));
    match ok_fields("ff_y", &Reply::Error("ERR boom".into())) {
        Err(CallError::Decode(e)) => {
            assert_eq!(e.function, "ff_y");
            assert!(e.reason.contains("ERR boom"), "{}", e.reason);
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn operator_calls() {
    let e = ExecutionId::new(2, 5);
    let k = format!("ff:exec:{e}");
    let p = Partition::new(PartitionFamily::Flow, 2);
    assert_call(
        &operator::pause_lane(p, &Lane::new("mail").unwrap(), true),
        "ff_lane_pause",
        &["ff:paused:{fp:2}"],
        &["mail", "1"],
        false,
    );
    assert_eq!(operator::decode_pause_lane(&ok(vec![i(1)])), Ok(true));
    assert_eq!(operator::decode_pause_lane(&ok(vec![i(0)])), Ok(false));
    assert_call(
        &operator::requeue(&e),
        "ff_requeue",
        &[&k],
        &[e.as_str()],
        false,
    );
    assert_decode_error(operator::decode_requeue(&ok(vec![])));
    assert_call(
        &operator::delete(&e),
        "ff_delete",
        &[&k],
        &[e.as_str()],
        false,
    );
    assert_decode_error(operator::decode_delete(&ok(vec![b("gone")])));
}

#[test]
fn watch_calls() {
    let e = ExecutionId::new(2, 5);
    let k = format!("ff:exec:{e}");
    assert_eq!(watch::ENDED_CHANNEL, "ff:ended");
    assert_call(&watch::watch(&e), "ff_watch", &[&k], &[e.as_str()], false);
    let lease = Lease {
        execution: e.clone(),
        id: LeaseId::from_u128(7),
        epoch: 2,
    };
    let l = LeaseId::from_u128(7).to_string();
    assert_call(
        &watch::progress(&lease, b"half"),
        "ff_progress",
        &[&k],
        &[e.as_str(), &l, "2", "half"],
        false,
    );
    assert_eq!(watch::decode_progress(&ok(vec![])), Ok(()));
    assert_refused(watch::decode_progress(&refusal()));
    assert_refused(watch::decode_watch(&refusal()));
}

#[test]
fn limits_are_the_documented_values() {
    assert_eq!(limits::MAX_PAYLOAD_BYTES, 1_048_576);
    assert_eq!(limits::MAX_DURATION_MS, 31_536_000_000);
    assert_eq!(limits::MIN_LEASE_MS, 100);
    assert_eq!(limits::MAX_LEASE_MS, 86_400_000);
    assert_eq!(limits::MAX_SIGNAL_PAYLOAD_BYTES, 65_536);
    assert_eq!(limits::MAX_PRIORITY, 1000);
    assert_eq!(limits::MAX_CLAIM_BATCH, 1000);
}
