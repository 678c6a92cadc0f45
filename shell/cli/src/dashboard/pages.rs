//! The GET pages: overview, executions, one execution, flows, schedules,
//! and the embedded assets.

use super::html::{
    ago, bar, form_guard, num, page, preview, query, seg, stacked, state_badge, state_class,
    state_label, throughput, time, Ctx, Nav, PageError,
};
use super::{dag, engine_metrics, AppState};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use ff_core::contract::execution::ExecutionRecord;
use ff_core::contract::flow::FlowMember;
use ff_core::contract::schedule::ScheduleRecord;
use ff_core::counts::{Counted, SeriesKind, SERIES_MINUTES};
use ff_core::state::{Eligibility, PublicState};
use ff_core::{ExecutionId, FlowId, Lane};
use ff_engine::{Failure, ListQuery};
use maud::{html, Markup};
use serde::Deserialize;
use std::collections::BTreeSet;

/// Bytes of a payload or result shown on an execution's page.
const PREVIEW_BYTES: usize = 4096;
/// Characters of a failure message shown in a list row.
const ROW_ERROR_CHARS: usize = 160;

type PageResult = Result<Markup, PageError>;

/// The states an operator can run again.
pub(crate) fn can_retry(s: PublicState) -> bool {
    matches!(
        s,
        PublicState::Failed | PublicState::Cancelled | PublicState::Expired
    )
}

