#![forbid(unsafe_code)]
//! The KES HTTPS server.
//!
//! [`run`] is `kes server`: it loads the config (or builds the `--dev`
//! setup), opens the key store behind a [`kes_keystore::cache::KeyCache`],
//! serves the API over mTLS, reloads on SIGHUP and stops gracefully on
//! SIGINT/SIGTERM.

pub mod config;
pub mod handlers;
pub mod logs;
pub mod metrics;
mod banner;
mod keystore;
mod net;
mod process;
mod reload;

pub use keystore::open_store;
pub use reload::TLS_RELOAD_INTERVAL;
pub mod routes;
pub mod server;
pub mod state;
pub mod sysinfo;
pub mod tls;
pub mod wire;

use crate::config::{LogFormat, ServerConfig, TlsAuth};
use crate::logs::{AuditSink, Logs};
use crate::metrics::Metrics;
use crate::routes::{RouteOverride, RouteTable};
use crate::state::{Shared, State};
use arc_swap::ArcSwap;
use kes_core::{ApiKey, KeyAlgorithm, KeyVersion};
use kes_keystore::cache::{CacheConfig, KeyCache};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;

/// Default listen address.
pub const DEFAULT_ADDRESS: &str = "0.0.0.0:7373";
/// How often the key cache probes the key store (spec §9.3).
pub const STATUS_INTERVAL: Duration = Duration::from_secs(10);
/// How long a stopping server lets requests in flight finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// `kes server` options.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--addr`; wins over the config's `address`.
    pub addr: Option<String>,
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--dev`: in-memory store, ephemeral certificate, fresh admin API key.
    pub dev: bool,
    /// `--mlock`: lock all memory so keys are never swapped out.
    pub mlock: bool,
}

/// Runs `kes server` until SIGINT/SIGTERM.
pub fn run(options: Options) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start runtime: {e}"))?;
    let result = runtime.block_on(run_async(options));
    logs::flush_process_errors();
    result
}

fn init_logging(metrics: &Arc<Metrics>) -> Arc<Logs> {
    use tracing_subscriber::layer::SubscriberExt as _;
    let logs = Logs::new(metrics.clone());
    let subscriber = tracing_subscriber::registry().with(logs.layer());
    let _ = tracing::subscriber::set_global_default(subscriber);
    logs
}

pub(crate) fn configure_logs(logs: &Logs, config: &ServerConfig) -> Result<(), String> {
    let sink = match &config.log.audit_file {
        None => AuditSink::Stdout,
        Some(path) => {
            let file = logs::open_audit_file(path)
                .map_err(|e| format!("failed to open audit log '{}': {e}", path.display()))?;
            AuditSink::File(file)
        }
    };
    logs.configure(
        config.log.error.0,
        config.log.audit.0,
        config.log.format == LogFormat::Json,
        sink,
    );
    Ok(())
}

/// Builds the request state of a config: policies, routes, key store.
pub(crate) async fn build_state(config: &ServerConfig) -> Result<State, String> {
    let store = keystore::open_store(&config.keystore).await?;
    let cache = KeyCache::new(
        store,
        CacheConfig {
            expiry: config.cache.any,
            expiry_unused: config.cache.unused,
            expiry_offline: config.cache.offline,
            status_interval: STATUS_INTERVAL,
        },
    );
    let mut policies = BTreeMap::new();
    let mut identities = BTreeMap::new();
    for (name, p) in &config.policies {
        policies.insert(name.clone(), p.policy.clone());
        for id in &p.identities {
            identities.insert(id.clone(), name.clone());
        }
    }
    let overrides: BTreeMap<String, RouteOverride> = config
        .api
        .iter()
        .map(|(path, o)| {
            (
                path.clone(),
                RouteOverride {
                    skip_auth: o.skip_auth,
                    timeout: o.timeout,
                },
            )
        })
        .collect();
    let state = State {
        admin: config.admin.clone(),
        policies,
        identities,
        routes: RouteTable::new(&overrides),
        cache,
        default_algorithm: KeyAlgorithm::default_for_cpu(),
        loaded: OffsetDateTime::now_utc(),
    };
    // Predefined keys: created like /v1/key/create by the admin; existing
    // keys are fine, anything else stops the start-up.
    for name in &config.keys {
        let key = KeyVersion::generate(state.default_algorithm, state.admin.to_string());
        match state.cache.create(name, &key).await {
            Ok(()) | Err(kes_keystore::Error::KeyExists) => {}
            Err(e) => {
                state.cache.close().await;
                return Err(format!("failed to create key '{name}': {e}"));
            }
        }
    }
    Ok(state)
}

pub(crate) fn build_tls(config: &ServerConfig, routes: &RouteTable) -> Result<Arc<tls::ServerTls>, String> {
    let (certificates, private_key) = tls::load_identity(
        &config.tls.cert,
        &config.tls.key,
        config.tls.password.as_ref().map(|p| p.as_str()),
    )
    .map_err(|e| e.to_string())?;
    tls::server_config(tls::TlsSettings {
        certificates,
        private_key,
        client_auth: match config.tls.auth {
            TlsAuth::Off => tls::ClientAuth::Any,
            TlsAuth::On => tls::ClientAuth::Verify,
        },
        ca: config.tls.ca.as_deref(),
        optional_client_cert: routes.any_skip_auth(),
    })
    .map_err(|e| e.to_string())
}

async fn run_async(options: Options) -> Result<(), String> {
    let open_files = server::raise_open_file_limit();
    let metrics = Arc::new(Metrics::new());
    let logs = init_logging(&metrics);
    let started = OffsetDateTime::now_utc();

    let (config, state, tls_config, address, dev_key) = if options.dev {
        if options.config.is_some() {
            return Err("'--config' is not allowed with '--dev'".into());
        }
        let address = options
            .addr
            .clone()
            .unwrap_or_else(|| DEFAULT_ADDRESS.into());
        let bind: SocketAddr = address
            .parse()
            .map_err(|e| format!("invalid address '{address}': {e}"))?;
        let admin_key = ApiKey::generate();
        let cert = kes_core::certgen::dev_server_certificate(&net::local_ips(&bind))
            .map_err(|e| e.to_string())?;
        let routes = RouteTable::default();
        let tls_config = tls::server_config(tls::TlsSettings {
            certificates: vec![cert.certificate()],
            private_key: cert.private_key(),
            client_auth: tls::ClientAuth::Any,
            ca: None,
            optional_client_cert: false,
        })
        .map_err(|e| e.to_string())?;
        let state = State {
            admin: admin_key.identity(),
            policies: BTreeMap::new(),
            identities: BTreeMap::new(),
            routes,
            cache: KeyCache::new(
                Arc::new(kes_keystore::memory::MemKeyStore::new()),
                CacheConfig {
                    expiry: Duration::from_secs(5 * 60),
                    expiry_unused: Duration::from_secs(30),
                    expiry_offline: Duration::ZERO,
                    status_interval: STATUS_INTERVAL,
                },
            ),
            default_algorithm: KeyAlgorithm::default_for_cpu(),
            loaded: OffsetDateTime::now_utc(),
        };
        (None, state, tls_config, address, Some(admin_key))
    } else {
        let path = options
            .config
            .clone()
            .ok_or("no config file specified: use '--config <file>' or '--dev'")?;
        let config = ServerConfig::load(&path).map_err(|e| e.to_string())?;
        for warning in &config.warnings {
            eprintln!("Warning: {warning}");
        }
        configure_logs(&logs, &config)?;
        let state = build_state(&config).await?;
        let tls_config = build_tls(&config, &state.routes)?;
        let address = options
            .addr
            .clone()
            .or_else(|| config.address.clone())
            .unwrap_or_else(|| DEFAULT_ADDRESS.into());
        (Some((path, config)), state, tls_config, address, None)
    };

    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .map_err(|e| format!("failed to listen on '{address}': {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("failed to listen on '{address}': {e}"))?;

    process::harden_process(options.mlock);
    banner::print_banner(
        &state,
        config.as_ref().map(|(_, c)| c),
        &local,
        dev_key.as_ref(),
    );

    let shared = Arc::new(Shared {
        started,
        metrics,
        logs,
        state: ArcSwap::from_pointee(state),
        tls: ArcSwap::new(tls_config),
    });

    // Read at start only: a reload keeps the limits the server runs with.
    let limits = match &config {
        Some((_, c)) => server::Limits::for_open_files(open_files).with_config(&c.limits),
        None => server::Limits::for_open_files(open_files),
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let server = tokio::spawn(server::serve_with_limits(
        listener,
        shared.clone(),
        shutdown_rx,
        SHUTDOWN_GRACE,
        limits,
    ));

    let config_path = config.map(|(p, _)| p);
    signals(shared.clone(), config_path).await;
    shared.logs.close_streams();
    let _ = shutdown_tx.send(true);
    let _ = server.await;
    shared.logs.flush();
    Ok(())
}

/// Waits for SIGINT/SIGTERM; reloads on SIGHUP and re-reads certificates
/// every 15 minutes.
async fn signals(shared: Arc<Shared>, config_path: Option<PathBuf>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("failed to install signal handlers");
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    let mut tls_reload = tokio::time::interval(TLS_RELOAD_INTERVAL);
    tls_reload.tick().await;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                if let Some(path) = &config_path {
                    match reload::reload(&shared, path).await {
                        Ok(()) => tracing::info!("configuration reloaded"),
                        Err(err) => tracing::error!(error = %err, "failed to reload configuration; keeping the current one"),
                    }
                }
            }
            _ = tls_reload.tick() => {
                if let Some(path) = &config_path {
                    if let Err(err) = reload::reload_tls(&shared, path) {
                        tracing::error!(error = %err, "failed to reload TLS certificate");
                    }
                }
            }
        }
    }
    tracing::info!("shutting down: finishing requests in flight");
}
