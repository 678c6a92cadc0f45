//! `contract::suspension`: waitpoints, suspend, signals, secrets.

use crate::support::*;
use ff_core::contract::execution::Lease;
use ff_core::contract::suspension::*;
use ff_core::keys::IdempotencyKey;
use ff_core::{
    ExecutionId, LeaseId, ParseError, Partition, PartitionFamily, SignalName, WaitpointId,
};
use std::collections::BTreeMap;

fn eid() -> ExecutionId {
    ExecutionId::new(4, 0x77)
}

fn tok(kid: &str) -> String {
    format!("{kid}.{}", "0a".repeat(32))
}

#[test]
fn tokens() {
    let t = WaitpointToken::parse(&tok("k-1_a")).unwrap();
    assert_eq!(t.expose(), tok("k-1_a"));
    assert_eq!(t.kid(), "k-1_a");
    // The mac is the part after the last dot; its kid must be a valid key id.
    assert!(WaitpointToken::parse(&format!("k.1.{}", "0a".repeat(32))).is_err());
    assert!(WaitpointToken::parse(&"0a".repeat(32)).is_err());
    assert!(WaitpointToken::parse(&format!(".{}", "0a".repeat(32))).is_err());
    assert!(WaitpointToken::parse(&format!("k.{}", "0a".repeat(31))).is_err());
    assert!(WaitpointToken::parse(&format!("k.{}a", "0a".repeat(32))).is_err());
    assert!(WaitpointToken::parse(&format!("k.{}zz", "0a".repeat(31))).is_err());
    assert!(WaitpointToken::parse(&format!("k.{}", "0A".repeat(32))).is_ok());
}

#[test]
fn secret_kids_and_secrets() {
    assert_eq!(SecretKid::new("a").unwrap().as_str(), "a");
    assert_eq!(SecretKid::new("a-b_C9").unwrap().to_string(), "a-b_C9");
    let k32 = "k".repeat(32);
    assert!(SecretKid::new(k32.clone()).is_ok());
    assert_eq!(
        SecretKid::new(format!("{k32}k")).unwrap_err(),
        ParseError::TooLong {
            kind: "secret key id",
            len: 33,
            max: 32
        }
    );
    assert_eq!(
        SecretKid::new("").unwrap_err(),
        ParseError::Empty {
            kind: "secret key id"
        }
    );
    assert_eq!(
        SecretKid::new("a.b").unwrap_err(),
        ParseError::BadChar {
            kind: "secret key id",
            ch: '.',
            at: 1
        }
    );
    assert!(WaitpointSecret::new(vec![0; 15]).is_err());
    assert!(WaitpointSecret::new(vec![0; 16]).is_ok());
    assert!(WaitpointSecret::new(vec![0; 64]).is_ok());
    assert!(WaitpointSecret::new(vec![0; 65]).is_err());
}

#[test]
fn rotate_secret_sends_hex() {
    let p = Partition::new(PartitionFamily::Flow, 4);
    let s = WaitpointSecret::new((0u8..16).collect()).unwrap();
    assert_call(
        &rotate_secret(p, &SecretKid::new("k2").unwrap(), &s, 5000),
        "ff_rotate_secret",
        &["ff:secret:{fp:4}"],
        &["k2", "000102030405060708090a0b0c0d0e0f", "5000"],
        false,
    );
    assert_eq!(decode_rotate_secret(&ok(vec![b("rotated")])), Ok(true));
    assert_eq!(decode_rotate_secret(&ok(vec![b("current")])), Ok(false));
    assert_decode_error(decode_rotate_secret(&ok(vec![b("old")])));
}

#[test]
fn create_waitpoint_call_and_reply() {
    let wp = WaitpointId::from_u128(9);
    let e = eid().to_string();
    assert_call(
        &create_waitpoint(&eid(), &wp, 6000),
        "ff_create_waitpoint",
        &[&format!("ff:exec:{e}")],
        &[&e, wp.as_str(), "6000"],
        false,
    );
    let t = tok("k");
    assert_eq!(
        decode_create_waitpoint(&ok(vec![b("created"), b(&t), i(100)])),
        Ok(WaitpointCreated {
            created: true,
            token: WaitpointToken::parse(&t).unwrap(),
            expires_at_ms: 100
        })
    );
    assert!(
        !decode_create_waitpoint(&ok(vec![b("existing"), b(&t), i(100)]))
            .unwrap()
            .created
    );
    assert_decode_error(decode_create_waitpoint(&ok(vec![b("new"), b(&t), i(100)])));
    assert_decode_error(decode_create_waitpoint(&ok(vec![
        b("created"),
        b("x"),
        i(100),
    ])));
    assert_decode_error(decode_create_waitpoint(&ok(vec![
        b("created"),
        b(&t),
        i(-1),
    ])));
}

