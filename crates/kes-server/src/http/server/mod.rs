//! Connections and the request pipeline: admission (connection caps) → TLS
//! handshake (bounded in number and time) → identity (once per connection)
//! → routing → method check → authorization → body (read under the route's
//! timeout and the connection's byte budget) → room for the audit line
//! (charged to the caller and the connection, `budgets.rs`) → handler (with
//! timeout and panic isolation) → metrics and audit → response (sent under
//! a deadline). A connection whose client certificate expired (`tls.auth:
//! on`) gets its requests refused and is closed.
//!
//! Every client may be hostile, so nothing a client holds is unbounded: the
//! number of its connections, the time it may take to say something, the
//! bytes of headers and request bodies it has in flight, the audit room its
//! calls hold, the time a response may take to reach it. docs/security.md lists each limit.
//!
//! This file accepts connections and runs them (timers, in-flight counts,
//! send deadlines); `limits.rs` says how many connections a source may hold;
//! `request.rs` takes one request from its path to its response:
//! routing, authorization (admin or policy), the body, the handler.

mod budgets;
mod head_clock;
mod limits;
mod proxy;
mod proxy_protocol;
mod request;

use budgets::{AuditShare, Caller, CallerBudgets};
use limits::Admission;
pub use limits::{raise_open_file_limit, Limits};
pub use proxy::TlsProxies;

/// The parsers of what a front sends, for the fuzz targets.
#[doc(hidden)]
pub mod fuzzing {
    use std::net::SocketAddr;

    /// A PROXY header read from the start of `bytes`: what it names (or
    /// why it was refused) and how many bytes it took; `None` if the
    /// bytes end before the header does.
    pub fn proxy_header(bytes: &[u8]) -> (Option<Result<Option<SocketAddr>, String>>, usize) {
        use futures_util::FutureExt as _;
        let mut rest = bytes;
        let read = super::proxy_protocol::read_header(&mut rest)
            .now_or_never()
            .map(|r| r.map_err(|e| e.to_string()));
        (read, bytes.len() - rest.len())
    }

    /// The identity of a `tls.proxy` certificate header value, or the
    /// status and message of its refusal.
    pub fn forwarded_certificate(value: &[u8]) -> Result<kes_core::Identity, (u16, String)> {
        super::proxy::parse_identity(value)
    }
}
use request::handle_request;
pub(crate) use request::Call;

use crate::http::handlers::{self, Answer};
use crate::http::routes::{Auth, Lookup, Route};
use crate::http::wire::{self, Body};
use crate::logs::{AuditEvent, AuditPermit};
use crate::state::{Server, State};
use bytes::Bytes;
use futures_util::FutureExt as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use kes_core::{ApiError, Identity};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use zeroize::Zeroizing;

