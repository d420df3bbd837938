//! Key rotation through the API of real `kes server` processes (mTLS on
//! 127.0.0.1, fs key store): MinIO's calls before and after rotations,
//! retirement and its policy rule, `/v1/api`, what a key file written by
//! the Go KES goes through, the SDK (`kes-client`) and the CLI (`kes key
//! rotate`, `retire`, `info`).

use crate::common;

use common::cli::{kes, run};
use common::{b64, unb64, Client, Setup, TestServer};
use kes_core::ApiKey;
use serde_json::{json, Value};

const CONTEXT: &str = "eyJidWNrZXQiOiJidWNrZXQvb2JqZWN0In0="; // {"bucket":"bucket/object"}

fn golden() -> std::path::PathBuf {
    crate::manifest_dir().join("../../testdata/go-kes")
}

/// A data key from `/v1/key/generate`: (plaintext, ciphertext), base64.
async fn generate(c: &Client, key: &str) -> (String, String) {
    let r = c
        .json(
            "POST",
            &format!("/v1/key/generate/{key}"),
            json!({ "context": CONTEXT }),
        )
        .await;
    assert_eq!(r.status, 200, "generate: {}", r.text());
    let j = r.json();
    (
        j["plaintext"].as_str().unwrap().to_string(),
        j["ciphertext"].as_str().unwrap().to_string(),
    )
}

async fn decrypt(c: &Client, key: &str, ciphertext: &str, context: &str) -> common::Resp {
    c.json(
        "POST",
        &format!("/v1/key/decrypt/{key}"),
        json!({ "ciphertext": ciphertext, "context": context }),
    )
    .await
}

async fn hmac(c: &Client, key: &str, message: &[u8]) -> String {
    let r = c
        .json(
            "POST",
            &format!("/v1/key/hmac/{key}"),
            json!({ "message": b64(message) }),
        )
        .await;
    assert_eq!(r.status, 200, "hmac: {}", r.text());
    r.json()["hmac"].as_str().unwrap().to_string()
}

async fn rotate(c: &Client, key: &str) -> Value {
    let r = c
        .request("POST", &format!("/v1/key/rotate/{key}"), None)
        .await;
    assert_eq!(r.status, 200, "rotate: {}", r.text());
    r.json()
}

async fn retire(c: &Client, key: &str, body: &str) -> common::Resp {
    c.request(
        "POST",
        &format!("/v1/key/retire/{key}"),
        Some(body.as_bytes()),
    )
    .await
}

/// The top-level field names of a JSON object, in the order they are
/// written (a parsed `Value` would sort them).
fn field_names(json: &str) -> Vec<String> {
    common::field_order(json)
}

/// MinIO's sequence (create, generate, decrypt, list, describe) before and
/// after three rotations, then a retirement that shreds the old versions.
/// The entries of the server's fs key store, without the store's own lock
/// file (`.kes-lock`, made by the first delete or retirement).
fn key_files(server: &TestServer) -> Vec<String> {
    std::fs::read_dir(server.setup.keys_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != kes_keystore::fs::LOCK_FILE)
        .collect()
}

