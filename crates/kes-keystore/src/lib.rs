#![warn(missing_docs)]
//! Key stores: where KES keeps the encoded versions of its master keys.
//!
//! A [`KeyStore`] stores opaque values (the key-store encoding of
//! [`kes_core::KeyVersion`]) by name. KES never updates a value in place:
//! keys are created, read, listed and deleted; only retiring old versions
//! of a rotated key ([`versions`]) overwrites an entry, and only with a
//! compare-and-swap ([`KeyStore::replace_if`]). The [`cache::KeyCache`] wraps
//! any key store and is what the server talks to.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(feature = "aws")]
pub mod aws;
mod backend;
pub mod cache;
pub mod config;
pub mod fs;
mod io_threads;
pub mod listing;
pub mod memory;
#[cfg(feature = "vault")]
pub mod vault;
pub mod versions;

pub use backend::KeyStoreConfig;

/// The cause of a key-store failure: its text, and its own causes', end the
/// [`Error`]'s `Display`. Shared by every caller that waits on the same
/// cache miss (hence `Arc`).
pub type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a key store.
///
/// The `Display` text is what the server writes to its error log: it names
/// the store, the operation and the key and ends with the cause's chain, but
/// never contains key material. Clients never see it. Since the text holds
/// the whole chain, `source()` returns `None`: a reporter that walks the
/// chain would print each cause twice.
///
/// Equality compares the kind and the message, not the source.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A key with this name exists already (create never overwrites).
    KeyExists,
    /// No key with this name exists.
    KeyNotFound,
    /// A conditional write ([`KeyStore::replace_if`], [`KeyStore::delete_if`])
    /// found another value than the one the caller read: another mutation
    /// came first, and nothing was written.
    Changed,
    /// The key store cannot be reached (network down, sealed, offline).
    #[non_exhaustive]
    Unreachable {
        /// What failed, e.g. `vault: reading 'my-key'`.
        message: String,
        /// Why it failed, if another error says so.
        source: Option<Source>,
    },
    /// Any other failure.
    #[non_exhaustive]
    Other {
        /// What failed, e.g. `fs: invalid key name '..'`.
        message: String,
        /// Why it failed, if another error says so.
        source: Option<Source>,
    },
}

impl Error {
    /// A failure other than not-found, exists or unreachable, with a message
    /// for the error log.
    pub fn other(message: impl Into<String>) -> Self {
        Error::Other {
            message: message.into(),
            source: None,
        }
    }

    /// The store cannot be reached; `message` says what was tried.
    pub fn unreachable(message: impl Into<String>) -> Self {
        Error::Unreachable {
            message: message.into(),
            source: None,
        }
    }

    /// The same error caused by `source`, whose text ends the `Display`.
    /// No effect on [`Error::KeyExists`] and [`Error::KeyNotFound`].
    pub fn with_source(
        mut self,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        if let Error::Unreachable { source, .. } | Error::Other { source, .. } = &mut self {
            *source = Some(Arc::from(cause.into()));
        }
        self
    }

    /// Whether the store could not be reached (this marks it offline).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    /// Whether this is [`Error::KeyExists`] or [`Error::KeyNotFound`]: an
    /// answer about the key, not a failure of the store.
    pub fn is_about_key(&self) -> bool {
        matches!(self, Error::KeyExists | Error::KeyNotFound)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (message, source) = match self {
            Error::KeyExists => return f.write_str("key already exists"),
            Error::KeyNotFound => return f.write_str("key does not exist"),
            Error::Changed => return f.write_str("the entry changed since it was read"),
            Error::Unreachable { message, source } => {
                f.write_str("key store is not reachable: ")?;
                (message, source)
            }
            Error::Other { message, source } => (message, source),
        };
        f.write_str(message)?;
        // The error log writes only this text, so the cause's chain is part
        // of it; a level already contained in the text so far is skipped
        // (SDK errors often repeat their cause in their own message).
        let mut text = message.clone();
        let mut next = source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static));
        while let Some(cause) = next {
            let part = cause.to_string();
            if !text.contains(&part) {
                write!(f, ": {part}")?;
                text.push_str(&part);
            }
            next = cause.source();
        }
        Ok(())
    }
}

