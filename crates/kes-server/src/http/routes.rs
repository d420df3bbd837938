//! The API's routes and Go `http.ServeMux` matching. The route table below
//! holds every fact about a route on the route's line: its method, body
//! limit and timeout, how it authenticates and which policy paths it is
//! checked against, whether it is answered without audit room, counted in
//! the metrics or streamed without a send deadline. The server reads these
//! attributes; no other place names a route.
//!
//! Routes whose path ends in `/` are prefix routes: the remainder of the
//! path is the resource (a key, policy or identity name). The rest match
//! exactly. Unclean paths are redirected to their clean form, unknown paths
//! get Go's plain-text 404.

use http::Method;
use kes_core::policy::{pattern_matches, Policy};
use std::collections::BTreeMap;
use std::time::Duration;

/// Defines [`Endpoint`] and the route of each from one table, so that
/// every fact about a route is written once, on its line.
macro_rules! routes {
    ($($endpoint:ident => $path:literal: $route:expr,)*) => {
        /// Every endpoint the server answers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Endpoint {
            $($endpoint,)*
        }

        impl Endpoint {
            /// Every endpoint, in the order of their discriminants (metrics
            /// are indexed by them) and of `/v1/api`.
            pub const ALL: &[Endpoint] = &[$(Endpoint::$endpoint,)*];

            /// The endpoint's route pattern; a trailing `/` makes it a
            /// prefix route.
            pub const fn path(self) -> &'static str {
                match self {
                    $(Endpoint::$endpoint => $path,)*
                }
            }

            /// The endpoint's route as the table defines it, before the
            /// config's `api:` overrides.
            fn route(self) -> Route {
                match self {
                    $(Endpoint::$endpoint => Route {
                        endpoint: self,
                        path: $path,
                        ..$route
                    },)*
                }
            }
        }
    };
}

const MB: u64 = 1_000_000;

/// The largest body of a retire request (`{"keep":N}`).
const RETIRE_MAX_BODY: u64 = 1024;

routes! {
    // endpoint => path: method (body limit in bytes, timeout in seconds; 0
    // is none), then what sets the route apart from a policy-checked,
    // audited route that counts in the request metrics.
    Version => "/version": get(10).auth(Auth::None).probe().uncounted(),
    Ready => "/v1/ready": get(15).probe().uncounted(),
    Status => "/v1/status": get(15).probe().uncounted(),
    Metrics => "/v1/metrics": get(15).probe().uncounted(),
    Api => "/v1/api": get(10).uncounted(),
    KeyCreate => "/v1/key/create/": put(0, 15),
    KeyImport => "/v1/key/import/": put(MB, 15),
    KeyDescribe => "/v1/key/describe/": get(15),
    KeyList => "/v1/key/list/": get(15),
    KeyDelete => "/v1/key/delete/": delete(15),
    KeyGenerate => "/v1/key/generate/": put(MB, 15),
    KeyEncrypt => "/v1/key/encrypt/": put(MB, 15),
    KeyDecrypt => "/v1/key/decrypt/": put(MB, 15),
    KeyHmac => "/v1/key/hmac/": put(MB, 15),
    // Old MinIO (before Aug 2023) still probes the legacy bulk decrypt API;
    // the Go KES removed it, we keep answering it (unlisted). It decrypts
    // like `/v1/key/decrypt/<name>`, so a policy must allow that path too.
    // 1000 ciphertexts of a DEK fit comfortably in 1 MB.
    KeyBulkDecrypt => "/v1/key/bulk/decrypt/":
        post(MB, 15).also_accepts(Method::PUT).checked_as(Endpoint::KeyDecrypt).unlisted(),
    PolicyDescribe => "/v1/policy/describe/": get(15),
    PolicyRead => "/v1/policy/read/": get(15),
    PolicyList => "/v1/policy/list/": get(15),
    IdentityDescribe => "/v1/identity/describe/": get(15),
    IdentitySelfDescribe => "/v1/identity/self/describe": get(15).auth(Auth::Caller),
    IdentityList => "/v1/identity/list/": get(15),
    LogError => "/v1/log/error": get(0).streams().uncounted(),
    LogAudit => "/v1/log/audit": get(0).streams().uncounted(),
    // Key rotation (not in the Go KES); after the Go routes so that the
    // metrics slots and the `/v1/api` order of those stay as they were.
    // Retiring versions destroys data for good: a broad grant such as
    // `/v1/key/*` does not carry it.
    KeyRotate => "/v1/key/rotate/": post(0, 15),
    KeyRetire => "/v1/key/retire/": post(RETIRE_MAX_BODY, 15).explicit_allow(),
    // Deletion with a recovery window (`lifecycle.deletion_window`, not in
    // the Go KES). Restoring brings back a key someone meant to destroy:
    // like retire, only a policy that names the route grants it.
    KeyRestore => "/v1/key/restore/": post(0, 15).explicit_allow(),
    KeyDeleted => "/v1/key/deleted/": get(15),
}

