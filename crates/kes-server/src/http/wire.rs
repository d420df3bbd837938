//! Byte-exact HTTP responses and Go-compatible JSON request decoding.
//!
//! KES clients compare error messages word for word and some parse bodies
//! strictly, so every response is produced here, headers included: JSON
//! documents end in `\n`, `<`, `>` and `&` are escaped as Go's
//! `encoding/json` does, errors are `{"message":"…"\n}`, empty successes
//! carry `Content-Length: 0` and no content type, the metrics text and the
//! log streams carry their content types, a 405 names the allowed method in
//! `Accept`, and a HEAD request gets a GET's headers without its body.

use base64::Engine as _;
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use kes_core::ApiError;
use serde::Serialize;
use std::convert::Infallible;

/// The body type of every response: full bodies and log streams.
pub type Body = BoxBody<Bytes, Infallible>;

/// A full (non-streaming) body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

/// Serializes `value` as Go's `encoding/json` would, including the trailing
/// newline that `json.Encoder` writes.
pub fn go_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let raw = serde_json::to_vec(value).expect("serializing plain data cannot fail");
    let mut out = escape_go_html(raw);
    out.push(b'\n');
    out
}

/// Go escapes `<`, `>`, `&`, U+2028 and U+2029 inside strings. These bytes
/// can only occur inside string literals of a JSON document, so replacing
/// them everywhere is exact.
fn escape_go_html(raw: Vec<u8>) -> Vec<u8> {
    // A branch-free scan the compiler vectorises; almost every document
    // (base64 and names) needs no escaping.
    let needs = raw
        .iter()
        .fold(false, |acc, b| acc | matches!(b, b'<' | b'>' | b'&' | 0xe2));
    if !needs {
        return raw;
    }
    let mut out = Vec::with_capacity(raw.len() + 16);
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            0xe2 if raw.get(i + 1) == Some(&0x80)
                && matches!(raw.get(i + 2), Some(0xa8 | 0xa9)) =>
            {
                out.extend_from_slice(if raw[i + 2] == 0xa8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// 200 with a JSON body.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    json_with_status(StatusCode::OK, value)
}

/// A JSON body with the given status.
pub fn json_with_status<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    let mut resp = json_document(go_json(value));
    *resp.status_mut() = status;
    resp
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
pub const STREAM_LISTING_ABOVE: usize = 64 * 1024;

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
/// with a Content-Length when it is at most [`STREAM_LISTING_ABOVE`] bytes,
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
    #[derive(Serialize)]
    struct Names {
        names: Vec<String>,
        #[serde(skip_serializing_if = "String::is_empty")]
        continue_at: String,
    }
    json(&Names { names, continue_at })
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
                chunk.extend_from_slice(&escape_go_html(
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
                chunk.extend_from_slice(&escape_go_html(
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
    body.extend_from_slice(&escape_go_html(msg));
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

/// A JSON request body decoded with Go `encoding/json` semantics: one JSON
/// value (trailing bytes ignored, as `json.Decoder.Decode` does), unknown
/// fields ignored, `null` or missing fields empty, and object keys matched
/// to field names as Go matches them to struct fields: exactly or under
/// Go's case folding, where every matching key assigns the field again, so
/// the last one in the document wins (`{"context":…,"CONTEXT":…}` binds
/// the second, as the Go KES and any proxy decoding like Go do).
pub struct GoJson {
    /// The object's members in document order, duplicates kept.
    members: Vec<(String, serde_json::Value)>,
}

/// The decoded fields carry plaintexts (encrypt, HMAC messages) as base64
/// strings: wipe them with the request.
impl Drop for GoJson {
    fn drop(&mut self) {
        fn wipe(value: &mut serde_json::Value) {
            use zeroize::Zeroize as _;
            match value {
                serde_json::Value::String(s) => s.zeroize(),
                serde_json::Value::Array(items) => items.iter_mut().for_each(wipe),
                serde_json::Value::Object(map) => map.values_mut().for_each(wipe),
                _ => {}
            }
        }
        for (_, value) in &mut self.members {
            wipe(value);
        }
    }
}

/// The request body is not acceptable JSON for the endpoint.
#[derive(Debug)]
pub struct BadJson;

/// A JSON object read member by member, or `null`. A map type would merge
/// duplicate keys and lose their order, which decides the value in Go.
struct GoObject(Option<Vec<(String, serde_json::Value)>>);

impl<'de> serde::Deserialize<'de> for GoObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = GoObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object or null")
            }
            fn visit_unit<E>(self) -> Result<GoObject, E> {
                Ok(GoObject(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<GoObject, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry()? {
                    members.push(member);
                }
                Ok(GoObject(Some(members)))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// An array of [`GoObject`]s, or `null`.
struct GoObjects(Vec<GoObject>);

impl<'de> serde::Deserialize<'de> for GoObjects {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Option::<Vec<GoObject>>::deserialize(deserializer).map(|v| GoObjects(v.unwrap_or_default()))
    }
}

/// Whether the object key `key` sets the struct field whose JSON name is
/// `name` in Go's `encoding/json`: equal, or equal under Go's simple case
/// folding (`bytes.EqualFold`). Field names are ASCII, and for them only
/// ASCII letters and two other characters fold together: the Kelvin sign
/// U+212A folds with `k` and the long s U+017F with `s`; every other
/// non-ASCII character, `İ` U+0130 and `ı` U+0131 included, folds only with
/// non-ASCII ones in Go's tables.
fn go_key_matches(key: &str, name: &str) -> bool {
    debug_assert!(name.is_ascii(), "field names are ASCII");
    let mut key = key.chars();
    for want in name.bytes() {
        let Some(got) = key.next() else {
            return false;
        };
        let folds = match got {
            '\u{212A}' => want.eq_ignore_ascii_case(&b'k'),
            '\u{017F}' => want.eq_ignore_ascii_case(&b's'),
            c if c.is_ascii() => (c as u8).eq_ignore_ascii_case(&want),
            _ => false,
        };
        if !folds {
            return false;
        }
    }
    key.next().is_none()
}

impl GoJson {
    /// Parses `body`; an empty body or `null` is an empty object.
    pub fn parse(body: &[u8]) -> Result<Self, BadJson> {
        let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<GoObject>();
        match stream.next() {
            Some(Ok(GoObject(members))) => Ok(Self {
                members: members.unwrap_or_default(),
            }),
            None | Some(Err(_)) => Err(BadJson),
        }
    }

    /// Parses `body` as an array of objects (bulk decrypt), keeping the
    /// members of each in document order; `null` is an empty array, as are
    /// `null` entries empty objects.
    pub fn parse_list(body: &[u8]) -> Result<Vec<Self>, BadJson> {
        let mut stream = serde_json::Deserializer::from_slice(body).into_iter::<GoObjects>();
        match stream.next() {
            Some(Ok(GoObjects(items))) => Ok(items
                .into_iter()
                .map(|GoObject(members)| Self {
                    members: members.unwrap_or_default(),
                })
                .collect()),
            None | Some(Err(_)) => Err(BadJson),
        }
    }

    /// The values of every key that sets field `name`, in document order.
    fn matches<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a serde_json::Value> + 'a {
        self.members
            .iter()
            .filter(move |(key, _)| go_key_matches(key, name))
            .map(|(_, value)| value)
    }

    /// A `[]byte` field: standard padded base64 (`\r` and `\n` ignored);
    /// missing or `null` is empty. Like Go, every matching key is decoded
    /// and any bad one fails the request, even if a later one is good.
    pub fn bytes(&self, name: &str) -> Result<Vec<u8>, BadJson> {
        let mut out = Vec::new();
        for value in self.matches(name) {
            let next = match value {
                serde_json::Value::Null => Vec::new(),
                serde_json::Value::String(s) => decode_go_base64(s).ok_or(BadJson)?,
                _ => return Err(BadJson),
            };
            // An overridden value may be a plaintext.
            zeroize::Zeroize::zeroize(&mut out);
            out = next;
        }
        Ok(out)
    }

    /// A `string` field; missing is empty. The last matching string wins:
    /// Go ignores `null` for a string, where it empties a `[]byte`. Any
    /// matching key with another type fails.
    pub fn string(&self, name: &str) -> Result<String, BadJson> {
        let mut out = "";
        for value in self.matches(name) {
            match value {
                serde_json::Value::Null => {}
                serde_json::Value::String(s) => out = s,
                _ => return Err(BadJson),
            }
        }
        Ok(out.to_string())
    }

    /// An unsigned integer field (Go's `uint`); missing is 0. The last
    /// matching number wins and `null` is ignored, as in Go; a fraction, a
    /// negative number, one beyond `u64` or another type fails.
    pub fn uint(&self, name: &str) -> Result<u64, BadJson> {
        let mut out = 0;
        for value in self.matches(name) {
            match value {
                serde_json::Value::Null => {}
                serde_json::Value::Number(n) => out = n.as_u64().ok_or(BadJson)?,
                _ => return Err(BadJson),
            }
        }
        Ok(out)
    }
}

/// Go's `[]byte` JSON decoding: standard base64 with padding, ignoring
/// `\r` and `\n`.
pub fn decode_go_base64(s: &str) -> Option<Vec<u8>> {
    let engine = &base64::engine::general_purpose::STANDARD;
    if s.contains(['\r', '\n']) {
        let cleaned: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        engine.decode(cleaned).ok()
    } else {
        engine.decode(s).ok()
    }
}

/// Standard padded base64, as Go encodes `[]byte`.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_fields_decode_as_go_does() {
        let keep = |body: &str| GoJson::parse(body.as_bytes()).unwrap().uint("keep").ok();
        assert_eq!(keep(r#"{"keep":2}"#), Some(2));
        assert_eq!(keep(r#"{}"#), Some(0));
        assert_eq!(keep(r#"{"keep":null}"#), Some(0));
        assert_eq!(keep(r#"{"KEEP":3,"keep":null}"#), Some(3));
        assert_eq!(keep(r#"{"keep":1,"Keep":4}"#), Some(4));
        for bad in [
            r#"{"keep":-1}"#,
            r#"{"keep":1.5}"#,
            r#"{"keep":"2"}"#,
            r#"{"keep":true}"#,
            r#"{"keep":18446744073709551616}"#,
        ] {
            assert!(keep(bad).is_none(), "{bad}");
        }
    }

    #[tokio::test]
    async fn streamed_listings_equal_the_whole_document() {
        let names: Vec<String> = (0..20_000).map(|i| format!("key-<{i:05}>&")).collect();
        for continue_at in ["", "key-<20000>"] {
            #[derive(serde::Serialize)]
            struct Doc<'a> {
                names: &'a [String],
                #[serde(skip_serializing_if = "str::is_empty")]
                continue_at: &'a str,
            }
            let whole = go_json(&Doc {
                names: &names,
                continue_at,
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

    #[test]
    fn go_escaping() {
        assert_eq!(
            go_json(&serde_json::json!({"v": "<a&b>\u{2028}"})),
            b"{\"v\":\"\\u003ca\\u0026b\\u003e\\u2028\"}\n".to_vec()
        );
        assert_eq!(go_json(&["é"]), "[\"é\"]\n".as_bytes().to_vec());
    }

    #[test]
    fn go_json_decoding() {
        let j = GoJson::parse(br#"{"CONTEXT":"e30=","Plaintext":null} trailing"#).unwrap();
        assert_eq!(j.bytes("context").unwrap(), b"{}");
        assert!(j.bytes("plaintext").unwrap().is_empty());
        assert!(j.bytes("missing").unwrap().is_empty());
        let j = GoJson::parse(br#"{"context":"e30=\n"}"#).unwrap();
        assert_eq!(j.bytes("context").unwrap(), b"{}");
        assert!(GoJson::parse(b"{not json").is_err());
        assert!(GoJson::parse(b"[1]").is_err());
        assert!(GoJson::parse(b"").is_err());
        let j = GoJson::parse(br#"{"context":"e30"}"#).unwrap();
        assert!(
            j.bytes("context").is_err(),
            "unpadded base64 is rejected like Go"
        );
        let j = GoJson::parse(br#"{"context":5}"#).unwrap();
        assert!(j.bytes("context").is_err());
    }

    #[test]
    fn go_json_last_matching_key_wins() {
        // "e30=" is {}, "W10=" is [].
        let j = GoJson::parse(br#"{"context":"e30=","CONTEXT":"W10="}"#).unwrap();
        assert_eq!(j.bytes("context").unwrap(), b"[]");
        let j = GoJson::parse(br#"{"CONTEXT":"e30=","context":"W10="}"#).unwrap();
        assert_eq!(j.bytes("context").unwrap(), b"[]");
        // Exact repeats count in document order too, around other spellings.
        let j = GoJson::parse(br#"{"context":"e30=","Context":"W10=","context":"e30="}"#).unwrap();
        assert_eq!(j.bytes("context").unwrap(), b"{}");
        // null empties a []byte that an earlier key set ...
        let j = GoJson::parse(br#"{"context":"e30=","Context":null}"#).unwrap();
        assert!(j.bytes("context").unwrap().is_empty());
        // ... but leaves a string alone, as Go does.
        let j = GoJson::parse(br#"{"cipher":"AES256","CIPHER":null}"#).unwrap();
        assert_eq!(j.string("cipher").unwrap(), "AES256");
        let j = GoJson::parse(br#"{"cipher":"AES256","Cipher":"ChaCha20"}"#).unwrap();
        assert_eq!(j.string("cipher").unwrap(), "ChaCha20");
        // A bad value fails the decode even when a later key is good.
        let j = GoJson::parse(br#"{"context":"e30","Context":"e30="}"#).unwrap();
        assert!(j.bytes("context").is_err());
        let j = GoJson::parse(br#"{"cipher":1,"cipher":"AES256"}"#).unwrap();
        assert!(j.string("cipher").is_err());
        // Keys of other fields do not interfere.
        let j = GoJson::parse(br#"{"plaintext":"e30=","context":"W10="}"#).unwrap();
        assert_eq!(j.bytes("plaintext").unwrap(), b"{}");
    }

    #[test]
    fn go_json_case_folding() {
        let j = GoJson::parse("{\"\u{212A}ey\":\"e30=\"}".as_bytes()).unwrap();
        assert_eq!(j.bytes("key").unwrap(), b"{}", "Kelvin sign K folds to k");
        let j = GoJson::parse(br#"{"\u212Aey":"e30="}"#).unwrap();
        assert_eq!(j.bytes("key").unwrap(), b"{}", "escaped Kelvin sign");
        let j = GoJson::parse("{\"me\u{17F}Sage\":\"e30=\"}".as_bytes()).unwrap();
        assert_eq!(j.bytes("message").unwrap(), b"{}", "long s folds to s");
        let j = GoJson::parse("{\"CIPHER\":\"x\",\"ciphe\u{280}\":\"y\"}".as_bytes()).unwrap();
        assert_eq!(j.string("cipher").unwrap(), "x");
        // Characters that only look alike, or fold only in Turkish, or fold
        // to more than one character, do not match.
        for key in [
            "ke\u{1D67}",   // ᵧ (modifier letter)
            "\u{1E31}ey",   // ḱ
            "c\u{131}pher", // dotless ı
            "c\u{130}pher", // dotted İ
            "ciphe\u{280}", // ʀ
            "KEY\u{0}",
            "ke",
            "keyy",
            "",
        ] {
            let body = serde_json::json!({ key: "e30=" }).to_string();
            let j = GoJson::parse(body.as_bytes()).unwrap();
            assert!(j.bytes("key").unwrap().is_empty(), "{key:?}");
            assert!(j.string("cipher").unwrap().is_empty(), "{key:?}");
        }
        assert!(go_key_matches("\u{212A}\u{17F}", "ks"));
        assert!(go_key_matches("\u{212A}\u{17F}", "KS"));
        assert!(!go_key_matches("\u{212A}", "s"));
        assert!(!go_key_matches("\u{17F}", "k"));
    }

    #[test]
    fn go_json_lists() {
        let items = GoJson::parse_list(br#"[{"ciphertext":"e30=","CIPHERTEXT":"W10="},null,{}] x"#)
            .unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].bytes("ciphertext").unwrap(), b"[]");
        assert!(items[1].bytes("ciphertext").unwrap().is_empty());
        assert!(items[2].bytes("ciphertext").unwrap().is_empty());
        assert!(GoJson::parse_list(b"null").unwrap().is_empty());
        assert!(GoJson::parse_list(b"[1]").is_err());
        assert!(GoJson::parse_list(b"{}").is_err());
        assert!(GoJson::parse_list(b"").is_err());
    }
}
