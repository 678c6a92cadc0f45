//! Contracts of partition ownership (`lua/ownership.lua`): engine replicas
//! heartbeat, claim, renew and release partition leases held in Valkey.
//!
//! Ownership belongs to a ring of engines, not to a partition: a ring's two
//! keys share one fixed hash tag, so each call is a single-slot FCALL wherever
//! that slot lives in a Redis Cluster. Engines with different scanner filters
//! act on different executions, so each filter has a ring of its own, and each
//! ring covers every partition ([`Ring::of`]).

use super::scan::ScannerFilter;
use super::{ok_fields, Call, CallError};
use crate::ownership::{Lease, View};
use crate::reply::{Fields, Reply};

/// What every ring's keys start with (one fixed hash tag: one slot).
pub const RING_PREFIX: &str = "ff:own:{ff-own}:";
/// The unfiltered ring's member id → heartbeat expiry (server ms).
pub const MEMBERS_KEY: &str = "ff:own:{ff-own}:members";
/// The unfiltered ring's partition index → `"<owner> <epoch> <expires_ms>"`
/// (owner empty once released).
pub const LEASES_KEY: &str = "ff:own:{ff-own}:leases";

/// The ring of engines that split the partitions between them: those with one
/// scanner filter. Its keys: `MEMBERS_KEY` / `LEASES_KEY` unfiltered, else
/// `<RING_PREFIX><16 hex of the filter>:members` / `…:leases`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ring {
    members: String,
    leases: String,
}

impl Ring {
    /// The ring of the engines with `filter`.
    pub fn of(filter: &ScannerFilter) -> Self {
        if *filter == ScannerFilter::default() {
            return Self {
                members: MEMBERS_KEY.to_owned(),
                leases: LEASES_KEY.to_owned(),
            };
        }
        let (tag, value) = filter
            .instance_tag
            .as_ref()
            .map_or(("", ""), |(n, v)| (n.as_str(), v.as_str()));
        let ns = filter.namespace.as_ref().map_or("", |n| n.as_str());
        // FNV-1a 64 over the three parts, each ended by a NUL (no part holds
        // one): stable across builds and processes, unlike std's hasher.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for part in [ns, tag, value] {
            for b in part.bytes().chain([0]) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
        Self {
            members: format!("{RING_PREFIX}{h:016x}:members"),
            leases: format!("{RING_PREFIX}{h:016x}:leases"),
        }
    }

    fn keys(&self) -> Vec<String> {
        vec![self.members.clone(), self.leases.clone()]
    }
}

impl Default for Ring {
    /// The unfiltered engines' ring.
    fn default() -> Self {
        Self::of(&ScannerFilter::default())
    }
}

/// Heartbeat, claim and release leases, read the result (one call).
pub const SYNC: &str = "ff_own_sync";
/// Read members and leases (read-only).
pub const VIEW: &str = "ff_own_view";
/// Leave: drop the heartbeat and hand every lease back.
pub const LEAVE: &str = "ff_own_leave";

/// Heartbeat `member` (alive for `ttl_ms`), release `release`, claim `claim`
/// (each only if free or expired at the server's time), renew every live
/// lease `member` holds to `ttl_ms`; answers the view after these changes.
/// ARGV: member, ttl_ms, partition count, number of claims, claims…, releases….
///
/// Repeat: a heartbeat and renewal at the second send's time: a partition the
/// first claimed is the member's own (renewed, same epoch), one it released
/// stays free (or another's); the same view but for the expiries.
pub fn sync(
    ring: &Ring,
    member: &str,
    ttl_ms: u64,
    partitions: u16,
    claim: &[u16],
    release: &[u16],
) -> Call {
    let mut call = Call::new(SYNC, ring.keys())
        .arg(member)
        .arg(ttl_ms)
        .arg(partitions)
        .arg(claim.len());
    for p in claim.iter().chain(release) {
        call = call.arg(p);
    }
    call
}

/// The current view, changing nothing (FCALL_RO).
///
/// Repeat: read-only: the view as it is now.
pub fn view(ring: &Ring) -> Call {
    Call::new(VIEW, ring.keys()).read_only()
}

