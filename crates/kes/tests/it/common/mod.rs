//! Test harness: starts the real `kes` binary on 127.0.0.1 with generated
//! certificates and talks to it over real mTLS connections.
//!
//! ```ignore
//! let server = TestServer::start(Setup::new());
//! let admin = server.admin_client();
//! let resp = admin.request("POST", "/v1/key/create/k", None).await;
//! ```
#![allow(dead_code, unused_imports)]

pub(crate) mod audit;
pub(crate) mod cli;
pub(crate) mod load;
pub(crate) mod shared_store;
pub(crate) use audit::AuditLog;
pub(crate) use client::{next_line, Client, KeepAlive, Resp};
pub(crate) use kes_testkit::client;

use kes_core::ApiKey;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The path of the `kes` binary under test.
pub(crate) fn kes_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kes"))
}

/// A temporary directory with a server certificate and an admin API key,
/// and the YAML config to start a server with.
pub(crate) struct Setup {
    pub dir: tempfile::TempDir,
    pub admin: ApiKey,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub server_cert_der: Vec<u8>,
    /// `keystore:` section (YAML, indented as a top-level key).
    pub keystore: String,
    /// Extra top-level YAML (policy, api, cache, log, keys ...).
    pub extra: String,
    /// Environment variables for the server process.
    pub env: Vec<(String, String)>,
    /// Extra lines of the `tls:` section (indented by two spaces).
    pub tls_extra: String,
    /// A complete config file to use instead of the generated one.
    pub raw: Option<String>,
    /// Start the server with this many open files at most (soft and hard
    /// `ulimit -n`).
    pub nofile: Option<u64>,
}

impl Setup {
    /// A fresh directory, server certificate for 127.0.0.1/localhost, admin
    /// key, and an fs key store in `<dir>/keys`.
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let admin = ApiKey::generate();
        let options = kes_core::certgen::CertificateOptions {
            subject: Some("localhost".into()),
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
            dns_names: vec!["localhost".into()],
            ..Default::default()
        };
        let id = kes_core::certgen::new_identity(&options).expect("server certificate");
        let server_cert = dir.path().join("server.crt");
        let server_key = dir.path().join("server.key");
        std::fs::write(
            &server_cert,
            kes_core::pem::encode("CERTIFICATE", &id.certificate.certificate_der),
        )
        .unwrap();
        std::fs::write(
            &server_key,
            kes_core::pem::encode("PRIVATE KEY", &id.certificate.private_key_der),
        )
        .unwrap();
        let keystore = format!(
            "keystore:\n  fs:\n    path: {}\n",
            dir.path().join("keys").display()
        );
        Setup {
            server_cert_der: id.certificate.certificate_der.clone(),
            dir,
            admin,
            server_cert,
            server_key,
            keystore,
            extra: String::new(),
            env: Vec::new(),
            tls_extra: String::new(),
            raw: None,
            nofile: None,
        }
    }

    /// The directory of the fs key store.
    pub(crate) fn keys_dir(&self) -> PathBuf {
        self.dir.path().join("keys")
    }

    /// Adds top-level YAML.
    pub(crate) fn with(mut self, yaml: &str) -> Self {
        self.extra.push_str(yaml);
        if !yaml.ends_with('\n') {
            self.extra.push('\n');
        }
        self
    }

    /// Replaces the key-store section.
    pub(crate) fn keystore(mut self, yaml: &str) -> Self {
        self.keystore = yaml.to_string();
        self
    }

    /// The full config file.
    pub(crate) fn config(&self) -> String {
        if let Some(raw) = &self.raw {
            return raw.clone();
        }
        format!(
            "address: 127.0.0.1:0\nadmin:\n  identity: {}\ntls:\n  key: {}\n  cert: {}\n{}{}{}",
            self.admin.identity(),
            self.server_key.display(),
            self.server_cert.display(),
            self.tls_extra,
            self.extra,
            self.keystore,
        )
    }

    /// Writes the config file and returns its path.
    pub(crate) fn write_config(&self) -> PathBuf {
        let path = self.dir.path().join("config.yml");
        std::fs::write(&path, self.config()).unwrap();
        path
    }
}

impl Default for Setup {
    fn default() -> Self {
        Self::new()
    }
}

/// A running `kes server`.
pub(crate) struct TestServer {
    pub setup: Setup,
    pub addr: SocketAddr,
    pub config_path: PathBuf,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn drain(reader: impl std::io::Read + Send + 'static, sink: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(reader);
        let mut line = String::new();
        while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            sink.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
}

impl TestServer {
    /// Starts a server with the setup's config and waits until it serves.
    pub(crate) fn start(setup: Setup) -> Self {
        Self::try_start(setup).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server; returns its stderr if it exits before serving.
    pub(crate) fn try_start(setup: Setup) -> Result<Self, String> {
        let config_path = setup.write_config();
        let mut cmd = match setup.nofile {
            None => Command::new(kes_bin()),
            Some(n) => {
                let mut sh = Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                    .arg(kes_bin());
                sh
            }
        };
        cmd.arg("server")
            .arg("--config")
            .arg(&config_path)
            .current_dir(setup.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &setup.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn kes server");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        drain(child.stdout.take().unwrap(), stdout.clone());
        drain(child.stderr.take().unwrap(), stderr.clone());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = {
                let out = stdout.lock().unwrap();
                parse_addr(&out).filter(|_| out.contains("Server is up and running"))
            };
            if let Some(addr) = ready {
                {
                    return Ok(TestServer {
                        setup,
                        addr,
                        config_path,
                        child,
                        stdout,
                        stderr,
                    });
                }
            }
            if let Ok(Some(status)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(format!(
                    "kes server exited with {status}: {}",
                    stderr.lock().unwrap()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!(
                    "kes server did not start: stdout={} stderr={}",
                    stdout.lock().unwrap(),
                    stderr.lock().unwrap()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the server wrote to stdout (banner, audit log).
    pub(crate) fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything the server wrote to stderr (error log).
    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal (e.g. "HUP", "TERM") to the server.
    pub(crate) fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub(crate) fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// A client authenticated with `key`.
    pub(crate) fn client(&self, key: &ApiKey) -> Client {
        Client::new(self.addr, Some(key), &self.setup.server_cert_der)
    }

    /// A client authenticated as the admin.
    pub(crate) fn admin_client(&self) -> Client {
        self.client(&self.setup.admin)
    }

    /// A client that sends no certificate.
    pub(crate) fn anonymous_client(&self) -> Client {
        Client::new(self.addr, None, &self.setup.server_cert_der)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse_addr(stdout: &str) -> Option<SocketAddr> {
    let line = stdout.lines().find(|l| l.starts_with("API"))?;
    let url = line.split("https://").nth(1)?.trim();
    url.parse().ok()
}

/// Writes a file, creating parents.
pub(crate) fn write(path: &Path, contents: &[u8]) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, contents).unwrap();
}

/// URL-escapes `text` as nginx's `$ssl_client_escaped_cert` does: every
/// byte but the unreserved ones as `%XX`.
pub(crate) fn url_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Base64 (standard, padded).
pub(crate) fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Base64 decode, panicking on bad input.
pub(crate) fn unb64(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

/// The top-level field names of the JSON object `json`, in the order they
/// are written: a parsed `serde_json::Value` sorts them, and the order is
/// part of what the Go KES answers.
pub(crate) fn field_order(json: &str) -> Vec<String> {
    use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                keys.push(key);
            }
            Ok(keys)
        }
    }
    serde_json::Deserializer::from_str(json)
        .deserialize_map(Keys)
        .expect("a JSON object")
}