fn suspend_args(condition: ResumeCondition, on_timeout: TimeoutBehaviour) -> SuspendArgs {
    SuspendArgs {
        lease: Lease {
            execution: eid(),
            id: LeaseId::from_u128(3),
            epoch: 5,
        },
        waitpoints: vec![WaitpointId::from_u128(1), WaitpointId::from_u128(2)],
        condition,
        timeout_ms: 700,
        on_timeout,
    }
}

#[test]
fn suspend_call_and_reply() {
    let e = eid().to_string();
    let l = LeaseId::from_u128(3).to_string();
    let (w1, w2) = (
        WaitpointId::from_u128(1).to_string(),
        WaitpointId::from_u128(2).to_string(),
    );
    let n = |s: &str| SignalName::new(s).unwrap();
    for (cond, on, c, t) in [
        (
            ResumeCondition::any(),
            TimeoutBehaviour::Fail,
            "count:1",
            "fail",
        ),
        (
            ResumeCondition::Count(3),
            TimeoutBehaviour::Cancel,
            "count:3",
            "cancel",
        ),
        (
            ResumeCondition::AnyOf(vec![n("a"), n("b")]),
            TimeoutBehaviour::Expire,
            "any:a,b",
            "expire",
        ),
        (
            ResumeCondition::AllOf(vec![n("c")]),
            TimeoutBehaviour::Resume,
            "all:c",
            "resume",
        ),
    ] {
        assert_call(
            &suspend(&suspend_args(cond, on)),
            "ff_suspend",
            &[&format!("ff:exec:{e}")],
            &[&e, &l, "5", c, "700", t, "2", &w1, &w2],
            false,
        );
    }
    let a = suspend_args(ResumeCondition::any(), TimeoutBehaviour::Fail);
    let (t1, t2) = (tok("k"), tok("j"));
    let got = decode_suspend(&a, &ok(vec![b("suspended"), i(900), i(1), b(&t1), b(&t2)])).unwrap();
    assert_eq!(
        got,
        Suspended {
            outcome: SuspendOutcome::Suspended {
                timeout_at_ms: Some(900)
            },
            replayed: true,
            tokens: vec![
                (
                    WaitpointId::from_u128(1),
                    WaitpointToken::parse(&t1).unwrap()
                ),
                (
                    WaitpointId::from_u128(2),
                    WaitpointToken::parse(&t2).unwrap()
                ),
            ],
        }
    );
    let got = decode_suspend(&a, &ok(vec![b("suspended"), i(0), i(0), b(&t1), b(&t2)])).unwrap();
    assert_eq!(
        got.outcome,
        SuspendOutcome::Suspended {
            timeout_at_ms: None
        }
    );
    assert!(!got.replayed);
    let got = decode_suspend(&a, &ok(vec![b("resumed"), i(0), i(0), b(&t1), b(&t2)])).unwrap();
    assert_eq!(got.outcome, SuspendOutcome::Resumed);
    assert_decode_error(decode_suspend(
        &a,
        &ok(vec![b("asleep"), i(0), i(0), b(&t1), b(&t2)]),
    ));
    assert_decode_error(decode_suspend(
        &a,
        &ok(vec![b("resumed"), i(0), i(0), b(&t1)]),
    ));
    assert_decode_error(decode_suspend(
        &a,
        &ok(vec![b("resumed"), i(-2), i(0), b(&t1), b(&t2)]),
    ));
}

#[test]
fn signal_call_and_reply() {
    let t = tok("k");
    let wp = WaitpointId::from_u128(9);
    let mut a = SignalArgs {
        execution: eid(),
        waitpoint: wp.clone(),
        token: WaitpointToken::parse(&t).unwrap(),
        name: SignalName::new("approved").unwrap(),
        payload: b"yes".to_vec(),
        idempotency: None,
    };
    let e = eid().to_string();
    let keys = [format!("ff:exec:{e}"), format!("ff:wp:{{fp:4}}:{wp}")];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let c = signal(&a);
    assert_call(
        &c,
        "ff_signal",
        &keys,
        &[&e, wp.as_str(), &t, "approved", "yes", ""],
        false,
    );
    // Without a key nothing tells a repeat from a second signal.
    assert!(!c.repeatable);
    a.idempotency = Some(IdempotencyKey::new("once").unwrap());
    let c = signal(&a);
    assert_eq!(args(&c)[5], "once");
    assert!(c.repeatable);

    let d = |o: &str, n, e: &str| decode_signal(&ok(vec![b(o), i(n), b(e)]));
    assert_eq!(
        d("accepted", 2, "buffered"),
        Ok(SignalAccepted {
            duplicate: false,
            index: 2,
            effect: SignalEffect::Buffered
        })
    );
    assert!(d("duplicate", 1, "recorded").unwrap().duplicate);
    assert_eq!(
        d("accepted", 1, "recorded").unwrap().effect,
        SignalEffect::Recorded
    );
    assert_eq!(
        d("accepted", 1, "resumed").unwrap().effect,
        SignalEffect::Resumed
    );
    assert_decode_error(d("sent", 1, "resumed"));
    assert_decode_error(d("accepted", -1, "resumed"));
    assert_decode_error(d("accepted", 1, "lost"));
}

