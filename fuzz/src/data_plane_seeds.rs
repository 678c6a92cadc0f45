//! The seeds of `corpus/data_plane/`, written as [`Op`]s, and the encoder that
//! turns them into the bytes `arbitrary` reads back (its format for the
//! derived types: an enum is a little-endian `u32` `x` choosing variant
//! `(x * count) >> 32`, then the variant's fields in order; a struct is its
//! fields in order; `Option` a byte, odd for `Some`; integers little-endian;
//! [`Text`], [`Blob`] and [`List`] are this crate's own, see their docs).
//! `cargo test` checks every seed decodes back to the same operations, so a
//! change of format shows; `cargo test -- --ignored write_seed_corpus`
//! rewrites the files.

use crate::data_plane::*;

pub trait Encode {
    fn encode(&self, out: &mut Vec<u8>);
}

fn variant(out: &mut Vec<u8>, index: u32, count: u32) {
    assert!(index < count);
    let x = (u64::from(index) << 32).div_ceil(u64::from(count));
    out.extend_from_slice(&u32::try_from(x).expect("fits").to_le_bytes());
}

impl Encode for u8 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(*self);
    }
}

impl Encode for bool {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl Encode for u64 {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.encode(out);
            }
        }
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }
}

impl<T: Encode> Encode for Box<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        (**self).encode(out);
    }
}

impl Encode for Text {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::try_from(self.0.len()).expect("text of at most 255 bytes"));
        out.extend_from_slice(&self.0);
    }
}

impl Encode for Blob {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Blob::Bytes(b) => {
                assert!(b.len() < 255, "blob of at most 254 bytes");
                Text(b.clone()).encode(out);
            }
            Blob::Max => out.extend_from_slice(&[255, 0]),
            Blob::TooLarge => out.extend_from_slice(&[255, 1]),
        }
    }
}

impl<T: Encode> Encode for List<T> {
    fn encode(&self, out: &mut Vec<u8>) {
        assert!(self.0.len() <= 8, "lists of at most 8");
        out.push(self.0.len() as u8);
        for v in &self.0 {
            v.encode(out);
        }
    }
}

impl Encode for Num {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Num::Zero => variant(out, 0, 6),
            Num::Small(n) => {
                variant(out, 1, 6);
                n.encode(out);
            }
            Num::Thousands(n) => {
                variant(out, 2, 6);
                n.encode(out);
            }
            Num::Edge(n) => {
                variant(out, 3, 6);
                n.encode(out);
            }
            Num::Any(n) => {
                variant(out, 4, 6);
                n.encode(out);
            }
            Num::Text(t) => {
                variant(out, 5, 6);
                t.encode(out);
            }
        }
    }
}

impl Encode for Name {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Name::Known(i) => {
                variant(out, 0, 2);
                i.encode(out);
            }
            Name::Raw(t) => {
                variant(out, 1, 2);
                t.encode(out);
            }
        }
    }
}

impl Encode for Retry {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Retry::Fixed(m, d) => {
                variant(out, 0, 3);
                (*m, d.clone()).encode(out);
            }
            Retry::Exponential(m, i, x) => {
                variant(out, 1, 3);
                (*m, (i.clone(), x.clone())).encode(out);
            }
            Retry::Raw(t) => {
                variant(out, 2, 3);
                t.encode(out);
            }
        }
    }
}

impl Encode for Member {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Member::Exec(i) => {
                variant(out, 0, 2);
                i.encode(out);
            }
            Member::Raw(t) => {
                variant(out, 1, 2);
                t.encode(out);
            }
        }
    }
}

impl Encode for IndexSel {
    fn encode(&self, out: &mut Vec<u8>) {
        let i = match self {
            IndexSel::Eligible(lane) => {
                variant(out, 0, 7);
                lane.encode(out);
                return;
            }
            IndexSel::Delayed => 1,
            IndexSel::LeaseExpiry => 2,
            IndexSel::AttemptTimeout => 3,
            IndexSel::Deadline => 4,
            IndexSel::Terminal => 5,
            IndexSel::All => 6,
        };
        variant(out, i, 7);
    }
}

impl Encode for Field {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Field::Known(i) => {
                variant(out, 0, 2);
                i.encode(out);
            }
            Field::Raw(t) => {
                variant(out, 1, 2);
                t.encode(out);
            }
        }
    }
}

