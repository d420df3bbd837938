//! A real mTLS server on 127.0.0.1 over a [`SwitchableStore`], for the
//! tests that need to see or break the key store behind the API.

#![allow(dead_code)]

use kes_core::{ApiKey, KeyAlgorithm};
use kes_keystore::cache::{CacheConfig, KeyCache};
use kes_server::{ServerBuilder, State};
use kes_testkit::store::SwitchableStore;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Running {
    pub(crate) addr: std::net::SocketAddr,
    pub(crate) cert_der: Vec<u8>,
    pub(crate) admin: ApiKey,
    pub(crate) store: Arc<SwitchableStore>,
    _stop: tokio::sync::watch::Sender<bool>,
}

pub(crate) async fn start(offline_expiry: Duration) -> Running {
    start_with(offline_expiry, |_| ()).await.0
}

/// [`start`], with `configure` given the server's state before it serves
/// (and what it returns handed back).
pub(crate) async fn start_with<T>(
    offline_expiry: Duration,
    configure: impl FnOnce(&mut State) -> T,
) -> (Running, T) {
    let admin = ApiKey::generate();
    let cert = kes_core::certgen::dev_server_certificate(&["127.0.0.1".parse().unwrap()]).unwrap();
    let tls = kes_server::dev_tls(&cert).unwrap();
    let store = Arc::new(SwitchableStore::new());
    let cache = KeyCache::new(
        store.clone(),
        CacheConfig {
            expiry: Duration::from_secs(300),
            expiry_unused: Duration::from_secs(300),
            expiry_offline: offline_expiry,
            status_interval: Duration::from_millis(100),
        },
    );
    let mut state = State {
        default_algorithm: KeyAlgorithm::Aes256,
        ..State::new(admin.identity(), cache)
    };
    let configured = configure(&mut state);
    let shared = ServerBuilder::new().build(state, tls);
    // Keep the test output readable: no audit lines on stdout.
    shared.logs.configure(
        kes_server::INFO,
        kes_server::ERROR + 1,
        false,
        kes_server::AuditSink::Stdout,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(kes_server::server::serve(
        listener,
        shared,
        stop_rx,
        Duration::from_secs(1),
    ));
    let running = Running {
        addr,
        cert_der: cert.certificate_der.clone(),
        admin,
        store,
        _stop: stop,
    };
    (running, configured)
}

pub(crate) async fn eventually(what: &str, mut f: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

impl Running {
    /// A client that authenticates as the admin.
    pub(crate) fn admin_client(&self) -> kes_testkit::client::Client {
        kes_testkit::client::Client::new(self.addr, Some(&self.admin), &self.cert_der)
    }
}
