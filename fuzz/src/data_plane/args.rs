//! Argument types: the pieces an [`Op`] is made of, each read with
//! `arbitrary` and rendered into a call's (possibly malformed) arguments.

use super::*;

/// Arbitrary bytes: a length byte, then that many bytes (fewer at the end of
/// the input).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Text {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = usize::from(u8::arbitrary(u)?).min(u.len());
        Ok(Text(u.bytes(n)?.to_vec()))
    }
}

impl Text {
    pub fn of(s: &str) -> Self {
        Text(s.as_bytes().to_vec())
    }

    pub(crate) fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }
}

/// A payload or result: as [`Text`], except that a length byte of 255 followed
/// by 0 or 1 stands for the largest accepted size or one byte more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blob {
    Bytes(Vec<u8>),
    Max,
    TooLarge,
}

impl<'a> Arbitrary<'a> for Blob {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u8::arbitrary(u)?;
        if n == 255 {
            match u.peek_bytes(1) {
                Some([0]) => {
                    u.bytes(1)?;
                    return Ok(Blob::Max);
                }
                Some([1]) => {
                    u.bytes(1)?;
                    return Ok(Blob::TooLarge);
                }
                _ => {}
            }
        }
        let n = usize::from(n).min(u.len());
        Ok(Blob::Bytes(u.bytes(n)?.to_vec()))
    }
}

impl Blob {
    pub(crate) fn bytes(&self) -> Vec<u8> {
        match self {
            Blob::Bytes(b) => b.clone(),
            Blob::Max => vec![b'x'; MAX_PAYLOAD_BYTES],
            Blob::TooLarge => vec![b'x'; MAX_PAYLOAD_BYTES + 1],
        }
    }
}

/// Up to 8 elements: a count byte (mod 9), then the elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T>(pub Vec<T>);

impl<'a, T: Arbitrary<'a>> Arbitrary<'a> for List<T> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = u8::arbitrary(u)? % 9;
        let mut v = Vec::with_capacity(usize::from(n));
        for _ in 0..n {
            if u.is_empty() {
                break;
            }
            v.push(T::arbitrary(u)?);
        }
        Ok(List(v))
    }
}

/// Numbers as they may reach an FCALL argument: mostly small, sometimes at a
/// bound or in an odd spelling, sometimes anything.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Num {
    Zero,
    Small(u8),
    Thousands(u8),
    Edge(u8),
    Any(u64),
    Text(Text),
}

/// Boundary values and odd spellings Lua's `tonumber` accepts or refuses.
pub const EDGES: &[&str] = &[
    "0",
    "1",
    "-1",
    "-0",
    "99",
    "100",
    "1000",
    "1001",
    "10000",
    "10001",
    "86400000",
    "86400001",
    "2592000000",
    "2592000001",
    "31536000000",
    "31536000001",
    "9007199254740991",
    "9007199254740993",
    "18446744073709551616",
    "1.5",
    "1e3",
    "0x10",
    " 7",
    "7 ",
    "",
    "inf",
    "nan",
    "-inf",
    "1e400",
];

impl Num {
    pub fn render(&self) -> Vec<u8> {
        match self {
            Num::Zero => b"0".to_vec(),
            Num::Small(n) => n.to_string().into_bytes(),
            Num::Thousands(n) => (u64::from(*n) * 1000).to_string().into_bytes(),
            Num::Edge(i) => EDGES[usize::from(*i) % EDGES.len()].as_bytes().to_vec(),
            Num::Any(n) => n.to_string().into_bytes(),
            Num::Text(t) => t.0.clone(),
        }
    }

    /// The value as a plain decimal u64, if it is one.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        std::str::from_utf8(&self.render()).ok()?.parse().ok()
    }
}

/// A name argument (lane, namespace, kind, worker, tag name): mostly valid.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Name {
    Known(u8),
    Raw(Text),
}

pub const NAMES: &[&str] = &[
    "default",
    "default",
    "l2",
    "ns1",
    "email.send",
    "w-1_x",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "",
    "bad name",
    "caf\u{e9}",
    "{fp:1}",
];

