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
use crate::listing::LIST_PAGE;
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

/// How long a purge's placeholder is left to the server that wrote it,
/// and a deletion marker whose key has no first entry to the copy (`kes
/// migrate`) that is writing it: only older ones were left by a process
/// that stopped, and any server's pass finishes them. The stores that
/// compare, then delete (AWS, Vault) would otherwise let two servers
/// remove one placeholder, the second one a new key of the same name
/// created in between (found in review). Assumes the servers' clocks
/// within a minute of each other, as retirement on Vault does.
pub const GRACE: Duration = Duration::from_secs(600);

/// The value of a first entry being purged: the lineage and when.
fn purging_value(lineage: Lineage, now: OffsetDateTime) -> Vec<u8> {
    format!("{PURGING} {} {}\n", lineage.to_hex(), unix_ms(now)).into_bytes()
}

/// A purge's placeholder: its lineage and when it was written (`None`
/// where they do not parse).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Placeholder {
    pub lineage: Option<Lineage>,
    pub written_at: Option<OffsetDateTime>,
}

/// What a placeholder written by [`purging_value`] says; `None` if
/// `stored` is none.
pub(super) fn parse_purging(stored: &[u8]) -> Option<Placeholder> {
    let rest = stored.strip_prefix(PURGING.as_bytes())?;
    let mut fields = std::str::from_utf8(rest)
        .ok()
        .and_then(|t| t.strip_prefix(' ')?.strip_suffix('\n'))
        .unwrap_or_default()
        .split(' ');
    Some(Placeholder {
        lineage: fields.next().and_then(Lineage::from_hex),
        written_at: fields.next().and_then(from_unix_ms),
    })
}

/// The value of a deletion marker: when it was written.
fn marker_value(now: OffsetDateTime) -> Vec<u8> {
    format!("marked {}", unix_ms(now)).into_bytes()
}

fn marker_written_at(value: &[u8]) -> Option<OffsetDateTime> {
    from_unix_ms(std::str::from_utf8(value).ok()?.strip_prefix("marked ")?)
}

/// Whether `then` lies less than [`GRACE`] before `now`.
fn within_grace(then: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    then.is_some_and(|t| now - t < GRACE)
}

/// The name of the deletion marker of `name`'s lineage `lineage`.
pub fn marker_name(name: &str, lineage: Lineage) -> String {
    format!("{name}@{}@{MARKER_SUFFIX}", lineage.to_hex())
}

/// Creates the deletion marker of lineage `lineage` of `name`, stamped
/// now, unless there is one. A copy of a pending key (`kes migrate`)
/// writes it before the key's first entry: a purge pass leaves a marker
/// without a first entry alone for [`GRACE`].
pub async fn mark(store: &dyn KeyStore, name: &str, lineage: Lineage) -> Result<(), Error> {
    let value = marker_value(OffsetDateTime::now_utc());
    match store.create(&marker_name(name, lineage), &value).await {
        Ok(()) | Err(Error::KeyExists) => Ok(()),
        Err(e) => Err(e),
    }
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
        let lineage = match classify(name, &first) {
            Ok(First::Live { lineage, .. }) => lineage,
            Ok(First::Pending { .. } | First::Purging { .. }) => return Err(Error::KeyNotFound),
            // A damaged first entry is kept as it is, like any other:
            // a restore brings the same bytes back.
            Err(_) => Lineage::derive(&first),
        };
        mark(store, name, lineage).await?;
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
        let (inner, lineage) = match classify(name, &first)? {
            First::Live { .. } => return Err(Error::KeyExists),
            First::Purging { .. } => return Err(Error::KeyNotFound),
            First::Pending { inner, lineage, .. } => (Zeroizing::new(inner.to_vec()), lineage),
        };
        match store.replace_if(name, &first, &inner).await {
            Ok(()) => {}
            // Restored by another server, purged, or deleted anew: read
            // again and answer what the key is now.
            Err(Error::Changed) => continue,
            Err(e) => return Err(e),
        }
        return match read(store, name).await {
            Ok(ring) if ring.lineage() == lineage => Ok(ring),
            // Deleted again at once by another server (and maybe created
            // anew): the restore itself took effect; answer the key it
            // brought back, with the versions still there (found by the
            // lifecycle checker: it answered the new key).
            Ok(_) | Err(Error::KeyNotFound) => walk(store, name, &inner).await,
            Err(e) => Err(e),
        };
    }
    Err(Error::other(format!(
        "key '{name}': too many concurrent changes, try again"
    )))
}

