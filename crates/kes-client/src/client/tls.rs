//! The server certificates the client trusts: the system roots plus CA
//! files.

use rustls::RootCertStore;
use std::path::PathBuf;

use crate::error::{Cause, Error};

/// System roots plus the given CA files. With CA files, missing system
/// roots are fine; without, the handshake reports an untrusted server. A
/// broken system certificate must not prevent using the others.
pub(super) fn root_store(ca_files: &[PathBuf]) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    for path in ca_files {
        let pem = std::fs::read(path).map_err(|e| Error::File {
            what: "CA certificate",
            path: path.clone(),
            source: Cause::new(e),
        })?;
        for cert in crate::pem::certificates(&pem)? {
            roots.add(cert).map_err(|e| Error::CaCertificate {
                path: path.clone(),
                source: Cause::new(e),
            })?;
        }
    }
    Ok(roots)
}
