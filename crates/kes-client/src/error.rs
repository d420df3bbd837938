//! Errors of the KES client: typed API errors decoded from the server's
//! (status, message) pair, plus transport and configuration failures.

use kes_core::ApiError;

/// What went wrong talking to a KES server.
///
/// The well-known API errors get their own variant because callers (MinIO
/// and the `kes` command alike) branch on them; every other API error keeps
/// the server's status and message in [`Error::Api`]. `Display` of an API
/// error is exactly the server's message.
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
    /// No server could be reached (connection refused, TLS handshake
    /// failure, timeout, ...).
    #[error("{0}")]
    Connection(String),
    /// The server answered something that is not a valid KES response.
    #[error("invalid server response: {0}")]
    InvalidResponse(String),
    /// The client could not be built (bad endpoint, certificate, key, CA).
    #[error("{0}")]
    Config(String),
}

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
        assert_eq!(Error::Connection("refused".into()).status(), None);
        assert_eq!(Error::Config("bad".into()).status(), None);
    }
}
