//! How many connections the server and each source address may hold.

use super::*;

/// Limits on what clients can hold. The defaults follow from the file
/// descriptors the process may open; docs/security.md explains each.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Open client connections in total.
    pub max_connections: usize,
    /// Open client connections per source address (per /64 for IPv6).
    pub max_connections_per_ip: usize,
    /// TLS handshakes in progress at once.
    pub max_handshakes: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_streams: u32,
    /// Bytes of request bodies one connection may have in memory at once
    /// (all its HTTP/2 streams together). At least the largest body a
    /// route accepts.
    pub connection_body_bytes: usize,
}

impl Limits {
    /// File descriptors kept for everything but client connections: the
    /// listener, key-store connections, log and key files.
    const RESERVED_FDS: u64 = 128;

    /// Limits for a process that may open `nofile` file descriptors.
    pub fn for_open_files(nofile: u64) -> Self {
        let max_connections = (nofile
            .saturating_sub(Self::RESERVED_FDS)
            .clamp(16, 16 * 1024)) as usize;
        Limits {
            max_connections,
            max_connections_per_ip: (max_connections / 8).max(4),
            max_handshakes: 256.min(max_connections),
            max_streams: 100,
            connection_body_bytes: 4 * 1024 * 1024,
        }
    }

    /// Applies the config's `limits` over the defaults: an unset
    /// per-address limit stays an eighth of the total.
    pub fn with_config(mut self, config: &crate::config::ConnectionLimits) -> Self {
        if let Some(n) = config.connections {
            self.max_connections = n;
            self.max_connections_per_ip = (n / 8).max(4);
            self.max_handshakes = self.max_handshakes.min(n);
        }
        if let Some(n) = config.connections_per_ip {
            self.max_connections_per_ip = n;
        }
        self
    }

    /// Limits from the process's current RLIMIT_NOFILE.
    pub fn from_rlimit() -> Self {
        let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        Self::for_open_files(nofile)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_rlimit()
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit, as the Go runtime does
/// at start, and returns the limit now in force.
pub fn raise_open_file_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(err) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %err, "failed to raise the open file limit");
        }
    }
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// The address a connection counts against: the IP, or the /64 network of
/// an IPv6 address (one host usually owns a whole /64).
pub(super) fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut seg = v6.segments();
                seg[4..].fill(0);
                IpAddr::V6(seg.into())
            }
        },
    }
}

/// Counts open connections in total and per source.
pub(super) struct Admission {
    pub(super) limits: Limits,
    total: AtomicUsize,
    per_source: Mutex<HashMap<IpAddr, usize>>,
    pub(super) handshakes: Arc<Semaphore>,
    /// The audit room each caller's calls hold.
    pub(super) budgets: Arc<CallerBudgets>,
    refused: AtomicU64,
    last_refusal_log: Mutex<Option<Instant>>,
}

/// An admitted connection; gives its place back when dropped.
pub(super) struct Admitted {
    admission: Arc<Admission>,
    /// The source it counts against; `None` until a PROXY header names it.
    source: Option<IpAddr>,
}

impl Admission {
    pub(super) fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Admission {
            handshakes: Arc::new(Semaphore::new(limits.max_handshakes.max(1))),
            limits,
            total: AtomicUsize::new(0),
            per_source: Mutex::new(HashMap::new()),
            budgets: CallerBudgets::new(),
            refused: AtomicU64::new(0),
            last_refusal_log: Mutex::new(None),
        })
    }

    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Admitted> {
        let source = source_key(ip);
        let mut per_source = lock(&self.per_source);
        if self.total.load(Ordering::Relaxed) >= self.limits.max_connections {
            return None;
        }
        let n = per_source.entry(source).or_insert(0);
        if *n >= self.limits.max_connections_per_ip {
            return None;
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Admitted {
            admission: self.clone(),
            source: Some(source),
        })
    }

    /// Admits a connection from a load balancer that speaks the PROXY
    /// protocol: it counts against the total now, and against its client's
    /// address once the header names it ([`Admitted::count_against`]), not
    /// against the balancer's, which all clients share.
    pub(super) fn admit_proxied(self: &Arc<Self>) -> Option<Admitted> {
        let _per_source = lock(&self.per_source);
        if self.total.load(Ordering::Relaxed) >= self.limits.max_connections {
            return None;
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        Some(Admitted {
            admission: self.clone(),
            source: None,
        })
    }

    /// One error-log line per 10 s at most, so that a flood of refused
    /// connections cannot flood the log.
    pub(super) fn note_refusal(&self, ip: IpAddr) {
        let refused = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut last = lock(&self.last_refusal_log);
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::warn!(
                ip = %ip,
                refused,
                max_connections = self.limits.max_connections,
                max_connections_per_ip = self.limits.max_connections_per_ip,
                "http: connection limit reached; refusing connections"
            );
        }
    }
}

