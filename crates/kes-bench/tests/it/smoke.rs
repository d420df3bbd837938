//! CI smoke test: the built `kes-bench` against a real `kes server --dev`
//! over mTLS on loopback, and against `kes-bench bare-server`.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A fixed, well-formed API key for servers that accept any client.
const TEST_API_KEY: &str = "kes:v1:ACQpoGqx3rHHjT938Hfu5hVVQJHZWSQVI2Xp5Tqfq/gy";

fn kes_bench() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kes-bench"))
}

/// A child process killed when the test ends, pass or fail.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and reads its stdout until the `API · https://…` line,
/// returning the address and every line read so far.
fn start(mut cmd: Command) -> (Server, String, Vec<String>) {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server");
    let mut server = Server(child);
    let stdout = server.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("server printed no address; output: {lines:?}"));
        if let Some(addr) = line
            .split("https://")
            .nth(1)
            .filter(|_| line.starts_with("API"))
        {
            let addr = addr.trim().to_string();
            // The dev banner prints the API key after the address.
            let until = Instant::now() + Duration::from_secs(2);
            while let Ok(more) = rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
                let done = more.contains("Server is up");
                lines.push(more);
                if done {
                    break;
                }
            }
            return (server, addr, lines);
        }
        lines.push(line);
    }
}

fn bench(args: &[&str], api_key: &str) -> serde_json::Value {
    let out = Command::new(kes_bench())
        .args(args)
        .arg("--json")
        .env("KES_API_KEY", api_key)
        .output()
        .expect("run kes-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kes-bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("--json output: {e}: {stdout}"))
}

fn check(report: &serde_json::Value, requests: u64) {
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["requests"], requests, "{report}");
    let rate = report["requests_per_second"].as_f64().unwrap();
    assert!(rate > 0.0, "{report}");
    let l = &report["latency_us"];
    let (p50, p99, max) = (
        l["p50"].as_u64().unwrap(),
        l["p99"].as_u64().unwrap(),
        l["max"].as_u64().unwrap(),
    );
    assert!(0 < p50 && p50 <= p99 && p99 <= max, "{report}");
}

