//! The JSON bodies of the KES API endpoints, as the client sees them.
//! Those the server and the SDK read alike are defined once in
//! [`kes_core::api`] and re-exported here.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use zeroize::Zeroizing;

pub use kes_core::api::{
    ApiRoute, IdentityInfo, KeyInfo, PolicyInfo, Retired, Rotated, Status, Version,
};

/// A data encryption key from `generate`: the plaintext (secret) and its
/// ciphertext under the master key.
pub struct Dek {
    /// The plaintext DEK; wiped on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The DEK encrypted with the master key.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dek")
            .field("plaintext", &"<redacted>")
            .field("ciphertext_len", &self.ciphertext.len())
            .finish()
    }
}

/// `GET /v1/policy/read/<name>`: allow and deny patterns.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Policy {
    /// Policy name.
    #[serde(default)]
    pub name: String,
    /// Allowed path patterns (the wire form is an object of `{}` values).
    #[serde(default, with = "pattern_set")]
    pub allow: Vec<String>,
    /// Denied path patterns.
    #[serde(default, with = "pattern_set")]
    pub deny: Vec<String>,
    /// When the policy was loaded.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<OffsetDateTime>,
    /// The admin identity that owns the policy.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
}

/// The server sends patterns as `{"<pattern>":{},…}`; older servers sent a
/// list. Both decode to a sorted list.
mod pattern_set {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub(super) fn serialize<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<&str, BTreeMap<(), ()>> =
            v.iter().map(|p| (p.as_str(), BTreeMap::new())).collect();
        map.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Map(BTreeMap<String, serde_json::Value>),
            List(Vec<String>),
            Null(()),
        }
        Ok(match Wire::deserialize(d)? {
            Wire::Map(m) => m.into_keys().collect(),
            Wire::List(mut l) => {
                l.sort();
                l
            }
            Wire::Null(()) => Vec::new(),
        })
    }
}

/// `GET /v1/identity/self/describe`: the caller's identity and, for
/// non-admins, its policy.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct SelfInfo {
    /// The caller's identity.
    pub identity: String,
    /// Whether the caller is the admin.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// Name of the caller's policy (if the server tells).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub policy_name: String,
    /// The caller's policy (empty for the admin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// When the identity was assigned.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub created_at: Option<OffsetDateTime>,
    /// The admin identity that assigned it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub created_by: String,
}

impl<'de> Deserialize<'de> for SelfInfo {
    /// Accepts the current shape (`policy` an object) and the pre-2023-10
    /// one (`policy` a name, `allow`/`deny` at the top level).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            identity: String,
            #[serde(default)]
            admin: bool,
            #[serde(default)]
            policy: Option<serde_json::Value>,
            #[serde(default)]
            policy_name: Option<String>,
            #[serde(default, with = "time::serde::rfc3339::option")]
            created_at: Option<OffsetDateTime>,
            #[serde(default)]
            created_by: String,
            #[serde(default)]
            allow: Option<serde_json::Value>,
            #[serde(default)]
            deny: Option<serde_json::Value>,
        }
        let w = Wire::deserialize(d)?;
        let mut policy_name = w.policy_name.unwrap_or_default();
        let mut policy = None;
        match w.policy {
            Some(serde_json::Value::String(name)) => policy_name = name,
            Some(v @ serde_json::Value::Object(_)) => {
                let p: Policy = serde_json::from_value(v).map_err(serde::de::Error::custom)?;
                if policy_name.is_empty() {
                    policy_name = p.name.clone();
                }
                policy = Some(p);
            }
            _ => {}
        }
        if policy.is_none() && (w.allow.is_some() || w.deny.is_some()) {
            let v = serde_json::json!({ "name": policy_name, "allow": w.allow, "deny": w.deny });
            policy = Some(serde_json::from_value(v).map_err(serde::de::Error::custom)?);
        }
        Ok(SelfInfo {
            identity: w.identity,
            admin: w.admin,
            policy_name,
            policy,
            created_at: w.created_at,
            created_by: w.created_by,
        })
    }
}

/// One event of `GET /v1/log/audit`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuditEvent {
    /// When the request finished.
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    /// The request.
    pub request: AuditRequest,
    /// The response.
    pub response: AuditResponse,
}

/// The request part of an [`AuditEvent`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AuditRequest {
    /// Client IP.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip: String,
    /// URL path.
    #[serde(default)]
    pub path: String,
    /// Client identity.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity: String,
}

/// The response part of an [`AuditEvent`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AuditResponse {
    /// HTTP status code.
    pub code: u16,
    /// Response time in milliseconds.
    #[serde(default)]
    pub time: u64,
}

/// One event of `GET /v1/log/error`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorEvent {
    /// The log line.
    pub message: String,
}