/// `member` leaves: its live leases are released and its heartbeat removed.
///
/// Repeat: nothing is left to release: answered 0.
pub fn leave(ring: &Ring, member: &str) -> Call {
    Call::new(LEAVE, ring.keys()).arg(member)
}

/// `{1, now_ms, member count, (member, expires_ms)*, (partition, owner, epoch, expires_ms)*}`.
pub fn decode_view(function: &'static str, reply: &Reply) -> Result<View, CallError> {
    let mut f = ok_fields(function, reply)?;
    let now_ms = non_negative(&mut f, "now")?;
    let count = non_negative(&mut f, "member count")?;
    let mut view = View {
        now_ms,
        ..Default::default()
    };
    for _ in 0..count {
        let m = f.text("member")?;
        let exp = non_negative(&mut f, "member expiry")?;
        view.members.push((m, exp));
    }
    while f.remaining() > 0 {
        let p = non_negative(&mut f, "partition")?;
        let p = u16::try_from(p).map_err(|_| f.error(format!("partition {p} out of range")))?;
        let owner = f.text("owner")?;
        let epoch = non_negative(&mut f, "epoch")?;
        let expires_ms = non_negative(&mut f, "lease expiry")?;
        view.leases.insert(
            p,
            Lease {
                owner,
                epoch,
                expires_ms,
            },
        );
    }
    Ok(view)
}

/// `{1, released}`.
pub fn decode_leave(reply: &Reply) -> Result<u64, CallError> {
    let mut f = ok_fields(LEAVE, reply)?;
    non_negative(&mut f, "released")
}

fn non_negative(f: &mut Fields<'_>, what: &str) -> Result<u64, CallError> {
    let v = f.int(what)?;
    Ok(u64::try_from(v).map_err(|_| f.error(format!("{what} is negative: {v}")))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_lists_claims_then_releases() {
        let c = sync(&Ring::default(), "e-1", 6_000, 16, &[1, 2], &[7]);
        let args: Vec<String> = c
            .args
            .iter()
            .map(|a| String::from_utf8(a.clone()).unwrap())
            .collect();
        assert_eq!(args, ["e-1", "6000", "16", "2", "1", "2", "7"]);
        assert_eq!(c.keys, [MEMBERS_KEY, LEASES_KEY]);
    }

    #[test]
    fn each_filter_has_a_ring_of_its_own() {
        use crate::name::{Namespace, TagName};
        assert_eq!(MEMBERS_KEY, format!("{RING_PREFIX}members"));
        assert_eq!(LEASES_KEY, format!("{RING_PREFIX}leases"));
        let ns = |n: &str| ScannerFilter {
            namespace: Some(Namespace::new(n).unwrap()),
            instance_tag: None,
        };
        let tagged = ScannerFilter {
            namespace: None,
            instance_tag: Some((TagName::new("region").unwrap(), "eu".to_owned())),
        };
        let rings = [
            Ring::default(),
            Ring::of(&ns("a")),
            Ring::of(&ns("b")),
            Ring::of(&tagged),
        ];
        for (i, a) in rings.iter().enumerate() {
            assert!(a.members.starts_with(RING_PREFIX) && a.leases.starts_with(RING_PREFIX));
            assert_eq!(a.members.replace(":members", ":leases"), a.leases);
            for b in &rings[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Stable: a filter names the same ring in every process.
        assert_eq!(
            Ring::of(&ns("a")).members,
            "ff:own:{ff-own}:ac804b820e4fe984:members"
        );
    }

    #[test]
    fn a_view_decodes() {
        let r = Reply::Array(vec![
            Reply::Int(1),
            Reply::Int(100),
            Reply::Int(1),
            Reply::bulk("a"),
            Reply::Int(200),
            Reply::Int(3),
            Reply::bulk("a"),
            Reply::Int(2),
            Reply::Int(150),
        ]);
        let v = decode_view(SYNC, &r).unwrap();
        assert_eq!(v.members, vec![("a".to_owned(), 200)]);
        assert_eq!(v.owner_of(3), Some("a"));
        assert!(decode_view(SYNC, &Reply::Array(vec![Reply::Int(1), Reply::Int(-1)])).is_err());
    }
}
