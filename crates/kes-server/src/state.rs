//! What a request sees of the server: the configuration-derived state that
//! SIGHUP replaces as a whole (admin, policies, routes, key cache), and the
//! parts that live as long as the process (start time, metrics, logs).

use crate::logs::Logs;
use crate::metrics::Metrics;
use crate::routes::RouteTable;
use arc_swap::ArcSwap;
use kes_core::{Identity, KeyAlgorithm, Policy};
use kes_keystore::cache::KeyCache;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

/// One configuration's worth of state. Requests in flight keep the `Arc`
/// they started with, so a reload never changes the rules mid-request.
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
    /// The policy assigned to `identity`, if any.
    pub fn policy_of(&self, identity: &Identity) -> Option<(&str, &Policy)> {
        let name = self.identities.get(identity)?;
        self.policies.get(name).map(|p| (name.as_str(), p))
    }
}

/// Process-wide server state.
pub struct Shared {
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
