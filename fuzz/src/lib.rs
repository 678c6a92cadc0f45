//! The logic of the fuzz targets, kept in a library so that each corpus can
//! be replayed by `cargo test` on stable (see the tests below) and the targets
//! in `fuzz_targets/` stay one-liners.
//!
//! * [`parse_ids`]: the input (lossy UTF-8) goes to every id and name parser;
//!   whatever parses must re-display as exactly the input.
//! * [`decode_replies`]: the input is read as a [`Reply`] tree by a small
//!   hand-written byte decoder ([`reply_from_bytes`]) and given to every
//!   contract decoder (the scanners' batch replies included); none may
//!   panic, and what decodes must be consistent.
//! * [`messages`]: the wake-up and ready notifications' parsers.
//! * [`tracker`]: the scanners' failure tracker against a model of its rules,
//!   and `scan::plan` against its laws.
//! * [`data_plane`]: arbitrary client calls, scanner batches and raw writes
//!   on a fresh MemoryStore running the `lua/` library; replies decode or are
//!   typed refusals, Lua never raises, the index invariant holds.
//! * [`cascade`]: the flow completion listener's dispatch planner under
//!   arbitrary events, against a model and its bounds, and the settlement
//!   reference on arbitrary small DAGs against the join rule.

pub mod cascade;
pub mod data_plane;
pub mod data_plane_seeds;
pub mod messages;
pub mod tracker;

pub use cascade::cascade;
pub use data_plane::data_plane;
pub use messages::messages;
pub use tracker::tracker;

use ff_core::contract::execution::{
    decode_claim, decode_create, decode_ended, decode_get, decode_renew,
};
use ff_core::contract::limits::MAX_CLAIM_BATCH;
use ff_core::contract::scan::{decode_batch, BatchFunction};
use ff_core::contract::CallError;
use ff_core::keys::IdempotencyKey;
use ff_core::name::MAX_NAME_LEN;
use ff_core::partition::{crc16, key_slot};
use ff_core::reply::Reply;
use ff_core::retry::RetryPolicy;
use ff_core::state::{AttemptState, Eligibility, LifecyclePhase, PublicState, TerminalOutcome};
use ff_core::{
    AttemptId, BudgetId, EdgeId, ExecutionId, FfError, FlowId, Kind, Lane, LeaseId, Namespace,
    PartitionConfig, PartitionFamily, QuotaId, SignalId, TagName, WaitpointId, WorkerInstance,
    WorkerName,
};

// ---------------------------------------------------------------------------
// parse_ids
// ---------------------------------------------------------------------------

