//! PEM decoding of certificates and private keys, including legacy
//! RFC 1423 encrypted private keys (`Proc-Type: 4,ENCRYPTED`), and the
//! encoding `kes identity new` writes.
//!
//! The legacy encryption is what Go's `x509.EncryptPEMBlock` and OpenSSL's
//! traditional format produce: CBC with PKCS#7 padding, the key derived from
//! the password and the first 8 IV bytes with OpenSSL's `EVP_BytesToKey`
//! (MD5, one iteration). It is weak by today's standards but it is what KES
//! users have on disk, so it is supported for reading and for
//! `kes identity new --encrypt`.

use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit};
use md5::{Digest, Md5};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use zeroize::Zeroizing;

/// Why PEM data could not be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    /// A block is not well-formed PEM.
    #[error("invalid PEM: {0}")]
    Malformed(String),
    /// No `CERTIFICATE` block was found.
    #[error("no certificate found in PEM data")]
    NoCertificate,
    /// No private key block was found.
    #[error("no private key found in PEM data")]
    NoPrivateKey,
    /// More than one private key block was found.
    #[error("more than one private key found in PEM data")]
    TooManyPrivateKeys,
    /// A block type that is neither a certificate nor a supported key.
    #[error("unsupported PEM block type '{0}'")]
    UnsupportedBlock(String),
    /// The key is encrypted but no password was given.
    #[error("private key is encrypted: password required")]
    PasswordRequired,
    /// The key is encrypted with something other than RFC 1423 CBC ciphers.
    #[error("private key is encrypted with an unsupported cipher '{0}'")]
    UnsupportedCipher(String),
    /// Decryption failed: almost always a wrong password.
    #[error("failed to decrypt private key: incorrect password")]
    IncorrectPassword,
    /// The (decrypted) key bytes are not a DER structure.
    #[error("invalid private key: not DER-encoded")]
    InvalidKey,
}

/// One PEM block. The contents of private key blocks are zeroized on drop.
pub struct Block {
    /// The label between `BEGIN ` and `-----`, e.g. `CERTIFICATE`.
    pub label: String,
    /// RFC 1421 headers (`Proc-Type`, `DEK-Info`), in order.
    pub headers: Vec<(String, String)>,
    /// The decoded base64 body.
    pub contents: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Block {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Block")
            .field("label", &self.label)
            .field("headers", &self.headers)
            .field("contents", &format_args!("<{} bytes>", self.contents.len()))
            .finish()
    }
}

impl Block {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Reports whether the block is an RFC 1423 encrypted block. Like Go's
    /// `x509.IsEncryptedPEMBlock`, a `DEK-Info` header alone is enough.
    pub fn is_encrypted(&self) -> bool {
        self.header("Proc-Type") == Some("4,ENCRYPTED") || self.header("DEK-Info").is_some()
    }
}

/// Decodes every PEM block of `data`. Text between blocks is ignored; lines
/// may carry surrounding whitespace and `\r\n` endings.
pub fn decode_blocks(data: &[u8]) -> Result<Vec<Block>, PemError> {
    let mut blocks = Vec::new();
    let mut lines = data.split(|b| *b == b'\n').map(|line| line.trim_ascii());
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix(b"-----BEGIN ")
            .and_then(|rest| rest.strip_suffix(b"-----"))
        else {
            continue;
        };
        let label = std::str::from_utf8(label)
            .map_err(|_| PemError::Malformed("block label is not text".into()))?
            .to_string();
        let end = format!("-----END {label}-----");

        let mut headers = Vec::new();
        let mut body = Zeroizing::new(Vec::new());
        let mut in_headers = true;
        let mut ended = false;
        for line in lines.by_ref() {
            if line == end.as_bytes() {
                ended = true;
                break;
            }
            if line.starts_with(b"-----") {
                return Err(PemError::Malformed(format!(
                    "block '{label}' has no matching END line"
                )));
            }
            if in_headers {
                if let Some(colon) = line.iter().position(|b| *b == b':') {
                    let key = String::from_utf8_lossy(line[..colon].trim_ascii()).into_owned();
                    let value =
                        String::from_utf8_lossy(line[colon + 1..].trim_ascii()).into_owned();
                    headers.push((key, value));
                    continue;
                }
                in_headers = false;
            }
            body.extend(line.iter().filter(|b| !b.is_ascii_whitespace()));
        }
        if !ended {
            return Err(PemError::Malformed(format!(
                "block '{label}' has no matching END line"
            )));
        }
        let contents = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(body.as_slice())
                .map_err(|_| PemError::Malformed(format!("block '{label}' is not valid base64")))?,
        );
        blocks.push(Block {
            label,
            headers,
            contents,
        });
    }
    Ok(blocks)
}

