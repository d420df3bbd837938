//! The `keystore:` section: exactly one backend, validated as the Go KES
//! validates it, converted to the plain configs of `kes_keystore::config`
//! ([`KeyStoreConfig`] says which one).

use crate::error::{ConfigError, Result};
use crate::walk::{join, missing, Files, Section, Text, ENV};
use crate::{KeyStoreConfig, DEFAULT_VAULT_STATUS_PING};
use kes_keystore::config::{
    AwsConfig, FsConfig, Pkcs11SealConfig, SealConfig, TokenRef, VaultAppRole, VaultConfig,
    VaultKubernetes, VaultTransit,
};
use std::path::PathBuf;

/// The Go KES treats a JWT value containing a path separator as a file.
fn is_jwt_file(jwt: &str) -> bool {
    jwt.contains('/') || jwt.contains(std::path::MAIN_SEPARATOR)
}

/// Backends are looked for in this order; a provider block (`aws:`) only
/// counts when it holds its service block (`secretsmanager:`), as in the
/// Go KES. `keystore.kes` is accepted and ignored.
const BACKENDS: [(&str, Option<&str>); 8] = [
    ("fs", None),
    ("vault", None),
    ("fortanix", Some("sdkms")),
    ("gemalto", Some("keysecure")),
    ("gcp", Some("secretmanager")),
    ("aws", Some("secretsmanager")),
    ("azure", Some("keyvault")),
    ("entrust", Some("keycontrol")),
];

pub(crate) fn parse(top: &Section<'_>, files: Files) -> Result<KeyStoreConfig> {
    let Some(keystore) = top.section("keystore")? else {
        return Err(ConfigError::new("kesconf: no keystore specified", None));
    };
    let mut found: Vec<(&'static str, Section<'_>)> = Vec::new();
    for (name, service) in BACKENDS {
        let Some(provider) = keystore.section(name)? else {
            continue;
        };
        match service {
            None => found.push((name, provider)),
            Some(service) => {
                if let Some(section) = provider.section(service)? {
                    found.push((name, section));
                }
            }
        }
    }
    if found.len() > 1 {
        let names: Vec<String> = found.iter().map(|(_, s)| s.path.clone()).collect();
        return Err(ConfigError::new(
            format!(
                "kesconf: invalid keystore config: more than once keystore specified ({})",
                names.join(", ")
            ),
            Some(keystore.line),
        ));
    }
    let Some((name, section)) = found.pop() else {
        return Err(ConfigError::new(
            "kesconf: no keystore specified",
            Some(keystore.line),
        ));
    };
    match name {
        "fs" => parse_fs(&section),
        "vault" => parse_vault(&section, files),
        "aws" => parse_aws(&section),
        "fortanix" => {
            require(
                &section,
                "fortanix SDKMS keystore",
                &[("endpoint", "endpoint")],
            )?;
            require(
                &section.section_or_empty("credentials")?,
                "fortanix SDKMS keystore",
                &[("key", "API key")],
            )?;
            optional_strings(&section.section_or_empty("tls")?, &["ca"])?;
            optional_strings(&section, &["group_id"])?;
            Ok(KeyStoreConfig::Unsupported { name: "fortanix" })
        }
        "gemalto" => {
            require(
                &section,
                "gemalto keysecure keystore",
                &[("endpoint", "endpoint")],
            )?;
            let credentials = section.section_or_empty("credentials")?;
            require(
                &credentials,
                "gemalto keysecure keystore",
                &[("token", "token")],
            )?;
            optional_strings(&credentials, &["domain"])?;
            optional_strings(&section.section_or_empty("tls")?, &["ca"])?;
            Ok(KeyStoreConfig::Unsupported { name: "gemalto" })
        }
        "gcp" => {
            require(
                &section,
                "GCP secretmanager keystore",
                &[("project_id", "project ID")],
            )?;
            optional_strings(&section, &["endpoint"])?;
            section.strings("scopes", ENV)?;
            optional_strings(
                &section.section_or_empty("credentials")?,
                &["client_email", "client_id", "private_key_id", "private_key"],
            )?;
            Ok(KeyStoreConfig::Unsupported { name: "gcp" })
        }
        "azure" => {
            const WHAT: &str = "Azure keyvault keystore";
            require(&section, WHAT, &[("endpoint", "endpoint")])?;
            let credentials = section.section("credentials")?;
            let managed = section.section("managed_identity")?;
            if credentials.is_some() && managed.is_some() {
                return Err(ConfigError::new(
                    format!(
                        "kesconf: invalid {WHAT}: more than one authentication method specified ({0}.credentials and {0}.managed_identity)",
                        section.path
                    ),
                    Some(section.line),
                ));
            }
            if let Some(credentials) = credentials {
                require(
                    &credentials,
                    WHAT,
                    &[
                        ("tenant_id", "tenant ID"),
                        ("client_id", "client ID"),
                        ("client_secret", "client secret"),
                    ],
                )?;
            }
            if let Some(managed) = managed {
                require(&managed, WHAT, &[("client_id", "client ID")])?;
            }
            Ok(KeyStoreConfig::Unsupported { name: "azure" })
        }
        _ => {
            const WHAT: &str = "Entrust KeyControl keystore";
            require(
                &section,
                WHAT,
                &[
                    ("endpoint", "endpoint"),
                    ("vault_id", "vault ID"),
                    ("box_id", "box ID"),
                ],
            )?;
            require(
                &section.section_or_empty("credentials")?,
                WHAT,
                &[("username", "username"), ("password", "password")],
            )?;
            optional_strings(&section.section_or_empty("tls")?, &["ca"])?;
            Ok(KeyStoreConfig::Unsupported { name: "entrust" })
        }
    }
}

