//! `kes:v1:` API keys: an Ed25519 seed whose public key is the identity.
//!
//! SKELETON: bodies to be filled in (issue 2).

use crate::identity::Identity;

/// A KES API key (`kes:v1:` + base64 of `0x00 || seed32`). Zeroized on drop;
/// `Debug` never prints the seed.
pub struct ApiKey {
    seed: zeroize::Zeroizing<[u8; 32]>,
}

/// Why a string is not an API key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApiKeyError {
    /// Not valid standard base64.
    #[error("kes: invalid API key: invalid base64")]
    InvalidBase64,
    /// Not 33 bytes after decoding.
    #[error("kes: invalid API key: invalid length")]
    InvalidLength,
    /// The type byte is not 0 (Ed25519).
    #[error("kes: invalid API key: unsupported type")]
    UnsupportedType,
}

/// A client certificate built from an API key, DER-encoded.
pub struct ClientCertificate {
    /// The self-signed X.509 certificate.
    pub certificate_der: Vec<u8>,
    /// The PKCS#8 private key.
    pub private_key_der: zeroize::Zeroizing<Vec<u8>>,
}

impl ApiKey {
    /// A fresh random API key.
    pub fn generate() -> Self {
        todo!()
    }

    /// Parses `kes:v1:<base64>` (or the bare base64).
    pub fn parse(s: &str) -> Result<Self, ApiKeyError> {
        let _ = s;
        todo!()
    }

    /// The API key from a raw Ed25519 seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            seed: zeroize::Zeroizing::new(seed),
        }
    }

    /// The identity of the key's public key.
    pub fn identity(&self) -> Identity {
        todo!()
    }

    /// The `kes:v1:` string. Contains the secret.
    pub fn to_kes_string(&self) -> zeroize::Zeroizing<String> {
        let _ = &self.seed;
        todo!()
    }

    /// The self-signed client certificate a KES client presents for this key
    /// (spec §3.3: CN = identity, 90 days, clientAuth).
    pub fn client_certificate(&self) -> Result<ClientCertificate, crate::certgen::CertError> {
        todo!()
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}
