//! The page frame, small pictures (bars drawn as SVG) and text helpers the
//! pages share. Every value goes through maud's `(expr)`, which escapes it.

use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use ff_core::state::PublicState;
use ff_core::FfError;
use maud::{html, Markup, DOCTYPE};
use std::convert::Infallible;

/// Which page the navigation marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Overview,
    Executions,
    Flows,
    Schedules,
    None,
}

/// Per request: the prefix the router is mounted under (links start with
/// it), the time, and the message an action left in the address.
pub(crate) struct Ctx {
    pub base: String,
    pub now_ms: u64,
    pub msg: Option<String>,
    pub err: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        let inner = parts.uri.path().to_owned();
        let base = match parts.extensions.get::<OriginalUri>() {
            Some(OriginalUri(full)) => mount_prefix(full.path(), &inner),
            None => String::new(),
        };
        let query: Vec<(String, String)> = parts
            .uri
            .query()
            .and_then(|q| serde_urlencoded::from_str(q).ok())
            .unwrap_or_default();
        let take = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.chars().take(500).collect())
        };
        Ok(Ctx {
            base,
            now_ms: now_ms(),
            msg: take("msg"),
            err: take("err"),
        })
    }
}

/// The prefix a nested router was mounted under: the full path minus the
/// path the router saw (`/ops` + `/executions`; `/ops` alone is `/`).
pub(crate) fn mount_prefix(full: &str, inner: &str) -> String {
    if let Some(p) = full.strip_suffix(inner) {
        if inner != "/" || !p.is_empty() {
            return p.trim_end_matches('/').to_owned();
        }
    }
    if inner == "/" {
        return full.trim_end_matches('/').to_owned();
    }
    String::new()
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A page that could not be shown, with the status that says why.
#[derive(Debug)]
pub(crate) struct PageError {
    pub status: StatusCode,
    pub title: &'static str,
    pub text: String,
    pub base: String,
}

impl PageError {
    pub fn bad_request(base: &str, text: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            title: "Bad request",
            text: text.into(),
            base: base.to_owned(),
        }
    }
    pub fn forbidden(base: &str, text: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            title: "Forbidden",
            text: text.into(),
            base: base.to_owned(),
        }
    }

    /// An engine error as the status a person (and a script) expects.
    pub fn engine(base: &str, e: ff_engine::Error) -> Self {
        use ff_engine::Error as E;
        let (status, title) = match &e {
            E::Rejected(FfError::NotFound) => (StatusCode::NOT_FOUND, "Not found"),
            E::Rejected(FfError::UnknownLane(_)) => (StatusCode::NOT_FOUND, "Unknown lane"),
            E::Invalid { .. } | E::Parse(_) => (StatusCode::BAD_REQUEST, "Bad request"),
            E::Rejected(_) => (StatusCode::CONFLICT, "Refused"),
            E::Store(_) => (StatusCode::BAD_GATEWAY, "The server did not answer"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "Error"),
        };
        Self {
            status,
            title,
            text: e.to_string(),
            base: base.to_owned(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        (self.status, error_page(&self.base, self.title, &self.text)).into_response()
    }
}

/// A whole page saying what went wrong.
pub(crate) fn error_page(base: &str, title: &str, text: &str) -> Markup {
    frame(
        base,
        title,
        Nav::None,
        html! {
            h1 { (title) }
            p.error-text { (text) }
            p { a href={ (base) "/" } { "Back to the overview" } }
        },
    )
}

/// The frame of every page: head, navigation, the action's message.
pub(crate) fn page(ctx: &Ctx, title: &str, nav: Nav, read_only: bool, body: Markup) -> Markup {
    frame(
        &ctx.base,
        title,
        nav,
        html! {
            @if read_only {
                p.banner.read-only { "Read-only: the buttons are off (started with --read-only)." }
            }
            @if let Some(m) = &ctx.msg {
                p.banner.ok role="status" { (m) }
            }
            @if let Some(e) = &ctx.err {
                p.banner.bad role="alert" { (e) }
            }
            (body)
        },
    )
}

fn frame(base: &str, title: &str, nav: Nav, body: Markup) -> Markup {
    let item = |n: Nav, href: &str, label: &str| {
        html! {
            a class=[(nav == n).then_some("current")] href={ (base) (href) } { (label) }
        }
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ff" }
                link rel="stylesheet" href={ (base) "/assets/style.css" };
                script src={ (base) "/assets/app.js" } defer {}
            }
            body {
                header.top {
                    a.brand href={ (base) "/" } { "ff" }
                    nav {
                        (item(Nav::Overview, "/", "Overview"))
                        (item(Nav::Executions, "/executions", "Executions"))
                        (item(Nav::Flows, "/flows", "Flows"))
                        (item(Nav::Schedules, "/schedules", "Schedules"))
                    }
                }
                main { (body) }
            }
        }
    }
}

