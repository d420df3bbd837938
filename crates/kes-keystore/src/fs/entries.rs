//! The file operations on single keys: a create published by a hard link,
//! reads, and the conditional writes and deletes under the mutation lock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

use zeroize::Zeroizing;

use super::files::{create_new_file, read_secret, sync_dir, write_synced, write_temp};
use super::MAX_VALUE_SIZE;
use crate::Error;

pub(super) fn create_key(dir: &Path, name: &str, value: &[u8]) -> Result<(), Error> {
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
    let temp = write_temp(dir, "", value).map_err(fail)?;
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
/// ([`KeyStore::replace_if`](crate::KeyStore::replace_if),
/// [`KeyStore::delete_if`](crate::KeyStore::delete_if)) and deletes of a
/// store atomic against each other, across every process sharing the
/// directory. Its leading `.` makes it an invalid key name: listings skip
/// it, no key can be named like it, and only files starting with
/// [`TEMP_PREFIX`](super::files::TEMP_PREFIX) are removed at open.
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
pub(super) fn lock_mutations(dir: &Path) -> io::Result<File> {
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
pub(super) fn check_current(dir: &Path, name: &str, current: &[u8]) -> Result<(), Error> {
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
pub(super) fn replace_key_if(
    dir: &Path,
    name: &str,
    current: &[u8],
    value: &[u8],
) -> Result<(), Error> {
    let fail =
        |e: io::Error| Error::other(format!("fs: failed to replace '{name}'")).with_source(e);
    let target = dir.join(name);
    let temp = write_temp(dir, "", value).map_err(fail)?;
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
pub(super) fn delete_key(dir: &Path, name: &str, current: Option<&[u8]>) -> Result<(), Error> {
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

pub(super) fn read_key(dir: &Path, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
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

pub(super) fn too_large(name: &str) -> Error {
    Error::other(format!(
        "fs: key '{name}' is larger than {MAX_VALUE_SIZE} bytes"
    ))
}
