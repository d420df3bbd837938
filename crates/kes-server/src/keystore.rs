//! Opening the key store a config names.

use crate::config::KeyStoreConfig;
use kes_keystore::KeyStore;
use std::sync::Arc;

/// Opens the configured key store.
pub async fn open_store(config: &KeyStoreConfig) -> Result<Arc<dyn KeyStore>, String> {
    match config {
        KeyStoreConfig::Fs(fs) => kes_keystore::fs::FsKeyStore::open(&fs.path)
            .map(|s| Arc::new(s) as Arc<dyn KeyStore>)
            .map_err(|e| format!("failed to open fs key store '{}': {e}", fs.path.display())),
        KeyStoreConfig::Aws(aws) => kes_keystore::aws::connect(aws)
            .await
            .map(|s| Arc::new(s) as Arc<dyn KeyStore>)
            .map_err(|e| format!("failed to connect to AWS Secrets Manager: {e}")),
        KeyStoreConfig::Vault(vault) => kes_keystore::vault::connect(vault)
            .await
            .map(|s| Arc::new(s) as Arc<dyn KeyStore>)
            .map_err(|e| format!("failed to connect to Vault: {e}")),
        KeyStoreConfig::Unsupported { name } => Err(format!(
            "keystore '{name}' is not supported by this KES yet; supported are fs, vault and aws"
        )),
    }
}
