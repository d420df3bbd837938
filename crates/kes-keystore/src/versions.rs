//! Key versions in a key store: how rotation, retirement and deletion of a
//! rotated key are laid out on top of any [`KeyStore`].
//!
//! Layout (docs/rotation.md tells the operator's side):
//! - The **first entry** is stored under the key's name, exactly as the Go
//!   KES stores a key. A key that was never rotated is only this entry, and
//!   rotation never touches it, so the Go KES keeps reading the key (the
//!   version it was created with).
//! - Version `n ≥ 2` is an entry named `<name>@<lineage>@<n>`, created with
//!   the store's create-only operation. `@` is not allowed in key names, so
//!   these entries can never collide with a key, and listings hide them.
//!   The lineage (16 hex digits, see [`Lineage`]) ties the entries to this
//!   key: after a delete and a new key of the same name, stale entries of
//!   the old key are never taken for versions of the new one.
//! - Retirement (`--keep N`) rewrites the first entry ([`KeyStore::replace`])
//!   to hold the oldest version kept, with a [`RingHeader`] saying which
//!   version that is, then deletes the entries of the retired versions. One
//!   retirement per key at a time: a lock entry `<name>@<lineage>@retiring`.
//!
//! Rotation can never lose a version: the new version's entry is created
//! with create-only semantics, so of two nodes rotating at the same moment
//! one gets "exists", reads the key again and creates the next number: both
//! versions are kept. A reader that walks the entries while a retirement
//! deletes some would see a gap; it reads the first entry again at the end
//! and starts over if it changed (retirement rewrites it before deleting).

use std::sync::Arc;
use std::time::Duration;

use kes_core::ring::{KeyRing, Lineage, RingHeader};
use kes_core::{HmacKey, KeyVersion, SecretKey};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::{Error, KeyStore};

/// At most this many versions are retained; rotation refuses beyond it.
/// Decryption tries versions newest first, so the bound also bounds the
/// cost of decrypting the oldest ciphertext.
pub const MAX_RETAINED: usize = 100;

/// A reader gives up on a key with more entries than this (a store filled
/// by hand or by a bug), instead of walking forever.
const READ_LIMIT: usize = 4 * MAX_RETAINED;

/// How often a read starts over because a retirement changed the key
/// meanwhile, and how often a rotation retries after losing a race.
const ATTEMPTS: usize = 8;

/// A retirement lock older than this was left by a crashed node and may be
/// taken over.
const STALE_LOCK: Duration = Duration::from_secs(600);

const LOCK_SUFFIX: &str = "retiring";

/// The store name of version `version` (≥ 2) of key `name`.
pub fn entry_name(name: &str, lineage: Lineage, version: u32) -> String {
    format!("{name}@{}@{version}", lineage.to_hex())
}

fn lock_name(name: &str, lineage: Lineage) -> String {
    format!("{name}@{}@{LOCK_SUFFIX}", lineage.to_hex())
}

/// What a store name of [`entry_name`]'s form says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryName<'a> {
    /// The key's name.
    pub key: &'a str,
    /// The key's lineage.
    pub lineage: Lineage,
    /// The version number; `None` for a retirement lock.
    pub version: Option<u32>,
}

/// Parses a version entry (or lock) name; `None` for anything else,
/// including plain key names.
pub fn parse_entry_name(stored: &str) -> Option<EntryName<'_>> {
    let mut parts = stored.splitn(3, '@');
    let key = parts.next()?;
    let lineage = Lineage::from_hex(parts.next()?)?;
    let tail = parts.next()?;
    if !kes_core::name::valid_name(key) {
        return None;
    }
    let version = if tail == LOCK_SUFFIX {
        None
    } else {
        // Canonical decimal only, so one version has one name.
        if tail.is_empty() || tail.starts_with('0') || !tail.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = tail.parse().ok()?;
        if n < 2 {
            return None;
        }
        Some(n)
    };
    Some(EntryName {
        key,
        lineage,
        version,
    })
}

/// Whether a store may hold an entry of this name: a key name or a
/// version entry (or lock) name. Backends check names with this.
pub fn valid_stored_name(stored: &str) -> bool {
    kes_core::name::valid_name(stored) || parse_entry_name(stored).is_some()
}