impl Admitted {
    /// Counts a proxied connection against its client's address `ip`;
    /// false when that address holds its limit already (the connection is
    /// then closed).
    pub(super) fn count_against(&mut self, ip: IpAddr) -> bool {
        debug_assert!(self.source.is_none());
        let source = source_key(ip);
        let mut per_source = lock(&self.admission.per_source);
        let n = per_source.entry(source).or_insert(0);
        if *n >= self.admission.limits.max_connections_per_ip {
            return false;
        }
        *n += 1;
        self.source = Some(source);
        true
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut per_source = lock(&self.admission.per_source);
        if let Some(source) = self.source {
            if let Some(n) = per_source.get_mut(&source) {
                *n -= 1;
                if *n == 0 {
                    per_source.remove(&source);
                }
            }
        }
        self.admission.total.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_open_file_limit() {
        let small = Limits::for_open_files(256);
        assert_eq!(small.max_connections, 128);
        assert_eq!(small.max_connections_per_ip, 16);
        assert!(small.max_handshakes <= small.max_connections);
        let large = Limits::for_open_files(1 << 20);
        assert_eq!(large.max_connections, 16 * 1024);
        assert_eq!(large.max_connections_per_ip, 2048);
        // Never zero, whatever the limit.
        let tiny = Limits::for_open_files(10);
        assert!(tiny.max_connections >= 16 && tiny.max_connections_per_ip >= 4);
        // Every route's largest body fits in one connection's budget.
        assert!(crate::http::routes::RouteTable::default()
            .routes()
            .iter()
            .all(|r| r.max_body as usize <= large.connection_body_bytes));
    }

    #[test]
    fn config_limits_override_the_defaults() {
        let both = crate::config::ConnectionLimits {
            connections: Some(4096),
            connections_per_ip: Some(1024),
        };
        let limits = Limits::for_open_files(1 << 20).with_config(&both);
        assert_eq!(
            (limits.max_connections, limits.max_connections_per_ip),
            (4096, 1024)
        );
        // Only the total: the per-address limit follows it.
        let only_total = crate::config::ConnectionLimits {
            connections: Some(800),
            connections_per_ip: None,
        };
        let limits = Limits::for_open_files(1 << 20).with_config(&only_total);
        assert_eq!(
            (limits.max_connections, limits.max_connections_per_ip),
            (800, 100)
        );
    }

    #[test]
    fn admission_counts_per_source() {
        let admission = Admission::new(Limits {
            max_connections: 5,
            max_connections_per_ip: 2,
            ..Limits::for_open_files(1024)
        });
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b_same_net: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        let first = admission.admit(a).unwrap();
        let _second = admission.admit(a).unwrap();
        assert!(admission.admit(a).is_none(), "third from one address");
        let _v6 = admission.admit(b).unwrap();
        let _v6_same_64 = admission.admit(b_same_net).unwrap();
        assert!(
            admission.admit(b).is_none(),
            "an IPv6 /64 counts as one source"
        );
        let _c = admission.admit("127.0.0.3".parse().unwrap()).unwrap();
        assert!(
            admission.admit("127.0.0.4".parse().unwrap()).is_none(),
            "total reached"
        );
        drop(first);
        assert!(
            admission.admit(a).is_some(),
            "a closed connection gives its place back"
        );
    }

    #[test]
    fn proxied_connections_count_against_their_clients() {
        let admission = Admission::new(Limits {
            max_connections: 4,
            max_connections_per_ip: 1,
            ..Limits::for_open_files(1024)
        });
        let client: IpAddr = "10.1.2.3".parse().unwrap();
        // Two clients behind one balancer: neither counts against it.
        let mut one = admission.admit_proxied().unwrap();
        assert!(one.count_against(client));
        let mut two = admission.admit_proxied().unwrap();
        assert!(
            !two.count_against(client),
            "the client's own limit still holds"
        );
        assert!(two.count_against("10.1.2.4".parse().unwrap()));
        let _three = admission.admit_proxied().unwrap();
        let _four = admission.admit("127.0.0.1".parse().unwrap()).unwrap();
        assert!(admission.admit_proxied().is_none(), "total reached");
        drop(one);
        assert!(admission.admit(client).is_some(), "place given back");
    }
}
