//! Listing patterns (`/v1/key/list/<pattern>?continue=…&limit=…`): pattern
//! validation, the prefix it stands for, the in-memory key store's listing,
//! the sorted filter every store applies and paging, against a plain
//! reference of the listing semantics; and the page selection of the fs and
//! memory stores (`select_page`, which keeps only about a page of names),
//! one page against the reference's sort-everything page and the first
//! pages of a walk against the whole sorted listing.
#![no_main]

use kes_fuzz::reference;
use kes_keystore::listing::select_page;
use kes_keystore::memory::MemKeyStore;
use kes_keystore::KeyStore as _;
use kes_server::fuzzing::{list_prefix, page, paging};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::ops::Bound;
use std::sync::OnceLock;

#[derive(Debug, Arbitrary)]
struct Case {
    names: Vec<String>,
    pattern: String,
    continue_at: Option<String>,
    limit: Option<u8>,
    /// Whether the store's start bound includes `continue_at`.
    start_included: bool,
}

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// `select_page` against the reference: one page from `continue_at`, then
/// up to 16 pages of a walk from the start against the sorted whole.
fn check_pages(case: &Case) {
    let prefix = case.pattern.strip_suffix('*').unwrap_or(&case.pattern);
    let start = match (&case.continue_at, case.start_included) {
        (None, _) => Bound::Unbounded,
        (Some(c), true) => Bound::Included(c.as_str()),
        (Some(c), false) => Bound::Excluded(c.as_str()),
    };
    let limit = usize::from(case.limit.unwrap_or(0));
    let page = select_page(case.names.iter().map(String::as_str), prefix, start, limit);
    assert_eq!(
        (page.names, page.more, page.matched),
        reference::list_page(&case.names, prefix, start, limit)
    );

    let (everything, _, _) =
        reference::list_page(&case.names, prefix, Bound::Unbounded, usize::MAX);
    let mut walked: Vec<String> = Vec::new();
    let mut last: Option<String> = None;
    let mut complete = false;
    // At most 16 pages: a walk costs a pass over the names per page, and
    // with pages of one name a whole walk would make each input quadratic
    // (the target ran at a tenth of its speed).
    for _ in 0..16 {
        let start = last.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        let page = select_page(case.names.iter().map(String::as_str), prefix, start, limit);
        walked.extend(page.names.iter().cloned());
        if !page.more {
            complete = true;
            break;
        }
        last = page.names.last().cloned();
    }
    if complete {
        assert_eq!(walked, everything);
    } else {
        assert_eq!(walked[..], everything[..walked.len()]);
    }
}

fuzz_target!(|case: Case| {
    check_pages(&case);
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
    });
    assert_eq!(
        kes_core::name::valid_pattern(&case.pattern),
        reference::valid_pattern(&case.pattern),
        "{:?}",
        case.pattern
    );
    let mut query = String::new();
    if let Some(c) = &case.continue_at {
        // Query values arrive percent-decoded only by the reference's
        // client; a raw `&` or `=` would split the parameter.
        if c.contains(['&', '=']) {
            return;
        }
        query.push_str(&format!("continue={c}&"));
    }
    if let Some(l) = case.limit {
        query.push_str(&format!("limit={l}"));
    }
    let expected = reference::list(
        &case.names,
        &case.pattern,
        case.continue_at.as_deref().filter(|c| !c.is_empty()),
        case.limit.map(usize::from).filter(|l| *l > 0),
    );

    let ours = list_prefix(&case.pattern).ok().map(|prefix| {
        let store = MemKeyStore::new();
        runtime.block_on(async {
            for name in &case.names {
                let _ = store.create(name, b"value").await;
            }
            let names = store.list(prefix).await.expect("memory store lists");
            let names = kes_keystore::filter_sorted(names, prefix);
            page(names, &paging(&query))
        })
    });
    assert_eq!(ours, expected);
});
