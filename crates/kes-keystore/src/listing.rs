//! Key listings in pages, so that a listing holds a bounded number of names
//! however many keys the store has and however slowly the client reads.
//!
//! A store answers [`crate::KeyStore::list_page`]: the names that start with a
//! prefix, sorted, from a start bound on, at most a page of them. The fs and
//! memory stores select that page in one pass over their entries while
//! keeping only about the page ([`select_page`]); stores whose list APIs have
//! no sorted pages (AWS Secrets Manager pages by creation, Vault's LIST
//! answers every name in one body) return everything from the start bound
//! in one page. [`Listing`] walks the pages for the server and hides the
//! entries of key versions.

use crate::cache::KeyCache;
use crate::Error;
use std::ops::Bound;
use std::sync::Arc;

/// How many names a [`Listing`] asks the store for at a time: about 600 KiB
/// of names with typical names (at most 16384 × 255 bytes). The fs store
/// reads its whole directory for each page, so the page is a trade of
/// memory per listing against time per listing: 200,000 keys take 13
/// passes (about 1.2 s here) where pages of 4096 took 49 (4.3 s).
pub const LIST_PAGE: usize = 16384;

/// At most this many further passes after the first: once the store has
/// said how many names follow, pages grow to an eighth of them, so that a
/// listing of millions of fs keys still ends within its response deadline
/// (2,000,000 keys: 9 passes instead of 123) while holding an eighth of
/// the names instead of all of them.
const MAX_PASSES: usize = 8;

/// One page of a sorted listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Sorted, without duplicates.
    pub names: Vec<String>,
    /// Whether names after the last one of this page may follow.
    pub more: bool,
    /// How many names the store found after the start bound, this page's
    /// included, where it counts them (0 where it does not): a
    /// [`Listing`] sizes its further pages by it.
    pub matched: usize,
}

/// Whether `name` lies at or after `start`.
fn after_start(name: &str, start: Bound<&str>) -> bool {
    match start {
        Bound::Included(s) => name >= s,
        Bound::Excluded(s) => name > s,
        Bound::Unbounded => true,
    }
}

/// The page of `names` (in any order) that [`crate::KeyStore::list_page`]
/// answers: those starting with `prefix` and lying after `start`, the
/// `limit` smallest, sorted, without duplicates. Holds at most
/// `2 × (limit + 1)` names at a time whatever `names` yields, and costs
/// O(n log limit) comparisons: candidates are collected, and whenever twice
/// the page has piled up, they are sorted, the smallest distinct ones kept
/// and the largest of those becomes a bound that later names must be
/// under.
pub fn select_page<I>(names: I, prefix: &str, start: Bound<&str>, limit: usize) -> ListPage
where
    I: IntoIterator,
    I::Item: AsRef<str> + Into<String>,
{
    let limit = limit.max(1);
    // One more than the page, to know whether there is more.
    let keep = limit.saturating_add(1);
    let mut kept: Vec<String> = Vec::new();
    let mut bound: Option<String> = None;
    let mut matched = 0;
    for name in names {
        let n = name.as_ref();
        if !n.starts_with(prefix) || !after_start(n, start) {
            continue;
        }
        matched += 1;
        if bound.as_deref().is_some_and(|b| n >= b) {
            continue;
        }
        kept.push(name.into());
        if kept.len() >= keep.saturating_mul(2) {
            // Sorted and without duplicates, the first `keep` are the
            // smallest distinct names so far. Without the dedup a repeated
            // name could fill the kept ones and become the bound, and the
            // page would end early with `more` false: the listing would
            // lose every name after it (the fuzz target `list_pattern`
            // found this; no store repeats a name today).
            kept.sort_unstable();
            kept.dedup();
            if kept.len() > keep {
                kept.truncate(keep);
                // Only names smaller than the largest kept can still
                // belong to the page (an equal one is a duplicate).
                bound = kept.last().cloned();
            }
        }
    }
    kept.sort_unstable();
    kept.dedup();
    let more = kept.len() > limit;
    kept.truncate(limit);
    ListPage {
        names: kept,
        more,
        matched,
    }
}

/// A listing of key names in progress: sorted, the entries of key versions
/// and the keys pending deletion left out, read from the store a page at a
/// time.
///
/// A key pending deletion has a deletion marker `<name>@<lineage>@deleted`
/// (see [`crate::versions::delete_later`]), which sorts after the name,
/// maybe on a later page: for a name at the end of a page whose markers
/// may follow, the store is asked for `<name>@…` directly. A name with a
/// marker is given out only if its first entry, read then, is a live key.
/// Keys never deleted with a window cost nothing more.
pub struct Listing {
    cache: Arc<KeyCache>,
    prefix: String,
    /// Where the next page starts: after the last name the store returned.
    next: Bound<String>,
    more: bool,
    /// The size of the next page asked for.
    page: usize,
    /// Names with a deletion marker, seen but not yet given out or dropped.
    marked: std::collections::BTreeSet<String>,
}

impl Listing {
    /// A listing of the key names that start with `prefix`, from `start`
    /// on.
    pub(crate) fn new(cache: Arc<KeyCache>, prefix: &str, start: Bound<&str>) -> Listing {
        Listing {
            cache,
            prefix: prefix.to_owned(),
            next: start.map(str::to_owned),
            more: true,
            page: LIST_PAGE,
            marked: Default::default(),
        }
    }

    /// Asks the store for pages of `names` names from now on (at least
    /// one); once the store has said how many names follow, pages still
    /// grow to an eighth of them (at most nine passes, see
    /// [`LIST_PAGE`]). The server lists in smaller pages while many
    /// listings are in flight, so that slow readers hold little each.
    pub fn set_page(&mut self, names: usize) {
        self.page = names.max(1);
    }

