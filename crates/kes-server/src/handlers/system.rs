//! The endpoints about the server itself: version, readiness, status,
//! metrics and the route list.

use super::{Call, Result};
use crate::wire::{self, Body};
use hyper::Response;
use kes_core::ApiError;
use serde::Serialize;
use serde_json::json;

/// The release string `/version` reports.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

pub(super) fn version() -> Response<Body> {
    wire::json(&json!({
        "version": VERSION,
        "commit": option_env!("KES_BUILD_COMMIT").unwrap_or("<unknown>"),
    }))
}

pub(super) async fn ready(req: &Call<'_>) -> Result<Response<Body>> {
    match req.state.cache.status().await {
        Ok(_) => Ok(wire::empty_ok()),
        Err(kes_keystore::Error::Unreachable(detail)) => {
            tracing::warn!(error = %detail, "key store is not reachable");
            Err(ApiError::STORE_UNREACHABLE)
        }
        Err(err) => {
            tracing::error!(error = %err, "key store is unavailable");
            Err(ApiError::STORE_UNAVAILABLE)
        }
    }
}

pub(super) async fn status(req: &Call<'_>) -> Result<Response<Body>> {
    let sys = crate::sysinfo::read();
    let mut doc = serde_json::Map::new();
    doc.insert("version".into(), VERSION.into());
    doc.insert("os".into(), crate::sysinfo::go_os().into());
    doc.insert("arch".into(), crate::sysinfo::go_arch().into());
    doc.insert(
        "uptime".into(),
        req.shared.metrics.uptime().as_secs().into(),
    );
    doc.insert("num_cpu".into(), sys.num_cpu.into());
    doc.insert("num_cpu_used".into(), sys.num_cpu_used.into());
    doc.insert("mem_heap_used".into(), sys.heap_used.into());
    doc.insert("mem_stack_used".into(), sys.stack_used.into());
    match req.state.cache.status().await {
        Ok(latency) => {
            let ms = latency.as_millis().max(1) as u64;
            doc.insert("keystore_latency".into(), ms.into());
        }
        Err(err) => {
            tracing::warn!(error = %err, "key store is not reachable");
            // The Go SDK refuses `keystore_unreachable` without
            // `keystore_unavailable`, so we send both.
            doc.insert("keystore_unavailable".into(), true.into());
            doc.insert("keystore_unreachable".into(), true.into());
        }
    }
    Ok(wire::json(&serde_json::Value::Object(doc)))
}

pub(super) fn metrics(req: &Call<'_>) -> Response<Body> {
    let extended = req
        .query
        .split('&')
        .any(|kv| kv == "extended" || kv == "extended=true" || kv == "extended=1");
    let figures = extended.then(|| {
        let s = req.state.cache.stats();
        crate::metrics::CacheFigures {
            hits: s.hits,
            misses: s.misses,
            store_reads: s.store_reads,
            store_errors: s.store_errors,
            keys: s.cached_keys,
        }
    });
    wire::metrics_text(req.shared.metrics.render(figures))
}

pub(super) fn api(req: &Call<'_>) -> Response<Body> {
    #[derive(Serialize)]
    struct ApiRoute<'a> {
        method: &'a str,
        path: &'a str,
        max_body: u64,
        timeout: u64,
    }
    let routes: Vec<ApiRoute<'_>> = req
        .state
        .routes
        .routes()
        .iter()
        .filter(|r| r.listed)
        .map(|r| ApiRoute {
            method: r.method.as_str(),
            path: r.path,
            max_body: r.max_body,
            timeout: r.timeout.as_secs(),
        })
        .collect();
    wire::json(&routes)
}
