//! The route table's attributes, policy checks and ServeMux matching.

use super::*;

#[test]
fn every_route_has_a_metrics_slot() {
    for r in RouteTable::default().routes() {
        assert!((r.endpoint as usize) < crate::http::metrics::MAX_ROUTES);
        assert_eq!(Endpoint::ALL[r.endpoint as usize], r.endpoint);
    }
}

#[test]
fn go_routes_then_rotation_and_deletion_routes() {
    let t = RouteTable::default();
    let listed: Vec<&str> = t
        .routes()
        .iter()
        .filter(|r| r.listed)
        .map(|r| r.path)
        .collect();
    assert_eq!(listed.len(), 26);
    assert_eq!(listed[21], "/v1/log/audit");
    assert_eq!(
        &listed[22..],
        [
            "/v1/key/rotate/",
            "/v1/key/retire/",
            "/v1/key/restore/",
            "/v1/key/deleted/"
        ]
    );
    assert!(Endpoint::KeyRotate.route().counted && Endpoint::KeyRetire.route().counted);
    let (restore, deleted) = (Endpoint::KeyRestore.route(), Endpoint::KeyDeleted.route());
    assert_eq!((restore.method, restore.max_body), (Method::POST, 0));
    assert_eq!(deleted.method, Method::GET);
}

#[test]
fn route_attributes() {
    let t = RouteTable::default();
    let with = |has: fn(&Route) -> bool| -> Vec<&str> {
        t.routes()
            .iter()
            .filter(|r| has(r))
            .map(|r| r.path)
            .collect()
    };
    // Answered without audit room: the probes of the server's state.
    assert_eq!(
        with(|r| r.probe),
        ["/version", "/v1/ready", "/v1/status", "/v1/metrics"]
    );
    assert_eq!(with(|r| r.streams), ["/v1/log/error", "/v1/log/audit"]);
    // Counted as the Go KES counts: the key, policy and identity APIs.
    for r in t.routes() {
        let api = ["/v1/key/", "/v1/policy/", "/v1/identity/"]
            .iter()
            .any(|p| r.path.starts_with(p));
        assert_eq!(r.counted, api, "{}", r.path);
    }
    assert_eq!(with(|r| r.auth == Auth::None), ["/version"]);
    assert_eq!(
        with(|r| r.auth == Auth::Caller),
        ["/v1/identity/self/describe"]
    );
    assert_eq!(
        with(|r| r.explicit_allow),
        ["/v1/key/retire/", "/v1/key/restore/"]
    );
    let bulk = route(&t, Endpoint::KeyBulkDecrypt);
    assert!(!bulk.listed);
    assert!(bulk.allows_method(&Method::PUT) && bulk.allows_method(&Method::POST));
    assert_eq!(
        bulk.policy_paths("k").collect::<Vec<_>>(),
        ["/v1/key/bulk/decrypt/k", "/v1/key/decrypt/k"]
    );
    let create = route(&t, Endpoint::KeyCreate);
    assert!(create.allows_method(&Method::POST) && !create.allows_method(&Method::GET));
    assert!(!route(&t, Endpoint::KeyRotate).allows_method(&Method::PUT));
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
fn restore_needs_an_explicit_allow_pattern_and_deleted_does_not() {
    let t = RouteTable::default();
    let (restore, deleted) = (
        route(&t, Endpoint::KeyRestore),
        route(&t, Endpoint::KeyDeleted),
    );
    let broad = policy(&["/v1/key/*"], &[]);
    assert!(!restore.allowed_by(&broad, "k"));
    assert!(deleted.allowed_by(&broad, "*"));
    let explicit = policy(&["/v1/key/restore/*"], &[]);
    assert!(restore.allowed_by(&explicit, "k"));
    assert!(!deleted.allowed_by(&explicit, "*"));
    // The listing matches patterns as every listing does.
    let minio = policy(&["/v1/key/deleted/minio-*"], &[]);
    assert!(deleted.allowed_by(&minio, "minio-*"));
    assert!(!deleted.allowed_by(&minio, "*"));
    // `/v1/key/delete/` and `/v1/key/deleted/` are told apart.
    match t.lookup("/v1/key/deleted/a*") {
        Lookup::Found(r, res) => {
            assert_eq!((r.endpoint, res.as_str()), (Endpoint::KeyDeleted, "a*"))
        }
        other => panic!("{other:?}"),
    }
    match t.lookup("/v1/key/delete/deleted") {
        Lookup::Found(r, res) => {
            assert_eq!((r.endpoint, res.as_str()), (Endpoint::KeyDelete, "deleted"))
        }
        other => panic!("{other:?}"),
    }
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
