//! The key endpoints: create, import, describe, list, delete, rotate and
//! retire. The cryptographic operations are in `crypto.rs`, restoring
//! deleted keys in `deletion.rs`.

use super::{list_prefix, page, paging, Answer, Call, Result};
use crate::http::wire::{self, ListingPart};
use crate::state::ListingSlot;
use kes_core::gocompat::GoJson;
use kes_core::ring::KeyRing;
use kes_core::{api, ApiError, HmacKey, KeyAlgorithm, KeyVersion, SecretKey};
use kes_keystore::listing::Listing;
use std::ops::Bound;
use std::sync::Arc;
use time::OffsetDateTime;

/// Maps a key-store error to the API, logging what clients do not see.
pub(super) fn store_error(
    err: kes_keystore::Error,
    generic: ApiError,
    op: &str,
    name: &str,
) -> ApiError {
    match err {
        kes_keystore::Error::KeyExists => ApiError::KEY_EXISTS,
        kes_keystore::Error::KeyNotFound => ApiError::KEY_NOT_FOUND,
        other => {
            tracing::error!(key = name, error = %other, "failed to {op} key");
            generic
        }
    }
}

pub(super) fn key_name<'c>(req: &'c Call<'_>) -> Result<&'c str> {
    req.name(ApiError::invalid_key_name)
}

pub(super) fn caller(req: &Call<'_>) -> String {
    req.identity.map(|i| i.to_string()).unwrap_or_default()
}

pub(super) async fn create_key(req: &Call<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let key = KeyVersion::generate(req.state.default_algorithm, caller(req));
    req.state
        .cache
        .create(name, &key)
        .await
        .map_err(|e| store_error(e, ApiError::CREATE_FAILED, "create", name))?;
    Ok(Answer {
        response: wire::empty_ok(),
        audit: Some(format!("secret key '{name}' created")),
    })
}

pub(super) async fn import_key(req: &Call<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let body = req.body().ok_or(ApiError::INVALID_IMPORT_BODY)?;
    let json = GoJson::parse(body, <api::ImportKeyRequest>::FIELDS)
        .map_err(|_| ApiError::INVALID_IMPORT_BODY)?;
    let bytes = json
        .bytes("key")
        .map_err(|_| ApiError::INVALID_IMPORT_BODY)?;
    let cipher = json
        .string("cipher")
        .map_err(|_| ApiError::INVALID_IMPORT_BODY)?;
    let algorithm =
        KeyAlgorithm::parse(&cipher).ok_or_else(|| ApiError::unsupported_algorithm(&cipher))?;
    let raw: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| ApiError::invalid_key_size(&cipher))?;
    let key = KeyVersion {
        key: SecretKey::new(algorithm, raw),
        hmac_key: Some(HmacKey::generate()),
        created_at: OffsetDateTime::now_utc(),
        created_by: caller(req),
    };
    req.state
        .cache
        .create(name, &key)
        .await
        .map_err(|e| store_error(e, ApiError::CREATE_FAILED, "import", name))?;
    Ok(Answer {
        response: wire::empty_ok(),
        audit: Some(format!("secret key '{name}' created")),
    })
}

pub(super) async fn get_key(req: &Call<'_>, name: &str) -> Result<Arc<KeyRing>> {
    req.state
        .cache
        .get(name)
        .await
        .map_err(|e| store_error(e, ApiError::READ_FAILED, "read", name))
}

pub(super) async fn describe_key(req: &Call<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let key = get_key(req, name).await?;
    // created_at/created_by stay those of the oldest retained version:
    // when the key callers know came to be.
    let rotated = key.current_version() > 1;
    let oldest = key.oldest();
    Ok(wire::json(&api::KeyInfo {
        name: name.to_owned(),
        algorithm: key.key.algorithm().as_str().to_owned(),
        created_at: Some(oldest.created_at),
        created_by: oldest.created_by.clone(),
        version: rotated.then(|| key.current_version()),
        versions: rotated.then(|| count(key.retained())),
        rotated_at: rotated.then_some(key.created_at),
        next_rotation: req
            .state
            .lifecycle
            .rotation_period(name)
            .map(|every| crate::lifecycle::schedule::due_at(key.created_at, every)),
    })
    .into())
}

