#![forbid(unsafe_code)]
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
//! - [`bao`] (feature `bao`): an OpenBao dev server, or a three-node raft
//!   cluster, on loopback.
//! - [`client`] (feature `client`): the mTLS HTTP/1.1 client of the server
//!   suites.
//! - [`softhsm`] (feature `softhsm`): a SoftHSM2 token per test, each
//!   test in a process of its own.
//! - [`warnings`] (feature `warnings`): the warnings a future logs.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::PathBuf;

#[cfg(feature = "bao")]
pub mod bao;
#[cfg(feature = "client")]
pub mod client;
pub mod contract;
pub mod interleave;
pub mod moto;
#[cfg(feature = "softhsm")]
pub mod softhsm;
pub mod store;
#[cfg(feature = "warnings")]
pub mod warnings;

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The executable named by the environment variable `var` (set by
/// `scripts/test`), or `None` if `KES_SKIP_EXTERNAL_TESTS=1` skips the tests
/// that need it. Otherwise panics with `how_to_get` as instructions, so that
/// a missing tool can never look like a green run.
pub fn external_tool(var: &str, how_to_get: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ if std::env::var("KES_SKIP_EXTERNAL_TESTS").as_deref() == Ok("1") => {
            eprintln!("skipped: KES_SKIP_EXTERNAL_TESTS=1 and {var} is not set");
            None
        }
        _ => panic!(
            "{var} is not set: run scripts/test, or point it at {how_to_get}, or set \
             KES_SKIP_EXTERNAL_TESTS=1 to skip the tests that need it"
        ),
    }
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
