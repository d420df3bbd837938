//! The real `kes server` with an AWS Secrets Manager key store on moto's
//! emulator: the API end to end, the emulator going away and coming back,
//! and several stateless nodes on one Secrets Manager.

use crate::common;
use kes_testkit::moto;

use std::time::{Duration, Instant};

use common::{b64, unb64, Client, Setup, TestServer};
use kes_keystore::config::AwsConfig;
use kes_keystore::KeyStore;
use moto::Moto;
use serde_json::json;

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// The tutorial's `keystore.aws.secretsmanager` section, pointed at moto.
/// Credentials come through `${VAR}` substitution as in the tutorial.
fn aws_setup(moto: &Moto, prefix: &str, cache: &str) -> Setup {
    with_aws(Setup::new(), &moto.endpoint(), prefix, cache)
}

fn with_aws(setup: Setup, endpoint: &str, prefix: &str, cache: &str) -> Setup {
    let mut setup = setup
        .keystore(&format!(
            "keystore:\n  aws:\n    secretsmanager:\n      endpoint: {endpoint}\n      region: us-east-1\n      \
             kmskey: \"\"\n      prefix: \"{prefix}\"\n      credentials:\n        \
             accesskey: ${{KES_TEST_AWS_ACCESS_KEY}}\n        secretkey: ${{KES_TEST_AWS_SECRET_KEY}}\n",
        ))
        .with(cache);
    setup
        .env
        .push(("KES_TEST_AWS_ACCESS_KEY".into(), ACCESS_KEY.into()));
    setup
        .env
        .push(("KES_TEST_AWS_SECRET_KEY".into(), SECRET_KEY.into()));
    setup
}

/// The key store as the server sees it, to look behind the API.
async fn store(moto: &Moto, prefix: &str) -> kes_keystore::aws::SecretsManagerKeyStore {
    kes_keystore::aws::connect(&AwsConfig {
        endpoint: moto.endpoint(),
        region: "us-east-1".into(),
        prefix: prefix.into(),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        ..AwsConfig::default()
    })
    .await
    .unwrap()
}

async fn generate(client: &Client, name: &str, context: &[u8]) -> (Vec<u8>, String) {
    let resp = client
        .json(
            "POST",
            &format!("/v1/key/generate/{name}"),
            json!({ "context": b64(context) }),
        )
        .await;
    assert_eq!(resp.status, 200, "generate {name}: {}", resp.text());
    let doc = resp.json();
    (
        unb64(doc["plaintext"].as_str().unwrap()),
        doc["ciphertext"].as_str().unwrap().to_string(),
    )
}

async fn decrypt(client: &Client, name: &str, ciphertext: &str, context: &[u8]) -> (u16, Vec<u8>) {
    let resp = client
        .json(
            "POST",
            &format!("/v1/key/decrypt/{name}"),
            json!({ "ciphertext": ciphertext, "context": b64(context) }),
        )
        .await;
    let plaintext = if resp.status == 200 {
        unb64(resp.json()["plaintext"].as_str().unwrap())
    } else {
        Vec::new()
    };
    (resp.status, plaintext)
}