/// Checks that each `(key, description)` field is present and non-empty.
fn require(section: &Section<'_>, what: &str, fields: &[(&str, &str)]) -> Result<()> {
    for (key, description) in fields {
        if section.string(key, ENV)?.is_empty() {
            return Err(missing(
                what,
                description,
                &join(&section.path, key),
                section.line,
            ));
        }
    }
    Ok(())
}

/// Checks that optional fields, when present, are single values whose
/// `${VAR}` references resolve.
fn optional_strings(section: &Section<'_>, keys: &[&str]) -> Result<()> {
    for key in keys {
        section.string(key, ENV)?;
    }
    Ok(())
}

fn parse_fs(section: &Section<'_>) -> Result<KeyStoreConfig> {
    let path = section.string("path", ENV)?;
    if path.is_empty() {
        return Err(missing(
            "fs keystore",
            "path",
            "keystore.fs.path",
            section.line,
        ));
    }
    let seal = section
        .section("seal")?
        .map(|seal| parse_seal(&seal))
        .transpose()?;
    Ok(KeyStoreConfig::Fs(FsConfig {
        path: PathBuf::from(path),
        seal,
    }))
}

/// `keystore.fs.seal` (an addition to the Go format, docs/hsm.md).
fn parse_seal(seal: &Section<'_>) -> Result<SealConfig> {
    const WHAT: &str = "fs keystore seal";
    let Some(pkcs11) = seal.section("pkcs11")? else {
        return Err(missing(
            WHAT,
            "sealing method",
            &join(&seal.path, "pkcs11"),
            seal.line,
        ));
    };
    require(
        &pkcs11,
        WHAT,
        &[
            ("module", "PKCS#11 module"),
            ("pin", "PIN"),
            ("key", "key label"),
        ],
    )?;
    let label = pkcs11.string("token", ENV)?;
    let slot = pkcs11
        .text("slot", ENV)?
        .filter(|t| !t.as_str().trim().is_empty());
    let token = match (label.is_empty(), slot) {
        (false, None) => TokenRef::Label(label),
        (true, Some(slot)) => match slot.as_str().trim().parse::<u64>() {
            Ok(id) => TokenRef::Slot(id),
            Err(_) => return Err(slot.invalid("must be a slot number")),
        },
        (true, None) => {
            return Err(missing(
                WHAT,
                "token label (or slot)",
                &join(&pkcs11.path, "token"),
                pkcs11.line,
            ))
        }
        (false, Some(_)) => {
            return Err(ConfigError::new(
                format!(
                "kesconf: invalid {WHAT}: both {0}.token and {0}.slot specified: name the token \
                     by one of them",
                pkcs11.path
            ),
                Some(pkcs11.line),
            ))
        }
    };
    Ok(SealConfig::Pkcs11(Pkcs11SealConfig {
        module: PathBuf::from(pkcs11.string("module", ENV)?),
        token,
        pin: pkcs11.string("pin", ENV)?,
        key: pkcs11.string("key", ENV)?,
    }))
}

fn parse_aws(section: &Section<'_>) -> Result<KeyStoreConfig> {
    const WHAT: &str = "AWS secretsmanager keystore";
    require(
        section,
        WHAT,
        &[("endpoint", "endpoint"), ("region", "region")],
    )?;
    if let Some(prefix) = section.text("prefix", ENV)? {
        check_aws_prefix(&prefix)?;
    }
    let credentials = section.section_or_empty("credentials")?;
    Ok(KeyStoreConfig::Aws(AwsConfig {
        endpoint: section.string("endpoint", ENV)?,
        region: section.string("region", ENV)?,
        kms_key: section.string("kmskey", ENV)?,
        prefix: section.string("prefix", ENV)?,
        access_key: credentials.string("accesskey", ENV)?,
        secret_key: credentials.string("secretkey", ENV)?,
        session_token: credentials.string("token", ENV)?,
    }))
}

/// The prefix becomes part of every secret name (at most 512 bytes, of
/// letters, digits and `/_+=.@-`) together with a key name of up to 80
/// bytes. Checked here so that a bad prefix is reported with its line, not
/// as a failure to connect.
fn check_aws_prefix(prefix: &Text) -> Result<()> {
    const MAX: usize = 512 - kes_core::name::MAX_NAME_LEN;
    let p = prefix.as_str();
    if let Some(c) = p
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/_+=.@-".contains(*c)))
    {
        return Err(prefix.invalid(format!(
            "'{c}' is not allowed: use only letters, digits and /_+=.@-"
        )));
    }
    if p.len() > MAX {
        return Err(prefix.invalid(format!("longer than {MAX} bytes")));
    }
    Ok(())
}

