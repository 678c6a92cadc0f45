//! Property tests of ff-core's pure surface: id and name parsing, key
//! builders and slots, partition stability, and the contract decoders'
//! robustness against arbitrary replies.

use ff_core::contract::execution::{
    decode_claim, decode_create, decode_ended, decode_get, decode_renew, EndOutcome,
};
use ff_core::contract::limits::MAX_CLAIM_BATCH;
use ff_core::contract::CallError;
use ff_core::keys::{self, IdempotencyKey, PartitionKeys};
use ff_core::name::MAX_NAME_LEN;
use ff_core::partition::{crc16, key_slot};
use ff_core::reply::Reply;
use ff_core::state::PublicState;
use ff_core::{
    AttemptId, BudgetId, EdgeId, ExecutionId, FfError, FlowId, Kind, Lane, LeaseId, Namespace,
    Partition, PartitionConfig, PartitionFamily, QuotaId, SignalId, TagName, WaitpointId,
    WorkerInstance, WorkerName,
};
use proptest::prelude::*;
use std::collections::HashSet;

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

/// Strings likely to trip the parsers: arbitrary unicode, near-misses built
/// from the ids' own alphabet, NUL and control characters, long inputs, and
/// valid ids with one edit.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "\\PC{0,80}",
        "[{}:fp/0-9a-fA-F\\x00 .\\-_]{0,80}",
        "\\{fp:[0-9]{0,7}\\}:[0-9a-f]{30,34}(/[0-9]{0,12})?",
        "[A-Za-z0-9_.\\-]{60,70}",
        "[\\x21-\\x7e]{195,205}",
        proptest::collection::vec(any::<char>(), 0..3000).prop_map(|v| v.into_iter().collect()),
        (any::<u16>(), any::<u128>(), 0usize..80, any::<char>()).prop_map(|(p, r, at, ch)| {
            let mut s = ExecutionId::new(p, r).to_string();
            let at = at.min(s.len());
            if s.is_char_boundary(at) {
                s.insert(at, ch);
            }
            s
        }),
    ]
}

fn valid_name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_.\\-]{1,64}"
}

fn partition_config() -> impl Strategy<Value = PartitionConfig> {
    (1u16..=16384, 1u16..=16384, 1u16..=16384).prop_map(|(f, b, q)| PartitionConfig {
        flow_partitions: f,
        budget_partitions: b,
        quota_partitions: q,
    })
}

fn family() -> impl Strategy<Value = PartitionFamily> {
    prop_oneof![
        Just(PartitionFamily::Flow),
        Just(PartitionFamily::Budget),
        Just(PartitionFamily::Quota)
    ]
}

/// Byte strings a decoder might actually look at: the words of the contracts,
/// valid ids, numbers, state spellings, hash field names, plus arbitrary bytes.
fn token() -> impl Strategy<Value = Vec<u8>> {
    const WORDS: &[&str] = &[
        "",
        "0",
        "1",
        "2",
        "-1",
        "1000",
        "1001",
        "99999999999999999999",
        "created",
        "duplicate",
        "completed",
        "failed",
        "cancelled",
        "retry_scheduled",
        "delayed",
        "waiting",
        "active",
        "runnable",
        "terminal",
        "suspended",
        "eligible",
        "success",
        "running",
        "stale_lease",
        "not_found",
        "not_active",
        "payload_too_large",
        "12:10",
        "invalid_argument",
        "a:b",
        "id",
        "phase",
        "elig",
        "outcome",
        "ns",
        "lane",
        "kind",
        "pri",
        "att",
        "att_state",
        "retries",
        "reclaims",
        "epoch",
        "lease_id",
        "lease_exp",
        "by",
        "due",
        "deadline",
        "att_timeout",
        "retry",
        "3:e:1000:60000",
        "0:f:0",
        "max_reclaims",
        "retention",
        "payload",
        "result",
        "error",
        "created",
        "ended",
        "tag.x",
        "default",
    ];
    prop_oneof![
        3 => proptest::sample::select(WORDS).prop_map(|w| w.as_bytes().to_vec()),
        1 => (any::<u16>(), any::<u128>()).prop_map(|(p, r)| ExecutionId::new(p, r).to_string().into_bytes()),
        1 => any::<u128>().prop_map(|r| LeaseId::from_u128(r).to_string().into_bytes()),
        1 => any::<i64>().prop_map(|i| i.to_string().into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 0..40),
    ]
}

