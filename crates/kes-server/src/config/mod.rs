//! The server configuration file (YAML), compatible with the Go KES.
//!
//! The file is first parsed into a tree that remembers the line of every
//! value ([`yaml`]), then walked field by field: `${VAR}` references are
//! replaced in the fields that allow them, values are converted and
//! checked, and defaults are applied. Every problem becomes a
//! [`ConfigError`] naming the field (and its line where there is one).
//! Unknown keys are ignored, as in the Go KES, but reported in
//! [`ServerConfig::warnings`] so the server can point out typos.

pub mod checks;
mod keystore;
mod log;
mod schema;
mod yaml;

pub use kes_core::duration::{format_duration, parse_duration};
pub use keystore::KeyStoreConfig;
pub use log::{LogFormat, LogLevel};

use kes_core::name::valid_name;
use kes_core::{Identity, Policy};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use yaml::{Node, Value};
use zeroize::Zeroizing;

/// Cache expiry applied when `cache.expiry.any` is unset or `0s`.
pub const DEFAULT_CACHE_ANY: Duration = Duration::from_secs(5 * 60);
/// Unused-key expiry applied when `cache.expiry.unused` is unset or `0s`.
pub const DEFAULT_CACHE_UNUSED: Duration = Duration::from_secs(30);
/// Vault health-ping interval applied when `keystore.vault.status.ping` is unset.
pub const DEFAULT_VAULT_STATUS_PING: Duration = Duration::from_secs(10);

/// A parsed and validated KES server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `address`; `None` lets the caller apply `--addr` or `0.0.0.0:7373`.
    pub address: Option<String>,
    /// `admin.identity` (may be a value that never matches, e.g. `disabled`).
    pub admin: Identity,
    /// `tls`
    pub tls: TlsConfig,
    /// `api`: exact route path → overrides. Unknown paths are kept; the
    /// router ignores them.
    pub api: BTreeMap<String, ApiRouteConfig>,
    /// `policy`: policy name → patterns and assigned identities.
    pub policies: BTreeMap<String, PolicyConfig>,
    /// `cache.expiry`, with defaults applied.
    pub cache: CacheExpiry,
    /// `log`
    pub log: LogConfig,
    /// `keys`: names of keys to create at start-up, in file order.
    pub keys: Vec<String>,
    /// `limits` (kes-rs only): caps on client connections; unset values
    /// follow from the open-file limit.
    pub limits: ConnectionLimits,
    /// `keystore`: exactly one backend.
    pub keystore: KeyStoreConfig,
    /// One message per unknown (hence ignored) key, e.g. "kesconf: unknown
    /// key 'api./v1/status.skip-auth' in line 12 is ignored"; worth logging
    /// as warnings at start-up.
    pub warnings: Vec<String>,
}

/// `limits` (not in the Go KES): what clients may hold. `None` means the
/// default derived from the open-file limit (docs/security.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `limits.connections`: open client connections in total.
    pub connections: Option<usize>,
    /// `limits.connections_per_ip`: open client connections per source
    /// address (per /64 for IPv6).
    pub connections_per_ip: Option<usize>,
}

/// `tls`
#[derive(Clone)]
pub struct TlsConfig {
    /// `tls.key`: the server's private key (PEM), relative to the cwd.
    pub key: PathBuf,
    /// `tls.cert`: the server's certificate chain (PEM).
    pub cert: PathBuf,
    /// `tls.password`: decrypts a legacy encrypted PEM private key.
    pub password: Option<Zeroizing<String>>,
    /// `tls.auth`: whether client certificates are verified against a CA.
    pub auth: TlsAuth,
    /// `tls.ca`: a CA file or a directory of CA files.
    pub ca: Option<PathBuf>,
    /// `tls.proxy`
    pub proxy: ProxyConfig,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("key", &self.key)
            .field("cert", &self.cert)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("auth", &self.auth)
            .field("ca", &self.ca)
            .field("proxy", &self.proxy)
            .finish()
    }
}

