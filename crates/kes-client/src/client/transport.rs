//! Sending a request: to the preferred endpoint first, failing over to the
//! others and retrying rounds that failed for reasons that may pass.

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{Client, Inner};
use crate::error::{Cause, Error, TlsFailure};

pub(super) type Http =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Responses larger than this are refused; no KES response comes close.
const MAX_RESPONSE: usize = 64 << 20;

/// Extra rounds over all endpoints after the first, as the Go SDK makes:
/// a request is retried twice.
const RETRIES: usize = 2;

impl Client {
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Bytes, Error> {
        self.call_with_type(method, path, body)
            .await
            .map(|(_, body)| body)
    }

    /// Sends a request with fail-over and retries and returns the body of a
    /// successful response with its media type.
    pub(super) async fn call_with_type(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(Option<String>, Bytes), Error> {
        self.with_failover(|endpoint| {
            let method = method.clone();
            let body = body.clone();
            async move { self.inner.exchange(&endpoint, &method, path, body).await }
        })
        .await
    }

    /// One request to one endpoint, without fail-over.
    pub(super) async fn attempt(
        &self,
        endpoint: &str,
        method: &Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Bytes, Error> {
        self.inner
            .exchange(endpoint, method, path, body)
            .await
            .map(|(_, body)| body)
            .map_err(Attempt::into_error)
    }

    /// Opens a streaming response; fails over only while connecting.
    pub(super) async fn stream(&self, path: &str) -> Result<Incoming, Error> {
        let inner = &self.inner;
        self.with_failover(|endpoint| async move {
            let resp = inner.send(&endpoint, &Method::GET, path, None).await?;
            if resp.status().is_success() {
                Ok(resp.into_body())
            } else {
                Err(read_response(resp).await.err().unwrap_or_else(|| {
                    Attempt::Failed(Error::invalid_response("unexpected status"))
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
    Network(Error),
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
            Attempt::Network(e)
            | Attempt::Unavailable(e)
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
    /// Sends a request to one endpoint and reads the whole response, both
    /// within the request timeout.
    async fn exchange(
        &self,
        endpoint: &str,
        method: &Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(Option<String>, Bytes), Attempt> {
        tokio::time::timeout(self.timeout, async {
            let resp = self.send(endpoint, method, path, body).await?;
            read_response(resp).await
        })
        .await
        .map_err(|_| {
            Attempt::Network(Error::Timeout {
                endpoint: endpoint.to_owned(),
            })
        })?
    }

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
            .map_err(|e| connection_error(endpoint, e))
    }
}

/// A request that got no response, classified: a TLS failure that another
/// try cannot fix, or a network failure worth another endpoint and a retry.
fn connection_error(endpoint: &str, e: hyper_util::client::legacy::Error) -> Attempt {
    let endpoint = endpoint.to_owned();
    if let Some((failure, source)) = tls_failure(&e) {
        return Attempt::Tls(Error::Tls {
            endpoint,
            failure,
            source: source.map(Cause::new),
        });
    }
    if closed_without_answer(&e) {
        return Attempt::Network(Error::Closed {
            endpoint,
            source: Cause::new(e),
        });
    }
    if let Some(failure) = alert_in_text(&describe_hyper_error(&e)) {
        return Attempt::Tls(Error::Tls {
            endpoint,
            failure,
            source: Some(Cause::new(e)),
        });
    }
    let source = Cause::new(e);
    Attempt::Network(if refused(source.get()) {
        Error::Refused { endpoint, source }
    } else {
        Error::Io { endpoint, source }
    })
}

/// Reports whether the connection was refused somewhere in the chain.
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        source = s.source();
    }
    false
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
        .map_err(|e| Attempt::Network(Error::ResponseBroken(Cause::from_box(e))))?
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

/// A TLS failure that retrying cannot fix, with what to do about it and
/// rustls's error when its text is not already in the reason; `None` for
/// every other error.
fn tls_failure(
    e: &hyper_util::client::legacy::Error,
) -> Option<(TlsFailure, Option<rustls::Error>)> {
    use rustls::{AlertDescription as Alert, CertificateError as C};
    let err = rustls_error(e)?;
    const HINT: &str = "pass --ca <file>, or -k for a development server";
    let untrusted = |reason: &str, hint: &'static str| TlsFailure::UntrustedServer {
        reason: reason.to_owned(),
        hint,
    };
    let failure = match err {
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
            // rustls's text is the reason: no source to repeat it.
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                return Some((untrusted(
                    &c.to_string(),
                    "connect with a name or IP address the certificate lists, or pass -k for a development server",
                ), None))
            }
            C::InvalidPurpose | C::InvalidPurposeContext { .. } => {
                untrusted("not a server certificate", HINT)
            }
            C::Revoked => untrusted("revoked", "ask the server's operator for a new certificate"),
            other => return Some((untrusted(&other.to_string(), HINT), None)),
        },
        rustls::Error::AlertReceived(
            alert @ (Alert::BadCertificate
            | Alert::UnknownCA
            | Alert::CertificateUnknown
            | Alert::CertificateRequired
            | Alert::CertificateExpired
            | Alert::UnsupportedCertificate
            | Alert::AccessDenied),
        ) => rejected_by_alert(&format!("{alert:?}")),
        _ => return None,
    };
    Some((failure, Some(err.clone())))
}

/// The alerts a server sends when it refuses a client certificate, as
/// rustls names them.
const CERTIFICATE_ALERTS: &[&str] = &[
    "BadCertificate",
    "UnknownCA",
    "CertificateUnknown",
    "CertificateRequired",
    "CertificateExpired",
    "UnsupportedCertificate",
    "AccessDenied",
];

fn rejected_by_alert(alert: &str) -> TlsFailure {
    TlsFailure::ClientCertificateRejected {
        alert: alert.to_lowercase(),
    }
}

/// The certificate alert in an error chain that lost the rustls error's
/// type: h2 keeps only the kind and text of the I/O errors it passes on
/// (`connection error: received fatal alert: UnknownCA`).
fn alert_in_text(text: &str) -> Option<TlsFailure> {
    let (_, rest) = text.split_once("received fatal alert: ")?;
    let alert = rest.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
    CERTIFICATE_ALERTS
        .contains(&alert)
        .then(|| rejected_by_alert(alert))
}

/// The connection was made (TCP and TLS) and then closed before any
/// response: hyper cancels the request (`operation was canceled:
/// connection closed`) or reports an incomplete message.
fn closed_without_answer(e: &hyper_util::client::legacy::Error) -> bool {
    if e.is_connect() {
        return false;
    }
    std::error::Error::source(e).is_some_and(closed_in_chain)
}

/// Whether an error chain (below the HTTP client's own error) says that
/// the connection ended before an answer.
fn closed_in_chain(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_canceled() || h.is_incomplete_message() {
                return true;
            }
        }
        // HTTP/2: the connection reached its end while the request's
        // stream was open, which h2 reports as an I/O error of the
        // stream, "stream closed because of a broken pipe", and hyper
        // passes on as its cause (seen in full runs of
        // cli_operator::a_client_certificate_rejected_under_tls_auth_is_named).
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::BrokenPipe;
        }
        source = s.source();
    }
    false
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

/// A random pause of 200–1000 ms between retry rounds, so that clients do
/// not retry in lockstep.
fn jitter() -> Duration {
    let mut bytes = [0u8; 8];
    kes_core::random::fill(&mut bytes);
    let r = u64::from_le_bytes(bytes);
    Duration::from_millis(200 + r % 801)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose source is another, as the HTTP client's chain is.
    #[derive(Debug)]
    struct Wrapped(Box<dyn std::error::Error + Send + Sync>);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("wrapped")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&*self.0)
        }
    }

    /// How hyper hands on h2's end of a stream whose connection ended
    /// (the server closed it after the handshake): an I/O error, broken
    /// pipe. Other I/O errors and other errors are no close.
    #[test]
    fn a_stream_cut_by_the_connection_end_is_a_close() {
        let io = |kind| {
            Wrapped(Box::new(std::io::Error::new(
                kind,
                "stream closed because of a broken pipe",
            )))
        };
        assert!(closed_in_chain(&io(std::io::ErrorKind::BrokenPipe)));
        assert!(!closed_in_chain(&io(std::io::ErrorKind::TimedOut)));
        assert!(!closed_in_chain(&Wrapped("other".into())));
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let d = jitter();
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(1000));
        }
    }
}
