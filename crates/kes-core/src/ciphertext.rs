//! Ciphertext formats: the current raw format `sealed || iv16 || nonce12`,
//! and the legacy JSON and MessagePack formats that older KES versions wrote.
//!
//! Parsing only splits a ciphertext into its parts; authenticity is decided
//! by [`crate::key::SecretKey::decrypt`]. Every legacy format is normalised
//! to the parts of the raw format, so there is one decryption path.

use std::borrow::Cow;

use crate::gocompat::GoJson;

/// Length of the per-message key-derivation input.
pub const IV_LEN: usize = 16;
/// Length of the AEAD nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the AEAD authentication tag.
pub const TAG_LEN: usize = 16;
/// Bytes a ciphertext has in addition to its plaintext: tag, iv and nonce.
pub const OVERHEAD: usize = TAG_LEN + IV_LEN + NONCE_LEN;

/// Where a ciphertext came from; only the parts matter for decryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `sealed || iv || nonce`, written since KES 2023-10.
    Raw,
    /// `{"aead":…,"iv":…,"nonce":…,"bytes":…}`, written by KES up to 2021.
    Json,
    /// A 5-element MessagePack array, written by KES 2022 to 2023-10.
    MessagePack,
}

/// A ciphertext split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ciphertext<'a> {
    /// The format the ciphertext was parsed from.
    pub format: Format,
    /// AEAD output: encrypted plaintext followed by the tag.
    pub sealed: Cow<'a, [u8]>,
    /// Input of the per-message key derivation.
    pub iv: [u8; IV_LEN],
    /// AEAD nonce.
    pub nonce: [u8; NONCE_LEN],
}

/// The bytes are not a ciphertext in any known format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed ciphertext")]
pub struct MalformedCiphertext;

/// Algorithm labels the MessagePack format may carry. The label does not
/// select the algorithm (the key does), it only has to be one KES wrote.
const MSGPACK_ALGORITHMS: [&[u8]; 4] = [
    b"AES256",
    b"AES256-GCM_SHA256",
    b"ChaCha20",
    b"XCHACHA20-POLY1305",
];

/// Algorithm labels the legacy JSON format may carry.
const JSON_ALGORITHMS: [&str; 2] = ["AES-256-GCM-HMAC-SHA-256", "ChaCha20Poly1305"];

impl<'a> Ciphertext<'a> {
    /// Splits `bytes` into its parts, detecting the format as KES does: a
    /// leading `0x95` or `{` is tried as MessagePack or JSON first, and
    /// whatever does not parse as a legacy format is read as raw.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, MalformedCiphertext> {
        let legacy = match bytes.first() {
            Some(0x95) => parse_msgpack(bytes),
            Some(b'{') => parse_json(bytes),
            _ => None,
        };
        match legacy {
            Some(ciphertext) => Ok(ciphertext),
            None => parse_raw(bytes),
        }
    }

    /// The raw-format bytes `sealed || iv || nonce`.
    pub fn to_raw(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.sealed.len() + IV_LEN + NONCE_LEN);
        out.extend_from_slice(&self.sealed);
        out.extend_from_slice(&self.iv);
        out.extend_from_slice(&self.nonce);
        out
    }
}

fn parse_raw(bytes: &[u8]) -> Result<Ciphertext<'_>, MalformedCiphertext> {
    if bytes.len() <= IV_LEN + NONCE_LEN {
        return Err(MalformedCiphertext);
    }
    let (sealed, rest) = bytes.split_at(bytes.len() - IV_LEN - NONCE_LEN);
    let (iv, nonce) = rest.split_at(IV_LEN);
    Ok(Ciphertext {
        format: Format::Raw,
        sealed: Cow::Borrowed(sealed),
        iv: iv.try_into().map_err(|_| MalformedCiphertext)?,
        nonce: nonce.try_into().map_err(|_| MalformedCiphertext)?,
    })
}

