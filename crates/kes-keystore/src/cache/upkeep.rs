//! The cache's upkeep: the online/offline state of its store, the
//! expiry sweeps, and the periodic tasks that run them and the status
//! checks.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use kes_core::sync::{lock, write};

use super::KeyCache;
use crate::Error;

impl KeyCache {
    pub(super) fn set_online(&self) {
        if self.offline.swap(false, Ordering::AcqRel) {
            tracing::info!("key store is reachable again");
        }
    }

    /// Marks the store offline; `reason` is an [`Error::Unreachable`].
    pub(super) fn set_offline(&self, reason: Error) {
        *lock(&self.offline_reason) = reason;
        if !self.offline.swap(true, Ordering::AcqRel) {
            tracing::warn!("key store is unreachable; marked offline");
        }
    }

    /// Whether the online expiries apply: always, unless the store is
    /// offline and offline caching keeps the keys alive.
    pub(super) fn online_expiry(&self) -> bool {
        !self.is_offline() || self.config.expiry_offline.is_zero()
    }

    pub(super) fn drop_all(&self) {
        let dropped = {
            let mut entries = write(&self.entries);
            for (_, flight) in lock(&self.flights).drain() {
                flight.stale.store(true, Ordering::Release);
            }
            std::mem::take(&mut *entries)
        };
        // Zeroizing the dropped keys happens here, outside the lock.
        drop(dropped);
    }

    pub(super) fn expire_all(&self) {
        if self.online_expiry() {
            self.drop_all();
        }
    }

    pub(super) fn expire_unused(&self) {
        if !self.online_expiry() {
            return;
        }
        let mut dropped = Vec::new();
        {
            let mut entries = write(&self.entries);
            entries.retain(|_, entry| {
                if entry.used.swap(false, Ordering::Relaxed) {
                    true
                } else {
                    dropped.push(Arc::clone(&entry.key));
                    false
                }
            });
        }
        drop(dropped);
    }

    pub(super) fn expire_offline(&self) {
        if self.is_offline() && !self.config.expiry_offline.is_zero() {
            self.drop_all();
        }
    }

    pub(super) async fn check_status(&self) {
        // A store that hangs is as good as unreachable; the bound keeps the
        // check from stalling forever and lets the next one run.
        let limit = self.config.status_interval.max(Duration::from_secs(1));
        match tokio::time::timeout(limit, self.store.status()).await {
            Ok(Ok(_)) => self.set_online(),
            Ok(Err(e)) => {
                self.count_error(&e);
                // Any failure of the probe means the store cannot serve.
                let reason = match e {
                    Error::Unreachable { .. } => e,
                    Error::Other { message, source } => Error::Unreachable { message, source },
                    other => Error::unreachable(other.to_string()),
                };
                self.set_offline(reason);
            }
            Err(_) => self.set_offline(Error::unreachable(format!(
                "no status answer within {limit:?}"
            ))),
        }
    }
}

pub(super) type TickFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'a>>;

/// Calls `tick` every `period` (first after one period) while the cache
/// lives. Only a weak reference is held between ticks, so the task never
/// keeps a dropped cache alive.
pub(super) async fn run_every(
    cache: Weak<KeyCache>,
    period: Duration,
    tick: fn(&KeyCache) -> TickFuture<'_>,
) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(cache) = cache.upgrade() else {
            return;
        };
        tick(&cache).await;
    }
}
