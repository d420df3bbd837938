//! A real in-memory key store behind a switch, to play a key store that
//! goes offline and comes back, and counters of the calls that reach it.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use kes_keystore::listing::ListPage;
use kes_keystore::memory::MemKeyStore;
use kes_keystore::{Error, KeyStore};
use zeroize::Zeroizing;

/// A [`MemKeyStore`] that counts the calls reaching it, can be slowed down
/// and can be switched off: then every call fails with
/// [`Error::Unreachable`], as a store behind a broken network does.
#[derive(Debug, Default)]
pub struct SwitchableStore {
    inner: MemKeyStore,
    get_delay: Duration,
    down: AtomicBool,
    gets: AtomicUsize,
    statuses: AtomicUsize,
    lists: AtomicUsize,
    list_pages: AtomicUsize,
    largest_page: AtomicUsize,
    /// One more than the number of pages after which `list_page` fails
    /// (unreachable); 0: never.
    pages_before_failure: AtomicUsize,
}

impl SwitchableStore {
    /// An empty store, switched on.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose `get` answers `delay` late (the value is read
    /// first and delivered late, like an answer over a slow network).
    pub fn with_get_delay(delay: Duration) -> Self {
        SwitchableStore {
            get_delay: delay,
            ..Self::default()
        }
    }

    /// The store behind the switch, to prepare or inspect its content
    /// without being counted or switched off.
    pub fn inner(&self) -> &MemKeyStore {
        &self.inner
    }

    /// Switches the store off (`true`: unreachable) or on again.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// How many `get` calls of keys' first entries reached the store (reads
    /// of version entries, `<name>@…`, are not counted).
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    /// How many `status` calls reached the store.
    pub fn statuses(&self) -> usize {
        self.statuses.load(Ordering::SeqCst)
    }

    /// How many whole listings (`list`) reached the store.
    pub fn lists(&self) -> usize {
        self.lists.load(Ordering::SeqCst)
    }

    /// How many pages of listings (`list_page`) the store answered.
    pub fn list_pages(&self) -> usize {
        self.list_pages.load(Ordering::SeqCst)
    }

    /// The most names one `list_page` answer held.
    pub fn largest_page(&self) -> usize {
        self.largest_page.load(Ordering::SeqCst)
    }

    /// Makes `list_page` fail as unreachable once it has answered `pages`
    /// more pages, as a store that goes away in the middle of a listing.
    pub fn fail_list_pages_after(&self, pages: usize) {
        self.pages_before_failure
            .store(self.list_pages() + pages + 1, Ordering::SeqCst);
    }

    fn check(&self) -> Result<(), Error> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::unreachable("test store is switched off"))
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl KeyStore for SwitchableStore {
    async fn status(&self) -> Result<Duration, Error> {
        self.statuses.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.status().await
    }
    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.check()?;
        self.inner.create(name, value).await
    }
    async fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        if kes_keystore::versions::is_key_name(name) {
            self.gets.fetch_add(1, Ordering::SeqCst);
        }
        let value = self.inner.get(name).await;
        if !self.get_delay.is_zero() {
            tokio::time::sleep(self.get_delay).await;
        }
        self.check()?;
        value
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
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.list(prefix).await
    }
    async fn list_page(
        &self,
        prefix: &str,
        start: std::ops::Bound<&str>,
        limit: usize,
    ) -> Result<ListPage, Error> {
        self.check()?;
        let fail_at = self.pages_before_failure.load(Ordering::SeqCst);
        if fail_at != 0 && self.list_pages() + 1 >= fail_at {
            return Err(Error::unreachable("test store went away while listing"));
        }
        let page = self.inner.list_page(prefix, start, limit).await?;
        self.list_pages.fetch_add(1, Ordering::SeqCst);
        self.largest_page
            .fetch_max(page.names.len(), Ordering::SeqCst);
        Ok(page)
    }
}
