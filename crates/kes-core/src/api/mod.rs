//! The JSON bodies of the KES API that the server writes and the SDK
//! reads, defined once for both (the Go KES keeps them in its
//! `internal/api` package). The server serializes them into the documents
//! the Go KES writes, byte for byte (through
//! [`crate::gocompat::to_json`]); the SDK deserializes them leniently:
//! missing fields default and `null` lists are empty, as older servers
//! and the Go KES send them.
//!
//! The bodies of the hot cryptographic endpoints are generic over their
//! string type: the server writes borrowed strings, the SDK reads owned
//! ones (and wipes those that carry secrets).

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;

mod requests;
pub use requests::*;

/// `GET /version`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Version {
    /// The release, e.g. `v0.4.0` or the Go KES's `2025-03-12T09-35-18Z`.
    pub version: String,
    /// The commit id.
    #[serde(default)]
    pub commit: String,
}

/// One entry of `GET /v1/api`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ApiRoute {
    /// HTTP method.
    pub method: String,
    /// Route path (prefix routes end in `/`).
    pub path: String,
    /// Request body limit in bytes.
    #[serde(default)]
    pub max_body: u64,
    /// Timeout in seconds (0 = none).
    #[serde(default)]
    pub timeout: u64,
}

/// `POST /v1/key/rotate/<name>`: the version the rotation created and how
/// many versions are retained.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rotated {
    /// The number of the new (now current) version.
    pub version: u32,
    /// Retained versions, the new one included.
    pub versions: u32,
}

/// `POST /v1/key/retire/<name>`: how many versions were deleted, the
/// current version and how many are retained.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Retired {
    /// Versions deleted by this call (0 if no more than `keep` existed).
    pub retired: u32,
    /// The current version.
    pub version: u32,
    /// Retained versions.
    pub versions: u32,
}

/// `GET /v1/key/deleted/<pattern>` (kes-rs only): a page of the keys
/// pending deletion, sorted by name.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeletedKeys {
    /// The keys of this page.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub keys: Vec<DeletedKey>,
    /// The first name not listed (ask again with `?continue=<name>`);
    /// empty when the listing is complete.
    #[serde(default)]
    pub continue_at: String,
}

/// One key pending deletion: restorable until `purge_at`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeletedKey {
    /// The key's name.
    pub name: String,
    /// When it was deleted.
    #[serde(with = "go_time::always")]
    pub deleted_at: OffsetDateTime,
    /// Who deleted it: the caller's identity.
    #[serde(default)]
    pub deleted_by: String,
    /// From when on any server may purge it.
    #[serde(with = "go_time::always")]
    pub purge_at: OffsetDateTime,
}

/// `POST /v1/key/generate/<name>`: a data key, its plaintext and its
/// ciphertext under the named key, both base64.
// No Debug: the value is a secret.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "S: Serialize + AsRef<str>",
    deserialize = "S: Deserialize<'de> + Default"
))]
pub struct GenerateKeyResponse<S = String> {
    /// The data key (a secret).
    pub plaintext: S,
    /// The data key sealed by the named key.
    pub ciphertext: S,
    /// The key version that sealed it (upstream KES's `version`, a decimal
    /// string): present for a key that has been rotated, or when the
    /// request named a version; absent otherwise, as from the Go KES.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub version: S,
}

/// `POST /v1/key/encrypt/<name>`: the ciphertext, base64.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(bound(
    serialize = "S: Serialize + AsRef<str>",
    deserialize = "S: Deserialize<'de> + Default"
))]
pub struct EncryptKeyResponse<S = String> {
    /// The sealed plaintext.
    pub ciphertext: S,
    /// The key version that sealed it (upstream KES's `version`, a decimal
    /// string): present for a key that has been rotated, or when the
    /// request named a version; absent otherwise, as from the Go KES.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub version: S,
}

