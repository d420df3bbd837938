//! Rotation: a new version of a key, created with the store's create-only
//! write (the linearization point of a rotation).

use std::sync::Arc;

use kes_core::ring::{KeyRing, Lineage};
use kes_core::{HmacKey, KeyVersion, SecretKey};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{classify, entry_name, read, First, ATTEMPTS, MAX_RETAINED};
use crate::{Error, KeyStore};

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    /// The key after the rotation (its current version is the new one,
    /// unless another node rotated again meanwhile).
    pub ring: KeyRing,
    /// The number of the version this rotation created.
    pub version: u32,
}

/// Adds a new version to `name`: a fresh secret key of the current
/// version's algorithm, the current version's HMAC key (so HMACs stay
/// equal; a key without one, stored in the legacy JSON format, gets a fresh
/// one), created now by `created_by`.
pub async fn rotate(store: &dyn KeyStore, name: &str, created_by: &str) -> Result<Rotated, Error> {
    rotate_with(store, name, None, created_by)
        .await?
        .ok_or_else(|| {
            Error::other(format!(
                "key '{name}': an unconditional rotation was skipped"
            ))
        })
}

/// [`rotate`], but only if the key's current version is still `expected`
/// (its lineage and number, as the caller read them); `Ok(None)` if it is
/// not (another server rotated it meanwhile, or the key was deleted and
/// created anew): nothing is created then. For the rotation schedule:
/// several servers that read version N of a key at the same time create
/// exactly one version N+1 between them, never N+2. The race's arbiter is
/// the create-only write of the entry of version N+1, the rotation's
/// linearization point as for [`rotate`]: a loser is told the entry
/// exists, reads the key again, finds a current version other than N and
/// does nothing.
pub async fn rotate_if(
    store: &dyn KeyStore,
    name: &str,
    expected: (Lineage, u32),
    created_by: &str,
) -> Result<Option<Rotated>, Error> {
    rotate_with(store, name, Some(expected), created_by).await
}

async fn rotate_with(
    store: &dyn KeyStore,
    name: &str,
    expected: Option<(Lineage, u32)>,
    created_by: &str,
) -> Result<Option<Rotated>, Error> {
    for _ in 0..ATTEMPTS {
        let ring = read(store, name).await?;
        if expected.is_some_and(|e| e != (ring.lineage(), ring.current_version())) {
            return Ok(None);
        }
        if ring.retained() >= MAX_RETAINED {
            return Err(Error::other(format!(
                "key '{name}' has {MAX_RETAINED} retained versions: retire old versions before rotating"
            )));
        }
        let current = ring.current();
        let next = KeyVersion {
            key: SecretKey::generate(current.key.algorithm()),
            hmac_key: Some(current.hmac_key.clone().unwrap_or_else(HmacKey::generate)),
            created_at: OffsetDateTime::now_utc(),
            created_by: created_by.to_owned(),
        };
        let value = Zeroizing::new(
            next.encode()
                .map_err(|e| Error::other(format!("key '{name}' cannot be encoded: {e}")))?,
        );
        let number = ring.current_version() + 1;
        let entry = entry_name(name, ring.lineage(), number);
        match store.create(&entry, value.as_bytes()).await {
            Ok(()) => {
                // The create is the rotation's linearization point, but
                // only if the new version is still part of the key: its
                // entry lies above the first entry, or a retirement moved
                // this very version into the first entry since. Otherwise
                // a retirement that ran since this rotation's read moved
                // the first entry past `number` (this version, if it was
                // ever read, is retired now) or to `number` with another
                // rotation's version, deleting that entry, which is how
                // this create could succeed: this entry is never read, it
                // is removed again and the rotation retries. Or the key
                // was deleted (at once) since the read: the entry is
                // removed again and the rotation answers that the key does
                // not exist. Its version may have been readable between
                // the create and the delete, so that answer is not
                // linearizable, but it is the truth when it is given and
                // the key's data is gone with the key anyway; answering OK
                // instead would let a second rotation that read the same
                // version report the same number once this entry is gone
                // (found by the lifecycle checker). A key deleted with a
                // window keeps the version (above).
                match store.get(name).await {
                    Ok(first) => match classify(name, &first) {
                        // Deleted with a window after this rotation's
                        // read: the version stays with the key (a restore
                        // brings it back, and another server may have
                        // sealed with it before the delete); the rotation
                        // took effect before the delete.
                        Ok(First::Pending {
                            lineage,
                            first: first_number,
                            ..
                        }) if lineage == ring.lineage() && first_number < number => {
                            return Ok(Some(Rotated {
                                ring: extend(&ring, next),
                                version: number,
                            }))
                        }
                        Ok(First::Live {
                            lineage,
                            first: first_number,
                        }) if lineage == ring.lineage()
                            && (first_number < number
                                || first_number == number
                                    && KeyVersion::decode(&first)
                                        .is_ok_and(|held| held.key == next.key)) =>
                        {
                            return Ok(Some(Rotated {
                                ring: extend(&ring, next),
                                version: number,
                            }))
                        }
                        Ok(First::Live { lineage, .. }) if lineage == ring.lineage() => {
                            discard(store, &entry, value.as_bytes()).await;
                            continue;
                        }
                        // Another key of the same name, or this one being
                        // purged: it was deleted while it rotated.
                        Ok(_) => {
                            discard(store, &entry, value.as_bytes()).await;
                            return Err(Error::KeyNotFound);
                        }
                        Err(e) => return Err(e),
                    },
                    Err(Error::KeyNotFound) => {
                        discard(store, &entry, value.as_bytes()).await;
                        return Err(Error::KeyNotFound);
                    }
                    Err(e) => return Err(e),
                }
            }
            // Another node created this number at the same moment: both
            // versions are kept, this one becomes the next number (a
            // conditional rotation finds that the key moved on, and
            // stops).
            Err(Error::KeyExists) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::other(format!(
        "key '{name}': too many concurrent rotations, try again"
    )))
}

/// Removes a version entry this rotation created that no reader will ever
/// reach. Only if it still holds this rotation's value; a failure leaves an
/// entry that nothing reads, which the key's delete removes.
async fn discard(store: &dyn KeyStore, entry: &str, value: &[u8]) {
    if let Err(e) = store.delete_if(entry, value).await {
        if !e.is_about_key() && e != Error::Changed {
            tracing::warn!(entry, error = %e, "could not remove an unreachable version entry");
        }
    }
}

fn extend(ring: &KeyRing, next: KeyVersion) -> KeyRing {
    let mut versions: Vec<Arc<KeyVersion>> = ring.versions().to_vec();
    versions.push(Arc::new(next));
    KeyRing::new(ring.lineage(), ring.first_version(), versions)
        .expect("a ring plus one version is a ring")
}
