#![warn(missing_docs)]
//! The sealed fs key store: a [`KeyStore`] around the fs store that keeps
//! every entry encrypted at rest (docs/hsm.md).
//!
//! Each entry is sealed with AES-256-GCM under one random data key, with
//! the entry's name as associated data, so a sealed file renamed to
//! another key's name does not open. The data key itself is stored only
//! wrapped, in the hidden file [`SEAL_FILE`] of the store's directory,
//! by a key that never leaves an HSM ([`KeyWrapper`], e.g. [`pkcs11`]). It
//! is unwrapped once, when the store is opened, and kept in memory that is
//! wiped when the store is dropped.
//!
//! Every mutation still goes through the inner store, so its guarantees
//! hold unchanged: a create never overwrites, and `replace_if`/`delete_if`
//! hand the inner compare-and-swap the sealed bytes they read, so it is the
//! inner store that decides a race.
//!
//! This crate is apart from kes-keystore so that a kes built without the
//! cargo feature `hsm` carries no PKCS#11 code at all, and so that the key
//! stores themselves stay as they are.

use std::fs::{self, File};
use std::io::{self, Read};
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use base64::Engine as _;
use kes_keystore::fs::files::{sync_dir, write_temp};
use kes_keystore::listing::ListPage;
use kes_keystore::{Error, KeyStore};
use zeroize::Zeroizing;

#[cfg(feature = "pkcs11")]
pub mod pkcs11;

/// The hidden file in the store's directory that holds the wrapped data
/// key. Its leading `.` makes it an invalid key name: the fs store never
/// lists it and no key can be named like it.
pub const SEAL_FILE: &str = ".kes-seal";

/// What follows the fs store's temporary prefix in the names of the
/// temporary files written before [`SEAL_FILE`] is published: written by
/// the fs store's own functions, a leftover of a crash is removed by the fs
/// store like its own.
const TEMP_TAG: &str = "seal.";

/// The first line of [`SEAL_FILE`]: names the format and its version.
const SEAL_FILE_HEADER: &str = "kes-seal v1";

/// The first bytes of every sealed entry: a zero byte (no plain KES entry,
/// which is JSON text, starts with one), `ks` and the format version.
pub const ENTRY_MAGIC: [u8; 4] = [0, b'k', b's', 1];

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// How many bytes sealing adds to an entry: magic, nonce and tag.
pub const OVERHEAD: usize = ENTRY_MAGIC.len() + NONCE_LEN + TAG_LEN;

/// The associated data of the data key wrapped by the HSM key.
pub const WRAP_AAD: &[u8] = b"kes-seal v1 data key";

/// The length of the data key: AES-256.
pub const DATA_KEY_LEN: usize = 32;

/// What wraps and unwraps the data key: an HSM key. Blocking calls; the
/// store runs them at start-up only.
pub trait KeyWrapper: Send {
    /// The label of the wrapping key, recorded in [`SEAL_FILE`] so that a
    /// store opened with another key is told so by name.
    fn label(&self) -> &str;

    /// Encrypts `data_key` (authenticated, with [`WRAP_AAD`]).
    fn wrap(&mut self, data_key: &[u8; DATA_KEY_LEN]) -> Result<Vec<u8>, Error>;

    /// Decrypts what [`KeyWrapper::wrap`] returned; fails if it was wrapped
    /// by another key or altered.
    fn unwrap(&mut self, wrapped: &[u8]) -> Result<Zeroizing<[u8; DATA_KEY_LEN]>, Error>;

    /// What the operator should know (e.g. an extractable HSM key).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// The unwrapped data key, ready for AES-256-GCM. aws-lc wipes the key
/// schedule when it is dropped; the raw bytes live only in a zeroizing
/// buffer while the key is set up.
struct DataKey {
    aead: LessSafeKey,
}

impl DataKey {
    fn new(bytes: &[u8; DATA_KEY_LEN]) -> Self {
        DataKey {
            aead: LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, bytes).expect("AES-256 key of 32 bytes"),
            ),
        }
    }
}

/// The associated data of entry `name`: binds the sealed bytes to the
/// name, so that a file renamed to another key does not open.
fn entry_aad(name: &str) -> Vec<u8> {
    let mut aad = b"kes-seal v1 entry ".to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
}