/// `POST /v1/key/decrypt/<name>` (and each entry of the legacy bulk
/// decrypt): the plaintext, base64.
// No Debug: the value is a secret.
#[derive(Serialize, Deserialize)]
pub struct DecryptKeyResponse<S = String> {
    /// The opened plaintext (a secret).
    pub plaintext: S,
}

/// `PUT /v1/key/hmac/<name>`: the HMAC, base64.
// No Debug: the value is a secret.
#[derive(Serialize, Deserialize)]
#[serde(bound(
    serialize = "S: Serialize + AsRef<str>",
    deserialize = "S: Deserialize<'de> + Default"
))]
pub struct HmacResponse<S = String> {
    /// HMAC-SHA256 of the message.
    pub hmac: S,
    /// The key version whose HMAC key was used, under the rule of
    /// [`EncryptKeyResponse::version`].
    #[serde(default, skip_serializing_if = "is_empty")]
    pub version: S,
}

/// `GET /v1/key/list/<pattern>` and `GET /v1/policy/list/<pattern>`: a
/// page of names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Names {
    /// The names, sorted.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub names: Vec<String>,
    /// The first name not listed; `None` leaves the field out (a key
    /// listing without more names) and `Some("")` writes it empty (a policy
    /// listing always has it, as in the Go KES).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_at: Option<String>,
}

/// `GET /v1/identity/list/<pattern>`: a page of identities.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdentityList {
    /// The identities, sorted.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub identities: Vec<String>,
    /// The first identity not listed; empty when there is none.
    #[serde(default)]
    pub continue_at: String,
}

/// `GET /v1/status`, in the Go KES's field order.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Status {
    /// Server version.
    #[serde(default)]
    pub version: String,
    /// Go operating-system name (`linux`, ...).
    #[serde(default)]
    pub os: String,
    /// Go architecture name (`amd64`, ...).
    #[serde(default)]
    pub arch: String,
    /// Uptime in seconds.
    #[serde(default)]
    pub uptime: u64,
    /// CPUs of the machine.
    #[serde(default)]
    pub num_cpu: u64,
    /// CPUs the server may use.
    #[serde(default)]
    pub num_cpu_used: u64,
    /// Heap bytes in use.
    #[serde(default)]
    pub mem_heap_used: u64,
    /// Stack bytes in use.
    #[serde(default)]
    pub mem_stack_used: u64,
    /// Key-store round trip in milliseconds, at least 1 when the store
    /// answered; 0 (and left out) when it cannot be reached.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub keystore_latency: u64,
    /// The Go SDK's spelling of `keystore_unreachable`: the Go SDK refuses
    /// the one without the other, so servers send both.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keystore_unavailable: bool,
    /// Set when the key store cannot be reached.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keystore_unreachable: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// `GET /v1/key/describe/<name>`. A key never rotated is described
/// exactly as the Go KES describes it; a rotated one adds its version
/// numbers (clients ignore fields they do not know).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyInfo {
    /// Key name.
    pub name: String,
    /// `AES256` or `ChaCha20`.
    #[serde(default)]
    pub algorithm: String,
    /// Creation time of the oldest retained version (the zero time for
    /// legacy keys); the server always sends it.
    #[serde(default, with = "go_time", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<OffsetDateTime>,
    /// Identity that created the key.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// The current version of a rotated key; `None` for a key never
    /// rotated (and from servers without rotation, e.g. the Go KES).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// How many versions of a rotated key are retained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub versions: Option<u32>,
    /// When the current version of a rotated key was created.
    #[serde(default, with = "go_time", skip_serializing_if = "Option::is_none")]
    pub rotated_at: Option<OffsetDateTime>,
    /// When the schedule (`lifecycle.rotate`) rotates the key next; `None`
    /// (described as before) for a key no rule names.
    #[serde(default, with = "go_time", skip_serializing_if = "Option::is_none")]
    pub next_rotation: Option<OffsetDateTime>,
}

