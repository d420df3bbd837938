//! Connections and the request pipeline: TLS handshake → identity (once per
//! connection) → routing → method check → authorization → body limit →
//! handler (with timeout and panic isolation) → metrics and audit.

use crate::handlers::{self, Answer};
use crate::logs::AuditEvent;
use crate::routes::{Auth, Endpoint, Lookup, Route};
use crate::state::{Shared, State};
use crate::wire::{self, Body};
use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use kes_core::{ApiError, Identity};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Time a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request's headers (Go: ReadHeaderTimeout).
const READ_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection without requests in flight is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// What the server knows about one connection.
struct Conn {
    /// The caller's identity, or the error to answer when a route needs one.
    identity: Result<Identity, ApiError>,
    peer: SocketAddr,
    in_flight: AtomicUsize,
    /// Milliseconds since `opened` at the last request start or end.
    last_activity: AtomicU64,
    opened: Instant,
}

impl Conn {
    fn touch(&self) {
        self.last_activity
            .store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Accepts connections until `shutdown` turns true, then lets every
/// connection finish its requests in flight (bounded by `grace`).
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    let (conn_shutdown_tx, conn_shutdown_rx) = watch::channel(false);
    let tracker = tokio_util::task::TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            res = listener.accept() => res,
            _ = shutdown.changed() => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => c,
            Err(err) => {
                // Out of file descriptors and similar: back off briefly
                // instead of spinning.
                tracing::error!(error = %err, "http: accept error");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let stop = conn_shutdown_rx.clone();
        tracker.spawn(async move {
            handle_connection(tcp, peer, shared, stop).await;
        });
    }
    drop(listener);
    let _ = conn_shutdown_tx.send(true);
    tracker.close();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!("shutdown: closing connections with requests still in flight");
    }
}