async fn list(client: &Client, pattern: &str) -> Vec<String> {
    let resp = client
        .request("GET", &format!("/v1/key/list/{pattern}"), None)
        .await;
    assert_eq!(resp.status, 200, "list {pattern}: {}", resp.text());
    resp.json()["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

/// Polls `GET /v1/ready` until it answers `status`.
async fn wait_ready(client: &Client, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = client.request("GET", "/v1/ready", None).await.status;
        if got == status {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "/v1/ready answered {got}, not {status}, for {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
#[ignore = "needs moto_server; scripts/test runs it"]
async fn key_lifecycle_through_the_api() {
    let moto = Moto::start();
    let server = TestServer::start(aws_setup(&moto, "kes/", ""));
    let admin = server.admin_client();
    assert!(
        server.stdout().contains("AWS SecretsManager"),
        "{}",
        server.stdout()
    );

    for name in ["my-key", "my-key2", "other"] {
        let resp = admin
            .request("POST", &format!("/v1/key/create/{name}"), None)
            .await;
        assert_eq!(resp.status, 200, "create {name}: {}", resp.text());
    }
    let again = admin.request("POST", "/v1/key/create/my-key", None).await;
    assert_eq!(again.status, 400);
    assert_eq!(again.message(), "key already exists");

    // Stored under the prefix, in the Go KES's encoding.
    let behind = store(&moto, "kes/").await;
    let value = behind.get("my-key").await.unwrap();
    kes_core::KeyVersion::decode(&value).expect("stored value is a KES key version");
    assert_eq!(
        store(&moto, "").await.get("my-key").await,
        Err(kes_keystore::Error::KeyNotFound)
    );

    let (plaintext, ciphertext) = generate(&admin, "my-key", b"bucket/object").await;
    assert_eq!(plaintext.len(), 32);
    assert_eq!(
        decrypt(&admin, "my-key", &ciphertext, b"bucket/object").await,
        (200, plaintext.clone())
    );
    assert_eq!(
        decrypt(&admin, "my-key", &ciphertext, b"other/object")
            .await
            .0,
        400
    );

    assert_eq!(list(&admin, "*").await, ["my-key", "my-key2", "other"]);
    assert_eq!(list(&admin, "my").await, ["my-key", "my-key2"]);

    let deleted = admin.request("DELETE", "/v1/key/delete/my-key", None).await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(
        behind.get("my-key").await,
        Err(kes_keystore::Error::KeyNotFound)
    );
    let gone = admin
        .json("POST", "/v1/key/generate/my-key", json!({}))
        .await;
    assert_eq!(gone.status, 404, "{}", gone.text());
    assert_eq!(list(&admin, "*").await, ["my-key2", "other"]);

    // A key the Go KES wrote into Secrets Manager works through our API.
    let golden = include_str!("../../../../testdata/go-kes/keys/golden-aes");
    behind
        .create("golden-aes", golden.as_bytes())
        .await
        .unwrap();
    let (plaintext, ciphertext) = generate(&admin, "golden-aes", b"").await;
    assert_eq!(
        decrypt(&admin, "golden-aes", &ciphertext, b"").await,
        (200, plaintext)
    );
}

#[tokio::test]
#[ignore = "needs moto_server; scripts/test runs it"]
async fn emulator_outage() {
    let mut moto = Moto::start();
    // The normal sweeps would drop every key 30 s after the start; offline
    // caching must stop them. The cache notices the outage at its next
    // status check (every 10 s), well before that.
    let server = TestServer::start(aws_setup(
        &moto,
        "",
        "cache:\n  expiry:\n    any: 30s\n    unused: 30s\n    offline: 5m\n",
    ));
    let sweeps_done = Instant::now() + Duration::from_secs(33);
    let admin = server.admin_client();
    let resp = admin.request("POST", "/v1/key/create/cached", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let resp = admin.request("POST", "/v1/key/create/uncached", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let (plaintext, ciphertext) = generate(&admin, "cached", b"ctx").await;
    wait_ready(&admin, 200, Duration::from_secs(5)).await;

    moto.stop();
    wait_ready(&admin, 504, Duration::from_secs(30)).await;
    let ready = admin.request("GET", "/v1/ready", None).await;
    assert_eq!(ready.message(), "key store is not reachable");

    // Past the `any` and `unused` sweeps: the cached key still serves.
    tokio::time::sleep_until(sweeps_done.into()).await;
    assert_eq!(
        decrypt(&admin, "cached", &ciphertext, b"ctx").await,
        (200, plaintext.clone())
    );
    generate(&admin, "cached", b"ctx").await;
    // A key that is not cached cannot be fetched, and nothing can be created.
    let uncached = admin
        .json("POST", "/v1/key/generate/uncached", json!({}))
        .await;
    assert!(
        uncached.status >= 500,
        "{} {}",
        uncached.status,
        uncached.text()
    );
    let create = admin.request("POST", "/v1/key/create/new-key", None).await;
    assert!(create.status >= 500, "{} {}", create.status, create.text());

    // Back (a fresh, empty emulator on the same port): ready again, and
    // the store works.
    moto.restart();
    wait_ready(&admin, 200, Duration::from_secs(30)).await;
    let create = admin.request("POST", "/v1/key/create/new-key", None).await;
    assert_eq!(create.status, 200, "{}", create.text());
    let (plaintext, ciphertext) = generate(&admin, "new-key", b"").await;
    assert_eq!(
        decrypt(&admin, "new-key", &ciphertext, b"").await,
        (200, plaintext)
    );
}

#[tokio::test]
#[ignore = "needs moto_server; scripts/test runs it"]
async fn three_stateless_nodes() {
    let moto = Moto::start();
    let cache = "cache:\n  expiry:\n    any: 4s\n    unused: 4s\n";
    let nodes: Vec<TestServer> = (0..3)
        .map(|_| TestServer::start(aws_setup(&moto, "kes/", cache)))
        .collect();
    let clients: Vec<Client> = nodes.iter().map(|n| n.admin_client()).collect();

    let resp = clients[0]
        .request("POST", "/v1/key/create/shared", None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    // Keys from node 1 work on nodes 2 and 3, in either direction.
    let (plaintext, ciphertext) = generate(&clients[1], "shared", b"ctx").await;
    for client in &clients {
        assert_eq!(
            decrypt(client, "shared", &ciphertext, b"ctx").await,
            (200, plaintext.clone())
        );
        assert_eq!(list(client, "*").await, ["shared"]);
    }
    let again = clients[2]
        .request("POST", "/v1/key/create/shared", None)
        .await;
    assert_eq!(again.status, 400);

    let deleted = clients[0]
        .request("DELETE", "/v1/key/delete/shared", None)
        .await;
    assert_eq!(deleted.status, 200, "{}", deleted.text());
    assert_eq!(
        decrypt(&clients[0], "shared", &ciphertext, b"ctx").await.0,
        404
    );
    // The other nodes see the deletion once their caches expire.
    let deadline = Instant::now() + Duration::from_secs(30);
    for client in &clients[1..] {
        loop {
            let status = decrypt(client, "shared", &ciphertext, b"ctx").await.0;
            if status == 404 {
                break;
            }
            assert_eq!(status, 200);
            assert!(Instant::now() < deadline, "deletion not seen within 30 s");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(list(client, "*").await.is_empty());
    }
}

#[tokio::test]
#[ignore = "needs moto_server; scripts/test runs it"]
async fn https_endpoint_as_bare_host() {
    // moto serves HTTPS with the test's server certificate (127.0.0.1), and
    // the kes process trusts it through SSL_CERT_FILE, which the SDK's
    // native root store honours.
    let tls = Setup::new();
    let cert = tls.server_cert.display().to_string();
    let key = tls.server_key.display().to_string();
    let moto = Moto::start_with(&["-c", &cert, "-k", &key], &[]);
    // No scheme: HTTPS is implied, as in the tutorial.
    let host = format!("127.0.0.1:{}", moto.port);

    let mut setup = with_aws(Setup::new(), &host, "", "");
    setup.env.push(("SSL_CERT_FILE".into(), cert.clone()));
    let server = TestServer::start(setup);
    let admin = server.admin_client();
    let resp = admin.request("POST", "/v1/key/create/tls-key", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let (plaintext, ciphertext) = generate(&admin, "tls-key", b"").await;
    assert_eq!(
        decrypt(&admin, "tls-key", &ciphertext, b"").await,
        (200, plaintext)
    );
    assert_eq!(list(&admin, "*").await, ["tls-key"]);

    // A certificate the server does not trust: it refuses to start.
    let other = Setup::new();
    let mut setup = with_aws(Setup::new(), &host, "", "");
    setup.env.push((
        "SSL_CERT_FILE".into(),
        other.server_cert.display().to_string(),
    ));
    let err = TestServer::try_start(setup)
        .err()
        .expect("untrusted endpoint");
    assert!(
        err.contains("failed to connect to AWS Secrets Manager") && err.contains("certificate"),
        "{err}"
    );
    assert!(!err.contains(SECRET_KEY), "{err}");
}

/// `credentials` all empty: the AWS default chain, here its environment
/// step. Without any credentials, calls fail and the error log says why.
#[tokio::test]
#[ignore = "needs moto_server; scripts/test runs it"]
async fn default_credential_chain() {
    let moto = Moto::start();
    let keystore = format!(
        "keystore:\n  aws:\n    secretsmanager:\n      endpoint: {}\n      region: us-east-1\n",
        moto.endpoint()
    );
    let isolate = |setup: &mut Setup| {
        // No profile files, no instance metadata: only what the test sets.
        let none = setup.dir.path().join("no-such-file").display().to_string();
        for (k, v) in [
            ("AWS_CONFIG_FILE", none.as_str()),
            ("AWS_SHARED_CREDENTIALS_FILE", none.as_str()),
            ("AWS_EC2_METADATA_DISABLED", "true"),
            ("AWS_PROFILE", "default"),
        ] {
            setup.env.push((k.into(), v.into()));
        }
    };

    let mut setup = Setup::new().keystore(&keystore);
    isolate(&mut setup);
    setup
        .env
        .push(("AWS_ACCESS_KEY_ID".into(), ACCESS_KEY.into()));
    setup
        .env
        .push(("AWS_SECRET_ACCESS_KEY".into(), SECRET_KEY.into()));
    let server = TestServer::start(setup);
    let resp = server
        .admin_client()
        .request("POST", "/v1/key/create/from-env", None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    let mut setup = Setup::new().keystore(&keystore);
    isolate(&mut setup);
    setup.env.push(("AWS_ACCESS_KEY_ID".into(), String::new()));
    setup
        .env
        .push(("AWS_SECRET_ACCESS_KEY".into(), String::new()));
    // Starting works: the status probe needs no credentials.
    let server = TestServer::start(setup);
    let resp = server
        .admin_client()
        .request("POST", "/v1/key/create/no-credentials", None)
        .await;
    assert_eq!(resp.status, 502, "{}", resp.text());
    let logged = || server.stderr().contains("no credentials found in chain");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !logged() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged(), "{}", server.stderr());
}
