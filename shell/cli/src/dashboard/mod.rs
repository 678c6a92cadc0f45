//! `ff dashboard`: a web page onto the work — counts per state and lane,
//! executions by state with filters and paging, one execution in full, a
//! flow's summary, graph and members, budgets and quotas, schedules — and
//! the operator's buttons (retry, cancel, pause and resume a lane or a
//! schedule, retry every match of a filter).
//!
//! [`router`] is the whole dashboard as an axum [`Router`]: `ff dashboard`
//! serves it behind [`Auth`], and a service can mount it in its own app
//! (under any prefix, behind its own authentication):
//!
//! ```no_run
//! # async fn f(client: ff_engine::Client) {
//! use ff_cli::dashboard::{router, DashboardOptions};
//! let app = axum::Router::new().nest("/ops/ff", router(client, DashboardOptions::default()));
//! # let _ = app;
//! # }
//! ```
//!
//! Pages are rendered on the server with maud, whose every `(expr)` splice is
//! HTML-escaped (nothing here opts out with `PreEscaped`), so names, payloads
//! and error messages always reach the browser as text. The stylesheet and
//! the one small script are compiled into the binary: nothing is fetched
//! from elsewhere. Every POST carries the process's random CSRF token and is
//! refused without it; `read_only` refuses them all and hides the buttons.

mod actions;
mod auth;
mod dag;
mod engine_metrics;
mod html;
mod pages;

pub use auth::{Auth, AuthError};

use axum::http::{header, HeaderValue};
use axum::routing::{get, post};
use axum::Router;
use ff_engine::Client;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// How the dashboard behaves.
#[derive(Debug, Clone, Default)]
pub struct DashboardOptions {
    /// Show no buttons and refuse every POST.
    pub read_only: bool,
    /// Engines' Prometheus endpoints (`http://host:port/metrics`): the
    /// overview shows their scanners' backlog, work and errors.
    pub engine_metrics: Vec<String>,
}

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Inner>);

pub(crate) struct Inner {
    pub client: Client,
    pub read_only: bool,
    pub engine_metrics: Vec<String>,
    /// Embedded in every form and required on every POST: a page from
    /// another origin cannot read it, so it cannot forge a POST.
    pub csrf: String,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// 128 random bits as hex (the CSRF token).
fn random_token() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

/// The dashboard as a router, without authentication: mount it where your
/// own authentication guards it (or wrap it with [`Auth::layer`]). Links
/// follow the prefix it is mounted under.
pub fn router(client: Client, opts: DashboardOptions) -> Router {
    let state = AppState(Arc::new(Inner {
        client,
        read_only: opts.read_only,
        engine_metrics: opts.engine_metrics,
        csrf: random_token(),
    }));
    Router::new()
        .route("/", get(pages::overview))
        .route("/executions", get(pages::executions))
        .route("/executions/{id}", get(pages::execution))
        .route("/executions/{id}/retry", post(actions::retry))
        .route("/executions/{id}/cancel", post(actions::cancel))
        .route("/lanes/{lane}/pause", post(actions::pause))
        .route("/lanes/{lane}/resume", post(actions::resume))
        .route("/bulk-retry", post(actions::bulk_retry))
        .route("/flows", get(pages::flows))
        .route("/flows/{id}", get(pages::flow))
        .route("/schedules", get(pages::schedules))
        .route("/schedules/{name}/pause", post(actions::pause_schedule))
        .route("/schedules/{name}/resume", post(actions::resume_schedule))
        .route("/assets/style.css", get(pages::style))
        .route("/assets/app.js", get(pages::script))
        .fallback(pages::not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// Headers every answer carries: no inline script or style runs even if
/// something unescaped slipped through, no framing, no referrer leaks.
async fn security_headers(mut res: axum::response::Response) -> axum::response::Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

/// Why `ff dashboard` will not listen on an address.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BindRefused(String);

/// The address rule of `ff dashboard`: loopback freely, anything else only
/// with a token or basic auth (the dashboard can retry and cancel work).
pub fn check_bind(addr: SocketAddr, auth: &Auth) -> Result<(), BindRefused> {
    if addr.ip().is_loopback() || !matches!(auth, Auth::None) {
        return Ok(());
    }
    Err(BindRefused(format!(
        "{addr} is not a loopback address: anyone who reaches it could retry and cancel work; \
         give --token or --basic-auth (or bind to 127.0.0.1)"
    )))
}

/// Serve `app` on `listener` until `stop` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
}

#[cfg(test)]
mod tests;
