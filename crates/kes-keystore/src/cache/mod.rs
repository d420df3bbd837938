//! The key cache in front of every key store.
//!
//! The server never talks to a [`KeyStore`] directly: it asks the
//! [`KeyCache`], which keeps decoded key versions in memory so that the hot
//! operations (generate, encrypt, decrypt, hmac) cost no round trip, and
//! which keeps serving cached keys while the store is offline if offline
//! caching is enabled.
//!
//! Lookups of cached keys take a shared read lock only. Misses are single
//! flight: concurrent misses for one name share one [`KeyStore::get`] and
//! its result (success or error).

use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use kes_core::ring::KeyRing;
use kes_core::sync::{lock, read, write};
use kes_core::KeyVersion;
use std::time::Instant;
use tokio::sync::OnceCell;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use crate::listing::{ListPage, Listing};
use crate::{Error, KeyStore};

mod upkeep;

use self::upkeep::{run_every, TickFuture};

/// How long cached keys live (`cache.expiry.*`) and how often the store's
/// health is checked. A zero duration disables the corresponding task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// `cache.expiry.any`: every `expiry`, all cached keys are dropped
    /// (unless the store is offline and offline caching is enabled).
    pub expiry: Duration,
    /// `cache.expiry.unused`: a key not used for this long is dropped
    /// (unless the store is offline and offline caching is enabled).
    pub expiry_unused: Duration,
    /// `cache.expiry.offline`: while the store is offline, cached keys keep
    /// serving and are all dropped every `expiry_offline`. Zero disables
    /// offline caching: the other expiries keep running while offline.
    pub expiry_offline: Duration,
    /// How often the store's status is checked to detect that it went
    /// offline or came back; 10 s in production.
    pub status_interval: Duration,
}

/// Counters of the cache for metrics; each is a total since creation,
/// except `cached_keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that were not in the cache.
    pub misses: u64,
    /// Keys read from the key store (one per miss, whatever number of
    /// version entries the key has).
    pub store_reads: u64,
    /// Key-store calls that failed for a reason other than
    /// [`Error::KeyExists`] or [`Error::KeyNotFound`].
    pub store_errors: u64,
    /// Keys currently cached.
    pub cached_keys: u64,
}

struct Entry {
    key: Arc<KeyRing>,
    // Set by every hit, cleared by the unused sweep: an entry still clear at
    // the next sweep was not used for a whole sweep interval.
    used: AtomicBool,
}

/// A fetch of one key in progress, shared by every concurrent miss.
#[derive(Default)]
struct Flight {
    result: OnceCell<Result<Arc<KeyRing>, Error>>,
    /// Set when the key was evicted while this fetch ran: the fetch
    /// returns its value to its callers but does not cache it, since it
    /// may have read a key that was deleted, rotated or retired meanwhile.
    /// Per key, so that evicting one key (a refresh after a failed decrypt,
    /// which any client can cause) never keeps another key out of the
    /// cache.
    stale: AtomicBool,
}

/// A key is read again after a failed decryption at most this often: a
/// ciphertext of a version another node just created is found at once,
/// while a flood of bad ciphertexts costs one store read per key and
/// interval.
const REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Bound of the map that rate-limits refreshes; it is cleared when full.
const REFRESH_TRACKED: usize = 10_000;

/// While a server decrypts with a key's older versions, it checks at most
/// this often whether another server retired versions of the key (or
/// deleted it): a retired version stops decrypting on every server at most
/// this long (plus one store read) after the retirement answered.
pub const RETIREMENT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// What [`KeyCache::check_retirement`] found.
#[derive(Debug)]
pub enum RetirementCheck {
    /// The key was checked less than [`RETIREMENT_CHECK_INTERVAL`] ago, or
    /// the store could not be asked (availability first: the cached
    /// versions stay usable until the cache expires them, as before).
    NotChecked,
    /// The key's first entry is still the one the cached versions were
    /// read with: no retirement or delete happened since.
    Unchanged,
    /// The key changed (a retirement, or a delete and maybe a new key of
    /// the same name): the cached versions were dropped, and this is the
    /// key as the store has it now.
    Changed(Result<Arc<KeyRing>, Error>),
}

