//! `kes identity` end to end: runs the built binary in a temporary directory.

use std::path::Path;
use std::process::{Command, Output};

const VECTOR_KEY: &str = "kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs";
const VECTOR_IDENTITY: &str = "ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6";

fn kes(dir: &Path, args: &[&str]) -> Output {
    kes_with_env(dir, args, &[])
}

fn kes_with_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kes"));
    cmd.current_dir(dir)
        .args(args)
        .env_remove("KES_IDENTITY_PASSWORD");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().unwrap()
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A field of the output these tests get in a pipe: a JSON object
/// (`identity new`, a fresh API key, a private key file) or the bare hex
/// identity (`identity of`). `label` is the terminal's label.
fn field(text: &str, label: &str) -> String {
    if !text.starts_with('{') {
        assert_eq!(label, "Identity:", "{text}");
        let id = text.trim_end_matches('\n');
        assert_eq!(id.len(), 64, "{text}");
        return id.to_string();
    }
    let key = match label {
        "Identity:" => "identity",
        "API Key:" => "api_key",
        "Private key:" => "private_key",
        "Certificate:" => "certificate",
        other => panic!("unknown label {other}"),
    };
    let json: serde_json::Value = serde_json::from_str(text).unwrap();
    json[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {text}"))
        .to_string()
}

#[test]
fn new_then_of_print_the_same_identity() {
    let dir = tempfile::tempdir().unwrap();
    let new = stdout(&kes(
        dir.path(),
        &["identity", "new", "--ip", "", "localhost"],
    ));
    // In a pipe: one JSON object (on a terminal: labelled lines).
    assert_eq!(new.lines().count(), 1, "{new}");
    assert_eq!(field(&new, "Private key:"), "private.key");
    assert_eq!(field(&new, "Certificate:"), "public.crt");
    let identity = field(&new, "Identity:");
    assert_eq!(identity.len(), 64);

    // In a pipe: only the identity, as the Go KES prints it.
    let of = stdout(&kes(dir.path(), &["identity", "of", "public.crt"]));
    assert_eq!(of, format!("{identity}\n"));

    // A DER copy of the certificate has the same identity.
    let pem_cert = std::fs::read(dir.path().join("public.crt")).unwrap();
    let der_cert = kes_core::pem::parse_certificates(&pem_cert).unwrap();
    std::fs::write(dir.path().join("public.der"), &der_cert[0]).unwrap();
    let of_der = stdout(&kes(dir.path(), &["identity", "of", "public.der"]));
    assert_eq!(of_der, of);
    let bare_der = stdout(&kes(dir.path(), &["identity", "public.der"]));
    assert_eq!(bare_der, of);

    // The certificate is for localhost and the key is private.
    let cert = std::fs::read(dir.path().join("public.crt")).unwrap();
    let der = kes_core::pem::parse_certificates(&cert).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
    let san = parsed.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|name| name.to_string())
        .collect();
    assert_eq!(names, ["DNSName(localhost)"]);
    assert_eq!(
        kes_core::Identity::from_certificate_der(&der[0])
            .unwrap()
            .as_str(),
        identity
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.path().join("private.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The bare form prints the API key of the private key, whose identity
    // is the certificate's.
    let bare = stdout(&kes(dir.path(), &["identity", "private.key"]));
    assert_eq!(field(&bare, "Identity:"), identity);
    let api_key = field(&bare, "API Key:");
    let of_key = stdout(&kes(dir.path(), &["identity", "of", &api_key]));
    assert_eq!(field(&of_key, "Identity:"), identity);
}

#[test]
fn custom_paths_json_and_force() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "identity",
        "new",
        "--key=client.key",
        "--cert=client.crt",
        "--json",
        "MyApp",
    ];
    let first = stdout(&kes(dir.path(), &args));
    let json: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(json["private_key"], "client.key");
    assert_eq!(json["certificate"], "client.crt");
    let identity = json["identity"].as_str().unwrap().to_string();

    // Without --force nothing is overwritten.
    let refused = kes(dir.path(), &args);
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
    let of = stdout(&kes(
        dir.path(),
        &["identity", "of", "client.crt", "--json"],
    ));
    let of: serde_json::Value = serde_json::from_str(&of).unwrap();
    assert_eq!(of["identity"], identity.as_str());

    // With --force both files are replaced by a new identity.
    let mut forced_args = args.to_vec();
    forced_args.push("--force");
    let forced = stdout(&kes(dir.path(), &forced_args));
    let forced: serde_json::Value = serde_json::from_str(&forced).unwrap();
    assert_ne!(forced["identity"], identity.as_str());
    let of = stdout(&kes(dir.path(), &["identity", "of", "client.crt"]));
    assert_eq!(
        field(&of, "Identity:"),
        forced["identity"].as_str().unwrap()
    );

    // A lone existing certificate also blocks creation.
    std::fs::remove_file(dir.path().join("client.key")).unwrap();
    let refused = kes(dir.path(), &args);
    assert_eq!(refused.status.code(), Some(1));
    assert!(!dir.path().join("client.key").exists());
}

