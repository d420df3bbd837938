//! PEM files of the client certificate, its private key and CA
//! certificates, decoded by `kes_core::pem` (which also reads legacy
//! RFC 1423 encrypted keys).

use crate::error::Error;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in a PEM file; at least one.
pub(crate) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    Ok(kes_core::pem::parse_certificates(pem)?)
}

/// Reports whether a PEM private key needs a password (a legacy RFC 1423
/// block with `Proc-Type: 4,ENCRYPTED`).
pub fn is_encrypted_private_key(pem: &[u8]) -> bool {
    kes_core::pem::decode_blocks(pem)
        .map(|blocks| blocks.iter().any(|b| b.is_encrypted()))
        .unwrap_or(false)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1, possibly
/// encrypted).
pub(crate) fn private_key(
    pem: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, Error> {
    Ok(kes_core::pem::parse_private_key(
        pem,
        password.map(str::as_bytes),
    )?)
}
