//! The Go KES's own answers (testdata/go-kes/transcripts.json) replayed
//! against our server: status, headers and bytes wherever a client could
//! notice, and the Go KES's ciphertexts decrypted by our server.

use crate::common;

use common::{b64, unb64, Resp, Setup, TestServer};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;

fn testdata() -> PathBuf {
    crate::manifest_dir().join("../../testdata/go-kes")
}

fn transcripts() -> Vec<Value> {
    let text = std::fs::read_to_string(testdata().join("transcripts.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

async fn replay(server: &TestServer, t: &Value) -> Resp {
    let req = &t["request"];
    let method = req["method"].as_str().unwrap();
    let path = req["path"].as_str().unwrap();
    let body = match &req["body"] {
        Value::Null => None,
        Value::String(s) => Some(s.as_bytes().to_vec()),
        v => Some(serde_json::to_vec(v).unwrap()),
    };
    server
        .admin_client()
        .request(method, path, body.as_deref())
        .await
}

fn expected_headers(t: &Value) -> Vec<(String, String)> {
    t["response"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap().to_ascii_lowercase(),
                h[1].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Status, every header the Go KES sent (values included) and no other
/// header except `date`, and the body byte for byte.
fn assert_exact(name: &str, t: &Value, got: &Resp) {
    assert_eq!(
        got.status,
        t["response"]["status"].as_u64().unwrap() as u16,
        "{name}: status; body {}",
        got.text()
    );
    let want = expected_headers(t);
    for (k, v) in &want {
        assert_eq!(
            got.header(k).as_deref(),
            Some(v.as_str()),
            "{name}: header {k}"
        );
    }
    for k in got.headers.keys() {
        let k = k.as_str();
        assert!(
            k == "date" || want.iter().any(|(w, _)| w == k),
            "{name}: unexpected header {k}"
        );
    }
    assert_eq!(
        got.text(),
        t["response"]["body"].as_str().unwrap(),
        "{name}: body"
    );
}

fn find<'a>(ts: &'a [Value], name: &str) -> &'a Value {
    ts.iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no transcript {name}"))
}

#[tokio::test]
async fn answers_match_the_go_kes() {
    let server = TestServer::start(Setup::new());
    let ts = transcripts();
    let admin = server.setup.admin.identity().to_string();

    // Byte-exact answers, in the order the Go KES recorded them.
    for name in [
        "create",
        "create-existing",
        "import-chacha",
        "import-aes",
        "describe-missing",
        "invalid-name",
        "list-all",
        "ready",
        "policy-list",
        "unknown-path",
        "wrong-method",
        "bad-json",
        "decrypt-not-authentic",
    ] {
        let t = find(&ts, name);
        let got = replay(&server, t).await;
        assert_exact(name, t, &got);
    }

    // Same shape, values of our own.
    let t = find(&ts, "describe");
    let got = replay(&server, t).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.header("content-type").unwrap(), "application/json");
    let d = got.json();
    assert_eq!(d["name"], "golden-aes");
    assert!(d["algorithm"] == "AES256" || d["algorithm"] == "ChaCha20");
    assert_eq!(d["created_by"], admin.as_str());
    assert!(d["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(got.text().ends_with("}\n"));

    let got = replay(&server, find(&ts, "version")).await;
    assert_eq!(got.status, 200);
    let v = got.json();
    assert!(v["version"].is_string() && v["commit"].is_string());

    // The Go KES's trailing-`*` listing bug is fixed (docs/compatibility.md): the prefix
    // listing finds the imported key.
    let got = replay(&server, find(&ts, "list-prefix")).await;
    assert_eq!(got.text(), "{\"names\":[\"golden-imported-aes\"]}\n");

    let got = replay(&server, find(&ts, "identity-list")).await;
    assert_eq!(
        got.text(),
        format!("{{\"identities\":[\"{admin}\"],\"continue_at\":\"\"}}\n")
    );

    let got = replay(&server, find(&ts, "self-describe")).await;
    let d = got.json();
    assert_eq!(d["identity"], admin.as_str());
    assert_eq!(d["admin"], true);
    assert_eq!(
        common::field_order(&got.text()),
        ["identity", "admin", "created_at"]
    );

    // /v1/api: the same 22 routes with the same attributes (in any order,
    // as Go's map iteration), then the two rotation routes the Go KES does
    // not have.
    let t = find(&ts, "api");
    let got = replay(&server, t).await;
    let want: BTreeSet<String> =
        serde_json::from_str::<Vec<Value>>(t["response"]["body"].as_str().unwrap())
            .unwrap()
            .iter()
            .map(|v| v.to_string())
            .collect();
    let ours: Vec<Value> = got.json().as_array().unwrap().clone();
    assert_eq!(ours.len(), want.len() + 4);
    let go_part: BTreeSet<String> = ours[..want.len()].iter().map(|v| v.to_string()).collect();
    assert_eq!(go_part, want);
    let extra: Vec<&str> = ours[want.len()..]
        .iter()
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        extra,
        [
            "/v1/key/rotate/",
            "/v1/key/retire/",
            "/v1/key/restore/",
            "/v1/key/deleted/"
        ]
    );

    // /v1/status: the same fields and types.
    let got = replay(&server, find(&ts, "status")).await;
    let s = got.json();
    for k in ["version", "os", "arch"] {
        assert!(s[k].is_string(), "{k}");
    }
    for k in [
        "uptime",
        "num_cpu",
        "num_cpu_used",
        "mem_heap_used",
        "mem_stack_used",
        "keystore_latency",
    ] {
        assert!(s[k].is_u64(), "{k}: {s}");
    }
    assert_eq!(s["os"], "linux");
    assert!(s.get("keystore_unreachable").is_none());

    // /v1/metrics: the same families with the same types and help texts.
    let t = find(&ts, "metrics");
    let got = replay(&server, t).await;
    assert_eq!(
        got.header("content-type").unwrap(),
        "text/plain; version=0.0.4; charset=utf-8; escaping=underscores"
    );
    let meta = |text: &str| -> BTreeSet<String> {
        text.lines()
            .filter(|l| l.starts_with("# "))
            .map(str::to_string)
            .collect()
    };
    let want = meta(t["response"]["body"].as_str().unwrap());
    let ours = meta(&got.text());
    for line in &want {
        assert!(ours.contains(line), "missing metrics line {line}");
    }
}

/// The Go KES's key files work in our fs store, and every ciphertext the Go
/// KES produced (generate and encrypt, all contexts) decrypts through our
/// API; every HMAC matches.
#[tokio::test]
async fn go_kes_keys_and_ciphertexts_work() {
    let setup = Setup::new();
    std::fs::create_dir_all(setup.keys_dir()).unwrap();
    for name in ["golden-aes", "golden-chacha", "golden-imported-aes"] {
        std::fs::copy(
            testdata().join("keys").join(name),
            setup.keys_dir().join(name),
        )
        .unwrap();
    }
    let server = TestServer::start(setup);
    let admin = server.admin_client();

    let vectors: Value =
        serde_json::from_str(&std::fs::read_to_string(testdata().join("vectors.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for v in vectors["vectors"].as_array().unwrap() {
        let key = v["key"].as_str().unwrap();
        match v["op"].as_str().unwrap() {
            "generate" | "encrypt" => {
                let resp = admin
                    .json(
                        "POST",
                        &format!("/v1/key/decrypt/{key}"),
                        serde_json::json!({"ciphertext": v["ciphertext"], "context": v["context"]}),
                    )
                    .await;
                assert_eq!(resp.status, 200, "{key}: {}", resp.text());
                assert_eq!(resp.json()["plaintext"], v["plaintext"], "{key}");
                checked += 1;
            }
            "hmac" => {
                let resp = admin
                    .json(
                        "PUT",
                        &format!("/v1/key/hmac/{key}"),
                        serde_json::json!({"message": v["message"]}),
                    )
                    .await;
                assert_eq!(resp.status, 200, "{key}: {}", resp.text());
                assert_eq!(resp.json()["hmac"], v["hmac"], "{key}");
                checked += 1;
            }
            other => panic!("unknown op {other}"),
        }
    }
    assert!(checked >= 30, "only {checked} vectors");

    // The transcripts' generate answers decrypt too.
    for t in transcripts()
        .iter()
        .filter(|t| t["name"].as_str().unwrap().starts_with("generate-"))
    {
        let path = t["request"]["path"].as_str().unwrap();
        let key = path.rsplit('/').next().unwrap();
        let body: Value = serde_json::from_str(t["response"]["body"].as_str().unwrap()).unwrap();
        let context = t["request"]["body"]
            .get("context")
            .cloned()
            .unwrap_or(Value::String(String::new()));
        let resp = admin
            .json(
                "POST",
                &format!("/v1/key/decrypt/{key}"),
                serde_json::json!({"ciphertext": body["ciphertext"], "context": context}),
            )
            .await;
        assert_eq!(resp.status, 200, "{}", t["name"]);
        assert_eq!(resp.json()["plaintext"], body["plaintext"]);
    }

    // And ours decrypt with the same key, while a wrong context fails.
    let resp = admin
        .json(
            "POST",
            "/v1/key/generate/golden-chacha",
            serde_json::json!({"context": b64(b"{\"b\":\"b/o\"}")}),
        )
        .await;
    let g = resp.json();
    assert_eq!(unb64(g["plaintext"].as_str().unwrap()).len(), 32);
    assert_eq!(unb64(g["ciphertext"].as_str().unwrap()).len(), 76);
    let ok = admin
        .json(
            "POST",
            "/v1/key/decrypt/golden-chacha",
            serde_json::json!({"ciphertext": g["ciphertext"], "context": b64(b"{\"b\":\"b/o\"}")}),
        )
        .await;
    assert_eq!(ok.json()["plaintext"], g["plaintext"]);
    let bad = admin
        .json(
            "POST",
            "/v1/key/decrypt/golden-chacha",
            serde_json::json!({"ciphertext": g["ciphertext"], "context": b64(b"{}")}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        bad.message(),
        "decryption failed: ciphertext is not authentic"
    );
}