#[test]
fn encrypt_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("KES_IDENTITY_PASSWORD", "correct horse")];
    let out = stdout(&kes_with_env(
        dir.path(),
        &[
            "identity",
            "new",
            "--encrypt",
            "--expiry",
            "8760h",
            "Client-1",
        ],
        &env,
    ));
    let identity = field(&out, "Identity:");

    let key_pem = std::fs::read(dir.path().join("private.key")).unwrap();
    assert!(String::from_utf8_lossy(&key_pem).contains("Proc-Type: 4,ENCRYPTED"));
    assert_eq!(
        kes_core::pem::parse_private_key(&key_pem, None).unwrap_err(),
        kes_core::pem::PemError::PasswordRequired
    );
    assert!(kes_core::pem::parse_private_key(&key_pem, Some(b"wrong horse")).is_err());
    let key = kes_core::pem::parse_private_key(&key_pem, Some(b"correct horse")).unwrap();
    let rustls_pki_types::PrivateKeyDer::Pkcs8(pkcs8) = key else {
        panic!("not PKCS#8");
    };
    let api_key = kes_core::ApiKey::from_pkcs8_der(pkcs8.secret_pkcs8_der()).unwrap();
    assert_eq!(api_key.identity().as_str(), identity);

    // The bare form decrypts with the same variable.
    let bare = stdout(&kes_with_env(
        dir.path(),
        &["identity", "private.key"],
        &env,
    ));
    assert_eq!(field(&bare, "Identity:"), identity);

    // 8760h of validity.
    let cert = std::fs::read(dir.path().join("public.crt")).unwrap();
    let der = kes_core::pem::parse_certificates(&cert).unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&der[0]).unwrap();
    let validity = parsed.validity();
    assert_eq!(
        validity.not_after.timestamp() - validity.not_before.timestamp(),
        8760 * 3600
    );
}

#[test]
fn identity_of_the_spec_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&kes(dir.path(), &["identity", "of", VECTOR_KEY]));
    assert_eq!(out, format!("{VECTOR_IDENTITY}\n"));
    let bare = stdout(&kes(dir.path(), &["identity", VECTOR_KEY]));
    assert_eq!(field(&bare, "Identity:"), VECTOR_IDENTITY);

    // An invalid key is an error that does not echo the argument.
    let bad = kes(
        dir.path(),
        &[
            "identity",
            "of",
            "kes:v1:sbDvZFqUPFFwxRS4EkuoEb2nyyInkdKSUEYHXFHeTouW",
        ],
    );
    // An argument that does not parse: a usage error.
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("unsupported type"), "{stderr}");
    assert!(!stderr.contains("sbDvZFqU"), "{stderr}");
}

#[test]
fn bare_identity_generates_a_fresh_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let out = stdout(&kes(dir.path(), &["identity"]));
    let api_key = field(&out, "API Key:");
    let identity = field(&out, "Identity:");
    assert!(api_key.starts_with("kes:v1:"));
    let parsed = kes_core::ApiKey::parse(&api_key).unwrap();
    assert_eq!(parsed.identity().as_str(), identity);

    let json = stdout(&kes(dir.path(), &["identity", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let other = kes_core::ApiKey::parse(json["api_key"].as_str().unwrap()).unwrap();
    assert_eq!(
        other.identity().as_str(),
        json["identity"].as_str().unwrap()
    );
    assert_ne!(other.identity().as_str(), identity);
}

#[test]
fn usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["identity", "new", "--expiry", "soon"][..],
        &["identity", "new", "--expiry", "0"][..],
        &["identity", "new", "--ip", "300.1.1.1"][..],
    ] {
        let out = kes(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).starts_with("Error: "));
    }
    assert!(!dir.path().join("private.key").exists());
    let missing = kes(dir.path(), &["identity", "of", "missing.crt"]);
    assert_eq!(missing.status.code(), Some(1));
    let not_cert = dir.path().join("not.crt");
    std::fs::write(&not_cert, "hello").unwrap();
    let out = kes(dir.path(), &["identity", "of", "not.crt"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("failed to parse certificate in 'not.crt'")
    );
}
