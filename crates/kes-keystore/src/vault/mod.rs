//! HashiCorp Vault / OpenBao K/V key store.
//!
//! The layout is the Go KES's, so either implementation can read the
//! other's keys:
//!
//! * KV v1: the entry `<engine>/<prefix>/<name>` holds `{"<name>": "<value>"}`.
//! * KV v2: the same data at `<engine>/data/<prefix>/<name>`, written with
//!   `options.cas=0` (so a concurrent create cannot overwrite) and read at
//!   version 1: KES never updates a key, so version 1 is the key even if
//!   someone later writes more versions by hand. Only retirement rewrites
//!   an entry ([`KeyStore::replace_if`]: a check-and-set write, verified
//!   against a delete and create of the same name, then the older versions
//!   are destroyed); K/V v1 has no conditional write and refuses it.
//! * With transit wrapping the value is the `vault:v1:…` ciphertext of
//!   base64(value) under the transit key; reads detect that prefix.
//!
//! Two background tasks run per store: token renewal (at 80 % of the TTL,
//! a new login when renewal fails) and a health ping every `status.ping`
//! that tracks whether Vault is sealed, so that requests fail at once while
//! it is instead of waiting for Vault.

mod auth;
#[doc(hidden)]
pub mod decode;
mod http;
mod index;
mod kv;
mod layout;
mod replace;
mod session;
mod transit;
mod wire;

use std::fmt;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use hyper::{Method, StatusCode};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

use self::auth::{Login, Token};
use self::http::{Http, LIST_BODY_LIMIT};
use self::layout::{check_name, check_path, KvVersion, Layout};
use self::transit::Transit;
use self::wire::CheckAndSet;
use crate::config::VaultConfig;
use crate::{BeforeWrite, Error, KeyStore};

#[doc(hidden)]
pub use self::transit::is_transit_ciphertext;

/// `status.ping` when the config leaves it unset.
const DEFAULT_PING: Duration = Duration::from_secs(10);

/// How long after creating a version entry on K/V v1 it is read back (see
/// `VaultKeyStore::settle_v1_version_entry`): far longer than a competing
/// write, whose existence check came before our write, takes to land.
const V1_CREATE_SETTLE: Duration = Duration::from_millis(500);

struct Inner {
    http: Http,
    layout: Layout,
    transit: Option<Transit>,
    namespace: Option<String>,
    login: Login,
    token: RwLock<Token>,
    /// Serialises logins, so a burst of failures leads to one login.
    login_lock: tokio::sync::Mutex<()>,
    /// Wakes the renewal task after a login it did not do itself.
    token_changed: Notify,
    /// Set by the health ping (or a 503) while Vault is sealed.
    sealed: AtomicBool,
}

/// The Vault / OpenBao K/V key store.
pub struct VaultKeyStore {
    inner: Arc<Inner>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// KV v1 has no check-and-set: a create is a read, then a write. Two
    /// creates of one name in this process are serialised so that neither
    /// can overwrite the other. Between servers the create-only policy of
    /// docs/vault.md narrows the gap but cannot close it (Vault's existence
    /// check is not atomic with the write), so version entries are also
    /// read back (`settle_v1_version_entry`); KV v2 uses `cas=0`.
    v1_creates: tokio::sync::Mutex<()>,
    before_write: Mutex<Option<BeforeWrite>>,
}

impl fmt::Debug for VaultKeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKeyStore")
            .field("endpoint", &self.inner.http.endpoint())
            .field("engine", &self.inner.layout.engine)
            .field("version", &self.inner.layout.version)
            .field("prefix", &self.inner.layout.prefix)
            .field("auth", &self.inner.login)
            .finish_non_exhaustive()
    }
}

/// The start-up warning for a Vault endpoint without TLS, if the endpoint
/// is one: the token, the login credentials and every key would cross the
/// network readable to anyone on the path. [`connect`] logs it.
pub fn plain_http_warning(config: &VaultConfig) -> Option<String> {
    let endpoint = config.endpoint.trim();
    is_plain_http(endpoint).then(|| {
        format!(
            "keystore.vault.endpoint '{endpoint}' is plain HTTP: the Vault token, \
             the login credentials and every key travel in clear"
        )
    })
}

