//! Opening the key store a config names (the Go KES's `kesconf` connects
//! its key stores too). It lives here, not in kes-keystore, because a
//! sealed fs store is opened through kes-seal, which builds on kes-keystore.

use kes_keystore::config::{FsConfig, SealConfig};
use kes_keystore::{KeyStore, KeyStoreConfig};
use std::path::PathBuf;
use std::sync::Arc;

/// Why the configured key store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The fs key store's directory could not be opened.
    #[error("failed to open fs key store '{}': {cause}", path.display())]
    Fs {
        /// The directory named by the config.
        path: PathBuf,
        /// Why it could not be opened.
        cause: kes_keystore::Error,
    },
    /// AWS Secrets Manager could not be reached or refused the login.
    #[error("failed to connect to AWS Secrets Manager: {0}")]
    Aws(kes_keystore::Error),
    /// Vault could not be reached or refused the login.
    #[error("failed to connect to Vault: {0}")]
    Vault(kes_keystore::Error),
    /// The config names a key store KES does not implement.
    #[error("keystore '{name}' is not supported by this KES yet; supported are fs, vault and aws")]
    Unsupported {
        /// The `keystore:` section's name.
        name: String,
    },
    /// The config names a key store left out of this build (a cargo
    /// feature of kes-config, forwarded by kes-server and kes).
    #[error(
        "keystore '{name}' is not available: this kes was built without the cargo feature '{feature}'"
    )]
    NotBuilt {
        /// The `keystore:` section's name.
        name: &'static str,
        /// The feature that builds it in.
        feature: &'static str,
    },
}

/// Opens the configured key store: a directory for `fs`, a connection
/// (and login) for AWS Secrets Manager and Vault. A backend left out of
/// this build (cargo features `aws`, `vault`, `hsm`) is an error, not a
/// panic.
pub async fn open_store(config: &KeyStoreConfig) -> Result<Arc<dyn KeyStore>, OpenError> {
    match config {
        KeyStoreConfig::Fs(fs) => open_fs(fs).await,
        #[cfg(feature = "aws")]
        KeyStoreConfig::Aws(aws) => kes_keystore::aws::connect(aws)
            .await
            .map(|s| Arc::new(s) as Arc<dyn KeyStore>)
            .map_err(OpenError::Aws),
        #[cfg(not(feature = "aws"))]
        KeyStoreConfig::Aws(_) => Err(OpenError::NotBuilt {
            name: "aws",
            feature: "aws",
        }),
        #[cfg(feature = "vault")]
        KeyStoreConfig::Vault(vault) => kes_keystore::vault::connect(vault)
            .await
            .map(|s| Arc::new(s) as Arc<dyn KeyStore>)
            .map_err(OpenError::Vault),
        #[cfg(not(feature = "vault"))]
        KeyStoreConfig::Vault(_) => Err(OpenError::NotBuilt {
            name: "vault",
            feature: "vault",
        }),
        KeyStoreConfig::Unsupported { name } => Err(OpenError::Unsupported {
            name: name.to_string(),
        }),
    }
}

/// Opens the fs store, sealed if the config says so (docs/hsm.md). A
/// sealed directory opened without `seal` is refused: its entries would
/// read as garbage, and keys created then would be plain next to sealed
/// ones.
async fn open_fs(fs: &FsConfig) -> Result<Arc<dyn KeyStore>, OpenError> {
    let failed = |cause| OpenError::Fs {
        path: fs.path.clone(),
        cause,
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
        Some(SealConfig::Pkcs11(_)) => Err(OpenError::NotBuilt {
            name: "fs.seal.pkcs11",
            feature: "hsm",
        }),
    }
}
