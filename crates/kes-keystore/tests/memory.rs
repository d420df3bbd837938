//! The in-memory key store against the key-store contract (spec §9.1).

use kes_keystore::memory::MemKeyStore;
use kes_keystore::{Error, KeyStore};

#[tokio::test]
async fn create_get_delete() {
    let store = MemKeyStore::new();
    store.create("my-key", b"value-1").await.unwrap();
    assert_eq!(store.get("my-key").await.unwrap().as_slice(), b"value-1");

    store.delete("my-key").await.unwrap();
    assert_eq!(store.get("my-key").await.unwrap_err(), Error::KeyNotFound);
    assert_eq!(
        store.delete("my-key").await.unwrap_err(),
        Error::KeyNotFound
    );

    // A deleted name can be created again.
    store.create("my-key", b"value-2").await.unwrap();
    assert_eq!(store.get("my-key").await.unwrap().as_slice(), b"value-2");
}

#[tokio::test]
async fn create_never_overwrites() {
    let store = MemKeyStore::new();
    store.create("my-key", b"first").await.unwrap();
    assert_eq!(
        store.create("my-key", b"second").await.unwrap_err(),
        Error::KeyExists
    );
    assert_eq!(store.get("my-key").await.unwrap().as_slice(), b"first");
}

#[tokio::test]
async fn missing_key() {
    let store = MemKeyStore::new();
    assert_eq!(store.get("nope").await.unwrap_err(), Error::KeyNotFound);
    assert_eq!(store.delete("nope").await.unwrap_err(), Error::KeyNotFound);
}

#[tokio::test]
async fn list_by_prefix() {
    let store = MemKeyStore::new();
    assert!(store.list("").await.unwrap().is_empty());
    for name in ["my-key", "my-key2", "0-key", "1-key"] {
        store.create(name, name.as_bytes()).await.unwrap();
    }
    let mut all = store.list("").await.unwrap();
    all.sort();
    assert_eq!(all, ["0-key", "1-key", "my-key", "my-key2"]);
    let mut mine = store.list("my").await.unwrap();
    mine.sort();
    assert_eq!(mine, ["my-key", "my-key2"]);
    assert!(store.list("x").await.unwrap().is_empty());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_one_wins() {
    let store = std::sync::Arc::new(MemKeyStore::new());
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create("race", &[i]).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(()) => winners.push(i as u8),
            Err(e) => assert_eq!(e, Error::KeyExists),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(store.get("race").await.unwrap().as_slice(), &winners[..]);
}
