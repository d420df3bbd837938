//! The in-memory key store of `kes server --dev` and of tests.
//!
//! Values live only as long as the process: nothing is written anywhere.

use std::collections::HashMap;
use std::fmt;
use std::ops::Bound;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::listing::{select_page, ListPage};
use crate::{Error, KeyStore};

/// A volatile key store: a map from key name to value.
///
/// Values are zeroized when they are deleted or the store is dropped.
#[derive(Default)]
pub struct MemKeyStore {
    keys: RwLock<HashMap<String, Zeroizing<Vec<u8>>>>,
}

impl MemKeyStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    // A poisoned lock only means another thread panicked while holding it;
    // the map itself is never left half-updated by our operations, so the
    // store keeps serving instead of turning one panic into many.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Zeroizing<Vec<u8>>>> {
        kes_core::sync::read(&self.keys)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Zeroizing<Vec<u8>>>> {
        kes_core::sync::write(&self.keys)
    }
}

impl fmt::Debug for MemKeyStore {
    // Names are not secret, but values are: show only how many keys exist.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemKeyStore")
            .field("keys", &self.read().len())
            .finish()
    }
}

#[async_trait::async_trait]
impl KeyStore for MemKeyStore {
    async fn status(&self) -> Result<Duration, Error> {
        let start = Instant::now();
        drop(self.read());
        Ok(start.elapsed())
    }

    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        use std::collections::hash_map::Entry;
        match self.write().entry(name.to_owned()) {
            Entry::Occupied(_) => Err(Error::KeyExists),
            Entry::Vacant(v) => {
                v.insert(Zeroizing::new(value.to_vec()));
                Ok(())
            }
        }
    }

    async fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.read()
            .get(name)
            .map(|v| Zeroizing::new(v.to_vec()))
            .ok_or(Error::KeyNotFound)
    }

    async fn replace_if(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        match self.write().get_mut(name) {
            // The old value is zeroized when it is dropped here.
            Some(old) if old.as_slice() == current => {
                *old = Zeroizing::new(value.to_vec());
                Ok(())
            }
            Some(_) => Err(Error::Changed),
            None => Err(Error::KeyNotFound),
        }
    }

    async fn delete_if(&self, name: &str, current: &[u8]) -> Result<(), Error> {
        use std::collections::hash_map::Entry;
        match self.write().entry(name.to_owned()) {
            Entry::Occupied(e) if e.get().as_slice() == current => {
                e.remove();
                Ok(())
            }
            Entry::Occupied(_) => Err(Error::Changed),
            Entry::Vacant(_) => Err(Error::KeyNotFound),
        }
    }

    async fn delete(&self, name: &str) -> Result<(), Error> {
        self.write()
            .remove(name)
            .map(drop)
            .ok_or(Error::KeyNotFound)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        Ok(self
            .read()
            .keys()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect())
    }

    async fn list_page(
        &self,
        prefix: &str,
        start: Bound<&str>,
        limit: usize,
    ) -> Result<ListPage, Error> {
        Ok(select_page(self.read().keys(), prefix, start, limit))
    }
}
