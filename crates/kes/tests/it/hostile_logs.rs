//! The log path against hostile clients, end to end with the real `kes`
//! binary over mTLS on 127.0.0.1: no client can forge or flood a log line,
//! an audit log nobody drains makes the server refuse calls quickly instead
//! of hanging, log subscribers are capped, the log-event counters count,
//! and a stopping server ends log streams cleanly at once.

use crate::common;

use common::{next_line, Client, KeepAlive, Setup, TestServer};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use kes_core::ApiKey;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Characters that break or disguise a line when written raw.
fn has_raw_line_breaker(s: &str) -> bool {
    s.chars().any(|c| {
        matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}' | '\u{202e}' | '\r')
            || (c.is_control() && c != '\n')
    })
}

/// Sends `request` as it is (bytes no HTTP library would send) over an
/// admin mTLS connection and reads the answer until the server closes.
async fn raw_request(server: &TestServer, request: &[u8]) -> Vec<u8> {
    let config = server.admin_client().tls_config();
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(request).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut answer)).await;
    answer
}

/// Waits up to `timeout` for `f` to return something.
async fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of an unlabelled sample in a metrics scrape.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn client_paths_can_neither_forge_nor_flood_audit_lines() {
    let server = TestServer::start(Setup::new());
    let admin = server.admin_client();
    let mut conn = admin.connect().await.unwrap();
    let stream = conn.stream("GET", "/v1/log/audit").await;
    assert_eq!(stream.status(), 200);
    let mut body = stream.into_body();
    let mut buf = Vec::new();

    // A path that tries to end the line and start a forged one (a request
    // target has no spaces, but U+0085 and U+2028 break lines for many
    // readers), flip the rest of the line (U+202E), and be 60 KB long.
    let forged = "/v1/key/describe/k\u{2028}time=2026-01-01T00:00:00.000Z\u{85}level=INFO\u{85}msg=secret-key-k-deleted\u{202e}";
    // (The longest request target hyper takes is 65534 bytes.)
    let path = format!("{forged}{}", "a".repeat(60 * 1024));
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let answer = raw_request(&server, request.as_bytes()).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&answer)
    );

    // The stdout (text) audit line.
    let line = eventually(Duration::from_secs(10), || {
        server
            .stdout()
            .lines()
            .find(|l| l.contains("req.path=") && l.contains("secret-key-k-deleted"))
            .map(str::to_string)
    })
    .await
    .expect("the request was audited");
    assert!(!has_raw_line_breaker(&line), "{line:?}");
    assert!(line.len() < 2048, "a {} byte audit line", line.len());
    assert!(line.contains(r"k\u2028time="), "{line}");
    assert!(line.contains(r"\u0085level=INFO\u0085msg="), "{line}");
    assert!(line.contains(r"deleted\u202eaaa"), "{line}");
    assert!(line.contains("...[truncated: "), "{line}");
    assert!(!has_raw_line_breaker(&server.stdout()));

    // The JSON event on /v1/log/audit: escaped, cut, still the same path.
    let event = loop {
        let line = tokio::time::timeout(Duration::from_secs(10), next_line(&mut body, &mut buf))
            .await
            .expect("audit event in time")
            .expect("stream open");
        if line.contains("deleted") {
            break line;
        }
    };
    assert!(!has_raw_line_breaker(&event), "{event:?}");
    assert!(event.len() < 2048, "a {} byte audit event", event.len());
    let v: serde_json::Value = serde_json::from_str(&event).unwrap();
    let logged = v["request"]["path"].as_str().unwrap();
    assert!(logged.starts_with(forged), "{logged:?}");
    assert!(logged.ends_with(&format!("...[truncated: {} bytes]", path.len())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undrained_audit_fifo_makes_calls_fail_fast_not_hang() {
    let setup = Setup::new();
    let fifo = setup.dir.path().join("audit.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // A reader that never reads: the pipe fills, then every write blocks.
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let setup = setup.with(&format!("log:\n  audit_file: {}\n", fifo.display()));
    let server = TestServer::start(setup);
    let admin = server.admin_client();

    // Long paths fill the 4 MiB audit queue with a few thousand calls.
    let long = Arc::new(format!("/{}", "a".repeat(1000)));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let admin = admin.clone();
        let long = long.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = admin.connect().await.unwrap();
            for i in 0..2000 {
                let sent = Instant::now();
                let r = tokio::time::timeout(
                    Duration::from_secs(5),
                    conn.try_request("GET", &long, None),
                )
                .await
                .unwrap_or_else(|_| panic!("request {i} not answered within 5 s"))
                .unwrap();
                match r.status {
                    404 => continue,
                    503 => {
                        assert_eq!(r.message(), "audit log unavailable");
                        assert!(sent.elapsed() < Duration::from_secs(1));
                        return Some(i);
                    }
                    other => panic!("unexpected {other}: {}", r.text()),
                }
            }
            None
        }));
    }
    let mut refused = 0;
    for t in tasks {
        if t.await.unwrap().is_some() {
            refused += 1;
        }
    }
    assert!(refused > 0, "no call was refused with a stalled audit log");

    // Calls are refused quickly and cleanly; probes still answer. The probe
    // call is as large as those refused: the queue is full to within less
    // than one such line, and a smaller line could still fit.
    let sent = Instant::now();
    let r = admin.request("GET", &long, None).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.message(), "audit log unavailable");
    assert!(sent.elapsed() < Duration::from_secs(1));
    for probe in ["/v1/status", "/v1/ready", "/version"] {
        let r = admin.request("GET", probe, None).await;
        assert_eq!(r.status, 200, "{probe}: {}", r.text());
    }
    let metrics = admin
        .request("GET", "/v1/metrics?extended=true", None)
        .await
        .text();
    assert!(
        sample(&metrics, "kes_log_audit_refused").unwrap() >= 2.0,
        "{metrics}"
    );
    let said = eventually(Duration::from_secs(5), || {
        server
            .stderr()
            .contains("audit log unavailable")
            .then_some(())
    })
    .await;
    assert!(said.is_some(), "stderr: {}", server.stderr());

    // Once the FIFO is read, calls are answered again and audited.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(held).lines() {
            let Ok(line) = line else { return };
            if line.contains("req.path=/v1/key/create/after-stall ")
                && line.contains(" res.code=200 ")
            {
                let _ = tx.send(());
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = admin
            .request("POST", "/v1/key/create/after-stall", None)
            .await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        assert!(Instant::now() < deadline, "never recovered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the admitted call's audit line reached the FIFO");
}

