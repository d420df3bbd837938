//! The identity of a KES client: lowercase hex SHA-256 of the DER
//! SubjectPublicKeyInfo of its certificate, as the Go KES computes it.

use sha2::{Digest, Sha256};
use std::fmt;

/// A client identity. Compared as a plain string (an upper-case admin
/// identity in a config never matches).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Identity(String);

/// Why an identity could not be computed from a certificate or from the
/// certificates a TLS client sent. The HTTP answer to each is
/// `From<IdentityError> for ApiError` in [`crate::error`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// The bytes are not a parsable X.509 certificate.
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// The client sent no certificate, or a CA certificate first.
    #[error("client certificate is required")]
    CertificateRequired,
    /// The client sent a second non-CA certificate behind its own.
    #[error("received more than one client certificate")]
    TooManyCertificates,
}

impl Identity {
    /// Wraps a string as it is (config values, path segments).
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The identity of a DER-encoded SubjectPublicKeyInfo.
    pub fn from_spki_der(spki: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(spki)))
    }

    /// The identity of a DER-encoded X.509 certificate.
    #[cfg(feature = "x509")]
    pub fn from_certificate_der(cert: &[u8]) -> Result<Self, IdentityError> {
        let cert = parse_certificate(cert)?;
        Ok(Self::from_spki_der(cert.tbs_certificate.subject_pki.raw))
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

/// Parses a whole DER certificate. Trailing bytes are rejected, as Go's
/// `x509.ParseCertificate` does, so that two different byte strings never
/// pass for the same certificate.
#[cfg(feature = "x509")]
fn parse_certificate(
    der: &[u8],
) -> Result<x509_parser::certificate::X509Certificate<'_>, IdentityError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok((rest, _)) if !rest.is_empty() => Err(IdentityError::InvalidCertificate(
            "trailing data after certificate".into(),
        )),
        Ok((_, cert)) => Ok(cert),
        Err(err) => Err(IdentityError::InvalidCertificate(err.to_string())),
    }
}

/// The identity of a TLS client from the certificates it sent (DER, in the
/// order of the handshake). This is the one function that decides who a
/// caller is, for full handshakes and resumed sessions alike.
///
/// Only the FIRST certificate counts: it is the one whose private key signed
/// the handshake, so it is the only one the client proved it holds. Any
/// other certificate in the chain is public material that anybody can send
/// (an administrator's certificate sits in config files and travels in clear
/// in TLS 1.2 handshakes), so taking the identity from it would let anyone
/// become anyone. Hence:
/// - a CA certificate first is [`IdentityError::CertificateRequired`]
///   (as the Go KES answers honest clients that present a CA certificate);
/// - a further non-CA certificate behind the first is
///   [`IdentityError::TooManyCertificates`] (the Go KES's error for that
///   chain);
/// - CA certificates behind the first (intermediates) are fine.
///
/// A certificate that cannot be parsed at all is
/// [`IdentityError::InvalidCertificate`]: the Go server never gets that far
/// because its TLS stack already rejects such a handshake.
#[cfg(feature = "x509")]
pub fn identify<C: AsRef<[u8]>>(peer_certificates: &[C]) -> Result<Identity, IdentityError> {
    let Some((first, rest)) = peer_certificates.split_first() else {
        return Err(IdentityError::CertificateRequired);
    };
    let leaf = parse_certificate(first.as_ref())?;
    if leaf.is_ca() {
        return Err(IdentityError::CertificateRequired);
    }
    for der in rest {
        if !parse_certificate(der.as_ref())?.is_ca() {
            return Err(IdentityError::TooManyCertificates);
        }
    }
    Ok(Identity::from_spki_der(
        leaf.tbs_certificate.subject_pki.raw,
    ))
}
