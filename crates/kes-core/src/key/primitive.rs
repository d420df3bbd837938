//! The primitives the ciphertext format is built from, public only so that
//! the Wycheproof tests and the benchmarks exercise exactly these calls.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, CHACHA20_POLY1305};
use hmac::{Hmac, KeyInit as _, Mac as _};
use zeroize::{Zeroize as _, Zeroizing};

use super::KeyAlgorithm;
use crate::ciphertext::{IV_LEN, NONCE_LEN, TAG_LEN};

/// Decryption failed: wrong key, wrong context, tampered or malformed
/// ciphertext. Deliberately carries no detail.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[error("decryption failed: ciphertext is not authentic")]
pub struct DecryptError;

/// The AEADs only fail to seal messages beyond 2^36 bytes, which no API
/// request can carry.
const TOO_LONG: &str = "plaintext exceeds the AEAD's length limit";

/// HMAC-SHA256; the AES256 per-message key derivation and the HMAC API.
/// Returned zeroizing because it is a key in the first use.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut mac =
        <Hmac<sha2::Sha256>>::new_from_slice(key).expect("HMAC accepts keys of any length");
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

/// The per-message key of `algorithm`: HMAC-SHA256 (AES256) or HChaCha20
/// (ChaCha20) of the master key and the ciphertext's iv.
pub fn derive_key(
    algorithm: KeyAlgorithm,
    master: &[u8; 32],
    iv: &[u8; IV_LEN],
) -> Zeroizing<[u8; 32]> {
    match algorithm {
        KeyAlgorithm::Aes256 => hmac_sha256(master, iv),
        KeyAlgorithm::ChaCha20 => hchacha20(master, iv),
    }
}

/// The AEAD of `algorithm` keyed with a per-message key.
fn aead(algorithm: KeyAlgorithm, key: &[u8; 32]) -> LessSafeKey {
    let algorithm = match algorithm {
        KeyAlgorithm::Aes256 => &AES_256_GCM,
        KeyAlgorithm::ChaCha20 => &CHACHA20_POLY1305,
    };
    // Both algorithms take 32-byte keys, the only way this could fail.
    LessSafeKey::new(UnboundKey::new(algorithm, key).expect("AEAD key of 32 bytes"))
}

/// Encrypts `buffer` in place with AES-256-GCM (AES256) or
/// ChaCha20-Poly1305 (ChaCha20) and returns the tag.
pub fn seal(
    algorithm: KeyAlgorithm,
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

/// Decrypts `buffer` in place with the AEAD of `algorithm` if `tag` is
/// authentic.
pub fn open(
    algorithm: KeyAlgorithm,
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
