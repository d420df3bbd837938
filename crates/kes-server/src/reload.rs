//! Reloading: SIGHUP replaces the config's state, TLS and log settings;
//! certificates are also re-read periodically.

use crate::builder::{configure_logs, from_config, tls_from_config};
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::state::Server;
use std::sync::Arc;
use std::time::Duration;

/// How often certificates are re-read from disk, as the Go KES does: a
/// renewed certificate is picked up without a restart or SIGHUP.
pub const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Re-reads the certificate and key the config names; the rest of the
/// config is left as it is.
pub(crate) fn reload_tls(shared: &Server, path: &std::path::Path) -> Result<(), ServerError> {
    let config = ServerConfig::load(path)?;
    let state = shared.state.load();
    let tls = tls_from_config(&config, &state.routes)?;
    shared.tls.store(tls);
    Ok(())
}

/// SIGHUP: a new config becomes a new state and TLS config. Requests in
/// flight finish with the old state; its key store is closed once they
/// are done (bounded by the longest route timeout).
pub(crate) async fn reload(shared: &Server, path: &std::path::Path) -> Result<(), ServerError> {
    let config = ServerConfig::load(path)?;
    let (state, tls) = from_config(&config).await?;
    if let Err(e) = configure_logs(&shared.logs, &config) {
        state.cache.close().await;
        return Err(e);
    }
    shared.tls.store(tls);
    let old = shared.state.swap(Arc::new(state));
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        old.cache.close().await;
    });
    Ok(())
}
