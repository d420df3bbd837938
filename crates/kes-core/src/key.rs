//! Secret keys, HMAC keys and key versions with their key-store encoding.
//!
//! SKELETON: bodies to be filled in (issue 2).

use std::fmt;
use time::OffsetDateTime;

/// The algorithm of a secret key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlgorithm {
    /// AES-256-GCM with an HMAC-SHA256-derived per-message key.
    Aes256,
    /// ChaCha20-Poly1305 with an HChaCha20-derived per-message key.
    ChaCha20,
}

impl KeyAlgorithm {
    /// The name describe reports: `AES256` or `ChaCha20`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Aes256 => "AES256",
            KeyAlgorithm::ChaCha20 => "ChaCha20",
        }
    }

    /// Parses `AES256`, `AES256-GCM_SHA256`, `ChaCha20`, `XCHACHA20-POLY1305`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AES256" | "AES256-GCM_SHA256" => Some(KeyAlgorithm::Aes256),
            "ChaCha20" | "XCHACHA20-POLY1305" => Some(KeyAlgorithm::ChaCha20),
            _ => None,
        }
    }

    /// The algorithm new keys get: AES256 where the CPU has AES-GCM
    /// instructions, else ChaCha20.
    pub fn default_for_cpu() -> Self {
        todo!()
    }
}

impl fmt::Display for KeyAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a key could not be decoded or encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The stored value is malformed.
    #[error("invalid key: {0}")]
    Invalid(&'static str),
}

/// Decryption failed: wrong key, wrong context, tampered or malformed
/// ciphertext. Deliberately carries no detail.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[error("decryption failed: ciphertext is not authentic")]
pub struct DecryptError;

/// A 256-bit master key with its algorithm. Zeroized on drop.
pub struct SecretKey {
    algorithm: KeyAlgorithm,
    bytes: zeroize::Zeroizing<[u8; 32]>,
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
        let _ = algorithm;
        todo!()
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> KeyAlgorithm {
        self.algorithm
    }

    /// Encrypts `plaintext` with `associated_data` in the current format.
    pub fn encrypt(&self, plaintext: &[u8], associated_data: &[u8]) -> Vec<u8> {
        let _ = (plaintext, associated_data, &self.bytes);
        todo!()
    }

    /// Decrypts any of the three ciphertext formats.
    pub fn decrypt(
        &self,
        ciphertext: &[u8],
        associated_data: &[u8],
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, DecryptError> {
        let _ = (ciphertext, associated_data);
        todo!()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({}, <redacted>)", self.algorithm)
    }
}

/// A 256-bit HMAC-SHA256 key. Zeroized on drop.
pub struct HmacKey {
    bytes: zeroize::Zeroizing<[u8; 32]>,
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
        todo!()
    }

    /// HMAC-SHA256 of `message`.
    pub fn sign(&self, message: &[u8]) -> [u8; 32] {
        let _ = (message, &self.bytes);
        todo!()
    }
}

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
        let _ = (algorithm, created_by.into());
        todo!()
    }

    /// The key-store string: standard base64 of the protobuf `KeyVersion`.
    /// Fails if the HMAC key is missing.
    pub fn encode(&self) -> Result<String, KeyError> {
        todo!()
    }

    /// Decodes a key-store value: base64 protobuf, or the legacy JSON form.
    pub fn decode(value: &[u8]) -> Result<Self, KeyError> {
        let _ = value;
        todo!()
    }

    /// A fresh data encryption key: `(plaintext, ciphertext)` where the
    /// ciphertext is the plaintext encrypted with `associated_data`.
    pub fn generate_dek(&self, associated_data: &[u8]) -> (zeroize::Zeroizing<[u8; 32]>, Vec<u8>) {
        let _ = associated_data;
        todo!()
    }

    /// HMAC-SHA256 of `message`; `None` if the key has no HMAC key.
    pub fn hmac(&self, message: &[u8]) -> Option<[u8; 32]> {
        self.hmac_key.as_ref().map(|k| k.sign(message))
    }
}
