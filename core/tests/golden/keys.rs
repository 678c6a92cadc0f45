//! Every key builder against the layout docs/data-layout.md documents: the
//! exact spelling (golden strings), the slot every key of a partition shares,
//! and the refusals of bad ids and keys. Lua spells keys from the same
//! prefixes, so a changed spelling here is a changed data layout.

use ff_core::admission::{
    budget_key, budget_partition, budget_seen_key, budgets_index, quota_holders_key, quota_key,
    quota_partition, quota_window_key, quotas_index, resets_index,
};
use ff_core::keys::{self, FlowKeys, IdempotencyKey, PartitionKeys};
use ff_core::partition::{crc16, key_slot};
use ff_core::{
    AttemptId, BudgetId, ExecutionId, FlowId, Lane, Namespace, ParseError, Partition,
    PartitionConfig, PartitionFamily, QuotaId, WaitpointId,
};

const HEX: &str = "000102030405060708090a0b0c0d0e0f";

fn eid(p: u16) -> ExecutionId {
    ExecutionId::new(p, 0x000102030405060708090a0b0c0d0e0f)
}

#[test]
fn execution_keys_are_spelled_as_documented() {
    let e = eid(7);
    assert_eq!(e.as_str(), format!("{{fp:7}}:{HEX}"));
    assert_eq!(e.to_string(), e.as_str());
    assert_eq!(e.partition_index(), 7);
    assert_eq!(e.partition(), Partition::new(PartitionFamily::Flow, 7));
    assert_eq!(keys::exec(&e), format!("ff:exec:{{fp:7}}:{HEX}"));
    assert_eq!(keys::deps(&e), format!("ff:deps:{{fp:7}}:{HEX}"));
    assert_eq!(keys::out(&e), format!("ff:out:{{fp:7}}:{HEX}"));
    assert_eq!(keys::passed(&e), format!("ff:passed:{{fp:7}}:{HEX}"));
    assert_eq!(keys::CONFIG, "ff:config");
    assert_eq!(keys::LANES, "ff:lanes");
    assert_eq!(keys::PAUSED_LANES, "ff:lanes:paused");
    assert_eq!(ff_core::admission::IN_USE, "ff:admission");
}

#[test]
fn partition_indexes_are_spelled_as_documented() {
    let pk = PartitionKeys::of(&eid(12));
    assert_eq!(
        pk,
        PartitionKeys::new(Partition::new(PartitionFamily::Flow, 12))
    );
    assert_eq!(pk.tag(), "{fp:12}");
    let lane = Lane::new("emails").unwrap();
    let cases: Vec<(String, &str)> = vec![
        (pk.idx("x"), "ff:idx:{fp:12}:x"),
        (pk.paused(), "ff:paused:{fp:12}"),
        (pk.counts(), "ff:counts:{fp:12}"),
        (pk.series(491_234), "ff:series:{fp:12}:491234"),
        (pk.all(), "ff:idx:{fp:12}:all"),
        (pk.eligible(&lane), "ff:idx:{fp:12}:eligible:emails"),
        (pk.delayed(), "ff:idx:{fp:12}:delayed"),
        (pk.waiting_children(), "ff:idx:{fp:12}:waiting_children"),
        (pk.flow_work(), "ff:idx:{fp:12}:flow_work"),
        (pk.flows(), "ff:idx:{fp:12}:flows"),
        (pk.blocked_budget(), "ff:idx:{fp:12}:blocked_budget"),
        (pk.blocked_quota(), "ff:idx:{fp:12}:blocked_quota"),
        (pk.blocked_route(), "ff:idx:{fp:12}:blocked_route"),
        (pk.lease_expiry(), "ff:idx:{fp:12}:lease_expiry"),
        (pk.attempt_timeout(), "ff:idx:{fp:12}:attempt_timeout"),
        (pk.deadline(), "ff:idx:{fp:12}:deadline"),
        (pk.terminal(), "ff:idx:{fp:12}:terminal"),
        (pk.suspension_timeout(), "ff:idx:{fp:12}:suspension_timeout"),
        (pk.pending_waitpoints(), "ff:idx:{fp:12}:pending_waitpoints"),
        (pk.secret(), "ff:secret:{fp:12}"),
    ];
    for (built, want) in &cases {
        assert_eq!(built, want);
        // Every key of the partition is in the execution's slot.
        assert_eq!(
            key_slot(built.as_bytes()),
            key_slot(keys::exec(&eid(12)).as_bytes())
        );
    }
    let wp = WaitpointId::from_u128(0xab);
    assert_eq!(
        pk.waitpoint(&wp),
        "ff:wp:{fp:12}:000000000000000000000000000000ab"
    );
    let ns = Namespace::new("shop").unwrap();
    let k = IdempotencyKey::new("order-1").unwrap();
    assert_eq!(pk.idempotency(&ns, &k), "ff:idem:{fp:12}:shop:order-1");
}

