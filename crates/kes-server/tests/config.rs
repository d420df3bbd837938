//! The server config file: the Go KES's kesconf fixtures, the AWS tutorial
//! config, `${VAR}` substitution, every validation rule, log levels, cache
//! defaults and the shipped example configs. Durations are tested in
//! kes-core, where they are parsed.

use kes_core::Identity;
use kes_server::config::{ConfigError, KeyStoreConfig, LogFormat, LogLevel, ServerConfig, TlsAuth};
use std::path::{Path, PathBuf};
use std::time::Duration;

const ADMIN: &str = "c84cc9b91ae2399b043da7eca616048d4b4200edf2ff418d8af3835911db945d";
const JWT_PREFIX: &str =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IkJQbGNNeTdBeXdLQmZMaGw2N1dFZkJvUmtsdnVvdkxXWGsteTc5TmJPeGMifQ.";
const JWT_SUFFIX: &str = "GdvNGlOEdFEdXvl-dP6iLBPnZ5xwhAk8lK0oOONWvQg6VDNd9w";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/config")
        .join(name)
}

/// A fixture, parsed: its TLS files do not exist here, and only
/// [`ServerConfig::load`] checks them.
fn load(name: &str) -> ServerConfig {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    ServerConfig::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A valid config with the given extra top-level sections.
fn with(extra: &str) -> String {
    format!(
        "admin:\n  identity: {ADMIN}\ntls:\n  key: ./server.key\n  cert: ./server.cert\nkeystore:\n  fs:\n    path: /tmp/keys\n{extra}"
    )
}

/// A valid config whose keystore section is `keystore`.
fn with_keystore(keystore: &str) -> String {
    format!(
        "admin:\n  identity: {ADMIN}\ntls:\n  key: ./server.key\n  cert: ./server.cert\nkeystore:\n{keystore}"
    )
}

fn error(yaml: &str) -> ConfigError {
    match ServerConfig::parse(yaml) {
        Ok(config) => panic!("config was accepted: {config:?}\n---\n{yaml}"),
        Err(e) => e,
    }
}

fn assert_error(yaml: &str, expected: &str) {
    let e = error(yaml);
    assert!(
        e.to_string().contains(expected),
        "error '{e}' does not contain '{expected}'\n---\n{yaml}"
    );
}

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
fn env_substitution() {
    // Each test uses its own variable names: tests run in parallel.
    std::env::set_var("KESRS_CFG_TEST_ADMIN", ADMIN);
    std::env::set_var("KESRS_CFG_TEST_FS", "/srv/kes/keys");
    std::env::set_var(
        "KESRS_CFG_TEST_APP",
        "2222222222222222222222222222222222222222222222222222222222222222",
    );
    std::env::set_var("KESRS_CFG_TEST_TIMEOUT", "45s");
    std::env::set_var("KESRS_CFG_TEST_SKIP", "true");
    std::env::set_var("KESRS_CFG_TEST_KEY", "from-env");
    std::env::set_var("KESRS_CFG_TEST_PASSWORD", "s3cr3t");
    let yaml = r#"
admin:
  identity: "  ${KESRS_CFG_TEST_ADMIN}  "
tls:
  key: ./server.key
  cert: ./server.cert
  password: ${KESRS_CFG_TEST_PASSWORD}
api:
  /v1/status:
    timeout: ${KESRS_CFG_TEST_TIMEOUT}
    skip_auth: ${ KESRS_CFG_TEST_SKIP }
policy:
  app:
    allow:
    - ${KESRS_CFG_TEST_KEY}
    identities:
    - ${KESRS_CFG_TEST_APP}
keys:
- name: ${KESRS_CFG_TEST_KEY}
- name: prefix-${KESRS_CFG_TEST_KEY}
keystore:
  fs:
    path: ${KESRS_CFG_TEST_FS}
"#;
    // Only a whole value is a reference; partial interpolation is not done,
    // so the second name stays literal and is then an invalid key name.
    let err = error(yaml);
    assert!(
        err.to_string()
            .contains("keys[1].name 'prefix-${KESRS_CFG_TEST_KEY}' in line 20"),
        "{err}"
    );

    let without_partial = yaml.replace("- name: prefix-${KESRS_CFG_TEST_KEY}\n", "");
    let config = ServerConfig::parse(&without_partial).unwrap();
    assert_eq!(config.admin, Identity::new(ADMIN));
    assert_eq!(
        config.tls.password.as_deref().map(String::as_str),
        Some("s3cr3t")
    );
    assert_eq!(config.api["/v1/status"].timeout, Some(secs(45)));
    assert!(config.api["/v1/status"].skip_auth);
    // Policy patterns are never substituted.
    assert_eq!(
        config.policies["app"].policy.allow,
        ["${KESRS_CFG_TEST_KEY}"]
    );
    assert_eq!(
        config.policies["app"].identities[0].as_str(),
        "2222222222222222222222222222222222222222222222222222222222222222"
    );
    assert_eq!(config.keys, ["from-env"]);
    match &config.keystore {
        KeyStoreConfig::Fs(fs) => assert_eq!(fs.path, PathBuf::from("/srv/kes/keys")),
        other => panic!("wrong keystore {other:?}"),
    }

    // An unset variable is an error naming it and its line.
    let err = error(&without_partial.replace("KESRS_CFG_TEST_FS", "KESRS_CFG_TEST_UNSET"));
    assert_eq!(
        err.to_string(),
        "kesconf: referenced env. variable 'KESRS_CFG_TEST_UNSET' in line '22' not found"
    );
    assert_eq!(err.line(), Some(22));
    let err = error(&without_partial.replace("KESRS_CFG_TEST_ADMIN", "KESRS_CFG_TEST_UNSET"));
    assert!(err.to_string().contains("in line '3' not found"), "{err}");

    // A variable holding a bad value is reported at the line of the reference.
    std::env::set_var("KESRS_CFG_TEST_BAD_TIMEOUT", "soon");
    let err =
        error(&without_partial.replace("KESRS_CFG_TEST_TIMEOUT", "KESRS_CFG_TEST_BAD_TIMEOUT"));
    assert!(
        err.to_string()
            .contains("api./v1/status.timeout 'soon' in line 10"),
        "{err}"
    );

    // The password never appears in an error message.
    std::env::set_var(
        "KESRS_CFG_TEST_ADMIN2",
        "2222222222222222222222222222222222222222222222222222222222222222",
    );
    let err = error(&without_partial.replace("KESRS_CFG_TEST_ADMIN", "KESRS_CFG_TEST_ADMIN2"));
    assert!(err.to_string().contains("is already admin"), "{err}");
    assert!(!err.to_string().contains("s3cr3t"));
}

#[test]
fn env_reference_to_empty_variable_reads_as_unset() {
    std::env::set_var("KESRS_CFG_TEST_EMPTY", "");
    let config = ServerConfig::parse(&with(
        "address: ${KESRS_CFG_TEST_EMPTY}\ncache:\n  expiry:\n    any: ${KESRS_CFG_TEST_EMPTY}\n",
    ))
    .unwrap();
    assert_eq!(config.address, None);
    assert_eq!(config.cache.any, secs(300));
    assert_error(
        &with("").replace(ADMIN, "${KESRS_CFG_TEST_EMPTY}"),
        "kesconf: invalid admin identity: no admin identity",
    );
}

#[test]
fn validation_errors() {
    let cases: Vec<(String, &str)> = vec![
        // YAML and document shape
        ("a: [1, 2\n".into(), "kesconf: invalid YAML in line"),
        ("".into(), "contains no YAML document"),
        ("- a\n- b\n".into(), "expected a mapping at the top level"),
        (with("admin:\n  identity: x\n"), "mapping key 'admin' already defined in line 1"),
        (with("version: v2\n"), "kesconf: invalid config version 'v2'"),
        (with("version: [v1]\n"), "kesconf: invalid config version at line '9'"),
        // admin
        (with("").replace(&format!("identity: {ADMIN}"), "identity: \"\""), "kesconf: invalid admin identity: no admin identity"),
        (with("").replace(&format!("admin:\n  identity: {ADMIN}\n"), ""), "kesconf: invalid admin identity: no admin identity"),
        (with("").replace(&format!("identity: {ADMIN}"), "identity: [a]"), "kesconf: invalid admin.identity in line 2: expected a single value, found a list"),
        // tls
        (with("").replace("  key: ./server.key\n", ""), "kesconf: invalid tls config: no private key specified (tls.key)"),
        (with("").replace("  cert: ./server.cert\n", ""), "kesconf: invalid tls config: no certificate specified (tls.cert)"),
        (with("").replace("tls:\n", "tls:\n  auth: maybe\n"), "kesconf: invalid tls.auth 'maybe' in line 4: invalid auth, must be 'on' or 'off'"),
        (with("").replace("tls:\n  key: ./server.key\n  cert: ./server.cert\n", "tls: yes\n"), "kesconf: invalid tls in line 3: expected a mapping, found a scalar"),
        (with("").replace("tls:\n", &format!("tls:\n  proxy:\n    identities: [{ADMIN}]\n")), "kesconf: invalid tls proxy: identity"),
        (with("").replace("tls:\n", "tls:\n  proxy:\n    identities: [not.valid]\n"), "kesconf: invalid tls.proxy.identities[0] 'not.valid'"),
        // policies
        (with(&format!("policy:\n  p:\n    identities: [{ADMIN}]\n")), "kesconf: invalid policy 'p': identity"),
        (with(&format!("policy:\n  p:\n    identities: [{ADMIN}]\n")), "is already admin"),
        (with("policy:\n  a:\n    identities: [abc]\n  b:\n    identities: [abc]\n"), "kesconf: invalid policy 'b': identity 'abc' in line 13 already has a policy ('a')"),
        (with("policy:\n  my.policy:\n    allow: ['/v1/status']\n"), "kesconf: invalid policy name 'my.policy'"),
        (with("policy:\n  p:\n    identities: ['bad id']\n"), "kesconf: invalid policy.p.identities[0] 'bad id' in line 11: not a valid identity"),
        (with("policy:\n  p:\n    identities: [\"\"]\n"), "kesconf: invalid policy.p.identities[0] ''"),
        (with("policy:\n  p:\n    allow: /v1/status\n"), "kesconf: invalid policy.p.allow in line 11: expected a list"),
        (with("policy:\n  p:\n    identities: [abc]\n").replace("tls:\n", "tls:\n  proxy:\n    identities: [abc]\n"), "kesconf: invalid policy 'p': identity 'abc' in line 13 is already a TLS proxy"),
        // api
        (with("api:\n  /v1/status:\n    timeout: -1s\n"), "kesconf: invalid api./v1/status.timeout '-1s' in line 11: duration '-1s' is negative"),
        (with("api:\n  /v1/status:\n    timeout: 17\n"), "missing unit in duration '17'"),
        (with("api:\n  /v1/status:\n    skip_auth: maybe\n"), "kesconf: invalid api./v1/status.skip_auth 'maybe' in line 11: must be true or false"),
        // cache
        (with("cache:\n  expiry:\n    any: -5m\n"), "kesconf: invalid cache.expiry.any '-5m' in line 11: duration '-5m' is negative"),
        (with("cache:\n  expiry:\n    unused: 30\n"), "kesconf: invalid cache.expiry.unused '30' in line 11: missing unit"),
        (with("cache:\n  expiry:\n    offline: 1d\n"), "unknown unit 'd' in duration '1d'"),
        // log
        (with("log:\n  error: loud\n"), "kesconf: invalid log.error 'loud' in line 10: invalid log level 'loud'"),
        (with("log:\n  audit: INFO+x\n"), "kesconf: invalid log.audit 'INFO+x' in line 10: invalid log level suffix 'X'"),
        (with("log:\n  format: xml\n"), "kesconf: invalid log.format 'xml' in line 10: invalid log format 'xml'"),
        // keys
        (with("keys:\n- name: a\n- name: a\n"), "kesconf: invalid key config: key 'a' is defined multiple times (line 11)"),
        (with("keys:\n- name: my.key\n"), "kesconf: invalid keys[0].name 'my.key' in line 10: not a valid key name"),
        (with("keys:\n- my-key\n"), "kesconf: invalid keys[0] in line 10: expected a mapping like '- name: my-key', found a scalar"),
        (with("keys:\n- other: x\n"), "kesconf: invalid key config: no key name specified (keys[0].name)"),
        (with("keys: my-key\n"), "kesconf: invalid keys in line 9: expected a list"),
        // keystore: how many
        (with("").replace("keystore:\n  fs:\n    path: /tmp/keys\n", ""), "kesconf: no keystore specified"),
        (with_keystore("  kes:\n    endpoint: [https://127.0.0.1:7373]\n"), "kesconf: no keystore specified"),
        (with_keystore("  aws: {}\n"), "kesconf: no keystore specified"),
        (with("").replace("    path: /tmp/keys\n", "    path: /tmp/keys\n  vault:\n    endpoint: https://127.0.0.1:8200\n"), "kesconf: invalid keystore config: more than once keystore specified (keystore.fs, keystore.vault)"),
        // fs
        (with_keystore("  fs: {}\n"), "kesconf: invalid fs keystore: no path specified (keystore.fs.path)"),
        // aws
        (with_keystore("  aws:\n    secretsmanager:\n      region: us-east-1\n"), "kesconf: invalid AWS secretsmanager keystore: no endpoint specified (keystore.aws.secretsmanager.endpoint)"),
        (with_keystore("  aws:\n    secretsmanager:\n      endpoint: localhost\n"), "kesconf: invalid AWS secretsmanager keystore: no region specified (keystore.aws.secretsmanager.region)"),
        // vault
        (with_keystore("  vault:\n    approle: {id: a, secret: b}\n"), "kesconf: invalid vault keystore: no endpoint specified (keystore.vault.endpoint)"),
        (with_keystore("  vault:\n    endpoint: https://v\n"), "kesconf: invalid vault keystore: no authentication method specified (keystore.vault.approle or keystore.vault.kubernetes)"),
        (with_keystore("  vault:\n    endpoint: https://v\n    approle: {id: a, secret: b}\n    kubernetes: {role: r, jwt: j}\n"), "kesconf: invalid vault keystore: more than one authentication method specified"),
        (with_keystore("  vault:\n    endpoint: https://v\n    approle: {secret: b}\n"), "kesconf: invalid vault keystore: invalid approle config: no approle ID specified (keystore.vault.approle.id)"),
        (with_keystore("  vault:\n    endpoint: https://v\n    approle: {id: a}\n"), "kesconf: invalid vault keystore: invalid approle config: no approle secret specified (keystore.vault.approle.secret)"),
        (with_keystore("  vault:\n    endpoint: https://v\n    kubernetes: {role: r}\n"), "kesconf: invalid vault keystore: invalid kubernetes config: no JWT specified (keystore.vault.kubernetes.jwt)"),
        (with_keystore("  vault:\n    endpoint: https://v\n    kubernetes: {role: r, jwt: /nonexistent/kes-rs/token}\n"), "kesconf: failed to read vault kubernetes JWT from '/nonexistent/kes-rs/token' (keystore.vault.kubernetes.jwt in line 9)"),
        (with_keystore("  vault:\n    endpoint: https://v\n    approle: {id: a, secret: b}\n    transit: {engine: t}\n"), "kesconf: invalid vault keystore: invalid transit config: no key name specified (keystore.vault.transit.key)"),
        (with_keystore("  vault:\n    endpoint: https://v\n    approle: {id: a, secret: b}\n    tls: {key: k.pem}\n"), "kesconf: invalid vault keystore: invalid tls config: no TLS certificate specified (keystore.vault.tls.cert)"),
        (with_keystore("  vault:\n    endpoint: https://v\n    approle: {id: a, secret: b}\n    tls: {cert: c.pem}\n"), "kesconf: invalid vault keystore: invalid tls config: no TLS private key specified (keystore.vault.tls.key)"),
        (with_keystore("  vault:\n    endpoint: https://v\n    version: v3\n    approle: {id: a, secret: b}\n"), "kesconf: invalid keystore.vault.version 'v3' in line 9: must be 'v1' or 'v2'"),
        (with_keystore("  vault:\n    endpoint: https://v\n    approle: {id: a, secret: b}\n    status: {ping: often}\n"), "kesconf: invalid keystore.vault.status.ping 'often'"),
        // the other backends are validated although not implemented
        (with_keystore("  fortanix:\n    sdkms:\n      credentials: {key: k}\n"), "kesconf: invalid fortanix SDKMS keystore: no endpoint specified"),
        (with_keystore("  fortanix:\n    sdkms:\n      endpoint: https://f\n"), "kesconf: invalid fortanix SDKMS keystore: no API key specified (keystore.fortanix.sdkms.credentials.key)"),
        (with_keystore("  gemalto:\n    keysecure:\n      endpoint: https://g\n"), "kesconf: invalid gemalto keysecure keystore: no token specified"),
        (with_keystore("  gcp:\n    secretmanager:\n      endpoint: e\n"), "kesconf: invalid GCP secretmanager keystore: no project ID specified"),
        (with_keystore("  azure:\n    keyvault:\n      credentials: {tenant_id: t}\n"), "kesconf: invalid Azure keyvault keystore: no endpoint specified"),
        (with_keystore("  azure:\n    keyvault:\n      endpoint: e\n      credentials: {tenant_id: t, client_id: c}\n"), "kesconf: invalid Azure keyvault keystore: no client secret specified"),
        (with_keystore("  azure:\n    keyvault:\n      endpoint: e\n      credentials: {tenant_id: t, client_id: c, client_secret: s}\n      managed_identity: {client_id: c}\n"), "kesconf: invalid Azure keyvault keystore: more than one authentication method specified"),
        (with_keystore("  entrust:\n    keycontrol:\n      endpoint: e\n      vault_id: v\n      credentials: {username: u, password: p}\n"), "kesconf: invalid Entrust KeyControl keystore: no box ID specified"),
        (with_keystore("  entrust:\n    keycontrol:\n      endpoint: e\n      vault_id: v\n      box_id: b\n      credentials: {username: u}\n"), "kesconf: invalid Entrust KeyControl keystore: no password specified"),
    ];
    for (yaml, expected) in &cases {
        assert_error(yaml, expected);
    }
}

#[test]
fn errors_never_show_secrets() {
    let cases = [
        with("").replace("tls:\n", "tls:\n  password: {nested: hunter2}\n"),
        with_keystore("  aws:\n    secretsmanager:\n      endpoint: e\n      region: r\n      credentials:\n        secretkey: [hunter2]\n"),
    ];
    for yaml in cases {
        let e = error(&yaml);
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }
}

#[test]
fn other_backends_parse_as_unsupported() {
    let cases = [
        ("fortanix", "  fortanix:\n    sdkms:\n      endpoint: https://f\n      group_id: g\n      credentials: {key: k}\n      tls: {ca: ca.pem}\n"),
        ("gemalto", "  gemalto:\n    keysecure:\n      endpoint: https://g\n      credentials: {token: t, domain: d}\n"),
        ("gcp", "  gcp:\n    secretmanager:\n      project_id: p\n      scopes: [s1, s2]\n      credentials: {client_email: e, private_key: k}\n"),
        ("azure", "  azure:\n    keyvault:\n      endpoint: https://a\n      managed_identity: {client_id: c}\n"),
        ("azure", "  azure:\n    keyvault:\n      endpoint: https://a\n"),
        ("entrust", "  entrust:\n    keycontrol:\n      endpoint: e\n      vault_id: v\n      box_id: b\n      credentials: {username: u, password: p}\n"),
    ];
    for (name, keystore) in cases {
        let config = ServerConfig::parse(&with_keystore(keystore)).unwrap();
        assert_eq!(config.keystore, KeyStoreConfig::Unsupported { name });
    }
    // `keystore.kes` is ignored next to a real backend.
    let config = ServerConfig::parse(&with_keystore(
        "  kes:\n    endpoint: [x]\n  fs:\n    path: /tmp/k\n",
    ))
    .unwrap();
    assert!(matches!(config.keystore, KeyStoreConfig::Fs(_)));
}

#[test]
fn vault_defaults_and_options() {
    let config = ServerConfig::parse(&with_keystore(
        "  vault:\n    endpoint: https://127.0.0.1:8200\n    approle:\n      id: a\n      secret: b\n    transit:\n      key: wrap\n    tls:\n      key: client.key\n      cert: client.crt\n",
    ))
    .unwrap();
    let KeyStoreConfig::Vault(vault) = config.keystore else {
        panic!()
    };
    assert_eq!(
        (vault.engine.as_str(), vault.version.as_str()),
        ("kv", "v1")
    );
    assert_eq!(vault.approle.as_ref().unwrap().engine, "approle");
    let transit = vault.transit.as_ref().unwrap();
    assert_eq!(
        (transit.engine.as_str(), transit.key.as_str()),
        ("transit", "wrap")
    );
    assert_eq!(
        (vault.tls_key.as_str(), vault.tls_cert.as_str()),
        ("client.key", "client.crt")
    );
    assert_eq!(vault.status_ping, secs(10));
}

#[test]
fn aws_prefix_and_kms_key() {
    let config = ServerConfig::parse(&with_keystore(
        "  aws:\n    secretsmanager:\n      endpoint: http://127.0.0.1:5000\n      region: eu-west-1\n      kmskey: alias/kes\n      prefix: kes/\n      credentials: {accesskey: a, secretkey: s, token: t}\n",
    ))
    .unwrap();
    let KeyStoreConfig::Aws(aws) = config.keystore else {
        panic!()
    };
    assert_eq!(aws.kms_key, "alias/kes");
    assert_eq!(aws.prefix, "kes/");
    assert_eq!(
        (
            aws.access_key.as_str(),
            aws.secret_key.as_str(),
            aws.session_token.as_str()
        ),
        ("a", "s", "t")
    );
}

#[test]
fn cache_defaults() {
    let defaults = |extra: &str| ServerConfig::parse(&with(extra)).unwrap().cache;
    let none = defaults("");
    assert_eq!(
        (none.any, none.unused, none.offline),
        (secs(300), secs(30), secs(0))
    );
    // The reference set `any` to 30s when `unused` was unset; here an unset
    // `unused` gets 30s and `any` keeps the configured value.
    let c = defaults("cache:\n  expiry:\n    any: 10m\n");
    assert_eq!((c.any, c.unused, c.offline), (secs(600), secs(30), secs(0)));
    let c = defaults("cache:\n  expiry:\n    unused: 1m\n    offline: 1h\n");
    assert_eq!(
        (c.any, c.unused, c.offline),
        (secs(300), secs(60), secs(3600))
    );
    // Zero means "default" for any/unused and "disabled" for offline; a bare
    // 0 is accepted (yaml.v3 would refuse it).
    let c = defaults("cache:\n  expiry:\n    any: 0s\n    unused: 0\n    offline: 0\n");
    assert_eq!((c.any, c.unused, c.offline), (secs(300), secs(30), secs(0)));
}

#[test]
fn api_zero_timeout_keeps_the_default() {
    let config = ServerConfig::parse(&with(
        "api:\n  /v1/key/create/:\n    timeout: 0s\n  /v1/ready:\n  /v1/api:\n    skip_auth: yes\n",
    ))
    .unwrap();
    assert_eq!(config.api["/v1/key/create/"].timeout, None);
    assert!(!config.api["/v1/ready"].skip_auth);
    assert!(config.api["/v1/api"].skip_auth);
}

#[test]
fn unknown_keys_are_ignored_with_a_warning() {
    let config = ServerConfig::parse(&with(
        "version: v1\nfuture_option: 1\nlog:\n  colour: always\napi:\n  /v1/status:\n    skip-auth: true\npolicy:\n  p:\n    alow: [/v1/status]\nkeys:\n- name: a\n  size: 32\n",
    ))
    .unwrap();
    assert_eq!(config.log.error, LogLevel::INFO);
    assert!(!config.api["/v1/status"].skip_auth);
    assert_eq!(
        config.warnings,
        [
            "kesconf: unknown key 'future_option' in line 10 is ignored",
            "kesconf: unknown key 'colour' in line 12 is ignored",
            "kesconf: unknown key 'skip-auth' in line 15 (did you mean 'skip_auth'?) is ignored",
            "kesconf: unknown key 'alow' in line 18 (did you mean 'allow'?) is ignored",
            "kesconf: unknown key 'size' in line 21 is ignored",
        ]
    );
    // The reference fixtures use only known keys.
    for name in [
        "fs.yml",
        "custom-api.yml",
        "vault-approle.yml",
        "vault-k8s.yml",
        "aws.yml",
        "aws-tutorial.yml",
    ] {
        assert_eq!(load(name).warnings, Vec::<String>::new(), "{name}");
    }
    let vault = ServerConfig::parse(&with_keystore(
        "  vault:\n    endpoint: e\n    approle: {id: a, secret: b}\n    tls: {key: k, cert: c, ca: x}\n    status: {ping: 1s}\n    verbose: true\n",
    ))
    .unwrap();
    assert_eq!(
        vault.warnings,
        ["kesconf: unknown key 'verbose' in line 12 is ignored"]
    );
}

#[test]
fn yaml_anchors_and_merge_keys() {
    let config = ServerConfig::parse(&with(
        "defaults: &route {timeout: 20s, skip_auth: true}\napi:\n  /v1/status: *route\n  /v1/metrics:\n    <<: *route\n    timeout: 5s\n",
    ))
    .unwrap();
    assert_eq!(config.api["/v1/status"].timeout, Some(secs(20)));
    assert_eq!(config.api["/v1/metrics"].timeout, Some(secs(5)));
    assert!(config.api["/v1/metrics"].skip_auth);
}

#[test]
fn policies_keep_patterns_and_drop_duplicate_identities() {
    let config = ServerConfig::parse(&with(
        "policy:\n  minio:\n    allow: ['/v1/key/*', /v1/status]\n    deny: ['/v1/key/delete/*']\n    identities: [abc, abc, def]\n  empty:\n",
    ))
    .unwrap();
    let minio = &config.policies["minio"];
    assert_eq!(minio.policy.allow, ["/v1/key/*", "/v1/status"]);
    assert_eq!(minio.policy.deny, ["/v1/key/delete/*"]);
    assert_eq!(
        minio.identities,
        [Identity::new("abc"), Identity::new("def")]
    );
    assert!(minio.policy.allows("/v1/key/create/a"));
    assert!(!minio.policy.allows("/v1/key/delete/a"));
    assert_eq!(config.policies["empty"].identities.len(), 0);
    assert!(!config.policies["empty"].policy.allows("/v1/status"));
}

#[test]
fn load_reports_missing_and_binary_files() {
    let err = ServerConfig::load(Path::new("/nonexistent/kes-rs/config.yml")).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("kesconf: failed to read config file '/nonexistent/kes-rs/config.yml'"));
    assert!(std::error::Error::source(&err).is_some());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
    let err = ServerConfig::load(&path).unwrap_err();
    assert!(err.to_string().contains("is not valid UTF-8"), "{err}");
}

