//! `kes status`: is the server up, and how is it doing.

use super::client::{
    api_error, paint, print_json, print_line, print_rows, Mode, Remote, BOLD, GREEN, RED,
};
use super::CliResult;

/// Arguments of `kes status`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Print only whether each server is reachable
    #[arg(short = 's', long)]
    short: bool,
    /// Also list the server's API routes
    #[arg(long)]
    api: bool,
    #[command(flatten)]
    remote: Remote,
}

/// Runs `kes status`: the status of every configured endpoint; fails if
/// none is reachable.
pub(crate) fn run(args: Args) -> CliResult {
    let (rt, client, mode) = args.remote.connect()?;
    rt.block_on(async {
        let mut reachable = 0;
        let mut last_err = None;
        let mut reports = Vec::new();
        for endpoint in client.endpoints() {
            let start = std::time::Instant::now();
            let result = client.status_of(endpoint).await;
            let latency = start.elapsed();
            match result {
                Ok(status) => {
                    reachable += 1;
                    reports.push((endpoint.clone(), Ok((status, latency))));
                }
                Err(e) => {
                    reports.push((endpoint.clone(), Err(super::client::describe(&e))));
                    last_err = Some(e);
                }
            }
        }
        let routes = if args.api && reachable > 0 {
            let mut routes = client.api().await.map_err(api_error)?;
            routes.sort_by(|a, b| a.path.cmp(&b.path));
            Some(routes)
        } else {
            None
        };
        match mode {
            Mode::Json | Mode::Plain => {
                for (endpoint, report) in &reports {
                    match report {
                        Ok((_, latency)) if args.short => print_json(&Short {
                            endpoint,
                            online: true,
                            latency_ms: latency.as_millis() as u64,
                        })?,
                        Ok((status, _)) => print_json(&Full::of(status, endpoint))?,
                        Err(error) => print_json(&Offline {
                            endpoint,
                            online: false,
                            error,
                        })?,
                    }
                }
                if let Some(routes) = &routes {
                    print_json(routes)?;
                }
            }
            Mode::Terminal { color } => {
                for (endpoint, report) in &reports {
                    match report {
                        Ok((s, latency)) => {
                            print_line(&format!(
                                "{} {}  {}",
                                paint("●", GREEN, color),
                                paint(&format!("https://{endpoint}"), BOLD, color),
                                format_latency(*latency)
                            ))?;
                            if args.short {
                                continue;
                            }
                            let mut rows = vec![
                                ("  Version", s.version.clone()),
                                ("  OS/Arch", format!("{}/{}", s.os, s.arch)),
                                ("  Uptime", format_uptime(s.uptime)),
                                ("  CPUs", format!("{} ({} used)", s.num_cpu, s.num_cpu_used)),
                                (
                                    "  Memory",
                                    format!(
                                        "heap {} · stack {}",
                                        format_bytes(s.mem_heap_used),
                                        format_bytes(s.mem_stack_used)
                                    ),
                                ),
                            ];
                            rows.push((
                                "  Key store",
                                if s.keystore_unreachable || s.keystore_unavailable {
                                    paint("unreachable", RED, color)
                                } else {
                                    format!("reachable ({}ms)", s.keystore_latency)
                                },
                            ));
                            print_rows(&rows, color)?;
                        }
                        Err(e) => print_line(&format!(
                            "{} {}  {e}",
                            paint("●", RED, color),
                            paint(&format!("https://{endpoint}"), BOLD, color)
                        ))?,
                    }
                }
                if let Some(routes) = &routes {
                    print_line("")?;
                    print_line(&paint(
                        &format!(
                            "{:<8} {:<30} {:>10} {:>8}",
                            "Method", "API", "Max body", "Timeout"
                        ),
                        BOLD,
                        color,
                    ))?;
                    for r in routes {
                        let timeout = if r.timeout == 0 {
                            "-".to_owned()
                        } else {
                            format!("{}s", r.timeout)
                        };
                        print_line(&format!(
                            "{:<8} {:<30} {:>10} {:>8}",
                            r.method, r.path, r.max_body, timeout
                        ))?;
                    }
                }
            }
        }
        match (reachable, last_err) {
            (0, Some(e)) => Err(api_error(e)),
            _ => Ok(()),
        }
    })
}

fn format_latency(d: std::time::Duration) -> String {
    if d.as_millis() > 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}µs", d.as_micros())
    }
}

/// `3d 4h 5m 6s`, leading zero units left out.
pub(crate) fn format_uptime(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m {s}s"),
        _ => format!("{d}d {h}h {m}m {s}s"),
    }
}

/// Bytes in binary units: `1.5 MiB`.
pub(crate) fn format_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_units() {
        assert_eq!(format_uptime(5), "5s");
        assert_eq!(format_uptime(65), "1m 5s");
        assert_eq!(format_uptime(3600 + 61), "1h 1m 1s");
        assert_eq!(format_uptime(2 * 86400 + 3), "2d 0h 0m 3s");
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(3 << 20), "3.0 MiB");
    }
}

// One JSON line per endpoint, fields in this order.
#[derive(serde::Serialize)]
struct Short<'a> {
    endpoint: &'a str,
    online: bool,
    latency_ms: u64,
}

/// The status of a reachable endpoint: the server's fields in the CLI's
/// own order (the latency always, `keystore_unreachable` first: the wire
/// leaves out a latency of 0 and names the Go SDK's spelling first), then
/// where and whether.
#[derive(serde::Serialize)]
struct Full<'a> {
    version: &'a str,
    os: &'a str,
    arch: &'a str,
    uptime: u64,
    num_cpu: u64,
    num_cpu_used: u64,
    mem_heap_used: u64,
    mem_stack_used: u64,
    keystore_latency: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    keystore_unreachable: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    keystore_unavailable: bool,
    endpoint: &'a str,
    online: bool,
}

impl<'a> Full<'a> {
    fn of(s: &'a kes_client::Status, endpoint: &'a str) -> Self {
        Full {
            version: &s.version,
            os: &s.os,
            arch: &s.arch,
            uptime: s.uptime,
            num_cpu: s.num_cpu,
            num_cpu_used: s.num_cpu_used,
            mem_heap_used: s.mem_heap_used,
            mem_stack_used: s.mem_stack_used,
            keystore_latency: s.keystore_latency,
            keystore_unreachable: s.keystore_unreachable,
            keystore_unavailable: s.keystore_unavailable,
            endpoint,
            online: true,
        }
    }
}

#[derive(serde::Serialize)]
struct Offline<'a> {
    endpoint: &'a str,
    online: bool,
    error: &'a str,
}
