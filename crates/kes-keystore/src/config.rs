//! Plain configuration of each key-store backend, as parsed from the
//! `keystore:` section of the server config (after `${VAR}` substitution).
//! The server's config module fills these; the backends consume them.

use std::path::PathBuf;
use std::time::Duration;

/// `keystore.fs`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsConfig {
    /// The directory holding one file per key.
    pub path: PathBuf,
}

/// `keystore.aws.secretsmanager`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AwsConfig {
    /// Endpoint: a bare host (HTTPS implied) or a full URL.
    pub endpoint: String,
    /// AWS region, e.g. `us-east-2`.
    pub region: String,
    /// Optional KMS key id or ARN used to encrypt the secrets.
    pub kms_key: String,
    /// Optional name prefix (namespace), e.g. `kes/`. Not in the Go KES.
    pub prefix: String,
    /// Static access key; all three empty means the SDK default chain.
    pub access_key: String,
    /// Static secret key.
    pub secret_key: String,
    /// Static session token.
    pub session_token: String,
}

/// `keystore.vault`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VaultConfig {
    /// e.g. `https://127.0.0.1:8200`
    pub endpoint: String,
    /// K/V engine mount path; default `kv`.
    pub engine: String,
    /// K/V version: `v1` (default) or `v2`.
    pub version: String,
    /// Vault namespace (enterprise), may be empty.
    pub namespace: String,
    /// Path prefix below the engine, may be empty.
    pub prefix: String,
    /// AppRole authentication, if configured.
    pub approle: Option<VaultAppRole>,
    /// Kubernetes authentication, if configured.
    pub kubernetes: Option<VaultKubernetes>,
    /// Transit wrapping of stored values, if configured.
    pub transit: Option<VaultTransit>,
    /// Client TLS key file (PEM), may be empty.
    pub tls_key: String,
    /// Client TLS certificate file (PEM), may be empty.
    pub tls_cert: String,
    /// CA file or directory to verify Vault, may be empty (system roots).
    pub tls_ca: String,
    /// Interval of the health ping; default 10 s.
    pub status_ping: Duration,
}

/// `keystore.vault.approle`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VaultAppRole {
    /// Auth mount; default `approle`.
    pub engine: String,
    /// Namespace of the auth mount; may be empty.
    pub namespace: String,
    /// Role ID.
    pub id: String,
    /// Secret ID.
    pub secret: String,
}

/// `keystore.vault.kubernetes`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VaultKubernetes {
    /// Auth mount; default `kubernetes`.
    pub engine: String,
    /// Namespace of the auth mount; may be empty.
    pub namespace: String,
    /// Role name.
    pub role: String,
    /// A literal JWT, or a file path if it contains a path separator (the
    /// file is re-read on every login).
    pub jwt: String,
}

/// `keystore.vault.transit`
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VaultTransit {
    /// Transit mount; default `transit`.
    pub engine: String,
    /// Transit key name.
    pub key: String,
}
