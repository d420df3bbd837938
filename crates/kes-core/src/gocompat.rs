//! What KES clients and stored data expect of Go's `encoding/json` and
//! `encoding/base64`, in one place: request bodies and legacy ciphertexts
//! are decoded here, and JSON documents written, exactly as the Go KES
//! decodes and writes them.
//!
//! - [`GoJson`]: a JSON object read with Go's rules for struct fields:
//!   object keys match field names exactly or under Go's case folding
//!   ([`key_matches`]), and every matching key assigns the field again, so
//!   that the last one in the document wins.
//! - [`decode_base64`]: a `[]byte` field, `base64.StdEncoding`: padding
//!   required, `\r` and `\n` skipped, and lenient about the unused bits of
//!   the last character (`QR==` is `A`, as `QQ==` is).
//! - [`to_json`]: `json.Encoder`'s output, `<`, `>`, `&`, U+2028 and
//!   U+2029 escaped and a trailing newline.
//!
//! Decoded bytes may be plaintexts or keys: they are wiped when dropped.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Serialize;
use zeroize::{Zeroize as _, Zeroizing};

/// Go's `base64.StdEncoding`: padded, lenient about non-zero trailing bits.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Decodes standard base64 as Go's `base64.StdEncoding` does (and so Go's
/// `encoding/json` for a `[]byte`): `=` padding required, `\r` and `\n`
/// skipped anywhere, any other character outside the alphabet refused, and
/// the unused low bits of the last character ignored. `None` if the text
/// is not base64.
pub fn decode_base64(s: &str) -> Option<Zeroizing<Vec<u8>>> {
    let decoded = if s.contains(['\r', '\n']) {
        let compact: Zeroizing<String> =
            Zeroizing::new(s.chars().filter(|c| !matches!(c, '\r' | '\n')).collect());
        GO_STD_BASE64.decode(compact.as_bytes())
    } else {
        GO_STD_BASE64.decode(s.as_bytes())
    };
    decoded.ok().map(Zeroizing::new)
}

/// Standard padded base64, as Go encodes a `[]byte`.
pub fn encode_base64(bytes: &[u8]) -> String {
    GO_STD_BASE64.encode(bytes)
}

/// Serializes `value` as Go's `json.Encoder` does: HTML characters escaped
/// ([`escape_html`]) and a trailing newline.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let raw = serde_json::to_vec(value).expect("serializing plain data cannot fail");
    let mut out = escape_html(raw);
    out.push(b'\n');
    out
}

