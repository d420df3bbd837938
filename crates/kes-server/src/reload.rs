//! Reloading: SIGHUP replaces the config's state, TLS and log settings;
//! certificates are also re-read periodically.

use crate::builder::{build_tls, configure_logs};
use crate::config::ServerConfig;
use crate::state::build_state;
use crate::state::Shared;
use std::sync::Arc;
use std::time::Duration;

/// How often certificates are re-read from disk (spec §2).
pub const TLS_RELOAD_INTERVAL: Duration = Duration::from_secs(15 * 60);

pub(crate) fn reload_tls(shared: &Shared, path: &std::path::Path) -> Result<(), String> {
    let config = ServerConfig::load(path).map_err(|e| e.to_string())?;
    let state = shared.state.load();
    let tls = build_tls(&config, &state.routes)?;
    shared.tls.store(tls);
    Ok(())
}

/// SIGHUP: a new config becomes a new state and TLS config. Requests in
/// flight finish with the old state; its key store is closed once they
/// are done (bounded by the longest route timeout).
pub(crate) async fn reload(shared: &Shared, path: &std::path::Path) -> Result<(), String> {
    let config = ServerConfig::load(path).map_err(|e| e.to_string())?;
    let state = build_state(&config).await?;
    let tls = match build_tls(&config, &state.routes) {
        Ok(tls) => tls,
        Err(e) => {
            state.cache.close().await;
            return Err(e);
        }
    };
    configure_logs(&shared.logs, &config)?;
    shared.tls.store(tls);
    let old = shared.state.swap(Arc::new(state));
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(30)).await;
        old.cache.close().await;
    });
    Ok(())
}