/// The deletion markers of the store's names that start with `prefix`
/// and lie after `start`: key name → lineages. Reads the names a page at
/// a time ([`KeyStore::list_page`]), keeping only the markers.
async fn markers(
    store: &dyn KeyStore,
    prefix: &str,
    start: Bound<&str>,
) -> Result<BTreeMap<String, Vec<Lineage>>, Error> {
    let mut out: BTreeMap<String, Vec<Lineage>> = BTreeMap::new();
    let mut next: Bound<String> = start.map(str::to_owned);
    loop {
        let page = store
            .list_page(prefix, next.as_ref().map(String::as_str), LIST_PAGE)
            .await?;
        for stored in &page.names {
            if let Some(e) = parse_entry_name(stored) {
                if e.kind == EntryKind::DeletionMarker {
                    out.entry(e.key.to_owned()).or_default().push(e.lineage);
                }
            }
        }
        match page.names.last() {
            Some(last) if page.more => next = Bound::Excluded(last.clone()),
            _ => return Ok(out),
        }
    }
}

/// The keys pending deletion whose names start with `prefix` and lie
/// after `start`, sorted by name, at most `limit`; and whether more may
/// follow. Costs a listing of the names after `start` (a page at a time)
/// and one read per deletion marker; a damaged first entry is left out.
pub async fn pending(
    store: &dyn KeyStore,
    prefix: &str,
    start: Bound<&str>,
    limit: usize,
) -> Result<(Vec<Pending>, bool), Error> {
    let marked = markers(store, prefix, start).await?;
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
        if let Ok(First::Pending {
            tombstone, lineage, ..
        }) = classify(name, &first)
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
///
/// `now` is the time of the pass: keys due by then are purged, and
/// placeholders and markers older than [`GRACE`] by then are taken for
/// those of a process that stopped.
pub async fn purge_due(store: &dyn KeyStore, now: OffsetDateTime) -> Result<Purged, Error> {
    let mut report = Purged::default();
    for (name, lineages) in markers(store, "", Bound::Unbounded).await? {
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
            // the lineage is dead, its entries are leftovers. Unless the
            // marker is young: a copy (`kes migrate`) writes the marker
            // and the versions before the first entry.
            let marker = match store.get(&marker_name(name, lineage)).await {
                Ok(value) => marker_written_at(&value),
                Err(Error::KeyNotFound) => None,
                Err(e) => return Err(e),
            };
            if !within_grace(marker, now) {
                remove_lineage(store, name, lineage).await?;
            }
            return Ok(false);
        }
        Err(e) => return Err(e),
    };
    let Ok(first_kind) = classify(name, &first) else {
        return Err(Error::other(format!(
            "key '{name}' is malformed: it is left as it is"
        )));
    };
    match first_kind {
        First::Live { lineage: l, .. } if l == lineage => Ok(false),
        First::Pending {
            lineage: l,
            tombstone,
            ..
        } if l == lineage => {
            if tombstone.purge_at > now {
                return Ok(false);
            }
            let placeholder = purging_value(lineage, now);
            match store.replace_if(name, &first, &placeholder).await {
                Ok(()) => {}
                // Restored (or purged) by another server meanwhile.
                Err(Error::Changed) | Err(Error::KeyNotFound) => return Ok(false),
                Err(e) => return Err(e),
            }
            finish_purge(store, name, lineage, &placeholder).await?;
            Ok(true)
        }
        First::Purging { placeholder } if placeholder.lineage == Some(lineage) => {
            // Another server's purge, which removes its placeholder
            // itself; one older than GRACE was left by a purge that
            // stopped, and is finished here.
            if within_grace(placeholder.written_at, now) {
                return Ok(false);
            }
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
        let at = t.deleted_at;
        assert_eq!(
            parse_purging(&purging_value(l, at)),
            Some(Placeholder {
                lineage: Some(l),
                written_at: Some(at)
            })
        );
        assert_eq!(
            parse_purging(b"#kes purging zz\n"),
            Some(Placeholder {
                lineage: None,
                written_at: None
            })
        );
        assert_eq!(parse_purging(b"AAAA"), None);
        assert_eq!(marker_written_at(&marker_value(at)), Some(at));
        assert!(within_grace(Some(at), at + time::Duration::minutes(9)));
        assert!(!within_grace(Some(at), at + time::Duration::minutes(10)));
        assert!(!within_grace(None, at));
    }
}
