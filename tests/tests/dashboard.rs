//! The web dashboard in a real browser: a real redis-server, seeded
//! executions (failed ones whose error holds a `<script>`, a flow, a paused
//! lane, a budget, schedules), the dashboard on a loopback port, and headless Chromium
//! driven through chromedriver (WebDriver, fantoccini). Screenshots of each
//! page go to `<target>/dashboard-screenshots/`.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium
//! chromium-driver`; scripts/test installs them). Missing, the test fails
//! saying so: it never skips. `FF_CHROMIUM` and `FF_CHROMEDRIVER` name other
//! binaries.

mod common;

use common::*;
use fantoccini::{ClientBuilder, Locator};
use ff_cli::dashboard::{self, DashboardOptions};
use ff_engine::client::Schedule;
use ff_engine::core::admission::QuotaLimits;
use ff_engine::core::contract::admission::{BreachPolicy, BudgetDef, DimensionLimits, UsageReport};
use ff_engine::core::contract::flow::AddToFlowArgs;
use ff_engine::core::flow::JoinPolicy;
use ff_engine::core::retry::RetryPolicy;
use ff_engine::core::state::PublicState;
use ff_engine::core::{ExecutionId, FfError, Lane, WorkerInstance, WorkerName};
use ff_engine::engine::fire_schedules_once;
use ff_engine::{Client, Error, ExecutionSpec};
use ff_tests::RedisServer;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT_ERROR: &str = "<script>alert(1)</script> smtp said no";

