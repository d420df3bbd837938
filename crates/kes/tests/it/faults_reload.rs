//! Fault test: 100 SIGHUP reloads while clients keep sending requests. A
//! reload swaps the state and TLS config; requests on kept-alive
//! connections, new connections and key creation/deletion must all go on
//! without a single failure.

use crate::common;

use common::{Client, Setup, TestServer};
use kes_core::ApiKey;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RELOADS: usize = 100;
/// Upper bounds for every load loop, whatever happens to the server.
const MAX_REQUESTS_PER_WORKER: u32 = 50_000;
const MAX_RUN: Duration = Duration::from_secs(90);

/// One worker's outcome: successful requests and every failure seen.
type Outcome = (u32, Vec<String>);

/// Keeps one connection alive and alternates generate and decrypt.
async fn keep_alive_worker(admin: Client, stop: Arc<AtomicBool>) -> Outcome {
    let started = Instant::now();
    let (mut ok, mut failed) = (0u32, Vec::new());
    let mut conn = match admin.connect().await {
        Ok(c) => c,
        Err(e) => return (0, vec![format!("connect: {e}")]),
    };
    let mut ciphertext = None::<String>;
    while !stop.load(Ordering::Relaxed)
        && ok < MAX_REQUESTS_PER_WORKER
        && started.elapsed() < MAX_RUN
    {
        let (path, body) = match &ciphertext {
            Some(c) if ok % 2 == 1 => (
                "/v1/key/decrypt/hot",
                format!(r#"{{"ciphertext":"{c}","context":"e30="}}"#),
            ),
            _ => ("/v1/key/generate/hot", r#"{"context":"e30="}"#.to_string()),
        };
        match conn.try_request("POST", path, Some(body.as_bytes())).await {
            Ok(r) if r.status == 200 => {
                ok += 1;
                if path.contains("generate") {
                    ciphertext = r.json()["ciphertext"].as_str().map(str::to_string);
                }
            }
            Ok(r) => failed.push(format!("{path}: {} {}", r.status, r.text())),
            Err(e) => {
                failed.push(format!("{path}: {e}"));
                match admin.connect().await {
                    Ok(c) => conn = c,
                    Err(e) => {
                        failed.push(format!("reconnect: {e}"));
                        break;
                    }
                }
            }
        }
    }
    (ok, failed)
}

/// A new TLS connection (full handshake against the current TLS config)
/// for every request.
async fn new_connection_worker(client: Client, stop: Arc<AtomicBool>) -> Outcome {
    let started = Instant::now();
    let (mut ok, mut failed) = (0u32, Vec::new());
    while !stop.load(Ordering::Relaxed)
        && ok < MAX_REQUESTS_PER_WORKER
        && started.elapsed() < MAX_RUN
    {
        match client
            .try_request("GET", "/v1/key/describe/hot", None)
            .await
        {
            Ok(r) if r.status == 200 => ok += 1,
            Ok(r) => failed.push(format!("describe: {} {}", r.status, r.text())),
            Err(e) => failed.push(format!("describe: {e}")),
        }
    }
    (ok, failed)
}

/// Creates and deletes keys: the key store of the state in use changes
/// under these calls.
async fn churn_worker(admin: Client, stop: Arc<AtomicBool>) -> Outcome {
    let started = Instant::now();
    let (mut ok, mut failed) = (0u32, Vec::new());
    let mut conn = match admin.connect().await {
        Ok(c) => c,
        Err(e) => return (0, vec![format!("connect: {e}")]),
    };
    let mut i = 0u32;
    while !stop.load(Ordering::Relaxed)
        && ok < MAX_REQUESTS_PER_WORKER
        && started.elapsed() < MAX_RUN
    {
        let name = format!("churn-{i}");
        for (method, path) in [
            ("POST", format!("/v1/key/create/{name}")),
            ("DELETE", format!("/v1/key/delete/{name}")),
        ] {
            match conn.try_request(method, &path, None).await {
                Ok(r) if r.status == 200 => ok += 1,
                Ok(r) => failed.push(format!("{method} {path}: {} {}", r.status, r.text())),
                Err(e) => {
                    failed.push(format!("{method} {path}: {e}"));
                    match admin.connect().await {
                        Ok(c) => conn = c,
                        Err(_) => return (ok, failed),
                    }
                }
            }
        }
        i += 1;
    }
    (ok, failed)
}

fn reloads_logged(server: &TestServer) -> usize {
    server.stderr().matches("configuration reloaded").count()
}

/// The server's thread count (`Threads:` of /proc/PID/status).
fn threads(server: &TestServer) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads line")
}

/// Threads a reload may leave for a while besides the server's own:
/// tokio's blocking pool keeps an idle thread 10 s. One replaced fs store
/// alone has 10.
const THREAD_SLACK: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow: scripts/test runs it"]
async fn hundred_sighup_reloads_under_load_fail_no_request() {
    let app = ApiKey::generate();
    let setup = Setup::new();
    let base_config = setup.config();
    let server = TestServer::start(setup);
    let admin = server.admin_client();
    let resp = admin.request("POST", "/v1/key/create/hot", None).await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    let threads_before = threads(&server);

    // The app identity may describe keys in every configuration the test
    // switches between; the two differ in a second policy, so that every
    // reload really builds a different state.
    let with_policy = |extra: &str| {
        format!(
            "{base_config}policy:\n  app:\n    allow:\n      - /v1/key/describe/*\n    identities:\n      - {}\n{extra}",
            app.identity()
        )
    };
    let configs = [
        with_policy(""),
        with_policy(&format!(
            "  other:\n    allow:\n      - /v1/key/list/*\n    identities:\n      - {}\n",
            ApiKey::generate().identity()
        )),
    ];
    std::fs::write(&server.config_path, &configs[0]).unwrap();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloads_logged(&server) < 1 {
        assert!(
            Instant::now() < deadline,
            "first reload not logged: {}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let app_client = server.client(&app);
    assert_eq!(
        app_client
            .request("GET", "/v1/key/describe/hot", None)
            .await
            .status,
        200
    );

    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(tokio::spawn(keep_alive_worker(admin.clone(), stop.clone())));
    }
    for _ in 0..2 {
        workers.push(tokio::spawn(new_connection_worker(
            app_client.clone(),
            stop.clone(),
        )));
    }
    workers.push(tokio::spawn(churn_worker(admin.clone(), stop.clone())));

    // Each reload is confirmed in the log before the next signal, so that
    // signals cannot coalesce: exactly RELOADS reloads happen under load.
    let started = Instant::now();
    let before = reloads_logged(&server);
    for n in 1..=RELOADS {
        std::fs::write(&server.config_path, &configs[n % 2]).unwrap();
        server.signal("HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        while reloads_logged(&server) < before + n {
            assert!(
                Instant::now() < deadline,
                "reload {n} not logged within 10 s: {}",
                server.stderr()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reload_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);

    let (mut total, mut failures) = (0u32, Vec::new());
    for w in workers {
        let (ok, failed) = w.await.unwrap();
        total += ok;
        failures.extend(failed);
    }
    eprintln!(
        "{RELOADS} reloads in {reload_time:?}; {total} successful requests, {} failed",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed requests during reloads: {failures:?}"
    );
    assert!(total > 200, "only {total} requests: the load did not run");
    assert!(
        !server.stderr().contains("failed to reload"),
        "{}",
        server.stderr()
    );
    // The server still serves after the last reload.
    assert_eq!(
        admin
            .request("GET", "/v1/key/describe/hot", None)
            .await
            .status,
        200
    );

    // Replaced states are closed once no request uses them, not 30 s
    // later: the fs stores' threads of 101 states would otherwise still
    // be there. 20 s is well under the 30 s grace period and leaves the
    // blocking pool's idle threads time to end.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut now = threads(&server);
    while now > threads_before + THREAD_SLACK && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = threads(&server);
    }
    eprintln!("threads: {threads_before} before the reloads, {now} after");
    assert!(
        now <= threads_before + THREAD_SLACK,
        "{now} threads after the reloads, {threads_before} before: replaced key stores were not closed"
    );
}