pub(super) async fn list_keys(req: &Call<'_>) -> Result<Answer> {
    let prefix = list_prefix(&req.resource)?;
    let paging = paging(&req.query);
    let start = paging.continue_at.map_or(Bound::Unbounded, Bound::Included);
    // Held until the reply is sent or dropped: a client that does not read
    // its listing holds one of its identity's few slots, not the server's
    // memory (docs/security.md, "Resource limits").
    let mut slot = req.state.listings.admit(&caller(req))?;
    let mut listing = req.state.cache.listing(prefix, start);
    listing.set_page(slot.page());
    let first = listing
        .next_names()
        .await
        .map_err(|e| list_failed(prefix, &e))?;
    slot.hold_first(&first)?;
    // Answered from the first page of the store: sent in one piece when it
    // is small, as the Go KES does.
    if listing.complete() || paging.limit.is_some_and(|limit| limit < first.len()) {
        let (names, continue_at) = page(first, &paging);
        return Ok(wire::names_reply(names, continue_at, slot).into());
    }
    // Otherwise the next pages are read from the store as the client reads
    // the reply, so that a listing holds a page of names at a time.
    struct Parts {
        first: Option<Vec<String>>,
        listing: Listing,
        slot: ListingSlot,
        prefix: String,
        /// Names the client's page still takes.
        remaining: usize,
        continue_at: Option<String>,
        done: bool,
    }
    let parts = Parts {
        first: Some(first),
        listing,
        slot,
        prefix: prefix.to_owned(),
        remaining: paging.limit.unwrap_or(usize::MAX),
        continue_at: None,
        done: false,
    };
    let parts = futures_util::stream::unfold(parts, |mut p| async move {
        if let Some(c) = p.continue_at.take() {
            return Some((ListingPart::ContinueAt(c), p));
        }
        if p.done {
            return None;
        }
        let mut names = match p.first.take() {
            Some(first) => first,
            None => {
                // The client has taken the previous page.
                p.slot.release_page();
                match p.listing.next_names().await {
                    Ok(names) => {
                        p.slot.hold_next(&names).await;
                        names
                    }
                    Err(e) => {
                        list_failed(&p.prefix, &e);
                        p.done = true;
                        return Some((ListingPart::Failed, p));
                    }
                }
            }
        };
        if names.is_empty() {
            return None;
        }
        if names.len() > p.remaining {
            p.continue_at = Some(names.swap_remove(p.remaining));
            names.truncate(p.remaining);
            p.done = true;
        }
        p.remaining -= names.len();
        Some((ListingPart::Names(names), p))
    });
    Ok(wire::names_stream(parts).into())
}

/// Logs a failed listing; the client gets the Go KES's error.
fn list_failed(prefix: &str, e: &kes_keystore::Error) -> ApiError {
    tracing::error!(prefix, error = %e, "failed to list keys");
    ApiError::LIST_FAILED
}

pub(super) async fn delete_key(req: &Call<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let window = req.state.lifecycle.deletion_window;
    if !window.is_zero() {
        return super::deletion::delete_later(req, name, window).await;
    }
    req.state
        .cache
        .delete(name)
        .await
        .map_err(|e| store_error(e, ApiError::DELETE_FAILED, "delete", name))?;
    Ok(Answer {
        response: wire::empty_ok(),
        audit: Some(format!("secret key '{name}' deleted")),
    })
}

/// A retire body whose `keep` is missing, zero or not an integer. Keeping
/// nothing would be a delete, which has its own route.
const INVALID_KEEP: ApiError = ApiError::from_static(400, "keep must be an integer of at least 1");

/// A rotation or retirement failed in the key store (details in the error
/// log): e.g. 100 retained versions, another retirement running, a store
/// that refuses to overwrite.
const ROTATE_FAILED: ApiError = ApiError::from_static(502, "failed to rotate key");
const RETIRE_FAILED: ApiError = ApiError::from_static(502, "failed to retire key");

pub(super) async fn rotate_key(req: &Call<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let rotated = req
        .state
        .cache
        .rotate(name, &caller(req))
        .await
        .map_err(|e| store_error(e, ROTATE_FAILED, "rotate", name))?;
    Ok(Answer {
        response: wire::json(&api::Rotated {
            version: rotated.version,
            versions: count(rotated.ring.retained()),
        }),
        audit: Some(format!(
            "key '{name}' rotated to version {}",
            rotated.version
        )),
    })
}

pub(super) async fn retire_key(req: &Call<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let keep = body_json(req, <api::RetireKeyRequest>::FIELDS)?
        .uint("keep")
        .map_err(|_| INVALID_KEEP)?;
    let keep = usize::try_from(keep)
        .ok()
        .filter(|k| *k >= 1)
        .ok_or(INVALID_KEEP)?;
    let retired = req
        .state
        .cache
        .retire(name, keep)
        .await
        .map_err(|e| store_error(e, RETIRE_FAILED, "retire", name))?;
    let version = retired.ring.current_version();
    Ok(Answer {
        response: wire::json(&api::Retired {
            retired: count(retired.retired),
            version,
            versions: count(retired.ring.retained()),
        }),
        audit: Some(format!(
            "key '{name}': {} old versions retired, {} kept (current version {version})",
            retired.retired,
            retired.ring.retained()
        )),
    })
}

/// A number of key versions as the API writes it (a key retains at most
/// 100).
fn count(versions: usize) -> u32 {
    u32::try_from(versions).unwrap_or(u32::MAX)
}

/// The request body decoded into `fields` with Go's rules.
pub(super) fn body_json(req: &Call<'_>, fields: &[&str]) -> Result<GoJson> {
    let body = req.body().ok_or(ApiError::INVALID_REQUEST_BODY)?;
    GoJson::parse(body, fields).map_err(|_| ApiError::INVALID_REQUEST_BODY)
}