fn malformed(name: &str, e: impl std::fmt::Display) -> Error {
    Error::other(format!("key '{name}' is malformed: {e}"))
}

/// Reads every retained version of `name`.
pub async fn read(store: &dyn KeyStore, name: &str) -> Result<KeyRing, Error> {
    for _ in 0..ATTEMPTS {
        let first = store.get(name).await?;
        let ring = walk(store, name, &first).await?;
        // A retirement rewrites the first entry before it deletes entries:
        // if it is unchanged, the walk saw no deletion.
        let again = match store.get(name).await {
            Ok(again) => again,
            Err(Error::KeyNotFound) => return Err(Error::KeyNotFound),
            Err(e) => return Err(e),
        };
        if *again == *first {
            return Ok(ring);
        }
    }
    Err(Error::other(format!(
        "key '{name}' kept changing while being read"
    )))
}

async fn walk(store: &dyn KeyStore, name: &str, first: &[u8]) -> Result<KeyRing, Error> {
    let header = RingHeader::parse(first).map_err(|e| malformed(name, e))?;
    let lineage = header.map_or_else(|| Lineage::derive(first), |h| h.lineage);
    let first_number = header.map_or(1, |h| h.first);
    let mut versions = vec![Arc::new(
        KeyVersion::decode(first).map_err(|e| malformed(name, e))?,
    )];
    let mut next = first_number + 1;
    loop {
        let entry = entry_name(name, lineage, next);
        match store.get(&entry).await {
            Ok(value) => {
                if versions.len() >= READ_LIMIT {
                    return Err(Error::other(format!(
                        "key '{name}' has more than {READ_LIMIT} versions"
                    )));
                }
                let version = KeyVersion::decode(&value).map_err(|e| malformed(&entry, e))?;
                versions.push(Arc::new(version));
                next += 1;
            }
            Err(Error::KeyNotFound) => break,
            Err(e) => return Err(e),
        }
    }
    KeyRing::new(lineage, first_number, versions).map_err(|e| malformed(name, e))
}

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
    for _ in 0..ATTEMPTS {
        let ring = read(store, name).await?;
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
        match store
            .create(&entry_name(name, ring.lineage(), number), value.as_bytes())
            .await
        {
            Ok(()) => {
                return Ok(Rotated {
                    ring: extend(&ring, next),
                    version: number,
                })
            }
            // Another node created this number at the same moment: both
            // versions are kept, this one becomes the next number.
            Err(Error::KeyExists) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::other(format!(
        "key '{name}': too many concurrent rotations, try again"
    )))
}

fn extend(ring: &KeyRing, next: KeyVersion) -> KeyRing {
    let mut versions: Vec<Arc<KeyVersion>> = ring.versions().to_vec();
    versions.push(Arc::new(next));
    KeyRing::new(ring.lineage(), ring.first_version(), versions)
        .expect("a ring plus one version is a ring")
}

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
pub async fn retire(store: &dyn KeyStore, name: &str, keep: usize) -> Result<Retired, Error> {
    if keep == 0 {
        return Err(Error::other("at least one version must be kept"));
    }
    let ring = read(store, name).await?;
    let lineage = ring.lineage();
    let lock = take_lock(store, name, lineage).await?;
    let result = retire_locked(store, name, keep).await;
    // The retirement's own result is what the caller needs. A lock that
    // could not be removed makes retirements of this key wait until it is
    // stale (STALE_LOCK), then the next one takes it over.
    if let Err(e) = store.delete(&lock).await {
        tracing::warn!(key = name, error = %e, "could not remove the retirement lock");
    }
    result
}

async fn retire_locked(store: &dyn KeyStore, name: &str, keep: usize) -> Result<Retired, Error> {
    // Read again under the lock: a retirement that finished meanwhile
    // changed the first entry.
    // INTERIM (issue 25 B): the first entry as read, for the conditional
    // write below.
    let current = store.get(name).await?;
    let ring = read(store, name).await?;
    let lineage = ring.lineage();
    let retired = ring.retained().saturating_sub(keep);
    let first = ring.first_version() + retired as u32;
    if retired > 0 {
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
        // From here on, the retired versions held by the first entry are
        // gone; readers walking the old entries notice the change.
        store.replace_if(name, &current, value.as_bytes()).await?;
    }
    // Entries at or below the new first version: the retired ones, the
    // one now held by the first entry, and any left by an interrupted run.
    let prefix = format!("{name}@{}@", lineage.to_hex());
    delete_entries(store, name, &prefix, |e| {
        e.lineage == lineage && e.version.is_some_and(|n| n <= first)
    })
    .await?;
    Ok(Retired {
        ring: read(store, name).await?,
        retired,
    })
}