/// Go escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings. These bytes
/// can only occur inside string literals of a JSON document, so replacing
/// them everywhere is exact.
pub fn escape_html(raw: Vec<u8>) -> Vec<u8> {
    // A branch-free scan the compiler vectorises; almost every document
    // (base64 and names) needs no escaping.
    let needs = raw
        .iter()
        .fold(false, |acc, b| acc | matches!(b, b'<' | b'>' | b'&' | 0xe2));
    if !needs {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xe2 if raw.get(i + 1) == Some(&0x80)
                && matches!(raw.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                out.extend_from_slice(if raw[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// One character of an object key as Go's field matching sees it: ASCII
/// letters fold to lower case, and of all other characters only the Kelvin
/// sign U+212A (to `k`) and the long s U+017F (to `s`) fold onto ASCII in
/// Go's tables; every other non-ASCII character, `İ` U+0130 and `ı`
/// U+0131 included, folds only with non-ASCII ones.
fn fold(c: char) -> char {
    match c {
        '\u{212A}' => 'k',
        '\u{017F}' => 's',
        c => c.to_ascii_lowercase(),
    }
}

/// An object key folded for comparison with a lower-case ASCII field name.
pub fn fold_key(key: &str) -> String {
    key.chars().map(fold).collect()
}

/// Whether the object key `key` sets the struct field whose JSON name is
/// `name` (ASCII) in Go's `encoding/json`: equal, or equal under Go's
/// simple case folding (`bytes.EqualFold`).
pub fn key_matches(key: &str, name: &str) -> bool {
    debug_assert!(name.is_ascii(), "field names are ASCII");
    let mut key = key.chars();
    name.bytes()
        .all(|want| key.next().map(fold) == Some(char::from(want.to_ascii_lowercase())))
        && key.next().is_none()
}

/// A JSON object decoded with Go `encoding/json` semantics into the
/// fields of a struct: members of other names skipped unread (as Go skips
/// them: a number too large for any type does not fail the document),
/// `null` or missing fields empty, and object keys matched to field names
/// as Go matches them to struct fields ([`key_matches`]), where every
/// matching key assigns the field again, so the last one in the document
/// wins (`{"context":…,"CONTEXT":…}` binds the second, as the Go KES and
/// any proxy decoding like Go do).
pub struct GoJson {
    /// The members that set a field, in document order, duplicates kept.
    members: Vec<(String, serde_json::Value)>,
}

/// The decoded fields carry plaintexts (encrypt, HMAC messages) as base64
/// strings: wipe them with the request.
impl Drop for GoJson {
    fn drop(&mut self) {
        fn wipe(value: &mut serde_json::Value) {
            match value {
                serde_json::Value::String(s) => s.zeroize(),
                serde_json::Value::Array(items) => items.iter_mut().for_each(wipe),
                serde_json::Value::Object(map) => map.values_mut().for_each(wipe),
                _ => {}
            }
        }
        for (_, value) in &mut self.members {
            wipe(value);
        }
    }
}

/// The JSON is not acceptable for what it should hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadJson;

/// Reads a JSON object (or `null`, no members) member by member, keeping
/// those that set one of `fields`. A map type would merge duplicate keys
/// and lose their order, which decides the value in Go.
#[derive(Clone, Copy)]
struct Object<'f> {
    fields: &'f [&'f str],
}

impl<'de> DeserializeSeed<'de> for Object<'_> {
    type Value = GoJson;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<GoJson, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Object<'_> {
    type Value = GoJson;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object or null")
    }

    fn visit_unit<E>(self) -> Result<GoJson, E> {
        Ok(GoJson {
            members: Vec::new(),
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<GoJson, A::Error> {
        let mut json = GoJson {
            members: Vec::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            if self.fields.iter().any(|field| key_matches(&key, field)) {
                let value = map.next_value()?;
                json.members.push((key, value));
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(json)
    }
}

/// Reads a JSON array of [`Object`]s, or `null` (none).
struct Objects<'f>(Object<'f>);

impl<'de> DeserializeSeed<'de> for Objects<'_> {
    type Value = Vec<GoJson>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Vec<GoJson>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Objects<'_> {
    type Value = Vec<GoJson>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of objects or null")
    }

    fn visit_unit<E>(self) -> Result<Vec<GoJson>, E> {
        Ok(Vec::new())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<GoJson>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.0)? {
            items.push(item);
        }
        Ok(items)
    }
}

impl GoJson {
    /// Parses a request body into `fields` as `json.Decoder.Decode` does:
    /// one JSON value, the bytes after it ignored; `null` is an empty
    /// object, an empty body refused.
    pub fn parse(body: &[u8], fields: &[&str]) -> Result<Self, BadJson> {
        let mut de = serde_json::Deserializer::from_slice(body);
        Object { fields }.deserialize(&mut de).map_err(|_| BadJson)
    }

    /// Parses a whole document into `fields` as `json.Unmarshal` does:
    /// [`GoJson::parse`], but nothing except white space may follow the
    /// value.
    pub fn parse_document(bytes: &[u8], fields: &[&str]) -> Result<Self, BadJson> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let json = Object { fields }
            .deserialize(&mut de)
            .map_err(|_| BadJson)?;
        de.end().map_err(|_| BadJson)?;
        Ok(json)
    }

    /// Parses `body` as an array of objects into `fields` (bulk decrypt),
    /// each as [`GoJson::parse`] reads one; `null` is an empty array, as
    /// are `null` entries empty objects.
    pub fn parse_list(body: &[u8], fields: &[&str]) -> Result<Vec<Self>, BadJson> {
        let mut de = serde_json::Deserializer::from_slice(body);
        Objects(Object { fields })
            .deserialize(&mut de)
            .map_err(|_| BadJson)
    }

    /// The values of every key that sets field `name`, in document order.
    fn matches<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
        self.members
            .iter()
            .filter(move |(key, _)| key_matches(key, name))
            .map(|(_, value)| value)
    }

    /// A `[]byte` field ([`decode_base64`]); missing or `null` is empty.
    /// Like Go, every matching key is decoded and any bad one fails, even
    /// if a later one is good.
    pub fn bytes(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, BadJson> {
        let mut out = Zeroizing::new(Vec::new());
        for value in self.matches(name) {
            out = match value {
                serde_json::Value::Null => Zeroizing::new(Vec::new()),
                serde_json::Value::String(s) => decode_base64(s).ok_or(BadJson)?,
                _ => return Err(BadJson),
            };
        }
        Ok(out)
    }

    /// A `string` field; missing is empty. The last matching string wins:
    /// Go ignores `null` for a string, where it empties a `[]byte`. Any
    /// matching key with another type fails.
    pub fn string(&self, name: &str) -> Result<String, BadJson> {
        let mut out = "";
        for value in self.matches(name) {
            match value {
                serde_json::Value::Null => {}
                serde_json::Value::String(s) => out = s,
                _ => return Err(BadJson),
            }
        }
        Ok(out.to_string())
    }

    /// An unsigned integer field (Go's `uint`); missing is 0. The last
    /// matching number wins and `null` is ignored, as in Go; a fraction, a
    /// negative number, one beyond `u64` or another type fails.
    pub fn uint(&self, name: &str) -> Result<u64, BadJson> {
        let mut out = 0;
        for value in self.matches(name) {
            match value {
                serde_json::Value::Null => {}
                serde_json::Value::Number(n) => out = n.as_u64().ok_or(BadJson)?,
                _ => return Err(BadJson),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
