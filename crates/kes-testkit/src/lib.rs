//! What the KES test suites share, so that no test file includes another
//! crate's test file by path.
//!
//! - [`contract`]: the behaviour every `KeyStore` backend shows, one suite
//!   each backend runs.
//! - [`interleave`]: the interleaving checker of the key-mutation
//!   protocol, for every backend.
//! - [`store::SwitchableStore`]: an in-memory store that can be switched
//!   off to play an unreachable one.
//! - [`moto`]: moto's AWS emulator on loopback.
//! - `fronts` (feature `fronts`): nginx and HAProxy in front of a KES
//!   server on loopback.
//! - `bao` (feature `bao`): an OpenBao dev server, or a three-node raft
//!   cluster, on loopback.
//! - `client` (feature `client`): the mTLS HTTP/1.1 client of the server
//!   suites.
//! - `softhsm` (feature `softhsm`): a SoftHSM2 token per test, each
//!   test in a process of its own.
//! - `warnings` (feature `warnings`): the warnings a future logs.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::PathBuf;

#[cfg(feature = "bao")]
pub mod bao;
#[cfg(feature = "client")]
pub mod client;
pub mod contract;
#[cfg(feature = "fronts")]
pub mod fronts;
pub mod interleave;
pub mod moto;
#[cfg(feature = "softhsm")]
pub mod softhsm;
pub mod store;
#[cfg(feature = "warnings")]
pub mod warnings;

/// Holds `127.0.0.1:port` of a server a test has stopped, while clients
/// may still retry against it: a socket bound there that does not listen.
/// A client gets "connection refused", as from the stopped server, and no
/// other test's server can be handed the port meanwhile: every test draws
/// its ports from the kernel ([`free_port`]), and the kernel's choice of a
/// free port passes over a port bound like this (checked in a network
/// namespace whose port range was two ports). With `SO_REUSEADDR`, so that
/// the stopped server's connections still in TIME_WAIT do not keep it from
/// binding. `None` if the port could not be bound (then nothing holds it).
/// Drop it before starting a server on the port again.
pub fn hold_port(port: u16) -> Option<tokio::net::TcpSocket> {
    let socket = tokio::net::TcpSocket::new_v4().ok()?;
    socket.set_reuseaddr(true).ok()?;
    socket
        .bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port).into())
        .ok()?;
    Some(socket)
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The executable named by the environment variable `var` (set by
/// `scripts/test`). Panics with `how_to_get` as instructions otherwise: the
/// tests that need an external program are `#[ignore]`d, so they run only
/// when asked for (`--include-ignored`, as `scripts/test` does), and then a
/// missing program is a failure, never a silent pass.
pub fn external_tool(var: &str, how_to_get: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!("{var} is not set: run scripts/test, or point it at {how_to_get}"),
    }
}

/// Whether the test process runs as root, as the tests that mount file
/// systems need; checked through `/proc/self/status` (no unsafe `geteuid`).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|uids| uids.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Panics unless the test process runs as root: for the `#[ignore]`d tests
/// that mount file systems, so that running them without root fails.
pub fn require_root(why: &str) {
    assert!(
        is_root(),
        "this test needs root ({why}): run scripts/test as root"
    );
}

/// The hook a store's `set_before_conditional_write` takes, from an async
/// closure: `other` runs in the window between the compare and the
/// conditional write of the store's next `replace_if`.
pub fn before_write<F, Fut>(other: F) -> kes_keystore::BeforeWrite
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    std::sync::Arc::new(move || Box::pin(other()))
}

/// Every entry of an fs store directory (name → bytes), without the
/// store's hidden files (temporary files, `.kes-lock`, a seal file).
pub fn read_fs_store(dir: &std::path::Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}
