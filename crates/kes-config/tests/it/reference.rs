//! The Go KES's kesconf fixtures, the AWS tutorial config, every option
//! at once, and the shipped example configs.

use super::*;

#[test]
fn reference_fs() {
    let config = load("fs.yml");
    assert_eq!(config.address.as_deref(), Some("0.0.0.0:7373"));
    assert_eq!(config.admin, Identity::new(ADMIN));
    assert_eq!(config.tls.key, PathBuf::from("./server.key"));
    assert_eq!(config.tls.cert, PathBuf::from("./server.cert"));
    assert_eq!(config.tls.auth, TlsAuth::Off);
    assert!(config.tls.password.is_none() && config.tls.ca.is_none());
    match &config.keystore {
        KeyStoreConfig::Fs(fs) => assert_eq!(fs.path, PathBuf::from("/tmp/keys")),
        other => panic!("wrong keystore {other:?}"),
    }
    assert!(config.policies.is_empty() && config.api.is_empty() && config.keys.is_empty());
    assert!(!config.skips_auth_anywhere());
}

#[test]
fn reference_custom_api() {
    let config = load("custom-api.yml");
    assert_eq!(config.admin.as_str(), "disabled");
    let status = &config.api["/v1/status"];
    assert_eq!((status.timeout, status.skip_auth), (Some(secs(17)), true));
    let metrics = &config.api["/v1/metrics"];
    assert_eq!((metrics.timeout, metrics.skip_auth), (Some(secs(22)), true));
    assert_eq!(config.api.len(), 2);
    assert!(config.skips_auth_anywhere());
    assert_eq!(config.cache.any, secs(300));
    assert_eq!(config.cache.unused, secs(30));
    assert_eq!(config.cache.offline, Duration::ZERO);
}

#[test]
fn reference_vault_approle() {
    let config = load("vault-approle.yml");
    let KeyStoreConfig::Vault(vault) = &config.keystore else {
        panic!("wrong keystore {:?}", config.keystore)
    };
    assert_eq!(vault.endpoint, "https://127.0.0.1:8200");
    assert_eq!(vault.engine, "kv");
    assert_eq!(vault.version, "v2");
    assert_eq!(vault.namespace, "ns1");
    assert_eq!(vault.prefix, "tenant-1");
    let approle = vault.approle.as_ref().unwrap();
    assert_eq!(approle.engine, "approle");
    assert_eq!(approle.id, "db02de05-fa39-4855-059b-67221c5c2f63");
    assert_eq!(approle.secret, "6a174c20-f6de-a53c-74d2-6018fcceff64");
    assert!(vault.kubernetes.is_none() && vault.transit.is_none());
    assert_eq!(vault.tls_ca, "/tmp/vault-ca.pem");
    assert_eq!(vault.status_ping, secs(15));
}

#[test]
fn reference_vault_k8s_inline_jwt() {
    let config = load("vault-k8s.yml");
    let KeyStoreConfig::Vault(vault) = &config.keystore else {
        panic!("wrong keystore {:?}", config.keystore)
    };
    assert_eq!(vault.endpoint, "https://127.0.0.1:8201");
    assert_eq!(vault.engine, "secrets");
    assert_eq!(vault.version, "v1");
    assert_eq!(vault.namespace, "ns2");
    assert_eq!(vault.prefix, "tenant-2");
    let k8s = vault.kubernetes.as_ref().unwrap();
    assert_eq!(k8s.engine, "kubernetes");
    assert_eq!(k8s.role, "default");
    assert!(k8s.jwt.starts_with(JWT_PREFIX) && k8s.jwt.ends_with(JWT_SUFFIX));
    assert!(vault.approle.is_none());
    assert_eq!(vault.status_ping, secs(10), "documented default");
}

#[test]
fn reference_vault_k8s_jwt_file() {
    // The fixture names the file relative to the crate directory, which is
    // the working directory of `cargo test`.
    let config = load("vault-k8s-with-service-account-file.yml");
    let KeyStoreConfig::Vault(vault) = &config.keystore else {
        panic!("wrong keystore {:?}", config.keystore)
    };
    let k8s = vault.kubernetes.as_ref().unwrap();
    // The path is kept: the backend re-reads the (rotated) token per login.
    assert_eq!(k8s.jwt, "./tests/data/config/vault-k8s-service-account");
    let token = std::fs::read_to_string(fixture("vault-k8s-service-account")).unwrap();
    assert!(token.starts_with(JWT_PREFIX) && token.ends_with(JWT_SUFFIX));
    assert_eq!(
        (vault.engine.as_str(), vault.namespace.as_str()),
        ("secrets", "ns2")
    );
}

