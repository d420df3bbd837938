//! Prometheus metrics at `/v1/metrics`, in the Go KES's families and
//! text format.
//!
//! The exposition is written by hand instead of with `prometheus-client`:
//! the Go KES's families are counters *without* a `_total` suffix in the
//! 0.0.4 text format, and the Go SDK rejects a response in which any family
//! other than the three request counters has more than one series. Both are
//! easier to guarantee with a small, exact writer than by bending a library.
//!
//! By default only the Go KES's families are served. `?extended=true`
//! adds per-route latencies, key-cache and key-store figures (families with
//! several series, which the Go SDK would reject, hence opt-in).

use crate::http::routes::Endpoint;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Routes with a histogram of their own: one per endpoint.
pub(crate) const MAX_ROUTES: usize = Endpoint::ALL.len();

/// The upper bounds of `kes_http_response_time`, in seconds.
pub(crate) const BUCKETS: [f64; 10] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 3.0, 5.0, 10.0];

/// A histogram with fixed buckets, lock-free.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; 10],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let sep = if labels.is_empty() { "" } else { "," };
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{}\"}} {}",
                go_float(*bound),
                go_float(self.buckets[i].load(Ordering::Relaxed) as f64)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
            go_float(count as f64)
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let braces = |l: &str| {
            if l.is_empty() {
                String::new()
            } else {
                format!("{{{l}}}")
            }
        };
        let _ = writeln!(out, "{name}_sum{} {}", braces(labels), go_float(sum));
        let _ = writeln!(
            out,
            "{name}_count{} {}",
            braces(labels),
            go_float(count as f64)
        );
    }
}

/// Request counters by status code class, the response-time histogram,
/// active requests and log-event counters.
#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    by_code: Box<[AtomicU64]>,
    active: AtomicI64,
    response_time: Histogram,
    audit_events: AtomicU64,
    error_events: AtomicU64,
    audit_dropped: AtomicU64,
    audit_refused: AtomicU64,
    error_dropped: AtomicU64,
    scheduled_rotations: AtomicU64,
    scheduled_rotation_failures: AtomicU64,
    keys_purged: AtomicU64,
    key_purges_failed: AtomicU64,
    /// Per-route histograms, indexed by [`Endpoint`]; no lock on the
    /// request path.
    routes: [Histogram; MAX_ROUTES],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Figures the server adds to an extended scrape.
#[derive(Debug, Default, Clone, Copy)]
pub struct CacheFigures {
    pub hits: u64,
    pub misses: u64,
    pub store_reads: u64,
    pub store_errors: u64,
    pub keys: u64,
}

