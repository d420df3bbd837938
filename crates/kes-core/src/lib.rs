#![warn(missing_docs)]
//! The core of KES: everything that can be expressed without I/O or async.
//!
//! - [`identity`]: the identity of a client certificate and leaf selection.
//! - [`api`]: the JSON bodies of the API, for the server and the SDK.
//! - [`apikey`]: `kes:v1:` API keys and the client certificate built from one.
//! - [`name`]: validation of key, policy and identity names and list patterns.
//! - [`policy`]: the allow/deny matcher.
//! - [`key`]: secret keys, HMAC keys and their key-store encoding.
//! - [`ring`]: the versions of a rotated key.
//! - [`ciphertext`]: the ciphertext formats (current and legacy).
//! - [`error`]: the API error (HTTP status plus the exact message clients compare).
//! - [`gocompat`]: Go's JSON and base64 rules (request bodies, legacy
//!   ciphertexts, JSON documents as Go writes them).
//! - [`pem`]: PEM decoding, including legacy encrypted private keys.
//! - [`certgen`]: certificates for `kes identity new` and the API-key client certificate.
//! - [`timefmt`]: Go-compatible RFC 3339 timestamps.
//! - [`duration`]: Go-syntax durations (`5m0s`).
//! - [`random`]: the one random source (keys, ivs, serials, jitter).

pub mod api;
pub mod apikey;
pub mod certgen;
#[cfg(feature = "crypto")]
pub mod ciphertext;
pub mod duration;
pub mod error;
pub mod gocompat;
pub mod identity;
#[cfg(feature = "crypto")]
pub mod key;
pub mod name;
pub mod pem;
pub mod policy;
pub mod random;
#[cfg(feature = "crypto")]
pub mod ring;
pub mod sync;
pub mod timefmt;
#[cfg(feature = "tls")]
pub mod tls;

pub use apikey::ApiKey;
pub use error::ApiError;
pub use identity::Identity;
#[cfg(feature = "crypto")]
pub use key::{HmacKey, KeyAlgorithm, KeyVersion, SecretKey};
pub use policy::Policy;
