//! The API error: an HTTP status and the exact message that KES clients
//! (MinIO, the Go SDK) compare word for word. The server maps every error to
//! HTTP in exactly one place by reading these two fields.

use std::borrow::Cow;
use std::fmt;

/// An error as sent to a KES client: `{"message":"<message>"}` with `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: u16,
    message: Cow<'static, str>,
}

impl ApiError {
    /// 403 `not authorized: insufficient permissions`
    pub const NOT_ALLOWED: ApiError =
        ApiError::from_static(403, "not authorized: insufficient permissions");
    /// 404 `key does not exist`
    pub const KEY_NOT_FOUND: ApiError = ApiError::from_static(404, "key does not exist");
    /// 400 `key already exists`
    pub const KEY_EXISTS: ApiError = ApiError::from_static(400, "key already exists");
    /// 404 `policy does not exist`
    pub const POLICY_NOT_FOUND: ApiError = ApiError::from_static(404, "policy does not exist");
    /// 404 `identity does not exist`
    pub const IDENTITY_NOT_FOUND: ApiError = ApiError::from_static(404, "identity does not exist");
    /// 400 `decryption failed: ciphertext is not authentic`
    pub const DECRYPT: ApiError =
        ApiError::from_static(400, "decryption failed: ciphertext is not authentic");
    /// 400 `tls: received more than one client certificate`
    pub const TOO_MANY_CERTIFICATES: ApiError =
        ApiError::from_static(400, "tls: received more than one client certificate");
    /// 400 `tls: client certificate is required`
    pub const CERTIFICATE_REQUIRED: ApiError =
        ApiError::from_static(400, "tls: client certificate is required");
    /// 400 `invalid request body`
    pub const INVALID_REQUEST_BODY: ApiError = ApiError::from_static(400, "invalid request body");
    /// 400 `invalid import key request body`
    pub const INVALID_IMPORT_BODY: ApiError =
        ApiError::from_static(400, "invalid import key request body");
    /// 400 `too many ciphertexts` (legacy bulk decrypt)
    pub const TOO_MANY_CIPHERTEXTS: ApiError = ApiError::from_static(400, "too many ciphertexts");
    /// 409 `key does not support HMAC`
    pub const HMAC_NOT_SUPPORTED: ApiError =
        ApiError::from_static(409, "key does not support HMAC");
    /// 502 `failed to create key`
    pub const CREATE_FAILED: ApiError = ApiError::from_static(502, "failed to create key");
    /// 502 `failed to read key`
    pub const READ_FAILED: ApiError = ApiError::from_static(502, "failed to read key");
    /// 502 `failed to list keys`
    pub const LIST_FAILED: ApiError = ApiError::from_static(502, "failed to list keys");
    /// 502 `failed to delete key`
    pub const DELETE_FAILED: ApiError = ApiError::from_static(502, "failed to delete key");
    /// 502 `key store is unavailable`
    pub const STORE_UNAVAILABLE: ApiError = ApiError::from_static(502, "key store is unavailable");
    /// 504 `key store is not reachable`
    pub const STORE_UNREACHABLE: ApiError =
        ApiError::from_static(504, "key store is not reachable");

    /// An error with a message known at compile time.
    pub const fn from_static(status: u16, message: &'static str) -> Self {
        Self {
            status,
            message: Cow::Borrowed(message),
        }
    }

    /// An error with a computed message.
    pub fn new(status: u16, message: impl Into<String>) -> Self {
        Self {
            status,
            message: Cow::Owned(message.into()),
        }
    }

    /// 400 `key name '<n>' is empty, too long or contains invalid characters`
    pub fn invalid_key_name(name: &str) -> Self {
        Self::new(
            400,
            format!("key name '{name}' is empty, too long or contains invalid characters"),
        )
    }

    /// 400 `policy name '<n>' is empty, too long or contains invalid characters`
    pub fn invalid_policy_name(name: &str) -> Self {
        Self::new(
            400,
            format!("policy name '{name}' is empty, too long or contains invalid characters"),
        )
    }

    /// 400 `identity '<n>' is empty, too long or contains invalid characters`
    pub fn invalid_identity(name: &str) -> Self {
        Self::new(
            400,
            format!("identity '{name}' is empty, too long or contains invalid characters"),
        )
    }

    /// 400 `listing pattern '<p>' is empty, too long or is invalid`
    pub fn invalid_pattern(pattern: &str) -> Self {
        Self::new(
            400,
            format!("listing pattern '{pattern}' is empty, too long or is invalid"),
        )
    }

    /// 406 `algorithm '<c>' is not supported`
    pub fn unsupported_algorithm(cipher: &str) -> Self {
        Self::new(406, format!("algorithm '{cipher}' is not supported"))
    }

    /// 406 `invalid key size for '<c>'`
    pub fn invalid_key_size(cipher: &str) -> Self {
        Self::new(406, format!("invalid key size for '{cipher}'"))
    }

    /// 405 `received method '<m>' expected '<e>'`
    pub fn method_not_allowed(method: &str, expected: &str) -> Self {
        Self::new(
            405,
            format!("received method '{method}' expected '{expected}'"),
        )
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The message exactly as sent to clients.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

/// What a KES server answers a client it cannot identify: the Go KES's
/// messages, all with 400.
impl From<crate::identity::IdentityError> for ApiError {
    fn from(err: crate::identity::IdentityError) -> Self {
        use crate::identity::IdentityError;
        match err {
            IdentityError::CertificateRequired => ApiError::CERTIFICATE_REQUIRED,
            IdentityError::TooManyCertificates => ApiError::TOO_MANY_CERTIFICATES,
            IdentityError::InvalidCertificate(_) => {
                ApiError::from_static(400, "tls: invalid client certificate")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_messages() {
        assert_eq!(ApiError::KEY_NOT_FOUND.status(), 404);
        assert_eq!(ApiError::KEY_NOT_FOUND.message(), "key does not exist");
        assert_eq!(ApiError::KEY_EXISTS.status(), 400);
        assert_eq!(
            ApiError::invalid_key_name("a.b").message(),
            "key name 'a.b' is empty, too long or contains invalid characters"
        );
        assert_eq!(
            ApiError::method_not_allowed("GET", "PUT").message(),
            "received method 'GET' expected 'PUT'"
        );
        assert_eq!(ApiError::STORE_UNREACHABLE.status(), 504);
    }
}