impl Metrics {
    /// Empty metrics; uptime counts from now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            by_code: (0..600).map(|_| AtomicU64::new(0)).collect(),
            active: AtomicI64::new(0),
            response_time: Histogram::default(),
            audit_events: AtomicU64::new(0),
            error_events: AtomicU64::new(0),
            audit_dropped: AtomicU64::new(0),
            audit_refused: AtomicU64::new(0),
            error_dropped: AtomicU64::new(0),
            scheduled_rotations: AtomicU64::new(0),
            scheduled_rotation_failures: AtomicU64::new(0),
            keys_purged: AtomicU64::new(0),
            key_purges_failed: AtomicU64::new(0),
            routes: std::array::from_fn(|_| Histogram::default()),
        }
    }

    /// A request to a counted route started; [`ActiveGuard::finish`]
    /// records it with its status.
    pub fn start(&self) -> ActiveGuard<'_> {
        self.active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard {
            metrics: self,
            start: Instant::now(),
        }
    }

    fn finish(&self, status: u16, elapsed: Duration, endpoint: Endpoint) {
        if let Some(c) = self.by_code.get(status as usize) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.response_time.observe(elapsed);
        self.routes[endpoint as usize].observe(elapsed);
    }

    /// `n` audit events written: to stdout or the audit file, or, when
    /// those are off, to `/v1/log/audit` subscribers. An event counts once
    /// however many targets it reaches.
    pub fn audit_events(&self, n: u64) {
        self.audit_events.fetch_add(n, Ordering::Relaxed);
    }

    /// `n` error-log events written to stderr (every event also reaches
    /// the `/v1/log/error` subscribers).
    pub fn error_events(&self, n: u64) {
        self.error_events.fetch_add(n, Ordering::Relaxed);
    }

    /// An audit line lost: the audit queue had no room for it.
    pub fn audit_dropped(&self) {
        self.audit_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// An API call refused because its audit line could not be queued.
    pub fn audit_refused(&self) {
        self.audit_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// An error-log line lost: the error-log queue had no room for it.
    pub fn error_dropped(&self) {
        self.error_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The rotation schedule created a key version.
    pub fn scheduled_rotation(&self) {
        self.scheduled_rotations.fetch_add(1, Ordering::Relaxed);
    }

    /// The rotation schedule failed to check or rotate a key, or a check
    /// of all keys was cut short by the key store.
    pub fn scheduled_rotation_failure(&self) {
        self.scheduled_rotation_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The purge removed a key whose deletion window had passed.
    pub fn key_purged(&self) {
        self.keys_purged.fetch_add(1, Ordering::Relaxed);
    }

    /// The purge failed to remove a key that was due, or a whole pass
    /// failed in the key store.
    pub fn key_purge_failed(&self) {
        self.key_purges_failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Seconds since start.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// The text exposition (format 0.0.4).
    pub fn render(&self, extended: Option<CacheFigures>) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP kes_http_request_active Number of active requests that are not finished, yet."
        );
        let _ = writeln!(out, "# TYPE kes_http_request_active gauge");
        let _ = writeln!(
            out,
            "kes_http_request_active {}",
            self.active.load(Ordering::Relaxed)
        );
        let families = [
            (
                "kes_http_request_error",
                "Number of request that failed due to some error. (HTTP 4xx status code)",
                400..500,
            ),
            (
                "kes_http_request_failure",
                "Number of request that failed due to some internal error. (HTTP 5xx status code)",
                500..600,
            ),
            (
                "kes_http_request_success",
                "Number of requests that have been served successfully.",
                200..300,
            ),
        ];
        for (name, help, range) in families {
            let samples: Vec<(usize, u64)> = range
                .clone()
                .map(|c| (c, self.by_code[c].load(Ordering::Relaxed)))
                .filter(|(_, n)| *n > 0)
                .collect();
            // Families without samples are not written, as Go's registry
            // does for vectors with no children.
            if samples.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            for (code, n) in samples {
                let _ = writeln!(out, "{name}{{code=\"{code}\"}} {}", go_float(n as f64));
            }
        }
        let _ = writeln!(
            out,
            "# HELP kes_http_response_time Histogram of request response times spawning from 10ms to 10s."
        );
        let _ = writeln!(out, "# TYPE kes_http_response_time histogram");
        self.response_time
            .write(&mut out, "kes_http_response_time", "");
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", go_float(v as f64));
        };
        counter(
            "kes_log_audit_events",
            "Number of audit log events written to the audit log targets.",
            self.audit_events.load(Ordering::Relaxed),
        );
        counter(
            "kes_log_error_events",
            "Number of error log events written to the error log targets.",
            self.error_events.load(Ordering::Relaxed),
        );
        let sys = crate::lifecycle::sysinfo::read();
        let mut gauge = |name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {}", go_float(v));
        };
        gauge(
            "kes_system_mem_heap_objects",
            "The number of objects that are currently allocated on the heap memory.",
            sys.heap_objects as f64,
        );
        gauge(
            "kes_system_mem_heap_used",
            "The number of bytes that are currently allocated on the heap memory.",
            sys.heap_used as f64,
        );
        gauge(
            "kes_system_mem_stack_used",
            "The bytes of stack memory obtained from the OS.",
            sys.stack_used as f64,
        );
        gauge(
            "kes_system_num_cpu",
            "The number of logical CPUs available on the system. It may be larger than the number of usable CPUs.",
            sys.num_cpu as f64,
        );
        gauge(
            "kes_system_num_cpu_used",
            "The number of logical CPUs usable by the server. It may be smaller than the number of available CPUs.",
            sys.num_cpu_used as f64,
        );
        gauge(
            "kes_system_num_threads",
            "The number of concurrent co-routines/threads that currently exists.",
            sys.threads as f64,
        );
        gauge(
            "kes_system_up_time",
            "The time the server has been up and running in seconds.",
            self.uptime().as_secs_f64(),
        );
        if let Some(cache) = extended {
            self.render_extended(&mut out, cache);
        }
        out
    }

    fn render_extended(&self, out: &mut String, cache: CacheFigures) {
        let _ = writeln!(
            out,
            "# HELP kes_http_route_response_time Response times per API route."
        );
        let _ = writeln!(out, "# TYPE kes_http_route_response_time histogram");
        // Only routes that were asked for, in the order of the endpoints.
        for (endpoint, h) in Endpoint::ALL.iter().zip(&self.routes) {
            if h.count.load(Ordering::Relaxed) > 0 {
                h.write(
                    out,
                    "kes_http_route_response_time",
                    &format!("route=\"{}\"", endpoint.path()),
                );
            }
        }
        let figures = [
            (
                "kes_log_audit_refused",
                "API calls refused with 503 because the audit log could not keep up.",
                self.audit_refused.load(Ordering::Relaxed),
                "counter",
            ),
            (
                "kes_log_audit_dropped",
                "Audit log lines not written because the audit log could not keep up (probes and refused calls).",
                self.audit_dropped.load(Ordering::Relaxed),
                "counter",
            ),
            (
                "kes_log_error_dropped",
                "Error log lines not written because stderr could not keep up.",
                self.error_dropped.load(Ordering::Relaxed),
                "counter",
            ),
            (
                "kes_key_rotations_scheduled",
                "Key versions created by the rotation schedule (lifecycle.rotate).",
                self.scheduled_rotations.load(Ordering::Relaxed),
                "counter",
            ),
            (
                "kes_key_rotations_scheduled_failed",
                "Scheduled rotations that failed, and checks cut short because the key store failed; each is tried again at the next check.",
                self.scheduled_rotation_failures.load(Ordering::Relaxed),
                "counter",
            ),
            (
                "kes_keys_purged",
                "Keys purged after their deletion window (lifecycle.deletion_window).",
                self.keys_purged.load(Ordering::Relaxed),
                "counter",
            ),
            (
                "kes_key_purges_failed",
                "Purges of keys that failed, and purge passes cut short because the key store failed; each is tried again at the next pass.",
                self.key_purges_failed.load(Ordering::Relaxed),
                "counter",
            ),
            (
                "kes_keycache_hits",
                "Key lookups served from the cache.",
                cache.hits,
                "counter",
            ),
            (
                "kes_keycache_misses",
                "Key lookups that went to the key store.",
                cache.misses,
                "counter",
            ),
            (
                "kes_keycache_keys",
                "Keys currently cached.",
                cache.keys,
                "gauge",
            ),
            (
                "kes_keystore_reads",
                "Key reads from the key store.",
                cache.store_reads,
                "counter",
            ),
            (
                "kes_keystore_errors",
                "Failed key-store operations.",
                cache.store_errors,
                "counter",
            ),
        ];
        for (name, help, v, kind) in figures {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {v}");
        }
    }
}

