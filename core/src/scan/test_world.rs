//! A model store for the schedule's tests: sorted-set indexes, sets walked by
//! SSCAN, and the batch functions as `lua/scanners.lua` answers them, with
//! failure injection. It answers what [`Schedule::poll_reads`] and
//! [`Schedule::poll_calls`] ask synchronously, and records every round, so a
//! test can assert what a cycle sent. [`cycle`] drives one cycle the way the
//! shell's runner does.

use super::*;
use crate::contract::scan::BatchFunction;
use crate::keys::PartitionKeys;
use std::collections::{BTreeMap, BTreeSet};

pub const DELAYED: BatchFunction = BatchFunction::PromoteDelayed;
pub const SWEEP: BatchFunction = BatchFunction::ReconcileIndexes;

/// The index key `f` reads in flow partition `p`.
pub fn key(f: BatchFunction, p: u16) -> String {
    f.index(&PartitionKeys::new(Partition::new(
        PartitionFamily::Flow,
        p,
    )))
}

/// The head read of `f`'s index in flow partition `p`.
pub fn read_cmd(f: BatchFunction, p: u16, limit: usize) -> Vec<String> {
    crate::scan::read_heads(
        f,
        &PartitionKeys::new(Partition::new(PartitionFamily::Flow, p)),
        limit,
    )
}

