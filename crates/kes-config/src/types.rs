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
    /// `proxy_protocol` (kes-rs only): the source networks whose
    /// connections start with a PROXY protocol header (L4 load balancers).
    pub proxy_protocol: Vec<SourceNet>,
    /// `lifecycle` (kes-rs only): what the server does to keys on its
    /// own, on a schedule.
    pub lifecycle: LifecycleConfig,
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
    /// `tls.proxy.header.cert`: header carrying the client certificate
    /// (an HTTP token; [`DEFAULT_PROXY_CERT_HEADER`] when unset).
    pub cert_header: Option<String>,
}

/// The header a listed TLS proxy forwards the client certificate in when
/// `tls.proxy.header.cert` is unset (the Go KES's documented example).
pub const DEFAULT_PROXY_CERT_HEADER: &str = "X-Tls-Client-Cert";

/// A source network of `proxy_protocol`: an address and a prefix length
/// (`10.0.0.0/8`, `fd00::/8`; a bare address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceNet {
    /// The network's address, with the bits past the prefix cleared.
    pub addr: std::net::IpAddr,
    /// Leading bits that must match.
    pub prefix: u8,
}

impl SourceNet {
    /// Whether `ip` is in this network (an IPv4-mapped IPv6 address counts
    /// as its IPv4 address).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.addr.is_ipv4() == ip.is_ipv4() && network(ip, self.prefix) == self.addr
    }
}

/// `ip` with the bits past the first `prefix` cleared.
fn network(ip: std::net::IpAddr, prefix: u8) -> std::net::IpAddr {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

impl std::str::FromStr for SourceNet {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        use std::net::IpAddr;
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or network (e.g. 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(format!("'{s}' has an invalid prefix length (0-{max})")),
            },
        };
        // The host bits cleared, so that the network prints as it matches.
        Ok(SourceNet {
            addr: network(addr, prefix),
            prefix,
        })
    }
}

impl fmt::Display for SourceNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
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

/// The shortest `lifecycle.rotate[].every`: a shorter period would ask for
/// more rotations than the scheduler checks for (at most once a second).
pub const MIN_ROTATION_PERIOD: Duration = Duration::from_secs(1);

/// `lifecycle` (not in the Go KES): what the server does to keys on its
/// own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleConfig {
    /// `lifecycle.rotate`: the scheduled-rotation rules, in file order.
    pub rotate: Vec<RotationRule>,
    /// `lifecycle.deletion_window`: how long a deleted key stays
    /// restorable before it is purged. Zero (the default) deletes at once,
    /// as the Go KES does.
    pub deletion_window: Duration,
}

/// One entry of `lifecycle.rotate`: rotate the keys it names whenever
/// their current version is older than `every`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationRule {
    /// `keys`: key names, or a name prefix followed by one `*` (`minio-*`,
    /// `*` for every key), as in policies.
    pub keys: Vec<String>,
    /// `every`: Go duration syntax plus `d` for days (`90d`); at least
    /// [`MIN_ROTATION_PERIOD`].
    pub every: Duration,
}

impl RotationRule {
    /// Whether the rule names the key `name`.
    pub fn matches(&self, name: &str) -> bool {
        self.keys
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == pattern,
            })
    }
}

impl LifecycleConfig {
    /// How often the key `name` is rotated: the shortest `every` of the
    /// rules that name it; `None` if no rule does.
    pub fn rotation_period(&self, name: &str) -> Option<Duration> {
        self.rotate
            .iter()
            .filter(|rule| rule.matches(name))
            .map(|rule| rule.every)
            .min()
    }

    /// The shortest `every` of all rules; `None` without rules.
    pub fn shortest_rotation_period(&self) -> Option<Duration> {
        self.rotate.iter().map(|rule| rule.every).min()
    }
}
