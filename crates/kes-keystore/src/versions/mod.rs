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
//! - Retirement (`--keep N`) rewrites the first entry with a compare-and-swap
//!   ([`KeyStore::replace_if`]) to hold the oldest version kept, with a
//!   [`RingHeader`] saying which version that is, then deletes the entries
//!   of the retired versions. A lease entry `<name>@<lineage>@retiring`
//!   keeps two retirements of one key from doing the same work twice.
//!
//! Each mutation has one linearization point, a single conditional write
//! (docs/rotation.md, "The mutation protocol"): create, the create-only
//! write of the first entry; rotate, the create-only write of the version
//! entry; retire, the compare-and-swap of the first entry against the bytes
//! it read; delete, the removal of the first entry.
//!
//! Rotation can never lose a version: the new version's entry is created
//! with create-only semantics, so of two nodes rotating at the same moment
//! one gets "exists", reads the key again and creates the next number: both
//! versions are kept. A reader that walks the entries while a retirement
//! deletes some would see a gap; it reads the first entry again at the end
//! and starts over if it changed (retirement rewrites it before deleting).

use std::sync::Arc;

use kes_core::ring::{KeyRing, Lineage, RingHeader};
use kes_core::KeyVersion;
use zeroize::Zeroizing;

use crate::{Error, KeyStore};

mod deletion;
mod lease;
mod retire;
mod rotate;

pub use self::deletion::{
    delete_later, mark, marker_name, pending, purge_due, restore, Pending, Purged, GRACE,
};
pub use self::lease::LEASE;
pub use self::retire::{retire, retire_shared, Retired};
pub use self::rotate::{rotate, rotate_if, Rotated};

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
    /// The version number; `None` for a retirement lock or a deletion
    /// marker.
    pub version: Option<u32>,
    /// What the entry is.
    pub kind: EntryKind,
}

/// The kinds of entries besides a key's first entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A version ≥ 2: `<name>@<lineage>@<n>`.
    Version,
    /// A retirement's lease: `<name>@<lineage>@retiring`.
    Lease,
    /// A deletion marker: `<name>@<lineage>@deleted` (see
    /// [`delete_later`]).
    DeletionMarker,
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
    let (version, kind) = if tail == LOCK_SUFFIX {
        (None, EntryKind::Lease)
    } else if tail == deletion::MARKER_SUFFIX {
        (None, EntryKind::DeletionMarker)
    } else {
        // Canonical decimal only, so one version has one name.
        if tail.is_empty() || tail.starts_with('0') || !tail.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u32 = tail.parse().ok()?;
        if n < 2 {
            return None;
        }
        (Some(n), EntryKind::Version)
    };
    Some(EntryName {
        key,
        lineage,
        version,
        kind,
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
    read_with_first(store, name).await.map(|(ring, _)| ring)
}

/// Reads every retained version of `name` and the exact bytes of its first
/// entry, from one consistent read: the first entry held these bytes before
/// and after the walk over the version entries. A retirement uses the bytes
/// as the `current` of its [`KeyStore::replace_if`], so that it overwrites
/// exactly the key it read and nothing another mutation wrote since.
async fn read_with_first(
    store: &dyn KeyStore,
    name: &str,
) -> Result<(KeyRing, Zeroizing<Vec<u8>>), Error> {
    for _ in 0..ATTEMPTS {
        let first = store.get(name).await?;
        if is_gone(&first) {
            return Err(Error::KeyNotFound);
        }
        let ring = walk(store, name, &first).await?;
        // A retirement rewrites the first entry before it deletes entries:
        // an unchanged first entry means no deletion.
        let again = store.get(name).await?;
        if *again == *first {
            return Ok((ring, first));
        }
    }
    Err(Error::other(format!(
        "key '{name}' kept changing while being read"
    )))
}

/// What a key's first entry holds.
pub(crate) enum First<'a> {
    /// A live key: its lineage and the number of the version the entry
    /// holds.
    Live { lineage: Lineage, first: u32 },
    /// A key pending deletion: the tombstone's header, the former first
    /// entry, and that entry's lineage and version number.
    Pending {
        tombstone: deletion::Tombstone,
        inner: &'a [u8],
        lineage: Lineage,
        first: u32,
    },
    /// A key being purged: the purge's placeholder.
    Purging { placeholder: deletion::Placeholder },
}

