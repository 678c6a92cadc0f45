//! A 3-master Redis Cluster of `redis-server` children.

use std::fs::{self, File};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::process::{self, RedisProcess, POLL};
use super::resp;

/// Number of masters.
const NODES: usize = 3;
/// How long `redis-cli --cluster create` plus convergence may take.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// A 3-master, no-replica Redis Cluster on `127.0.0.1`, each node in its own
/// temp dir. Dropping it kills every node and removes their directories.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisProcess>,
}

impl RedisCluster {
    /// Starts 3 cluster-enabled nodes on free ports, joins them with
    /// `redis-cli --cluster create` (slots split evenly, no replicas) and
    /// waits until every node reports `cluster_state:ok` and knows all
    /// nodes. Panics on failure.
    pub fn start() -> RedisCluster {
        let nodes: Vec<RedisProcess> = (0..NODES)
            .map(|_| {
                RedisProcess::start(|bus_port| {
                    // Explicit bus port: the default (port + 10000) overflows
                    // for ephemeral ports above 55535.
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                        "--cluster-port",
                        &bus_port.to_string(),
                    ]
                    .map(str::to_owned)
                    .to_vec()
                })
            })
            .collect();
        let cluster = RedisCluster { nodes };
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        cluster.create(deadline);
        cluster.wait_ok(deadline);
        cluster
    }

    /// `redis://127.0.0.1:PORT` of every node.
    pub fn urls(&self) -> Vec<String> {
        self.ports()
            .into_iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// The client ports of every node.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(RedisProcess::port).collect()
    }

    /// Runs `redis-cli --cluster create` (output kept in the first node's
    /// dir), killing it at `deadline`.
    fn create(&self, deadline: Instant) {
        let bin = process::cli_bin();
        let out_path = self.nodes[0].dir().join("cluster-create.log");
        let out = File::create(&out_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_path.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot clone a file handle: {e}"));
        let mut child = Command::new(&bin)
            .arg("--cluster")
            .arg("create")
            .args(self.ports().iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| process::spawn_failed(&bin, &e));
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "`redis-cli --cluster create` timed out\n{}",
                        self.diagnostics()
                    );
                }
                Err(e) => panic!("cannot poll redis-cli: {e}"),
            }
        };
        if !status.success() {
            panic!(
                "`redis-cli --cluster create` failed ({status})\n{}",
                self.diagnostics()
            );
        }
    }

    /// Waits until every node reports `cluster_state:ok` and knows every
    /// other node.
    fn wait_ok(&self, deadline: Instant) {
        let nodes = NODES.to_string();
        loop {
            let all_ok = self.nodes.iter().all(|node| {
                resp::text(node.port(), &["CLUSTER", "INFO"]).is_ok_and(|info| {
                    resp::info_field(&info, "cluster_state") == Some("ok")
                        && resp::info_field(&info, "cluster_known_nodes") == Some(&nodes)
                })
            });
            if all_ok {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "cluster did not reach cluster_state:ok within {CLUSTER_TIMEOUT:?}\n{}",
                    self.diagnostics()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// `redis-cli` output, `CLUSTER INFO` and log tails of every node.
    fn diagnostics(&self) -> String {
        let create_log = self.nodes[0].dir().join("cluster-create.log");
        let mut out = format!(
            "--- {}\n{}\n",
            create_log.display(),
            fs::read_to_string(&create_log).unwrap_or_default()
        );
        for node in &self.nodes {
            let info = resp::text(node.port(), &["CLUSTER", "INFO"])
                .unwrap_or_else(|e| format!("CLUSTER INFO failed: {e}"));
            out.push_str(&format!("--- node 127.0.0.1:{}\n{info}\n", node.port()));
            out.push_str(&process::log_tail(node.dir(), 15));
        }
        out
    }
}
