//! Listing executions of a lane by state, paged with a cursor across
//! partitions. Each page does bounded work: it reads at most
//! [`MAX_READS`] records, walking the index that already holds the state
//! (`ff_core::listing`), and says where the next page starts.

use super::Client;
use crate::error::{Error, Result};
use crate::store::cmd;
use ff_core::contract::execution::{self as ex, ExecutionRecord};
use ff_core::keys::PartitionKeys;
use ff_core::listing::{newest_first, sources, Source};
use ff_core::reply::Reply;
use ff_core::state::PublicState;
use ff_core::{ExecutionId, Lane, Partition, PartitionFamily};

/// Most records one page reads (a page of a rare state may come back short,
/// with a cursor to go on).
pub const MAX_READS: usize = 2_000;
/// Index members fetched per round.
const CHUNK: usize = 200;

/// What to list.
#[derive(Debug, Clone)]
pub struct ListQuery {
    lane: Lane,
    state: PublicState,
    kind: Option<String>,
    error_prefix: Option<String>,
    limit: usize,
}

impl ListQuery {
    /// Executions of `lane` in `state`, 50 per page.
    pub fn new(lane: Lane, state: PublicState) -> Self {
        Self {
            lane,
            state,
            kind: None,
            error_prefix: None,
            limit: 50,
        }
    }
    /// Only executions of this kind.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }
    /// Only executions whose last error starts with this text.
    pub fn error_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.error_prefix = Some(prefix.into());
        self
    }
    /// Executions per page (1..=1000).
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n;
        self
    }

    fn keeps(&self, r: &ExecutionRecord) -> bool {
        r.lane == self.lane
            && r.public_state == self.state
            && self.kind.as_deref().is_none_or(|k| r.kind.as_str() == k)
            && self.error_prefix.as_deref().is_none_or(|p| {
                r.last_error.as_deref().is_some_and(|e| {
                    e.starts_with(p) || crate::Failure::decode(e).message.starts_with(p)
                })
            })
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page {
    /// The executions found, in index order (terminal ones newest first
    /// within a partition).
    pub items: Vec<ExecutionRecord>,
    /// Where the next page starts; `None` when the listing is complete.
    pub next: Option<String>,
}

/// Where a listing is: source, partition, offset in it (an index offset,
/// or an SSCAN cursor for the `all` set).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    source: usize,
    partition: u16,
    offset: u64,
}

impl Cursor {
    fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Invalid {
            field: "cursor",
            reason: format!("{s:?} is not a cursor this client returned"),
        };
        let mut it = s.split('.');
        let mut next = || {
            it.next()
                .and_then(|p| p.parse::<u64>().ok())
                .ok_or_else(bad)
        };
        let (source, partition, offset) = (next()?, next()?, next()?);
        Ok(Self {
            source: usize::try_from(source).map_err(|_| bad())?,
            partition: u16::try_from(partition).map_err(|_| bad())?,
            offset,
        })
    }

    fn text(&self) -> String {
        format!("{}.{}.{}", self.source, self.partition, self.offset)
    }
}

fn texts(r: &Reply) -> Vec<String> {
    match r {
        Reply::Array(items) => items.iter().filter_map(Reply::text).collect(),
        _ => Vec::new(),
    }
}

impl Client {
    /// One page of the executions `query` asks for, from `cursor` (`None`:
    /// the first page). Unknown lanes and cursors not made here are refused.
    pub async fn list(&self, query: &ListQuery, cursor: Option<&str>) -> Result<Page> {
        self.check_lane(&query.lane).await?;
        if !(1..=1000).contains(&query.limit) {
            return Err(Error::Invalid {
                field: "limit",
                reason: format!("{} is outside 1..=1000", query.limit),
            });
        }
        let srcs = sources(query.state);
        let partitions = self.config.flow_partitions;
        let mut at = match cursor {
            Some(c) => Cursor::parse(c)?,
            None => Cursor {
                source: 0,
                partition: 0,
                offset: 0,
            },
        };
        if at.source > srcs.len() || at.partition >= partitions {
            return Err(Error::Invalid {
                field: "cursor",
                reason: "out of range for this deployment".into(),
            });
        }
        let (mut items, mut reads) = (Vec::new(), 0usize);
        while at.source < srcs.len() && items.len() < query.limit && reads < MAX_READS {
            let src = srcs[at.source];
            let pk = PartitionKeys::new(Partition::new(PartitionFamily::Flow, at.partition));
            let (ids, next, done) = self.fetch(&pk, &query.lane, src, at.offset).await?;
            reads += ids.len();
            let records = self.read_records(&ids).await?;
            let mut consumed = ids.len();
            for (i, r) in records.into_iter().enumerate() {
                if items.len() == query.limit && src != Source::All {
                    consumed = i;
                    break;
                }
                if let Some(r) = r.filter(|r| query.keeps(r)) {
                    items.push(r);
                }
            }
            if src != Source::All && consumed < ids.len() {
                at.offset += consumed as u64;
            } else if done {
                at.offset = 0;
                at.partition += 1;
                if at.partition == partitions {
                    at.partition = 0;
                    at.source += 1;
                }
            } else {
                at.offset = next;
            }
        }
        Ok(Page {
            items,
            next: (at.source < srcs.len()).then(|| at.text()),
        })
    }

    /// Up to CHUNK members of one source from `offset`: (ids, next offset,
    /// whether this partition's source is exhausted).
    async fn fetch(
        &self,
        pk: &PartitionKeys,
        lane: &Lane,
        src: Source,
        offset: u64,
    ) -> Result<(Vec<String>, u64, bool)> {
        let chunk = CHUNK.to_string();
        let key = match src {
            Source::Eligible => pk.eligible(lane),
            Source::Index(name) => pk.idx(name),
            Source::All => {
                let r = self
                    .store
                    .command(&cmd([
                        "SSCAN",
                        &pk.all(),
                        &offset.to_string(),
                        "COUNT",
                        &chunk,
                    ]))
                    .await?;
                let (next, ids) = match &r {
                    Reply::Array(parts) if parts.len() == 2 => (
                        parts[0].text().and_then(|t| t.parse().ok()).unwrap_or(0),
                        texts(&parts[1]),
                    ),
                    _ => (0, Vec::new()),
                };
                return Ok((ids, next, next == 0));
            }
        };
        let (start, stop) = (offset.to_string(), (offset + CHUNK as u64 - 1).to_string());
        let verb = if newest_first(src) {
            "ZREVRANGE"
        } else {
            "ZRANGE"
        };
        let ids = texts(
            &self
                .store
                .command(&cmd([verb, &key, &start, &stop]))
                .await?,
        );
        let (next, done) = (offset + ids.len() as u64, ids.len() < CHUNK);
        Ok((ids, next, done))
    }

    /// The records of `ids`, pipelined; `None` for an id that does not
    /// parse or whose record is gone (a listing races with transitions).
    async fn read_records(&self, ids: &[String]) -> Result<Vec<Option<ExecutionRecord>>> {
        let parsed: Vec<Option<ExecutionId>> =
            ids.iter().map(|i| ExecutionId::parse(i).ok()).collect();
        let calls: Vec<_> = parsed.iter().flatten().map(ex::get).collect();
        let mut replies = self.store.fcall_many(&calls).await.into_iter();
        let mut out = Vec::with_capacity(ids.len());
        for id in parsed {
            out.push(match id {
                Some(id) => {
                    let reply = replies.next().expect("one reply per call")?;
                    ex::decode_get(&id, &reply).ok()
                }
                None => None,
            });
        }
        Ok(out)
    }
}