/// Creates the retirement lock of a key; takes over a stale one.
async fn take_lock(store: &dyn KeyStore, name: &str, lineage: Lineage) -> Result<String, Error> {
    let lock = lock_name(name, lineage);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    for _ in 0..2 {
        match store.create(&lock, now.to_string().as_bytes()).await {
            Ok(()) => return Ok(lock),
            Err(Error::KeyExists) => {
                let since = match store.get(&lock).await {
                    Ok(value) => std::str::from_utf8(&value)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .unwrap_or(0),
                    Err(Error::KeyNotFound) => continue,
                    Err(e) => return Err(e),
                };
                if now.saturating_sub(since) < STALE_LOCK.as_secs() as i64 {
                    return Err(Error::other(format!(
                        "key '{name}' is being retired by another request: try again later"
                    )));
                }
                match store.delete(&lock).await {
                    Ok(()) | Err(Error::KeyNotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(Error::other(format!(
        "key '{name}' is being retired by another request: try again later"
    )))
}

/// Deletes `name` and every version entry of its name (of any lineage, so
/// leftovers of an earlier interrupted delete go too). The first entry goes
/// first: from then on the key is gone for list, describe and create.
/// Rerunning an interrupted delete finishes it; it answers
/// [`Error::KeyNotFound`] only if there was nothing left to delete.
pub async fn delete(store: &dyn KeyStore, name: &str) -> Result<(), Error> {
    let first = store.delete(name).await;
    let mut leftovers = 0;
    if matches!(first, Ok(()) | Err(Error::KeyNotFound)) {
        leftovers = delete_entries(store, name, &format!("{name}@"), |_| true).await?;
    }
    match first {
        Err(Error::KeyNotFound) if leftovers > 0 => Ok(()),
        other => other,
    }
}

/// Deletes the version entries (and locks) of key `name` listed under
/// `prefix` that `doomed` accepts; returns how many it deleted. Entries
/// already gone (another node deleting too) are not an error.
async fn delete_entries(
    store: &dyn KeyStore,
    name: &str,
    prefix: &str,
    doomed: impl Fn(&EntryName<'_>) -> bool,
) -> Result<usize, Error> {
    let mut deleted = 0;
    for stored in store.list(prefix).await? {
        if !parse_entry_name(&stored).is_some_and(|e| e.key == name && doomed(&e)) {
            continue;
        }
        match store.delete(&stored).await {
            Ok(()) => deleted += 1,
            Err(Error::KeyNotFound) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Whether a listed store name is a key (not a version entry).
pub fn is_key_name(stored: &str) -> bool {
    !stored.contains('@')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_names() {
        let l = Lineage::derive(b"v");
        let e = entry_name("my-key", l, 12);
        assert_eq!(
            parse_entry_name(&e),
            Some(EntryName {
                key: "my-key",
                lineage: l,
                version: Some(12)
            })
        );
        assert!(valid_stored_name(&e));
        assert!(valid_stored_name("my-key"));
        let lock = lock_name("k", l);
        assert_eq!(parse_entry_name(&lock).unwrap().version, None);
        for bad in [
            "my-key",
            "my-key@",
            &format!("my-key@{}@1", l.to_hex()),
            &format!("my-key@{}@02", l.to_hex()),
            &format!("my-key@{}@", l.to_hex()),
            &format!("my-key@{}@2@3", l.to_hex()),
            &format!("my.key@{}@2", l.to_hex()),
            &format!("../x@{}@2", l.to_hex()),
            "my-key@0123@2",
            &format!("my-key@{}@99999999999", l.to_hex()),
        ] {
            assert_eq!(parse_entry_name(bad), None, "{bad}");
            assert!(
                !valid_stored_name(bad) || kes_core::name::valid_name(bad),
                "{bad}"
            );
        }
        assert!(!is_key_name(&e));
        assert!(is_key_name("my-key"));
    }
}
