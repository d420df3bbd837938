//! Secret keys (a master key with its algorithm), HMAC keys and key
//! versions: the key material KES holds, zeroized on drop.

use std::fmt;

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::primitive;
use super::{DecryptError, KeyAlgorithm};
use crate::ciphertext::{Ciphertext, IV_LEN, NONCE_LEN, OVERHEAD, TAG_LEN};
use crate::random::fill as fill_random;

/// A 256-bit master key with its algorithm. Zeroized on drop.
pub struct SecretKey {
    pub(super) algorithm: KeyAlgorithm,
    pub(super) bytes: zeroize::Zeroizing<[u8; 32]>,
}

impl SecretKey {
    /// A key from raw bytes.
    pub fn new(algorithm: KeyAlgorithm, bytes: [u8; 32]) -> Self {
        Self {
            algorithm,
            bytes: zeroize::Zeroizing::new(bytes),
        }
    }

    /// A fresh random key.
    pub fn generate(algorithm: KeyAlgorithm) -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        fill_random(&mut *bytes);
        Self { algorithm, bytes }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// The id legacy ciphertexts carried: hex of the first 16 bytes of
    /// SHA-256(key). Not secret (a one-way function of the key), not checked
    /// on decryption any more.
    pub fn legacy_key_id(&self) -> String {
        hex::encode(&Sha256::digest(*self.bytes)[..16])
    }

    /// Encrypts `plaintext` with `associated_data` in the current format.
    pub fn encrypt(&self, plaintext: &[u8], associated_data: &[u8]) -> Vec<u8> {
        // iv and nonce end up in the ciphertext: not secret, no zeroizing.
        let mut random = [0u8; IV_LEN + NONCE_LEN];
        fill_random(&mut random);
        let (iv, nonce) = random.split_at(IV_LEN);
        let iv: &[u8; IV_LEN] = iv.try_into().expect("split at IV_LEN");
        let nonce: &[u8; NONCE_LEN] = nonce.try_into().expect("28 - IV_LEN = NONCE_LEN");

        let mut out = Vec::with_capacity(plaintext.len() + OVERHEAD);
        out.extend_from_slice(plaintext);
        let tag = self.seal_in_place(iv, nonce, associated_data, &mut out);
        out.extend_from_slice(&tag);
        out.extend_from_slice(iv);
        out.extend_from_slice(nonce);
        out
    }

    /// Decrypts any of the three ciphertext formats.
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, DecryptError> {
        let parsed = Ciphertext::parse(ciphertext).map_err(|_| DecryptError)?;
        let sealed = &parsed.sealed[..];
        if sealed.len() < TAG_LEN {
            return Err(DecryptError);
        }
        let (encrypted, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| DecryptError)?;
        let mut plaintext = Zeroizing::new(encrypted.to_vec());
        self.open_in_place(
            &parsed.iv,
            &parsed.nonce,
            associated_data,
            &mut plaintext,
            tag,
        )?;
        Ok(plaintext)
    }

    fn seal_in_place(
        &self,
        iv: &[u8; IV_LEN],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let key = primitive::derive_key(self.algorithm, &self.bytes, iv);
        primitive::seal(self.algorithm, &key, nonce, associated_data, buffer)
    }

    fn open_in_place(
        &self,
        iv: &[u8; IV_LEN],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), DecryptError> {
        let key = primitive::derive_key(self.algorithm, &self.bytes, iv);
        primitive::open(self.algorithm, &key, nonce, associated_data, buffer, tag)
    }
}

impl PartialEq for SecretKey {
    /// Constant-time in the key bytes.
    fn eq(&self, other: &Self) -> bool {
        self.algorithm == other.algorithm && bool::from(self.bytes.ct_eq(&*other.bytes))
    }
}

impl Eq for SecretKey {}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, <redacted>)", self.algorithm)
    }
}

/// A 256-bit HMAC-SHA256 key. Zeroized on drop. Clone copies it into a
/// new zeroizing buffer: rotation carries a key's HMAC key to its next
/// version.
#[derive(Clone)]
pub struct HmacKey {
    pub(super) bytes: zeroize::Zeroizing<[u8; 32]>,
}

impl HmacKey {
    /// A key from raw bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self {
            bytes: zeroize::Zeroizing::new(bytes),
        }
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; 32]);
        fill_random(&mut *bytes);
        Self { bytes }
    }

    /// HMAC-SHA256 of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        *primitive::hmac_sha256(&*self.bytes, message)
    }
}

impl PartialEq for HmacKey {
    /// Constant-time in the key bytes.
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.bytes.ct_eq(&*other.bytes))
    }
}

impl Eq for HmacKey {}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

/// One version of a master key as stored in a key store.
#[derive(Debug)]
pub struct KeyVersion {
    /// The secret key.
    pub key: SecretKey,
    /// The HMAC key; `None` for keys stored in the legacy JSON format.
    pub hmac_key: Option<HmacKey>,
    /// When the key was created (UTC); the zero time for some legacy keys.
    pub created_at: OffsetDateTime,
    /// The identity that created the key; may be empty.
    pub created_by: String,
}

impl KeyVersion {
    /// A fresh key version: random secret key and HMAC key, created now.
    pub fn generate(algorithm: KeyAlgorithm, created_by: impl Into<String>) -> Self {
        Self {
            key: SecretKey::generate(algorithm),
            hmac_key: Some(HmacKey::generate()),
            created_at: OffsetDateTime::now_utc(),
            created_by: created_by.into(),
        }
    }

    /// A fresh data encryption key: `(plaintext, ciphertext)` where the
    /// ciphertext is the plaintext encrypted with `associated_data`.
    pub fn generate_dek(&self, associated_data: &[u8]) -> (zeroize::Zeroizing<[u8; 32]>, Vec<u8>) {
        let mut dek = Zeroizing::new([0u8; 32]);
        fill_random(&mut *dek);
        let ciphertext = self.key.encrypt(&*dek, associated_data);
        (dek, ciphertext)
    }

    /// HMAC-SHA256 of `message`; `None` if the key has no HMAC key.
    pub fn hmac(&self, message: &[u8]) -> Option<[u8; 32]> {
        self.hmac_key.as_ref().map(|k| k.sign(message))
    }
}
