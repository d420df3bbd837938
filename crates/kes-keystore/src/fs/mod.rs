//! The fs key store: one file per key in a directory.
//!
//! The file name is the key name, the content the encoded key version,
//! byte for byte, so a directory written by the Go KES can be used as is and
//! the other way round.
//!
//! Unlike the Go KES, creating a key is crash-safe: the value is written and
//! synced to a temporary file first and only then published under the key
//! name with a hard link, which fails if the name is taken. A crash therefore
//! never leaves an empty or partial file under a key name, and two concurrent
//! creates of one name cannot both succeed. Temporary files start with `.`,
//! which no key name may contain, so they never collide with keys, are never
//! listed, and leftovers from a crash are removed by [`FsKeyStore::open`].
//!
//! Conditional writes ([`KeyStore::replace_if`], [`KeyStore::delete_if`])
//! and deletes compare and rename or unlink under an exclusive advisory
//! lock on the file `.kes-lock` in the directory (`LOCK_FILE`), so
//! they are atomic against each other across every process sharing the
//! directory; creates need no lock.
//!
//! A create of a name that exists is refused before anything is written:
//! anyone allowed to create a well-known key (MinIO's default key, say) can
//! repeat that create as often as they like, and each refusal must cost a
//! lookup, not a synced temporary file.
//!
//! The store refuses a directory on a case-insensitive file system: key
//! names, policies and the key cache are case-sensitive, so `PROD-db` and
//! `prod-db` are two keys to KES, but there they would be one file.

mod case;
mod entries;
pub mod files;

use std::fs;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use self::case::{ignores_case, same_file};
pub use self::entries::LOCK_FILE;
use self::entries::{create_key, delete_key, read_key, replace_key_if};
use self::files::{create_dir, remove_temp_files};
use crate::config::FsConfig;
use crate::io_threads::IoThreads;
use crate::listing::{select_page, ListPage};
use crate::{Error, KeyStore};

/// Largest value [`KeyStore::get`] reads; an encoded key is a few hundred
/// bytes, so anything larger is not a key and must not cost a huge buffer.
pub const MAX_VALUE_SIZE: u64 = 1 << 20;

/// A key store keeping one file per key in a directory.
#[derive(Debug, Clone)]
pub struct FsKeyStore {
    dir: Arc<PathBuf>,
    /// Where the file I/O of single keys runs: [`IO_THREADS`] threads of
    /// this store's own.
    io: Arc<IoThreads>,
    /// Where listings read the directory: [`LIST_THREADS`] threads.
    lists: Arc<IoThreads>,
}

/// Directory passes of listings running at once. Each pass is CPU work
/// that holds up to two pages of names; more passes than cores would not
/// finish sooner, only hold more memory. Their own threads keep that
/// memory in few malloc arenas: glibc gives each thread an arena and keeps
/// what is freed there (`scripts/slow-listing` measures it; the figures
/// are in docs/performance.md).
const LIST_THREADS: usize = 2;

/// The threads that do a store's file I/O (see [`IoThreads`] for why not
/// tokio's blocking pool). Creates and deletes wait for fsync, so a few
/// run in parallel to share the disk's flushes (listings have threads of
/// their own, [`LIST_THREADS`]). Eight keep cold key reads well ahead of
/// tokio's pool, which grows to a thread per waiting read, and creates as
/// fast as many more threads would (kes-bench; docs/performance.md, "The
/// fs store's I/O threads").
const IO_THREADS: usize = 8;

/// Reports whether `name` may be used as a file name in the key directory:
/// not empty and without `/`, `\` or `.`, so it can neither leave the
/// directory (`..`, `a/b`) nor be hidden or collide with temporary files.
pub fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(['/', '\\', '.', '\0'])
}

fn check_name(name: &str) -> Result<(), Error> {
    if valid_key_name(name) {
        Ok(())
    } else {
        Err(Error::other(format!(
            "fs: invalid key name {name:?}: must not be empty or contain '/', '\\' or '.'"
        )))
    }
}

impl FsKeyStore {
    /// Opens the key directory `path`, creating it (mode 0755) if missing.
    ///
    /// Fails if `path` exists but is not a directory. Temporary files left
    /// behind by a crash during a create are removed.
    ///
    /// This does blocking file I/O: call it at startup or from a blocking
    /// task, not on an async worker in the middle of serving.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::other(format!(
                    "fs: '{}' is not a directory",
                    path.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(path).map_err(|e| {
                Error::other(format!(
                    "fs: failed to create directory '{}'",
                    path.display()
                ))
                .with_source(e)
            })?,
            Err(e) => {
                return Err(
                    Error::other(format!("fs: cannot access '{}'", path.display())).with_source(e),
                )
            }
        }
        remove_temp_files(path).map_err(|e| {
            Error::other(format!(
                "fs: failed to remove temporary files in '{}'",
                path.display()
            ))
            .with_source(e)
        })?;
        let ignores_case = ignores_case(path, same_file).map_err(|e| {
            Error::other(format!(
                "fs: cannot tell whether '{}' is on a case-insensitive file system",
                path.display()
            ))
            .with_source(e)
        })?;
        if ignores_case {
            return Err(Error::other(format!(
                "fs: '{}' is on a case-insensitive file system: there 'my-key' and 'MY-KEY' \
                 would be one file while KES and its policies treat them as two keys; \
                 use a directory on a case-sensitive file system",
                path.display()
            )));
        }
        Ok(Self {
            dir: Arc::new(path.to_path_buf()),
            io: Arc::new(IoThreads::start("kes-fs-io", IO_THREADS)?),
            lists: Arc::new(IoThreads::start("kes-fs-list", LIST_THREADS)?),
        })
    }

    /// Opens the directory of a `keystore.fs` configuration.
    pub fn from_config(config: &FsConfig) -> Result<Self, Error> {
        Self::open(&config.path)
    }

    /// The key directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Runs blocking file I/O on `threads`, off the async runtime's worker
    /// threads: the store's I/O threads for single keys, its listing
    /// threads for directory passes. Work whose caller is dropped before it
    /// begins is left out, so a client that starts and abandons listings
    /// cannot pile up passes.
    async fn on<T, F>(&self, threads: &IoThreads, f: F) -> Result<T, Error>
    where
        F: FnOnce(&Path) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let dir = Arc::clone(&self.dir);
        threads.run(move || f(&dir)).await?
    }
}

