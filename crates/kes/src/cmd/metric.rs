//! `kes metric`: a live view of the server's metrics.

use super::client::{api_error, paint, print_json, print_line, Mode, Remote, BOLD};
use super::status::{format_bytes, format_uptime};
use super::{CliError, CliResult};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Arguments of `kes metric`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// How often to scrape the metrics (e.g. 5s, 500ms, 1m)
    #[arg(long, default_value = "5s", value_parser = kes_core::duration::parse_positive_duration)]
    rate: Duration,
    /// Stop after this many snapshots (default: run until interrupted)
    #[arg(short = 'n', long)]
    count: Option<u64>,
    #[command(flatten)]
    remote: Remote,
}

/// Runs `kes metric`: on a terminal, redraws a summary every `--rate`;
/// otherwise prints one JSON snapshot per line.
pub(crate) fn run(args: Args) -> CliResult {
    if args.rate.is_zero() {
        return Err(CliError::usage("--rate must be greater than 0"));
    }
    let (rt, client, mode) = args.remote.connect()?;
    rt.block_on(async {
        let mut previous: Option<(Instant, Snapshot)> = None;
        let mut n = 0u64;
        loop {
            let text = client.metrics().await.map_err(api_error)?;
            let now = Instant::now();
            let snapshot = Snapshot::parse(&text);
            let rate = previous.as_ref().map(|(t, p)| {
                let secs = now.duration_since(*t).as_secs_f64().max(1e-3);
                (snapshot.requests().saturating_sub(p.requests())) as f64 / secs
            });
            match mode {
                Mode::Terminal { color } => draw(&snapshot, rate, color)?,
                Mode::Json | Mode::Plain => print_json(&snapshot.to_json(rate))?,
            }
            previous = Some((now, snapshot));
            n += 1;
            if args.count.is_some_and(|c| n >= c) {
                return Ok(());
            }
            tokio::time::sleep(args.rate).await;
        }
    })
}

/// The values of one scrape of `/v1/metrics` that `kes metric` shows: the
/// `kes_http_*`, `kes_log_*` and `kes_system_*` families of KES.
#[derive(Debug, Default, Clone, PartialEq)]
struct Snapshot {
    success: f64,
    error: f64,
    failure: f64,
    active: f64,
    audit_events: f64,
    error_events: f64,
    /// Cumulative response-time histogram: upper bound (s) → count.
    latency: BTreeMap<String, f64>,
    latency_count: f64,
    latency_sum: f64,
    gauges: BTreeMap<String, f64>,
}

impl Snapshot {
    /// Reads the Prometheus text format; unknown families are ignored.
    fn parse(text: &str) -> Self {
        let mut s = Snapshot::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, labels, rest) = match line.find('{') {
                Some(i) => match line[i..].find('}') {
                    Some(j) => (&line[..i], &line[i + 1..i + j], &line[i + j + 1..]),
                    None => continue,
                },
                None => match line.split_once(char::is_whitespace) {
                    Some((n, r)) => (n, "", r),
                    None => continue,
                },
            };
            let Some(value) = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            match name {
                "kes_http_request_success" => s.success += value,
                "kes_http_request_error" => s.error += value,
                "kes_http_request_failure" => s.failure += value,
                "kes_http_request_active" => s.active = value,
                "kes_log_audit_events" => s.audit_events = value,
                "kes_log_error_events" => s.error_events = value,
                "kes_http_response_time_bucket" => {
                    if let Some(le) = label(labels, "le") {
                        s.latency.insert(le.to_owned(), value);
                    }
                }
                "kes_http_response_time_count" => s.latency_count = value,
                "kes_http_response_time_sum" => s.latency_sum = value,
                n if n.starts_with("kes_system_") => {
                    s.gauges
                        .insert(n.trim_start_matches("kes_system_").to_owned(), value);
                }
                _ => {}
            }
        }
        s
    }

    fn requests(&self) -> u64 {
        (self.success + self.error + self.failure) as u64
    }

    fn gauge(&self, name: &str) -> u64 {
        self.gauges.get(name).copied().unwrap_or(0.0) as u64
    }

    fn to_json(&self, rate: Option<f64>) -> Json<'_> {
        Json {
            time: time::OffsetDateTime::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            requests_ok: self.success as u64,
            requests_err: self.error as u64,
            requests_fail: self.failure as u64,
            requests_active: self.active as u64,
            audit_events: self.audit_events as u64,
            error_events: self.error_events as u64,
            response_time_count: self.latency_count as u64,
            response_time_sum: self.latency_sum,
            response_time_buckets: &self.latency,
            system: &self.gauges,
            requests_per_second: rate.map(|r| (r * 100.0).round() / 100.0),
        }
    }
}