    /// The next key names, sorted; empty once the listing is complete.
    pub async fn next_names(&mut self) -> Result<Vec<String>, Error> {
        while self.more {
            let page = self
                .cache
                .list_page(
                    &self.prefix,
                    self.next.as_ref().map(String::as_str),
                    self.page,
                )
                .await?;
            self.more = page.more;
            self.page = self.page.max(page.matched.div_ceil(MAX_PASSES));
            let Some(last) = page.names.last().cloned() else {
                self.more = false;
                break;
            };
            self.next = Bound::Excluded(last.clone());
            for stored in &page.names {
                if let Some(e) = crate::versions::parse_entry_name(stored) {
                    if e.kind == crate::versions::EntryKind::DeletionMarker {
                        self.marked.insert(e.key.to_owned());
                    }
                }
            }
            let mut names = page.names;
            names.retain(|n| crate::versions::is_key_name(n));
            // A name whose `<name>@…` range this page has not passed may
            // have its marker on the next page: asked for directly. Only
            // names that `last` starts with qualify, so a few at most.
            if self.more {
                for name in names.iter().filter(|n| !markers_passed(n, &last)) {
                    let entries = self.cache.store().list(&format!("{name}@")).await?;
                    for stored in &entries {
                        if let Some(e) = crate::versions::parse_entry_name(stored) {
                            if e.kind == crate::versions::EntryKind::DeletionMarker && e.key == name
                            {
                                self.marked.insert(e.key.to_owned());
                            }
                        }
                    }
                }
            }
            let names = self.drop_pending(names).await?;
            if !names.is_empty() {
                return Ok(names);
            }
        }
        Ok(Vec::new())
    }

    /// `names` without the keys pending deletion among those with a
    /// marker: one read of the first entry for each of those.
    async fn drop_pending(&mut self, mut names: Vec<String>) -> Result<Vec<String>, Error> {
        if self.marked.is_empty() {
            return Ok(names);
        }
        let mut gone = Vec::new();
        for name in names.iter().filter(|n| self.marked.contains(*n)) {
            match self.cache.store().get(name).await {
                Ok(first) => {
                    if !matches!(
                        crate::versions::classify(name, &first),
                        Ok(crate::versions::First::Live { .. })
                    ) {
                        gone.push(name.clone());
                    }
                }
                Err(Error::KeyNotFound) => gone.push(name.clone()),
                Err(e) => return Err(e),
            }
        }
        for name in &names {
            self.marked.remove(name);
        }
        names.retain(|n| !gone.contains(n));
        Ok(names)
    }

    /// Whether every name has been returned.
    pub fn complete(&self) -> bool {
        !self.more
    }
}

/// Whether a page ending with `last` has passed every name that starts
/// with `name@` (where `name`'s deletion markers sort).
fn markers_passed(name: &str, last: &str) -> bool {
    let mut lower = String::with_capacity(name.len() + 1);
    lower.push_str(name);
    lower.push('@');
    last > lower.as_str() && !last.starts_with(lower.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(names: &[&str], prefix: &str, start: Bound<&str>, limit: usize) -> (Vec<String>, bool) {
        let p = select_page(names.iter().copied(), prefix, start, limit);
        (p.names, p.more)
    }

    fn owned(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn selects_the_smallest_names_after_start() {
        let names = ["my-key", "my-key2", "0-key", "1-key", "my-a"];
        assert_eq!(
            page(&names, "", Bound::Unbounded, 10),
            (
                owned(&["0-key", "1-key", "my-a", "my-key", "my-key2"]),
                false
            )
        );
        assert_eq!(
            page(&names, "", Bound::Unbounded, 2),
            (owned(&["0-key", "1-key"]), true)
        );
        assert_eq!(
            page(&names, "my", Bound::Excluded("my-a"), 1),
            (owned(&["my-key"]), true)
        );
        assert_eq!(
            page(&names, "my", Bound::Included("my-key"), 2),
            (owned(&["my-key", "my-key2"]), false)
        );
        assert_eq!(
            page(&names, "my", Bound::Excluded("my-key2"), 2),
            (Vec::new(), false)
        );
        assert_eq!(page(&[], "", Bound::Unbounded, 3), (Vec::new(), false));
        let counted = select_page(names, "my", Bound::Excluded("my-a"), 1);
        assert_eq!(counted.matched, 2);
        assert_eq!(
            page(&["b", "a", "b"], "", Bound::Unbounded, 5),
            (owned(&["a", "b"]), false)
        );
        // Repeats that fill twice the page must not become the bound and
        // hide the names after them (found by the fuzz target
        // `list_pattern`).
        assert_eq!(
            page(&["", "", "", "x"], "", Bound::Unbounded, 1),
            (owned(&[""]), true)
        );
        assert_eq!(
            page(
                &["a", "a", "a", "a", "a", "c", "b"],
                "",
                Bound::Unbounded,
                2
            ),
            (owned(&["a", "b"]), true)
        );
    }

    #[test]
    fn paging_through_equals_sorting_everything() {
        // A pseudo-random order of many names, paged with small pages.
        let all: Vec<String> = (0..2000u32)
            .map(|i| format!("k{:x}", i.wrapping_mul(2654435761) % 5000))
            .collect();
        let expected = crate::filter_sorted(all.clone(), "k1");
        let mut got = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let start = last.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let p = select_page(all.iter().map(String::as_str), "k1", start, 7);
            assert!(p.names.len() <= 7);
            got.extend(p.names.iter().cloned());
            if !p.more {
                break;
            }
            last = p.names.last().cloned();
        }
        assert_eq!(got, expected);
    }
}
