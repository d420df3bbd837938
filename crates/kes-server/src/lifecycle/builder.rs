//! Building a server from code: [`ServerBuilder`] assembles the
//! process-wide [`Server`] from a [`State`], a TLS configuration, metrics
//! and logs; with a config, it also applies the config's log settings and
//! TLS files.

use crate::config::{LogFormat, ServerConfig, TlsAuth};
use crate::error::ServerError;
use crate::http::metrics::Metrics;
use crate::http::routes::RouteTable;
use crate::http::tls;
use crate::logs::{self, AuditSink, Logs};
use crate::state::{Server, State};
use arc_swap::ArcSwap;
use std::sync::Arc;

/// Builds the process-wide state a server serves from ([`Server`]).
///
/// `kes server` builds one per process; tests and tools build theirs from
/// a [`State`] (e.g. [`State::dev`]) and a TLS configuration, or from a
/// [`ServerConfig`], then serve it with [`crate::http::server::serve`]:
///
/// ```no_run
/// use kes_server::{dev_tls, ServerBuilder, State};
/// use std::time::Duration;
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let admin = kes_core::ApiKey::generate();
/// let cert = kes_core::certgen::dev_server_certificate(&["127.0.0.1".parse()?])?;
/// let server = ServerBuilder::new().build(State::dev(admin.identity()), dev_tls(&cert)?);
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let (stop, stopped) = tokio::sync::watch::channel(false);
/// let serving = tokio::spawn(kes_server::server::serve(
///     listener,
///     server,
///     stopped,
///     Duration::from_secs(1),
/// ));
/// // ... talk to it with `admin` as the API key ...
/// stop.send(true)?;
/// serving.await?;
/// # Ok(())
/// # }
/// ```
#[derive(Default)]
pub struct ServerBuilder {
    logs: Option<(Arc<Metrics>, Arc<Logs>)>,
}

impl ServerBuilder {
    /// A builder with fresh metrics and logs (the error log on stderr at
    /// level INFO, the audit log on stdout).
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `logs` and the `metrics` it counts its events in, e.g. those
    /// installed as the process's tracing subscriber before the config
    /// was read.
    pub fn logs(mut self, metrics: Arc<Metrics>, logs: Arc<Logs>) -> Self {
        self.logs = Some((metrics, logs));
        self
    }

    /// The server of `state`, accepting connections with `tls`.
    pub fn build(mut self, state: State, tls: Arc<tls::ServerTls>) -> Arc<Server> {
        let (metrics, logs) = self.logs_or_fresh();
        Arc::new(Server {
            metrics,
            logs,
            state: ArcSwap::from_pointee(state),
            tls: ArcSwap::new(tls),
        })
    }

    /// The server a config describes: the config's log settings are
    /// applied first (opening `log.audit_file`), then its key store is
    /// opened ([`State::from_config`]) and its certificate loaded. If the
    /// TLS files are unusable, the key store is closed again.
    pub async fn build_from_config(
        mut self,
        config: &ServerConfig,
    ) -> Result<Arc<Server>, ServerError> {
        let (_, logs) = self.logs_or_fresh();
        configure_logs(&logs, config)?;
        let (state, tls) = from_config(config).await?;
        Ok(self.build(state, tls))
    }

    /// The logs given to [`logs`](Self::logs), or fresh ones.
    fn logs_or_fresh(&mut self) -> (Arc<Metrics>, Arc<Logs>) {
        self.logs
            .get_or_insert_with(|| {
                let metrics = Arc::new(Metrics::new());
                let logs = Logs::new(metrics.clone());
                (metrics, logs)
            })
            .clone()
    }
}

/// The state and TLS configuration of `config`; the key store is closed
/// again if the TLS files are unusable.
pub(crate) async fn from_config(
    config: &ServerConfig,
) -> Result<(State, Arc<tls::ServerTls>), ServerError> {
    let state = State::from_config(config).await?;
    match tls_from_config(config, &state.routes) {
        Ok(tls) => Ok((state, tls)),
        Err(e) => {
            state.cache.close().await;
            Err(e)
        }
    }
}

/// Applies the config's `log:` settings: levels, format and where the
/// audit log goes.
pub(crate) fn configure_logs(logs: &Logs, config: &ServerConfig) -> Result<(), ServerError> {
    let sink = match &config.log.audit_file {
        None => AuditSink::Stdout,
        Some(path) => {
            let file = logs::open_audit_file(path).map_err(|cause| ServerError::AuditLog {
                path: path.clone(),
                cause,
            })?;
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

/// The TLS configuration of `config`'s `tls:` section; client certificates
/// become optional when a route skips authentication.
pub(crate) fn tls_from_config(
    config: &ServerConfig,
    routes: &RouteTable,
) -> Result<Arc<tls::ServerTls>, ServerError> {
    let (certificates, private_key) = tls::load_identity(
        &config.tls.cert,
        &config.tls.key,
        config.tls.password.as_ref().map(|p| p.as_str()),
    )?;
    Ok(tls::server_config(tls::TlsSettings {
        certificates,
        private_key,
        client_auth: match config.tls.auth {
            TlsAuth::Off => tls::ClientAuth::Any,
            TlsAuth::On => tls::ClientAuth::Verify,
        },
        ca: config.tls.ca.as_deref(),
        optional_client_cert: routes.any_skip_auth(),
    })?)
}
