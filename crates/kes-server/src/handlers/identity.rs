//! The identity endpoints: describe, self-describe, list.

use super::{created_at, list_prefix, page, paging, pattern_set, Call, Result};
use crate::wire::{self, Body};
use hyper::Response;
use kes_core::{ApiError, Identity};
use serde_json::json;

pub(super) fn describe_identity(req: &Call<'_>) -> Result<Response<Body>> {
    let id = Identity::new(req.name(ApiError::invalid_identity)?);
    if id == req.state.admin {
        return Ok(wire::json(
            &json!({ "admin": true, "created_at": created_at(req) }),
        ));
    }
    match req.state.identities.get(&id) {
        Some(policy) => Ok(wire::json(&json!({
            "policy": policy,
            "created_at": created_at(req),
            "created_by": req.state.admin.as_str(),
        }))),
        None => Err(ApiError::IDENTITY_NOT_FOUND),
    }
}

/// Self-describe answers every caller (the Go KES looked up the empty
/// resource and answered 404 to every non-admin). Non-admins
/// get the shape the Go SDK decodes: the policy name as a string and the
/// allow/deny sets at the top level.
pub(super) fn self_describe(req: &Call<'_>) -> Result<Response<Body>> {
    let id = req.identity.ok_or(ApiError::CERTIFICATE_REQUIRED)?;
    if *id == req.state.admin {
        return Ok(wire::json(&json!({
            "identity": id.as_str(),
            "admin": true,
            "created_at": created_at(req),
        })));
    }
    let (name, policy) = req
        .state
        .policy_of(id)
        .ok_or(ApiError::IDENTITY_NOT_FOUND)?;
    let mut doc = serde_json::Map::new();
    doc.insert("identity".into(), id.as_str().into());
    doc.insert("policy".into(), name.into());
    doc.insert("created_at".into(), created_at(req).into());
    doc.insert("created_by".into(), req.state.admin.as_str().into());
    if !policy.allow.is_empty() {
        doc.insert("allow".into(), pattern_set(&policy.allow));
    }
    if !policy.deny.is_empty() {
        doc.insert("deny".into(), pattern_set(&policy.deny));
    }
    Ok(wire::json(&serde_json::Value::Object(doc)))
}

pub(super) fn list_identities(req: &Call<'_>) -> Result<Response<Body>> {
    let prefix = list_prefix(req.resource)?;
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
    let (ids, continue_at) = page(ids, &paging(req.query));
    Ok(wire::json(
        &json!({ "identities": ids, "continue_at": continue_at }),
    ))
}
