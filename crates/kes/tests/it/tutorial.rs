//! The AWS Secrets Manager tutorial our users follow
//! (shared/seed/kes-aws-secrets-manager-tutorial.txt), command by command,
//! with the real `kes` binary and moto's AWS emulator.
//!
//! Only what cannot be real here differs from the text: the Secrets Manager
//! endpoint is the emulator on 127.0.0.1 (with dummy credentials), the
//! server listens on 127.0.0.1 with a free port, and the self-signed server
//! certificate is trusted the way a user's system would trust it
//! (`SSL_CERT_FILE`).

use crate::common;

use kes_testkit::moto;

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn kes(dir: &Path, args: &[&str], env: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(common::kes_bin());
    cmd.args(args).current_dir(dir).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kes")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
#[ignore = "needs moto_server; scripts/test runs it"]
fn aws_secrets_manager_tutorial() {
    let moto = moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // 1. Server private key and certificate.
    let out = kes(d, &["identity", "new", "--ip", "", "localhost"], &[]);
    assert!(out.status.success(), "{out:?}");
    // In a pipe `identity new` prints JSON (on a terminal: labelled text).
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["private_key"], "private.key");
    assert_eq!(created["certificate"], "public.crt");
    assert_eq!(created["identity"].as_str().unwrap().len(), 64);

    // 2. Client credentials, and their identity recomputed.
    let out = kes(
        d,
        &[
            "identity",
            "new",
            "--key=client.key",
            "--cert=client.crt",
            "MyApp",
        ],
        &[],
    );
    assert!(out.status.success(), "{out:?}");
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(created["private_key"], "client.key");
    assert_eq!(created["certificate"], "client.crt");
    let client_id = created["identity"].as_str().unwrap().to_owned();
    // `$(kes identity of client.crt)`, as the tutorial uses it.
    let out = kes(d, &["identity", "of", "client.crt"], &[]);
    assert_eq!(stdout(&out), format!("{client_id}\n"));

    // 3. The tutorial's config.yml.
    let config = format!(
        r#"address: 127.0.0.1:0 # Listen on all network interfaces on port 7373

admin:
  identity: disabled  # We disable the admin identity since we don't need it in this guide

tls:
  key: private.key    # The KES server TLS private key
  cert: public.crt    # The KES server TLS certificate

policy:
  my-app:
    allow:
    - /v1/key/create/my-key*
    - /v1/key/generate/my-key*
    - /v1/key/decrypt/my-key*
    identities:
    - {client_id} # Use the identity of your client.crt

keystore:
  aws:
    secretsmanager:
      endpoint: {endpoint}  # Use the SecretsManager in your region.
      region:   us-east-2                               # Use your region
      kmskey:   ""                                      # Your AWS-KMS master key (CMK) - optional.
      credentials:
        accesskey: "AKIAIOSFODNN7EXAMPLE" # Your AWS Access Key
        secretkey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" # Your AWS Secret Key
"#,
        endpoint = moto.endpoint()
    );
    std::fs::write(d.join("config.yml"), config).unwrap();

    // 4. Start the server exactly as written (`--auth off` is accepted
    // with a deprecation warning).
    let mut server = Command::new(common::kes_bin())
        .args(["server", "--config", "config.yml", "--auth", "off"])
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let banner = read_banner(&mut server);
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(server);
    let port = banner
        .lines()
        .find_map(|l| l.split("https://").nth(1))
        .and_then(|a| a.trim().rsplit(':').next().map(str::to_string))
        .expect("address in banner");

    // KES CLI access: KES_SERVER, KES_CLIENT_CERT, KES_CLIENT_KEY.
    let env = [
        ("KES_SERVER", format!("https://localhost:{port}")),
        ("KES_CLIENT_CERT", "client.crt".to_string()),
        ("KES_CLIENT_KEY", "client.key".to_string()),
        ("SSL_CERT_FILE", d.join("public.crt").display().to_string()),
    ];

    // 5. `kes key create my-key-1`, then `kes key dek my-key-1`.
    let out = kes(d, &["key", "create", "my-key-1"], &env);
    assert!(out.status.success(), "{out:?}");

    // On a terminal: the tutorial's two lines.
    let mut cmd = Command::new("script");
    cmd.args([
        "-qec",
        &format!("{} key dek my-key-1", common::kes_bin().display()),
        "/dev/null",
    ])
    .current_dir(d)
    .stdin(Stdio::null());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("script(1)");
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let plaintext = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("plaintext : "))
        .unwrap_or_else(|| panic!("no 'plaintext : ' line in {text:?}"));
    let ciphertext = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("ciphertext: "))
        .unwrap_or_else(|| panic!("no 'ciphertext: ' line in {text:?}"));
    assert_eq!(common::unb64(plaintext.trim()).len(), 32);
    assert!(!common::unb64(ciphertext.trim()).is_empty());

    // In a pipe: JSON, as the Go KES prints.
    let out = kes(d, &["key", "dek", "my-key-1"], &env);
    let dek: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(dek["plaintext"].is_string() && dek["ciphertext"].is_string());

    // The policy holds: other keys and other operations are refused.
    let out = kes(d, &["key", "create", "other-key"], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not authorized: insufficient permissions")
    );

    // The key lives in Secrets Manager, in the KES encoding.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let value = rt.block_on(async {
        use kes_keystore::KeyStore as _;
        let store = kes_keystore::aws::connect(&kes_keystore::config::AwsConfig {
            endpoint: moto.endpoint(),
            region: "us-east-2".into(),
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        store.get("my-key-1").await.unwrap()
    });
    let key = kes_core::KeyVersion::decode(&value).unwrap();
    assert_eq!(key.created_by, client_id);
}

fn read_banner(server: &mut std::process::Child) -> String {
    use std::io::{BufRead, BufReader};
    let stdout = server.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("Server is up and running") {
                let _ = tx.send(banner.clone());
            }
        }
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(banner) => banner,
        Err(_) => {
            use std::io::Read as _;
            let _ = server.kill();
            let _ = server.wait();
            let mut err = String::new();
            if let Some(mut e) = server.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("server did not start: {err}");
        }
    }
}

#[test]
fn version_flags_and_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for flag in ["-v", "-V", "--version"] {
        let out = kes(dir.path(), &[flag], &[]);
        assert!(out.status.success(), "{flag}");
        assert!(stdout(&out).starts_with("kes "), "{flag}: {}", stdout(&out));
    }
    // Usage errors exit with 2, with a message.
    let out = kes(dir.path(), &["server"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--config"));
    let out = kes(dir.path(), &["server", "--dev", "--config", "x.yml"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let out = kes(dir.path(), &["no-such-command"], &[]);
    assert_eq!(out.status.code(), Some(2));
}
