//! `tls.proxy` through real mTLS connections: a listed proxy's requests act
//! with the certificate it forwards, in each encoding a front sends; every
//! malformed header gets its error; nobody else can use the header; the
//! audit log names the client's and the proxy's addresses. (The same
//! through real nginx and HAProxy: proxies.rs.)

use crate::common::{url_escape, AuditLog, Setup, TestServer};
use kes_core::ApiKey;

const HEADER: &str = "X-Tls-Client-Cert";

/// Header names and values of one request.
type Headers = Vec<(&'static str, String)>;

/// A setup where `proxy` is a listed TLS proxy and `app` may create and
/// describe keys named `app-*`.
fn proxy_setup(proxy: &ApiKey, app: &ApiKey) -> Setup {
    let mut setup = Setup::new().with(&format!(
        "policy:\n  app:\n    allow:\n      - /v1/key/create/app-*\n      - /v1/key/describe/app-*\n    identities:\n      - {}\n",
        app.identity()
    ));
    setup.tls_extra = format!(
        "  proxy:\n    identities:\n      - {}\n    header:\n      cert: {HEADER}\n",
        proxy.identity()
    );
    setup
}

/// PEM with only the line ends and spaces escaped: a `+` of the base64
/// stays a literal `+`, which Go's QueryUnescape would read as a space.
fn pem_with_literal_plus(pem: &str) -> String {
    pem.replace('\n', "%0A").replace(' ', "%20")
}

/// A client certificate of `key` (a new one each time, with the same
/// identity), as PEM.
fn pem_of(key: &ApiKey) -> String {
    key.client_certificate().unwrap().certificate_pem()
}

fn base64_der(key: &ApiKey) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .encode(key.client_certificate().unwrap().certificate_der)
}

/// A key whose certificate's base64 holds a `+`, so that the literal-plus
/// case is really tried.
fn key_with_plus_in_pem() -> ApiKey {
    (0..200)
        .map(|_| ApiKey::generate())
        .find(|k| pem_of(k).contains('+'))
        .expect("a certificate with a '+' in its base64")
}

#[tokio::test]
async fn a_listed_proxy_acts_with_the_forwarded_certificate() {
    let proxy = ApiKey::generate();
    let app = key_with_plus_in_pem();
    let server = TestServer::start(proxy_setup(&proxy, &app));
    let mut conn = server.client(&proxy).connect().await.unwrap();

    let pem = pem_of(&app);
    for (form, value) in [
        ("escaped PEM", url_escape(&pem)),
        ("PEM with a literal +", pem_with_literal_plus(&pem)),
        ("base64 DER", base64_der(&app)),
    ] {
        let resp = conn
            .try_request_with_headers("GET", "/v1/identity/self/describe", &[(HEADER, &value)])
            .await
            .unwrap();
        assert_eq!(resp.status, 200, "{form}: {}", resp.text());
        assert_eq!(
            resp.json()["identity"],
            app.identity().to_string(),
            "{form}"
        );
    }

    // The forwarded certificate's policy applies, in full and only it.
    let value = url_escape(&pem);
    let created = conn
        .try_request_with_headers("POST", "/v1/key/create/app-1", &[(HEADER, &value)])
        .await
        .unwrap();
    assert_eq!(created.status, 200, "{}", created.text());
    let refused = conn
        .try_request_with_headers("POST", "/v1/key/create/other", &[(HEADER, &value)])
        .await
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.text());

    // Header problems, in the Go KES's words. The proxy's own identity
    // never acts: without a header there is nobody to act as.
    let other = ApiKey::generate();
    let cases: Vec<(&str, Headers, u16, &str)> = vec![
        ("no header", vec![], 400, "no client certificate is present"),
        (
            "two headers",
            vec![(HEADER, value.clone()), (HEADER, base64_der(&other))],
            400,
            "too many client certificates are present",
        ),
        (
            "two certificates in one PEM",
            vec![(HEADER, url_escape(&format!("{pem}{}", pem_of(&other))))],
            400,
            "too many client certificates are present",
        ),
        (
            "garbage",
            vec![(HEADER, "not a certificate".into())],
            400,
            "invalid client certificate",
        ),
        (
            "broken PEM",
            vec![(HEADER, url_escape(&pem.replace("MII", "MIX")))],
            400,
            "invalid client certificate",
        ),
        (
            "base64 of garbage",
            vec![(HEADER, "AAAAAAAA".into())],
            400,
            "invalid client certificate",
        ),
    ];
    for (case, headers, status, message) in cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let resp = conn
            .try_request_with_headers("POST", "/v1/key/create/app-2", &headers)
            .await
            .unwrap();
        assert_eq!(resp.status, status, "{case}: {}", resp.text());
        assert_eq!(resp.message(), message, "{case}");
    }
    // A route without authentication does not look at the header.
    let version = conn
        .try_request_with_headers("GET", "/version", &[])
        .await
        .unwrap();
    assert_eq!(version.status, 200);
    // Nothing of the refused calls was created.
    let admin = server.admin_client();
    assert_eq!(
        admin
            .request("GET", "/v1/key/describe/app-2", None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn a_stranger_cannot_forward_a_certificate() {
    let proxy = ApiKey::generate();
    let app = ApiKey::generate();
    let setup = proxy_setup(&proxy, &app);
    let admin_pem = pem_of(&setup.admin);
    let server = TestServer::start(setup);
    // The app (a known client, not a proxy) forwards the admin's
    // certificate: the header is not read, the app stays the app.
    let mut conn = server.client(&app).connect().await.unwrap();
    let value = url_escape(&admin_pem);
    let me = conn
        .try_request_with_headers("GET", "/v1/identity/self/describe", &[(HEADER, &value)])
        .await
        .unwrap();
    assert_eq!(me.json()["identity"], app.identity().to_string());
    let resp = conn
        .try_request_with_headers("POST", "/v1/key/create/admin-only", &[(HEADER, &value)])
        .await
        .unwrap();
    assert_eq!(resp.status, 403, "{}", resp.text());
    // So does a stranger, and a garbage header is no error for it either.
    let stranger = ApiKey::generate();
    let mut conn = server.client(&stranger).connect().await.unwrap();
    for value in [value.as_str(), "garbage"] {
        let resp = conn
            .try_request_with_headers("POST", "/v1/key/create/admin-only", &[(HEADER, value)])
            .await
            .unwrap();
        assert_eq!(resp.status, 403, "{}", resp.text());
        assert_eq!(resp.message(), "not authorized: insufficient permissions");
    }
}

#[tokio::test]
async fn the_audit_log_names_the_client_and_the_proxy() {
    let proxy = ApiKey::generate();
    let app = ApiKey::generate();
    let server = TestServer::start(proxy_setup(&proxy, &app));
    let mut audit = AuditLog::follow(&server).await;

    let value = url_escape(&pem_of(&app));
    let mut conn = server.client(&proxy).connect().await.unwrap();
    for (path, forwarded_for, ip) in [
        ("/v1/key/describe/app-a", "10.9.8.7, 10.0.0.1", "10.9.8.7"),
        ("/v1/key/describe/app-b", "unknown, 10.0.0.2", "10.0.0.2"),
        (
            "/v1/key/describe/app-c",
            "[2001:db8::7]:4711",
            "2001:db8::7",
        ),
        // Nothing usable: the proxy's address stands in.
        ("/v1/key/describe/app-d", "garbage", "127.0.0.1"),
    ] {
        conn.try_request_with_headers(
            "GET",
            path,
            &[(HEADER, &value), ("X-Forwarded-For", forwarded_for)],
        )
        .await
        .unwrap();
        let ev = audit.event(path).await;
        assert_eq!(ev["request"]["ip"], ip, "{forwarded_for}");
        assert_eq!(ev["request"]["proxy_ip"], "127.0.0.1");
        assert_eq!(ev["request"]["identity"], app.identity().to_string());
        assert_eq!(ev["response"]["code"], 404);
    }
    // From anyone else X-Forwarded-For means nothing.
    let mut direct = server.client(&app).connect().await.unwrap();
    direct
        .try_request_with_headers(
            "GET",
            "/v1/key/describe/app-e",
            &[("X-Forwarded-For", "10.9.8.7")],
        )
        .await
        .unwrap();
    let ev = audit.event("/v1/key/describe/app-e").await;
    assert_eq!(ev["request"]["ip"], "127.0.0.1");
    assert!(ev["request"].get("proxy_ip").is_none(), "{ev}");
}

/// A self-signed certificate valid from `from` to `to` days from now, as
/// (DER, PEM).
fn dated_certificate(from: i64, to: i64) -> (Vec<u8>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["client".to_string()]).unwrap();
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from);
    params.not_after = now + time::Duration::days(to);
    let cert = params.self_signed(&key).unwrap();
    (cert.der().to_vec(), cert.pem())
}