/// Reads a first entry's kind. A cheap prefix test for the live keys of
/// the hot path: tombstones and placeholders start with `#`, which
/// neither base64 nor JSON does.
pub(crate) fn classify<'a>(name: &str, first: &'a [u8]) -> Result<First<'a>, Error> {
    if first.first() == Some(&b'#') {
        if let Some(parsed) = deletion::Tombstone::parse(first) {
            let (tombstone, inner) = parsed.map_err(|e| malformed(name, e))?;
            // A damaged key deleted with a window stays pending (and
            // purgeable) under the lineage its bytes give.
            let (lineage, number) =
                live_version(name, inner).unwrap_or_else(|_| (Lineage::derive(inner), 1));
            return Ok(First::Pending {
                tombstone,
                inner,
                lineage,
                first: number,
            });
        }
        if let Some(placeholder) = deletion::parse_purging(first) {
            return Ok(First::Purging { placeholder });
        }
    }
    let (lineage, first) = live_version(name, first)?;
    Ok(First::Live { lineage, first })
}

/// What a key's first entry holds, for tools that copy stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstEntry {
    /// A live key of this lineage, holding this version.
    Live(Lineage, u32),
    /// A key pending deletion (see [`delete_later`]): its lineage, and the
    /// version its former first entry holds.
    Pending(Lineage, u32),
    /// A key being purged: nothing to copy.
    Purging,
}

/// Reads what a stored first entry holds; an error if it is damaged.
pub fn first_entry(name: &str, stored: &[u8]) -> Result<FirstEntry, Error> {
    Ok(match classify(name, stored)? {
        First::Live { lineage, first } => FirstEntry::Live(lineage, first),
        First::Pending { lineage, first, .. } => FirstEntry::Pending(lineage, first),
        First::Purging { .. } => FirstEntry::Purging,
    })
}

fn live_version(name: &str, first: &[u8]) -> Result<(Lineage, u32), Error> {
    let header = RingHeader::parse(first).map_err(|e| malformed(name, e))?;
    Ok(header.map_or_else(|| (Lineage::derive(first), 1), |h| (h.lineage, h.first)))
}

/// Whether a first entry is a tombstone or a purge's placeholder: the key
/// does not exist for readers.
fn is_gone(first: &[u8]) -> bool {
    first.first() == Some(&b'#')
        && (first.starts_with(deletion::TOMBSTONE_TAG.as_bytes())
            || first.starts_with(deletion::PURGING.as_bytes()))
}