fn or_default(value: String, default: &str) -> String {
    if value.is_empty() {
        default.to_string()
    } else {
        value
    }
}

fn parse_vault(section: &Section<'_>, files: Files) -> Result<KeyStoreConfig> {
    const WHAT: &str = "vault keystore";
    require(section, WHAT, &[("endpoint", "endpoint")])?;
    let version = match section.text("version", ENV)? {
        None => "v1".to_string(),
        Some(t) => match t.as_str().trim() {
            "" | "v1" => "v1".to_string(),
            "v2" => "v2".to_string(),
            _ => return Err(t.invalid("must be 'v1' or 'v2'")),
        },
    };

    let approle = section.section("approle")?;
    let kubernetes = section.section("kubernetes")?;
    let auth_path = |s: &str| join(&section.path, s);
    match (&approle, &kubernetes) {
        (None, None) => {
            return Err(ConfigError::new(
                format!(
                    "kesconf: invalid {WHAT}: no authentication method specified ({} or {})",
                    auth_path("approle"),
                    auth_path("kubernetes")
                ),
                Some(section.line),
            ))
        }
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                format!(
                    "kesconf: invalid {WHAT}: more than one authentication method specified ({} and {})",
                    auth_path("approle"),
                    auth_path("kubernetes")
                ),
                Some(section.line),
            ))
        }
        _ => {}
    }

    let approle = approle
        .map(|a| -> Result<VaultAppRole> {
            require(
                &a,
                "vault keystore: invalid approle config",
                &[("id", "approle ID"), ("secret", "approle secret")],
            )?;
            Ok(VaultAppRole {
                engine: or_default(a.string("engine", ENV)?, "approle"),
                namespace: a.string("namespace", ENV)?,
                id: a.string("id", ENV)?,
                secret: a.string("secret", ENV)?,
            })
        })
        .transpose()?;

    let kubernetes = kubernetes
        .map(|k| -> Result<VaultKubernetes> {
            require(
                &k,
                "vault keystore: invalid kubernetes config",
                &[("role", "role"), ("jwt", "JWT")],
            )?;
            let jwt = k.string("jwt", ENV)?;
            if is_jwt_file(&jwt) {
                // Only readability is checked now: the file is re-read at
                // every login because Kubernetes rotates the token.
                if let Err(e) = std::fs::File::open(&jwt) {
                    let line = k.get("jwt").map_or(k.line, |n| n.line);
                    return Err(ConfigError::new(
                        format!(
                            "kesconf: failed to read vault kubernetes JWT from '{jwt}' ({}.jwt in line {line}): {e}",
                            k.path
                        ),
                        Some(line),
                    ));
                }
            }
            Ok(VaultKubernetes {
                engine: or_default(k.string("engine", ENV)?, "kubernetes"),
                namespace: k.string("namespace", ENV)?,
                role: k.string("role", ENV)?,
                jwt,
            })
        })
        .transpose()?;

    let transit = section
        .section("transit")?
        .map(|t| -> Result<VaultTransit> {
            require(
                &t,
                "vault keystore: invalid transit config",
                &[("key", "key name")],
            )?;
            Ok(VaultTransit {
                engine: or_default(t.string("engine", ENV)?, "transit"),
                key: t.string("key", ENV)?,
            })
        })
        .transpose()?;

    let tls = section.section_or_empty("tls")?;
    let tls_key = tls.string("key", ENV)?;
    let tls_cert = tls.string("cert", ENV)?;
    if !tls_key.is_empty() && tls_cert.is_empty() {
        return Err(missing(
            "vault keystore: invalid tls config",
            "TLS certificate",
            &join(&tls.path, "cert"),
            tls.line,
        ));
    }
    if tls_key.is_empty() && !tls_cert.is_empty() {
        return Err(missing(
            "vault keystore: invalid tls config",
            "TLS private key",
            &join(&tls.path, "key"),
            tls.line,
        ));
    }

    for (key, dir_ok) in [("key", false), ("cert", false), ("ca", true)] {
        if let Some(t) = tls.text(key, ENV)?.filter(|t| !t.as_str().is_empty()) {
            t.check_readable(files, dir_ok)?;
        }
    }

    let status_ping = section
        .section_or_empty("status")?
        .duration("ping")?
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_VAULT_STATUS_PING);

    Ok(KeyStoreConfig::Vault(VaultConfig {
        endpoint: section.string("endpoint", ENV)?,
        engine: or_default(section.string("engine", ENV)?, "kv"),
        version,
        namespace: section.string("namespace", ENV)?,
        prefix: section.string("prefix", ENV)?,
        approle,
        kubernetes,
        transit,
        tls_key,
        tls_cert,
        tls_ca: tls.string("ca", ENV)?,
        status_ping,
    }))
}