impl Encode for Value {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Known(i) => {
                variant(out, 0, 3);
                i.encode(out);
            }
            Value::Num(n) => {
                variant(out, 1, 3);
                n.encode(out);
            }
            Value::Raw(t) => {
                variant(out, 2, 3);
                t.encode(out);
            }
        }
    }
}

impl Encode for LeaseSel {
    fn encode(&self, out: &mut Vec<u8>) {
        (self.index, self.tweak).encode(out);
    }
}

impl Encode for Filter {
    fn encode(&self, out: &mut Vec<u8>) {
        self.namespace.encode(out);
        self.tag.encode(out);
    }
}

impl Encode for CreateOp {
    fn encode(&self, out: &mut Vec<u8>) {
        self.exec.encode(out);
        self.namespace.encode(out);
        self.lane.encode(out);
        self.kind.encode(out);
        self.priority.encode(out);
        self.payload.encode(out);
        self.delay_ms.encode(out);
        self.attempt_timeout_ms.encode(out);
        self.deadline_ms.encode(out);
        self.retry.encode(out);
        self.max_reclaims.encode(out);
        self.retention_ms.encode(out);
        self.idempotency.encode(out);
        self.tags.encode(out);
        self.membership.encode(out);
    }
}

impl Encode for Join {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Join::All => variant(out, 0, 4),
            Join::Any => variant(out, 1, 4),
            Join::Quorum(n) => {
                variant(out, 2, 4);
                n.encode(out);
            }
            Join::Raw(t) => {
                variant(out, 3, 4);
                t.encode(out);
            }
        }
    }
}

impl Encode for Flag {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Flag::No => variant(out, 0, 3),
            Flag::Yes => variant(out, 1, 3),
            Flag::Raw(t) => {
                variant(out, 2, 3);
                t.encode(out);
            }
        }
    }
}

impl Encode for FlowSel {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            FlowSel::Known(i) => {
                variant(out, 0, 2);
                i.encode(out);
            }
            FlowSel::Raw(t) => {
                variant(out, 1, 2);
                t.encode(out);
            }
        }
    }
}

impl Encode for MembershipOp {
    fn encode(&self, out: &mut Vec<u8>) {
        self.flow.encode(out);
        self.join.encode(out);
        self.cancel_remaining.encode(out);
        self.place.encode(out);
    }
}

const KEYS: u32 = 9;

impl Encode for Key {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Key::Exec(i) => {
                variant(out, 0, KEYS);
                i.encode(out);
            }
            Key::Index(p, idx) => {
                variant(out, 1, KEYS);
                p.encode(out);
                idx.encode(out);
            }
            Key::Idempotency(p, t) => {
                variant(out, 2, KEYS);
                p.encode(out);
                t.encode(out);
            }
            Key::Raw(t) => {
                variant(out, 3, KEYS);
                t.encode(out);
            }
            Key::Flow(f) => {
                variant(out, 4, KEYS);
                f.encode(out);
            }
            Key::Budget(i) => {
                variant(out, 5, KEYS);
                i.encode(out);
            }
            Key::Quota(i) => {
                variant(out, 6, KEYS);
                i.encode(out);
            }
            Key::Workers => variant(out, 7, KEYS),
            Key::Blocked(p, r) => {
                variant(out, 8, KEYS);
                p.encode(out);
                r.encode(out);
            }
        }
    }
}

const ARGS: u32 = 9;

impl Encode for Arg {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Arg::Exec(i) => {
                variant(out, 0, ARGS);
                i.encode(out);
            }
            Arg::LeaseId(l) => {
                variant(out, 1, ARGS);
                l.encode(out);
            }
            Arg::Epoch(l) => {
                variant(out, 2, ARGS);
                l.encode(out);
            }
            Arg::Name(n) => {
                variant(out, 3, ARGS);
                n.encode(out);
            }
            Arg::Num(n) => {
                variant(out, 4, ARGS);
                n.encode(out);
            }
            Arg::Text(t) => {
                variant(out, 5, ARGS);
                t.encode(out);
            }
            Arg::Flow(f) => {
                variant(out, 6, ARGS);
                f.encode(out);
            }
            Arg::Budget(i) => {
                variant(out, 7, ARGS);
                i.encode(out);
            }
            Arg::Quota(i) => {
                variant(out, 8, ARGS);
                i.encode(out);
            }
        }
    }
}

