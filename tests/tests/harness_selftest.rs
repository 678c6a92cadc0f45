//! Self-test of the harness: servers and clusters start, answer, and stop.

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use ff_tests::{RedisCluster, RedisServer, TestRedis};

fn set(con: &mut impl redis::ConnectionLike, key: &str, value: &str) {
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query::<()>(con)
        .unwrap_or_else(|e| panic!("SET {key}: {e}"));
}

fn get(con: &mut impl redis::ConnectionLike, key: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(key)
        .query(con)
        .unwrap_or_else(|e| panic!("GET {key}: {e}"))
}

fn accepts_connections(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
}

#[test]
fn standalone_server_answers_set_get() {
    let started = Instant::now();
    let server = RedisServer::start();
    eprintln!("standalone redis-server started in {:?}", started.elapsed());
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));

    let client = redis::Client::open(server.url()).expect("client");
    let mut con = client.get_connection().expect("connection");
    let pong: String = redis::cmd("PING").query(&mut con).expect("PING");
    assert_eq!(pong, "PONG");
    set(&mut con, "selftest:k", "v1");
    assert_eq!(get(&mut con, "selftest:k").as_deref(), Some("v1"));
    assert_eq!(get(&mut con, "selftest:missing"), None);
    assert!(server.log_path().exists(), "log file exists while running");
}

#[test]
fn test_redis_standalone_target_answers() {
    let target = TestRedis::standalone();
    if std::env::var("FF_TEST_REDIS_URL").is_err() {
        assert!(target.is_owned());
    }
    let key = format!("selftest:target:{}", std::process::id());
    let mut con = redis::Client::open(target.url())
        .expect("client")
        .get_connection()
        .expect("connection");
    set(&mut con, &key, "x");
    assert_eq!(get(&mut con, &key).as_deref(), Some("x"));
    redis::cmd("DEL")
        .arg(&key)
        .query::<()>(&mut con)
        .expect("DEL");

    let external = TestRedis::External("redis://127.0.0.1:1".to_owned());
    assert_eq!(external.url(), "redis://127.0.0.1:1");
    assert!(!external.is_owned());
}

#[test]
fn servers_get_distinct_ports() {
    let a = RedisServer::start();
    let b = RedisServer::start();
    assert_ne!(a.port(), b.port());
    assert_ne!(a.pid(), b.pid());
}

#[test]
fn dropping_the_server_stops_it() {
    let server = RedisServer::start();
    let port = server.port();
    let pid = server.pid();
    let dir = server.dir().to_path_buf();
    assert!(accepts_connections(port));

    drop(server);

    assert!(
        !accepts_connections(port),
        "port {port} still accepts connections"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "process {pid} still exists"
    );
    assert!(!dir.exists(), "temp dir {} not removed", dir.display());
}

#[test]
fn cluster_spreads_keys_over_all_nodes() {
    let started = Instant::now();
    let cluster = RedisCluster::start();
    eprintln!("3-node redis cluster started in {:?}", started.elapsed());
    assert_eq!(cluster.urls().len(), 3);
    assert_eq!(cluster.ports().len(), 3);

    let client = redis::cluster::ClusterClient::new(cluster.urls()).expect("cluster client");
    let mut con = client.get_connection().expect("cluster connection");
    let keys: Vec<String> = (0..100).map(|i| format!("selftest:key:{i}")).collect();
    for (i, key) in keys.iter().enumerate() {
        set(&mut con, key, &i.to_string());
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(get(&mut con, key), Some(i.to_string()), "{key}");
    }

    // Every node holds some of the keys, and together they hold all of them.
    let mut total = 0;
    for url in cluster.urls() {
        let mut node = redis::Client::open(url.as_str())
            .expect("client")
            .get_connection()
            .expect("node connection");
        let size: usize = redis::cmd("DBSIZE").query(&mut node).expect("DBSIZE");
        assert!(size > 0, "node {url} holds no key");
        total += size;
    }
    assert_eq!(total, keys.len());
}

#[test]
fn dropping_the_cluster_stops_every_node() {
    let cluster = RedisCluster::start();
    let ports = cluster.ports();
    assert!(ports.iter().all(|&p| accepts_connections(p)));

    drop(cluster);

    for port in ports {
        assert!(
            !accepts_connections(port),
            "port {port} still accepts connections"
        );
    }
}
