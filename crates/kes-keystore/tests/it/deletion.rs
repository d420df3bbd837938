//! Deletion with a recovery window (`versions::delete_later`, `restore`,
//! `pending`, `purge_due`): the lifecycle on every store (run from the
//! backends' tests in rotation.rs, which start moto and OpenBao once), a
//! crash at every store call of every step, and listings that hide
//! pending keys across page boundaries.

use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kes_core::ring::KeyRing;
use kes_core::{KeyAlgorithm, KeyVersion};
use kes_keystore::cache::{CacheConfig, KeyCache};
use kes_keystore::listing::ListPage;
use kes_keystore::memory::MemKeyStore;
use kes_keystore::versions::{self, parse_entry_name};
use kes_keystore::{Error, KeyStore};
use time::OffsetDateTime;
use zeroize::Zeroizing;

type Store = Arc<dyn KeyStore>;

const HOUR: Duration = Duration::from_secs(3600);

async fn create_key(store: &dyn KeyStore, name: &str) {
    let value = KeyVersion::generate(KeyAlgorithm::Aes256, "tester")
        .encode()
        .unwrap();
    store.create(name, value.as_bytes()).await.unwrap();
}

/// Every stored name that belongs to key `name`: its first entry and its
/// `@` entries.
async fn stored_of(store: &dyn KeyStore, name: &str) -> Vec<String> {
    let mut names: Vec<String> = store
        .list(name)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n == name || parse_entry_name(n).is_some_and(|e| e.key == name))
        .collect();
    names.sort();
    names
}

fn seal(ring: &KeyRing) -> (Vec<u8>, Vec<u8>) {
    let plaintext = format!("sealed under version {}", ring.current_version()).into_bytes();
    (ring.key.encrypt(&plaintext, b"ctx"), plaintext)
}

fn assert_opens(ring: &KeyRing, sealed: &[(Vec<u8>, Vec<u8>)]) {
    for (ciphertext, plaintext) in sealed {
        let opened = ring.decrypt(ciphertext, b"ctx").expect("decrypts");
        assert_eq!(&**opened, &plaintext[..]);
    }
}

fn cache(store: &Store) -> Arc<KeyCache> {
    KeyCache::new(
        Arc::clone(store),
        CacheConfig {
            expiry: Duration::ZERO,
            expiry_unused: Duration::ZERO,
            expiry_offline: Duration::ZERO,
            status_interval: Duration::ZERO,
        },
    )
}

