//! The server config file: the Go KES's kesconf fixtures, the AWS tutorial
//! config, `${VAR}` substitution, every validation rule, log levels, cache
//! defaults and the shipped example configs. Durations are tested in
//! kes-core, where they are parsed. One test binary; a module per part.

mod checks;
mod env;
mod files;
mod keystore;
mod lifecycle;
mod never_panics;
mod reference;
mod sections;
mod unknown_keys;

use kes_config::{ConfigError, KeyStoreConfig, LogFormat, LogLevel, ServerConfig, TlsAuth};
use kes_core::Identity;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ADMIN: &str = "c84cc9b91ae2399b043da7eca616048d4b4200edf2ff418d8af3835911db945d";
const JWT_PREFIX: &str =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IkJQbGNNeTdBeXdLQmZMaGw2N1dFZkJvUmtsdnVvdkxXWGsteTc5TmJPeGMifQ.";
const JWT_SUFFIX: &str = "GdvNGlOEdFEdXvl-dP6iLBPnZ5xwhAk8lK0oOONWvQg6VDNd9w";

fn fixture(name: &str) -> PathBuf {
    crate::manifest_dir().join("tests/data/config").join(name)
}

/// A fixture, parsed: its TLS files do not exist here, and only
/// [`ServerConfig::load`] checks them.
fn load(name: &str) -> ServerConfig {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    ServerConfig::parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A valid config with the given extra top-level sections.
fn with(extra: &str) -> String {
    format!(
        "admin:\n  identity: {ADMIN}\ntls:\n  key: ./server.key\n  cert: ./server.cert\nkeystore:\n  fs:\n    path: /tmp/keys\n{extra}"
    )
}

/// A valid config with extra lines in its `tls` section (indented).
fn with_tls(tls: &str) -> String {
    format!(
        "admin:\n  identity: {ADMIN}\ntls:\n  key: ./server.key\n  cert: ./server.cert\n{tls}keystore:\n  fs:\n    path: /tmp/keys\n"
    )
}

/// A valid config whose keystore section is `keystore`.
fn with_keystore(keystore: &str) -> String {
    format!(
        "admin:\n  identity: {ADMIN}\ntls:\n  key: ./server.key\n  cert: ./server.cert\nkeystore:\n{keystore}"
    )
}

fn error(yaml: &str) -> ConfigError {
    match ServerConfig::parse(yaml) {
        Ok(config) => panic!("config was accepted: {config:?}\n---\n{yaml}"),
        Err(e) => e,
    }
}

fn assert_error(yaml: &str, expected: &str) {
    let e = error(yaml);
    assert!(
        e.to_string().contains(expected),
        "error '{e}' does not contain '{expected}'\n---\n{yaml}"
    );
}

/// The package directory, as the test runner says when the test runs
/// (cargo and scripts/run-tests set `CARGO_MANIFEST_DIR`), not as it was
/// when the binary was built: a binary reused from another checkout
/// through a shared target dir must read this checkout's files.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("the current directory"))
}