#[tokio::test]
async fn minio_sequence_across_rotations_and_retirement() {
    let server = TestServer::start(Setup::new().with("log:\n  audit: on\n"));
    let c = server.admin_client();
    assert_eq!(
        c.request("POST", "/v1/key/create/minio-key", None)
            .await
            .status,
        200
    );
    assert_eq!(
        c.request("POST", "/v1/key/create/other", None).await.status,
        200
    );
    let d0 = c.request("GET", "/v1/key/describe/minio-key", None).await;
    assert_eq!(d0.status, 200);
    assert_eq!(
        field_names(&d0.text()),
        ["name", "algorithm", "created_at", "created_by"]
    );
    let d0 = d0.json();
    let hmac0 = hmac(&c, "minio-key", b"root access key").await;

    // (plaintext, ciphertext) sealed under each version, oldest first.
    let mut sealed = vec![generate(&c, "minio-key").await];
    for n in 2..=4u64 {
        let r = rotate(&c, "minio-key").await;
        assert_eq!(r, json!({ "version": n, "versions": n }));
        sealed.push(generate(&c, "minio-key").await);
        for (plaintext, ciphertext) in &sealed {
            let r = decrypt(&c, "minio-key", ciphertext, CONTEXT).await;
            assert_eq!(r.status, 200, "after rotation to {n}: {}", r.text());
            assert_eq!(r.json()["plaintext"], plaintext.as_str());
        }
        // HMACs computed before any rotation stay valid.
        assert_eq!(hmac(&c, "minio-key", b"root access key").await, hmac0);

        let list = c.request("GET", "/v1/key/list/*", None).await;
        assert_eq!(list.status, 200);
        assert_eq!(list.json()["names"], json!(["minio-key", "other"]));
        let list = c.request("GET", "/v1/key/list/minio*", None).await;
        assert_eq!(list.json()["names"], json!(["minio-key"]));

        let d = c.request("GET", "/v1/key/describe/minio-key", None).await;
        assert_eq!(d.status, 200);
        assert_eq!(
            field_names(&d.text()),
            [
                "name",
                "algorithm",
                "created_at",
                "created_by",
                "version",
                "versions",
                "rotated_at"
            ]
        );
        let d = d.json();
        assert_eq!(d["version"], n);
        assert_eq!(d["versions"], n);
        assert_eq!(d["created_at"], d0["created_at"]);
        assert_eq!(d["algorithm"], d0["algorithm"]);
        assert!(d["rotated_at"].as_str().unwrap() > d0["created_at"].as_str().unwrap());
    }
    // The versions are entries of their own in the fs store; the first one
    // is untouched by rotation.
    let mut files = key_files(&server);
    files.sort();
    assert_eq!(files.len(), 5, "{files:?}");
    assert!(files[0] == "minio-key" && files[1..4].iter().all(|f| f.starts_with("minio-key@")));
    // Never rotated: still exactly the Go KES's answer.
    let other = c.request("GET", "/v1/key/describe/other", None).await;
    assert_eq!(
        field_names(&other.text()),
        ["name", "algorithm", "created_at", "created_by"]
    );

    // Retire all but the two newest: what versions 1 and 2 sealed is gone.
    let r = retire(&c, "minio-key", r#"{"keep":2}"#).await;
    assert_eq!(r.status, 200, "retire: {}", r.text());
    assert_eq!(r.json(), json!({"retired": 2, "version": 4, "versions": 2}));
    for (i, (plaintext, ciphertext)) in sealed.iter().enumerate() {
        let r = decrypt(&c, "minio-key", ciphertext, CONTEXT).await;
        if i < 2 {
            assert_eq!(r.status, 400, "version {} was retired", i + 1);
            assert_eq!(
                r.message(),
                "decryption failed: ciphertext is not authentic"
            );
        } else {
            assert_eq!(r.status, 200, "{}", r.text());
            assert_eq!(r.json()["plaintext"], plaintext.as_str());
        }
    }
    let d = c
        .request("GET", "/v1/key/describe/minio-key", None)
        .await
        .json();
    assert_eq!(
        (d["version"].clone(), d["versions"].clone()),
        (json!(4), json!(2))
    );
    assert_eq!(hmac(&c, "minio-key", b"root access key").await, hmac0);
    // Retiring again with the same count retires nothing.
    let r = retire(&c, "minio-key", r#"{"keep":2}"#).await;
    assert_eq!(r.json(), json!({"retired": 0, "version": 4, "versions": 2}));
    // Rotation continues from the current version.
    assert_eq!(
        rotate(&c, "minio-key").await,
        json!({"version": 5, "versions": 3})
    );

    // Delete removes every version.
    assert_eq!(
        c.request("DELETE", "/v1/key/delete/minio-key", None)
            .await
            .status,
        200
    );
    let left = key_files(&server);
    assert_eq!(left, ["other"]);

    // Rotate and retire are counted in the request metrics per route.
    let m = c
        .request("GET", "/v1/metrics?extended=true", None)
        .await
        .text();
    assert!(m.contains("route=\"/v1/key/rotate/\""), "{m}");
    assert!(m.contains("route=\"/v1/key/retire/\""), "{m}");
    // And audited.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !server.stdout().contains("rotated to version 5") && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let audit = server.stdout();
    assert!(audit.contains("rotated to version 5"), "{audit}");
    assert!(audit.contains("2 old versions retired"), "{audit}");
}

#[tokio::test]
async fn rotate_and_retire_errors() {
    let server = TestServer::start(Setup::new());
    let c = server.admin_client();
    c.request("POST", "/v1/key/create/k", None).await;

    let r = c.request("POST", "/v1/key/rotate/missing", None).await;
    assert_eq!((r.status, r.message()), (404, "key does not exist".into()));
    let r = retire(&c, "missing", r#"{"keep":1}"#).await;
    assert_eq!((r.status, r.message()), (404, "key does not exist".into()));
    let r = c.request("POST", "/v1/key/rotate/a.b", None).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.message(),
        "key name 'a.b' is empty, too long or contains invalid characters"
    );
    let r = retire(&c, "a.b", r#"{"keep":1}"#).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.message(),
        "key name 'a.b' is empty, too long or contains invalid characters"
    );

    for body in [
        r#"{}"#,
        r#"{"keep":0}"#,
        r#"{"keep":-1}"#,
        r#"{"keep":1.5}"#,
        r#"{"keep":"2"}"#,
        r#"{"keep":null}"#,
    ] {
        let r = retire(&c, "k", body).await;
        assert_eq!(
            (r.status, r.message()),
            (400, "keep must be an integer of at least 1".into()),
            "{body}"
        );
    }
    let r = retire(&c, "k", "{not json").await;
    assert_eq!(
        (r.status, r.message()),
        (400, "invalid request body".into())
    );
    let big = format!(r#"{{"keep":1,"pad":"{}"}}"#, "x".repeat(2000));
    let r = retire(&c, "k", &big).await;
    assert_eq!(r.status, 400, "over the body limit");
    // Go's field matching: case-folded names count.
    let r = retire(&c, "k", r#"{"KEEP":1}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"retired": 0, "version": 1, "versions": 1}));

    // The methods are POST only.
    assert_eq!(c.request("GET", "/v1/key/rotate/k", None).await.status, 405);
    assert_eq!(c.request("PUT", "/v1/key/retire/k", None).await.status, 405);

    // Nothing above wrote a version.
    let d = c.request("GET", "/v1/key/describe/k", None).await.json();
    assert!(d.get("version").is_none(), "{d}");

    // /v1/api lists both after the Go KES's routes (and before the
    // deletion window's two).
    let api = c.request("GET", "/v1/api", None).await.json();
    let api = api.as_array().unwrap();
    assert_eq!(api.len(), 26);
    assert_eq!(
        api[22],
        json!({"method": "POST", "path": "/v1/key/rotate/", "max_body": 0, "timeout": 15})
    );
    assert_eq!(
        api[23],
        json!({"method": "POST", "path": "/v1/key/retire/", "max_body": 1024, "timeout": 15})
    );
}

/// Retiring destroys data: `/v1/key/*` allows rotate but not retire; a
/// pattern starting with `/v1/key/retire/` allows it; deny still wins.
#[tokio::test]
async fn retire_needs_the_admin_or_an_explicit_policy() {
    let (broad, explicit, denied) = (ApiKey::generate(), ApiKey::generate(), ApiKey::generate());
    let server = TestServer::start(Setup::new().with(&format!(
        "policy:\n  broad:\n    allow:\n      - /v1/key/*\n    identities:\n      - {}\n  \
         retirer:\n    allow:\n      - /v1/key/retire/minio-*\n      - /v1/key/describe/*\n    identities:\n      - {}\n  \
         denied:\n    allow:\n      - /v1/key/*\n      - /v1/key/retire/*\n    deny:\n      - /v1/key/retire/minio-keep*\n    identities:\n      - {}\n",
        broad.identity(),
        explicit.identity(),
        denied.identity(),
    )));
    let admin = server.admin_client();
    for k in ["minio-a", "minio-keep", "other"] {
        assert_eq!(
            admin
                .request("POST", &format!("/v1/key/create/{k}"), None)
                .await
                .status,
            200
        );
    }
    let (broad, explicit, denied) = (
        server.client(&broad),
        server.client(&explicit),
        server.client(&denied),
    );

    assert_eq!(rotate(&broad, "minio-a").await["version"], 2);
    let r = retire(&broad, "minio-a", r#"{"keep":1}"#).await;
    assert_eq!(
        (r.status, r.message()),
        (403, "not authorized: insufficient permissions".into())
    );

    let r = explicit
        .request("POST", "/v1/key/rotate/minio-a", None)
        .await;
    assert_eq!(r.status, 403, "retire rights do not grant rotate");
    let r = retire(&explicit, "minio-a", r#"{"keep":1}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"retired": 1, "version": 2, "versions": 1}));
    let r = retire(&explicit, "other", r#"{"keep":1}"#).await;
    assert_eq!(r.status, 403);

    let r = retire(&denied, "other", r#"{"keep":1}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = retire(&denied, "minio-keep", r#"{"keep":1}"#).await;
    assert_eq!(r.status, 403);

    let r = retire(&admin, "minio-keep", r#"{"keep":1}"#).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A key file written by the Go KES: served exactly as the Go KES serves
/// it, rotated without a byte of it changing, and what the Go KES sealed
/// still decrypts.
#[tokio::test]
async fn a_go_kes_key_file_survives_rotation() {
    let setup = Setup::new();
    let keys = setup.keys_dir();
    std::fs::create_dir_all(&keys).unwrap();
    let original = std::fs::read(golden().join("keys/golden-aes")).unwrap();
    std::fs::write(keys.join("golden-aes"), &original).unwrap();
    let server = TestServer::start(setup);
    let c = server.admin_client();

    let transcripts: Value =
        serde_json::from_str(&std::fs::read_to_string(golden().join("transcripts.json")).unwrap())
            .unwrap();
    let describe = transcripts
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "describe")
        .unwrap();
    let d = c.request("GET", "/v1/key/describe/golden-aes", None).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.text(), describe["response"]["body"].as_str().unwrap());

    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(golden().join("vectors.json")).unwrap())
            .unwrap();
    let golden_aes: Vec<&Value> = vectors["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["key"] == "golden-aes")
        .collect();
    let check = |when: &'static str| {
        let c = c.clone();
        let golden_aes = golden_aes.clone();
        async move {
            let mut checked = 0;
            for v in golden_aes {
                match v["op"].as_str().unwrap() {
                    "generate" | "encrypt" => {
                        let r = decrypt(
                            &c,
                            "golden-aes",
                            v["ciphertext"].as_str().unwrap(),
                            v["context"].as_str().unwrap(),
                        )
                        .await;
                        assert_eq!(r.status, 200, "{when}: {}", r.text());
                        assert_eq!(
                            unb64(r.json()["plaintext"].as_str().unwrap()),
                            unb64(v["plaintext"].as_str().unwrap()),
                            "{when}"
                        );
                    }
                    "hmac" => {
                        let got =
                            hmac(&c, "golden-aes", &unb64(v["message"].as_str().unwrap())).await;
                        assert_eq!(got, v["hmac"].as_str().unwrap(), "{when}");
                    }
                    other => panic!("unknown op {other}"),
                }
                checked += 1;
            }
            assert!(checked >= 10, "{when}: only {checked} vectors");
        }
    };
    check("before rotation").await;
    let (pt1, ct1) = generate(&c, "golden-aes").await;

    assert_eq!(rotate(&c, "golden-aes").await["version"], 2);
    assert_eq!(rotate(&c, "golden-aes").await["version"], 3);
    // What the Go KES reads is the file it wrote, unchanged.
    assert_eq!(std::fs::read(keys.join("golden-aes")).unwrap(), original);
    check("after rotation").await;
    let r = decrypt(&c, "golden-aes", &ct1, CONTEXT).await;
    assert_eq!(r.json()["plaintext"], pt1.as_str());
    let d = c
        .request("GET", "/v1/key/describe/golden-aes", None)
        .await
        .json();
    let before: Value =
        serde_json::from_str(describe["response"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(d["created_at"], before["created_at"]);
    assert_eq!(d["created_by"], before["created_by"]);
    assert_eq!(
        (d["version"].clone(), d["versions"].clone()),
        (json!(3), json!(3))
    );
    assert!(d["rotated_at"].is_string());

    // Another server on the same directory (empty cache) reads every
    // version back.
    let other = TestServer::start(
        Setup::new().keystore(&format!("keystore:\n  fs:\n    path: {}\n", keys.display())),
    );
    let c = other.admin_client();
    check("after restart").await;
    let r = decrypt(&c, "golden-aes", &ct1, CONTEXT).await;
    assert_eq!(r.json()["plaintext"], pt1.as_str());
}

/// The SDK: rotate_key, retire_key and the version fields of describe_key.
#[tokio::test]
async fn sdk_rotates_retires_and_describes() {
    let server = TestServer::start(Setup::new());
    let sdk = kes_client::Client::builder()
        .endpoints([server.addr.to_string()])
        .api_key(&server.setup.admin)
        .ca_file(&server.setup.server_cert)
        .build()
        .unwrap();
    sdk.create_key("sdk-key").await.unwrap();
    let info = sdk.describe_key("sdk-key").await.unwrap();
    assert_eq!(
        (info.version, info.versions, info.rotated_at),
        (None, None, None)
    );
    // A description of a key never rotated serializes as before.
    let v = serde_json::to_string(&info).unwrap();
    assert_eq!(
        field_names(&v),
        ["name", "algorithm", "created_at", "created_by"]
    );

    let dek = sdk.generate_key("sdk-key", b"ctx").await.unwrap();
    let r = sdk.rotate_key("sdk-key").await.unwrap();
    assert_eq!((r.version, r.versions), (2, 2));
    let r = sdk.rotate_key("sdk-key").await.unwrap();
    assert_eq!((r.version, r.versions), (3, 3));
    let info = sdk.describe_key("sdk-key").await.unwrap();
    assert_eq!((info.version, info.versions), (Some(3), Some(3)));
    assert!(info.rotated_at.unwrap() >= info.created_at.unwrap());
    assert_eq!(
        sdk.decrypt("sdk-key", &dek.ciphertext, b"ctx")
            .await
            .unwrap()
            .as_slice(),
        dek.plaintext.as_slice()
    );

    let r = sdk.retire_key("sdk-key", 1).await.unwrap();
    assert_eq!((r.retired, r.version, r.versions), (2, 3, 1));
    let err = sdk
        .decrypt("sdk-key", &dek.ciphertext, b"ctx")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    let err = sdk.retire_key("sdk-key", 0).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string()
            .contains("keep must be an integer of at least 1"),
        "{err}"
    );
    let err = sdk.rotate_key("missing").await.unwrap_err();
    assert_eq!(err.status(), Some(404));
}

fn ok(cmd: &mut std::process::Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "command failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `kes <args>` on a pseudo-terminal (util-linux `script`), typing
/// `input`; returns what the terminal showed and whether it succeeded.
fn on_terminal(server: &TestServer, args: &str, input: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut cmd = kes(server);
    let program = env!("CARGO_BIN_EXE_kes");
    let mut child = std::process::Command::new("script")
        .args(["-qec", &format!("{program} {args}"), "/dev/null"])
        .envs(
            cmd.get_envs()
                .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
        )
        .env("NO_COLOR", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux's script(1), for a pseudo-terminal");
    let _ = &mut cmd;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let mut shown = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    // The terminal echoes what was typed wherever the output stands when it
    // arrives, which on a busy machine can be before or inside the prompt:
    // take the echo out so the prompt reads as printed.
    if !input.is_empty() {
        if let Some(at) = shown.find(input) {
            shown.replace_range(at..at + input.len(), "");
        }
    }
    eprintln!("$ kes {args}\n{shown}");
    (out.status.success(), shown)
}

#[test]
fn cli_rotate_retire_and_info() {
    let server = TestServer::start(Setup::new());
    ok(kes(&server).args(["key", "create", "cli-key"]));
    // Never rotated: the same JSON as before, no version fields.
    let before = ok(kes(&server).args(["key", "info", "cli-key", "--json"]));
    let v: Value = serde_json::from_str(before.trim()).unwrap();
    assert_eq!(
        field_names(before.trim()),
        ["name", "algorithm", "created_at", "created_by"]
    );

    let out = ok(kes(&server).args(["key", "rotate", "cli-key"]));
    assert_eq!(out, "{\"version\":2,\"versions\":2}\n");
    let out = ok(kes(&server).args(["key", "rotate", "cli-key", "--json"]));
    assert_eq!(out, "{\"version\":3,\"versions\":3}\n");
    let info: Value =
        serde_json::from_str(ok(kes(&server).args(["key", "info", "cli-key", "--json"])).trim())
            .unwrap();
    assert_eq!(
        (info["version"].clone(), info["versions"].clone()),
        (json!(3), json!(3))
    );
    assert_eq!(info["created_at"], v["created_at"]);
    assert!(info["rotated_at"].is_string());

    // Not a terminal: no question asked.
    let out = ok(kes(&server).args(["key", "retire", "cli-key", "--keep", "2"]));
    assert_eq!(out, "{\"retired\":1,\"version\":3,\"versions\":2}\n");
    // --keep 0 and a missing --keep are usage errors.
    for args in [
        &["key", "retire", "cli-key", "--keep", "0"][..],
        &["key", "retire", "cli-key"],
    ] {
        let out = run(kes(&server).args(args));
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    let out = run(kes(&server).args(["key", "rotate", "missing"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("key 'missing' does not exist"));

    // On a terminal: the rows, and the question before retiring.
    let (done, shown) = on_terminal(&server, "key info cli-key", "");
    assert!(done, "{shown}");
    assert!(shown.contains("Name      : cli-key"), "{shown}");
    assert!(shown.contains("Version   : 3"), "{shown}");
    assert!(shown.contains("Versions  : 2 retained"), "{shown}");
    assert!(shown.contains("Rotated   : "), "{shown}");
    ok(kes(&server).args(["key", "create", "plain-key"]));
    let (_, plain) = on_terminal(&server, "key info plain-key", "");
    assert!(!plain.contains("Version"), "{plain}");

    let (done, shown) = on_terminal(&server, "key retire cli-key --keep 1", "n\n");
    assert!(!done, "{shown}");
    assert!(
        shown.contains("Retire every version of key 'cli-key' but the newest version?"),
        "{shown}"
    );
    let info: Value =
        serde_json::from_str(ok(kes(&server).args(["key", "info", "cli-key", "--json"])).trim())
            .unwrap();
    assert_eq!(info["versions"], 2, "answering no retires nothing");
    let (done, shown) = on_terminal(&server, "key retire cli-key --keep 1", "y\n");
    assert!(done, "{shown}");
    assert!(
        shown.contains("Key 'cli-key': 1 versions retired, 1 retained (current version 3)"),
        "{shown}"
    );
    let (done, shown) = on_terminal(&server, "key rotate cli-key", "");
    assert!(done, "{shown}");
    assert!(
        shown.contains("Key 'cli-key' rotated to version 4 (2 versions retained)"),
        "{shown}"
    );
    let (done, shown) = on_terminal(&server, "key retire cli-key --keep 1 --force", "");
    assert!(done && !shown.contains("[y/N]"), "{shown}");
}
