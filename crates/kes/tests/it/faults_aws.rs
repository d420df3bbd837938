//! Fault test: moto's AWS emulator is killed (SIGKILL) and restarted while
//! clients keep using the server. Cached keys keep serving, calls that need
//! the emulator fail fast with 502, `/v1/ready` reports the outage with 504,
//! and everything recovers without a restart of KES. No key is lost or
//! duplicated.
//!
//! moto keeps its state in memory only, so it runs with its request
//! recorder on (every request is appended to a file before it is handled)
//! and the restarted emulator replays that file: like a real Secrets
//! Manager, what was written before the crash is still there afterwards,
//! including a create that was in flight when the emulator died. (The
//! test applies the recorded creates and deletes itself: moto's own
//! replay endpoint fails while the restarted emulator is already busy.)

use crate::common;

use kes_testkit::moto;

use common::load::{check_creates, hot_and_cold_keys, ready_status, Create, Load};
use common::{Setup, TestServer};
use kes_keystore::config::AwsConfig;
use kes_keystore::KeyStore;
use moto::Moto;
use serde_json::json;
use std::time::{Duration, Instant};

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// A call that needs the dead emulator must fail within this long.
const FAIL_FAST: Duration = Duration::from_secs(5);

fn setup(moto: &Moto) -> Setup {
    let mut setup = Setup::new()
        .keystore(&format!(
            "keystore:\n  aws:\n    secretsmanager:\n      endpoint: {}\n      region: us-east-1\n      \
             kmskey: \"\"\n      credentials:\n        accesskey: {ACCESS_KEY}\n        secretkey: ${{KES_TEST_AWS_SECRET_KEY}}\n",
            moto.endpoint()
        ))
        // Offline caching on: cached keys keep serving during the outage.
        .with("cache:\n  expiry:\n    any: 5m\n    unused: 5m\n    offline: 5m\n");
    setup
        .env
        .push(("KES_TEST_AWS_SECRET_KEY".into(), SECRET_KEY.into()));
    setup
}

async fn store(moto: &Moto) -> kes_keystore::aws::SecretsManagerKeyStore {
    kes_keystore::aws::connect(&AwsConfig {
        endpoint: moto.endpoint(),
        region: "us-east-1".into(),
        access_key: ACCESS_KEY.into(),
        secret_key: SECRET_KEY.into(),
        ..AwsConfig::default()
    })
    .await
    .unwrap()
}

