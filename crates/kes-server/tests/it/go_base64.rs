//! Request bodies decoded as the Go KES decodes them, through a real mTLS
//! server: Go's `base64.StdEncoding` ignores the unused bits of the last
//! character, so `{"plaintext":"QR=="}` is the plaintext `A` to the Go KES
//! and must be to us, while padding stays required.

use crate::common::start;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_canonical_last_base64_character_encrypts_like_go() {
    let s = start(Duration::from_secs(3600)).await;
    let c = s.admin_client();
    assert_eq!(
        c.request("POST", "/v1/key/create/k", None).await.status,
        200
    );

    let enc = c
        .json("POST", "/v1/key/encrypt/k", json!({"plaintext": "QR=="}))
        .await;
    assert_eq!(enc.status, 200, "{}", enc.text());
    let ciphertext = enc.json()["ciphertext"].clone();
    let dec = c
        .json(
            "POST",
            "/v1/key/decrypt/k",
            json!({"ciphertext": ciphertext}),
        )
        .await;
    assert_eq!(dec.status, 200, "{}", dec.text());
    // `A`, written back canonically.
    assert_eq!(dec.json()["plaintext"], "QQ==");

    // The same leniency for a context: sealed under `QR==`, opened under
    // its canonical spelling `QQ==`.
    let enc = c
        .json(
            "POST",
            "/v1/key/encrypt/k",
            json!({"plaintext": "QUJD", "context": "QR=="}),
        )
        .await;
    assert_eq!(enc.status, 200, "{}", enc.text());
    let dec = c
        .json(
            "POST",
            "/v1/key/decrypt/k",
            json!({"ciphertext": enc.json()["ciphertext"], "context": "QQ=="}),
        )
        .await;
    assert_eq!(dec.json()["plaintext"], "QUJD");

    // Padding is required and other characters are refused, as by Go.
    for bad in ["QR", "QQ=", "Q-==", "QQ== "] {
        let r = c
            .json("POST", "/v1/key/encrypt/k", json!({"plaintext": bad}))
            .await;
        assert_eq!(r.status, 400, "{bad:?}");
        assert_eq!(r.message(), "invalid request body", "{bad:?}");
    }
}
