//! Contracts of partition ownership (`lua/ownership.lua`): engine replicas
//! heartbeat, claim, renew and release partition leases held in Valkey.
//!
//! Ownership belongs to the engine cluster, not to a partition: its two keys
//! share one fixed hash tag, so each call is a single-slot FCALL wherever that
//! slot lives in a Redis Cluster.

use super::{ok_fields, Call, CallError};
use crate::ownership::{Lease, View};
use crate::reply::{Fields, Reply};

/// Member id → heartbeat expiry (server ms).
pub const MEMBERS_KEY: &str = "ff:own:{ff-own}:members";
/// Partition index → `"<owner> <epoch> <expires_ms>"` (owner empty once released).
pub const LEASES_KEY: &str = "ff:own:{ff-own}:leases";

/// Heartbeat, claim and release leases, read the result (one call).
pub const SYNC: &str = "ff_own_sync";
/// Read members and leases (read-only).
pub const VIEW: &str = "ff_own_view";
/// Leave: drop the heartbeat and hand every lease back.
pub const LEAVE: &str = "ff_own_leave";

fn keys() -> Vec<String> {
    vec![MEMBERS_KEY.to_owned(), LEASES_KEY.to_owned()]
}

/// Heartbeat `member` (alive for `ttl_ms`), release `release`, claim `claim`
/// (each only if free or expired at the server's time), renew every live
/// lease `member` holds to `ttl_ms`; answers the view after these changes.
/// ARGV: member, ttl_ms, partition count, number of claims, claims…, releases….
pub fn sync(member: &str, ttl_ms: u64, partitions: u16, claim: &[u16], release: &[u16]) -> Call {
    let mut call = Call::new(SYNC, keys())
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
pub fn view() -> Call {
    Call::new(VIEW, keys()).read_only()
}

/// `member` leaves: its live leases are released and its heartbeat removed.
pub fn leave(member: &str) -> Call {
    Call::new(LEAVE, keys()).arg(member)
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
        let c = sync("e-1", 6_000, 16, &[1, 2], &[7]);
        let args: Vec<String> = c
            .args
            .iter()
            .map(|a| String::from_utf8(a.clone()).unwrap())
            .collect();
        assert_eq!(args, ["e-1", "6000", "16", "2", "1", "2", "7"]);
        assert_eq!(c.keys, [MEMBERS_KEY, LEASES_KEY]);
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
