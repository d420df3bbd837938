//! The lease that keeps two retirements of one key from doing the same
//! work twice: an entry `<name>@<lineage>@retiring` that holds its owner and
//! expiry, taken over with a compare-and-swap once it expired.

use std::sync::Arc;
use std::time::Duration;

use kes_core::ring::Lineage;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{lock_name, ATTEMPTS};
use crate::{Error, KeyStore};

/// How long a retirement's lease lasts. A retirement is bounded by its
/// route's 15 s timeout, so a lease this old was left by a node that
/// crashed (or lost its store) and may be taken over.
pub const LEASE: Duration = Duration::from_secs(60);

/// Locks written before leases hold a unix timestamp in seconds; they are
/// taken over when this old.
const LEGACY_STALE_LOCK: Duration = Duration::from_secs(600);

/// The value of a lease entry: `lease <owner> <expiry>`, the owner a random
/// 128-bit token in hex, the expiry in unix milliseconds.
const LEASE_TAG: &str = "lease";

fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn lease_value() -> Zeroizing<Vec<u8>> {
    let mut owner = [0u8; 16];
    kes_core::random::fill(&mut owner);
    let expiry = now_ms() + LEASE.as_millis() as i64;
    let owner: String = owner.iter().map(|b| format!("{b:02x}")).collect();
    Zeroizing::new(format!("{LEASE_TAG} {owner} {expiry}").into_bytes())
}

/// When the lease (or legacy lock) `value` expires, in unix milliseconds;
/// a value that is neither has expired.
fn lease_expiry(value: &[u8]) -> i64 {
    let Ok(text) = std::str::from_utf8(value) else {
        return i64::MIN;
    };
    let mut parts = text.split(' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(LEASE_TAG), Some(_owner), Some(expiry), None) => expiry.parse().unwrap_or(i64::MIN),
        (Some(secs), None, None, None) => secs.parse::<i64>().map_or(i64::MIN, |s| {
            s.saturating_mul(1000)
                .saturating_add(LEGACY_STALE_LOCK.as_millis() as i64)
        }),
        _ => i64::MIN,
    }
}

/// A retirement's lease on a key. Released with [`Lease::release`]; if it
/// is dropped unreleased (its future was dropped) and it knows its store as
/// an `Arc`, the release is spawned on the current tokio runtime.
pub(super) struct Lease {
    entry: String,
    value: Zeroizing<Vec<u8>>,
    pub(super) store: Option<Arc<dyn KeyStore>>,
    released: bool,
}

impl Lease {
    pub(super) async fn release(mut self, store: &dyn KeyStore) {
        release(store, &self.entry, &self.value).await;
        self.released = true;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if self.released {
            return;
        }
        let (Some(store), Ok(runtime)) = (self.store.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let entry = std::mem::take(&mut self.entry);
        let value = std::mem::take(&mut self.value);
        runtime.spawn(async move { release(&*store, &entry, &value).await });
    }
}

/// Removes the lease entry only if it still holds this lease: a lease that
/// expired and was taken over belongs to its new holder.
async fn release(store: &dyn KeyStore, entry: &str, value: &[u8]) {
    match store.delete_if(entry, value).await {
        Ok(()) | Err(Error::KeyNotFound) | Err(Error::Changed) => {}
        Err(e) => tracing::warn!(entry, error = %e, "could not release the retirement lease"),
    }
}

fn busy(name: &str) -> Error {
    Error::other(format!(
        "key '{name}' is being retired by another request: try again later"
    ))
}

/// Takes the retirement lease of a key: creates the lease entry, or takes
/// over an expired one with a compare-and-swap, so that of two requests
/// taking over the same expired lease only one wins.
pub(super) async fn take_lease(
    store: &dyn KeyStore,
    name: &str,
    lineage: Lineage,
) -> Result<Lease, Error> {
    let entry = lock_name(name, lineage);
    for _ in 0..ATTEMPTS {
        let value = lease_value();
        match store.create(&entry, &value).await {
            Ok(()) => {}
            Err(Error::KeyExists) => {
                let held = match store.get(&entry).await {
                    Ok(held) => held,
                    // Released meanwhile: try to create it again.
                    Err(Error::KeyNotFound) => continue,
                    Err(e) => return Err(e),
                };
                if lease_expiry(&held) > now_ms() {
                    return Err(busy(name));
                }
                match store.replace_if(&entry, &held, &value).await {
                    Ok(()) => {}
                    // Another request took it over first.
                    Err(Error::Changed) => return Err(busy(name)),
                    Err(Error::KeyNotFound) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        return Ok(Lease {
            entry,
            value,
            store: None,
            released: false,
        });
    }
    Err(busy(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn leases_expire_and_are_taken_over_once() {
        let store = crate::memory::MemKeyStore::new();
        let l = Lineage::derive(b"v");
        let entry = lock_name("k", l);
        let refused = |r: Result<Lease, Error>| {
            r.err()
                .is_some_and(|e| e.to_string().contains("being retired by another request"))
        };

        // Another holder's live lease: refused.
        let held = lease_value();
        store.create(&entry, &held).await.unwrap();
        assert!(refused(take_lease(&store, "k", l).await));

        // An expired lease is taken over; its former holder's release
        // leaves the new holder's lease alone.
        let expired = format!("{LEASE_TAG} {} {}", "ab".repeat(16), now_ms() - 1);
        store
            .replace_if(&entry, &held, expired.as_bytes())
            .await
            .unwrap();
        let lease = take_lease(&store, "k", l).await.unwrap();
        release(&store, &entry, expired.as_bytes()).await;
        assert_eq!(*store.get(&entry).await.unwrap(), *lease.value);
        assert!(refused(take_lease(&store, "k", l).await));
        lease.release(&store).await;
        assert_eq!(store.get(&entry).await.unwrap_err(), Error::KeyNotFound);

        // Locks of the earlier format (unix seconds) count for 600 s.
        let secs = OffsetDateTime::now_utc().unix_timestamp();
        store
            .create(&entry, (secs - 10).to_string().as_bytes())
            .await
            .unwrap();
        assert!(refused(take_lease(&store, "k", l).await));
        store.delete(&entry).await.unwrap();
        store
            .create(&entry, (secs - 601).to_string().as_bytes())
            .await
            .unwrap();
        take_lease(&store, "k", l)
            .await
            .unwrap()
            .release(&store)
            .await;
        // Garbage is a lease that expired long ago.
        store.create(&entry, b"garbage").await.unwrap();
        take_lease(&store, "k", l)
            .await
            .unwrap()
            .release(&store)
            .await;
        assert_eq!(store.get(&entry).await.unwrap_err(), Error::KeyNotFound);
    }
}
