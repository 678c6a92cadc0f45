//! Safety invariants, checked against the store's contents after every step:
//! each execution is in exactly the index sets its state says (pending
//! waitpoints too); nothing created is lost; a terminal outcome never changes;
//! a waitpoint resumes its execution at most once, and is active exactly while
//! its execution is suspended on it.

use ff_core::contract::execution::ExecutionRecord;
use ff_core::contract::suspension::{SignalEffect, WaitpointRecord, WaitpointState};
use ff_core::invariant::{index_violations, waitpoint_violations};
use ff_core::reply::Reply;
use ff_core::state::LifecyclePhase;
use ff_core::state::PublicState;
use ff_core::ExecutionId;
use ff_core::WaitpointId;
use ff_engine::store::{cmd, Store};
use std::collections::{BTreeMap, BTreeSet};

/// What the checker remembers between steps.
#[derive(Debug, Default)]
pub struct Checker {
    /// First terminal state seen per execution.
    terminal: BTreeMap<String, PublicState>,
}

/// One look at the store.
#[derive(Debug, Default)]
pub struct Observation {
    pub records: BTreeMap<String, ExecutionRecord>,
    pub violations: Vec<String>,
}

impl Observation {
    pub fn all_terminal(&self) -> bool {
        self.records.values().all(|r| r.public_state.is_terminal())
    }

    pub fn count(&self, s: PublicState) -> usize {
        self.records
            .values()
            .filter(|r| r.public_state == s)
            .count()
    }
}

fn texts(r: Reply) -> Vec<String> {
    match r {
        Reply::Array(items) => items.iter().filter_map(Reply::text).collect(),
        _ => Vec::new(),
    }
}

async fn read(store: &dyn Store, parts: &[&str]) -> Result<Reply, String> {
    store
        .command(&cmd(parts.iter().copied()))
        .await
        .map_err(|e| e.to_string())
}

impl Checker {
    /// Forget an execution's terminal state: an operator is requeueing it
    /// (its one legitimate way back from terminal).
    pub fn forget(&mut self, eid: &str) {
        self.terminal.remove(eid);
    }

    /// Look at everything; `created` are the executions the client knows it made.
    pub async fn check(&mut self, store: &dyn Store, created: &[ExecutionId]) -> Observation {
        let mut obs = Observation::default();
        let keys = match read(store, &["KEYS", "*"]).await {
            Ok(r) => texts(r),
            Err(e) => {
                obs.violations.push(format!("cannot list keys: {e}"));
                return obs;
            }
        };
        let mut zsets: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut alls: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut waitpoints: BTreeMap<String, WaitpointRecord> = BTreeMap::new();
        for k in &keys {
            if let Some(id) = k.strip_prefix("ff:wp:").and_then(|r| r.rsplit(':').next()) {
                let fields = texts(read(store, &["HGETALL", k]).await.unwrap_or(Reply::Nil));
                let m: BTreeMap<String, Vec<u8>> = fields
                    .chunks(2)
                    .filter(|p| p.len() == 2)
                    .map(|p| (p[0].clone(), p[1].clone().into_bytes()))
                    .collect();
                match WaitpointId::parse(id)
                    .map_err(|e| e.to_string())
                    .and_then(|id| {
                        WaitpointRecord::from_fields(&id, &m, 0).map_err(|e| e.to_string())
                    }) {
                    Ok(w) => {
                        waitpoints.insert(k.clone(), w);
                    }
                    Err(e) => obs
                        .violations
                        .push(format!("{k}: malformed waitpoint: {e}")),
                }
                continue;
            }
            if let Some(eid) = k.strip_prefix("ff:exec:") {
                let fields = match read(store, &["HGETALL", k]).await {
                    Ok(r) => texts(r),
                    Err(e) => {
                        obs.violations.push(format!("{k}: {e}"));
                        continue;
                    }
                };
                let m: BTreeMap<String, Vec<u8>> = fields
                    .chunks(2)
                    .filter(|p| p.len() == 2)
                    .map(|p| (p[0].clone(), p[1].clone().into_bytes()))
                    .collect();
                match ExecutionRecord::from_hash(eid, &m, 0) {
                    Ok(rec) => {
                        obs.records.insert(eid.to_owned(), rec);
                    }
                    Err(e) => obs.violations.push(format!("{k}: malformed record: {e}")),
                }
            } else if k.starts_with("ff:idx:") && k.ends_with(":all") {
                alls.insert(
                    k.clone(),
                    texts(read(store, &["SMEMBERS", k]).await.unwrap_or(Reply::Nil))
                        .into_iter()
                        .collect(),
                );
            } else if k.starts_with("ff:idx:")
                // (schedule indexes hold schedule names: the judge checks them)
                && !k.ends_with(":schedules")
                && !k.ends_with(":schedule_names")
            {
                let flat = texts(
                    read(store, &["ZRANGE", k, "0", "-1", "WITHSCORES"])
                        .await
                        .unwrap_or(Reply::Nil),
                );
                let members = flat
                    .chunks(2)
                    .filter(|p| p.len() == 2)
                    .map(|p| (p[0].clone(), p[1].parse::<f64>().unwrap_or(-1.0) as u64))
                    .collect();
                zsets.insert(k.clone(), members);
            }
        }
        // Each execution: in exactly the indexes its state says, with the right
        // scores; no index entry without its execution.
        obs.violations.extend(
            index_violations(&obs.records, &zsets, &alls)
                .into_iter()
                .map(|v| v.message),
        );
        obs.violations.extend(
            waitpoint_violations(&waitpoints, &zsets)
                .into_iter()
                .map(|v| v.message),
        );
        obs.violations
            .extend(suspension_violations(&obs.records, &waitpoints));
        // A terminal outcome never changes.
        for (eid, rec) in &obs.records {
            if let Some(first) = self.terminal.get(eid) {
                if *first != rec.public_state {
                    obs.violations.push(format!(
                        "{eid}: terminal outcome changed from {first} to {}",
                        rec.public_state
                    ));
                }
            } else if rec.public_state.is_terminal() {
                self.terminal.insert(eid.clone(), rec.public_state);
            }
        }
        // Nothing lost: retention in the simulation is longer than the run.
        for e in created {
            if !obs.records.contains_key(e.as_str()) {
                obs.violations.push(format!("{e} was created and is gone"));
            }
        }
        obs
    }
}

