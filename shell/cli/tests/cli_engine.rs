//! `ff engine` as a process on a real redis-server: it serves its metrics,
//! logs JSON lines with `--log-json`, and stops cleanly (exit 0) on SIGTERM
//! and on SIGINT. (The workspace's harness lives in ff-tests, which depends
//! on this crate; a bare server is enough here.)

mod common;

use common::{free_port, wait_until, Server};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    reply.starts_with("HTTP/1.1 200 ").then_some(reply)
}

/// Start `ff engine`, scrape it, send `signal`, and return its stderr.
fn run_until(server: &Server, signal: &str) -> String {
    let metrics = free_port();
    let mut ff = Command::new(env!("CARGO_BIN_EXE_ff"))
        .env_clear()
        .env("RUST_LOG", "info")
        .args([
            "engine",
            "--redis",
            &format!("redis://127.0.0.1:{}", server.1),
        ])
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{metrics}"),
            "--log-json",
        ])
        .args(["--shutdown-timeout", "5s"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut body = None;
    wait_until("the metrics endpoint", || {
        body = scrape(metrics);
        body.is_some()
    });
    assert!(body
        .unwrap()
        .contains("ff_scanner_cycles_total{scanner=\"delayed_promoter\"}"));
    let kill = Command::new("kill")
        .args([signal, &ff.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = ff.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ff engine ignored {signal}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    ff.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    stderr
}

#[test]
fn ff_engine_serves_metrics_logs_json_and_stops_on_sigterm_and_sigint() {
    let server = Server::start();
    for signal in ["-TERM", "-INT"] {
        let logs = run_until(&server, signal);
        let events: Vec<serde_json::Value> = logs
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let messages: Vec<&str> = events
            .iter()
            .filter_map(|e| e["fields"]["message"].as_str())
            .collect();
        for expected in [
            "engine started",
            "stop requested; shutting down",
            "engine stopped",
        ] {
            assert!(
                messages.contains(&expected),
                "{signal}: no {expected:?} in {messages:?}"
            );
        }
    }
}
