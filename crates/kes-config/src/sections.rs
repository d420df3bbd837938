//! The sections of the config besides `keystore:` (see keystore.rs):
//! `tls`, `policy`, `cache`, `limits`, `log`, `api`, `keys` and
//! `lifecycle`.

use crate::error::{ConfigError, Result};
use crate::types::{
    ApiRouteConfig, CacheExpiry, ConnectionLimits, LifecycleConfig, LogConfig, PolicyConfig,
    ProxyConfig, RotationRule, SourceNet, TlsAuth, TlsConfig, DEFAULT_CACHE_ANY,
    DEFAULT_CACHE_UNUSED, MIN_ROTATION_PERIOD,
};
use crate::walk::{expected, missing, Files, Section, ENV, RAW};
use crate::yaml::Value;
use crate::LogFormat;
use crate::LogLevel;
use kes_core::duration::{format_duration, parse_duration_with_days};
use kes_core::name::{valid_name, valid_pattern};
use kes_core::{Identity, Policy};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) fn parse_tls(tls: &Section<'_>, admin: &Identity, files: Files) -> Result<TlsConfig> {
    let Some(key) = tls.text("key", ENV)?.filter(|t| !t.as_str().is_empty()) else {
        return Err(missing("tls config", "private key", "tls.key", tls.line));
    };
    let Some(cert) = tls.text("cert", ENV)?.filter(|t| !t.as_str().is_empty()) else {
        return Err(missing("tls config", "certificate", "tls.cert", tls.line));
    };
    key.check_readable(files, false)?;
    cert.check_readable(files, false)?;
    if let Some(ca) = tls.text("ca", ENV)?.filter(|t| !t.as_str().is_empty()) {
        ca.check_readable(files, true)?;
    }
    let (key, cert) = (key.as_str().to_string(), cert.as_str().to_string());
    let password = tls
        .text("password", ENV)?
        .filter(|t| !t.as_str().is_empty())
        .map(|t| t.value);
    let auth = match tls.text("auth", ENV)? {
        None => TlsAuth::Off,
        Some(t) => match t.as_str().trim().to_ascii_lowercase().as_str() {
            "" | "off" => TlsAuth::Off,
            "on" => TlsAuth::On,
            _ => return Err(t.invalid("invalid auth, must be 'on' or 'off'")),
        },
    };
    let ca = tls.opt_string("ca", ENV)?.map(PathBuf::from);

    let proxy_section = tls.section_or_empty("proxy")?;
    let mut identities: Vec<Identity> = Vec::new();
    for t in proxy_section.strings("identities", ENV)? {
        if !valid_name(t.as_str()) {
            return Err(t.invalid("not a valid identity"));
        }
        let id = Identity::new(t.as_str());
        if &id == admin {
            return Err(ConfigError::new(
                format!(
                    "kesconf: invalid tls proxy: identity '{id}' in line {} is already admin",
                    t.line
                ),
                Some(t.line),
            ));
        }
        if !identities.contains(&id) {
            identities.push(id);
        }
    }
    let cert_header = match proxy_section
        .section_or_empty("header")?
        .text("cert", ENV)?
    {
        Some(t) if !is_http_token(t.as_str()) => {
            return Err(t.invalid("not a valid HTTP header name"));
        }
        t => t.map(|t| t.as_str().to_string()).filter(|h| !h.is_empty()),
    };

    Ok(TlsConfig {
        key: PathBuf::from(key),
        cert: PathBuf::from(cert),
        password,
        auth,
        ca,
        proxy: ProxyConfig {
            identities,
            cert_header,
        },
    })
}

