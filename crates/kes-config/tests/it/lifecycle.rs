//! `lifecycle` (a kes-rs addition): the rotation rules, the deletion
//! window, the `d` unit that only this section accepts, which rule a key
//! follows, and the errors.

use super::*;

#[test]
fn rotation_rules() {
    let config = ServerConfig::parse(&with("")).unwrap();
    assert!(config.lifecycle.rotate.is_empty());
    assert_eq!(config.lifecycle.rotation_period("minio-1"), None);

    let config = ServerConfig::parse(&with(
        "lifecycle:\n  rotate:\n    - keys: [ \"minio-*\", \"backup-key\" ]   # names or patterns\n      every: 90d\n    - keys: [minio-hot, minio-hot]\n      every: 1d12h\n    - keys: ['*']\n      every: 8760h\n",
    ))
    .unwrap();
    let rules = &config.lifecycle.rotate;
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[0].keys, ["minio-*", "backup-key"]);
    assert_eq!(rules[0].every, secs(90 * 86_400));
    // A duplicate name in one rule is kept once.
    assert_eq!(rules[1].keys, ["minio-hot"]);
    assert_eq!(rules[1].every, secs(36 * 3600));
    assert_eq!(
        config.lifecycle.shortest_rotation_period(),
        Some(secs(36 * 3600))
    );
    // A key named by several rules follows the shortest period.
    let period = |name: &str| config.lifecycle.rotation_period(name);
    assert_eq!(period("minio-hot"), Some(secs(36 * 3600)));
    assert_eq!(period("minio-cold"), Some(secs(90 * 86_400)));
    assert_eq!(period("backup-key"), Some(secs(90 * 86_400)));
    // Every key matches `*`; an exact name matches only itself.
    assert_eq!(period("backup-key2"), Some(secs(365 * 86_400)));
    assert!(!rules[0].matches("backup-key2"));
    assert!(!rules[0].matches("minio"));
    assert!(rules[0].matches("minio-"));

    // `${VAR}` works as in the other sections.
    std::env::set_var("KES_TEST_LIFECYCLE_EVERY", "2s");
    let config = ServerConfig::parse(&with(
        "lifecycle:\n  rotate:\n  - keys: [k]\n    every: ${KES_TEST_LIFECYCLE_EVERY}\n",
    ))
    .unwrap();
    assert_eq!(config.lifecycle.rotation_period("k"), Some(secs(2)));
    // Nothing about it is unknown.
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn rotation_rule_errors() {
    let rule = |body: &str| with(&format!("lifecycle:\n  rotate:\n    - {body}\n"));
    for (yaml, message) in [
        (
            rule("keys: [k]\n      every: 0s"),
            "kesconf: invalid lifecycle.rotate[0].every '0s' in line 12: must be at least 1s",
        ),
        (
            rule("keys: [k]\n      every: 500ms"),
            "kesconf: invalid lifecycle.rotate[0].every '500ms' in line 12: must be at least 1s",
        ),
        (
            rule("keys: [k]\n      every: -1d"),
            "kesconf: invalid lifecycle.rotate[0].every '-1d' in line 12: duration '-1d' is negative",
        ),
        (
            rule("keys: [k]\n      every: 90"),
            "kesconf: invalid lifecycle.rotate[0].every '90' in line 12: missing unit in duration '90' (use ns, us, ms, s, m, h or d)",
        ),
        (
            rule("keys: [k]\n      every: 1w"),
            "unknown unit 'w' in duration '1w'",
        ),
        (
            rule("keys: [k]"),
            "kesconf: invalid rotation rule: no period specified (lifecycle.rotate[0].every)",
        ),
        (
            rule("every: 1d"),
            "kesconf: invalid rotation rule: no keys specified (lifecycle.rotate[0].keys)",
        ),
        (
            rule("keys: []\n      every: 1d"),
            "no keys specified (lifecycle.rotate[0].keys)",
        ),
        (
            rule("keys: [ok, my.key]\n      every: 1d"),
            "kesconf: invalid lifecycle.rotate[0].keys[1] 'my.key' in line 11: not a key name or a name prefix followed by '*'",
        ),
        (rule("keys: ['a*b']\n      every: 1d"), "'a*b' in line 11: not a key name"),
        (rule("keys: ['**']\n      every: 1d"), "'**' in line 11: not a key name"),
        (rule("keys: ['-*']\n      every: 1d"), "'-*' in line 11: not a key name"),
        (rule("keys: [minio-]\n      every: 1d"), "'minio-' in line 11: not a key name"),
        (
            rule("keys: minio-*\n      every: 1d"),
            "kesconf: invalid lifecycle.rotate[0].keys in line 11: expected a list, found a scalar",
        ),
        (
            with("lifecycle:\n  rotate:\n    - minio-*\n"),
            "kesconf: invalid lifecycle.rotate[0] in line 11: expected a mapping like '- keys: [my-key]' with 'every: 90d', found a scalar",
        ),
        (
            with("lifecycle:\n  rotate: {keys: [k], every: 1d}\n"),
            "kesconf: invalid lifecycle.rotate in line 10: expected a list",
        ),
    ] {
        assert_error(&yaml, message);
    }
    // Only `lifecycle` knows days: other durations stay Go-exact.
    assert_error(
        &with("cache:\n  expiry:\n    any: 1d\n"),
        "unknown unit 'd'",
    );
}

