//! Start-up warnings about configs that start but are likely wrong.

use super::*;

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
    use kes_config::checks::aws_credentials_warning;
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

#[test]
fn proxy_protocol_for_everyone_is_warned_about() {
    let config = ServerConfig::parse(&crate::with(
        "proxy_protocol:\n  - 0.0.0.0/0\n  - 10.0.0.0/8\n  - 10.1.2.3\n  - ::/0\n",
    ))
    .unwrap();
    let warnings: Vec<String> = kes_config::checks::environment_warnings(&config)
        .into_iter()
        .filter(|w| w.contains("proxy_protocol"))
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].contains("0.0.0.0/0"), "{warnings:?}");
    assert!(warnings[1].contains("::/0"), "{warnings:?}");
}