fn leaf_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        1 => Just(Reply::Nil),
        3 => prop_oneof![any::<i64>(), -2i64..1002].prop_map(Reply::Int),
        4 => token().prop_map(Reply::Bulk),
        1 => token().prop_map(|t| Reply::Status(String::from_utf8_lossy(&t).into_owned())),
        1 => ".{0,20}".prop_map(Reply::Error),
    ]
}

/// An arbitrary reply tree, bounded in depth and size.
fn any_reply() -> impl Strategy<Value = Reply> {
    leaf_reply().prop_recursive(4, 64, 12, |inner| {
        proptest::collection::vec(inner, 0..12).prop_map(Reply::Array)
    })
}

/// A reply with the contracts' outer shape (`{status, ...}`) so the decoders
/// get past the status check and exercise their field handling.
fn shaped_reply() -> impl Strategy<Value = Reply> {
    let status = prop_oneof![
        Just(Reply::Int(1)),
        Just(Reply::Int(0)),
        Just(Reply::bulk("1")),
        any_reply()
    ];
    (
        status,
        proptest::collection::vec(prop_oneof![4 => leaf_reply(), 1 => any_reply()], 0..40),
    )
        .prop_map(|(s, mut rest)| {
            rest.insert(0, s);
            Reply::Array(rest)
        })
}

/// An `ff_get` reply built from plausible fields and values.
fn get_reply() -> impl Strategy<Value = Reply> {
    const FIELDS: &[&str] = &[
        "phase",
        "elig",
        "outcome",
        "ns",
        "lane",
        "kind",
        "pri",
        "att",
        "att_state",
        "retries",
        "reclaims",
        "epoch",
        "lease_id",
        "lease_exp",
        "by",
        "due",
        "deadline",
        "att_timeout",
        "retry",
        "max_reclaims",
        "retention",
        "payload",
        "result",
        "error",
        "created",
        "ended",
        "tag.a",
        "tag.",
    ];
    (
        prop_oneof![any::<i64>(), 0i64..10_000].prop_map(Reply::Int),
        proptest::collection::vec((proptest::sample::select(FIELDS), token()), 0..40),
    )
        .prop_map(|(time, fields)| {
            let mut items = vec![Reply::Int(1), time];
            for (k, v) in fields {
                items.push(Reply::bulk(k));
                items.push(Reply::Bulk(v));
            }
            Reply::Array(items)
        })
}

fn run_all_decoders(r: &Reply) {
    let _ = decode_create(r);
    let _ = decode_claim(r, &LeaseId::from_u128(0), MAX_CLAIM_BATCH);
    let _ = decode_renew(r);
    for f in ["ff_complete", "ff_fail", "ff_delay", "ff_cancel"] {
        let _ = decode_ended(f, r);
    }
    let _ = decode_get(&some_execution(), r);
}

/// The execution a decoded `ff_get` reply is taken to be of.
fn some_execution() -> ExecutionId {
    ExecutionId::new(12, 99)
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

fn name_ok(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len()) && s.chars().all(is_name_char)
}

