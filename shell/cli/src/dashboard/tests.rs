//! The dashboard's HTTP behaviour on the in-process store, without a
//! browser (tests/tests/dashboard.rs drives a real one against a real
//! server): status codes of bad input, CSRF, read-only, auth, mounting.

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use ff_core::retry::RetryPolicy;
use ff_core::state::PublicState;
use ff_core::{Lane, WorkerInstance, WorkerName};
use ff_engine::store::MemoryStore;
use ff_engine::ExecutionSpec;
use std::time::Duration;
use tower::ServiceExt;

async fn client() -> Client {
    Client::new(Arc::new(MemoryStore::new())).await.unwrap()
}

/// One execution failed for good with `message`; its id.
async fn failed(c: &Client, message: &str) -> ff_core::ExecutionId {
    let id = c
        .create(ExecutionSpec::new("mail.send").retry(RetryPolicy::none()))
        .await
        .unwrap()
        .execution;
    let (w, i) = (
        WorkerName::new("w").unwrap(),
        WorkerInstance::new("w-1").unwrap(),
    );
    let job = c
        .claim(&Lane::default_lane(), &w, &i, Duration::from_secs(30), 1)
        .await
        .unwrap()
        .pop()
        .unwrap();
    c.fail(&job.lease, message, false).await.unwrap();
    id
}

async fn send(app: &Router, req: Request<Body>) -> (StatusCode, String, axum::http::HeaderMap) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let body = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned(), headers)
}

async fn get(app: &Router, path: &str) -> (StatusCode, String) {
    let (s, b, _) = send(app, Request::get(path).body(Body::empty()).unwrap()).await;
    (s, b)
}

async fn post(app: &Router, path: &str, form: &str) -> (StatusCode, String, axum::http::HeaderMap) {
    send(
        app,
        Request::post(path)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.to_owned()))
            .unwrap(),
    )
    .await
}

fn csrf_of(page: &str) -> String {
    let at = page
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    page[at..at + 32].to_owned()
}

#[tokio::test]
async fn bad_input_gets_a_clear_page() {
    let app = router(client().await, DashboardOptions::default());
    for (path, status, says) in [
        (
            "/executions/nope",
            StatusCode::BAD_REQUEST,
            "not an execution id",
        ),
        (
            "/executions/%7Bfp:0%7D:0123456789abcdef0123456789abcdef",
            StatusCode::NOT_FOUND,
            "No execution",
        ),
        (
            "/executions?state=sleeping",
            StatusCode::BAD_REQUEST,
            "unknown state",
        ),
        (
            "/executions?lane=no%20such",
            StatusCode::BAD_REQUEST,
            "lane",
        ),
        (
            "/executions?lane=ghost",
            StatusCode::NOT_FOUND,
            "Unknown lane",
        ),
        ("/executions?limit=0", StatusCode::BAD_REQUEST, "limit"),
        ("/executions?limit=x", StatusCode::BAD_REQUEST, "limit"),
        ("/executions?cursor=9.9", StatusCode::BAD_REQUEST, "cursor"),
        (
            "/executions?cursor=0.99999.0",
            StatusCode::BAD_REQUEST,
            "cursor",
        ),
        ("/flows/bad%20id", StatusCode::BAD_REQUEST, "not a flow id"),
        (
            "/flows?flow=bad%20id",
            StatusCode::BAD_REQUEST,
            "not a flow id",
        ),
        ("/no/such/page", StatusCode::NOT_FOUND, "no such page"),
    ] {
        let (s, body) = get(&app, path).await;
        assert_eq!(s, status, "{path}: {body}");
        assert!(body.contains(says), "{path} should say {says:?}: {body}");
        assert!(body.contains("<html"), "{path}: an HTML page");
    }
}

#[tokio::test]
async fn errors_render_as_text() {
    let c = client().await;
    let id = failed(&c, "<script>alert(1)</script> & more").await;
    let app = router(c, DashboardOptions::default());
    let (s, list) = get(&app, "/executions?state=failed").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        list.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"),
        "{list}"
    );
    assert!(!list.contains("<script>alert"));
    let (s, one) = get(&app, &format!("/executions/{}", html::seg(id.as_str()))).await;
    assert_eq!(s, StatusCode::OK);
    assert!(one.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(!one.contains("<script>alert"));
    // The only script tag is the embedded file's.
    assert_eq!(one.matches("<script").count(), 1);
}