/// Delete with a window, every refusal while pending, restore with all
/// versions, delete again, purge, and the name free again.
pub(crate) async fn lifecycle(store: Store) {
    let name = "del-life";
    create_key(&*store, name).await;
    let mut sealed = vec![seal(&versions::read(&*store, name).await.unwrap())];
    for _ in 0..2 {
        let rotated = versions::rotate(&*store, name, "x").await.unwrap();
        sealed.push(seal(&rotated.ring));
    }
    let before = stored_of(&*store, name).await;

    let pending = versions::delete_later(&*store, name, HOUR, "the-admin")
        .await
        .unwrap();
    assert_eq!(pending.deleted_by, "the-admin");
    let window = pending.purge_at - pending.deleted_at;
    assert_eq!(window, time::Duration::seconds(3600));

    // Gone for every reader and mutation, but the name stays taken.
    for result in [
        versions::read(&*store, name).await.map(|_| ()),
        versions::rotate(&*store, name, "x").await.map(|_| ()),
        versions::retire(&*store, name, 1).await.map(|_| ()),
        versions::delete(&*store, name).await,
        versions::delete_later(&*store, name, HOUR, "x")
            .await
            .map(|_| ()),
    ] {
        assert!(matches!(result, Err(Error::KeyNotFound)), "{result:?}");
    }
    let value = KeyVersion::generate(KeyAlgorithm::Aes256, "other")
        .encode()
        .unwrap();
    assert!(matches!(
        store.create(name, value.as_bytes()).await,
        Err(Error::KeyExists)
    ));
    let cache = cache(&store);
    assert!(!cache
        .list("del-")
        .await
        .unwrap()
        .contains(&name.to_string()));
    let (listed, more) = versions::pending(&*store, "del-", Bound::Unbounded, 10)
        .await
        .unwrap();
    assert_eq!((listed, more), (vec![pending.clone()], false));
    // Not due: a purge pass leaves it.
    let purged = versions::purge_due(&*store, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert!(!purged.purged.contains(&name.to_string()), "{purged:?}");

    // Restore: every version, every ciphertext.
    let ring = versions::restore(&*store, name).await.unwrap();
    assert_eq!((ring.first_version(), ring.current_version()), (1, 3));
    assert_opens(&ring, &sealed);
    assert_opens(&versions::read(&*store, name).await.unwrap(), &sealed);
    assert!(matches!(
        versions::restore(&*store, name).await,
        Err(Error::KeyExists)
    ));
    assert!(cache
        .list("del-")
        .await
        .unwrap()
        .contains(&name.to_string()));
    assert!(versions::pending(&*store, "del-", Bound::Unbounded, 10)
        .await
        .unwrap()
        .0
        .is_empty());
    // The marker stays with the live key (until its lineage dies), and
    // rotation goes on.
    assert_eq!(stored_of(&*store, name).await.len(), before.len() + 1);
    assert_eq!(
        versions::rotate(&*store, name, "x").await.unwrap().version,
        4
    );

    // Delete again; once due, any pass purges it: nothing of it is left.
    versions::delete_later(&*store, name, Duration::ZERO, "the-admin")
        .await
        .unwrap();
    let purged = versions::purge_due(&*store, OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(purged.purged, vec![name.to_string()], "{purged:?}");
    assert!(purged.failed.is_empty(), "{purged:?}");
    assert_eq!(stored_of(&*store, name).await, Vec::<String>::new());
    assert!(matches!(
        versions::restore(&*store, name).await,
        Err(Error::KeyNotFound)
    ));
    // The name is free; the new key is a new lineage at version 1.
    create_key(&*store, name).await;
    let ring = versions::read(&*store, name).await.unwrap();
    assert_eq!(ring.current_version(), 1);
    assert!(ring.decrypt(&sealed[0].0, b"ctx").is_err());
    versions::delete(&*store, name).await.unwrap();
    assert_eq!(stored_of(&*store, name).await, Vec::<String>::new());
    cache.close().await;
}

/// A store without an atomic compare-and-swap (Vault K/V v1) says so and
/// refuses a deletion window, changing nothing.
pub(crate) async fn refused(store: Store) {
    assert!(!store.conditional_writes());
    let name = "del-refused";
    create_key(&*store, name).await;
    let first = store.get(name).await.unwrap();
    assert!(versions::delete_later(&*store, name, HOUR, "x")
        .await
        .is_err());
    assert_eq!(*store.get(name).await.unwrap(), *first);
    assert!(versions::read(&*store, name).await.is_ok());
    versions::delete(&*store, name).await.unwrap();
    // The marker written before the refused swap goes with the lineage.
    assert_eq!(stored_of(&*store, name).await, Vec::<String>::new());
}

#[tokio::test]
async fn memory_lifecycle() {
    lifecycle(Arc::new(MemKeyStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    lifecycle(Arc::new(
        kes_keystore::fs::FsKeyStore::open(dir.path()).unwrap(),
    ))
    .await;
}

/// A listing in pages of one name: a pending key's marker is always on
/// another page than its name, and names between them (`k-…`, `k0`) sort
/// in between; only the pending key is left out.
#[tokio::test]
async fn listings_leave_out_pending_keys_across_pages() {
    let store: Store = Arc::new(MemKeyStore::new());
    for name in ["k", "k-a", "k-b", "k0", "kz", "m"] {
        create_key(&*store, name).await;
    }
    versions::rotate(&*store, "k", "x").await.unwrap();
    versions::delete_later(&*store, "k", HOUR, "x")
        .await
        .unwrap();
    versions::delete_later(&*store, "kz", HOUR, "x")
        .await
        .unwrap();
    // A stale marker (a restored key) does not hide its key.
    versions::delete_later(&*store, "k0", HOUR, "x")
        .await
        .unwrap();
    versions::restore(&*store, "k0").await.unwrap();
    let cache = cache(&store);
    for page in [1, 2, 3, 100] {
        let mut listing = cache.listing("", Bound::Unbounded);
        listing.set_page(page);
        let mut names = Vec::new();
        loop {
            let next = listing.next_names().await.unwrap();
            if next.is_empty() {
                break;
            }
            names.extend(next);
        }
        assert_eq!(names, ["k-a", "k-b", "k0", "m"], "pages of {page}");
    }
    cache.close().await;

    // One pending key that 1,500 others extend: more than a listing holds
    // back, so it asks the store for the pending key's markers.
    let store: Store = Arc::new(MemKeyStore::new());
    let mut expected = Vec::new();
    for i in 0..1500 {
        let name = format!("p-{i:04}");
        store.create(&name, b"x").await.unwrap();
        expected.push(name);
    }
    create_key(&*store, "p").await;
    versions::delete_later(&*store, "p", HOUR, "x")
        .await
        .unwrap();
    let many = self::cache(&store);
    let mut listing = many.listing("", Bound::Unbounded);
    listing.set_page(10);
    let mut names = Vec::new();
    loop {
        let next = listing.next_names().await.unwrap();
        if next.is_empty() {
            break;
        }
        names.extend(next);
    }
    assert_eq!(names, expected);
    many.close().await;
}

/// A memory store that dies (every call fails as unreachable) after a
/// given number of calls: a server killed between two store calls.
struct Dying {
    inner: Store,
    calls: AtomicUsize,
    limit: usize,
}

impl Dying {
    fn check(&self) -> Result<(), Error> {
        if self.calls.fetch_add(1, Ordering::SeqCst) >= self.limit {
            Err(Error::unreachable("killed"))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl KeyStore for Dying {
    async fn status(&self) -> Result<Duration, Error> {
        self.inner.status().await
    }
    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.check()?;
        self.inner.create(name, value).await
    }
    async fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.check()?;
        self.inner.get(name).await
    }
    async fn replace_if(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        self.check()?;
        self.inner.replace_if(name, current, value).await
    }
    async fn delete_if(&self, name: &str, current: &[u8]) -> Result<(), Error> {
        self.check()?;
        self.inner.delete_if(name, current).await
    }
    async fn delete(&self, name: &str) -> Result<(), Error> {
        self.check()?;
        self.inner.delete(name).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.check()?;
        self.inner.list(prefix).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        start: Bound<&str>,
        limit: usize,
    ) -> Result<ListPage, Error> {
        self.check()?;
        self.inner.list_page(prefix, start, limit).await
    }
}

#[derive(Debug, Clone, Copy)]
enum Step {
    DeleteLater,
    Restore,
    Purge,
    Delete,
}

/// What the key is after a step died: live with every version, pending
/// (restorable with every version), or gone without a trace.
#[derive(Debug, PartialEq, Eq)]
enum State {
    Live,
    Pending,
    Gone,
}

async fn state(store: &Store, name: &str, sealed: &[(Vec<u8>, Vec<u8>)]) -> State {
    match versions::read(&**store, name).await {
        Ok(ring) => {
            assert_opens(&ring, sealed);
            State::Live
        }
        Err(Error::KeyNotFound) => {
            let (pending, _) = versions::pending(&**store, name, Bound::Unbounded, 10)
                .await
                .unwrap();
            if pending.iter().any(|p| p.name == name) {
                State::Pending
            } else {
                State::Gone
            }
        }
        Err(e) => panic!("{e}"),
    }
}

/// `kill -9` at every store call of every step: the step's store dies
/// after `limit` calls, for every `limit` until the step completes. The
/// key is then whole in one of the states the step goes between (never
/// half-usable: live or pending with every version, or gone), and a
/// healthy server finishes whatever was left: a purge pass leaves no
/// entry behind for a gone key, a restore brings a pending one back whole.
#[tokio::test]
async fn a_crash_at_any_store_call_leaves_a_whole_key() {
    let name = "crash";
    for step in [Step::DeleteLater, Step::Restore, Step::Purge, Step::Delete] {
        for limit in 0.. {
            let store: Store = Arc::new(MemKeyStore::new());
            create_key(&*store, name).await;
            let mut sealed = vec![seal(&versions::read(&*store, name).await.unwrap())];
            for _ in 0..2 {
                sealed.push(seal(
                    &versions::rotate(&*store, name, "x").await.unwrap().ring,
                ));
            }
            // Where each step starts from.
            let due = Duration::ZERO;
            match step {
                Step::DeleteLater | Step::Delete => {}
                Step::Restore | Step::Purge => {
                    versions::delete_later(&*store, name, due, "x")
                        .await
                        .unwrap();
                }
            }
            let dying: Store = Arc::new(Dying {
                inner: Arc::clone(&store),
                calls: AtomicUsize::new(0),
                limit,
            });
            let now = OffsetDateTime::now_utc() + time::Duration::seconds(1);
            let completed = match step {
                Step::DeleteLater => versions::delete_later(&*dying, name, due, "x")
                    .await
                    .is_ok(),
                Step::Restore => versions::restore(&*dying, name).await.is_ok(),
                Step::Purge => versions::purge_due(&*dying, now)
                    .await
                    .is_ok_and(|p| p.failed.is_empty()),
                Step::Delete => versions::delete(&*dying, name).await.is_ok(),
            };
            let after = state(&store, name, &sealed).await;
            let allowed: &[State] = match step {
                Step::DeleteLater => &[State::Live, State::Pending],
                Step::Restore => &[State::Pending, State::Live],
                Step::Purge => &[State::Pending, State::Gone],
                Step::Delete => &[State::Live, State::Gone],
            };
            assert!(
                allowed.contains(&after),
                "{step:?} killed after {limit} calls: {after:?}"
            );
            // A healthy server finishes the job.
            match after {
                State::Pending => {
                    versions::restore(&*store, name).await.unwrap();
                    assert_eq!(state(&store, name, &sealed).await, State::Live);
                }
                State::Gone => {
                    match step {
                        // An interrupted delete at once is finished by
                        // running it again (it has no marker to be found).
                        Step::Delete => {
                            let again = versions::delete(&*store, name).await;
                            assert!(matches!(again, Ok(()) | Err(Error::KeyNotFound)));
                        }
                        // A pass of a server GRACE later: a purge that
                        // stopped after its swap left its placeholder,
                        // which only then is taken for a stopped purge's.
                        _ => {
                            let later = now + versions::GRACE + Duration::from_secs(1);
                            versions::purge_due(&*store, later).await.unwrap();
                        }
                    }
                    assert_eq!(stored_of(&*store, name).await, Vec::<String>::new());
                    create_key(&*store, name).await;
                }
                State::Live => {}
            }
            if completed {
                let done = match step {
                    Step::DeleteLater => State::Pending,
                    Step::Restore => State::Live,
                    Step::Purge | Step::Delete => State::Gone,
                };
                assert_eq!(after, done, "{step:?} completed");
                eprintln!("{step:?}: {limit} store calls");
                break;
            }
            assert!(limit < 100, "{step:?} never completes");
        }
    }
}
