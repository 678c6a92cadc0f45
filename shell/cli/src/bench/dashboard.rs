//! `dashboard`: page times of the web dashboard with N executions in the
//! server (1 000 000 by default). The executions are created in bulk over
//! three lanes (80 % `default`, 10 % `mail`, 10 % `reports`), one in ten
//! delayed; a fourth lane, `billing`, gets min(N/100, 10 000) more that are
//! claimed and failed (one in ten with an error starting "refused"). Then
//! the dashboard is served on a loopback port in this process and each page
//! is fetched over HTTP, one request at a time, [`REQUESTS`] times:
//!
//! - `overview`: counts (one pipelined HGETALL of the counters per
//!   partition) and the last hour's series (one or two per partition),
//!   lanes, paused lanes, budgets and quotas;
//! - `list_waiting`: the first 50 waiting executions of `default`;
//! - `list_failed`: the first 50 failed executions of `billing`;
//! - `list_failed_prefix`: the same filtered by an error prefix that one in
//!   ten matches;
//! - `list_sparse`: failed executions of `default`, which has none: the
//!   page reads its limit of 2 000 terminal records and comes back empty
//!   (the bounded worst case of a page);
//! - `execution`: one execution's page.

use super::util::{self, progress, Report};
use super::{BenchResult, Ctx, Scenario};
use crate::dashboard::{self, DashboardOptions};
use ff_core::contract::execution::Report as EndReport;
use ff_core::retry::RetryPolicy;
use ff_core::state::PublicState;
use ff_core::{Lane, WorkerInstance, WorkerName};
use ff_engine::ExecutionSpec;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Requests per page.
const REQUESTS: usize = 200;
/// Most failed executions seeded.
const MAX_FAILED: u64 = 10_000;

/// One GET over a fresh connection: (status line, body bytes, microseconds).
async fn fetch(addr: std::net::SocketAddr, path: &str) -> BenchResult<(String, usize, i64)> {
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let us = t.elapsed().as_micros() as i64;
    let text = String::from_utf8_lossy(&buf);
    let status = text.lines().next().unwrap_or_default().to_owned();
    Ok((status, buf.len(), us))
}

pub(crate) async fn run(ctx: &Ctx) -> BenchResult<Report> {
    let n = ctx.n;
    let mut r = ctx.report(Scenario::Dashboard);
    let c = &ctx.client;
    for l in ["mail", "reports", "billing"] {
        c.register_lane(&Lane::new(l)?).await?;
    }

    let failed_n = (n / 100).clamp(1, MAX_FAILED);
    progress!("{failed_n} executions in lane billing, claimed and failed");
    let specs = (0..failed_n)
        .map(|i| {
            ExecutionSpec::new("invoice.send")
                .lane("billing")
                .retry(RetryPolicy::none())
                .payload(format!("{{\"invoice\": {i}}}"))
        })
        .collect();
    for created in c.create_many(specs).await {
        created?;
    }
    let (lane, w, i) = (
        Lane::new("billing")?,
        WorkerName::new("bench")?,
        WorkerInstance::new("bench-1")?,
    );
    let mut failed = 0u64;
    let t = Instant::now();
    while failed < failed_n {
        let claimed = c
            .claim(&lane, &w, &i, Duration::from_secs(60), 1000)
            .await?;
        if claimed.is_empty() && t.elapsed() > Duration::from_secs(60) {
            return Err(format!("only {failed} of {failed_n} could be claimed").into());
        }
        let reports = claimed
            .into_iter()
            .enumerate()
            .map(|(k, job)| EndReport::Fail {
                lease: job.lease,
                error: if (failed + k as u64) % 10 == 0 {
                    "refused by the payment gateway".into()
                } else {
                    "timeout after 30s".into()
                },
                retryable: false,
            })
            .collect::<Vec<_>>();
        for ended in c.report_many(reports).await {
            ended?;
            failed += 1;
        }
    }

    progress!("creating {n} executions in bulk over 3 lanes");
    let created = util::create_many(ctx, n, |i| {
        let lane = match i % 10 {
            0 => "mail",
            1 => "reports",
            _ => "default",
        };
        let s = ExecutionSpec::new("bench.page").lane(lane).payload("x");
        if i % 10 == 9 {
            s.delay(Duration::from_secs(3600))
        } else {
            s
        }
    })
    .await?;
    created.report(&mut r);
    let one = created
        .ids
        .first()
        .ok_or("no execution was created")?
        .as_str()
        .replace('{', "%7B")
        .replace('}', "%7D");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let app = dashboard::router(ctx.client.clone(), DashboardOptions::default());
    let server = tokio::spawn(dashboard::serve(listener, app, async {
        let _ = stop_rx.await;
    }));
    let pages = [
        ("overview", "/".to_owned()),
        (
            "list_waiting",
            "/executions?lane=default&state=waiting".to_owned(),
        ),
        (
            "list_failed",
            "/executions?lane=billing&state=failed".to_owned(),
        ),
        (
            "list_failed_prefix",
            "/executions?lane=billing&state=failed&error=refused".to_owned(),
        ),
        (
            "list_sparse",
            "/executions?lane=default&state=failed".to_owned(),
        ),
        ("execution", format!("/executions/{one}")),
    ];
    let mut ok = true;
    for (name, path) in &pages {
        progress!("{REQUESTS} × GET {path}");
        // One unmeasured request first (connections, caches).
        fetch(addr, path).await?;
        let mut times = Vec::with_capacity(REQUESTS);
        let mut bytes = 0;
        for _ in 0..REQUESTS {
            let (status, len, us) = fetch(addr, path).await?;
            if !status.contains(" 200 ") {
                progress!("{path}: {status}");
                ok = false;
            }
            bytes = len;
            times.push(us);
        }
        times.sort_unstable();
        let ms = |us: i64| util::round(us as f64 / 1000.0, 2);
        r.set(
            &format!("{name}_p50_ms"),
            ms(util::percentile(&times, 0.50)),
        );
        r.set(
            &format!("{name}_p99_ms"),
            ms(util::percentile(&times, 0.99)),
        );
        r.set(&format!("{name}_bytes"), bytes as u64);
    }
    let _ = stop_tx.send(());
    server.await??;
    let counts = c.counts().await?;
    r.set("failed_seeded", failed_n);
    r.set("requests_per_page", REQUESTS as u64);
    let counted: u64 = counts.lanes.values().flat_map(|m| m.values()).sum();
    r.set("counted", counted);
    r.set(
        "ok",
        ok && counts.in_lane("billing", PublicState::Failed) == failed_n && counted == n + failed_n,
    );
    Ok(r)
}