fn name_ok(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Parse with each function; on success the value must display as the input.
macro_rules! reparse {
    ($s:expr, $($parse:path),+ $(,)?) => {{
        let s: &str = $s;
        $(
            if let Ok(v) = $parse(s) {
                assert_eq!(v.to_string(), s, "{} did not re-display its input", stringify!($parse));
            }
        )+
    }};
}

/// Fuzz target `parse_ids`.
pub fn parse_ids(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let s: &str = &text;

    reparse!(
        s,
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

    // Names: accepted iff 1..=64 bytes of [A-Za-z0-9_.-].
    let ok = name_ok(s);
    assert_eq!(Lane::new(s).is_ok(), ok);
    assert_eq!(Namespace::new(s).is_ok(), ok);
    assert_eq!(WorkerName::new(s).is_ok(), ok);
    assert_eq!(WorkerInstance::new(s).is_ok(), ok);
    assert_eq!(Kind::new(s).is_ok(), ok);
    assert_eq!(TagName::new(s).is_ok(), ok);
    assert_eq!(BudgetId::parse(s).is_ok(), ok);
    assert_eq!(QuotaId::parse(s).is_ok(), ok);

    // Execution ids: the partition is the number in the hash tag, and the id
    // is exactly the one `new` builds from its parts.
    if let Ok(eid) = ExecutionId::parse(s) {
        let tag = eid.partition().hash_tag();
        assert!(s.starts_with(&tag));
        let hex = &s[tag.len() + 1..];
        let random = u128::from_str_radix(hex, 16).expect("validated hex");
        assert_eq!(ExecutionId::new(eid.partition_index(), random), eid);
        assert_eq!(
            key_slot(ff_core::keys::exec(&eid).as_bytes()),
            key_slot(tag.as_bytes())
        );
    }
    if let Ok(a) = AttemptId::parse(s) {
        assert!(a.index >= 1);
    }
    if let Ok(id) = LeaseId::parse(s) {
        let v = u128::from_str_radix(id.as_str(), 16).expect("validated hex");
        assert_eq!(LeaseId::from_u128(v), id);
    }

    // Idempotency keys: 1..=200 printable ASCII, no space.
    let idem_ok =
        (1..=IdempotencyKey::MAX_LEN).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
    match IdempotencyKey::new(s) {
        Ok(k) => {
            assert!(idem_ok);
            assert_eq!(k.as_str(), s);
            let cfg = PartitionConfig::default();
            let ns = Namespace::default_namespace();
            let p = k.partition(&ns, &cfg);
            assert!(p.index < cfg.flow_partitions);
            assert_eq!(p, k.partition(&ns, &cfg));
        }
        Err(_) => assert!(!idem_ok),
    }

    // Retry policies: no panic; what decodes is valid and re-encodes stably.
    if let Ok(p) = RetryPolicy::decode(s) {
        assert!(p.validate().is_ok());
        assert_eq!(RetryPolicy::decode(&p.encode()), Ok(p));
    }

    // State spellings.
    macro_rules! spelling {
        ($($t:ty),+) => {$(
            if let Some(v) = <$t>::parse(s) {
                assert_eq!(v.as_str(), s);
            }
        )+};
    }
    spelling!(
        LifecyclePhase,
        Eligibility,
        TerminalOutcome,
        AttemptState,
        PublicState
    );

    // Error codes: `code` and `detail` split at the first NUL.
    let (code, detail) = s.split_once('\0').unwrap_or((s, ""));
    let _ = FfError::from_code(code, detail);

    // Partitions and slots.
    assert!(key_slot(data) < 16384);
    let cfg = PartitionConfig {
        flow_partitions: 16384,
        budget_partitions: 1,
        quota_partitions: 7,
    };
    for (family, count) in [
        (PartitionFamily::Flow, 16384),
        (PartitionFamily::Budget, 1),
        (PartitionFamily::Quota, 7),
    ] {
        let p = cfg.partition_of(family, s);
        assert_eq!(p.index, crc16(s.as_bytes()) % count);
    }
}

// ---------------------------------------------------------------------------
// decode_replies
// ---------------------------------------------------------------------------

/// Deepest array nesting [`reply_from_bytes`] builds.
pub const MAX_DEPTH: usize = 8;
/// Most nodes in one decoded tree.
pub const MAX_NODES: usize = 4096;

/// Words the contracts care about, reachable with two bytes (tag 7, index) so
/// the fuzzer does not have to guess them. Append only: seeds refer to indexes.
pub const WORDS: &[&str] = &[
    // 0: numbers
    "",
    "0",
    "1",
    "-1",
    "1000",
    "1001",
    "18446744073709551616",
    // 7: outcomes and errors
    "created",
    "duplicate",
    "completed",
    "failed",
    "cancelled",
    "retry_scheduled",
    "delayed",
    "stale_lease",
    "not_found",
    "not_active",
    "payload_too_large",
    "12:10",
    "invalid_argument",
    // 20: state spellings
    "runnable",
    "active",
    "suspended",
    "terminal",
    "eligible",
    "success",
    "running",
    "waiting",
    // 28: ids and values
    "{fp:7}:0000000000000000000000000000abcd",
    "00000000000000000000000000000001",
    "3:e:1000:60000",
    "0:f:0",
    "default",
    "email.send",
    // 34: ff_get hash fields
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
    "max_reclaims",
    "retention",
    "payload",
    "result",
    "error",
    "created",
    "ended",
    "tag.team",
    // 63: batch exception codes
    "filtered",
    "malformed",
    "error:boom",
    "released",
];

/// Byte-stream tags of [`reply_from_bytes`] (the tag byte is taken mod 8).
pub mod tag {
    pub const NIL: u8 = 0;
    /// One byte, as an `i8`.
    pub const SMALL_INT: u8 = 1;
    /// Eight bytes, little-endian `i64` (missing bytes are zero).
    pub const INT: u8 = 2;
    /// Length byte (255: a little-endian u16 length follows), then the bytes.
    pub const BULK: u8 = 3;
    /// As BULK, lossy UTF-8.
    pub const STATUS: u8 = 4;
    /// As BULK, lossy UTF-8.
    pub const ERROR: u8 = 5;
    /// Count byte (mod 33), then the elements.
    pub const ARRAY: u8 = 6;
    /// Index byte into [`super::WORDS`] (mod its length), as a bulk.
    pub const WORD: u8 = 7;
}

struct Input<'a> {
    data: &'a [u8],
    nodes: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        head
    }

    fn bytes(&mut self) -> Vec<u8> {
        let mut n = usize::from(self.byte().unwrap_or(0));
        if n == 255 {
            let lo = self.byte().unwrap_or(0);
            let hi = self.byte().unwrap_or(0);
            n = usize::from(u16::from_le_bytes([lo, hi]));
        }
        self.take(n).to_vec()
    }

    fn text(&mut self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    fn reply(&mut self, depth: usize) -> Reply {
        self.nodes += 1;
        let Some(t) = self.byte() else {
            return Reply::Nil;
        };
        match t % 8 {
            tag::NIL => Reply::Nil,
            tag::SMALL_INT => Reply::Int(i64::from(self.byte().unwrap_or(0) as i8)),
            tag::INT => {
                let mut b = [0u8; 8];
                let src = self.take(8);
                b[..src.len()].copy_from_slice(src);
                Reply::Int(i64::from_le_bytes(b))
            }
            tag::BULK => Reply::Bulk(self.bytes()),
            tag::STATUS => Reply::Status(self.text()),
            tag::ERROR => Reply::Error(self.text()),
            tag::ARRAY => {
                let n = usize::from(self.byte().unwrap_or(0) % 33);
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    if depth >= MAX_DEPTH || self.nodes >= MAX_NODES || self.data.is_empty() {
                        break;
                    }
                    items.push(self.reply(depth + 1));
                }
                Reply::Array(items)
            }
            _ => {
                let i = usize::from(self.byte().unwrap_or(0)) % WORDS.len();
                Reply::bulk(WORDS[i])
            }
        }
    }
}

