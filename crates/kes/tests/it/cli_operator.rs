//! What an operator meets first: the output scripts parse, errors that say
//! what to do, exit codes, help, completion and the banner. The real
//! binary, against the real server or a small fake one; terminal output
//! through a pseudo-terminal (`script`).

use crate::common;

use common::cli::{bare, kes, run, VARS};
use common::{Setup, TestServer};
use kes_core::ApiKey;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `kes <args>` in a pseudo-terminal (stdin, stdout and stderr are
/// all the terminal); returns what the terminal showed.
fn on_terminal(dir: &Path, args: &str, env: &[(&str, String)]) -> (i32, String) {
    let mut cmd = Command::new("script");
    cmd.args([
        "-qec",
        &format!("{} {args}", env!("CARGO_BIN_EXE_kes")),
        "/dev/null",
    ])
    .current_dir(dir)
    .stdin(Stdio::null());
    for v in VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("script(1)");
    let text = stdout(&out).replace("\r\n", "\n");
    eprintln!("$ kes {args} (terminal)\n{text}");
    (out.status.code().unwrap_or(-1), text)
}

// ---- 1. Output that scripts rely on ----

#[test]
fn identity_of_in_a_pipe_prints_only_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let new = run(bare().current_dir(d).args([
        "identity",
        "new",
        "--key",
        "client.key",
        "--cert",
        "client.crt",
        "client",
    ]));
    assert!(new.status.success());
    // `kes identity new` in a pipe: one JSON object, like every other
    // command that prints a single result.
    let created: serde_json::Value = serde_json::from_slice(&new.stdout).expect("JSON");
    let identity = created["identity"].as_str().unwrap().to_owned();
    assert_eq!(identity.len(), 64);
    assert_eq!(created["private_key"], "client.key");
    assert_eq!(created["certificate"], "client.crt");

    // `$(kes identity of client.crt)` is the identity: hex and a newline.
    let of = run(bare().current_dir(d).args(["identity", "of", "client.crt"]));
    assert!(of.status.success());
    assert_eq!(stdout(&of), format!("{identity}\n"));
    // The bare form too.
    let bare_form = run(bare().current_dir(d).args(["identity", "client.crt"]));
    assert_eq!(stdout(&bare_form), format!("{identity}\n"));

    // An API key, both forms.
    let key = ApiKey::generate();
    let want = format!("{}\n", key.identity());
    for args in [
        &["identity", "of", key.to_kes_string().as_str()][..],
        &["identity", key.to_kes_string().as_str()][..],
    ] {
        let out = run(bare().current_dir(d).args(args));
        assert_eq!(stdout(&out), want);
        assert!(!stdout(&out).contains("kes:v1:"), "never echo the key");
    }
    // --json stays JSON.
    let out = run(bare()
        .current_dir(d)
        .args(["identity", "of", "client.crt", "--json"]));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!({ "identity": identity })
    );

    // A fresh API key in a pipe: JSON.
    let out = run(bare().current_dir(d).arg("identity"));
    let fresh: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let parsed = ApiKey::parse(fresh["api_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        parsed.identity().as_str(),
        fresh["identity"].as_str().unwrap()
    );

    // On a terminal: labelled text.
    let (code, text) = on_terminal(d, "identity of client.crt", &[]);
    assert_eq!(code, 0);
    assert!(text.contains(&format!("Identity:  {identity}")), "{text}");
    let (code, text) = on_terminal(d, "identity new --key k2.key --cert k2.crt client-2", &[]);
    assert_eq!(code, 0);
    assert!(
        text.contains("Private key:") && text.contains("Identity:"),
        "{text}"
    );
}

