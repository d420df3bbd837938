//! The load run: workers, timing, latency histograms and the report.

use crate::client::{Conn, Connector};
use crate::procstat::{self, Usage};
use crate::workload::{snippet, workload_name, Plan};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When a run ends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop {
    After(Duration),
    Requests(u64),
}

pub(crate) struct RunOptions {
    pub connections: usize,
    pub stop: Stop,
    pub new_conn: bool,
    pub resume: bool,
    pub http2: bool,
    pub pid: Option<u32>,
    pub timeout: Duration,
}

#[derive(Debug, Serialize)]
pub(crate) struct Latency {
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

#[derive(Debug, Serialize)]
pub(crate) struct Report {
    pub target: crate::workload::Target,
    pub workload: &'static str,
    pub mode: &'static str,
    pub http: &'static str,
    pub resumption: bool,
    pub connections: usize,
    pub requests: u64,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub duration_seconds: f64,
    pub requests_per_second: f64,
    /// Microseconds, successful requests only.
    pub latency_us: Latency,
    /// New-connection mode: handshakes that resumed a TLS session.
    pub handshakes: u64,
    pub resumed_handshakes: u64,
    pub client_cpu_seconds: f64,
    pub server: Option<Usage>,
}

struct Server {
    plan: Plan,
    connector: Connector,
    next: AtomicU64,
    stop: Stop,
    new_conn: bool,
    timeout: Duration,
    /// Every worker is connected.
    ready: tokio::sync::Barrier,
    /// The clock has started.
    go: tokio::sync::Barrier,
    deadline: std::sync::OnceLock<Instant>,
}

#[derive(Default)]
struct WorkerResult {
    hist: Option<Histogram<u64>>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    handshakes: u64,
    resumed: u64,
}

impl WorkerResult {
    fn error(&mut self, kind: String) {
        // Bound the number of distinct kinds so a flood of different
        // messages cannot grow the map without limit.
        if self.errors.len() < 32 || self.errors.contains_key(&kind) {
            *self.errors.entry(kind).or_default() += 1;
        } else {
            *self.errors.entry("other".into()).or_default() += 1;
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 10 minutes, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub(crate) async fn run(
    plan: Plan,
    connector: Connector,
    opts: RunOptions,
) -> Result<Report, String> {
    if opts.connections == 0 {
        return Err("the number of connections must be at least 1".into());
    }
    let target = plan.target;
    let workload = workload_name(plan.workload);
    let shared = Arc::new(Server {
        plan,
        connector,
        next: AtomicU64::new(0),
        stop: opts.stop,
        new_conn: opts.new_conn,
        timeout: opts.timeout,
        ready: tokio::sync::Barrier::new(opts.connections + 1),
        go: tokio::sync::Barrier::new(opts.connections + 1),
        deadline: std::sync::OnceLock::new(),
    });
    let mut handles = Vec::with_capacity(opts.connections);
    for _ in 0..opts.connections {
        let shared = shared.clone();
        handles.push(tokio::spawn(worker(shared)));
    }
    // Every keep-alive connection is open before the clock starts.
    shared.ready.wait().await;
    let ticks = procstat::clock_ticks();
    let server_before = match opts.pid {
        Some(pid) => {
            let reset = procstat::reset_peak(pid);
            Some((pid, procstat::sample(&pid.to_string())?, reset))
        }
        None => None,
    };
    let client_before = procstat::sample("self")?;
    let started = Instant::now();
    if let Stop::After(d) = opts.stop {
        let _ = shared.deadline.set(started + d);
    }
    shared.go.wait().await;
    let mut total = WorkerResult {
        hist: Some(new_histogram()),
        ..Default::default()
    };
    for h in handles {
        let r = h.await.map_err(|e| format!("worker failed: {e}"))??;
        if let (Some(t), Some(h)) = (total.hist.as_mut(), r.hist.as_ref()) {
            t.add(h).map_err(|e| format!("merging histograms: {e}"))?;
        }
        total.ok += r.ok;
        total.handshakes += r.handshakes;
        total.resumed += r.resumed;
        for (k, v) in r.errors {
            *total.errors.entry(k).or_default() += v;
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let client_after = procstat::sample("self")?;
    let server = match server_before {
        Some((pid, before, reset)) => {
            let after = procstat::sample(&pid.to_string())?;
            Some(procstat::usage(pid, before, after, wall, ticks, reset))
        }
        None => None,
    };
    // After the measurement, so that it costs the figures nothing.
    shared.plan.remove_churn_keys(&shared.connector).await?;
    let hist = total.hist.unwrap_or_else(new_histogram);
    let errors: u64 = total.errors.values().sum();
    Ok(Report {
        target,
        workload,
        mode: if opts.new_conn {
            "new-connection"
        } else {
            "keep-alive"
        },
        http: if opts.http2 { "h2" } else { "http/1.1" },
        resumption: opts.resume,
        connections: opts.connections,
        requests: total.ok + errors,
        errors,
        error_kinds: total.errors,
        duration_seconds: wall,
        requests_per_second: if wall > 0.0 {
            total.ok as f64 / wall
        } else {
            0.0
        },
        latency_us: Latency {
            mean: hist.mean(),
            p50: hist.value_at_quantile(0.50),
            p90: hist.value_at_quantile(0.90),
            p99: hist.value_at_quantile(0.99),
            p999: hist.value_at_quantile(0.999),
            max: hist.max(),
        },
        handshakes: total.handshakes,
        resumed_handshakes: total.resumed,
        client_cpu_seconds: client_after
            .cpu_ticks
            .saturating_sub(client_before.cpu_ticks) as f64
            / ticks as f64,
        server,
    })
}

impl Server {
    /// The next request number, or `None` when the run is over.
    fn next(&self) -> Option<u64> {
        match self.stop {
            Stop::Requests(n) => {
                let i = self.next.fetch_add(1, Ordering::Relaxed);
                (i < n).then_some(i)
            }
            Stop::After(_) => {
                let deadline = self.deadline.get()?;
                (Instant::now() < *deadline).then(|| self.next.fetch_add(1, Ordering::Relaxed))
            }
        }
    }
}

async fn worker(shared: Arc<Server>) -> Result<WorkerResult, String> {
    let mut result = WorkerResult {
        hist: Some(new_histogram()),
        ..Default::default()
    };
    let mut conn: Option<Conn> = None;
    if !shared.new_conn {
        let opened = shared.connector.connect().await;
        // The barriers must be passed even on failure, or the run hangs.
        shared.ready.wait().await;
        shared.go.wait().await;
        conn = Some(
            opened
                .map_err(|e| format!("cannot open a connection: {e}"))?
                .0,
        );
    } else {
        shared.ready.wait().await;
        shared.go.wait().await;
    }
    while let Some(i) = shared.next() {
        let (req, expected) = shared.plan.request(&shared.connector, i)?;
        let began = Instant::now();
        let outcome = tokio::time::timeout(shared.timeout, async {
            if shared.new_conn {
                let (mut c, resumed) = shared.connector.connect().await?;
                let reply = c.send(req).await;
                Ok((reply?, Some(resumed)))
            } else {
                let c = match conn.as_mut() {
                    Some(c) => c,
                    None => {
                        let (c, _) = shared.connector.connect().await?;
                        conn.insert(c)
                    }
                };
                Ok((c.send(req).await?, None))
            }
        })
        .await;
        let elapsed = began.elapsed().as_micros().max(1) as u64;
        match outcome {
            Ok(Ok((reply, resumed))) => {
                if let Some(resumed) = resumed {
                    result.handshakes += 1;
                    result.resumed += u64::from(resumed);
                }
                if reply.status == expected || shared.plan.tolerated(i, reply.status) {
                    result.ok += 1;
                    if let Some(h) = result.hist.as_mut() {
                        h.saturating_record(elapsed);
                    }
                } else {
                    result.error(format!(
                        "{} {}",
                        reply.status.as_u16(),
                        snippet(&reply.body)
                    ));
                }
            }
            Ok(Err(e)) => {
                result.error(e);
                conn = None;
            }
            Err(_) => {
                result.error(format!("timeout after {:?}", shared.timeout));
                conn = None;
            }
        }
    }
    Ok(result)
}

/// The human-readable report.
pub(crate) fn render(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:?} {} · {} {} · {} connections{}",
        r.target,
        r.workload,
        r.mode,
        r.http,
        r.connections,
        if r.mode == "new-connection" {
            if r.resumption {
                " · TLS resumption on"
            } else {
                " · TLS resumption off"
            }
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "  requests   {} in {:.2} s, {} errors",
        r.requests, r.duration_seconds, r.errors
    );
    let _ = writeln!(s, "  throughput {:.1} requests/s", r.requests_per_second);
    let l = &r.latency_us;
    let _ = writeln!(
        s,
        "  latency    p50 {} µs · p90 {} µs · p99 {} µs · p99.9 {} µs · max {} µs",
        l.p50, l.p90, l.p99, l.p999, l.max
    );
    if r.handshakes > 0 {
        let _ = writeln!(
            s,
            "  handshakes {} ({} resumed)",
            r.handshakes, r.resumed_handshakes
        );
    }
    let _ = writeln!(s, "  client CPU {:.2} s", r.client_cpu_seconds);
    if let Some(u) = &r.server {
        let _ = writeln!(
            s,
            "  server     pid {}: CPU {:.2} s ({:.0} % of one core), RSS {} → {} KiB, peak {} KiB{}",
            u.pid,
            u.cpu_seconds,
            u.cpu_percent,
            u.rss_before_kib,
            u.rss_after_kib,
            u.peak_rss_kib,
            if u.peak_reset { "" } else { " (since start)" }
        );
    }
    for (kind, n) in &r.error_kinds {
        let _ = writeln!(s, "  error ×{n}: {kind}");
    }
    s
}