/// Every `CERTIFICATE` block of `data`, in order. Other blocks are skipped;
/// at least one certificate must be present.
pub fn parse_certificates(data: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certificates: Vec<_> = decode_blocks(data)?
        .into_iter()
        .filter(|block| block.label == "CERTIFICATE")
        .map(|block| CertificateDer::from(block.contents.to_vec()))
        .collect();
    if certificates.is_empty() {
        return Err(PemError::NoCertificate);
    }
    Ok(certificates)
}

/// The private key of `data`: PKCS#8 (`PRIVATE KEY`), PKCS#1
/// (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`), possibly encrypted as in
/// RFC 1423. `CERTIFICATE` blocks are skipped; other blocks are rejected.
/// An empty password counts as no password.
pub fn parse_private_key(
    data: &[u8],
    password: Option<&[u8]>,
) -> Result<PrivateKeyDer<'static>, PemError> {
    let mut key = None;
    for block in decode_blocks(data)? {
        let wrap: fn(Vec<u8>) -> PrivateKeyDer<'static> = match block.label.as_str() {
            "CERTIFICATE" => continue,
            "PRIVATE KEY" => |der| PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
            "RSA PRIVATE KEY" => |der| PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)),
            "EC PRIVATE KEY" => |der| PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der)),
            other => return Err(PemError::UnsupportedBlock(other.to_string())),
        };
        if key.is_some() {
            return Err(PemError::TooManyPrivateKeys);
        }
        let der = if block.is_encrypted() {
            match password {
                Some(password) if !password.is_empty() => decrypt_block(&block, password)?,
                _ => return Err(PemError::PasswordRequired),
            }
        } else {
            if !is_der_sequence(&block.contents) {
                return Err(PemError::InvalidKey);
            }
            block.contents.clone()
        };
        // PrivateKeyDer owns a plain Vec; the copy here is the one rustls
        // keeps, the intermediate buffers are zeroized.
        key = Some(wrap(der.to_vec()));
    }
    key.ok_or(PemError::NoPrivateKey)
}

/// Encodes DER bytes as a PEM block with 64-character lines.
pub fn encode(label: &str, der: &[u8]) -> String {
    encode_with_headers(label, &[], der)
}

fn encode_with_headers(label: &str, headers: &[(&str, &str)], der: &[u8]) -> String {
    let body = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(der));
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 64);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for (key, value) in headers {
        out.push_str(key);
        out.push_str(": ");
        out.push_str(value);
        out.push('\n');
    }
    if !headers.is_empty() {
        out.push('\n');
    }
    for chunk in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Encrypts a PKCS#8 private key into a legacy RFC 1423 `PRIVATE KEY` block
/// with AES-256-CBC, as Go's `x509.EncryptPEMBlock` does for
/// `kes identity new --encrypt`.
pub fn encrypt_private_key(
    pkcs8_der: &[u8],
    password: &[u8],
) -> Result<Zeroizing<String>, PemError> {
    let cipher = Cipher::Aes256;
    let mut iv = [0u8; 16];
    crate::random::fill(&mut iv);
    let key = derive_key(password, &iv[..8], cipher.key_len());

    let padded_len = (pkcs8_der.len() / 16 + 1) * 16;
    let mut buf = Zeroizing::new(vec![0u8; padded_len]);
    buf[..pkcs8_der.len()].copy_from_slice(pkcs8_der);
    let encrypted = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv)
        .map_err(|_| PemError::InvalidKey)?
        .encrypt_padded::<Pkcs7>(&mut buf, pkcs8_der.len())
        .map_err(|_| PemError::InvalidKey)?
        .to_vec();
    let dek_info = format!("AES-256-CBC,{}", hex::encode(iv));
    Ok(Zeroizing::new(encode_with_headers(
        "PRIVATE KEY",
        &[("Proc-Type", "4,ENCRYPTED"), ("DEK-Info", &dek_info)],
        &encrypted,
    )))
}

/// The RFC 1423 ciphers Go's `x509.DecryptPEMBlock` supports.
#[derive(Clone, Copy)]
enum Cipher {
    Des,
    TripleDes,
    Aes128,
    Aes192,
    Aes256,
}

impl Cipher {
    fn from_name(name: &str) -> Option<Self> {
        match name {
            "DES-CBC" => Some(Self::Des),
            "DES-EDE3-CBC" => Some(Self::TripleDes),
            "AES-128-CBC" => Some(Self::Aes128),
            "AES-192-CBC" => Some(Self::Aes192),
            "AES-256-CBC" => Some(Self::Aes256),
            _ => None,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Self::Des => 8,
            Self::TripleDes => 24,
            Self::Aes128 => 16,
            Self::Aes192 => 24,
            Self::Aes256 => 32,
        }
    }

    fn block_len(self) -> usize {
        match self {
            Self::Des | Self::TripleDes => 8,
            Self::Aes128 | Self::Aes192 | Self::Aes256 => 16,
        }
    }