pub(super) async fn walk(store: &dyn KeyStore, name: &str, first: &[u8]) -> Result<KeyRing, Error> {
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

/// Deletes `name` and the version entries of its name that belong to no
/// live key (so leftovers of an earlier interrupted delete go too). The
/// linearization point is the removal of the first entry: from then on the
/// key is gone for list, describe and create. Entries are removed after it,
/// and only those whose lineage is not that of the key under this name
/// when they were listed: a new key of the same name, created and rotated
/// while this delete cleans up, keeps its versions.
/// Rerunning an interrupted delete finishes it; it answers
/// [`Error::KeyNotFound`] only if there was nothing left to delete.
///
/// A key pending deletion (see [`delete_later`]) does not exist for this
/// delete either: it answers [`Error::KeyNotFound`] and leaves the key to
/// its purge, so that a server without a deletion window cannot cut a
/// recovery window short. The first entry is therefore read first and
/// removed only if it still holds what was read.
pub async fn delete(store: &dyn KeyStore, name: &str) -> Result<(), Error> {
    let first = match remove_first_entry(store, name).await {
        // Pending or being purged: its entries, and the marker that lets a
        // purge finish, are not this delete's (found by the lifecycle
        // checker: the cleanup below once took a purge's marker).
        Ok(false) => return Err(Error::KeyNotFound),
        Ok(true) => Ok(()),
        Err(e) => Err(e),
    };
    let mut leftovers = 0;
    if matches!(first, Ok(()) | Err(Error::KeyNotFound)) {
        leftovers = delete_entries(store, name, &format!("{name}@"), Some(name), |_| true).await?;
    }
    match first {
        Err(Error::KeyNotFound) if leftovers > 0 => Ok(()),
        other => other,
    }
}

/// Removes the first entry of a live key `name`: the linearization point of
/// [`delete`]. `Ok(false)` if the key is pending deletion or being purged
/// (nothing is removed), [`Error::KeyNotFound`] if there is no entry.
async fn remove_first_entry(store: &dyn KeyStore, name: &str) -> Result<bool, Error> {
    for _ in 0..ATTEMPTS {
        let first = store.get(name).await?;
        if is_gone(&first) {
            return Ok(false);
        }
        match store.delete_if(name, &first).await {
            Ok(()) => return Ok(true),
            // A retirement (or a delete and a create) came in between.
            Err(Error::Changed) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::other(format!(
        "key '{name}': too many concurrent changes, try again"
    )))
}

/// Deletes the version entries (and leases) of key `name` listed under
/// `prefix` that `doomed` accepts; returns how many it deleted. With
/// `spare_live` set, the first entry of that name is read after the
/// listing and entries of its lineage are spared: lineages never come back,
/// so an entry of another lineage belongs to a key that was gone by then.
/// Entries already gone (another node deleting too) are not an error.
async fn delete_entries(
    store: &dyn KeyStore,
    name: &str,
    prefix: &str,
    spare_live: Option<&str>,
    doomed: impl Fn(&EntryName<'_>) -> bool,
) -> Result<usize, Error> {
    let listed: Vec<String> = store
        .list(prefix)
        .await?
        .into_iter()
        .filter(|stored| parse_entry_name(stored).is_some_and(|e| e.key == name && doomed(&e)))
        .collect();
    // A key never rotated has no entries: its delete costs no extra read.
    if listed.is_empty() {
        return Ok(0);
    }
    let live = match spare_live {
        None => None,
        Some(key) => match store.get(key).await {
            Ok(first) => match classify(key, &first) {
                // A key pending deletion keeps its versions and marker; a
                // key being purged keeps them for its purge to remove
                // (the marker last, so that a purge that stops is found
                // and finished: found in review).
                Ok(First::Live { lineage, .. } | First::Pending { lineage, .. }) => Some(lineage),
                Ok(First::Purging { placeholder }) => placeholder.lineage,
                // A first entry that does not parse: its lineage is
                // unknown, so nothing is removed.
                Err(_) => return Ok(0),
            },
            Err(Error::KeyNotFound) => None,
            Err(e) => return Err(e),
        },
    };
    let mut deleted = 0;
    for stored in listed {
        if parse_entry_name(&stored).is_some_and(|e| Some(e.lineage) == live) {
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
                version: Some(12),
                kind: EntryKind::Version,
            })
        );
        assert!(valid_stored_name(&e));
        assert!(valid_stored_name("my-key"));
        let lock = lock_name("k", l);
        assert_eq!(parse_entry_name(&lock).unwrap().version, None);
        assert_eq!(parse_entry_name(&lock).unwrap().kind, EntryKind::Lease);
        let marker = marker_name("k", l);
        assert_eq!(
            parse_entry_name(&marker).map(|e| (e.key, e.version, e.kind)),
            Some(("k", None, EntryKind::DeletionMarker))
        );
        assert!(valid_stored_name(&marker));
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
