//! Unknown keys: ignored with a warning, and named first when a config fails.

use super::*;

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