const OPS: u32 = 27;

impl Encode for ReportOp {
    fn encode(&self, out: &mut Vec<u8>) {
        self.lease.encode(out);
        self.how.encode(out);
        self.text.encode(out);
    }
}

impl Encode for Op {
    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::Create(c) => {
                variant(out, 0, OPS);
                c.encode(out);
            }
            Op::Claim {
                partition,
                lane,
                worker,
                instance,
                ttl_ms,
                count,
            } => {
                variant(out, 1, OPS);
                partition.encode(out);
                lane.encode(out);
                worker.encode(out);
                instance.encode(out);
                ttl_ms.encode(out);
                count.encode(out);
            }
            Op::Renew { lease, ttl_ms } => {
                variant(out, 2, OPS);
                lease.encode(out);
                ttl_ms.encode(out);
            }
            Op::Complete { lease, result } => {
                variant(out, 3, OPS);
                lease.encode(out);
                result.encode(out);
            }
            Op::Fail {
                lease,
                error,
                retryable,
            } => {
                variant(out, 4, OPS);
                lease.encode(out);
                error.encode(out);
                retryable.encode(out);
            }
            Op::Delay { lease, delay_ms } => {
                variant(out, 5, OPS);
                lease.encode(out);
                delay_ms.encode(out);
            }
            Op::Release { lease } => {
                variant(out, 6, OPS);
                lease.encode(out);
            }
            Op::Cancel { exec, reason } => {
                variant(out, 7, OPS);
                exec.encode(out);
                reason.encode(out);
            }
            Op::Get { exec } => {
                variant(out, 8, OPS);
                exec.encode(out);
            }
            Op::Scan {
                function,
                partition,
                filter,
                ids,
            } => {
                variant(out, 9, OPS);
                function.encode(out);
                partition.encode(out);
                filter.encode(out);
                ids.encode(out);
            }
            Op::ScanDue {
                function,
                partition,
                filter,
                batch,
            } => {
                variant(out, 10, OPS);
                function.encode(out);
                partition.encode(out);
                filter.encode(out);
                batch.encode(out);
            }
            Op::HSet { exec, field, value } => {
                variant(out, 11, OPS);
                exec.encode(out);
                field.encode(out);
                value.encode(out);
            }
            Op::HDel { exec, field } => {
                variant(out, 12, OPS);
                exec.encode(out);
                field.encode(out);
            }
            Op::Del { exec } => {
                variant(out, 13, OPS);
                exec.encode(out);
            }
            Op::ZAdd {
                partition,
                index,
                member,
                score,
            } => {
                variant(out, 14, OPS);
                partition.encode(out);
                index.encode(out);
                member.encode(out);
                score.encode(out);
            }
            Op::ZRem {
                partition,
                index,
                member,
            } => {
                variant(out, 15, OPS);
                partition.encode(out);
                index.encode(out);
                member.encode(out);
            }
            Op::SAdd { partition, member } => {
                variant(out, 16, OPS);
                partition.encode(out);
                member.encode(out);
            }
            Op::SRem { partition, member } => {
                variant(out, 17, OPS);
                partition.encode(out);
                member.encode(out);
            }
            Op::Advance { ms } => {
                variant(out, 18, OPS);
                ms.encode(out);
            }
            Op::Raw {
                function,
                keys,
                args,
            } => {
                variant(out, 19, OPS);
                function.encode(out);
                keys.encode(out);
                args.encode(out);
            }
            Op::CreateFlow { flow, namespace } => {
                variant(out, 20, OPS);
                flow.encode(out);
                namespace.encode(out);
            }
            Op::AddEdge {
                flow,
                parent,
                child,
                pass_data,
                twist,
            } => {
                variant(out, 21, OPS);
                flow.encode(out);
                parent.encode(out);
                child.encode(out);
                pass_data.encode(out);
                twist.encode(out);
            }
            Op::CancelFlow { flow, reason } => {
                variant(out, 22, OPS);
                flow.encode(out);
                reason.encode(out);
            }
            Op::Drain { partition, budget } => {
                variant(out, 23, OPS);
                partition.encode(out);
                budget.encode(out);
            }
            Op::GetFlow { flow } => {
                variant(out, 24, OPS);
                flow.encode(out);
            }
            Op::CreateMany(cs) => {
                variant(out, 25, OPS);
                cs.encode(out);
            }
            Op::EndMany(reports) => {
                variant(out, 26, OPS);
                reports.encode(out);
            }
        }
    }
}