/// Seals `value` as entry `name`: magic, nonce, ciphertext, tag.
fn seal(key: &DataKey, name: &str, value: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    kes_core::random::fill(&mut nonce);
    let mut out = Zeroizing::new(Vec::with_capacity(value.len() + OVERHEAD));
    out.extend_from_slice(&ENTRY_MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(value);
    let start = ENTRY_MAGIC.len() + NONCE_LEN;
    let tag = key
        .aead
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(entry_aad(name)),
            &mut out[start..],
        )
        .expect("entries are far below AES-GCM's length limit");
    out.extend_from_slice(tag.as_ref());
    out
}

/// Opens entry `name` sealed by [`seal`].
fn unseal(key: &DataKey, name: &str, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, Error> {
    if sealed.len() < OVERHEAD || sealed[..ENTRY_MAGIC.len()] != ENTRY_MAGIC {
        return Err(Error::other(format!(
            "seal: entry '{name}' is not sealed: a plain entry in a sealed store \
             (copied in by hand?) is never used"
        )));
    }
    let nonce: [u8; NONCE_LEN] = sealed[ENTRY_MAGIC.len()..ENTRY_MAGIC.len() + NONCE_LEN]
        .try_into()
        .expect("length checked");
    let mut buf = Zeroizing::new(sealed[ENTRY_MAGIC.len() + NONCE_LEN..].to_vec());
    let opened = key
        .aead
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(entry_aad(name)),
            &mut buf,
        )
        .map_err(|_| {
            Error::other(format!(
                "seal: entry '{name}' does not open: it was altered, sealed under \
                 another data key, or belongs to another name"
            ))
        })?
        .len();
    buf.truncate(opened);
    Ok(buf)
}

/// What [`SEAL_FILE`] records.
struct SealFile {
    /// The label of the HSM key that wrapped the data key.
    label: String,
    /// The wrapped data key.
    wrapped: Vec<u8>,
}

impl SealFile {
    fn encode(&self) -> String {
        format!(
            "{SEAL_FILE_HEADER}\nhsm-key: {}\ndata-key: {}\n",
            self.label,
            base64::engine::general_purpose::STANDARD.encode(&self.wrapped)
        )
    }

    fn decode(path: &Path, text: &str) -> Result<SealFile, Error> {
        let corrupt = |what: &str| {
            Error::other(format!(
                "seal: '{}' is not a seal file of this KES ({what})",
                path.display()
            ))
        };
        let mut lines = text.lines();
        if lines.next() != Some(SEAL_FILE_HEADER) {
            return Err(corrupt(&format!(
                "its first line is not '{SEAL_FILE_HEADER}'"
            )));
        }
        let mut label = None;
        let mut wrapped = None;
        for line in lines {
            if let Some(v) = line.strip_prefix("hsm-key: ") {
                label = Some(v.to_string());
            } else if let Some(v) = line.strip_prefix("data-key: ") {
                wrapped = Some(
                    base64::engine::general_purpose::STANDARD
                        .decode(v.trim())
                        .map_err(|_| corrupt("the data key is not base64"))?,
                );
            }
        }
        match (label, wrapped) {
            (Some(label), Some(wrapped)) => Ok(SealFile { label, wrapped }),
            _ => Err(corrupt("'hsm-key' or 'data-key' is missing")),
        }
    }
}

/// Reports whether the directory `dir` holds a sealed store (a
/// [`SEAL_FILE`]); a kes built without the feature `hsm` uses it to refuse
/// a sealed store opened as a plain one.
pub fn is_sealed(dir: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(dir.join(SEAL_FILE)) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

fn read_seal_file(dir: &Path) -> Result<Option<SealFile>, Error> {
    let path = dir.join(SEAL_FILE);
    let mut text = String::new();
    match File::open(&path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => SealFile::decode(&path, &text).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            Err(Error::other(format!("seal: cannot read '{}'", path.display())).with_source(e))
        }
    }
}

