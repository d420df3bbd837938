//! Loading a config: reading the file, parsing the YAML, collecting the
//! unknown keys and parsing each section.

use crate::error::{ConfigError, Result};
use crate::sections::{
    parse_api, parse_cache, parse_keys, parse_lifecycle, parse_limits, parse_log, parse_policies,
    parse_proxy_protocol, parse_tls,
};
use crate::walk::{Files, Section, ENV};
use crate::yaml::{self, Node, Value};
use crate::{checks, keystore, schema, KeyStoreConfig, ServerConfig};
use kes_core::Identity;
use std::path::Path;
use zeroize::Zeroizing;

impl ServerConfig {
    /// Reads and parses a config file. Relative paths inside it (TLS files,
    /// the fs key store) are kept as written, i.e. relative to the working
    /// directory, like the Go KES.
    pub fn load(path: &Path) -> Result<ServerConfig> {
        let text = read_config_file(path)?;
        let text = config_text(path, &text)?;
        Self::parse_with(text, Files::Check)
    }

    /// Parses a config from YAML text. Files named in it are not looked at
    /// ([`ServerConfig::load`] checks that they can be read).
    pub fn parse(yaml: &str) -> Result<ServerConfig> {
        Self::parse_with(yaml, Files::Ignore)
    }

    fn parse_with(yaml: &str, files: Files) -> Result<ServerConfig> {
        let root = parse_root(yaml)?;
        // Unknown keys are collected first: when the config then fails,
        // a typo (`secretmanager:`) is most likely why, and is reported
        // before the error it caused.
        let unknown = schema::unknown_keys(&root);
        let top = Section::top(&root)?;
        let parsed = Self::parse_sections(&top, files);
        match parsed {
            Ok(mut config) => {
                config.warnings = unknown.iter().map(|u| u.warning()).collect();
                config
                    .warnings
                    .extend(checks::admin_identity_problem(&config.admin));
                Ok(config)
            }
            Err(e) => Err(e.after_unknown_keys(&unknown)),
        }
    }

    fn parse_sections(top: &Section<'_>, files: Files) -> Result<ServerConfig> {
        check_version(top)?;
        let address = top.opt_string("address", ENV)?;

        let admin = Identity::new(top.section_or_empty("admin")?.string("identity", ENV)?);
        if admin.as_str().is_empty() {
            return Err(ConfigError::new(
                "kesconf: invalid admin identity: no admin identity",
                None,
            ));
        }

        let tls = parse_tls(&top.section_or_empty("tls")?, &admin, files)?;
        let policies = parse_policies(top, &admin, &tls.proxy)?;
        let cache = parse_cache(top)?;
        let log = parse_log(top)?;
        let api = parse_api(top)?;
        let keys = parse_keys(top)?;
        let limits = parse_limits(top)?;
        let proxy_protocol = parse_proxy_protocol(top)?;
        let lifecycle = parse_lifecycle(top)?;
        let keystore = keystore::parse(top, files)?;

        Ok(ServerConfig {
            address,
            admin,
            tls,
            api,
            policies,
            cache,
            log,
            keys,
            limits,
            proxy_protocol,
            lifecycle,
            keystore,
            warnings: Vec::new(),
        })
    }

    /// Reports whether any route skips authentication, in which case the
    /// TLS handshake must accept clients without a certificate.
    pub fn skips_auth_anywhere(&self) -> bool {
        self.api.values().any(|route| route.skip_auth)
    }
}

/// The text of a config file read by [`read_config_file`].
fn config_text<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a str> {
    std::str::from_utf8(bytes).map_err(|e| {
        ConfigError::new(
            format!(
                "kesconf: config file '{}' is not valid UTF-8: {e}",
                path.display()
            ),
            None,
        )
    })
}

/// Reads only the `keystore` section of a config file, for tools that
/// need nothing else (`kes migrate`): the other sections may be missing,
/// and their `${VAR}` references are not resolved. Returns the key store
/// and the warnings about unknown keys inside the section.
pub fn load_keystore(path: &Path) -> Result<(KeyStoreConfig, Vec<String>)> {
    let text = read_config_file(path)?;
    let text = config_text(path, &text)?;
    let root = parse_root(text)?;
    let top = Section::top(&root)?;
    let unknown = top
        .get("keystore")
        .map(schema::unknown_keystore_keys)
        .unwrap_or_default();
    match keystore::parse(&top, Files::Check) {
        Ok(keystore) => Ok((keystore, unknown.iter().map(|u| u.warning()).collect())),
        Err(e) => Err(e.after_unknown_keys(&unknown)),
    }
}

fn read_config_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| ConfigError {
            message: format!(
                "kesconf: failed to read config file '{}': {e}",
                path.display()
            ),
            line: None,
        })
}

/// The top-level mapping of a config file.
fn parse_root(yaml: &str) -> Result<Node> {
    let root = yaml::parse_document(yaml).map_err(|e| {
        ConfigError::new(
            format!("kesconf: invalid YAML in line {}: {}", e.line, e.message),
            Some(e.line),
        )
    })?;
    let Some(root) = root else {
        return Err(ConfigError::new(
            "kesconf: invalid config: the file contains no YAML document",
            None,
        ));
    };
    if !matches!(root.value, Value::Map(_)) {
        return Err(ConfigError::new(
            format!(
                "kesconf: invalid config format: expected a mapping at the top level, found {}",
                root.kind()
            ),
            Some(root.line),
        ));
    }
    Ok(root)
}

fn check_version(top: &Section<'_>) -> Result<()> {
    let Some(node) = top.get("version") else {
        return Ok(());
    };
    let version = match &node.value {
        Value::Null => return Ok(()),
        Value::Scalar(s) => s.as_str(),
        _ => {
            return Err(ConfigError::new(
                format!("kesconf: invalid config version at line '{}'", node.line),
                Some(node.line),
            ))
        }
    };
    if version.is_empty() || version == "v1" {
        Ok(())
    } else {
        Err(ConfigError::new(
            format!(
                "kesconf: invalid config version '{version}' in line {}: only 'v1' is supported",
                node.line
            ),
            Some(node.line),
        ))
    }
}
