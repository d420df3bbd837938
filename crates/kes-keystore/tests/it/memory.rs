//! The in-memory key store: the key-store contract, and what only this
//! backend promises.

use std::sync::Arc;

use kes_keystore::memory::MemKeyStore;
use kes_keystore::KeyStore;
use kes_testkit::contract::Expect;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract() {
    let expect = Expect {
        max_value: kes_keystore::fs::MAX_VALUE_SIZE as usize,
        ..Expect::default()
    };
    kes_testkit::contract::run(Arc::new(MemKeyStore::new()), expect).await;
}

#[tokio::test]
async fn status_is_fast() {
    let store = MemKeyStore::new();
    let latency = store.status().await.unwrap();
    assert!(latency < std::time::Duration::from_secs(1), "{latency:?}");
}

#[tokio::test]
async fn debug_shows_no_values() {
    let store = MemKeyStore::new();
    store.create("my-key", b"top-secret-value").await.unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains("top-secret"), "{debug}");
    assert!(debug.contains('1'), "{debug}");
}