/// Publishes a new [`SEAL_FILE`] unless one exists: a hard link, which
/// fails if the name is taken, so that of two servers sealing one empty
/// directory at once exactly one data key wins. `Ok(false)` if another was
/// first.
fn publish_seal_file(dir: &Path, seal: &SealFile) -> io::Result<bool> {
    let temp = write_temp(dir, TEMP_TAG, seal.encode().as_bytes())?;
    let linked = fs::hard_link(&temp, dir.join(SEAL_FILE));
    let _ = fs::remove_file(&temp);
    match linked {
        Ok(()) => sync_dir(dir).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replaces [`SEAL_FILE`] atomically (a synced temporary file renamed over
/// it): a crash leaves the old or the new file, both of which open.
fn replace_seal_file(dir: &Path, seal: &SealFile) -> io::Result<()> {
    let temp = write_temp(dir, TEMP_TAG, seal.encode().as_bytes())?;
    if let Err(e) = fs::rename(&temp, dir.join(SEAL_FILE)) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    sync_dir(dir)
}

/// A key store whose entries are sealed; see the crate documentation.
pub struct SealedStore {
    inner: Arc<dyn KeyStore>,
    key: DataKey,
    label: String,
    warnings: Vec<String>,
}

impl SealedStore {
    /// Opens the sealed store in `dir`, whose entries `inner` (the fs store
    /// of `dir`) keeps: unwraps the data key of [`SEAL_FILE`] with
    /// `wrapper`. A directory without one is sealed now if it holds no
    /// entry, and refused if it does: no store is ever half sealed.
    ///
    /// Blocking (file I/O and HSM calls): run it off the async workers.
    pub fn open(
        dir: &Path,
        inner: Arc<dyn KeyStore>,
        mut wrapper: Box<dyn KeyWrapper>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<SealedStore, Error> {
        let warnings = wrapper.warnings();
        for warning in &warnings {
            tracing::warn!("{warning}");
        }
        let label = wrapper.label().to_string();
        let open = |wrapper: &mut Box<dyn KeyWrapper>, seal: SealFile| {
            if seal.label != label {
                return Err(Error::other(format!(
                    "seal: '{}' is sealed under the HSM key '{}', not '{label}': configure \
                     that key, or reseal the store to '{label}' first",
                    dir.display(),
                    seal.label
                )));
            }
            let key = wrapper.unwrap(&seal.wrapped).map_err(|e| {
                Error::other(format!(
                    "seal: the data key of '{}' does not unwrap under the HSM key '{label}': \
                     the store is sealed under another HSM key with that label",
                    dir.display()
                ))
                .with_source(e)
            })?;
            Ok(DataKey::new(&key))
        };
        loop {
            if let Some(seal) = read_seal_file(dir)? {
                let key = open(&mut wrapper, seal)?;
                return Ok(SealedStore {
                    inner,
                    key,
                    label,
                    warnings,
                });
            }
            let first = runtime.block_on(inner.list_page("", Bound::Unbounded, 1))?;
            if let Some(name) = first.names.first() {
                return Err(Error::other(format!(
                    "seal: '{}' holds plain keys (e.g. '{name}') and no {SEAL_FILE}: a store \
                     is never sealed in place; seal an empty directory and move the keys \
                     into it with `kes migrate`",
                    dir.display()
                )));
            }
            let mut data_key = Zeroizing::new([0u8; DATA_KEY_LEN]);
            kes_core::random::fill(&mut data_key[..]);
            let seal = SealFile {
                label: label.clone(),
                wrapped: wrapper.wrap(&data_key)?,
            };
            let published = publish_seal_file(dir, &seal).map_err(|e| {
                Error::other(format!(
                    "seal: cannot write '{SEAL_FILE}' in '{}'",
                    dir.display()
                ))
                .with_source(e)
            })?;
            if published {
                tracing::info!(
                    "seal: sealed the empty store '{}' under the HSM key '{label}'",
                    dir.display()
                );
            }
            // Published or not (another server sealed it first), the next
            // pass opens what is there now.
        }
    }

    /// The label of the HSM key that wraps the data key.
    pub fn hsm_key(&self) -> &str {
        &self.label
    }

    /// The warnings of opening it (also logged).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    fn check_size(name: &str, value: &[u8]) -> Result<(), Error> {
        let max = kes_keystore::fs::MAX_VALUE_SIZE as usize - OVERHEAD;
        if value.len() > max {
            return Err(Error::other(format!(
                "seal: key '{name}' is larger than {max} bytes"
            )));
        }
        Ok(())
    }
}

/// Rewraps the data key of the sealed store in `dir` under another HSM
/// key: `from` unwraps it, `to` wraps it, and the new [`SEAL_FILE`]
/// replaces the old one in one rename. The entries are not touched.
pub fn reseal(
    dir: &Path,
    mut from: Box<dyn KeyWrapper>,
    mut to: Box<dyn KeyWrapper>,
) -> Result<(), Error> {
    let Some(seal) = read_seal_file(dir)? else {
        return Err(Error::other(format!(
            "seal: '{}' is not a sealed store (no {SEAL_FILE})",
            dir.display()
        )));
    };
    if seal.label != from.label() {
        return Err(Error::other(format!(
            "seal: '{}' is sealed under the HSM key '{}', not '{}'",
            dir.display(),
            seal.label,
            from.label()
        )));
    }
    let key = from.unwrap(&seal.wrapped)?;
    let new = SealFile {
        label: to.label().to_string(),
        wrapped: to.wrap(&key)?,
    };
    // Checked before the switch: a store must never be left under a key
    // that cannot open it.
    if *to.unwrap(&new.wrapped)? != *key {
        return Err(Error::other(
            "seal: the new HSM key does not unwrap what it wrapped",
        ));
    }
    replace_seal_file(dir, &new).map_err(|e| {
        Error::other(format!(
            "seal: cannot replace '{SEAL_FILE}' in '{}'",
            dir.display()
        ))
        .with_source(e)
    })
}

#[async_trait::async_trait]
impl KeyStore for SealedStore {
    async fn status(&self) -> Result<Duration, Error> {
        self.inner.status().await
    }

    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        Self::check_size(name, value)?;
        self.inner.create(name, &seal(&self.key, name, value)).await
    }

    async fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        let sealed = self.inner.get(name).await?;
        unseal(&self.key, name, &sealed)
    }

    async fn replace_if(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        Self::check_size(name, value)?;
        // The comparison here only saves a write that would fail; the inner
        // compare-and-swap on the sealed bytes read decides.
        let sealed = self.inner.get(name).await?;
        if *unseal(&self.key, name, &sealed)? != *current {
            return Err(Error::Changed);
        }
        self.inner
            .replace_if(name, &sealed, &seal(&self.key, name, value))
            .await
    }

    async fn delete_if(&self, name: &str, current: &[u8]) -> Result<(), Error> {
        let sealed = self.inner.get(name).await?;
        if *unseal(&self.key, name, &sealed)? != *current {
            return Err(Error::Changed);
        }
        self.inner.delete_if(name, &sealed).await
    }

    async fn delete(&self, name: &str) -> Result<(), Error> {
        self.inner.delete(name).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.inner.list(prefix).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start: Bound<&str>,
        limit: usize,
    ) -> Result<ListPage, Error> {
        self.inner.list_page(prefix, start, limit).await
    }

    async fn close(&self) {
        self.inner.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two servers sealing one empty directory at once: the second
    /// publication finds the first and leaves it, so both end up with one
    /// data key.
    #[test]
    fn a_published_seal_file_is_never_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let first = SealFile {
            label: "first".into(),
            wrapped: vec![1; 60],
        };
        let second = SealFile {
            label: "second".into(),
            wrapped: vec![2; 60],
        };
        assert!(publish_seal_file(tmp.path(), &first).unwrap());
        assert!(!publish_seal_file(tmp.path(), &second).unwrap());
        let kept = read_seal_file(tmp.path()).unwrap().unwrap();
        assert_eq!((kept.label.as_str(), kept.wrapped), ("first", vec![1; 60]));
        let names: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [SEAL_FILE], "no temporary file is left");
    }

    /// An entry opens only under its own name, and a flipped bit is noticed.
    #[test]
    fn entries_are_bound_to_their_name() {
        let key = DataKey::new(&[7; DATA_KEY_LEN]);
        let sealed = seal(&key, "my-key", b"value");
        assert_eq!(&sealed[..4], ENTRY_MAGIC);
        assert_eq!(sealed.len(), b"value".len() + OVERHEAD);
        assert_eq!(*unseal(&key, "my-key", &sealed).unwrap(), b"value");
        assert!(unseal(&key, "my-key2", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[OVERHEAD] ^= 1;
        assert!(unseal(&key, "my-key", &flipped).is_err());
        let other = DataKey::new(&[8; DATA_KEY_LEN]);
        assert!(unseal(&other, "my-key", &sealed).is_err());
    }
}
