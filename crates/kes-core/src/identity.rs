//! The identity of a KES client: lowercase hex SHA-256 of the DER
//! SubjectPublicKeyInfo of its certificate.
//!
//! SKELETON: bodies to be filled in (issue 2).

use crate::error::ApiError;
use std::fmt;

/// A client identity. Compared as a plain string (an upper-case admin
/// identity in a config never matches).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Identity(String);

/// Why an identity could not be computed from a certificate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    /// The bytes are not a parsable X.509 certificate.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
}

impl Identity {
    /// Wraps a string as it is (config values, path segments).
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The identity of a DER-encoded SubjectPublicKeyInfo.
    pub fn from_spki_der(spki: &[u8]) -> Self {
        let _ = spki;
        todo!()
    }

    /// The identity of a DER-encoded X.509 certificate.
    pub fn from_certificate_der(cert: &[u8]) -> Result<Self, IdentityError> {
        let _ = cert;
        todo!()
    }

    /// The identity as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reports whether the identity is 64 lowercase hex characters, i.e.
    /// could be the hash of a public key (`disabled` is not).
    pub fn is_hash(&self) -> bool {
        self.0.len() == 64
            && self
                .0
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Selects the leaf among the certificates a client sent (DER, leaf first as
/// in TLS): skips CA certificates; exactly one non-CA certificate must remain.
/// Errors are the exact API errors of spec §3.1.
pub fn identify<C: AsRef<[u8]>>(peer_certificates: &[C]) -> Result<Identity, ApiError> {
    let _ = peer_certificates;
    todo!()
}
