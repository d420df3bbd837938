//! End-to-end tests of `kes server` through real mTLS connections on
//! 127.0.0.1: authorization, every endpoint's errors, bad input, listing,
//! MinIO's call sequence, log streams, TLS behaviour, reload and shutdown.

use crate::common;

use common::{b64, next_line, unb64, Client, Setup, TestServer};
use kes_core::ApiKey;
use serde_json::json;
use std::time::Duration;

fn policy_setup(app: &ApiKey, allow: &[&str], deny: &[&str]) -> Setup {
    let list = |v: &[&str]| {
        v.iter()
            .map(|p| format!("      - {p}\n"))
            .collect::<String>()
    };
    Setup::new().with(&format!(
        "policy:\n  my-app:\n    allow:\n{}    deny:\n{}    identities:\n      - {}\n",
        list(allow),
        if deny.is_empty() {
            "      []\n".to_string()
        } else {
            list(deny)
        },
        app.identity()
    ))
}

#[tokio::test]
async fn policies_allow_deny_and_admin() {
    let app = ApiKey::generate();
    let stranger = ApiKey::generate();
    let server = TestServer::start(policy_setup(
        &app,
        &[
            "/v1/key/create/my-key*",
            "/v1/key/generate/my-key*",
            "/v1/key/decrypt/my-key*",
            "/v1/key/list/*",
        ],
        &["/v1/key/create/my-key-denied*"],
    ));
    let app_client = server.client(&app);
    let admin = server.admin_client();

    assert_eq!(
        app_client
            .request("POST", "/v1/key/create/my-key-1", None)
            .await
            .status,
        200
    );
    let denied = app_client
        .request("POST", "/v1/key/create/my-key-denied", None)
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.message(), "not authorized: insufficient permissions");
    let other = app_client
        .request("POST", "/v1/key/create/other", None)
        .await;
    assert_eq!(other.status, 403);
    let del = app_client
        .request("DELETE", "/v1/key/delete/my-key-1", None)
        .await;
    assert_eq!(del.status, 403);

    let g = app_client
        .json(
            "POST",
            "/v1/key/generate/my-key-1",
            json!({"context": b64(b"ctx")}),
        )
        .await;
    assert_eq!(g.status, 200);
    let d = app_client
        .json(
            "POST",
            "/v1/key/decrypt/my-key-1",
            json!({"ciphertext": g.json()["ciphertext"], "context": b64(b"ctx")}),
        )
        .await;
    assert_eq!(d.json()["plaintext"], g.json()["plaintext"]);

    // `/v1/key/list` without a slash is checked as `/v1/key/list/`.
    let l = app_client.request("GET", "/v1/key/list", None).await;
    assert_eq!(l.status, 200, "{}", l.text());
    assert_eq!(l.json()["names"], json!(["my-key-1"]));

    // No policy at all: every call but self-describe is refused.
    let s = server.client(&stranger);
    assert_eq!(s.request("GET", "/v1/key/list/*", None).await.status, 403);
    assert_eq!(s.request("GET", "/v1/status", None).await.status, 403);
    let me = s.request("GET", "/v1/identity/self/describe", None).await;
    assert_eq!(me.status, 404);
    assert_eq!(me.message(), "identity does not exist");
    // `/version` needs no policy.
    assert_eq!(s.request("GET", "/version", None).await.status, 200);

    // Self-describe works for a non-admin (a Go KES bug, docs/compatibility.md) in the
    // shape the Go SDK decodes.
    let me = app_client
        .request("GET", "/v1/identity/self/describe", None)
        .await;
    assert_eq!(me.status, 200, "{}", me.text());
    let me = me.json();
    assert_eq!(me["identity"], app.identity().to_string());
    assert_eq!(me["policy"], "my-app");
    assert!(me["allow"].get("/v1/key/create/my-key*").is_some());
    assert!(me["deny"].get("/v1/key/create/my-key-denied*").is_some());

    // The admin may do everything; the admin sees the policy and identity.
    assert_eq!(
        admin
            .request("DELETE", "/v1/key/delete/my-key-1", None)
            .await
            .status,
        200
    );
    let p = admin
        .request("GET", "/v1/policy/read/my-app", None)
        .await
        .json();
    assert_eq!(p["name"], "my-app");
    assert_eq!(p["created_by"], server.setup.admin.identity().to_string());
    let p = admin
        .request("GET", "/v1/policy/describe/my-app", None)
        .await
        .json();
    assert_eq!(p["name"], "my-app");
    assert_eq!(
        admin
            .request("GET", "/v1/policy/describe/nope", None)
            .await
            .message(),
        "policy does not exist"
    );
    assert_eq!(
        admin
            .request("GET", "/v1/policy/list/my*", None)
            .await
            .json()["names"],
        json!(["my-app"])
    );
    let i = admin
        .request(
            "GET",
            &format!("/v1/identity/describe/{}", app.identity()),
            None,
        )
        .await
        .json();
    assert_eq!(i["policy"], "my-app");
    let i = admin
        .request(
            "GET",
            &format!("/v1/identity/describe/{}", stranger.identity()),
            None,
        )
        .await;
    assert_eq!(i.status, 404);
    let ids = admin
        .request("GET", "/v1/identity/list/*", None)
        .await
        .json();
    let mut want = vec![
        app.identity().to_string(),
        server.setup.admin.identity().to_string(),
    ];
    want.sort();
    assert_eq!(ids["identities"], json!(want));

    // Without a client certificate the handshake itself fails.
    assert!(server
        .anonymous_client()
        .try_request("GET", "/version", None)
        .await
        .is_err());
}

