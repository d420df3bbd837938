//! The JSON of Vault's K/V requests and answers, decoded without leaving
//! unwiped copies of secrets behind.

use std::collections::BTreeMap;
use std::fmt;

use zeroize::Zeroizing;

use super::layout::KvVersion;
use crate::Error;

/// The version number a K/V v2 write created.
#[derive(serde::Deserialize)]
pub(super) struct KvV2Written {
    pub(super) data: KvV2WrittenData,
}

#[derive(serde::Deserialize)]
pub(super) struct KvV2WrittenData {
    pub(super) version: u64,
    /// When the version was written (RFC 3339, nanoseconds): with the
    /// number, it tells this version from one of the same number in an
    /// entry deleted and created again since.
    #[serde(default)]
    pub(super) created_time: String,
}

/// The metadata of a K/V v2 entry: `GET <engine>/metadata/<path>`.
#[derive(serde::Deserialize)]
pub(super) struct KvV2Metadata {
    pub(super) data: KvV2MetadataData,
}

#[derive(serde::Deserialize)]
pub(super) struct KvV2MetadataData {
    /// When the entry was created. A delete of the metadata followed by a
    /// write of the same path makes a new entry, with a new time and its
    /// versions counted from 1 again.
    pub(super) created_time: String,
    pub(super) current_version: u64,
    #[serde(default)]
    pub(super) versions: BTreeMap<String, KvV2VersionMetadata>,
}

#[derive(serde::Deserialize)]
pub(super) struct KvV2VersionMetadata {
    #[serde(default)]
    pub(super) created_time: String,
    #[serde(default)]
    pub(super) deletion_time: String,
    #[serde(default)]
    pub(super) destroyed: bool,
}

impl KvV2VersionMetadata {
    /// Neither deleted nor destroyed.
    pub(super) fn readable(&self) -> bool {
        self.deletion_time.is_empty() && !self.destroyed
    }
}

impl KvV2MetadataData {
    pub(super) fn version(&self, version: u64) -> Option<&KvV2VersionMetadata> {
        self.versions.get(&version.to_string())
    }

    /// The K/V version [`Inner::read`] returns: version 1 while it can be
    /// read, else the latest.
    pub(super) fn read_version(&self) -> u64 {
        match self.version(1) {
            Some(v) if v.readable() => 1,
            _ => self.current_version,
        }
    }
}

/// A K/V v2 write; with `cas=0` it only creates (fails if the entry
/// exists), without options it adds a version.
#[derive(serde::Serialize)]
pub(super) struct KvV2Write<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) options: Option<CheckAndSet>,
    pub(super) data: BTreeMap<&'a str, &'a str>,
}

#[derive(serde::Serialize)]
pub(super) struct CheckAndSet {
    pub(super) cas: u64,
}

/// A secret string in a Vault response (a token, a transit plaintext):
/// copied from the response buffer straight into a buffer that is wiped
/// when dropped, never held in a `serde_json::Value`. A string with JSON
/// escapes passes through serde_json's scratch buffer first, which is freed
/// unwiped; tokens and the base64 values KES stores need no escapes.
pub(crate) struct SecretString(pub Zeroizing<String>);