/// Reads one MessagePack str or bin value. KES decoded these fields with a
/// generic MessagePack reader, so any width of either family is accepted.
fn msgpack_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let (&marker, rest) = input.split_first()?;
    let (len, rest) = match marker {
        0xa0..=0xbf => (usize::from(marker & 0x1f), rest),
        0xc4 | 0xd9 => {
            let (&len, rest) = rest.split_first()?;
            (usize::from(len), rest)
        }
        0xc5 | 0xda => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            (usize::from(u16::from_be_bytes(*len)), rest)
        }
        0xc6 | 0xdb => {
            let (len, rest) = rest.split_first_chunk::<4>()?;
            (usize::try_from(u32::from_be_bytes(*len)).ok()?, rest)
        }
        _ => return None,
    };
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    *input = rest;
    Some(value)
}

fn parse_msgpack(bytes: &[u8]) -> Option<Ciphertext<'_>> {
    let (&0x95, mut rest) = bytes.split_first()? else {
        return None;
    };
    let algorithm = msgpack_bytes(&mut rest)?;
    let _key_id = msgpack_bytes(&mut rest)?;
    let iv = msgpack_bytes(&mut rest)?;
    let nonce = msgpack_bytes(&mut rest)?;
    let sealed = msgpack_bytes(&mut rest)?;
    if !rest.is_empty() || !MSGPACK_ALGORITHMS.contains(&algorithm) {
        return None;
    }
    Some(Ciphertext {
        format: Format::MessagePack,
        sealed: Cow::Borrowed(sealed),
        iv: iv.try_into().ok()?,
        nonce: nonce.try_into().ok()?,
    })
}

/// The legacy JSON ciphertext, decoded as the Go KES's `json.Unmarshal`
/// into its struct did: Go's field folding, the last matching key wins, a
/// field of the wrong type fails, and an `id` field must be a string.
fn parse_json(bytes: &[u8]) -> Option<Ciphertext<'static>> {
    let json = GoJson::parse_document(bytes, &["aead", "id", "iv", "nonce", "bytes"]).ok()?;
    if !JSON_ALGORITHMS.contains(&json.string("aead").ok()?.as_str()) {
        return None;
    }
    json.string("id").ok()?;
    Some(Ciphertext {
        format: Format::Json,
        iv: json.bytes("iv").ok()?.as_slice().try_into().ok()?,
        nonce: json.bytes("nonce").ok()?.as_slice().try_into().ok()?,
        sealed: Cow::Owned(json.bytes("bytes").ok()?.to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_needs_more_than_iv_and_nonce() {
        assert_eq!(Ciphertext::parse(&[7; 28]), Err(MalformedCiphertext));
        assert_eq!(Ciphertext::parse(&[]), Err(MalformedCiphertext));
        let c = Ciphertext::parse(&[7; 29]).unwrap();
        assert_eq!(c.format, Format::Raw);
        assert_eq!(c.sealed.len(), 1);
    }

    #[test]
    fn msgpack_accepts_wide_encodings_and_rejects_trailing_bytes() {
        let mut m = vec![0x95, 0xda, 0, 6];
        m.extend_from_slice(b"AES256");
        m.extend_from_slice(&[0xc6, 0, 0, 0, 0]);
        m.extend_from_slice(&[0xc5, 0, 16]);
        m.extend_from_slice(&[1; 16]);
        m.extend_from_slice(&[0xd9, 12]);
        m.extend_from_slice(&[2; 12]);
        m.extend_from_slice(&[0xc4, 17]);
        m.extend_from_slice(&[3; 17]);
        let c = Ciphertext::parse(&m).unwrap();
        assert_eq!(c.format, Format::MessagePack);
        assert_eq!((c.iv, c.nonce), ([1; 16], [2; 12]));
        assert_eq!(&*c.sealed, &[3; 17]);

        m.push(0);
        assert_eq!(Ciphertext::parse(&m).unwrap().format, Format::Raw);
    }

    #[test]
    fn json_field_names_fold_like_go() {
        let json = br#"{"AEAD":"ChaCha20Poly1305","Iv":"AAAAAAAAAAAAAAAAAAAAAA==","NONCE":"AAAAAAAAAAAAAAAA","byte\u017f":"AQ==","extra":[1]}"#;
        let c = Ciphertext::parse(json).unwrap();
        assert_eq!(c.format, Format::Json);
        assert_eq!(&*c.sealed, &[1]);
    }
}
