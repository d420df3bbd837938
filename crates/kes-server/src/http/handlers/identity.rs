//! The identity endpoints: describe, self-describe, list.

use super::{created_at, list_prefix, page, paging, Answer, Call, Result};
use crate::http::wire;
use kes_core::{api, ApiError, Identity};
use serde::Serialize;

pub(super) fn describe_identity(req: &Call<'_>) -> Result<Answer> {
    let id = Identity::new(req.name(ApiError::invalid_identity)?);
    let info = if id == req.state.admin {
        api::IdentityInfo {
            admin: true,
            created_at: Some(req.state.loaded),
            ..Default::default()
        }
    } else {
        let policy = req
            .state
            .identities
            .get(&id)
            .ok_or(ApiError::IDENTITY_NOT_FOUND)?;
        api::IdentityInfo {
            policy: policy.to_owned(),
            created_at: Some(req.state.loaded),
            created_by: req.state.admin.to_string(),
            ..Default::default()
        }
    };
    Ok(wire::json(&info).into())
}

/// Self-describe answers every caller (the Go KES looked up the empty
/// resource and answered 404 to every non-admin). Non-admins
/// get the shape the Go SDK decodes: the policy name as a string and the
/// allow/deny sets at the top level.
pub(super) fn self_describe(req: &Call<'_>) -> Result<Answer> {
    #[derive(Serialize)]
    struct Admin<'a> {
        identity: &'a str,
        admin: bool,
        created_at: String,
    }
    #[derive(Serialize)]
    struct Assigned<'a> {
        identity: &'a str,
        policy: &'a str,
        created_at: String,
        created_by: &'a str,
        #[serde(with = "api::pattern_set", skip_serializing_if = "<[_]>::is_empty")]
        allow: &'a [String],
        #[serde(with = "api::pattern_set", skip_serializing_if = "<[_]>::is_empty")]
        deny: &'a [String],
    }
    let id = req.identity.ok_or(ApiError::CERTIFICATE_REQUIRED)?;
    if *id == req.state.admin {
        return Ok(wire::json(&Admin {
            identity: id.as_str(),
            admin: true,
            created_at: created_at(req),
        })
        .into());
    }
    let (name, policy) = req
        .state
        .policy_of(id)
        .ok_or(ApiError::IDENTITY_NOT_FOUND)?;
    Ok(wire::json(&Assigned {
        identity: id.as_str(),
        policy: name,
        created_at: created_at(req),
        created_by: req.state.admin.as_str(),
        allow: &policy.allow,
        deny: &policy.deny,
    })
    .into())
}

pub(super) fn list_identities(req: &Call<'_>) -> Result<Answer> {
    let prefix = list_prefix(&req.resource)?;
    let mut ids: Vec<String> = req
        .state
        .identities
        .keys()
        .map(|i| i.to_string())
        .chain(std::iter::once(req.state.admin.to_string()))
        .filter(|i| i.starts_with(prefix))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let (ids, continue_at) = page(ids, &paging(&req.query));
    Ok(wire::json(&api::IdentityList {
        identities: ids,
        continue_at,
    })
    .into())
}
