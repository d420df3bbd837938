//! The fs key store: one file per key in a directory (spec §11 `fs`).
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

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::config::FsConfig;
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
}

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
        Err(Error::Other(format!(
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
                return Err(Error::Other(format!(
                    "fs: '{}' is not a directory",
                    path.display()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_dir(path).map_err(|e| {
                Error::Other(format!(
                    "fs: failed to create directory '{}': {e}",
                    path.display()
                ))
            })?,
            Err(e) => {
                return Err(Error::Other(format!(
                    "fs: cannot access '{}': {e}",
                    path.display()
                )))
            }
        }
        remove_temp_files(path).map_err(|e| {
            Error::Other(format!(
                "fs: failed to remove temporary files in '{}': {e}",
                path.display()
            ))
        })?;
        Ok(Self {
            dir: Arc::new(path.to_path_buf()),
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

    /// Runs blocking file I/O off the async runtime's worker threads.
    async fn blocking<T, F>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&Path) -> Result<T, Error> + Send + 'static,
        T: Send + 'static,
    {
        let dir = Arc::clone(&self.dir);
        tokio::task::spawn_blocking(move || f(&dir))
            .await
            .map_err(|e| Error::Other(format!("fs: I/O task failed: {e}")))?
    }
}

fn create_dir(path: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o755);
    builder.create(path)
}

fn remove_temp_files(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let is_temp = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX));
        if is_temp && entry.file_type()?.is_file() {
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

/// Creates a uniquely named temporary file in `dir`.
fn create_temp_file(dir: &Path) -> io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{TEMP_PREFIX}{pid}.{n}"));
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
    let fail = |e: io::Error| Error::Other(format!("fs: failed to create '{name}': {e}"));
    let target = dir.join(name);
    let (temp, file) = create_temp_file(dir).map_err(fail)?;
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

fn read_key(dir: &Path, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let fail = |e: io::Error| Error::Other(format!("fs: failed to read '{name}': {e}"));
    let mut file = match File::open(dir.join(name)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::KeyNotFound),
        Err(e) => return Err(fail(e)),
    };
    let size = file.metadata().map_err(fail)?.len();
    if size > MAX_VALUE_SIZE {
        return Err(too_large(name));
    }
    // One byte more than the file claims, to notice a file that grew; any
    // regrowth goes through a fresh buffer so that no copy of the value is
    // left behind unzeroized.
    let mut buf = Zeroizing::new(vec![0u8; size as usize + 1]);
    let mut filled = 0;
    loop {
        if filled == buf.len() {
            if buf.len() as u64 > MAX_VALUE_SIZE {
                return Err(too_large(name));
            }
            let grown = (buf.len() * 2).min(MAX_VALUE_SIZE as usize + 1);
            let mut bigger = Zeroizing::new(vec![0u8; grown]);
            bigger[..filled].copy_from_slice(&buf[..filled]);
            buf = bigger;
        }
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(e)),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

fn too_large(name: &str) -> Error {
    Error::Other(format!(
        "fs: key '{name}' is larger than {MAX_VALUE_SIZE} bytes"
    ))
}

#[async_trait::async_trait]
impl KeyStore for FsKeyStore {
    async fn status(&self) -> Result<Duration, Error> {
        self.blocking(|dir| {
            let start = Instant::now();
            let meta = fs::metadata(dir).map_err(|e| {
                Error::Unreachable(format!("fs: cannot access '{}': {e}", dir.display()))
            })?;
            let latency = start.elapsed();
            if !meta.is_dir() {
                return Err(Error::Unreachable(format!(
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
        self.blocking(move |dir| create_key(dir, &name, &value))
            .await
    }

    async fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        check_name(name)?;
        let name = name.to_owned();
        self.blocking(move |dir| read_key(dir, &name)).await
    }

    async fn delete(&self, name: &str) -> Result<(), Error> {
        check_name(name)?;
        let name = name.to_owned();
        self.blocking(move |dir| {
            let fail = |e: io::Error| Error::Other(format!("fs: failed to delete '{name}': {e}"));
            match fs::remove_file(dir.join(&name)) {
                Ok(()) => sync_dir(dir).map_err(fail),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::KeyNotFound),
                Err(e) => Err(fail(e)),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let prefix = prefix.to_owned();
        self.blocking(move |dir| {
            let fail =
                |e: io::Error| Error::Other(format!("fs: failed to list '{}': {e}", dir.display()));
            let mut names = Vec::new();
            for entry in fs::read_dir(dir).map_err(fail)? {
                let entry = entry.map_err(fail)?;
                // Names that are not UTF-8 or not valid key names were not
                // written by KES (or are our temporary files).
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                if !valid_key_name(&name) || !name.starts_with(&prefix) {
                    continue;
                }
                if entry.file_type().map_err(fail)?.is_dir() {
                    continue;
                }
                names.push(name);
            }
            Ok(names)
        })
        .await
    }
}