#[test]
fn several_names_are_all_tried() {
    let server = TestServer::start(Setup::new());
    let out = run(kes(&server).args(["key", "create", "a", "bad-", "c"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    // One line per failure, naming the key, the server's words first (log
    // scrapers match them), then the rule that was broken.
    assert_eq!(
        err.trim(),
        "Error: failed to create key 'bad-': key name 'bad-' is empty, too long or contains invalid characters: a name must not end with '-'"
    );
    let ls = run(kes(&server).args(["key", "ls"]));
    assert_eq!(stdout(&ls), "a\nc\n", "'c' was created after 'bad-' failed");

    // rm: every name, each failure reported.
    let out = run(kes(&server).args(["key", "rm", "missing", "a", "bad.name", "c"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("Error: failed to delete key 'missing': key does not exist"));
    assert!(err.contains("'.' is not allowed"), "{err}");
    assert_eq!(stdout(&run(kes(&server).args(["key", "ls"]))), "");

    // All good: exit 0, nothing on stderr.
    let out = run(kes(&server).args(["key", "create", "x", "y"]));
    assert!(out.status.success());
    assert!(out.stderr.is_empty());
}

#[test]
fn listing_patterns_say_which_rule_failed() {
    let server = TestServer::start(Setup::new());
    let out = run(kes(&server).args(["key", "ls", "my-"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with("Error: listing pattern 'my-' is empty, too long or is invalid: a pattern must not end with '-'"),
        "{err}"
    );
    // The corrected example of docs/cli.md works.
    assert!(run(kes(&server).args(["key", "ls", "my-*"]))
        .status
        .success());
}

#[test]
fn identity_info_has_no_null_dates_and_reloaded_policies_are_dated_by_the_reload() {
    let setup = Setup::new();
    let client = kes_core::certgen::new_identity(&kes_core::certgen::CertificateOptions {
        subject: Some("app".into()),
        ..Default::default()
    })
    .unwrap();
    let cert = setup.dir.path().join("app.crt");
    let key = setup.dir.path().join("app.key");
    std::fs::write(
        &cert,
        kes_core::pem::encode("CERTIFICATE", &client.certificate.certificate_der),
    )
    .unwrap();
    std::fs::write(
        &key,
        kes_core::pem::encode("PRIVATE KEY", &client.certificate.private_key_der),
    )
    .unwrap();
    let policy = format!(
        "policy:\n  app:\n    allow:\n    - /v1/identity/self/describe\n    identities:\n    - {}\n",
        client.identity
    );
    let server = TestServer::start(setup.with(&policy));

    let app = || {
        let mut cmd = bare();
        cmd.env("KES_SERVER", server.addr.to_string())
            .env("KES_CLIENT_CERT", &cert)
            .env("KES_CLIENT_KEY", &key)
            .env("KES_CA", &server.setup.server_cert);
        cmd
    };
    let out = run(app().args(["identity", "info", "--json"]));
    assert!(out.status.success());
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(info["policy_name"], "app");
    assert!(
        !stdout(&out).contains("null"),
        "no field may be null: {info}"
    );

    // A policy added by SIGHUP is dated with the reload.
    let date = |name: &str| {
        let out = run(kes(&server).args(["policy", "info", name, "--json"]));
        assert!(out.status.success());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        time::OffsetDateTime::parse(
            v["created_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    let before = date("app");
    std::thread::sleep(Duration::from_millis(1100));
    let config = std::fs::read_to_string(&server.config_path).unwrap();
    let config = config.replace(
        "policy:\n  app:",
        "policy:\n  added:\n    allow:\n    - /v1/status\n  app:",
    );
    assert!(config.contains("  added:"));
    std::fs::write(&server.config_path, config).unwrap();
    let reload = Instant::now();
    server.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !run(kes(&server).args(["policy", "info", "added"]))
        .status
        .success()
    {
        assert!(Instant::now() < deadline, "policy 'added' never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    let added = date("added");
    assert!(
        added - before >= time::Duration::seconds(1),
        "added at {added}, server started {before} ({:?} ago)",
        reload.elapsed()
    );
}

// ---- 2. Errors that say what to do ----

#[test]
fn invalid_api_keys_name_their_source_once() {
    let out = run(bare()
        .env("KES_SERVER", "127.0.0.1:1")
        .env("KES_API_KEY", "kes:v1:nope")
        .args(["key", "ls"]));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "Error: invalid API key in KES_API_KEY: invalid length"
    );
    let out = run(bare()
        .env("KES_SERVER", "127.0.0.1:1")
        .args(["ls", "-a", "kes:v1:nope"]));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out).trim(),
        "Error: invalid API key in --api-key: invalid length"
    );
}

#[test]
fn exit_codes_follow_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let code = |cmd: &mut Command| run(cmd.current_dir(d)).status.code();
    // 1: the command ran and failed (here: a file cannot be read).
    assert_eq!(
        code(
            bare()
                .env("KES_CLIENT_CERT", "nope.crt")
                .env("KES_CLIENT_KEY", "nope.key")
                .args(["key", "ls"])
        ),
        Some(1)
    );
    let out = run(bare()
        .current_dir(d)
        .env("KES_CLIENT_CERT", "nope.crt")
        .env("KES_CLIENT_KEY", "nope.key")
        .args(["key", "ls"]));
    assert_eq!(
        stderr(&out).trim(),
        "Error: failed to read client private key 'nope.key' (KES_CLIENT_KEY): no such file"
    );
    assert_eq!(
        code(bare().args(["identity", "of", "missing.crt"])),
        Some(1)
    );
    assert_eq!(
        code(bare().args(["migrate", "--from", "a.yml", "--to", "b.yml"])),
        Some(1)
    );
    // 1: no server.
    assert_eq!(
        code(
            bare()
                .env("KES_SERVER", "127.0.0.1:1")
                .env("KES_API_KEY", ApiKey::generate().to_kes_string().as_str())
                .args(["key", "ls"])
        ),
        Some(1)
    );
    // 2: the invocation is wrong, nothing was tried.
    assert_eq!(code(bare().args(["key", "ls"])), Some(2)); // no credentials
    assert_eq!(code(bare().args(["key", "create"])), Some(2)); // missing argument
    assert_eq!(code(bare().args(["key", "frobnicate"])), Some(2));
    assert_eq!(
        code(bare().args(["identity", "of", "kes:v1:nope"])),
        Some(2)
    );
    assert_eq!(
        code(
            bare()
                .env("KES_API_KEY", ApiKey::generate().to_kes_string().as_str())
                .args(["key", "import", "k", "not base64!"])
        ),
        Some(2)
    );
    assert_eq!(code(bare().args(["server"])), Some(2));
    assert_eq!(
        code(bare().args(["identity", "new", "--expiry", "soon"])),
        Some(2)
    );
    // 0
    assert_eq!(code(bare().args(["--version"])), Some(0));
    assert_eq!(code(bare().args(["key", "--help"])), Some(0));
}

#[test]
fn error_is_coloured_on_a_terminal_like_clap() {
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = on_terminal(dir.path(), "identity of missing.crt", &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains("\x1b[1m\x1b[31mError:\x1b[0m failed to read 'missing.crt': no such file"),
        "{text:?}"
    );
    let (_, text) = on_terminal(
        dir.path(),
        "identity of missing.crt",
        &[("NO_COLOR", "1".into())],
    );
    assert!(
        text.contains("Error: failed to read 'missing.crt'") && !text.contains('\x1b'),
        "{text:?}"
    );
    // Server start-up errors too.
    let (code, text) = on_terminal(dir.path(), "server --config missing.yml", &[]);
    assert_eq!(code, 1);
    assert!(
        text.contains(
            "\x1b[1m\x1b[31mError:\x1b[0m kesconf: failed to read config file 'missing.yml'"
        ),
        "{text:?}"
    );
    // In a pipe: never.
    let out = run(bare()
        .current_dir(dir.path())
        .args(["identity", "of", "missing.crt"]));
    assert!(stderr(&out).starts_with("Error: failed to read"));
}

/// A TLS server on 127.0.0.1 with a self-signed certificate that answers
/// every request with `response` (raw HTTP/1.1 bytes) and counts the TCP
/// connections it accepted.
struct FakeServer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    cert_pem: String,
}

impl FakeServer {
    fn start(response: &'static [u8]) -> FakeServer {
        let id = kes_core::certgen::new_identity(&kes_core::certgen::CertificateOptions {
            subject: Some("localhost".into()),
            ip_addresses: vec!["127.0.0.1".parse().unwrap()],
            ..Default::default()
        })
        .unwrap();
        let cert_pem = kes_core::pem::encode("CERTIFICATE", &id.certificate.certificate_der);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![id.certificate.certificate_der.clone().into()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(id.certificate.private_key_der.to_vec().into()),
        )
        .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut tcp) = stream else { return };
                count.fetch_add(1, Ordering::SeqCst);
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
                    let Ok(mut conn) = rustls::ServerConnection::new(config) else {
                        return;
                    };
                    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match tls.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let _ = tls.write_all(response);
                    let _ = tls.flush();
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        FakeServer {
            addr,
            accepted,
            cert_pem,
        }
    }
}

#[test]
fn untrusted_certificates_are_explained_and_not_retried() {
    let fake = FakeServer::start(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 33\r\n\r\n{\"names\":[\"k1\"],\"continue_at\":\"\"}",
    );
    let start = Instant::now();
    let out = run(bare()
        .env("KES_SERVER", fake.addr.to_string())
        .env("KES_API_KEY", ApiKey::generate().to_kes_string().as_str())
        .args(["key", "ls"]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(
        err.trim(),
        format!(
            "Error: {}: the server's certificate is not trusted {}: pass --ca <file>, or -k for a development server",
            fake.addr,
            reason(&err)
        )
    );
    assert!(!err.contains("Connect") && !err.contains('{'), "{err}");
    assert_eq!(
        fake.accepted.load(Ordering::SeqCst),
        1,
        "a certificate error is not retried ({:?})",
        start.elapsed()
    );
    // With the certificate trusted, the same server works.
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &fake.cert_pem).unwrap();
    let out = run(bare()
        .env("KES_SERVER", fake.addr.to_string())
        .env("KES_API_KEY", ApiKey::generate().to_kes_string().as_str())
        .arg("key")
        .arg("ls")
        .arg("--ca")
        .arg(&ca));
    assert!(out.status.success());
    assert_eq!(stdout(&out), "k1\n");
}

/// The reason in "not trusted (<reason>)", which must be one of the
/// explained ones.
fn reason(err: &str) -> String {
    let r = err
        .split_once("not trusted (")
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(r, _)| r.to_owned())
        .unwrap_or_else(|| panic!("no reason in {err}"));
    assert!(
        ["unknown issuer", "not signed by a trusted CA"].contains(&r.as_str()),
        "{r}"
    );
    format!("({r})")
}

#[test]
fn status_json_keeps_keystore_unavailable() {
    let body = br#"{"version":"v0.0.0","os":"linux","arch":"amd64","uptime":3,"num_cpu":2,"num_cpu_used":2,"mem_heap_used":1,"mem_stack_used":1,"keystore_latency":0,"keystore_unreachable":true,"keystore_unavailable":true}"#;
    let response: &'static [u8] = Box::leak(
        [
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
            body,
        ]
        .concat()
        .into_boxed_slice(),
    );
    let fake = FakeServer::start(response);
    let out = run(bare()
        .env("KES_SERVER", fake.addr.to_string())
        .env("KES_API_KEY", ApiKey::generate().to_kes_string().as_str())
        .args(["status", "--json", "-k"]));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["keystore_unavailable"], true, "{v}");
    assert_eq!(v["keystore_unreachable"], true, "{v}");
}

#[test]
fn log_ends_cleanly_when_the_server_ends_the_stream() {
    let fake = FakeServer::start(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n\
          10\r\n{\"message\":\"a\"}\n\r\n\
          10\r\n{\"message\":\"b\"}\n\r\n\
          0\r\n\r\n",
    );
    let out = run(bare()
        .env("KES_SERVER", fake.addr.to_string())
        .env("KES_API_KEY", ApiKey::generate().to_kes_string().as_str())
        .args(["log", "--error", "-k"]));
    assert_eq!(out.status.code(), Some(0), "a clean end is a normal exit");
    assert_eq!(stdout(&out), "{\"message\":\"a\"}\n{\"message\":\"b\"}\n");
    assert!(!stderr(&out).contains("broken"), "{}", stderr(&out));
}

// ---- 4. Help, completion and banners ----

#[test]
fn every_command_has_examples_and_names_its_environment() {
    let client = [
        &["ls"][..],
        &["key"],
        &["key", "create"],
        &["key", "import"],
        &["key", "info"],
        &["key", "ls"],
        &["key", "rm"],
        &["key", "encrypt"],
        &["key", "decrypt"],
        &["key", "dek"],
        &["policy"],
        &["policy", "ls"],
        &["policy", "info"],
        &["policy", "show"],
        &["identity", "info"],
        &["identity", "ls"],
        &["log"],
        &["status"],
        &["metric"],
    ];
    let offline = [
        &[][..],
        &["server"],
        &["identity"],
        &["identity", "new"],
        &["identity", "of"],
        &["migrate"],
        &["completion"],
    ];
    for args in client.iter().chain(offline.iter()) {
        let out = run(bare().args(*args).arg("--help"));
        assert!(out.status.success(), "{args:?}");
        let help = stdout(&out);
        assert!(help.contains("Examples:\n  $ kes"), "{args:?}: {help}");
        if client.contains(args) {
            for var in [
                "KES_SERVER",
                "KES_API_KEY",
                "KES_CLIENT_CERT",
                "KES_CLIENT_KEY",
                "KES_CLIENT_KEY_PASSWORD",
            ] {
                assert!(help.contains(var), "{args:?} lacks {var}: {help}");
            }
        }
        // Hidden flags stay hidden.
        assert!(!help.contains("--enclave"), "{args:?}");
    }
}

#[test]
fn completion_offers_no_hidden_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let out = run(bare().args(["completion", shell]));
        assert!(out.status.success());
        let script = stdout(&out);
        assert!(script.contains("insecure"), "{shell}");
        assert!(script.contains("json"), "{shell}");
        assert!(!script.contains("enclave"), "{shell}: --enclave is hidden");
        assert!(
            !script.contains("--auth"),
            "{shell}: server --auth is hidden"
        );
    }
}

#[test]
fn usage_lines_do_not_echo_the_given_flags() {
    let out = run(bare().args(["key", "create", "--json", "-k"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let usage = err
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .unwrap_or_else(|| panic!("no usage line: {err}"));
    assert_eq!(usage, "Usage: kes key create [OPTIONS] <NAMES>...");
    assert!(err.contains("<NAMES>"), "{err}");
}

/// Starts `kes server --dev --addr <addr>` and returns the running server
/// with its banner, once it says it is up.
fn dev_server_at(addr: &str) -> (std::process::Child, String) {
    let mut server = bare()
        .args(["server", "--dev", "--addr", addr])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    let mut out = server.stdout.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !banner.contains("Server is up and running") {
        assert!(Instant::now() < deadline, "no banner: {banner}");
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => banner.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    eprintln!("--addr {addr}:\n{banner}");
    (server, banner)
}

/// The endpoints a banner lists, in order.
fn listed_endpoints(banner: &str) -> Vec<&str> {
    banner
        .lines()
        .filter_map(|l| l.split_once("· https://").map(|(_, a)| a.trim()))
        .collect()
}

#[test]
fn dev_server_on_all_interfaces_lists_every_address_and_the_version() {
    let (mut server, banner) = dev_server_at("0.0.0.0:0");
    let _ = server.kill();
    let _ = server.wait();
    let listed = listed_endpoints(&banner);
    assert!(listed[0].starts_with("127.0.0.1:"), "{listed:?}");
    // Every local IPv4 address of the machine is listed.
    let fib = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
    let lines: Vec<&str> = fib.lines().map(str::trim).collect();
    for pair in lines.windows(2) {
        if pair[1] == "/32 host LOCAL" {
            let ip = pair[0].trim_start_matches(['|', '-', '+', ' ']);
            assert!(
                listed.iter().any(|a| a.starts_with(&format!("{ip}:"))),
                "{ip} missing from {listed:?}"
            );
        }
    }
    // `kes --version` and the banner print the same version.
    let version = banner
        .lines()
        .find_map(|l| l.strip_prefix("Version"))
        .unwrap()
        .trim()
        .to_owned();
    let out = run(bare().arg("--version"));
    assert_eq!(stdout(&out).trim(), format!("kes {version}"));
}

#[test]
fn every_listen_address_form_of_the_go_kes_binds_and_answers() {
    // `:PORT` is the Go KES's own help example (`kes server --addr :7000`):
    // every interface, IPv4 included. Each form is reached over loopback.
    for (addr, reach) in [
        (":0", "127.0.0.1"),
        ("localhost:0", "127.0.0.1"),
        ("0.0.0.0:0", "127.0.0.1"),
        ("127.0.0.1:0", "127.0.0.1"),
        ("[::]:0", "127.0.0.1"),
        ("[::1]:0", "[::1]"),
    ] {
        let (mut server, banner) = dev_server_at(addr);
        let listed = listed_endpoints(&banner);
        let port = listed
            .first()
            .and_then(|a| a.rsplit_once(':'))
            .map(|(_, p)| p.to_owned())
            .unwrap_or_else(|| panic!("{addr}: no endpoint in the banner"));
        let key = banner
            .lines()
            .find_map(|l| l.trim().strip_prefix("export KES_API_KEY="))
            .unwrap()
            .to_owned();
        let out = run(bare().args(["status", "-k"]).envs([
            ("KES_SERVER", format!("{reach}:{port}")),
            ("KES_API_KEY", key),
        ]));
        let _ = server.kill();
        let _ = server.wait();
        assert!(
            out.status.success(),
            "{addr}: status via {reach}:{port}: {}",
            stderr(&out)
        );
    }
    for (addr, why) in [
        (":x", "invalid port 'x'"),
        ("7373", "expected HOST:PORT"),
        ("::1:7373", "needs brackets"),
    ] {
        let out = run(bare().args(["server", "--dev", "--addr", addr]));
        assert!(!out.status.success(), "{addr}");
        assert!(
            stderr(&out).contains(&format!("invalid address '{addr}'"))
                && stderr(&out).contains(why),
            "{addr}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn identity_ls_marks_the_admin_and_policies() {
    let app = ApiKey::generate();
    let setup = Setup::new().with(&format!(
        "policy:\n  my-app:\n    allow:\n    - /v1/status\n    identities:\n    - {}\n",
        app.identity()
    ));
    let admin = setup.admin.identity().to_string();
    let server = TestServer::start(setup);
    let env = [
        ("KES_SERVER", server.addr.to_string()),
        (
            "KES_API_KEY",
            server.setup.admin.to_kes_string().as_str().to_owned(),
        ),
        ("KES_CA", server.setup.server_cert.display().to_string()),
    ];
    let (code, text) = on_terminal(server.setup.dir.path(), "identity ls --color never", &env);
    assert_eq!(code, 0);
    let row = |id: &str| {
        text.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{id} not listed: {text}"))
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(row(&admin), "admin");
    assert_eq!(row(app.identity().as_str()), "policy my-app");
    // In a pipe: one identity per line, for scripts.
    let out = run(kes(&server).args(["identity", "ls"]));
    let mut want = [admin.clone(), app.identity().to_string()];
    want.sort();
    assert_eq!(stdout(&out), format!("{}\n", want.join("\n")));
}

// ---- 3. Configs ----

#[test]
fn migrate_reads_only_the_keystore_sections() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (src, dst) = (d.join("src"), d.join("dst"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("k1"), b"stored value one").unwrap();
    std::fs::write(src.join("k2"), b"stored value two").unwrap();
    // Just a key store; and a `${VAR}` elsewhere that is not set, which
    // would stop a server but must not stop a migration.
    std::fs::write(
        d.join("a.yml"),
        format!("keystore:\n  fs:\n    path: {}\n", src.display()),
    )
    .unwrap();
    std::fs::write(
        d.join("b.yml"),
        format!(
            "admin:\n  identity: ${{KES_RS_UNSET_ADMIN}}\nkeystore:\n  fs:\n    path: {}\n",
            dst.display()
        ),
    )
    .unwrap();
    let out = run(bare()
        .current_dir(d)
        .args(["migrate", "--from", "a.yml", "--to", "b.yml"]));
    assert!(out.status.success());
    assert_eq!(
        stdout(&out),
        "Migrated keys: 2 copied, 0 skipped, 0 failed\n"
    );
    assert_eq!(std::fs::read(dst.join("k2")).unwrap(), b"stored value two");

    // A typo in the key store is reported with a suggestion.
    std::fs::write(
        d.join("c.yml"),
        "keystore:\n  aws:\n    secretmanager:\n      region: us-east-1\n",
    )
    .unwrap();
    let out = run(bare()
        .current_dir(d)
        .args(["migrate", "--from", "c.yml", "--to", "b.yml"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with(
            "Error: 'c.yml': kesconf: unknown key 'secretmanager' in line 3 (did you mean 'secretsmanager'?)\n"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn server_config_errors_point_at_the_typo_and_the_file() {
    let setup = Setup::new();
    let d = setup.dir.path();
    std::fs::write(
        d.join("typo.yml"),
        format!(
            "admin:\n  identity: {}\ntls:\n  key: {}\n  cert: {}\nkeystore:\n  fs:\n    pth: ./keys\n",
            setup.admin.identity(),
            setup.server_key.display(),
            setup.server_cert.display()
        ),
    )
    .unwrap();
    let out = run(bare()
        .current_dir(d)
        .args(["server", "--config", "typo.yml"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: kesconf: unknown key 'pth' in line 8 (did you mean 'path'?)\nkesconf: invalid fs keystore: no path specified (keystore.fs.path)\n"
    );
    std::fs::write(
        d.join("nokey.yml"),
        format!(
            "admin:\n  identity: {}\ntls:\n  cert: {}\n  key: nope.key\nkeystore:\n  fs:\n    path: ./keys\n",
            setup.admin.identity(),
            setup.server_cert.display()
        ),
    )
    .unwrap();
    let out = run(bare()
        .current_dir(d)
        .args(["server", "--config", "nokey.yml"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "Error: kesconf: tls.key 'nope.key' in line 5: no such file\n"
    );
}

/// The `[Service]` settings of a systemd unit, as `(key, value)` pairs in
/// file order (a key may repeat, e.g. `ReadWritePaths`).
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.starts_with('#') && !line.is_empty() {
            let (k, v) = line.split_once('=').expect("key=value");
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// Resolves `.` and `..` without touching the file system: the paths are
/// those of the machine the unit is installed on, not of this one.
fn lexical(path: &Path) -> std::path::PathBuf {
    use std::path::Component;
    let mut out = std::path::PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

// The shipped pair must start as is: examples/server-fs.yml installed as
// the unit's --config keeps its keys where ProtectSystem=strict still lets
// the server write (a relative path resolves against WorkingDirectory,
// which the unit keeps read-only).
#[test]
fn systemd_unit_and_fs_example_start_as_a_pair() {
    let examples = crate::manifest_dir().join("../../examples");
    let unit = std::fs::read_to_string(examples.join("kes.service")).unwrap();
    let settings = unit_settings(&unit);
    let get = |key: &str| {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("ProtectSystem"), ["strict"], "the test assumes strict");
    let workdir = Path::new(get("WorkingDirectory")[0]);
    // `-` (ignore if missing) and `+` prefixes do not change the path.
    let writable: Vec<std::path::PathBuf> = get("ReadWritePaths")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .map(|p| Path::new(p.trim_start_matches(['-', '+'])).to_path_buf())
        .chain(
            get("StateDirectory")
                .iter()
                .flat_map(|v| v.split_whitespace())
                .map(|d| Path::new("/var/lib").join(d)),
        )
        .collect();
    assert!(!writable.is_empty(), "the unit names no writable path");
    let exec = get("ExecStart")[0];
    let config = exec
        .split_whitespace()
        .skip_while(|a| *a != "--config")
        .nth(1)
        .expect("ExecStart names --config");
    assert!(
        config.starts_with(workdir.to_str().unwrap()),
        "the config ({config}) is expected in the WorkingDirectory"
    );

    let (keystore, warnings) =
        kes_server::config::load_keystore(&examples.join("server-fs.yml")).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let kes_server::config::KeyStoreConfig::Fs(fs) = keystore else {
        panic!("server-fs.yml is not an fs key store: {keystore:?}");
    };
    let keys = lexical(&workdir.join(&fs.path));
    assert!(
        writable.iter().any(|w| keys.starts_with(w)),
        "keystore.fs.path {} resolves to {} under kes.service, outside its writable paths {writable:?}",
        fs.path.display(),
        keys.display()
    );
}

// systemd's own check of the shipped unit. It insists the ExecStart binary
// exists: point it at the one under test.
#[test]
#[ignore = "needs systemd-analyze; scripts/test runs it"]
fn systemd_accepts_the_shipped_unit() {
    let examples = crate::manifest_dir().join("../../examples");
    let unit = std::fs::read_to_string(examples.join("kes.service")).unwrap();
    let has_analyze = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_analyze,
        "systemd-analyze is missing: apt-get install systemd (scripts/test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kes.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/kes", env!("CARGO_BIN_EXE_kes")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A self-signed certificate (PEM) and its key, valid from `from` to `to`
/// days from now.
fn dated_certificate(name: &str, from: i64, to: i64) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::days(from);
    params.not_after = now + time::Duration::days(to);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

// Mistakes that still start a server are named at start: an admin identity
// no client can have, a server certificate about to expire, an expired CA.
#[test]
fn start_up_warns_about_silent_mistakes_and_still_starts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (cert, key) = dated_certificate("localhost", -60, 10);
    std::fs::write(d.join("server.crt"), cert).unwrap();
    std::fs::write(d.join("server.key"), key).unwrap();
    let (ca, _) = dated_certificate("old-ca", -60, -2);
    std::fs::write(d.join("ca.crt"), ca).unwrap();
    // An upper-case copy of a real identity matches no client.
    let admin = ApiKey::generate().identity().to_string().to_uppercase();
    std::fs::write(
        d.join("config.yml"),
        format!(
            "address: 127.0.0.1:0\nadmin:\n  identity: {admin}\ntls:\n  key: server.key\n  cert: server.crt\n  ca: ca.crt\nkeystore:\n  fs:\n    path: ./keys\n"
        ),
    )
    .unwrap();
    let mut server = bare()
        .current_dir(d)
        .args(["server", "--config", "config.yml"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut banner = String::new();
    let mut out = server.stdout.take().unwrap();
    // stderr is collected as it comes, to wait for the reload's warnings.
    let stderr_text = Arc::new(std::sync::Mutex::new(String::new()));
    let mut stderr_pipe = server.stderr.take().unwrap();
    let sink = Arc::clone(&stderr_text);
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stderr_pipe.read(&mut buf) {
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !banner.contains("Server is up and running") && Instant::now() < deadline {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => banner.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    // A reload says the certificate warnings again (in the error log).
    let reload_warned = |text: &str| text.matches("(CN=localhost) expires on ").count() >= 2;
    if banner.contains("Server is up and running") {
        let hup = Command::new("kill")
            .args(["-HUP", &server.id().to_string()])
            .status()
            .unwrap();
        assert!(hup.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !reload_warned(&stderr_text.lock().unwrap()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    reader.join().unwrap();
    let err = stderr_text.lock().unwrap().clone();
    assert!(
        banner.contains("Server is up and running"),
        "{banner}\n{err}"
    );
    assert!(
        reload_warned(&err),
        "no certificate warning after the reload:\n{err}"
    );
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("Warning: ")).collect();
    let expected = [
        "admin.identity has upper-case letters",
        "tls.cert certificate 'server.crt' (CN=localhost) expires on ",
        "tls.ca certificate 'ca.crt' (CN=old-ca) expired on ",
    ];
    for want in expected {
        assert!(
            warnings.iter().any(|w| w.contains(want)),
            "no warning with {want:?}: {warnings:#?}"
        );
    }
    assert!(
        !err.contains(&admin),
        "the admin value is not echoed: {err}"
    );
}

// Under tls.auth on, a client certificate that does not chain to tls.ca
// ends the connection right after the handshake (TLS 1.3 checks it after
// the client's Finished): the CLI says why instead of "connection closed".
#[test]
fn a_client_certificate_rejected_under_tls_auth_is_named() {
    let mut setup = Setup::new();
    // A CA that did not issue the admin's (self-signed) certificate.
    setup.tls_extra = format!("  auth: on\n  ca: {}\n", setup.server_cert.display());
    let server = TestServer::start(setup);
    // Whether the client sees the server's alert or only the closed
    // connection depends on timing: run it a few times, both must say it.
    for _ in 0..4 {
        let out = run(kes(&server).args(["key", "ls"]));
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains(
                "the server rejected the client certificate (with tls.auth on it must chain to the server's tls.ca)"
            ),
            "{err}"
        );
        assert!(!err.contains("operation was canceled"), "{err}");
    }
}

#[test]
fn errors_name_their_object_and_what_to_do() {
    let server = TestServer::start(Setup::new());
    let dir = server.setup.dir.path();
    let err = stderr(&run(kes(&server).args(["key", "info", "nope"])));
    assert_eq!(err.trim(), "Error: key 'nope' does not exist");

    let short = "QkJCQkJCQkJCQkJCQkJCQg=="; // 16 bytes
    let err = stderr(&run(kes(&server).args(["key", "import", "short", short])));
    assert_eq!(
        err.trim(),
        "Error: invalid key size for 'AES256': an AES256 key is 32 bytes (44 base64 characters), this one is 16"
    );

    // No credentials: both ways to give them.
    let out = run(bare()
        .env("KES_SERVER", server.addr.to_string())
        .args(["key", "ls"]));
    assert_eq!(
        stderr(&out).trim(),
        "Error: no API key specified: set KES_API_KEY, or KES_CLIENT_CERT and KES_CLIENT_KEY"
    );

    // MinIO's variables work like ours (docs/minio.md sets them).
    let other = kes_core::certgen::new_identity(&kes_core::certgen::CertificateOptions {
        subject: Some("other".into()),
        ..Default::default()
    })
    .unwrap();
    let cert = dir.join("minio.crt");
    let key = dir.join("minio.key");
    std::fs::write(
        &cert,
        kes_core::pem::encode("CERTIFICATE", &other.certificate.certificate_der),
    )
    .unwrap();
    let mismatched = kes_core::certgen::new_identity(&Default::default()).unwrap();
    std::fs::write(
        &key,
        kes_core::pem::encode("PRIVATE KEY", &mismatched.certificate.private_key_der),
    )
    .unwrap();
    let cas = dir.join("cas");
    std::fs::create_dir(&cas).unwrap();
    std::fs::copy(&server.setup.server_cert, cas.join("kes.crt")).unwrap();
    let minio = || {
        let mut cmd = bare();
        cmd.env("MINIO_KMS_KES_ENDPOINT", format!("https://{}", server.addr))
            .env("MINIO_KMS_KES_CERT_FILE", &cert)
            .env("MINIO_KMS_KES_KEY_FILE", &key)
            .env("MINIO_KMS_KES_CAPATH", &cas);
        cmd
    };
    // A key that does not fit its certificate: both files are named.
    let err = stderr(&run(minio().args(["key", "ls"])));
    assert!(
        err.starts_with(&format!(
            "Error: the client certificate '{}' (MINIO_KMS_KES_CERT_FILE) and private key '{}' (MINIO_KMS_KES_KEY_FILE) do not belong together",
            cert.display(),
            key.display()
        )),
        "{err}"
    );
    std::fs::write(
        &key,
        kes_core::pem::encode("PRIVATE KEY", &other.certificate.private_key_der),
    )
    .unwrap();
    // Trusted through the CA directory, and identified by the certificate:
    // not the admin, and without a policy, so the server refuses it.
    let err = stderr(&run(minio().args(["key", "ls"])));
    assert_eq!(
        err.trim(),
        "Error: not authorized: insufficient permissions"
    );

    // A key store that fails (its directory replaced by a file): the 502
    // says where the cause is.
    let keys = server.setup.keys_dir();
    std::fs::remove_dir_all(&keys).unwrap();
    std::fs::write(&keys, "not a directory").unwrap();
    let err = stderr(&run(kes(&server).args(["key", "create", "k"])));
    assert_eq!(
        err.trim(),
        "Error: failed to create key 'k': failed to create key (the server's key store failed; its error log has the cause)"
    );
}

// `--encrypt` asks for a password on the terminal; without one the error
// says which variable to set (setsid: no controlling terminal).
#[test]
fn identity_new_encrypt_without_a_terminal_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(Command::new("setsid")
        .arg("--wait")
        .arg(env!("CARGO_BIN_EXE_kes"))
        .args(["identity", "new", "--encrypt", "client"])
        .current_dir(dir.path())
        .env_remove("KES_IDENTITY_PASSWORD")
        .stdin(Stdio::null()));
    assert_eq!(
        stderr(&out).trim(),
        "Error: no terminal to read a password from: set KES_IDENTITY_PASSWORD"
    );
}

/// Every `.yml`/`.yaml` file under `dir`, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yml" | "yaml")
        ) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The scalars of every document of a YAML text, in order; panics with
/// the line on a syntax error.
fn yaml_scalars(path: &Path, text: &str) -> (usize, Vec<String>) {
    use saphyr_parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    let (mut documents, mut scalars) = (0, Vec::new());
    while let Some(next) = parser.next_event() {
        let (event, _) = next
            .unwrap_or_else(|e| panic!("{}:{}: {}", path.display(), e.marker().line(), e.info()));
        match event {
            Event::DocumentStart(_) => documents += 1,
            Event::Scalar(value, ..) => scalars.push(value.to_string()),
            _ => {}
        }
    }
    (documents, scalars)
}

// The shipped manifests are YAML (Kubernetes, compose), and the KES
// configs inside them are valid configs without warnings.
#[test]
fn every_example_yaml_parses_and_embedded_configs_are_valid() {
    let examples = crate::manifest_dir().join("../../examples");
    let files = yaml_files(&examples);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(&examples).unwrap().display().to_string())
        .collect();
    for expected in [
        "compose/docker-compose.yml",
        "compose/config.yml",
        "kubernetes/deployment.yaml",
        "kubernetes/secret.yaml",
        "kubernetes/service.yaml",
    ] {
        assert!(names.iter().any(|n| n == expected), "{expected}: {names:?}");
    }
    let substitute = |text: &str| {
        text.replace(
            "${MINIO_IDENTITY}",
            "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22",
        )
        .replace("${AWS_ACCESS_KEY_ID}", "AKIAIOSFODNN7EXAMPLE")
        .replace("${AWS_SECRET_ACCESS_KEY}", "secret")
    };
    let mut configs = 0;
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let (documents, scalars) = yaml_scalars(path, &text);
        assert!(documents > 0, "{}: no document", path.display());
        // A config embedded in a Secret is the value after `config.yml`.
        let embedded = scalars
            .windows(2)
            .filter(|w| w[0] == "config.yml" && w[1].contains("keystore:"))
            .map(|w| w[1].clone());
        let own = path.ends_with("compose/config.yml").then(|| text.clone());
        for config in embedded.chain(own) {
            let parsed = kes_server::config::ServerConfig::parse(&substitute(&config))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(parsed.warnings, Vec::<String>::new(), "{}", path.display());
            configs += 1;
        }
        if path.ends_with("kubernetes/deployment.yaml") {
            for want in ["/v1/ready", "HTTPS", "65532", "/etc/kes/config.yml"] {
                assert!(scalars.iter().any(|s| s == want), "{want}: {scalars:?}");
            }
            let replicas = scalars.windows(2).find(|w| w[0] == "replicas").unwrap();
            assert_eq!(replicas[1], "2");
        }
    }
    assert_eq!(configs, 2, "the Secret's config and compose/config.yml");
}

// The container image holds everything the server needs: run `/kes
// server` from the image's own root file system (scripts/container
// --rootfs DIR; scripts/test sets KES_TEST_IMAGE_ROOTFS) as the image's
// user, with nothing of this machine visible, and use it over mTLS from
// outside.
#[test]
#[ignore = "needs the container image (KES_TEST_IMAGE_ROOTFS); scripts/test builds it"]
fn the_container_image_serves_from_its_own_root_file_system() {
    let rootfs = std::env::var_os("KES_TEST_IMAGE_ROOTFS").expect(
        "KES_TEST_IMAGE_ROOTFS is not set: run scripts/test, or scripts/container --rootfs DIR",
    );
    let rootfs = std::path::PathBuf::from(rootfs);
    assert!(rootfs.join("kes").is_file(), "{}", rootfs.display());
    // Config and certificates in the image's writable /data, as a mounted
    // volume would put them.
    let setup = Setup::new();
    let dir = rootfs.join(format!("data/test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let inside = Path::new("/data").join(dir.file_name().unwrap());
    std::fs::copy(&setup.server_cert, dir.join("server.crt")).unwrap();
    std::fs::copy(&setup.server_key, dir.join("server.key")).unwrap();
    std::fs::write(
        dir.join("config.yml"),
        format!(
            "address: 127.0.0.1:0\nadmin:\n  identity: {}\ntls:\n  key: {1}/server.key\n  cert: {1}/server.crt\nkeystore:\n  fs:\n    path: {1}/keys\n",
            setup.admin.identity(),
            inside.display()
        ),
    )
    .unwrap();
    for entry in std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .chain([dir.clone()])
    {
        std::os::unix::fs::chown(&entry, Some(65532), Some(65532)).unwrap();
    }
    // Not even /dev, which a container runtime would add: the binary needs
    // nothing but the image (scripts/container builds it with getrandom's
    // system-call backend; the default one fell back to /dev/urandom and
    // the first `create` panicked in a bare root).
    let mut server = Command::new("unshare")
        .args(["--mount", "--pid", "--fork"])
        .arg(format!("--root={}", rootfs.display()))
        .args(["--wd=/data", "--setuid=65532", "--setgid=65532"])
        .args(["/kes", "server", "--config"])
        .arg(inside.join("config.yml"))
        // A group of its own, to be stopped as one (below).
        .process_group(0)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare");
    let mut banner = String::new();
    let mut out = server.stdout.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = [0u8; 4096];
    while !banner.contains("Server is up and running") && Instant::now() < deadline {
        match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => banner.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    let addr = listed_endpoints(&banner).first().map(|a| a.to_string());
    let result = addr.clone().map(|addr| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let client = kes_client::Client::builder()
                .endpoints([addr.as_str()])
                .ca_file(&setup.server_cert)
                .api_key(&setup.admin)
                .build()
                .unwrap();
            let version = client.version().await?;
            client.create_key("image-key").await?;
            let dek = client.generate_key("image-key", b"").await?;
            let plaintext = client.decrypt("image-key", &dek.ciphertext, b"").await?;
            Ok::<_, kes_client::Error>((version, dek.plaintext.to_vec() == plaintext.to_vec()))
        })
    });
    // SIGTERM to the whole group: unshare --fork ignores it itself, and
    // the server in the new PID namespace is still in unshare's group.
    let _ = Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", server.id())])
        .status();
    let _ = server.wait();
    let mut err = String::new();
    let _ = server.stderr.take().unwrap().read_to_string(&mut err);
    let keys_written = dir.join("keys/image-key").exists();
    let _ = std::fs::remove_dir_all(&dir);
    let (version, round_trip) = result
        .unwrap_or_else(|| panic!("no banner: {banner}\n{err}"))
        .unwrap_or_else(|e| panic!("{e}\n{banner}\n{err}"));
    assert_eq!(version.version, kes_server::VERSION, "{banner}");
    assert!(round_trip);
    assert!(keys_written, "the fs store wrote into /data as uid 65532");
}
