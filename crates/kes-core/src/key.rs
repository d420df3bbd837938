//! Secret keys, HMAC keys and key versions with their key-store encoding.
//!
//! Every ciphertext is encrypted under a fresh per-message key derived from
//! the master key and a random 16-byte iv (spec §8.4), so the AEADs never see
//! the master key and never reuse a (key, nonce) pair in practice.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};
use hmac::{Hmac, KeyInit as _, Mac as _};
use rand::Rng as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use time::OffsetDateTime;
use zeroize::{Zeroize as _, Zeroizing};

use crate::ciphertext::{Ciphertext, IV_LEN, NONCE_LEN, OVERHEAD, TAG_LEN};

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
        if cpu_has_aes_gcm() {
            KeyAlgorithm::Aes256
        } else {
            KeyAlgorithm::ChaCha20
        }
    }

    /// The algorithm's number in the protobuf key-store encoding.
    fn storage_type(self) -> u32 {
        match self {
            KeyAlgorithm::Aes256 => 1,
            KeyAlgorithm::ChaCha20 => 2,
        }
    }

    fn from_storage_type(t: u32) -> Option<Self> {
        match t {
            1 => Some(KeyAlgorithm::Aes256),
            2 => Some(KeyAlgorithm::ChaCha20),
            _ => None,
        }
    }
}

/// Without AES and carry-less multiply instructions AES-GCM is both slow and
/// (in portable code) harder to keep constant-time, so ChaCha20 wins there.
fn cpu_has_aes_gcm() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        // Rust's `aes` feature on aarch64 includes PMULL.
        std::arch::is_aarch64_feature_detected!("aes")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
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

/// Fills `buf` from a CSPRNG: rand's thread-local ChaCha12 generator, seeded
/// from the OS and reseeded from it every 64 KiB of output. A system call per
/// ciphertext cost ~40% of an encryption (docs/performance.md). Randomness is
/// not optional for a KES, so if the OS cannot seed it the call panics.
pub(crate) fn fill_random(buf: &mut [u8]) {
    rand::rng().fill_bytes(buf);
}

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
        match self.algorithm {
            KeyAlgorithm::Aes256 => {
                let key = primitive::hmac_sha256(&*self.bytes, iv);
                primitive::aes256gcm_seal(&key, nonce, associated_data, buffer)
            }
            KeyAlgorithm::ChaCha20 => {
                let key = primitive::hchacha20(&self.bytes, iv);
                primitive::chacha20poly1305_seal(&key, nonce, associated_data, buffer)
            }
        }
    }

    fn open_in_place(
        &self,
        iv: &[u8; IV_LEN],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), DecryptError> {
        match self.algorithm {
            KeyAlgorithm::Aes256 => {
                let key = primitive::hmac_sha256(&*self.bytes, iv);
                primitive::aes256gcm_open(&key, nonce, associated_data, buffer, tag)
            }
            KeyAlgorithm::ChaCha20 => {
                let key = primitive::hchacha20(&self.bytes, iv);
                primitive::chacha20poly1305_open(&key, nonce, associated_data, buffer, tag)
            }
        }
    }
}

/// The primitives the ciphertext format is built from, public only so that
/// the Wycheproof tests and the benchmarks exercise exactly these calls.
#[doc(hidden)]
pub mod primitive {
    use super::*;

    /// The AEADs only fail to seal messages beyond 2^36 bytes, which no API
    /// request can carry.
    const TOO_LONG: &str = "plaintext exceeds the AEAD's length limit";

