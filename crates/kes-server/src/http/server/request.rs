//! One request from its path to its response: decoding, routing, the
//! method rules, authorization (the admin, or a policy allowing every
//! policy path of the route), the body, the handler (with timeout and
//! panic isolation), metrics and the audit line.

use super::*;

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

/// One API call on its way through the pipeline, and what its handler
/// sees: the connection and the configuration it arrived under, what it
/// asks for, and what the pipeline learns on the way (the route, the
/// caller, the body, the room its audit line holds, what the audit log
/// says, how long the response may take to reach the client).
pub(crate) struct Call<'a> {
    pub(crate) shared: &'a Server,
    /// The configuration the call started under; a reload does not change
    /// it mid-call.
    pub(crate) state: &'a Arc<State>,
    conn: &'a Conn,
    /// The caller's identity, or the error to answer when a route needs
    /// one: the connection's, or on a connection of a listed TLS proxy the
    /// forwarded certificate's.
    caller: &'a Result<Identity, ApiError>,
    method: http::Method,
    /// The path as sent (escaped): the audit log and redirects use it.
    raw_path: String,
    /// The raw query string.
    pub(crate) query: String,
    /// The route the path leads to, once known.
    route: Option<&'a Route>,
    /// The path remainder after a prefix route (key, policy or identity).
    pub(crate) resource: String,
    /// The caller, once known; `None` for a handler only on routes that
    /// skip authentication.
    pub(crate) identity: Option<&'a Identity>,
    /// The request body, once read (in a buffer wiped when dropped); see
    /// [`Call::body`].
    body: Option<Zeroizing<Vec<u8>>>,
    /// The room held for the audit line, once taken ([`take_audit_room`]).
    room: Option<AuditRoom<'a>>,
    /// What the audit log says beyond "http request".
    audit: Option<String>,
    /// How long the response may take to reach the client; `None` for
    /// streams that last as long as the client wants (log streams).
    send_deadline: Option<Duration>,
}

impl Call<'_> {
    /// The request body; `None` when it exceeded the route's limit or could
    /// not be read (answered like invalid JSON).
    pub(crate) fn body(&self) -> Option<&[u8]> {
        self.body.as_deref().map(Vec::as_slice)
    }
}

/// The room a call holds for its audit line from just before it runs (or
/// is answered) until the line is queued.
enum AuditRoom<'a> {
    /// Reserved in the audit queue and charged to the caller and its
    /// connection (no charge when audit lines are not written).
    Held(AuditPermit<'a>, Option<AuditShare<'a>>),
    /// None: the call is refused, or is a probe answered without room
    /// ([`Route::probe`]); its line is queued if there is room by then.
    Unreserved,
}

/// Takes the room for the call's audit line. Fail closed: `Err` means the
/// call must be answered 503 `audit log unavailable` without running,
/// because the audit queue is full or because the caller (or its
/// connection) already holds its share of it; probes are answered anyway.
///
/// Taken only once the call is about to run or be answered, never while
/// its body is read: a client that announces a body and sends nothing
/// holds no audit room (issue 25 A.1).
fn take_audit_room<'a>(ctx: &Call<'a>) -> (AuditRoom<'a>, Result<(), ApiError>) {
    let logs: &'a crate::logs::Logs = &ctx.shared.logs;
    let exempt = ctx.route.is_some_and(|r| r.probe);
    let bytes = logs.audit_room(&ctx.raw_path);
    let share = if bytes == 0 {
        None
    } else {
        // Unknown callers behind a proxy share the proxy's address: the
        // address a proxy forwards may come from its client.
        let caller = match ctx.caller {
            Ok(id) if *id == ctx.state.admin || ctx.state.policy_of(id).is_some() => {
                Caller::Identity(id.clone())
            }
            _ => Caller::Source(limits::source_key(ctx.conn.peer.ip())),
        };
        match AuditShare::take(ctx.conn, caller, bytes) {
            Some(share) => Some(share),
            None if exempt => return (AuditRoom::Unreserved, Ok(())),
            None => {
                logs.note_caller_refused();
                return (AuditRoom::Unreserved, Err(crate::logs::AUDIT_UNAVAILABLE));
            }
        }
    };
    let permit = logs.reserve_audit(&ctx.raw_path, exempt);
    if permit.refused() && !exempt {
        return (
            AuditRoom::Held(permit, share),
            Err(crate::logs::AUDIT_UNAVAILABLE),
        );
    }
    (AuditRoom::Held(permit, share), Ok(()))
}

