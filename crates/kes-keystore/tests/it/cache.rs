//! The key cache in front of a real in-memory store.
//!
//! Time is paused (tokio `test-util`): the runtime jumps straight to the
//! next timer when idle, so the expiry schedules are exact and the tests do
//! not depend on how loaded the machine is.

use std::sync::Arc;
use std::time::Duration;

use kes_core::{HmacKey, KeyAlgorithm, KeyVersion, SecretKey};
use kes_keystore::cache::{CacheConfig, KeyCache};
use kes_keystore::{Error, KeyStore};
use kes_testkit::store::SwitchableStore;
use tokio::time::{sleep, sleep_until, Instant};

/// Reads of a key's first entry per fetch: before and after walking its
/// version entries (kes_keystore::versions::read). Probes of version
/// entries are not counted by the test store.
const READS: usize = 2;

const KEYS: [&str; 3] = ["golden-aes", "golden-chacha", "golden-imported-aes"];

/// A store holding the keys the Go KES wrote (testdata/go-kes/keys).
async fn golden_store(get_delay: Duration) -> Arc<SwitchableStore> {
    let store = SwitchableStore::with_get_delay(get_delay);
    let dir = crate::manifest_dir().join("../../testdata/go-kes/keys");
    for name in KEYS {
        let value = std::fs::read(dir.join(name)).unwrap();
        store.inner().create(name, &value).await.unwrap();
    }
    Arc::new(store)
}

fn config(expiry: u64, unused: u64, offline: u64, status: u64) -> CacheConfig {
    CacheConfig {
        expiry: Duration::from_millis(expiry),
        expiry_unused: Duration::from_millis(unused),
        expiry_offline: Duration::from_millis(offline),
        status_interval: Duration::from_millis(status),
    }
}

fn cached(cache: &KeyCache) -> u64 {
    cache.stats().cached_keys
}

#[tokio::test(start_paused = true)]
async fn hit_and_miss() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 0, 0));

    let first = cache.get("golden-aes").await.unwrap();
    assert_eq!(first.key.algorithm(), KeyAlgorithm::Aes256);
    assert_eq!(store.gets(), READS);
    let second = cache.get("golden-aes").await.unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(store.gets(), READS);

    let chacha = cache.get("golden-chacha").await.unwrap();
    assert_eq!(chacha.key.algorithm(), KeyAlgorithm::ChaCha20);
    assert_eq!(cache.get("missing").await.unwrap_err(), Error::KeyNotFound);
    // A missing key is not cached: it may be created any time.
    assert_eq!(cache.get("missing").await.unwrap_err(), Error::KeyNotFound);
    // A missing key costs one read: there is nothing to walk.
    assert_eq!(store.gets(), 2 * READS + 2);

    let stats = cache.stats();
    assert_eq!(stats.hits, 1);
    assert_eq!(stats.misses, 4);
    assert_eq!(stats.store_reads, 4);
    assert_eq!(stats.store_errors, 0);
    assert_eq!(stats.cached_keys, 2);
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_fetch_once() {
    let store = golden_store(Duration::from_millis(100)).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 0, 0));

    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("golden-aes").await })
        })
        .collect();
    let mut keys = Vec::new();
    for task in tasks {
        keys.push(task.await.unwrap().unwrap());
    }
    assert_eq!(store.gets(), READS);
    assert!(keys.iter().all(|k| Arc::ptr_eq(k, &keys[0])));
    assert_eq!(cache.stats().store_reads, 1);
}

#[tokio::test(start_paused = true)]
async fn concurrent_misses_share_an_error() {
    let store = golden_store(Duration::from_millis(100)).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 0, 0));

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("missing").await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap_err(), Error::KeyNotFound);
    }
    // A missing key costs one read: there is nothing to walk.
    assert_eq!(store.gets(), 1);
    // The flight is over: the next miss asks the store again.
    assert_eq!(cache.get("missing").await.unwrap_err(), Error::KeyNotFound);
    assert_eq!(store.gets(), 2);
}

