//! One key store that several `kes server` processes of a test share (fs,
//! AWS Secrets Manager on moto, Vault/OpenBao K/V), the config section that
//! points a server at it, and a handle to look behind the API.

use std::path::PathBuf;
use std::sync::Arc;

use kes_keystore::KeyStore;

/// moto's fixed credentials.
pub(crate) const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
pub(crate) const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// Where the key store lives.
pub(crate) enum Backend {
    Fs(PathBuf),
    /// A moto endpoint.
    Aws(String),
    /// An OpenBao endpoint, an AppRole, and the K/V version (`v1`: engine
    /// `kv`, `v2`: engine `kv2`); values are wrapped by transit key `kes`.
    Vault {
        endpoint: String,
        role: String,
        secret: String,
        version: &'static str,
    },
}

/// A key store shared by a test's servers; `prefix` keeps its entries
/// apart from other tests' on AWS and Vault.
pub(crate) struct SharedStore {
    pub backend: Backend,
    pub prefix: &'static str,
}

impl SharedStore {
    pub(crate) fn new(backend: Backend, prefix: &'static str) -> Self {
        SharedStore { backend, prefix }
    }

    fn engine(version: &str) -> &'static str {
        if version == "v2" {
            "kv2"
        } else {
            "kv"
        }
    }

    /// The `keystore:` section of a server's config.
    pub(crate) fn keystore_yaml(&self) -> String {
        let prefix = self.prefix;
        match &self.backend {
            Backend::Fs(dir) => format!("keystore:\n  fs:\n    path: {}\n", dir.display()),
            Backend::Aws(endpoint) => format!(
                "keystore:\n  aws:\n    secretsmanager:\n      endpoint: {endpoint}\n      \
                 region: us-east-1\n      prefix: \"{prefix}/\"\n      credentials:\n        \
                 accesskey: {ACCESS_KEY}\n        secretkey: {SECRET_KEY}\n"
            ),
            Backend::Vault {
                endpoint,
                role,
                secret,
                version,
            } => format!(
                "keystore:\n  vault:\n    endpoint: {endpoint}\n    engine: {}\n    \
                 version: {version}\n    prefix: {prefix}\n    approle:\n      id: {role}\n      \
                 secret: {secret}\n    transit:\n      key: kes\n",
                Self::engine(version)
            ),
        }
    }

    /// The store as the servers see it, to look behind the API.
    pub(crate) async fn store(&self) -> Arc<dyn KeyStore> {
        match &self.backend {
            Backend::Fs(dir) => Arc::new(kes_keystore::fs::FsKeyStore::open(dir).unwrap()),
            Backend::Aws(endpoint) => Arc::new(
                kes_keystore::aws::connect(&kes_keystore::config::AwsConfig {
                    endpoint: endpoint.clone(),
                    region: "us-east-1".into(),
                    prefix: format!("{}/", self.prefix),
                    access_key: ACCESS_KEY.into(),
                    secret_key: SECRET_KEY.into(),
                    ..Default::default()
                })
                .await
                .unwrap(),
            ),
            Backend::Vault {
                endpoint,
                role,
                secret,
                version,
            } => Arc::new(
                kes_keystore::vault::connect(&kes_keystore::config::VaultConfig {
                    endpoint: endpoint.clone(),
                    engine: Self::engine(version).into(),
                    version: (*version).into(),
                    prefix: self.prefix.into(),
                    approle: Some(kes_keystore::config::VaultAppRole {
                        id: role.clone(),
                        secret: secret.clone(),
                        ..Default::default()
                    }),
                    transit: Some(kes_keystore::config::VaultTransit {
                        engine: "transit".into(),
                        key: "kes".into(),
                    }),
                    ..Default::default()
                })
                .await
                .unwrap(),
            ),
        }
    }
}
