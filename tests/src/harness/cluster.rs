//! A 3-master Redis Cluster of `redis-server` children, optionally with a
//! replica per master (for failover tests).

use std::fs::{self, File};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::process::{self, RedisProcess, POLL};
use super::resp;

/// Number of masters.
const MASTERS: usize = 3;
/// How long `redis-cli --cluster create` plus convergence may take.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);

/// A 3-master Redis Cluster on `127.0.0.1` (no replicas, or one per master
/// with [`RedisCluster::start_with_replicas`]), each node in its own temp
/// dir. Dropping it kills every node and removes their directories.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisProcess>,
    /// Replicas per master (0 or 1).
    replicas: usize,
}

impl RedisCluster {
    /// Starts 3 cluster-enabled nodes on free ports, joins them with
    /// `redis-cli --cluster create` (slots split evenly, no replicas) and
    /// waits until every node reports `cluster_state:ok` and knows all
    /// nodes. Panics on failure.
    pub fn start() -> RedisCluster {
        Self::start_with(0)
    }

    /// Starts 3 masters each with one replica (6 nodes), and waits until every
    /// replica is in sync with its master as well.
    pub fn start_with_replicas() -> RedisCluster {
        Self::start_with(1)
    }

    fn start_with(replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisProcess> = (0..MASTERS * (1 + replicas))
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
        let cluster = RedisCluster { nodes, replicas };
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        cluster.create(deadline);
        cluster.wait_ok(deadline);
        cluster.wait_replicas_synced(deadline);
        cluster
    }

    /// `(replica port, its master's port)` for every replica, from
    /// `CLUSTER NODES` as the first answering node sees it.
    pub fn replica_pairs(&self) -> Vec<(u16, u16)> {
        let text = self
            .nodes
            .iter()
            .find_map(|n| resp::text(n.port(), &["CLUSTER", "NODES"]).ok())
            .unwrap_or_default();
        // <id> <ip:port@bus> <flags> <master id or -> ...
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
        let port_of = |addr: &str| -> Option<u16> { addr.split(['@', ':']).nth(1)?.parse().ok() };
        let port_by_id = |id: &str| {
            lines
                .iter()
                .find(|f| f.first() == Some(&id))
                .and_then(|f| port_of(f.get(1)?))
        };
        lines
            .iter()
            .filter(|f| f.get(2).is_some_and(|flags| flags.contains("slave")))
            .filter_map(|f| Some((port_of(f.get(1)?)?, port_by_id(f.get(3)?)?)))
            .collect()
    }

    /// Fails a master over to its replica (`CLUSTER FAILOVER` on the
    /// replica, a coordinated hand-over) and waits until the replica is a
    /// master and every node reports `cluster_state:ok`. Returns the new
    /// master's port.
    pub fn failover(&self, replica_port: u16) -> u16 {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        match resp::command(replica_port, &["CLUSTER", "FAILOVER"]) {
            Ok(resp::Reply::Status(s)) if s == "OK" => {}
            other => panic!("CLUSTER FAILOVER on {replica_port}: {other:?}"),
        }
        loop {
            let promoted = resp::text(replica_port, &["INFO", "replication"])
                .is_ok_and(|i| resp::info_field(&i, "role") == Some("master"));
            if promoted && self.all_ok() {
                return replica_port;
            }
            if Instant::now() >= deadline {
                panic!(
                    "failover to {replica_port} did not finish\n{}",
                    self.diagnostics()
                );
            }
            thread::sleep(POLL);
        }
    }

    fn all_ok(&self) -> bool {
        let nodes = self.nodes.len().to_string();
        self.nodes.iter().all(|node| {
            resp::text(node.port(), &["CLUSTER", "INFO"]).is_ok_and(|info| {
                resp::info_field(&info, "cluster_state") == Some("ok")
                    && resp::info_field(&info, "cluster_known_nodes") == Some(&nodes)
            })
        })
    }

    /// Waits until every replica reports its link to its master up.
    fn wait_replicas_synced(&self, deadline: Instant) {
        if self.replicas == 0 {
            return;
        }
        loop {
            let pairs = self.replica_pairs();
            let synced = pairs.len() == MASTERS * self.replicas
                && pairs.iter().all(|(r, _)| {
                    resp::text(*r, &["INFO", "replication"])
                        .is_ok_and(|i| resp::info_field(&i, "master_link_status") == Some("up"))
                });
            if synced {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "replicas did not sync within {CLUSTER_TIMEOUT:?}\n{}",
                    self.diagnostics()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// `redis://127.0.0.1:PORT` of every node (masters and replicas).
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
            .arg("--cluster-replicas")
            .arg(self.replicas.to_string())
            .arg("--cluster-yes")
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
        loop {
            if self.all_ok() {
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
