//! KES pointed at a standby of an OpenBao raft cluster that answers reads
//! itself, OpenBao's default since 2.5 (`disable_standby_reads = false`).
//! The standby forwards writes to the active node but reads its own copy
//! of the raft log, which may lag: a key KES has just created can read as
//! missing for a moment. KES's create-only policy keeps this safe (a
//! create that reads stale never overwrites a key), and the test measures
//! how often a client sees the lag, which docs/vault.md tells operators to
//! avoid.

mod common;

use kes_testkit::bao;

use bao::BaoCluster;
use common::load::vault_store;
use common::{Setup, TestServer};
use kes_keystore::KeyStore;
use serde_json::json;
use std::time::{Duration, Instant};

/// Keys created, each used and created again at once.
const ROUNDS: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_then_use_through_a_read_enabled_standby() {
    let Some(cluster) = BaoCluster::start_with_standby_reads() else {
        return;
    };
    let leader = cluster.leader().expect("an active node");
    let standby = (0..bao::CLUSTER_SIZE).find(|&n| n != leader).unwrap();
    let (role, secret) = cluster.setup_kes("1h", "24h");
    // KES logs in at start, and the standby checks the AppRole secret in
    // its own copy: wait until that copy has the set-up (the raft log is
    // in order, so the mounts and the policy too).
    let deadline = Instant::now() + Duration::from_secs(30);
    let login = json!({ "role_id": role, "secret_id": secret });
    while cluster
        .node(standby)
        .try_request("POST", "auth/approle/login", None, Some(&login))
        .map(|r| r.status)
        != Some(200)
    {
        assert!(
            Instant::now() < deadline,
            "the standby never accepted the login"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let server = TestServer::start(Setup::new().keystore(&format!(
        "keystore:\n  vault:\n    endpoint: {}\n    engine: kv\n    version: v1\n    prefix: kes\n    \
         approle:\n      id: {role}\n      secret: {secret}\n",
        cluster.node(standby).endpoint()
    )));
    let admin = server.admin_client();
    // The active node reads what is committed: the store behind the API.
    let behind = vault_store(&cluster.node(leader).endpoint(), &role, &secret).await;

    let (mut used, mut used_stale) = (0, 0);
    let (mut exists, mut recreate_failed) = (0, 0);
    let mut stored = Vec::new();
    for i in 0..ROUNDS {
        let name = format!("fresh-{i}");
        let r = admin
            .request("POST", &format!("/v1/key/create/{name}"), None)
            .await;
        assert_eq!(r.status, 200, "create {name}: {}", r.text());
        stored.push(behind.get(&name).await.unwrap());

        // Used at once: the standby may not have the key yet.
        let r = admin
            .json("POST", &format!("/v1/key/generate/{name}"), json!({}))
            .await;
        match (r.status, r.message().as_str()) {
            (200, _) => used += 1,
            (404, "key does not exist") => used_stale += 1,
            _ => panic!("generate {name}: {} {}", r.status, r.text()),
        }

        // Created again at once: never a second key. A stale read lets
        // KES try the write, which the create-only policy refuses.
        let r = admin
            .request("POST", &format!("/v1/key/create/{name}"), None)
            .await;
        match (r.status, r.message().as_str()) {
            (400, "key already exists") => exists += 1,
            (502, "failed to create key") => recreate_failed += 1,
            _ => panic!("create {name} again: {} {}", r.status, r.text()),
        }
    }
    // Nothing was overwritten, and once the standby has caught up every
    // key works through it.
    for (i, first) in stored.iter().enumerate() {
        let name = format!("fresh-{i}");
        assert_eq!(
            behind.get(&name).await.unwrap().as_slice(),
            first.as_slice(),
            "{name} was overwritten"
        );
        kes_core::KeyVersion::decode(first).expect("stored value is a KES key");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..ROUNDS {
        let path = format!("/v1/key/generate/fresh-{i}");
        loop {
            let r = admin.json("POST", &path, json!({})).await;
            if r.status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: {} {}",
                r.status,
                r.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "FIGURES openbao standby reads: {ROUNDS} keys created through a standby; used at once: \
         {used} OK, {used_stale} 404 'key does not exist'; created again at once: {exists} 400 \
         'key already exists', {recreate_failed} 502 'failed to create key'; 0 overwritten"
    );
}
