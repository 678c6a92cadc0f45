//! The operator's verbs of the `ff` command: read one execution, list a
//! lane's executions by state, read a flow with its members and edges, requeue, cancel, delete, pause and resume a
//! lane. Each read has a text and a `--json` form; every refusal is the
//! typed error's message.

use ff_core::contract::execution::ExecutionRecord;
use ff_core::state::PublicState;
use ff_core::{ExecutionId, FlowId, Lane};
use ff_engine::{Client, Failure, ListQuery, Requeued};
use serde_json::{json, Value};

/// What a verb failed with.
pub type OpsError = Box<dyn std::error::Error + Send + Sync>;

/// An unknown id says which.
fn named(id: &str) -> impl Fn(ff_engine::Error) -> OpsError + '_ {
    move |e| match e {
        ff_engine::Error::Rejected(ff_core::FfError::NotFound) => {
            format!("no execution {id}").into()
        }
        other => other.into(),
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// One execution as JSON (payload and result as text, lossily).
pub fn record_json(r: &ExecutionRecord) -> Value {
    json!({
        "execution": r.execution.as_str(),
        "state": r.public_state.as_str(),
        "lane": r.lane.as_str(),
        "kind": r.kind.as_str(),
        "namespace": r.namespace.as_str(),
        "priority": r.priority,
        "attempt": r.attempt,
        "retries": r.retries,
        "reclaims": r.reclaims,
        "worker": r.worker,
        "worker_instance": r.worker_instance,
        "lease_expires_at_ms": r.lease_expires_at_ms,
        "delayed_until_ms": r.delayed_until_ms,
        "deadline_at_ms": r.deadline_at_ms,
        "created_at_ms": r.created_at_ms,
        "ended_at_ms": r.ended_at_ms,
        "payload": lossy(&r.payload),
        "result": r.result.as_deref().map(lossy),
        "failure": r.last_error.as_deref().map(|e| {
            let f = Failure::decode(e);
            json!({"kind": f.kind, "message": f.message, "chain": f.chain, "retryable": f.retryable})
        }),
        "progress": r.progress.as_deref().and_then(|p| serde_json::from_slice::<Value>(p).ok()),
        "flow": r.flow.as_ref().map(|(f, _)| f.as_str().to_owned()),
        "tags": r.tags,
    })
}

/// One execution as lines of text.
pub fn record_text(r: &ExecutionRecord) -> String {
    let mut out = format!(
        "{}\n  state     {}\n  lane      {}\n  kind      {}\n  attempt   {} (retries {}, reclaims {})\n",
        r.execution, r.public_state, r.lane, r.kind, r.attempt, r.retries, r.reclaims
    );
    if let Some(w) = &r.worker {
        out.push_str(&format!(
            "  worker    {w} {}\n",
            r.worker_instance.as_deref().unwrap_or("")
        ));
    }
    if let Some(e) = &r.last_error {
        out.push_str(&format!("  failure   {}\n", Failure::decode(e)));
    }
    if let Some(p) = &r.progress {
        out.push_str(&format!("  progress  {}\n", lossy(p)));
    }
    if let Some(res) = &r.result {
        out.push_str(&format!("  result    {}\n", lossy(res)));
    }
    out.push_str(&format!("  payload   {}\n", lossy(&r.payload)));
    out
}

/// `ff get ID`.
pub async fn get(c: &Client, id: &str, as_json: bool) -> Result<String, OpsError> {
    let r = c.get(&ExecutionId::parse(id)?).await.map_err(named(id))?;
    Ok(if as_json {
        record_json(&r).to_string()
    } else {
        record_text(&r)
    })
}

/// What `ff list` asks for.
#[derive(Debug, Clone)]
pub struct ListArgs {
    /// The lane.
    pub lane: String,
    /// The public state (`waiting`, `failed`, ...).
    pub state: String,
    /// Only this kind.
    pub kind: Option<String>,
    /// Only failures whose message starts with this.
    pub error_prefix: Option<String>,
    /// Per page.
    pub limit: usize,
    /// Where to start (a cursor a previous page printed).
    pub cursor: Option<String>,
}

fn query(a: &ListArgs) -> Result<ListQuery, OpsError> {
    let state = PublicState::parse(&a.state).ok_or_else(|| {
        format!(
            "unknown state {:?} (waiting, delayed, active, suspended, waiting_children, rate_limited, completed, failed, cancelled, expired, skipped)",
            a.state
        )
    })?;
    let mut q = ListQuery::new(Lane::new(a.lane.clone())?, state).limit(a.limit);
    if let Some(k) = &a.kind {
        q = q.kind(k.clone());
    }
    if let Some(p) = &a.error_prefix {
        q = q.error_prefix(p.clone());
    }
    Ok(q)
}

/// `ff list`: one page, and the cursor of the next.
pub async fn list(c: &Client, a: &ListArgs, as_json: bool) -> Result<String, OpsError> {
    let page = c.list(&query(a)?, a.cursor.as_deref()).await?;
    if as_json {
        let items: Vec<Value> = page.items.iter().map(record_json).collect();
        return Ok(json!({"items": items, "next": page.next}).to_string());
    }
    let mut out = String::new();
    for r in &page.items {
        let why = r
            .last_error
            .as_deref()
            .map(|e| format!("  {}", Failure::decode(e)))
            .unwrap_or_default();
        out.push_str(&format!(
            "{}  {}  {}  attempt {}{why}\n",
            r.execution, r.public_state, r.kind, r.attempt
        ));
    }
    match page.next {
        Some(n) => out.push_str(&format!("(more: --cursor {n})\n")),
        None => out.push_str(&format!("({} listed, end)\n", page.items.len())),
    }
    Ok(out)
}

/// `ff flow ID`: the flow's state and counts, and one page of its members
/// from `offset`, each with the parents it waits on.
pub async fn flow(
    c: &Client,
    id: &str,
    offset: u64,
    limit: u32,
    as_json: bool,
) -> Result<String, OpsError> {
    let flow = FlowId::parse(id)?;
    let unknown = |e: ff_engine::Error| -> OpsError {
        match e {
            ff_engine::Error::Rejected(ff_core::FfError::NotFound) => {
                format!("no flow {id}").into()
            }
            other => other.into(),
        }
    };
    let (f, page) = futures::try_join!(c.get_flow(&flow), c.flow_members(&flow, offset, limit))
        .map_err(unknown)?;
    let s = &f.summary;
    if as_json {
        let members: Vec<Value> = page
            .members
            .iter()
            .map(|m| {
                let parents: Vec<Value> = m
                    .parents
                    .iter()
                    .map(|e| {
                        json!({"parent": e.parent.as_str(), "state": e.state.as_str(), "pass_data": e.pass_data})
                    })
                    .collect();
                json!({
                    "id": m.execution.as_str(), "state": m.state.as_str(), "kind": m.kind.as_str(),
                    "lane": m.lane.as_str(), "join": m.join.to_string(), "parents": parents,
                })
            })
            .collect();
        return Ok(json!({
            "flow": flow.as_str(), "state": s.state().as_str(), "namespace": f.namespace.as_str(),
            "members": s.members, "done": s.done, "success": s.success, "failed": s.failed,
            "cancelled": s.cancelled, "expired": s.expired, "skipped": s.skipped,
            "page": members, "next": page.next,
        })
        .to_string());
    }
    let mut out = format!(
        "flow {flow}  {}  namespace {}
members {}  ended {} (completed {}, failed {}, cancelled {}, expired {}, skipped {})
",
        s.state().as_str(),
        f.namespace,
        s.members,
        s.done,
        s.success,
        s.failed,
        s.cancelled,
        s.expired,
        s.skipped
    );
    for m in &page.members {
        out.push_str(&format!("{}  {}  {}", m.execution, m.state, m.kind));
        if !m.parents.is_empty() {
            let ps: Vec<String> = m
                .parents
                .iter()
                .map(|e| {
                    let data = if e.pass_data { ", data" } else { "" };
                    format!("{} ({}{data})", e.parent, e.state.as_str())
                })
                .collect();
            out.push_str(&format!("  joins {} on {}", m.join, ps.join(", ")));
        }
        out.push('\n');
    }
    match page.next {
        Some(n) => out.push_str(&format!("(more: --offset {n})\n")),
        None => out.push_str(&format!(
            "({} of {} listed, end)\n",
            page.members.len(),
            page.total
        )),
    }
    Ok(out)
}

/// `ff retry ID`.
pub async fn retry(c: &Client, id: &str) -> Result<String, OpsError> {
    Ok(
        match c
            .requeue(&ExecutionId::parse(id)?)
            .await
            .map_err(named(id))?
        {
            Requeued::Requeued => format!("{id}: requeued"),
            Requeued::Live => format!("{id}: not ended; unchanged"),
        },
    )
}

/// `ff retry --lane L --state failed [--kind K] [--error-prefix P]`: every
/// match (up to 5,000 a call; the answer says when more may match).
pub async fn retry_all(c: &Client, a: &ListArgs) -> Result<String, OpsError> {
    let done = c.requeue_matching(&query(a)?).await?;
    for (id, why) in &done.refused {
        eprintln!("{id}: {why}");
    }
    let mut text = format!("{} requeued, {} refused", done.requeued, done.refused.len());
    if !done.complete {
        text.push_str("; more may match: run again to go on");
    }
    Ok(text)
}

/// `ff cancel ID`.
pub async fn cancel(c: &Client, id: &str, reason: &str) -> Result<String, OpsError> {
    let ended = c
        .cancel(&ExecutionId::parse(id)?, reason)
        .await
        .map_err(named(id))?;
    Ok(format!("{id}: {:?}", ended.outcome))
}

/// `ff delete ID`.
pub async fn delete(c: &Client, id: &str) -> Result<String, OpsError> {
    Ok(if c.delete(&ExecutionId::parse(id)?).await? {
        format!("{id}: deleted")
    } else {
        format!("{id}: no such execution")
    })
}

/// `ff pause LANE` / `ff resume LANE`.
pub async fn pause(c: &Client, lane: &str, paused: bool) -> Result<String, OpsError> {
    if paused {
        c.pause_lane(lane).await?;
        Ok(format!("lane {lane}: paused"))
    } else {
        c.resume_lane(lane).await?;
        Ok(format!("lane {lane}: resumed"))
    }
}
