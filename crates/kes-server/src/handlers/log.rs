//! The log endpoints: `/v1/log/error` and `/v1/log/audit` streams.

use crate::wire::Body;
use http_body_util::BodyExt;
use hyper::Response;

/// An NDJSON stream of log events; headers go out at once (the reference
/// sent them only with the first event) and each event is flushed as it
/// happens. The body reads the subscription directly: nothing is queued
/// per subscriber beyond the connection's write buffer, and a subscriber
/// that falls behind loses events (see [`crate::logs::Subscription`])
/// rather than slowing the server down or holding memory. The stream ends
/// cleanly when the server stops.
pub(super) fn log_stream(sub: crate::logs::Subscription) -> Response<Body> {
    let stream = futures_util::stream::unfold(sub, |mut sub| async move {
        let line = sub.next().await?;
        Some((
            Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(line)),
            sub,
        ))
    });
    let body = http_body_util::StreamBody::new(stream).boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = ::http::StatusCode::OK;
    resp.headers_mut().insert(
        ::http::header::CONTENT_TYPE,
        ::http::HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}