/// A hidden CSRF field and a `back` address for an action's form.
pub(crate) fn form_guard(csrf: &str, back: &str) -> Markup {
    html! {
        input type="hidden" name="csrf" value=(csrf);
        input type="hidden" name="back" value=(back);
    }
}

/// A horizontal bar, `fraction` (0..=1) of it filled; `mark` is an extra
/// tick (a soft limit).
pub(crate) fn bar(fraction: f64, class: &str, mark: Option<f64>) -> Markup {
    let pct = |f: f64| format!("{:.2}%", (f.clamp(0.0, 1.0)) * 100.0);
    html! {
        svg.bar width="100%" height="12" role="img" aria-label=(pct(fraction)) {
            rect.track x="0" y="0" width="100%" height="12" rx="3" {}
            rect class=(class) x="0" y="0" width=(pct(fraction)) height="12" rx="3" {}
            @if let Some(m) = mark {
                rect.mark x=(pct(m)) y="0" width="2" height="12" {}
            }
        }
    }
}

/// One bar split into coloured segments with a legend: how a whole divides.
pub(crate) fn stacked(segments: &[(&str, u64, &str)]) -> Markup {
    let total: u64 = segments.iter().map(|s| s.1).sum();
    // (label, count, class, left %, width %) of each non-empty segment.
    let mut drawn = Vec::new();
    let mut x = 0.0f64;
    for (label, n, class) in segments {
        if *n > 0 && total > 0 {
            let w = *n as f64 / total as f64 * 100.0;
            drawn.push((*label, *n, *class, x, w));
            x += w;
        }
    }
    html! {
        figure.stacked {
            svg width="100%" height="22" role="img" aria-label="how the counts divide" {
                rect.track x="0" y="0" width="100%" height="22" rx="4" {}
                @for (label, n, class, x, w) in &drawn {
                    rect class=(class) x={ (format!("{x:.3}")) "%" } y="0"
                        width={ (format!("{w:.3}")) "%" } height="22" {
                        title { (label) ": " (num(*n)) }
                    }
                }
            }
            figcaption {
                @for (label, n, class) in segments {
                    span.key {
                        svg width="10" height="10" { rect class=(class) width="10" height="10" rx="2" {} }
                        " " (label) " " b { (num(*n)) }
                    }
                }
            }
        }
    }
}

/// Per minute, completed (green) under failed (red) as stacked columns, the
/// oldest minute first: a lane's throughput at a glance.
pub(crate) fn throughput(completed: &[u64], failed: &[u64]) -> Markup {
    const W: usize = 3;
    const H: f64 = 24.0;
    let max = completed
        .iter()
        .zip(failed)
        .map(|(c, f)| c + f)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let width = completed.len() * W;
    html! {
        svg.throughput width=(width) height=(H) role="img"
            aria-label={ "per minute: " (num(completed.iter().sum())) " completed, " (num(failed.iter().sum())) " failed" } {
            rect.track x="0" y="0" width=(width) height=(H) {}
            @for (i, (c, f)) in completed.iter().zip(failed).enumerate() {
                @let hc = *c as f64 / max * H;
                @let hf = *f as f64 / max * H;
                @if *c > 0 {
                    rect.s-completed data-minute=(i) x=(i * W) y=(format!("{:.2}", H - hc)) width=(W - 1) height=(format!("{hc:.2}")) {
                        title { (num(*c)) " completed" }
                    }
                }
                @if *f > 0 {
                    rect.s-failed x=(i * W) y=(format!("{:.2}", H - hc - hf)) width=(W - 1) height=(format!("{hf:.2}")) {
                        title { (num(*f)) " failed" }
                    }
                }
            }
        }
    }
}

