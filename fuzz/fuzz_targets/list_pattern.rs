//! Listing patterns (`/v1/key/list/<pattern>?continue=…&limit=…`): pattern
//! validation, the prefix it stands for, the in-memory key store's listing,
//! the sorted filter every store applies and paging, against a plain
//! reference of the listing semantics.
#![no_main]

use kes_fuzz::reference;
use kes_keystore::memory::MemKeyStore;
use kes_keystore::KeyStore as _;
use kes_server::fuzzing::{list_prefix, page, paging};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

#[derive(Debug, Arbitrary)]
struct Case {
    names: Vec<String>,
    pattern: String,
    continue_at: Option<String>,
    limit: Option<u8>,
}

static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

fuzz_target!(|case: Case| {
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