#[tokio::test]
async fn log_subscribers_are_capped_per_log_and_per_identity() {
    // Five identities allowed to follow the audit log, besides the admin.
    let followers: Vec<ApiKey> = (0..5).map(|_| ApiKey::generate()).collect();
    let identities: String = followers
        .iter()
        .map(|k| format!("    - {}\n", k.identity()))
        .collect();
    let server = TestServer::start(Setup::new().with(&format!(
        "policy:\n  followers:\n    allow:\n    - /v1/log/audit\n    identities:\n{identities}"
    )));
    async fn follow(client: &Client, path: &str) -> (u16, Option<(KeepAlive, Incoming)>) {
        let mut conn = client.connect().await.unwrap();
        let resp = conn.stream("GET", path).await;
        let status = resp.status().as_u16();
        (status, (status == 200).then(|| (conn, resp.into_body())))
    }
    async fn refusal(client: &Client, path: &str) -> String {
        let mut conn = client.connect().await.unwrap();
        let refused = conn.stream("GET", path).await;
        assert_eq!(refused.status(), 503);
        let body = tokio::time::timeout(Duration::from_secs(5), refused.into_body().collect())
            .await
            .expect("a complete answer")
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        v["message"].as_str().unwrap().to_string()
    }

    // One identity gets a quarter of the slots, not all of them.
    let first = server.client(&followers[0]);
    let mut streams = Vec::new();
    for _ in 0..8 {
        let (status, stream) = follow(&first, "/v1/log/audit").await;
        assert_eq!(status, 200);
        streams.push(stream);
    }
    assert_eq!(
        refusal(&first, "/v1/log/audit").await,
        "too many log subscribers"
    );
    // The others still get theirs, up to 32 in all.
    for follower in &followers[1..4] {
        for _ in 0..8 {
            let (status, stream) = follow(&server.client(follower), "/v1/log/audit").await;
            assert_eq!(status, 200);
            streams.push(stream);
        }
    }
    assert_eq!(
        refusal(&server.client(&followers[4]), "/v1/log/audit").await,
        "too many log subscribers"
    );
    // The error log has its own subscribers.
    let admin = server.admin_client();
    assert_eq!(follow(&admin, "/v1/log/error").await.0, 200);

    // A subscriber that goes away frees its slot, for anyone.
    drop(streams.swap_remove(0));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, stream) = follow(&server.client(&followers[4]), "/v1/log/audit").await;
        if status == 200 {
            streams.push(stream);
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn log_event_counters_count_written_lines() {
    let server = TestServer::start(Setup::new());
    let admin = server.admin_client();
    admin.request("POST", "/v1/key/create/counted", None).await;
    admin.request("GET", "/v1/key/describe/counted", None).await;
    // A TLS handshake without a certificate is an error-log line.
    let _ = server
        .anonymous_client()
        .try_request("GET", "/version", None)
        .await;
    // No log subscriber: the lines went to stdout and stderr only.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = admin.request("GET", "/v1/metrics", None).await.text();
        let audit = sample(&metrics, "kes_log_audit_events").unwrap();
        let error = sample(&metrics, "kes_log_error_events").unwrap();
        if audit >= 2.0 && error >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "audit {audit}, error {error}: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_log_streams_cleanly_within_a_second() {
    let mut server = TestServer::start(Setup::new());

    // `kes log` follows the audit log ...
    let mut log = Command::new(common::kes_bin());
    for var in [
        "MINIO_KES_SERVER",
        "MINIO_KMS_KES_ENDPOINT",
        "MINIO_KES_API_KEY",
    ] {
        log.env_remove(var);
    }
    let mut log = log
        .args(["log", "--audit", "--json"])
        .env("KES_SERVER", server.addr.to_string())
        .env("KES_API_KEY", server.setup.admin.to_kes_string().as_str())
        .env("KES_CA", &server.setup.server_cert)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // ... and an HTTP client the error log.
    let mut conn = server.admin_client().connect().await.unwrap();
    let resp = conn.stream("GET", "/v1/log/error").await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let error_stream = tokio::spawn(async move {
        loop {
            match body.frame().await {
                None => return Ok(()),
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(_)) => {}
            }
        }
    });
    let subscribed = eventually(Duration::from_secs(15), || {
        server
            .stdout()
            .contains("req.path=/v1/log/audit")
            .then_some(())
    })
    .await;
    assert!(subscribed.is_some(), "kes log never subscribed");

    let signalled = Instant::now();
    server.signal("TERM");
    let status =
        tokio::task::block_in_place(|| server.wait(Duration::from_secs(15))).expect("server exits");
    let took = signalled.elapsed();
    assert!(status.success(), "{status}");
    assert!(took < Duration::from_millis(1500), "stopping took {took:?}");

    let ended = tokio::time::timeout(Duration::from_secs(2), error_stream)
        .await
        .expect("the error stream ended")
        .unwrap();
    assert_eq!(ended, Ok(()), "the error stream did not end cleanly");

    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        if let Some(status) = log.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "kes log still runs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut stderr = String::new();
    log.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "kes log: {status}: {stderr}");
    assert!(!stderr.contains("broken"), "{stderr}");
}

