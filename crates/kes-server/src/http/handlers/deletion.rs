//! Deletion with a recovery window (`lifecycle.deletion_window`, not in
//! the Go KES; docs/lifecycle.md, "Deleting keys"): the delete that keeps
//! a key restorable, the restore, and the listing of keys pending
//! deletion. The purge runs on its own (`lifecycle/purge.rs`).

use super::key::{caller, key_name, store_error};
use super::{list_prefix, paging, Answer, Call, Result};
use crate::http::wire;
use kes_core::timefmt::format_rfc3339_nano;
use kes_core::{api, ApiError};
use std::ops::Bound;
use std::time::Duration;

/// A restore failed in the key store (details in the error log), e.g. a
/// store that cannot write conditionally.
const RESTORE_FAILED: ApiError = ApiError::from_static(502, "failed to restore key");

/// The most keys one reply of `/v1/key/deleted/` lists; the client asks
/// for the rest with `?continue=<continue_at>`.
pub(super) const DELETED_PAGE: usize = 1000;

/// `DELETE /v1/key/delete/<name>` with a window: the key answers "does
/// not exist" from now on, but its material stays until `window` has
/// passed. The reply is the Go KES's (200, empty).
pub(super) async fn delete_later(req: &Call<'_>, name: &str, window: Duration) -> Result<Answer> {
    let pending = req
        .state
        .cache
        .delete_later(name, window, &caller(req))
        .await
        .map_err(|e| store_error(e, ApiError::DELETE_FAILED, "delete", name))?;
    Ok(Answer {
        response: wire::empty_ok(),
        audit: Some(format!(
            "secret key '{name}' deleted; restorable until {}",
            format_rfc3339_nano(pending.purge_at)
        )),
    })
}

/// `POST /v1/key/restore/<name>`: a key pending deletion back, with all
/// its versions. 400 `key already exists` for a live key, 404 `key does
/// not exist` when nothing of the name is pending (or it was purged).
pub(super) async fn restore_key(req: &Call<'_>) -> Result<Answer> {
    let name = key_name(req)?;
    let ring = req
        .state
        .cache
        .restore(name)
        .await
        .map_err(|e| store_error(e, RESTORE_FAILED, "restore", name))?;
    Ok(Answer {
        response: wire::empty_ok(),
        audit: Some(format!(
            "secret key '{name}' restored ({} versions)",
            ring.retained()
        )),
    })
}

/// `GET /v1/key/deleted/<pattern>`: the keys pending deletion whose names
/// start with the pattern's prefix, sorted, at most [`DELETED_PAGE`] (or
/// `?limit=`, if smaller) from `?continue=` on.
pub(super) async fn list_deleted(req: &Call<'_>) -> Result<Answer> {
    let prefix = list_prefix(&req.resource)?;
    let paging = paging(&req.query);
    let limit = paging.limit.map_or(DELETED_PAGE, |l| l.min(DELETED_PAGE));
    // Like a key listing, it holds one of its identity's few listing
    // slots and charges the names of its reply to the listings' budget of
    // bytes, so that concurrent requests cannot pile up pages of names.
    let mut slot = req.state.listings.admit(&caller(req))?;
    let cache = &req.state.cache;
    let failed = |e: kes_keystore::Error| {
        tracing::error!(prefix, error = %e, "failed to list keys pending deletion");
        ApiError::LIST_FAILED
    };
    // One key more than the page: its name is where the next page starts.
    let keys = cache
        .pending(
            prefix,
            paging.continue_at.map_or(Bound::Unbounded, Bound::Included),
            limit + 1,
        )
        .await
        .map_err(failed)?;
    let mut keys = keys.0;
    let names: Vec<String> = keys.iter().map(|p| p.name.clone()).collect();
    slot.hold_first(&names)?;
    let continue_at = match keys.len() > limit {
        true => keys.split_off(limit).swap_remove(0).name,
        false => String::new(),
    };
    Ok(wire::json(&api::DeletedKeys {
        keys: keys
            .into_iter()
            .map(|p| api::DeletedKey {
                name: p.name,
                deleted_at: p.deleted_at,
                deleted_by: p.deleted_by,
                purge_at: p.purge_at,
            })
            .collect(),
        continue_at,
    })
    .into())
}
