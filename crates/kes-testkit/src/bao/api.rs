//! The HTTP API of one OpenBao server, as root: requests with JSON bodies
//! over hyper, from synchronous test code.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

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

impl Api {
    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// One request on a connection of its own; `None` on a transport
    /// error or when OpenBao takes longer than 30 s to answer.
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
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("/v1/{path}"))
            .header(http::header::HOST, format!("127.0.0.1:{}", self.port))
            .header(http::header::CONNECTION, "close");
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(namespace) = namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = request
            .body(Full::new(Bytes::from(body)))
            .expect("a valid OpenBao request");
        let (status, payload) = block_on(exchange(self.port, request))?;
        let payload = String::from_utf8_lossy(&payload).into_owned();
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

/// Sends `request` to 127.0.0.1:`port` over a new HTTP/1.1 connection:
/// the status and the whole body, or `None` on a transport error.
async fn exchange(port: u16, request: http::Request<Full<Bytes>>) -> Option<(u16, Bytes)> {
    let work = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .ok()?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await.ok()?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.ok()?.to_bytes();
        Some((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, work)
        .await
        .ok()
        .flatten()
}

/// Runs `work` to its end on the test kit's own runtime and waits for it
/// here: the launchers are synchronous and are called from plain tests and
/// from inside a test's tokio runtime alike, where blocking on a runtime
/// of the caller's would panic.
fn block_on<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("kes-testkit-bao")
            .enable_all()
            .build()
            .expect("the test kit's OpenBao client runtime")
    });
    let (done, result) = std::sync::mpsc::channel();
    runtime.spawn(async move {
        let _ = done.send(work.await);
    });
    result.recv().expect("the OpenBao request task ended")
}
