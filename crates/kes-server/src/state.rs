//! What a request sees of the server: [`State`], one per configuration,
//! which SIGHUP replaces as a whole (admin, policies, routes, key cache),
//! and [`Server`], one per process, which lives as long as the server
//! (start time, metrics, logs, and the current `State` and TLS setup).

use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::http::metrics::Metrics;
use crate::http::routes::{Auth, Endpoint, RouteOverride, RouteTable};
use crate::logs::Logs;
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
    /// What key listings in flight may hold; a reload hands the budget on
    /// to the next state, so listings of the replaced one keep counting.
    pub listings: Arc<ListingBudget>,
    /// `tls.proxy`: the TLS-terminating proxies whose requests act with
    /// the client certificate they forward.
    pub proxies: crate::http::server::TlsProxies,
    /// `proxy_protocol`: the load balancers whose connections start with
    /// a PROXY protocol header.
    pub proxy_protocol: Vec<crate::config::SourceNet>,
    /// `lifecycle`: the rotation schedule's rules and the deletion window
    /// (the schedule, the purge and delete read the current state's, so
    /// SIGHUP changes them).
    pub lifecycle: crate::config::LifecycleConfig,
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
            listings: Arc::new(ListingBudget::default()),
            proxies: Default::default(),
            proxy_protocol: Vec::new(),
            lifecycle: Default::default(),
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
        let store = kes_config::open_store(&config.keystore).await?;
        if !config.lifecycle.deletion_window.is_zero() && !store.conditional_writes() {
            store.close().await;
            return Err(ServerError::DeletionWindowUnsupported);
        }
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
            proxies: crate::http::server::TlsProxies::new(
                config.tls.proxy.identities.clone(),
                config.tls.proxy.cert_header.as_deref(),
            ),
            proxy_protocol: config.proxy_protocol.clone(),
            lifecycle: config.lifecycle.clone(),
            ..State::new(config.admin.clone(), cache)
        };
        // Predefined keys: created like /v1/key/create by the admin;
        // existing keys are fine, anything else stops the start-up.
        for name in &config.keys {
            let key = KeyVersion::generate(state.default_algorithm, state.admin.to_string());
            match state.cache.create(name, &key).await {
                Ok(()) | Err(kes_keystore::Error::KeyExists) => {}
                Err(cause) => {
                    state.cache.close().await;
                    return Err(ServerError::CreateKey {
                        name: name.clone(),
                        cause,
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

    /// Whether a request by `identity` (as its text: a subscriber's
    /// identity, empty when the route skips authentication) to the
    /// `/v1/log/*` route of `endpoint` would be authorised under this
    /// configuration: the admin always, others as their policy allows.
    pub(crate) fn may_follow(&self, endpoint: Endpoint, identity: &str) -> bool {
        let Some(route) = self.routes.routes().iter().find(|r| r.endpoint == endpoint) else {
            return false;
        };
        if route.auth != Auth::Policy {
            return true;
        }
        let identity = Identity::new(identity);
        identity == self.admin
            || self
                .policy_of(&identity)
                .is_some_and(|(_, policy)| route.allowed_by(policy, ""))
    }
}

/// Per process: one for the server's whole life, across reloads. Holds
/// the current per-configuration [`State`] and TLS setup, which a reload
/// swaps.
pub struct Server {
    /// Request counters and histograms.
    pub metrics: Arc<Metrics>,
    /// Error and audit logs.
    pub logs: Arc<Logs>,
    /// The current configuration's state.
    pub state: ArcSwap<State>,
    /// The current TLS configuration; new connections use it.
    pub tls: ArcSwap<crate::http::tls::ServerTls>,
}

/// Key listings one identity may have in flight at once, from the request
/// until the client has read the last byte (or gone away).
pub(crate) const LISTINGS_PER_IDENTITY: usize = 4;

/// Key listings in flight at once, all identities together.
pub(crate) const LISTINGS_TOTAL: usize = 32;

/// Bytes of names that the listings in flight may hold together (each its
/// current page).
pub(crate) const LISTING_BYTES: usize = 16 << 20;

/// While fewer than this many listings are in flight, a new one reads the
/// key store in pages of [`kes_keystore::listing::LIST_PAGE`] names (fewer
/// passes over an fs directory: a 40,000-key listing took 0.4 s alone and
/// up to 1.9 s in pages of 1024 names, debug build); beyond, in pages of
/// [`SMALL_LISTING_PAGE`] names, as the Go KES does, so that many slow
/// readers hold little each. Two identities' worth, so that the slow
/// listings of one identity do not slow down another's.
pub(crate) const LARGE_PAGES_UP_TO: usize = 2 * LISTINGS_PER_IDENTITY;

/// The page of listings started while many are in flight.
pub(crate) const SMALL_LISTING_PAGE: usize = 1024;

/// The answer to a listing beyond [`LISTINGS_PER_IDENTITY`],
/// [`LISTINGS_TOTAL`] or [`LISTING_BYTES`].
pub(crate) const TOO_MANY_LISTINGS: kes_core::ApiError =
    kes_core::ApiError::from_static(503, "too many concurrent listings");

/// What key listings in flight hold: a slot each (per identity and in
/// all) and the bytes of the names of their current pages. A client that
/// reads a listing slowly or not at all (an HTTP/2 stream with a closed
/// window) holds its slot and page until it reads on or its response
/// deadline drops the response; past a budget, further listings are
/// refused with [`TOO_MANY_LISTINGS`] instead of holding more memory.
pub struct ListingBudget {
    per_identity: usize,
    total: usize,
    running: std::sync::Mutex<ListingsRunning>,
    bytes: Arc<tokio::sync::Semaphore>,
    max_bytes: usize,
}

#[derive(Default)]
struct ListingsRunning {
    total: usize,
    by_identity: std::collections::HashMap<String, usize>,
}

impl Default for ListingBudget {
    fn default() -> Self {
        ListingBudget::new(LISTINGS_PER_IDENTITY, LISTINGS_TOTAL, LISTING_BYTES)
    }
}

impl ListingBudget {
    /// A budget of `per_identity` and `total` listings in flight holding
    /// `bytes` of names together.
    pub fn new(per_identity: usize, total: usize, bytes: usize) -> ListingBudget {
        let bytes = bytes.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        ListingBudget {
            per_identity,
            total,
            running: std::sync::Mutex::default(),
            bytes: Arc::new(tokio::sync::Semaphore::new(bytes)),
            max_bytes: bytes,
        }
    }

    fn running(&self) -> std::sync::MutexGuard<'_, ListingsRunning> {
        kes_core::sync::lock(&self.running)
    }

    /// A slot for a listing by `identity`, or [`TOO_MANY_LISTINGS`] when
    /// the identity or the server has its maximum in flight.
    pub fn admit(self: &Arc<Self>, identity: &str) -> Result<ListingSlot, kes_core::ApiError> {
        let mut running = self.running();
        let mine = running.by_identity.get(identity).copied().unwrap_or(0);
        if mine >= self.per_identity || running.total >= self.total {
            return Err(TOO_MANY_LISTINGS);
        }
        let page = if running.total < LARGE_PAGES_UP_TO {
            kes_keystore::listing::LIST_PAGE
        } else {
            SMALL_LISTING_PAGE
        };
        running.total += 1;
        running.by_identity.insert(identity.to_owned(), mine + 1);
        Ok(ListingSlot {
            budget: Arc::clone(self),
            identity: identity.to_owned(),
            page,
            held: None,
        })
    }

    /// Listings in flight, all identities together.
    pub fn in_flight(&self) -> usize {
        self.running().total
    }

    /// Bytes of names the listings in flight hold.
    pub fn bytes_held(&self) -> usize {
        self.max_bytes - self.bytes.available_permits()
    }

    /// The budget's share of a page of `names`: what their strings hold.
    fn cost(&self, names: &[String]) -> u32 {
        let bytes: usize = names
            .iter()
            .map(|n| n.capacity() + std::mem::size_of::<String>())
            .sum();
        // A page larger than the whole budget waits until it is alone.
        u32::try_from(bytes.clamp(1, self.max_bytes)).unwrap_or(u32::MAX)
    }
}

/// One listing in flight: frees its slot and the bytes of its page when
/// dropped (the listing ended, failed, or its client went away).
pub struct ListingSlot {
    budget: Arc<ListingBudget>,
    identity: String,
    page: usize,
    held: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl ListingSlot {
    /// How many names to ask the key store for at a time.
    pub fn page(&self) -> usize {
        self.page
    }

    /// Charges the listing's first page, or refuses the listing with
    /// [`TOO_MANY_LISTINGS`] when the listings in flight hold every byte
    /// of the budget.
    pub fn hold_first(&mut self, names: &[String]) -> Result<(), kes_core::ApiError> {
        let cost = self.budget.cost(names);
        let permit = Arc::clone(&self.budget.bytes)
            .try_acquire_many_owned(cost)
            .map_err(|_| TOO_MANY_LISTINGS)?;
        self.held = Some(permit);
        Ok(())
    }

    /// Frees the bytes of the page the client has taken.
    pub fn release_page(&mut self) {
        self.held = None;
    }

    /// Charges the listing's next page (the previous one is released
    /// first), waiting, first come first served, until the listings in
    /// flight leave room for it.
    pub async fn hold_next(&mut self, names: &[String]) {
        self.held = None;
        let cost = self.budget.cost(names);
        self.held = Arc::clone(&self.budget.bytes)
            .acquire_many_owned(cost)
            .await
            .ok();
    }
}

impl Drop for ListingSlot {
    fn drop(&mut self) {
        let mut running = self.budget.running();
        running.total -= 1;
        if let Some(mine) = running.by_identity.get_mut(&self.identity) {
            *mine -= 1;
            if *mine == 0 {
                running.by_identity.remove(&self.identity);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` names of `len` bytes (strings of exactly that capacity).
    fn names(n: usize, len: usize) -> Vec<String> {
        (0..n).map(|_| "k".repeat(len)).collect()
    }

    #[test]
    fn listings_are_capped_per_identity_and_in_all() {
        let budget = Arc::new(ListingBudget::new(2, 3, 1 << 20));
        let a1 = budget.admit("a").unwrap();
        let a2 = budget.admit("a").unwrap();
        assert_eq!(budget.admit("a").err(), Some(TOO_MANY_LISTINGS));
        // Another identity is not affected by a's cap...
        let b1 = budget.admit("b").unwrap();
        // ...but by the total.
        assert_eq!(budget.admit("c").err(), Some(TOO_MANY_LISTINGS));
        assert_eq!(budget.in_flight(), 3);
        drop(a1);
        let c1 = budget.admit("c").unwrap();
        drop((a2, b1, c1));
        assert_eq!(budget.in_flight(), 0);
        assert!(budget.running().by_identity.is_empty());
    }

    #[tokio::test]
    async fn listings_share_a_budget_of_bytes() {
        let budget = Arc::new(ListingBudget::new(8, 8, 100_000));
        let page = names(1000, 40); // 1000 × (40 + 24) bytes
        let mut first = budget.admit("a").unwrap();
        first.hold_first(&page).unwrap();
        assert_eq!(budget.bytes_held(), 64_000);
        let mut second = budget.admit("b").unwrap();
        assert_eq!(second.hold_first(&page).err(), Some(TOO_MANY_LISTINGS));
        // A later page waits until the first listing releases its page.
        let waiting = tokio::spawn(async move {
            second.hold_next(&names(1000, 40)).await;
            second
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        first.release_page();
        let second = waiting.await.unwrap();
        assert_eq!(budget.bytes_held(), 64_000);
        drop((first, second));
        assert_eq!(budget.bytes_held(), 0);
    }
}
