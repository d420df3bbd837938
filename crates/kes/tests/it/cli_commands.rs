//! The `kes` client commands, run as the real binary against the real
//! server, in both output modes: the default when stdout is not a terminal
//! and `--json`.

use crate::common;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::cli::{bare, kes, run};
use common::{Setup, TestServer};
use kes_core::ApiKey;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs a command that must succeed; returns its stdout.
fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "command failed");
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with `code`; returns its stderr.
fn fails(cmd: &mut Command, code: i32) -> String {
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(code), "exit code");
    String::from_utf8(out.stderr).unwrap()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    drop(l);
    addr
}

const POLICY: &str = "policy:\n  app:\n    allow:\n    - /v1/key/create/app-*\n    - /v1/key/generate/app-*\n    - /v1/key/decrypt/app-*\n    deny:\n    - /v1/key/create/app-no*\n    identities:\n    - ${APP_IDENTITY}\n  ops:\n    allow:\n    - /v1/status\n    identities: []\n";

#[test]
fn key_commands() {
    let server = TestServer::start(Setup::new());

    ok(kes(&server).args(["key", "create", "key-a", "key-b"]));
    let err = fails(kes(&server).args(["key", "create", "key-a"]), 1);
    assert_eq!(
        err.trim(),
        "Error: failed to create key 'key-a': key already exists"
    );

    // ls: one name per line by default, a JSON array with --json.
    assert_eq!(ok(kes(&server).args(["key", "ls"])), "key-a\nkey-b\n");
    assert_eq!(
        json(&ok(kes(&server).args(["key", "ls", "--json"]))),
        serde_json::json!(["key-a", "key-b"])
    );
    assert_eq!(ok(kes(&server).args(["key", "ls", "key-b"])), "key-b\n");

    // info: JSON in both modes when not on a terminal.
    for extra in [&[][..], &["--json"][..]] {
        let v = json(&ok(kes(&server).args(["key", "info", "key-a"]).args(extra)));
        assert_eq!(v["name"], "key-a");
        assert_eq!(v["created_by"], server.setup.admin.identity().to_string());
        assert!(v["algorithm"] == "AES256" || v["algorithm"] == "ChaCha20");
    }

    // dek → decrypt round trip, with and without context.
    let context = B64.encode(br#"{"bucket":"bucket/object"}"#);
    for (extra, ctx) in [(&[][..], None), (&["--json"][..], Some(context.as_str()))] {
        let mut cmd = kes(&server);
        cmd.args(["key", "dek", "key-a"]).args(extra);
        if let Some(c) = ctx {
            cmd.arg(c);
        }
        let dek = json(&ok(&mut cmd));
        let plaintext = dek["plaintext"].as_str().unwrap().to_owned();
        assert_eq!(B64.decode(&plaintext).unwrap().len(), 32);
        let mut cmd = kes(&server);
        cmd.args([
            "key",
            "decrypt",
            "key-a",
            dek["ciphertext"].as_str().unwrap(),
        ])
        .args(extra);
        if let Some(c) = ctx {
            cmd.arg(c);
        }
        assert_eq!(
            json(&ok(&mut cmd)),
            serde_json::json!({ "plaintext": plaintext })
        );
    }

    // encrypt → decrypt of a message.
    let enc = json(&ok(kes(&server).args([
        "key",
        "encrypt",
        "key-b",
        "hello world",
    ])));
    let ct = enc["ciphertext"].as_str().unwrap();
    let dec = json(&ok(
        kes(&server).args(["key", "decrypt", "key-b", ct, "--json"])
    ));
    assert_eq!(
        B64.decode(dec["plaintext"].as_str().unwrap()).unwrap(),
        b"hello world"
    );
    // Wrong key: the server's message, exit 1.
    let err = fails(kes(&server).args(["key", "decrypt", "key-a", ct]), 1);
    assert_eq!(
        err.trim(),
        "Error: decryption failed: ciphertext is not authentic"
    );
    // Bad base64: a usage error.
    let err = fails(kes(&server).args(["key", "decrypt", "key-a", "!!"]), 2);
    assert_eq!(err.trim(), "Error: invalid ciphertext: not base64");

    // import
    let raw = B64.encode([0x11u8; 32]);
    ok(kes(&server).args(["key", "import", "imported", &raw]));
    let v = json(&ok(kes(&server).args(["key", "info", "imported", "--json"])));
    assert_eq!(v["algorithm"], "AES256");
    fails(
        kes(&server).args(["key", "import", "bad", "not-base64!"]),
        2,
    );
    let err = fails(
        kes(&server).args(["key", "import", "short", &B64.encode([1u8; 16])]),
        1,
    );
    assert_eq!(
        err.trim(),
        "Error: invalid key size for 'AES256': an AES256 key is 32 bytes (44 base64 characters), this one is 16"
    );

    // rm, then the key is gone.
    ok(kes(&server).args(["key", "rm", "key-a", "imported"]));
    let err = fails(kes(&server).args(["key", "info", "key-a"]), 1);
    assert_eq!(err.trim(), "Error: key 'key-a' does not exist");
    assert_eq!(ok(kes(&server).args(["key", "ls", "*"])), "key-b\n");

    // Commands without a result print nothing, also with --json.
    assert_eq!(
        ok(kes(&server).args(["key", "create", "quiet", "--json"])),
        ""
    );
    assert_eq!(ok(kes(&server).args(["key", "rm", "quiet", "--json"])), "");

    // -e/--enclave is accepted and ignored.
    ok(kes(&server).args(["key", "ls", "-e", "tenant-1"]));
}

#[test]
fn ls_policy_and_identity_listing() {
    let app = ApiKey::generate();
    let mut setup = Setup::new().with(POLICY);
    setup
        .env
        .push(("APP_IDENTITY".into(), app.identity().to_string()));
    let server = TestServer::start(setup);
    ok(kes(&server).args(["key", "create", "app-1"]));

    assert_eq!(ok(kes(&server).args(["ls"])), "app-1\n");
    assert_eq!(ok(kes(&server).args(["ls", "-p"])), "app\nops\n");
    assert_eq!(
        json(&ok(kes(&server).args(["ls", "--policy", "--json", "o"]))),
        serde_json::json!(["ops"])
    );
    let mut ids = [
        server.setup.admin.identity().to_string(),
        app.identity().to_string(),
    ];
    ids.sort();
    assert_eq!(
        ok(kes(&server).args(["ls", "-i"])),
        format!("{}\n{}\n", ids[0], ids[1])
    );

    // identity ls / info
    assert_eq!(
        ok(kes(&server).args(["identity", "ls"])),
        format!("{}\n{}\n", ids[0], ids[1])
    );
    assert_eq!(
        json(&ok(kes(&server).args(["identity", "ls", "--json"]))),
        serde_json::json!(ids)
    );
    for extra in [&[][..], &["--json"][..]] {
        let v = json(&ok(kes(&server)
            .args(["identity", "info", app.identity().as_str()])
            .args(extra)));
        assert_eq!(v["policy"], "app");
        assert_eq!(v["created_by"], server.setup.admin.identity().to_string());
        let me = json(&ok(kes(&server).args(["identity", "info"]).args(extra)));
        assert_eq!(me["identity"], server.setup.admin.identity().to_string());
        assert_eq!(me["admin"], true);
    }
    let err = fails(kes(&server).args(["identity", "info", &"0".repeat(64)]), 1);
    assert_eq!(err.trim(), "Error: identity does not exist");

    // -s and -a win over the environment.
    let mut cmd = kes(&server);
    cmd.env("KES_SERVER", closed_port())
        .env("KES_API_KEY", app.to_kes_string().as_str())
        .args(["ls", "-s", &server.addr.to_string(), "-a"])
        .arg(server.setup.admin.to_kes_string().as_str());
    assert_eq!(ok(&mut cmd), "app-1\n");

    // policy ls / info / show
    assert_eq!(ok(kes(&server).args(["policy", "ls"])), "app\nops\n");
    assert_eq!(
        json(&ok(kes(&server).args(["policy", "ls", "--json"]))),
        serde_json::json!(["app", "ops"])
    );
    for extra in [&[][..], &["--json"][..]] {
        let info = json(&ok(kes(&server)
            .args(["policy", "info", "app"])
            .args(extra)));
        assert_eq!(info["name"], "app");
        assert_eq!(
            info["created_by"],
            server.setup.admin.identity().to_string()
        );
        let show = json(&ok(kes(&server)
            .args(["policy", "show", "app"])
            .args(extra)));
        assert_eq!(show["name"], "app");
        assert_eq!(
            show["deny"],
            serde_json::json!({"/v1/key/create/app-no*": {}})
        );
        assert_eq!(show["allow"].as_object().unwrap().len(), 3);
    }
    let err = fails(kes(&server).args(["policy", "show", "nope"]), 1);
    assert_eq!(err.trim(), "Error: policy does not exist");

    // The app identity is bound by its policy.
    let mut cmd = kes(&server);
    cmd.env("KES_API_KEY", app.to_kes_string().as_str());
    let err = fails(cmd.args(["key", "create", "app-no"]), 1);
    assert_eq!(
        err.trim(),
        "Error: failed to create key 'app-no': not authorized: insufficient permissions"
    );
    let mut cmd = kes(&server);
    cmd.env("KES_API_KEY", app.to_kes_string().as_str());
    let dek = json(&ok(cmd.args(["key", "dek", "app-1"])));
    assert!(dek["ciphertext"].is_string());
}

#[test]
fn status_metric_log_and_completion() {
    let server = TestServer::start(Setup::new().with("log:\n  audit: on\n"));

    let v = json(&ok(kes(&server).args(["status"])));
    assert_eq!(v["online"], true);
    assert_eq!(v["endpoint"], server.addr.to_string());
    assert!(v["num_cpu"].as_u64().unwrap() > 0);
    let v = json(&ok(kes(&server).args(["status", "--short", "--json"])));
    assert_eq!(v["online"], true);
    assert!(v.get("num_cpu").is_none());
    let out = ok(kes(&server).args(["status", "--api", "--json"]));
    let mut lines = out.lines();
    assert_eq!(json(lines.next().unwrap())["online"], true);
    let routes = json(lines.next().unwrap());
    // The Go KES's 22 routes, the two rotation routes and the two of
    // the deletion window.
    assert_eq!(routes.as_array().unwrap().len(), 26);

    // With one of two endpoints down, status reports both and succeeds.
    let dead = closed_port();
    let mut cmd = kes(&server);
    cmd.env("KES_SERVER", format!("{dead},{}", server.addr));
    let out = ok(cmd.arg("status"));
    let reports: Vec<_> = out.lines().map(json).collect();
    assert_eq!(reports[0]["online"], false);
    assert_eq!(reports[0]["endpoint"], dead);
    assert_eq!(reports[1]["online"], true);
    // With every endpoint down it fails.
    let mut cmd = kes(&server);
    cmd.env("KES_SERVER", &dead);
    let err = fails(cmd.arg("status"), 1);
    assert!(err.starts_with("Error: "), "{err}");

    ok(kes(&server).args(["key", "create", "m-1"]));
    let out = ok(kes(&server).args(["metric", "-n", "2", "--rate", "100ms"]));
    let snaps: Vec<_> = out.lines().map(json).collect();
    assert_eq!(snaps.len(), 2);
    assert!(snaps[0]["requests_ok"].as_u64().unwrap() >= 1);
    assert!(snaps[0].get("requests_per_second").is_none());
    assert!(snaps[1]["requests_per_second"].is_number());
    assert!(snaps[1]["system"]["num_cpu"].as_f64().unwrap() > 0.0);
    fails(kes(&server).args(["metric", "--rate", "fast"]), 2);

    // log: the audit event of a create arrives while the command runs.
    for extra in [&[][..], &["--json"][..]] {
        let mut child = kes(&server)
            .args(["log", "--audit"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(15);
        let name = format!("logged-{}", extra.len());
        let mut found = None;
        let mut i = 0;
        while found.is_none() && Instant::now() < deadline {
            ok(kes(&server).args(["key", "create", &format!("{name}-{i}")]));
            i += 1;
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                let v = json(&line);
                if v["request"]["path"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with(&format!("/v1/key/create/{name}"))
                {
                    found = Some(v);
                    break;
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        let event = found.expect("audit event within 15s");
        assert_eq!(event["response"]["code"], 200);
    }
    let mut child = kes(&server)
        .args(["log", "--error", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "log --error exited early"
    );
    let _ = child.kill();
    let _ = child.wait();

    for shell in ["bash", "zsh", "fish"] {
        let out = ok(bare().args(["completion", shell]));
        assert!(out.contains("kes"), "{shell}");
        assert!(out.contains("migrate"), "{shell}");
    }
    fails(bare().args(["completion", "tcsh"]), 2);
}

#[test]
fn connection_settings_and_errors() {
    let setup = Setup::new().with(POLICY);
    let dir = setup.dir.path().to_owned();
    // A client certificate with an encrypted key for the app policy.
    let id = kes_core::certgen::new_identity(&kes_core::certgen::CertificateOptions {
        subject: Some("app".into()),
        ..Default::default()
    })
    .unwrap();
    let cert = dir.join("app.crt");
    let key = dir.join("app.key");
    std::fs::write(
        &cert,
        kes_core::pem::encode("CERTIFICATE", &id.certificate.certificate_der),
    )
    .unwrap();
    std::fs::write(
        &key,
        kes_core::pem::encrypt_private_key(&id.certificate.private_key_der, b"s3cret")
            .unwrap()
            .as_bytes(),
    )
    .unwrap();
    let mut setup = setup;
    setup
        .env
        .push(("APP_IDENTITY".into(), id.identity.to_string()));
    let server = TestServer::start(setup);
    let addr = server.addr.to_string();

    // No credentials at all.
    let err = fails(bare().env("KES_SERVER", &addr).args(["key", "ls"]), 2);
    assert_eq!(
        err.trim(),
        "Error: no API key specified: set KES_API_KEY, or KES_CLIENT_CERT and KES_CLIENT_KEY"
    );
    // API key and certificate together.
    let err = fails(
        kes(&server)
            .env("KES_CLIENT_CERT", &cert)
            .env("KES_CLIENT_KEY", &key)
            .args(["key", "ls"]),
        2,
    );
    assert!(err.contains("not both"), "{err}");
    // An invalid API key.
    let err = fails(
        kes(&server)
            .env("KES_API_KEY", "kes:v1:nope")
            .args(["key", "ls"]),
        2,
    );
    assert!(
        err.starts_with("Error: invalid API key in KES_API_KEY:"),
        "{err}"
    );

    // Certificate files with an encrypted key: password from the environment.
    let cert_cmd = || {
        let mut cmd = bare();
        cmd.env("MINIO_KES_SERVER", &addr)
            .env("KES_CLIENT_CERT", &cert)
            .env("MINIO_KES_CLIENT_KEY", &key)
            .env("KES_CA", &server.setup.server_cert);
        cmd
    };
    ok(cert_cmd()
        .env("KES_CLIENT_KEY_PASSWORD", "s3cret")
        .args(["key", "create", "app-x"]));
    let dek = json(&ok(cert_cmd()
        .env("KES_CLIENT_KEY_PASSWORD", "s3cret")
        .args(["key", "dek", "app-x"])));
    assert!(dek["plaintext"].is_string());
    // MinIO's variables alone (the ones docs/minio.md sets for MinIO) do too.
    let mut minio = bare();
    minio
        .env("MINIO_KMS_KES_ENDPOINT", &addr)
        .env("MINIO_KMS_KES_CERT_FILE", &cert)
        .env("MINIO_KMS_KES_KEY_FILE", &key)
        .env("MINIO_KMS_KES_KEY_PASSWORD", "s3cret")
        .env("MINIO_KMS_KES_CAPATH", &server.setup.server_cert);
    let dek = json(&ok(minio.args(["key", "dek", "app-x"])));
    assert!(dek["plaintext"].is_string());
    // The policy applies to the certificate's identity.
    let err = fails(
        cert_cmd()
            .env("KES_CLIENT_KEY_PASSWORD", "s3cret")
            .args(["key", "ls"]),
        1,
    );
    assert_eq!(
        err.trim(),
        "Error: not authorized: insufficient permissions"
    );
    // No password and no terminal to ask on (the invocation is
    // incomplete: 2); a wrong password (the key file cannot be read: 1).
    let err = fails(cert_cmd().args(["key", "dek", "app-x"]), 2);
    assert!(err.contains("KES_CLIENT_KEY_PASSWORD"), "{err}");
    let err = fails(
        cert_cmd()
            .env("KES_CLIENT_KEY_PASSWORD", "wrong")
            .args(["key", "dek", "app-x"]),
        1,
    );
    assert!(err.contains("password"), "{err}");

    // Fail-over: the first endpoint is down, schemes are stripped.
    let mut cmd = kes(&server);
    cmd.env("KES_SERVER", format!("{},http://{addr}", closed_port()));
    assert_eq!(
        json(&ok(cmd.args(["key", "ls", "--json"]))),
        serde_json::json!(["app-x"])
    );
    let mut cmd = kes(&server);
    cmd.env("KES_SERVER", format!("https://{addr}/"));
    ok(cmd.args(["key", "ls"]));

    // Unreachable server: exit 1 with the connection error.
    let mut cmd = kes(&server);
    cmd.env("KES_SERVER", closed_port());
    let err = fails(cmd.args(["key", "ls"]), 1);
    assert!(err.starts_with("Error: 127.0.0.1:"), "{err}");

    // Server verification: without the CA the self-signed certificate is
    // refused, -k skips the check, --ca wins over nothing.
    let mut cmd = kes(&server);
    cmd.env_remove("KES_CA");
    let err = fails(cmd.args(["key", "ls"]), 1);
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let mut cmd = kes(&server);
    cmd.env_remove("KES_CA");
    ok(cmd.args(["key", "ls", "-k"]));
    let mut cmd = kes(&server);
    cmd.env_remove("KES_CA");
    ok(cmd
        .args(["key", "ls", "--ca"])
        .arg(&server.setup.server_cert));

    // Usage errors from clap exit with 2.
    fails(kes(&server).args(["key", "create"]), 2);
    fails(kes(&server).args(["key", "frobnicate"]), 2);
}