impl<'de> serde::Deserialize<'de> for SecretString {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = SecretString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, v: &str) -> Result<SecretString, E> {
                Ok(SecretString(Zeroizing::new(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<SecretString, E> {
                Ok(SecretString(Zeroizing::new(v)))
            }
        }
        deserializer.deserialize_str(Visit)
    }
}

/// A field of a stored K/V entry: the string that holds a key (kept like a
/// [`SecretString`]) or anything else, which is skipped without being
/// kept.
pub(super) enum EntryField {
    Text(Zeroizing<String>),
    Other,
}

impl<'de> serde::Deserialize<'de> for EntryField {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::IgnoredAny;
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = EntryField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<EntryField, E> {
                Ok(EntryField::Text(Zeroizing::new(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<EntryField, E> {
                Ok(EntryField::Text(Zeroizing::new(v)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<EntryField, E> {
                Ok(EntryField::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<EntryField, E> {
                Ok(EntryField::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<EntryField, E> {
                Ok(EntryField::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<EntryField, E> {
                Ok(EntryField::Other)
            }
            fn visit_unit<E>(self) -> Result<EntryField, E> {
                Ok(EntryField::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<EntryField, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(EntryField::Other)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<EntryField, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(EntryField::Other)
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// The fields of a K/V entry; `None` for a deleted K/V v2 version.
pub(super) type EntryFields = Option<BTreeMap<String, EntryField>>;

/// Decodes a K/V read response into the entry's fields: `data` (v1) or
/// `data.data` (v2).
pub(super) fn entry_fields(body: &[u8], version: KvVersion) -> serde_json::Result<EntryFields> {
    #[derive(serde::Deserialize)]
    struct V1 {
        data: Option<BTreeMap<String, EntryField>>,
    }
    #[derive(serde::Deserialize)]
    struct V2 {
        data: Option<V2Data>,
    }
    #[derive(serde::Deserialize)]
    struct V2Data {
        data: Option<BTreeMap<String, EntryField>>,
    }
    match version {
        // A v1 response without data is an entry without our field.
        KvVersion::V1 => Ok(Some(
            serde_json::from_slice::<V1>(body)?.data.unwrap_or_default(),
        )),
        // A deleted (not destroyed) v2 version has `data: null`.
        KvVersion::V2 => Ok(serde_json::from_slice::<V2>(body)?
            .data
            .and_then(|d| d.data)),
    }
}

/// Whether a K/V v2 404 answer describes a version (deleted or destroyed)
/// of an entry that exists, rather than an entry that does not.
pub(super) fn describes_a_version(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Answer {
        data: Option<Data>,
    }
    #[derive(serde::Deserialize)]
    struct Data {
        metadata: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Answer>(body)
        .ok()
        .and_then(|a| a.data)
        .is_some_and(|d| d.metadata.is_some())
}

/// Serialises a request body that holds a secret straight into a buffer
/// that is zeroized on drop (a `serde_json::Value` would leave copies).
pub(super) fn json_body<T: serde::Serialize>(value: &T) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut buf = Zeroizing::new(Vec::with_capacity(4096));
    serde_json::to_writer(&mut *buf, value)
        .map_err(|e| Error::other("vault: encoding a request").with_source(e))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(fields: EntryFields, name: &str) -> Option<String> {
        match fields.unwrap().remove(name) {
            Some(EntryField::Text(s)) => Some(s.to_string()),
            Some(EntryField::Other) => Some("<other>".into()),
            None => None,
        }
    }

    #[test]
    fn stored_entries_decode_to_their_key_field() {
        let v1 = br#"{"request_id":"x","lease_duration":2764800,"data":{"my-key":"CiQK+/=","n":1,"o":{"a":[1,"s"]}},"wrap_info":null}"#;
        let fields = || entry_fields(v1, KvVersion::V1).unwrap();
        assert_eq!(text(fields(), "my-key").as_deref(), Some("CiQK+/="));
        assert_eq!(text(fields(), "n").as_deref(), Some("<other>"));
        assert_eq!(text(fields(), "o").as_deref(), Some("<other>"));
        assert_eq!(text(fields(), "missing"), None);
        // Escapes are decoded.
        let escaped = br#"{"data":{"k":"{\"bytes\":\"a\u002fb\"}"}}"#;
        assert_eq!(
            text(entry_fields(escaped, KvVersion::V1).unwrap(), "k").as_deref(),
            Some(r#"{"bytes":"a/b"}"#)
        );
        // A v1 answer without data is an entry without the key field.
        assert_eq!(text(entry_fields(b"{}", KvVersion::V1).unwrap(), "k"), None);

        let v2 =
            br#"{"data":{"data":{"my-key":"CiQK"},"metadata":{"version":1,"deletion_time":""}}}"#;
        assert_eq!(
            text(entry_fields(v2, KvVersion::V2).unwrap(), "my-key").as_deref(),
            Some("CiQK")
        );
        // A deleted v2 version has no data: no key.
        let deleted = br#"{"data":{"data":null,"metadata":{"version":1}}}"#;
        assert!(entry_fields(deleted, KvVersion::V2).unwrap().is_none());
        assert!(entry_fields(b"{}", KvVersion::V2).unwrap().is_none());
        for malformed in [&b"not json"[..], b"[]", br#"{"data":"x"}"#] {
            assert!(entry_fields(malformed, KvVersion::V1).is_err());
            assert!(entry_fields(malformed, KvVersion::V2).is_err());
        }
    }

    #[test]
    fn secret_strings_decode_from_json_strings_only() {
        let parsed: SecretString = serde_json::from_slice(br#""s.abc\n""#).unwrap();
        assert_eq!(parsed.0.as_str(), "s.abc\n");
        assert!(serde_json::from_slice::<SecretString>(b"5").is_err());
        assert!(serde_json::from_slice::<SecretString>(b"null").is_err());
    }
}
