//! Hostile clients against the real server over real mTLS on loopback:
//! forged certificate chains, policy bypasses, stale sessions, clients that
//! hold connections, bodies or responses. docs/security.md describes what
//! each test guards.

use crate::common;

/// Budgets per identity and per connection (issue 25 A, C.8).
mod budgets;
mod bulk_decrypt;
mod listings;

use common::{Resp, Setup, TestServer};
use http_body_util::Full;
use kes_core::ApiKey;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, HandshakeKind, SupportedProtocolVersion};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// A client TLS configuration presenting `chain` with `key`.
fn tls_config(
    server: &TestServer,
    chain: Vec<Vec<u8>>,
    key: Vec<u8>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(server.setup.server_cert_der.clone()))
        .unwrap();
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            chain.into_iter().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(key.into()),
        )
        .expect("client certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// One HTTP/1.1 request on a new connection; also says whether the TLS
/// session was resumed.
async fn request(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(Resp, HandshakeKind)> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(bytes::Bytes::copy_from_slice(body)))
        .unwrap();
    Ok((kes_testkit::client::send(&mut sender, req).await?, kind))
}

/// An attacker's own self-signed CA certificate (CA:TRUE) and its key.
fn attacker_ca() -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["attacker".into()]).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (params.self_signed(&key).unwrap(), key)
}

/// A CA:FALSE certificate for `subject`'s public key, issued by `issuer`.
fn leaf_for(
    subject: &KeyPair,
    issuer: &rcgen::Certificate,
    issuer_key: &KeyPair,
    validity: Option<Duration>,
) -> Vec<u8> {
    let mut params = CertificateParams::new(vec!["client".into()]).unwrap();
    params.is_ca = IsCa::ExplicitNoCa;
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    if let Some(validity) = validity {
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + validity;
    }
    params
        .signed_by(subject, issuer, issuer_key)
        .unwrap()
        .der()
        .to_vec()
}

/// The key pair behind an API key (its client certificate's key).
fn key_pair_of(key: &ApiKey) -> KeyPair {
    let cert = key.client_certificate().unwrap();
    KeyPair::try_from(cert.private_key_der.to_vec().as_slice()).unwrap()
}

#[tokio::test]
async fn forged_chains_do_not_become_the_admin_or_a_policy_identity() {
    let victim = ApiKey::generate();
    let setup = Setup::new().with(&format!(
        "policy:\n  minio:\n    allow:\n      - /v1/key/*\n      - /v1/identity/self/describe\n    identities:\n      - {}\n",
        victim.identity()
    ));
    let server = TestServer::start(setup);
    let admin = &server.setup.admin;
    let (ca, ca_key) = attacker_ca();
    let ca_der = ca.der().to_vec();

    for (who, target) in [("admin", admin), ("policy identity", &victim)] {
        let real_cert = target.client_certificate().unwrap().certificate_der;
        let forged = leaf_for(&key_pair_of(target), &ca, &ca_key, None);
        for (chain_name, chain) in [
            (
                "forged leaf behind the attacker's CA",
                vec![ca_der.clone(), forged],
            ),
            (
                "real certificate behind the attacker's CA",
                vec![ca_der.clone(), real_cert],
            ),
        ] {
            for (version, versions) in [("TLS 1.2", TLS12), ("TLS 1.3", TLS13)] {
                let what = format!("{who}, {chain_name}, {version}");
                let config = tls_config(&server, chain.clone(), ca_key.serialize_der(), versions);
                let (resp, _) = request(
                    &config,
                    server.addr,
                    "GET",
                    "/v1/identity/self/describe",
                    b"",
                )
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(resp.status, 400, "{what}: {}", resp.text());
                assert_eq!(
                    resp.message(),
                    "tls: client certificate is required",
                    "{what}"
                );
                let name = format!("stolen-{}", version.replace([' ', '.'], ""));
                let (resp, _) = request(
                    &config,
                    server.addr,
                    "POST",
                    &format!("/v1/key/create/{name}"),
                    b"",
                )
                .await
                .unwrap();
                assert_eq!(resp.status, 400, "{what}: {}", resp.text());
                let check = server
                    .admin_client()
                    .request("GET", &format!("/v1/key/describe/{name}"), None)
                    .await;
                assert_eq!(check.status, 404, "{what}: the key was created");
            }
        }
    }

    // Honest chains still work: the leaf alone, and the leaf followed by
    // the CA that issued it.
    let (honest_ca, honest_ca_key) = attacker_ca();
    let admin_pair = key_pair_of(admin);
    let leaf = leaf_for(&admin_pair, &honest_ca, &honest_ca_key, None);
    for (chain_name, chain) in [
        ("[leaf]", vec![leaf.clone()]),
        ("[leaf, CA]", vec![leaf.clone(), honest_ca.der().to_vec()]),
    ] {
        for versions in [TLS12, TLS13] {
            let config = tls_config(&server, chain.clone(), admin_pair.serialize_der(), versions);
            let (resp, _) = request(
                &config,
                server.addr,
                "GET",
                "/v1/identity/self/describe",
                b"",
            )
            .await
            .unwrap();
            assert_eq!(resp.status, 200, "{chain_name}: {}", resp.text());
            assert_eq!(resp.json()["admin"], true, "{chain_name}");
        }
    }

    // Two non-CA certificates: the Go KES's error, also from self-describe.
    let other = ApiKey::generate()
        .client_certificate()
        .unwrap()
        .certificate_der;
    let config = tls_config(
        &server,
        vec![leaf, other],
        admin_pair.serialize_der(),
        TLS13,
    );
    let (resp, _) = request(
        &config,
        server.addr,
        "GET",
        "/v1/identity/self/describe",
        b"",
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 400);
    assert_eq!(
        resp.message(),
        "tls: received more than one client certificate"
    );
}

