//! One OpenBao dev server (`bao server -dev`).

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{bao_path, with_retries, Api, ROOT_TOKEN, STARTUP_TIMEOUT};

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

impl Deref for Bao {
    type Target = Api;
    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Bao {
    /// Starts a dev server with root token `root`.
    pub fn start() -> Bao {
        Self::launch(false)
    }

    /// Starts a dev server that serves HTTPS with a generated CA (`-dev-tls`).
    /// Configure it with [`Bao::cli`].
    pub fn start_tls() -> Bao {
        Self::launch(true)
    }

    fn launch(tls: bool) -> Bao {
        let path = bao_path();
        // The cluster port next to the free one is bao's too.
        with_retries(4, "bao", || Self::try_launch(&path, tls))
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

impl Drop for Bao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