/// `tls.auth`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsAuth {
    /// Empty or `off`: a client certificate is required but its chain is
    /// not verified; only its public key (the identity) matters.
    #[default]
    Off,
    /// `on`: the client certificate chain must verify against `tls.ca` or
    /// the system roots.
    On,
}

/// `tls.proxy`
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `tls.proxy.identities`: identities of TLS-terminating proxies.
    pub identities: Vec<Identity>,
    /// `tls.proxy.header.cert`: header carrying the client certificate.
    pub cert_header: Option<String>,
}

/// One entry of `api`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApiRouteConfig {
    /// `skip_auth`: identify the client if it sent a certificate, but
    /// neither require one nor check a policy.
    pub skip_auth: bool,
    /// `timeout`; `None` (unset or `0s`) keeps the route's default.
    pub timeout: Option<Duration>,
}

/// One entry of `policy`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyConfig {
    /// `allow` and `deny` patterns.
    pub policy: Policy,
    /// `identities` assigned to this policy (no duplicates).
    pub identities: Vec<Identity>,
}

/// `cache.expiry`
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheExpiry {
    /// `any`: every cached key is dropped after this long (default 5m).
    pub any: Duration,
    /// `unused`: keys not used for this long are dropped (default 30s).
    pub unused: Duration,
    /// `offline`: while the key store is unreachable, cached keys are kept
    /// this long; zero (the default) disables offline caching.
    pub offline: Duration,
}

impl Default for CacheExpiry {
    fn default() -> Self {
        CacheExpiry {
            any: DEFAULT_CACHE_ANY,
            unused: DEFAULT_CACHE_UNUSED,
            offline: Duration::ZERO,
        }
    }
}

/// `log`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LogConfig {
    /// `log.error`: threshold of the error log (stderr). Default INFO.
    pub error: LogLevel,
    /// `log.audit`: threshold of the audit log. Default INFO, i.e. audit
    /// lines are printed, as in the Go KES.
    pub audit: LogLevel,
    /// `log.format` (new): `text` (default) or `json`.
    pub format: LogFormat,
    /// `log.audit_file` (new): write audit lines to this file instead of
    /// stdout.
    pub audit_file: Option<PathBuf>,
}

/// Why a configuration could not be loaded. The message names the field
/// and, where the field is present, its line; it never contains a secret.
#[derive(Debug)]
pub struct ConfigError {
    message: String,
    line: Option<usize>,
    source: Option<std::io::Error>,
}

impl ConfigError {
    fn new(message: impl Into<String>, line: Option<usize>) -> Self {
        ConfigError {
            message: message.into(),
            line,
            source: None,
        }
    }

    /// The line of the offending value, when there is one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// This error preceded by one line per unknown key.
    fn after_unknown_keys(mut self, unknown: &[schema::UnknownKey]) -> Self {
        if !unknown.is_empty() {
            let mut message: Vec<String> = unknown.iter().map(|u| u.message()).collect();
            message.push(self.message);
            self.message = message.join("\n");
        }
        self
    }
}

/// Whether parsing checks that the files a config names can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Files {
    /// Yes: loading a config file for use.
    Check,
    /// No: parsing text (tests, tools).
    Ignore,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// Fields whose value may be a `${VAR}` reference.
const ENV: bool = true;
/// Fields taken literally (policy patterns, `version`).
const RAW: bool = false;

/// A scalar value with the path and line it came from.
pub(crate) struct Text {
    value: Zeroizing<String>,
    line: usize,
    path: String,
}

impl Text {
    fn as_str(&self) -> &str {
        self.value.as_str()
    }

    /// An error about this value that shows the value itself; only for
    /// fields that never hold secrets.
    fn invalid(&self, reason: impl fmt::Display) -> ConfigError {
        ConfigError::new(
            format!(
                "kesconf: invalid {} '{}' in line {}: {reason}",
                self.path,
                self.as_str(),
                self.line
            ),
            Some(self.line),
        )
    }