#[test]
fn log_levels() {
    let valid = [
        ("", 0),
        ("on", 0),
        ("ON", 0),
        ("off", 9),
        ("Off", 9),
        ("debug", -4),
        ("DEBUG", -4),
        ("info", 0),
        ("warn", 4),
        ("error", 8),
        ("  Error  ", 8),
        ("INFO+2", 2),
        ("debug+1", -3),
        ("ERROR+1", 9),
        ("WARN+-2", 2),
        ("5", 5),
        ("-4", -4),
        ("+3", 3),
    ];
    for (text, level) in valid {
        assert_eq!(text.parse::<LogLevel>(), Ok(LogLevel(level)), "{text:?}");
    }
    for text in [
        "verbose", "INFO-1", "INFO+", "INFOX", "WARN+1.5", "1e3", "trace",
    ] {
        assert!(text.parse::<LogLevel>().is_err(), "{text:?}");
    }

    assert!(LogLevel::INFO.enabled(LogLevel::INFO));
    assert!(LogLevel::INFO.enabled(LogLevel::ERROR));
    assert!(!LogLevel::INFO.enabled(LogLevel::DEBUG));
    assert!(!LogLevel::OFF.enabled(LogLevel::ERROR));
    for (level, text) in [
        (LogLevel::DEBUG, "DEBUG"),
        (LogLevel(-6), "DEBUG-2"),
        (LogLevel(-1), "DEBUG+3"),
        (LogLevel::INFO, "INFO"),
        (LogLevel(2), "INFO+2"),
        (LogLevel::WARN, "WARN"),
        (LogLevel::ERROR, "ERROR"),
        (LogLevel::OFF, "ERROR+1"),
    ] {
        assert_eq!(level.to_string(), text);
        if !text.contains('-') {
            assert_eq!(text.parse::<LogLevel>(), Ok(level));
        }
    }

    let config = ServerConfig::parse(&with("log:\n  error: DEBUG+2\n")).unwrap();
    assert_eq!(config.log.error, LogLevel(-2));
    // Unset audit means INFO, i.e. audit lines are printed (as in the Go KES).
    assert_eq!(config.log.audit, LogLevel::INFO);
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.audit_file, None);
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
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
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

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    const TEMPLATE: &str = include_str!("data/config/vault-approle.yml");

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn on_arbitrary_text(text in "\\PC{0,400}") {
            let _ = ServerConfig::parse(&text);
        }

        #[test]
        fn on_mutated_configs(
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), prop::sample::select(vec![
                    "", " ", "\n", "\t", ":", "- ", "[", "]", "{", "}", "&a ", "*a", "<<: ", "'", "\"",
                    "${X}", "!!str ", "~", "0", "-1s", "#", "? ", "|", ">", "\\",
                ])),
                1..6,
            )
        ) {
            let mut text = TEMPLATE.to_string();
            for (at, insert) in edits {
                let mut i = at.index(text.len() + 1);
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                text.insert_str(i, insert);
            }
            let _ = ServerConfig::parse(&text);
        }
    }

    #[test]
    fn on_deep_nesting() {
        let err = ServerConfig::parse(&"[".repeat(1_000_000)).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("kesconf: invalid YAML in line 1: "),
            "{err}"
        );
        let err = ServerConfig::parse(&"a:\n ".repeat(10_000)).unwrap_err();
        assert!(err.to_string().contains("kesconf: invalid YAML"), "{err}");
    }
}