/// Time a load balancer listed in `proxy_protocol` has to send its PROXY
/// header after connecting.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// Time a client has to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to send a request's headers (Go: ReadHeaderTimeout).
const READ_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time from accepting a connection to its first request (handshake
/// included), as the Go KES's read-header timeout runs from the
/// connection's start.
const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection of a known caller (the admin or an identity with a
/// policy) without requests in flight is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// The same for a caller the server does not know: a stranger may ask,
/// but may not park connections.
const IDLE_TIMEOUT_UNKNOWN: Duration = Duration::from_secs(5);
/// How long a response may take to reach the client when its route has no
/// timeout of its own (log streams are exempt).
const DEFAULT_RESPONSE_DEADLINE: Duration = Duration::from_secs(15);
/// How often a connection checks its timers.
const CONNECTION_TICK: Duration = Duration::from_secs(1);
/// Bytes an HTTP/1.1 connection may buffer while a request's headers
/// arrive (hyper's read buffer; over it the request is answered 431 and the
/// connection closed). The longest honest header set is a request line
/// with a ~1.1 KB path plus, behind a proxy, a forwarded PEM client
/// certificate of a few KB: 64 KiB leaves a wide margin. Hyper's default
/// (~400 KB) let 400 connections with unfinished headers hold 160 MB.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// The decoded header list of one HTTP/2 request (hyper's default, set
/// here so that it stays): a header block arrives in one HEADERS frame and
/// CONTINUATION frames that must follow it without anything in between,
/// so one connection decodes one block at a time, and h2 bounds the number
/// of CONTINUATION frames by this size. Over it the stream is refused
/// (431). Smaller than [`MAX_HEADER_BYTES`] because an HTTP/2 connection
/// keeps the path of each of its streams while their bodies arrive.
const MAX_HTTP2_HEADER_LIST: u32 = 16 * 1024;
/// HTTP/2 streams a client may open and reset before the server has
/// accepted them (hyper's default is 20; the rapid-reset limit).
const MAX_PENDING_RESET_STREAMS: usize = 20;

/// How long a connection whose client certificate expired is kept, to
/// answer a request that arrives in the meantime with
/// [`CERTIFICATE_EXPIRED`] rather than a reset. A request refused for it
/// closes the connection at the next tick; after this grace the connection
/// is closed whatever it holds (log streams included).
const EXPIRED_GRACE: Duration = Duration::from_secs(2);

/// The answer to a request on a connection whose client certificate has
/// expired since the handshake (`tls.auth: on`); the wording of Go's
/// `crypto/x509` for an expired certificate.
const CERTIFICATE_EXPIRED: ApiError =
    ApiError::from_static(401, "x509: certificate has expired or is not yet valid");

/// Locks `mutex`; a panic while it was held leaves counts and lists that
/// are still consistent, so the lock is taken over.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    kes_core::sync::lock(mutex)
}

/// What the server knows about one connection.
struct Conn {
    /// The caller's identity, or the error to answer when a route needs one.
    identity: Result<Identity, ApiError>,
    peer: SocketAddr,
    in_flight: AtomicUsize,
    /// Milliseconds since `opened` at the last request start or end.
    last_activity: AtomicU64,
    /// When the connection was accepted (before the handshake).
    opened: Instant,
    /// Whether a request has arrived.
    seen_request: AtomicBool,
    /// Milliseconds since `opened`, plus one, at which the first byte of an
    /// HTTP/1.1 request head not yet complete arrived; 0 when none is
    /// arriving (see [`head_clock`]).
    head_since: AtomicU64,
    /// Bytes of request bodies this connection may still read into memory.
    body_budget: Arc<Semaphore>,
    /// Audit-queue bytes held by this connection's calls in flight
    /// ([`budgets::AUDIT_SHARE_PER_CONNECTION`] at most).
    audit_held: AtomicUsize,
    /// The per-caller shares of the audit queue.
    budgets: Arc<CallerBudgets>,
    /// When the client certificate expires, with `tls.auth: on`: requests
    /// after it are refused and the connection closed.
    not_after: Option<std::time::SystemTime>,
    /// Whether a request was refused because the certificate expired: the
    /// connection then closes gracefully (after that answer).
    expiry_refused: AtomicBool,
    /// Responses not yet fully sent: (deadline, id). A handful at most
    /// (one per HTTP/2 stream), so a vector that keeps its capacity beats a
    /// map that allocates per request.
    responses: Mutex<Vec<(Instant, u64)>>,
    next_response: AtomicU64,
}

/// What a connection's timers say.
enum Timers {
    Fine,
    /// No request in flight for the idle timeout, or a request was refused
    /// for an expired certificate: close gracefully (requests in flight
    /// finish).
    Idle,
    /// Close at once.
    Close(&'static str),
}

impl Conn {
    /// Whether the caller is the admin, has a policy or is a listed TLS
    /// proxy: only those may keep idle connections for long.
    fn known_caller(&self, state: &State) -> bool {
        match &self.identity {
            Ok(id) => {
                *id == state.admin || state.policy_of(id).is_some() || state.proxies.is_proxy(id)
            }
            Err(_) => false,
        }
    }

    /// Whether the client certificate has expired since the handshake.
    fn certificate_expired(&self) -> bool {
        self.not_after
            .is_some_and(|t| std::time::SystemTime::now() > t)
    }

    fn check_timers(&self, known: bool) -> Timers {
        let now = Instant::now();
        if let Some(not_after) = self.not_after {
            let now = std::time::SystemTime::now();
            if now > not_after + EXPIRED_GRACE {
                // Whatever it still holds (a log stream, a listing) ends.
                return Timers::Close("the client certificate expired");
            }
            if now > not_after && self.expiry_refused.load(Ordering::Relaxed) {
                return Timers::Idle;
            }
        }
        let in_flight = self.in_flight.load(Ordering::Relaxed);
        if in_flight == 0
            && self
                .head_waiting()
                .is_some_and(|waited| waited >= READ_HEADER_TIMEOUT)
        {
            return Timers::Close("a request's headers did not arrive in time");
        }
        if !self.seen_request.load(Ordering::Relaxed)
            && in_flight == 0
            && now.duration_since(self.opened) >= FIRST_REQUEST_TIMEOUT
        {
            return Timers::Close("no request within the first-request timeout");
        }
        let responses = lock(&self.responses);
        if let Some(deadline) = responses.iter().map(|(d, _)| *d).min() {
            if deadline <= now {
                // The client does not take its response (a closed HTTP/2
                // window, a full TCP window): drop the connection and with it
                // every response it holds.
                return Timers::Close("a response missed its send deadline");
            }
        }
        let pending = !responses.is_empty();
        drop(responses);
        let idle_limit = if known {
            IDLE_TIMEOUT
        } else {
            IDLE_TIMEOUT_UNKNOWN
        };
        let elapsed = now.duration_since(self.opened).as_millis() as u64;
        let idle_ms = elapsed.saturating_sub(self.last_activity.load(Ordering::Relaxed));
        if in_flight == 0 && !pending && Duration::from_millis(idle_ms) >= idle_limit {
            return Timers::Idle;
        }
        Timers::Fine
    }

    /// Registers a response that must be sent by `deadline`.
    fn watch_response(self: &Arc<Self>, deadline: Instant) -> ResponseGuard {
        let key = (deadline, self.next_response.fetch_add(1, Ordering::Relaxed));
        lock(&self.responses).push(key);
        ResponseGuard {
            conn: self.clone(),
            key,
        }
    }

    fn touch(&self) {
        self.last_activity
            .store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// Accepts connections until `shutdown` turns true, then lets every
/// connection finish its requests in flight (bounded by `grace`).
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Server>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    serve_with_limits(listener, shared, shutdown, grace, Limits::from_rlimit()).await
}

/// [`serve`] with explicit [`Limits`].
pub async fn serve_with_limits(
    listener: TcpListener,
    shared: Arc<Server>,
    mut shutdown: watch::Receiver<bool>,
    grace: Duration,
    limits: Limits,
) {
    let admission = Admission::new(limits);
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
        let proxied = shared
            .state
            .load()
            .proxy_protocol
            .iter()
            .any(|net| net.contains(peer.ip()));
        let admitted = if proxied {
            admission.admit_proxied()
        } else {
            admission.admit(peer.ip())
        };
        let Some(mut admitted) = admitted else {
            admission.note_refusal(peer.ip());
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let stop = conn_shutdown_rx.clone();
        let admission = admission.clone();
        tracker.spawn(async move {
            let mut tcp = tcp;
            let mut peer = peer;
            if proxied {
                let header = proxy_protocol::read_header(&mut tcp);
                match tokio::time::timeout(PROXY_HEADER_TIMEOUT, header).await {
                    Ok(Ok(Some(client))) => {
                        if !admitted.count_against(client.ip()) {
                            admission.note_refusal(client.ip());
                            return;
                        }
                        peer = client;
                    }
                    // A header that names nobody (a health check): the
                    // connection is the balancer's own.
                    Ok(Ok(None)) => {
                        if !admitted.count_against(peer.ip()) {
                            admission.note_refusal(peer.ip());
                            return;
                        }
                    }
                    Ok(Err(err)) => {
                        tracing::info!(ip = %peer.ip(), error = %err, "http: PROXY header refused");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(ip = %peer.ip(), "http: PROXY header timed out");
                        return;
                    }
                }
            }
            handle_connection(tcp, peer, shared, stop, &admission).await;
            drop(admitted);
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
    shared: Arc<Server>,
    mut stop: watch::Receiver<bool>,
    admission: &Admission,
) {
    let opened = Instant::now();
    let tls = shared.tls.load_full();
    let handshake = async {
        // Waiting for a handshake slot counts against the handshake time.
        let _slot = admission.handshakes.acquire().await;
        tokio_rustls::TlsAcceptor::from(tls.config.clone())
            .accept(tcp)
            .await
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
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
    let tls_conn = stream.get_ref().1;
    let peer_certificates = tls_conn.peer_certificates().unwrap_or(&[]);
    if tls_conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
        // rustls resumes a session without looking at its certificates
        // again; hold it to what a full handshake would check now.
        if let Err(err) = tls.verify_resumed(peer_certificates) {
            tracing::info!(ip = %peer.ip(), error = %err, "http: TLS resumption refused");
            return;
        }
    }
    let identity = kes_core::identity::identify(peer_certificates).map_err(ApiError::from);
    let not_after = tls.client_not_after(peer_certificates);
    drop(tls);
    let conn = Arc::new(Conn {
        identity,
        peer,
        in_flight: AtomicUsize::new(0),
        last_activity: AtomicU64::new(0),
        opened,
        seen_request: AtomicBool::new(false),
        head_since: AtomicU64::new(0),
        body_budget: Arc::new(Semaphore::new(admission.limits.connection_body_bytes)),
        audit_held: AtomicUsize::new(0),
        budgets: admission.budgets.clone(),
        not_after,
        expiry_refused: AtomicBool::new(false),
        responses: Mutex::new(Vec::new()),
        next_response: AtomicU64::new(0),
    });
    let timers_shared = shared.clone();
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
        // Hyper's header timer also runs while a keep-alive connection
        // waits for its next request, so it would be an idle timeout as
        // well; the read-header deadline is the connection's own (see
        // `head_clock`) and hyper's timer only a backstop behind the idle
        // timeouts.
        .header_read_timeout(IDLE_TIMEOUT + READ_HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(admission.limits.max_streams)
        .max_header_list_size(MAX_HTTP2_HEADER_LIST)
        .max_pending_accept_reset_streams(MAX_PENDING_RESET_STREAMS);
    let negotiated_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let stream = head_clock::HeadClock::new(stream, conn.clone(), negotiated_h2);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut tick = tokio::time::interval(CONNECTION_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
            _ = tick.tick() => {
                let known = conn.known_caller(&timers_shared.state.load());
                match conn.check_timers(known) {
                    Timers::Fine => {}
                    Timers::Idle if !stopping => {
                        stopping = true;
                        connection.as_mut().graceful_shutdown();
                    }
                    Timers::Idle => {}
                    Timers::Close(why) => {
                        tracing::debug!(ip = %conn.peer.ip(), why, "http: closing connection");
                        return;
                    }
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

/// A response not yet fully sent; leaves its connection's watch list when
/// hyper drops the body (sent, reset or connection gone).
struct ResponseGuard {
    conn: Arc<Conn>,
    key: (Instant, u64),
}

impl Drop for ResponseGuard {
    fn drop(&mut self) {
        let mut responses = lock(&self.conn.responses);
        if let Some(i) = responses.iter().position(|k| *k == self.key) {
            responses.swap_remove(i);
        }
        drop(responses);
        self.conn.touch();
    }
}

/// A response body under a send deadline.
pub struct WatchedBody {
    inner: Body,
    _guard: Option<ResponseGuard>,
}

impl hyper::body::Body for WatchedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}