/// The bytes [`ops_from_bytes`] reads as `ops`.
pub fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        op.encode(&mut out);
    }
    out
}

// ---------------------------------------------------------------------------
// The seeds

// Indexes into NAMES.
const DEFAULT: u8 = 0;
const L2: u8 = 2;
const KIND: u8 = 4;
const WORKER: u8 = 5;

// Indexes into BatchFunction::ALL.
const PROMOTE: u8 = 0;
const RECLAIM: u8 = 1;
const EXPIRE_ATTEMPTS: u8 = 2;
const EXPIRE_DEADLINES: u8 = 3;
const PURGE: u8 = 4;
const RECONCILE: u8 = 5;

fn name(i: u8) -> Name {
    Name::Known(i)
}

fn no_filter() -> Filter {
    Filter {
        namespace: None,
        tag: None,
    }
}

/// A valid create of execution `exec` on the default lane.
pub fn create(exec: u8) -> CreateOp {
    CreateOp {
        exec,
        namespace: name(DEFAULT),
        lane: name(DEFAULT),
        kind: name(KIND),
        priority: Num::Small(5),
        payload: Blob::Bytes(b"hello".to_vec()),
        delay_ms: Num::Zero,
        attempt_timeout_ms: Num::Zero,
        deadline_ms: Num::Zero,
        retry: Retry::Fixed(0, Num::Zero),
        max_reclaims: Num::Small(1),
        retention_ms: Num::Thousands(60),
        idempotency: None,
        tags: List(vec![(name(L2), Text::of("infra"))]),
        membership: None,
    }
}

/// A valid create of a member of flow `flow` (`exec` is moved to its
/// partition, see [`local_exec`]).
pub fn member(exec: u8, flow: u8, join: Join, cancel_remaining: bool) -> CreateOp {
    CreateOp {
        membership: Some(MembershipOp {
            flow: FlowSel::Known(flow),
            join,
            cancel_remaining: if cancel_remaining {
                Flag::Yes
            } else {
                Flag::No
            },
            place: 1,
        }),
        ..create(exec)
    }
}

/// The edge `parent -> child` of flow `flow`, both local indexes of its
/// partition (see [`Op::AddEdge`]: the child is named as an offset).
fn edge(flow: u8, parent: u8, child: u8, pass_data: bool) -> Op {
    let per = (EXECS / PARTITIONS as usize) as u8;
    assert!(parent < per && child < per && parent != child);
    Op::AddEdge {
        flow,
        parent,
        child: (child + per - parent - 1) % per,
        pass_data,
        twist: 7,
    }
}

fn claim(partition: u8, count: u8) -> Op {
    claim_for(partition, count, Num::Thousands(30))
}

fn claim_for(partition: u8, count: u8, ttl_ms: Num) -> Op {
    Op::Claim {
        partition,
        lane: name(DEFAULT),
        worker: name(WORKER),
        instance: name(L2),
        ttl_ms,
        count,
    }
}

fn lease(index: u8) -> LeaseSel {
    LeaseSel { index, tweak: 0 }
}

fn due(function: u8, partition: u8) -> Op {
    Op::ScanDue {
        function,
        partition,
        filter: no_filter(),
        batch: 7,
    }
}

/// Index of a string in EDGES, FIELDS or VALUES.
fn at(list: &[&str], s: &str) -> u8 {
    list.iter().position(|x| *x == s).expect("listed") as u8
}

fn set(exec: u8, field: &str, value: Value) -> Op {
    Op::HSet {
        exec,
        field: Field::Known(at(FIELDS, field)),
        value,
    }
}

fn raw(s: &str) -> Value {
    Value::Raw(Text::of(s))
}

