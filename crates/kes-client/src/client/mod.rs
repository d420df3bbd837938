//! The client: TLS setup, endpoints, fail-over and retries, and one method
//! per API endpoint.

use crate::error::Error;
use crate::log::LogStream;
use crate::types::*;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use serde::de::DeserializeOwned;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

type Http =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Responses larger than this are refused; no KES response comes close.
const MAX_RESPONSE: usize = 64 << 20;

/// Extra attempts after the first round over all endpoints (spec §7: each
/// request is retried twice).
const RETRIES: usize = 2;

/// A client of one or more KES servers. Cheap to clone; clones share the
/// connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    endpoints: Vec<String>,
    http: Http,
    /// The endpoint that answered last; requests start there so that a dead
    /// endpoint costs one failed connect, not one per request.
    preferred: AtomicUsize,
    timeout: Duration,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.inner.endpoints)
            .finish_non_exhaustive()
    }
}

/// The client certificate presented to the server.
enum ClientAuth {
    None,
    Certificate(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    endpoints: Vec<String>,
    auth: ClientAuth,
    ca_files: Vec<PathBuf>,
    insecure: bool,
    timeout: Duration,
    /// The first error of a builder step; reported by `build`.
    error: Option<Error>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoints", &self.endpoints)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder with no endpoints and no credentials.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            endpoints: Vec::new(),
            auth: ClientAuth::None,
            ca_files: Vec::new(),
            insecure: false,
            timeout: Duration::from_secs(30),
            error: None,
        }
    }

    /// The endpoints (`host:port`) in the order they were given.
    pub fn endpoints(&self) -> &[String] {
        &self.inner.endpoints
    }

    // ---- server ----

    /// `GET /version`
    pub async fn version(&self) -> Result<Version, Error> {
        self.get_json("/version").await
    }

    /// `GET /v1/ready`: Ok if the server and its key store are ready.
    pub async fn ready(&self) -> Result<(), Error> {
        self.call(Method::GET, "/v1/ready", None).await.map(drop)
    }

    /// `GET /v1/status`
    pub async fn status(&self) -> Result<Status, Error> {
        self.get_json("/v1/status").await
    }

    /// `GET /v1/status` of one endpoint only (no fail-over), e.g. to tell
    /// which servers of a cluster are up.
    pub async fn status_of(&self, endpoint: &str) -> Result<Status, Error> {
        let body = self
            .attempt(endpoint, &Method::GET, "/v1/status", None)
            .await?;
        decode(&body)
    }

    /// `GET /v1/metrics`: the Prometheus text exposition as sent.
    pub async fn metrics(&self) -> Result<String, Error> {
        let body = self.call(Method::GET, "/v1/metrics", None).await?;
        String::from_utf8(body.to_vec())
            .map_err(|_| Error::InvalidResponse("metrics are not UTF-8".into()))
    }

    /// `GET /v1/api`
    pub async fn api(&self) -> Result<Vec<ApiRoute>, Error> {
        self.get_json("/v1/api").await
    }

    // ---- keys ----

    /// `POST /v1/key/create/<name>`
    pub async fn create_key(&self, name: &str) -> Result<(), Error> {
        let path = format!("/v1/key/create/{}", encode(name));
        self.call(Method::POST, &path, None).await.map(drop)
    }

    /// `POST /v1/key/import/<name>` with a raw 32-byte key and cipher
    /// (`AES256` or `ChaCha20`).
    pub async fn import_key(&self, name: &str, key: &[u8], cipher: &str) -> Result<(), Error> {
        let body = Zeroizing::new(
            serde_json::to_vec(&serde_json::json!({ "key": B64.encode(key), "cipher": cipher }))
                .map_err(|e| Error::Config(e.to_string()))?,
        );
        let path = format!("/v1/key/import/{}", encode(name));
        self.call(Method::POST, &path, Some(Bytes::copy_from_slice(&body)))
            .await
            .map(drop)
    }

    /// `GET /v1/key/describe/<name>`
    pub async fn describe_key(&self, name: &str) -> Result<KeyInfo, Error> {
        self.get_json(&format!("/v1/key/describe/{}", encode(name)))
            .await
    }

    /// `GET /v1/key/list/<pattern>`: every key name matching `pattern`
    /// (`*` or empty for all), following `continue_at` pages.
    pub async fn list_keys(&self, pattern: &str) -> Result<Vec<String>, Error> {
        self.list_names("/v1/key/list/", pattern, "name").await
    }

    /// `DELETE /v1/key/delete/<name>`
    pub async fn delete_key(&self, name: &str) -> Result<(), Error> {
        let path = format!("/v1/key/delete/{}", encode(name));
        self.call(Method::DELETE, &path, None).await.map(drop)
    }

    /// `POST /v1/key/generate/<name>`: a new data encryption key bound to
    /// `context`.
    pub async fn generate_key(&self, name: &str, context: &[u8]) -> Result<Dek, Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            plaintext: String,
            ciphertext: String,
        }
        let body = if context.is_empty() {
            None
        } else {
            Some(json_body(
                &serde_json::json!({ "context": B64.encode(context) }),
            )?)
        };
        let path = format!("/v1/key/generate/{}", encode(name));
        // Vec::from takes over the buffer without a copy, so the one buffer
        // that held the plaintext is wiped.
        let resp = Zeroizing::new(Vec::from(self.call(Method::POST, &path, body).await?));
        let wire: Wire = decode(&resp)?;
        let wire_plaintext = Zeroizing::new(wire.plaintext);
        Ok(Dek {
            plaintext: decode_b64(&wire_plaintext, "plaintext")?,
            ciphertext: decode_b64(&wire.ciphertext, "ciphertext")?.to_vec(),
        })
    }

    /// `POST /v1/key/encrypt/<name>`
    pub async fn encrypt(
        &self,
        name: &str,
        plaintext: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            ciphertext: String,
        }
        let mut fields = serde_json::Map::new();
        fields.insert(
            "plaintext".into(),
            serde_json::Value::String(B64.encode(plaintext)),
        );
        if !context.is_empty() {
            fields.insert(
                "context".into(),
                serde_json::Value::String(B64.encode(context)),
            );
        }
        let value = serde_json::Value::Object(fields);
        let body = json_body(&value)?;
        // The request body held the plaintext in base64; wipe our copy.
        if let serde_json::Value::Object(mut m) = value {
            if let Some(serde_json::Value::String(s)) = m.get_mut("plaintext") {
                zeroize::Zeroize::zeroize(s);
            }
        }
        let path = format!("/v1/key/encrypt/{}", encode(name));
        let resp = self.call(Method::POST, &path, Some(body)).await?;
        let wire: Wire = decode(&resp)?;
        Ok(decode_b64(&wire.ciphertext, "ciphertext")?.to_vec())
    }

    /// `POST /v1/key/decrypt/<name>`
    pub async fn decrypt(
        &self,
        name: &str,
        ciphertext: &[u8],
        context: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            plaintext: String,
        }
        let mut fields = serde_json::Map::new();
        fields.insert(
            "ciphertext".into(),
            serde_json::Value::String(B64.encode(ciphertext)),
        );
        if !context.is_empty() {
            fields.insert(
                "context".into(),
                serde_json::Value::String(B64.encode(context)),
            );
        }
        let body = json_body(&serde_json::Value::Object(fields))?;
        let path = format!("/v1/key/decrypt/{}", encode(name));
        let resp = Zeroizing::new(Vec::from(self.call(Method::POST, &path, Some(body)).await?));
        let wire: Wire = decode(&resp)?;
        let wire_plaintext = Zeroizing::new(wire.plaintext);
        decode_b64(&wire_plaintext, "plaintext")
    }

    /// `PUT /v1/key/hmac/<name>`: HMAC-SHA256 of `message` with the key's
    /// HMAC key.
    pub async fn hmac(&self, name: &str, message: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
        #[derive(serde::Deserialize)]
        struct Wire {
            hmac: String,
        }
        let body = json_body(&serde_json::json!({ "message": B64.encode(message) }))?;
        let path = format!("/v1/key/hmac/{}", encode(name));
        // MinIO derives root credentials from HMACs: treat them as secrets.
        let resp = Zeroizing::new(Vec::from(self.call(Method::PUT, &path, Some(body)).await?));
        let wire: Wire = decode(&resp)?;
        let hmac = Zeroizing::new(wire.hmac);
        decode_b64(&hmac, "hmac")
    }

    // ---- policies ----

    /// `GET /v1/policy/describe/<name>`
    pub async fn describe_policy(&self, name: &str) -> Result<PolicyInfo, Error> {
        self.get_json(&format!("/v1/policy/describe/{}", encode(name)))
            .await
    }

    /// `GET /v1/policy/read/<name>`
    pub async fn read_policy(&self, name: &str) -> Result<Policy, Error> {
        let mut p: Policy = self
            .get_json(&format!("/v1/policy/read/{}", encode(name)))
            .await?;
        if p.name.is_empty() {
            p.name = name.to_owned();
        }
        Ok(p)
    }

    /// `GET /v1/policy/list/<pattern>`
    pub async fn list_policies(&self, pattern: &str) -> Result<Vec<String>, Error> {
        self.list_names("/v1/policy/list/", pattern, "name").await
    }

    // ---- identities ----

    /// `GET /v1/identity/describe/<identity>`
    pub async fn describe_identity(&self, identity: &str) -> Result<IdentityInfo, Error> {
        let mut info: IdentityInfo = self
            .get_json(&format!("/v1/identity/describe/{}", encode(identity)))
            .await?;
        info.identity = identity.to_owned();
        Ok(info)
    }

    /// `GET /v1/identity/self/describe`
    pub async fn self_describe(&self) -> Result<SelfInfo, Error> {
        self.get_json("/v1/identity/self/describe").await
    }

    /// `GET /v1/identity/list/<pattern>`
    pub async fn list_identities(&self, pattern: &str) -> Result<Vec<String>, Error> {
        self.list_names("/v1/identity/list/", pattern, "identity")
            .await
    }

    // ---- logs ----

    /// `GET /v1/log/audit`: audit events as they happen.
    pub async fn audit_log(&self) -> Result<LogStream<AuditEvent>, Error> {
        Ok(LogStream::new(self.stream("/v1/log/audit").await?))
    }

    /// `GET /v1/log/error`: error-log records as they happen.
    pub async fn error_log(&self) -> Result<LogStream<ErrorEvent>, Error> {
        Ok(LogStream::new(self.stream("/v1/log/error").await?))
    }

    // ---- plumbing ----

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let body = self.call(Method::GET, path, None).await?;
        decode(&body)
    }

    /// Lists names page by page: while the server sends a `continue_at`,
    /// asks again with `?continue=<name>`.
    async fn list_names(
        &self,
        route: &str,
        pattern: &str,
        ndjson_field: &str,
    ) -> Result<Vec<String>, Error> {
        let pattern = if pattern == "*" { "" } else { pattern };
        let mut names = Vec::new();
        let mut continue_at = String::new();
        loop {
            let mut path = format!("{route}{}", encode(pattern));
            if !continue_at.is_empty() {
                path.push_str("?continue=");
                path.push_str(&encode(&continue_at));
            }
            let (content_type, body) = self.call_with_type(Method::GET, &path, None).await?;
            if content_type.as_deref() == Some("application/x-ndjson") {
                // Legacy servers stream one {"name":..} object per line.
                names.extend(parse_ndjson_names(&body, ndjson_field)?);
                break;
            }
            let (page, next) = if route.starts_with("/v1/identity/") {
                let l: IdentityList = decode(&body)?;
                (l.identities.unwrap_or_default(), l.continue_at)
            } else {
                let l: NameList = decode(&body)?;
                (l.names.unwrap_or_default(), l.continue_at)
            };
            names.extend(page);
            // A server that repeats its token would make us loop forever.
            if next.is_empty() || next == continue_at {
                break;
            }
            continue_at = next;
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn call(&self, method: Method, path: &str, body: Option<Bytes>) -> Result<Bytes, Error> {
        self.call_with_type(method, path, body)
            .await
            .map(|(_, body)| body)
    }

    /// Sends a request with fail-over and retries and returns the body of a
    /// successful response with its media type.
    async fn call_with_type(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(Option<String>, Bytes), Error> {
        let inner = &self.inner;
        let timeout = inner.timeout;
        self.with_failover(|endpoint| {
            let method = method.clone();
            let body = body.clone();
            async move {
                let resp = tokio::time::timeout(timeout, async {
                    let resp = inner.send(&endpoint, &method, path, body).await?;
                    read_response(resp).await
                })
                .await
                .map_err(|_| Attempt::Network(format!("{endpoint}: request timed out")))??;
                Ok(resp)
            }
        })
        .await
    }

    /// One request to one endpoint, without fail-over.
    async fn attempt(
        &self,
        endpoint: &str,
        method: &Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Bytes, Error> {
        let inner = &self.inner;
        let result = tokio::time::timeout(inner.timeout, async {
            let resp = inner.send(endpoint, method, path, body).await?;
            read_response(resp).await
        })
        .await;
        match result {
            Err(_) => Err(Error::Connection(format!("{endpoint}: request timed out"))),
            Ok(Err(a)) => Err(a.into_error()),
            Ok(Ok((_, body))) => Ok(body),
        }
    }

    /// Opens a streaming response; fails over only while connecting.
    async fn stream(&self, path: &str) -> Result<Incoming, Error> {
        let inner = &self.inner;
        self.with_failover(|endpoint| async move {
            let resp = inner.send(&endpoint, &Method::GET, path, None).await?;
            if resp.status().is_success() {
                Ok(resp.into_body())
            } else {
                Err(read_response(resp).await.err().unwrap_or_else(|| {
                    Attempt::Failed(Error::InvalidResponse("unexpected status".into()))
                }))
            }
        })
        .await
    }

    /// Runs `op` against the endpoints: the preferred one first, then the
    /// others on a network error or a 5xx other than 501; when a whole round
    /// failed with network errors or 503, waits 200–1000 ms and tries again,
    /// at most [`RETRIES`] more times.
    async fn with_failover<T, F, Fut>(&self, mut op: F) -> Result<T, Error>
    where
        F: FnMut(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, Attempt>>,
    {
        let inner = &self.inner;
        let n = inner.endpoints.len();
        let mut last = None;
        for round in 0..=RETRIES {
            if round > 0 {
                match &last {
                    Some(Attempt::Network(_)) | Some(Attempt::Unavailable(_)) => {}
                    _ => break,
                }
                tokio::time::sleep(jitter()).await;
            }
            let start = inner.preferred.load(Ordering::Relaxed);
            for i in 0..n {
                let idx = (start + i) % n;
                match op(inner.endpoints[idx].clone()).await {
                    Ok(v) => {
                        inner.preferred.store(idx, Ordering::Relaxed);
                        return Ok(v);
                    }
                    Err(Attempt::Failed(e)) => {
                        // The server answered: it is alive, the error is final.
                        inner.preferred.store(idx, Ordering::Relaxed);
                        return Err(e);
                    }
                    Err(a) => last = Some(a),
                }
            }
        }
        Err(last
            .map(Attempt::into_error)
            .unwrap_or_else(|| Error::Config("no KES server endpoint".into())))
    }
}

/// The outcome of one failed attempt, classified for fail-over.
enum Attempt {
    /// Could not talk to the endpoint: try another, retry later.
    Network(String),
    /// 503: try another, retry later.
    Unavailable(Error),
    /// Another 5xx (not 501): try another endpoint, no retry round.
    ServerError(Error),
    /// The TLS handshake failed for a reason that another try cannot fix
    /// (an untrusted certificate): try another endpoint, no retry round.
    Tls(Error),
    /// Any other answer: final.
    Failed(Error),
}

impl Attempt {
    fn into_error(self) -> Error {
        match self {
            Attempt::Network(msg) => Error::Connection(msg),
            Attempt::Unavailable(e)
            | Attempt::ServerError(e)
            | Attempt::Tls(e)
            | Attempt::Failed(e) => e,
        }
    }
}

impl From<Error> for Attempt {
    fn from(e: Error) -> Self {
        Attempt::Failed(e)
    }
}

impl Inner {
    async fn send(
        &self,
        endpoint: &str,
        method: &Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Response<Incoming>, Attempt> {
        let uri = format!("https://{endpoint}{path}");
        let mut req = Request::builder().method(method.clone()).uri(&uri);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| Attempt::Failed(Error::Config(format!("invalid request: {e}"))))?;
        self.http
            .request(req)
            .await
            .map_err(|e| match tls_failure(&e) {
                Some(why) => Attempt::Tls(Error::Connection(format!("{endpoint}: {why}"))),
                None => Attempt::Network(format!("{endpoint}: {}", describe_hyper_error(&e))),
            })
    }
}

/// Reads a response: the body of a 2xx, else the decoded error classified
/// for fail-over.
async fn read_response(resp: Response<Incoming>) -> Result<(Option<String>, Bytes), Attempt> {
    let status = resp.status();
    let content_type = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let body = Limited::new(resp.into_body(), MAX_RESPONSE)
        .collect()
        .await
        .map_err(|e| Attempt::Network(format!("failed to read response: {e}")))?
        .to_bytes();
    if status.is_success() {
        return Ok((content_type, body));
    }
    let err = Error::from_response(status.as_u16(), content_type.as_deref(), &body);
    Err(if status == StatusCode::SERVICE_UNAVAILABLE {
        Attempt::Unavailable(err)
    } else if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
        Attempt::ServerError(err)
    } else {
        Attempt::Failed(err)
    })
}

/// The rustls error somewhere in an error chain. rustls errors travel
/// inside `io::Error`s (hyper-rustls wraps tokio-rustls's `io::Error` in
/// another one), whose `source()` skips the wrapped error: look inside.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(r) = e.downcast_ref::<rustls::Error>() {
        return Some(r);
    }
    if let Some(inner) = e
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        let inner: &(dyn std::error::Error + 'static) = inner;
        if let Some(r) = rustls_error(inner) {
            return Some(r);
        }
    }
    e.source().and_then(rustls_error)
}

/// A TLS failure that retrying cannot fix, as a sentence that says what
/// to do; `None` for every other error.
fn tls_failure(e: &hyper_util::client::legacy::Error) -> Option<String> {
    use rustls::{AlertDescription as Alert, CertificateError as C};
    let err = rustls_error(e)?;
    const HINT: &str = "pass --ca <file>, or -k for a development server";
    let untrusted = |why: &str, hint: &str| {
        Some(format!(
            "the server's certificate is not trusted ({why}): {hint}"
        ))
    };
    match err {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => untrusted("unknown issuer", HINT),
            // What webpki reports for a self-signed certificate whose key
            // cannot have signed it as a CA: not signed by a trusted CA.
            C::BadSignature
            | C::UnsupportedSignatureAlgorithmContext { .. }
            | C::UnsupportedSignatureAlgorithmForPublicKeyContext { .. } => {
                untrusted("not signed by a trusted CA", HINT)
            }
            C::Expired | C::ExpiredContext { .. } => {
                untrusted("expired", "renew it on the server, or pass -k for a development server")
            }
            C::NotValidYet | C::NotValidYetContext { .. } => untrusted(
                "not valid yet",
                "check the clocks, or pass -k for a development server",
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => untrusted(
                &c.to_string(),
                "connect with a name or IP address the certificate lists, or pass -k for a development server",
            ),
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                untrusted("not a server certificate", HINT)
            }
            C::Revoked => untrusted("revoked", "ask the server's operator for a new certificate"),
            other => untrusted(&other.to_string(), HINT),
        },
        rustls::Error::AlertReceived(
            alert @ (Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::CertificateRequired
            | Alert::CertificateExpired
            | Alert::UnsupportedCertificate
            | Alert::AccessDenied),
        ) => Some(format!(
            "the server refused the client certificate ({}): check KES_CLIENT_CERT and KES_CLIENT_KEY, or KES_API_KEY",
            format!("{alert:?}").to_lowercase()
        )),
        _ => None,
    }
}

