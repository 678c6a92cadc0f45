//! `ff schedule list|show|pause|resume|delete|preview`: the real binary
//! against a real server (redis-server, or `FF_REDIS_SERVER_BIN`), its
//! output and exit codes, and what it changed read back with the client.

mod common;

use common::Server;
use ff_engine::client::Schedule;
use ff_engine::store::{RedisStore, RedisStoreOptions};
use ff_engine::{Client, ExecutionSpec};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

async fn client(url: &str) -> Client {
    let store = RedisStore::connect(&[url.to_owned()], RedisStoreOptions::default())
        .await
        .unwrap();
    Client::new(Arc::new(store)).await.unwrap()
}

/// `ff schedule <args…>` on the server; its output.
fn ff(server: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ff"))
        .env_clear()
        .arg("schedule")
        .args(args)
        .args(["--redis", &server.url()])
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&stdout(o)).expect("one JSON value")
}

#[tokio::test]
async fn schedule_verbs_on_a_real_server() {
    let server = Server::start();
    let c = client(&server.url()).await;
    c.define_schedule(
        "tick",
        Schedule::every(Duration::from_secs(3600)).template(ExecutionSpec::new("tick")),
    )
    .await
    .unwrap();
    c.define_schedule(
        "nightly",
        Schedule::cron("0 30 2 * * *")
            .zone("Europe/Berlin")
            .template(ExecutionSpec::new("report.nightly")),
    )
    .await
    .unwrap();

    // list: a line each, by name; --json: the definitions and next fires.
    let text = stdout(&ff(&server, &["list"]));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two schedules: {text}");
    assert!(lines[1].starts_with("nightly ") && lines[1].contains("Europe/Berlin"));
    assert!(lines[2].starts_with("tick ") && lines[2].contains("every:3600000"));
    assert!(lines[2].contains("active"), "{text}");
    let all = json(&ff(&server, &["list", "--json"]));
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["name"], "nightly");
    assert_eq!(all[0]["trigger"], "cron:0 30 2 * * *");
    assert_eq!(all[0]["next_fires_ms"].as_array().unwrap().len(), 3);
    assert_eq!(all[1]["template"]["kind"], "tick");

    // show: the stored next fire and the ones after it, an hour apart.
    let tick = json(&ff(&server, &["show", "tick", "--json", "-n", "4"]));
    let next: Vec<u64> = tick["next_fires_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let stored = c.get_schedule("tick").await.unwrap().unwrap();
    assert_eq!(Some(next[0]), stored.next_fire_ms);
    assert_eq!(next.len(), 4);
    assert!(
        next.windows(2).all(|w| w[1] - w[0] == 3_600_000),
        "{next:?}"
    );
    let shown = stdout(&ff(&server, &["show", "nightly"]));
    assert!(shown.contains("zone             Europe/Berlin"), "{shown}");
    assert!(
        shown.contains("+01:00") || shown.contains("+02:00"),
        "{shown}"
    );
    let missing = ff(&server, &["show", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no schedule \"nope\""));

    // pause / resume, each twice: the second says so and changes nothing.
    assert_eq!(stdout(&ff(&server, &["pause", "tick"])), "tick: paused\n");
    assert_eq!(
        stdout(&ff(&server, &["pause", "tick"])),
        "tick: paused already\n"
    );
    let r = c.get_schedule("tick").await.unwrap().unwrap();
    assert!(r.spec.paused && r.next_fire_ms.is_none());
    assert!(stdout(&ff(&server, &["list"])).contains("paused"));
    assert_eq!(stdout(&ff(&server, &["resume", "tick"])), "tick: resumed\n");
    assert_eq!(
        stdout(&ff(&server, &["resume", "tick"])),
        "tick: resumed already\n"
    );
    let r = c.get_schedule("tick").await.unwrap().unwrap();
    assert!(!r.spec.paused && r.next_fire_ms.is_some());
    let bad = ff(&server, &["pause", "a b"]);
    assert_eq!(bad.status.code(), Some(1), "a bad name is refused");

    // delete: gone; a second delete fails saying so.
    assert_eq!(stdout(&ff(&server, &["delete", "tick"])), "tick: deleted\n");
    assert!(c.get_schedule("tick").await.unwrap().is_none());
    let again = ff(&server, &["delete", "tick"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no schedule \"tick\""));
    assert_eq!(
        json(&ff(&server, &["list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn preview_needs_no_server() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ff"))
            .env_clear()
            .args(["schedule", "preview"])
            .args(args)
            .output()
            .unwrap()
    };
    let o = run(&[
        "0 30 2 * * *",
        "--zone",
        "Europe/Berlin",
        "-n",
        "3",
        "--json",
    ]);
    let times: Vec<u64> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(times.len(), 3);
    for w in times.windows(2) {
        // A day apart, but across a DST change: 23 or 25 hours.
        assert!(
            [23, 24, 25].contains(&((w[1] - w[0]) / 3_600_000)),
            "{times:?}"
        );
    }
    let o = run(&["--every", "10s", "-n", "2", "--json"]);
    let times: Vec<u64> = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(times[1] - times[0], 10_000);
    assert_eq!(times[0] % 10_000, 0, "aligned to the epoch");
    let text = stdout(&run(&["*/15 * * * *", "-n", "2"]));
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("Z  "), "UTC then the zone's time: {text}");
    let bad = run(&["61 * * * *"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(!bad.stderr.is_empty());
    let zone = run(&["* * * * *", "--zone", "Mars/Olympus"]);
    assert_eq!(zone.status.code(), Some(2));
}
