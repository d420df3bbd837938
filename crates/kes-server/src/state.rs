//! What a request sees of the server: [`State`], one per configuration,
//! which SIGHUP replaces as a whole (admin, policies, routes, key cache),
//! and [`Server`], one per process, which lives as long as the server
//! (start time, metrics, logs, and the current `State` and TLS setup).

use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::keystore;
use crate::logs::Logs;
use crate::metrics::Metrics;
use crate::routes::{RouteOverride, RouteTable};
use arc_swap::ArcSwap;
use kes_core::{Identity, KeyAlgorithm, KeyVersion, Policy};
use kes_keystore::cache::{CacheConfig, KeyCache};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// How often the key cache probes the key store: the state `/v1/status`
/// and `/v1/ready` report, and when the cache switches to offline mode.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Per configuration: everything loaded from the config file, replaced as
/// a whole on reload. Requests in flight keep the `Arc` they started with,
/// so a reload never changes the rules mid-request.
pub struct State {
    /// The admin identity (may be a non-hash value such as `disabled`).
    pub admin: Identity,
    /// Policy name → policy.
    pub policies: BTreeMap<String, Policy>,
    /// Identity → policy name.
    pub identities: BTreeMap<Identity, String>,
    /// Routes with `api:` overrides applied.
    pub routes: RouteTable,
    /// The key cache in front of the key store.
    pub cache: Arc<KeyCache>,
    /// Algorithm of keys created by `/v1/key/create`.
    pub default_algorithm: KeyAlgorithm,
    /// When this configuration was loaded (start-up or SIGHUP): the
    /// `created_at` of its policies and identities.
    pub loaded: OffsetDateTime,
}

impl State {
    /// A state without policies or `api:` overrides: no identity but
    /// `admin` is allowed an API that needs authorisation. Keys live in
    /// `cache`'s store; new keys use the fastest algorithm of this CPU.
    pub fn new(admin: Identity, cache: Arc<KeyCache>) -> State {
        State {
            admin,
            policies: BTreeMap::new(),
            identities: BTreeMap::new(),
            routes: RouteTable::default(),
            cache,
            default_algorithm: KeyAlgorithm::default_for_cpu(),
            loaded: OffsetDateTime::now_utc(),
        }
    }

    /// The state of `kes server --dev`: keys in memory (lost on exit),
    /// cached 5 minutes (30 seconds unused), `admin` the only identity.
    /// Call it inside a Tokio runtime: the cache expires keys in the
    /// background.
    pub fn dev(admin: Identity) -> State {
        let cache = KeyCache::new(
            Arc::new(kes_keystore::memory::MemKeyStore::new()),
            CacheConfig {
                expiry: Duration::from_secs(5 * 60),
                expiry_unused: Duration::from_secs(30),
                expiry_offline: Duration::ZERO,
                status_interval: STATUS_INTERVAL,
            },
        );
        State::new(admin, cache)
    }

    /// The state a config describes: its admin, policies, `api:`
    /// overrides and cache settings, with its key store opened and the
    /// keys under `keys:` created (existing ones are kept). On error the
    /// key store is closed again.
    pub async fn from_config(config: &ServerConfig) -> Result<State, ServerError> {
        let store = keystore::open_store(&config.keystore).await?;
        let cache = KeyCache::new(
            store,
            CacheConfig {
                expiry: config.cache.any,
                expiry_unused: config.cache.unused,
                expiry_offline: config.cache.offline,
                status_interval: STATUS_INTERVAL,
            },
        );
        let mut policies = BTreeMap::new();
        let mut identities = BTreeMap::new();
        for (name, p) in &config.policies {
            policies.insert(name.clone(), p.policy.clone());
            for id in &p.identities {
                identities.insert(id.clone(), name.clone());
            }
        }
        let overrides: BTreeMap<String, RouteOverride> = config
            .api
            .iter()
            .map(|(path, o)| {
                (
                    path.clone(),
                    RouteOverride {
                        skip_auth: o.skip_auth,
                        timeout: o.timeout,
                    },
                )
            })
            .collect();
        let state = State {
            policies,
            identities,
            routes: RouteTable::new(&overrides),
            ..State::new(config.admin.clone(), cache)
        };
        // Predefined keys: created like /v1/key/create by the admin;
        // existing keys are fine, anything else stops the start-up.
        for name in &config.keys {
            let key = KeyVersion::generate(state.default_algorithm, state.admin.to_string());
            match state.cache.create(name, &key).await {
                Ok(()) | Err(kes_keystore::Error::KeyExists) => {}
                Err(source) => {
                    state.cache.close().await;
                    return Err(ServerError::CreateKey {
                        name: name.clone(),
                        source,
                    });
                }
            }
        }
        Ok(state)
    }

    /// The policy assigned to `identity`, if any.
    pub fn policy_of(&self, identity: &Identity) -> Option<(&str, &Policy)> {
        let name = self.identities.get(identity)?;
        self.policies.get(name).map(|p| (name.as_str(), p))
    }
}

/// Per process: one for the server's whole life, across reloads. Holds
/// the current per-configuration [`State`] and TLS setup, which a reload
/// swaps.
pub struct Server {
    /// When the server started; reported as `created_at` of policies and
    /// identities.
    pub started: OffsetDateTime,
    /// Request counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Error and audit logs.
    pub logs: Arc<Logs>,
    /// The current configuration's state.
    pub state: ArcSwap<State>,
    /// The current TLS configuration; new connections use it.
    pub tls: ArcSwap<crate::tls::ServerTls>,
}