#[tokio::test(start_paused = true)]
async fn malformed_value() {
    let store = golden_store(Duration::ZERO).await;
    store
        .inner()
        .create("bad", b"c2VjcmV0LWJ5dGVzLW5vdC1hLWtleQ==")
        .await
        .unwrap();
    let cache = KeyCache::new(store.clone(), config(0, 0, 0, 0));
    match cache.get("bad").await.unwrap_err() {
        msg @ Error::Other { .. } => {
            assert!(
                msg.to_string().starts_with("key 'bad' is malformed: "),
                "{msg}"
            );
            assert!(!msg.to_string().contains("c2VjcmV0"), "{msg}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(cached(&cache), 0);
}

#[tokio::test(start_paused = true)]
async fn expiry_drops_all() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(1000, 0, 0, 0));
    let start = Instant::now();
    cache.get("golden-aes").await.unwrap();
    cache.get("golden-chacha").await.unwrap();

    sleep_until(start + Duration::from_millis(900)).await;
    assert_eq!(cached(&cache), 2);
    cache.get("golden-aes").await.unwrap();
    assert_eq!(store.gets(), 2 * READS);

    // Used or not, every key goes at the tick.
    sleep_until(start + Duration::from_millis(1100)).await;
    assert_eq!(cached(&cache), 0);
    cache.get("golden-aes").await.unwrap();
    assert_eq!(store.gets(), 3 * READS);

    sleep_until(start + Duration::from_millis(2100)).await;
    assert_eq!(cached(&cache), 0);
}

#[tokio::test(start_paused = true)]
async fn unused_keys_expire_in_two_sweeps() {
    let store = golden_store(Duration::ZERO).await;
    // Sweeps at 0.5 s, 1.0 s, 1.5 s, 2.0 s, ...
    let cache = KeyCache::new(store.clone(), config(0, 1000, 0, 0));
    let start = Instant::now();
    cache.get("golden-aes").await.unwrap();
    cache.get("golden-chacha").await.unwrap();

    // The first sweep only clears the used flags.
    sleep_until(start + Duration::from_millis(600)).await;
    assert_eq!(cached(&cache), 2);

    // golden-aes is used between the sweeps, golden-chacha is not.
    cache.get("golden-aes").await.unwrap();
    sleep_until(start + Duration::from_millis(1100)).await;
    assert_eq!(cached(&cache), 1);
    cache.get("golden-aes").await.unwrap();
    assert_eq!(store.gets(), 2 * READS, "golden-aes must still be cached");

    // Used at 1.1 s: survives the 1.5 s sweep, not the 2.0 s one.
    sleep_until(start + Duration::from_millis(1600)).await;
    assert_eq!(cached(&cache), 1);
    sleep_until(start + Duration::from_millis(2100)).await;
    assert_eq!(cached(&cache), 0);

    cache.get("golden-chacha").await.unwrap();
    assert_eq!(store.gets(), 3 * READS);
}

#[tokio::test(start_paused = true)]
async fn offline_keeps_serving_cached_keys() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(1000, 400, 10_000, 100));
    let start = Instant::now();
    cache.get("golden-aes").await.unwrap();
    assert!(!cache.is_offline());
    assert!(cache.status().await.is_ok());

    store.set_down(true);
    sleep_until(start + Duration::from_millis(150)).await;
    assert!(cache.is_offline());

    // status answers without asking the store.
    let asked = store.statuses();
    match cache.status().await.unwrap_err() {
        msg @ Error::Unreachable { .. } => {
            assert!(msg.to_string().contains("switched off"), "{msg}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(store.statuses(), asked);

    // Cached keys serve well past `expiry` and `expiry_unused`; uncached
    // keys fail with the store's error.
    sleep_until(start + Duration::from_millis(2500)).await;
    assert!(cache.is_offline());
    assert_eq!(cached(&cache), 1);
    let gets = store.gets();
    cache.get("golden-aes").await.unwrap();
    assert_eq!(store.gets(), gets);
    assert!(matches!(
        cache.get("golden-chacha").await.unwrap_err(),
        Error::Unreachable { .. }
    ));
    assert!(cache.stats().store_errors > 0);

    // Back online: the status check notices and the expiries resume.
    store.set_down(false);
    sleep_until(start + Duration::from_millis(2650)).await;
    assert!(!cache.is_offline());
    assert!(cache.status().await.is_ok());
    sleep_until(start + Duration::from_millis(3100)).await;
    assert_eq!(cached(&cache), 0);
}

#[tokio::test(start_paused = true)]
async fn offline_expiry_drops_all() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 1000, 100));
    let start = Instant::now();
    cache.get("golden-aes").await.unwrap();
    store.set_down(true);

    sleep_until(start + Duration::from_millis(900)).await;
    assert!(cache.is_offline());
    assert_eq!(cached(&cache), 1);
    sleep_until(start + Duration::from_millis(1100)).await;
    assert_eq!(cached(&cache), 0);
    assert!(matches!(
        cache.get("golden-aes").await.unwrap_err(),
        Error::Unreachable { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn offline_expiry_ignored_while_online() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 1000, 100));
    let start = Instant::now();
    cache.get("golden-aes").await.unwrap();
    sleep_until(start + Duration::from_millis(3500)).await;
    assert!(!cache.is_offline());
    assert_eq!(cached(&cache), 1);
}

