#![forbid(unsafe_code)]
//! The KES HTTPS server.
//!
//! [`run`] is `kes server`: it loads the config (or builds the `--dev`
//! setup), opens the key store behind a [`kes_keystore::cache::KeyCache`],
//! serves the API over mTLS, reloads on SIGHUP and stops gracefully on
//! SIGINT/SIGTERM.

mod banner;
mod builder;
pub mod config;
pub mod handlers;
mod keystore;
pub mod logs;
pub mod metrics;
mod net;
mod process;
mod reload;
mod run;

pub use keystore::open_store;
pub use reload::TLS_RELOAD_INTERVAL;
pub use run::{run, Options, DEFAULT_ADDRESS, SHUTDOWN_GRACE};
pub use state::STATUS_INTERVAL;
pub mod routes;
pub mod server;
pub mod state;
pub mod sysinfo;
pub mod tls;
pub mod wire;