/// The hyper-util error chain as one line: its own message is only
/// "client error (Connect)".
fn describe_hyper_error(e: &hyper_util::client::legacy::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::InvalidResponse(e.to_string()))
}

fn decode_b64(s: &str, field: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    B64.decode(s)
        .map(Zeroizing::new)
        .map_err(|_| Error::InvalidResponse(format!("'{field}' is not valid base64")))
}

fn json_body(v: &serde_json::Value) -> Result<Bytes, Error> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| Error::Config(e.to_string()))
}

fn parse_ndjson_names(body: &[u8], field: &str) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    for line in body.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: serde_json::Value = decode(line)?;
        if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
            return Err(Error::Api(kes_core::ApiError::new(500, err)));
        }
        match v.get(field).and_then(|n| n.as_str()) {
            Some(n) => names.push(n.to_owned()),
            None => return Err(Error::InvalidResponse(format!("missing '{field}'"))),
        }
    }
    Ok(names)
}

/// Percent-encodes a path segment or query value so that a name can never
/// change the path (`/`, `..`, `?`).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'*') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    // A bare "." or ".." would be collapsed by path cleaning.
    if out == "." || out == ".." {
        return out.replace('.', "%2E");
    }
    out
}

/// A random pause of 200–1000 ms between retry rounds, so that clients do
/// not retry in lockstep.
fn jitter() -> Duration {
    let r = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    Duration::from_millis(200 + r % 801)
}