/// `GET /v1/policy/describe/<name>`
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PolicyInfo {
    /// Policy name.
    #[serde(default)]
    pub name: String,
    /// When the policy was loaded; the server always sends it.
    #[serde(default, with = "go_time", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<OffsetDateTime>,
    /// The admin identity that owns the policy (never empty from the
    /// server: a configuration needs an admin).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
}

/// `GET /v1/policy/read/<name>`: allow and deny patterns. The server
/// leaves an empty set out, as the Go KES does.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Policy {
    /// Policy name.
    #[serde(default)]
    pub name: String,
    /// Allowed path patterns (the wire form is an object of `{}` values).
    #[serde(default, with = "pattern_set", skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Denied path patterns.
    #[serde(default, with = "pattern_set", skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// When the policy was loaded; the server always sends it.
    #[serde(default, with = "go_time", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<OffsetDateTime>,
    /// The admin identity that owns the policy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
}

/// `GET /v1/identity/self/describe` as it travels. The server writes the
/// shape the Go SDK decodes: for the admin `{"identity","admin":true,
/// "created_at"}`, for others `{"identity","policy":"<name>","created_at",
/// "created_by","allow","deny"}` (the sets left out when empty). Read also
/// in the other shape servers have sent: `policy` the policy object, its
/// name in `policy_name`. kes-client's `SelfInfo` is what either shape
/// tells.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct SelfDescription {
    /// The caller's identity.
    #[serde(default)]
    pub identity: String,
    /// Whether the caller is the admin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// The caller's policy: its name, or (other servers) the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<SelfPolicy>,
    /// The policy's name, where `policy` is the policy object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_name: Option<String>,
    /// When the identity was assigned; the server always sends it.
    #[serde(default, with = "go_time", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<OffsetDateTime>,
    /// The admin identity that assigned it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// Allowed path patterns, where `policy` is a name; `None` when not
    /// sent (the server leaves an empty set out).
    #[serde(
        default,
        with = "pattern_set::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub allow: Option<Vec<String>>,
    /// Denied path patterns, likewise.
    #[serde(
        default,
        with = "pattern_set::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub deny: Option<Vec<String>>,
}

/// The `policy` of a [`SelfDescription`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SelfPolicy {
    /// The policy's name.
    Name(String),
    /// The policy itself.
    Policy(Policy),
    /// Anything else, ignored when read; never written.
    #[serde(skip_serializing)]
    Other(serde_json::Value),
}

/// A policy's allow or deny patterns as the Go KES writes a set:
/// `{"<pattern>":{},…}`, sorted and without repeats (as Go writes a map).
/// Read from that form or, as older servers sent it, a list; both read as
/// a sorted list. For `#[serde(with = "kes_core::api::pattern_set")]`.
pub mod pattern_set {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    /// `{}`
    #[derive(Serialize)]
    struct Empty {}

    /// Writes `patterns` as a set.
    pub fn serialize<S: Serializer>(patterns: &[String], s: S) -> Result<S::Ok, S::Error> {
        let set: BTreeMap<&str, Empty> = patterns.iter().map(|p| (p.as_str(), Empty {})).collect();
        set.serialize(s)
    }

    /// Reads a set, a list or `null` (no patterns).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Set(BTreeMap<String, serde_json::Value>),
            List(Vec<String>),
            Null(()),
        }
        Ok(match Wire::deserialize(d)? {
            Wire::Set(m) => m.into_keys().collect(),
            Wire::List(mut l) => {
                l.sort();
                l
            }
            Wire::Null(()) => Vec::new(),
        })
    }

    /// A set that may be absent: `None` is left out when written (with
    /// `skip_serializing_if`) and `null` reads as `None`.
    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Writes the set, or `null`.
        pub fn serialize<S: Serializer>(
            patterns: &Option<Vec<String>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match patterns {
                Some(p) => super::serialize(p, s),
                None => s.serialize_none(),
            }
        }

        /// Reads a set, a list, or `null` as `None`.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Vec<String>>, D::Error> {
            let value = Option::<serde_json::Value>::deserialize(d)?;
            value
                .map(|v| super::deserialize(v).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

/// `GET /v1/identity/describe/<identity>`: the admin is described as
/// `{"admin":true,"created_at":…}`, any other identity as
/// `{"policy":…,"created_at":…,"created_by":…}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct IdentityInfo {
    /// The identity: not part of the response (the server leaves it
    /// empty, so it is not written); the SDK fills it in.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity: String,
    /// Whether this is the admin identity.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// Name of the assigned policy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub policy: String,
    /// When the identity was assigned; the server always sends it.
    #[serde(default, with = "go_time", skip_serializing_if = "Option::is_none")]
    pub created_at: Option<OffsetDateTime>,
    /// The admin identity that assigned it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
}