#[tokio::test]
async fn skip_auth_routes_and_certificate_errors() {
    let setup = Setup::new()
        .with("api:\n  /v1/status:\n    skip_auth: true\n    timeout: 17s\n  /v1/metrics:\n    skip_auth: true\n");
    let server = TestServer::start(setup);
    let anon = server.anonymous_client();
    let st = anon.request("GET", "/v1/status", None).await;
    assert_eq!(st.status, 200, "{}", st.text());
    assert_eq!(anon.request("GET", "/v1/metrics", None).await.status, 200);
    assert_eq!(anon.request("GET", "/version", None).await.status, 200);
    let k = anon.request("GET", "/v1/key/list/*", None).await;
    assert_eq!(k.status, 400);
    assert_eq!(k.message(), "tls: client certificate is required");
    let api = server
        .admin_client()
        .request("GET", "/v1/api", None)
        .await
        .json();
    let status = api
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["path"] == "/v1/status")
        .unwrap()
        .clone();
    assert_eq!(status["timeout"], 17);

    // Two non-CA certificates: "more than one client certificate".
    let a = kes_core::certgen::new_identity(&Default::default()).unwrap();
    let b = kes_core::certgen::new_identity(&Default::default()).unwrap();
    let two = Client::with_certificate(
        server.addr,
        vec![
            a.certificate.certificate_der.clone(),
            b.certificate.certificate_der.clone(),
        ],
        a.certificate.private_key_der.to_vec(),
        &server.setup.server_cert_der,
    );
    let r = two.request("GET", "/v1/key/list/*", None).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.message(),
        "tls: received more than one client certificate"
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_writes_nothing() {
    let server = TestServer::start(Setup::new());
    let admin = server.admin_client();
    assert_eq!(
        admin.request("POST", "/v1/key/create/k", None).await.status,
        200
    );
    // The store's entries, without its lock file (`.kes-lock`, made by the
    // first delete): what a refused request must not change.
    let entries = || {
        std::fs::read_dir(server.setup.keys_dir())
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != kes_keystore::fs::LOCK_FILE)
            .count()
    };
    let keys_before = entries();

    // (method, path, body, status, message; empty = any message)
    type Case<'a> = (&'a str, String, Option<Vec<u8>>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/key/create/a.b".into(),
            None,
            400,
            "key name 'a.b' is empty, too long or contains invalid characters",
        ),
        (
            "POST",
            format!("/v1/key/create/{}", "a".repeat(81)),
            None,
            400,
            "",
        ),
        ("POST", "/v1/key/create/-a".into(), None, 400, ""),
        (
            "POST",
            "/v1/key/create/".into(),
            None,
            400,
            "key name '' is empty, too long or contains invalid characters",
        ),
        (
            "POST",
            "/v1/key/import/i".into(),
            Some(b"{bad".to_vec()),
            400,
            "invalid import key request body",
        ),
        (
            "POST",
            "/v1/key/import/i".into(),
            Some(br#"{"key":"!!!","cipher":"AES256"}"#.to_vec()),
            400,
            "invalid import key request body",
        ),
        (
            "POST",
            "/v1/key/import/i".into(),
            Some(br#"{"key":"AAAA","cipher":"AES256"}"#.to_vec()),
            406,
            "invalid key size for 'AES256'",
        ),
        (
            "POST",
            "/v1/key/import/i".into(),
            Some(format!(r#"{{"key":"{}","cipher":"DES"}}"#, b64(&[0; 32])).into_bytes()),
            406,
            "algorithm 'DES' is not supported",
        ),
        (
            "POST",
            "/v1/key/import/i".into(),
            Some(format!(r#"{{"key":"{}"}}"#, b64(&[0; 32])).into_bytes()),
            406,
            "algorithm '' is not supported",
        ),
        (
            "POST",
            "/v1/key/generate/k".into(),
            Some(br#"{"context":"not base64"}"#.to_vec()),
            400,
            "invalid request body",
        ),
        (
            "POST",
            "/v1/key/encrypt/k".into(),
            Some(b"[]".to_vec()),
            400,
            "invalid request body",
        ),
        (
            "POST",
            "/v1/key/decrypt/k".into(),
            Some(br#"{"ciphertext":"AAAA"}"#.to_vec()),
            400,
            "decryption failed: ciphertext is not authentic",
        ),
        (
            "POST",
            "/v1/key/decrypt/k".into(),
            Some(br#"{"ciphertext":12}"#.to_vec()),
            400,
            "invalid request body",
        ),
        (
            "PUT",
            "/v1/key/hmac/k".into(),
            Some(b"".to_vec()),
            400,
            "invalid request body",
        ),
        (
            "POST",
            "/v1/key/generate/missing".into(),
            None,
            404,
            "key does not exist",
        ),
        (
            "GET",
            "/v1/key/list/a.b".into(),
            None,
            400,
            "listing pattern 'a.b' is empty, too long or is invalid",
        ),
        // Decoded `..` is cleaned and redirected, as Go's ServeMux does;
        // it never reaches a key store.
        (
            "GET",
            "/v1/key/describe/..%2F..%2Fetc".into(),
            None,
            301,
            "",
        ),
        (
            "GET",
            "/v1/key/describe/a%2Fb".into(),
            None,
            400,
            "key name 'a/b' is empty, too long or contains invalid characters",
        ),
        (
            "DELETE",
            "/v1/key/delete/missing".into(),
            None,
            404,
            "key does not exist",
        ),
        (
            "GET",
            "/v1/key/create/k".into(),
            None,
            405,
            "received method 'GET' expected 'PUT'",
        ),
    ];
    for (method, path, body, status, message) in cases {
        let r = admin.request(method, &path, body.as_deref()).await;
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        if !message.is_empty() {
            assert_eq!(r.message(), message, "{method} {path}");
        }
    }

    // A body over the 1 MB limit is answered like malformed JSON.
    let big = format!(r#"{{"plaintext":"{}"}}"#, b64(&vec![7u8; 800_000]));
    let r = admin
        .request("POST", "/v1/key/encrypt/k", Some(big.as_bytes()))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.message(), "invalid request body");
    // A body just under the limit works.
    let ok = format!(r#"{{"plaintext":"{}"}}"#, b64(&vec![7u8; 700_000]));
    let r = admin
        .request("POST", "/v1/key/encrypt/k", Some(ok.as_bytes()))
        .await;
    assert_eq!(r.status, 200);

    // Unknown paths, unclean paths.
    let r = admin.request("GET", "/v1/nope", None).await;
    assert_eq!((r.status, r.text().as_str()), (404, "404 page not found\n"));
    let r = admin.request("GET", "/v1/key/../status", None).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location").unwrap(), "/v1/status");

    // Nothing was written, the existing key is intact.
    assert_eq!(entries(), keys_before);
    assert_eq!(
        admin
            .request("GET", "/v1/key/describe/k", None)
            .await
            .status,
        200
    );
    // The server is still alive and well.
    assert_eq!(admin.request("GET", "/v1/ready", None).await.status, 200);
}

#[tokio::test]
#[ignore = "slow: scripts/test runs it"]
async fn listing_thousands_of_keys() {
    let setup = Setup::new();
    std::fs::create_dir_all(setup.keys_dir()).unwrap();
    // Write the key files as any KES (Go or ours) would have written them.
    let value = kes_core::KeyVersion::generate(kes_core::KeyAlgorithm::Aes256, "test")
        .encode()
        .unwrap();
    let mut names: Vec<String> = (0..3000).map(|i| format!("key-{i:05}")).collect();
    names.push("other".into());
    for n in &names {
        std::fs::write(setup.keys_dir().join(n), &value).unwrap();
    }
    let server = TestServer::start(setup);
    let admin = server.admin_client();

    // One response with every match by default.
    let all = admin.request("GET", "/v1/key/list/*", None).await.json();
    assert_eq!(all["names"].as_array().unwrap().len(), 3001);
    assert!(all.get("continue_at").is_none());
    let prefixed = admin
        .request("GET", "/v1/key/list/key-*", None)
        .await
        .json();
    assert_eq!(prefixed["names"].as_array().unwrap().len(), 3000);

    // Explicit pages (our SDK's way) see every key exactly once.
    let mut seen = Vec::new();
    let mut next = String::new();
    loop {
        let path = if next.is_empty() {
            "/v1/key/list/key-*?limit=1024".to_string()
        } else {
            format!("/v1/key/list/key-*?limit=1024&continue={next}")
        };
        let page = admin.request("GET", &path, None).await.json();
        for n in page["names"].as_array().unwrap() {
            seen.push(n.as_str().unwrap().to_string());
        }
        match page.get("continue_at").and_then(|c| c.as_str()) {
            Some(c) if !c.is_empty() => next = c.to_string(),
            _ => break,
        }
    }
    names.pop();
    assert_eq!(seen, names);
}

/// MinIO's calls (docs/minio.md) in the order MinIO makes them.
#[tokio::test]
async fn minio_call_sequence() {
    let minio = ApiKey::generate();
    let server = TestServer::start(Setup::new().with(&format!(
        "policy:\n  minio:\n    allow:\n      - /v1/key/create/*\n      - /v1/key/generate/*\n      - /v1/key/decrypt/*\n      - /v1/key/describe/*\n      - /v1/key/hmac/*\n      - /v1/key/list/*\n      - /v1/status\n      - /v1/api\n    identities:\n      - {}\n",
        minio.identity()
    )));
    let c = server.client(&minio);
    // Startup: generate with the default key, 404 → create.
    let r = c
        .json(
            "POST",
            "/v1/key/generate/minio-default",
            json!({"context": "e30="}),
        )
        .await;
    assert_eq!(
        (r.status, r.message().as_str()),
        (404, "key does not exist")
    );
    assert_eq!(
        c.request("POST", "/v1/key/create/minio-default", None)
            .await
            .status,
        200
    );
    let r = c
        .request("POST", "/v1/key/create/minio-default", None)
        .await;
    assert_eq!(
        (r.status, r.message().as_str()),
        (400, "key already exists")
    );
    // Periodic describe.
    assert_eq!(
        c.request("GET", "/v1/key/describe/minio-default", None)
            .await
            .status,
        200
    );
    // SSE-S3 write and read.
    let ctx = b64(br#"{"bucket":"bucket/object"}"#);
    let g = c
        .json(
            "POST",
            "/v1/key/generate/minio-default",
            json!({"context": ctx}),
        )
        .await
        .json();
    let d = c
        .json(
            "POST",
            "/v1/key/decrypt/minio-default",
            json!({"ciphertext": g["ciphertext"], "context": ctx}),
        )
        .await;
    assert_eq!(d.json()["plaintext"], g["plaintext"]);
    // Health check and root credential derivation (HMAC, deterministic).
    assert_eq!(
        c.json(
            "POST",
            "/v1/key/generate/minio-default",
            json!({"context": b64(br#"{"healthcheck":""}"#)})
        )
        .await
        .status,
        200
    );
    let h1 = c
        .json(
            "PUT",
            "/v1/key/hmac/minio-default",
            json!({"message": b64(b"root access key")}),
        )
        .await
        .json();
    let h2 = c
        .json(
            "PUT",
            "/v1/key/hmac/minio-default",
            json!({"message": b64(b"root access key")}),
        )
        .await
        .json();
    let h3 = c
        .json(
            "PUT",
            "/v1/key/hmac/minio-default",
            json!({"message": b64(b"root secret key")}),
        )
        .await
        .json();
    assert_eq!(h1, h2);
    assert_ne!(h1, h3);
    assert_eq!(unb64(h1["hmac"].as_str().unwrap()).len(), 32);
    // Admin API calls.
    assert_eq!(
        c.request("GET", "/v1/key/list/", None).await.json()["names"],
        json!(["minio-default"])
    );
    assert_eq!(c.request("GET", "/v1/status", None).await.status, 200);
    assert_eq!(c.request("GET", "/version", None).await.status, 200);
    assert_eq!(c.request("GET", "/v1/api", None).await.status, 200);
    // Legacy bulk decrypt (old MinIO).
    let b = c
        .json(
            "POST",
            "/v1/key/bulk/decrypt/minio-default",
            json!([{"ciphertext": g["ciphertext"], "context": ctx}]),
        )
        .await;
    assert_eq!(b.status, 403, "not in MinIO's allow list: {}", b.text());
    let b = server
        .admin_client()
        .json(
            "POST",
            "/v1/key/bulk/decrypt/minio-default",
            json!([{"ciphertext": g["ciphertext"], "context": ctx}, {"ciphertext": g["ciphertext"], "context": ctx}]),
        )
        .await;
    assert_eq!(b.status, 200, "{}", b.text());
    assert_eq!(b.json()[1]["plaintext"], g["plaintext"]);
}

#[tokio::test]
async fn audit_and_error_logs_stream() {
    let server = TestServer::start(Setup::new());
    let admin = server.admin_client();
    let mut conn = admin.connect().await.unwrap();
    let resp = conn.stream("GET", "/v1/log/audit").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    // Every API call is audited, reads included.
    admin.request("POST", "/v1/key/create/audited", None).await;
    admin.request("GET", "/v1/key/describe/audited", None).await;
    let mut paths = Vec::new();
    while paths.len() < 2 {
        let line = tokio::time::timeout(Duration::from_secs(10), next_line(&mut body, &mut buf))
            .await
            .expect("audit event in time")
            .expect("stream open");
        let ev: serde_json::Value = serde_json::from_str(&line).unwrap();
        // The subscription itself is an audited call, too.
        if ev["request"]["path"] == "/v1/log/audit" {
            continue;
        }
        assert_eq!(
            ev["request"]["identity"],
            server.setup.admin.identity().to_string()
        );
        assert_eq!(ev["request"]["ip"], "127.0.0.1");
        assert_eq!(ev["response"]["code"], 200);
        assert!(ev["response"]["time"].is_u64());
        paths.push(ev["request"]["path"].as_str().unwrap().to_string());
    }
    assert_eq!(
        paths,
        ["/v1/key/create/audited", "/v1/key/describe/audited"]
    );

    // The error log streams, too: a TLS handshake failure is logged.
    let mut conn = admin.connect().await.unwrap();
    let resp = conn.stream("GET", "/v1/log/error").await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut buf = Vec::new();
    let _ = server
        .anonymous_client()
        .try_request("GET", "/version", None)
        .await;
    let line = tokio::time::timeout(Duration::from_secs(10), next_line(&mut body, &mut buf))
        .await
        .expect("error event in time")
        .unwrap();
    let ev: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(
        ev["message"]
            .as_str()
            .unwrap()
            .contains("TLS handshake error"),
        "{line}"
    );

    // Audit lines went to stdout, never with key material.
    let stdout = server.stdout();
    assert!(
        stdout.contains("msg=\"secret key 'audited' created\""),
        "{stdout}"
    );
}

#[tokio::test]
async fn metrics_count_requests() {
    let server = TestServer::start(Setup::new());
    let admin = server.admin_client();
    admin.request("POST", "/v1/key/create/m", None).await;
    admin.request("GET", "/v1/key/describe/nope", None).await;
    let text = admin.request("GET", "/v1/metrics", None).await.text();
    assert!(
        text.contains("kes_http_request_success{code=\"200\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("kes_http_request_error{code=\"404\"} 1\n"),
        "{text}"
    );
    assert!(!text.contains("kes_keycache_hits"));
    // Every family but the three request counters has exactly one series
    // (the Go SDK rejects anything else).
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        if !name.starts_with("kes_http_request_") && !name.starts_with("kes_http_response_time") {
            assert_eq!(
                text.lines()
                    .filter(|l| l.starts_with(&format!("{name} ")))
                    .count(),
                1,
                "{name}"
            );
        }
    }
    let ext = admin
        .request("GET", "/v1/metrics?extended=true", None)
        .await
        .text();
    assert!(ext.contains("kes_keycache_hits"), "{ext}");
    assert!(ext.contains("kes_http_route_response_time_count{route=\"/v1/key/create/\"}"));
}

#[tokio::test]
async fn resumed_sessions_keep_the_identity() {
    let server = TestServer::start(Setup::new());
    let admin = server.admin_client();
    let config = admin.tls_config();
    for i in 0..3 {
        let tls = raw_tls(&server, &config).await;
        let kind = tls.get_ref().1.handshake_kind();
        if i > 0 {
            assert_eq!(kind, Some(rustls::HandshakeKind::Resumed), "connection {i}");
        }
        drop(tls);
        let me = admin
            .request("GET", "/v1/identity/self/describe", None)
            .await
            .json();
        assert_eq!(me["identity"], server.setup.admin.identity().to_string());
        assert_eq!(me["admin"], true);
    }
}

/// A bare TLS connection to `server` with `config` (no HTTP client on
/// it), for tests that write raw bytes.
async fn raw_tls(
    server: &TestServer,
    config: &std::sync::Arc<rustls::ClientConfig>,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap()
}

#[tokio::test]
#[ignore = "slow: scripts/test runs it"]
async fn slow_headers_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(Setup::new());
    let mut tls = raw_tls(&server, &server.admin_client().tls_config()).await;
    tls.write_all(b"GET /version HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    // The server gives up on the headers after 5 s and closes.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tls.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection still open after 15 s");
    assert!(!String::from_utf8_lossy(&buf).contains("200 OK"));
    // Others are served meanwhile and afterwards.
    assert_eq!(
        server
            .admin_client()
            .request("GET", "/version", None)
            .await
            .status,
        200
    );
}

/// A known caller's keep-alive connection stays open past the read-header
/// timeout while it waits for its next request (hyper's header timer alone
/// closed it after 5 s, and the next request failed with "channel closed").
#[tokio::test]
#[ignore = "slow: scripts/test runs it"]
async fn idle_keep_alive_outlives_the_read_header_timeout() {
    let server = TestServer::start(Setup::new());
    let mut conn = server.admin_client().connect().await.unwrap();
    assert_eq!(conn.request("GET", "/version", None).await.status, 200);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let again = conn.try_request("GET", "/version", None).await;
    assert_eq!(
        again.map(|r| r.status).map_err(|e| e.to_string()),
        Ok(200),
        "the idle connection of the admin was closed"
    );
}

/// The read-header deadline still holds for a connection's later requests:
/// it runs from the first byte of the head, not from the last request.
#[tokio::test]
#[ignore = "slow: scripts/test runs it"]
async fn slow_headers_of_a_second_request_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(Setup::new());
    let mut tls = raw_tls(&server, &server.admin_client().tls_config()).await;
    tls.write_all(b"GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = tls.read(&mut first).await.unwrap();
    assert!(
        String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    // Idle for longer than the read-header timeout: still open.
    tokio::time::sleep(Duration::from_secs(6)).await;
    tls.write_all(b"GET /version HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    tls.flush().await.unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tls.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "connection still open 15 s into the head");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "closed after {:?}, before the head's 5 s were up",
        started.elapsed()
    );
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
}

#[tokio::test]
async fn sighup_reloads_under_load_without_failures() {
    let app = ApiKey::generate();
    let server = TestServer::start(Setup::new());
    let admin = server.admin_client();
    assert_eq!(
        admin
            .request("POST", "/v1/key/create/hot", None)
            .await
            .status,
        200
    );
    assert_eq!(
        server
            .client(&app)
            .request("GET", "/v1/key/describe/hot", None)
            .await
            .status,
        403
    );

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let admin = admin.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            let mut conn = admin.connect().await.unwrap();
            let (mut ok, mut failed) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match conn
                    .try_request(
                        "POST",
                        "/v1/key/generate/hot",
                        Some(br#"{"context":"e30="}"#),
                    )
                    .await
                {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                    Err(e) => {
                        failed.push(e.to_string());
                        conn = admin.connect().await.unwrap();
                    }
                }
            }
            (ok, failed)
        }));
    }
    // Give the app a policy and reload, several times, under load.
    let mut setup_text = server.setup.config();
    setup_text.push_str(&format!(
        "policy:\n  app:\n    allow:\n      - /v1/key/describe/*\n    identities:\n      - {}\n",
        app.identity()
    ));
    std::fs::write(&server.config_path, setup_text).unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        server.signal("HUP");
    }
    // The load runs on until the server has done all three reloads.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while server.stderr().matches("configuration reloaded").count() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "three reloads did not finish: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for w in workers {
        let (ok, failed) = w.await.unwrap();
        assert!(
            failed.is_empty(),
            "failed requests during reload: {failed:?}"
        );
        total += ok;
    }
    assert!(total > 20, "only {total} requests");
    let r = server
        .client(&app)
        .request("GET", "/v1/key/describe/hot", None)
        .await;
    assert_eq!(r.status, 200, "policy not reloaded: {}", r.text());
}

#[tokio::test]
async fn sigterm_stops_gracefully() {
    let mut server = TestServer::start(Setup::new());
    assert_eq!(
        server
            .admin_client()
            .request("GET", "/version", None)
            .await
            .status,
        200
    );
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(15)).expect("server exits");
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn tls_auth_on_verifies_client_chains() {
    let mut setup = Setup::new();
    // The admin's self-signed certificate is the only trusted CA: it
    // verifies as itself, any other certificate does not.
    let ca_path = setup.dir.path().join("ca.crt");
    let admin_cert = setup.admin.client_certificate().unwrap();
    std::fs::write(
        &ca_path,
        kes_core::pem::encode("CERTIFICATE", &admin_cert.certificate_der),
    )
    .unwrap();
    setup.tls_extra = format!("  auth: on\n  ca: {}\n", ca_path.display());
    let server = TestServer::start(setup);
    let ok = server
        .admin_client()
        .request("GET", "/v1/status", None)
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    let stranger = ApiKey::generate();
    assert!(server
        .client(&stranger)
        .try_request("GET", "/version", None)
        .await
        .is_err());
}

#[test]
fn config_errors_stop_the_server_with_a_clear_message() {
    let base = Setup::new();
    let good = base.config();
    let cases: Vec<(String, &str)> = vec![
        (
            good.replace("admin:\n  identity:", "admin:\n  nobody:"),
            "admin identity",
        ),
        (good.replace("tls:\n", "tls:\n  auth: maybe\n"), "auth"),
        (
            good.replace(
                "address: 127.0.0.1:0",
                "address: ${KES_TEST_UNSET_VARIABLE}",
            ),
            "KES_TEST_UNSET_VARIABLE",
        ),
        (
            good[..good.find("keystore:").unwrap()].to_string(),
            "no keystore specified",
        ),
        (good.replace("server.crt", "missing.crt"), "missing.crt"),
        (
            good.replace("keystore:", "cache:\n  expiry:\n    any: -5m\nkeystore:"),
            "cache.expiry.any",
        ),
        (
            format!(
                "{good}policy:\n  p:\n    identities:\n      - {}\n",
                base.admin.identity()
            ),
            "admin",
        ),
    ];
    for (config, needle) in cases {
        let setup = Setup {
            raw: Some(config.clone()),
            ..Setup::new()
        };
        let err = match TestServer::try_start(setup) {
            Ok(_) => panic!("server started with a bad config:\n{config}"),
            Err(e) => e,
        };
        assert!(err.contains(needle), "expected '{needle}' in: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[tokio::test]
async fn json_audit_log_to_a_file() {
    let mut setup = Setup::new();
    let audit = setup.dir.path().join("audit.log");
    setup = setup.with(&format!(
        "log:\n  format: json\n  audit_file: {}\n",
        audit.display()
    ));
    let server = TestServer::start(setup);
    let admin = server.admin_client();
    admin.request("POST", "/v1/key/create/filed", None).await;
    admin
        .json("POST", "/v1/key/generate/filed", json!({"context": "e30="}))
        .await;
    let mut lines = Vec::new();
    for _ in 0..50 {
        lines = std::fs::read_to_string(&audit)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect();
        if lines.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    let ev: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    assert_eq!(ev["request"]["path"], "/v1/key/generate/filed");
    assert_eq!(ev["response"]["code"], 200);
    // Nothing secret: the DEK plaintext is not in the audit log.
    assert!(!lines[1].contains("plaintext"));
    assert!(!server.stdout().contains("/v1/key/generate/filed"));
}

/// HTTP/2 (negotiated with ALPN) serves the API, HEAD included.
#[tokio::test]
async fn http2_requests() {
    use http_body_util::{BodyExt, Full};
    let server = TestServer::start(Setup::new());
    let client = Client::with_alpn(
        server.addr,
        Some(&server.setup.admin),
        &server.setup.server_cert_der,
        vec![b"h2".to_vec()],
    );
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(client.tls_config())
        .connect(
            rustls::pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for (method, path, status) in [
        ("POST", "/v1/key/create/h2", 200),
        ("GET", "/v1/key/describe/h2", 200),
        ("HEAD", "/version", 405),
        ("GET", "/version", 200),
    ] {
        let req = http::Request::builder()
            .method(method)
            .uri(format!("https://localhost{path}"))
            .body(Full::new(bytes::Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        if method == "HEAD" {
            assert!(body.is_empty());
        }
    }
}

/// `tls.password` decrypts a legacy encrypted PEM key; without it the
/// server refuses to start with the Go KES's message.
#[tokio::test]
async fn encrypted_server_key() {
    let mut setup = Setup::new();
    let pkcs8 = {
        let pem = std::fs::read(&setup.server_key).unwrap();
        match kes_core::pem::parse_private_key(&pem, None).unwrap() {
            rustls::pki_types::PrivateKeyDer::Pkcs8(k) => k.secret_pkcs8_der().to_vec(),
            _ => panic!("expected PKCS#8"),
        }
    };
    let encrypted = kes_core::pem::encrypt_private_key(&pkcs8, b"correct horse").unwrap();
    std::fs::write(&setup.server_key, encrypted.as_bytes()).unwrap();

    // The same config (and key file), without `tls.password`.
    let without = Setup {
        raw: Some(setup.config()),
        ..Setup::new()
    };
    let err = TestServer::try_start(without)
        .err()
        .expect("no password → no start");
    assert!(
        err.contains("private key is encrypted: password required"),
        "{err}"
    );

    setup.tls_extra = "  password: ${KES_TEST_TLS_PASSWORD}\n".into();
    setup
        .env
        .push(("KES_TEST_TLS_PASSWORD".into(), "correct horse".into()));
    let server = TestServer::start(setup);
    assert_eq!(
        server
            .admin_client()
            .request("GET", "/v1/status", None)
            .await
            .status,
        200
    );
    assert!(!server.stderr().contains("correct horse"));
}
