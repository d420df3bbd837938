//! The `keystore:` section, and loading it alone (`kes migrate`).

use super::*;

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
    let (keystore, warnings) = kes_config::load_keystore(&path).unwrap();
    assert!(matches!(keystore, KeyStoreConfig::Fs(ref fs) if fs.path == Path::new("/tmp/keys")));
    assert_eq!(
        warnings,
        ["kesconf: unknown key 'pth' in line 5 (did you mean 'path'?) is ignored"]
    );
    std::fs::write(&path, "keystore:\n  aws:\n    secretmanager: {}\n").unwrap();
    let err = kes_config::load_keystore(&path).unwrap_err().to_string();
    assert!(
        err.starts_with(
            "kesconf: unknown key 'secretmanager' in line 3 (did you mean 'secretsmanager'?)\n"
        ),
        "{err}"
    );
}