/// A counted request in flight (`kes_http_request_active`) until dropped;
/// [`ActiveGuard::finish`] records its status and response time.
pub struct ActiveGuard<'a> {
    metrics: &'a Metrics,
    start: Instant,
}

impl ActiveGuard<'_> {
    /// Records the response status and time of the request to `endpoint`.
    pub fn finish(self, status: u16, endpoint: Endpoint) {
        self.metrics.finish(status, self.start.elapsed(), endpoint);
        // Drop decrements `active`.
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.metrics.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Formats a float as Go's `strconv.FormatFloat(f, 'g', -1, 64)`, which
/// the Prometheus Go client uses for every sample value: the shortest
/// round-trip digits, in exponent form (`3.563376e+06`) when the decimal
/// exponent is below -4 or at least 6.
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return "0".into();
    }
    let sci = format!("{f:e}"); // shortest round-trip digits, e.g. "3.563376e6"
    let (mantissa, exp) = sci.split_once('e').expect("exponent form");
    let exp: i32 = exp.parse().expect("integer exponent");
    if !(-4..6).contains(&exp) {
        return format!(
            "{mantissa}e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        );
    }
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_without_total_suffix() {
        let m = Metrics::new();
        m.start().finish(200, Endpoint::KeyCreate);
        m.start().finish(404, Endpoint::KeyDescribe);
        m.start().finish(400, Endpoint::KeyCreate);
        let text = m.render(None);
        assert!(text.contains("kes_http_request_success{code=\"200\"} 1\n"));
        assert!(text.contains("kes_http_request_error{code=\"404\"} 1\n"));
        assert!(text.contains("kes_http_request_error{code=\"400\"} 1\n"));
        assert!(!text.contains("kes_http_request_failure"));
        assert!(text.contains("kes_http_response_time_count 3\n"));
        assert!(text.contains("kes_http_request_active 0\n"));
        assert!(!text.contains("_total"));
        assert!(!text.contains("kes_http_route_response_time"));
        let ext = m.render(Some(CacheFigures::default()));
        assert!(ext.contains("kes_http_route_response_time_count{route=\"/v1/key/create/\"} 2\n"));
        // The schedule's counters: one unlabeled sample each, extended
        // scrapes only.
        assert!(!text.contains("kes_key_rotations_scheduled"));
        m.scheduled_rotation();
        m.scheduled_rotation();
        m.scheduled_rotation_failure();
        let ext = m.render(Some(CacheFigures::default()));
        assert!(ext.contains("\nkes_key_rotations_scheduled 2\n"), "{ext}");
        assert!(
            ext.contains("\nkes_key_rotations_scheduled_failed 1\n"),
            "{ext}"
        );
        assert!(ext.contains("# TYPE kes_key_rotations_scheduled counter\n"));
        assert!(ext.contains("# TYPE kes_key_rotations_scheduled_failed counter\n"));
        // The purge's counters, alike.
        assert!(!text.contains("kes_keys_purged"));
        m.key_purged();
        m.key_purged();
        m.key_purged();
        m.key_purge_failed();
        let ext = m.render(Some(CacheFigures::default()));
        assert!(ext.contains("\nkes_keys_purged 3\n"), "{ext}");
        assert!(ext.contains("\nkes_key_purges_failed 1\n"), "{ext}");
        assert!(ext.contains("# TYPE kes_keys_purged counter\n"));
        assert!(ext.contains("# TYPE kes_key_purges_failed counter\n"));
        assert!(!m.render(None).contains("kes_key_purges_failed"));
    }

    #[test]
    fn go_float_formatting() {
        assert_eq!(go_float(3563376.0), "3.563376e+06");
        assert_eq!(go_float(491520.0), "491520");
        assert_eq!(go_float(0.05), "0.05");
        assert_eq!(go_float(0.0035569760000000003), "0.0035569760000000003");
        assert_eq!(go_float(2.0), "2");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(10.0), "10");
    }
}
