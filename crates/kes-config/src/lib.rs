//! The server configuration file (YAML), compatible with the Go KES.
//!
//! The file is first parsed into a tree that remembers the line of every
//! value (`yaml.rs`), then walked field by field: `${VAR}` references are
//! replaced in the fields that allow them, values are converted and
//! checked, and defaults are applied. Every problem becomes a
//! [`ConfigError`] naming the field (and its line where there is one).
//! Unknown keys are ignored, as in the Go KES, but reported in
//! [`ServerConfig::warnings`] so the server can point out typos.
//!
//! This is the Go KES's `kesconf`: besides the parser ([`ServerConfig`],
//! [`load_keystore`]) it holds the start-up checks ([`checks`]) and opens
//! the key store a config names ([`open_store`]), so that tools like
//! `kes migrate` need no server.
//!
//! Where things are: the types of a parsed config: `types.rs`; reading a
//! file and the order of the sections: `load.rs`; walking the YAML tree
//! and converting values: `walk.rs` (on `yaml.rs`); `${VAR}`: `env.rs`;
//! the sections: `sections.rs` and `keystore.rs`; the known keys (one
//! table, for the parsers and the unknown-key warnings): `schema.rs`.

#![warn(missing_docs)]

pub mod checks;
mod env;
mod error;
mod keystore;
mod load;
mod log;
mod open;
mod schema;
mod sections;
mod types;
mod walk;
mod yaml;

pub use checks::ca_files;
pub use error::ConfigError;
pub use kes_core::duration::{format_duration, parse_duration};
pub use kes_keystore::KeyStoreConfig;
pub use load::load_keystore;
pub use log::{LogFormat, LogLevel};
pub use open::{open_store, OpenError};
pub use types::{
    ApiRouteConfig, CacheExpiry, ConnectionLimits, LifecycleConfig, LogConfig, PolicyConfig,
    ProxyConfig, RotationRule, ServerConfig, SourceNet, TlsAuth, TlsConfig, DEFAULT_CACHE_ANY,
    DEFAULT_CACHE_UNUSED, DEFAULT_PROXY_CERT_HEADER, DEFAULT_VAULT_STATUS_PING,
    MIN_ROTATION_PERIOD,
};