/// Whether an endpoint URL has the `http` scheme.
fn is_plain_http(endpoint: &str) -> bool {
    endpoint
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

/// Connects to Vault: checks the config, logs in and starts the token
/// renewal and health-ping tasks. Fails if Vault cannot be reached or the
/// login is refused. Logs a warning for a plain `http://` endpoint.
pub async fn connect(config: &VaultConfig) -> Result<VaultKeyStore, Error> {
    VaultKeyStore::connect(config).await
}

impl VaultKeyStore {
    /// K/V v1 has no atomic create: Vault tells `create` from `update` by
    /// an existence check that is not part of the write, so two servers
    /// creating one entry at the same moment can both be told they created
    /// it while the later write replaces the earlier. For a key version
    /// that would lose everything sealed with the replaced version (the
    /// key store contract test of concurrent rotations on three servers
    /// caught it: 13 rotations answered, 12 versions kept). So a version
    /// entry (or retirement lock) is read back once any write that raced
    /// with ours has long landed: another value means the race was lost,
    /// and the caller is told the entry exists (a rotation then creates
    /// the next version). First entries of keys keep the Go KES's
    /// behaviour: no wait on a key create.
    async fn settle_v1_version_entry(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        use subtle::ConstantTimeEq as _;
        tokio::time::sleep(V1_CREATE_SETTLE).await;
        match self.get(name).await {
            Ok(stored) if bool::from(stored.as_slice().ct_eq(value)) => Ok(()),
            Ok(_) => Err(Error::KeyExists),
            Err(Error::KeyNotFound) => Err(Error::other(format!(
                "vault: '{name}' was gone right after it was created"
            ))),
            Err(e) => Err(e),
        }
    }

    /// Installs (or with `None` removes) a hook that `replace_if` awaits
    /// between its compare and its conditional write. Only for tests that
    /// put another mutation into exactly that window; not an API.
    #[doc(hidden)]
    pub fn set_before_conditional_write(&self, hook: Option<BeforeWrite>) {
        *kes_core::sync::lock(&self.before_write) = hook;
    }

    fn before_write_hook(&self) -> Option<BeforeWrite> {
        kes_core::sync::lock(&self.before_write).clone()
    }

    /// `replace_if` on K/V v2 ([`Inner::replace_if_v2`]), run as a task of
    /// its own so that it goes to its end even when the request that
    /// started it is cancelled: a write without its check and its destroy
    /// would leave a newer version that holds up the next retirement of
    /// the key for [`IN_FLIGHT`].
    async fn replace_if_v2(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        let inner = Arc::clone(&self.inner);
        let hook = self.before_write_hook();
        let name = name.to_owned();
        let current = Zeroizing::new(current.to_vec());
        let value = Zeroizing::new(value.to_vec());
        tokio::spawn(async move { inner.replace_if_v2(&name, &current, &value, hook).await })
            .await
            .map_err(|e| {
                Error::other("vault: replacing an entry: the task failed").with_source(e)
            })?
    }

    /// See [`connect`].
    pub async fn connect(config: &VaultConfig) -> Result<VaultKeyStore, Error> {
        if config.endpoint.trim().is_empty() {
            return Err(Error::other("vault: no endpoint configured"));
        }
        let engine = config.engine.trim().trim_matches('/');
        let engine = if engine.is_empty() { "kv" } else { engine };
        check_path(engine, "engine")?;
        let prefix = config.prefix.trim().trim_matches('/');
        check_path(prefix, "prefix")?;
        let version = match config.version.trim() {
            "" | "v1" => KvVersion::V1,
            "v2" => KvVersion::V2,
            other => {
                return Err(Error::other(format!(
                    "vault: invalid K/V version '{other}': expected v1 or v2"
                )))
            }
        };
        let transit = match &config.transit {
            None => None,
            Some(t) => {
                let engine = t.engine.trim().trim_matches('/');
                let engine = if engine.is_empty() { "transit" } else { engine };
                check_path(engine, "transit engine")?;
                let key = t.key.trim();
                if key.is_empty() {
                    return Err(Error::other("vault: transit: missing key name"));
                }
                check_path(key, "transit key")?;
                if key.contains('/') {
                    return Err(Error::other(
                        "vault: transit: key name must not contain '/'",
                    ));
                }
                Some(Transit {
                    engine: engine.to_string(),
                    key: key.to_string(),
                })
            }
        };
        let namespace = match config.namespace.trim().trim_matches('/') {
            "" => None,
            ns => Some(ns.to_string()),
        };
        let login = Login::from_config(config, &namespace)?;
        let http = Http::new(config)?;
        // Accepted, as for a Vault on the same host or behind a local
        // proxy, but said out loud before the first credential is sent.
        if let Some(warning) = plain_http_warning(config) {
            tracing::warn!("{warning}");
        }
        let token = login.login(&http, 0).await?;

        let inner = Arc::new(Inner {
            http,
            layout: Layout {
                engine: engine.to_string(),
                prefix: prefix.to_string(),
                version,
            },
            transit,
            namespace,
            login,
            token: RwLock::new(token),
            login_lock: tokio::sync::Mutex::new(()),
            token_changed: Notify::new(),
            sealed: AtomicBool::new(false),
        });
        let ping = if config.status_ping.is_zero() {
            DEFAULT_PING
        } else {
            config.status_ping
        };
        // Dropping the store aborts these tasks even without `close`.
        let tasks = vec![
            tokio::spawn(session::renew_token(inner.clone())),
            tokio::spawn(session::ping_health(inner.clone(), ping)),
        ];
        Ok(VaultKeyStore {
            inner,
            tasks: Mutex::new(tasks),
            v1_creates: tokio::sync::Mutex::new(()),
            before_write: Mutex::new(None),
        })
    }
}

impl Drop for VaultKeyStore {
    fn drop(&mut self) {
        if let Ok(mut tasks) = self.tasks.lock() {
            for task in tasks.drain(..) {
                task.abort();
            }
        }
    }
}

#[async_trait::async_trait]
impl KeyStore for VaultKeyStore {
    async fn status(&self) -> Result<Duration, Error> {
        self.inner.health().await
    }

    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        let inner = &self.inner;
        let _serialised = match inner.layout.version {
            KvVersion::V1 => Some(self.v1_creates.lock().await),
            KvVersion::V2 => None,
        };
        if inner.read(name).await?.is_some() {
            return Err(Error::KeyExists);
        }
        // K/V v2 writes with cas=0: only if the entry does not exist.
        let resp = inner
            .write(name, value, Some(CheckAndSet { cas: 0 }))
            .await?;
        drop(_serialised);
        match resp.status {
            StatusCode::OK | StatusCode::NO_CONTENT
                if inner.layout.version == KvVersion::V1 && !crate::versions::is_key_name(name) =>
            {
                self.settle_v1_version_entry(name, value).await
            }
            StatusCode::OK | StatusCode::NO_CONTENT => Ok(()),
            StatusCode::BAD_REQUEST if resp.vault_errors().contains("check-and-set") => {
                Err(Error::KeyExists)
            }
            // With the recommended policy (create but no update), Vault
            // refuses to write over an entry that appeared since our read:
            // the race was lost, nothing was overwritten.
            StatusCode::FORBIDDEN if inner.read(name).await?.is_some() => Err(Error::KeyExists),
            _ => Err(inner.failure("creating", name, &resp)),
        }
    }

    fn conditional_writes(&self) -> bool {
        self.inner.layout.version == KvVersion::V2
    }

    async fn replace_if(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        match self.inner.layout.version {
            // Vault K/V v1 writes unconditionally: a compare followed by a
            // write could bring back a key deleted in between, or overwrite
            // a new key of the same name. Refused rather than risked.
            KvVersion::V1 => Err(Error::other(format!(
                "vault: K/V v1 has no conditional write, so '{name}' cannot be retired safely: use K/V v2"
            ))),
            KvVersion::V2 => self.replace_if_v2(name, current, value).await,
        }
    }

    /// Vault has no conditional delete: this compares, then deletes. A
    /// delete and a create of the same name landing between the two would
    /// be deleted in place of the compared entry. Only the release of a
    /// retirement lease uses it, and the lease is advisory (retirement is
    /// safe through `replace_if` alone), so that window, two requests wide,
    /// is accepted.
    async fn delete_if(&self, name: &str, current: &[u8]) -> Result<(), Error> {
        check_name(name)?;
        let inner = &self.inner;
        match inner.read_value(name).await? {
            None => return Err(Error::KeyNotFound),
            Some(stored) if *stored != *current => return Err(Error::Changed),
            Some(_) => {}
        }
        inner.remove(name).await
    }

    async fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        check_name(name)?;
        self.inner.read_value(name).await?.ok_or(Error::KeyNotFound)
    }

    async fn delete(&self, name: &str) -> Result<(), Error> {
        check_name(name)?;
        let inner = &self.inner;
        // Vault deletes a missing entry without complaint; the read tells
        // the caller the truth, like the other key stores do.
        if inner.read(name).await?.is_none() {
            return Err(Error::KeyNotFound);
        }
        inner.remove(name).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let inner = &self.inner;
        let resp = inner
            .call(
                Method::GET,
                &inner.layout.list_path(),
                None,
                LIST_BODY_LIMIT,
            )
            .await?;
        if resp.status == StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        if resp.status != StatusCode::OK {
            return Err(Error::other(format!(
                "vault: listing keys failed ({}): {}",
                resp.status,
                resp.vault_errors()
            )));
        }
        decode::key_names(&resp.body, prefix)
    }

    async fn close(&self) {
        let tasks = match self.tasks.lock() {
            Ok(mut tasks) => std::mem::take(&mut *tasks),
            Err(_) => Vec::new(),
        };
        for task in tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_warned_about() {
        let config = |endpoint: &str| VaultConfig {
            endpoint: endpoint.into(),
            ..Default::default()
        };
        let warning = plain_http_warning(&config(" http://10.0.0.7:8200 ")).unwrap();
        assert_eq!(
            warning,
            "keystore.vault.endpoint 'http://10.0.0.7:8200' is plain HTTP: the Vault token, \
             the login credentials and every key travel in clear"
        );
        assert!(plain_http_warning(&config("HTTP://vault:8200")).is_some());
        for quiet in ["https://vault:8200", "HTTPS://vault", "", "vault:8200"] {
            assert_eq!(plain_http_warning(&config(quiet)), None, "{quiet:?}");
        }
    }
}