fn idem_ok(s: &str) -> bool {
    (1..=IdempotencyKey::MAX_LEN).contains(&s.len())
        && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

/// Parse `s` with `parse`; if it succeeds, the value must display as `s`.
macro_rules! check_reparse {
    ($s:expr, $($parse:path),+ $(,)?) => {{
        let s: &str = $s;
        $(
            if let Ok(v) = $parse(s) {
                prop_assert_eq!(v.to_string(), s, "{} re-display", stringify!($parse));
            }
        )+
    }};
}

// ---------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------

proptest! {
    #[test]
    fn execution_id_round_trips(p in any::<u16>(), r in any::<u128>()) {
        let eid = ExecutionId::new(p, r);
        prop_assert_eq!(eid.partition_index(), p);
        prop_assert_eq!(eid.partition(), Partition::new(PartitionFamily::Flow, p));
        let text = eid.to_string();
        prop_assert_eq!(text.as_str(), eid.as_str());
        let back = ExecutionId::parse(&text).unwrap();
        prop_assert_eq!(back.partition_index(), p);
        prop_assert_eq!(&back, &eid);
        prop_assert_eq!(text.parse::<ExecutionId>().unwrap(), eid);
    }

    #[test]
    fn hex_ids_round_trip(r in any::<u128>()) {
        macro_rules! rt {
            ($t:ty) => {{
                let id = <$t>::from_u128(r);
                let text = id.to_string();
                prop_assert_eq!(text.len(), 32);
                prop_assert_eq!(u128::from_str_radix(&text, 16).unwrap(), r);
                prop_assert_eq!(<$t>::parse(&text).unwrap(), id.clone());
                prop_assert_eq!(text.parse::<$t>().unwrap(), id);
            }};
        }
        rt!(FlowId);
        rt!(EdgeId);
        rt!(LeaseId);
        rt!(WaitpointId);
        rt!(SignalId);
    }

    #[test]
    fn budget_and_quota_ids_parse_valid_names(s in valid_name()) {
        let b = BudgetId::parse(&s).unwrap();
        prop_assert_eq!(b.as_str(), s.as_str());
        prop_assert_eq!(b.to_string(), s.clone());
        let q = QuotaId::parse(&s).unwrap();
        prop_assert_eq!(q.to_string(), s.clone());
        prop_assert_eq!(s.parse::<QuotaId>().unwrap(), q);
    }

    #[test]
    fn attempt_id_round_trips(p in any::<u16>(), r in any::<u128>(), n in 1u32..=u32::MAX) {
        let a = AttemptId { execution: ExecutionId::new(p, r), index: n };
        let text = a.to_string();
        let back = AttemptId::parse(&text).unwrap();
        prop_assert_eq!(&back, &a);
        prop_assert_eq!(back.execution.partition_index(), p);
        prop_assert_eq!(text.parse::<AttemptId>().unwrap(), a);
    }

    /// A parsed execution id is exactly the one `new` builds from its parts.
    #[test]
    fn parsed_execution_id_matches_new(p in any::<u16>(), hex in "[0-9a-f]{32}") {
        let s = format!("{{fp:{p}}}:{hex}");
        let eid = ExecutionId::parse(&s).unwrap();
        prop_assert_eq!(eid.partition_index(), p);
        prop_assert_eq!(eid.as_str(), s.as_str());
        prop_assert_eq!(eid, ExecutionId::new(p, u128::from_str_radix(&hex, 16).unwrap()));
    }

    /// Partition numbers that do not fit a u16 are refused, never wrapped.
    #[test]
    fn execution_id_partition_out_of_range_is_refused(p in 65536u32..=99999, r in any::<u128>()) {
        let s = format!("{{fp:{p}}}:{r:032x}");
        prop_assert!(ExecutionId::parse(&s).is_err());
    }

    #[test]
    fn parsing_arbitrary_strings_never_panics_and_reparses(s in nasty_string()) {
        check_reparse!(
            &s,
            ExecutionId::parse,
            AttemptId::parse,
            FlowId::parse,
            EdgeId::parse,
            LeaseId::parse,
            WaitpointId::parse,
            SignalId::parse,
            BudgetId::parse,
            QuotaId::parse,
            Lane::new,
            Namespace::new,
            WorkerName::new,
            WorkerInstance::new,
            Kind::new,
            TagName::new,
        );
        if let Ok(k) = IdempotencyKey::new(s.as_str()) {
            prop_assert_eq!(k.as_str(), s.as_str());
        }
        if let Ok(eid) = ExecutionId::parse(&s) {
            prop_assert!(s.starts_with(&eid.partition().hash_tag()));
        }
        if let Ok(a) = AttemptId::parse(&s) {
            prop_assert!(a.index >= 1);
        }
    }

    // -----------------------------------------------------------------------
    // Names
    // -----------------------------------------------------------------------

    #[test]
    fn names_accept_exactly_the_allowed_alphabet(s in prop_oneof![valid_name(), nasty_string()]) {
        let ok = name_ok(&s);
        prop_assert_eq!(Lane::new(s.as_str()).is_ok(), ok);
        prop_assert_eq!(Namespace::new(s.as_str()).is_ok(), ok);
        prop_assert_eq!(WorkerName::new(s.as_str()).is_ok(), ok);
        prop_assert_eq!(WorkerInstance::new(s.as_str()).is_ok(), ok);
        prop_assert_eq!(Kind::new(s.as_str()).is_ok(), ok);
        prop_assert_eq!(TagName::new(s.as_str()).is_ok(), ok);
        prop_assert_eq!(BudgetId::parse(&s).is_ok(), ok);
        prop_assert_eq!(QuotaId::parse(&s).is_ok(), ok);
    }

    #[test]
    fn idempotency_key_accepts_printable_ascii_without_space(
        s in prop_oneof!["[\\x21-\\x7e]{1,200}", nasty_string(), "[\\x20-\\x7f]{0,210}"]
    ) {
        prop_assert_eq!(IdempotencyKey::new(s.as_str()).is_ok(), idem_ok(&s));
    }

    // -----------------------------------------------------------------------
    // Keys and partitions
    // -----------------------------------------------------------------------

    #[test]
    fn execution_keys_share_the_partition_slot(
        p in any::<u16>(),
        r in any::<u128>(),
        lane in valid_name(),
        ns in valid_name(),
        idem in "[\\x21-\\x7e]{1,200}",
    ) {
        let eid = ExecutionId::new(p, r);
        let tag = eid.partition().hash_tag();
        prop_assert_eq!(&tag, &format!("{{fp:{p}}}"));
        prop_assert_eq!(&tag, &eid.partition().to_string());
        let slot = key_slot(tag.as_bytes());
        prop_assert_eq!(slot, crc16(format!("fp:{p}").as_bytes()) % 16384);

        let pk = PartitionKeys::of(&eid);
        prop_assert_eq!(pk.tag(), tag.as_str());
        let lane = Lane::new(lane).unwrap();
        let ns = Namespace::new(ns).unwrap();
        let idem = IdempotencyKey::new(idem).unwrap();
        let all_keys = [
            keys::exec(&eid),
            pk.all(),
            pk.eligible(&lane),
            pk.delayed(),
            pk.lease_expiry(),
            pk.attempt_timeout(),
            pk.deadline(),
            pk.terminal(),
            pk.idempotency(&ns, &idem),
        ];
        for k in &all_keys {
            prop_assert!(k.contains(&tag), "{} lacks {}", k, tag);
            prop_assert_eq!(key_slot(k.as_bytes()), slot, "{}", k);
        }
        let distinct: HashSet<&String> = all_keys.iter().collect();
        prop_assert_eq!(distinct.len(), all_keys.len());
    }

    #[test]
    fn distinct_partitions_have_distinct_tags(a in any::<u16>(), b in any::<u16>(), f in family(), g in family()) {
        let (pa, pb) = (Partition::new(f, a), Partition::new(g, b));
        prop_assert_eq!(pa == pb, pa.hash_tag() == pb.hash_tag());
        if f == PartitionFamily::Flow && g == PartitionFamily::Flow {
            let (ka, kb) = (PartitionKeys::new(pa), PartitionKeys::new(pb));
            prop_assert_eq!(a == b, ka.tag() == kb.tag());
            prop_assert_eq!(a == b, ka.all() == kb.all());
        }
    }

    #[test]
    fn idempotency_partition_is_stable_and_in_range(
        cfg in partition_config(),
        ns in valid_name(),
        key in "[\\x21-\\x7e]{1,200}",
    ) {
        let ns = Namespace::new(ns).unwrap();
        let key = IdempotencyKey::new(key).unwrap();
        let p = key.partition(&ns, &cfg);
        prop_assert_eq!(p.family, PartitionFamily::Flow);
        prop_assert!(p.index < cfg.flow_partitions);
        prop_assert_eq!(p, key.partition(&ns, &cfg));
        prop_assert_eq!(p, IdempotencyKey::new(key.as_str()).unwrap().partition(&ns, &cfg.clone()));
        let other = PartitionConfig { budget_partitions: 1, quota_partitions: 1, ..cfg };
        prop_assert_eq!(p, key.partition(&ns, &other));
    }

    #[test]
    fn partition_of_is_crc16_mod_count(cfg in partition_config(), f in family(), id in nasty_string()) {
        prop_assert!(cfg.validate().is_ok());
        let count = match f {
            PartitionFamily::Flow => cfg.flow_partitions,
            PartitionFamily::Budget => cfg.budget_partitions,
            PartitionFamily::Quota => cfg.quota_partitions,
        };
        let p = cfg.partition_of(f, &id);
        prop_assert_eq!(p.family, f);
        prop_assert_eq!(p.index, crc16(id.as_bytes()) % count);
        prop_assert!(p.index < count);
        prop_assert_eq!(p, cfg.partition_of(f, &id.clone()));
    }

    #[test]
    fn key_slot_is_in_range(key in proptest::collection::vec(any::<u8>(), 0..200)) {
        prop_assert!(key_slot(&key) < 16384);
    }

    // -----------------------------------------------------------------------
    // Contract decoders
    // -----------------------------------------------------------------------

    #[test]
    fn decoders_never_panic_on_arbitrary_replies(r in any_reply()) {
        run_all_decoders(&r);
    }

    #[test]
    fn decoders_never_panic_on_shaped_replies(r in shaped_reply()) {
        run_all_decoders(&r);
    }

    #[test]
    fn decode_get_never_panics_on_plausible_records(r in get_reply()) {
        run_all_decoders(&r);
        if let Ok(rec) = decode_get(&some_execution(), &r) {
            prop_assert_eq!(rec.public_state, rec.state.public_state().unwrap());
            prop_assert_eq!(rec.lease.is_some(), rec.state.phase == ff_core::state::LifecyclePhase::Active);
        }
    }

    /// Any `{0, code, detail}` reply is a rejection, never a decode error or success.
    #[test]
    fn rejections_decode_as_rejections(code in "[a-z_]{0,20}", detail in ".{0,30}") {
        let r = Reply::Array(vec![Reply::Int(0), Reply::bulk(code.clone()), Reply::bulk(detail.clone())]);
        let want = FfError::from_code(&code, &detail);
        prop_assert_eq!(decode_create(&r).unwrap_err(), CallError::Rejected(want.clone()));
        prop_assert_eq!(decode_claim(&r, &LeaseId::from_u128(0), MAX_CLAIM_BATCH).unwrap_err(), CallError::Rejected(want.clone()));
        prop_assert_eq!(decode_renew(&r).unwrap_err(), CallError::Rejected(want.clone()));
        prop_assert_eq!(decode_ended("ff_complete", &r).unwrap_err(), CallError::Rejected(want.clone()));
        prop_assert_eq!(decode_get(&some_execution(), &r).unwrap_err(), CallError::Rejected(want));
    }
}

// ---------------------------------------------------------------------------
// Fixed examples
// ---------------------------------------------------------------------------

fn b(s: &str) -> Reply {
    Reply::bulk(s)
}

#[test]
fn well_formed_claim_decodes() {
    let e1 = ExecutionId::new(7, 0xabc);
    let e2 = ExecutionId::new(7, u128::MAX);
    let l1 = LeaseId::from_u128(1);
    let reply = Reply::Array(vec![
        Reply::Int(1),
        Reply::Int(2),
        Reply::Int(1_700_000_030_000),
        b(e1.as_str()),
        Reply::Int(5),
        b("email.send"),
        Reply::Bulk(vec![0, 1, 2, 255]),
        b(e2.as_str()),
        b("9"),
        Reply::Status("report".into()),
        Reply::Nil,
        Reply::Int(0),
        Reply::Int(0),
    ]);
    let claimed = decode_claim(&reply, &l1, 3).unwrap();
    assert_eq!(claimed.len(), 2);
    let c = &claimed[0];
    assert_eq!(c.lease.execution, e1);
    assert_eq!(c.lease.id, l1);
    assert_eq!(c.lease.epoch, 5);
    assert_eq!(c.attempt, 5);
    assert_eq!(c.lease_expires_at_ms, 1_700_000_030_000);
    assert_eq!(c.kind, Kind::new("email.send").unwrap());
    assert_eq!(c.payload, vec![0, 1, 2, 255]);
    let c = &claimed[1];
    assert_eq!(c.lease.execution, e2);
    assert_eq!(c.lease.id, l1);
    assert_eq!(c.lease.epoch, 9);
    assert_eq!(c.attempt, 9);
    assert_eq!(c.lease_expires_at_ms, 1_700_000_030_000);
    assert_eq!(c.kind.as_str(), "report");
    assert!(c.payload.is_empty());
    // More handed out than the claim asked for is a decode error.
    assert!(matches!(
        decode_claim(&reply, &l1, 1),
        Err(CallError::Decode(_))
    ));
}

#[test]
fn empty_claim_decodes() {
    assert_eq!(
        decode_claim(
            &Reply::Array(vec![
                Reply::Int(1),
                Reply::Int(0),
                Reply::Int(9),
                Reply::Int(0),
                Reply::Int(0)
            ]),
            &LeaseId::from_u128(0),
            MAX_CLAIM_BATCH
        )
        .unwrap(),
        vec![]
    );
}

#[test]
fn claim_with_bad_count_or_truncated_fields_is_a_decode_error() {
    for n in [-1, 1001] {
        let r = Reply::Array(vec![Reply::Int(1), Reply::Int(n), Reply::Int(9)]);
        assert!(
            matches!(
                decode_claim(&r, &LeaseId::from_u128(0), MAX_CLAIM_BATCH),
                Err(CallError::Decode(_))
            ),
            "count {n}"
        );
    }
    let e = ExecutionId::new(1, 1);
    let r = Reply::Array(vec![
        Reply::Int(1),
        Reply::Int(1),
        Reply::Int(9),
        b(e.as_str()),
    ]);
    assert!(matches!(
        decode_claim(&r, &LeaseId::from_u128(0), MAX_CLAIM_BATCH),
        Err(CallError::Decode(_))
    ));
}

#[test]
fn stale_lease_rejection_decodes() {
    let r = Reply::Array(vec![Reply::Int(0), b("stale_lease"), b("")]);
    assert_eq!(
        decode_renew(&r),
        Err(CallError::Rejected(FfError::StaleLease))
    );
    assert_eq!(
        decode_claim(&r, &LeaseId::from_u128(0), MAX_CLAIM_BATCH),
        Err(CallError::Rejected(FfError::StaleLease))
    );
    assert_eq!(
        decode_ended("ff_complete", &r),
        Err(CallError::Rejected(FfError::StaleLease))
    );
    // The detail is optional.
    let r = Reply::Array(vec![Reply::Int(0), b("stale_lease")]);
    assert_eq!(
        decode_renew(&r),
        Err(CallError::Rejected(FfError::StaleLease))
    );
}

#[test]
fn well_formed_create_and_ended_decode() {
    let e = ExecutionId::new(3, 42);
    // `{1, outcome, id, phase, eligibility, terminal outcome}`.
    let r = Reply::Array(vec![
        Reply::Int(1),
        b("duplicate"),
        b(e.as_str()),
        b("runnable"),
        b("delayed"),
        b(""),
    ]);
    let c = decode_create(&r).unwrap();
    assert_eq!(c.execution, e);
    assert!(!c.created);
    assert_eq!(c.state, PublicState::Delayed);

    let r = Reply::Array(vec![
        Reply::Int(1),
        b("retry_scheduled"),
        Reply::Int(1234),
        Reply::Int(1),
    ]);
    let end = decode_ended("ff_fail", &r).unwrap();
    assert_eq!(end.outcome, EndOutcome::RetryScheduled { due_at_ms: 1234 });
    assert!(end.replayed);
}

#[test]
fn server_errors_and_non_arrays_are_decode_errors() {
    for r in [
        Reply::Error("ERR boom".into()),
        Reply::Nil,
        Reply::Int(1),
        Reply::Array(vec![]),
    ] {
        assert!(
            matches!(decode_renew(&r), Err(CallError::Decode(_))),
            "{r:?}"
        );
    }
    assert!(matches!(
        decode_renew(&Reply::Array(vec![Reply::Int(2)])),
        Err(CallError::Decode(_))
    ));
}

#[test]
fn well_formed_get_decodes() {
    let e = ExecutionId::new(12, 99);
    let l = LeaseId::from_u128(7);
    let mut items = vec![Reply::Int(1), Reply::Int(5_000)];
    for (k, v) in [
        ("phase", "active"),
        ("ns", "default"),
        ("lane", "default"),
        ("kind", "k"),
        ("pri", "10"),
        ("epoch", "4"),
        ("lease_id", l.as_str()),
        ("lease_exp", "6000"),
        ("by", "w w1"),
        ("retry", "3:e:1000:60000"),
        ("created", "100"),
        ("tag.team", "infra"),
    ] {
        items.push(b(k));
        items.push(b(v));
    }
    let rec = decode_get(&e, &Reply::Array(items)).unwrap();
    assert_eq!(rec.execution, e);
    assert_eq!(rec.public_state, PublicState::Active);
    assert_eq!(rec.lease.as_ref().map(|x| (&x.id, x.epoch)), Some((&l, 4)));
    assert_eq!(rec.lease_expires_at_ms, Some(6000));
    assert_eq!(rec.priority, 10);
    assert_eq!(rec.attempt, 4);
    assert_eq!(rec.tags.get("team").map(String::as_str), Some("infra"));
    assert_eq!(rec.read_at_ms, 5_000);
}
