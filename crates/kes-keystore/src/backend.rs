//! Which key store a config names: exactly one backend with its settings.
//! The config file's parser (kes-config) makes one; opening it is
//! `kes_config::open_store`, above this crate because a sealed fs store
//! needs kes-seal, which builds on this crate.

use crate::config::{AwsConfig, FsConfig, VaultConfig};

/// The configured key store. `Debug` shows no credential: each backend's
/// config redacts its own.
// One value per loaded config: boxing the large variant would save nothing
// and make matching on it clumsier for the backends.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyStoreConfig {
    /// `keystore.fs`
    Fs(FsConfig),
    /// `keystore.aws.secretsmanager`
    Aws(AwsConfig),
    /// `keystore.vault`
    Vault(VaultConfig),
    /// A backend of the Go KES that is parsed and validated but not
    /// implemented here: `fortanix`, `gemalto`, `gcp`, `azure` or `entrust`.
    Unsupported {
        /// The key under `keystore:`.
        name: &'static str,
    },
}