#[tokio::test]
async fn with_tls_auth_on_forwarded_certificates_are_verified() {
    let proxy = ApiKey::generate();
    let app = ApiKey::generate();
    let stranger = ApiKey::generate();
    let (expired_der, expired_pem) = dated_certificate(-30, -1);
    let expired = kes_core::Identity::from_certificate_der(&expired_der).unwrap();
    let mut setup = proxy_setup(&proxy, &app).with(&format!(
        "  expired:\n    allow:\n      - /v1/key/describe/*\n    identities:\n      - {expired}\n"
    ));
    // Trusted: the admin, the proxy, the app, and the expired certificate
    // (so that only its dates fail it); not the stranger.
    let mut ca = String::new();
    for cert in [
        pem_of(&setup.admin),
        pem_of(&proxy),
        pem_of(&app),
        expired_pem.clone(),
    ] {
        ca.push_str(&cert);
    }
    let ca_path = setup.dir.path().join("ca.crt");
    std::fs::write(&ca_path, ca).unwrap();
    let tls_proxy = setup.tls_extra.clone();
    setup.tls_extra = format!("  auth: on\n  ca: {}\n{tls_proxy}", ca_path.display());
    let server = TestServer::start(setup);
    let mut conn = server.client(&proxy).connect().await.unwrap();

    let ok = conn
        .try_request_with_headers(
            "GET",
            "/v1/identity/self/describe",
            &[(HEADER, &url_escape(&pem_of(&app)))],
        )
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["identity"], app.identity().to_string());
    for (case, pem) in [
        ("not signed by the CA", pem_of(&stranger)),
        ("expired", expired_pem),
    ] {
        let resp = conn
            .try_request_with_headers(
                "GET",
                "/v1/key/describe/app-x",
                &[(HEADER, &url_escape(&pem))],
            )
            .await
            .unwrap();
        assert_eq!(resp.status, 403, "{case}: {}", resp.text());
        assert_eq!(
            resp.message(),
            "client certificate verification failed",
            "{case}"
        );
    }
}

#[test]
fn a_bad_proxy_header_name_is_a_config_error() {
    let proxy = ApiKey::generate();
    let mut setup = Setup::new();
    setup.tls_extra = format!(
        "  proxy:\n    identities:\n      - {}\n    header:\n      cert: \"X Tls Cert\"\n",
        proxy.identity()
    );
    let err = match TestServer::try_start(setup) {
        Ok(_) => panic!("server started with a bad header name"),
        Err(e) => e,
    };
    assert!(err.contains("not a valid HTTP header name"), "{err}");
}
