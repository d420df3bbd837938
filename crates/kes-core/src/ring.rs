//! Key versions: what a master key is after rotations.
//!
//! A key that was never rotated is one [`KeyVersion`], stored exactly as the
//! Go KES stores it. Rotation adds versions; a [`KeyRing`] holds every
//! retained version of one key, oldest first. New data is sealed with the
//! newest (current) version; a ciphertext carries no version number (its
//! format stays the Go KES's), so decryption tries the retained versions
//! newest first: AEAD authentication makes a wrong version fail, never
//! succeed.
//!
//! How the versions are laid out in a key store (entry names, the header of
//! a rewritten first entry) is in `kes_keystore::versions` and
//! docs/rotation.md; this module holds the pure parts: the ring, the
//! lineage of a key, and the header encoding.

use std::ops::Deref;
use std::sync::Arc;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::key::{DecryptError, KeyError, KeyVersion};

/// Length of a lineage in bytes (its text form is twice as long, hex).
pub const LINEAGE_LEN: usize = 8;

/// Identifies one key among all keys that ever had its name: the entries of
/// its versions carry it, so that the versions of a deleted key can never be
/// taken for versions of a new key with the same name.
///
/// The lineage of a key is derived from the stored value of its first entry
/// (a one-way hash), so a key that was never rotated needs no extra field
/// and stays byte-identical. A first entry rewritten by retirement carries
/// the lineage explicitly (see [`RingHeader`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lineage([u8; LINEAGE_LEN]);

impl Lineage {
    /// The lineage of a key whose first entry holds `stored` and carries no
    /// explicit lineage.
    pub fn derive(stored: &[u8]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"kes key lineage\0");
        hasher.update(stored);
        let digest = hasher.finalize();
        let mut out = [0u8; LINEAGE_LEN];
        out.copy_from_slice(&digest[..LINEAGE_LEN]);
        Lineage(out)
    }

    /// Lowercase hex, as it appears in entry names.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// Parses the hex form.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 2 * LINEAGE_LEN || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        let bytes = hex::decode(s).ok()?;
        Some(Lineage(bytes.try_into().ok()?))
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Lineage(bytes.try_into().ok()?))
    }
}

impl std::fmt::Debug for Lineage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Lineage({})", self.to_hex())
    }
}

/// Extra fields of a key's first entry once retirement has rewritten it:
/// which version the entry holds and the key's lineage. They are appended
/// to the protobuf `KeyVersion` as fields 15 and 16, which protobuf decoders
/// that do not know them (the Go KES's) skip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingHeader {
    /// The version number of the key material in the first entry.
    pub first: u32,
    /// The key's lineage.
    pub lineage: Lineage,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HeaderProto {
    #[prost(uint32, tag = "15")]
    first: u32,
    #[prost(bytes = "vec", tag = "16")]
    lineage: Vec<u8>,
}

impl RingHeader {
    /// The header of a stored first entry, or `None` if it has none (a key
    /// never retired, or one in the legacy JSON format).
    pub fn parse(stored: &[u8]) -> Result<Option<Self>, KeyError> {
        use prost::Message as _;
        if serde_json::from_slice::<serde::de::IgnoredAny>(stored).is_ok() {
            return Ok(None);
        }
        let text = std::str::from_utf8(stored).map_err(|_| KeyError::Invalid("not base64"))?;
        let bytes = crate::gocompat::decode_base64(text).ok_or(KeyError::Invalid("not base64"))?;
        // Decoding skips the key fields (1-4): only 15 and 16 are kept.
        let proto =
            HeaderProto::decode(&bytes[..]).map_err(|_| KeyError::Invalid("not a protobuf"))?;
        match (proto.first, proto.lineage.is_empty()) {
            (0, true) => Ok(None),
            (first, false) if first >= 1 => Ok(Some(RingHeader {
                first,
                lineage: Lineage::from_bytes(&proto.lineage)
                    .ok_or(KeyError::Invalid("lineage is not 8 bytes"))?,
            })),
            _ => Err(KeyError::Invalid("incomplete version header")),
        }
    }

    /// The stored value of a first entry holding `version` under this
    /// header: the Go KES's encoding of `version` plus fields 15 and 16.
    pub fn encode(&self, version: &KeyVersion) -> Result<String, KeyError> {
        use prost::Message as _;
        let plain = version.encode()?;
        let plain = Zeroizing::new(plain);
        let mut bytes =
            crate::gocompat::decode_base64(&plain).ok_or(KeyError::Invalid("not base64"))?;
        let header = HeaderProto {
            first: self.first,
            lineage: self.lineage.0.to_vec(),
        };
        header
            .encode(&mut *bytes)
            .map_err(|_| KeyError::Invalid("header does not fit"))?;
        Ok(base64::engine::general_purpose::STANDARD.encode(&*bytes))
    }
}

/// Every retained version of one key, oldest first, and the key's lineage.
///
/// Dereferences to the current (newest) version, so code that seals data
/// (generate, encrypt, HMAC) reads like it did before rotation existed.
#[derive(Debug)]
pub struct KeyRing {
    lineage: Lineage,
    first: u32,
    versions: Vec<Arc<KeyVersion>>,
}

