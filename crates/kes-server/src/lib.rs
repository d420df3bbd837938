#![forbid(unsafe_code)]
//! The KES HTTPS server.
//!
//! [`run`] is `kes server`: it loads the config (or builds the `--dev`
//! setup), opens the key store behind a [`kes_keystore::cache::KeyCache`],
//! serves the API over mTLS, reloads on SIGHUP and stops gracefully on
//! SIGINT/SIGTERM. A server can also be built from code: a [`State`]
//! ([`State::from_config`], [`State::dev`]) and a TLS configuration become
//! a server with [`ServerBuilder`], served by [`server::serve`].
//!
//! Where things are:
//! - start and stop: `run.rs`; reload on SIGHUP: `reload.rs`; the dev
//!   mode: `dev.rs`; the banner: `banner.rs`; process hardening (mlock,
//!   no core dumps): `process.rs`; the host's addresses: `net.rs`.
//! - what a request sees: `state.rs` ([`State`], [`Server`]); how a
//!   server is assembled: `builder.rs`; which key store a config opens:
//!   [`open_store`] (kes-config).
//! - connections and limits: [`server`]; routes and the policy paths of
//!   each: `routes.rs`; the API's handlers: `handlers/`; response bodies:
//!   [`wire`]; logs and metrics: `logs/`, `metrics.rs`; TLS: `tls.rs`; the
//!   config file: [`config`] (the kes-config crate).
//!
//! What is `pub` here is what `kes`, kes-bench and the tests use; the rest
//! is `pub(crate)` (the `unreachable_pub` lint keeps it so).

/// The config file: the kes-config crate, re-exported for the server's
/// users.
pub use kes_config as config;
pub mod server;
pub mod wire;

mod handlers;
mod logs;
mod metrics;
mod routes;
mod state;
mod sysinfo;
mod tls;

mod banner;
mod builder;
mod dev;
mod error;
mod net;
mod process;
mod reload;
mod run;

pub use builder::ServerBuilder;
pub use dev::dev_tls;
pub use error::ServerError;
pub use handlers::VERSION;
pub use kes_config::open_store;
pub use logs::{AuditSink, Logs, ERROR, INFO};
pub use reload::TLS_RELOAD_INTERVAL;
pub use run::{run, Options, DEFAULT_ADDRESS, SHUTDOWN_GRACE};
pub use state::{Server, State, STATUS_INTERVAL};

/// What the fuzz targets (fuzz/) drive directly: path cleaning, routing and
/// list paging. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::handlers::{list_prefix, page, paging};
    pub use crate::routes::{clean_path, Lookup, RouteTable};
}
