//! Secret keys, HMAC keys and key versions with their key-store encoding.
//!
//! Every ciphertext is encrypted under a fresh per-message key derived from
//! the master key and a random 16-byte iv, as the Go KES does, so the AEADs
//! never see the master key and never reuse a (key, nonce) pair in practice.
//!
//! - `algorithm`: [`KeyAlgorithm`], its names and the default for this CPU.
//! - `secret`: [`SecretKey`], [`HmacKey`] and [`KeyVersion`].
//! - [`primitive`]: the derivations and AEADs ciphertexts are built from.
//! - `storage`: the key-store encoding of a [`KeyVersion`] (protobuf and
//!   legacy JSON).

mod algorithm;
#[doc(hidden)]
pub mod primitive;
mod secret;
mod storage;

pub use algorithm::KeyAlgorithm;
pub use primitive::DecryptError;
pub use secret::{HmacKey, KeyVersion, SecretKey};
pub use storage::KeyError;