#[tokio::test]
async fn posts_need_the_csrf_token_and_retry_works() {
    let c = client().await;
    let id = failed(&c, "boom").await;
    let app = router(c.clone(), DashboardOptions::default());
    let path = format!("/executions/{}/retry", html::seg(id.as_str()));
    let (s, body, _) = post(&app, &path, "back=%2F").await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    let (s, _, _) = post(&app, &path, "csrf=00000000000000000000000000000000").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(c.get(&id).await.unwrap().public_state, PublicState::Failed);

    let (_, page) = get(&app, "/executions?state=failed").await;
    let token = csrf_of(&page);
    let (s, _, h) = post(
        &app,
        &path,
        &format!("csrf={token}&back=%2Fexecutions%3Fstate%3Dfailed"),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let to = h["location"].to_str().unwrap();
    assert!(to.starts_with("/executions?state=failed&msg="), "{to}");
    assert_eq!(c.get(&id).await.unwrap().public_state, PublicState::Waiting);
    // Going back to another site is not followed.
    let (_, _, h) = post(
        &app,
        &path,
        &format!("csrf={token}&back=%2F%2Fevil.example"),
    )
    .await;
    assert!(h["location"].to_str().unwrap().starts_with("/?"));
}

#[tokio::test]
async fn bulk_retry_requeues_every_match_of_the_filter() {
    let c = client().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let msg = if i < 3 {
            "timeout talking to smtp"
        } else {
            "bad address"
        };
        ids.push(failed(&c, msg).await);
    }
    let app = router(c.clone(), DashboardOptions::default());
    let (_, page) = get(&app, "/executions?state=failed&error=timeout").await;
    assert!(page.contains("Retry every match"));
    let token = csrf_of(&page);
    let (s, _, h) = post(
        &app,
        "/bulk-retry",
        &format!("csrf={token}&lane=default&state=failed&error=timeout&back=%2Fexecutions"),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(h["location"]
        .to_str()
        .unwrap()
        .contains("3+requeued+of+3+matched"));
    for (i, id) in ids.iter().enumerate() {
        let want = if i < 3 {
            PublicState::Waiting
        } else {
            PublicState::Failed
        };
        assert_eq!(c.get(id).await.unwrap().public_state, want, "#{i}");
    }
    let (s, body, _) = post(
        &app,
        "/bulk-retry",
        &format!("csrf={token}&lane=default&state=waiting"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn read_only_shows_no_buttons_and_refuses_posts() {
    let c = client().await;
    let id = failed(&c, "boom").await;
    let app = router(
        c.clone(),
        DashboardOptions {
            read_only: true,
            ..Default::default()
        },
    );
    let (_, page) = get(&app, "/executions?state=failed").await;
    assert!(page.contains("Read-only"));
    assert!(!page.contains("method=\"post\""), "{page}");
    let (_, page) = get(&app, "/").await;
    assert!(!page.contains("method=\"post\""));
    let (s, _, _) = post(
        &app,
        &format!("/executions/{}/retry", html::seg(id.as_str())),
        "csrf=x",
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _, _) = post(&app, "/lanes/default/pause", "csrf=x").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(c.paused_lanes().await.unwrap().is_empty());
    c.define_schedule("tick", hourly()).await.unwrap();
    let (_, page) = get(&app, "/schedules").await;
    assert!(page.contains("data-schedule=\"tick\""), "{page}");
    assert!(!page.contains("method=\"post\""));
    let (s, _, _) = post(&app, "/schedules/tick/pause", "csrf=x").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(!c.get_schedule("tick").await.unwrap().unwrap().spec.paused);
}

fn hourly() -> ff_engine::client::Schedule {
    ff_engine::client::Schedule::every(Duration::from_secs(3600))
}

#[tokio::test]
async fn schedule_pause_and_resume_need_the_token() {
    let c = client().await;
    c.define_schedule("tick", hourly()).await.unwrap();
    let app = router(c.clone(), DashboardOptions::default());
    let (s, page) = get(&app, "/schedules").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("every:3600000"), "{page}");
    let (s, _, _) = post(
        &app,
        "/schedules/tick/pause",
        "csrf=00000000000000000000000000000000",
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(!c.get_schedule("tick").await.unwrap().unwrap().spec.paused);
    let token = csrf_of(&page);
    let (s, _, h) = post(
        &app,
        "/schedules/tick/pause",
        &format!("csrf={token}&back=%2Fschedules"),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(h["location"]
        .to_str()
        .unwrap()
        .starts_with("/schedules?msg=schedule+tick%3A+paused"));
    assert!(c.get_schedule("tick").await.unwrap().unwrap().spec.paused);
    let (_, page) = get(&app, "/schedules").await;
    assert!(page.contains("/schedules/tick/resume"));
    let (s, _, _) = post(&app, "/schedules/tick/resume", &format!("csrf={token}")).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(!c.get_schedule("tick").await.unwrap().unwrap().spec.paused);
    // A name that is not one is a 400; an unknown schedule is said so.
    let (s, _, _) = post(&app, "/schedules/a%20b/pause", &format!("csrf={token}")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, h) = post(&app, "/schedules/nope/resume", &format!("csrf={token}")).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(h["location"].to_str().unwrap().contains("err="));
}

#[tokio::test]
async fn overview_counts_and_pause() {
    let c = client().await;
    c.register_lane(&Lane::new("mail").unwrap()).await.unwrap();
    for _ in 0..3 {
        c.create(ExecutionSpec::new("k")).await.unwrap();
    }
    c.create(ExecutionSpec::new("k").lane("mail"))
        .await
        .unwrap();
    c.create(ExecutionSpec::new("k").delay(Duration::from_secs(600)))
        .await
        .unwrap();
    let counts = c.counts().await.unwrap();
    assert_eq!(counts.in_lane("default", PublicState::Waiting), 3);
    assert_eq!(counts.in_lane("mail", PublicState::Waiting), 1);
    assert_eq!(counts.total(PublicState::Waiting), 4);
    assert_eq!(counts.total(PublicState::Delayed), 1);
    assert_eq!(counts.total(PublicState::Suspended), 0);
    let app = router(c.clone(), DashboardOptions::default());
    let (s, page) = get(&app, "/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("<tr data-lane=\"mail\">"));
    let token = csrf_of(&page);
    let (s, _, _) = post(&app, "/lanes/mail/pause", &format!("csrf={token}&back=%2F")).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(c.paused_lanes().await.unwrap(), vec!["mail".to_owned()]);
    let (_, page) = get(&app, "/").await;
    assert!(page.contains("Resume"));
    let (s, _, h) = post(&app, "/lanes/nolane/pause", &format!("csrf={token}")).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert!(h["location"].to_str().unwrap().contains("err="));
}

#[tokio::test]
async fn mounted_under_a_prefix_links_follow_it() {
    let app = Router::new().nest(
        "/ops/ff",
        router(client().await, DashboardOptions::default()),
    );
    let (s, page) = get(&app, "/ops/ff/executions").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("href=\"/ops/ff/assets/style.css\""), "{page}");
    assert!(page.contains("action=\"/ops/ff/executions\""));
    let (s, css) = get(&app, "/ops/ff/assets/style.css").await;
    assert_eq!(s, StatusCode::OK);
    assert!(css.contains("--accent"));
    let (s, page) = get(&app, "/ops/ff").await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("href=\"/ops/ff/executions\""));
}

#[tokio::test]
async fn auth_token_and_basic() {
    let c = client().await;
    let token = "0123456789abcdef-token";
    let app = Auth::token(token)
        .unwrap()
        .layer(router(c.clone(), DashboardOptions::default()));
    let (s, _) = get(&app, "/").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = send(
        &app,
        Request::get("/")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, h) = send(
        &app,
        Request::get(format!("/executions?state=failed&token={token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h["location"], "/executions?state=failed");
    let cookie = h["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let (s, _, _) = send(
        &app,
        Request::get("/")
            .header("cookie", format!("x=1; ff_dashboard_token={token}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = get(&app, "/?token=wrong-wrong-wrong-wrong").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let app = Auth::basic("ops:s3cret:x")
        .unwrap()
        .layer(router(c, DashboardOptions::default()));
    let (s, _, h) = send(&app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(h["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let good = base64::engine::general_purpose::STANDARD.encode("ops:s3cret:x");
    let bad = base64::engine::general_purpose::STANDARD.encode("ops:wrong");
    for (cred, want) in [(good, StatusCode::OK), (bad, StatusCode::UNAUTHORIZED)] {
        let (s, _, _) = send(
            &app,
            Request::get("/")
                .header("authorization", format!("Basic {cred}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, want);
    }
    assert!(Auth::token("short").is_err());
    assert!(Auth::basic("nopass").is_err());
    assert!(Auth::basic(":x").is_err());
}

#[test]
fn only_loopback_binds_without_auth() {
    let lo: SocketAddr = "127.0.0.1:9470".parse().unwrap();
    let lo6: SocketAddr = "[::1]:9470".parse().unwrap();
    let any: SocketAddr = "0.0.0.0:9470".parse().unwrap();
    assert!(check_bind(lo, &Auth::None).is_ok());
    assert!(check_bind(lo6, &Auth::None).is_ok());
    assert!(check_bind(any, &Auth::None).is_err());
    assert!(check_bind(any, &Auth::token("0123456789abcdef").unwrap()).is_ok());
    assert!(check_bind(any, &Auth::basic("a:b").unwrap()).is_ok());
}

use base64::Engine as _;

#[tokio::test]
async fn a_flow_page_draws_at_most_200_members_and_pages_its_table() {
    use ff_core::flow::JoinPolicy;
    let c = client().await;
    let flow = c.create_flow("default").await.unwrap();
    // A chain of 205 members: each waits on the one before.
    let mut prev: Option<ff_core::ExecutionId> = None;
    for _ in 0..205 {
        let id = c.new_member_id(&flow);
        if let Some(p) = &prev {
            c.add_edge(&flow, p, &id, false).await.unwrap();
        }
        c.create(
            ExecutionSpec::new("step")
                .in_flow(&flow, JoinPolicy::AllOf)
                .id(id.clone()),
        )
        .await
        .unwrap();
        prev = Some(id);
    }
    let app = router(c, DashboardOptions::default());
    let path = format!("/flows/{}", flow.as_str());
    let (s, page) = get(&app, &path).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    assert!(page.contains(r#"data-nodes="200""#), "{page}");
    assert_eq!(page.matches("<g class=\"node\"").count(), 200);
    assert!(page.contains("Only the first 200 members"));
    assert_eq!(page.matches("<tr data-id=").count(), 50);
    assert!(page.contains("?offset=50"));
    let (s, last) = get(&app, &format!("{path}?offset=200")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(last.matches("<tr data-id=").count(), 5);
    assert!(last.contains("End of the members."));
    let (s, bad) = get(&app, &format!("{path}?offset=x")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");
    let (s, _) = get(&app, &format!("/flows/{}", "0".repeat(32))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_overview_shows_each_engines_scanners_or_why_not() {
    use ff_engine::engine::metrics_http;
    use ff_engine::{Engine, EngineConfig};
    let c = client().await;
    let engine = Engine::start(EngineConfig::default(), c.store().clone())
        .await
        .unwrap();
    let mut registry = ff_engine::prometheus_client::registry::Registry::default();
    engine.register_metrics(&mut registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(metrics_http::serve(listener, Arc::new(registry), rx));
    // A port nobody listens on.
    let gone = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}/metrics", gone.local_addr().unwrap());
    drop(gone);
    let app = router(
        c.clone(),
        DashboardOptions {
            engine_metrics: vec![url.clone(), dead.clone()],
            ..Default::default()
        },
    );
    let (s, page) = get(&app, "/").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains(&format!("<table class=\"scanners\" data-engine=\"{url}\">")),
        "{page}"
    );
    assert!(page.contains("data-scanner=\"delayed_promoter\""), "{page}");
    assert!(
        page.contains(&format!("data-engine=\"{dead}\">Unreachable: connect")),
        "{page}"
    );
    let _ = stop.send(true);
    engine.shutdown().await;
}
