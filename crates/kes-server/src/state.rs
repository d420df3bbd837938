//! What a request sees of the server: [`State`], one per configuration,
//! which SIGHUP replaces as a whole (admin, policies, routes, key cache),
//! and [`Shared`], one per process, which lives as long as the server
//! (start time, metrics, logs, and the current `State` and TLS setup).

use crate::logs::Logs;
use crate::metrics::Metrics;
use crate::routes::RouteTable;
use arc_swap::ArcSwap;
use kes_core::{Identity, KeyAlgorithm, Policy};
use kes_keystore::cache::KeyCache;
use std::collections::BTreeMap;
use std::sync::Arc;
use time::OffsetDateTime;

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
    /// The policy assigned to `identity`, if any.
    pub fn policy_of(&self, identity: &Identity) -> Option<(&str, &Policy)> {
        let name = self.identities.get(identity)?;
        self.policies.get(name).map(|p| (name.as_str(), p))
    }
}

/// Per process: one for the server's whole life, across reloads. Holds
/// the current per-configuration [`State`] and TLS setup, which a reload
/// swaps.
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
