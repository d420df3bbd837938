//! Errors of the KES client: typed API errors decoded from the server's
//! (status, message) pair, plus transport and configuration failures.

use kes_core::pem::PemError;
use kes_core::ApiError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// What went wrong talking to a KES server.
///
/// The well-known API errors get their own variant because callers (MinIO
/// and the `kes` command alike) branch on them; every other API error keeps
/// the server's status and message in [`Error::Api`]. `Display` of an API
/// error is exactly the server's message.
///
/// A failure to reach a server says which kind it is ([`Error::Timeout`],
/// [`Error::Refused`], [`Error::Tls`], [`Error::Closed`], [`Error::Io`]),
/// and a failure with a cause returns it from `source()` rather than
/// repeating it in `Display`: print the chain to see all of it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// 403 `not authorized: insufficient permissions` (or the legacy
    /// `prohibited by policy`).
    #[error("not authorized: insufficient permissions")]
    NotAllowed,
    /// 404 `key does not exist`
    #[error("key does not exist")]
    KeyNotFound,
    /// 400 `key already exists` (or the legacy `key does already exist`).
    #[error("key already exists")]
    KeyExists,
    /// 404 `policy does not exist`
    #[error("policy does not exist")]
    PolicyNotFound,
    /// 404 `identity does not exist`
    #[error("identity does not exist")]
    IdentityNotFound,
    /// 400 `decryption failed: ciphertext is not authentic`
    #[error("decryption failed: ciphertext is not authentic")]
    DecryptionFailed,
    /// Any other error response of the server.
    #[error("{0}")]
    Api(ApiError),
    /// The server did not answer within the client's timeout.
    #[error("{endpoint}: request timed out")]
    Timeout {
        /// The endpoint (`host:port`) that did not answer.
        endpoint: String,
    },
    /// The endpoint refused the connection: no server listens there.
    #[error("{endpoint}: connection refused")]
    Refused {
        /// The endpoint (`host:port`).
        endpoint: String,
        /// The connector's error.
        source: Cause,
    },
    /// The TLS handshake failed for a reason that retrying cannot fix.
    #[error("{endpoint}: {failure}")]
    Tls {
        /// The endpoint (`host:port`).
        endpoint: String,
        /// What failed and what to do about it.
        failure: TlsFailure,
        /// rustls's error, when its text is not already the reason.
        source: Option<Cause>,
    },
    /// The server closed the connection after the handshake without an
    /// answer: under TLS 1.3 the server checks the client certificate only
    /// then, so this is how a refused client certificate looks.
    #[error("{endpoint}: connection closed without an answer: {CLIENT_CERT_REJECTED}")]
    Closed {
        /// The endpoint (`host:port`).
        endpoint: String,
        /// The HTTP client's error.
        source: Cause,
    },
    /// Any other failure to talk to an endpoint (name resolution, a reset
    /// connection, ...).
    #[error("{endpoint}: connection failed")]
    Io {
        /// The endpoint (`host:port`).
        endpoint: String,
        /// The HTTP client's error.
        source: Cause,
    },
    /// The connection broke while a response was read.
    #[error("failed to read response")]
    ResponseBroken(#[source] Cause),
    /// A log stream ended with an error of the connection.
    #[error("log stream broken")]
    StreamBroken(#[source] Cause),
    /// The server answered something that is not a valid KES response.
    #[error("invalid server response{}", colon(.reason))]
    InvalidResponse {
        /// What is wrong with it; empty when `source` says it all.
        reason: String,
        /// The decoder's error, if any.
        source: Option<Cause>,
    },
    /// A file the client needs could not be read.
    #[error("failed to read {what} '{}'", .path.display())]
    File {
        /// Which file: `client certificate`, `client private key`, `CA
        /// certificate`.
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// The I/O error.
        source: Cause,
    },
    /// A certificate or private key is not valid PEM, or an encrypted key
    /// has no or the wrong password.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// A CA certificate that rustls does not accept as a root.
    #[error("invalid CA certificate '{}'", .path.display())]
    CaCertificate {
        /// The CA file.
        path: PathBuf,
        /// rustls's reason.
        source: Cause,
    },
    /// The client certificate and private key do not fit together.
    #[error("invalid client certificate or key")]
    ClientCertificate(#[source] Cause),
    /// The certificate for an API key could not be made.
    #[error("failed to create client certificate from API key")]
    ApiKeyCertificate(#[source] Cause),
    /// The TLS configuration could not be built.
    #[error("TLS")]
    TlsConfig(#[source] Cause),
    /// The client could not be built or a request not made: a bad
    /// endpoint, missing or conflicting credentials.
    #[error("{0}")]
    Config(String),
}

/// Why a TLS handshake failed, as far as a user can act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The client does not trust the server's certificate.
    UntrustedServer {
        /// Why: `unknown issuer`, `expired`, ...
        reason: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// The server refused the client certificate with a TLS alert.
    ClientCertificateRejected {
        /// The alert, lower case as rustls names it (`unknownca`).
        alert: String,
    },
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFailure::UntrustedServer { reason, hint } => {
                write!(f, "the server's certificate is not trusted ({reason}): {hint}")
            }
            TlsFailure::ClientCertificateRejected { alert } => write!(
                f,
                "{CLIENT_CERT_REJECTED}; its alert: {alert}; check KES_CLIENT_CERT and KES_CLIENT_KEY, or KES_API_KEY"
            ),
        }
    }
}

/// Why a server closes a connection after the handshake without a word:
/// under TLS 1.3 the client's handshake is over before the server checks
/// its certificate, so a certificate refused under `tls.auth: on` (or by a
/// proxy in front) surfaces as a closed connection, not as an alert.
pub(crate) const CLIENT_CERT_REJECTED: &str =
    "the server rejected the client certificate (with tls.auth on it must chain to the server's tls.ca)";

/// `": <reason>"`, or nothing for an empty reason.
fn colon(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// The cause of an [`Error`]: any error, shared so that [`Error`] stays
/// `Clone`. Two causes are equal when they say the same.
#[derive(Clone)]
pub struct Cause(Arc<dyn std::error::Error + Send + Sync>);

impl Cause {
    /// Wraps an error.
    pub fn new(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(err))
    }

    /// Wraps a boxed error.
    pub fn from_box(err: Box<dyn std::error::Error + Send + Sync>) -> Self {
        Self(Arc::from(err))
    }

    /// The wrapped error, e.g. to downcast it.
    pub fn get(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Transparent: the wrapped error's text and its causes.
impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

impl Error {
    /// Decodes an error response from its status and body as the Go SDK
    /// does: `{"message":..}` or `{"error":..}` for JSON, the raw body
    /// otherwise.
    pub fn from_response(status: u16, content_type: Option<&str>, body: &[u8]) -> Self {
        let is_json = content_type
            .map(|ct| {
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("application/json")
            })
            .unwrap_or(false);
        let mut message = None;
        if is_json {
            #[derive(serde::Deserialize)]
            struct Body {
                message: Option<String>,
                error: Option<String>,
            }
            if let Ok(b) = serde_json::from_slice::<Body>(body) {
                message = b.message.or(b.error);
            }
        }
        let message = match message {
            Some(m) => m,
            None => String::from_utf8_lossy(body).trim_end().to_owned(),
        };
        let message = if message.is_empty() {
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("unknown error")
                .to_owned()
        } else {
            message
        };
        Self::from_status_message(status, message)
    }

    /// The typed error for a status and message, with the SDK's legacy
    /// aliases.
    pub fn from_status_message(status: u16, message: String) -> Self {
        match (status, message.as_str()) {
            (403, "not authorized: insufficient permissions") | (403, "prohibited by policy") => {
                Error::NotAllowed
            }
            (404, "key does not exist") => Error::KeyNotFound,
            (400, "key already exists") | (400, "key does already exist") => Error::KeyExists,
            (404, "policy does not exist") => Error::PolicyNotFound,
            (404, "identity does not exist") => Error::IdentityNotFound,
            (400, "decryption failed: ciphertext is not authentic") => Error::DecryptionFailed,
            _ => Error::Api(ApiError::new(status, message)),
        }
    }

    /// An answer that is not a valid KES response, for `reason`.
    pub(crate) fn invalid_response(reason: impl Into<String>) -> Self {
        Error::InvalidResponse {
            reason: reason.into(),
            source: None,
        }
    }

    /// An answer the decoder rejected; `reason` may be empty.
    pub(crate) fn undecodable(
        reason: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::InvalidResponse {
            reason: reason.into(),
            source: Some(Cause::new(source)),
        }
    }

    /// The HTTP status of an API error; `None` for transport errors.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::NotAllowed => Some(403),
            Error::KeyNotFound | Error::PolicyNotFound | Error::IdentityNotFound => Some(404),
            Error::KeyExists | Error::DecryptionFailed => Some(400),
            Error::Api(e) => Some(e.status()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");

    #[test]
    fn well_known_errors_are_typed() {
        let cases: [(u16, &str, Error); 8] = [
            (
                403,
                "not authorized: insufficient permissions",
                Error::NotAllowed,
            ),
            (403, "prohibited by policy", Error::NotAllowed),
            (404, "key does not exist", Error::KeyNotFound),
            (400, "key already exists", Error::KeyExists),
            (400, "key does already exist", Error::KeyExists),
            (404, "policy does not exist", Error::PolicyNotFound),
            (404, "identity does not exist", Error::IdentityNotFound),
            (
                400,
                "decryption failed: ciphertext is not authentic",
                Error::DecryptionFailed,
            ),
        ];
        for (status, msg, want) in cases {
            let body = serde_json::json!({ "message": msg }).to_string();
            let got = Error::from_response(status, JSON, body.as_bytes());
            assert_eq!(got, want, "{status} {msg}");
            assert_eq!(got.status(), Some(status));
        }
    }

    #[test]
    fn status_must_match_too() {
        // Same message, other status: not the well-known error.
        let e = Error::from_response(500, JSON, br#"{"message":"key does not exist"}"#);
        assert_eq!(e, Error::Api(ApiError::new(500, "key does not exist")));
    }

    #[test]
    fn body_forms() {
        let e = Error::from_response(502, JSON, b"{\"message\":\"failed to list keys\"}\n");
        assert_eq!(e.to_string(), "failed to list keys");
        assert_eq!(e.status(), Some(502));
        let e = Error::from_response(
            400,
            Some("application/json; charset=utf-8"),
            br#"{"error":"key does already exist"}"#,
        );
        assert_eq!(e, Error::KeyExists);
        let e = Error::from_response(404, Some("text/plain"), b"404 page not found\n");
        assert_eq!(e, Error::Api(ApiError::new(404, "404 page not found")));
        // JSON content type but not JSON: raw body.
        let e = Error::from_response(400, JSON, b"oops");
        assert_eq!(e.to_string(), "oops");
        // Empty body: the status text.
        let e = Error::from_response(503, None, b"");
        assert_eq!(e.to_string(), "Service Unavailable");
        assert_eq!(e.status(), Some(503));
    }

    #[test]
    fn transport_errors_have_no_status() {
        let endpoint = "127.0.0.1:7373".to_owned();
        assert_eq!(Error::Timeout { endpoint }.status(), None);
        assert_eq!(Error::Config("bad".into()).status(), None);
    }

    #[test]
    fn a_cause_is_the_source_and_not_in_the_message() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = Error::File {
            what: "CA certificate",
            path: "/ca.pem".into(),
            source: Cause::new(io),
        };
        assert_eq!(err.to_string(), "failed to read CA certificate '/ca.pem'");
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), "no such file");
        // Errors stay comparable: causes by what they say.
        assert_eq!(err.clone(), err);

        let err = Error::undecodable("invalid log event", std::fmt::Error);
        assert_eq!(
            err.to_string(),
            "invalid server response: invalid log event"
        );
        assert!(std::error::Error::source(&err).is_some());
        assert_eq!(
            Error::invalid_response("log line too long").to_string(),
            "invalid server response: log line too long"
        );
    }
}
