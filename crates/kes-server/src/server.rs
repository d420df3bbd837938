//! Connections and the request pipeline: admission (connection caps) → TLS
//! handshake (bounded in number and time) → identity (once per connection)
//! → routing → method check → authorization → body (read under the route's
//! timeout and the connection's byte budget) → handler (with timeout and
//! panic isolation) → metrics and audit → response (sent under a deadline).
//!
//! Every client may be hostile, so nothing a client holds is unbounded: the
//! number of its connections, the time it may take to say something, the
//! bytes of request bodies it has in flight, the time a response may take
//! to reach it. docs/security.md lists each limit.

use crate::handlers::{self, Answer};
use crate::logs::AuditEvent;
use crate::routes::{Auth, Endpoint, Lookup, Route};
use crate::state::{Shared, State};
use crate::wire::{self, Body};
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

/// Limits on what clients can hold. The defaults follow from the file
/// descriptors the process may open; docs/security.md explains each.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open client connections in total.
    pub max_connections: usize,
    /// Open client connections per source address (per /64 for IPv6).
    pub max_connections_per_ip: usize,
    /// TLS handshakes in progress at once.
    pub max_handshakes: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams: u32,
    /// Bytes of request bodies one connection may have in memory at once
    /// (all its HTTP/2 streams together). At least the largest body a
    /// route accepts.
    pub connection_body_bytes: usize,
}

impl Limits {
    /// File descriptors kept for everything but client connections: the
    /// listener, key-store connections, log and key files.
    const RESERVED_FDS: u64 = 128;

    /// Limits for a process that may open `nofile` file descriptors.
    pub fn for_open_files(nofile: u64) -> Self {
        let max_connections = (nofile
            .saturating_sub(Self::RESERVED_FDS)
            .clamp(16, 16 * 1024)) as usize;
        Limits {
            max_connections,
            max_connections_per_ip: (max_connections / 8).max(4),
            max_handshakes: 256.min(max_connections),
            max_streams: 100,
            connection_body_bytes: 4 * 1024 * 1024,
        }
    }

    /// Applies the config's `limits` over the defaults: an unset
    /// per-address limit stays an eighth of the total.
    pub fn with_config(mut self, config: &crate::config::ConnectionLimits) -> Self {
        if let Some(n) = config.connections {
            self.max_connections = n;
            self.max_connections_per_ip = (n / 8).max(4);
            self.max_handshakes = self.max_handshakes.min(n);
        }
        if let Some(n) = config.connections_per_ip {
            self.max_connections_per_ip = n;
        }
        self
    }

    /// Limits from the process's current RLIMIT_NOFILE.
    pub fn from_rlimit() -> Self {
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        Self::for_open_files(nofile)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_rlimit()
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, as the Go runtime does
/// at start, and returns the limit now in force.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(err) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %err, "failed to raise the open file limit");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The address a connection counts against: the IP, or the /64 network of
/// an IPv6 address (one host usually owns a whole /64).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// Locks `mutex`; a panic while it was held leaves counts and lists that
/// are still consistent, so the lock is taken over.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counts open connections in total and per source.
struct Admission {
    limits: Limits,
    total: AtomicUsize,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    handshakes: Arc<Semaphore>,
    refused: AtomicU64,
    last_refusal_log: Mutex<Option<Instant>>,
}

/// An admitted connection; gives its place back when dropped.
struct Admitted {
    admission: Arc<Admission>,
    source: IpAddr,
}

impl Admission {
    fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Admission {
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes.max(1))),
            limits,
            total: AtomicUsize::new(0),
            per_source: Mutex::new(HashMap::new()),
            refused: AtomicU64::new(0),
            last_refusal_log: Mutex::new(None),
        })
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let source = source_key(ip);
        let mut per_source = lock(&self.per_source);
        if self.total.load(Ordering::Relaxed) >= self.limits.max_connections {
            return None;
        }
        let n = per_source.entry(source).or_insert(0);
        if *n >= self.limits.max_connections_per_ip {
            return None;
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Admitted {
            admission: self.clone(),
            source,
        })
    }

    /// One error-log line per 10 s at most, so that a flood of refused
    /// connections cannot flood the log.
    fn note_refusal(&self, ip: IpAddr) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = lock(&self.last_refusal_log);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(
                ip = %ip,
                refused,
                max_connections = self.limits.max_connections,
                max_connections_per_ip = self.limits.max_connections_per_ip,
                "http: connection limit reached; refusing connections"
            );
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_source = lock(&self.admission.per_source);
        if let Some(n) = per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                per_source.remove(&self.source);
            }
        }
        self.admission.total.fetch_sub(1, Ordering::Relaxed);
    }
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
    /// Bytes of request bodies this connection may still read into memory.
    body_budget: Arc<Semaphore>,
    /// Responses not yet fully sent: (deadline, id). A handful at most
    /// (one per HTTP/2 stream), so a vector that keeps its capacity beats a
    /// map that allocates per request.
    responses: Mutex<Vec<(Instant, u64)>>,
    next_response: AtomicU64,
}

