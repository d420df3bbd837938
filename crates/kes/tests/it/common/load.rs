//! The client load of the key-store fault tests and the checks behind the
//! API that follow it.
//!
//! Two workers generate and decrypt with a cached key ("hot"), which must
//! never fail whatever the key store does; one creator creates keys with
//! unique names (`load-<n>`) one after another and records every outcome.
//! Every loop is bounded in count and time.

use super::Client;
use kes_keystore::KeyStore;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Bounds of every load loop.
pub(crate) const MAX_REQUESTS_PER_WORKER: u32 = 20_000;
pub(crate) const MAX_RUN: Duration = Duration::from_secs(120);

/// One create as the client saw it.
#[derive(Debug, Clone)]
pub(crate) struct Create {
    pub name: String,
    pub began: Instant,
    /// From sending the request to the answer.
    pub took: Duration,
    pub status: u16,
    /// The error message of a failed create (empty on 200).
    pub message: String,
}

/// What the load saw, once stopped.
pub(crate) struct LoadResult {
    /// Cached-key requests answered 200.
    pub cached_ok: u32,
    /// Cached-key requests that failed (status and message, or the
    /// transport error).
    pub cached_failed: Vec<String>,
    /// Every create, in the order they were sent.
    pub creates: Vec<Create>,
}

impl LoadResult {
    /// Asserts that no cached-key request failed, whatever the fault did to
    /// the key store; returns how many were answered 200.
    pub(crate) fn cached_never_failed(&self) -> u32 {
        assert!(
            self.cached_failed.is_empty(),
            "cached key failed: {:?}",
            self.cached_failed
        );
        self.cached_ok
    }
}

/// The running load.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    cached_workers: Vec<JoinHandle<(u32, Vec<String>)>>,
    creator: JoinHandle<()>,
    creates: Arc<Mutex<Vec<Create>>>,
}

