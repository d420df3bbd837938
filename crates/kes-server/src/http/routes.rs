//! The API's routes, what each asks of a request (method, body size,
//! timeout, authentication, the policy paths it is checked against), and
//! Go `http.ServeMux` matching.
//!
//! Routes whose path ends in `/` are prefix routes: the remainder of the
//! path is the resource (a key, policy or identity name). The rest match
//! exactly. Unclean paths are redirected to their clean form, unknown paths
//! get Go's plain-text 404.

use http::Method;
use kes_core::policy::{pattern_matches, Policy};
use std::collections::BTreeMap;
use std::time::Duration;

/// Defines [`Endpoint`] with its route patterns, so that the list of
/// endpoints is written once.
macro_rules! endpoints {
    ($($endpoint:ident => $path:literal,)*) => {
        /// Every endpoint the server answers.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Endpoint {
            $($endpoint,)*
        }

        impl Endpoint {
            /// Every endpoint, in the order of their discriminants (metrics
            /// are indexed by them).
            pub const ALL: &[Endpoint] = &[$(Endpoint::$endpoint,)*];

            /// The endpoint's route pattern; a trailing `/` makes it a
            /// prefix route.
            pub fn path(self) -> &'static str {
                match self {
                    $(Endpoint::$endpoint => $path,)*
                }
            }
        }
    };
}

endpoints! {
    Version => "/version",
    Ready => "/v1/ready",
    Status => "/v1/status",
    Metrics => "/v1/metrics",
    Api => "/v1/api",
    KeyCreate => "/v1/key/create/",
    KeyImport => "/v1/key/import/",
    KeyDescribe => "/v1/key/describe/",
    KeyList => "/v1/key/list/",
    KeyDelete => "/v1/key/delete/",
    KeyGenerate => "/v1/key/generate/",
    KeyEncrypt => "/v1/key/encrypt/",
    KeyDecrypt => "/v1/key/decrypt/",
    KeyHmac => "/v1/key/hmac/",
    KeyBulkDecrypt => "/v1/key/bulk/decrypt/",
    PolicyDescribe => "/v1/policy/describe/",
    PolicyRead => "/v1/policy/read/",
    PolicyList => "/v1/policy/list/",
    IdentityDescribe => "/v1/identity/describe/",
    IdentitySelfDescribe => "/v1/identity/self/describe",
    IdentityList => "/v1/identity/list/",
    LogError => "/v1/log/error",
    LogAudit => "/v1/log/audit",
    // Key rotation (not in the Go KES); after the Go routes so that the
    // metrics slots and the `/v1/api` order of those stay as they were.
    KeyRotate => "/v1/key/rotate/",
    KeyRetire => "/v1/key/retire/",
}

impl Endpoint {
    /// Whether requests to the endpoint count in the request metrics, as
    /// in the Go KES: the key, policy and identity APIs.
    pub fn counted(self) -> bool {
        let path = self.path();
        path.starts_with("/v1/key/")
            || path.starts_with("/v1/policy/")
            || path.starts_with("/v1/identity/")
    }
}

/// How a route authenticates its callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// No certificate needed, no identity computed (`/version`).
    None,
    /// The identity is computed if a certificate was sent; no policy check
    /// (`/v1/identity/self/describe`, and routes with `skip_auth`).
    IdentifyOnly,
    /// Admin, or a policy that allows the path.
    Policy,
}

/// One route of the API.
#[derive(Debug, Clone)]
pub struct Route {
    /// What the route does.
    pub endpoint: Endpoint,
    /// The method clients must use (POST is accepted where this is PUT).
    pub method: Method,
    /// The route pattern; a trailing `/` makes it a prefix route.
    pub path: &'static str,
    /// Largest request body read, in bytes; 0 means the body is ignored.
    pub max_body: u64,
    /// Time limit of one request; zero means none.
    pub timeout: Duration,
    /// Authentication.
    pub auth: Auth,
    /// Whether `/v1/api` lists the route (the legacy bulk decrypt is not).
    pub listed: bool,
}

impl Route {
    /// Whether a request may use `method` on this route: its own method,
    /// POST wherever that is PUT (the Go SDK sends POST for create, import,
    /// generate, encrypt and decrypt), and PUT as well as POST on the
    /// legacy bulk decrypt.
    pub fn allows_method(&self, method: &Method) -> bool {
        *method == self.method
            || (self.method == Method::PUT && *method == Method::POST)
            || (self.endpoint == Endpoint::KeyBulkDecrypt && *method == Method::PUT)
    }