/// The seeds, by file name. Those named `regress_*` reproduce findings (see
/// docs/fuzzing.md).
pub fn seeds() -> Vec<(&'static str, Vec<Op>)> {
    let boxed = |c: CreateOp| Op::Create(Box::new(c));
    let neg_zero = || Num::Edge(at(EDGES, "-0"));
    let all_due = |partition| -> Vec<Op> { (0..6).map(|f| due(f, partition)).collect() };
    vec![
        (
            "happy_path",
            vec![
                boxed(create(0)),
                boxed(create(2)),
                claim(0, 2),
                Op::Renew {
                    lease: lease(0),
                    ttl_ms: Num::Thousands(60),
                },
                Op::Complete {
                    lease: lease(0),
                    result: Blob::Bytes(b"done".to_vec()),
                },
                Op::Release { lease: lease(1) },
                Op::Get { exec: 0 },
                Op::Get { exec: 2 },
            ],
        ),
        (
            "retry_then_fail",
            vec![
                boxed(CreateOp {
                    retry: Retry::Exponential(2, Num::Small(5), Num::Small(20)),
                    ..create(1)
                }),
                claim(1, 1),
                Op::Fail {
                    lease: lease(0),
                    error: Text::of("boom"),
                    retryable: Num::Small(1),
                },
                // The same call again is answered from the fence.
                Op::Fail {
                    lease: lease(0),
                    error: Text::of("boom"),
                    retryable: Num::Small(1),
                },
                Op::Advance { ms: Num::Small(10) },
                due(PROMOTE, 1),
                claim(1, 1),
                Op::Fail {
                    lease: lease(1),
                    error: Text::of("boom again"),
                    retryable: Num::Zero,
                },
                Op::Get { exec: 1 },
            ],
        ),
        (
            "timeouts_and_scanners",
            vec![
                boxed(CreateOp {
                    delay_ms: Num::Small(5),
                    deadline_ms: Num::Thousands(5),
                    attempt_timeout_ms: Num::Small(200),
                    max_reclaims: Num::Small(1),
                    ..create(0)
                }),
                boxed(CreateOp {
                    deadline_ms: Num::Thousands(1),
                    ..create(2)
                }),
                Op::Advance { ms: Num::Small(10) },
                due(PROMOTE, 0),
                claim_for(0, 1, Num::Small(100)),
                Op::Advance {
                    ms: Num::Small(150),
                },
                due(RECLAIM, 0),
                claim_for(0, 3, Num::Thousands(1)),
                Op::Advance {
                    ms: Num::Small(250),
                },
                due(EXPIRE_ATTEMPTS, 0),
                Op::Advance {
                    ms: Num::Thousands(6),
                },
                due(EXPIRE_DEADLINES, 0),
                Op::Get { exec: 0 },
            ],
        ),
        (
            "cancel_and_purge",
            vec![
                boxed(CreateOp {
                    retention_ms: Num::Zero,
                    ..create(3)
                }),
                boxed(create(5)),
                claim(1, 1),
                Op::Cancel {
                    exec: 3,
                    reason: Text::of("no longer needed"),
                },
                Op::Cancel {
                    exec: 3,
                    reason: Text::of("again"),
                },
                Op::Cancel {
                    exec: 5,
                    reason: Text::default(),
                },
                due(PURGE, 1),
                Op::Get { exec: 3 },
                Op::Advance {
                    ms: Num::Thousands(61),
                },
                due(PURGE, 1),
                Op::Get { exec: 5 },
            ],
        ),
        (
            "idempotent_create",
            vec![
                boxed(CreateOp {
                    idempotency: Some((Text::of("order-17"), Num::Thousands(60))),
                    ..create(0)
                }),
                boxed(CreateOp {
                    idempotency: Some((Text::of("order-17"), Num::Thousands(60))),
                    ..create(2)
                }),
                boxed(CreateOp {
                    idempotency: Some((Text::of("order-17"), Num::Zero)),
                    ..create(4)
                }),
                Op::Get { exec: 2 },
            ],
        ),
        (
            "stale_leases",
            vec![
                boxed(create(0)),
                claim(0, 1),
                Op::Renew {
                    lease: LeaseSel { index: 0, tweak: 1 },
                    ttl_ms: Num::Thousands(1),
                },
                Op::Delay {
                    lease: LeaseSel { index: 0, tweak: 2 },
                    delay_ms: Num::Small(5),
                },
                Op::Release {
                    lease: LeaseSel { index: 0, tweak: 3 },
                },
                Op::Delay {
                    lease: lease(0),
                    delay_ms: Num::Small(5),
                },
                Op::Complete {
                    lease: lease(0),
                    result: Blob::Bytes(Vec::new()),
                },
                Op::Renew {
                    lease: lease(0),
                    ttl_ms: Num::Edge(0),
                },
            ],
        ),
        (
            "bad_arguments",
            vec![
                boxed(CreateOp {
                    namespace: name(9),
                    ..create(0)
                }),
                boxed(CreateOp {
                    priority: Num::Edge(7),
                    ..create(0)
                }),
                boxed(CreateOp {
                    payload: Blob::TooLarge,
                    ..create(0)
                }),
                boxed(CreateOp {
                    retry: Retry::Raw(Text::of("3:x:1")),
                    ..create(0)
                }),
                claim_for(0, 1, Num::Small(99)),
                claim(0, 0),
                Op::Raw {
                    function: 0,
                    keys: List(vec![Key::Exec(0)]),
                    args: List(vec![Arg::Exec(0), Arg::Name(name(DEFAULT))]),
                },
                Op::Raw {
                    function: 9,
                    keys: List(vec![Key::Index(0, IndexSel::Terminal)]),
                    args: List(vec![Arg::Text(Text::of("bad name"))]),
                },
            ],
        ),
        (
            "corruption_repaired",
            vec![
                boxed(create(1)),
                boxed(create(3)),
                Op::HSet {
                    exec: 1,
                    field: Field::Known(1),
                    value: Value::Known(1),
                },
                Op::ZAdd {
                    partition: 1,
                    index: IndexSel::Delayed,
                    member: Member::Exec(3),
                    score: Num::Small(1),
                },
                Op::ZAdd {
                    partition: 1,
                    index: IndexSel::Deadline,
                    member: Member::Raw(Text::of("junk")),
                    score: Num::Zero,
                },
                Op::SAdd {
                    partition: 1,
                    member: Member::Exec(5),
                },
                due(RECONCILE, 1),
                due(PROMOTE, 1),
                due(EXPIRE_DEADLINES, 1),
                Op::Scan {
                    function: RECONCILE,
                    partition: 1,
                    filter: Filter {
                        namespace: Some(name(DEFAULT)),
                        tag: Some((name(L2), Text::of("infra"))),
                    },
                    ids: List(vec![Member::Exec(1), Member::Exec(3), Member::Exec(5)]),
                },
                Op::Del { exec: 3 },
                claim(1, 2),
            ],
        ),
        (
            // Lua's int_arg took "-0" for negative zero and stored "-0": the
            // record no longer decoded (ff_get, inspect, the simulator).
            "regress_negative_zero",
            vec![
                boxed(CreateOp {
                    priority: neg_zero(),
                    attempt_timeout_ms: neg_zero(),
                    max_reclaims: neg_zero(),
                    retention_ms: neg_zero(),
                    ..create(0)
                }),
                Op::Get { exec: 0 },
                claim(0, 1),
                Op::Get { exec: 0 },
            ],
        ),
        (
            // A refusal echoing a non-UTF-8 argument did not decode as a
            // typed refusal (core read the detail as strict UTF-8).
            "regress_refusal_detail_bytes",
            vec![
                boxed(create(0)),
                claim(0, 1),
                Op::Delay {
                    lease: lease(0),
                    delay_ms: Num::Text(Text(vec![0xff, 0xfe, b'1'])),
                },
            ],
        ),
        (
            // Scanners and claim raised on number fields that do not read as
            // numbers ('garbage', '' and 'nan': Lua's tonumber reads "nan").
            "regress_corrupt_numbers",
            [
                vec![
                    boxed(CreateOp {
                        deadline_ms: Num::Small(5),
                        attempt_timeout_ms: Num::Small(5),
                        ..create(0)
                    }),
                    boxed(CreateOp {
                        deadline_ms: Num::Small(5),
                        ..create(2)
                    }),
                    boxed(CreateOp {
                        retention_ms: Num::Zero,
                        ..create(4)
                    }),
                    claim(0, 1),
                    Op::Cancel {
                        exec: 4,
                        reason: Text::default(),
                    },
                    set(0, "att_due", raw("nan")),
                    set(0, "pri", raw("nan")),
                    set(0, "retention", raw("nan")),
                    set(2, "deadline", Value::Known(at(VALUES, "garbage"))),
                    set(2, "kind", raw("bad name")),
                    set(4, "ended", Value::Known(at(VALUES, ""))),
                    set(4, "idem", raw("ff:idx:{fp:0}:all")),
                    Op::Advance {
                        ms: Num::Small(200),
                    },
                ],
                all_due(0),
                vec![claim(0, 2)],
            ]
            .concat(),
        ),
        (
            "regress_corrupt_lane_and_deadline",
            [
                vec![
                    boxed(CreateOp {
                        deadline_ms: Num::Small(5),
                        ..create(1)
                    }),
                    boxed(create(3)),
                    Op::HDel {
                        exec: 1,
                        field: Field::Known(at(FIELDS, "lane")),
                    },
                    set(3, "deadline", raw("nan")),
                    set(3, "epoch", raw("-1")),
                    Op::Advance {
                        ms: Num::Small(200),
                    },
                ],
                all_due(1),
                vec![claim(1, 2)],
            ]
            .concat(),
        ),
        (
            // Flow 0 (partition 0): executions 0 and 2 feed 4 (join all, 0
            // passes its result); a cycle is refused; the parents run, then
            // the child they released.
            "flow_dag",
            vec![
                Op::CreateFlow {
                    flow: 0,
                    namespace: name(DEFAULT),
                },
                boxed(member(0, 0, Join::All, false)),
                boxed(member(1, 0, Join::All, false)),
                boxed(member(2, 0, Join::All, false)),
                edge(0, 0, 2, true),
                edge(0, 1, 2, false),
                edge(0, 2, 0, false),
                claim(0, 3),
                Op::Complete {
                    lease: lease(0),
                    result: Blob::Bytes(b"left".to_vec()),
                },
                Op::Complete {
                    lease: lease(1),
                    result: Blob::Bytes(b"right".to_vec()),
                },
                claim(0, 1),
                Op::Complete {
                    lease: lease(2),
                    result: Blob::Bytes(b"joined".to_vec()),
                },
                Op::Drain {
                    partition: 0,
                    budget: Num::Small(10),
                },
                Op::GetFlow { flow: 0 },
            ],
        ),
        (
            // Flow 1 (partition 1): executions 1 and 3 feed 5 (join any,
            // cancel the rest); a bad join and a self-edge are refused; the
            // flow is cancelled with one member running, then refuses new
            // members and edges, and goes with its last member's purge.
            "flow_cancel",
            vec![
                Op::CreateFlow {
                    flow: 1,
                    namespace: name(DEFAULT),
                },
                boxed(member(0, 1, Join::Any, true)),
                boxed(member(1, 1, Join::Any, true)),
                boxed(member(2, 1, Join::Any, true)),
                boxed(member(3, 1, Join::Quorum(0), false)),
                edge(1, 0, 2, false),
                edge(1, 1, 2, false),
                Op::AddEdge {
                    flow: 1,
                    parent: 0,
                    child: 0,
                    pass_data: false,
                    twist: 2,
                },
                claim(1, 1),
                Op::CancelFlow {
                    flow: 1,
                    reason: Text::of("stop"),
                },
                Op::CancelFlow {
                    flow: 1,
                    reason: Text::default(),
                },
                Op::Drain {
                    partition: 1,
                    budget: Num::Small(1),
                },
                Op::Complete {
                    lease: lease(0),
                    result: Blob::Bytes(Vec::new()),
                },
                boxed(member(3, 1, Join::All, false)),
                edge(1, 0, 1, false),
                Op::GetFlow { flow: 1 },
                Op::Advance {
                    ms: Num::Thousands(61),
                },
                due(PURGE, 1),
                Op::GetFlow { flow: 1 },
            ],
        ),
        (
            "batches",
            vec![
                // Three creations of partition 0 in one call, then one with a
                // stray of partition 1 (refused whole).
                Op::CreateMany(List(vec![create(0), create(2), create(4)])),
                Op::CreateMany(List(vec![create(6), create(1)])),
                claim(0, 3),
                Op::EndMany(List(vec![
                    ReportOp {
                        lease: lease(0),
                        how: 0,
                        text: Text(b"done".to_vec()),
                    },
                    ReportOp {
                        lease: lease(0),
                        how: 0,
                        text: Text(b"done".to_vec()),
                    },
                    ReportOp {
                        lease: lease(1),
                        how: 1,
                        text: Text(b"again".to_vec()),
                    },
                    ReportOp {
                        lease: lease(2),
                        how: 2,
                        text: Text::default(),
                    },
                ])),
                Op::EndMany(List(vec![ReportOp {
                    lease: lease(2),
                    how: 3,
                    text: Text::default(),
                }])),
                Op::Get { exec: 0 },
            ],
        ),
        (
            "admission",
            vec![
                raw_call(
                    "ff_quota_define",
                    vec![Key::Quota(0)],
                    vec![
                        Arg::Quota(0),
                        Arg::Num(Num::Thousands(60)),
                        Arg::Num(Num::Zero),
                        Arg::Num(Num::Small(1)),
                    ],
                ),
                raw_call(
                    "ff_budget_define",
                    vec![Key::Budget(0)],
                    vec![
                        Arg::Budget(0),
                        Arg::Num(Num::Zero),
                        Arg::Num(Num::Small(1)),
                        Arg::Text(Text::of("tokens")),
                        Arg::Num(Num::Small(1)),
                        Arg::Num(Num::Zero),
                        Arg::Text(Text::of("cancel")),
                    ],
                ),
                boxed(create(0)),
                claim(0, 1),
                raw_call(
                    "ff_admit",
                    vec![Key::Quota(0)],
                    vec![Arg::Quota(0), Arg::Exec(0), Arg::Epoch(lease(0))],
                ),
                raw_call(
                    "ff_report_usage",
                    vec![Key::Budget(0)],
                    vec![
                        Arg::Budget(0),
                        Arg::Exec(0),
                        Arg::Num(Num::Small(1)),
                        Arg::Num(Num::Small(1)),
                        Arg::Num(Num::Small(1)),
                        Arg::Text(Text::of("tokens")),
                        Arg::Num(Num::Small(5)),
                    ],
                ),
                raw_call(
                    "ff_block",
                    vec![Key::Exec(0)],
                    vec![
                        Arg::Exec(0),
                        Arg::LeaseId(lease(0)),
                        Arg::Epoch(lease(0)),
                        Arg::Text(Text::of("budget")),
                        Arg::Budget(0),
                    ],
                ),
                raw_call(
                    "ff_partition_heads",
                    vec![Key::Index(0, IndexSel::All)],
                    vec![
                        Arg::Text(Text::of("blocked_budget")),
                        Arg::Text(Text::of("delayed")),
                    ],
                ),
                raw_call(
                    "ff_breach_cancel",
                    vec![Key::Blocked(0, 0)],
                    vec![Arg::Budget(0), Arg::Exec(0)],
                ),
                raw_call(
                    "ff_quota_release",
                    vec![Key::Quota(0)],
                    vec![
                        Arg::Quota(0),
                        Arg::Exec(0),
                        Arg::Epoch(lease(0)),
                        Arg::Num(Num::Zero),
                    ],
                ),
                raw_call(
                    "ff_worker_register",
                    vec![Key::Workers],
                    vec![
                        Arg::Text(Text::of("w1")),
                        Arg::Num(Num::Thousands(5)),
                        Arg::Text(Text::of("gpu")),
                    ],
                ),
                raw_call("ff_workers_live", vec![Key::Workers], vec![]),
                raw_call("ff_budget_get", vec![Key::Budget(0)], vec![Arg::Budget(0)]),
            ],
        ),
    ]
}

/// A raw call of the named library function.
fn raw_call(function: &str, keys: Vec<Key>, args: Vec<Arg>) -> Op {
    let index = FUNCTIONS
        .iter()
        .position(|f| *f == function)
        .expect("a library function");
    Op::Raw {
        function: u8::try_from(index).expect("fewer than 256 functions"),
        keys: List(keys),
        args: List(args),
    }
}
