//! The POST actions: retry, cancel, pause and resume a lane or a schedule,
//! retry every match of a filter. Each checks the CSRF token (and
//! read-only mode) first, then answers 303 back to the page it came from with what happened in the
//! address (`msg=` or `err=`), so a reload does not repeat it.

use super::html::{Ctx, PageError};
use super::pages::{can_retry, nonempty as pick, Filter};
use super::AppState;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::response::Redirect;
use ff_core::schedule::ScheduleName;
use ff_core::{ExecutionId, Lane};
use ff_engine::Requeued;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ActionForm {
    csrf: Option<String>,
    back: Option<String>,
    reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct BulkForm {
    csrf: Option<String>,
    back: Option<String>,
    lane: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    error: Option<String>,
}

type Answer = Result<Redirect, PageError>;

/// Refuse in read-only mode and without this process's CSRF token.
fn guard(st: &AppState, base: &str, csrf: Option<&str>) -> Result<(), PageError> {
    if st.read_only {
        return Err(PageError::forbidden(
            base,
            "This dashboard is read-only (started with --read-only).",
        ));
    }
    let ok = csrf.is_some_and(|c| {
        c.len() == st.csrf.len()
            && c.bytes()
                .zip(st.csrf.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !ok {
        return Err(PageError::forbidden(
            base,
            "The form's CSRF token is missing or stale (the dashboard restarted?): reload the page and try again.",
        ));
    }
    Ok(())
}

fn form<T>(base: &str, f: Result<Form<T>, FormRejection>) -> Result<T, PageError> {
    f.map(|Form(t)| t)
        .map_err(|e| PageError::bad_request(base, e.body_text()))
}

/// A path inside the dashboard to go back to (never another site).
fn safe_back(base: &str, back: Option<&str>) -> String {
    let inside = |b: &str| {
        b.starts_with('/')
            && !b.starts_with("//")
            && !b.contains('\\')
            && !b.chars().any(char::is_control)
            && (b == base || b.starts_with(&format!("{base}/")))
    };
    match back {
        Some(b) if inside(b) => b.to_owned(),
        _ => format!("{base}/"),
    }
}

fn answer(base: &str, back: Option<&str>, key: &str, text: &str) -> Redirect {
    let to = safe_back(base, back);
    let sep = if to.contains('?') { '&' } else { '?' };
    let q = serde_urlencoded::to_string([(key, text)]).unwrap_or_default();
    Redirect::to(&format!("{to}{sep}{q}"))
}

fn execution_id(base: &str, id: &str) -> Result<ExecutionId, PageError> {
    ExecutionId::parse(id)
        .map_err(|e| PageError::bad_request(base, format!("not an execution id: {e}")))
}

pub(crate) async fn retry(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    f: Result<Form<ActionForm>, FormRejection>,
) -> Answer {
    let base = &ctx.base;
    let f = form(base, f)?;
    guard(&st, base, f.csrf.as_deref())?;
    let eid = execution_id(base, &id)?;
    let back = f.back.as_deref();
    Ok(match st.client.requeue(&eid).await {
        Ok(Requeued::Requeued) => answer(base, back, "msg", &format!("{eid}: requeued")),
        Ok(Requeued::Live) => answer(base, back, "msg", &format!("{eid}: not ended; unchanged")),
        Err(e) => answer(base, back, "err", &format!("{eid}: not requeued: {e}")),
    })
}

pub(crate) async fn cancel(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(id): Path<String>,
    f: Result<Form<ActionForm>, FormRejection>,
) -> Answer {
    let base = &ctx.base;
    let f = form(base, f)?;
    guard(&st, base, f.csrf.as_deref())?;
    let eid = execution_id(base, &id)?;
    let reason = f
        .reason
        .as_deref()
        .filter(|r| !r.trim().is_empty())
        .unwrap_or("cancelled from the dashboard");
    let back = f.back.as_deref();
    Ok(match st.client.cancel(&eid, reason).await {
        Ok(ended) => answer(base, back, "msg", &format!("{eid}: {:?}", ended.outcome)),
        Err(e) => answer(base, back, "err", &format!("{eid}: not cancelled: {e}")),
    })
}

/// What the pause and resume actions act on.
#[derive(Clone, Copy)]
enum Pausable {
    Lane,
    Schedule,
}

async fn set_paused(
    st: AppState,
    ctx: Ctx,
    kind: Pausable,
    name: String,
    f: Result<Form<ActionForm>, FormRejection>,
    paused: bool,
) -> Answer {
    let base = &ctx.base;
    let f = form(base, f)?;
    guard(&st, base, f.csrf.as_deref())?;
    let c = &st.client;
    // (what, Ok(false) when it was so already)
    let (what, done) = match kind {
        Pausable::Lane => {
            let lane =
                Lane::new(name).map_err(|e| PageError::bad_request(base, format!("lane: {e}")))?;
            let done = if paused {
                c.pause_lane(lane.as_str()).await
            } else {
                c.resume_lane(lane.as_str()).await
            };
            (format!("lane {lane}"), done.map(|()| true))
        }
        Pausable::Schedule => {
            let name = ScheduleName::new(name)
                .map_err(|e| PageError::bad_request(base, format!("schedule: {e}")))?;
            let done = if paused {
                c.pause_schedule(name.as_str()).await
            } else {
                c.resume_schedule(name.as_str()).await
            };
            (format!("schedule {name}"), done)
        }
    };
    let verb = if paused { "paused" } else { "resumed" };
    let back = f.back.as_deref();
    Ok(match done {
        Ok(true) => answer(base, back, "msg", &format!("{what}: {verb}")),
        Ok(false) => answer(base, back, "msg", &format!("{what}: {verb} already")),
        Err(e) => answer(base, back, "err", &format!("{what}: not {verb}: {e}")),
    })
}

pub(crate) async fn pause(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(lane): Path<String>,
    f: Result<Form<ActionForm>, FormRejection>,
) -> Answer {
    set_paused(st, ctx, Pausable::Lane, lane, f, true).await
}

pub(crate) async fn resume(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(lane): Path<String>,
    f: Result<Form<ActionForm>, FormRejection>,
) -> Answer {
    set_paused(st, ctx, Pausable::Lane, lane, f, false).await
}

pub(crate) async fn pause_schedule(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    f: Result<Form<ActionForm>, FormRejection>,
) -> Answer {
    set_paused(st, ctx, Pausable::Schedule, name, f, true).await
}

pub(crate) async fn resume_schedule(
    State(st): State<AppState>,
    ctx: Ctx,
    Path(name): Path<String>,
    f: Result<Form<ActionForm>, FormRejection>,
) -> Answer {
    set_paused(st, ctx, Pausable::Schedule, name, f, false).await
}

/// Retry every match of a filter ([`ff_engine::Client::requeue_matching`]:
/// bounded, gathered before requeued). What is left is done by pressing
/// again (the requeued ones no longer match).
pub(crate) async fn bulk_retry(
    State(st): State<AppState>,
    ctx: Ctx,
    f: Result<Form<BulkForm>, FormRejection>,
) -> Answer {
    let base = &ctx.base;
    let f = form(base, f)?;
    guard(&st, base, f.csrf.as_deref())?;
    let filter = Filter::parse(
        base,
        pick(&f.lane),
        pick(&f.state),
        pick(&f.kind),
        pick(&f.error),
    )?;
    if !can_retry(filter.state) {
        return Err(PageError::bad_request(
            base,
            format!(
                "{} executions cannot be retried (only failed, cancelled and expired ones)",
                filter.state
            ),
        ));
    }
    let back = f.back.as_deref();
    let q = filter.query(500).map_err(|e| PageError::engine(base, e))?;
    let done = match st.client.requeue_matching(&q).await {
        Ok(d) => d,
        Err(e) => return Ok(answer(base, back, "err", &format!("listing failed: {e}"))),
    };
    let (requeued, live, refused, complete) =
        (done.requeued, done.live, done.refused.len(), done.complete);
    let first_refusal = done.refused.first().map(|(id, e)| format!("{id}: {e}"));
    let mut text = format!("{requeued} requeued of {} matched", done.matched);
    if live > 0 {
        text.push_str(&format!(", {live} already running again"));
    }
    if let Some(r) = first_refusal {
        text.push_str(&format!(", {refused} refused (first: {r})"));
    }
    if !complete {
        text.push_str("; more may match: press again to go on");
    }
    Ok(answer(
        base,
        back,
        if refused > 0 { "err" } else { "msg" },
        &text,
    ))
}

#[cfg(test)]
mod tests {
    use super::safe_back;

    #[test]
    fn back_stays_inside() {
        assert_eq!(safe_back("", Some("/executions?x=1")), "/executions?x=1");
        assert_eq!(safe_back("", Some("//evil.example/")), "/");
        assert_eq!(safe_back("", Some("https://evil.example/")), "/");
        assert_eq!(safe_back("", Some("/\\evil")), "/");
        assert_eq!(
            safe_back("/ops", Some("/ops/executions")),
            "/ops/executions"
        );
        assert_eq!(safe_back("/ops", Some("/other")), "/ops/");
        assert_eq!(safe_back("/ops", None), "/ops/");
    }
}
