//! Safety invariants, checked against the store's contents after every step:
//! each execution is in exactly the index sets its state says; nothing created
//! is lost; a terminal outcome never changes.

use ff_core::contract::execution::ExecutionRecord;
use ff_core::invariant::{candidate_indexes, expected_memberships};
use ff_core::keys::PartitionKeys;
use ff_core::reply::Reply;
use ff_core::state::PublicState;
use ff_core::ExecutionId;
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
        for k in &keys {
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
                match ExecutionRecord::from_fields(&m, 0) {
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
            } else if k.starts_with("ff:idx:") {
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
        // Each execution: in exactly the indexes its state says, with the right scores.
        let mut accounted: BTreeSet<(String, String)> = BTreeSet::new();
        for (eid, rec) in &obs.records {
            let pk = PartitionKeys::of(&rec.execution);
            if !alls.get(&pk.all()).is_some_and(|s| s.contains(eid)) {
                obs.violations.push(format!(
                    "{eid} ({}) missing from {}",
                    rec.public_state,
                    pk.all()
                ));
            }
            let want = expected_memberships(rec);
            for idx in candidate_indexes(&pk, &rec.lane) {
                let have = zsets.get(&idx).and_then(|z| z.get(eid)).copied();
                let expected = want.iter().find(|m| m.index == idx);
                match (expected, have) {
                    (Some(m), Some(score)) => {
                        if m.score.is_some_and(|s| s != score) {
                            obs.violations.push(format!(
                                "{eid} ({}) in {idx} with score {score}, state says {:?}",
                                rec.public_state, m.score
                            ));
                        }
                        accounted.insert((idx.clone(), eid.clone()));
                    }
                    (Some(_), None) => obs
                        .violations
                        .push(format!("{eid} ({}) missing from {idx}", rec.public_state)),
                    (None, Some(_)) => obs
                        .violations
                        .push(format!("{eid} ({}) wrongly in {idx}", rec.public_state)),
                    (None, None) => {}
                }
            }
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
        // No index entry without its execution (eligible indexes of other lanes included).
        for (idx, members) in &zsets {
            for m in members.keys() {
                if !accounted.contains(&(idx.clone(), m.clone())) && !obs.records.contains_key(m) {
                    obs.violations
                        .push(format!("{idx} holds {m}, which has no record"));
                }
            }
        }
        for (all, members) in &alls {
            for m in members {
                if !obs.records.contains_key(m) {
                    obs.violations
                        .push(format!("{all} lists {m}, which has no record"));
                }
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
