//! Deletion with a recovery window: a deleted key stays restorable, with
//! all its versions, until its purge time; then any server purges it.
//!
//! Layout (docs/lifecycle.md tells the operator's side):
//! - A key **pending deletion** keeps its first entry, rewritten with a
//!   compare-and-swap into a [`Tombstone`]: a text header (`#kes deleted`,
//!   when, by whom, the purge time, a random nonce) followed by the first
//!   entry's exact former bytes. Readers take a tombstone for "key does not
//!   exist"; `create` of the name still finds the entry and answers "key
//!   already exists"; the version entries stay as they are.
//! - A **deletion marker** `<name>@<lineage>@deleted` (empty value) is
//!   written before the tombstone: listings see it next to the name and
//!   check the first entry, and the purge finds pending keys by it. It is
//!   removed only when its lineage is dead (purged or deleted), last.
//! - A purge swaps the tombstone for a [`PURGING`] placeholder (so that a
//!   restore racing with it loses cleanly), removes the placeholder, then
//!   the lineage's entries, the marker last.
//!
//! Linearization points, one conditional write each: delete, the swap of
//! the first entry into the tombstone; restore, the swap back; purge, the
//! swap of the tombstone into the placeholder.

use std::ops::Bound;
use std::time::Duration;

use kes_core::ring::{KeyRing, Lineage};
use time::OffsetDateTime;

use crate::{Error, KeyStore};

/// The first line of a pending deletion's first entry.
pub const TOMBSTONE_TAG: &str = "#kes deleted";

/// The first line of a first entry being purged.
pub const PURGING: &str = "#kes purging";

/// A key pending deletion, as [`pending`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The key's name.
    pub name: String,
    /// The deleted key's lineage.
    pub lineage: Lineage,
    /// When it was deleted.
    pub deleted_at: OffsetDateTime,
    /// Who deleted it (an identity, or a CLI's description).
    pub deleted_by: String,
    /// When any server may purge it.
    pub purge_at: OffsetDateTime,
}

/// What one purge pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    /// Keys purged by this pass (their material is gone from the store).
    pub purged: Vec<String>,
    /// Keys whose purge failed, with the error; the next pass tries again.
    pub failed: Vec<(String, String)>,
}

/// Deletes `name` with a recovery window: the key answers "does not
/// exist" at once everywhere on the store, but keeps its material until
/// `purge_at = now + window`, restorable with [`restore`] until then.
/// [`Error::KeyNotFound`] if there is no live key of this name (a key
/// already pending deletion counts as none).
pub async fn delete_later(
    store: &dyn KeyStore,
    name: &str,
    window: Duration,
    deleted_by: &str,
) -> Result<Pending, Error> {
    let _ = (store, name, window, deleted_by);
    todo!()
}

/// Brings a key pending deletion back, with all its versions.
/// [`Error::KeyExists`] if the key is live, [`Error::KeyNotFound`] if
/// there is neither a live nor a pending key of this name (or it is being
/// purged).
pub async fn restore(store: &dyn KeyStore, name: &str) -> Result<KeyRing, Error> {
    let _ = (store, name);
    todo!()
}

/// The keys pending deletion whose names start with `prefix` and lie
/// after `start`, sorted by name, at most `limit`; and whether more may
/// follow.
pub async fn pending(
    store: &dyn KeyStore,
    prefix: &str,
    start: Bound<&str>,
    limit: usize,
) -> Result<(Vec<Pending>, bool), Error> {
    let _ = (store, prefix, start, limit);
    todo!()
}

/// Purges every key whose purge time is at or before `now`, and finishes
/// purges and deletes that were interrupted. Errors of single keys are
/// reported in [`Purged::failed`]; an error of the listing fails the pass.
pub async fn purge_due(store: &dyn KeyStore, now: OffsetDateTime) -> Result<Purged, Error> {
    let _ = (store, now);
    todo!()
}