async fn handle_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(shared.tls.load_full());
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(err)) => {
            tracing::info!(ip = %peer.ip(), error = %err, "http: TLS handshake error");
            return;
        }
        Err(_) => {
            tracing::info!(ip = %peer.ip(), "http: TLS handshake timed out");
            return;
        }
    };
    let identity = match stream.get_ref().1.peer_certificates() {
        Some(certs) => kes_core::identity::identify(certs),
        None => Err(ApiError::CERTIFICATE_REQUIRED),
    };
    let conn = Arc::new(Conn {
        identity,
        peer,
        in_flight: AtomicUsize::new(0),
        last_activity: AtomicU64::new(0),
        opened: Instant::now(),
    });
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            let conn = conn.clone();
            async move { Ok::<_, Infallible>(handle_request(&shared, &conn, req).await) }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(READ_HEADER_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(250);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut idle_check = tokio::time::interval(Duration::from_secs(5));
    let mut stopping = false;
    loop {
        tokio::select! {
            res = connection.as_mut() => {
                if let Err(err) = res {
                    tracing::debug!(ip = %conn.peer.ip(), error = %err, "http: connection error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = idle_check.tick(), if !stopping => {
                let idle_ms = conn.opened.elapsed().as_millis() as u64
                    - conn.last_activity.load(Ordering::Relaxed).min(conn.opened.elapsed().as_millis() as u64);
                if conn.in_flight.load(Ordering::Relaxed) == 0
                    && Duration::from_millis(idle_ms) >= IDLE_TIMEOUT
                {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Decrements the in-flight count even when a request future is dropped
/// (client gone, shutdown).
struct InFlight<'a>(&'a Conn);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The decoded path (Go's `URL.Path`); borrowed in the common case of a
/// path without escapes.
fn percent_decode(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !path.contains('%') {
        return Some(std::borrow::Cow::Borrowed(path));
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let s = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(s, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(std::borrow::Cow::Owned)
}

/// Routes whose requests the reference counts in its request metrics.
fn counted(route: &Route) -> bool {
    route.path.starts_with("/v1/key/")
        || route.path.starts_with("/v1/policy/")
        || route.path.starts_with("/v1/identity/")
}

async fn handle_request(shared: &Shared, conn: &Conn, req: Request<Incoming>) -> Response<Body> {
    conn.in_flight.fetch_add(1, Ordering::Relaxed);
    conn.touch();
    let _in_flight = InFlight(conn);
    let started = Instant::now();
    let time = OffsetDateTime::now_utc();
    let state = shared.state.load_full();
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();

    // Fail closed: a call whose audit line could not be queued is refused.
    let permit = shared.logs.reserve_audit(&raw_path);
    let (response, audit_msg, identity) =
        if permit.refused() && !crate::logs::answered_without_audit(&raw_path) {
            (wire::error(&crate::logs::AUDIT_UNAVAILABLE), None, None)
        } else {
            route_request(shared, &state, conn, req, &method, &raw_path, &query).await
        };

    let status = response.status().as_u16();
    if shared.logs.audit_enabled() {
        permit.audit(&AuditEvent {
            time,
            method: method.as_str(),
            path: &raw_path,
            ip: conn.peer.ip(),
            identity: identity.map(|i| i.as_str()).unwrap_or_default(),
            status,
            duration: started.elapsed(),
            message: audit_msg.as_deref().unwrap_or("http request"),
        });
    }
    if method == http::Method::HEAD {
        // Never a body for HEAD (HTTP/2 clients treat one as a protocol
        // error); the headers, Content-Length included, stay as for GET.
        let (parts, _) = response.into_parts();
        return Response::from_parts(parts, wire::full(bytes::Bytes::new()));
    }
    response
}

#[allow(clippy::too_many_arguments)]
async fn route_request<'a>(
    shared: &Shared,
    state: &'a Arc<State>,
    conn: &'a Conn,
    req: Request<Incoming>,
    method: &http::Method,
    raw_path: &str,
    query: &str,
) -> (Response<Body>, Option<String>, Option<&'a Identity>) {
    let Some(path) = percent_decode(raw_path) else {
        let err = ApiError::new(400, "invalid URL escape in request path");
        return (wire::error(&err), None, None);
    };
    let (route, resource) = match state.routes.lookup(&path) {
        Lookup::Found(route, resource) => (route, resource),
        Lookup::Redirect(to) => {
            let location = match query {
                "" => to,
                q => format!("{to}?{q}"),
            };
            return (wire::moved_permanently(&location, method), None, None);
        }
        Lookup::NotFound => return (wire::not_found(), None, None),
    };

    // POST is accepted wherever the route's method is PUT (the Go SDK sends
    // POST for create/import/generate/encrypt/decrypt), and the legacy bulk
    // decrypt accepts PUT as well as POST.
    let method_ok = *method == route.method
        || (route.method == http::Method::PUT && *method == http::Method::POST)
        || (route.endpoint == Endpoint::KeyBulkDecrypt && *method == http::Method::PUT);
    if !method_ok {
        let err = ApiError::method_not_allowed(method.as_str(), route.method.as_str());
        let mut resp = wire::error(&err);
        resp.headers_mut().insert(
            http::header::ACCEPT,
            http::HeaderValue::from_str(route.method.as_str())
                .unwrap_or_else(|_| http::HeaderValue::from_static("GET")),
        );
        return (resp, None, None);
    }

    let guard = counted(route).then(|| shared.metrics.start());
    let (response, audit, identity) =
        authorize_and_run(shared, state, conn, route, &resource, req, query).await;
    if let Some(guard) = guard {
        guard.finish(
            response.status().as_u16(),
            (route.endpoint as usize, route.path),
        );
    }
    (response, audit, identity)
}

async fn authorize_and_run<'a>(
    shared: &Shared,
    state: &'a Arc<State>,
    conn: &'a Conn,
    route: &Route,
    resource: &str,
    req: Request<Incoming>,
    query: &str,
) -> (Response<Body>, Option<String>, Option<&'a Identity>) {
    let identity = match route.auth {
        Auth::None => None,
        Auth::IdentifyOnly => conn.identity.as_ref().ok(),
        Auth::Policy => match &conn.identity {
            Err(err) => return (wire::error(err), None, None),
            Ok(id) => {
                // The policy sees the decoded path; `/v1/key/list` without
                // its slash is checked as `/v1/key/list/`, the path the Go
                // SDK ends up requesting after ServeMux's redirect.
                let policy_path = format!("{}{}", route.path, resource);
                if *id != state.admin {
                    match state.policy_of(id) {
                        Some((_, policy)) if policy.allows(&policy_path) => {}
                        _ => return (wire::error(&ApiError::NOT_ALLOWED), None, Some(id)),
                    }
                }
                Some(id)
            }
        },
    };

    let body = if route.max_body == 0 {
        Some(Bytes::new())
    } else {
        // Bodies over the limit are answered like malformed JSON (400), as
        // the reference's truncation makes them; never 413.
        match Limited::new(req.into_body(), route.max_body as usize)
            .collect()
            .await
        {
            Ok(collected) => Some(collected.to_bytes()),
            Err(_) => None,
        }
    };

    let request = handlers::Request {
        shared,
        state,
        route,
        resource,
        identity,
        body,
        query,
    };
    let answer = guarded(route.path, route.timeout, handlers::dispatch(request)).await;
    (answer.response, answer.audit, identity)
}

/// Runs a handler so that neither a panic nor a hang can take more than
/// its request down: a panic becomes 500, running over `timeout` (unless
/// zero) becomes 503.
async fn guarded<F>(path: &str, timeout: Duration, handler: F) -> Answer
where
    F: std::future::Future<Output = Result<Answer, ApiError>>,
{
    let run = AssertUnwindSafe(handler).catch_unwind();
    let outcome = if timeout.is_zero() {
        Ok(run.await)
    } else {
        tokio::time::timeout(timeout, run).await
    };
    match outcome {
        Ok(Ok(Ok(answer))) => answer,
        Ok(Ok(Err(err))) => Answer::from(wire::error(&err)),
        Ok(Err(_panic)) => {
            tracing::error!(path, "handler panicked; request answered with 500");
            Answer::from(wire::error(&ApiError::new(500, "internal server error")))
        }
        Err(_elapsed) => {
            tracing::warn!(path, "request timed out");
            Answer::from(wire::error(&ApiError::new(503, "request timed out")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn panics_and_hangs_stay_in_their_request() {
        let panicking = async {
            if std::hint::black_box(true) {
                panic!("handler bug");
            }
            Ok(Answer::from(wire::empty_ok()))
        };
        let a = guarded("/v1/key/create/", Duration::from_secs(1), panicking).await;
        assert_eq!(a.response.status(), 500);

        let hanging = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok(Answer::from(wire::empty_ok()))
        };
        let a = guarded("/v1/status", Duration::from_millis(20), hanging).await;
        assert_eq!(a.response.status(), 503);

        let failing = async { Err(ApiError::KEY_NOT_FOUND) };
        let a = guarded("/v1/key/describe/", Duration::ZERO, failing).await;
        assert_eq!(a.response.status(), 404);
    }

    #[test]
    fn decode_paths() {
        assert_eq!(
            percent_decode("/v1/key/list/a%2A").unwrap(),
            "/v1/key/list/a*"
        );
        assert_eq!(percent_decode("/plain").unwrap(), "/plain");
        assert!(percent_decode("/bad%zz").is_none());
        assert!(percent_decode("/bad%2").is_none());
        assert!(percent_decode("/bad%ff").is_none());
    }
}
