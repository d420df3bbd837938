//! Upstream KES's `version` field of the crypto calls (minio/kes pull
//! request 520, minio/kms-go pull request 31), as raw JSON with the Go
//! SDK's field names: absent for a key never rotated, a string naming the
//! version otherwise; a decrypt that names a version tries exactly it.

use crate::common::{b64, unb64, Setup, TestServer};
use serde_json::{json, Value};

/// The members of a JSON object, sorted.
fn members(doc: &Value) -> Vec<String> {
    let mut keys: Vec<String> = doc.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn replies_name_the_version_of_a_rotated_key_only() {
    let server = TestServer::start(Setup::new());
    let admin = server.admin_client();
    assert_eq!(
        admin
            .request("POST", "/v1/key/create/ver", None)
            .await
            .status,
        200
    );
    let ctx = b64(b"ctx");
    // Never rotated: the Go KES's replies, no `version`.
    let dek = admin
        .json("POST", "/v1/key/generate/ver", json!({ "context": ctx }))
        .await;
    assert_eq!(members(&dek.json()), ["ciphertext", "plaintext"]);
    let enc = admin
        .json(
            "POST",
            "/v1/key/encrypt/ver",
            json!({ "plaintext": b64(b"hello") }),
        )
        .await;
    assert_eq!(members(&enc.json()), ["ciphertext"]);
    let mac = admin
        .json("PUT", "/v1/key/hmac/ver", json!({ "message": b64(b"m") }))
        .await;
    assert_eq!(members(&mac.json()), ["hmac"]);
    let v1_dek = dek.json();

    for _ in 0..2 {
        let r = admin.request("POST", "/v1/key/rotate/ver", None).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    // Rotated: every sealing reply names the version, as a JSON string.
    let dek = admin
        .json("POST", "/v1/key/generate/ver", json!({ "context": ctx }))
        .await
        .json();
    assert_eq!(dek["version"], json!("3"));
    let enc = admin
        .json(
            "POST",
            "/v1/key/encrypt/ver",
            json!({ "plaintext": b64(b"hello"), "context": ctx }),
        )
        .await
        .json();
    assert_eq!(enc["version"], json!("3"));
    let mac3 = admin
        .json("PUT", "/v1/key/hmac/ver", json!({ "message": b64(b"m") }))
        .await
        .json();
    assert_eq!(mac3["version"], json!("3"));
    // HMAC keys carry over rotations: the same HMAC as before.
    assert_eq!(mac3["hmac"], mac.json()["hmac"]);

    // A decrypt naming the version opens with exactly that version.
    let decrypt = |ct: &Value, version: Option<&str>| {
        let mut body = json!({ "ciphertext": ct, "context": ctx });
        if let Some(v) = version {
            body["version"] = json!(v);
        }
        body
    };
    for (ct, version) in [(&dek["ciphertext"], "3"), (&v1_dek["ciphertext"], "1")] {
        let r = admin
            .json("POST", "/v1/key/decrypt/ver", decrypt(ct, Some(version)))
            .await;
        assert_eq!(r.status, 200, "version {version}: {}", r.text());
    }
    let r = admin
        .json(
            "POST",
            "/v1/key/decrypt/ver",
            decrypt(&dek["plaintext"], None),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        unb64(
            admin
                .json(
                    "POST",
                    "/v1/key/decrypt/ver",
                    decrypt(&dek["ciphertext"], Some(""))
                )
                .await
                .json()["plaintext"]
                .as_str()
                .unwrap()
        ),
        unb64(dek["plaintext"].as_str().unwrap()),
        "an empty version is no version: the versions are tried"
    );
    // The wrong version: no other is tried, so the decrypt fails.
    let r = admin
        .json(
            "POST",
            "/v1/key/decrypt/ver",
            decrypt(&dek["ciphertext"], Some("2")),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.message(),
        "decryption failed: ciphertext is not authentic"
    );
    // A version the key does not have.
    let r = admin
        .json(
            "POST",
            "/v1/key/decrypt/ver",
            decrypt(&dek["ciphertext"], Some("9")),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.message(), "key 'ver' has no version 9");
    // Not a version: clear errors.
    for (bad, message) in [
        (
            json!("abc"),
            "invalid key version 'abc': a version is a number from 1",
        ),
        (
            json!("0"),
            "invalid key version '0': a version is a number from 1",
        ),
        (
            json!("-1"),
            "invalid key version '-1': a version is a number from 1",
        ),
        (json!(2), "invalid request body"),
    ] {
        let mut body = decrypt(&dek["ciphertext"], None);
        body["version"] = bad.clone();
        let r = admin.json("POST", "/v1/key/decrypt/ver", body).await;
        assert_eq!(r.status, 400, "{bad}");
        assert_eq!(r.message(), message, "{bad}");
    }

    // Sealing with a pinned (retained) version, and the reply names it.
    let pinned = admin
        .json(
            "POST",
            "/v1/key/generate/ver",
            json!({ "context": ctx, "version": "1" }),
        )
        .await
        .json();
    assert_eq!(pinned["version"], json!("1"));
    let r = admin
        .json(
            "POST",
            "/v1/key/decrypt/ver",
            decrypt(&pinned["ciphertext"], Some("1")),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin
        .json(
            "POST",
            "/v1/key/decrypt/ver",
            decrypt(&pinned["ciphertext"], Some("3")),
        )
        .await;
    assert_eq!(r.status, 400, "sealed by version 1, not 3");
    let enc1 = admin
        .json(
            "POST",
            "/v1/key/encrypt/ver",
            json!({ "plaintext": b64(b"x"), "version": "v2" }),
        )
        .await
        .json();
    assert_eq!(enc1["version"], json!("2"));

    // The bulk decrypt takes a version per ciphertext.
    let bulk = admin
        .json(
            "POST",
            "/v1/key/bulk/decrypt/ver",
            json!([
                decrypt(&dek["ciphertext"], Some("3")),
                decrypt(&v1_dek["ciphertext"], Some("1")),
                decrypt(&v1_dek["ciphertext"], None),
            ]),
        )
        .await;
    assert_eq!(bulk.status, 200, "{}", bulk.text());
    assert_eq!(bulk.json().as_array().unwrap().len(), 3);

    // Retired: named in the error, never a wrong plaintext.
    let r = admin
        .json("POST", "/v1/key/retire/ver", json!({ "keep": 2 }))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin
        .json(
            "POST",
            "/v1/key/decrypt/ver",
            decrypt(&v1_dek["ciphertext"], Some("1")),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.message(), "key 'ver' version 1 has been retired");
    let r = admin
        .json(
            "POST",
            "/v1/key/generate/ver",
            json!({ "context": ctx, "version": "1" }),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.message(), "key 'ver' version 1 has been retired");
}

/// A node that cached the key before another node rotated it seals with a
/// version it has not seen yet when asked to (it reads the key again).
#[tokio::test]
async fn a_version_made_on_another_node_is_found() {
    let first = Setup::new();
    let keys = first.keys_dir();
    let a = TestServer::start(first);
    let a_admin = a.admin_client();
    assert_eq!(
        a_admin
            .request("POST", "/v1/key/create/shared", None)
            .await
            .status,
        200
    );
    let b = TestServer::start(Setup {
        admin: kes_core::ApiKey::parse(&a.setup.admin.to_kes_string()).unwrap(),
        ..Setup::new().keystore(&format!("keystore:\n  fs:\n    path: {}\n", keys.display()))
    });
    let b_admin = b.admin_client();
    // b caches version 1.
    let cached = b_admin
        .json("POST", "/v1/key/generate/shared", json!({}))
        .await;
    assert_eq!(cached.status, 200, "{}", cached.text());
    assert_eq!(
        a_admin
            .request("POST", "/v1/key/rotate/shared", None)
            .await
            .status,
        200
    );
    let pinned = b_admin
        .json("POST", "/v1/key/generate/shared", json!({ "version": "2" }))
        .await;
    assert_eq!(pinned.status, 200, "{}", pinned.text());
    assert_eq!(pinned.json()["version"], json!("2"));
    let r = a_admin
        .json(
            "POST",
            "/v1/key/decrypt/shared",
            json!({ "ciphertext": pinned.json()["ciphertext"], "version": "2" }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn the_sdk_keeps_the_version_with_the_ciphertext() {
    let server = TestServer::start(Setup::new());
    let sdk = kes_client::Client::builder()
        .endpoints([server.addr.to_string()])
        .api_key(&server.setup.admin)
        .ca_file(&server.setup.server_cert)
        .build()
        .unwrap();
    sdk.create_key("sdk-ver").await.unwrap();
    let dek = sdk.generate_key("sdk-ver", b"ctx").await.unwrap();
    assert_eq!(dek.version, None, "a key never rotated names no version");
    sdk.rotate_key("sdk-ver").await.unwrap();
    let dek2 = sdk.generate_key("sdk-ver", b"ctx").await.unwrap();
    assert_eq!(dek2.version, Some(2));
    let sealed = sdk
        .encrypt_with("sdk-ver", b"hello", b"", Some(1))
        .await
        .unwrap();
    assert_eq!(sealed.version, Some(1));
    let opened = sdk
        .decrypt_with("sdk-ver", &sealed.ciphertext, b"", Some(1))
        .await
        .unwrap();
    assert_eq!(opened.as_slice(), b"hello");
    let opened = sdk
        .decrypt_with("sdk-ver", &dek2.ciphertext, b"ctx", dek2.version)
        .await
        .unwrap();
    assert_eq!(opened.as_slice(), dek2.plaintext.as_slice());
    let wrong = sdk
        .decrypt_with("sdk-ver", &dek.ciphertext, b"ctx", Some(2))
        .await;
    assert!(
        matches!(wrong, Err(kes_client::Error::DecryptionFailed)),
        "{wrong:?}"
    );
}