/// What a connection's timers say.
enum Timers {
    Fine,
    /// No request in flight for the idle timeout: close gracefully.
    Idle,
    /// Close at once.
    Close(&'static str),
}

impl Conn {
    /// Whether the caller is the admin or has a policy: only those may keep
    /// idle connections for long.
    fn known_caller(&self, state: &State) -> bool {
        match &self.identity {
            Ok(id) => *id == state.admin || state.policy_of(id).is_some(),
            Err(_) => false,
        }
    }

    fn check_timers(&self, known: bool) -> Timers {
        let now = Instant::now();
        let in_flight = self.in_flight.load(Ordering::Relaxed);
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
    shared: Arc<Shared>,
    shutdown: watch::Receiver<bool>,
    grace: Duration,
) {
    serve_with_limits(listener, shared, shutdown, grace, Limits::from_rlimit()).await
}

/// [`serve`] with explicit [`Limits`].
pub async fn serve_with_limits(
    listener: TcpListener,
    shared: Arc<Shared>,
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
        let Some(admitted) = admission.admit(peer.ip()) else {
            admission.note_refusal(peer.ip());
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let stop = conn_shutdown_rx.clone();
        let admission = admission.clone();
        tracker.spawn(async move {
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
    shared: Arc<Shared>,
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
    drop(tls);
    let conn = Arc::new(Conn {
        identity,
        peer,
        in_flight: AtomicUsize::new(0),
        last_activity: AtomicU64::new(0),
        opened,
        seen_request: AtomicBool::new(false),
        body_budget: Arc::new(Semaphore::new(admission.limits.connection_body_bytes)),
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
        .header_read_timeout(READ_HEADER_TIMEOUT)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(admission.limits.max_streams);
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

/// The decoded path (Go's `URL.Path`); borrowed in the common case of a
/// path without escapes. `None` for a `%` not followed by two hex digits
/// (which Go's URL parser refuses and the decoder would keep as it is) or
/// for escapes that decode to invalid UTF-8.
fn percent_decode(path: &str) -> Option<std::borrow::Cow<'_, str>> {
    let bytes = path.as_bytes();
    let escapes_valid = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .all(|(i, _)| {
            bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
        });
    if !escapes_valid {
        return None;
    }
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()
}

/// One request on its way through the pipeline: the connection and the
/// configuration it arrived under, what it asks for, and what the pipeline
/// learns on the way (the caller, what the audit log says, how long the
/// response may take to reach the client).
struct RequestContext<'a> {
    shared: &'a Shared,
    /// The configuration the request started under; a reload does not
    /// change it mid-request.
    state: &'a Arc<State>,
    conn: &'a Conn,
    method: http::Method,
    /// The path as sent (escaped): the audit log and redirects use it.
    raw_path: String,
    query: String,
    /// The caller, once known.
    identity: Option<&'a Identity>,
    /// What the audit log says beyond "http request".
    audit: Option<String>,
    /// How long the response may take to reach the client; `None` for
    /// streams that last as long as the client wants (log streams).
    send_deadline: Option<Duration>,
}

async fn handle_request(
    shared: &Shared,
    conn: &Arc<Conn>,
    req: Request<Incoming>,
) -> Response<WatchedBody> {
    conn.in_flight.fetch_add(1, Ordering::Relaxed);
    conn.seen_request.store(true, Ordering::Relaxed);
    conn.touch();
    let _in_flight = InFlight(conn);
    let started = Instant::now();
    let time = OffsetDateTime::now_utc();
    let state = shared.state.load_full();
    let mut ctx = RequestContext {
        shared,
        state: &state,
        conn,
        method: req.method().clone(),
        raw_path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        identity: None,
        audit: None,
        send_deadline: Some(DEFAULT_RESPONSE_DEADLINE),
    };

    // Fail closed: a call whose audit line could not be queued is refused.
    let permit = shared.logs.reserve_audit(&ctx.raw_path);
    let response = if permit.refused() && !crate::logs::answered_without_audit(&ctx.raw_path) {
        wire::error(&crate::logs::AUDIT_UNAVAILABLE)
    } else {
        route_request(&mut ctx, req).await
    };

    if shared.logs.audit_enabled() {
        permit.audit(&AuditEvent {
            time,
            method: ctx.method.as_str(),
            path: &ctx.raw_path,
            ip: conn.peer.ip(),
            identity: ctx.identity.map(|i| i.as_str()).unwrap_or_default(),
            status: response.status().as_u16(),
            duration: started.elapsed(),
            message: ctx.audit.as_deref().unwrap_or("http request"),
        });
    }
    let (parts, body) = wire::for_method(response, &ctx.method).into_parts();
    let guard = ctx
        .send_deadline
        .map(|d| conn.watch_response(Instant::now() + d));
    Response::from_parts(
        parts,
        WatchedBody {
            inner: body,
            _guard: guard,
        },
    )
}

/// The characters of a redirect target's path that Go's
/// `url.URL.EscapedPath` leaves as they are: letters, digits and
/// `-_.~$&+,/:;=@`.
const LOCATION_PATH_KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b',')
    .remove(b'/')
    .remove(b':')
    .remove(b';')
    .remove(b'=')
    .remove(b'@');

/// Go's `url.URL.EscapedPath` for a redirect target: every other byte is
/// percent-encoded, so that a cleaned path such as `/\evil.example/x`
/// never reads as another host (`//host` or `/\host`) to a client.
fn escape_location_path(path: &str) -> String {
    percent_encoding::utf8_percent_encode(path, LOCATION_PATH_KEEP).to_string()
}

/// Routing, the route's method rules, metrics, and on to authorization.
async fn route_request(ctx: &mut RequestContext<'_>, req: Request<Incoming>) -> Response<Body> {
    let state = ctx.state;
    let Some(path) = percent_decode(&ctx.raw_path) else {
        let err = ApiError::new(400, "invalid URL escape in request path");
        return wire::error(&err);
    };
    let (route, resource) = match state.routes.lookup(&path) {
        Lookup::Found(route, resource) => (route, resource),
        Lookup::Redirect(to) => {
            let to = escape_location_path(&to);
            let location = match ctx.query.as_str() {
                "" => to,
                q => format!("{to}?{q}"),
            };
            return wire::moved_permanently(&location, &ctx.method);
        }
        Lookup::NotFound => return wire::not_found(),
    };
    if !route.allows_method(&ctx.method) {
        return wire::method_not_allowed(&ctx.method, &route.method);
    }

    let guard = route.endpoint.counted().then(|| ctx.shared.metrics.start());
    let response = authorize_and_run(ctx, route, &resource, req).await;
    if let Some(guard) = guard {
        guard.finish(response.status().as_u16(), route.endpoint);
    }
    ctx.send_deadline = match route.endpoint {
        Endpoint::LogError | Endpoint::LogAudit if response.status().is_success() => None,
        _ => Some(route.timeout.max(DEFAULT_RESPONSE_DEADLINE)),
    };
    response
}

/// Authentication and authorization, then the body and the handler.
async fn authorize_and_run(
    ctx: &mut RequestContext<'_>,
    route: &Route,
    resource: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    let (state, conn) = (ctx.state, ctx.conn);
    ctx.identity = match route.auth {
        Auth::None => None,
        Auth::IdentifyOnly => match &conn.identity {
            Ok(id) => Some(id),
            // Self-describe is about the caller: say why there is none.
            Err(err) if route.endpoint == Endpoint::IdentitySelfDescribe => {
                return wire::error(err)
            }
            Err(_) => None,
        },
        Auth::Policy => match &conn.identity {
            Err(err) => return wire::error(err),
            Ok(id) => {
                ctx.identity = Some(id);
                if *id != state.admin {
                    let allowed = match state.policy_of(id) {
                        Some((_, policy)) => route.allowed_by(policy, resource),
                        None => false,
                    };
                    if !allowed {
                        return wire::error(&ApiError::NOT_ALLOWED);
                    }
                }
                Some(id)
            }
        },
    };

    // The body is read inside the route's timeout: a client that announces
    // a body and sends it slowly (or never) holds its request for the
    // timeout at most.
    let max_body = route.max_body as usize;
    let budget = &conn.body_budget;
    let call_ctx = &*ctx;
    let run = async move {
        let body = if max_body == 0 {
            Some((Zeroizing::new(Vec::new()), None))
        } else {
            read_body(req.into_body(), max_body, budget).await
        };
        let call = handlers::Call {
            shared: call_ctx.shared,
            state,
            route,
            resource,
            identity: call_ctx.identity,
            body: body.as_ref().map(|(b, _)| b.as_slice()),
            query: &call_ctx.query,
        };
        handlers::dispatch(call).await
    };
    let answer = guarded(route.path, route.timeout, run).await;
    ctx.audit = answer.audit;
    answer.response
}

/// Reads a request body of at most `limit` bytes into a buffer that is
/// wiped when dropped (bodies carry plaintexts and keys), holding a share
/// of the connection's body budget for every byte. `None` when the body is
/// over the limit or broken: answered like malformed JSON (400), as the Go
/// KES's truncation makes it, never 413.
async fn read_body(
    mut body: Incoming,
    limit: usize,
    budget: &Arc<Semaphore>,
) -> Option<(Zeroizing<Vec<u8>>, Option<OwnedSemaphorePermit>)> {
    let hint = hyper::body::Body::size_hint(&body);
    let expected = hint.exact().unwrap_or(hint.lower()) as usize;
    if expected > limit {
        // Read (and drop) up to the limit before answering, as Go's
        // MaxBytesReader does: a client still writing its body then reads
        // the 400 instead of a reset connection.
        let mut seen = 0;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > limit {
                break;
            }
        }
        return None;
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(expected));
    let mut held: Option<OwnedSemaphorePermit> = None;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.ok()?.into_data() else {
            continue; // trailers
        };
        if buf.len() + data.len() > limit {
            return None;
        }
        let permit = budget
            .clone()
            .acquire_many_owned(u32::try_from(data.len()).ok()?)
            .await
            .ok()?;
        match held.as_mut() {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        extend_zeroizing(&mut buf, &data);
    }
    Some((buf, held))
}

/// Appends to a buffer without leaving a copy behind: when the buffer must
/// grow, the old one is wiped (a plain `Vec` would free it as it is).
fn extend_zeroizing(buf: &mut Zeroizing<Vec<u8>>, data: &[u8]) {
    if buf.capacity() - buf.len() < data.len() {
        let mut grown = Zeroizing::new(Vec::with_capacity(
            (buf.len() + data.len()).max(buf.capacity() * 2),
        ));
        grown.extend_from_slice(buf);
        *buf = grown;
    }
    buf.extend_from_slice(data);
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
    fn limits_follow_the_open_file_limit() {
        let small = Limits::for_open_files(256);
        assert_eq!(small.max_connections, 128);
        assert_eq!(small.max_connections_per_ip, 16);
        assert!(small.max_handshakes <= small.max_connections);
        let large = Limits::for_open_files(1 << 20);
        assert_eq!(large.max_connections, 16 * 1024);
        assert_eq!(large.max_connections_per_ip, 2048);
        // Never zero, whatever the limit.
        let tiny = Limits::for_open_files(10);
        assert!(tiny.max_connections >= 16 && tiny.max_connections_per_ip >= 4);
        // Every route's largest body fits in one connection's budget.
        assert!(crate::routes::RouteTable::default()
            .routes()
            .iter()
            .all(|r| r.max_body as usize <= large.connection_body_bytes));
    }

    #[test]
    fn admission_counts_per_source() {
        let admission = Admission::new(Limits {
            max_connections: 5,
            max_connections_per_ip: 2,
            ..Limits::for_open_files(1024)
        });
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b_same_net: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert!(admission.admit(a).is_none(), "third from one address");
        let _v6 = admission.admit(b).unwrap();
        let _v6_same_64 = admission.admit(b_same_net).unwrap();
        assert!(
            admission.admit(b).is_none(),
            "an IPv6 /64 counts as one source"
        );
        let _c = admission.admit("127.0.0.3".parse().unwrap()).unwrap();
        assert!(
            admission.admit("127.0.0.4".parse().unwrap()).is_none(),
            "total reached"
        );
        drop(first);
        assert!(
            admission.admit(a).is_some(),
            "a closed connection gives its place back"
        );
    }

    #[test]
    fn location_paths_are_escaped_like_go() {
        assert_eq!(escape_location_path("/v1/key/list/"), "/v1/key/list/");
        assert_eq!(
            escape_location_path("/\\evil.example/x"),
            "/%5Cevil.example/x"
        );
        assert_eq!(escape_location_path("/a b?c#d%"), "/a%20b%3Fc%23d%25");
        assert_eq!(escape_location_path("/é"), "/%C3%A9");
        assert_eq!(escape_location_path("/$&+,:;=@-_.~"), "/$&+,:;=@-_.~");
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
        // Two hex digits, nothing else: Go refuses a sign where a digit
        // belongs.
        assert!(percent_decode("/bad%+f").is_none());
        assert_eq!(percent_decode("/%C3%A9%2f").unwrap(), "/é/");
    }
}