    /// The policy paths a request for `resource` must be allowed on: the
    /// decoded path (`/v1/key/list` without its slash is checked as
    /// `/v1/key/list/`, the path the Go SDK ends up requesting after
    /// ServeMux's redirect). The legacy bulk decrypt decrypts like
    /// `/v1/key/decrypt/<name>`, so a policy that denies (or does not
    /// allow) that path denies the bulk route too.
    pub fn policy_paths(&self, resource: &str) -> impl Iterator<Item = String> {
        let own = format!("{}{}", self.path, resource);
        let also = (self.endpoint == Endpoint::KeyBulkDecrypt)
            .then(|| format!("{}{resource}", Endpoint::KeyDecrypt.path()));
        std::iter::once(own).chain(also)
    }

    /// Whether `policy` lets a (non-admin) caller use this route on
    /// `resource`: every policy path is allowed. Retiring key versions
    /// destroys data for good (what they sealed can never be decrypted
    /// again), so a broad grant such as `/v1/key/*` must not carry it: retire
    /// also needs an allow pattern that itself starts with `/v1/key/retire/`
    /// and matches the path. Deny patterns apply as everywhere.
    pub fn allowed_by(&self, policy: &Policy, resource: &str) -> bool {
        if !self.policy_paths(resource).all(|p| policy.allows(&p)) {
            return false;
        }
        if self.endpoint != Endpoint::KeyRetire {
            return true;
        }
        let path = format!("{}{resource}", self.path);
        policy
            .allow
            .iter()
            .any(|p| p.starts_with(self.path) && pattern_matches(p, &path))
    }
}

/// The largest body of a retire request (`{"keep":N}`).
const RETIRE_MAX_BODY: u64 = 1024;

const MB: u64 = 1_000_000;