/// A cache of decoded key versions in front of a [`KeyStore`].
pub struct KeyCache {
    store: Arc<dyn KeyStore>,
    config: CacheConfig,
    entries: RwLock<HashMap<String, Entry>>,
    // The fetches in flight. Evictions mark the fetch of their key stale
    // and remove it from here, under the `entries` lock (taken first), so
    // that a fetch either caches its value before the eviction removes it
    // or sees that it is stale; later misses start a fetch of their own.
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    // When each key was last read again after a failed decryption.
    refreshed: Mutex<HashMap<String, Instant>>,
    // When each key's first entry was last checked for a retirement.
    retirement_checked: Mutex<HashMap<String, Instant>>,
    offline: AtomicBool,
    // Why the store was last marked offline: the error `status` returns
    // while it stays offline.
    offline_reason: Mutex<Error>,
    hits: AtomicU64,
    misses: AtomicU64,
    store_reads: AtomicU64,
    store_errors: AtomicU64,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyCache")
            .field("config", &self.config)
            .field("offline", &self.is_offline())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    /// A cache in front of `store`, with its background tasks (expiry
    /// sweeps, status checks) spawned on the current tokio runtime. The
    /// tasks end when the cache is dropped or [closed](KeyCache::close).
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime.
    pub fn new(store: Arc<dyn KeyStore>, config: CacheConfig) -> Arc<KeyCache> {
        let cache = Arc::new(KeyCache {
            store,
            config,
            entries: RwLock::new(HashMap::new()),
            flights: Mutex::new(HashMap::new()),
            refreshed: Mutex::new(HashMap::new()),
            retirement_checked: Mutex::new(HashMap::new()),
            offline: AtomicBool::new(false),
            offline_reason: Mutex::new(Error::unreachable("key store is offline")),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            store_reads: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
            tasks: Mutex::new(Vec::new()),
        });
        let mut tasks = Vec::new();
        let spawn = |period: Duration, tick: fn(&KeyCache) -> TickFuture<'_>| {
            (!period.is_zero())
                .then(|| tokio::spawn(run_every(Arc::downgrade(&cache), period, tick)))
        };
        tasks.extend(spawn(config.expiry, |c| {
            Box::pin(async move { c.expire_all() })
        }));
        // Two sweeps per `expiry_unused`: an entry survives the first one
        // unused and is dropped by the second.
        let sweep = if config.expiry_unused.is_zero() {
            Duration::ZERO
        } else {
            (config.expiry_unused / 2).max(Duration::from_millis(1))
        };
        tasks.extend(spawn(sweep, |c| Box::pin(async move { c.expire_unused() })));
        tasks.extend(spawn(config.expiry_offline, |c| {
            Box::pin(async move { c.expire_offline() })
        }));
        tasks.extend(spawn(config.status_interval, |c| {
            Box::pin(c.check_status())
        }));
        *lock(&cache.tasks) = tasks;
        cache
    }

    /// The key `name` (every retained version), from the cache or else
    /// from the store.
    ///
    /// A value that does not decode fails with an [`Error::Other`] naming
    /// the key but not its content.
    pub async fn get(&self, name: &str) -> Result<Arc<KeyRing>, Error> {
        if let Some(key) = self.lookup(name) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(key);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);

        let flight = Arc::clone(lock(&self.flights).entry(name.to_owned()).or_default());
        let result = flight
            .result
            .get_or_init(|| self.fetch(name, &flight.stale))
            .await
            .clone();
        {
            let mut flights = lock(&self.flights);
            if flights.get(name).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                flights.remove(name);
            }
        }
        result
    }

    /// Reads `name` from the store again after a decryption with the cached
    /// versions failed: the ciphertext may be of a version another node
    /// created since. `None` if the key was read again less than a second
    /// ago (then the failure stands). Concurrent calls share one read.
    pub async fn refresh(&self, name: &str) -> Option<Result<Arc<KeyRing>, Error>> {
        {
            let now = Instant::now();
            let mut refreshed = lock(&self.refreshed);
            if refreshed
                .get(name)
                .is_some_and(|at| now.duration_since(*at) < REFRESH_INTERVAL)
            {
                return None;
            }
            if refreshed.len() >= REFRESH_TRACKED {
                refreshed.clear();
            }
            refreshed.insert(name.to_owned(), now);
        }
        self.evict(name);
        Some(self.get(name).await)
    }

    /// Checks, at most once per [`RETIREMENT_CHECK_INTERVAL`] and key,
    /// whether `ring` (cached) is still what the store holds: called after
    /// a version older than the current one opened a ciphertext, since a
    /// retirement on another server deletes exactly such versions. One
    /// store read of the first entry: a retirement always rewrites it (a
    /// higher first version), a delete removes it, a new key of the same
    /// name has another lineage. Concurrent callers within the interval
    /// do not wait for the check in flight.
    pub async fn check_retirement(&self, name: &str, ring: &KeyRing) -> RetirementCheck {
        {
            let now = Instant::now();
            let mut checked = lock(&self.retirement_checked);
            if checked
                .get(name)
                .is_some_and(|at| now.duration_since(*at) < RETIREMENT_CHECK_INTERVAL)
            {
                return RetirementCheck::NotChecked;
            }
            if checked.len() >= REFRESH_TRACKED {
                checked.clear();
            }
            checked.insert(name.to_owned(), now);
        }
        self.store_reads.fetch_add(1, Ordering::Relaxed);
        let same = match self.store.get(name).await {
            Ok(first) => match kes_core::ring::RingHeader::parse(&first) {
                Ok(header) => {
                    let lineage = header
                        .map_or_else(|| kes_core::ring::Lineage::derive(&first), |h| h.lineage);
                    let first_version = header.map_or(1, |h| h.first);
                    lineage == ring.lineage() && first_version == ring.first_version()
                }
                Err(_) => false,
            },
            Err(Error::KeyNotFound) => false,
            Err(e) => {
                self.count_error(&e);
                return RetirementCheck::NotChecked;
            }
        };
        if same {
            return RetirementCheck::Unchanged;
        }
        self.evict(name);
        RetirementCheck::Changed(self.get(name).await)
    }

    fn evict(&self, name: &str) {
        let evicted = {
            let mut entries = write(&self.entries);
            if let Some(flight) = lock(&self.flights).remove(name) {
                flight.stale.store(true, Ordering::Release);
            }
            entries.remove(name)
        };
        drop(evicted);
    }

    fn lookup(&self, name: &str) -> Option<Arc<KeyRing>> {
        let entries = read(&self.entries);
        let entry = entries.get(name)?;
        // Only write when the flag changes, so concurrent hits on a hot key
        // do not all contend for the same cache line.
        if !entry.used.load(Ordering::Relaxed) {
            entry.used.store(true, Ordering::Relaxed);
        }
        Some(Arc::clone(&entry.key))
    }

    async fn fetch(&self, name: &str, stale: &AtomicBool) -> Result<Arc<KeyRing>, Error> {
        // A fetch that lost the race with an earlier flight finds the key
        // cached already.
        if let Some(key) = self.lookup(name) {
            return Ok(key);
        }
        self.store_reads.fetch_add(1, Ordering::Relaxed);
        let key = crate::versions::read(&*self.store, name)
            .await
            .map(Arc::new)
            .inspect_err(|e| self.count_error(e))?;

        let mut entries = write(&self.entries);
        if !stale.load(Ordering::Acquire) {
            entries.insert(
                name.to_owned(),
                Entry {
                    key: Arc::clone(&key),
                    used: AtomicBool::new(true),
                },
            );
        }
        Ok(key)
    }

    /// Encodes `key` and creates it in the store. The key is not cached: it
    /// is read back on its first use.
    pub async fn create(&self, name: &str, key: &KeyVersion) -> Result<(), Error> {
        let value =
            Zeroizing::new(key.encode().map_err(|e| {
                Error::other(format!("key '{name}' cannot be encoded")).with_source(e)
            })?);
        self.store
            .create(name, value.as_bytes())
            .await
            .inspect_err(|e| self.count_error(e))
    }

    /// Deletes `name` and all its versions from the store, then from the
    /// cache.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let result = crate::versions::delete(&*self.store, name).await;
        // Evicted even if the store failed: after an error nobody knows
        // whether the key still exists, so it must be read again.
        self.evict(name);
        result.inspect_err(|e| self.count_error(e))
    }

    /// Deletes `name` with a recovery window (see
    /// [`crate::versions::delete_later`]), then evicts it from the cache.
    pub async fn delete_later(
        &self,
        name: &str,
        window: Duration,
        deleted_by: &str,
    ) -> Result<crate::versions::Pending, Error> {
        let result = crate::versions::delete_later(&*self.store, name, window, deleted_by).await;
        self.evict(name);
        result.inspect_err(|e| self.count_error(e))
    }

    /// Brings back a key pending deletion (see [`crate::versions::restore`]).
    /// Not cached: it is read again on its next use.
    pub async fn restore(&self, name: &str) -> Result<KeyRing, Error> {
        let result = crate::versions::restore(&*self.store, name).await;
        self.evict(name);
        result.inspect_err(|e| self.count_error(e))
    }

    /// The keys pending deletion (see [`crate::versions::pending`]).
    pub async fn pending(
        &self,
        prefix: &str,
        start: Bound<&str>,
        limit: usize,
    ) -> Result<(Vec<crate::versions::Pending>, bool), Error> {
        crate::versions::pending(&*self.store, prefix, start, limit)
            .await
            .inspect_err(|e| self.count_error(e))
    }

    /// Purges the keys due (see [`crate::versions::purge_due`]) and evicts
    /// them from the cache.
    pub async fn purge_due(
        &self,
        now: time::OffsetDateTime,
    ) -> Result<crate::versions::Purged, Error> {
        let result = crate::versions::purge_due(&*self.store, now).await;
        if let Ok(purged) = &result {
            for name in &purged.purged {
                self.evict(name);
            }
        }
        result.inspect_err(|e| self.count_error(e))
    }

    /// Adds a version to `name` (see [`crate::versions::rotate`]); the
    /// cache then holds the key with its new version.
    pub async fn rotate(
        &self,
        name: &str,
        created_by: &str,
    ) -> Result<crate::versions::Rotated, Error> {
        let result = crate::versions::rotate(&*self.store, name, created_by).await;
        // Read again on the next use: this node seals with the new version
        // at once, and a failed rotation leaves nothing stale behind.
        self.evict(name);
        result.inspect_err(|e| self.count_error(e))
    }

    /// Adds a version to `name` only if its current version is still
    /// `expected` (see [`crate::versions::rotate_if`]); `Ok(None)` if
    /// another server rotated it first. The cache reads the key again on
    /// its next use either way: a skipped rotation means the cached
    /// versions are behind.
    pub async fn rotate_if(
        &self,
        name: &str,
        expected: (kes_core::ring::Lineage, u32),
        created_by: &str,
    ) -> Result<Option<crate::versions::Rotated>, Error> {
        let result = crate::versions::rotate_if(&*self.store, name, expected, created_by).await;
        self.evict(name);
        result.inspect_err(|e| self.count_error(e))
    }

    /// Retires all but the newest `keep` versions of `name` (see
    /// [`crate::versions::retire_shared`]: a retirement whose caller goes
    /// away releases its lease at once).
    pub async fn retire(&self, name: &str, keep: usize) -> Result<crate::versions::Retired, Error> {
        let result = crate::versions::retire_shared(&self.store, name, keep).await;
        self.evict(name);
        result.inspect_err(|e| self.count_error(e))
    }

    /// The key names starting with `prefix`, sorted, always from the store.
    /// Entries of key versions are not keys and are left out. Holds every
    /// name: the server answers listings through [`KeyCache::listing`].
    pub async fn list(self: &Arc<Self>, prefix: &str) -> Result<Vec<String>, Error> {
        let mut listing = self.listing(prefix, Bound::Unbounded);
        let mut names = Vec::new();
        loop {
            let batch = listing.next_names().await?;
            if batch.is_empty() {
                return Ok(names);
            }
            names.extend(batch);
        }
    }

    /// A listing of the key names starting with `prefix`, from `start` on,
    /// read from the store a page at a time as the caller asks for names.
    pub fn listing(self: &Arc<Self>, prefix: &str, start: Bound<&str>) -> Listing {
        Listing::new(Arc::clone(self), prefix, start)
    }

    /// A page of the store's listing; a failure counts as a store error.
    pub(crate) async fn list_page(
        &self,
        prefix: &str,
        start: Bound<&str>,
        limit: usize,
    ) -> Result<ListPage, Error> {
        self.store
            .list_page(prefix, start, limit)
            .await
            .inspect_err(|e| self.count_error(e))
    }

    /// The store's latency. While the store is marked offline this fails
    /// with [`Error::Unreachable`] without contacting it; the background
    /// status check brings it back online. An [`Error::Unreachable`] from
    /// the store marks it offline.
    pub async fn status(&self) -> Result<Duration, Error> {
        // Without a status task nothing would ever mark the store online
        // again, so then every call probes the store.
        if self.is_offline() && !self.config.status_interval.is_zero() {
            return Err(lock(&self.offline_reason).clone());
        }
        match self.store.status().await {
            Ok(latency) => {
                self.set_online();
                Ok(latency)
            }
            Err(e) => {
                self.count_error(&e);
                if e.is_unreachable() {
                    self.set_offline(e.clone());
                }
                Err(e)
            }
        }
    }

    /// Whether the last status check found the store unreachable.
    pub fn is_offline(&self) -> bool {
        self.offline.load(Ordering::Acquire)
    }

    /// The key store behind the cache.
    pub fn store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    /// Current counters, for metrics.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            store_reads: self.store_reads.load(Ordering::Relaxed),
            store_errors: self.store_errors.load(Ordering::Relaxed),
            cached_keys: read(&self.entries).len() as u64,
        }
    }

    /// Stops the background tasks, drops every cached key and closes the
    /// store.
    pub async fn close(&self) {
        self.stop_tasks();
        self.drop_all();
        self.store.close().await;
    }

    fn stop_tasks(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    fn count_error(&self, e: &Error) {
        if !e.is_about_key() {
            self.store_errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for KeyCache {
    fn drop(&mut self) {
        self.stop_tasks();
    }
}
