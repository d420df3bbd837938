//! The identity endpoints: describe, self-describe, list.

use super::{list_prefix, page, paging, Answer, Call, Result};
use crate::http::wire;
use kes_core::{api, ApiError, Identity};

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
    let id = req.identity.ok_or(ApiError::CERTIFICATE_REQUIRED)?;
    let described = if *id == req.state.admin {
        api::SelfDescription {
            identity: id.to_string(),
            admin: true,
            created_at: Some(req.state.loaded),
            ..Default::default()
        }
    } else {
        let (name, policy) = req
            .state
            .policy_of(id)
            .ok_or(ApiError::IDENTITY_NOT_FOUND)?;
        let set = |patterns: &[String]| (!patterns.is_empty()).then(|| patterns.to_vec());
        api::SelfDescription {
            identity: id.to_string(),
            policy: Some(api::SelfPolicy::Name(name.to_owned())),
            created_at: Some(req.state.loaded),
            created_by: req.state.admin.to_string(),
            allow: set(&policy.allow),
            deny: set(&policy.deny),
            ..Default::default()
        }
    };
    Ok(wire::json(&described).into())
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