#[test]
fn unknown_keys_come_first_when_the_config_fails() {
    // A typo in the key store: the typo is reported before the error it
    // caused, with a suggestion.
    let err = ServerConfig::parse(&format!(
        "admin:\n  identity: {ADMIN}\nkeystore:\n  aws:\n    secretmanager:\n      endpoint: e\n      region: r\ntls:\n  key: k\n  cert: c\n"
    ))
    .unwrap_err()
    .to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines,
        [
            "kesconf: unknown key 'secretmanager' in line 5 (did you mean 'secretsmanager'?)",
            "kesconf: no keystore specified",
        ],
        "{err}"
    );

    let err = ServerConfig::parse(&with_keystore("  fs:\n    pth: /tmp/keys\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("kesconf: unknown key 'pth' in line "),
        "{err}"
    );
    assert!(err.contains("(did you mean 'path'?)\n"), "{err}");
    assert!(
        err.ends_with("no path specified (keystore.fs.path)"),
        "{err}"
    );

    let err = ServerConfig::parse(&with("keys:\n- nam: my-key\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("kesconf: unknown key 'nam' in line 10 (did you mean 'name'?)\n"),
        "{err}"
    );

    // Without unknown keys the error is as before.
    let err = ServerConfig::parse(&with_keystore(""))
        .unwrap_err()
        .to_string();
    assert!(!err.contains("unknown key"), "{err}");
}

#[test]
fn load_names_the_field_and_line_of_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.cert");
    std::fs::write(&cert, "not checked for content here").unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "admin:\n  identity: {ADMIN}\ntls:\n  key: nope.key\n  cert: {}\nkeystore:\n  fs:\n    path: /tmp/keys\n",
            cert.display()
        ),
    )
    .unwrap();
    let err = ServerConfig::load(&config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "kesconf: tls.key 'nope.key' in line 4: no such file"
    );
    assert_eq!(err.line(), Some(4));

    // A CA may be a directory; a key may not.
    std::fs::write(
        &config,
        format!(
            "admin:\n  identity: {ADMIN}\ntls:\n  key: {0}\n  cert: {0}\n  ca: {1}\nkeystore:\n  fs:\n    path: /tmp/keys\n",
            cert.display(),
            dir.path().display()
        ),
    )
    .unwrap();
    ServerConfig::load(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "admin:\n  identity: {ADMIN}\ntls:\n  key: {0}\n  cert: {1}\nkeystore:\n  fs:\n    path: /tmp/keys\n",
            dir.path().display(),
            cert.display()
        ),
    )
    .unwrap();
    let err = ServerConfig::load(&config).unwrap_err().to_string();
    assert!(
        err.ends_with("' in line 4: is a directory, not a file"),
        "{err}"
    );

    // The vault key store's client certificate too.
    std::fs::write(
        &config,
        format!(
            "admin:\n  identity: {ADMIN}\ntls:\n  key: {0}\n  cert: {0}\nkeystore:\n  vault:\n    endpoint: https://127.0.0.1:8200\n    approle: {{id: a, secret: b}}\n    tls:\n      key: {0}\n      cert: {0}\n      ca: vault-ca.pem\n",
            cert.display()
        ),
    )
    .unwrap();
    let err = ServerConfig::load(&config).unwrap_err().to_string();
    assert_eq!(
        err,
        "kesconf: keystore.vault.tls.ca 'vault-ca.pem' in line 13: no such file"
    );
}

