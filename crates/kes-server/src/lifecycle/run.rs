//! `kes server`: start, serve until SIGINT/SIGTERM, stop gracefully.

use super::{banner, dev, net, process, reload};
use crate::config::ServerConfig;
use crate::error::ServerError;
use crate::http::metrics::Metrics;
use crate::http::server;
use crate::lifecycle::builder::ServerBuilder;
use crate::lifecycle::reload::TLS_RELOAD_INTERVAL;
use crate::logs;
use crate::logs::Logs;
use crate::state::Server;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
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

/// Runs `kes server` until SIGINT/SIGTERM. The error says why the server
/// did not start; [`ServerError::is_usage`] tells contradicting or missing
/// options apart.
pub fn run(options: Options) -> Result<(), ServerError> {
    match (options.dev, &options.config) {
        (true, Some(_)) => return Err(ServerError::DevWithConfig),
        (false, None) => return Err(ServerError::NoConfig),
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServerError::Runtime)?;
    let result = runtime.block_on(run_async(options));
    logs::flush_process_errors();
    result
}

/// Installs the logs as the process's tracing subscriber, so that errors
/// from the start on reach the error log.
fn init_logging(metrics: &Arc<Metrics>) -> Arc<Logs> {
    use tracing_subscriber::layer::SubscriberExt as _;
    let logs = Logs::new(metrics.clone());
    let subscriber = tracing_subscriber::registry().with(logs.layer());
    let _ = tracing::subscriber::set_global_default(subscriber);
    logs
}

async fn run_async(options: Options) -> Result<(), ServerError> {
    let open_files = server::raise_open_file_limit();
    let metrics = Arc::new(Metrics::new());
    let logs = init_logging(&metrics);
    let builder = ServerBuilder::new().logs(metrics, logs);

    // Bound first: a dev server's certificate names the addresses it is
    // reachable at, which depend on what was bound.
    let config = match &options.config {
        None => None,
        Some(path) => {
            let config = ServerConfig::load(path)?;
            for warning in &config.warnings {
                eprintln!("Warning: {warning}");
            }
            for warning in crate::config::checks::environment_warnings(&config) {
                eprintln!("Warning: {warning}");
            }
            Some((path.clone(), config))
        }
    };
    let address = options
        .addr
        .clone()
        .or_else(|| config.as_ref().and_then(|(_, c)| c.address.clone()))
        .unwrap_or_else(|| DEFAULT_ADDRESS.into());
    let listen_error = |cause| ServerError::Listen {
        address: address.clone(),
        cause,
    };
    let listener = net::listen(&address).await.map_err(|e| match e {
        net::ListenError::Invalid(reason) => ServerError::InvalidAddress {
            address: address.clone(),
            reason,
        },
        net::ListenError::Bind(source) => listen_error(source),
    })?;
    let (shared, dev_key) = match &config {
        None => {
            let bind = listener.local_addr().map_err(listen_error)?;
            let (state, tls, admin_key) = dev::dev_server(bind)?;
            (builder.build(state, tls), Some(admin_key))
        }
        Some((_, config)) => (builder.build_from_config(config).await?, None),
    };
    let local = listener.local_addr().map_err(listen_error)?;

    // Signal handlers before the banner: whoever sees "up and running" may
    // send SIGHUP at once, and before the handler exists its default
    // action ends the process.
    let signal_streams = install_signals();
    process::harden_process(options.mlock);
    banner::print_banner(
        &shared.state.load(),
        config.as_ref().map(|(_, c)| c),
        &local,
        dev_key.as_ref(),
    );

    // Read at start only: a reload keeps the limits the server runs with.
    let limits = match &config {
        Some((_, c)) => server::Limits::for_open_files(open_files).with_config(&c.limits),
        None => server::Limits::for_open_files(open_files),
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // The rotation schedule (`lifecycle.rotate`): its own task, following
    // reloads, until shutdown.
    let schedule = super::schedule::start(shared.clone(), shutdown_rx.clone());
    // The purge of deleted keys (`lifecycle.deletion_window`): likewise.
    let purge = super::purge::start(shared.clone(), shutdown_rx.clone());
    let server = tokio::spawn(server::serve_with_limits(
        listener,
        shared.clone(),
        shutdown_rx,
        SHUTDOWN_GRACE,
        limits,
    ));

    let config_path = config.map(|(p, _)| p);
    signals(signal_streams, shared.clone(), config_path).await;
    shared.logs.close_streams();
    let _ = shutdown_tx.send(true);
    let _ = schedule.await;
    let _ = purge.await;
    let _ = server.await;
    shared.logs.flush();
    Ok(())
}

/// SIGTERM, SIGINT and SIGHUP, caught from here on.
struct SignalStreams {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

fn install_signals() -> Option<SignalStreams> {
    use tokio::signal::unix::{signal, SignalKind};
    Some(SignalStreams {
        term: signal(SignalKind::terminate()).ok()?,
        int: signal(SignalKind::interrupt()).ok()?,
        hup: signal(SignalKind::hangup()).ok()?,
    })
}

/// Waits for SIGINT/SIGTERM; reloads on SIGHUP and re-reads certificates
/// every 15 minutes.
async fn signals(
    streams: Option<SignalStreams>,
    shared: Arc<Server>,
    config_path: Option<PathBuf>,
) {
    let Some(SignalStreams {
        mut term,
        mut int,
        mut hup,
    }) = streams
    else {
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
