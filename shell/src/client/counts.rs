//! Counts that cost O(partitions), not O(executions): the cardinalities of
//! the indexes that already hold each state (`ff_core::listing::sources`),
//! read with one pipelined `ZCARD` per (partition, index). A dashboard can
//! afford them on every page view; [`crate::inspect::inspect`] reads every
//! record instead.
//!
//! What they can say follows from the indexes: waiting executions per lane
//! (each lane has its own eligible index), every other state summed over all
//! lanes (one index per partition), terminal ones not split by outcome (one
//! `terminal` index), suspended ones only when they have a timeout (the rest
//! are in no index).

use super::Client;
use crate::error::{Result, StoreError};
use ff_core::keys::PartitionKeys;
use ff_core::listing::{sources, Source};
use ff_core::reply::Reply;
use ff_core::state::PublicState;
use ff_core::PartitionFamily;
use std::collections::BTreeMap;

/// The partition indexes [`Counts`] reads, besides each lane's eligible one.
pub const COUNTED_INDEXES: &[&str] = &[
    "blocked_route",
    "delayed",
    "lease_expiry",
    "waiting_children",
    "blocked_budget",
    "blocked_quota",
    "suspension_timeout",
    "terminal",
];

/// Index cardinalities summed over every partition (see the module doc for
/// what they can and cannot tell apart).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Eligible executions per registered lane (`eligible:<lane>`).
    pub eligible: BTreeMap<String, u64>,
    /// Members of each of [`COUNTED_INDEXES`], over all lanes.
    pub indexes: BTreeMap<&'static str, u64>,
    /// Partitions read.
    pub partitions: u16,
}

impl Counts {
    fn index(&self, name: &str) -> u64 {
        self.indexes.get(name).copied().unwrap_or(0)
    }

    /// Executions in `state` over every lane, when its indexes answer:
    /// `None` for suspended (those without a timeout are in no index) and
    /// for each terminal outcome (the `terminal` index mixes them; see
    /// [`ended`](Self::ended)).
    pub fn total(&self, state: PublicState) -> Option<u64> {
        if state.is_terminal() {
            return None;
        }
        let mut n = 0;
        for s in sources(state) {
            n += match s {
                Source::Eligible => self.eligible.values().sum(),
                Source::Index(name) => self.index(name),
                Source::All => return None,
            };
        }
        Some(n)
    }

    /// Eligible executions of `lane` (waiting and claimable; those waiting
    /// for a capable worker are counted over all lanes in `blocked_route`).
    pub fn eligible_in(&self, lane: &str) -> u64 {
        self.eligible.get(lane).copied().unwrap_or(0)
    }

    /// Executions that ended (any outcome) and are not yet purged.
    pub fn ended(&self) -> u64 {
        self.index("terminal")
    }

    /// Suspended executions that have a timeout (a lower bound of suspended).
    pub fn suspended_with_timeout(&self) -> u64 {
        self.index("suspension_timeout")
    }
}

impl Client {
    /// Index cardinalities per partition, summed: one pipelined `ZCARD` per
    /// (partition, index) and per (partition, registered lane). Exact for
    /// what each index holds at the moment it is read; partitions are read
    /// one after another, not as one snapshot.
    pub async fn counts(&self) -> Result<Counts> {
        let lanes = self.lanes().await?;
        let mut keys: Vec<(Option<usize>, Option<&'static str>, String)> = Vec::new();
        let partitions = self.config.flow_partitions;
        for p in self.config.partitions(PartitionFamily::Flow) {
            let pk = PartitionKeys::new(p);
            for (i, lane) in lanes.iter().enumerate() {
                keys.push((Some(i), None, pk.eligible(lane)));
            }
            for name in COUNTED_INDEXES {
                keys.push((None, Some(name), pk.idx(name)));
            }
        }
        let cmds: Vec<Vec<Vec<u8>>> = keys
            .iter()
            .map(|(_, _, k)| crate::store::cmd(["ZCARD", k.as_str()]))
            .collect();
        let replies = self.store.command_many(&cmds).await;
        let mut out = Counts {
            partitions,
            ..Default::default()
        };
        for lane in &lanes {
            out.eligible.insert(lane.as_str().to_owned(), 0);
        }
        for name in COUNTED_INDEXES {
            out.indexes.insert(name, 0);
        }
        for ((lane, index, key), reply) in keys.iter().zip(replies) {
            let n = match reply? {
                Reply::Int(n) => u64::try_from(n).unwrap_or(0),
                other => {
                    return Err(StoreError::Server(format!(
                        "ZCARD {key} answered {other:?}, not a count"
                    ))
                    .into())
                }
            };
            if let Some(i) = lane {
                *out.eligible
                    .entry(lanes[*i].as_str().to_owned())
                    .or_default() += n;
            } else if let Some(name) = index {
                *out.indexes.entry(name).or_default() += n;
            }
        }
        Ok(out)
    }
}
