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

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use kes_core::ring::{KeyRing, Lineage};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::{classify, parse_entry_name, read, walk, EntryKind, First, ATTEMPTS};
use crate::{Error, KeyStore};

/// The first line of a pending deletion's first entry.
pub(super) const TOMBSTONE_TAG: &str = "#kes deleted";

/// The first line of a first entry being purged; the lineage follows.
pub(super) const PURGING: &str = "#kes purging";

/// The tail of a deletion marker's name: `<name>@<lineage>@deleted`.
pub(super) const MARKER_SUFFIX: &str = "deleted";

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

/// The header of a pending deletion's first entry; the first entry's
/// former bytes follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tombstone {
    pub deleted_at: OffsetDateTime,
    pub deleted_by: String,
    pub purge_at: OffsetDateTime,
    /// Random: two deletions of one key never write the same bytes, so a
    /// restore's compare-and-swap cannot mistake a later deletion for its
    /// own (no ABA).
    nonce: String,
}

fn unix_ms(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos() / 1_000_000
}

fn from_unix_ms(ms: &str) -> Option<OffsetDateTime> {
    let ms: i128 = ms.parse().ok()?;
    OffsetDateTime::from_unix_timestamp_nanos(ms.checked_mul(1_000_000)?).ok()
}

impl Tombstone {
    fn new(deleted_by: &str, window: Duration) -> Tombstone {
        let mut nonce = [0u8; 16];
        kes_core::random::fill(&mut nonce);
        // Milliseconds, as stored: what a delete answers is what a listing
        // reads back.
        let now = OffsetDateTime::now_utc();
        let now = now
            .replace_nanosecond(now.nanosecond() / 1_000_000 * 1_000_000)
            .unwrap_or(now);
        // Far-off windows saturate instead of overflowing the date range.
        let purge_at = time::Duration::try_from(window)
            .ok()
            .and_then(|w| now.checked_add(w))
            .unwrap_or(time::macros::datetime!(9999-12-31 0:00 UTC));
        Tombstone {
            deleted_at: now,
            // One line of printable text: the field ends at a newline.
            deleted_by: deleted_by
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .take(256)
                .collect(),
            purge_at,
            nonce: nonce.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    /// The stored value: this header, a blank line, then `inner`.
    fn encode(&self, inner: &[u8]) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(inner.len() + 160));
        out.extend_from_slice(
            format!(
                "{TOMBSTONE_TAG}\ndeleted_at: {}\ndeleted_by: {}\npurge_at: {}\nnonce: {}\n\n",
                unix_ms(self.deleted_at),
                self.deleted_by,
                unix_ms(self.purge_at),
                self.nonce
            )
            .as_bytes(),
        );
        out.extend_from_slice(inner);
        out
    }

    /// The header and the former first entry of a stored tombstone; `None`
    /// if `stored` is no tombstone, an error if it is a damaged one.
    pub(super) fn parse(stored: &[u8]) -> Option<Result<(Tombstone, &[u8]), &'static str>> {
        let rest = stored.strip_prefix(TOMBSTONE_TAG.as_bytes())?;
        Some(Self::parse_fields(rest))
    }

    fn parse_fields(rest: &[u8]) -> Result<(Tombstone, &[u8]), &'static str> {
        let mut rest = rest.strip_prefix(b"\n").ok_or("no header")?;
        let mut field = |key: &str| -> Result<String, &'static str> {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .ok_or("truncated header")?;
            let line = std::str::from_utf8(&rest[..end]).map_err(|_| "header is not text")?;
            let value = line
                .strip_prefix(key)
                .and_then(|l| l.strip_prefix(": "))
                .ok_or("unexpected header field")?;
            rest = &rest[end + 1..];
            Ok(value.to_owned())
        };
        let deleted_at = from_unix_ms(&field("deleted_at")?).ok_or("bad deleted_at")?;
        let deleted_by = field("deleted_by")?;
        let purge_at = from_unix_ms(&field("purge_at")?).ok_or("bad purge_at")?;
        let nonce = field("nonce")?;
        let inner = rest.strip_prefix(b"\n").ok_or("no blank line")?;
        Ok((
            Tombstone {
                deleted_at,
                deleted_by,
                purge_at,
                nonce,
            },
            inner,
        ))
    }
}

/// The value of a first entry being purged.
fn purging_value(lineage: Lineage) -> Vec<u8> {
    format!("{PURGING} {}\n", lineage.to_hex()).into_bytes()
}

/// The lineage of a placeholder written by [`purging_value`].
pub(super) fn parse_purging(stored: &[u8]) -> Option<Option<Lineage>> {
    let rest = stored.strip_prefix(PURGING.as_bytes())?;
    let text = std::str::from_utf8(rest).ok();
    Some(text.and_then(|t| Lineage::from_hex(t.strip_prefix(' ')?.strip_suffix('\n')?)))
}

