//! The policy endpoints: describe, read, list.

use super::{created_at, list_prefix, page, paging, pattern_set, Call, Result};
use crate::wire::{self, Body};
use hyper::Response;
use kes_core::ApiError;
use serde_json::json;

fn policy_name<'a>(req: &Call<'a>) -> Result<&'a str> {
    req.name(ApiError::invalid_policy_name)
}

pub(super) fn describe_policy(req: &Call<'_>) -> Result<Response<Body>> {
    let name = policy_name(req)?;
    if !req.state.policies.contains_key(name) {
        return Err(ApiError::POLICY_NOT_FOUND);
    }
    Ok(wire::json(&json!({
        "name": name,
        "created_at": created_at(req),
        "created_by": req.state.admin.as_str(),
    })))
}

fn policy_document(
    req: &Call<'_>,
    name: &str,
    policy: &kes_core::Policy,
) -> serde_json::Map<String, serde_json::Value> {
    let mut doc = serde_json::Map::new();
    doc.insert("name".into(), name.into());
    if !policy.allow.is_empty() {
        doc.insert("allow".into(), pattern_set(&policy.allow));
    }
    if !policy.deny.is_empty() {
        doc.insert("deny".into(), pattern_set(&policy.deny));
    }
    doc.insert("created_at".into(), created_at(req).into());
    doc.insert("created_by".into(), req.state.admin.as_str().into());
    doc
}

pub(super) fn read_policy(req: &Call<'_>) -> Result<Response<Body>> {
    let name = policy_name(req)?;
    let policy = req
        .state
        .policies
        .get(name)
        .ok_or(ApiError::POLICY_NOT_FOUND)?;
    Ok(wire::json(&serde_json::Value::Object(policy_document(
        req, name, policy,
    ))))
}

pub(super) fn list_policies(req: &Call<'_>) -> Result<Response<Body>> {
    let prefix = list_prefix(req.resource)?;
    let names: Vec<String> = req
        .state
        .policies
        .keys()
        .filter(|n| n.starts_with(prefix))
        .cloned()
        .collect();
    let (names, continue_at) = page(names, &paging(req.query));
    Ok(wire::json(
        &json!({ "names": names, "continue_at": continue_at }),
    ))
}
