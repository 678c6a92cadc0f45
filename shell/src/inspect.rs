//! `ff inspect`: what an operator looks at first when something seems stuck —
//! executions per public state and per lane, members per index, the oldest
//! due item of each scanner's index, blocked executions per reason, and every
//! budget (usage against limits, breach, policy) and quota (holders against
//! the cap, the window), across every partition.

use crate::error::Result;
use crate::store::{cmd, Store};
use crate::{Client, Counts};
use ff_core::admission::{budgets_index, quota_holders_key, quotas_index};
use ff_core::contract::admission::{self as ad, BlockReason, BudgetRecord, QuotaRecord};
use ff_core::contract::execution::ExecutionRecord;
use ff_core::contract::scan::BatchFunction;
use ff_core::counts::Counted;
use ff_core::keys::PartitionKeys;
use ff_core::reply::Reply;
use ff_core::{BudgetId, PartitionFamily, QuotaId};
use std::collections::{BTreeMap, BTreeSet};

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
    /// Blocked executions per reason (`budget`, `quota`, `route`).
    pub blocked: BTreeMap<String, u64>,
    /// Per reason: (execution, blocked at ms) of the longest blocked.
    pub oldest_blocked: BTreeMap<String, (String, u64)>,
    /// Every budget, by name.
    pub budgets: BTreeMap<String, BudgetRecord>,
    /// Every quota, by name, with its slot holders (execution, lease epoch).
    pub quotas: BTreeMap<String, (QuotaRecord, Vec<(String, u64)>)>,
}

/// Keep the earlier of two (member, ms) heads.
fn keep_oldest(map: &mut BTreeMap<String, (String, u64)>, key: &str, member: &str, ms: u64) {
    let entry = map.entry(key.to_owned()).or_insert((member.to_owned(), ms));
    if ms < entry.1 {
        *entry = (member.to_owned(), ms);
    }
}

/// Every name in a set, walked with SSCAN.
async fn set_members(store: &dyn Store, key: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor = "0".to_owned();
    loop {
        let page = store
            .command(&cmd(["SSCAN", key, &cursor, "COUNT", "500"]))
            .await?;
        let (next, names) = match &page {
            Reply::Array(v) if v.len() == 2 => (v[0].text().unwrap_or_default(), texts(&v[1])),
            _ => (String::from("0"), Vec::new()),
        };
        out.extend(names);
        if next == "0" {
            return Ok(out);
        }
        cursor = next;
    }
}

/// Every budget and quota with its state (a name that no longer parses or
/// reads is skipped: the reconcilers drop such names).
async fn admission(client: &Client, out: &mut Inspection) -> Result<()> {
    let store: &dyn Store = client.store().as_ref();
    let config = client.config();
    for p in config.partitions(PartitionFamily::Budget) {
        for name in set_members(store, &budgets_index(p)).await? {
            let Ok(b) = BudgetId::parse(&name) else {
                continue;
            };
            let reply = store.fcall(&ad::get_budget(config, &b)).await?;
            if let Ok(r) = ad::decode_get_budget(&reply) {
                out.budgets.insert(name, r);
            }
        }
    }
    for p in config.partitions(PartitionFamily::Quota) {
        for name in set_members(store, &quotas_index(p)).await? {
            let Ok(q) = QuotaId::parse(&name) else {
                continue;
            };
            let Ok(r) = ad::decode_get_quota(&store.fcall(&ad::get_quota(config, &q)).await?)
            else {
                continue;
            };
            let all = texts(
                &store
                    .command(&cmd(["HGETALL", &quota_holders_key(config, &q)]))
                    .await?,
            );
            let holders = all
                .chunks(2)
                .filter_map(|c| match c {
                    [eid, epoch] => Some((eid.clone(), epoch.parse().unwrap_or(0))),
                    _ => None,
                })
                .collect();
            out.quotas.insert(name, (r, holders));
        }
    }
    Ok(())
}

/// Every budget and quota, as [`inspect`] reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    /// Every budget, by name.
    pub budgets: BTreeMap<String, BudgetRecord>,
    /// Every quota, by name, with its slot holders (execution, lease epoch).
    pub quotas: BTreeMap<String, (QuotaRecord, Vec<(String, u64)>)>,
}

/// Every budget and quota without reading any execution: a walk of the
/// budget and quota partitions' name sets, and one read per name. One
/// `EXISTS` and nothing more where none was ever defined.
pub async fn limits(client: &Client) -> Result<Limits> {
    let used = client
        .store()
        .command(&cmd(["EXISTS", ff_core::admission::IN_USE]))
        .await?;
    if used.int() == Some(0) {
        return Ok(Limits::default());
    }
    let mut out = Inspection::default();
    admission(client, &mut out).await?;
    Ok(Limits {
        budgets: out.budgets,
        quotas: out.quotas,
    })
}

fn texts(r: &Reply) -> Vec<String> {
    match r {
        Reply::Array(items) => items.iter().filter_map(Reply::text).collect(),
        _ => Vec::new(),
    }
}