impl KeyRing {
    /// A ring whose oldest retained version is number `first`, followed by
    /// `first + 1`, ... Fails on an empty list.
    pub fn new(
        lineage: Lineage,
        first: u32,
        versions: Vec<Arc<KeyVersion>>,
    ) -> Result<Self, KeyError> {
        if versions.is_empty() || first == 0 {
            return Err(KeyError::Invalid("a key has at least one version"));
        }
        Ok(KeyRing {
            lineage,
            first,
            versions,
        })
    }

    /// A key that was never rotated.
    pub fn single(lineage: Lineage, version: KeyVersion) -> Self {
        KeyRing {
            lineage,
            first: 1,
            versions: vec![Arc::new(version)],
        }
    }

    /// The key's lineage.
    pub fn lineage(&self) -> Lineage {
        self.lineage
    }

    /// The newest version, which seals new data.
    pub fn current(&self) -> &KeyVersion {
        self.versions.last().expect("a ring is never empty")
    }

    /// The number of the current version (1 for a key never rotated).
    pub fn current_version(&self) -> u32 {
        self.first + self.versions.len() as u32 - 1
    }

    /// The number of the oldest retained version.
    pub fn first_version(&self) -> u32 {
        self.first
    }

    /// The oldest retained version.
    pub fn oldest(&self) -> &KeyVersion {
        &self.versions[0]
    }

    /// How many versions are retained.
    pub fn retained(&self) -> usize {
        self.versions.len()
    }

    /// The retained versions, oldest first.
    pub fn versions(&self) -> &[Arc<KeyVersion>] {
        &self.versions
    }

    /// `(number, version)` from the newest to the oldest.
    pub fn newest_first(&self) -> impl Iterator<Item = (u32, &KeyVersion)> {
        self.versions
            .iter()
            .enumerate()
            .rev()
            .map(|(i, v)| (self.first + i as u32, &**v))
    }

    /// Decrypts `ciphertext` with whichever retained version sealed it,
    /// trying the newest first.
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, DecryptError> {
        for (_, version) in self.newest_first() {
            if let Ok(plaintext) = version.key.decrypt(ciphertext, associated_data) {
                return Ok(plaintext);
            }
        }
        Err(DecryptError)
    }

    /// HMAC-SHA256 with the key's HMAC key: the current version's, which
    /// rotation copies from the version before, so HMACs stay equal across
    /// rotations. `None` if the key has no HMAC key (legacy JSON format,
    /// never rotated).
    pub fn hmac(&self, message: &[u8]) -> Option<[u8; 32]> {
        self.current().hmac(message)
    }
}

impl Deref for KeyRing {
    type Target = KeyVersion;

    fn deref(&self) -> &KeyVersion {
        self.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::KeyAlgorithm;

    #[test]
    fn header_round_trip_and_go_decoding() {
        let version = KeyVersion::generate(KeyAlgorithm::Aes256, "me");
        let lineage = Lineage::derive(b"some stored value");
        let header = RingHeader { first: 7, lineage };
        let stored = header.encode(&version).unwrap();
        assert_eq!(RingHeader::parse(stored.as_bytes()).unwrap(), Some(header));
        // A decoder that does not know fields 15 and 16 (ours stands in for
        // the Go KES's) reads the same key.
        let decoded = KeyVersion::decode(stored.as_bytes()).unwrap();
        assert_eq!(decoded.key, version.key);
        assert_eq!(decoded.hmac_key, version.hmac_key);
        assert_eq!(decoded.created_by, "me");
        // A plain entry has no header.
        let plain = version.encode().unwrap();
        assert_eq!(RingHeader::parse(plain.as_bytes()).unwrap(), None);
        assert_eq!(
            RingHeader::parse(br#"{"bytes":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}"#)
                .unwrap(),
            None
        );
    }

    #[test]
    fn lineage_hex() {
        let l = Lineage::derive(b"x");
        assert_eq!(Lineage::from_hex(&l.to_hex()), Some(l));
        assert_eq!(Lineage::from_hex("00"), None);
        assert_eq!(Lineage::from_hex(&l.to_hex().to_uppercase()), None);
        assert_ne!(Lineage::derive(b"x"), Lineage::derive(b"y"));
    }

    #[test]
    fn ring_decrypts_every_version_and_seals_with_the_newest() {
        let v1 = KeyVersion::generate(KeyAlgorithm::Aes256, "a");
        let v2 = KeyVersion::generate(KeyAlgorithm::ChaCha20, "a");
        let c1 = v1.key.encrypt(b"one", b"ctx");
        let c2 = v2.key.encrypt(b"two", b"ctx");
        let ring =
            KeyRing::new(Lineage::derive(b"l"), 1, vec![Arc::new(v1), Arc::new(v2)]).unwrap();
        assert_eq!(ring.current_version(), 2);
        assert_eq!(ring.key.algorithm(), KeyAlgorithm::ChaCha20);
        assert_eq!(&**ring.decrypt(&c1, b"ctx").unwrap(), b"one");
        assert_eq!(&**ring.decrypt(&c2, b"ctx").unwrap(), b"two");
        assert!(ring.decrypt(&c1, b"other").is_err());
        let sealed = ring.key.encrypt(b"new", b"");
        assert!(ring.oldest().key.decrypt(&sealed, b"").is_err());
    }
}
