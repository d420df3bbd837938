//! Turning a config into the parts of a server: its TLS configuration and
//! its log settings.

use crate::config::{LogFormat, ServerConfig, TlsAuth};
use crate::logs::{self, AuditSink, Logs};
use crate::routes::RouteTable;
use crate::tls;
use std::sync::Arc;

pub(crate) fn configure_logs(logs: &Logs, config: &ServerConfig) -> Result<(), String> {
    let sink = match &config.log.audit_file {
        None => AuditSink::Stdout,
        Some(path) => {
            let file = logs::open_audit_file(path)
                .map_err(|e| format!("failed to open audit log '{}': {e}", path.display()))?;
            AuditSink::File(file)
        }
    };
    logs.configure(
        config.log.error.0,
        config.log.audit.0,
        config.log.format == LogFormat::Json,
        sink,
    );
    Ok(())
}

pub(crate) fn build_tls(
    config: &ServerConfig,
    routes: &RouteTable,
) -> Result<Arc<tls::ServerTls>, String> {
    let (certificates, private_key) = tls::load_identity(
        &config.tls.cert,
        &config.tls.key,
        config.tls.password.as_ref().map(|p| p.as_str()),
    )
    .map_err(|e| e.to_string())?;
    tls::server_config(tls::TlsSettings {
        certificates,
        private_key,
        client_auth: match config.tls.auth {
            TlsAuth::Off => tls::ClientAuth::Any,
            TlsAuth::On => tls::ClientAuth::Verify,
        },
        ca: config.tls.ca.as_deref(),
        optional_client_cert: routes.any_skip_auth(),
    })
    .map_err(|e| e.to_string())
}