/// `host:port` from an endpoint as users write it: scheme stripped
/// (`http://` too: KES is HTTPS only), trailing `/` removed.
pub fn normalize_endpoint(endpoint: &str) -> Result<String, Error> {
    let e = endpoint.trim();
    let e = e
        .strip_prefix("https://")
        .or_else(|| e.strip_prefix("http://"))
        .unwrap_or(e);
    let e = e.trim_end_matches('/');
    if e.is_empty() || e.contains('/') || e.contains(char::is_whitespace) {
        return Err(Error::Config(format!("invalid endpoint '{endpoint}'")));
    }
    let uri: http::Uri = format!("https://{e}/")
        .parse()
        .map_err(|_| Error::Config(format!("invalid endpoint '{endpoint}'")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(Error::Config(format!("invalid endpoint '{endpoint}'")));
    }
    Ok(e.to_owned())
}

impl ClientBuilder {
    /// The servers to talk to (`host:port`, optionally with `https://`).
    pub fn endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for e in endpoints {
            match normalize_endpoint(e.as_ref()) {
                Ok(e) => self.endpoints.push(e),
                Err(err) => {
                    self.error.get_or_insert(err);
                }
            }
        }
        self
    }

    /// Authenticate with an API key (a certificate derived from it).
    pub fn api_key(mut self, key: &kes_core::ApiKey) -> Self {
        match key.client_certificate() {
            Ok(cc) => {
                let cert = CertificateDer::from(cc.certificate_der);
                let key = PrivateKeyDer::Pkcs8(cc.private_key_der.to_vec().into());
                self.auth = ClientAuth::Certificate(vec![cert], key);
            }
            Err(e) => {
                self.error.get_or_insert(Error::Config(format!(
                    "failed to create client certificate from API key: {e}"
                )));
            }
        }
        self
    }

    /// Authenticate with a PEM certificate (chain) and private key; the
    /// password decrypts a legacy encrypted PEM key.
    pub fn certificate_pem(mut self, cert: &[u8], key: &[u8], password: Option<&str>) -> Self {
        match crate::pem::certificates(cert)
            .and_then(|c| crate::pem::private_key(key, password).map(|k| (c, k)))
        {
            Ok((certs, key)) => self.auth = ClientAuth::Certificate(certs, key),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Authenticate with a PEM certificate file and private-key file.
    pub fn certificate_files(
        self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        password: Option<&str>,
    ) -> Self {
        let cert_pem = std::fs::read(cert.as_ref()).map_err(|e| {
            Error::Config(format!(
                "failed to read client certificate '{}': {e}",
                cert.as_ref().display()
            ))
        });
        let key_pem = std::fs::read(key.as_ref())
            .map(Zeroizing::new)
            .map_err(|e| {
                Error::Config(format!(
                    "failed to read client private key '{}': {e}",
                    key.as_ref().display()
                ))
            });
        match (cert_pem, key_pem) {
            (Ok(c), Ok(k)) => self.certificate_pem(&c, &k, password),
            (Err(e), _) | (_, Err(e)) => {
                let mut b = self;
                b.error.get_or_insert(e);
                b
            }
        }
    }

    /// Trust the CA certificate(s) in this PEM file in addition to the
    /// system roots.
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca_files.push(path.as_ref().to_owned());
        self
    }

    /// Skip verification of the server certificate (testing only).
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Timeout of one request (not of log streams). Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.endpoints.is_empty() {
            return Err(Error::Config("no KES server endpoint specified".into()));
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS: {e}")))?;
        let builder = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoServerVerification(provider)))
        } else {
            builder.with_root_certificates(root_store(&self.ca_files)?)
        };
        let config = match self.auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Certificate(chain, key) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Config(format!("invalid client certificate or key: {e}")))?,
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(Client {
            inner: Arc::new(Inner {
                endpoints: self.endpoints,
                http,
                preferred: AtomicUsize::new(0),
                timeout: self.timeout,
            }),
        })
    }
}

