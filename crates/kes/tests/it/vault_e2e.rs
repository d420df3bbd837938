//! The real `kes` server with a Vault key store: a real OpenBao dev server
//! on loopback, a real server process, real mTLS.

use crate::common;

use kes_testkit::bao;

use std::time::{Duration, Instant};

use bao::Bao;
use common::{b64, unb64, Setup, TestServer};
use serde_json::json;

const GOLDEN_AES: &str = include_str!("../../../../testdata/go-kes/keys/golden-aes");

fn vault_setup(bao: &Bao, role: &str, secret: &str, engine: &str, version: &str) -> Setup {
    Setup::new().keystore(&format!(
        "keystore:\n  vault:\n    endpoint: {}\n    engine: {engine}\n    version: {version}\n    prefix: kes\n    approle:\n      id: {role}\n      secret: {secret}\n    transit:\n      key: kes\n    status:\n      ping: 300ms\n",
        bao.endpoint()
    ))
}

/// One generate/decrypt round trip through the server.
async fn round_trip(client: &common::Client, key: &str) {
    let context = b64(b"{\"bucket\":\"bucket/object\"}");
    let resp = client
        .json(
            "POST",
            &format!("/v1/key/generate/{key}"),
            json!({ "context": context }),
        )
        .await;
    assert_eq!(resp.status, 200, "generate: {}", resp.text());
    let dek = resp.json();
    let resp = client
        .json(
            "POST",
            &format!("/v1/key/decrypt/{key}"),
            json!({ "ciphertext": dek["ciphertext"], "context": context }),
        )
        .await;
    assert_eq!(resp.status, 200, "decrypt: {}", resp.text());
    assert_eq!(resp.json()["plaintext"], dek["plaintext"]);
}

async fn lifecycle(version: &str) {
    let bao = Bao::start();
    let (role, secret) = bao.setup_kes("1h", "24h");
    let engine = if version == "v1" { "kv" } else { "kv2" };
    let data = if version == "v1" { "" } else { "data/" };
    // A key the Go KES put into Vault.
    let go_path = format!("{engine}/{data}kes/golden-aes");
    let go_body = if version == "v1" {
        json!({ "golden-aes": GOLDEN_AES })
    } else {
        json!({ "data": { "golden-aes": GOLDEN_AES } })
    };
    bao.ok("PUT", &go_path, Some(go_body));

    let server = TestServer::start(vault_setup(&bao, &role, &secret, engine, version));
    let admin = server.admin_client();

    assert_eq!(admin.request("GET", "/v1/ready", None).await.status, 200);
    // The dev Vault speaks plain HTTP: the server says what travels in clear.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !server.stderr().contains("is plain HTTP: the Vault token") {
        assert!(
            std::time::Instant::now() < deadline,
            "no plain-HTTP warning: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for i in 0..20 {
        let resp = admin
            .request("POST", &format!("/v1/key/create/e2e-{i:02}"), None)
            .await;
        assert_eq!(resp.status, 200, "create: {}", resp.text());
    }
    let resp = admin.request("POST", "/v1/key/create/e2e-00", None).await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.message(), "key already exists");
    round_trip(&admin, "e2e-07").await;

    // Keys are stored transit-wrapped in the Go KES layout.
    let raw = bao.ok("GET", &format!("{engine}/{data}kes/e2e-07"), None);
    let stored = if version == "v1" {
        raw.body["data"]["e2e-07"].clone()
    } else {
        raw.body["data"]["data"]["e2e-07"].clone()
    };
    assert!(
        stored.as_str().unwrap().starts_with("vault:v1:"),
        "{stored}"
    );

    // The Go KES's key decrypts the Go KES's ciphertexts.
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("../../../../testdata/go-kes/vectors.json")).unwrap();
    let v = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["key"] == "golden-aes" && v["op"] == "generate")
        .unwrap();
    let resp = admin
        .json(
            "POST",
            "/v1/key/decrypt/golden-aes",
            json!({ "ciphertext": v["ciphertext"], "context": v["context"] }),
        )
        .await;
    assert_eq!(resp.status, 200, "decrypt golden: {}", resp.text());
    assert_eq!(
        unb64(resp.json()["plaintext"].as_str().unwrap()),
        unb64(v["plaintext"].as_str().unwrap())
    );

    let resp = admin.request("GET", "/v1/key/list/e2e-1", None).await;
    assert_eq!(resp.status, 200);
    let names = resp.json()["names"].clone();
    let want: Vec<String> = (10..20).map(|i| format!("e2e-{i}")).collect();
    assert_eq!(names, json!(want));
    let resp = admin.request("GET", "/v1/key/list/*", None).await;
    assert_eq!(resp.json()["names"].as_array().unwrap().len(), 21);

    let resp = admin.request("DELETE", "/v1/key/delete/e2e-07", None).await;
    assert_eq!(resp.status, 200, "delete: {}", resp.text());
    let resp = admin.request("POST", "/v1/key/generate/e2e-07", None).await;
    assert_eq!(resp.status, 404, "generate after delete: {}", resp.text());
    assert_eq!(resp.message(), "key does not exist");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs OpenBao; scripts/test runs it"]
async fn vault_kv_v1_through_the_server() {
    lifecycle("v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs OpenBao; scripts/test runs it"]
async fn vault_kv_v2_through_the_server() {
    lifecycle("v2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs OpenBao; scripts/test runs it"]
async fn ready_is_504_while_vault_is_sealed() {
    let bao = Bao::start();
    let (role, secret) = bao.setup_kes("1h", "24h");
    let server = TestServer::start(vault_setup(&bao, &role, &secret, "kv", "v1"));
    let admin = server.admin_client();
    let resp = admin
        .request("POST", "/v1/key/create/sealed-test", None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(admin.request("GET", "/v1/ready", None).await.status, 200);

    bao.seal();
    let resp = admin.request("GET", "/v1/ready", None).await;
    assert_eq!(resp.status, 504, "{}", resp.text());
    assert_eq!(resp.message(), "key store is not reachable");
    // An uncached key fails fast instead of waiting for Vault.
    let started = Instant::now();
    let resp = admin
        .request("POST", "/v1/key/create/while-sealed", None)
        .await;
    assert!(resp.status >= 500, "{} {}", resp.status, resp.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    bao.unseal();
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin.request("GET", "/v1/ready", None).await.status != 200 {
        assert!(
            Instant::now() < deadline,
            "server did not recover after unseal"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let resp = admin
        .request("POST", "/v1/key/create/after-unseal", None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    round_trip(&admin, "sealed-test").await;
}
