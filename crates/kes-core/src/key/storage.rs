//! The key-store encoding of a key version: base64 of a protobuf message,
//! or the JSON form KES wrote before.

use std::fmt;

use time::OffsetDateTime;
use zeroize::{Zeroize as _, Zeroizing};

use super::{HmacKey, KeyAlgorithm, KeyVersion, SecretKey};

/// Why a key could not be decoded or encoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// The stored value is malformed.
    #[error("invalid key: {0}")]
    Invalid(&'static str),
}

impl KeyAlgorithm {
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

impl KeyVersion {
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
        let bytes = crate::gocompat::decode_base64(text).ok_or(KeyError::Invalid("not base64"))?;
        proto::decode(&bytes)
    }
}

/// Copies a decoded 32-byte key, so that the decoded buffer can be wiped by
/// its owner.
fn key_bytes(bytes: &[u8], what: &'static str) -> Result<[u8; 32], KeyError> {
    bytes.try_into().map_err(|_| KeyError::Invalid(what))
}

/// The protobuf schema of package `miniohq.kms` (the Go KES's key-store
/// encoding, so that both servers read each other's keys), written out by
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

/// The JSON form KES wrote before the protobuf encoding; still read, never
/// written.
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
                        match crate::gocompat::fold_key(&name).as_str() {
                            "bytes" => {
                                out.bytes =
                                    match map.next_value::<Option<String>>()?.map(Zeroizing::new) {
                                        None => None,
                                        Some(s) => {
                                            Some(crate::gocompat::decode_base64(&s).ok_or_else(
                                                || de::Error::custom("invalid base64"),
                                            )?)
                                        }
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
            // A missing or empty algorithm reads as AES256, as in the Go KES.
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
