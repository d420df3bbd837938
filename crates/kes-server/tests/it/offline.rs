//! The key cache's offline mode through a real mTLS server: a key store
//! that can be switched to unreachable keeps cached keys serving, `/v1/ready`
//! answers 504 while it is down, and everything recovers when it is back.

use crate::common;

use common::{eventually, start};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_keys_serve_while_the_store_is_offline() {
    let s = start(Duration::from_secs(3600)).await;
    let c = s.admin_client();
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
    let c = s.admin_client();
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
