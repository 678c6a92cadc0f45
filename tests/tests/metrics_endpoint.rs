//! `ff engine`'s process loop (`ff_cli::serve`) on a real redis-server:
//! the metrics endpoint scraped over HTTP while the engine works, then a
//! clean stop.

mod common;

use common::*;
use ff_cli::serve::{serve, ServeOptions};
use ff_engine::engine::EngineConfig;
use ff_engine::ExecutionSpec;
use ff_tests::TestRedis;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One HTTP/1.1 request; the status line and the body.
async fn get(addr: SocketAddr, request: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").expect("a complete reply");
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

async fn scrape(addr: SocketAddr) -> String {
    let (status, body) = get(addr, "GET /metrics HTTP/1.1\r\nHost: ff\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    body
}

/// The value of the sample that starts with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn the_metrics_endpoint_is_scraped_during_a_run_and_the_engine_stops_cleanly() {
    let redis = TestRedis::standalone();
    let c = client(&redis.url()).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let opts = ServeOptions {
        urls: vec![redis.url()],
        cluster: false,
        tls: None,
        config: EngineConfig::default(),
        metrics: Some(listener),
    };
    let run = tokio::spawn(serve(opts, async {
        let _ = stop_rx.await;
    }));

    for _ in 0..5 {
        c.create(ExecutionSpec::new("job").delay(Duration::from_millis(50)))
            .await
            .unwrap();
    }
    let promoted = "ff_scanner_acted_total{scanner=\"delayed_promoter\"}";
    wait_for(
        "5 promotions on the endpoint",
        Duration::from_secs(5),
        || async move { sample(&scrape(addr).await, promoted) == Some(5.0) },
    )
    .await;
    let text = scrape(addr).await;
    // Every scanner of the engine is there, generically; the backlog names its index.
    for scanner in ff_engine::engine::scanners(&EngineConfig::default()) {
        let l = format!("{{scanner=\"{}\"}}", scanner.name);
        assert!(
            sample(&text, &format!("ff_scanner_cycles_total{l}")).is_some(),
            "{text}"
        );
        assert!(
            sample(&text, &format!("ff_scanner_errors_total{l}")) == Some(0.0),
            "{text}"
        );
        let backlog = format!(
            "ff_scanner_backlog{{scanner=\"{}\",index=\"{}\"}}",
            scanner.name,
            scanner.work.index_name()
        );
        assert!(sample(&text, &backlog).is_some(), "{text}");
    }
    let count = "ff_scanner_cycle_duration_seconds_count{scanner=\"delayed_promoter\"}";
    let inf = "ff_scanner_cycle_duration_seconds_bucket{scanner=\"delayed_promoter\",le=\"+Inf\"}";
    let cycles = "ff_scanner_cycles_total{scanner=\"delayed_promoter\"}";
    assert!(sample(&text, count).unwrap() >= 1.0, "{text}");
    assert_eq!(sample(&text, count), sample(&text, inf));
    assert!(sample(&text, count) <= sample(&scrape(addr).await, cycles));
    assert!(text.contains("# TYPE ff_scanner_cycle_duration_seconds histogram\n"));

    let (status, _) = get(addr, "GET /nope HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _) = get(addr, "POST /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");

    stop_tx.send(()).unwrap();
    let clean = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("serve returns within the shutdown bound")
        .unwrap()
        .unwrap();
    assert!(clean, "the engine stopped within its bound");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the endpoint closed with the engine"
    );
}