/// A response given without running a handler (400, 403, 404, 405, 301,
/// a body that timed out): it needs its audit room too, so it becomes 503
/// `audit log unavailable` when there is none. A call that took its room
/// before running keeps its response.
fn with_audit_room(ctx: &mut Call<'_>, response: Response<Body>) -> Response<Body> {
    if ctx.room.is_some() {
        return response;
    }
    let (room, admitted) = take_audit_room(ctx);
    ctx.room = Some(room);
    match admitted {
        Ok(()) => response,
        Err(err) => wire::error(&err),
    }
}

pub(super) async fn handle_request(
    shared: &Server,
    conn: &Arc<Conn>,
    req: Request<Incoming>,
) -> Response<WatchedBody> {
    conn.in_flight.fetch_add(1, Ordering::Relaxed);
    conn.seen_request.store(true, Ordering::Relaxed);
    conn.head_complete();
    conn.touch();
    let _in_flight = InFlight(conn);
    let started = Instant::now();
    let time = OffsetDateTime::now_utc();
    let state = shared.state.load_full();
    let forwarded = match &conn.identity {
        Ok(id) if state.proxies.is_proxy(id) => Some(state.proxies.forwarded(
            req.headers(),
            &shared.tls.load(),
            conn.peer.ip(),
        )),
        _ => None,
    };
    let (client_ip, proxy_ip) = match &forwarded {
        Some(f) => (f.client_ip.unwrap_or(conn.peer.ip()), Some(conn.peer.ip())),
        None => (conn.peer.ip(), None),
    };
    let mut ctx = Call {
        shared,
        state: &state,
        conn,
        caller: forwarded.as_ref().map_or(&conn.identity, |f| &f.identity),
        method: req.method().clone(),
        raw_path: req.uri().path().to_string(),
        query: req.uri().query().unwrap_or("").to_string(),
        route: None,
        resource: String::new(),
        identity: None,
        body: None,
        room: None,
        audit: None,
        send_deadline: Some(DEFAULT_RESPONSE_DEADLINE),
    };

    // The route comes first: even a refused call is answered as its route
    // says (a probe without audit room, for one).
    let found = find_route(&ctx).map(|(route, resource)| {
        ctx.route = Some(route);
        ctx.resource = resource;
        route
    });
    let response = if conn.certificate_expired() {
        // The certificate the connection was opened with has expired
        // since (`tls.auth: on`): refused, and the connection is closed
        // after this answer (see `Conn::check_timers`).
        ctx.identity = ctx.caller.as_ref().ok();
        conn.expiry_refused.store(true, Ordering::Relaxed);
        let mut response = wire::error(&CERTIFICATE_EXPIRED);
        // HTTP/2 has no such header (hyper would strip it): there the
        // connection's GOAWAY comes from its timers.
        if req.version() < http::Version::HTTP_2 {
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        response
    } else {
        match found {
            Ok(route) => route_request(&mut ctx, route, req).await,
            Err(none) => none.answer(&ctx),
        }
    };
    let response = with_audit_room(&mut ctx, response);

    let event = AuditEvent {
        time,
        method: ctx.method.as_str(),
        path: &ctx.raw_path,
        ip: client_ip,
        proxy_ip,
        identity: ctx.identity.map(|i| i.as_str()).unwrap_or_default(),
        status: response.status().as_u16(),
        duration: started.elapsed(),
        message: ctx.audit.as_deref().unwrap_or("http request"),
    };
    if shared.logs.audit_enabled() {
        match ctx.room.take() {
            Some(AuditRoom::Held(permit, share)) => {
                permit.audit(&event);
                // The line is queued: the caller no longer holds its room.
                drop(share);
            }
            Some(AuditRoom::Unreserved) | None => shared.logs.audit(&event),
        }
    }
    drop(ctx.room.take());
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

/// The route of the request's path, or why there is none.
fn find_route<'a>(ctx: &Call<'a>) -> Result<(&'a Route, String), NoRoute> {
    let state: &'a Arc<State> = ctx.state;
    let path = percent_decode(&ctx.raw_path).ok_or(NoRoute::BadEscape)?;
    match state.routes.lookup(&path) {
        Lookup::Found(route, resource) => Ok((route, resource)),
        Lookup::Redirect(to) => Err(NoRoute::Redirect(to)),
        Lookup::NotFound => Err(NoRoute::NotFound),
    }
}

/// A request path that leads to no route.
enum NoRoute {
    /// The path does not decode: 400.
    BadEscape,
    /// The path is not clean: 301 to its clean form.
    Redirect(String),
    /// 404.
    NotFound,
}

impl NoRoute {
    fn answer(self, ctx: &Call<'_>) -> Response<Body> {
        match self {
            NoRoute::BadEscape => {
                wire::error(&ApiError::new(400, "invalid URL escape in request path"))
            }
            NoRoute::Redirect(to) => {
                let to = escape_location_path(&to);
                let location = match ctx.query.as_str() {
                    "" => to,
                    q => format!("{to}?{q}"),
                };
                wire::moved_permanently(&location, &ctx.method)
            }
            NoRoute::NotFound => wire::not_found(),
        }
    }
}

/// The route's method rules, metrics, and on to authorization.
async fn route_request(
    ctx: &mut Call<'_>,
    route: &Route,
    req: Request<Incoming>,
) -> Response<Body> {
    if !route.allows_method(&ctx.method) {
        return wire::method_not_allowed(&ctx.method, &route.method);
    }

    let guard = route.counted.then(|| ctx.shared.metrics.start());
    let response = authorize_and_run(ctx, route, req).await;
    // Before the metrics count the status: a 403 without audit room is
    // answered (and counted) as 503.
    let response = with_audit_room(ctx, response);
    if let Some(guard) = guard {
        guard.finish(response.status().as_u16(), route.endpoint);
    }
    ctx.send_deadline = if route.streams && response.status().is_success() {
        None
    } else {
        Some(route.timeout.max(DEFAULT_RESPONSE_DEADLINE))
    };
    response
}

/// Authentication and authorization, then the body and the handler.
async fn authorize_and_run(
    ctx: &mut Call<'_>,
    route: &Route,
    req: Request<Incoming>,
) -> Response<Body> {
    let (state, conn, caller) = (ctx.state, ctx.conn, ctx.caller);
    ctx.identity = match route.auth {
        Auth::None => None,
        Auth::IdentifyOnly => caller.as_ref().ok(),
        Auth::Caller => match caller {
            Ok(id) => Some(id),
            Err(err) => return wire::error(err),
        },
        Auth::Policy => match caller {
            Err(err) => return wire::error(err),
            Ok(id) => {
                ctx.identity = Some(id);
                if *id != state.admin {
                    let allowed = match state.policy_of(id) {
                        Some((_, policy)) => route.allowed_by(policy, &ctx.resource),
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
    let call = &mut *ctx;
    let run = async move {
        // The share of the connection's body budget is held until the
        // handler is done with the body.
        let (body, _held) = if max_body == 0 {
            (Some(Zeroizing::new(Vec::new())), None)
        } else {
            match read_body(req.into_body(), max_body, budget).await {
                Some((body, held)) => (Some(body), held),
                None => (None, None),
            }
        };
        call.body = body;
        // The body is in: the call may run once its audit line has room.
        let (room, admitted) = take_audit_room(call);
        call.room = Some(room);
        if let Err(err) = admitted {
            return Ok(Answer::from(wire::error(&err)));
        }
        handlers::dispatch(call, route.endpoint).await
    };
    let answer = guarded(route.path, route.timeout, run).await;
    // Wiped now: the body may carry plaintexts and keys.
    ctx.body = None;
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
