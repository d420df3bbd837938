//! The JSON bodies of the KES API endpoints, as the client sees them.
//! Those the server and the SDK read alike are defined once in
//! [`kes_core::api`] and re-exported here.

use serde::{Deserialize, Serialize};
use std::fmt;
use time::OffsetDateTime;
use zeroize::Zeroizing;

pub use kes_core::api::{
    ApiRoute, AuditEvent, AuditRequest, AuditResponse, DeletedKey, ErrorEvent, IdentityInfo,
    KeyInfo, Policy, PolicyInfo, Retired, Rotated, SelfDescription, SelfPolicy, Status, Version,
};

/// A data encryption key from `generate`: the plaintext (secret) and its
/// ciphertext under the master key.
pub struct Dek {
    /// The plaintext DEK; wiped on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The DEK encrypted with the master key.
    pub ciphertext: Vec<u8>,
    /// The key version that sealed it, when the server names it (a key
    /// that has been rotated, or a version asked for); keep it with the
    /// ciphertext and pass it to [`crate::Client::decrypt_with`].
    pub version: Option<u32>,
}

impl fmt::Debug for Dek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dek")
            .field("plaintext", &"<redacted>")
            .field("ciphertext_len", &self.ciphertext.len())
            .field("version", &self.version)
            .finish()
    }
}

/// A ciphertext from `encrypt` and the key version that sealed it, when the
/// server names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypted {
    /// The sealed plaintext.
    pub ciphertext: Vec<u8>,
    /// The key version that sealed it (see [`Dek::version`]).
    pub version: Option<u32>,
}

/// A [`Policy`] as the SDK prints it (what `kes policy show --json` and
/// [`SelfInfo`]'s `Serialize` write): both pattern sets, an empty one as
/// `{}`, where the server leaves an empty set out.
pub struct EveryPatternSet<'a>(pub &'a Policy);

impl Serialize for EveryPatternSet<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Shown<'a> {
            name: &'a str,
            #[serde(with = "kes_core::api::pattern_set")]
            allow: &'a [String],
            #[serde(with = "kes_core::api::pattern_set")]
            deny: &'a [String],
            #[serde(
                with = "time::serde::rfc3339::option",
                skip_serializing_if = "Option::is_none"
            )]
            created_at: Option<OffsetDateTime>,
            #[serde(skip_serializing_if = "str::is_empty")]
            created_by: &'a str,
        }
        let p = self.0;
        Shown {
            name: &p.name,
            allow: &p.allow,
            deny: &p.deny,
            created_at: p.created_at,
            created_by: &p.created_by,
        }
        .serialize(s)
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
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "every_pattern_set"
    )]
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

fn every_pattern_set<S: serde::Serializer>(p: &Option<Policy>, s: S) -> Result<S::Ok, S::Error> {
    p.as_ref().map(EveryPatternSet).serialize(s)
}

impl<'de> Deserialize<'de> for SelfInfo {
    /// Accepts both shapes of [`SelfDescription`]: `policy` an object, or
    /// a name with `allow`/`deny` at the top level.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = SelfDescription::deserialize(d)?;
        let mut policy_name = w.policy_name.unwrap_or_default();
        let mut policy = None;
        match w.policy {
            Some(SelfPolicy::Name(name)) => policy_name = name,
            Some(SelfPolicy::Policy(p)) => {
                if policy_name.is_empty() {
                    policy_name = p.name.clone();
                }
                policy = Some(p);
            }
            Some(SelfPolicy::Other(_)) | None => {}
        }
        if policy.is_none() && (w.allow.is_some() || w.deny.is_some()) {
            policy = Some(Policy {
                name: policy_name.clone(),
                allow: w.allow.unwrap_or_default(),
                deny: w.deny.unwrap_or_default(),
                ..Default::default()
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_policies_keep_empty_sets() {
        let p = Policy {
            name: "p".into(),
            allow: vec!["/v1/key/*".into()],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&EveryPatternSet(&p)).unwrap(),
            r#"{"name":"p","allow":{"/v1/key/*":{}},"deny":{}}"#
        );
        let me = SelfInfo {
            identity: "i".into(),
            policy_name: "p".into(),
            policy: Some(p),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&me).unwrap(),
            r#"{"identity":"i","policy_name":"p","policy":{"name":"p","allow":{"/v1/key/*":{}},"deny":{}}}"#
        );
    }
}
