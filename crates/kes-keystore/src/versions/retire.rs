//! Retirement: the oldest versions of a key deleted for good, behind a
//! compare-and-swap of the first entry (the linearization point) and a
//! lease that keeps two retirements from doing the same work.

use std::sync::Arc;

use kes_core::ring::{KeyRing, Lineage, RingHeader};
use zeroize::Zeroizing;

use super::lease::take_lease;
use super::{delete_entries, read, read_with_first, ATTEMPTS};
use crate::{Error, KeyStore};

/// What a retirement did.
#[derive(Debug)]
pub struct Retired {
    /// The key after the retirement.
    pub ring: KeyRing,
    /// How many versions were retired (0 if no more than `keep` existed).
    pub retired: usize,
}

/// Keeps the newest `keep` (≥ 1) versions of `name` and deletes the older
/// ones from the store, so that what they sealed can never be decrypted
/// again. Rerunning it after an interruption finishes the job.
///
/// The linearization point is the [`KeyStore::replace_if`] of the first
/// entry against the exact bytes this retirement read: it can never bring
/// back a deleted key or overwrite a new key of the same name (then it
/// answers [`Error::KeyNotFound`]); another retirement that came first makes
/// it read again and retry. The lease `<name>@<lineage>@retiring` only keeps
/// two retirements of one key from doing the same work twice; correctness
/// does not depend on it (docs/rotation.md, "The mutation protocol").
///
/// If this future is dropped before it ends, its lease stays until it
/// expires ([`LEASE`](super::LEASE)); [`retire_shared`] releases it at once.
pub async fn retire(store: &dyn KeyStore, name: &str, keep: usize) -> Result<Retired, Error> {
    retire_with(store, None, name, keep).await
}

/// [`retire`], releasing the lease even when the future is dropped before
/// it ends (the client went away, the route's timeout): the release is then
/// spawned on the tokio runtime. What the server uses.
pub async fn retire_shared(
    store: &Arc<dyn KeyStore>,
    name: &str,
    keep: usize,
) -> Result<Retired, Error> {
    retire_with(&**store, Some(store), name, keep).await
}

async fn retire_with(
    store: &dyn KeyStore,
    shared: Option<&Arc<dyn KeyStore>>,
    name: &str,
    keep: usize,
) -> Result<Retired, Error> {
    if keep == 0 {
        return Err(Error::other("at least one version must be kept"));
    }
    let ring = read(store, name).await?;
    let lineage = ring.lineage();
    let mut lease = take_lease(store, name, lineage).await?;
    lease.store = shared.cloned();
    let result = retire_leased(store, name, lineage, keep).await;
    // The retirement's own result is what the caller needs. A lease that
    // could not be released keeps retirements of this key waiting until
    // it expires; then the next one takes it over.
    lease.release(store).await;
    result
}

async fn retire_leased(
    store: &dyn KeyStore,
    name: &str,
    lineage: Lineage,
    keep: usize,
) -> Result<Retired, Error> {
    for _ in 0..ATTEMPTS {
        // The ring and the exact first entry, read together: the swap below
        // succeeds only if the first entry still holds these bytes.
        let (ring, current) = read_with_first(store, name).await?;
        if ring.lineage() != lineage {
            // The key was deleted while this retirement waited, and a new
            // key of the same name created: between the two, the key did
            // not exist.
            return Err(Error::KeyNotFound);
        }
        let retired = ring.retained().saturating_sub(keep);
        let first = ring.first_version() + retired as u32;
        let kept_ring = if retired > 0 {
            let (_, kept) = ring
                .newest_first()
                .find(|(n, _)| *n == first)
                .expect("first is a retained version");
            let header = RingHeader { first, lineage };
            let value = Zeroizing::new(
                header
                    .encode(kept)
                    .map_err(|e| Error::other(format!("key '{name}' cannot be encoded: {e}")))?,
            );
            // From here on, the retired versions held by the first entry
            // are gone; readers walking the old entries notice the change.
            match store.replace_if(name, &current, value.as_bytes()).await {
                Ok(()) => {}
                // Another retirement (one that took over an expired lease)
                // came first: read again, maybe nothing is left to do.
                Err(Error::Changed) => continue,
                Err(e) => return Err(e),
            }
            let versions = ring.versions()[retired..].to_vec();
            KeyRing::new(lineage, first, versions).expect("keep ≥ 1 versions are kept")
        } else {
            ring
        };
        // Entries of this lineage at or below the new first version: the
        // retired ones, the one now held by the first entry, and any left
        // by an interrupted run. The first entry never moves down, so none
        // of them is ever read again.
        let prefix = format!("{name}@{}@", lineage.to_hex());
        delete_entries(store, name, &prefix, None, |e| {
            e.lineage == lineage && e.version.is_some_and(|n| n <= first)
        })
        .await?;
        // The key as it is now (rotations may have added versions); if it
        // was deleted meanwhile, what this retirement left.
        let ring = match read(store, name).await {
            Ok(now) if now.lineage() == lineage => now,
            Ok(_) | Err(Error::KeyNotFound) => kept_ring,
            Err(e) => return Err(e),
        };
        return Ok(Retired { ring, retired });
    }
    Err(Error::other(format!(
        "key '{name}': too many concurrent retirements, try again"
    )))
}
