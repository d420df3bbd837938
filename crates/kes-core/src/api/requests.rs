//! The request bodies the SDK sends and the server decodes (through
//! [`crate::gocompat::GoJson`], by the `FIELDS` each lists).

use super::is_empty;
use serde::Serialize;

/// `POST /v1/key/import/<name>`: a raw 32-byte key, base64, and its
/// algorithm (`AES256` or `ChaCha20`).
// No Debug: the key is a secret.
#[derive(Serialize)]
pub struct ImportKeyRequest<S = String> {
    /// The key (a secret).
    pub key: S,
    /// The algorithm.
    pub cipher: S,
}

impl ImportKeyRequest {
    /// The fields the server decodes.
    pub const FIELDS: &'static [&'static str] = &["key", "cipher"];
}

/// `POST /v1/key/retire/<name>`: how many of the newest versions to keep.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RetireKeyRequest {
    /// At least 1.
    pub keep: u32,
}

impl RetireKeyRequest {
    /// The fields the server decodes.
    pub const FIELDS: &'static [&'static str] = &["keep"];
}

/// `POST /v1/key/generate/<name>`: the context the data key is bound to,
/// base64. A request without a context has no body.
#[derive(Debug, Clone, Serialize)]
#[serde(bound(serialize = "S: Serialize + AsRef<str>"))]
pub struct GenerateKeyRequest<S = String> {
    /// The context.
    pub context: S,
    /// The key version to use (a decimal string); empty: the current one
    /// to seal, any retained one to open.
    #[serde(skip_serializing_if = "is_empty")]
    pub version: S,
}

impl GenerateKeyRequest {
    /// The fields the server decodes.
    pub const FIELDS: &'static [&'static str] = &["context", "version"];
}

/// `POST /v1/key/encrypt/<name>`: a plaintext and its context, base64; the
/// context left out when empty, as the Go SDK sends it.
// No Debug: the plaintext is a secret.
#[derive(Serialize)]
#[serde(bound(serialize = "S: Serialize + AsRef<str>"))]
pub struct EncryptKeyRequest<S = String> {
    /// The plaintext (a secret).
    pub plaintext: S,
    /// The context.
    #[serde(skip_serializing_if = "is_empty")]
    pub context: S,
    /// The key version to use (a decimal string); empty: the current one
    /// to seal, any retained one to open.
    #[serde(skip_serializing_if = "is_empty")]
    pub version: S,
}

impl EncryptKeyRequest {
    /// The fields the server decodes.
    pub const FIELDS: &'static [&'static str] = &["plaintext", "context", "version"];
}

/// `POST /v1/key/decrypt/<name>` (and each entry of the legacy bulk
/// decrypt): a ciphertext and its context, base64; the context left out
/// when empty.
#[derive(Debug, Clone, Serialize)]
#[serde(bound(serialize = "S: Serialize + AsRef<str>"))]
pub struct DecryptKeyRequest<S = String> {
    /// The ciphertext.
    pub ciphertext: S,
    /// The context.
    #[serde(skip_serializing_if = "is_empty")]
    pub context: S,
    /// The key version to use (a decimal string); empty: the current one
    /// to seal, any retained one to open.
    #[serde(skip_serializing_if = "is_empty")]
    pub version: S,
}

impl DecryptKeyRequest {
    /// The fields the server decodes.
    pub const FIELDS: &'static [&'static str] = &["ciphertext", "context", "version"];
}

/// `PUT /v1/key/hmac/<name>`: the message, base64.
// No Debug: the message may be a secret (MinIO derives credentials).
#[derive(Serialize)]
#[serde(bound(serialize = "S: Serialize + AsRef<str>"))]
pub struct HmacRequest<S = String> {
    /// The message.
    pub message: S,
    /// The key version to use (a decimal string); empty: the current one
    /// to seal, any retained one to open.
    #[serde(skip_serializing_if = "is_empty")]
    pub version: S,
}

impl HmacRequest {
    /// The fields the server decodes.
    pub const FIELDS: &'static [&'static str] = &["message", "version"];
}