#[tokio::test]
async fn bulk_decrypt_obeys_the_decrypt_rules() {
    let denied = ApiKey::generate();
    let bulk_only = ApiKey::generate();
    let both = ApiKey::generate();
    let setup = Setup::new().with(&format!(
        "policy:\n  \
           deny-decrypt:\n    allow:\n      - /v1/key/*\n    deny:\n      - /v1/key/decrypt/*\n    identities:\n      - {}\n  \
           bulk-only:\n    allow:\n      - /v1/key/bulk/decrypt/*\n    identities:\n      - {}\n  \
           both:\n    allow:\n      - /v1/key/bulk/decrypt/*\n      - /v1/key/decrypt/k\n    identities:\n      - {}\n",
        denied.identity(),
        bulk_only.identity(),
        both.identity()
    ));
    let server = TestServer::start(setup);
    let admin = server.admin_client();
    assert_eq!(
        admin.request("POST", "/v1/key/create/k", None).await.status,
        200
    );
    let dek = admin
        .request("POST", "/v1/key/generate/k", None)
        .await
        .json();
    let ciphertext = dek["ciphertext"].as_str().unwrap().to_string();
    let bulk = serde_json::to_vec(&serde_json::json!([{ "ciphertext": ciphertext }])).unwrap();
    let single = serde_json::to_vec(&serde_json::json!({ "ciphertext": ciphertext })).unwrap();

    let c = server.client(&denied);
    assert_eq!(
        c.request("POST", "/v1/key/decrypt/k", Some(&single))
            .await
            .status,
        403
    );
    for method in ["POST", "PUT"] {
        let resp = c
            .request(method, "/v1/key/bulk/decrypt/k", Some(&bulk))
            .await;
        assert_eq!(resp.status, 403, "{method}: {}", resp.text());
        assert!(!resp.text().contains("plaintext"));
    }
    let resp = server
        .client(&bulk_only)
        .request("POST", "/v1/key/bulk/decrypt/k", Some(&bulk))
        .await;
    assert_eq!(resp.status, 403, "{}", resp.text());

    let resp = server
        .client(&both)
        .request("POST", "/v1/key/bulk/decrypt/k", Some(&bulk))
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()[0]["plaintext"], dek["plaintext"]);
}

