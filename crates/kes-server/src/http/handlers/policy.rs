//! The policy endpoints: describe, read, list.

use super::{list_prefix, page, paging, Answer, Call, Result};
use crate::http::wire;
use kes_core::{api, ApiError};

fn policy_name<'c>(req: &'c Call<'_>) -> Result<&'c str> {
    req.name(ApiError::invalid_policy_name)
}

pub(super) fn describe_policy(req: &Call<'_>) -> Result<Answer> {
    let name = policy_name(req)?;
    if !req.state.policies.contains_key(name) {
        return Err(ApiError::POLICY_NOT_FOUND);
    }
    Ok(wire::json(&api::PolicyInfo {
        name: name.to_owned(),
        created_at: Some(req.state.loaded),
        created_by: req.state.admin.to_string(),
    })
    .into())
}

pub(super) fn read_policy(req: &Call<'_>) -> Result<Answer> {
    let name = policy_name(req)?;
    let policy = req
        .state
        .policies
        .get(name)
        .ok_or(ApiError::POLICY_NOT_FOUND)?;
    Ok(wire::json(&api::Policy {
        name: name.to_owned(),
        allow: policy.allow.clone(),
        deny: policy.deny.clone(),
        created_at: Some(req.state.loaded),
        created_by: req.state.admin.to_string(),
    })
    .into())
}

pub(super) fn list_policies(req: &Call<'_>) -> Result<Answer> {
    let prefix = list_prefix(&req.resource)?;
    let names: Vec<String> = req
        .state
        .policies
        .keys()
        .filter(|n| n.starts_with(prefix))
        .cloned()
        .collect();
    let (names, continue_at) = page(names, &paging(&req.query));
    Ok(wire::json(&api::Names {
        names,
        continue_at: Some(continue_at),
    })
    .into())
}
