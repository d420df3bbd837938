//! `kes server`: start, serve until SIGINT/SIGTERM, stop gracefully.

use crate::config::ServerConfig;
use crate::logs::Logs;
use crate::metrics::Metrics;
use crate::reload::TLS_RELOAD_INTERVAL;
use crate::routes::RouteTable;
use crate::state::STATUS_INTERVAL;
use crate::state::{Shared, State};
use crate::{banner, builder, logs, net, process, reload, server, state, tls};
use arc_swap::ArcSwap;
use kes_core::{ApiKey, KeyAlgorithm};
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
        builder::configure_logs(&logs, &config)?;
        let state = state::build_state(&config).await?;
        let tls_config = builder::build_tls(&config, &state.routes)?;
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
