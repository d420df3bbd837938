//! The rules of the sections besides `keystore:`, their defaults, and
//! YAML features (anchors, merge keys).

use super::*;

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
fn connection_limits() {
    let config = ServerConfig::parse(&with("")).unwrap();
    assert_eq!(config.limits, kes_config::ConnectionLimits::default());
    let config = ServerConfig::parse(&with(
        "limits:\n  connections: 4096\n  connections_per_ip: 1024\n",
    ))
    .unwrap();
    assert_eq!(config.limits.connections, Some(4096));
    assert_eq!(config.limits.connections_per_ip, Some(1024));
    // Only the total: the server derives the per-address limit from it
    // (kes-server's `Limits::with_config`).
    let only_total = ServerConfig::parse(&with("limits:\n  connections: 800\n")).unwrap();
    assert_eq!(only_total.limits.connections, Some(800));
    assert_eq!(only_total.limits.connections_per_ip, None);
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
fn proxy_protocol_sources() {
    let config = ServerConfig::parse(&with("")).unwrap();
    assert!(config.proxy_protocol.is_empty());
    let config = ServerConfig::parse(&with(
        "proxy_protocol:\n  - 10.1.2.3/8\n  - 192.168.7.12\n  - fd00::/8\n  - 10.0.0.0/8\n",
    ))
    .unwrap();
    let nets: Vec<String> = config
        .proxy_protocol
        .iter()
        .map(|n| n.to_string())
        .collect();
    // Host bits cleared, a bare address is one host, duplicates dropped.
    assert_eq!(nets, ["10.0.0.0/8", "192.168.7.12/32", "fd00::/8"]);
    let net = |i: usize| config.proxy_protocol[i];
    assert!(net(0).contains("10.200.0.1".parse().unwrap()));
    assert!(net(0).contains("::ffff:10.200.0.1".parse().unwrap()));
    assert!(!net(0).contains("11.0.0.1".parse().unwrap()));
    assert!(net(1).contains("192.168.7.12".parse().unwrap()));
    assert!(!net(1).contains("192.168.7.13".parse().unwrap()));
    assert!(net(2).contains("fd12::1".parse().unwrap()));
    assert!(!net(2).contains("10.0.0.1".parse().unwrap()));
    let everything: kes_config::SourceNet = "0.0.0.0/0".parse().unwrap();
    assert!(everything.contains("8.8.8.8".parse().unwrap()));
    for (bad, why) in [
        ("10.0.0.0/33", "invalid prefix length"),
        ("10.0.0/8", "not an IP address or network"),
        ("example.com", "not an IP address or network"),
    ] {
        assert_error(&with(&format!("proxy_protocol:\n  - {bad}\n")), why);
    }
}

#[test]
fn tls_proxy_header_must_be_a_header_name() {
    let config = ServerConfig::parse(&with_tls(
        "  proxy:\n    identities:\n      - 3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22\n    header:\n      cert: ssl-client-cert\n",
    ))
    .unwrap();
    assert_eq!(
        config.tls.proxy.cert_header.as_deref(),
        Some("ssl-client-cert")
    );
    assert_error(
        &with_tls("  proxy:\n    header:\n      cert: \"a header\"\n"),
        "not a valid HTTP header name",
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