/// Restores, in the restarted emulator, what the killed one had received:
/// the creates and deletes of its recording, in order, written through the
/// key store as KES would write them. A request the kill tore in the
/// middle of being recorded was never durably received: it is skipped.
async fn restore(moto: &Moto, recording: &str) -> usize {
    use base64::Engine as _;
    let behind = store(moto).await;
    let mut applied = 0;
    for line in recording.lines() {
        let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
            eprintln!("skipping a torn line of the recording");
            continue;
        };
        let target = entry["headers"]["X-Amz-Target"]
            .as_str()
            .unwrap_or_default();
        let raw = entry["body"].as_str().unwrap_or_default();
        let body = if entry["body_encoded"] == true {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap()
        } else {
            raw.as_bytes().to_vec()
        };
        let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) else {
            continue;
        };
        match target {
            "secretsmanager.CreateSecret" => {
                let name = body["Name"].as_str().unwrap();
                let value = body["SecretString"].as_str().unwrap();
                match behind.create(name, value.as_bytes()).await {
                    Ok(()) | Err(kes_keystore::Error::KeyExists) => applied += 1,
                    Err(e) => panic!("restoring {name}: {e}"),
                }
            }
            "secretsmanager.DeleteSecret" => {
                let name = body["SecretId"].as_str().unwrap();
                let _ = behind.delete(name).await;
                applied += 1;
            }
            _ => {}
        }
    }
    applied
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto_server; scripts/test runs it"]
async fn emulator_killed_and_restarted_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let recording = dir.path().join("moto-recording");
    let recording = recording.to_str().unwrap();
    let mut moto = Moto::start_with_env(&[
        ("MOTO_ENABLE_RECORDING", "True"),
        ("MOTO_RECORDER_FILEPATH", recording),
    ]);
    let server = TestServer::start(setup(&moto));
    let admin = server.admin_client();
    let hot_ciphertext = hot_and_cold_keys(&admin).await;

    // Cached-key load (generate and decrypt with "hot", never a failure)
    // and one create after another, every outcome recorded.
    let load = Load::start(&admin, &hot_ciphertext, Duration::from_millis(20));
    load.run_for_creates(Instant::now(), 40).await;
    let killed = Instant::now();
    moto.stop();

    // An uncached key needs the emulator: 502, and fast.
    let began = Instant::now();
    let cold = admin.json("POST", "/v1/key/generate/cold", json!({})).await;
    let cold_latency = began.elapsed();
    assert_eq!(cold.status, 502, "{}", cold.text());
    assert_eq!(cold.message(), "failed to read key");
    assert!(
        cold_latency < FAIL_FAST,
        "uncached call took {cold_latency:?}"
    );

    // /v1/ready notices the outage (the cache checks every 10 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready_status(&admin).await != 504 {
        assert!(
            Instant::now() < deadline,
            "/v1/ready did not report the outage"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let detected = killed.elapsed();
    let ready = admin.request("GET", "/v1/ready", None).await;
    assert_eq!(ready.message(), "key store is not reachable");
    // A create during the outage fails cleanly and fast. (The background
    // creator may not show it: a request in flight when the emulator dies
    // can be retried by the SDK until the emulator is back.)
    let began = Instant::now();
    let r = admin
        .request("POST", "/v1/key/create/during-outage", None)
        .await;
    assert_eq!(
        (r.status, r.message()),
        (502, "failed to create key".to_string()),
        "{}",
        r.text()
    );
    assert!(began.elapsed() < FAIL_FAST, "took {:?}", began.elapsed());

    let restarted = Instant::now();
    let recorded = std::fs::read_to_string(recording).unwrap_or_default();
    moto.restart();
    let restored = restore(&moto, &recorded).await;
    assert!(restored >= 2, "nothing to restore: {restored}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready_status(&admin).await != 200 {
        assert!(Instant::now() < deadline, "/v1/ready did not recover");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready_again = restarted.elapsed();
    // Load goes on for a while against the recovered emulator.
    load.run_for_creates(Instant::now(), 40).await;
    let result = load.stop().await;
    let cached_ok = result.cached_never_failed();
    assert!(cached_ok > 100, "only {cached_ok} cached-key requests");

    let creates = result.creates;
    let failed: Vec<&Create> = creates.iter().filter(|c| c.status != 200).collect();
    let after_restart: Vec<&Create> = creates.iter().filter(|c| c.began > restarted).collect();
    for c in &failed {
        assert_eq!(
            (c.status, c.message.as_str()),
            (502, "failed to create key"),
            "{c:?}"
        );
        assert!(
            c.began + FAIL_FAST > killed,
            "a create failed before the kill: {c:?}"
        );
    }
    // The first create that worked again, counted from the restart.
    let recovered = after_restart
        .iter()
        .find(|c| c.status == 200)
        .map(|c| c.began.duration_since(restarted))
        .expect("no successful create after the restart");
    let last_failure = failed.iter().map(|c| c.began).max().unwrap_or(killed);

    // Behind the API: every create that succeeded is there, once; a
    // create the emulator received just before it died got 502, and a
    // retry gets "key already exists"; one that never reached it is
    // created by a retry.
    let behind = store(&moto).await;
    let reported_failed_but_exists = check_creates(&behind, &admin, &creates).await;
    assert!(
        reported_failed_but_exists <= 1,
        "{reported_failed_but_exists} failed creates exist"
    );
    // The cached key is the same key as before (not a new one).
    let r = admin
        .json(
            "POST",
            "/v1/key/decrypt/hot",
            json!({ "ciphertext": hot_ciphertext }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let cold = admin.json("POST", "/v1/key/generate/cold", json!({})).await;
    assert_eq!(cold.status, 200, "{}", cold.text());

    eprintln!(
        "FIGURES aws: cached-key requests {cached_ok} (0 failed); creates {} ({} failed, all 502 \
         'failed to create key'; {reported_failed_but_exists} reported failed but exist); uncached \
         call failed in {cold_latency:?}; /v1/ready 504 after {detected:?}; outage (kill to \
         restart) {:?}; /v1/ready 200 {ready_again:?} after the restart; first create OK \
         {recovered:?} after the restart; last failed create began {:?} after the kill; keys lost 0",
        creates.len(),
        failed.len(),
        restarted.duration_since(killed),
        last_failure.duration_since(killed),
    );
}
