//! A three-node OpenBao cluster with integrated (raft) storage.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{bao_path, with_retries, Api, STARTUP_TIMEOUT};

/// Nodes of a [`BaoCluster`].
pub const CLUSTER_SIZE: usize = 3;

/// A three-node OpenBao cluster with integrated (raft) storage on
/// 127.0.0.1: node 0 is initialised (one unseal key share), nodes 1 and 2
/// join it, and all three are unsealed voters. Every node is a `bao server
/// -config <dir>/node-N.hcl` process, killed when the cluster is dropped.
///
/// The nodes run with `disable_standby_reads = true` (unless started with
/// [`BaoCluster::start_with_standby_reads`]): since OpenBao 2.5 a
/// standby answers reads from its own copy of the raft log, which may not
/// have the write it just forwarded to the active node yet (a key created
/// through a standby reads as missing for a moment). With the flag, a
/// standby forwards every request to the active node, so a client sees one
/// consistent store whichever node it talks to. Raft runs with
/// `performance_multiplier = 1`, the tightest timing (OpenBao's default
/// stretches every raft timeout five times, for small machines): a lost
/// leader is noticed and replaced within seconds.
pub struct BaoCluster {
    nodes: Vec<ClusterNode>,
    /// The cluster's only unseal key share.
    pub unseal_key: String,
    dir: tempfile::TempDir,
}

struct ClusterNode {
    child: Option<Child>,
    api: Api,
    /// The API port of a killed node, held ([`crate::hold_port`]).
    hold: Option<tokio::net::TcpSocket>,
}

impl BaoCluster {
    /// Starts, initialises, unseals and joins three nodes and waits until
    /// all three are raft voters.
    pub fn start() -> BaoCluster {
        Self::launch(false)
    }

    /// Like [`BaoCluster::start`], but with OpenBao's default of standbys
    /// that answer reads themselves (`disable_standby_reads = false`), which
    /// is only eventually consistent.
    pub fn start_with_standby_reads() -> BaoCluster {
        Self::launch(true)
    }

    fn launch(standby_reads: bool) -> BaoCluster {
        let path = bao_path();
        with_retries(3, "bao cluster", || Self::try_launch(&path, standby_reads))
    }

    fn try_launch(path: &Path, standby_reads: bool) -> Result<BaoCluster, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ports = Vec::new();
        while ports.len() < 2 * CLUSTER_SIZE {
            let port = crate::free_port();
            if !ports.contains(&port) {
                ports.push(port);
            }
        }
        let mut cluster = BaoCluster {
            nodes: Vec::new(),
            unseal_key: String::new(),
            dir,
        };
        for n in 0..CLUSTER_SIZE {
            let (api_port, cluster_port) = (ports[2 * n], ports[2 * n + 1]);
            let data = cluster.dir.path().join(format!("raft-{n}"));
            std::fs::create_dir_all(&data).expect("raft directory");
            let config = cluster.dir.path().join(format!("node-{n}.hcl"));
            std::fs::write(
                &config,
                format!(
                    "ui = false\n\
                     disable_standby_reads = {}\n\
                     storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"node-{n}\"\n  performance_multiplier = 1\n}}\n\
                     listener \"tcp\" {{\n  address = \"127.0.0.1:{api_port}\"\n  cluster_address = \"127.0.0.1:{cluster_port}\"\n  tls_disable = true\n}}\n\
                     api_addr = \"http://127.0.0.1:{api_port}\"\n\
                     cluster_addr = \"https://127.0.0.1:{cluster_port}\"\n",
                    !standby_reads,
                    data.display()
                ),
            )
            .expect("node config");
            let log = std::fs::File::create(cluster.log_path(n)).expect("node log");
            let child = Command::new(path)
                .arg("server")
                .arg(format!("-config={}", config.display()))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("node log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
            cluster.nodes.push(ClusterNode {
                child: Some(child),
                api: Api {
                    port: api_port,
                    root_token: String::new(),
                },
                hold: None,
            });
        }
        let deadline = Instant::now() + STARTUP_TIMEOUT;

        // Up: every node answers sys/health (501: not initialised).
        for n in 0..CLUSTER_SIZE {
            cluster.wait(n, deadline, "answer sys/health", |c| {
                c.nodes[n]
                    .api
                    .try_request("GET", "sys/health", None, None)
                    .is_some()
            })?;
        }

        // Node 0: initialised with one key share, unsealed, active.
        let init = cluster.nodes[0]
            .api
            .try_request(
                "PUT",
                "sys/init",
                None,
                Some(&serde_json::json!({"secret_shares": 1, "secret_threshold": 1})),
            )
            .ok_or_else(|| cluster.failure(0, "sys/init: no response"))?;
        let (Some(key), Some(token)) = (
            init.body["keys"][0].as_str(),
            init.body["root_token"].as_str(),
        ) else {
            return Err(cluster.failure(0, &format!("sys/init: {} {}", init.status, init.body)));
        };
        cluster.unseal_key = key.to_string();
        for node in &mut cluster.nodes {
            node.api.root_token = token.to_string();
        }
        cluster.unseal_node(0)?;
        cluster.wait(0, deadline, "become active", |c| {
            c.leader_seen_by(0) == Some(0)
        })?;

        // Autopilot makes a joined node a voter once it has been healthy
        // for `server_stabilization_time` (10 s by default); 1 s saves
        // the test ten seconds.
        let root_token = token.to_string();
        let stabilization = cluster.nodes[0]
            .api
            .try_request(
                "POST",
                "sys/storage/raft/autopilot/configuration",
                Some(&root_token),
                Some(&serde_json::json!({ "server_stabilization_time": "1s" })),
            )
            .map(|r| r.status);
        if stabilization != Some(204) && stabilization != Some(200) {
            return Err(cluster.failure(0, &format!("autopilot configuration: {stabilization:?}")));
        }

        // Nodes 1 and 2 join node 0 and are unsealed with the same key.
        let leader_api_addr = cluster.nodes[0].api.endpoint();
        for n in 1..CLUSTER_SIZE {
            let joined = cluster.nodes[n]
                .api
                .try_request(
                    "POST",
                    "sys/storage/raft/join",
                    None,
                    Some(&serde_json::json!({ "leader_api_addr": leader_api_addr })),
                )
                .ok_or_else(|| cluster.failure(n, "raft join: no response"))?;
            if joined.body["joined"] != true {
                return Err(
                    cluster.failure(n, &format!("raft join: {} {}", joined.status, joined.body))
                );
            }
            cluster.unseal_node(n)?;
        }

        // Three voters (autopilot promotes a joined node once it has kept
        // up for a while), every node unsealed.
        cluster.wait(0, deadline, "list three raft voters", |c| {
            c.voters() == CLUSTER_SIZE
        })?;
        for n in 1..CLUSTER_SIZE {
            cluster.wait(n, deadline, "be an unsealed standby", |c| {
                c.health(n) == Some(429)
            })?;
        }
        Ok(cluster)
    }