/// How a route authenticates its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No certificate needed, no identity computed (`/version`).
    None,
    /// The identity is computed if a certificate was sent; no policy check
    /// (routes with `skip_auth`).
    IdentifyOnly,
    /// The caller's identity, without a policy check: the call is about
    /// the caller (`/v1/identity/self/describe`), so a caller without one
    /// is told why.
    Caller,
    /// Admin, or a policy that allows the path.
    Policy,
}

/// One route of the API and everything the server does differently for
/// it. Built by the table above; the config's `api:` section may change
/// [`Route::auth`] and [`Route::timeout`].
#[derive(Debug, Clone)]
pub struct Route {
    /// What the route does.
    pub endpoint: Endpoint,
    /// The route pattern; a trailing `/` makes it a prefix route.
    pub path: &'static str,
    /// The method clients must use, as `/v1/api` lists it.
    pub method: Method,
    /// A second method accepted: POST wherever the method is PUT (the Go
    /// SDK sends POST for create, import, generate, encrypt and decrypt).
    pub also_accepts: Option<Method>,
    /// Largest request body read, in bytes; 0 means the body is ignored.
    pub max_body: u64,
    /// Time limit of one request; zero means none.
    pub timeout: Duration,
    /// Authentication.
    pub auth: Auth,
    /// Another route whose policy path the caller's policy must allow as
    /// well.
    pub checked_as: Option<Endpoint>,
    /// Whether a policy must name the route itself: an allow pattern that
    /// starts with its path (retire).
    pub explicit_allow: bool,
    /// Whether `/v1/api` lists the route (the legacy bulk decrypt is not).
    pub listed: bool,
    /// Whether the route is answered while the audit log has no room (its
    /// audit line then written when there is): probes of the server's
    /// state, which read no key and change nothing, so that operators and
    /// load balancers see it.
    pub probe: bool,
    /// Whether requests count in the request metrics, as in the Go KES:
    /// the key, policy and identity APIs.
    pub counted: bool,
    /// Whether a successful answer streams for as long as the client wants
    /// (log streams): no deadline for sending it.
    pub streams: bool,
}

/// A route with `method`: policy-checked, audited, counted, listed.
fn route(method: Method, max_body: u64, timeout_secs: u64) -> Route {
    Route {
        endpoint: Endpoint::Version,
        path: "",
        also_accepts: (method == Method::PUT).then_some(Method::POST),
        method,
        max_body,
        timeout: Duration::from_secs(timeout_secs),
        auth: Auth::Policy,
        checked_as: None,
        explicit_allow: false,
        listed: true,
        probe: false,
        counted: true,
        streams: false,
    }
}

fn get(timeout_secs: u64) -> Route {
    route(Method::GET, 0, timeout_secs)
}

fn put(max_body: u64, timeout_secs: u64) -> Route {
    route(Method::PUT, max_body, timeout_secs)
}

fn post(max_body: u64, timeout_secs: u64) -> Route {
    route(Method::POST, max_body, timeout_secs)
}

fn delete(timeout_secs: u64) -> Route {
    route(Method::DELETE, 0, timeout_secs)
}

/// The builders the route table reads as attributes.
impl Route {
    fn auth(self, auth: Auth) -> Self {
        Self { auth, ..self }
    }

    fn also_accepts(self, method: Method) -> Self {
        Self {
            also_accepts: Some(method),
            ..self
        }
    }

    fn checked_as(self, endpoint: Endpoint) -> Self {
        Self {
            checked_as: Some(endpoint),
            ..self
        }
    }

    fn explicit_allow(self) -> Self {
        Self {
            explicit_allow: true,
            ..self
        }
    }

    fn unlisted(self) -> Self {
        Self {
            listed: false,
            ..self
        }
    }

    fn probe(self) -> Self {
        Self {
            probe: true,
            ..self
        }
    }

    fn uncounted(self) -> Self {
        Self {
            counted: false,
            ..self
        }
    }

    fn streams(self) -> Self {
        Self {
            streams: true,
            ..self
        }
    }
}