#[test]
fn flow_keys_share_the_flows_partition() {
    let c = PartitionConfig::default();
    let f = FlowId::from_u128(1);
    let p = keys::flow_partition(&f, &c);
    assert_eq!(p.family, PartitionFamily::Flow);
    // CRC16 of the flow id, modulo the flow partition count.
    assert_eq!(p.index, crc16(f.as_str().as_bytes()) % 256);
    let fk = FlowKeys::new(&f, &c);
    let tag = p.hash_tag();
    assert_eq!(fk.flow(), format!("ff:flow:{tag}:{f}"));
    assert_eq!(fk.members(), format!("ff:flow:{tag}:{f}:members"));
    // Another partition count moves the flow.
    let one = PartitionConfig {
        flow_partitions: 1,
        ..c
    };
    assert_eq!(
        FlowKeys::new(&f, &one).flow(),
        format!("ff:flow:{{fp:0}}:{f}")
    );
}

#[test]
fn budget_and_quota_keys_are_spelled_as_documented() {
    let c = PartitionConfig {
        flow_partitions: 256,
        budget_partitions: 32,
        quota_partitions: 16,
    };
    let b = BudgetId::parse("tokens").unwrap();
    let bp = crc16(b"tokens") % 32;
    assert_eq!(
        budget_partition(&c, &b),
        Partition::new(PartitionFamily::Budget, bp)
    );
    assert_eq!(budget_key(&c, &b), format!("ff:budget:{{b:{bp}}}:tokens"));
    assert_eq!(
        budget_seen_key(&c, &b),
        format!("ff:budget:{{b:{bp}}}:tokens:seen")
    );
    let p = budget_partition(&c, &b);
    assert_eq!(budgets_index(p), format!("ff:idx:{{b:{bp}}}:budgets"));
    assert_eq!(resets_index(p), format!("ff:idx:{{b:{bp}}}:resets"));

    let q = QuotaId::parse("api").unwrap();
    let qp = crc16(b"api") % 16;
    assert_eq!(
        quota_partition(&c, &q),
        Partition::new(PartitionFamily::Quota, qp)
    );
    assert_eq!(quota_key(&c, &q), format!("ff:quota:{{q:{qp}}}:api"));
    assert_eq!(
        quota_window_key(&c, &q),
        format!("ff:quota:{{q:{qp}}}:api:win")
    );
    assert_eq!(
        quota_holders_key(&c, &q),
        format!("ff:quota:{{q:{qp}}}:api:holders")
    );
    assert_eq!(
        quotas_index(quota_partition(&c, &q)),
        format!("ff:idx:{{q:{qp}}}:quotas")
    );
}

