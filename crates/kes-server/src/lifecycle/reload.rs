//! Reloading: SIGHUP replaces the config's state, TLS and log settings;
//! certificates are also re-read periodically.

use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::http::routes::Endpoint;
use crate::lifecycle::builder::{configure_logs, from_config, tls_from_config};
use crate::logs::LogKind;
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

/// The longest an old state's key store stays open after a reload while
/// requests still hold the state (a slow listing, a log stream).
const OLD_STATE_GRACE: Duration = Duration::from_secs(30);

/// How often a replaced state is checked for requests still using it.
const OLD_STATE_POLL: Duration = Duration::from_millis(50);

/// SIGHUP: a new config becomes a new state and TLS config. Requests in
/// flight finish with the old state; its key store is closed as soon as
/// the last of them is done, and at the latest after [`OLD_STATE_GRACE`].
/// Closing early matters for stores with threads of their own (fs: 10):
/// closed only after the grace period, a burst of reloads kept every
/// replaced store's threads alive (20 reloads: 173 threads for 30 s).
pub(crate) async fn reload(shared: &Server, path: &std::path::Path) -> Result<(), ServerError> {
    let config = ServerConfig::load(path)?;
    let (mut state, tls) = from_config(&config).await?;
    if let Err(e) = configure_logs(&shared.logs, &config) {
        state.cache.close().await;
        return Err(e);
    }
    // Said again on every reload, not only at start: a reload is when an
    // operator expects a renewed certificate to take effect.
    for warning in crate::config::checks::environment_warnings(&config) {
        tracing::warn!("{warning}");
    }
    // Listings of the old state still hold what they hold.
    state.listings = Arc::clone(&shared.state.load().listings);
    shared.tls.store(tls);
    let state = Arc::new(state);
    let old = shared.state.swap(Arc::clone(&state));
    // A log stream is authorised once, when it opens: end those that the
    // new policies no longer allow. (A subscription authorised under the
    // old state but registered after this pass checks the new state
    // itself, see `handlers/log.rs`.)
    shared.logs.end_streams_unless(|kind, identity| {
        let endpoint = match kind {
            LogKind::Error => Endpoint::LogError,
            LogKind::Audit => Endpoint::LogAudit,
        };
        state.may_follow(endpoint, identity)
    });
    tokio::spawn(async move {
        // Every request holds its own reference to the state it started
        // with (`load_full`); arc-swap turns the short-lived guards of
        // other readers into references when the state is swapped, so
        // the count is exact from here on.
        let deadline = tokio::time::Instant::now() + OLD_STATE_GRACE;
        while Arc::strong_count(&old) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(OLD_STATE_POLL).await;
        }
        old.cache.close().await;
    });
    Ok(())
}