#[tokio::test]
#[ignore = "slow: scripts/test runs it"]
async fn resumed_sessions_are_checked_like_full_handshakes() {
    let mut setup = Setup::new();
    let (ca, ca_key) = attacker_ca();
    let ca_path = setup.dir.path().join("ca.crt");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    setup.tls_extra = format!("  auth: on\n  ca: {}\n", ca_path.display());
    let admin_pair = key_pair_of(&setup.admin);
    let server = TestServer::start(setup);

    let lifetime = Duration::from_secs(4);
    let leaf = leaf_for(&admin_pair, &ca, &ca_key, Some(lifetime));
    let issued = Instant::now();
    for (version, versions) in [("TLS 1.2", TLS12), ("TLS 1.3", TLS13)] {
        let config = tls_config(
            &server,
            vec![leaf.clone()],
            admin_pair.serialize_der(),
            versions,
        );
        let (resp, kind) = request(
            &config,
            server.addr,
            "GET",
            "/v1/identity/self/describe",
            b"",
        )
        .await
        .unwrap();
        assert_eq!((resp.status, kind), (200, HandshakeKind::Full), "{version}");
        // Resumption works while the certificate is valid, so the refusal
        // below is about the certificate, not about resumption.
        let (resp, kind) = request(
            &config,
            server.addr,
            "GET",
            "/v1/identity/self/describe",
            b"",
        )
        .await
        .unwrap();
        assert_eq!(
            (resp.status, kind),
            (200, HandshakeKind::Resumed),
            "{version}"
        );
    }
    let configs: Vec<_> = [TLS12, TLS13]
        .into_iter()
        .map(|v| {
            let config = tls_config(&server, vec![leaf.clone()], admin_pair.serialize_der(), v);
            (v, config)
        })
        .collect();
    for (_, config) in &configs {
        // A ticket for each version, issued while the certificate is valid.
        let (resp, _) = request(config, server.addr, "GET", "/version", b"")
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
    }
    tokio::time::sleep((lifetime + Duration::from_secs(2)).saturating_sub(issued.elapsed())).await;
    for (versions, config) in &configs {
        let outcome = request(
            config,
            server.addr,
            "GET",
            "/v1/identity/self/describe",
            b"",
        )
        .await;
        assert!(
            outcome.is_err(),
            "{:?}: an expired certificate resumed its session: {:?}",
            versions[0].version,
            outcome.map(|(r, k)| (r.status, k))
        );
    }
    // A full handshake with the expired certificate is refused too.
    let fresh = tls_config(&server, vec![leaf], admin_pair.serialize_der(), TLS13);
    assert!(request(&fresh, server.addr, "GET", "/version", b"")
        .await
        .is_err());
}

#[tokio::test]
async fn the_server_keeps_no_session_state_and_refuses_long_chains() {
    let server = TestServer::start(Setup::new());
    let admin = &server.setup.admin;
    let cert = admin.client_certificate().unwrap();

    // TLS 1.2 with session IDs only (no tickets): a stateful session cache
    // would resume the second connection.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(server.setup.server_cert_der.clone()))
        .unwrap();
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(TLS12)
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(cert.certificate_der.clone())],
            PrivateKeyDer::Pkcs8(cert.private_key_der.to_vec().into()),
        )
        .unwrap();
    config.resumption = rustls::client::Resumption::in_memory_sessions(16)
        .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
    let config = Arc::new(config);
    for _ in 0..2 {
        let (resp, kind) = request(&config, server.addr, "GET", "/version", b"")
            .await
            .unwrap();
        assert_eq!((resp.status, kind), (200, HandshakeKind::Full));
    }

    // Five certificates: more than any honest client sends.
    let (ca, ca_key) = attacker_ca();
    let pair = key_pair_of(admin);
    let leaf = leaf_for(&pair, &ca, &ca_key, None);
    let mut chain = vec![leaf];
    for _ in 0..4 {
        chain.push(ca.der().to_vec());
    }
    let config = tls_config(&server, chain, pair.serialize_der(), TLS13);
    assert!(request(&config, server.addr, "GET", "/version", b"")
        .await
        .is_err());
}

/// The TLS configuration of an HTTP/2 client (ALPN `h2`, TLS 1.3) with
/// the certificate of `key`.
fn h2_tls(server: &TestServer, key: &ApiKey) -> Arc<ClientConfig> {
    let cert = key.client_certificate().unwrap();
    let mut config = (*tls_config(
        server,
        vec![cert.certificate_der.clone()],
        cert.private_key_der.to_vec(),
        TLS13,
    ))
    .clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// Opens a TLS connection and returns it without sending anything.
async fn connect_tls(
    config: &Arc<ClientConfig>,
    addr: SocketAddr,
    from: Option<std::net::IpAddr>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let tcp = socket.connect(addr).await?;
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

fn admin_config(server: &TestServer) -> Arc<ClientConfig> {
    let cert = server.setup.admin.client_certificate().unwrap();
    tls_config(
        server,
        vec![cert.certificate_der.clone()],
        cert.private_key_der.to_vec(),
        TLS13,
    )
}

#[tokio::test]
#[ignore = "slow: scripts/test runs it"]
async fn silent_and_slow_clients_are_cut_off() {
    let setup = Setup::new().with("api:\n  /v1/key/encrypt/:\n    timeout: 2s\n");
    let server = TestServer::start(setup);
    let config = admin_config(&server);

    // Handshake, then silence: closed after the first-request timeout
    // (5 s from the connection's start), not after the idle timeout.
    let started = Instant::now();
    let mut silent = connect_tls(&config, server.addr, None).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf)).await;
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "still open after {waited:?}"
    );
    assert!(
        waited >= Duration::from_secs(4),
        "closed too early: {waited:?}"
    );

    // A body announced as 100 bytes of which 1 arrives: answered within
    // the route's timeout (2 s here), not held for ever.
    assert_eq!(
        server
            .admin_client()
            .request("POST", "/v1/key/create/k", None)
            .await
            .status,
        200
    );
    let mut slow = connect_tls(&config, server.addr, None).await.unwrap();
    slow.write_all(
        b"POST /v1/key/encrypt/k HTTP/1.1\r\nhost: localhost\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&answer).contains("request timed out") {
        match tokio::time::timeout(Duration::from_secs(8), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(6), "held for {waited:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "{answer}"
    );
}