    fn log_path(&self, n: usize) -> PathBuf {
        self.dir.path().join(format!("node-{n}.log"))
    }

    /// An error naming node `n`, with the end of its log.
    fn failure(&self, n: usize, what: &str) -> String {
        let log = std::fs::read_to_string(self.log_path(n)).unwrap_or_default();
        let tail: String = log
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n");
        format!("bao cluster node {n}: {what}\n{tail}")
    }

    /// Polls `done` until it holds, failing if node `n` exits or the
    /// deadline passes.
    fn wait(
        &mut self,
        n: usize,
        deadline: Instant,
        what: &str,
        done: impl Fn(&Self) -> bool,
    ) -> Result<(), String> {
        loop {
            if done(self) {
                return Ok(());
            }
            let exited = self.nodes[n]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().expect("try_wait"));
            if let Some(status) = exited {
                return Err(self.failure(n, &format!("exited ({status}) before it could {what}")));
            }
            if Instant::now() > deadline {
                return Err(self.failure(n, &format!("did not {what} within {STARTUP_TIMEOUT:?}")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn unseal_node(&self, n: usize) -> Result<(), String> {
        let reply = self.nodes[n]
            .api
            .try_request(
                "PUT",
                "sys/unseal",
                None,
                Some(&serde_json::json!({ "key": self.unseal_key })),
            )
            .ok_or_else(|| self.failure(n, "sys/unseal: no response"))?;
        if reply.status != 200 {
            return Err(self.failure(n, &format!("sys/unseal: {} {}", reply.status, reply.body)));
        }
        Ok(())
    }

    /// `sys/health`'s status on node `n`: 200 active, 429 unsealed
    /// standby, 503 sealed, 501 not initialised; `None` if it does not
    /// answer.
    pub fn health(&self, n: usize) -> Option<u16> {
        self.nodes[n]
            .api
            .try_request("GET", "sys/health", None, None)
            .map(|r| r.status)
    }

    /// The voters `sys/storage/raft/configuration` lists (asked of node 0).
    fn voters(&self) -> usize {
        let Some(reply) = self.nodes[0].api.try_request(
            "GET",
            "sys/storage/raft/configuration",
            Some(&self.nodes[0].api.root_token),
            None,
        ) else {
            return 0;
        };
        reply.body["data"]["config"]["servers"]
            .as_array()
            .map(|servers| servers.iter().filter(|s| s["voter"] == true).count())
            .unwrap_or(0)
    }

    /// The API of node `n`.
    pub fn node(&self, n: usize) -> &Api {
        &self.nodes[n].api
    }

    /// The node that node `n` names as the active one in `sys/leader`
    /// (`leader_address`); `None` if `n` does not answer or knows no
    /// leader.
    pub fn leader_seen_by(&self, n: usize) -> Option<usize> {
        let reply = self.nodes[n]
            .api
            .try_request("GET", "sys/leader", None, None)?;
        let address = reply.body["leader_address"].as_str()?;
        self.nodes
            .iter()
            .position(|node| node.api.endpoint() == address)
    }

    /// The active node, as the first live node that answers names it.
    pub fn leader(&self) -> Option<usize> {
        (0..CLUSTER_SIZE)
            .filter(|&n| self.is_alive(n))
            .find_map(|n| self.leader_seen_by(n))
    }

    /// Whether node `n` has not been killed.
    pub fn is_alive(&self, n: usize) -> bool {
        self.nodes[n].child.is_some()
    }

    /// Kills node `n` with SIGKILL and reaps it. Its API port stays held
    /// ([`crate::hold_port`]): a client may go on calling a dead node.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].child.take() {
            let _ = child.kill();
            let _ = child.wait();
            self.nodes[n].hold = crate::hold_port(self.nodes[n].api.port);
        }
    }

    /// [`Api::setup_kes`] on the active node.
    pub fn setup_kes(&self, token_ttl: &str, token_max_ttl: &str) -> (String, String) {
        let leader = self.leader().expect("the cluster has an active node");
        self.nodes[leader].api.setup_kes(token_ttl, token_max_ttl)
    }
}

impl Drop for BaoCluster {
    fn drop(&mut self) {
        for n in 0..self.nodes.len() {
            self.kill(n);
        }
    }
}