#[test]
fn a_bad_aws_prefix_is_a_config_error_with_its_line() {
    let err = ServerConfig::parse(&with_keystore(
        "  aws:\n    secretsmanager:\n      endpoint: e\n      region: r\n      prefix: \"kes keys/\"\n",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("kesconf: invalid keystore.aws.secretsmanager.prefix 'kes keys/' in line "),
        "{err}"
    );
    assert!(
        err.ends_with("' ' is not allowed: use only letters, digits and /_+=.@-"),
        "{err}"
    );
    let long = "p".repeat(433);
    let err = ServerConfig::parse(&with_keystore(&format!(
        "  aws:\n    secretsmanager:\n      endpoint: e\n      region: r\n      prefix: {long}\n"
    )))
    .unwrap_err()
    .to_string();
    assert!(err.ends_with("longer than 432 bytes"), "{err}");
    ServerConfig::parse(&with_keystore(
        "  aws:\n    secretsmanager:\n      endpoint: e\n      region: r\n      prefix: kes/prod-1@x=y+z.\n",
    ))
    .unwrap();
}

#[test]
fn load_keystore_reads_only_the_keystore_section() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ks.yml");
    // No admin, no tls, and a ${VAR} elsewhere that is not set.
    std::fs::write(
        &path,
        "address: ${KES_RS_TEST_UNSET_VARIABLE}\nkeystore:\n  fs:\n    path: /tmp/keys\n    pth: typo\n",
    )
    .unwrap();
    let (keystore, warnings) = kes_server::config::load_keystore(&path).unwrap();
    assert!(matches!(keystore, KeyStoreConfig::Fs(ref fs) if fs.path == Path::new("/tmp/keys")));
    assert_eq!(
        warnings,
        ["kesconf: unknown key 'pth' in line 5 (did you mean 'path'?) is ignored"]
    );
    std::fs::write(&path, "keystore:\n  aws:\n    secretmanager: {}\n").unwrap();
    let err = kes_server::config::load_keystore(&path)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "kesconf: unknown key 'secretmanager' in line 3 (did you mean 'secretsmanager'?)\n"
        ),
        "{err}"
    );
}

