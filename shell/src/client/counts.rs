//! Counts that cost O(partitions), not O(executions): the exact counters
//! the transitions keep per partition and (lane, state), and the per-minute
//! series of completions, failures and retries (`ff_core::counts`), read
//! with one pipelined `HGETALL` per partition (and hour). A dashboard can
//! afford them on every page view.

use super::Client;
use crate::error::{Result, StoreError};
use ff_core::counts::{
    hour_of_minute, minute_of, parse_field, parse_series_field, Counted, SeriesKind, SERIES_MINUTES,
};
use ff_core::keys::PartitionKeys;
use ff_core::reply::Reply;
use ff_core::state::PublicState;
use ff_core::PartitionFamily;
use std::collections::BTreeMap;

/// Executions per lane and state, summed over every partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    /// Per lane, executions per counted state (absent: none).
    pub lanes: BTreeMap<String, BTreeMap<Counted, u64>>,
    /// Partitions read.
    pub partitions: u16,
    /// Counter fields that did not read as `<lane>:<word>` = a count, or
    /// read below zero: skipped.
    pub malformed: u64,
}

impl Counts {
    /// Executions of `lane` counted as `c`.
    pub fn get(&self, lane: &str, c: Counted) -> u64 {
        self.lanes
            .get(lane)
            .and_then(|m| m.get(&c))
            .copied()
            .unwrap_or(0)
    }

    /// Executions of `lane` in the public state `state`.
    pub fn in_lane(&self, lane: &str, state: PublicState) -> u64 {
        self.lanes.get(lane).map_or(0, |m| sum_state(m, state))
    }

    /// Executions in `state` over every lane.
    pub fn total(&self, state: PublicState) -> u64 {
        self.lanes.values().map(|m| sum_state(m, state)).sum()
    }

    /// Executions counted as `c` over every lane.
    pub fn total_of(&self, c: Counted) -> u64 {
        self.lanes.values().filter_map(|m| m.get(&c)).sum()
    }
}

fn sum_state(m: &BTreeMap<Counted, u64>, state: PublicState) -> u64 {
    m.iter()
        .filter(|(c, _)| c.public_state() == state)
        .map(|(_, n)| n)
        .sum()
}

/// Completions, failures and retries per lane and minute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    /// The minutes read (since the Unix epoch), oldest first.
    pub minutes: Vec<u64>,
    /// Per lane and kind, one count per minute of [`minutes`](Self::minutes).
    pub lanes: BTreeMap<String, BTreeMap<SeriesKind, Vec<u64>>>,
    /// Fields that did not read as a lane's count: skipped.
    pub malformed: u64,
}

impl Series {
    /// The counts of `kind` in `lane`, one per minute (zeros when none).
    pub fn of(&self, lane: &str, kind: SeriesKind) -> Vec<u64> {
        self.lanes
            .get(lane)
            .and_then(|m| m.get(&kind))
            .cloned()
            .unwrap_or_else(|| vec![0; self.minutes.len()])
    }

    /// The sum over the minutes of `kind` in `lane`.
    pub fn sum(&self, lane: &str, kind: SeriesKind) -> u64 {
        self.of(lane, kind).iter().sum()
    }
}

/// A hash's fields and values from an `HGETALL` reply.
fn hash_pairs(key: &str, reply: Reply) -> Result<Vec<(String, String)>> {
    let Reply::Array(items) = reply else {
        return Err(
            StoreError::Server(format!("HGETALL {key} answered {reply:?}, not a hash")).into(),
        );
    };
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(f), Some(v)) = (it.next(), it.next()) {
        match (f, v) {
            (Reply::Bulk(f), Reply::Bulk(v)) => out.push((
                String::from_utf8_lossy(&f).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )),
            other => {
                return Err(StoreError::Server(format!(
                    "HGETALL {key} answered {other:?} in a hash"
                ))
                .into())
            }
        }
    }
    Ok(out)
}

impl Client {
    fn partition_keys(&self) -> impl Iterator<Item = PartitionKeys> + '_ {
        self.config
            .partitions(PartitionFamily::Flow)
            .map(PartitionKeys::new)
    }

    /// The exact counters, summed over partitions: one pipelined `HGETALL`
    /// per partition. Each partition's counts are exact at the moment it is
    /// read; partitions are read one after another, not as one snapshot.
    pub async fn counts(&self) -> Result<Counts> {
        let keys: Vec<String> = self.partition_keys().map(|pk| pk.counts()).collect();
        let cmds: Vec<Vec<Vec<u8>>> = keys
            .iter()
            .map(|k| crate::store::cmd(["HGETALL", k.as_str()]))
            .collect();
        let replies = self.store.command_many(&cmds).await;
        let mut out = Counts {
            partitions: self.config.flow_partitions,
            ..Default::default()
        };
        for (key, reply) in keys.iter().zip(replies) {
            for (f, v) in hash_pairs(key, reply?)? {
                match (parse_field(&f), v.parse::<u64>()) {
                    (Some((lane, c)), Ok(n)) => {
                        if n > 0 {
                            *out.lanes
                                .entry(lane.as_str().to_owned())
                                .or_default()
                                .entry(c)
                                .or_default() += n;
                        }
                    }
                    _ => out.malformed += 1,
                }
            }
        }
        Ok(out)
    }

    /// The last `minutes` minutes (at most [`SERIES_MINUTES`], the current
    /// one last) of completions, failures and retries per lane: one
    /// pipelined `HGETALL` per partition and hour (two at most). `now_ms` is
    /// the server's time (`Store::time_ms`).
    pub async fn series(&self, minutes: u64, now_ms: u64) -> Result<Series> {
        let minutes = minutes.clamp(1, SERIES_MINUTES);
        let last = minute_of(now_ms);
        let first = last.saturating_sub(minutes - 1);
        let span: Vec<u64> = (first..=last).collect();
        let keys: Vec<String> = self
            .partition_keys()
            .flat_map(|pk| {
                (hour_of_minute(first)..=hour_of_minute(last))
                    .map(|h| pk.series(h))
                    .collect::<Vec<_>>()
            })
            .collect();
        let cmds: Vec<Vec<Vec<u8>>> = keys
            .iter()
            .map(|k| crate::store::cmd(["HGETALL", k.as_str()]))
            .collect();
        let replies = self.store.command_many(&cmds).await;
        let mut out = Series {
            minutes: span.clone(),
            ..Default::default()
        };
        for (key, reply) in keys.iter().zip(replies) {
            for (f, v) in hash_pairs(key, reply?)? {
                match (parse_series_field(&f), v.parse::<u64>()) {
                    (Some((m, lane, kind)), Ok(n)) => {
                        if (first..=last).contains(&m) {
                            out.lanes
                                .entry(lane.as_str().to_owned())
                                .or_default()
                                .entry(kind)
                                .or_insert_with(|| vec![0; span.len()])
                                [(m - first) as usize] += n;
                        }
                    }
                    _ => out.malformed += 1,
                }
            }
        }
        Ok(out)
    }
}
