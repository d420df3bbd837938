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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::config::FsConfig;
use crate::io_threads::IoThreads;
use crate::listing::{select_page, ListPage};
use crate::{Error, KeyStore};

/// Largest value [`KeyStore::get`] reads; an encoded key is a few hundred
/// bytes, so anything larger is not a key and must not cost a huge buffer.
pub const MAX_VALUE_SIZE: u64 = 1 << 20;

/// Prefix of the temporary files of [`KeyStore::create`]. The leading `.`
/// makes it an invalid key name.
const TEMP_PREFIX: &str = ".kes-tmp.";

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
/// what is freed there. With 8 slow readers of 200,000 names, passes
/// spread over the 8 I/O threads peaked at 47–52 MiB, on two threads of
/// their own at 36–46 MiB (`scripts/slow-listing`, docs/performance.md).
const LIST_THREADS: usize = 2;

/// The threads that do a store's file I/O (see [`IoThreads`] for why not
/// tokio's blocking pool). Creates and deletes wait for fsync, so a few
/// run in parallel to share the disk's flushes (listings have threads of
/// their own, [`LIST_THREADS`]). Measured with kes-bench on 2 cores
/// (docs/performance.md, "The fs store's I/O threads"): with 8, cold key
/// reads ran twice as fast as on tokio's pool (which had grown to 121
/// threads), and creates within the disk's noise of 64 threads.
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

fn create_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
    builder.create(path)
}

/// A temporary file this old is a leftover of a crash: a create holds its
/// temporary file for milliseconds.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// Removes the temporary files that crashed creates left behind. Only old
/// ones: another server (or store) sharing the directory may be in the
/// middle of a create, and removing its temporary file would fail it.
fn remove_temp_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let is_temp = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX));
        if !is_temp || !entry.file_type()?.is_file() {
            continue;
        }
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STALE_TEMP_AGE);
        if stale {
            match fs::remove_file(entry.path()) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Makes directory entry changes (new links, unlinks) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    // Other platforms cannot open a directory as a file; their file
    // systems journal metadata on their own.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Creates a new file with mode 0600 that did not exist before.
fn create_new_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Creates a uniquely named temporary file in `dir`; `tag` goes between
/// the prefix and the unique part.
fn create_temp_file(dir: &Path, tag: &str) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TEMP_PREFIX}{tag}{pid}.{n}"));
        match create_new_file(&path) {
            // A leftover of another process with the same pid; try the next.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
            Ok(file) => return Ok((path, file)),
        }
    }
}

fn write_synced(mut file: File, value: &[u8]) -> io::Result<()> {
    file.write_all(value)?;
    file.sync_all()
}

fn create_key(dir: &Path, name: &str, value: &[u8]) -> Result<(), Error> {
    let fail = |e: io::Error| Error::other(format!("fs: failed to create '{name}'")).with_source(e);
    let target = dir.join(name);
    // Refuse an existing name before writing anything, so that a repeated
    // create of a known key costs one lookup instead of a written and
    // synced temporary file. The hard link below still decides a race
    // between two creates.
    match fs::symlink_metadata(&target) {
        Ok(_) => return Err(Error::KeyExists),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let (temp, file) = create_temp_file(dir, "").map_err(fail)?;
    if let Err(e) = write_synced(file, value) {
        let _ = fs::remove_file(&temp);
        return Err(fail(e));
    }
    let linked = fs::hard_link(&temp, &target);
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(Error::KeyExists),
        // File systems without hard links (some FUSE and network file
        // systems, FAT) answer EPERM or ENOTSUP. There we fall back to what
        // the Go KES does: an exclusive create under the final name, which
        // is not crash-safe but still never overwrites a key.
        Err(e)
            if e.kind() == io::ErrorKind::PermissionDenied
                || e.kind() == io::ErrorKind::Unsupported =>
        {
            let file = match create_new_file(&target) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(Error::KeyExists),
                Err(e) => return Err(fail(e)),
            };
            if let Err(e) = write_synced(file, value) {
                let _ = fs::remove_file(&target);
                return Err(fail(e));
            }
        }
        Err(e) => return Err(fail(e)),
    }
    sync_dir(dir).map_err(fail)
}

/// The file whose advisory lock makes the conditional writes
/// ([`KeyStore::replace_if`], [`KeyStore::delete_if`]) and deletes of a
/// store atomic against each other, across every process sharing the
/// directory. Its leading `.` makes it an invalid key name: listings skip
/// it, no key can be named like it, and only files starting with
/// [`TEMP_PREFIX`] are removed at open.
///
/// One lock for the whole directory, not one per key or per stripe of
/// keys: it is held only to read one small file, compare and rename or
/// unlink (microseconds; the synced temporary file is written before and
/// the directory synced after), so stripes would buy nothing measurable
/// (docs/rotation.md has the figures) and would add files to the
/// directory. A file, not the directory itself: where `flock` is emulated
/// with POSIX locks (NFS), an exclusive lock needs a descriptor opened for
/// writing, which a directory cannot have.
pub const LOCK_FILE: &str = ".kes-lock";