/// A public state as a heading ("waiting_children" -> "Waiting children").
pub(crate) fn state_label(s: PublicState) -> String {
    let t = s.as_str().replace('_', " ");
    let mut c = t.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The CSS class of a state's colour.
pub(crate) fn state_class(state: &str) -> String {
    format!("s-{state}")
}

pub(crate) fn state_badge(s: PublicState) -> Markup {
    html! { span class={ "badge " (state_class(s.as_str())) } { (s.as_str()) } }
}

/// Percent-encode a path segment (execution ids hold `{`, `}` and `:`).
pub(crate) fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string (without `?`) of the non-empty pairs.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<&(&str, &str)> = pairs.iter().filter(|(_, v)| !v.is_empty()).collect();
    serde_urlencoded::to_string(kept).unwrap_or_default()
}

/// UTC time of a server timestamp, to the second.
pub(crate) fn when(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's
/// civil_from_days).
fn civil(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// "3 min ago" / "in 20 s".
pub(crate) fn ago(now_ms: u64, ms: u64) -> String {
    let (d, future) = if ms > now_ms {
        (ms - now_ms, true)
    } else {
        (now_ms - ms, false)
    };
    let s = d / 1000;
    let text = match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        3600..=86_399 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A time with its distance from now.
pub(crate) fn time(now_ms: u64, ms: Option<u64>) -> Markup {
    match ms {
        Some(ms) => html! { (when(ms)) " " span.dim { "(" (ago(now_ms, ms)) ")" } },
        None => html! { span.dim { "—" } },
    }
}

/// At most `max` bytes of `b` as text (JSON pretty-printed when all of it
/// parses), and whether it was cut.
pub(crate) fn preview(b: &[u8], max: usize) -> (String, bool) {
    if b.len() <= 64 * 1024 {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(b) {
            if v.is_object() || v.is_array() {
                let pretty = serde_json::to_string_pretty(&v).unwrap_or_default();
                if pretty.len() <= max {
                    return (pretty, false);
                }
                let cut: String = pretty.chars().take(max).collect();
                return (cut, true);
            }
        }
    }
    let cut = b.len() > max;
    (
        String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned(),
        cut,
    )
}

/// Group digits: 1234567 → "1,234,567".
pub(crate) fn num(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_numbers() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(when(1_709_251_199_000), "2024-02-29 23:59:59 UTC");
        assert_eq!(num(1_234_567), "1,234,567");
        assert_eq!(num(12), "12");
        assert_eq!(ago(10_000, 4_000), "6 s ago");
        assert_eq!(ago(0, 120_000), "in 2 min");
    }

    #[test]
    fn mount_prefixes() {
        assert_eq!(mount_prefix("/executions", "/executions"), "");
        assert_eq!(mount_prefix("/", "/"), "");
        assert_eq!(mount_prefix("/ops/ff/executions", "/executions"), "/ops/ff");
        assert_eq!(mount_prefix("/ops/ff", "/"), "/ops/ff");
        assert_eq!(mount_prefix("/ops/ff/", "/"), "/ops/ff");
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(seg("{fp:3}:ab"), "%7Bfp%3A3%7D%3Aab");
    }

    #[test]
    fn values_are_escaped() {
        let m = page(
            &Ctx {
                base: String::new(),
                now_ms: 0,
                msg: Some("<b>x</b>".into()),
                err: None,
            },
            "<t>",
            Nav::None,
            false,
            html! { p { ("<script>alert(1)</script>") } },
        )
        .into_string();
        assert!(m.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!m.contains("<script>alert"));
        assert!(m.contains("&lt;b&gt;x&lt;/b&gt;"));
    }
}