/// Look at everything, in O(partitions): executions per state and lane from
/// the transitions' counters ([`Client::counts`]), index sizes and heads,
/// budgets and quotas. Reads no execution record ([`recount`] does).
pub async fn inspect(client: &Client) -> Result<Inspection> {
    let store: &dyn Store = client.store().as_ref();
    let mut out = Inspection {
        now_ms: store.time_ms().await?,
        ..Default::default()
    };
    let counts = client.counts().await?;
    for (lane, m) in &counts.lanes {
        for (c, n) in m {
            out.executions += n;
            *out.by_state
                .entry(c.public_state().as_str().to_owned())
                .or_default() += n;
            *out.by_lane.entry(lane.clone()).or_default() += n;
        }
    }
    out.malformed = counts.malformed;
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
        let blocked: Vec<Vec<Vec<u8>>> = BlockReason::ALL
            .iter()
            .flat_map(|r| {
                let key = r.index(p);
                [
                    cmd(["ZCARD", &key]),
                    cmd(["ZRANGE", &key, "0", "0", "WITHSCORES"]),
                ]
            })
            .collect();
        let replies = store.command_many(&blocked).await;
        for (r, pair) in BlockReason::ALL.iter().zip(replies.chunks(2)) {
            let [card, head] = pair else { continue };
            let n = card
                .as_ref()
                .map_err(Clone::clone)?
                .int()
                .unwrap_or(0)
                .max(0) as u64;
            *out.blocked.entry(r.as_str().to_owned()).or_default() += n;
            if let [member, score] = texts(head.as_ref().map_err(Clone::clone)?).as_slice() {
                let at = score.parse::<f64>().unwrap_or(0.0) as u64;
                keep_oldest(&mut out.oldest_blocked, r.as_str(), member, at);
            }
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
                keep_oldest(&mut out.oldest_due, f.index_name(), member, due);
            }
        }
    }
    admission(client, &mut out).await?;
    Ok(out)
}

/// The counters as the records say they should be, and where the stored
/// ones differ ([`recount`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recount {
    /// Executions per lane and state, counted from the records.
    pub counts: Counts,
    /// Records that could not be decoded (counted, skipped).
    pub malformed_records: u64,
    /// (lane, state, stored counter, records) where the two differ.
    pub drift: Vec<(String, Counted, u64, u64)>,
}

/// Count every record (SSCAN of each partition's `all` set, then one
/// HGETALL each, pipelined per partition) and compare with the stored
/// counters: O(executions), for checking, not for dashboards. Exact only
/// while nothing moves.
pub async fn recount(client: &Client) -> Result<Recount> {
    let store: &dyn Store = client.store().as_ref();
    let now_ms = store.time_ms().await?;
    let stored = client.counts().await?;
    let mut out = Recount {
        counts: Counts {
            partitions: stored.partitions,
            ..Default::default()
        },
        ..Default::default()
    };
    for p in client.config().partitions(PartitionFamily::Flow) {
        let pk = PartitionKeys::new(p);
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
                .map(|id| cmd(["HGETALL", &format!("{}{id}", ff_core::keys::EXEC_PREFIX)]))
                .collect();
            for (id, r) in ids.iter().zip(store.command_many(&reads).await) {
                let fields = texts(&r?);
                let m: BTreeMap<String, Vec<u8>> = fields
                    .chunks(2)
                    .filter(|c| c.len() == 2)
                    .map(|c| (c[0].clone(), c[1].clone().into_bytes()))
                    .collect();
                if m.is_empty() {
                    continue;
                }
                match ExecutionRecord::from_hash(id, &m, now_ms) {
                    Ok(rec) => {
                        if let Some(c) = Counted::of(&rec.state) {
                            *out.counts
                                .lanes
                                .entry(rec.lane.as_str().to_owned())
                                .or_default()
                                .entry(c)
                                .or_default() += 1;
                        }
                    }
                    Err(e) => {
                        out.malformed_records += 1;
                        tracing::warn!(error = %e, "recount: skipping a malformed record");
                    }
                }
            }
            if next == "0" {
                break;
            }
            cursor = next;
        }
    }
    let lanes: BTreeSet<&String> = stored.lanes.keys().chain(out.counts.lanes.keys()).collect();
    for lane in lanes {
        for c in Counted::all() {
            let (a, b) = (stored.get(lane, c), out.counts.get(lane, c));
            if a != b {
                out.drift.push((lane.clone(), c, a, b));
            }
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
        s += &format!("blocked:    {:?}\n", self.blocked);
        for (reason, (member, at)) in &self.oldest_blocked {
            let age = self.now_ms.saturating_sub(*at);
            s += &format!("oldest blocked on {reason:<7} {member} (for {age} ms)\n");
        }
        for (name, b) in &self.budgets {
            let dims: Vec<String> = b
                .limits
                .iter()
                .map(|(d, l)| {
                    let used = b.usage.get(d).copied().unwrap_or(0);
                    format!("{d} {used}/{} (soft {})", l.hard, l.soft)
                })
                .collect();
            s += &format!(
                "budget {name}: {}{} on breach {}; {}{}\n",
                if b.breached { "BREACHED" } else { "ok" },
                if b.soft_reached {
                    ", soft limit reached"
                } else {
                    ""
                },
                b.on_breach.as_str(),
                dims.join(", "),
                b.next_reset_ms
                    .map(|t| format!("; next reset in {} ms", t.saturating_sub(self.now_ms)))
                    .unwrap_or_default(),
            );
        }
        for (name, (q, holders)) in &self.quotas {
            let holding: Vec<String> = holders.iter().map(|(e, ep)| format!("{e}@{ep}")).collect();
            s += &format!(
                "quota {name}: holders {}/{} [{}]; window {}/{} per {} ms\n",
                q.holders,
                q.limits.concurrency,
                holding.join(", "),
                q.admitted_at.len(),
                q.limits.max_per_window,
                q.limits.window_ms,
            );
        }
        s
    }
}