fn default_routes() -> Vec<Route> {
    use Endpoint::*;
    let r = |endpoint: Endpoint, method, max_body, secs, auth| Route {
        endpoint,
        method,
        path: endpoint.path(),
        max_body,
        timeout: Duration::from_secs(secs),
        auth,
        listed: true,
    };
    let get = Method::GET;
    let put = Method::PUT;
    let mut routes = vec![
        r(Version, get.clone(), 0, 10, Auth::None),
        r(Ready, get.clone(), 0, 15, Auth::Policy),
        r(Status, get.clone(), 0, 15, Auth::Policy),
        r(Metrics, get.clone(), 0, 15, Auth::Policy),
        r(Api, get.clone(), 0, 10, Auth::Policy),
        r(KeyCreate, put.clone(), 0, 15, Auth::Policy),
        r(KeyImport, put.clone(), MB, 15, Auth::Policy),
        r(KeyDescribe, get.clone(), 0, 15, Auth::Policy),
        r(KeyList, get.clone(), 0, 15, Auth::Policy),
        r(KeyDelete, Method::DELETE, 0, 15, Auth::Policy),
        r(KeyGenerate, put.clone(), MB, 15, Auth::Policy),
        r(KeyEncrypt, put.clone(), MB, 15, Auth::Policy),
        r(KeyDecrypt, put.clone(), MB, 15, Auth::Policy),
        r(KeyHmac, put.clone(), MB, 15, Auth::Policy),
        r(PolicyDescribe, get.clone(), 0, 15, Auth::Policy),
        r(PolicyRead, get.clone(), 0, 15, Auth::Policy),
        r(PolicyList, get.clone(), 0, 15, Auth::Policy),
        r(IdentityDescribe, get.clone(), 0, 15, Auth::Policy),
        r(IdentitySelfDescribe, get.clone(), 0, 15, Auth::IdentifyOnly),
        r(IdentityList, get.clone(), 0, 15, Auth::Policy),
        r(LogError, get.clone(), 0, 0, Auth::Policy),
        r(LogAudit, get.clone(), 0, 0, Auth::Policy),
        // Listed after the 22 routes of the Go KES, whose attributes stay
        // as they are. Rotate has no body; retire a small one.
        r(KeyRotate, Method::POST, 0, 15, Auth::Policy),
        r(KeyRetire, Method::POST, RETIRE_MAX_BODY, 15, Auth::Policy),
    ];
    // Old MinIO (before Aug 2023) still probes the legacy bulk decrypt API;
    // the Go KES removed it, we keep answering it. 1000 ciphertexts of a
    // DEK fit comfortably in 1 MB.
    routes.push(Route {
        listed: false,
        ..r(KeyBulkDecrypt, Method::POST, MB, 15, Auth::Policy)
    });
    routes
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
        let mut routes = default_routes();
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
        self.routes
            .iter()
            .any(|r| r.auth == Auth::IdentifyOnly && r.endpoint != Endpoint::IdentitySelfDescribe)
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
mod tests {
    use super::*;

    #[test]
    fn every_route_has_a_metrics_slot() {
        for r in RouteTable::default().routes() {
            assert!((r.endpoint as usize) < crate::http::metrics::MAX_ROUTES);
            assert_eq!(Endpoint::ALL[r.endpoint as usize], r.endpoint);
        }
    }

    #[test]
    fn go_routes_then_rotation_routes() {
        let t = RouteTable::default();
        let listed: Vec<&str> = t
            .routes()
            .iter()
            .filter(|r| r.listed)
            .map(|r| r.path)
            .collect();
        assert_eq!(listed.len(), 24);
        assert_eq!(listed[21], "/v1/log/audit");
        assert_eq!(&listed[22..], ["/v1/key/rotate/", "/v1/key/retire/"]);
        assert!(Endpoint::KeyRotate.counted() && Endpoint::KeyRetire.counted());
    }

    fn policy(allow: &[&str], deny: &[&str]) -> Policy {
        Policy {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn route(t: &RouteTable, e: Endpoint) -> &Route {
        t.routes().iter().find(|r| r.endpoint == e).unwrap()
    }

    #[test]
    fn retire_needs_an_explicit_allow_pattern() {
        let t = RouteTable::default();
        let (rotate, retire) = (
            route(&t, Endpoint::KeyRotate),
            route(&t, Endpoint::KeyRetire),
        );
        let broad = policy(&["/v1/key/*"], &[]);
        assert!(rotate.allowed_by(&broad, "k"));
        assert!(!retire.allowed_by(&broad, "k"));
        let all = policy(&["*", "/v1/*"], &[]);
        assert!(!retire.allowed_by(&all, "k"));
        let explicit = policy(&["/v1/key/retire/minio-*"], &[]);
        assert!(retire.allowed_by(&explicit, "minio-key"));
        assert!(!retire.allowed_by(&explicit, "other"));
        assert!(!rotate.allowed_by(&explicit, "minio-key"));
        // An explicit pattern for another key does not lend itself to a
        // broad one.
        let mixed = policy(&["/v1/key/*", "/v1/key/retire/a"], &[]);
        assert!(retire.allowed_by(&mixed, "a"));
        assert!(!retire.allowed_by(&mixed, "b"));
        let denied = policy(&["/v1/key/retire/*"], &["/v1/key/retire/keep-*"]);
        assert!(retire.allowed_by(&denied, "k"));
        assert!(!retire.allowed_by(&denied, "keep-me"));
        assert!(route(&t, Endpoint::KeyCreate).allowed_by(&broad, "k"));
    }

    #[test]
    fn servemux_matching() {
        let t = RouteTable::default();
        match t.lookup("/v1/key/create/my-key") {
            Lookup::Found(r, res) => {
                assert_eq!(r.endpoint, Endpoint::KeyCreate);
                assert_eq!(res, "my-key");
            }
            other => panic!("{other:?}"),
        }
        match t.lookup("/v1/identity/self/describe") {
            Lookup::Found(r, _) => assert_eq!(r.endpoint, Endpoint::IdentitySelfDescribe),
            other => panic!("{other:?}"),
        }
        match t.lookup("/v1/key/list") {
            Lookup::Found(r, res) => {
                assert_eq!(r.endpoint, Endpoint::KeyList);
                assert_eq!(res, "");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(t.lookup("/v1/nope"), Lookup::NotFound));
        assert!(matches!(t.lookup("/v1/status/"), Lookup::NotFound));
        match t.lookup("/v1/key/../status") {
            Lookup::Redirect(to) => assert_eq!(to, "/v1/status"),
            other => panic!("{other:?}"),
        }
        match t.lookup("//v1/key/list/") {
            Lookup::Redirect(to) => assert_eq!(to, "/v1/key/list/"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn overrides() {
        let mut o = BTreeMap::new();
        o.insert(
            "/v1/status".to_string(),
            RouteOverride {
                skip_auth: true,
                timeout: Some(Duration::from_secs(17)),
            },
        );
        o.insert("/v1/unknown".to_string(), RouteOverride::default());
        let t = RouteTable::new(&o);
        let status = t
            .routes()
            .iter()
            .find(|r| r.endpoint == Endpoint::Status)
            .unwrap();
        assert_eq!(status.auth, Auth::IdentifyOnly);
        assert_eq!(status.timeout, Duration::from_secs(17));
        assert!(t.any_skip_auth());
        assert!(!RouteTable::default().any_skip_auth());
    }

    #[test]
    fn is_clean_agrees_with_clean_path() {
        for p in [
            "/",
            "/a",
            "/a/",
            "//a",
            "/a//b",
            "/./a",
            "/a/.",
            "/a/..",
            "/a/../b",
            "/a/b/",
            "/v1/key/list/",
            "/.a",
            "/a..b",
            "/...",
            "a",
            "",
        ] {
            assert_eq!(is_clean(p), clean_path(p) == p, "{p:?}");
        }
    }

    #[test]
    fn clean() {
        assert_eq!(clean_path("/a/b/../c/"), "/a/c/");
        assert_eq!(clean_path("/a/./b"), "/a/b");
        assert_eq!(clean_path("/.."), "/");
        assert_eq!(clean_path("/v1/key/list/"), "/v1/key/list/");
    }
}
