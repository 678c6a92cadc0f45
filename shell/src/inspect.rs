//! `ff inspect`: what an operator looks at first when something seems stuck —
//! executions per public state and per lane, members per index, and the oldest
//! due item of each scanner's index, across every partition.

use crate::error::Result;
use crate::store::{cmd, Store};
use crate::Client;
use ff_core::contract::execution::ExecutionRecord;
use ff_core::contract::scan::BatchFunction;
use ff_core::keys::PartitionKeys;
use ff_core::reply::Reply;
use ff_core::PartitionFamily;
use std::collections::BTreeMap;

/// What `ff inspect` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspection {
    /// Server time of the look (ms).
    pub now_ms: u64,
    /// Executions recorded (members of every partition's `all` set).
    pub executions: u64,
    /// Executions per public state.
    pub by_state: BTreeMap<String, u64>,
    /// Executions per lane.
    pub by_lane: BTreeMap<String, u64>,
    /// Members per index (eligible indexes per lane as `eligible:<lane>`).
    pub index_sizes: BTreeMap<String, u64>,
    /// Per scanner index: (member, due ms) of the earliest member.
    pub oldest_due: BTreeMap<String, (String, u64)>,
    /// Records that could not be decoded (counted, skipped).
    pub malformed: u64,
}

fn texts(r: &Reply) -> Vec<String> {
    match r {
        Reply::Array(items) => items.iter().filter_map(Reply::text).collect(),
        _ => Vec::new(),
    }
}

/// Look at everything. Reads every record once (SSCAN of each partition's
/// `all` set, then one HGETALL each, pipelined per partition).
pub async fn inspect(client: &Client) -> Result<Inspection> {
    let store: &dyn Store = client.store().as_ref();
    let mut out = Inspection {
        now_ms: store.time_ms().await?,
        ..Default::default()
    };
    let lanes = client.lanes().await?;
    for p in client.config().partitions(PartitionFamily::Flow) {
        let pk = PartitionKeys::new(p);
        let mut sizes: Vec<(String, String)> = lanes
            .iter()
            .map(|l| (format!("eligible:{l}"), pk.eligible(l)))
            .collect();
        for f in BatchFunction::ALL.iter().filter(|f| !f.is_sweep()) {
            sizes.push((f.index_name().to_owned(), f.index(&pk)));
        }
        let cards: Vec<Vec<Vec<u8>>> = sizes.iter().map(|(_, k)| cmd(["ZCARD", k])).collect();
        for ((name, _), r) in sizes.iter().zip(store.command_many(&cards).await) {
            *out.index_sizes.entry(name.clone()).or_default() +=
                r?.int().unwrap_or(0).max(0) as u64;
        }
        for f in BatchFunction::ALL.iter().filter(|f| !f.is_sweep()) {
            let head = texts(
                &store
                    .command(&cmd(["ZRANGE", &f.index(&pk), "0", "0", "WITHSCORES"]))
                    .await?,
            );
            if let [member, score] = head.as_slice() {
                let due = score.parse::<f64>().unwrap_or(0.0) as u64;
                let entry = out
                    .oldest_due
                    .entry(f.index_name().to_owned())
                    .or_insert((member.clone(), due));
                if due < entry.1 {
                    *entry = (member.clone(), due);
                }
            }
        }
        let mut cursor = "0".to_owned();
        loop {
            let page = store
                .command(&cmd(["SSCAN", &pk.all(), &cursor, "COUNT", "500"]))
                .await?;
            let (next, ids) = match &page {
                Reply::Array(v) if v.len() == 2 => (v[0].text().unwrap_or_default(), texts(&v[1])),
                _ => (String::from("0"), Vec::new()),
            };
            let reads: Vec<Vec<Vec<u8>>> = ids
                .iter()
                .map(|id| cmd(["HGETALL", &format!("ff:exec:{id}")]))
                .collect();
            for r in store.command_many(&reads).await {
                let fields = texts(&r?);
                let m: BTreeMap<String, Vec<u8>> = fields
                    .chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0].clone(), c[1].clone().into_bytes()))
                    .collect();
                if m.is_empty() {
                    continue;
                }
                match ExecutionRecord::from_fields(&m, out.now_ms) {
                    Ok(rec) => {
                        out.executions += 1;
                        *out.by_state
                            .entry(rec.public_state.as_str().to_owned())
                            .or_default() += 1;
                        *out.by_lane.entry(rec.lane.as_str().to_owned()).or_default() += 1;
                    }
                    Err(e) => {
                        out.malformed += 1;
                        tracing::warn!(error = %e, "inspect: skipping a malformed record");
                    }
                }
            }
            if next == "0" {
                break;
            }
            cursor = next;
        }
    }
    Ok(out)
}

impl Inspection {
    /// A short human report.
    pub fn to_text(&self) -> String {
        let mut s = format!("executions: {}\n", self.executions);
        s += &format!(
            "by state:   {:?}\nby lane:    {:?}\nindexes:    {:?}\n",
            self.by_state, self.by_lane, self.index_sizes
        );
        for (index, (member, due)) in &self.oldest_due {
            let age = self.now_ms as i64 - *due as i64;
            let when = if age >= 0 {
                format!("due {age} ms ago")
            } else {
                format!("due in {} ms", -age)
            };
            s += &format!("oldest {index:<16} {member} ({when})\n");
        }
        if self.malformed > 0 {
            s += &format!("malformed records: {}\n", self.malformed);
        }
        s
    }
}
