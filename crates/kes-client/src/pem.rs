//! PEM files of the client certificate, its private key and CA
//! certificates.

use crate::error::Error;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in a PEM file; at least one.
pub(crate) fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Config("no PEM certificate found".into()));
    }
    Ok(certs)
}

/// Reports whether a PEM private key needs a password: a legacy RFC 1423
/// block (`Proc-Type: 4,ENCRYPTED`) or a PKCS#8 `ENCRYPTED PRIVATE KEY`.
pub fn is_encrypted_private_key(pem: &[u8]) -> bool {
    let text = String::from_utf8_lossy(pem);
    text.contains("Proc-Type: 4,ENCRYPTED") || text.contains("-----BEGIN ENCRYPTED PRIVATE KEY")
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn private_key(
    pem: &[u8],
    password: Option<&str>,
) -> Result<PrivateKeyDer<'static>, Error> {
    if is_encrypted_private_key(pem) {
        let Some(password) = password else {
            return Err(Error::Config(
                "private key is encrypted: password required".into(),
            ));
        };
        return decrypt_private_key(pem, password);
    }
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| Error::Config(format!("invalid PEM private key: {e}")))
}

fn decrypt_private_key(pem: &[u8], password: &str) -> Result<PrivateKeyDer<'static>, Error> {
    let _ = (pem, password);
    Err(Error::Config(
        "encrypted private keys are not supported yet".into(),
    ))
}