/// No `source()`: the `Display` text already ends with the cause's chain.
impl std::error::Error for Error {}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Error::KeyExists, Error::KeyExists)
            | (Error::KeyNotFound, Error::KeyNotFound)
            | (Error::Changed, Error::Changed) => true,
            (Error::Unreachable { message: a, .. }, Error::Unreachable { message: b, .. })
            | (Error::Other { message: a, .. }, Error::Other { message: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl Eq for Error {}

/// A hook that a key store's `replace_if` awaits between its compare and
/// its conditional write: fault injection for tests that put another
/// mutation into exactly that window (the AWS and Vault stores'
/// `set_before_conditional_write`). Not an API.
#[doc(hidden)]
pub type BeforeWrite =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

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

    /// Overwrites the entry `name` with `value` if, and only if, it still
    /// holds `current` (compare-and-swap): [`Error::KeyNotFound`] if there
    /// is no entry, [`Error::Changed`] if it holds anything else, and in
    /// both cases nothing is written. It never creates an entry, so a
    /// deleted key is never brought back, and a new key of the same name is
    /// never overwritten. Where the store keeps a history of values, the
    /// old one is destroyed or deprecated. Key retirement and the lease of
    /// its lock use it (see [`versions`] and docs/rotation.md, "The
    /// mutation protocol"); a store that cannot do it atomically refuses.
    async fn replace_if(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        let _ = (current, value);
        Err(Error::other(format!(
            "this key store has no conditional write: it cannot retire versions of '{name}'"
        )))
    }

    /// Whether [`KeyStore::replace_if`] is atomic here. Retirement and a
    /// deletion window need it; a store without it (Vault K/V v1) refuses
    /// them, and a server configured with a deletion window refuses to
    /// start on it.
    fn conditional_writes(&self) -> bool {
        true
    }

    /// Removes the entry `name` if, and only if, it still holds `current`:
    /// [`Error::KeyNotFound`] if there is none, [`Error::Changed`] if it
    /// holds anything else. Releasing a lease uses it, so that a lease that
    /// another request took over is never removed by its former holder.
    async fn delete_if(&self, name: &str, current: &[u8]) -> Result<(), Error> {
        let _ = current;
        Err(Error::other(format!(
            "this key store has no conditional delete: cannot release '{name}'"
        )))
    }

    /// Removes `name`; [`Error::KeyNotFound`] if it did not exist (where the
    /// backend can tell).
    async fn delete(&self, name: &str) -> Result<(), Error>;

    /// Every name that starts with `prefix` (all names for an empty prefix),
    /// in any order; the caller sorts and pages. Backends that can filter by
    /// prefix on the server side should do so.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error>;

    /// A page of the sorted listing: the names that start with `prefix`
    /// and lie after `start`, sorted, the first `limit` of them (see
    /// [`listing`]). Stores that can page their entries keep at most a
    /// page in memory. The default serves stores whose list APIs have no
    /// sorted pages: everything from `start` on, in one page.
    async fn list_page(
        &self,
        prefix: &str,
        start: std::ops::Bound<&str>,
        limit: usize,
    ) -> Result<listing::ListPage, Error> {
        let _ = limit;
        let names = self.list(prefix).await?;
        Ok(listing::select_page(names, prefix, start, usize::MAX - 1))
    }

    /// Releases resources (background tasks, connections). Called when the
    /// store is replaced on reload or at shutdown.
    async fn close(&self) {}
}

/// Sorts `names`, drops duplicates and keeps those starting with `prefix`:
/// what a listing returns before it is paged.
pub fn filter_sorted(mut names: Vec<String>, prefix: &str) -> Vec<String> {
    names.retain(|n| n.starts_with(prefix));
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cause's chain is in the text once, and no reporter that walks
    /// `source()` can print it a second time.
    #[test]
    fn causes_are_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "access denied");
        let err = Error::unreachable("fs: reading 'my-key'").with_source(io);
        assert_eq!(
            err.to_string(),
            "key store is not reachable: fs: reading 'my-key': access denied"
        );
        assert!(std::error::Error::source(&err).is_none());
        let wrapped = Error::other("vault: login").with_source(err);
        assert_eq!(
            wrapped.to_string(),
            "vault: login: key store is not reachable: fs: reading 'my-key': access denied"
        );
        assert!(std::error::Error::source(&wrapped).is_none());
    }

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