/// The name of the deletion marker of `name`'s lineage `lineage`.
pub fn marker_name(name: &str, lineage: Lineage) -> String {
    format!("{name}@{}@{MARKER_SUFFIX}", lineage.to_hex())
}

/// Deletes `name` with a recovery window: the key answers "does not
/// exist" at once everywhere on the store, but keeps its material until
/// `purge_at = now + window`, restorable with [`restore`] until then.
/// [`Error::KeyNotFound`] if there is no live key of this name (a key
/// already pending deletion counts as none).
///
/// The marker is written first, then the first entry swapped for the
/// tombstone (the linearization point): a crash in between leaves a marker
/// next to a live key, which listings and purges read past.
pub async fn delete_later(
    store: &dyn KeyStore,
    name: &str,
    window: Duration,
    deleted_by: &str,
) -> Result<Pending, Error> {
    for _ in 0..ATTEMPTS {
        let first = store.get(name).await?;
        let lineage = match classify(name, &first)? {
            First::Live { lineage, .. } => lineage,
            First::Pending { .. } | First::Purging { .. } => return Err(Error::KeyNotFound),
        };
        match store.create(&marker_name(name, lineage), b"").await {
            Ok(()) | Err(Error::KeyExists) => {}
            Err(e) => return Err(e),
        }
        let tombstone = Tombstone::new(deleted_by, window);
        let value = tombstone.encode(&first);
        match store.replace_if(name, &first, &value).await {
            Ok(()) => {
                return Ok(Pending {
                    name: name.to_owned(),
                    lineage,
                    deleted_at: tombstone.deleted_at,
                    deleted_by: tombstone.deleted_by,
                    purge_at: tombstone.purge_at,
                })
            }
            // A retirement rewrote the first entry, or another deletion
            // came first: read again.
            Err(Error::Changed) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::other(format!(
        "key '{name}': too many concurrent changes, try again"
    )))
}

/// Brings a key pending deletion back, with all its versions: the
/// tombstone is swapped for the first entry it holds (the linearization
/// point). [`Error::KeyExists`] if the key is live, [`Error::KeyNotFound`]
/// if there is neither a live nor a pending key of this name (or it is
/// being purged). The deletion marker stays (it is removed with its
/// lineage); listings read past it.
pub async fn restore(store: &dyn KeyStore, name: &str) -> Result<KeyRing, Error> {
    for _ in 0..ATTEMPTS {
        let first = store.get(name).await?;
        let inner = match classify(name, &first)? {
            First::Live { .. } => return Err(Error::KeyExists),
            First::Purging { .. } => return Err(Error::KeyNotFound),
            First::Pending { inner, .. } => Zeroizing::new(inner.to_vec()),
        };
        match store.replace_if(name, &first, &inner).await {
            Ok(()) => {}
            // Restored by another server, purged, or deleted anew: read
            // again and answer what the key is now.
            Err(Error::Changed) => continue,
            Err(e) => return Err(e),
        }
        return match read(store, name).await {
            // Deleted again at once by another server: the restore itself
            // took effect; answer the key it brought back.
            Err(Error::KeyNotFound) => walk(store, name, &inner).await,
            other => other,
        };
    }
    Err(Error::other(format!(
        "key '{name}': too many concurrent changes, try again"
    )))
}

/// The deletion markers among `names`: key name → lineages.
fn markers<'a>(names: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, Vec<Lineage>> {
    let mut out: BTreeMap<String, Vec<Lineage>> = BTreeMap::new();
    for stored in names {
        if let Some(e) = parse_entry_name(stored) {
            if e.kind == EntryKind::DeletionMarker {
                out.entry(e.key.to_owned()).or_default().push(e.lineage);
            }
        }
    }
    out
}

/// The keys pending deletion whose names start with `prefix` and lie
/// after `start`, sorted by name, at most `limit`; and whether more may
/// follow. Costs one listing and one read per deletion marker.
pub async fn pending(
    store: &dyn KeyStore,
    prefix: &str,
    start: Bound<&str>,
    limit: usize,
) -> Result<(Vec<Pending>, bool), Error> {
    let listed = store.list(prefix).await?;
    let marked = markers(&listed);
    let mut out = Vec::new();
    for name in marked.keys() {
        let after = match start {
            Bound::Included(s) => name.as_str() >= s,
            Bound::Excluded(s) => name.as_str() > s,
            Bound::Unbounded => true,
        };
        if !after || !name.starts_with(prefix) {
            continue;
        }
        let first = match store.get(name).await {
            Ok(first) => first,
            Err(Error::KeyNotFound) => continue,
            Err(e) => return Err(e),
        };
        if let First::Pending {
            tombstone, lineage, ..
        } = classify(name, &first)?
        {
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(Pending {
                name: name.clone(),
                lineage,
                deleted_at: tombstone.deleted_at,
                deleted_by: tombstone.deleted_by,
                purge_at: tombstone.purge_at,
            });
        }
    }
    Ok((out, false))
}