#[test]
fn against_kes_dev_server() {
    let kes = kes_bench().with_file_name("kes");
    assert!(
        kes.exists(),
        "{} is missing: build it first (cargo build -p kes)",
        kes.display()
    );
    let mut cmd = Command::new(&kes);
    cmd.args(["server", "--dev", "--addr", "127.0.0.1:0"]);
    let (server, addr, lines) = start(cmd);
    let api_key = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("export KES_API_KEY="))
        .expect("dev server prints its API key")
        .to_string();
    let pid = server.0.id().to_string();

    let report = bench(
        &[
            "--server", &addr, "-k", "-c", "4", "-n", "400", "-w", "minio", "--pid", &pid,
        ],
        &api_key,
    );
    check(&report, 400);
    let usage = &report["server"];
    assert!(usage["cpu_seconds"].as_f64().unwrap() > 0.0, "{report}");
    assert!(usage["peak_rss_kib"].as_u64().unwrap() > 1000, "{report}");

    // The soak's mix: every kind of call, key churn included, without errors.
    let report = bench(
        &[
            "--server", &addr, "-k", "-c", "4", "-n", "400", "-w", "mixed",
        ],
        &api_key,
    );
    check(&report, 400);
    assert_eq!(report["workload"], "mixed");
    // Every churn key is gone after the run, so that back-to-back runs
    // (scripts/soak) do not grow the key store.
    let out = Command::new(&kes)
        .args(["key", "ls", "churn*", "--json", "-k"])
        .env("KES_SERVER", &addr)
        .env("KES_API_KEY", &api_key)
        .output()
        .expect("run kes key ls");
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{listed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!listed.contains("churn-"), "churn keys left: {listed}");

    let report = bench(
        &[
            "--server", &addr, "-k", "--http2", "-c", "4", "-n", "200", "-w", "decrypt",
        ],
        &api_key,
    );
    check(&report, 200);
    assert_eq!(report["http"], "h2");

    let report = bench(
        &["--server", &addr, "-k", "-c", "2", "-n", "60", "--new-conn"],
        &api_key,
    );
    check(&report, 60);
    assert_eq!(report["handshakes"], 60);
    // Tickets from the first handshakes resume the later ones.
    assert!(
        report["resumed_handshakes"].as_u64().unwrap() >= 50,
        "{report}"
    );

    let report = bench(
        &[
            "--server",
            &addr,
            "-k",
            "-c",
            "2",
            "-n",
            "20",
            "--new-conn",
            "--no-resume",
        ],
        &api_key,
    );
    check(&report, 20);
    assert_eq!(report["resumed_handshakes"], 0);

    // A key rotated before the run: its data keys sealed with the oldest
    // of 4 versions (so decrypt tries 3 newer ones first) all decrypt.
    let report = bench(
        &[
            "--server",
            &addr,
            "-k",
            "-c",
            "2",
            "-n",
            "100",
            "-w",
            "decrypt",
            "--key-name",
            "rotated-oldest",
            "--rotate",
            "3",
            "--seal-with",
            "oldest",
        ],
        &api_key,
    );
    check(&report, 100);
    let describe = Command::new(kes_bench())
        .args(["get", "--server", &addr, "-k"])
        .arg("/v1/key/describe/rotated-oldest")
        .env("KES_API_KEY", &api_key)
        .output()
        .unwrap();
    assert!(describe.status.success(), "{describe:?}");
    let info: serde_json::Value = serde_json::from_slice(&describe.stdout).unwrap();
    assert_eq!(
        (&info["version"], &info["versions"]),
        (&4.into(), &4.into())
    );
    // Rotating a key that exists would not say which version is the oldest.
    let out = Command::new(kes_bench())
        .args(["--server", &addr, "-k", "-n", "10", "-w", "decrypt"])
        .args(["--key-name", "rotated-oldest", "--rotate", "1"])
        .env("KES_API_KEY", &api_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("'--rotate' needs a new key"),
        "{out:?}"
    );

    // A wrong key is an error the report counts, and the exit code shows.
    let out = Command::new(kes_bench())
        .args(["--server", &addr, "-k", "-n", "10", "-w", "describe"])
        .args(["--key-name", "no-such-key", "--json"])
        .env("KES_API_KEY", &api_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["errors"], 10);
    let kinds = report["error_kinds"].as_object().unwrap();
    assert_eq!(kinds.len(), 1, "{report}");
    let (kind, count) = kinds.iter().next().unwrap();
    assert!(
        kind.starts_with("404 ") && kind.contains("key does not exist"),
        "{report}"
    );
    assert_eq!(count, 10);
}

#[test]
fn against_bare_server() {
    let mut cmd = Command::new(kes_bench());
    cmd.args(["bare-server", "--addr", "127.0.0.1:0"]);
    let (_server, addr, _) = start(cmd);
    // Any client certificate will do: the bare server does not authorize.
    let report = bench(
        &[
            "--server",
            &addr,
            "-k",
            "-c",
            "4",
            "-n",
            "300",
            "--no-create",
        ],
        TEST_API_KEY,
    );
    check(&report, 300);
}

#[test]
fn bad_input_is_a_clear_error() {
    const KEY: Option<&str> = Some(TEST_API_KEY);
    for (api_key, args, message) in [
        (KEY, vec!["--server", "127.0.0.1"], "expected host:port"),
        (
            None,
            vec!["--server", "127.0.0.1:1", "-k"],
            "needs a client certificate",
        ),
        (
            Some("kes:v1:bad"),
            vec!["--server", "127.0.0.1:1", "-k"],
            "invalid API key",
        ),
        (
            KEY,
            vec!["--server", "127.0.0.1:1", "-k", "-d", "ten"],
            "invalid duration",
        ),
        (KEY, vec!["--server", "127.0.0.1:1"], "--insecure"),
        (
            KEY,
            vec!["--server", "127.0.0.1:1", "-k", "-n", "0"],
            "at least 1",
        ),
    ] {
        let mut cmd = Command::new(kes_bench());
        cmd.args(&args).env_remove("KES_API_KEY");
        if let Some(key) = api_key {
            cmd.env("KES_API_KEY", key);
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}
