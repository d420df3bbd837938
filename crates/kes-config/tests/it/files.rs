//! `ServerConfig::load`: the file and the files it names.

use super::*;

#[test]
fn load_reports_missing_and_binary_files() {
    let err = ServerConfig::load(Path::new("/nonexistent/kes-rs/config.yml")).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("kesconf: failed to read config file '/nonexistent/kes-rs/config.yml'"));
    // The cause is in the message, and only there: a chain walker that
    // also printed source() would say it twice.
    assert!(err.to_string().contains("No such file"), "{err}");
    assert!(std::error::Error::source(&err).is_none());

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yml");
    std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
    let err = ServerConfig::load(&path).unwrap_err();
    assert!(err.to_string().contains("is not valid UTF-8"), "{err}");
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
