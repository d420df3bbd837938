//! Opening the key store a config names.

use crate::config::KeyStoreConfig;
use crate::error::ServerError;
use kes_keystore::KeyStore;
use std::sync::Arc;

/// Opens the configured key store: a directory for `fs`, a connection
/// (and login) for AWS Secrets Manager and Vault. A backend left out of
/// this build (cargo features `aws`, `vault`) is an error, not a panic.
pub async fn open_store(config: &KeyStoreConfig) -> Result<Arc<dyn KeyStore>, ServerError> {
    match config {
        KeyStoreConfig::Fs(fs) => kes_keystore::fs::FsKeyStore::open(&fs.path)
            .map(|s| Arc::new(s) as Arc<dyn KeyStore>)
            .map_err(|source| ServerError::FsStore {
                path: fs.path.clone(),
                source,
            }),
        #[cfg(feature = "aws")]
        KeyStoreConfig::Aws(aws) => kes_keystore::aws::connect(aws)
            .await
            .map(|s| Arc::new(s) as Arc<dyn KeyStore>)
            .map_err(ServerError::Aws),
        #[cfg(not(feature = "aws"))]
        KeyStoreConfig::Aws(_) => Err(ServerError::StoreNotBuilt {
            name: "aws",
            feature: "aws",
        }),
        #[cfg(feature = "vault")]
        KeyStoreConfig::Vault(vault) => kes_keystore::vault::connect(vault)
            .await
            .map(|s| Arc::new(s) as Arc<dyn KeyStore>)
            .map_err(ServerError::Vault),
        #[cfg(not(feature = "vault"))]
        KeyStoreConfig::Vault(_) => Err(ServerError::StoreNotBuilt {
            name: "vault",
            feature: "vault",
        }),
        KeyStoreConfig::Unsupported { name } => Err(ServerError::UnsupportedStore {
            name: name.to_string(),
        }),
    }
}
