//! Process figures for `/v1/status` and `/v1/metrics`.
//!
//! The Go KES reports Go runtime statistics (heap, goroutine stacks). The
//! closest honest equivalents of a Rust process come from `/proc/self`:
//! anonymous resident memory for the heap, the main stack size, the number
//! of OS threads. Elsewhere the figures are zero.

/// A snapshot of process figures.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SysInfo {
    /// Anonymous resident memory in bytes (heap and thread stacks).
    pub heap_used: u64,
    /// Not tracked by Rust's allocator; always 0.
    pub heap_objects: u64,
    /// Stack memory in bytes.
    pub stack_used: u64,
    /// Resident set size in bytes.
    pub rss: u64,
    /// OS threads of the process.
    pub threads: u64,
    /// Logical CPUs of the machine.
    pub num_cpu: u64,
    /// Logical CPUs the process may use.
    pub num_cpu_used: u64,
}

/// Reads the current figures.
pub(crate) fn read() -> SysInfo {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    let mut info = SysInfo {
        num_cpu: online_cpus().unwrap_or(cpus),
        num_cpu_used: cpus,
        ..SysInfo::default()
    };
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let kb = || {
                value
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|v| v * 1024)
                    .unwrap_or(0)
            };
            match key {
                "RssAnon" => info.heap_used = kb(),
                "VmStk" => info.stack_used = kb(),
                "VmRSS" => info.rss = kb(),
                "Threads" => info.threads = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    info
}

fn online_cpus() -> Option<u64> {
    // Format: "0-3,5" — count every CPU in every range.
    let s = std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?;
    let mut n = 0;
    for part in s.trim().split(',') {
        match part.split_once('-') {
            Some((a, b)) => n += b.parse::<u64>().ok()? - a.parse::<u64>().ok()? + 1,
            None => {
                part.parse::<u64>().ok()?;
                n += 1;
            }
        }
    }
    Some(n)
}

/// The operating system name as Go spells it (`GOOS`).
pub(crate) fn go_os() -> &'static str {
    match std::env::consts::OS {
        "macos" => "darwin",
        os => os,
    }
}

/// The architecture name as Go spells it (`GOARCH`).
pub(crate) fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        arch => arch,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn linux_figures_are_nonzero() {
        let s = super::read();
        assert!(s.heap_used > 0);
        assert!(s.stack_used > 0);
        assert!(s.threads >= 1);
        assert!(s.num_cpu >= s.num_cpu_used.min(s.num_cpu));
    }
}