/// One snapshot as a JSON line, fields in this order.
#[derive(serde::Serialize)]
struct Json<'a> {
    time: String,
    requests_ok: u64,
    requests_err: u64,
    requests_fail: u64,
    requests_active: u64,
    audit_events: u64,
    error_events: u64,
    response_time_count: u64,
    response_time_sum: f64,
    response_time_buckets: &'a BTreeMap<String, f64>,
    system: &'a BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    requests_per_second: Option<f64>,
}

/// The value of label `key` in `a="x",le="0.5"`.
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"'))
    })
}

/// Clears the terminal and draws the snapshot.
fn draw(s: &Snapshot, rate: Option<f64>, color: bool) -> CliResult {
    let mut out = String::from("\x1b[2J\x1b[H");
    let total = s.requests().max(1) as f64;
    let pct = |v: f64| v * 100.0 / total;
    out.push_str(&paint("Requests", BOLD, color));
    out.push('\n');
    out.push_str(&format!(
        "  OK   [2xx]  {:>10}  {:>5.1}%\n  Err  [4xx]  {:>10}  {:>5.1}%\n  Fail [5xx]  {:>10}  {:>5.1}%\n  Active      {:>10}\n",
        s.success as u64, pct(s.success),
        s.error as u64, pct(s.error),
        s.failure as u64, pct(s.failure),
        s.active as u64,
    ));
    if let Some(r) = rate {
        out.push_str(&format!("  Rate        {r:>10.1}/s\n"));
    }
    out.push('\n');
    out.push_str(&paint("Response time", BOLD, color));
    out.push('\n');
    let mut below = 0.0;
    let count = s.latency_count.max(1.0);
    let mut buckets: Vec<(f64, &String, f64)> = s
        .latency
        .iter()
        .filter_map(|(le, v)| le.parse::<f64>().ok().map(|b| (b, le, *v)))
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (_, le, cumulative) in buckets {
        let n = cumulative - below;
        below = cumulative;
        let share = n * 100.0 / count;
        let bar = "█".repeat((share / 2.5).round() as usize);
        let bound = if le == "+Inf" {
            format!("{:>6}", "∞")
        } else {
            format!("{le:>5}s")
        };
        out.push_str(&format!("  ≤ {bound}  {share:>5.1}%  {bar}\n"));
    }
    out.push('\n');
    out.push_str(&paint("System", BOLD, color));
    out.push('\n');
    out.push_str(&format!(
        "  Uptime   {}\n  CPUs     {} ({} used)\n  Threads  {}\n  Heap     {} ({} objects)\n  Stack    {}\n",
        format_uptime(s.gauge("up_time")),
        s.gauge("num_cpu"),
        s.gauge("num_cpu_used"),
        s.gauge("num_threads"),
        format_bytes(s.gauge("mem_heap_used")),
        s.gauge("mem_heap_objects"),
        format_bytes(s.gauge("mem_stack_used")),
    ));
    out.push_str(&format!(
        "\n{}\n",
        paint(
            &format!(
                "Log events: audit {} · error {}",
                s.audit_events as u64, s.error_events as u64
            ),
            BOLD,
            color
        )
    ));
    print_line(out.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text() {
        let text = r#"# HELP kes_http_request_success Number of successful requests.
# TYPE kes_http_request_success counter
kes_http_request_success{code="200"} 40
kes_http_request_success{code="204"} 2
kes_http_request_error{code="404"} 3
kes_http_request_failure{code="502"} 1
kes_http_request_active 2
kes_http_response_time_bucket{le="0.01"} 30
kes_http_response_time_bucket{le="0.05"} 44
kes_http_response_time_bucket{le="+Inf"} 46
kes_http_response_time_sum 0.5
kes_http_response_time_count 46
kes_log_audit_events 7
kes_system_up_time 3661
kes_system_num_cpu 2
other_metric 9
"#;
        let s = Snapshot::parse(text);
        assert_eq!(s.requests(), 46);
        assert_eq!(s.error, 3.0);
        assert_eq!(s.active, 2.0);
        assert_eq!(s.latency.get("0.05"), Some(&44.0));
        assert_eq!(s.latency_count, 46.0);
        assert_eq!(s.audit_events, 7.0);
        assert_eq!(s.gauge("up_time"), 3661);
        assert_eq!(s.gauge("num_cpu"), 2);
        let v = serde_json::to_value(s.to_json(Some(1.234))).unwrap();
        assert_eq!(v["requests_ok"], 42);
        assert_eq!(v["requests_per_second"], 1.23);
    }
}