#[test]
fn waitpoint_states() {
    for (s, st) in [
        ("pending", WaitpointState::Pending),
        ("active", WaitpointState::Active),
        ("closed", WaitpointState::Closed),
        ("expired", WaitpointState::Expired),
    ] {
        assert_eq!(WaitpointState::parse(s), Some(st));
        assert_eq!(st.as_str(), s);
        assert_eq!(st.to_string(), s);
    }
    assert_eq!(WaitpointState::parse("open"), None);
}

#[test]
fn get_waitpoint_decodes_signals() {
    let wp = WaitpointId::from_u128(9);
    assert_call(
        &get_waitpoint(&eid(), &wp),
        "ff_get_waitpoint",
        &[&format!("ff:wp:{{fp:4}}:{wp}")],
        &[wp.as_str()],
        true,
    );
    let e = eid().to_string();
    let reply = ok(vec![
        i(1000),
        b("eid"),
        b(&e),
        b("state"),
        b("active"),
        b("created"),
        b("10"),
        b("expires"),
        b("20"),
        b("n"),
        b("2"),
        b("s1"),
        b("go"),
        b("m1"),
        b("11|buffered|"),
        b("p1"),
        b("one"),
        b("s2"),
        b("stop"),
        b("m2"),
        b("12|resumed|key|with|bars"),
    ]);
    let r = decode_get_waitpoint(&wp, &reply).unwrap();
    assert_eq!(
        r,
        WaitpointRecord {
            id: wp.clone(),
            execution: eid(),
            state: WaitpointState::Active,
            created_at_ms: 10,
            expires_at_ms: Some(20),
            signals: vec![
                SignalRecord {
                    index: 1,
                    name: SignalName::new("go").unwrap(),
                    payload: b"one".to_vec(),
                    received_at_ms: 11,
                    effect: SignalEffect::Buffered,
                    idempotency_key: None,
                },
                SignalRecord {
                    index: 2,
                    name: SignalName::new("stop").unwrap(),
                    payload: Vec::new(),
                    received_at_ms: 12,
                    effect: SignalEffect::Resumed,
                    idempotency_key: Some("key|with|bars".into()),
                },
            ],
            read_at_ms: 1000,
        }
    );
    assert_decode_error(decode_get_waitpoint(&wp, &ok(vec![i(-1)])));

    let m = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    };
    let bare =
        WaitpointRecord::from_fields(&wp, &m(&[("eid", &e), ("state", "closed")]), 5).unwrap();
    assert_eq!(
        (bare.created_at_ms, bare.expires_at_ms, bare.signals.len()),
        (0, None, 0)
    );
    let max = ff_core::contract::limits::MAX_EXECUTION_SIGNALS.to_string();
    for bad in [
        vec![("state", "closed")],
        vec![("eid", "x"), ("state", "closed")],
        vec![("eid", e.as_str()), ("state", "shut")],
        vec![("eid", e.as_str())],
        vec![("eid", e.as_str()), ("state", "closed"), ("created", "x")],
        vec![("eid", e.as_str()), ("state", "closed"), ("n", "1001")],
        vec![
            ("eid", e.as_str()),
            ("state", "closed"),
            ("n", "1"),
            ("s1", "a b"),
            ("m1", "1|buffered|"),
        ],
        vec![
            ("eid", e.as_str()),
            ("state", "closed"),
            ("n", "1"),
            ("s1", "a"),
            ("m1", "x|buffered|"),
        ],
        vec![
            ("eid", e.as_str()),
            ("state", "closed"),
            ("n", "1"),
            ("s1", "a"),
            ("m1", "1|heard|"),
        ],
        vec![
            ("eid", e.as_str()),
            ("state", "closed"),
            ("n", "1"),
            ("s1", "a"),
        ],
    ] {
        assert!(
            WaitpointRecord::from_fields(&wp, &m(&bad), 0).is_err(),
            "{bad:?}"
        );
    }
    // Exactly the bound is fine as far as the count goes (the signals must be there).
    let at_max =
        WaitpointRecord::from_fields(&wp, &m(&[("eid", &e), ("state", "closed"), ("n", &max)]), 0);
    assert!(at_max.unwrap_err().reason.starts_with("signal 1:"));
}