#[test]
fn connection_limits() {
    let config = ServerConfig::parse(&with("")).unwrap();
    assert_eq!(
        config.limits,
        kes_server::config::ConnectionLimits::default()
    );
    let config = ServerConfig::parse(&with(
        "limits:\n  connections: 4096\n  connections_per_ip: 1024\n",
    ))
    .unwrap();
    assert_eq!(config.limits.connections, Some(4096));
    assert_eq!(config.limits.connections_per_ip, Some(1024));
    let limits = kes_server::server::Limits::for_open_files(1 << 20).with_config(&config.limits);
    assert_eq!(
        (limits.max_connections, limits.max_connections_per_ip),
        (4096, 1024)
    );
    // Only the total: the per-address limit follows it.
    let only_total = ServerConfig::parse(&with("limits:\n  connections: 800\n")).unwrap();
    let limits =
        kes_server::server::Limits::for_open_files(1 << 20).with_config(&only_total.limits);
    assert_eq!(
        (limits.max_connections, limits.max_connections_per_ip),
        (800, 100)
    );
    assert_error(
        &with("limits:\n  connections: 0\n"),
        "invalid limits.connections '0' in line",
    );
    assert_error(
        &with("limits:\n  connections_per_ip: many\n"),
        "must be a whole number greater than 0",
    );
}

