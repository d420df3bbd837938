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
//! - `http/`, the HTTP layer: connections and limits (`http/server/`),
//!   routes and the policy paths of each (`http/routes.rs`), the API's
//!   handlers (`http/handlers/`), response bodies (`http/wire.rs`),
//!   metrics (`http/metrics.rs`), TLS (`http/tls.rs`).
//! - `lifecycle/`, the process: start and stop (`run.rs`), reload on
//!   SIGHUP (`reload.rs`), how a server is assembled (`builder.rs`), the
//!   dev mode (`dev.rs`), the banner (`banner.rs`), process hardening,
//!   mlock and no core dumps (`process.rs`), the host's addresses
//!   (`net.rs`), `sysinfo.rs`.
//! - what a request sees: `state.rs` ([`State`], [`Server`]); which key
//!   store a config opens: [`open_store`] (kes-config); start and reload
//!   errors: `error.rs`; logs: `logs/`; the config file: [`config`] (the
//!   kes-config crate).
//!
//! What is `pub` here is what `kes`, kes-bench and the tests use; the rest
//! is `pub(crate)` (the `unreachable_pub` lint keeps it so).

#![warn(missing_docs)]

/// The config file: the kes-config crate, re-exported for the server's
/// users.
pub use kes_config as config;

mod error;
mod http;
mod lifecycle;
mod logs;
mod state;

/// `kes_server::server` and `kes_server::wire`, the paths `kes`, kes-bench
/// and the tests use.
pub use http::{server, wire};

pub use error::ServerError;
pub use http::handlers::VERSION;
pub use kes_config::open_store;
pub use lifecycle::builder::ServerBuilder;
pub use lifecycle::dev::dev_tls;
pub use lifecycle::reload::TLS_RELOAD_INTERVAL;
pub use lifecycle::run::{run, Options, DEFAULT_ADDRESS, SHUTDOWN_GRACE};
pub use logs::{AuditSink, Logs, ERROR, INFO};
pub use state::{Server, State, STATUS_INTERVAL};

/// What the fuzz targets (fuzz/) drive directly: path cleaning, routing and
/// list paging. Not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::http::handlers::{list_prefix, page, paging};
    pub use crate::http::routes::{clean_path, Lookup, RouteTable};
    pub use crate::http::server::fuzzing::{forwarded_certificate, proxy_header};
}