/// A log stream is authorised when it opens; a SIGHUP that takes an
/// identity out of its policy ends the streams it already has (they would
/// otherwise go on showing it every call's path, identity and key names),
/// while a subscriber that is still allowed keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_ends_the_log_streams_of_revoked_identities() {
    let revoked = ApiKey::generate();
    let kept = ApiKey::generate();
    let setup = Setup::new().with(&format!(
        "policy:\n  auditors:\n    allow:\n      - /v1/log/audit\n      - /v1/log/error\n    identities:\n      - {}\n      - {}\n",
        revoked.identity(),
        kept.identity()
    ));
    let server = TestServer::start(setup);
    let admin = server.admin_client();

    let mut streams = Vec::new();
    for (who, key) in [("revoked", &revoked), ("kept", &kept)] {
        for log in ["/v1/log/audit", "/v1/log/error"] {
            let mut conn = server.client(key).connect().await.unwrap();
            let resp = conn.stream("GET", log).await;
            assert_eq!(resp.status(), 200, "{who} {log}");
            // The connection must outlive the stream.
            streams.push((who, log, conn, resp.into_body(), Vec::new()));
        }
    }
    // Both audit subscribers see calls.
    assert_eq!(admin.request("GET", "/v1/status", None).await.status, 200);
    for (who, log, _, body, buf) in streams.iter_mut().filter(|s| s.1 == "/v1/log/audit") {
        tokio::time::timeout(Duration::from_secs(10), async {
            while !next_line(body, buf)
                .await
                .expect("stream open")
                .contains("/v1/status")
            {}
        })
        .await
        .unwrap_or_else(|_| panic!("{who}: no event on {log}"));
    }

    let config = std::fs::read_to_string(&server.config_path).unwrap();
    let line = format!("      - {}\n", revoked.identity());
    assert!(config.contains(&line));
    std::fs::write(&server.config_path, config.replace(&line, "")).unwrap();
    server.signal("HUP");
    eventually(Duration::from_secs(20), || {
        server
            .stderr()
            .contains("configuration reloaded")
            .then_some(())
    })
    .await
    .expect("the server reloaded");
    let reloaded = Instant::now();

    for (who, log, _, body, buf) in streams.iter_mut().filter(|s| s.0 == "revoked") {
        // Whatever was still on its way, the stream then ends.
        let ended = tokio::time::timeout(Duration::from_secs(2), async {
            while next_line(body, buf).await.is_some() {}
        })
        .await;
        assert!(
            ended.is_ok(),
            "{who}: {log} still open {:?} after the reload",
            reloaded.elapsed()
        );
    }
    // The revoked identity cannot open a new one either.
    let resp = server
        .client(&revoked)
        .request("GET", "/v1/log/audit", None)
        .await;
    assert_eq!(resp.status, 403);

    // The subscriber still allowed keeps its stream.
    assert_eq!(
        admin
            .request("GET", "/v1/key/list/after-reload*", None)
            .await
            .status,
        200
    );
    let (_, _, _, body, buf) = streams
        .iter_mut()
        .find(|s| s.0 == "kept" && s.1 == "/v1/log/audit")
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match next_line(body, buf).await {
                Some(l) if l.contains("after-reload") => return Some(l),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .expect("an event in time");
    assert!(event.is_some(), "the kept subscriber's stream ended");
}