#[tokio::test]
async fn idle_strangers_from_one_address_cannot_lock_out_the_admin() {
    let mut setup = Setup::new();
    setup.nofile = Some(256);
    let server = TestServer::start(setup);
    let stranger = ApiKey::generate().client_certificate().unwrap();
    let stranger = tls_config(
        &server,
        vec![stranger.certificate_der.clone()],
        stranger.private_key_der.to_vec(),
        TLS13,
    );
    let from: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let addr = server.addr;
    let mut tasks = Vec::new();
    let (hold_tx, hold_rx) = tokio::sync::watch::channel(false);
    for _ in 0..500 {
        let stranger = stranger.clone();
        let mut hold = hold_rx.clone();
        tasks.push(tokio::spawn(async move {
            let conn = tokio::time::timeout(
                Duration::from_secs(10),
                connect_tls(&stranger, addr, Some(from)),
            )
            .await;
            let _ = hold.changed().await;
            drop(conn);
        }));
    }
    // Let the strangers' connections pile up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let (resp, _) = tokio::time::timeout(
        Duration::from_secs(2),
        request(&admin_config(&server), addr, "GET", "/v1/status", b""),
    )
    .await
    .expect("the admin waited more than 2 s")
    .expect("the admin's request failed");
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert!(started.elapsed() < Duration::from_secs(2));
    let _ = hold_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    assert!(
        server.stderr().contains("connection limit reached"),
        "{}",
        server.stderr()
    );
}

#[tokio::test]
#[ignore = "slow: scripts/test runs it"]
async fn a_response_the_client_does_not_take_is_dropped_at_its_deadline() {
    let server = TestServer::start(Setup::new());
    let admin = server.admin_client();
    assert_eq!(
        admin.request("POST", "/v1/key/create/k", None).await.status,
        200
    );

    // HTTP/2 with a flow-control window of 0: the server can send headers
    // but no byte of the body.
    let tls = connect_tls(&h2_tls(&server, &server.setup.admin), server.addr, None)
        .await
        .unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tls)
        .await
        .unwrap();
    let started = Instant::now();
    let driver = tokio::spawn(connection);
    let plaintext = vec![b'x'; 700_000];
    let body =
        serde_json::to_vec(&serde_json::json!({ "plaintext": common::b64(&plaintext) })).unwrap();
    let mut client = client.ready().await.unwrap();
    let mut streams = Vec::new();
    for _ in 0..4 {
        let req = http::Request::builder()
            .method("POST")
            .uri(format!(
                "https://localhost:{}/v1/key/encrypt/k",
                server.addr.port()
            ))
            .body(())
            .unwrap();
        let (resp, mut send) = client.send_request(req, false).unwrap();
        send.reserve_capacity(body.len());
        send.send_data(bytes::Bytes::from(body.clone()), true)
            .unwrap();
        streams.push(resp);
        client = client.ready().await.unwrap();
    }
    // The connection ends once the first response misses its 15 s deadline.
    let ended = tokio::time::timeout(Duration::from_secs(30), driver).await;
    let waited = started.elapsed();
    assert!(ended.is_ok(), "the connection was held for {waited:?}");
    assert!(waited >= Duration::from_secs(14), "closed after {waited:?}");
    // The server is fine.
    assert_eq!(admin.request("GET", "/v1/status", None).await.status, 200);
}

#[tokio::test]
async fn redirects_never_point_to_another_host() {
    let server = TestServer::start(Setup::new());
    let admin = server.admin_client();
    for (path, location) in [
        ("/./%5Cevil.example/x", "/%5Cevil.example/x"),
        ("/.//evil.example/x", "/evil.example/x"),
        ("/v1/../v1/status", "/v1/status"),
    ] {
        let resp = admin.request("GET", path, None).await;
        assert_eq!(resp.status, 301, "{path}");
        let got = resp.header("location").unwrap();
        assert_eq!(got, location, "{path}");
        assert!(!got.starts_with("//") && !got.starts_with("/\\"), "{got}");
    }
}
