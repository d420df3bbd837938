//! Opening the key store a config names.

use crate::config::KeyStoreConfig;
use crate::error::ServerError;
use kes_keystore::config::{FsConfig, SealConfig};
use kes_keystore::KeyStore;
use std::sync::Arc;

/// Opens the configured key store: a directory for `fs`, a connection
/// (and login) for AWS Secrets Manager and Vault. A backend left out of
/// this build (cargo features `aws`, `vault`) is an error, not a panic.
pub async fn open_store(config: &KeyStoreConfig) -> Result<Arc<dyn KeyStore>, ServerError> {
    match config {
        KeyStoreConfig::Fs(fs) => open_fs(fs).await,
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

/// Opens the fs store, sealed if the config says so (docs/hsm.md). A
/// sealed directory opened without `seal` is refused: its entries would
/// read as garbage, and keys created then would be plain next to sealed
/// ones.
async fn open_fs(fs: &FsConfig) -> Result<Arc<dyn KeyStore>, ServerError> {
    let failed = |source| ServerError::FsStore {
        path: fs.path.clone(),
        source,
    };
    let store = kes_keystore::fs::FsKeyStore::open(&fs.path).map_err(failed)?;
    match &fs.seal {
        None => match kes_seal::is_sealed(&fs.path) {
            Ok(false) => Ok(Arc::new(store)),
            Ok(true) => Err(failed(kes_keystore::Error::other(format!(
                "seal: '{}' is a sealed store (it holds {}): configure \
                 keystore.fs.seal with the HSM key that seals it",
                fs.path.display(),
                kes_seal::SEAL_FILE
            )))),
            Err(e) => Err(failed(
                kes_keystore::Error::other(format!(
                    "seal: cannot tell whether '{}' is sealed",
                    fs.path.display()
                ))
                .with_source(e),
            )),
        },
        #[cfg(feature = "hsm")]
        Some(SealConfig::Pkcs11(pkcs11)) => {
            kes_seal::pkcs11::open(&fs.path, Arc::new(store), pkcs11)
                .await
                .map(|s| Arc::new(s) as Arc<dyn KeyStore>)
                .map_err(failed)
        }
        #[cfg(not(feature = "hsm"))]
        Some(SealConfig::Pkcs11(_)) => Err(ServerError::StoreNotBuilt {
            name: "fs.seal.pkcs11",
            feature: "hsm",
        }),
    }
}