/// Partition ownership once faults stopped: every partition has exactly one
/// owner — in Valkey, one live lease held by a running replica, and in the
/// replicas' own beliefs (`beliefs`: each running replica's member id and the
/// partitions it scans), exactly one replica scanning it. Empty when it holds.
pub async fn ownership_violations(
    store: &dyn Store,
    partitions: u16,
    beliefs: &[(String, Vec<u16>)],
) -> Vec<String> {
    use ff_core::contract::ownership as own;
    let view = match store.fcall(&own::view(&own::Ring::default())).await {
        Ok(r) => match own::decode_view(own::VIEW, &r) {
            Ok(v) => v,
            Err(e) => return vec![format!("ownership view: {e}")],
        },
        Err(e) => return vec![format!("ownership view: {e}")],
    };
    let mut out = Vec::new();
    let running: BTreeSet<&str> = beliefs.iter().map(|(m, _)| m.as_str()).collect();
    let live: BTreeSet<&str> = view.live_members().into_iter().collect();
    if live != running {
        out.push(format!(
            "ownership: live members {live:?}, running replicas {running:?}"
        ));
    }
    let mut scanners: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
    for (m, owned) in beliefs {
        for p in owned {
            scanners.entry(*p).or_default().push(m);
        }
    }
    for p in 0..partitions {
        match view.owner_of(p) {
            Some(o) if running.contains(o) => {}
            other => out.push(format!("ownership: partition {p} owned by {other:?}")),
        }
        let by = scanners.get(&p).map_or(&[][..], Vec::as_slice);
        if by.len() != 1 {
            out.push(format!("ownership: partition {p} scanned by {by:?}"));
        }
    }
    out
}

/// A waitpoint resumes at most once; it is active exactly while its execution
/// is suspended on it; an execution counts every resume its signals made.
fn suspension_violations(
    records: &BTreeMap<String, ExecutionRecord>,
    waitpoints: &BTreeMap<String, WaitpointRecord>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut resumed: BTreeMap<&str, u32> = BTreeMap::new();
    for (k, w) in waitpoints {
        let n = w
            .signals
            .iter()
            .filter(|s| s.effect == SignalEffect::Resumed)
            .count() as u32;
        if n > 1 {
            out.push(format!("{k}: {n} signals resumed its execution"));
        }
        *resumed.entry(w.execution.as_str()).or_default() += n;
        let Some(rec) = records.get(w.execution.as_str()) else {
            out.push(format!("{k}: its execution {} is gone", w.execution));
            continue;
        };
        let waited_on =
            rec.state.phase == LifecyclePhase::Suspended && rec.suspended_on.contains(&w.id);
        if waited_on != (w.state == WaitpointState::Active) {
            out.push(format!(
                "{k} is {} while its execution is {} (waiting on {:?})",
                w.state, rec.public_state, rec.suspended_on
            ));
        }
    }
    for (eid, n) in resumed {
        if let Some(rec) = records.get(eid) {
            if rec.resumes < n {
                out.push(format!(
                    "{eid}: {n} signals resumed it, it counts {} resumes",
                    rec.resumes
                ));
            }
        }
    }
    out
}