#[tokio::test(start_paused = true)]
async fn without_offline_caching_expiry_continues_offline() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(1000, 0, 0, 100));
    let start = Instant::now();
    cache.get("golden-aes").await.unwrap();
    store.set_down(true);
    sleep_until(start + Duration::from_millis(900)).await;
    assert!(cache.is_offline());
    assert_eq!(cached(&cache), 1);
    sleep_until(start + Duration::from_millis(1100)).await;
    assert_eq!(cached(&cache), 0);
}

#[tokio::test(start_paused = true)]
async fn status_without_status_task() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 0, 0));
    store.set_down(true);
    assert!(matches!(
        cache.status().await.unwrap_err(),
        Error::Unreachable { .. }
    ));
    assert!(cache.is_offline());
    // Nothing else would bring it back, so status keeps probing the store.
    store.set_down(false);
    assert!(cache.status().await.is_ok());
    assert!(!cache.is_offline());
    assert_eq!(store.statuses(), 2);
}

#[tokio::test(start_paused = true)]
async fn delete_evicts() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 0, 0));
    cache.get("golden-aes").await.unwrap();
    cache.get("golden-chacha").await.unwrap();
    assert_eq!(cached(&cache), 2);

    cache.delete("golden-aes").await.unwrap();
    assert_eq!(cached(&cache), 1);
    assert_eq!(
        cache.get("golden-aes").await.unwrap_err(),
        Error::KeyNotFound
    );
    assert_eq!(
        cache.delete("golden-aes").await.unwrap_err(),
        Error::KeyNotFound
    );
    // The other key is untouched. Gets: two keys read, the miss after the
    // delete, and each delete's read of the first entry it removes (only
    // exactly that: a key pending deletion is not removed).
    cache.get("golden-chacha").await.unwrap();
    assert_eq!(store.gets(), 2 * READS + 1 + 2);
}

#[tokio::test(start_paused = true)]
async fn delete_during_a_fetch_is_not_undone() {
    let store = golden_store(Duration::from_millis(100)).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 0, 0));
    let fetch = {
        let cache = cache.clone();
        tokio::spawn(async move { cache.get("golden-aes").await })
    };
    // The fetch has read the value and is waiting for it to arrive.
    sleep(Duration::from_millis(10)).await;
    assert_eq!(store.gets(), 1);
    cache.delete("golden-aes").await.unwrap();
    // The fetch started before the delete, so it may still answer (or
    // find the key gone when it reads the first entry again)...
    let _ = fetch.await.unwrap();
    // ...but it must not bring the deleted key back into the cache.
    assert_eq!(cached(&cache), 0);
    assert_eq!(
        cache.get("golden-aes").await.unwrap_err(),
        Error::KeyNotFound
    );
}

#[tokio::test(start_paused = true)]
async fn create_writes_through_without_caching() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 0, 0));
    let key = KeyVersion {
        key: SecretKey::new(KeyAlgorithm::ChaCha20, [7; 32]),
        hmac_key: Some(HmacKey::new([9; 32])),
        created_at: time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        created_by: "test-identity".into(),
    };
    cache.create("new-key", &key).await.unwrap();
    assert_eq!(cached(&cache), 0);
    assert_eq!(store.gets(), 0);
    let stored = store.inner().get("new-key").await.unwrap();
    assert_eq!(stored.as_slice(), key.encode().unwrap().as_bytes());

    assert_eq!(
        cache.create("new-key", &key).await.unwrap_err(),
        Error::KeyExists
    );
    let read = cache.get("new-key").await.unwrap();
    assert_eq!(read.key.algorithm(), KeyAlgorithm::ChaCha20);
    assert_eq!(read.created_by, "test-identity");
    assert_eq!(read.created_at, key.created_at);
    assert_eq!(store.gets(), READS);
}