pub(crate) async fn overview(State(st): State<AppState>, ctx: Ctx) -> PageResult {
    let c = &st.client;
    let base = &ctx.base;
    let engine = |e| PageError::engine(base, e);
    let now = c.store().time_ms().await.map_err(|e| engine(e.into()))?;
    let (counts, series, registered, paused, limits) = futures::try_join!(
        c.counts(),
        c.series(SERIES_MINUTES, now),
        c.lanes(),
        c.paused_lanes(),
        ff_engine::inspect::limits(c)
    )
    .map_err(engine)?;
    let engines: Vec<(&String, engine_metrics::Scrape)> = futures::future::join_all(
        st.engine_metrics
            .iter()
            .map(|u| async move { (u, engine_metrics::scrape(u).await) }),
    )
    .await;
    // Registered lanes and any lane something is counted in, sorted.
    let lanes: BTreeSet<String> = registered
        .iter()
        .map(|l| l.as_str().to_owned())
        .chain(counts.lanes.keys().cloned())
        .collect();
    let total = |s| counts.total(s);
    let cards: Vec<(PublicState, &str)> = vec![
        (
            PublicState::Waiting,
            "claimable now, or waiting for a capable worker",
        ),
        (PublicState::Delayed, "due later: retries, delays"),
        (PublicState::Active, "held by a worker's lease"),
        (
            PublicState::WaitingChildren,
            "flow members waiting on parents",
        ),
        (PublicState::RateLimited, "blocked by a budget or quota"),
        (PublicState::Suspended, "waiting for signals"),
        (PublicState::Completed, "not yet purged"),
        (PublicState::Failed, "retries spent, or fatal"),
        (PublicState::Cancelled, "by a caller, flow or budget"),
        (PublicState::Expired, "deadline or attempt timeout"),
        (PublicState::Skipped, "a dependency failed"),
    ];
    let classes: Vec<String> = cards.iter().map(|c| state_class(c.0.as_str())).collect();
    let segments: Vec<(&str, u64, &str)> = cards
        .iter()
        .zip(&classes)
        .map(|(c, class)| (c.0.as_str(), total(c.0), class.as_str()))
        .collect();
    let back = format!("{base}/");
    let body = html! {
        h1 { "Overview" }
        section.cards {
            @for (state, note) in &cards {
                a.card data-count=(state.as_str()) href={ (base) "/executions?" (query(&[("state", state.as_str())])) } {
                    span class={ "dot " (state_class(state.as_str())) } {}
                    span.l { (state_label(*state)) }
                    span.n { (num(total(*state))) }
                    span.note { (note) }
                }
            }
        }
        (stacked(&segments))
        p.dim.small {
            "Exact counters kept by every transition (one HGETALL per partition, "
            (counts.partitions) " partitions)."
            @if counts.malformed > 0 { " " (counts.malformed) " counter fields did not read as counts and were skipped." }
        }

        h2 { "Lanes" }
        table.lanes {
            thead { tr {
                th { "Lane" } th.num { "Waiting" } th.num { "Active" } th.num { "Delayed" } th.num { "Failed" }
                th.wide { "Last " (series.minutes.len()) " minutes: completed, failed" } th { "Claims" } th {}
            } }
            tbody {
                @for name in &lanes {
                    @let name = name.as_str();
                    @let is_paused = paused.iter().any(|p| p == name);
                    tr data-lane=(name) {
                        td { a href={ (base) "/executions?" (query(&[("lane", name)])) } { (name) } }
                        @for st in [PublicState::Waiting, PublicState::Active, PublicState::Delayed, PublicState::Failed] {
                            td.num data-state=(st.as_str()) {
                                a href={ (base) "/executions?" (query(&[("lane", name), ("state", st.as_str())])) } {
                                    (num(counts.in_lane(name, st)))
                                }
                            }
                        }
                        td.wide {
                            (throughput(&series.of(name, SeriesKind::Completed), &series.of(name, SeriesKind::Failed)))
                            span.small.dim {
                                " " (num(series.sum(name, SeriesKind::Completed))) " completed, "
                                (num(series.sum(name, SeriesKind::Failed))) " failed, "
                                (num(series.sum(name, SeriesKind::Retried))) " retried"
                            }
                        }
                        td {
                            @if is_paused { span.badge.paused { "paused" } } @else { span.badge.running { "running" } }
                        }
                        td {
                            @if !st.read_only {
                                @if is_paused {
                                    form.inline method="post" action={ (base) "/lanes/" (seg(name)) "/resume" } {
                                        (form_guard(&st.csrf, &back))
                                        button.resume type="submit" { "Resume" }
                                    }
                                } @else {
                                    form.inline method="post" action={ (base) "/lanes/" (seg(name)) "/pause" } {
                                        (form_guard(&st.csrf, &back))
                                        button.pause type="submit" { "Pause" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @let route = counts.total_of(Counted::eligibility(Eligibility::BlockedRoute));
        @if route > 0 {
            p.small { (num(route)) " of the waiting are waiting for a worker with the capabilities they need." }
        }
        @let stray: Vec<&String> = paused.iter().filter(|p| !lanes.contains(p.as_str())).collect();
        p.small { "Paused lanes: "
            @if paused.is_empty() { span.dim { "none" } }
            @for p in &paused { span.badge.paused { (p) } " " }
            @if !stray.is_empty() { span.dim { "(some are not registered lanes)" } }
        }

        @if !engines.is_empty() {
            h2 { "Engines" }
            @for (url, scrape) in &engines {
                h3.small.mono { (url) }
                @match scrape {
                    Err(e) => p.dim data-engine=(url) { "Unreachable: " (e) }
                    Ok(rows) => table.scanners data-engine=(url) {
                        thead { tr { th { "Scanner" } th.num { "Backlog" } th.num { "Acted" } th.num { "Errors" } th.num { "Cycles" } } }
                        tbody {
                            @for (name, r) in rows {
                                tr data-scanner=(name) class=[(r.errors > 0.0).then_some("has-errors")] {
                                    td { (name) }
                                    td.num.backlog { (num(r.backlog as u64)) }
                                    td.num { (num(r.acted as u64)) }
                                    td.num.errors { (num(r.errors as u64)) }
                                    td.num { (num(r.cycles as u64)) }
                                }
                            }
                        }
                    }
                }
            }
            p.dim.small { "Read from each engine's metrics endpoint when this page was made: backlog is what the last cycle found due; acted, errors and cycles count since the engine started." }
        }

        h2 { "Budgets" }
        @if limits.budgets.is_empty() { p.dim { "No budgets defined." } }
        @else {
            table.limits {
                thead { tr { th { "Budget" } th { "Dimension" } th.num { "Used" } th.num { "Hard limit" } th.wide {} th { "State" } } }
                tbody {
                    @for (name, b) in &limits.budgets {
                        @for (dim, l) in &b.limits {
                            @let used = b.usage.get(dim).copied().unwrap_or(0);
                            @let frac = if l.hard > 0 { used as f64 / l.hard as f64 } else { 0.0 };
                            @let soft = (l.hard > 0 && l.soft > 0).then(|| l.soft as f64 / l.hard as f64);
                            tr data-budget=(name) {
                                td { (name) }
                                td { (dim) }
                                td.num { (num(used)) }
                                td.num { @if l.hard > 0 { (num(l.hard)) } @else { span.dim { "none" } } }
                                td.wide { (bar(frac, if b.breached { "s-failed" } else if b.soft_reached { "s-rate_limited" } else { "s-completed" }, soft)) }
                                td {
                                    @if b.breached { span.badge.s-failed { "breached" } " " span.dim { "then " (b.on_breach.as_str()) } }
                                    @else if b.soft_reached { span.badge.s-rate_limited { "soft limit reached" } }
                                    @else { span.dim { "ok" } }
                                    @if let Some(r) = b.next_reset_ms { br; span.dim.small { "resets " (ago(ctx.now_ms, r)) } }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Quotas" }
        @if limits.quotas.is_empty() { p.dim { "No quotas defined." } }
        @else {
            table.limits {
                thead { tr { th { "Quota" } th { "Slots held" } th.wide {} th { "Admitted in window" } th.wide {} } }
                tbody {
                    @for (name, (q, _)) in &limits.quotas {
                        @let cap = q.limits.concurrency;
                        @let per = q.limits.max_per_window;
                        @let admitted = q.admitted_at.len() as u64;
                        tr data-quota=(name) {
                            td { (name) }
                            td { (num(q.holders)) " / " @if cap > 0 { (num(cap)) } @else { "∞" } }
                            td.wide { (bar(if cap > 0 { q.holders as f64 / cap as f64 } else { 0.0 }, "s-active", None)) }
                            td { (num(admitted)) " / " @if per > 0 { (num(per)) } @else { "∞" } " per " (duration(q.limits.window_ms)) }
                            td.wide { (bar(if per > 0 { admitted as f64 / per as f64 } else { 0.0 }, "s-rate_limited", None)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page(&ctx, "Overview", Nav::Overview, st.read_only, body))
}

/// The executions page's query.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListParams {
    lane: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    error: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

pub(crate) fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A list filter checked, or a 400 page saying what is wrong.
pub(crate) struct Filter {
    pub lane: String,
    pub state: PublicState,
    pub kind: Option<String>,
    pub error: Option<String>,
}

impl Filter {
    pub fn parse(
        base: &str,
        lane: Option<&str>,
        state: Option<&str>,
        kind: Option<&str>,
        error: Option<&str>,
    ) -> Result<Filter, PageError> {
        let lane = lane.unwrap_or("default");
        Lane::new(lane).map_err(|e| PageError::bad_request(base, format!("lane: {e}")))?;
        let state = match state {
            None => PublicState::Failed,
            Some(s) => PublicState::parse(s).ok_or_else(|| {
                let all: Vec<&str> = PublicState::ALL.iter().map(|s| s.as_str()).collect();
                PageError::bad_request(
                    base,
                    format!("unknown state {s:?}; one of {}", all.join(", ")),
                )
            })?,
        };
        Ok(Filter {
            lane: lane.to_owned(),
            state,
            kind: kind.map(str::to_owned),
            error: error.map(str::to_owned),
        })
    }

    pub fn query(&self, limit: usize) -> Result<ListQuery, ff_engine::Error> {
        let mut q = ListQuery::new(Lane::new(self.lane.clone())?, self.state).limit(limit);
        if let Some(k) = &self.kind {
            q = q.kind(k.clone());
        }
        if let Some(e) = &self.error {
            q = q.error_prefix(e.clone());
        }
        Ok(q)
    }

    /// The filter as query pairs.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        vec![
            ("lane", self.lane.as_str()),
            ("state", self.state.as_str()),
            ("kind", self.kind.as_deref().unwrap_or("")),
            ("error", self.error.as_deref().unwrap_or("")),
        ]
    }
}

fn failure_line(r: &ExecutionRecord) -> Option<String> {
    r.last_error.as_deref().map(|e| {
        let f = Failure::decode(e);
        let text = format!("{}: {}", f.kind, f.message);
        if text.chars().count() > ROW_ERROR_CHARS {
            let cut: String = text.chars().take(ROW_ERROR_CHARS).collect();
            format!("{cut}…")
        } else {
            text
        }
    })
}

pub(crate) async fn executions(
    State(st): State<AppState>,
    ctx: Ctx,
    params: Result<Query<ListParams>, QueryRejection>,
) -> PageResult {
    let base = &ctx.base;
    let Query(p) = params.map_err(|e| PageError::bad_request(base, e.body_text()))?;
    let f = Filter::parse(
        base,
        nonempty(&p.lane),
        nonempty(&p.state),
        nonempty(&p.kind),
        nonempty(&p.error),
    )?;
    let limit = match nonempty(&p.limit) {
        None => 50,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(PageError::bad_request(
                    base,
                    format!("limit {l:?} is not a number in 1..=1000"),
                ))
            }
        },
    };
    let cursor = nonempty(&p.cursor);
    let q = f.query(limit).map_err(|e| PageError::engine(base, e))?;
    let (pg, mut lanes) = futures::try_join!(st.client.list(&q, cursor), st.client.lanes())
        .map_err(|e| PageError::engine(base, e))?;
    lanes.sort();
    let limit_text = limit.to_string();
    let mut here = f.pairs();
    here.push(("limit", &limit_text));
    let first = format!("{base}/executions?{}", query(&here));
    let mut here_cursor = here.clone();
    here_cursor.push(("cursor", cursor.unwrap_or("")));
    let back = format!("{base}/executions?{}", query(&here_cursor));
    let next = pg.next.as_deref().map(|n| {
        let mut pairs = here.clone();
        pairs.push(("cursor", n));
        format!("{base}/executions?{}", query(&pairs))
    });
    let retryable = can_retry(f.state);
    let body = html! {
        h1 { "Executions" }
        form.filters method="get" action={ (base) "/executions" } {
            label { "Lane " select name="lane" {
                @for l in &lanes { option value=(l.as_str()) selected[l.as_str() == f.lane] { (l.as_str()) } }
            } }
            label { "State " select name="state" {
                @for s in PublicState::ALL { option value=(s.as_str()) selected[*s == f.state] { (s.as_str()) } }
            } }
            label { "Kind " input type="text" name="kind" value=(f.kind.as_deref().unwrap_or("")) placeholder="any"; }
            label { "Error starts with " input type="text" name="error" value=(f.error.as_deref().unwrap_or("")) placeholder="any"; }
            label { "Per page " input type="number" name="limit" min="1" max="1000" value=(limit); }
            button type="submit" { "Show" }
        }
        @if retryable && !st.read_only {
            form.bulk method="post" action={ (base) "/bulk-retry" }
                data-confirm={ "Retry every " (f.state.as_str()) " execution of lane " (f.lane) " that matches this filter?" } {
                (form_guard(&st.csrf, &back))
                @for (k, v) in f.pairs() { input type="hidden" name=(k) value=(v); }
                button.bulk-retry type="submit" { "Retry every match" }
                span.dim.small { " up to " (num(ff_engine::client::BULK_MAX as u64)) " per press" }
            }
        }
        p.small.dim {
            (pg.items.len()) " on this page"
            @if cursor.is_some() { " (not the first)" }
            ". A page reads at most 2,000 records, so one of a rare match may come back short with more to follow."
        }
        table.executions {
            thead { tr { th { "Execution" } th { "State" } th { "Kind" } th.num { "Attempt" } th { "Created" } th { "Ended" } th { "Failure" } th {} } }
            tbody {
                @if pg.items.is_empty() { tr { td colspan="8" { span.dim { "Nothing on this page." } } } }
                @for r in &pg.items {
                    tr data-id=(r.execution.as_str()) {
                        td.id { a href={ (base) "/executions/" (seg(r.execution.as_str())) } { (r.execution.as_str()) } }
                        td { (state_badge(r.public_state)) }
                        td { (r.kind.as_str()) }
                        td.num { (r.attempt) }
                        td.small { (ago(ctx.now_ms, r.created_at_ms)) }
                        td.small { @if let Some(e) = r.ended_at_ms { (ago(ctx.now_ms, e)) } }
                        td.failure { @if let Some(line) = failure_line(r) { (line) } }
                        td {
                            @if can_retry(r.public_state) && !st.read_only {
                                form.inline method="post" action={ (base) "/executions/" (seg(r.execution.as_str())) "/retry" } {
                                    (form_guard(&st.csrf, &back))
                                    button.retry type="submit" { "Retry" }
                                }
                            }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if cursor.is_some() { a.first href=(first) { "← First page" } }
            @if let Some(n) = &next { a.next href=(n) { "Next page →" } }
            @else { span.dim { "End of the list." } }
        }
    };
    Ok(page(
        &ctx,
        "Executions",
        Nav::Executions,
        st.read_only,
        body,
    ))
}

pub(crate) async fn execution(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> PageResult {
    let base = &ctx.base;
    let eid = ExecutionId::parse(&id)
        .map_err(|e| PageError::bad_request(base, format!("not an execution id: {e}")))?;
    let r = st.client.get(&eid).await.map_err(|e| match e {
        ff_engine::Error::Rejected(ff_core::FfError::NotFound) => PageError {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            text: format!("No execution {id} (never created, or purged)."),
            base: base.clone(),
        },
        other => PageError::engine(base, other),
    })?;
    let me = format!("{base}/executions/{}", seg(eid.as_str()));
    let failure = r.last_error.as_deref().map(Failure::decode);
    let progress = r
        .progress
        .as_deref()
        .and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok());
    let (payload, payload_cut) = preview(&r.payload, PREVIEW_BYTES);
    let result = r
        .result
        .as_deref()
        .map(|b| (preview(b, PREVIEW_BYTES), b.len()));
    let body = html! {
        h1.id { "Execution " span.mono { (eid.as_str()) } }
        p { (state_badge(r.public_state)) " in lane "
            a href={ (base) "/executions?" (query(&[("lane", r.lane.as_str()), ("state", r.public_state.as_str())])) } { (r.lane.as_str()) }
            ", kind " b { (r.kind.as_str()) } ", namespace " (r.namespace.as_str()) ", priority " (r.priority) }
        @if !st.read_only {
            div.actions {
                @if can_retry(r.public_state) {
                    form.inline method="post" action={ (me) "/retry" } {
                        (form_guard(&st.csrf, &me))
                        button.retry type="submit" { "Retry" }
                    }
                }
                @if !r.public_state.is_terminal() {
                    form.inline method="post" action={ (me) "/cancel" } data-confirm="Cancel this execution?" {
                        (form_guard(&st.csrf, &me))
                        button.cancel type="submit" { "Cancel" }
                    }
                }
            }
        }
        div.grid {
            section {
                h2 { "Attempts" }
                dl {
                    dt { "attempt" } dd { (r.attempt) @if let Some(a) = r.attempt_state { " (" (a.as_str()) ")" } }
                    dt { "retries" } dd { (r.retries) " of " (r.retry.max_retries) }
                    dt { "reclaims" } dd { (r.reclaims) " of " (r.max_reclaims) }
                    dt { "resumes" } dd { (r.resumes) }
                }
                h2 { "Lease" }
                dl {
                    dt { "worker" } dd { @if let Some(w) = &r.worker { (w) " " span.dim { (r.worker_instance.as_deref().unwrap_or("")) } } @else { span.dim { "none" } } }
                    dt { "expires" } dd { (time(ctx.now_ms, r.lease_expires_at_ms)) }
                    dt { "epoch" } dd { (r.lease_epoch) }
                }
            }
            section {
                h2 { "Times" }
                dl {
                    dt { "created" } dd { (time(ctx.now_ms, Some(r.created_at_ms))) }
                    dt { "due" } dd { (time(ctx.now_ms, r.delayed_until_ms)) }
                    dt { "deadline" } dd { (time(ctx.now_ms, r.deadline_at_ms)) }
                    dt { "ended" } dd { (time(ctx.now_ms, r.ended_at_ms)) }
                }
                h2 { "Flow" }
                @if let Some((flow, join)) = &r.flow {
                    p { a href={ (base) "/flows/" (seg(flow.as_str())) } { span.mono { (flow.as_str()) } } " · joins " (join.to_string()) }
                } @else { p.dim { "Not in a flow." } }
            }
        }
        @if let Some(f) = &failure {
            section.failure-box {
                h2 { "Failure" }
                dl {
                    dt { "kind" } dd { (f.kind) }
                    dt { "message" } dd.message { (f.message) }
                    dt { "retryable" } dd { (if f.retryable { "yes" } else { "no" }) }
                }
                @if !f.chain.is_empty() {
                    h3 { "Caused by" }
                    ol.chain { @for c in &f.chain { li { (c) } } }
                }
            }
        }
        @if let Some(p) = &progress {
            section {
                h2 { "Progress" }
                @if let Some(frac) = fraction(p) { (bar(frac, "s-active", None)) p.small { (format!("{:.0}%", frac * 100.0)) } }
                pre { (serde_json::to_string_pretty(p).unwrap_or_default()) }
            }
        }
        section {
            h2 { "Payload " span.dim.small { "(" (num(r.payload.len() as u64)) " bytes" @if payload_cut { ", first " (num(PREVIEW_BYTES as u64)) " shown" } ")" } }
            pre.payload { (payload) }
        }
        @if let Some(((text, cut), len)) = &result {
            section {
                h2 { "Result " span.dim.small { "(" (num(*len as u64)) " bytes" @if *cut { ", first " (num(PREVIEW_BYTES as u64)) " shown" } ")" } }
                pre.result { (text) }
            }
        }
        @if !r.tags.is_empty() {
            section {
                h2 { "Tags" }
                dl { @for (k, v) in &r.tags { dt { (k) } dd { (v) } } }
            }
        }
    };
    Ok(page(
        &ctx,
        &format!("Execution {}", eid.as_str()),
        Nav::Executions,
        st.read_only,
        body,
    ))
}

/// A window length for people: "1 min", "90 s", "250 ms".
fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        _ if ms % 3_600_000 == 0 => format!("{} h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => format!("{} min", ms / 60_000),
        _ if ms % 1000 == 0 => format!("{} s", ms / 1000),
        _ => format!("{:.1} s", ms as f64 / 1000.0),
    }
}

/// A progress report's completed fraction, when it says one: a number in
/// 0..=1, `{"fraction": f}`, `{"percent": p}` or `{"done": d, "total": t}`.
fn fraction(v: &serde_json::Value) -> Option<f64> {
    let f = |k: &str| v.get(k).and_then(serde_json::Value::as_f64);
    let x = match v {
        serde_json::Value::Number(n) => n.as_f64()?,
        _ => f("fraction")
            .or_else(|| f("percent").map(|p| p / 100.0))
            .or_else(|| {
                let (d, t) = (f("done")?, f("total")?);
                (t > 0.0).then(|| d / t)
            })?,
    };
    (0.0..=1.0).contains(&x).then_some(x)
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FlowParams {
    flow: Option<String>,
}

pub(crate) async fn flows(
    State(st): State<AppState>,
    ctx: Ctx,
    params: Result<Query<FlowParams>, QueryRejection>,
) -> Result<Response, PageError> {
    let base = &ctx.base;
    let Query(p) = params.map_err(|e| PageError::bad_request(base, e.body_text()))?;
    if let Some(f) = nonempty(&p.flow) {
        let flow = FlowId::parse(f)
            .map_err(|e| PageError::bad_request(base, format!("not a flow id: {e}")))?;
        return Ok(Redirect::to(&format!("{base}/flows/{}", seg(flow.as_str()))).into_response());
    }
    let body = html! {
        h1 { "Flows" }
        form.filters method="get" action={ (base) "/flows" } {
            label { "Flow id " input type="text" name="flow" size="40"; }
            button type="submit" { "Show" }
        }
        p.dim { "Flows are reached from their members (an execution's page links its flow) or by id: "
            "the data plane keeps no index of all flows to list them from." }
    };
    Ok(page(&ctx, "Flows", Nav::Flows, st.read_only, body).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct FlowPageParams {
    offset: Option<String>,
}

/// Members per page of a flow's member table.
const MEMBER_ROWS: u32 = 50;
/// Parents listed in a member's row (the rest are counted).
const ROW_PARENTS: usize = 6;

pub(crate) async fn flow(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    params: Result<Query<FlowPageParams>, QueryRejection>,
) -> PageResult {
    let base = &ctx.base;
    let Query(p) = params.map_err(|e| PageError::bad_request(base, e.body_text()))?;
    let flow = FlowId::parse(&id)
        .map_err(|e| PageError::bad_request(base, format!("not a flow id: {e}")))?;
    let offset = match nonempty(&p.offset) {
        None => 0,
        Some(o) => o.parse::<u64>().map_err(|_| {
            PageError::bad_request(base, format!("offset {o:?} is not a member offset"))
        })?,
    };
    let c = &st.client;
    let not_found = |e| match e {
        ff_engine::Error::Rejected(ff_core::FfError::NotFound) => PageError {
            status: StatusCode::NOT_FOUND,
            title: "Not found",
            text: format!("No flow {id}."),
            base: base.clone(),
        },
        other => PageError::engine(base, other),
    };
    let (f, rows, drawn) = futures::try_join!(
        c.get_flow(&flow),
        c.flow_members(&flow, offset, MEMBER_ROWS),
        drawn_members(c, &flow),
    )
    .map_err(not_found)?;
    let (drawn, more) = drawn;
    let s = &f.summary;
    let state = s.state();
    let me = format!("{base}/flows/{}", seg(flow.as_str()));
    // Members not ended per public state, then per outcome.
    let live = |p: PublicState| -> u64 {
        f.live
            .iter()
            .filter(|(c, _)| c.public_state() == p)
            .map(|(_, n)| n)
            .sum()
    };
    let ended = [
        (PublicState::Completed, s.success),
        (PublicState::Failed, s.failed),
        (PublicState::Cancelled, s.cancelled),
        (PublicState::Expired, s.expired),
        (PublicState::Skipped, s.skipped),
    ];
    let counted: Vec<(PublicState, u64, String)> = PublicState::ALL
        .iter()
        .filter(|p| !p.is_terminal())
        .map(|p| (*p, live(*p)))
        .chain(ended)
        .map(|(p, n)| (p, n, state_class(p.as_str())))
        .collect();
    let segments: Vec<(&str, u64, &str)> = counted
        .iter()
        .map(|(p, n, class)| (p.as_str(), *n, class.as_str()))
        .collect();
    let body = html! {
        h1 { "Flow " span.mono { (flow.as_str()) } }
        p { span class={ "badge f-" (state.as_str()) } { (state.as_str()) } " · namespace " (f.namespace.as_str())
            " · created " (time(ctx.now_ms, Some(f.created_at_ms))) }
        @if let Some(r) = &f.cancel_reason { p { "Cancelled: " (r) } }
        section.cards {
            @for (k, l, n) in [("members", "Members", s.members), ("running", "Not ended", s.running()), ("done", "Ended", s.done)] {
                div.card data-flow-count=(k) { span.l { (l) } span.n { (num(n)) } }
            }
        }
        (stacked(&segments))
        p.dim.small {
            "Members by state, from the flow's exact counters."
            @if let Some(t) = f.changed_at_ms { " A member last changed state " (time(ctx.now_ms, Some(t))) "." }
        }
        h2 { "Graph" }
        @if drawn.is_empty() {
            p.dim { "No members yet." }
        } @else {
            div.dag-wrap { (dag::svg(base, &drawn)) }
            p.dim.small {
                "Each member one column right of its deepest parent; a line is an edge parent → child "
                "(green: satisfied, red: cannot be, grey dashes: pending; thick: passes its result). "
                "Click a member to open it."
                @if more {
                    " Only the first " (dag::MAX_NODES) " members in id order are drawn, of "
                    (num(rows.total)) "; edges to the others are left out."
                }
            }
        }
        h2 { "Members" }
        table.members {
            thead { tr { th { "Execution" } th { "State" } th { "Kind" } th { "Lane" } th { "Join" } th { "Waits on" } } }
            tbody {
                @if rows.members.is_empty() { tr { td colspan="6" { span.dim { "Nothing on this page." } } } }
                @for m in &rows.members {
                    tr data-id=(m.execution.as_str()) {
                        td.id { a href={ (base) "/executions/" (seg(m.execution.as_str())) } { (m.execution.as_str()) } }
                        td { (state_badge(m.state)) }
                        td { (m.kind.as_str()) }
                        td { (m.lane.as_str()) }
                        td { @if !m.parents.is_empty() { (m.join.to_string()) } }
                        td.links {
                            @for e in m.parents.iter().take(ROW_PARENTS) {
                                a class={ "e-" (e.state.as_str()) } href={ (base) "/executions/" (seg(e.parent.as_str())) }
                                    title={ (e.state.as_str()) @if e.pass_data { ", passes its result" } } {
                                    "…" (&e.parent.as_str()[e.parent.as_str().len().saturating_sub(6)..])
                                }
                            }
                            @if m.parents.len() > ROW_PARENTS { span.dim { "+" (m.parents.len() - ROW_PARENTS) " more" } }
                        }
                    }
                }
            }
        }
        nav.pager {
            @if offset > 0 { a.first href=(me) { "← First page" } }
            @if let Some(n) = rows.next { a.next href={ (me) "?offset=" (n) } { "Next page →" } }
            @else { span.dim { "End of the members." } }
        }
    };
    Ok(page(
        &ctx,
        &format!("Flow {}", flow.as_str()),
        Nav::Flows,
        st.read_only,
        body,
    ))
}

/// The members drawn (the first [`dag::MAX_NODES`] in id order), and
/// whether there are more.
async fn drawn_members(
    c: &ff_engine::Client,
    flow: &FlowId,
) -> Result<(Vec<FlowMember>, bool), ff_engine::Error> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let want = (dag::MAX_NODES - out.len()) as u32;
        let pg = c.flow_members(flow, offset, want).await?;
        out.extend(pg.members);
        match pg.next {
            Some(n) if out.len() < dag::MAX_NODES => offset = n,
            Some(_) => return Ok((out, true)),
            None => return Ok((out, false)),
        }
    }
}

/// Rows the schedules page shows at most (the listing reads them all).
const MAX_SCHEDULE_ROWS: usize = 1000;
/// Next fire times shown per schedule.
const NEXT_FIRES: usize = 3;

/// A schedule's state as the page (and `ff schedule list`) names it.
fn schedule_state(r: &ScheduleRecord) -> &'static str {
    if r.broken.is_some() {
        "broken"
    } else if r.spec.paused {
        "paused"
    } else if r.next_fire_ms.is_none() {
        "ended"
    } else {
        "active"
    }
}

pub(crate) async fn schedules(State(st): State<AppState>, ctx: Ctx) -> PageResult {
    let base = &ctx.base;
    let all = st
        .client
        .list_schedules()
        .await
        .map_err(|e| PageError::engine(base, e))?;
    let paused = all.iter().filter(|r| r.spec.paused).count() as u64;
    let back = format!("{base}/schedules");
    let body = html! {
        h1 { "Schedules" }
        p { (num(all.len() as u64)) " schedules, " (num(paused)) " paused." }
        @if all.is_empty() { p.dim { "No schedules defined." } }
        @else {
            table.schedules {
                thead { tr {
                    th { "Schedule" } th { "Trigger" } th { "Zone" } th { "State" } th { "Next fires" }
                    th { "Last run" } th.num { "Fired" } th.num { "Missed · overlapped" } th {}
                } }
                tbody {
                    @for r in all.iter().take(MAX_SCHEDULE_ROWS) {
                        @let name = r.name.as_str();
                        @let state = schedule_state(r);
                        @let t = &r.spec.template;
                        tr data-schedule=(name) {
                            td { (name) br; span.dim.small { (t.kind.as_str()) " in " (t.lane.as_str()) } }
                            td.mono.trigger { (r.spec.trigger.encode()) }
                            td { (r.spec.zone) }
                            td {
                                span class={ "badge sched-" (state) } { (state) }
                                @if let Some(b) = &r.broken { br; span.dim.small { (b) } }
                            }
                            td.next-fires {
                                @for (i, f) in crate::schedule::upcoming(r, NEXT_FIRES).into_iter().enumerate() {
                                    @if i > 0 { br; }
                                    span title=(crate::schedule::zoned(f, &r.spec.zone)) { (time(ctx.now_ms, Some(f))) }
                                }
                                @if r.next_fire_ms.is_none() { span.dim { "—" } }
                            }
                            td.last-run {
                                (time(ctx.now_ms, r.last_fire_ms))
                                @if let Some(e) = &r.last_execution {
                                    br;
                                    a.mono href={ (base) "/executions/" (seg(e.as_str())) } { (e.as_str()) }
                                }
                            }
                            td.num.fired { (num(r.fired)) }
                            td.num { (num(r.missed)) " · " (num(r.overlapped)) }
                            td {
                                @if !st.read_only {
                                    @if r.spec.paused {
                                        form.inline method="post" action={ (base) "/schedules/" (seg(name)) "/resume" } {
                                            (form_guard(&st.csrf, &back))
                                            button.resume type="submit" { "Resume" }
                                        }
                                    } @else {
                                        form.inline method="post" action={ (base) "/schedules/" (seg(name)) "/pause" } {
                                            (form_guard(&st.csrf, &back))
                                            button.pause type="submit" { "Pause" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if all.len() > MAX_SCHEDULE_ROWS {
                p.dim { "The first " (num(MAX_SCHEDULE_ROWS as u64)) " by name are shown; `ff schedule list` lists all." }
            }
        }
        p.dim.small {
            "Next fires are the stored next fire time and the ones after it by the schedule's timetable "
            "(UTC; hover for the schedule's zone). The last run is the latest fire time decided (made or missed) "
            "and the execution the latest fire made. Pausing stops the fires; resuming fires from "
            "the first fire time after now (the ones in between make nothing)."
        }
    };
    Ok(page(&ctx, "Schedules", Nav::Schedules, st.read_only, body))
}

pub(crate) async fn not_found(ctx: Ctx) -> PageError {
    PageError {
        status: StatusCode::NOT_FOUND,
        title: "Not found",
        text: "There is no such page.".into(),
        base: ctx.base,
    }
}

pub(crate) async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("style.css"),
    )
}

pub(crate) async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        include_str!("app.js"),
    )
}
