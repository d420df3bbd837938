//! The log endpoints: the `/v1/log/error` and `/v1/log/audit` streams.

use super::{Answer, Call, Result};
use crate::http::routes::Endpoint;
use crate::http::wire::{self, Body};
use crate::logs::Subscription;
use hyper::Response;
use kes_core::ApiError;
use std::sync::Arc;

/// `/v1/log/error` or `/v1/log/audit` (`endpoint`): the caller's
/// subscription to the log, as a stream.
pub(super) fn follow(req: &Call<'_>, endpoint: Endpoint) -> Result<Answer> {
    let subscriber = subscriber(req);
    let sub = if endpoint == Endpoint::LogAudit {
        req.shared.logs.subscribe_audit(&subscriber)?
    } else {
        req.shared.logs.subscribe_errors(&subscriber)?
    };
    still_allowed(req, endpoint)?;
    Ok(stream(sub).into())
}

/// Whether a `/v1/log/*` caller, authorised under the state its request
/// started with, is still allowed under the current one. A reload ends
/// the streams the new policies no longer allow once it has swapped the
/// state; a subscription registered after that pass is checked here, so
/// none slips between the two.
fn still_allowed(req: &Call<'_>, endpoint: Endpoint) -> Result<()> {
    let current = req.shared.state.load();
    if Arc::ptr_eq(&current, req.state) || current.may_follow(endpoint, &subscriber(req)) {
        Ok(())
    } else {
        Err(ApiError::NOT_ALLOWED)
    }
}

/// Whom a `/v1/log/*` subscription counts against: the caller's identity.
fn subscriber(req: &Call<'_>) -> String {
    req.identity.map(|i| i.to_string()).unwrap_or_default()
}

/// An NDJSON stream of log events; headers go out at once (the Go KES sent
/// them only with the first event) and each event is flushed as it
/// happens. The body reads the subscription directly: nothing is queued
/// per subscriber beyond the connection's write buffer, and a subscriber
/// that falls behind loses events (see [`Subscription`]) rather than
/// slowing the server down or holding memory. The stream ends cleanly when
/// the server stops.
fn stream(sub: Subscription) -> Response<Body> {
    wire::ndjson(futures_util::stream::unfold(sub, |mut sub| async move {
        let line = sub.next().await?;
        Some((line, sub))
    }))
}