#[async_trait::async_trait]
impl KeyStore for FsKeyStore {
    async fn status(&self) -> Result<Duration, Error> {
        self.on(&self.io, |dir| {
            let start = Instant::now();
            let meta = fs::metadata(dir).map_err(|e| {
                Error::unreachable(format!("fs: cannot access '{}'", dir.display())).with_source(e)
            })?;
            let latency = start.elapsed();
            if !meta.is_dir() {
                return Err(Error::unreachable(format!(
                    "fs: '{}' is not a directory",
                    dir.display()
                )));
            }
            Ok(latency)
        })
        .await
    }

    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        let name = name.to_owned();
        let value = Zeroizing::new(value.to_vec());
        self.on(&self.io, move |dir| create_key(dir, &name, &value))
            .await
    }

    async fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        check_name(name)?;
        let name = name.to_owned();
        self.on(&self.io, move |dir| read_key(dir, &name)).await
    }

    // `create` needs no mutation lock: the hard link that publishes a key
    // fails if the name exists, so a create never overwrites anything, and
    // while a conditional write or delete holds the lock the name it
    // compared exists and only lock holders remove names, so no create
    // can slip in between its compare and its rename or unlink.

    async fn replace_if(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        let name = name.to_owned();
        let current = Zeroizing::new(current.to_vec());
        let value = Zeroizing::new(value.to_vec());
        self.on(&self.io, move |dir| {
            replace_key_if(dir, &name, &current, &value)
        })
        .await
    }

    async fn delete_if(&self, name: &str, current: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        let name = name.to_owned();
        let current = Zeroizing::new(current.to_vec());
        self.on(&self.io, move |dir| delete_key(dir, &name, Some(&current)))
            .await
    }

    async fn delete(&self, name: &str) -> Result<(), Error> {
        check_name(name)?;
        let name = name.to_owned();
        self.on(&self.io, move |dir| delete_key(dir, &name, None))
            .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let prefix = prefix.to_owned();
        self.on(&self.lists, move |dir| {
            let fail = |e: io::Error| list_failed(dir, e);
            let mut names = Vec::new();
            for name in key_entries(dir, &prefix).map_err(fail)? {
                names.push(name.map_err(fail)?);
            }
            Ok(names)
        })
        .await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start: Bound<&str>,
        limit: usize,
    ) -> Result<ListPage, Error> {
        let prefix = prefix.to_owned();
        let start = start.map(str::to_owned);
        self.on(&self.lists, move |dir| {
            // One pass over the directory that keeps only the page: a
            // listing of a huge directory costs one pass per page, never
            // memory for every name.
            let mut failure = None;
            let entries = key_entries(dir, &prefix).map_err(|e| list_failed(dir, e))?;
            let names = entries.map_while(|name| name.map_err(|e| failure = Some(e)).ok());
            let page = select_page(names, &prefix, start.as_ref().map(String::as_str), limit);
            match failure {
                Some(e) => Err(list_failed(dir, e)),
                None => Ok(page),
            }
        })
        .await
    }
}

fn list_failed(dir: &Path, e: io::Error) -> Error {
    Error::other(format!("fs: failed to list '{}'", dir.display())).with_source(e)
}

/// The names of the entries of `dir` that are keys (or key versions) and
/// start with `prefix`, as the directory yields them.
fn key_entries<'a>(
    dir: &Path,
    prefix: &'a str,
) -> io::Result<impl Iterator<Item = io::Result<String>> + 'a> {
    let entries = fs::read_dir(dir)?;
    Ok(entries.filter_map(move |entry| {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => return Some(Err(e)),
        };
        // Names that are not UTF-8 or not valid key names were not written
        // by KES (or are our temporary files).
        let name = entry.file_name().into_string().ok()?;
        if !valid_key_name(&name) || !name.starts_with(prefix) {
            return None;
        }
        match entry.file_type() {
            Ok(t) if t.is_dir() => None,
            Ok(_) => Some(Ok(name)),
            Err(e) => Some(Err(e)),
        }
    }))
}