pub(crate) fn parse_policies(
    top: &Section<'_>,
    admin: &Identity,
    proxy: &ProxyConfig,
) -> Result<BTreeMap<String, PolicyConfig>> {
    let section = top.section_or_empty("policy")?;
    let mut policies = BTreeMap::new();
    // identity → the policy that claimed it first, to report conflicts.
    let mut owners: BTreeMap<Identity, String> = BTreeMap::new();
    for (name, node) in section.named_entries()? {
        let path = format!("policy.{name}");
        if !valid_name(name) {
            return Err(ConfigError::new(
                format!(
                    "kesconf: invalid policy name '{name}' in line {}: use 1-80 characters of 0-9 A-Z a-z _ -, not starting or ending with '-'",
                    node.line
                ),
                Some(node.line),
            ));
        }
        let body = section.named_section(node, path)?;
        let allow = body.strings("allow", RAW)?;
        let deny = body.strings("deny", RAW)?;
        let mut identities: Vec<Identity> = Vec::new();
        for t in body.strings("identities", ENV)? {
            if !valid_name(t.as_str()) {
                return Err(t.invalid("not a valid identity"));
            }
            let id = Identity::new(t.as_str());
            let conflict = |what: String| {
                ConfigError::new(
                    format!(
                        "kesconf: invalid policy '{name}': identity '{id}' in line {} {what}",
                        t.line
                    ),
                    Some(t.line),
                )
            };
            if &id == admin {
                return Err(conflict("is already admin".into()));
            }
            if proxy.identities.contains(&id) {
                return Err(conflict("is already a TLS proxy".into()));
            }
            match owners.get(&id) {
                Some(owner) if owner == name => continue,
                Some(owner) => {
                    return Err(conflict(format!("already has a policy ('{owner}')")));
                }
                None => {
                    owners.insert(id.clone(), name.to_string());
                }
            }
            identities.push(id);
        }
        let policy = Policy {
            allow: allow.iter().map(|t| t.as_str().to_string()).collect(),
            deny: deny.iter().map(|t| t.as_str().to_string()).collect(),
        };
        policies.insert(name.to_string(), PolicyConfig { policy, identities });
    }
    Ok(policies)
}

pub(crate) fn parse_cache(top: &Section<'_>) -> Result<CacheExpiry> {
    let expiry = top.section_or_empty("cache")?.section_or_empty("expiry")?;
    let nonzero = |d: Option<Duration>| d.filter(|d| !d.is_zero());
    // The Go KES (configureCache) meant to default `unused` to 30s but set
    // `any` instead; here each setting gets its own default (5m any, 30s
    // unused, offline off; docs/configuration.md).
    Ok(CacheExpiry {
        any: nonzero(expiry.duration("any")?).unwrap_or(DEFAULT_CACHE_ANY),
        unused: nonzero(expiry.duration("unused")?).unwrap_or(DEFAULT_CACHE_UNUSED),
        offline: expiry.duration("offline")?.unwrap_or(Duration::ZERO),
    })
}

pub(crate) fn parse_limits(top: &Section<'_>) -> Result<ConnectionLimits> {
    let limits = top.section_or_empty("limits")?;
    let count = |key: &str| -> Result<Option<usize>> {
        match limits.text(key, ENV)? {
            None => Ok(None),
            Some(t) => match t.as_str().parse::<usize>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(t.invalid("must be a whole number greater than 0")),
            },
        }
    };
    Ok(ConnectionLimits {
        connections: count("connections")?,
        connections_per_ip: count("connections_per_ip")?,
    })
}

/// Whether `name` is an HTTP header name (RFC 9110 token).
fn is_http_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

pub(crate) fn parse_proxy_protocol(top: &Section<'_>) -> Result<Vec<SourceNet>> {
    let mut nets = Vec::new();
    for t in top.strings("proxy_protocol", ENV)? {
        let net: SourceNet = t.as_str().parse().map_err(|e: String| t.invalid(e))?;
        if !nets.contains(&net) {
            nets.push(net);
        }
    }
    Ok(nets)
}

pub(crate) fn parse_log(top: &Section<'_>) -> Result<LogConfig> {
    let log = top.section_or_empty("log")?;
    let level = |key: &str| -> Result<LogLevel> {
        match log.text(key, ENV)? {
            None => Ok(LogLevel::INFO),
            Some(t) => t.as_str().parse().map_err(|e: String| t.invalid(e)),
        }
    };
    let error = level("error")?;
    let audit = level("audit")?;
    let format = match log.text("format", ENV)? {
        None => LogFormat::Text,
        Some(t) => t.as_str().parse().map_err(|e: String| t.invalid(e))?,
    };
    let audit_file = log.opt_string("audit_file", ENV)?.map(PathBuf::from);
    Ok(LogConfig {
        error,
        audit,
        format,
        audit_file,
    })
}