impl Name {
    pub fn render(&self) -> Vec<u8> {
        match self {
            Name::Known(i) => NAMES[usize::from(*i) % NAMES.len()].as_bytes().to_vec(),
            Name::Raw(t) => t.0.clone(),
        }
    }

    pub(crate) fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.render()).into_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Retry {
    Fixed(u8, Num),
    Exponential(u8, Num, Num),
    Raw(Text),
}

impl Retry {
    pub(crate) fn render(&self) -> Vec<u8> {
        let s = |n: &Num| String::from_utf8_lossy(&n.render()).into_owned();
        match self {
            Retry::Fixed(m, d) => format!("{m}:f:{}", s(d)).into_bytes(),
            Retry::Exponential(m, i, x) => format!("{m}:e:{}:{}", s(i), s(x)).into_bytes(),
            Retry::Raw(t) => t.0.clone(),
        }
    }
}

/// An index member: one of the executions, or anything.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Member {
    Exec(u8),
    Raw(Text),
}

impl Member {
    pub(crate) fn render(&self) -> String {
        match self {
            Member::Exec(i) => exec_id(*i).to_string(),
            Member::Raw(t) => t.lossy(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum IndexSel {
    Eligible(Name),
    Delayed,
    LeaseExpiry,
    AttemptTimeout,
    Deadline,
    Terminal,
    All,
}

impl IndexSel {
    pub(crate) fn key(&self, p: u8) -> String {
        let pk = PartitionKeys::new(partition(p));
        match self {
            IndexSel::Eligible(lane) => format!("ff:idx:{}:eligible:{}", pk.tag(), lane.lossy()),
            IndexSel::Delayed => pk.delayed(),
            IndexSel::LeaseExpiry => pk.lease_expiry(),
            IndexSel::AttemptTimeout => pk.attempt_timeout(),
            IndexSel::Deadline => pk.deadline(),
            IndexSel::Terminal => pk.terminal(),
            IndexSel::All => pk.all(),
        }
    }
}

/// A field of an execution hash: one the Lua uses, or anything.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Field {
    Known(u8),
    Raw(Text),
}

pub const FIELDS: &[&str] = &[
    "id",
    "phase",
    "elig",
    "outcome",
    "ns",
    "lane",
    "kind",
    "pri",
    "payload",
    "created",
    "att",
    "retries",
    "reclaims",
    "epoch",
    "att_timeout",
    "retry",
    "max_reclaims",
    "retention",
    "idem",
    "deadline",
    "due",
    "lease_id",
    "lease_exp",
    "by",
    "att_state",
    "att_due",
    "fence",
    "result",
    "error",
    "ended",
    "tag.team",
    "flow",
    "join",
    "jc",
    "ready_at",
    "dcur",
];

impl Field {
    pub(crate) fn render(&self) -> Vec<u8> {
        match self {
            Field::Known(i) => FIELDS[usize::from(*i) % FIELDS.len()].as_bytes().to_vec(),
            Field::Raw(t) => t.0.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Value {
    Known(u8),
    Num(Num),
    Raw(Text),
}

pub const VALUES: &[&str] = &[
    "",
    "garbage",
    "runnable",
    "active",
    "suspended",
    "terminal",
    "eligible",
    "delayed",
    "success",
    "failed",
    "cancelled",
    "expired",
    "default",
    "l2",
    "1:f:0",
    "3:e:10:1000",
    "00000000000000000000000000000001",
    "00000000000000000000000000000001:1|complete|completed:0",
    "00000000000000000000000000000001:1|fail|bogus:5",
    "{fp:0}:000000000000000000000000f0220000",
];

impl Value {
    pub(crate) fn render(&self) -> Vec<u8> {
        match self {
            Value::Known(i) => VALUES[usize::from(*i) % VALUES.len()].as_bytes().to_vec(),
            Value::Num(n) => n.render(),
            Value::Raw(t) => t.0.clone(),
        }
    }
}

/// One of the leases handed out so far (or a made-up one before any), as is
/// or altered (`tweak % 4`: as is, next epoch, another lease id, epoch 0).
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct LeaseSel {
    pub index: u8,
    pub tweak: u8,
}

/// A scanner filter: namespace and instance tag, each optional.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct Filter {
    pub namespace: Option<Name>,
    pub tag: Option<(Name, Text)>,
}

/// A member's join, as `ff_create` reads it.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Join {
    All,
    Any,
    /// `q:<n>`, 0 and above the largest quorum included.
    Quorum(u8),
    Raw(Text),
}

impl Join {
    pub(crate) fn render(&self) -> Vec<u8> {
        match self {
            Join::All => b"all".to_vec(),
            Join::Any => b"any".to_vec(),
            Join::Quorum(n) => format!("q:{n}").into_bytes(),
            Join::Raw(t) => t.0.clone(),
        }
    }
}

/// A `0`/`1` argument.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Flag {
    No,
    Yes,
    Raw(Text),
}

impl Flag {
    pub(crate) fn render(&self) -> Vec<u8> {
        match self {
            Flag::No => b"0".to_vec(),
            Flag::Yes => b"1".to_vec(),
            Flag::Raw(t) => t.0.clone(),
        }
    }
}

/// A flow argument: one of the flows, or anything.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum FlowSel {
    Known(u8),
    Raw(Text),
}

/// The flow membership arguments of a create.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct MembershipOp {
    pub flow: FlowSel,
    pub join: Join,
    pub cancel_remaining: Flag,
    /// `place % 4 == 0`: the execution stays as named (maybe in another
    /// partition than the flow); otherwise it is moved to the flow's, and
    /// with 3 the other arguments are replaced by valid ones
    /// ([`CreateOp::plain`]) so that members, edges and joins get going.
    pub place: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub struct CreateOp {
    pub exec: u8,
    pub namespace: Name,
    pub lane: Name,
    pub kind: Name,
    pub priority: Num,
    pub payload: Blob,
    pub delay_ms: Num,
    pub attempt_timeout_ms: Num,
    pub deadline_ms: Num,
    pub retry: Retry,
    pub max_reclaims: Num,
    pub retention_ms: Num,
    /// Key and TTL.
    pub idempotency: Option<(Text, Num)>,
    pub tags: List<(Name, Text)>,
    pub membership: Option<MembershipOp>,
}

impl CreateOp {
    /// A valid create of `exec` with these membership arguments.
    pub fn plain(exec: u8, membership: Option<MembershipOp>) -> Self {
        CreateOp {
            exec,
            namespace: Name::Known(0),
            lane: Name::Known(0),
            kind: Name::Known(4),
            priority: Num::Zero,
            payload: Blob::Bytes(Vec::new()),
            delay_ms: Num::Zero,
            attempt_timeout_ms: Num::Zero,
            deadline_ms: Num::Zero,
            retry: Retry::Fixed(0, Num::Zero),
            max_reclaims: Num::Zero,
            retention_ms: Num::Thousands(60),
            idempotency: None,
            tags: List(Vec::new()),
            membership,
        }
    }
}

/// A KEYS entry of a [`Op::Raw`] call.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Key {
    Exec(u8),
    Index(u8, IndexSel),
    Idempotency(u8, Text),
    Raw(Text),
    Flow(u8),
    /// One of two budgets ([`budget_name`]).
    Budget(u8),
    /// One of two quotas ([`quota_name`]).
    Quota(u8),
    /// The worker registrations.
    Workers,
    /// A blocked index (budget, quota, route) of a partition.
    Blocked(u8, u8),
}

/// An ARGV entry of a [`Op::Raw`] call.
#[derive(Debug, Clone, PartialEq, Eq, Arbitrary)]
pub enum Arg {
    Exec(u8),
    LeaseId(LeaseSel),
    Epoch(LeaseSel),
    Name(Name),
    Num(Num),
    Text(Text),
    Flow(u8),
    /// A budget's name ([`budget_name`]).
    Budget(u8),
    /// A quota's name ([`quota_name`]).
    Quota(u8),
}

/// The two budgets and two quotas raw calls name.
pub(crate) fn budget_name(i: u8) -> BudgetId {
    BudgetId::parse(["b0", "b1"][usize::from(i % 2)]).expect("a budget name")
}

pub(crate) fn quota_name(i: u8) -> QuotaId {
    QuotaId::parse(["q0", "q1"][usize::from(i % 2)]).expect("a quota name")
}