/// A binary from `env` or the first of `names` on PATH; a failure with the
/// install hint when there is none.
fn tool(env: &str, names: &[&str]) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        if !p.trim().is_empty() {
            return PathBuf::from(p.trim());
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!(
        "{} not found (looked for {names:?} on PATH and ${env}): the dashboard's browser tests need \
         headless Chromium and chromedriver. Install them with \
         `sudo apt-get install -y chromium chromium-driver` (scripts/test does this), \
         or set {env} to the binary.",
        names[0]
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A chromedriver process in a process group of its own, which the
/// browsers it starts join: on drop the whole group is killed, so a test
/// that fails before closing its session leaves no Chromium behind.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_driver() -> Driver {
    let bin = tool("FF_CHROMEDRIVER", &["chromedriver"]);
    let port = free_port();
    let child = Command::new(&bin)
        .arg(format!("--port={port}"))
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let driver = Driver { child, port };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not listen on {port} within 20 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    driver
}

async fn browser(driver: &Driver) -> fantoccini::Client {
    let chromium = tool(
        "FF_CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1280,1100"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a WebDriver session with headless Chromium")
}

/// Where screenshots go: `<target>/dashboard-screenshots/`.
fn shots_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let dir = target.join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

async fn shot(b: &fantoccini::Client, name: &str) {
    let png = b.screenshot().await.expect("screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    let path = shots_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    println!("screenshot: {}", path.display());
}

async fn text(b: &fantoccini::Client, css: &str) -> String {
    b.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no element {css}: {e}"))
        .text()
        .await
        .expect("element text")
}

/// Wait until the element `css` exists and its text holds `want` (a click
/// that submits a form returns before the next page may have loaded).
async fn wait_text(b: &fantoccini::Client, css: &str, want: &str) -> String {
    let start = Instant::now();
    loop {
        if let Ok(e) = b.find(Locator::Css(css)).await {
            if let Ok(t) = e.text().await {
                if t.contains(want) {
                    return t;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no {css} saying {want:?} within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// No alert, confirm or prompt is open (a `<script>` that ran would open one).
async fn no_dialog(b: &fantoccini::Client) {
    if let Ok(t) = b.get_alert_text().await {
        panic!("a dialog is open: {t:?}");
    }
}

fn worker() -> (WorkerName, WorkerInstance) {
    (
        WorkerName::new("dash-test").unwrap(),
        WorkerInstance::new("dash-test-1").unwrap(),
    )
}

/// Claim exactly `n` from `lane` (claims may hand out fewer per call).
async fn claim_n(
    c: &Client,
    lane: &str,
    n: usize,
) -> Vec<ff_engine::core::contract::execution::Claimed> {
    let (w, i) = worker();
    let lane = Lane::new(lane).unwrap();
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < n {
        got.extend(
            c.claim(&lane, &w, &i, LEASE, n - got.len())
                .await
                .expect("claim"),
        );
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "could not claim {n}"
        );
    }
    got
}

/// What the test seeds, by construction.
struct Seeded {
    script_failed: Vec<ExecutionId>,
    flow_member: ExecutionId,
    /// The flow's members a, b, c, d, e.
    flow: [ExecutionId; 5],
}

async fn seed(c: &Client) -> Seeded {
    for l in ["mail", "reports"] {
        c.register_lane(&Lane::new(l).unwrap()).await.unwrap();
    }
    // A flow in lane reports: a → (b, c) → d, c passing data; a completed,
    // so b and c wait (eligible) and d waits on its parents; then e, made
    // outside the flow, joins it waiting on d.
    let flow = c.create_flow("default").await.unwrap();
    let [a, b, cc, d, e] = [(); 5].map(|_| c.new_member_id(&flow));
    // A parent exists before its edge; a child is created after it.
    let member = |id: &ExecutionId| {
        ExecutionSpec::new("report.build")
            .lane("reports")
            .in_flow(&flow, JoinPolicy::AllOf)
            .id(id.clone())
    };
    c.create(member(&a)).await.unwrap();
    c.add_edge(&flow, &a, &b, false).await.unwrap();
    c.add_edge(&flow, &a, &cc, true).await.unwrap();
    c.create(member(&b)).await.unwrap();
    c.create(member(&cc)).await.unwrap();
    c.add_edge(&flow, &b, &d, false).await.unwrap();
    c.add_edge(&flow, &cc, &d, false).await.unwrap();
    c.create(member(&d)).await.unwrap();
    let first = claim_n(c, "reports", 1).await.pop().unwrap();
    assert_eq!(first.lease.execution, a);
    c.complete(&first.lease, b"{\"rows\": 12}").await.unwrap();
    c.create(
        ExecutionSpec::new("report.publish")
            .lane("reports")
            .id(e.clone()),
    )
    .await
    .unwrap();
    let added = c
        .add_to_flow(&AddToFlowArgs::new(&flow, &e).parent(&d, false))
        .await
        .unwrap();
    assert_eq!(added.state, PublicState::WaitingChildren);

    // Lane default: 4 failed for good (3 with a <script> in their error),
    // then 1 active, 5 waiting, 2 delayed.
    let mut failed = Vec::new();
    for i in 0..4 {
        let spec = ExecutionSpec::new("mail.send")
            .retry(RetryPolicy::none())
            .payload(format!(
                "{{\"to\": \"user{i}@example.com\", \"note\": \"<b>hi</b>\"}}"
            ));
        failed.push(c.create(spec).await.unwrap().execution);
    }
    let mut script_failed = Vec::new();
    for job in claim_n(c, "default", 4).await {
        let msg = if script_failed.len() < 3 {
            script_failed.push(job.lease.execution.clone());
            SCRIPT_ERROR
        } else {
            "timeout after 30s"
        };
        c.fail(&job.lease, msg, false).await.unwrap();
    }
    c.create(ExecutionSpec::new("mail.send")).await.unwrap();
    claim_n(c, "default", 1).await;
    for _ in 0..5 {
        c.create(ExecutionSpec::new("mail.send")).await.unwrap();
    }
    for _ in 0..2 {
        c.create(ExecutionSpec::new("mail.send").delay(Duration::from_secs(3600)))
            .await
            .unwrap();
    }
    // Lane mail: 3 waiting, paused.
    for _ in 0..3 {
        c.create(ExecutionSpec::new("mail.digest").lane("mail"))
            .await
            .unwrap();
    }
    c.pause_lane("mail").await.unwrap();
    // A budget two-thirds used and a quota, for the usage bars.
    let def = BudgetDef {
        limits: [(
            "tokens".to_owned(),
            DimensionLimits {
                hard: 1000,
                soft: 800,
            },
        )]
        .into(),
        reset_every_ms: 0,
        on_breach: BreachPolicy::Block,
    };
    c.define_budget("llm", &def).await.unwrap();
    let report = UsageReport {
        execution: a.clone(),
        attempt: 1,
        seq: 1,
        deltas: vec![("tokens".into(), 650)],
    };
    c.report_usage("llm", &report).await.unwrap();
    c.define_quota(
        "smtp",
        &QuotaLimits {
            window_ms: 60_000,
            max_per_window: 100,
            concurrency: 8,
        },
    )
    .await
    .unwrap();
    Seeded {
        script_failed,
        flow_member: b.clone(),
        flow: [a, b, cc, d, e],
    }
}

/// The dashboard on a free loopback port; its base URL and the stop switch.
async fn start_dashboard(c: &Client) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let app = dashboard::router(c.clone(), DashboardOptions::default());
    tokio::spawn(dashboard::serve(listener, app, async {
        let _ = rx.await;
    }));
    (url, tx)
}

async fn claim_refused(c: &Client, lane: &str) -> Option<FfError> {
    let (w, i) = worker();
    match c.claim(&Lane::new(lane).unwrap(), &w, &i, LEASE, 1).await {
        Err(Error::Rejected(r)) => Some(r),
        Err(e) => panic!("claim failed otherwise: {e}"),
        Ok(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let redis = RedisServer::start();
    let c = client(&redis.url()).await;
    let seeded = seed(&c).await;
    let (url, stop) = start_dashboard(&c).await;
    let driver = start_driver();
    let b = browser(&driver).await;

    // The overview: the seeded counts, the paused lane, the bars.
    b.goto(&format!("{url}/")).await.unwrap();
    for (state, want) in [
        ("waiting", "10"),
        ("delayed", "2"),
        ("active", "1"),
        ("waiting_children", "2"),
        ("rate_limited", "0"),
        ("completed", "1"),
        ("failed", "4"),
    ] {
        let got = text(&b, &format!("a.card[data-count='{state}'] .n")).await;
        assert_eq!(got, want, "overview count of {state}");
    }
    for (lane, want) in [("default", "5"), ("mail", "3"), ("reports", "2")] {
        let got = text(
            &b,
            &format!("tr[data-lane='{lane}'] td[data-state='waiting']"),
        )
        .await;
        assert_eq!(got, want, "waiting in lane {lane}");
    }
    assert_eq!(
        text(&b, "tr[data-lane='default'] td[data-state='failed']").await,
        "4"
    );
    // The last minutes' columns of each lane's chart (the seeding may cross
    // a minute): 4 failed in default, 1 completed in reports.
    let failed_bars = b
        .find_all(Locator::Css(
            "tr[data-lane='default'] svg.throughput rect.s-failed",
        ))
        .await
        .unwrap();
    assert!(
        (1..=2).contains(&failed_bars.len()),
        "minutes with failures"
    );
    assert!(text(&b, "tr[data-lane='reports'] td.wide")
        .await
        .contains("1 completed"));
    assert_eq!(text(&b, "tr[data-lane='mail'] .badge").await, "paused");
    assert_eq!(text(&b, "tr[data-lane='default'] .badge").await, "running");
    assert!(text(&b, "tr[data-budget='llm']").await.contains("650"));
    assert!(text(&b, "tr[data-quota='smtp']").await.contains("0 / 8"));
    shot(&b, "overview").await;

    // The failed list: the error is shown as text, and nothing ran.
    b.goto(&format!("{url}/executions?lane=default&state=failed"))
        .await
        .unwrap();
    let rows = b
        .find_all(Locator::Css("table.executions tbody tr[data-id]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 4, "four failed executions listed");
    let body = text(&b, "body").await;
    assert_eq!(
        body.matches("<script>alert(1)</script> smtp said no")
            .count(),
        3,
        "the error shown as literal text: {body}"
    );
    no_dialog(&b).await;
    let injected = b
        .execute(
            "return document.querySelectorAll('main script, td.failure *').length",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        injected,
        serde_json::json!(0),
        "no element made from the error"
    );
    shot(&b, "executions").await;

    // Retry one: it is waiting again in the store, as its next attempt.
    let target = &seeded.script_failed[0];
    b.find(Locator::Css(&format!(
        "tr[data-id='{}'] button.retry",
        target.as_str()
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(&b, "p.banner.ok", "requeued").await;
    let r = c.get(target).await.unwrap();
    assert_eq!(r.public_state, PublicState::Waiting);
    assert_eq!(
        r.attempt, 1,
        "attempts kept; the next claim starts attempt 2"
    );
    assert_eq!(
        b.find_all(Locator::Css("table.executions tbody tr[data-id]"))
            .await
            .unwrap()
            .len(),
        3,
        "the retried one left the failed list"
    );
    no_dialog(&b).await;

    // One execution: the failure as text, the payload escaped.
    let other = &seeded.script_failed[1];
    b.find(Locator::Css(&format!(
        "tr[data-id='{}'] td.id a",
        other.as_str()
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    assert_eq!(wait_text(&b, "dd.message", "smtp").await, SCRIPT_ERROR);
    assert!(text(&b, "pre.payload").await.contains("<b>hi</b>"));
    no_dialog(&b).await;
    shot(&b, "execution").await;

    // A flow, reached from its member's page.
    b.goto(&format!(
        "{url}/executions/{}",
        seeded
            .flow_member
            .as_str()
            .replace('{', "%7B")
            .replace('}', "%7D")
    ))
    .await
    .unwrap();
    b.find(Locator::Css("a[href*='/flows/']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&b, "h1", "Flow").await;
    assert_eq!(text(&b, "[data-flow-count='members'] .n").await, "5");
    assert_eq!(text(&b, "[data-flow-count='done'] .n").await, "1");
    // Its graph: five members, five edges, coloured by state, in layers.
    let dag = b.find(Locator::Css("svg.dag")).await.unwrap();
    assert_eq!(dag.attr("data-nodes").await.unwrap().as_deref(), Some("5"));
    assert_eq!(dag.attr("data-edges").await.unwrap().as_deref(), Some("5"));
    let nodes = b.find_all(Locator::Css("svg.dag g.node")).await.unwrap();
    let edges = b.find_all(Locator::Css("svg.dag path.edge")).await.unwrap();
    assert_eq!((nodes.len(), edges.len()), (5, 5));
    let state_of = |id: &ExecutionId| format!("svg.dag g.node[data-id='{}'] rect", id.as_str());
    for (id, class) in [
        (&seeded.flow[0], "s-completed"),
        (&seeded.flow[1], "s-waiting"),
        (&seeded.flow[3], "s-waiting_children"),
        (&seeded.flow[4], "s-waiting_children"),
    ] {
        let rect = b.find(Locator::Css(&state_of(id))).await.unwrap();
        assert_eq!(rect.attr("class").await.unwrap().as_deref(), Some(class));
    }
    // Layers left to right: a, then b and c, then d, then e.
    let x = |id: &ExecutionId| {
        let b = b.clone();
        let css = state_of(id);
        async move {
            let r = b.find(Locator::Css(&css)).await.unwrap();
            r.attr("x").await.unwrap().unwrap().parse::<u32>().unwrap()
        }
    };
    let xs = [
        x(&seeded.flow[0]).await,
        x(&seeded.flow[1]).await,
        x(&seeded.flow[2]).await,
        x(&seeded.flow[3]).await,
        x(&seeded.flow[4]).await,
    ];
    assert!(
        xs[0] < xs[1] && xs[1] == xs[2] && xs[2] < xs[3] && xs[3] < xs[4],
        "{xs:?}"
    );
    assert_eq!(
        b.find_all(Locator::Css("svg.dag path.edge.data"))
            .await
            .unwrap()
            .len(),
        1,
        "a → c passes data"
    );
    let rows = b
        .find_all(Locator::Css("table.members tbody tr[data-id]"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    let page = text(&b, "body").await;
    assert!(!page.contains("not drawn"), "{page}");
    shot(&b, "flow").await;
    // A node opens its execution.
    b.find(Locator::Css(&format!(
        "svg.dag g.node[data-id='{}']",
        seeded.flow[4].as_str()
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    wait_text(&b, "h1", "Execution").await;
    assert!(text(&b, "h1").await.contains(seeded.flow[4].as_str()));

    // Pause default: claims are refused; resume: they hand out work again.
    b.goto(&format!("{url}/")).await.unwrap();
    assert_eq!(
        claim_refused(&c, "default").await,
        None,
        "claims work before the pause"
    );
    b.find(Locator::Css("tr[data-lane='default'] button.pause"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&b, "p.banner.ok", "default: paused").await;
    assert_eq!(text(&b, "tr[data-lane='default'] .badge").await, "paused");
    let mut paused = c.paused_lanes().await.unwrap();
    paused.sort();
    assert_eq!(paused, vec!["default".to_owned(), "mail".to_owned()]);
    assert!(
        matches!(claim_refused(&c, "default").await, Some(FfError::LanePaused(l)) if l == "default"),
        "a claim of a paused lane is refused"
    );
    shot(&b, "overview-paused").await;
    b.find(Locator::Css("tr[data-lane='default'] button.resume"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&b, "p.banner.ok", "default: resumed").await;
    assert_eq!(c.paused_lanes().await.unwrap(), vec!["mail".to_owned()]);
    assert_eq!(
        claim_refused(&c, "default").await,
        None,
        "claims work after resume"
    );
    no_dialog(&b).await;

    // Schedules: one fired once (its execution linked), one paused; Pause
    // and Resume from the page change the stored schedule.
    c.define_schedule(
        "tick",
        Schedule::every(Duration::from_secs(2))
            .template(ExecutionSpec::new("tick").lane("reports")),
    )
    .await
    .unwrap();
    c.define_schedule(
        "nightly",
        Schedule::cron("0 30 2 * * *")
            .zone("Europe/Berlin")
            .paused(true)
            .template(ExecutionSpec::new("report.nightly").lane("reports")),
    )
    .await
    .unwrap();
    // Just past tick's first fire time (the next is 2 s later): one fire.
    let first = c
        .get_schedule("tick")
        .await
        .unwrap()
        .unwrap()
        .next_fire_ms
        .unwrap();
    let now = c.store().time_ms().await.unwrap();
    tokio::time::sleep(Duration::from_millis(first.saturating_sub(now) + 150)).await;
    let fired = fire_schedules_once(&**c.store(), c.config(), &Default::default())
        .await
        .unwrap();
    assert_eq!(fired.acted, 1, "tick fired once");
    let tick = c.get_schedule("tick").await.unwrap().unwrap();
    let made = tick.last_execution.clone().expect("tick's execution");
    b.goto(&format!("{url}/")).await.unwrap();
    b.find(Locator::Css("header nav a[href$='/schedules']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&b, "h1", "Schedules").await;
    assert_eq!(text(&b, "tr[data-schedule='tick'] .badge").await, "active");
    assert_eq!(
        text(&b, "tr[data-schedule='nightly'] .badge").await,
        "paused"
    );
    assert!(text(&b, "tr[data-schedule='nightly']")
        .await
        .contains("Europe/Berlin"));
    assert!(text(&b, "tr[data-schedule='nightly']")
        .await
        .contains("cron:0 30 2 * * *"));
    assert_eq!(text(&b, "tr[data-schedule='tick'] td.fired").await, "1");
    let next = text(&b, "tr[data-schedule='tick'] td.next-fires").await;
    assert_eq!(next.matches("UTC").count(), 3, "three next fires: {next}");
    assert_eq!(
        text(&b, "tr[data-schedule='tick'] td.last-run a").await,
        made.as_str()
    );
    shot(&b, "schedules").await;
    b.find(Locator::Css("tr[data-schedule='tick'] button.pause"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&b, "p.banner.ok", "schedule tick: paused").await;
    assert_eq!(text(&b, "tr[data-schedule='tick'] .badge").await, "paused");
    assert!(c.get_schedule("tick").await.unwrap().unwrap().spec.paused);
    b.find(Locator::Css("tr[data-schedule='nightly'] button.resume"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&b, "p.banner.ok", "schedule nightly: resumed").await;
    let nightly = c.get_schedule("nightly").await.unwrap().unwrap();
    assert!(!nightly.spec.paused && nightly.next_fire_ms.is_some());
    // The last execution links to its page.
    b.find(Locator::Css("tr[data-schedule='tick'] td.last-run a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_text(&b, "h1", made.as_str()).await;
    no_dialog(&b).await;

    b.close().await.unwrap();
    let _ = stop.send(());
}

/// `Client::counts` (index sizes) against a walk of every record after a
/// mixed workload: waiting per lane, every other non-terminal state but
/// suspended over all lanes, ended ones in total.
async fn counts_equal_a_full_walk(store: std::sync::Arc<dyn ff_engine::store::Store>) {
    use ff_engine::core::counts::Counted;
    use ff_engine::core::state::Eligibility;
    use ff_engine::ListQuery;
    let c = client_on(store).await;
    c.register_lane(&Lane::new("bulk").unwrap()).await.unwrap();
    let mut specs = Vec::new();
    for i in 0..60u32 {
        let lane = if i % 3 == 0 { "bulk" } else { "default" };
        let mut s = ExecutionSpec::new("k").lane(lane);
        if i % 7 == 0 {
            s = s.delay(Duration::from_secs(3600));
        }
        if i % 2 == 0 {
            s = s.retry(RetryPolicy::none());
        }
        specs.push(s);
    }
    let created: Vec<ExecutionId> = c
        .create_many(specs)
        .await
        .into_iter()
        .map(|r| r.unwrap().execution)
        .collect();
    // Ends of every kind: completed, failed for good, failed and retried
    // later (delayed), still active; cancelled while waiting.
    let claimed = claim_n(&c, "default", 20).await;
    for (i, job) in claimed.iter().enumerate() {
        match i % 4 {
            0 => {
                c.complete(&job.lease, b"ok").await.unwrap();
            }
            // (which claimed ones have no retries left is random: one in
            // four fails for good whatever its policy)
            1 => {
                c.fail(&job.lease, "boom", false).await.unwrap();
            }
            2 => {
                c.fail(&job.lease, "boom", true).await.unwrap();
            }
            _ => {}
        }
    }
    let mut cancelled = 0;
    for id in &created {
        if cancelled == 4 {
            break;
        }
        if c.get(id).await.unwrap().public_state == PublicState::Waiting {
            c.cancel(id, "test").await.unwrap();
            cancelled += 1;
        }
    }
    // A flow member waiting on its parent.
    let flow = c.create_flow("default").await.unwrap();
    let (p, k) = (c.new_member_id(&flow), c.new_member_id(&flow));
    c.create(
        ExecutionSpec::new("k")
            .lane("bulk")
            .in_flow(&flow, JoinPolicy::AllOf)
            .id(p.clone()),
    )
    .await
    .unwrap();
    c.add_edge(&flow, &p, &k, false).await.unwrap();
    c.create(
        ExecutionSpec::new("k")
            .lane("bulk")
            .in_flow(&flow, JoinPolicy::AllOf)
            .id(k),
    )
    .await
    .unwrap();

    let counts = c.counts().await.unwrap();
    let walk = ff_engine::inspect::recount(&c).await.unwrap();
    assert_eq!(walk.drift, vec![], "counters differ from the records");
    assert_eq!(counts.lanes, walk.counts.lanes);
    assert_eq!(counts.malformed, 0);
    let ended: u64 = PublicState::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| counts.total(*s))
        .sum();
    assert!(ended >= 14, "the workload ended some: {ended}");
    assert_eq!(counts.total(PublicState::Cancelled), 4);
    assert_eq!(counts.total(PublicState::Completed), 5);
    assert_eq!(counts.total(PublicState::WaitingChildren), 1);
    assert_eq!(counts.in_lane("bulk", PublicState::WaitingChildren), 1);
    // The flow counts its members' live states.
    let f = c.get_flow(&flow).await.unwrap();
    assert_eq!(f.summary.members, 2);
    assert_eq!(
        f.live.into_iter().collect::<Vec<_>>(),
        vec![
            (Counted::eligibility(Eligibility::Eligible), 1),
            (Counted::eligibility(Eligibility::WaitingChildren), 1)
        ]
    );
    assert!(f.changed_at_ms.is_some());
    for lane in ["default", "bulk"] {
        let q = ListQuery::new(Lane::new(lane).unwrap(), PublicState::Waiting).limit(1000);
        let (mut eligible, mut cursor) = (0u64, None::<String>);
        loop {
            let page = c.list(&q, cursor.as_deref()).await.unwrap();
            eligible += page
                .items
                .iter()
                .filter(|r| r.state.eligibility == Some(Eligibility::Eligible))
                .count() as u64;
            match page.next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(
            counts.get(lane, Counted::eligibility(Eligibility::Eligible)),
            eligible,
            "eligible in {lane}"
        );
        assert!(eligible > 0, "{lane} has eligible work");
    }
    // This minute's series: 5 completed, the failed-for-good and the retried.
    let now = c.store().time_ms().await.unwrap();
    let series = c.series(2, now).await.unwrap();
    use ff_engine::core::counts::SeriesKind;
    assert_eq!(series.sum("default", SeriesKind::Completed), 5);
    assert_eq!(
        series.sum("default", SeriesKind::Failed) + series.sum("default", SeriesKind::Retried),
        10
    );
    assert_eq!(
        series.sum("default", SeriesKind::Failed),
        counts.in_lane("default", PublicState::Failed)
    );
}

on_both_stores!(counts_equal_a_full_walk);
