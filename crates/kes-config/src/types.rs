//! What a parsed config holds: one type per section of the file, with the
//! defaults the parser applies.

use crate::{KeyStoreConfig, LogFormat, LogLevel};
use kes_core::{Identity, Policy};
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
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