/// System roots plus the given CA files. With CA files, missing system
/// roots are fine; without, there must be at least one root.
fn root_store(ca_files: &[PathBuf]) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A broken system certificate must not prevent using the others.
        let _ = roots.add(cert);
    }
    for path in ca_files {
        let pem = std::fs::read(path).map_err(|e| {
            Error::Config(format!(
                "failed to read CA certificate '{}': {e}",
                path.display()
            ))
        })?;
        for cert in crate::pem::certificates(&pem)? {
            roots.add(cert).map_err(|e| {
                Error::Config(format!("invalid CA certificate '{}': {e}", path.display()))
            })?;
        }
    }
    Ok(roots)
}

/// Accepts any server certificate but still checks the handshake
/// signatures, for `--insecure` (the CLI, kes-bench).
#[derive(Debug)]
pub struct NoServerVerification(Arc<CryptoProvider>);

impl NoServerVerification {
    /// A verifier checking signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self(provider)
    }
}

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized() {
        assert_eq!(
            normalize_endpoint("127.0.0.1:7373").unwrap(),
            "127.0.0.1:7373"
        );
        assert_eq!(
            normalize_endpoint("https://kes.example:7373/").unwrap(),
            "kes.example:7373"
        );
        assert_eq!(
            normalize_endpoint(" http://[::1]:7373 ").unwrap(),
            "[::1]:7373"
        );
        assert!(normalize_endpoint("").is_err());
        assert!(normalize_endpoint("https://").is_err());
        assert!(normalize_endpoint("host:7373/v1").is_err());
        assert!(normalize_endpoint("host name:1").is_err());
    }

    #[test]
    fn names_cannot_escape_the_path() {
        assert_eq!(encode("my-key_1"), "my-key_1");
        assert_eq!(encode("my-*"), "my-*");
        assert_eq!(encode("../x"), "..%2Fx");
        assert_eq!(encode(".."), "%2E%2E");
        assert_eq!(encode("a?b#c"), "a%3Fb%23c");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let d = jitter();
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn legacy_ndjson_lists() {
        let body = b"{\"name\":\"a\"}\n{\"name\":\"b\"}\n";
        assert_eq!(parse_ndjson_names(body, "name").unwrap(), ["a", "b"]);
        let err = parse_ndjson_names(b"{\"name\":\"a\"}\n{\"error\":\"boom\"}\n", "name");
        assert_eq!(err.unwrap_err().to_string(), "boom");
    }

    #[test]
    fn builder_rejects_bad_input() {
        let err = Client::builder().build().unwrap_err();
        assert_eq!(err.to_string(), "no KES server endpoint specified");
        let err = Client::builder()
            .endpoints(["host:1", "a b"])
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "invalid endpoint 'a b'");
        let err = Client::builder()
            .endpoints(["127.0.0.1:1"])
            .certificate_files("/nonexistent/c.pem", "/nonexistent/k.pem", None)
            .build()
            .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("failed to read client certificate"));
    }
}