    /// Checks that the file (or, with `dir_ok`, directory) this value names
    /// can be read, so that a typo is reported with its field and line
    /// instead of as a TLS or key-store failure later.
    fn check_readable(&self, files: Files, dir_ok: bool) -> Result<()> {
        if files == Files::Ignore {
            return Ok(());
        }
        let path = Path::new(self.as_str());
        let result = match std::fs::metadata(path) {
            Ok(m) if m.is_dir() && dir_ok => std::fs::read_dir(path).map(|_| ()),
            Ok(m) if m.is_dir() => Err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory",
            )),
            Ok(_) => std::fs::File::open(path).map(|_| ()),
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                std::io::ErrorKind::IsADirectory => "is a directory, not a file".to_string(),
                _ => e.to_string(),
            };
            ConfigError {
                message: format!(
                    "kesconf: {} '{}' in line {}: {why}",
                    self.path,
                    self.as_str(),
                    self.line
                ),
                line: Some(self.line),
                source: Some(e),
            }
        })
    }

    fn duration(&self) -> Result<Duration> {
        parse_duration(self.as_str().trim()).map_err(|e| self.invalid(e))
    }

    fn boolean(&self) -> Result<bool> {
        // yaml.v3 also accepts the YAML 1.1 spellings for bool fields.
        match self.as_str().trim() {
            "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Ok(true),
            "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Ok(false),
            _ => Err(self.invalid("must be true or false")),
        }
    }
}

/// Replaces a whole-value `${NAME}` reference by the environment variable.
fn substitute(text: &str, line: usize) -> Result<Option<Zeroizing<String>>> {
    let trimmed = text.trim();
    let Some(name) = trimmed
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
    else {
        return Ok(None);
    };
    let name = name.trim();
    let not_found = || {
        ConfigError::new(
            format!("kesconf: referenced env. variable '{name}' in line '{line}' not found"),
            Some(line),
        )
    };
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(not_found());
    }
    match std::env::var(name) {
        Ok(value) => Ok(Some(Zeroizing::new(value))),
        Err(std::env::VarError::NotPresent) => Err(not_found()),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(
            format!(
                "kesconf: referenced env. variable '{name}' in line '{line}' is not valid UTF-8"
            ),
            Some(line),
        )),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn expected(path: &str, what: &str, node: &Node) -> ConfigError {
    ConfigError::new(
        format!(
            "kesconf: invalid {path} in line {}: expected {what}, found {}",
            node.line,
            node.kind()
        ),
        Some(node.line),
    )
}

fn missing(what: &str, detail: &str, field: &str, line: usize) -> ConfigError {
    ConfigError::new(
        format!("kesconf: invalid {what}: no {detail} specified ({field})"),
        Some(line),
    )
}

/// Converts a scalar node to text, substituting `${VAR}` when allowed.
/// `None` for null values and for references to empty variables.
fn scalar(node: &Node, path: String, env: bool) -> Result<Option<Text>> {
    let raw = match &node.value {
        Value::Null => return Ok(None),
        Value::Scalar(s) => s,
        _ => return Err(expected(&path, "a single value", node)),
    };
    let value = match env.then(|| substitute(raw, node.line)).transpose()? {
        Some(Some(v)) if v.is_empty() => return Ok(None),
        Some(Some(v)) => v,
        _ => raw.clone(),
    };
    Ok(Some(Text {
        value,
        line: node.line,
        path,
    }))
}

/// A mapping of the config file together with its dotted path.
pub(crate) struct Section<'a> {
    entries: &'a [(Node, Node)],
    path: String,
    line: usize,
}

impl<'a> Section<'a> {
    fn of(node: &'a Node, path: String) -> Result<Section<'a>> {
        match &node.value {
            Value::Map(entries) => Ok(Section {
                entries,
                path,
                line: node.line,
            }),
            Value::Null => Ok(Section {
                entries: &[],
                path,
                line: node.line,
            }),
            _ => Err(expected(&path, "a mapping", node)),
        }
    }

    fn get(&self, key: &str) -> Option<&'a Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_key() == Some(key))
            .map(|(_, v)| v)
    }

