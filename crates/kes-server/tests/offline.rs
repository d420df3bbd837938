//! The key cache's offline mode through a real mTLS server: a key store
//! that can be switched to unreachable keeps cached keys serving, `/v1/ready`
//! answers 504 while it is down, and everything recovers when it is back.

use kes_core::{ApiKey, KeyAlgorithm};
use kes_keystore::cache::{CacheConfig, KeyCache};
use kes_server::{ServerBuilder, State};
use kes_testkit::client::Client;
use kes_testkit::store::SwitchableStore;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

struct Running {
    addr: std::net::SocketAddr,
    cert_der: Vec<u8>,
    admin: ApiKey,
    store: Arc<SwitchableStore>,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn start(offline_expiry: Duration) -> Running {
    let admin = ApiKey::generate();
    let cert = kes_core::certgen::dev_server_certificate(&["127.0.0.1".parse().unwrap()]).unwrap();
    let tls = kes_server::dev_tls(&cert).unwrap();
    let store = Arc::new(SwitchableStore::new());
    let cache = KeyCache::new(
        store.clone(),
        CacheConfig {
            expiry: Duration::from_secs(300),
            expiry_unused: Duration::from_secs(300),
            expiry_offline: offline_expiry,
            status_interval: Duration::from_millis(100),
        },
    );
    let state = State {
        default_algorithm: KeyAlgorithm::Aes256,
        ..State::new(admin.identity(), cache)
    };
    let shared = ServerBuilder::new().build(state, tls);
    // Keep the test output readable: no audit lines on stdout.
    shared.logs.configure(
        kes_server::INFO,
        kes_server::ERROR + 1,
        false,
        kes_server::AuditSink::Stdout,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(kes_server::server::serve(
        listener,
        shared,
        stop_rx,
        Duration::from_secs(1),
    ));
    Running {
        addr,
        cert_der: cert.certificate_der.clone(),
        admin,
        store,
        _stop: stop,
    }
}

async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_keys_serve_while_the_store_is_offline() {
    let s = start(Duration::from_secs(3600)).await;
    let c = Client::new(s.addr, Some(&s.admin), &s.cert_der);
    assert_eq!(
        c.request("POST", "/v1/key/create/hot", None).await.status,
        200
    );
    assert_eq!(
        c.request("POST", "/v1/key/create/cold", None).await.status,
        200
    );
    let g = c
        .json("POST", "/v1/key/generate/hot", json!({"context": "e30="}))
        .await;
    assert_eq!(g.status, 200);

    s.store.set_down(true);
    eventually("ready to answer 504", async || {
        c.request("GET", "/v1/ready", None).await.status == 504
    })
    .await;
    let r = c.request("GET", "/v1/ready", None).await;
    assert_eq!(r.message(), "key store is not reachable");
    let st = c.request("GET", "/v1/status", None).await.json();
    assert_eq!(st["keystore_unreachable"], true);
    assert_eq!(st["keystore_unavailable"], true, "the Go SDK needs both");
    assert!(st.get("keystore_latency").is_none());

    // The cached key keeps working for generate, decrypt and HMAC.
    let g2 = c
        .json("POST", "/v1/key/generate/hot", json!({"context": "e30="}))
        .await;
    assert_eq!(g2.status, 200, "{}", g2.text());
    let d = c
        .json(
            "POST",
            "/v1/key/decrypt/hot",
            json!({"ciphertext": g.json()["ciphertext"], "context": "e30="}),
        )
        .await;
    assert_eq!(d.json()["plaintext"], g.json()["plaintext"]);
    assert_eq!(
        c.json("PUT", "/v1/key/hmac/hot", json!({"message": "AA=="}))
            .await
            .status,
        200
    );
    // An uncached key fails with the generic 502; nothing leaks.
    let cold = c.request("GET", "/v1/key/describe/cold", None).await;
    assert_eq!(
        (cold.status, cold.message().as_str()),
        (502, "failed to read key")
    );
    let created = c.request("POST", "/v1/key/create/new", None).await;
    assert_eq!(
        (created.status, created.message().as_str()),
        (502, "failed to create key")
    );

    // Back online: ready again, the cold key is readable.
    s.store.set_down(false);
    eventually("ready to answer 200", async || {
        c.request("GET", "/v1/ready", None).await.status == 200
    })
    .await;
    assert_eq!(
        c.request("GET", "/v1/key/describe/cold", None).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_offline_caching_ready_still_reports_the_outage() {
    // `offline: 0` keeps the normal expiry running; cached keys still serve
    // until it strikes (5 min here), so a generate right after the outage
    // works, and ready reports the outage.
    let s = start(Duration::ZERO).await;
    let c = Client::new(s.addr, Some(&s.admin), &s.cert_der);
    assert_eq!(
        c.request("POST", "/v1/key/create/k", None).await.status,
        200
    );
    assert_eq!(
        c.request("POST", "/v1/key/generate/k", None).await.status,
        200
    );
    s.store.set_down(true);
    eventually("ready to answer 504", async || {
        c.request("GET", "/v1/ready", None).await.status == 504
    })
    .await;
    assert_eq!(
        c.request("POST", "/v1/key/generate/k", None).await.status,
        200
    );
}
