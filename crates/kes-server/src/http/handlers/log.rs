//! The log endpoints: the `/v1/log/error` and `/v1/log/audit` streams.

use crate::http::wire::{self, Body};
use crate::logs::Subscription;
use hyper::Response;

/// An NDJSON stream of log events; headers go out at once (the Go KES sent
/// them only with the first event) and each event is flushed as it
/// happens. The body reads the subscription directly: nothing is queued
/// per subscriber beyond the connection's write buffer, and a subscriber
/// that falls behind loses events (see [`Subscription`]) rather than
/// slowing the server down or holding memory. The stream ends cleanly when
/// the server stops.
pub(super) fn stream(sub: Subscription) -> Response<Body> {
    wire::ndjson(futures_util::stream::unfold(sub, |mut sub| async move {
        let line = sub.next().await?;
        Some((line, sub))
    }))
}
