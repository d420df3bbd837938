//! Plain configuration of each key-store backend, as parsed from the
//! `keystore:` section of the server config (after `${VAR}` substitution).
//! The config file's parser (kes-config) fills these; the backends consume
//! them.

use std::path::PathBuf;
use std::time::Duration;

/// `keystore.fs`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsConfig {
    /// The directory holding one file per key.
    pub path: PathBuf,
    /// `keystore.fs.seal`: every entry encrypted at rest under a key of an
    /// HSM (an addition to the Go format); `None` is the Go KES's store.
    pub seal: Option<SealConfig>,
}

/// `keystore.fs.seal`: what seals the fs store's entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealConfig {
    /// `keystore.fs.seal.pkcs11`
    Pkcs11(Pkcs11SealConfig),
}

/// `keystore.fs.seal.pkcs11`: the AES-256 key of a PKCS#11 token that
/// wraps the store's data key.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkcs11SealConfig {
    /// The vendor's PKCS#11 library, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The token: by label (`token:`) or by slot id (`slot:`).
    pub token: TokenRef,
    /// The user PIN. Never logged: `Debug` redacts it.
    pub pin: String,
    /// The label of the AES-256 secret key in the token.
    pub key: String,
}

/// How `keystore.fs.seal.pkcs11` names its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenRef {
    /// `token: <label>`
    Label(String),
    /// `slot: <n>`
    Slot(u64),
}

/// Written by hand so that the PIN never reaches a log line.
impl std::fmt::Debug for Pkcs11SealConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11SealConfig")
            .field("module", &self.module)
            .field("token", &self.token)
            .field(
                "pin",
                &if self.pin.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("key", &self.key)
            .finish()
    }
}

/// `keystore.aws.secretsmanager`
#[derive(Clone, PartialEq, Eq, Default)]
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
#[derive(Clone, PartialEq, Eq, Default)]
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
#[derive(Clone, PartialEq, Eq, Default)]
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

/// Shown instead of a secret in `Debug` output.
fn redacted(secret: &str) -> &'static str {
    if secret.is_empty() {
        ""
    } else {
        "<redacted>"
    }
}

// Credentials must never reach a log line, so `Debug` is written by hand.
impl std::fmt::Debug for AwsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("kms_key", &self.kms_key)
            .field("prefix", &self.prefix)
            .field("access_key", &self.access_key)
            .field("secret_key", &redacted(&self.secret_key))
            .field("session_token", &redacted(&self.session_token))
            .finish()
    }
}

impl std::fmt::Debug for VaultAppRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultAppRole")
            .field("engine", &self.engine)
            .field("namespace", &self.namespace)
            .field("id", &self.id)
            .field("secret", &redacted(&self.secret))
            .finish()
    }
}

impl std::fmt::Debug for VaultKubernetes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A JWT file path is fine to show; an inline JWT is a secret.
        let jwt = if self.jwt.contains(std::path::MAIN_SEPARATOR) {
            self.jwt.as_str()
        } else {
            redacted(&self.jwt)
        };
        f.debug_struct("VaultKubernetes")
            .field("engine", &self.engine)
            .field("namespace", &self.namespace)
            .field("role", &self.role)
            .field("jwt", &jwt)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_credentials() {
        let aws = AwsConfig {
            secret_key: "wJalrXUtnFEMI".into(),
            session_token: "tok3n".into(),
            access_key: "AKIA".into(),
            ..Default::default()
        };
        let text = format!("{aws:?}");
        assert!(
            !text.contains("wJalrXUtnFEMI") && !text.contains("tok3n"),
            "{text}"
        );
        assert!(text.contains("AKIA"));
        let role = VaultAppRole {
            secret: "s3cret".into(),
            ..Default::default()
        };
        assert!(!format!("{role:?}").contains("s3cret"));
        let k8s = VaultKubernetes {
            jwt: "eyJhbGciOi".into(),
            ..Default::default()
        };
        assert!(!format!("{k8s:?}").contains("eyJhbGciOi"));
    }
}