#[test]
fn admin_identities_no_client_can_have_are_warned_about() {
    let warning = |admin: &str| {
        let text = format!(
            "admin:\n  identity: {admin}\ntls:\n  key: k\n  cert: c\nkeystore:\n  fs:\n    path: /tmp/keys\n"
        );
        let config = ServerConfig::parse(&text).unwrap();
        assert!(config.warnings.len() <= 1, "{:?}", config.warnings);
        config.warnings.into_iter().next()
    };
    for ok in [ADMIN, "disabled", "Disabled", "none", "off", "'-'"] {
        assert_eq!(warning(ok), None, "{ok}");
    }
    for (bad, problem) in [
        (ADMIN.to_uppercase(), "has upper-case letters"),
        (ADMIN[..40].to_string(), "is 40 hex characters long"),
        ("garbage".into(), "is neither an identity"),
        (
            format!("kes:v1:{}", "A".repeat(44)),
            "is an API key, not an identity",
        ),
    ] {
        let w = warning(&bad).unwrap_or_else(|| panic!("no warning for {bad}"));
        assert!(w.starts_with(&format!("admin.identity {problem}")), "{w}");
        assert!(w.ends_with("so the server runs without an admin"), "{w}");
        assert!(!w.contains(&bad), "the value is not repeated: {w}");
    }
}

#[test]
fn aws_without_credentials_warns_that_only_instance_metadata_is_left() {
    use kes_server::config::checks::aws_credentials_warning;
    let home = tempfile::tempdir().unwrap();
    let none = |_: &str| None::<String>;
    let w = aws_credentials_warning(none, Some(home.path())).expect("a warning");
    assert!(
        w.contains("only the EC2 instance metadata service is left"),
        "{w}"
    );
    let w = aws_credentials_warning(
        |v: &str| (v == "AWS_EC2_METADATA_DISABLED").then(|| "true".to_string()),
        Some(home.path()),
    )
    .unwrap();
    assert!(w.contains("instance metadata service is disabled"), "{w}");
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    ] {
        let env = |v: &str| (v == var).then(|| "x".to_string());
        assert_eq!(aws_credentials_warning(env, Some(home.path())), None);
    }
    std::fs::create_dir(home.path().join(".aws")).unwrap();
    std::fs::write(home.path().join(".aws/config"), "[default]\n").unwrap();
    assert_eq!(aws_credentials_warning(none, Some(home.path())), None);
}