#[test]
fn partitions_and_their_tags() {
    assert_eq!(PartitionFamily::Flow.prefix(), "fp");
    assert_eq!(PartitionFamily::Budget.prefix(), "b");
    assert_eq!(PartitionFamily::Quota.prefix(), "q");
    let p = Partition::new(PartitionFamily::Budget, 3);
    assert_eq!(p.hash_tag(), "{b:3}");
    assert_eq!(p.to_string(), "{b:3}");
    let c = PartitionConfig {
        flow_partitions: 5,
        budget_partitions: 3,
        quota_partitions: 2,
    };
    let count = |f| c.partitions(f).count();
    assert_eq!(count(PartitionFamily::Flow), 5);
    assert_eq!(count(PartitionFamily::Budget), 3);
    assert_eq!(count(PartitionFamily::Quota), 2);
    assert_eq!(
        c.partitions(PartitionFamily::Quota).collect::<Vec<_>>(),
        vec![
            Partition::new(PartitionFamily::Quota, 0),
            Partition::new(PartitionFamily::Quota, 1)
        ]
    );
    // Each family hashes modulo its own count.
    let id = "some-id";
    let h = crc16(id.as_bytes());
    assert_eq!(c.partition_of(PartitionFamily::Flow, id).index, h % 5);
    assert_eq!(c.partition_of(PartitionFamily::Budget, id).index, h % 3);
    assert_eq!(c.partition_of(PartitionFamily::Quota, id).index, h % 2);
    // A zero count is read as one partition, never a division by zero.
    let zero = PartitionConfig {
        flow_partitions: 0,
        ..c
    };
    assert_eq!(zero.partition_of(PartitionFamily::Flow, id).index, 0);
    assert_eq!(PartitionConfig::default().flow_partitions, 256);
    assert_eq!(PartitionConfig::default().budget_partitions, 32);
    assert_eq!(PartitionConfig::default().quota_partitions, 32);
}

#[test]
fn partition_config_bounds() {
    let ok = PartitionConfig {
        flow_partitions: 1,
        budget_partitions: 16384,
        quota_partitions: 1,
    };
    assert_eq!(ok.validate(), Ok(()));
    for (f, b, q, name) in [
        (0, 1, 1, "flow_partitions"),
        (1, 0, 1, "budget_partitions"),
        (1, 1, 0, "quota_partitions"),
        (16385, 1, 1, "flow_partitions"),
        (1, 16385, 1, "budget_partitions"),
        (1, 1, 16385, "quota_partitions"),
    ] {
        let c = PartitionConfig {
            flow_partitions: f,
            budget_partitions: b,
            quota_partitions: q,
        };
        let e = c.validate().unwrap_err();
        assert!(e.starts_with(name), "{e}");
    }
}

#[test]
fn key_slot_reads_the_first_nonempty_tag() {
    assert_eq!(key_slot(b"{fp:3}:x"), crc16(b"fp:3") % 16384);
    assert_eq!(key_slot(b"a{fp:3}b{c}"), crc16(b"fp:3") % 16384);
    // An empty tag `{}` means the whole key is hashed.
    assert_eq!(key_slot(b"{}x"), crc16(b"{}x") % 16384);
    // An unclosed brace: the whole key.
    assert_eq!(key_slot(b"ab{cd"), crc16(b"ab{cd") % 16384);
    assert_eq!(key_slot(b"{a}"), crc16(b"a") % 16384);
    // Redis' documented slots.
    assert_eq!(key_slot(b"foo"), 12182);
    assert_eq!(key_slot(b"bar"), 5061);
    assert_eq!(crc16(b""), 0);
    assert_eq!(crc16(b"a"), 0x7C87);
}

#[test]
fn ids_round_trip_and_refuse_near_misses() {
    let e = eid(65535);
    assert_eq!(ExecutionId::parse(e.as_str()), Ok(e.clone()));
    assert_eq!(e.as_str().parse::<ExecutionId>(), Ok(e.clone()));
    assert_eq!(
        ExecutionId::parse(&format!("{{fp:0}}:{HEX}"))
            .unwrap()
            .partition_index(),
        0
    );
    for bad in [
        format!("fp:1}}:{HEX}"),
        format!("{{fp:1:{HEX}"),
        format!("{{fp:}}:{HEX}"),
        format!("{{fp:01}}:{HEX}"),
        format!("{{fp:65536}}:{HEX}"),
        format!("{{fp:123456}}:{HEX}"),
        format!("{{fp:1a}}:{HEX}"),
        format!("{{fp:1}}:{}", &HEX[1..]),
        format!("{{fp:1}}:{HEX}0"),
        format!("{{fp:1}}:{}", HEX.to_uppercase()),
        format!("{{fp:1}}:{}g", &HEX[1..]),
    ] {
        assert!(ExecutionId::parse(&bad).is_err(), "{bad}");
    }
    let f = FlowId::from_u128(u128::MAX);
    assert_eq!(f.as_str(), "ffffffffffffffffffffffffffffffff");
    assert_eq!(f.to_string().parse::<FlowId>(), Ok(f.clone()));
    assert!(FlowId::parse("fffffffffffffffffffffffffffffff").is_err());
    assert!(FlowId::parse("Ffffffffffffffffffffffffffffffff").is_err());

    let a = AttemptId::parse(&format!("{e}/3")).unwrap();
    assert_eq!(a.execution, e);
    assert_eq!(a.index, 3);
    assert_eq!(a.to_string(), format!("{e}/3"));
    assert_eq!(a.to_string().parse::<AttemptId>(), Ok(a.clone()));
    assert_eq!(
        AttemptId::parse(&format!("{e}/4294967295")).unwrap().index,
        u32::MAX
    );
    for n in ["", "0", "03", "-1", "4294967296", "12345678901", "1x"] {
        assert!(AttemptId::parse(&format!("{e}/{n}")).is_err(), "{n}");
    }
    assert!(AttemptId::parse(e.as_str()).is_err());

    let b = BudgetId::parse("a.b-c_9").unwrap();
    assert_eq!(b.as_str(), "a.b-c_9");
    assert_eq!(b.to_string().parse::<BudgetId>(), Ok(b.clone()));
    assert!(BudgetId::parse("").is_err());
    assert!(QuotaId::parse("a b").is_err());
}