/// One event of `GET /v1/log/audit` (and a line of the server's JSON
/// audit log). Generic over its string type like the cryptographic
/// replies: the server writes borrowed strings, the SDK reads owned ones.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(bound(
    serialize = "S: Serialize + AsRef<str>",
    deserialize = "S: Deserialize<'de> + Default"
))]
pub struct AuditEvent<S = String> {
    /// When the request finished.
    #[serde(with = "go_time::always")]
    pub time: OffsetDateTime,
    /// The request.
    pub request: AuditRequest<S>,
    /// The response.
    pub response: AuditResponse,
}

/// The request part of an [`AuditEvent`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(bound(
    serialize = "S: Serialize + AsRef<str>",
    deserialize = "S: Deserialize<'de> + Default"
))]
pub struct AuditRequest<S = String> {
    /// Client IP.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub ip: S,
    /// The address of the TLS proxy (`tls.proxy`) the request came
    /// through, when it did; `ip` is then the client's address as the
    /// proxy named it. Not in the Go KES.
    #[serde(default, skip_serializing_if = "is_empty")]
    pub proxy_ip: S,
    /// URL path.
    #[serde(default)]
    pub path: S,
    /// Client identity (left out when the client sent no certificate).
    #[serde(default, skip_serializing_if = "is_empty")]
    pub identity: S,
    /// HTTP method (older servers do not send it).
    #[serde(default, skip_serializing_if = "is_empty")]
    pub method: S,
}

/// The response part of an [`AuditEvent`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AuditResponse {
    /// HTTP status code.
    pub code: u16,
    /// Response time in milliseconds, as the Go KES sends it.
    #[serde(default)]
    pub time: u64,
}

/// One event of `GET /v1/log/error`: an error-log text line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorEvent<S = String> {
    /// The log line.
    pub message: S,
}

/// A timestamp as Go's `encoding/json` writes it (RFC 3339 with up to nine
/// fractional digits, [`crate::timefmt::format_rfc3339_nano`]); read as
/// any RFC 3339 timestamp, `null` as none.
mod go_time {
    use crate::timefmt::{format_rfc3339_nano, parse_rfc3339};
    use serde::{de::Error as _, Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub(super) fn serialize<S: Serializer>(
        t: &Option<OffsetDateTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_rfc3339_nano(*t)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| {
                parse_rfc3339(&s)
                    .ok_or_else(|| D::Error::custom(format!("invalid RFC 3339 timestamp: {s}")))
            })
            .transpose()
    }

    /// A timestamp that is always there.
    pub(super) mod always {
        use serde::{Deserializer, Serialize as _, Serializer};
        use time::OffsetDateTime;

        pub(crate) fn serialize<S: Serializer>(
            t: &OffsetDateTime,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            crate::timefmt::format_rfc3339_nano(*t).serialize(s)
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<OffsetDateTime, D::Error> {
            super::deserialize(d)?
                .ok_or_else(|| serde::de::Error::custom("a timestamp is required"))
        }
    }
}

fn is_empty<S: AsRef<str>>(s: &S) -> bool {
    s.as_ref().is_empty()
}

/// A list that Go writes as `null` when it is empty.
fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests;
