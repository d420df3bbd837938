//! Why a server could not start, or a reload was refused.

use crate::config::{ConfigError, OpenError};
use crate::http::tls::TlsError;
use kes_core::certgen::CertError;
use std::io;
use std::path::PathBuf;

/// Why `kes server` could not start, or why a reload kept the running
/// configuration. Its message is what the operator reads: after `Error:`
/// when the server does not start, in the error log when a reload fails.
/// The cause is part of the message, so no variant has a `source()` as
/// well: a chain walker would print it twice.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// `--dev` and `--config` were both given.
    #[error("'--config' is not allowed with '--dev'")]
    DevWithConfig,
    /// Neither `--dev` nor `--config` was given.
    #[error("no config file specified: use '--config <file>' or '--dev'")]
    NoConfig,
    /// The listen address is malformed (see docs/configuration.md,
    /// `address`, for the forms it takes).
    #[error("invalid address '{address}': {reason}")]
    InvalidAddress {
        /// The address as given.
        address: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The async runtime could not be started.
    #[error("failed to start runtime: {0}")]
    Runtime(io::Error),
    /// The config file could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `log.audit_file` could not be opened.
    #[error("failed to open audit log '{}': {cause}", path.display())]
    AuditLog {
        /// The file named by the config.
        path: PathBuf,
        /// Why it could not be opened.
        cause: io::Error,
    },
    /// The configured key store could not be opened.
    #[error(transparent)]
    Store(#[from] OpenError),
    /// A key listed under `keys:` could not be created.
    #[error("failed to create key '{name}': {cause}")]
    CreateKey {
        /// The key's name.
        name: String,
        /// Why the key store refused it.
        cause: kes_keystore::Error,
    },
    /// `lifecycle.deletion_window` is set but the key store cannot write
    /// conditionally (Vault K/V v1): a delete and a restore racing on two
    /// servers could leave a key half-usable.
    #[error("invalid lifecycle.deletion_window: a deletion window needs a conditional write, which this key store cannot do: use K/V v2 (keystore.vault.version: v2)")]
    DeletionWindowUnsupported,
    /// The TLS certificate or key (or the CA) is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The dev mode's self-signed certificate could not be made.
    #[error(transparent)]
    Certificate(#[from] CertError),
    /// The listen address could not be bound.
    #[error("failed to listen on '{address}': {cause}")]
    Listen {
        /// The address as given.
        address: String,
        /// Why it could not be bound.
        cause: io::Error,
    },
}

impl ServerError {
    /// Whether the invocation is wrong (the options contradict or miss
    /// each other) rather than the server failing: `kes` exits with 2.
    pub fn is_usage(&self) -> bool {
        matches!(self, ServerError::DevWithConfig | ServerError::NoConfig)
    }
}