impl Route {
    /// Whether a request may use `method` on this route.
    pub fn allows_method(&self, method: &Method) -> bool {
        *method == self.method || self.also_accepts.as_ref() == Some(method)
    }

    /// The policy paths a request for `resource` must be allowed on: the
    /// decoded path (`/v1/key/list` without its slash is checked as
    /// `/v1/key/list/`, the path the Go SDK ends up requesting after
    /// ServeMux's redirect), and that of [`Route::checked_as`].
    pub fn policy_paths(&self, resource: &str) -> impl Iterator<Item = String> {
        let own = format!("{}{}", self.path, resource);
        let also = self
            .checked_as
            .map(|other| format!("{}{resource}", other.path()));
        std::iter::once(own).chain(also)
    }

    /// Whether `policy` lets a (non-admin) caller use this route on
    /// `resource`: every policy path is allowed, and where the route needs
    /// an explicit allow, an allow pattern that itself starts with the
    /// route's path matches it. Deny patterns apply as everywhere.
    pub fn allowed_by(&self, policy: &Policy, resource: &str) -> bool {
        if !self.policy_paths(resource).all(|p| policy.allows(&p)) {
            return false;
        }
        if !self.explicit_allow {
            return true;
        }
        let path = format!("{}{resource}", self.path);
        policy
            .allow
            .iter()
            .any(|p| p.starts_with(self.path) && pattern_matches(p, &path))
    }
}

/// `api:` overrides from the config for one route.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteOverride {
    /// Replace the authenticator with "identify only".
    pub skip_auth: bool,
    /// Replace the timeout.
    pub timeout: Option<Duration>,
}

/// The routes of one server configuration.
#[derive(Debug, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

/// What the router decided for a request path.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A route matched; the resource is the remainder after a prefix route.
    Found(&'a Route, String),
    /// The path is not clean; redirect here.
    Redirect(String),
    /// No route.
    NotFound,
}

impl Default for RouteTable {
    fn default() -> Self {
        Self::new(&BTreeMap::new())
    }
}

impl RouteTable {
    /// The default routes with `api:` overrides applied (unknown paths are
    /// ignored, as in the Go KES).
    pub fn new(overrides: &BTreeMap<String, RouteOverride>) -> Self {
        let mut routes: Vec<Route> = Endpoint::ALL.iter().map(|e| e.route()).collect();
        for route in &mut routes {
            if let Some(o) = overrides.get(route.path) {
                if o.skip_auth && route.auth == Auth::Policy {
                    route.auth = Auth::IdentifyOnly;
                }
                if let Some(t) = o.timeout {
                    route.timeout = t;
                }
            }
        }
        Self { routes }
    }

    /// Every route, the unlisted legacy ones included.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Whether any route lets clients in without a certificate, which
    /// relaxes the TLS handshake to "certificate requested".
    pub fn any_skip_auth(&self) -> bool {
        self.routes.iter().any(|r| r.auth == Auth::IdentifyOnly)
    }

    /// Matches a decoded request path with `ServeMux` rules.
    pub fn lookup(&self, path: &str) -> Lookup<'_> {
        if !is_clean(path) {
            return Lookup::Redirect(clean_path(path));
        }
        let mut best: Option<&Route> = None;
        for route in &self.routes {
            let matches = if route.path.ends_with('/') {
                path.starts_with(route.path)
            } else {
                path == route.path
            };
            if matches && best.is_none_or(|b| route.path.len() > b.path.len()) {
                best = Some(route);
            }
        }
        if let Some(route) = best {
            return Lookup::Found(route, path[route.path.len()..].to_string());
        }
        // `GET /v1/key/list` → the prefix route `/v1/key/list/` with an
        // empty resource. ServeMux answers 301; the Go SDK builds such URLs
        // for an empty prefix and follows the redirect, so serving it
        // directly saves a round trip and is equivalent.
        let with_slash = format!("{path}/");
        if let Some(route) = self.routes.iter().find(|r| r.path == with_slash) {
            return Lookup::Found(route, String::new());
        }
        Lookup::NotFound
    }
}

/// Whether `clean_path(p) == p`, without allocating (the common case).
fn is_clean(p: &str) -> bool {
    p.starts_with('/')
        && !p.contains("//")
        && !p.contains("/./")
        && !p.contains("/../")
        && !p.ends_with("/.")
        && !p.ends_with("/..")
}

/// Go's `cleanPath`: a rooted, `path.Clean`ed path that keeps a trailing
/// slash.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".to_string();
    }
    let rooted = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in rooted.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(rooted.len());
    for s in &parts {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    if rooted.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests;