    fn section(&self, key: &str) -> Result<Option<Section<'a>>> {
        self.get(key)
            .map(|node| Section::of(node, join(&self.path, key)))
            .transpose()
    }

    fn section_or_empty(&self, key: &str) -> Result<Section<'a>> {
        Ok(self.section(key)?.unwrap_or(Section {
            entries: &[],
            path: join(&self.path, key),
            line: self.line,
        }))
    }

    fn text(&self, key: &str, env: bool) -> Result<Option<Text>> {
        match self.get(key) {
            Some(node) => scalar(node, join(&self.path, key), env),
            None => Ok(None),
        }
    }

    /// A string field; absent, null and empty all read as "".
    fn string(&self, key: &str, env: bool) -> Result<String> {
        Ok(self
            .text(key, env)?
            .map(|t| t.as_str().to_string())
            .unwrap_or_default())
    }

    fn opt_string(&self, key: &str, env: bool) -> Result<Option<String>> {
        Ok(Some(self.string(key, env)?).filter(|s| !s.is_empty()))
    }

    fn duration(&self, key: &str) -> Result<Option<Duration>> {
        self.text(key, ENV)?.map(|t| t.duration()).transpose()
    }

    fn boolean(&self, key: &str) -> Result<bool> {
        Ok(self
            .text(key, ENV)?
            .map(|t| t.boolean())
            .transpose()?
            .unwrap_or(false))
    }

    fn list(&self, key: &str) -> Result<&'a [Node]> {
        match self.get(key) {
            None => Ok(&[]),
            Some(node) => match &node.value {
                Value::Null => Ok(&[]),
                Value::Seq(items) => Ok(items),
                _ => Err(expected(&join(&self.path, key), "a list", node)),
            },
        }
    }

    /// A list of strings; null items are skipped.
    fn strings(&self, key: &str, env: bool) -> Result<Vec<Text>> {
        let path = join(&self.path, key);
        let mut out = Vec::new();
        for (i, node) in self.list(key)?.iter().enumerate() {
            if let Some(text) = scalar(node, format!("{path}[{i}]"), env)? {
                out.push(text);
            }
        }
        Ok(out)
    }

    /// The entries with a scalar key, for maps keyed by name or path.
    fn named_entries(&self) -> Result<Vec<(&'a str, &'a Node)>> {
        self.entries
            .iter()
            .map(|(k, v)| match k.as_key() {
                Some(name) => Ok((name, v)),
                None => Err(expected(&self.path, "names as keys", k)),
            })
            .collect()
    }
}

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
        let top = Section::of(&root, String::new())?;
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
    let top = Section::of(&root, String::new())?;
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
            source: Some(e),
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

fn parse_tls(tls: &Section<'_>, admin: &Identity, files: Files) -> Result<TlsConfig> {
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
    let cert_header = proxy_section
        .section_or_empty("header")?
        .opt_string("cert", ENV)?;

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

fn parse_policies(
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
        let body = Section::of(node, path)?;
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

fn parse_cache(top: &Section<'_>) -> Result<CacheExpiry> {
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

fn parse_limits(top: &Section<'_>) -> Result<ConnectionLimits> {
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

fn parse_log(top: &Section<'_>) -> Result<LogConfig> {
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

fn parse_api(top: &Section<'_>) -> Result<BTreeMap<String, ApiRouteConfig>> {
    let api = top.section_or_empty("api")?;
    let mut routes = BTreeMap::new();
    for (route, node) in api.named_entries()? {
        let body = Section::of(node, format!("api.{route}"))?;
        let timeout = body.duration("timeout")?.filter(|d| !d.is_zero());
        let skip_auth = body.boolean("skip_auth")?;
        routes.insert(route.to_string(), ApiRouteConfig { skip_auth, timeout });
    }
    Ok(routes)
}

fn parse_keys(top: &Section<'_>) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    for (i, node) in top.list("keys")?.iter().enumerate() {
        let path = format!("keys[{i}]");
        if !matches!(node.value, Value::Map(_)) {
            return Err(expected(&path, "a mapping like '- name: my-key'", node));
        }
        let entry = Section::of(node, path.clone())?;
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