impl Load {
    /// Starts two workers that alternate generate and decrypt (of
    /// `hot_ciphertext`) with the key "hot" over one keep-alive connection
    /// each, and one creator that pauses `create_pause` between creates.
    pub(crate) fn start(admin: &Client, hot_ciphertext: &str, create_pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut cached_workers = Vec::new();
        for _ in 0..2 {
            let (admin, stop) = (admin.clone(), stop.clone());
            let decrypt = json!({ "ciphertext": hot_ciphertext }).to_string();
            cached_workers.push(tokio::spawn(async move {
                let started = Instant::now();
                let (mut ok, mut failed) = (0u32, Vec::new());
                let mut conn = admin.connect().await.unwrap();
                let mut sent = 0u32;
                while !stop.load(Ordering::Relaxed)
                    && sent < MAX_REQUESTS_PER_WORKER
                    && started.elapsed() < MAX_RUN
                {
                    let (path, body) = if sent % 2 == 0 {
                        ("/v1/key/generate/hot", "{}")
                    } else {
                        ("/v1/key/decrypt/hot", decrypt.as_str())
                    };
                    sent += 1;
                    match conn.try_request("POST", path, Some(body.as_bytes())).await {
                        Ok(r) if r.status == 200 => ok += 1,
                        Ok(r) => failed.push(format!("{path}: {} {}", r.status, r.text())),
                        Err(e) => {
                            failed.push(format!("{path}: {e}"));
                            conn = admin.connect().await.unwrap();
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                (ok, failed)
            }));
        }
        let creates = Arc::new(Mutex::new(Vec::<Create>::new()));
        let creator = {
            let (admin, stop, creates) = (admin.clone(), stop.clone(), creates.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                let mut n = 0u32;
                while !stop.load(Ordering::Relaxed)
                    && n < MAX_REQUESTS_PER_WORKER
                    && started.elapsed() < MAX_RUN
                {
                    let name = format!("load-{n}");
                    let began = Instant::now();
                    let r = admin
                        .request("POST", &format!("/v1/key/create/{name}"), None)
                        .await;
                    let message = if r.status == 200 {
                        String::new()
                    } else {
                        r.message()
                    };
                    creates.lock().unwrap().push(Create {
                        name,
                        began,
                        took: began.elapsed(),
                        status: r.status,
                        message,
                    });
                    n += 1;
                    tokio::time::sleep(create_pause).await;
                }
            })
        };
        Load {
            stop,
            cached_workers,
            creator,
            creates,
        }
    }

    /// The creates so far.
    pub(crate) fn creates(&self) -> Vec<Create> {
        self.creates.lock().unwrap().clone()
    }

    /// Waits while the load runs until `n` creates that began at or after
    /// `since` have been answered, whatever they answered: a phase of the
    /// load measured in requests, not in time, so that a slow machine gets
    /// the same number of them. Fails after 60 s.
    pub(crate) async fn run_for_creates(&self, since: Instant, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let answered = {
                let creates = self.creates.lock().unwrap();
                creates.iter().filter(|c| c.began >= since).count()
            };
            if answered >= n {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "only {answered} of {n} creates answered in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops every worker and waits for them.
    pub(crate) async fn stop(self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        self.creator.await.unwrap();
        let (mut cached_ok, mut cached_failed) = (0, Vec::new());
        for w in self.cached_workers {
            let (ok, failed) = w.await.unwrap();
            cached_ok += ok;
            cached_failed.extend(failed);
        }
        let creates = self.creates.lock().unwrap().clone();
        LoadResult {
            cached_ok,
            cached_failed,
            creates,
        }
    }
}

/// Creates the keys `hot` and `cold` and uses `hot` once, so that it is
/// cached before a fault while `cold` is not; checks the server is ready.
/// Returns a ciphertext of `hot` for the decrypting load.
pub(crate) async fn hot_and_cold_keys(admin: &Client) -> String {
    for name in ["hot", "cold"] {
        let r = admin
            .request("POST", &format!("/v1/key/create/{name}"), None)
            .await;
        assert_eq!(r.status, 200, "create {name}: {}", r.text());
    }
    let r = admin.json("POST", "/v1/key/generate/hot", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(ready_status(admin).await, 200);
    r.json()["ciphertext"].as_str().unwrap().to_string()
}

/// `/v1/ready`'s status.
pub(crate) async fn ready_status(client: &Client) -> u16 {
    client.request("GET", "/v1/ready", None).await.status
}

/// Waits (at most 30 s) until `/v1/ready` answers `status`; how long it
/// took.
pub(crate) async fn wait_ready(client: &Client, status: u16) -> Duration {
    let started = Instant::now();
    while ready_status(client).await != status {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "/v1/ready never answered {status}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

/// Checks the creates behind the API, in the store `behind`: names are
/// unique (duplicated = 0); every create answered 200 is stored and
/// decodes as a KES key (keys lost = 0); a failed create is either absent,
/// and a retry through `admin` creates it, or stored (the store received
/// it but KES answered an error), and a retry answers 400 `key already
/// exists`. Returns how many failed creates were stored.
pub(crate) async fn check_creates(
    behind: &dyn KeyStore,
    admin: &Client,
    creates: &[Create],
) -> usize {
    let names = behind.list("load-").await.unwrap();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), names.len(), "duplicated names: {names:?}");
    let mut reported_failed_but_exists = 0;
    for c in creates {
        let exists = sorted.binary_search(&c.name).is_ok();
        if c.status == 200 {
            assert!(exists, "key lost: {c:?}");
            let value = behind.get(&c.name).await.unwrap();
            kes_core::KeyVersion::decode(&value).expect("stored value is a KES key");
            continue;
        }
        let retry = admin
            .request("POST", &format!("/v1/key/create/{}", c.name), None)
            .await;
        if exists {
            reported_failed_but_exists += 1;
            assert_eq!(
                (retry.status, retry.message()),
                (400, "key already exists".into()),
                "retry of {c:?}"
            );
        } else {
            assert_eq!(retry.status, 200, "retry of {c:?}: {}", retry.text());
        }
    }
    reported_failed_but_exists
}

/// A K/V v1 store at mount `kv`, prefix `kes` (as the fault tests
/// configure KES), logged in with the AppRole `role`/`secret`: the store
/// behind the API.
pub(crate) async fn vault_store(
    endpoint: &str,
    role: &str,
    secret: &str,
) -> kes_keystore::vault::VaultKeyStore {
    use kes_keystore::config::{VaultAppRole, VaultConfig};
    kes_keystore::vault::connect(&VaultConfig {
        endpoint: endpoint.into(),
        engine: "kv".into(),
        version: "v1".into(),
        prefix: "kes".into(),
        approle: Some(VaultAppRole {
            id: role.into(),
            secret: secret.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap()
}
