//! `kes:v1:` API keys: an Ed25519 seed whose public key is the identity
//! (the Go KES's `kes:v1:` format: base64 of a type byte and the seed).

use crate::certgen;
use crate::identity::Identity;
use base64::Engine as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use zeroize::Zeroizing;

/// The string every current API key starts with.
const PREFIX: &str = "kes:v1:";

/// The type byte of an Ed25519 API key.
const TYPE_ED25519: u8 = 0;

/// DER of an Ed25519 SubjectPublicKeyInfo up to the 32 public key bytes
/// (OID 1.3.101.112, RFC 8410).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// DER of a PKCS#8 v1 Ed25519 private key up to the 32 seed bytes; the
/// 48-byte form Go's `x509.MarshalPKCS8PrivateKey` and OpenSSL write.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// How long the certificate built from an API key is valid.
const CLIENT_CERTIFICATE_VALIDITY: std::time::Duration =
    std::time::Duration::from_secs(90 * 24 * 60 * 60);

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

/// Why a PKCS#8 private key is not an Ed25519 key an API key can be made of.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("kes: private key is not an Ed25519 PKCS#8 private key")]
pub struct NotEd25519Key;

/// A client certificate built from an API key, DER-encoded.
pub struct ClientCertificate {
    /// The self-signed X.509 certificate.
    pub certificate_der: Vec<u8>,
    /// The PKCS#8 private key.
    pub private_key_der: zeroize::Zeroizing<Vec<u8>>,
}

impl ClientCertificate {
    /// The certificate as rustls wants it.
    pub fn certificate(&self) -> CertificateDer<'static> {
        CertificateDer::from(self.certificate_der.clone())
    }

    /// The private key as rustls wants it.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.private_key_der.to_vec()))
    }

    /// The certificate as a PEM `CERTIFICATE` block.
    pub fn certificate_pem(&self) -> String {
        crate::pem::encode("CERTIFICATE", &self.certificate_der)
    }

    /// The private key as a PEM `PRIVATE KEY` block. Contains the secret.
    pub fn private_key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(crate::pem::encode("PRIVATE KEY", &self.private_key_der))
    }
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field(
                "certificate_der",
                &format_args!("<{} bytes>", self.certificate_der.len()),
            )
            .field("private_key_der", &format_args!("<redacted>"))
            .finish()
    }
}

impl ApiKey {
    /// A fresh random API key.
    pub fn generate() -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        crate::random::fill(seed.as_mut());
        Self { seed }
    }

    /// Parses `kes:v1:<base64>` (or the bare base64).
    pub fn parse(s: &str) -> Result<Self, ApiKeyError> {
        let encoded = s.strip_prefix(PREFIX).unwrap_or(s);
        let decoded = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| ApiKeyError::InvalidBase64)?,
        );
        if decoded.len() != 33 {
            return Err(ApiKeyError::InvalidLength);
        }
        if decoded[0] != TYPE_ED25519 {
            return Err(ApiKeyError::UnsupportedType);
        }
        let mut seed = Zeroizing::new([0u8; 32]);
        seed.copy_from_slice(&decoded[1..]);
        Ok(Self { seed })
    }

    /// The API key from a raw Ed25519 seed.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self {
            seed: zeroize::Zeroizing::new(seed),
        }
    }

    /// The API key whose seed is the given Ed25519 PKCS#8 private key (v1 or
    /// v2), as written by `kes identity new`.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, NotEd25519Key> {
        use aws_lc_rs::encoding::AsBigEndian as _;
        let key_pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| NotEd25519Key)?;
        let seed = key_pair.seed().map_err(|_| NotEd25519Key)?;
        let bytes = seed.as_be_bytes().map_err(|_| NotEd25519Key)?;
        let bytes: &[u8] = bytes.as_ref();
        if bytes.len() != 32 {
            return Err(NotEd25519Key);
        }
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(bytes);
        Ok(Self { seed: out })
    }

    /// The 32-byte Ed25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        use aws_lc_rs::signature::KeyPair as _;
        // Every 32-byte string is a valid Ed25519 seed, so this cannot fail.
        let key_pair =
            aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(self.seed.as_ref())
                .expect("an Ed25519 seed is any 32 bytes");
        let mut public = [0u8; 32];
        public.copy_from_slice(key_pair.public_key().as_ref());
        public
    }

    /// The DER SubjectPublicKeyInfo of the key's public key (44 bytes).
    pub fn public_key_spki_der(&self) -> [u8; 44] {
        let mut spki = [0u8; 44];
        spki[..12].copy_from_slice(&ED25519_SPKI_PREFIX);
        spki[12..].copy_from_slice(&self.public_key());
        spki
    }

    /// The identity of the key's public key.
    pub fn identity(&self) -> Identity {
        Identity::from_spki_der(&self.public_key_spki_der())
    }

    /// The `kes:v1:` string. Contains the secret.
    pub fn to_kes_string(&self) -> zeroize::Zeroizing<String> {
        let mut raw = Zeroizing::new([0u8; 33]);
        raw[0] = TYPE_ED25519;
        raw[1..].copy_from_slice(self.seed.as_ref());
        let mut s = Zeroizing::new(String::with_capacity(PREFIX.len() + 44));
        s.push_str(PREFIX);
        base64::engine::general_purpose::STANDARD.encode_string(raw.as_ref(), &mut s);
        s
    }

    /// The private key as DER PKCS#8 v1 (48 bytes). Contains the secret.
    pub fn to_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        let mut der = Zeroizing::new(Vec::with_capacity(48));
        der.extend_from_slice(&ED25519_PKCS8_PREFIX);
        der.extend_from_slice(self.seed.as_ref());
        der
    }

    /// The self-signed client certificate a KES client presents for this key
    /// (as the Go SDK makes it: CN = identity, valid 90 days, clientAuth).
    pub fn client_certificate(&self) -> Result<ClientCertificate, crate::certgen::CertError> {
        let options = certgen::CertificateOptions {
            subject: None,
            ip_addresses: Vec::new(),
            dns_names: Vec::new(),
            validity: CLIENT_CERTIFICATE_VALIDITY,
            server_auth: false,
        };
        certgen::certificate_for_api_key(self, &options)
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}
