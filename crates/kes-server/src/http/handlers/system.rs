//! The endpoints about the server itself: version, readiness, status,
//! metrics and the route list.

use super::{Answer, Call, Result};
use crate::http::wire;
use kes_core::{api, ApiError};

/// The release string `/version` reports.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

pub(super) fn version() -> Result<Answer> {
    Ok(wire::json(&api::Version {
        version: VERSION.to_owned(),
        commit: option_env!("KES_BUILD_COMMIT")
            .unwrap_or("<unknown>")
            .to_owned(),
    })
    .into())
}

pub(super) async fn ready(req: &Call<'_>) -> Result<Answer> {
    match req.state.cache.status().await {
        Ok(_) => Ok(wire::empty_ok().into()),
        Err(err) if err.is_unreachable() => {
            tracing::warn!(error = %err, "key store is not reachable");
            Err(ApiError::STORE_UNREACHABLE)
        }
        Err(err) => {
            tracing::error!(error = %err, "key store is unavailable");
            Err(ApiError::STORE_UNAVAILABLE)
        }
    }
}

pub(super) async fn status(req: &Call<'_>) -> Result<Answer> {
    let sys = crate::lifecycle::sysinfo::read();
    let mut doc = api::Status {
        version: VERSION.to_owned(),
        os: crate::lifecycle::sysinfo::go_os().to_owned(),
        arch: crate::lifecycle::sysinfo::go_arch().to_owned(),
        uptime: req.shared.metrics.uptime().as_secs(),
        num_cpu: sys.num_cpu,
        num_cpu_used: sys.num_cpu_used,
        mem_heap_used: sys.heap_used,
        mem_stack_used: sys.stack_used,
        keystore_latency: 0,
        keystore_unavailable: false,
        keystore_unreachable: false,
    };
    match req.state.cache.status().await {
        // At least 1: a latency of 0 is left out, as for a store that
        // cannot be reached.
        Ok(latency) => doc.keystore_latency = latency.as_millis().max(1) as u64,
        Err(err) => {
            tracing::warn!(error = %err, "key store is not reachable");
            // The Go SDK refuses `keystore_unreachable` without
            // `keystore_unavailable`, so we send both.
            doc.keystore_unavailable = true;
            doc.keystore_unreachable = true;
        }
    }
    Ok(wire::json(&doc).into())
}

pub(super) fn metrics(req: &Call<'_>) -> Result<Answer> {
    let extended = req
        .query
        .split('&')
        .any(|kv| kv == "extended" || kv == "extended=true" || kv == "extended=1");
    let figures = extended.then(|| {
        let s = req.state.cache.stats();
        crate::http::metrics::CacheFigures {
            hits: s.hits,
            misses: s.misses,
            store_reads: s.store_reads,
            store_errors: s.store_errors,
            keys: s.cached_keys,
        }
    });
    Ok(wire::metrics_text(req.shared.metrics.render(figures)).into())
}

pub(super) fn api(req: &Call<'_>) -> Result<Answer> {
    let routes: Vec<api::ApiRoute> = req
        .state
        .routes
        .routes()
        .iter()
        .filter(|r| r.listed)
        .map(|r| api::ApiRoute {
            method: r.method.to_string(),
            path: r.path.to_owned(),
            max_body: r.max_body,
            timeout: r.timeout.as_secs(),
        })
        .collect();
    Ok(wire::json(&routes).into())
}