/// Takes the store's mutation lock (see [`LOCK_FILE`]); it is released
/// when the returned file is closed. Blocks while another thread or
/// process holds it: `flock` locks belong to the open file, so two opens
/// in one process exclude each other too.
fn lock_mutations(dir: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(dir.join(LOCK_FILE))?;
    #[cfg(unix)]
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(file)
}

/// Compares the value of `name` with `current` under the mutation lock;
/// the caller still holds the lock when `Ok` returns.
fn check_current(dir: &Path, name: &str, current: &[u8]) -> Result<(), Error> {
    let found = read_key(dir, name)?;
    if *found == *current {
        Ok(())
    } else {
        Err(Error::Changed)
    }
}

/// Overwrites the key `name` with `value` if it holds `current`: a synced
/// temporary file renamed over it, so a crash leaves the old or the new
/// value, never a mix. Compare and rename happen under the mutation lock;
/// the temporary file is written before and the directory synced after,
/// so the lock is held for microseconds.
fn replace_key_if(dir: &Path, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
    let fail =
        |e: io::Error| Error::other(format!("fs: failed to replace '{name}'")).with_source(e);
    let target = dir.join(name);
    let (temp, file) = create_temp_file(dir, "").map_err(fail)?;
    if let Err(e) = write_synced(file, value) {
        let _ = fs::remove_file(&temp);
        return Err(fail(e));
    }
    let swapped = lock_mutations(dir).map_err(fail).and_then(|lock| {
        check_current(dir, name, current)?;
        fs::rename(&temp, &target).map_err(fail)?;
        drop(lock);
        Ok(())
    });
    if let Err(e) = swapped {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir).map_err(fail)
}

/// Removes the key `name`, under the mutation lock; if `current` is given,
/// only if it holds that value.
fn delete_key(dir: &Path, name: &str, current: Option<&[u8]>) -> Result<(), Error> {
    let fail = |e: io::Error| Error::other(format!("fs: failed to delete '{name}'")).with_source(e);
    let lock = lock_mutations(dir).map_err(fail)?;
    if let Some(current) = current {
        check_current(dir, name, current)?;
    }
    match fs::remove_file(dir.join(name)) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::KeyNotFound),
        Err(e) => return Err(fail(e)),
    }
    drop(lock);
    sync_dir(dir).map_err(fail)
}

fn read_key(dir: &Path, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let fail = |e: io::Error| Error::other(format!("fs: failed to read '{name}'")).with_source(e);
    let file = match File::open(dir.join(name)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::KeyNotFound),
        Err(e) => return Err(fail(e)),
    };
    match read_secret(file, MAX_VALUE_SIZE) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(too_large(name)),
        Err(e) => Err(fail(e)),
    }
}

/// Reads all of `file` into a buffer that is wiped when dropped; `None` if
/// it holds more than `max` bytes. Used for keys and for other secrets read
/// from files (the Vault Kubernetes JWT).
pub(crate) fn read_secret(mut file: File, max: u64) -> io::Result<Option<Zeroizing<Vec<u8>>>> {
    let size = file.metadata()?.len();
    if size > max {
        return Ok(None);
    }
    // One byte more than the file claims, to notice a file that grew; any
    // regrowth goes through a fresh buffer so that no copy of the value is
    // left behind unzeroized.
    let mut buf = Zeroizing::new(vec![0u8; size as usize + 1]);
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if buf.len() as u64 > max {
                return Ok(None);
            }
            let grown = (buf.len() * 2).min(max as usize + 1);
            let mut bigger = Zeroizing::new(vec![0u8; grown]);
            bigger[..filled].copy_from_slice(&buf[..filled]);
            buf = bigger;
        }
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(Some(buf))
}

/// Whether `other` is another name of the file `existing` (false if
/// nothing has that name).
fn same_file(existing: &Path, other: &Path) -> io::Result<bool> {
    let first = fs::symlink_metadata(existing)?;
    let second = match fs::symlink_metadata(other) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(first.dev() == second.dev() && first.ino() == second.ino())
    }
    // Without inode numbers: the callers only ask about names that exist
    // in one spelling, so the other spelling existing is the answer.
    #[cfg(not(unix))]
    {
        let _ = (first, second);
        Ok(true)
    }
}