/// Read one reply tree from the front of `data` (see [`tag`] for the format).
/// Total: every byte string yields a tree, bounded by [`MAX_DEPTH`] and
/// [`MAX_NODES`].
pub fn reply_from_bytes(data: &[u8]) -> Reply {
    Input { data, nodes: 0 }.reply(0)
}

/// The inverse of [`reply_from_bytes`] (never emits WORD), for writing seeds.
/// Panics on strings longer than 65535 bytes, arrays longer than 32, or trees
/// deeper than [`MAX_DEPTH`].
pub fn reply_to_bytes(r: &Reply) -> Vec<u8> {
    fn bytes(out: &mut Vec<u8>, t: u8, b: &[u8]) {
        out.push(t);
        if b.len() < 255 {
            out.push(b.len() as u8);
        } else {
            let n = u16::try_from(b.len()).expect("string too long for the seed format");
            out.push(255);
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(b);
    }
    fn go(out: &mut Vec<u8>, r: &Reply, depth: usize) {
        match r {
            Reply::Nil => out.push(tag::NIL),
            Reply::Int(i) => match i8::try_from(*i) {
                Ok(small) => out.extend_from_slice(&[tag::SMALL_INT, small as u8]),
                Err(_) => {
                    out.push(tag::INT);
                    out.extend_from_slice(&i.to_le_bytes());
                }
            },
            Reply::Bulk(b) => bytes(out, tag::BULK, b),
            Reply::Status(s) => bytes(out, tag::STATUS, s.as_bytes()),
            Reply::Error(s) => bytes(out, tag::ERROR, s.as_bytes()),
            Reply::Array(items) => {
                assert!(
                    items.len() <= 32 && depth < MAX_DEPTH,
                    "array too long or too deep for the seed format"
                );
                out.extend_from_slice(&[tag::ARRAY, items.len() as u8]);
                for item in items {
                    go(out, item, depth + 1);
                }
            }
        }
    }
    let mut out = Vec::new();
    go(&mut out, r, 0);
    out
}

/// Fuzz target `decode_replies`: every decoder on the reply read from `data`.
/// None may panic; what decodes must be self-consistent.
pub fn decode_replies(data: &[u8]) {
    let r = reply_from_bytes(data);
    // `{0, code, detail}` with a text code is a typed refusal for every
    // decoder, whatever bytes the detail holds.
    let refusal = match &r {
        Reply::Array(items) => {
            items.first() == Some(&Reply::Int(0))
                && items.get(1).and_then(Reply::text).is_some()
                && items
                    .get(2)
                    .is_none_or(|d| matches!(d, Reply::Bulk(_) | Reply::Status(_) | Reply::Int(_)))
        }
        _ => false,
    };
    if refusal {
        let rejected = |e: Result<(), CallError>| matches!(e, Err(CallError::Rejected(_)));
        assert!(rejected(decode_create(&r).map(drop)), "{r:?}");
        assert!(rejected(decode_claim(&r, &claim_lease(), 8).map(drop)));
        assert!(rejected(decode_renew(&r).map(drop)));
        assert!(rejected(decode_ended("ff_fail", &r).map(drop)));
        assert!(rejected(
            decode_get(&ExecutionId::new(7, 0xabcd), &r).map(drop)
        ));
        assert!(rejected(decode_batch("ff_promote_delayed", &r).map(drop)));
    }
    let _ = decode_create(&r);
    if let Ok(claimed) = decode_claim(&r, &claim_lease(), 8) {
        assert!(claimed.len() <= MAX_CLAIM_BATCH);
    }
    let _ = decode_renew(&r);
    for f in ["ff_complete", "ff_fail", "ff_delay", "ff_cancel"] {
        let _ = decode_ended(f, &r);
    }
    for f in BatchFunction::ALL {
        if let Ok(out) = decode_batch(f.function(), &r) {
            assert!(out.malformed as usize <= out.exceptions.len());
        }
    }
    if let Ok(rec) = decode_get(&ExecutionId::new(7, 0xabcd), &r) {
        assert_eq!(Some(rec.public_state), rec.state.public_state());
        assert_eq!(
            rec.lease.is_some(),
            rec.state.phase == LifecyclePhase::Active
        );
        if let Some(lease) = &rec.lease {
            assert_eq!(lease.execution, rec.execution);
            assert_eq!(lease.epoch, rec.lease_epoch);
        }
    }
}

/// The seed replies `corpus/decode_replies/` was written from.
/// The lease id a decoded claim reply is taken to answer (the seed's lease,
/// `seed_replies`), for a claim of up to 8.
fn claim_lease() -> LeaseId {
    LeaseId::from_u128(1)
}

pub fn seed_replies() -> Vec<(&'static str, Reply)> {
    let b = Reply::bulk;
    let eid = "{fp:7}:0000000000000000000000000000abcd";
    let lease = "00000000000000000000000000000001";
    let get_fields: Vec<Reply> = [
        ("id", eid),
        ("phase", "active"),
        ("ns", "default"),
        ("lane", "default"),
        ("kind", "email.send"),
        ("pri", "10"),
        ("att", "1"),
        ("att_state", "running"),
        ("epoch", "1"),
        ("lease_id", lease),
        ("lease_exp", "6000"),
        ("by", "w w1"),
        ("retry", "3:e:1000:60000"),
        ("created", "100"),
        ("tag.team", "infra"),
    ]
    .into_iter()
    .flat_map(|(k, v)| [b(k), b(v)])
    .collect();
    vec![
        (
            "create_ok",
            Reply::Array(vec![
                Reply::Int(1),
                b("created"),
                b(eid),
                b("runnable"),
                b("eligible"),
                b(""),
            ]),
        ),
        (
            "claim_one",
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Int(1),
                Reply::Int(1_700_000_030_000),
                b(eid),
                Reply::Int(1),
                b("email.send"),
                b("payload"),
                Reply::Int(0),
                Reply::Int(0),
            ]),
        ),
        (
            "claim_empty",
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Int(0),
                Reply::Int(1_700_000_030_000),
                Reply::Int(0),
                Reply::Int(0),
            ]),
        ),
        (
            "renew_ok",
            Reply::Array(vec![Reply::Int(1), Reply::Int(1_700_000_030_000)]),
        ),
        (
            "ended_retry",
            Reply::Array(vec![
                Reply::Int(1),
                b("retry_scheduled"),
                Reply::Int(1234),
                Reply::Int(0),
            ]),
        ),
        (
            "stale_lease",
            Reply::Array(vec![Reply::Int(0), b("stale_lease"), b("")]),
        ),
        (
            "get_active",
            Reply::Array([vec![Reply::Int(1), Reply::Int(5_000)], get_fields].concat()),
        ),
        (
            "batch_exceptions",
            Reply::Array(vec![
                Reply::Int(1),
                Reply::Int(2),
                Reply::Int(1),
                Reply::Int(1_700_000_000_500),
                b(eid),
                b("filtered"),
                b("junk"),
                b("malformed"),
                b(eid),
                b("error:boom"),
            ]),
        ),
        ("server_error", Reply::Error("ERR unknown function".into())),
        (
            "nested",
            Reply::Array(vec![
                Reply::Array(vec![Reply::Nil, Reply::Status("OK".into())]),
                Reply::Int(-5),
            ]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("corpus")
            .join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file())
            .map(|p| {
                let data = std::fs::read(&p).unwrap();
                (p, data)
            })
            .collect();
        files.sort();
        assert!(!files.is_empty(), "empty corpus {}", dir.display());
        files
    }

    /// Replays `corpus/<target>/` (seeds, plus anything cargo-fuzz added) and
    /// every prefix of each file.
    fn replay(target: &str, f: fn(&[u8])) {
        for (path, data) in corpus(target) {
            eprintln!("replaying {}", path.display());
            for end in 0..=data.len().min(512) {
                f(&data[..end]);
            }
            f(&data);
        }
    }

    #[test]
    fn replay_parse_ids_corpus() {
        replay("parse_ids", parse_ids);
    }

    #[test]
    fn replay_decode_replies_corpus() {
        replay("decode_replies", decode_replies);
    }

    #[test]
    fn replay_messages_corpus() {
        replay("messages", messages);
    }

    #[test]
    fn replay_tracker_corpus() {
        replay("tracker", tracker);
    }

    #[test]
    fn replay_cascade_corpus() {
        replay("cascade", cascade);
    }

    /// Not every prefix: each run starts a Lua state and loads the library.
    #[test]
    fn replay_data_plane_corpus() {
        for (path, data) in corpus("data_plane") {
            eprintln!("replaying {}", path.display());
            for end in [0, data.len() / 3, data.len() / 2, data.len() * 2 / 3] {
                data_plane(&data[..end]);
            }
            data_plane(&data);
        }
    }

    /// Each seed file exists and holds exactly its bytes.
    fn check_seeds(target: &str, seeds: Seeds) {
        let on_disk = corpus(target);
        for (name, want) in seeds {
            assert!(
                on_disk.iter().any(|(p, d)| p.ends_with(name) && *d == want),
                "{target} seed {name} missing or stale: cargo test -- --ignored write_seed_corpus"
            );
        }
    }

    /// Seed files by name.
    type Seeds = Vec<(&'static str, Vec<u8>)>;

    /// Every target's seeds.
    fn all_seeds() -> Vec<(&'static str, Seeds)> {
        vec![
            (
                "decode_replies",
                seed_replies()
                    .into_iter()
                    .map(|(n, r)| (n, reply_to_bytes(&r)))
                    .collect(),
            ),
            (
                "messages",
                messages::seeds()
                    .into_iter()
                    .map(|(n, b)| (n, b.to_vec()))
                    .collect(),
            ),
            ("tracker", tracker::seeds()),
            ("cascade", cascade::seeds()),
            (
                "data_plane",
                data_plane_seeds::seeds()
                    .into_iter()
                    .map(|(n, ops)| (n, data_plane_seeds::encode_ops(&ops)))
                    .collect(),
            ),
        ]
    }

    #[test]
    fn checked_in_seeds_are_current() {
        for (target, seeds) in all_seeds() {
            check_seeds(target, seeds);
        }
    }

    #[test]
    fn data_plane_seeds_decode_to_their_ops_and_reach_their_paths() {
        use data_plane::{ops_from_bytes, run_ops};
        for (name, ops) in data_plane_seeds::seeds() {
            assert!(ops.len() <= data_plane::MAX_OPS);
            let bytes = data_plane_seeds::encode_ops(&ops);
            assert_eq!(
                ops_from_bytes(&bytes),
                ops,
                "{name} does not decode to its ops"
            );
            let stats = run_ops(&ops);
            eprintln!("{name}: {stats:?}");
            let ok = |f: &str| stats.ok.get(f).copied().unwrap_or(0);
            let refused = |what: &str| {
                stats
                    .refused
                    .iter()
                    .filter(|(k, _)| k.starts_with(what))
                    .map(|(_, n)| *n)
                    .sum::<u32>()
            };
            match name {
                "happy_path" => {
                    assert_eq!(ok("ff_create"), 2);
                    assert_eq!(ok("ff_claim"), 1);
                    assert_eq!(ok("ff_complete"), 1);
                    assert_eq!(ok("ff_release"), 1);
                    assert_eq!(ok("ff_get"), 2);
                }
                "retry_then_fail" => {
                    assert_eq!(ok("ff_fail"), 3);
                    assert_eq!(ok("ff_claim"), 2);
                }
                "timeouts_and_scanners" => {
                    assert_eq!(ok("ff_create"), 2);
                    assert_eq!(refused(""), 0);
                }
                "cancel_and_purge" => {
                    assert_eq!(ok("ff_cancel"), 3);
                    assert_eq!(refused("ff_get not_found"), 2);
                }
                "idempotent_create" => {
                    assert_eq!(ok("ff_create"), 2);
                    assert_eq!(refused("ff_create invalid_argument"), 1);
                    assert_eq!(refused("ff_get not_found"), 1);
                }
                "stale_leases" => {
                    assert_eq!(refused("ff_renew stale_lease"), 1);
                    assert_eq!(refused("ff_renew invalid_argument"), 1);
                    assert_eq!(ok("ff_delay"), 1);
                    assert_eq!(refused("ff_complete not_active"), 1);
                }
                "regress_negative_zero" => {
                    assert_eq!(ok("ff_create"), 1);
                    assert_eq!(ok("ff_get"), 2);
                    assert_eq!(ok("ff_claim"), 1);
                }
                "regress_refusal_detail_bytes" => {
                    assert_eq!(refused("ff_delay invalid_argument"), 1);
                }
                "regress_corrupt_numbers" => {
                    assert_eq!(ok("ff_claim"), 2);
                    assert_eq!(ok("ff_reconcile_indexes"), 1);
                }
                "regress_corrupt_lane_and_deadline" => {
                    assert_eq!(ok("ff_claim"), 1);
                    assert_eq!(ok("ff_expire_deadlines"), 1);
                }
                "flow_dag" => {
                    assert_eq!(ok("ff_create_flow"), 1);
                    assert_eq!(ok("ff_create"), 3);
                    assert_eq!(ok("ff_add_edge"), 2);
                    assert_eq!(refused("ff_add_edge cycle"), 1);
                    assert_eq!(ok("ff_claim"), 2);
                    assert_eq!(ok("ff_complete"), 3);
                    assert_eq!(ok("ff_flow_drain"), 1);
                    assert_eq!(ok("ff_flow_get"), 1);
                }
                "flow_cancel" => {
                    assert_eq!(ok("ff_create"), 3);
                    assert_eq!(refused("ff_create invalid_argument"), 1);
                    assert_eq!(refused("ff_add_edge cycle"), 1);
                    assert_eq!(ok("ff_cancel_flow"), 2);
                    assert_eq!(refused("ff_create flow_cancelled"), 1);
                    assert_eq!(refused("ff_add_edge flow_cancelled"), 1);
                    assert_eq!(ok("ff_complete"), 0);
                    assert_eq!(ok("ff_flow_get"), 1);
                    assert_eq!(refused("ff_flow_get not_found"), 1);
                }
                "bad_arguments" => {
                    assert_eq!(ok(""), 0);
                    assert_eq!(stats.ok.len(), 0);
                }
                "admission" => {
                    assert_eq!(ok("ff_admit"), 1);
                    assert_eq!(ok("ff_report_usage"), 1);
                    assert_eq!(ok("ff_block"), 1);
                    assert_eq!(ok("ff_breach_cancel"), 1);
                    assert_eq!(ok("ff_partition_heads"), 1);
                    assert_eq!(ok("ff_quota_release"), 1);
                    assert_eq!(refused(""), 0);
                }
                _ => {}
            }
            assert_eq!(stats.raised, 0, "{name} raised");
        }
    }

    #[test]
    fn byte_format_round_trips_and_seeds_decode() {
        for (name, r) in seed_replies() {
            assert_eq!(reply_from_bytes(&reply_to_bytes(&r)), r, "{name}");
        }
        let decoded = |name: &str| {
            seed_replies()
                .into_iter()
                .find(|(n, _)| *n == name)
                .map(|(_, r)| reply_from_bytes(&reply_to_bytes(&r)))
        };
        assert!(decode_create(&decoded("create_ok").unwrap()).is_ok());
        assert_eq!(
            decode_claim(&decoded("claim_one").unwrap(), &claim_lease(), 8)
                .unwrap()
                .len(),
            1
        );
        assert!(decode_renew(&decoded("renew_ok").unwrap()).is_ok());
        assert!(decode_ended("ff_fail", &decoded("ended_retry").unwrap()).is_ok());
        assert!(decode_get(
            &ExecutionId::new(7, 0xabcd),
            &decoded("get_active").unwrap()
        )
        .is_ok());
        let batch =
            decode_batch("ff_promote_delayed", &decoded("batch_exceptions").unwrap()).unwrap();
        assert_eq!(
            (batch.acted, batch.exceptions.len(), batch.malformed),
            (2, 3, 1)
        );
    }

    #[test]
    fn word_tag_reads_words() {
        assert_eq!(
            reply_from_bytes(&[tag::WORD, 14]),
            Reply::bulk("stale_lease")
        );
        assert_eq!(
            reply_from_bytes(&[tag::WORD, 28]),
            Reply::bulk("{fp:7}:0000000000000000000000000000abcd")
        );
        assert_eq!(reply_from_bytes(&[tag::WORD, 34]), Reply::bulk("id"));
    }

    /// Rewrites every target's seed files (not what cargo-fuzz added):
    /// `cargo test -- --ignored write_seed_corpus`.
    #[test]
    #[ignore]
    fn write_seed_corpus() {
        for (target, seeds) in all_seeds() {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("corpus")
                .join(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (name, bytes) in seeds {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        // A cheap deterministic sweep (xorshift) for when cargo-fuzz is not at hand.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            parse_ids(&data);
            decode_replies(&data);
            messages(&data);
            tracker(&data);
        }
        // The data plane is slower (a Lua state per input): fewer, longer inputs.
        for _ in 0..DATA_PLANE_SWEEP {
            let len = 64 + (next() % 448) as usize;
            let data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            data_plane(&data);
        }
    }

    const DATA_PLANE_SWEEP: usize = 1000;
}