#[test]
fn unknown_lifecycle_keys_are_warned_about() {
    let config = ServerConfig::parse(&with(
        "lifecycle:\n  rotate:\n    - keys: [k]\n      evry: 1d\n      every: 2d\n  deletion_windo: 7d\n",
    ))
    .unwrap();
    assert_eq!(
        config.warnings,
        [
            "kesconf: unknown key 'evry' in line 12 (did you mean 'every'?) is ignored",
            "kesconf: unknown key 'deletion_windo' in line 14 (did you mean 'deletion_window'?) is ignored",
        ]
    );
}

#[test]
fn deletion_window() {
    // None, or zero: delete at once, as the Go KES does.
    let config = ServerConfig::parse(&with("")).unwrap();
    assert_eq!(config.lifecycle.deletion_window, Duration::ZERO);
    let window = |text: &str| {
        ServerConfig::parse(&with(&format!("lifecycle:\n  deletion_window: {text}\n")))
            .map(|c| c.lifecycle.deletion_window)
    };
    assert_eq!(window("0").unwrap(), Duration::ZERO);
    assert_eq!(window("0s").unwrap(), Duration::ZERO);
    assert_eq!(window("7d").unwrap(), secs(7 * 86_400));
    assert_eq!(window("1d12h").unwrap(), secs(36 * 3600));
    assert_eq!(window("2s").unwrap(), secs(2));
    std::env::set_var("KES_TEST_DELETION_WINDOW", "30d");
    assert_eq!(
        window("${KES_TEST_DELETION_WINDOW}").unwrap(),
        secs(30 * 86_400)
    );
    // Next to rules, and nothing about it is unknown.
    let config = ServerConfig::parse(&with(
        "lifecycle:\n  rotate:\n    - keys: [k]\n      every: 1d\n  deletion_window: 7d\n",
    ))
    .unwrap();
    assert_eq!(config.lifecycle.rotate.len(), 1);
    assert_eq!(config.lifecycle.deletion_window, secs(7 * 86_400));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    for (text, message) in [
        (
            "-1d",
            "kesconf: invalid lifecycle.deletion_window '-1d' in line 10: duration '-1d' is negative",
        ),
        (
            "7",
            "kesconf: invalid lifecycle.deletion_window '7' in line 10: missing unit in duration '7' (use ns, us, ms, s, m, h or d)",
        ),
    ] {
        assert_error(&with(&format!("lifecycle:\n  deletion_window: {text}\n")), message);
    }
}
