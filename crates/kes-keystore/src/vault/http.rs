//! The HTTP side of the Vault client: TLS setup, a bounded connection pool
//! and one request helper that turns transport failures into key-store
//! errors.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use super::index::StorageIndex;
use crate::config::VaultConfig;
use crate::Error;

/// Upper bound of one request, connect included: a hung Vault must not
/// hold a KES request forever.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per Vault host. The Go KES disabled keep-alives
/// because its pool leaked; a bounded pool with an idle timeout keeps reuse
/// without growing without limit.
const MAX_IDLE_PER_HOST: usize = 16;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The read buffer of each connection to Vault, fixed. hyper's default
/// buffer adapts: it doubles whenever a read fills it, up to about 400 KiB,
/// and keeps what it grew to for the connection's life. Listings and large
/// answers grew the buffers of the pooled connections one by one, which
/// the soak against OpenBao saw as a growing heap (docs/reliability.md).
/// A fixed 16 KiB holds any Vault response head, and bodies are read
/// through it in pieces, so every pooled connection costs the same from
/// its first request on.
const READ_BUFFER: usize = 16 * 1024;

/// Default cap of a response body; only listings may be larger.
pub(crate) const BODY_LIMIT: usize = 1 << 20;
/// The reference's cap of a LIST response.
pub(crate) const LIST_BODY_LIMIT: usize = 32 << 20;

/// A Vault response: status and the (size-limited) body. The body may
/// hold a key (K/V reads), a plaintext (transit decrypt) or a token
/// (logins), so it is wiped when dropped.
pub(crate) struct Response {
    pub status: StatusCode,
    pub body: Zeroizing<Vec<u8>>,
}

impl Response {
    /// The `errors` array of a Vault error body, joined, for the error log.
    /// Vault never echoes secret values or tokens in it.
    pub(crate) fn vault_errors(&self) -> String {
        super::decode::errors(self.status, &self.body)
    }
}

pub(crate) struct Http {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    endpoint: String,
    index: StorageIndex,
}

impl Http {
    pub(crate) fn new(config: &VaultConfig) -> Result<Self, Error> {
        let endpoint = config.endpoint.trim().trim_end_matches('/').to_string();
        let uri: Uri = endpoint
            .parse()
            .map_err(|_| Error::other(format!("vault: invalid endpoint '{endpoint}'")))?;
        match uri.scheme_str() {
            Some("http") | Some("https") if uri.host().is_some() => {}
            _ => {
                return Err(Error::other(format!(
                    "vault: invalid endpoint '{endpoint}': expected http(s)://host[:port]"
                )))
            }
        }
        if uri.query().is_some() {
            return Err(Error::other(format!(
                "vault: invalid endpoint '{endpoint}': must not contain a query"
            )));
        }

        let tls = tls_config(config)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
            .pool_idle_timeout(IDLE_TIMEOUT)
            .http1_read_buf_exact_size(READ_BUFFER)
            .build(https);
        Ok(Http {
            client,
            endpoint,
            index: StorageIndex::default(),
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends one request to `/v1/<path>`. Transport failures and timeouts
    /// are [`Error::Unreachable`]; every HTTP status is returned to the
    /// caller, which knows what it means for its operation. The request
    /// carries the storage index of the latest answer (see
    /// [`StorageIndex`]), so that a standby never answers it from a copy
    /// older than what this key store has already seen.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        namespace: Option<&str>,
        body: Option<Vec<u8>>,
        limit: usize,
    ) -> Result<Response, Error> {
        let what = format!("vault: {method} /v1/{path}");
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}/v1/{}", self.endpoint, path));
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(token)
                .map_err(|_| Error::other("vault: the token is not a valid header value"))?;
            value.set_sensitive(true);
            req = req.header("X-Vault-Token", value);
        }
        if let Some(ns) = namespace {
            let value = HeaderValue::from_str(ns)
                .map_err(|_| Error::other(format!("vault: invalid namespace '{ns}'")))?;
            req = req.header("X-Vault-Namespace", value);
        }
        req = self.index.require(req);
        let body = match body {
            Some(b) => {
                req = req.header(CONTENT_TYPE, "application/json");
                // The body may carry a key or credentials: zeroized once
                // hyper has sent it (copies hyper makes itself are beyond
                // our reach).
                Full::new(Bytes::from_owner(zeroize::Zeroizing::new(b)))
            }
            None => Full::new(Bytes::new()),
        };
        let req = req
            .body(body)
            .map_err(|e| Error::other(format!("{what}: invalid request")).with_source(e))?;
        self.exchange(req, &what, limit, true).await
    }

    /// `GET /v1/sys/health` without the consistency headers, and without
    /// keeping the index of the answer: the health check reports the node
    /// KES reaches. With an index it has not seen yet, a standby would
    /// forward the check to the active node (and fail it while there is
    /// none, during an election, when the standby itself is fine).
    pub(crate) async fn health(&self) -> Result<Response, Error> {
        let what = "vault: GET /v1/sys/health";
        let req = Request::builder()
            .method(Method::GET)
            .uri(format!("{}/v1/sys/health", self.endpoint))
            .body(Full::new(Bytes::new()))
            .map_err(|e| Error::other(format!("{what}: invalid request")).with_source(e))?;
        self.exchange(req, what, BODY_LIMIT, false).await
    }

    async fn exchange(
        &self,
        req: Request<Full<Bytes>>,
        what: &str,
        limit: usize,
        keep_index: bool,
    ) -> Result<Response, Error> {
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| Error::unreachable(what.to_string()).with_source(e))?;
            if keep_index {
                self.index.observe(resp.headers());
            }
            let status = resp.status();
            let body = read_body(resp.into_body(), limit, what).await?;
            Ok(Response { status, body })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(r) => r,
            Err(_) => Err(Error::unreachable(format!(
                "{what}: no response within {REQUEST_TIMEOUT:?}"
            ))),
        }
    }
}