pub(crate) fn parse_api(top: &Section<'_>) -> Result<BTreeMap<String, ApiRouteConfig>> {
    let api = top.section_or_empty("api")?;
    let mut routes = BTreeMap::new();
    for (route, node) in api.named_entries()? {
        let body = api.named_section(node, format!("api.{route}"))?;
        let timeout = body.duration("timeout")?.filter(|d| !d.is_zero());
        let skip_auth = body.boolean("skip_auth")?;
        routes.insert(route.to_string(), ApiRouteConfig { skip_auth, timeout });
    }
    Ok(routes)
}

pub(crate) fn parse_keys(top: &Section<'_>) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for (i, node) in top.list("keys")?.iter().enumerate() {
        let path = format!("keys[{i}]");
        if !matches!(node.value, Value::Map(_)) {
            return Err(expected(&path, "a mapping like '- name: my-key'", node));
        }
        let entry = top.item_section("keys", node, path.clone())?;
        let Some(name) = entry.text("name", ENV)? else {
            return Err(missing(
                "key config",
                "key name",
                &format!("{path}.name"),
                node.line,
            ));
        };
        if !valid_name(name.as_str()) {
            return Err(name.invalid(
                "not a valid key name (1-80 characters of 0-9 A-Z a-z _ -, not starting or ending with '-')",
            ));
        }
        if names.iter().any(|n| n == name.as_str()) {
            return Err(ConfigError::new(
                format!(
                    "kesconf: invalid key config: key '{}' is defined multiple times (line {})",
                    name.as_str(),
                    name.line
                ),
                Some(name.line),
            ));
        }
        names.push(name.as_str().to_string());
    }
    Ok(names)
}

/// `lifecycle` (kes-rs only). `rotate` is a list of rules, each with the
/// keys it names and how often they are rotated; `deletion_window` how
/// long a deleted key stays restorable:
///
/// ```yaml
/// lifecycle:
///   rotate:
///     - keys: [ "minio-*", "backup-key" ]
///       every: 90d
///   deletion_window: 7d
/// ```
pub(crate) fn parse_lifecycle(top: &Section<'_>) -> Result<LifecycleConfig> {
    let lifecycle = top.section_or_empty("lifecycle")?;
    let mut rotate = Vec::new();
    for (i, node) in lifecycle.list("rotate")?.iter().enumerate() {
        let path = format!("lifecycle.rotate[{i}]");
        if !matches!(node.value, Value::Map(_)) {
            return Err(expected(
                &path,
                "a mapping like '- keys: [my-key]' with 'every: 90d'",
                node,
            ));
        }
        let entry = lifecycle.item_section("rotate", node, path.clone())?;
        let mut keys: Vec<String> = Vec::new();
        for t in entry.strings("keys", ENV)? {
            let name = t.as_str();
            // A name, or a prefix and one trailing `*` (the policies'
            // listing patterns without their bare prefixes).
            let pattern = name.ends_with('*') && valid_pattern(name);
            if !valid_name(name) && !pattern {
                return Err(t.invalid(
                    "not a key name or a name prefix followed by '*' (1-80 characters of 0-9 A-Z a-z _ -, not starting or ending with '-')",
                ));
            }
            if !keys.iter().any(|k| k == name) {
                keys.push(name.to_string());
            }
        }
        if keys.is_empty() {
            return Err(missing(
                "rotation rule",
                "keys",
                &format!("{path}.keys"),
                node.line,
            ));
        }
        let Some(every) = entry.text("every", ENV)? else {
            return Err(missing(
                "rotation rule",
                "period",
                &format!("{path}.every"),
                node.line,
            ));
        };
        let period =
            parse_duration_with_days(every.as_str().trim()).map_err(|e| every.invalid(e))?;
        if period < MIN_ROTATION_PERIOD {
            return Err(every.invalid(format!(
                "must be at least {}",
                format_duration(MIN_ROTATION_PERIOD)
            )));
        }
        rotate.push(RotationRule {
            keys,
            every: period,
        });
    }
    // Same syntax as `every` (days allowed); `0` or none deletes at once.
    let deletion_window = match lifecycle.text("deletion_window", ENV)? {
        None => Duration::ZERO,
        Some(t) => parse_duration_with_days(t.as_str().trim()).map_err(|e| t.invalid(e))?,
    };
    Ok(LifecycleConfig {
        rotate,
        deletion_window,
    })
}