#[test]
fn idempotency_keys() {
    assert_eq!(
        IdempotencyKey::new("").unwrap_err(),
        ParseError::Empty {
            kind: "idempotency key"
        }
    );
    let max = "k".repeat(IdempotencyKey::MAX_LEN);
    assert_eq!(IdempotencyKey::new(max.clone()).unwrap().as_str(), max);
    assert_eq!(
        IdempotencyKey::new(format!("{max}k")).unwrap_err(),
        ParseError::TooLong {
            kind: "idempotency key",
            len: 201,
            max: 200
        }
    );
    assert_eq!(
        IdempotencyKey::new("ab c").unwrap_err(),
        ParseError::BadChar {
            kind: "idempotency key",
            ch: ' ',
            at: 2
        }
    );
    assert!(IdempotencyKey::new("é").is_err());
    assert!(IdempotencyKey::new("~!").is_ok());
    // The record and the execution share the partition of `<namespace>:<key>`.
    let c = PartitionConfig::default();
    let ns = Namespace::new("shop").unwrap();
    let k = IdempotencyKey::new("order-1").unwrap();
    assert_eq!(
        k.partition(&ns, &c),
        Partition::new(PartitionFamily::Flow, crc16(b"shop:order-1") % 256)
    );
}

fn reason<T: std::fmt::Debug>(r: Result<T, ParseError>) -> &'static str {
    match r {
        Err(ParseError::Malformed { reason, .. }) => reason,
        other => panic!("expected a malformed id, got {other:?}"),
    }
}

#[test]
fn id_refusals_say_why() {
    let p = |n: &str| ExecutionId::parse(&format!("{{fp:{n}}}:{HEX}"));
    assert_eq!(reason(p("")), "partition is not a number");
    assert_eq!(reason(p("123456")), "partition is not a number");
    assert_eq!(reason(p("1a")), "partition is not a number");
    assert_eq!(reason(p("+5")), "partition is not a number");
    assert_eq!(reason(p("65536")), "partition out of range");
    assert_eq!(reason(p("01")), "partition has a leading zero");
    assert_eq!(p("0").unwrap().partition_index(), 0);
    assert_eq!(
        reason(ExecutionId::parse("fp:1}:x")),
        "expected prefix {fp:N}:"
    );
    assert_eq!(
        reason(ExecutionId::parse("{fp:1:x")),
        "expected prefix {fp:N}:"
    );
    assert_eq!(
        reason(ExecutionId::parse("{fp:1}:abc")),
        "expected 32 lowercase hex digits"
    );
    let e = ExecutionId::new(1, 1);
    let a = |n: &str| AttemptId::parse(&format!("{e}/{n}"));
    for n in ["", "12345678901", "1a", "+5", "05", "0"] {
        assert_eq!(
            reason(a(n)),
            "attempt number is not a positive integer",
            "{n}"
        );
    }
    assert_eq!(reason(a("4294967296")), "attempt number out of range");
    assert_eq!(a("1234567890").unwrap().index, 1_234_567_890);
    assert_eq!(
        reason(AttemptId::parse("nothing")),
        "expected <execution id>/<n>"
    );
}
