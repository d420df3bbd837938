//! Durable files in a key directory: temporary files written and synced
//! before they are published under their final name, the directory synced
//! after, and the removal of what a crash left behind. The sealed store
//! (kes-seal) writes its seal file with these too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zeroize::Zeroizing;

/// Prefix of the temporary files of [`KeyStore::create`](crate::KeyStore::create). The leading `.`
/// makes it an invalid key name.
pub const TEMP_PREFIX: &str = ".kes-tmp.";

pub(super) fn create_dir(path: &Path) -> io::Result<()> {
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
pub(super) fn remove_temp_files(dir: &Path) -> io::Result<()> {
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
pub fn sync_dir(dir: &Path) -> io::Result<()> {
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
pub(super) fn create_new_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Creates a uniquely named temporary file in `dir`; `tag` goes between
/// the prefix and the unique part.
pub(super) fn create_temp_file(dir: &Path, tag: &str) -> io::Result<(PathBuf, File)> {
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

pub(super) fn write_synced(mut file: File, value: &[u8]) -> io::Result<()> {
    file.write_all(value)?;
    file.sync_all()
}

/// Writes `content` to a new temporary file in `dir` (named
/// [`TEMP_PREFIX`], then `tag`, then a unique part; mode 0600) and syncs
/// it; returns its path. On failure no file is left behind.
pub fn write_temp(dir: &Path, tag: &str, content: &[u8]) -> io::Result<PathBuf> {
    let (path, file) = create_temp_file(dir, tag)?;
    if let Err(e) = write_synced(file, content) {
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    Ok(path)
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