#[test]
fn reference_aws_with_and_without_credentials() {
    let config = load("aws.yml");
    let KeyStoreConfig::Aws(aws) = &config.keystore else {
        panic!("wrong keystore {:?}", config.keystore)
    };
    assert_eq!(aws.endpoint, "secretsmanager.us-east-2.amazonaws.com");
    assert_eq!(aws.region, "us-east-2");
    assert_eq!(aws.access_key, "AKIAIOSFODNN7EXAMPLE");
    assert_eq!(aws.secret_key, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    assert_eq!((aws.kms_key.as_str(), aws.prefix.as_str()), ("", ""));
    assert_eq!(
        config.tls.key,
        PathBuf::from("./server.key"),
        "trailing spaces"
    );

    let config = load("aws-no-credentials.yml");
    let KeyStoreConfig::Aws(aws) = &config.keystore else {
        panic!("wrong keystore {:?}", config.keystore)
    };
    assert_eq!(aws.region, "us-east-2");
    assert!(aws.access_key.is_empty() && aws.secret_key.is_empty());
    assert!(aws.session_token.is_empty());
}

#[test]
fn aws_tutorial_config() {
    let config = load("aws-tutorial.yml");
    assert_eq!(config.address.as_deref(), Some("0.0.0.0:7373"));
    assert_eq!(config.admin.as_str(), "disabled");
    assert!(!config.admin.is_hash());
    assert_eq!(config.tls.key, PathBuf::from("private.key"));
    assert_eq!(config.tls.cert, PathBuf::from("public.crt"));
    let app = &config.policies["my-app"];
    assert_eq!(
        app.identities,
        [Identity::new(
            "02ef5321ca409dbc7b10e7e8ee44d1c3b91e4bf6e2198befdebee6312745267b"
        )]
    );
    assert!(app.policy.allows("/v1/key/create/my-key-1"));
    assert!(app.policy.allows("/v1/key/generate/my-key-1"));
    assert!(app.policy.allows("/v1/key/decrypt/my-key-1"));
    assert!(!app.policy.allows("/v1/key/delete/my-key-1"));
    assert!(!app.policy.allows("/v1/key/create/other"));
    let KeyStoreConfig::Aws(aws) = &config.keystore else {
        panic!("wrong keystore {:?}", config.keystore)
    };
    assert_eq!(aws.endpoint, "secretsmanager.us-east-2.amazonaws.com");
    assert_eq!(aws.region, "us-east-2");
    assert!(aws.kms_key.is_empty() && aws.access_key.is_empty() && aws.secret_key.is_empty());
}

#[test]
fn full_config_with_new_options() {
    let yaml = with(
        r#"
address: 127.0.0.1:7001
tls:
  key: k.pem
  cert: c.pem
  password: hunter2
  auth: ON
  ca: /etc/kes/ca
  proxy:
    identities:
    - 1111111111111111111111111111111111111111111111111111111111111111
    header:
      cert: X-Tls-Client-Cert
log:
  error: warn
  audit: "off"
  format: JSON
  audit_file: /var/log/kes/audit.log
keys:
- name: minio-default
- name: app-key
"#,
    )
    .replace("tls:\n  key: ./server.key\n  cert: ./server.cert\n", "");
    let config = ServerConfig::parse(&yaml).unwrap();
    assert_eq!(config.address.as_deref(), Some("127.0.0.1:7001"));
    assert_eq!(
        config.tls.password.as_deref().map(String::as_str),
        Some("hunter2")
    );
    assert_eq!(config.tls.auth, TlsAuth::On);
    assert_eq!(config.tls.ca, Some(PathBuf::from("/etc/kes/ca")));
    assert_eq!(config.tls.proxy.identities.len(), 1);
    assert_eq!(
        config.tls.proxy.cert_header.as_deref(),
        Some("X-Tls-Client-Cert")
    );
    assert_eq!(config.log.error, LogLevel::WARN);
    assert_eq!(config.log.audit, LogLevel::OFF);
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(
        config.log.audit_file,
        Some(PathBuf::from("/var/log/kes/audit.log"))
    );
    assert_eq!(config.keys, ["minio-default", "app-key"]);

    // Secrets stay out of Debug output (and so out of any log line).
    let debug = format!("{config:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(debug.contains("<redacted>"));
}

#[test]
fn secrets_are_redacted_in_debug() {
    let config = load("aws.yml");
    let debug = format!("{config:?}");
    assert!(!debug.contains("wJalrXUtnFEMI"), "{debug}");
    assert!(debug.contains("secretsmanager.us-east-2.amazonaws.com"));

    let config = load("vault-approle.yml");
    let debug = format!("{config:?}");
    assert!(!debug.contains("6a174c20-f6de"), "{debug}");

    let config = load("vault-k8s.yml");
    let debug = format!("{config:?}");
    assert!(!debug.contains(JWT_SUFFIX), "{debug}");
}

#[test]
fn example_configs_parse() {
    // Examples reference secrets through ${VAR}; give them values.
    for (name, value) in [
        ("KES_ADMIN_IDENTITY", ADMIN),
        (
            "MINIO_KES_IDENTITY",
            "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22",
        ),
        ("KES_TLS_KEY_PASSWORD", "password"),
        ("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE"),
        (
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        ),
        ("VAULT_APPROLE_ID", "db02de05-fa39-4855-059b-67221c5c2f63"),
        (
            "VAULT_APPROLE_SECRET",
            "6a174c20-f6de-a53c-74d2-6018fcceff64",
        ),
    ] {
        std::env::set_var(name, value);
    }
    let dir = crate::manifest_dir().join("../../examples");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let config =
            ServerConfig::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(config.warnings, Vec::<String>::new(), "{}", path.display());
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        if path.ends_with("server-minio.yml") {
            let minio = config
                .policies
                .values()
                .find(|p| !p.identities.is_empty())
                .expect("the MinIO policy");
            // Everything MinIO calls (docs/minio.md) is allowed.
            for path in [
                "/v1/key/create/minio-default-key",
                "/v1/key/generate/minio-default-key",
                "/v1/key/decrypt/minio-default-key",
                "/v1/key/describe/minio-default-key",
                "/v1/key/hmac/minio-default-key",
                "/v1/key/list/",
                "/v1/status",
                "/v1/api",
            ] {
                assert!(minio.policy.allows(path), "{path}");
            }
            assert!(!minio.policy.allows("/v1/key/delete/minio-default-key"));
        }
    }
    seen.sort();
    for expected in [
        "server-aws.yml",
        "server-fs.yml",
        "server-minio.yml",
        "server-vault.yml",
    ] {
        assert!(
            seen.iter().any(|s| s == expected),
            "{expected} missing: {seen:?}"
        );
    }
}
