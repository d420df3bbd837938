#![forbid(unsafe_code)]
//! Key stores: where KES keeps the encoded versions of its master keys.
//!
//! A [`KeyStore`] stores opaque values (the key-store encoding of
//! [`kes_core::KeyVersion`]) by name. KES never updates a value in place:
//! keys are created, read, listed and deleted; only retiring old versions
//! of a rotated key ([`versions`]) overwrites an entry. The [`cache::KeyCache`] wraps
//! any key store and is what the server talks to.

use std::time::Duration;

#[cfg(feature = "aws")]
pub mod aws;
pub mod cache;
pub mod config;
pub mod fs;
pub mod memory;
#[cfg(feature = "vault")]
pub mod vault;
pub mod versions;

/// What went wrong in a key store.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A key with this name exists already (create never overwrites).
    #[error("key already exists")]
    KeyExists,
    /// No key with this name exists.
    #[error("key does not exist")]
    KeyNotFound,
    /// The key store cannot be reached (network down, sealed, offline).
    #[error("key store is not reachable: {0}")]
    Unreachable(String),
    /// Any other failure. The text is for the error log only, never sent to
    /// clients, and must not contain key material.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A generic failure with a message for the error log.
    pub fn other(msg: impl Into<String>) -> Self {
        Error::Other(msg.into())
    }
}

/// A key store backend. Values are opaque bytes; names have been validated
/// by the caller with [`kes_core::name::valid_name`], but backends must still
/// defend themselves (e.g. the fs store against path traversal).
#[async_trait::async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Probes the store; returns the round-trip latency. An
    /// [`Error::Unreachable`] marks the store offline.
    async fn status(&self) -> Result<Duration, Error>;

    /// Stores `value` under `name`; fails with [`Error::KeyExists`] if the
    /// name is taken. Must never overwrite an existing value.
    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error>;

    /// Returns the value stored under `name` or [`Error::KeyNotFound`].
    async fn get(&self, name: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, Error>;

    /// Overwrites the value of the existing entry `name`
    /// ([`Error::KeyNotFound`] if there is none), so that the old value can
    /// no longer be read: where the store keeps a history of values, the
    /// old one is destroyed or deprecated. Only key retirement uses it (see
    /// [`versions`]); a store that cannot do it refuses.
    async fn replace(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        let _ = value;
        Err(Error::other(format!(
            "this key store cannot retire versions of '{name}'"
        )))
    }

    /// Removes `name`; [`Error::KeyNotFound`] if it did not exist (where the
    /// backend can tell).
    async fn delete(&self, name: &str) -> Result<(), Error>;

    /// Every name that starts with `prefix` (all names for an empty prefix),
    /// in any order; the caller sorts and pages. Backends that can filter by
    /// prefix on the server side should do so.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error>;

    /// Releases resources (background tasks, connections). Called when the
    /// store is replaced on reload or at shutdown.
    async fn close(&self) {}
}

/// Sorts `names` and keeps those with `prefix`, the reference's listing
/// helper (spec §9.2) without its page limit.
pub fn filter_sorted(mut names: Vec<String>, prefix: &str) -> Vec<String> {
    names.retain(|n| n.starts_with(prefix));
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_helper() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = names(&["my-key", "my-key2", "0-key", "1-key"]);
        assert_eq!(
            filter_sorted(all.clone(), ""),
            names(&["0-key", "1-key", "my-key", "my-key2"])
        );
        assert_eq!(filter_sorted(all, "my"), names(&["my-key", "my-key2"]));
        assert!(filter_sorted(Vec::new(), "").is_empty());
    }
}