/// Purges every key whose purge time is at or before `now`, and finishes
/// purges that were interrupted. Errors of single keys are reported in
/// [`Purged::failed`]; an error of the listing fails the pass.
///
/// A purge swaps the tombstone for a placeholder (the linearization point:
/// a restore racing with it finds the placeholder and answers "does not
/// exist"), removes the placeholder, then every entry of the lineage, the
/// marker last: a crash at any step leaves the marker, and the next pass
/// of any server finishes the job.
pub async fn purge_due(store: &dyn KeyStore, now: OffsetDateTime) -> Result<Purged, Error> {
    let listed = store.list("").await?;
    let mut report = Purged::default();
    for (name, lineages) in markers(&listed) {
        for lineage in lineages {
            match purge_one(store, &name, lineage, now).await {
                Ok(true) => report.purged.push(name.clone()),
                Ok(false) => {}
                Err(e) => report.failed.push((name.clone(), e.to_string())),
            }
        }
    }
    Ok(report)
}

/// Purges lineage `lineage` of `name` if it is due or dead; whether a key
/// was purged by this call.
async fn purge_one(
    store: &dyn KeyStore,
    name: &str,
    lineage: Lineage,
    now: OffsetDateTime,
) -> Result<bool, Error> {
    let first = match store.get(name).await {
        Ok(first) => first,
        Err(Error::KeyNotFound) => {
            // Deleted at once, or a purge that removed the placeholder:
            // the lineage is dead, its entries are leftovers.
            remove_lineage(store, name, lineage).await?;
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    match classify(name, &first)? {
        First::Live { lineage: l, .. } if l == lineage => Ok(false),
        First::Pending {
            lineage: l,
            tombstone,
            ..
        } if l == lineage => {
            if tombstone.purge_at > now {
                return Ok(false);
            }
            let placeholder = purging_value(lineage);
            match store.replace_if(name, &first, &placeholder).await {
                Ok(()) => {}
                // Restored (or purged) by another server meanwhile.
                Err(Error::Changed) | Err(Error::KeyNotFound) => return Ok(false),
                Err(e) => return Err(e),
            }
            finish_purge(store, name, lineage, &placeholder).await?;
            Ok(true)
        }
        First::Purging { lineage: l } if l == Some(lineage) => {
            finish_purge(store, name, lineage, &first).await?;
            Ok(true)
        }
        // Another key holds the name now: this lineage is dead.
        _ => {
            remove_lineage(store, name, lineage).await?;
            Ok(false)
        }
    }
}

async fn finish_purge(
    store: &dyn KeyStore,
    name: &str,
    lineage: Lineage,
    placeholder: &[u8],
) -> Result<(), Error> {
    match store.delete_if(name, placeholder).await {
        Ok(()) | Err(Error::KeyNotFound) | Err(Error::Changed) => {}
        Err(e) => return Err(e),
    }
    remove_lineage(store, name, lineage).await
}

/// Removes every entry of a dead lineage of `name`: versions, lease, the
/// deletion marker last.
async fn remove_lineage(store: &dyn KeyStore, name: &str, lineage: Lineage) -> Result<(), Error> {
    let prefix = format!("{name}@{}@", lineage.to_hex());
    let marker = marker_name(name, lineage);
    let listed = store.list(&prefix).await?;
    for stored in listed.iter().filter(|s| **s != marker) {
        if !parse_entry_name(stored).is_some_and(|e| e.key == name && e.lineage == lineage) {
            continue;
        }
        match store.delete(stored).await {
            Ok(()) | Err(Error::KeyNotFound) => {}
            Err(e) => return Err(e),
        }
    }
    match store.delete(&marker).await {
        Ok(()) | Err(Error::KeyNotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tombstones_round_trip_and_damage_is_an_error() {
        let t = Tombstone::new("ab\ncd", Duration::from_secs(60));
        assert_eq!(t.deleted_by, "ab?cd");
        let stored = t.encode(b"inner\nbytes");
        let (parsed, inner) = Tombstone::parse(&stored).unwrap().unwrap();
        assert_eq!(inner, b"inner\nbytes");
        assert_eq!(parsed.deleted_by, t.deleted_by);
        assert_eq!(unix_ms(parsed.purge_at), unix_ms(t.purge_at));
        assert_eq!(parsed.nonce, t.nonce);
        assert!(Tombstone::parse(b"{\"bytes\":\"\"}").is_none());
        for cut in 0..stored.len() - b"inner\nbytes".len() {
            if let Some(r) = Tombstone::parse(&stored[..cut]) {
                assert!(r.is_err(), "cut at {cut}");
            }
        }
        let far = Tombstone::new("x", Duration::MAX);
        assert_eq!(far.purge_at.year(), 9999);
        let l = Lineage::derive(b"k");
        assert_eq!(parse_purging(&purging_value(l)), Some(Some(l)));
        assert_eq!(parse_purging(b"#kes purging zz\n"), Some(None));
        assert_eq!(parse_purging(b"AAAA"), None);
    }
}
