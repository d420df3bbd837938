//! The purge of deleted keys (`lifecycle.deletion_window`, docs/lifecycle.md,
//! "Deleting keys"): with a window, every server purges, at start and then
//! every [`purge_interval`], the keys whose window has passed.
//!
//! Any server may purge any key: the key store's purge takes the key with
//! a conditional write before it removes anything, so two servers purging
//! at once, or a restore racing a purge, leave the key either restored or
//! gone, never half of each. A pass that a `kill -9` interrupts is
//! finished by the next pass on any server.
//!
//! A pass runs in a task of its own, so it never holds up requests. A key
//! store failure postpones the pass to the next interval and is logged
//! once per pass; so are the keys whose purge failed.

use crate::http::metrics::Metrics;
use crate::state::{Server, State};
use std::sync::{Arc, Weak};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Passes run at least this often, however long the window.
pub(crate) const MAX_PURGE_INTERVAL: Duration = Duration::from_secs(3600);

/// Passes run at most this often, however short the window. Also how soon
/// a reload's new window is looked at.
pub(crate) const MIN_PURGE_INTERVAL: Duration = Duration::from_secs(1);

/// How often a server purges under a deletion window of `window`: a tenth
/// of it (a key is purged at most 10 % of its window late), between
/// [`MIN_PURGE_INTERVAL`] and [`MAX_PURGE_INTERVAL`].
pub(crate) fn purge_interval(window: Duration) -> Duration {
    (window / 10).clamp(MIN_PURGE_INTERVAL, MAX_PURGE_INTERVAL)
}

/// Starts the purge of `server`: it follows the window of the current
/// state (a reload's new window starts a pass at once), does nothing while
/// the window is zero, and ends when `shutdown` turns true.
pub(crate) fn start(server: Arc<Server>, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(run(server, shutdown))
}

async fn run(server: Arc<Server>, mut shutdown: watch::Receiver<bool>) {
    // The state of the last pass, weakly: holding it would keep a replaced
    // state's key store open after a reload.
    let mut purged: Weak<State> = Weak::new();
    let mut next = tokio::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let state = server.state.load_full();
        if !std::ptr::eq(purged.as_ptr(), Arc::as_ptr(&state)) {
            // Started or reloaded: a pass with this state at once.
            purged = Arc::downgrade(&state);
            next = tokio::time::Instant::now();
        }
        let window = state.lifecycle.deletion_window;
        if !window.is_zero() && tokio::time::Instant::now() >= next {
            tokio::select! {
                () = pass(&server.metrics, &state) => {}
                _ = shutdown.changed() => return,
            }
            next = tokio::time::Instant::now() + purge_interval(window);
        }
        drop(state);
        let wait = next
            .saturating_duration_since(tokio::time::Instant::now())
            .clamp(Duration::from_millis(10), MIN_PURGE_INTERVAL);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// One pass: purges what is due, logs each purged key and what failed.
async fn pass(metrics: &Metrics, state: &State) {
    let cache = &state.cache;
    if cache.is_offline() {
        metrics.key_purge_failed();
        tracing::warn!("purge of deleted keys: key store is offline; the pass is postponed");
        return;
    }
    let purged = match cache.purge_due(OffsetDateTime::now_utc()).await {
        Ok(purged) => purged,
        Err(e) => {
            metrics.key_purge_failed();
            tracing::warn!(error = %e, "purge of deleted keys: the key store failed; the pass is postponed");
            return;
        }
    };
    for name in &purged.purged {
        metrics.key_purged();
        tracing::info!(
            "purge of deleted keys: key '{name}' purged, its deletion window has passed"
        );
    }
    for _ in &purged.failed {
        metrics.key_purge_failed();
    }
    if let Some((name, e)) = purged.failed.first() {
        tracing::warn!(
            error = %e,
            "purge of deleted keys: {} keys failed (first: '{name}'); they are tried again at the next pass",
            purged.failed.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_a_tenth_of_the_window_within_bounds() {
        let secs = Duration::from_secs;
        assert_eq!(purge_interval(secs(2)), secs(1));
        assert_eq!(purge_interval(secs(10)), secs(1));
        assert_eq!(purge_interval(secs(100)), secs(10));
        assert_eq!(purge_interval(secs(3600)), secs(360));
        assert_eq!(purge_interval(secs(7 * 86_400)), secs(3600));
        assert_eq!(purge_interval(Duration::from_millis(500)), secs(1));
    }
}