/// Reads a response body of at most `limit` bytes into a buffer that is
/// wiped when dropped. The buffer grows by copying into a fresh zeroizing
/// buffer, never by reallocating in place, which would free the old one
/// unwiped. The chunks hyper hands over, and its own read buffers, are out
/// of our reach: they are freed, not wiped.
async fn read_body(
    mut body: Incoming,
    limit: usize,
    what: &str,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let too_large = || Error::other(format!("{what}: response body exceeds {limit} bytes"));
    let expected = body.size_hint().lower();
    if expected > limit as u64 {
        return Err(too_large());
    }
    let mut buf = Zeroizing::new(Vec::with_capacity((expected as usize).max(1024)));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            Error::unreachable(format!("{what}: reading the response")).with_source(e)
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if data.len() > limit - buf.len() {
            return Err(too_large());
        }
        append(&mut buf, &data, limit);
    }
    Ok(buf)
}

/// Appends `data` to `buf` without ever leaving an unwiped copy behind:
/// when the capacity does not suffice, the contents move to a new buffer
/// and the old one is wiped as it is dropped. `buf.len() + data.len()` must
/// not exceed `limit`.
fn append(buf: &mut Zeroizing<Vec<u8>>, data: &[u8], limit: usize) {
    let needed = buf.len() + data.len();
    if needed > buf.capacity() {
        let capacity = (buf.capacity() * 2).min(limit).max(needed);
        let mut bigger = Zeroizing::new(Vec::with_capacity(capacity));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(data);
}

fn tls_config(config: &VaultConfig) -> Result<ClientConfig, Error> {
    use kes_core::tls::{ClientConfigError, ServerTrust};
    let mut roots = RootCertStore::empty();
    let ca = config.tls_ca.trim();
    if ca.is_empty() {
        // Missing or unreadable system roots only matter for https
        // endpoints, and then the handshake reports it.
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
    } else {
        let path = Path::new(ca);
        let files = if path.is_dir() {
            let mut files = Vec::new();
            let dir = std::fs::read_dir(path).map_err(|e| {
                Error::other(format!("vault: tls.ca: cannot read '{ca}'")).with_source(e)
            })?;
            for entry in dir {
                let entry = entry.map_err(|e| {
                    Error::other(format!("vault: tls.ca: cannot read '{ca}'")).with_source(e)
                })?;
                if entry.path().is_file() {
                    files.push(entry.path());
                }
            }
            files
        } else {
            vec![path.to_path_buf()]
        };
        for file in &files {
            let certs = CertificateDer::pem_file_iter(file).map_err(|e| {
                Error::other(format!("vault: tls.ca: cannot read '{}'", file.display()))
                    .with_source(e)
            })?;
            for cert in certs {
                // A CA directory may hold other files; only files given
                // directly must parse.
                match cert {
                    Ok(cert) => {
                        roots.add(cert).map_err(|e| {
                            Error::other(format!(
                                "vault: tls.ca: invalid certificate in '{}'",
                                file.display()
                            ))
                            .with_source(e)
                        })?;
                    }
                    Err(e) if files.len() == 1 => {
                        return Err(Error::other(format!(
                            "vault: tls.ca: invalid PEM in '{}'",
                            file.display()
                        ))
                        .with_source(e))
                    }
                    Err(_) => {}
                }
            }
        }
        if roots.is_empty() {
            return Err(Error::other(format!(
                "vault: tls.ca: no CA certificate found in '{ca}'"
            )));
        }
    }
    let (key, cert) = (config.tls_key.trim(), config.tls_cert.trim());
    let identity = match (key.is_empty(), cert.is_empty()) {
        (true, true) => None,
        (false, false) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    Error::other(format!("vault: tls.cert: cannot load '{cert}'")).with_source(e)
                })?;
            if chain.is_empty() {
                return Err(Error::other(format!(
                    "vault: tls.cert: no certificate in '{cert}'"
                )));
            }
            // The error text of a key parse failure never contains key bytes.
            let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                Error::other(format!("vault: tls.key: cannot load '{key}'")).with_source(e)
            })?;
            Some((chain, private))
        }
        _ => {
            return Err(Error::other(
                "vault: tls.key and tls.cert must be given together",
            ))
        }
    };
    kes_core::tls::client_config(ServerTrust::Roots(roots), identity).map_err(|e| match e {
        ClientConfigError::ProtocolVersions(e) => Error::other("vault: TLS setup").with_source(e),
        ClientConfigError::ClientCertificate(e) => {
            Error::other("vault: tls key/cert").with_source(e)
        }
    })
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_grows_into_fresh_buffers() {
        let mut buf = Zeroizing::new(Vec::with_capacity(4));
        append(&mut buf, b"abc", 100);
        let first = buf.as_ptr();
        assert_eq!(buf.capacity(), 4);
        append(&mut buf, b"d", 100);
        assert_eq!(buf.as_ptr(), first, "fits: no new buffer");
        append(&mut buf, b"efghij", 100);
        assert_eq!(buf.as_slice(), b"abcdefghij");
        assert_eq!(buf.capacity(), 10);
        append(&mut buf, b"k", 100);
        assert_eq!(buf.capacity(), 20, "doubles");
        let mut near = Zeroizing::new(Vec::with_capacity(8));
        append(&mut near, &[1; 8], 10);
        append(&mut near, &[2; 2], 10);
        assert_eq!(near.capacity(), 10, "never more than the limit");
    }
}