/// The flow partition a key belongs to (`…{fp:N}…`).
pub fn partition_of(key: &str) -> u16 {
    let rest = &key[key.find("{fp:").expect("a flow partition key") + 4..];
    rest[..rest.find('}').unwrap()].parse().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

/// The member ids a batch call carries (after the three filter arguments).
pub fn ids_of(call: &Call) -> Vec<String> {
    call.args[3..].iter().map(|a| text(a)).collect()
}

/// (index key, ids) of every call of one round.
pub fn batches(calls: &[Call]) -> Vec<(String, Vec<String>)> {
    calls
        .iter()
        .map(|c| (c.keys[0].clone(), ids_of(c)))
        .collect()
}

pub fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The model store, and what the schedule asked of it.
#[derive(Debug, Default)]
pub struct World {
    /// Sorted-set indexes: key → (score, member), kept sorted.
    pub zsets: BTreeMap<String, BTreeSet<(u64, String)>>,
    /// Sets walked by SSCAN: key → members (the cursor is an offset).
    pub sets: BTreeMap<String, Vec<String>>,
    /// SSCAN returns this many members a page instead of COUNT.
    pub sscan_page: Option<usize>,
    /// Every read round, in order.
    pub reads: Vec<Vec<Vec<String>>>,
    /// Every call round, in order.
    pub calls: Vec<Vec<Call>>,
    /// Per cycle, every partition a read or call touched.
    pub touched: Vec<BTreeSet<u16>>,
    /// Keys whose read fails with a store error.
    pub read_errors: BTreeSet<String>,
    /// Keys whose read answers something that is not an array.
    pub malformed_reads: BTreeSet<String>,
    /// Members that make a batch of several fail as a whole (store error),
    /// and fail with `error:x` when sent alone.
    pub poison: BTreeSet<String>,
    /// Members that fail with `error:x` (and stay in their index).
    pub failing: BTreeSet<String>,
    /// Members outside this engine's filter (`filtered`; they stay).
    pub filtered: BTreeSet<String>,
    /// The next this many batch calls of several members fail as a whole.
    pub batch_errors: usize,
    /// Every call fails with a store error.
    pub calls_fail: bool,
    /// Every call answers a reply of the wrong shape.
    pub calls_misshapen: bool,
    /// Members found stale: counted as repaired, not acted.
    pub stale: BTreeSet<String>,
    /// (key, score, member) written by someone else after the read, just
    /// before the next call lands (no wake-up seen).
    pub arrivals: Vec<(String, u64, String)>,
    /// Members whose record is unusable: answered `malformed` and taken out
    /// of their index, as `run_batch` in `lua/scanners.lua` does.
    pub malformed_members: BTreeSet<String>,
    /// Server time of the cycle in progress (due members only are sent).
    pub now: u64,
    next_id: u64,
}

impl World {
    pub fn zadd(&mut self, key: &str, score: u64, member: &str) {
        let z = self.zsets.entry(key.to_owned()).or_default();
        z.retain(|(_, m)| m != member);
        z.insert((score, member.to_owned()));
    }

    pub fn zmembers(&self, key: &str) -> Vec<String> {
        self.zsets
            .get(key)
            .map(|z| z.iter().map(|(_, m)| m.clone()).collect())
            .unwrap_or_default()
    }

    /// The earliest score of `DELAYED`'s index in partition `p`.
    pub fn earliest(&self, p: u16) -> Option<u64> {
        self.zsets
            .get(&key(DELAYED, p))
            .and_then(|s| s.first())
            .map(|(s, _)| *s)
    }

    /// Add a fresh member to `DELAYED`'s index in partition `p`; returns its
    /// id and the wake-up the data plane would publish (when it becomes the
    /// index's earliest).
    pub fn add(&mut self, p: u16, score: u64) -> (String, Option<Wake>) {
        self.next_id += 1;
        let id = format!("m{}", self.next_id);
        let before = self.earliest(p);
        self.zadd(&key(DELAYED, p), score, &id);
        let wake = before.is_none_or(|b| score < b).then_some(Wake::At {
            partition: p,
            due_ms: score,
        });
        (id, wake)
    }

    fn touch(&mut self, key: &str) {
        let p = partition_of(key);
        if let Some(t) = self.touched.last_mut() {
            t.insert(p);
        }
    }

    fn read(&mut self, c: &[String]) -> Result<Reply, String> {
        let key = &c[1];
        self.touch(key);
        if self.read_errors.contains(key) {
            return Err("connection reset".into());
        }
        if self.malformed_reads.contains(key) {
            return Ok(Reply::Int(7));
        }
        match c[0].as_str() {
            "ZRANGEBYSCORE" => {
                assert_eq!(
                    &c[2..7],
                    ["-inf", "+inf", "WITHSCORES", "LIMIT", "0"],
                    "{c:?}"
                );
                let limit: usize = c[7].parse().unwrap();
                let items = self
                    .zsets
                    .get(key)
                    .into_iter()
                    .flatten()
                    .take(limit)
                    .flat_map(|(s, m)| [Reply::bulk(m.as_str()), Reply::bulk(s.to_string())])
                    .collect();
                Ok(Reply::Array(items))
            }
            "SSCAN" => {
                assert_eq!(c[3], "COUNT", "{c:?}");
                let offset: usize = c[2].parse().unwrap();
                let count = self.sscan_page.unwrap_or_else(|| c[4].parse().unwrap());
                let all = self.sets.get(key).cloned().unwrap_or_default();
                let end = (offset + count).min(all.len());
                let cursor = if end >= all.len() {
                    "0".to_owned()
                } else {
                    end.to_string()
                };
                let page = all[offset.min(end)..end]
                    .iter()
                    .map(|m| Reply::bulk(m.as_str()))
                    .collect();
                Ok(Reply::Array(vec![Reply::bulk(cursor), Reply::Array(page)]))
            }
            other => panic!("unexpected command {other}"),
        }
    }

    /// What a batch function would answer, following `lua/scanners.lua`.
    fn call(&mut self, call: &Call, batch: usize) -> Result<Reply, String> {
        assert_eq!(call.keys.len(), 1, "{call:?}");
        for (k, score, m) in std::mem::take(&mut self.arrivals) {
            self.zadd(&k, score, &m);
        }
        let key = call.keys[0].clone();
        self.touch(&key);
        let ids = ids_of(call);
        assert!(
            !ids.is_empty() && ids.len() <= batch,
            "a batch of 1..=batch: {ids:?}"
        );
        let sweep = call.function == SWEEP.function();
        if !sweep {
            for id in &ids {
                let score = self
                    .zsets
                    .get(&key)
                    .and_then(|z| z.iter().find(|(_, m)| m == id))
                    .map(|(s, _)| *s);
                let score = score.unwrap_or_else(|| panic!("{id} sent, not in {key}"));
                assert!(
                    score <= self.now,
                    "{id} sent, due at {score} > {}",
                    self.now
                );
            }
        }
        if self.calls_fail {
            return Err("connection reset".into());
        }
        if self.calls_misshapen {
            return Ok(Reply::Int(1));
        }
        if ids.len() > 1 && ids.iter().any(|id| self.poison.contains(id)) {
            return Err("connection reset".into());
        }
        if ids.len() > 1 && self.batch_errors > 0 {
            self.batch_errors -= 1;
            return Err("connection reset".into());
        }
        let (mut acted, mut repaired, mut exceptions) = (0, 0, Vec::new());
        for id in &ids {
            if self.poison.contains(id) || self.failing.contains(id) {
                exceptions.push(Reply::bulk(id.as_str()));
                exceptions.push(Reply::bulk("error:x"));
                continue;
            }
            if self.filtered.contains(id) {
                exceptions.push(Reply::bulk(id.as_str()));
                exceptions.push(Reply::bulk("filtered"));
                continue;
            }
            if self.malformed_members.contains(id) {
                exceptions.push(Reply::bulk(id.as_str()));
                exceptions.push(Reply::bulk("malformed"));
                if !sweep {
                    if let Some(z) = self.zsets.get_mut(&key) {
                        z.retain(|(_, m)| m != id);
                    }
                }
                continue;
            }
            if self.stale.contains(id) {
                repaired += 1;
            } else {
                acted += 1;
            }
            if !sweep {
                if let Some(z) = self.zsets.get_mut(&key) {
                    z.retain(|(_, m)| m != id);
                }
            }
        }
        let next = match (sweep, self.zsets.get(&key).and_then(|z| z.first())) {
            (false, Some((s, _))) => *s as i64,
            _ => -1,
        };
        let mut reply = vec![
            Reply::Int(1),
            Reply::Int(acted),
            Reply::Int(repaired),
            Reply::Int(next),
        ];
        reply.extend(exceptions);
        Ok(Reply::Array(reply))
    }
}

/// Run one cycle at `now` the way the shell's runner does: begin, then
/// rounds of reads and calls until both are empty, then end. Every round is
/// recorded in the world.
pub fn cycle(s: &mut Schedule, w: &mut World, now: u64) -> CycleReport {
    cycle_with(s, w, now, |_, _| {})
}

/// [`cycle`], with `between(schedule, round)` before each round (numbered
/// from 0), as the runner re-checks ownership between rounds.
pub fn cycle_with(
    s: &mut Schedule,
    w: &mut World,
    now: u64,
    mut between: impl FnMut(&mut Schedule, usize),
) -> CycleReport {
    let batch = s.settings().batch;
    w.now = now;
    w.touched.push(BTreeSet::new());
    s.begin_cycle(now);
    for round in 0..10_000 {
        between(s, round);
        let reads = s.poll_reads();
        if !reads.is_empty() {
            let replies = reads.iter().map(|r| w.read(r)).collect();
            w.reads.push(reads);
            s.handle_reads(replies);
            continue;
        }
        let calls = s.poll_calls();
        if calls.is_empty() {
            return s.end_cycle();
        }
        let replies = calls.iter().map(|c| w.call(c, batch)).collect();
        w.calls.push(calls);
        s.handle_results(replies);
    }
    panic!("a cycle that does not end");
}

/// Add up the reports of several cycles (notices dropped).
pub fn sum(reports: &[CycleReport]) -> CycleReport {
    let mut t = CycleReport::default();
    for r in reports {
        t.acted += r.acted;
        t.cancelled += r.cancelled;
        t.repaired += r.repaired;
        t.malformed += r.malformed;
        t.skipped += r.skipped;
        t.errors += r.errors;
        t.backlog += r.backlog;
    }
    t
}