/// Whether the file system of `dir` ignores the case of names. `same_file`
/// answers whether two names lead to one file; the real one is
/// [`same_file`], tests pass one that behaves like a case-insensitive file
/// system.
///
/// The probe creates a temporary file with a lower-case name and asks
/// whether the upper-case spelling leads to it; the file is removed again
/// (and a crash leaves only a temporary file, which the next open
/// removes). Where no file can be created (a read-only mount, a full disk)
/// the existing entries are asked instead.
fn ignores_case(
    dir: &Path,
    same_file: impl Fn(&Path, &Path) -> io::Result<bool>,
) -> io::Result<bool> {
    let mut attempt = 0;
    loop {
        let (probe, file) = match create_temp_file(dir, "case-probe.") {
            Ok(created) => created,
            Err(_) => return entries_ignore_case(dir, same_file),
        };
        drop(file);
        let upper = probe.with_file_name(
            probe
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_ascii_uppercase(),
        );
        let answer = same_file(&probe, &upper);
        let removed = fs::remove_file(&probe);
        match answer {
            // Another KES opening the same directory removes temporary
            // files, the probe among them: probe again.
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
            Err(e) => return Err(e),
            Ok(answer) => {
                match removed {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                return Ok(answer);
            }
        }
    }
}

/// The probe of [`ignores_case`] for a directory it cannot write to: the
/// first entry with a letter in its name is looked up with the case of its
/// letters changed. A directory without such an entry holds no key whose
/// name could be confused, so it counts as case-sensitive.
fn entries_ignore_case(
    dir: &Path,
    same_file: impl Fn(&Path, &Path) -> io::Result<bool>,
) -> io::Result<bool> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let upper = name.to_ascii_uppercase();
        let other = if upper != name {
            upper
        } else {
            name.to_ascii_lowercase()
        };
        if other != name {
            return same_file(&entry.path(), &dir.join(other));
        }
    }
    Ok(false)
}

fn too_large(name: &str) -> Error {
    Error::other(format!(
        "fs: key '{name}' is larger than {MAX_VALUE_SIZE} bytes"
    ))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Answers like a case-insensitive file system would: two names in one
    /// directory that differ only in case lead to one file.
    fn case_insensitive(existing: &Path, other: &Path) -> io::Result<bool> {
        let lower = |p: &Path| p.to_str().unwrap().to_ascii_lowercase();
        fs::symlink_metadata(existing)?;
        Ok(lower(existing) == lower(other))
    }

    /// Records what the probe asks and answers like a case-sensitive file
    /// system.
    fn recording(asked: &std::sync::Mutex<Vec<(String, String)>>, a: &Path, b: &Path) -> bool {
        let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();
        asked.lock().unwrap().push((name(a), name(b)));
        false
    }

    #[test]
    fn probe_accepts_this_file_system() {
        // The tests run on Linux (ext4, tmpfs, overlayfs), which is
        // case-sensitive.
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("my-key"), b"v").unwrap();
        assert!(!ignores_case(tmp.path(), same_file).unwrap());
        assert!(!entries_ignore_case(tmp.path(), same_file).unwrap());
        assert_eq!(entries(tmp.path()), ["my-key"], "the probe file is removed");
    }

    #[test]
    fn probe_detects_a_case_insensitive_file_system() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(ignores_case(tmp.path(), case_insensitive).unwrap());
        assert!(entries(tmp.path()).is_empty(), "the probe file is removed");
    }

    #[test]
    fn probe_asks_about_a_fresh_lower_case_name_and_its_upper_case_spelling() {
        let tmp = tempfile::tempdir().unwrap();
        let asked = std::sync::Mutex::new(Vec::new());
        assert!(!ignores_case(tmp.path(), |a, b| Ok(recording(&asked, a, b))).unwrap());
        let asked = asked.into_inner().unwrap();
        assert_eq!(asked.len(), 1);
        let (probe, other) = &asked[0];
        assert!(probe.starts_with(".kes-tmp.case-probe."), "{probe}");
        assert_eq!(*other, probe.to_ascii_uppercase());
        assert_ne!(other, probe);
    }

    #[test]
    fn probe_of_existing_entries() {
        let tmp = tempfile::tempdir().unwrap();
        // Nothing to ask about: counts as case-sensitive.
        assert!(!entries_ignore_case(tmp.path(), case_insensitive).unwrap());
        fs::write(tmp.path().join("0-1"), b"v").unwrap();
        assert!(!entries_ignore_case(tmp.path(), case_insensitive).unwrap());
        // A name with letters is asked about in the other case.
        fs::write(tmp.path().join("MY-KEY"), b"v").unwrap();
        assert!(entries_ignore_case(tmp.path(), case_insensitive).unwrap());
        let asked = std::sync::Mutex::new(Vec::new());
        assert!(!entries_ignore_case(tmp.path(), |a, b| Ok(recording(&asked, a, b))).unwrap());
        assert_eq!(
            asked.into_inner().unwrap(),
            [("MY-KEY".to_string(), "my-key".to_string())]
        );
        assert!(!entries_ignore_case(tmp.path(), same_file).unwrap());
    }

    #[test]
    fn same_file_tells_names_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        fs::write(&a, b"1").unwrap();
        fs::write(&c, b"1").unwrap();
        fs::hard_link(&a, &b).unwrap();
        assert!(same_file(&a, &b).unwrap());
        assert!(!same_file(&a, &c).unwrap());
        assert!(!same_file(&a, &tmp.path().join("A")).unwrap());
        assert!(same_file(&tmp.path().join("missing"), &a).is_err());
    }
}
