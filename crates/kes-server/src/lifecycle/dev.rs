//! `kes server --dev`: a self-signed certificate for every address of the
//! host, keys in memory and a fresh admin API key.

use crate::error::ServerError;
use crate::http::tls::{self, ServerTls, TlsError};
use crate::lifecycle::net;
use crate::state::State;
use kes_core::certgen::ServerCertificate;
use kes_core::ApiKey;
use std::net::SocketAddr;
use std::sync::Arc;

/// The TLS configuration of a dev server with certificate `cert`: any
/// client certificate is accepted (identities are their public keys'
/// hashes), none is verified against a CA.
pub fn dev_tls(cert: &ServerCertificate) -> Result<Arc<ServerTls>, TlsError> {
    tls::server_config(tls::TlsSettings {
        certificates: vec![cert.certificate()],
        private_key: cert.private_key(),
        client_auth: tls::ClientAuth::Any,
        ca: None,
        optional_client_cert: false,
    })
}

/// The dev server to bind at `bind`: its state, its TLS configuration
/// (a certificate for every address it can be reached at) and the admin
/// API key, printed by the banner.
pub(crate) fn dev_server(bind: SocketAddr) -> Result<(State, Arc<ServerTls>, ApiKey), ServerError> {
    let admin_key = ApiKey::generate();
    let cert = kes_core::certgen::dev_server_certificate(&net::local_ips(&bind))?;
    let tls = dev_tls(&cert)?;
    Ok((State::dev(admin_key.identity()), tls, admin_key))
}
