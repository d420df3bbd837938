//! Key listings through a real mTLS server read the key store a page at a
//! time while the reply is written, so that a listing (and a client that
//! reads it slowly) holds a page of names, never every name.

use crate::common;

use common::start;
use kes_keystore::listing::LIST_PAGE;
use kes_keystore::KeyStore;
use std::time::Duration;

/// `count` keys named `key-<n>` stored behind the API (listings never
/// decode values), plus an entry of a key version, which is not a key.
async fn fill(s: &common::Running, count: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..count)
        .map(|i| format!("key-{:07}", i * 7 % count))
        .collect();
    for name in &names {
        s.store.inner().create(name, b"value").await.unwrap();
    }
    s.store
        .inner()
        .create("key-0000001@0011223344556677@2", b"version")
        .await
        .unwrap();
    names.sort();
    names
}

fn names_of(body: &serde_json::Value) -> Vec<String> {
    body["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_listing_is_read_from_the_store_in_pages() {
    let s = start(Duration::from_secs(3600)).await;
    let names = fill(&s, 3 * LIST_PAGE + 17).await;
    let c = s.admin_client();

    let resp = c.request("GET", "/v1/key/list/*", None).await;
    assert_eq!(resp.status, 200);
    // Streamed: no Content-Length, and every name exactly once, sorted,
    // without the version entry.
    assert_eq!(resp.header("content-length"), None);
    let body = resp.json();
    assert_eq!(names_of(&body), names);
    assert!(body.get("continue_at").is_none());
    assert_eq!(s.store.lists(), 0, "a whole listing was read at once");
    assert!(s.store.list_pages() >= 4, "{} pages", s.store.list_pages());
    assert!(
        s.store.largest_page() <= LIST_PAGE,
        "{}",
        s.store.largest_page()
    );

    // A client's own pages, across store pages: `limit` names from
    // `continue` on, and the first name after them.
    let from = &names[LIST_PAGE - 3];
    let resp = c
        .request(
            "GET",
            &format!("/v1/key/list/key?continue={from}&limit=5000"),
            None,
        )
        .await;
    assert_eq!(resp.status, 200);
    let body = resp.json();
    let start = LIST_PAGE - 3;
    assert_eq!(names_of(&body), names[start..start + 5000]);
    assert_eq!(body["continue_at"], names[start + 5000].as_str());

    // A small page within the first store page is one document.
    let resp = c.request("GET", "/v1/key/list/key?limit=3", None).await;
    assert_eq!(resp.status, 200);
    assert!(resp.header("content-length").is_some());
    let body = resp.json();
    assert_eq!(names_of(&body), names[..3]);
    assert_eq!(body["continue_at"], names[3].as_str());

    // A prefix that matches one page answers in one piece, like the Go KES.
    let resp = c.request("GET", "/v1/key/list/key-000001", None).await;
    assert_eq!(resp.status, 200);
    assert!(resp.header("content-length").is_some());
    assert_eq!(names_of(&resp.json()), names[10..20]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failing_in_the_middle_of_a_listing_breaks_the_reply() {
    let s = start(Duration::from_secs(3600)).await;
    fill(&s, 2 * LIST_PAGE + 1).await;
    let c = s.admin_client();

    // Failing on the first page: the Go KES's error.
    s.store.fail_list_pages_after(0);
    let resp = c.request("GET", "/v1/key/list/*", None).await;
    assert_eq!(resp.status, 502, "{}", resp.text());
    assert_eq!(resp.message(), "failed to list keys");

    // Failing after the first page, when the reply has started: it ends
    // without its closing brackets, so no client takes it for a listing.
    s.store.fail_list_pages_after(1);
    let resp = c.request("GET", "/v1/key/list/*", None).await;
    assert_eq!(resp.status, 200);
    let text = resp.text();
    assert!(text.starts_with("{\"names\":[\"key-"), "{}", &text[..40]);
    assert!(
        serde_json::from_str::<serde_json::Value>(&text).is_err(),
        "a broken listing parsed: …{}",
        &text[text.len() - 40..]
    );
    assert!(text.len() > 4096 * 10, "{} bytes", text.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_listing_reads_the_store_a_bounded_number_of_times() {
    // Pages grow to an eighth of the names once the store has counted
    // them, so that a store that reads everything for each page (fs) ends
    // a listing of millions of keys within its deadline.
    let s = start(Duration::from_secs(3600)).await;
    let count = 9 * LIST_PAGE + 5;
    let names = fill(&s, count).await;
    let resp = s
        .admin_client()
        .request("GET", "/v1/key/list/*", None)
        .await;
    assert_eq!(resp.status, 200);
    assert_eq!(names_of(&resp.json()), names);
    let pages = s.store.list_pages();
    assert!((2..=9).contains(&pages), "{pages} pages");
    assert!(
        s.store.largest_page() <= (count + 1).div_ceil(8),
        "a page of {}",
        s.store.largest_page()
    );
}

/// `GET /v1/key/deleted/` holds a listing slot of its identity like a key
/// listing: with the admin's slots all taken, both answer 503, and the
/// deleted-keys listing works again once one is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deleted_keys_listing_is_charged_to_its_identity() {
    let (s, held) = common::start_with(Duration::ZERO, |state| {
        let admin = state.admin.to_string();
        (0..)
            .map_while(|_| state.listings.admit(&admin).ok())
            .collect::<Vec<_>>()
    })
    .await;
    assert!(!held.is_empty());
    let c = s.admin_client();
    for path in ["/v1/key/list/*", "/v1/key/deleted/*"] {
        let resp = c.request("GET", path, None).await;
        assert_eq!(resp.status, 503, "{path}: {}", resp.text());
        assert!(resp.text().contains("too many concurrent listings"));
    }
    drop(held);
    let resp = c.request("GET", "/v1/key/deleted/*", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
}