#[tokio::test(start_paused = true)]
async fn list_is_sorted_and_filtered() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 0, 0));
    store.inner().create("another", b"x").await.unwrap();
    assert_eq!(
        cache.list("").await.unwrap(),
        [
            "another",
            "golden-aes",
            "golden-chacha",
            "golden-imported-aes"
        ]
    );
    assert_eq!(
        cache.list("golden-").await.unwrap(),
        ["golden-aes", "golden-chacha", "golden-imported-aes"]
    );
    assert!(cache.list("zzz").await.unwrap().is_empty());
    store.set_down(true);
    assert!(matches!(
        cache.list("").await.unwrap_err(),
        Error::Unreachable { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn dropping_or_closing_stops_the_tasks() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(1000, 1000, 1000, 100));
    sleep(Duration::from_millis(250)).await;
    assert!(store.statuses() >= 2);
    drop(cache);
    let asked = store.statuses();
    sleep(Duration::from_secs(5)).await;
    assert_eq!(store.statuses(), asked);

    let cache = KeyCache::new(store.clone(), config(1000, 1000, 1000, 100));
    cache.get("golden-aes").await.unwrap();
    cache.close().await;
    assert_eq!(cached(&cache), 0);
    let asked = store.statuses();
    sleep(Duration::from_secs(5)).await;
    assert_eq!(store.statuses(), asked);
}

/// Cost of a cache hit under concurrent readers; run with `cargo test -p
/// kes-keystore --release --test it cache::hit_throughput -- --ignored
/// --nocapture` (scripts/test skips it).
#[test]
#[ignore = "measurement, not a check of behaviour"]
fn hit_throughput() {
    const TASKS: u64 = 8;
    const GETS: u64 = 200_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = golden_store(Duration::ZERO).await;
        let cache = KeyCache::new(store.clone(), config(300_000, 30_000, 0, 10_000));
        for name in KEYS {
            cache.get(name).await.unwrap();
        }
        let start = std::time::Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let cache = cache.clone();
                tokio::spawn(async move {
                    for i in 0..GETS {
                        let name = KEYS[((t + i) % 3) as usize];
                        cache.get(name).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let elapsed = start.elapsed();
        assert_eq!(cache.stats().hits, TASKS * GETS);
        assert_eq!(store.gets(), 3 * READS);
        println!(
            "{} hits by {TASKS} tasks on {} threads in {elapsed:?}: {:.0} ns/hit, {:.1} M hits/s",
            TASKS * GETS,
            std::thread::available_parallelism().unwrap(),
            elapsed.as_nanos() as f64 / (TASKS * GETS) as f64,
            (TASKS * GETS) as f64 / elapsed.as_secs_f64() / 1e6
        );
    });
}

/// A failed decryption makes the server read the key again through
/// `refresh`: a flood of forged ciphertexts must cost one store read per key
/// and second, not one per request.
#[tokio::test]
async fn refresh_after_a_failed_decryption_is_rate_limited() {
    let store = golden_store(Duration::ZERO).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 0, 0));
    cache.get("golden-aes").await.unwrap();
    assert_eq!(store.gets(), READS);
    assert!(cache.refresh("golden-aes").await.unwrap().is_ok());
    assert_eq!(store.gets(), 2 * READS);
    for _ in 0..100 {
        assert!(cache.refresh("golden-aes").await.is_none());
    }
    assert_eq!(store.gets(), 2 * READS);
    // Another key has its own allowance.
    assert!(cache.refresh("golden-chacha").await.unwrap().is_ok());
}

/// Refreshes after failed decryptions evict only their own key: a flood of
/// bad ciphertexts over many other keys, each refresh overlapping a fetch
/// of the victim key, must not keep the victim out of the cache (each
/// eviction used to stop every overlapping fetch from being cached, which
/// doubled a victim key's store reads).
#[tokio::test(start_paused = true)]
async fn refreshes_of_other_keys_do_not_keep_a_key_out_of_the_cache() {
    const ATTACKED: usize = 20;
    let store = golden_store(Duration::from_millis(100)).await;
    let cache = KeyCache::new(store.clone(), config(0, 0, 0, 0));
    for i in 0..ATTACKED {
        let key = KeyVersion::generate(KeyAlgorithm::Aes256, String::new());
        cache.create(&format!("other-{i}"), &key).await.unwrap();
    }
    for i in 0..ATTACKED {
        let victim = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get("golden-aes").await })
        };
        // The victim's fetch (if it misses) has read its value and waits
        // for it to arrive while another key is refreshed.
        sleep(Duration::from_millis(10)).await;
        let refreshed = cache.refresh(&format!("other-{i}")).await;
        assert!(refreshed.unwrap().is_ok());
        victim.await.unwrap().unwrap();
    }
    // Every refresh read its own key once; the victim was read once.
    assert_eq!(store.gets(), READS * ATTACKED + READS);
    assert_eq!(cache.stats().hits, ATTACKED as u64 - 1);
}
