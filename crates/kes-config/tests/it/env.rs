//! `${VAR}` substitution.

use super::*;

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
