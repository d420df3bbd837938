//! Fault test: the active node of a three-node OpenBao cluster (integrated
//! raft storage) is killed with SIGKILL while clients keep using KES, whose
//! Vault key store points at a standby. The standby forwards KES's requests
//! to the active node; once the two survivors have elected a new one, it
//! forwards them there. Cached keys keep serving throughout, creates fail
//! only while the cluster has no active node, KES recovers by itself, and
//! no key is lost or duplicated.

use crate::common;

use kes_testkit::bao;

use bao::BaoCluster;
use common::load::{check_creates, hot_and_cold_keys, ready_status, vault_store, Create, Load};
use common::{Setup, TestServer};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bound of every wait for the cluster or KES to recover.
const RECOVERY: Duration = Duration::from_secs(30);
/// A create may fail this long before the kill is recorded (it was in
/// flight) and after the new leader is seen (the standby's forwarding
/// connection to it is being set up).
const SLACK: Duration = Duration::from_secs(5);

fn setup(endpoint: &str, role: &str, secret: &str) -> Setup {
    Setup::new()
        .keystore(&format!(
            "keystore:\n  vault:\n    endpoint: {endpoint}\n    engine: kv\n    version: v1\n    prefix: kes\n    \
             approle:\n      id: {role}\n      secret: {secret}\n    status:\n      ping: 300ms\n"
        ))
        // Offline caching on: cached keys keep serving during the election.
        .with("cache:\n  expiry:\n    any: 5m\n    unused: 5m\n    offline: 5m\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs OpenBao; scripts/test runs it"]
async fn leader_killed_under_load() {
    let test_started = Instant::now();
    let mut cluster = BaoCluster::start();
    let cluster_up = test_started.elapsed();
    let leader = cluster.leader().expect("an active node");
    let follower = (0..bao::CLUSTER_SIZE).find(|&n| n != leader).unwrap();
    let (role, secret) = cluster.setup_kes("1h", "24h");
    let server = TestServer::start(setup(&cluster.node(follower).endpoint(), &role, &secret));
    let admin = server.admin_client();
    let hot_ciphertext = hot_and_cold_keys(&admin).await;

    // /v1/ready sampled every 50 ms from before the kill to the end.
    let sampling = Arc::new(AtomicBool::new(true));
    let readiness = Arc::new(Mutex::new(Vec::<(Instant, u16)>::new()));
    let sampler = {
        let (admin, sampling, readiness) = (admin.clone(), sampling.clone(), readiness.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let mut samples = 0;
            while sampling.load(Ordering::Relaxed)
                && samples < 2_400
                && started.elapsed() < Duration::from_secs(120)
            {
                samples += 1;
                let status = ready_status(&admin).await;
                readiness.lock().unwrap().push((Instant::now(), status));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let load = Load::start(&admin, &hot_ciphertext, Duration::from_millis(10));
    load.run_for_creates(Instant::now(), 40).await;
    // Counted from the moment the process is gone (killed and reaped).
    cluster.kill(leader);
    let killed = Instant::now();

    // An uncached key needs the store, which has no active node now: the
    // standby cannot forward the read, and KES answers 502 at once.
    let began = Instant::now();
    let cold = admin.json("POST", "/v1/key/generate/cold", json!({})).await;
    let cold_latency = began.elapsed();
    assert_eq!(
        (cold.status, cold.message()),
        (502, "failed to read key".into()),
        "{}",
        cold.text()
    );
    assert!(cold_latency < SLACK, "uncached call took {cold_latency:?}");

    // A survivor names a new active node.
    let new_leader = loop {
        let seen = (0..bao::CLUSTER_SIZE)
            .filter(|&n| cluster.is_alive(n))
            .find_map(|n| cluster.leader_seen_by(n).filter(|&l| l != leader));
        if let Some(l) = seen {
            break l;
        }
        assert!(killed.elapsed() < RECOVERY, "no new leader elected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elected = killed.elapsed();
    assert!(cluster.is_alive(new_leader));

    // Creates work again, without a restart of KES.
    let first_ok_after_kill = loop {
        let ok = load
            .creates()
            .iter()
            .find(|c| c.status == 200 && c.began > killed)
            .map(|c| c.began.duration_since(killed));
        if let Some(t) = ok {
            break t;
        }
        assert!(
            killed.elapsed() < RECOVERY,
            "no create succeeded after the kill"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Load goes on for a while against the new leader.
    load.run_for_creates(Instant::now(), 60).await;
    let result = load.stop().await;
    sampling.store(false, Ordering::Relaxed);
    sampler.await.unwrap();

    let cached_ok = result.cached_never_failed();
    assert!(cached_ok > 100, "only {cached_ok} cached-key requests");
    let creates = result.creates;
    let failed: Vec<&Create> = creates.iter().filter(|c| c.status != 200).collect();
    for c in &failed {
        assert_eq!(
            (c.status, c.message.as_str()),
            (502, "failed to create key"),
            "{c:?}"
        );
        assert!(
            c.began + SLACK > killed,
            "a create failed before the kill: {c:?}"
        );
        assert!(
            c.began < killed + elected + SLACK,
            "a create failed long after the election: {c:?}"
        );
    }
    let slowest_failure = failed.iter().map(|c| c.took).max().unwrap_or_default();
    let error_window = match (failed.first(), failed.last()) {
        (Some(first), Some(last)) => last.began.duration_since(first.began),
        _ => Duration::ZERO,
    };
    let after_kill = creates.iter().filter(|c| c.began > killed).count();
    assert!(after_kill > 10, "only {after_kill} creates after the kill");

    // /v1/ready: the statuses it answered after the kill, and when it was
    // 200 for good.
    let samples = readiness.lock().unwrap().clone();
    let after: Vec<&(Instant, u16)> = samples.iter().filter(|(t, _)| *t > killed).collect();
    let mut not_ready: Vec<u16> = after.iter().map(|s| s.1).filter(|&s| s != 200).collect();
    let ready_summary = match after.iter().rposition(|s| s.1 != 200) {
        None => format!("200 throughout ({} samples after the kill)", after.len()),
        Some(i) => {
            let back = after
                .get(i + 1)
                .expect("/v1/ready never answered 200 again");
            let n = not_ready.len();
            not_ready.sort_unstable();
            not_ready.dedup();
            format!(
                "{n} of {} samples after the kill answered {not_ready:?}, 200 for good {:?} \
                 after the kill",
                after.len(),
                back.0.duration_since(killed)
            )
        }
    };
    assert_eq!(after.last().map(|s| s.1), Some(200));

    // Behind the API, read through the new leader: no key lost or
    // duplicated, failed creates either absent or refused as existing.
    let behind = vault_store(&cluster.node(new_leader).endpoint(), &role, &secret).await;
    let reported_failed_but_exists = check_creates(&behind, &admin, &creates).await;
    // The uncached key is read through the new leader; the cached one is
    // the same key as before.
    let cold = admin.json("POST", "/v1/key/generate/cold", json!({})).await;
    assert_eq!(cold.status, 200, "{}", cold.text());
    let r = admin
        .json(
            "POST",
            "/v1/key/decrypt/hot",
            json!({ "ciphertext": hot_ciphertext }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let mut statuses: Vec<(u16, &str)> = failed
        .iter()
        .map(|c| (c.status, c.message.as_str()))
        .collect();
    statuses.sort_unstable();
    statuses.dedup();
    let error_log = server.stderr();
    eprintln!(
        "KES error log: {} errors, the first: {}",
        error_log
            .lines()
            .filter(|l| l.contains("level=ERROR"))
            .count(),
        error_log
            .lines()
            .find(|l| l.contains("level=ERROR"))
            .unwrap_or_default()
    );
    eprintln!(
        "FIGURES openbao raft: cluster up in {cluster_up:?}; KES -> node {follower} (standby), \
         node {leader} (active) killed, node {new_leader} named active {elected:?} later; \
         cached-key requests {cached_ok} (0 failed); uncached call right after the kill: 502 in \
         {cold_latency:?}; creates {} ({after_kill} after the kill), \
         {} failed {statuses:?} (slowest answer {slowest_failure:?}), error window \
         {error_window:?}, \
         {reported_failed_but_exists} reported failed but exist; first create OK \
         {first_ok_after_kill:?} after the kill; /v1/ready {ready_summary}; keys lost 0, \
         duplicated 0; test took {:?}",
        creates.len(),
        failed.len(),
        test_started.elapsed(),
    );
}