    /// Decrypts `buf` in place and returns the unpadded length.
    fn decrypt(self, key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<usize, PemError> {
        fn run<C: BlockModeDecrypt + KeyIvInit>(
            key: &[u8],
            iv: &[u8],
            buf: &mut [u8],
        ) -> Result<usize, PemError> {
            let mode = C::new_from_slices(key, iv).map_err(|_| PemError::IncorrectPassword)?;
            mode.decrypt_padded::<Pkcs7>(buf)
                .map(|plain| plain.len())
                .map_err(|_| PemError::IncorrectPassword)
        }
        match self {
            Self::Des => run::<cbc::Decryptor<des::Des>>(key, iv, buf),
            Self::TripleDes => run::<cbc::Decryptor<des::TdesEde3>>(key, iv, buf),
            Self::Aes128 => run::<cbc::Decryptor<aes::Aes128>>(key, iv, buf),
            Self::Aes192 => run::<cbc::Decryptor<aes::Aes192>>(key, iv, buf),
            Self::Aes256 => run::<cbc::Decryptor<aes::Aes256>>(key, iv, buf),
        }
    }
}

fn decrypt_block(block: &Block, password: &[u8]) -> Result<Zeroizing<Vec<u8>>, PemError> {
    let dek_info = block
        .header("DEK-Info")
        .ok_or_else(|| PemError::Malformed("encrypted block has no DEK-Info header".into()))?;
    let (name, iv_hex) = dek_info
        .split_once(',')
        .ok_or_else(|| PemError::Malformed("malformed DEK-Info header".into()))?;
    let cipher = Cipher::from_name(name.trim())
        .ok_or_else(|| PemError::UnsupportedCipher(name.trim().to_string()))?;
    let iv = hex::decode(iv_hex.trim())
        .map_err(|_| PemError::Malformed("malformed DEK-Info IV".into()))?;
    if iv.len() != cipher.block_len() {
        return Err(PemError::Malformed("DEK-Info IV has the wrong size".into()));
    }
    let len = block.contents.len();
    if len == 0 || len % cipher.block_len() != 0 {
        return Err(PemError::Malformed(
            "encrypted data is not a multiple of the block size".into(),
        ));
    }
    let key = derive_key(password, &iv[..8], cipher.key_len());
    let mut buf = block.contents.clone();
    let plain_len = cipher.decrypt(&key, &iv, &mut buf)?;
    buf.truncate(plain_len);
    // One wrong password in ~256 still yields valid padding; the DER check
    // catches nearly all of those.
    if !is_der_sequence(&buf) {
        return Err(PemError::IncorrectPassword);
    }
    Ok(buf)
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one iteration:
/// `D_i = MD5(D_{i-1} || password || salt)`, key = `D_1 || D_2 || …`.
fn derive_key(password: &[u8], salt: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(Vec::with_capacity(len + 16));
    let mut previous = Zeroizing::new(Vec::new());
    while key.len() < len {
        let mut md5 = Md5::new();
        md5.update(previous.as_slice());
        md5.update(password);
        md5.update(salt);
        let digest = md5.finalize();
        previous = Zeroizing::new(digest.to_vec());
        key.extend_from_slice(&digest);
    }
    key.truncate(len);
    key
}

/// Reports whether `der` is exactly one DER SEQUENCE (tag and length only;
/// the content is checked by whoever uses the key).
fn is_der_sequence(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else {
        return false;
    };
    let (len, body) = match *first {
        n if n < 0x80 => (usize::from(n), rest),
        0x81..=0x84 => {
            let count = usize::from(*first - 0x80);
            if rest.len() < count {
                return false;
            }
            let len = rest[..count]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, &rest[count..])
        }
        _ => return false,
    };
    len == body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evp_bytes_to_key_matches_openssl() {
        // `openssl enc -aes-256-cbc -P -md md5 -pass pass:password -S 0102030405060708`
        let key = derive_key(b"password", &[1, 2, 3, 4, 5, 6, 7, 8], 32);
        assert_eq!(hex::encode(key.as_slice()), OPENSSL_KEY,);
    }

    const OPENSSL_KEY: &str = "e7b0971e52ca5cc8d0539fb3412f6316f7ba2e6ee293d9f3457b99436b51ce02";

    #[test]
    fn der_sequence_lengths() {
        assert!(is_der_sequence(&[0x30, 0x00]));
        assert!(is_der_sequence(&[0x30, 0x81, 0x01, 0x05]));
        assert!(!is_der_sequence(&[0x30, 0x02, 0x05]));
        assert!(!is_der_sequence(&[0x31, 0x00]));
        assert!(!is_der_sequence(&[]));
        assert!(!is_der_sequence(&[0x30, 0x82, 0x01]));
    }
}