    /// HMAC-SHA256; the AES256 per-message key derivation and the HMAC API.
    /// Returned zeroizing because it is a key in the first use.
    pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = <Hmac<hmac_sha2::Sha256>>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        mac.update(message);
        Zeroizing::new(mac.finalize().into_bytes().into())
    }

    /// HChaCha20, the ChaCha20 per-message key derivation.
    pub fn hchacha20(key: &[u8; 32], input: &[u8; IV_LEN]) -> Zeroizing<[u8; 32]> {
        let mut derived = chacha20::hchacha::<chacha20::R20>(key.into(), input.into());
        let out = Zeroizing::new(derived.into());
        derived.as_mut_slice().zeroize();
        out
    }

    fn aead(algorithm: &'static aws_lc_rs::aead::Algorithm, key: &[u8; 32]) -> LessSafeKey {
        // Both algorithms take 32-byte keys, the only way this could fail.
        LessSafeKey::new(UnboundKey::new(algorithm, key).expect("AEAD key of 32 bytes"))
    }

    fn seal(
        algorithm: &'static aws_lc_rs::aead::Algorithm,
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
    ) -> [u8; TAG_LEN] {
        let tag = aead(algorithm, key)
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(associated_data),
                buffer,
            )
            .expect(TOO_LONG);
        tag.as_ref().try_into().expect("AEAD tags are 16 bytes")
    }

    fn open(
        algorithm: &'static aws_lc_rs::aead::Algorithm,
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), DecryptError> {
        aead(algorithm, key)
            .open_in_place_separate_tag(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(associated_data),
                tag,
                buffer,
            )
            .map(|_| ())
            .map_err(|_| DecryptError)
    }

    /// Encrypts `buffer` in place with AES-256-GCM and returns the tag.
    pub fn aes256gcm_seal(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
    ) -> [u8; TAG_LEN] {
        seal(&AES_256_GCM, key, nonce, associated_data, buffer)
    }

    /// Decrypts `buffer` in place with AES-256-GCM if `tag` is authentic.
    pub fn aes256gcm_open(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), DecryptError> {
        open(&AES_256_GCM, key, nonce, associated_data, buffer, tag)
    }

    /// Encrypts `buffer` in place with ChaCha20-Poly1305 and returns the tag.
    pub fn chacha20poly1305_seal(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
    ) -> [u8; TAG_LEN] {
        seal(&CHACHA20_POLY1305, key, nonce, associated_data, buffer)
    }

    /// Decrypts `buffer` in place with ChaCha20-Poly1305 if `tag` is authentic.
    pub fn chacha20poly1305_open(
        key: &[u8; 32],
        nonce: &[u8; NONCE_LEN],
        associated_data: &[u8],
        buffer: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), DecryptError> {
        open(&CHACHA20_POLY1305, key, nonce, associated_data, buffer, tag)
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

    /// The key-store string: standard base64 of the protobuf `KeyVersion`.
    /// Fails if the HMAC key is missing.
    pub fn encode(&self) -> Result<String, KeyError> {
        use base64::Engine as _;
        use prost::Message as _;

        let hmac_key = self
            .hmac_key
            .as_ref()
            .ok_or(KeyError::Invalid("key has no HMAC key"))?;
        let created_at = self.created_at.to_offset(time::UtcOffset::UTC);
        let proto = proto::KeyVersion {
            key: Some(proto::SecretKey {
                key: self.key.bytes.to_vec(),
                r#type: self.key.algorithm.storage_type(),
            }),
            hmac_key: Some(proto::HmacKey {
                key: hmac_key.bytes.to_vec(),
                hash: proto::HASH_SHA256,
            }),
            created_at: Some(proto::Timestamp {
                seconds: created_at.unix_timestamp(),
                // Always below 10^9, so it fits.
                nanos: created_at.nanosecond() as i32,
            }),
            created_by: self.created_by.clone(),
        };
        let encoded = Zeroizing::new(proto.encode_to_vec());
        Ok(base64::engine::general_purpose::STANDARD.encode(&*encoded))
    }

    /// Decodes a key-store value: base64 protobuf, or the legacy JSON form.
    pub fn decode(value: &[u8]) -> Result<Self, KeyError> {
        // KES tells the formats apart the same way: valid JSON is legacy.
        if serde_json::from_slice::<serde::de::IgnoredAny>(value).is_ok() {
            return legacy::decode(value);
        }
        let text = std::str::from_utf8(value).map_err(|_| KeyError::Invalid("not base64"))?;
        let bytes =
            crate::ciphertext::decode_go_base64(text).ok_or(KeyError::Invalid("not base64"))?;
        proto::decode(&bytes)
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

/// Copies a decoded 32-byte key, so that the decoded buffer can be wiped by
/// its owner.
fn key_bytes(bytes: &[u8], what: &'static str) -> Result<[u8; 32], KeyError> {
    bytes.try_into().map_err(|_| KeyError::Invalid(what))
}

/// The protobuf schema of package `miniohq.kms` (spec §8.2), written out by
/// hand so the build needs no protoc.
mod proto {
    use super::*;

    pub(super) const HASH_SHA256: u32 = 1;

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct KeyVersion {
        #[prost(message, optional, tag = "1")]
        pub key: Option<SecretKey>,
        #[prost(message, optional, tag = "2")]
        pub hmac_key: Option<HmacKey>,
        #[prost(message, optional, tag = "3")]
        pub created_at: Option<Timestamp>,
        #[prost(string, tag = "4")]
        pub created_by: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct SecretKey {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(uint32, tag = "2")]
        pub r#type: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct HmacKey {
        #[prost(bytes = "vec", tag = "1")]
        pub key: Vec<u8>,
        #[prost(uint32, tag = "2")]
        pub hash: u32,
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub(super) struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    impl Drop for SecretKey {
        fn drop(&mut self) {
            self.key.zeroize();
        }
    }

    impl Drop for HmacKey {
        fn drop(&mut self) {
            self.key.zeroize();
        }
    }

    pub(super) fn decode(bytes: &[u8]) -> Result<super::KeyVersion, KeyError> {
        use prost::Message as _;

        let proto = KeyVersion::decode(bytes).map_err(|_| KeyError::Invalid("not a protobuf"))?;
        let secret = proto
            .key
            .as_ref()
            .ok_or(KeyError::Invalid("missing secret key"))?;
        let algorithm = KeyAlgorithm::from_storage_type(secret.r#type)
            .ok_or(KeyError::Invalid("unknown key type"))?;
        let key = super::SecretKey::new(
            algorithm,
            key_bytes(&secret.key, "secret key is not 32 bytes")?,
        );

        // Go KES would dereference a missing HMAC key; such a value was never
        // written by it, so it is rejected rather than guessed at.
        let hmac = proto
            .hmac_key
            .as_ref()
            .ok_or(KeyError::Invalid("missing HMAC key"))?;
        if hmac.hash != HASH_SHA256 {
            return Err(KeyError::Invalid("unknown HMAC hash"));
        }
        let hmac_key = super::HmacKey::new(key_bytes(&hmac.key, "HMAC key is not 32 bytes")?);

        // A missing timestamp reads as the Unix epoch, as in Go.
        let ts = proto.created_at.clone().unwrap_or_default();
        let nanos = i128::from(ts.seconds) * 1_000_000_000 + i128::from(ts.nanos);
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map_err(|_| KeyError::Invalid("created_at out of range"))?;

        Ok(super::KeyVersion {
            key,
            hmac_key: Some(hmac_key),
            created_at,
            created_by: proto.created_by.clone(),
        })
    }
}

/// The JSON form KES wrote before the protobuf encoding (spec §8.2).
mod legacy {
    use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
    use serde::Deserialize;

    use super::*;

    /// Go's zero `time.Time`, what keys without `created_at` carry.
    const GO_ZERO_TIME: OffsetDateTime = time::macros::datetime!(0001-01-01 0:00 UTC);

    #[derive(Default)]
    struct LegacyKey {
        bytes: Option<Zeroizing<Vec<u8>>>,
        algorithm: String,
        created_at: Option<OffsetDateTime>,
        created_by: String,
    }

    impl<'de> Deserialize<'de> for LegacyKey {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct LegacyVisitor;
            impl<'de> Visitor<'de> for LegacyVisitor {
                type Value = LegacyKey;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a legacy KES key object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LegacyKey, A::Error> {
                    let mut out = LegacyKey::default();
                    // Go's encoding/json: names match case-insensitively, the
                    // last occurrence wins, `null` leaves strings untouched.
                    while let Some(name) = map.next_key::<String>()? {
                        match crate::ciphertext::go_fold_key(&name).as_str() {
                            "bytes" => {
                                out.bytes =
                                    match map.next_value::<Option<String>>()?.map(Zeroizing::new) {
                                        None => None,
                                        Some(s) => Some(
                                            crate::ciphertext::decode_go_base64(&s).ok_or_else(
                                                || de::Error::custom("invalid base64"),
                                            )?,
                                        ),
                                    }
                            }
                            "algorithm" => {
                                if let Some(s) = map.next_value::<Option<String>>()? {
                                    out.algorithm = s;
                                }
                            }
                            "created_at" => {
                                if let Some(s) = map.next_value::<Option<String>>()? {
                                    out.created_at = Some(
                                        crate::timefmt::parse_rfc3339(&s)
                                            .ok_or_else(|| de::Error::custom("invalid time"))?,
                                    );
                                }
                            }
                            "created_by" => {
                                if let Some(s) = map.next_value::<Option<String>>()? {
                                    out.created_by = s;
                                }
                            }
                            _ => {
                                map.next_value::<IgnoredAny>()?;
                            }
                        }
                    }
                    Ok(out)
                }
            }
            deserializer.deserialize_map(LegacyVisitor)
        }
    }

    pub(super) fn decode(value: &[u8]) -> Result<super::KeyVersion, KeyError> {
        let legacy: LegacyKey = serde_json::from_slice(value)
            .map_err(|_| KeyError::Invalid("malformed legacy JSON key"))?;
        let algorithm = if legacy.algorithm.is_empty() {
            // Spec §16.9: keys without an algorithm are AES256.
            KeyAlgorithm::Aes256
        } else {
            KeyAlgorithm::parse(&legacy.algorithm).ok_or(KeyError::Invalid("unknown algorithm"))?
        };
        let bytes = legacy.bytes.unwrap_or_default();
        let key = SecretKey::new(algorithm, key_bytes(&bytes, "secret key is not 32 bytes")?);
        Ok(super::KeyVersion {
            key,
            hmac_key: None,
            created_at: legacy
                .created_at
                .map_or(GO_ZERO_TIME, |t| t.to_offset(time::UtcOffset::UTC)),
            created_by: legacy.created_by,
        })
    }
}
