//! Byte-exact HTTP responses; requests are decoded with
//! [`kes_core::gocompat`].
//!
//! KES clients compare error messages word for word and some parse bodies
//! strictly, so every response is produced here, headers included: JSON
//! documents end in `\n`, `<`, `>` and `&` are escaped as Go's
//! `encoding/json` does, errors are `{"message":"…"\n}`, empty successes
//! carry `Content-Length: 0` and no content type, the metrics text and the
//! log streams carry their content types, a 405 names the allowed method in
//! `Accept`, and a HEAD request gets a GET's headers without its body.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use kes_core::{gocompat, ApiError};
use serde::Serialize;
use std::convert::Infallible;

/// The body type of every response: full bodies and log streams.
pub type Body = BoxBody<Bytes, Infallible>;

/// A full (non-streaming) body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// 200 with a JSON body.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    json_document(gocompat::to_json(value))
}

/// 200 with a JSON document as its body, its length announced.
fn json_document(body: impl Into<Bytes>) -> Response<Body> {
    let body = body.into();
    let len = body.len();
    let mut resp = Response::new(full(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    resp
}

/// 200 with a JSON body that carries secrets (plaintexts, data keys): the
/// document is written into one buffer of `capacity` bytes (grown only if
/// the estimate was short, wiping the old one) that is wiped when hyper
/// drops the body. Copies that hyper and rustls make while sending are out
/// of our reach. Only for documents of base64 strings, which need none of
/// Go's HTML escaping.
pub fn secret_json<T: Serialize + ?Sized>(value: &T, capacity: usize) -> Response<Body> {
    let mut buf = zeroize::Zeroizing::new(Vec::with_capacity(capacity + 1));
    serde_json::to_writer(&mut *buf, value).expect("serializing plain data cannot fail");
    debug_assert!(!buf.iter().any(|b| matches!(b, b'<' | b'>' | b'&')));
    if buf.len() == buf.capacity() {
        let mut grown = zeroize::Zeroizing::new(Vec::with_capacity(buf.len() + 1));
        grown.extend_from_slice(&buf);
        buf = grown;
    }
    buf.push(b'\n');
    json_document(Bytes::from_owner(buf))
}

/// Replies of at most this many bytes are sent in one piece, with a
/// Content-Length, exactly as the Go KES sends them; larger listings are
/// streamed.
const STREAM_LISTING_ABOVE: usize = 64 * 1024;

/// What the source of a streamed listing yields next.
pub enum ListingPart {
    /// The next names, sorted.
    Names(Vec<String>),
    /// The first name after a page that a client asked for; ends the
    /// listing with `"continue_at"`.
    ContinueAt(String),
    /// The key store failed (the source logs why). The reply ends without
    /// its closing brackets, so no client takes it for a complete listing.
    Failed,
}

/// A listing `{"names":[…]}` (with `"continue_at":"…"` when the client's
/// page ends before the last name) as Go's encoder writes it: in one piece
/// with a Content-Length when it is at most `STREAM_LISTING_ABOVE` bytes,
/// else streamed. `held` (a listing's share of a budget) is dropped with
/// the names: when the reply is built in one piece, or else once the
/// streamed reply is sent or dropped.
pub fn names_reply<H: Send + 'static>(
    names: Vec<String>,
    continue_at: String,
    held: H,
) -> Response<Body> {
    let size: usize = names.iter().map(|n| n.len() + 3).sum::<usize>() + continue_at.len();
    if size > STREAM_LISTING_ABOVE {
        let mut parts = vec![ListingPart::Names(names)];
        if !continue_at.is_empty() {
            parts.push(ListingPart::ContinueAt(continue_at));
        }
        let parts = futures_util::StreamExt::map(futures_util::stream::iter(parts), move |part| {
            let _held = &held;
            part
        });
        return names_stream(parts);
    }
    drop(held);
    json(&kes_core::api::Names {
        names,
        continue_at: (!continue_at.is_empty()).then_some(continue_at),
    })
}

/// A listing `{"names":[…],"continue_at":"…"}` as Go's encoder writes it,
/// produced in chunks of about 64 KiB while the client reads, from `parts`
/// pulled only as fast as the client reads: a slow reader holds one chunk
/// and what its source holds (a page of names from the key store), not the
/// whole listing.
pub fn names_stream<S>(parts: S) -> Response<Body>
where
    S: futures_util::Stream<Item = ListingPart> + Send + 'static,
{
    const CHUNK: usize = 64 * 1024;
    struct Listing<S> {
        parts: std::pin::Pin<Box<S>>,
        pending: std::vec::IntoIter<String>,
        first: bool,
        done: bool,
    }
    let listing = Listing {
        parts: Box::pin(parts),
        pending: Vec::new().into_iter(),
        first: true,
        done: false,
    };
    let stream = futures_util::stream::unfold(listing, |mut l| async move {
        if l.done {
            return None;
        }
        let mut chunk = Vec::with_capacity(CHUNK + 256);
        if l.first {
            chunk.extend_from_slice(b"{\"names\":[");
        }
        while chunk.len() < CHUNK {
            if let Some(name) = l.pending.next() {
                if !l.first {
                    chunk.push(b',');
                }
                l.first = false;
                chunk.extend_from_slice(&gocompat::escape_html(
                    serde_json::to_vec(&name).expect("a string always serializes"),
                ));
                continue;
            }
            let continue_at = match futures_util::StreamExt::next(&mut l.parts).await {
                Some(ListingPart::Names(names)) => {
                    l.pending = names.into_iter();
                    continue;
                }
                Some(ListingPart::Failed) => {
                    l.done = true;
                    break;
                }
                Some(ListingPart::ContinueAt(c)) => Some(c),
                None => None,
            };
            chunk.push(b']');
            if let Some(c) = continue_at.filter(|c| !c.is_empty()) {
                chunk.extend_from_slice(b",\"continue_at\":");
                chunk.extend_from_slice(&gocompat::escape_html(
                    serde_json::to_vec(&c).expect("a string always serializes"),
                ));
            }
            chunk.extend_from_slice(b"}\n");
            l.done = true;
            break;
        }
        if chunk.is_empty() {
            return None;
        }
        Some((Ok(hyper::body::Frame::data(Bytes::from(chunk))), l))
    });
    let stream = OnlyPolledMut(std::sync::Mutex::new(Box::pin(stream)));
    let mut resp = Response::new(http_body_util::StreamBody::new(stream).boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A `Send` stream made `Sync`, as [`Body`] must be: a stream is only ever
/// polled through `&mut`, where the mutex hands out its content without
/// locking. (A listing's stream awaits key-store futures, which are `Send`
/// but not `Sync`.)
struct OnlyPolledMut<S>(std::sync::Mutex<std::pin::Pin<Box<S>>>);

impl<S: futures_util::Stream> futures_util::Stream for OnlyPolledMut<S> {
    type Item = S::Item;

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<S::Item>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.as_mut().poll_next(cx)
    }
}

/// 200 with no body (`Content-Length: 0`, no content type).
pub fn empty_ok() -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

/// The error response of the Go KES: `{"message":"<text>"\n}`.
pub fn error(err: &ApiError) -> Response<Body> {
    let msg = serde_json::to_vec(err.message()).expect("a string always serializes");
    let mut body = Vec::with_capacity(msg.len() + 14);
    body.extend_from_slice(b"{\"message\":");
    body.extend_from_slice(&gocompat::escape_html(msg));
    body.extend_from_slice(b"\n}");
    let mut resp = json_document(body);
    *resp.status_mut() =
        StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

/// 405 for a request with `method` on a route that takes `allowed`: the
/// error of the Go KES, and the allowed method in `Accept`.
pub fn method_not_allowed(method: &Method, allowed: &Method) -> Response<Body> {
    let err = ApiError::method_not_allowed(method.as_str(), allowed.as_str());
    let mut resp = error(&err);
    resp.headers_mut().insert(
        header::ACCEPT,
        HeaderValue::from_str(allowed.as_str()).unwrap_or_else(|_| HeaderValue::from_static("GET")),
    );
    resp
}

/// 200 with the Prometheus text exposition (format 0.0.4) of `/v1/metrics`.
pub fn metrics_text(text: String) -> Response<Body> {
    let mut resp = Response::new(full(text));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8; escaping=underscores"),
    );
    resp
}

/// 200 with an NDJSON stream (`/v1/log/*`): each item is one line, sent as
/// a frame of its own as soon as the stream yields it; the headers go out
/// at once.
pub fn ndjson<S>(lines: S) -> Response<Body>
where
    S: futures_util::Stream<Item = Bytes> + Send + Sync + 'static,
{
    let frames = futures_util::StreamExt::map(lines, |line| {
        Ok::<_, Infallible>(hyper::body::Frame::data(line))
    });
    let mut resp = Response::new(http_body_util::StreamBody::new(frames).boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp
}

/// The response as sent for a request with `method`: never a body for
/// HEAD (HTTP/2 clients treat one as a protocol error), the headers,
/// Content-Length included, staying as for GET.
pub fn for_method(resp: Response<Body>, method: &Method) -> Response<Body> {
    if method != Method::HEAD {
        return resp;
    }
    let (parts, _) = resp.into_parts();
    Response::from_parts(parts, full(Bytes::new()))
}

/// Go's `http.NotFound`: `404 page not found` as plain text.
pub fn not_found() -> Response<Body> {
    let body = "404 page not found\n";
    let mut resp = Response::new(full(body));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    resp
}

/// Go's `http.Redirect` with 301 Moved Permanently.
pub fn moved_permanently(location: &str, method: &http::Method) -> Response<Body> {
    let body = if method == http::Method::GET || method == http::Method::HEAD {
        format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            html_escape(location)
        )
    } else {
        String::new()
    };
    let mut resp = Response::new(full(body.clone()));
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(location) {
        h.insert(header::LOCATION, v);
    }
    if !body.is_empty() {
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    resp
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn streamed_listings_equal_the_whole_document() {
        let names: Vec<String> = (0..20_000).map(|i| format!("key-<{i:05}>&")).collect();
        for continue_at in ["", "key-<20000>"] {
            let whole = gocompat::to_json(&kes_core::api::Names {
                names: names.clone(),
                continue_at: (!continue_at.is_empty()).then(|| continue_at.to_owned()),
            });
            // The names come in parts of uneven sizes, as pages of a store.
            let mut parts: Vec<ListingPart> = names
                .chunks(4093)
                .map(|c| ListingPart::Names(c.to_vec()))
                .collect();
            parts.insert(1, ListingPart::Names(Vec::new()));
            if !continue_at.is_empty() {
                parts.push(ListingPart::ContinueAt(continue_at.to_string()));
            }
            let resp = names_stream(futures_util::stream::iter(parts));
            assert!(resp.headers().get(header::CONTENT_LENGTH).is_none());
            let mut body = resp.into_body();
            let mut streamed = Vec::new();
            let mut chunks = 0;
            while let Some(frame) = body.frame().await {
                let data = frame.unwrap().into_data().unwrap();
                assert!(data.len() <= 64 * 1024 + 256, "chunk of {}", data.len());
                streamed.extend_from_slice(&data);
                chunks += 1;
            }
            assert!(chunks > 5);
            assert_eq!(
                String::from_utf8(streamed).unwrap(),
                String::from_utf8(whole).unwrap()
            );
        }
        let empty = names_stream(futures_util::stream::empty()).into_body();
        let bytes = empty.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"{\"names\":[]}\n");
        // A store failure after the first part: the reply stops short of
        // its closing brackets, so that it cannot parse as a listing.
        let parts = [
            ListingPart::Names(names[..10].to_vec()),
            ListingPart::Failed,
            ListingPart::Names(names[10..20].to_vec()),
        ];
        let failed = names_stream(futures_util::stream::iter(parts)).into_body();
        let bytes = failed.collect().await.unwrap().to_bytes();
        assert!(bytes.starts_with(b"{\"names\":[\"key-"));
        assert!(bytes.ends_with(b"00009\\u003e\\u0026\""), "{bytes:?}");
        assert!(serde_json::from_slice::<serde_json::Value>(&bytes).is_err());
    }

    #[test]
    fn error_body_is_byte_exact() {
        let resp = error(&ApiError::KEY_EXISTS);
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["content-length"], "33");
    }
}
