//! CPU time and memory of a process, from Linux's /proc.

use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sample {
    /// User plus system time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size (VmRSS), KiB.
    pub rss_kib: u64,
    /// Peak resident set size (VmHWM), KiB.
    pub hwm_kib: u64,
}

/// What a process used during a run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Usage {
    pub pid: u32,
    pub cpu_seconds: f64,
    /// CPU time over wall time; 100 is one core busy.
    pub cpu_percent: f64,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    /// VmHWM after the run: the peak during the run when the kernel let us
    /// reset it before (`peak_reset`), else the peak since the process began.
    pub peak_rss_kib: u64,
    pub peak_reset: bool,
}

/// Clock ticks per second for `/proc/<pid>/stat`. Asked of `getconf`
/// because reading it directly needs libc; Linux has used 100 everywhere
/// for a long time, hence the fallback.
pub(crate) fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status` ("self" for this process).
pub(crate) fn sample(pid: &str) -> Result<Sample, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    let cpu_ticks =
        parse_cpu_ticks(&stat).ok_or_else(|| format!("cannot parse /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status: {e}"))?;
    Ok(Sample {
        cpu_ticks,
        rss_kib: status_kib(&status, "VmRSS:").unwrap_or(0),
        hwm_kib: status_kib(&status, "VmHWM:").unwrap_or(0),
    })
}

/// Resets VmHWM to the current RSS (writing 5 to clear_refs), so that the
/// next reading shows the peak of the run rather than of the whole life.
pub(crate) fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// utime + stime: fields 14 and 15, counted after the command name, which
/// is in parentheses and may itself contain spaces and parentheses.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

/// What happened between two samples over `wall` seconds.
pub(crate) fn usage(
    pid: u32,
    before: Sample,
    after: Sample,
    wall: f64,
    ticks: u64,
    peak_reset: bool,
) -> Usage {
    let cpu_seconds = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / ticks as f64;
    Usage {
        pid,
        cpu_seconds,
        cpu_percent: if wall > 0.0 {
            100.0 * cpu_seconds / wall
        } else {
            0.0
        },
        rss_before_kib: before.rss_kib,
        rss_after_kib: after.rss_kib,
        peak_rss_kib: after.hwm_kib,
        peak_reset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let stat =
            "1234 (kes (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 1 1 1";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn truncated_stat_is_rejected() {
        assert_eq!(parse_cpu_ticks("1 (kes) S 1 2"), None);
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn status_fields() {
        let status = "Name:\tkes\nVmHWM:\t   12345 kB\nVmRSS:\t    9876 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(12345));
        assert_eq!(status_kib(status, "VmRSS:"), Some(9876));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let s = sample("self").unwrap();
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib);
    }
}
