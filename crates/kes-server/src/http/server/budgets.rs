//! What one caller, and one connection, may hold of the room in the audit
//! queue that every call needs (issue 25 A.1).
//!
//! A call takes room for its audit line just before its handler runs (or
//! just before it is answered without one) and gives it back once the line
//! is queued, so a client that announces a body and never sends it holds
//! nothing. What a caller's calls hold while their handlers run is capped
//! too: a caller with many slow calls in flight is refused with 503 `audit
//! log unavailable` once its share is used up, while every other caller
//! keeps its own. docs/security.md ("Budgets per identity and per
//! connection") lists the shares.

use super::*;
use crate::logs::AUDIT_QUEUE_BYTES;

/// Audit-queue bytes the calls of one caller may hold at once: an eighth
/// of the queue, so that it takes eight callers that all have slow calls in
/// flight to fill it, and a single one never can. An eighth is 512 KiB:
/// ~980 concurrent calls with short key names, 78 with the longest paths
/// the audit log records in full, far beyond what a client needs while
/// handlers answer in milliseconds.
pub(super) const AUDIT_SHARE_PER_CALLER: usize = AUDIT_QUEUE_BYTES / 8;

/// Audit-queue bytes the calls of one connection may hold at once: a
/// thirty-second of the queue (128 KiB), enough for all 100 HTTP/2 streams
/// of a connection with key names up to ~200 bytes, and it keeps callers
/// that share a budget (strangers from one address) from taking it with a
/// single connection.
pub(super) const AUDIT_SHARE_PER_CONNECTION: usize = AUDIT_QUEUE_BYTES / 32;

/// Whom the audit room of a call is charged to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Caller {
    /// The admin or an identity with a policy: every connection of the
    /// identity shares one budget.
    Identity(Identity),
    /// A caller the server does not know (no certificate, or an identity
    /// without a policy) shares the budget of its source address (per /64
    /// for IPv6): anyone can make up identities, not addresses.
    Source(IpAddr),
}

/// The audit room held per caller, process-wide.
pub(super) struct CallerBudgets {
    audit: Mutex<HashMap<Caller, usize>>,
    started: Instant,
    /// Seconds since `started` (plus one) of the last "share used up"
    /// warning: one a second at most.
    last_report: AtomicU64,
}

impl CallerBudgets {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(CallerBudgets {
            audit: Mutex::new(HashMap::new()),
            started: Instant::now(),
            last_report: AtomicU64::new(0),
        })
    }

    fn charge(&self, caller: &Caller, n: usize) -> bool {
        let mut held = lock(&self.audit);
        let used = held.get(caller).copied().unwrap_or(0);
        if used + n > AUDIT_SHARE_PER_CALLER {
            return false;
        }
        held.insert(caller.clone(), used + n);
        true
    }

    fn release(&self, caller: &Caller, n: usize) {
        let mut held = lock(&self.audit);
        if let Some(used) = held.get_mut(caller) {
            *used = used.saturating_sub(n);
            if *used == 0 {
                held.remove(caller);
            }
        }
    }

    /// Says, once a second at most, that a caller was refused for its
    /// share: unlike a full queue, the audit writer is fine.
    fn report(&self, caller: &Caller, per_connection: bool) {
        let now = self.started.elapsed().as_secs() + 1;
        let last = self.last_report.load(Ordering::Relaxed);
        if now > last
            && self
                .last_report
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            let (kind, who) = match caller {
                Caller::Identity(id) => ("identity", id.as_str().to_string()),
                Caller::Source(ip) => ("source address", ip.to_string()),
            };
            let share = if per_connection {
                "connection"
            } else {
                "caller"
            };
            tracing::warn!(
                caller = who,
                kind,
                share,
                "audit log unavailable for one caller: its calls in flight hold their share of the audit queue; its further calls are refused"
            );
        }
    }
}

/// Audit room charged to a caller and its connection; given back when
/// dropped (the line is queued, or the call is gone).
pub(super) struct AuditShare<'a> {
    conn: &'a Conn,
    caller: Caller,
    bytes: usize,
}

impl<'a> AuditShare<'a> {
    /// Charges `bytes` to `caller` and to `conn`; `None` when either
    /// share is used up.
    pub(super) fn take(conn: &'a Conn, caller: Caller, bytes: usize) -> Option<Self> {
        let per_connection = conn
            .audit_held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held + bytes <= AUDIT_SHARE_PER_CONNECTION).then_some(held + bytes)
            })
            .is_err();
        if per_connection {
            conn.budgets.report(&caller, true);
            return None;
        }
        if !conn.budgets.charge(&caller, bytes) {
            conn.audit_held.fetch_sub(bytes, Ordering::AcqRel);
            conn.budgets.report(&caller, false);
            return None;
        }
        Some(AuditShare {
            conn,
            caller,
            bytes,
        })
    }
}

impl Drop for AuditShare<'_> {
    fn drop(&mut self) {
        self.conn.audit_held.fetch_sub(self.bytes, Ordering::AcqRel);
        self.conn.budgets.release(&self.caller, self.bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(budgets: &Arc<CallerBudgets>, peer: &str) -> Conn {
        Conn {
            identity: Err(ApiError::NOT_ALLOWED),
            peer: peer.parse().unwrap(),
            in_flight: AtomicUsize::new(0),
            last_activity: AtomicU64::new(0),
            opened: Instant::now(),
            seen_request: AtomicBool::new(false),
            head_since: AtomicU64::new(0),
            body_budget: Arc::new(Semaphore::new(1)),
            audit_held: AtomicUsize::new(0),
            budgets: budgets.clone(),
            not_after: None,
            expiry_refused: AtomicBool::new(false),
            responses: Mutex::new(Vec::new()),
            next_response: AtomicU64::new(0),
        }
    }

    #[test]
    fn shares_are_capped_per_connection_and_per_caller() {
        let budgets = CallerBudgets::new();
        let line = 6 * 1024;
        let attacker = Caller::Identity(Identity::new("attacker"));
        let victim = Caller::Identity(Identity::new("victim"));

        // One connection: its share, then refused.
        let first = conn(&budgets, "127.0.0.1:1000");
        let conns: Vec<_> = (0..8)
            .map(|i| conn(&budgets, &format!("127.0.0.1:{}", 2000 + i)))
            .collect();
        let mut held = Vec::new();
        while let Some(s) = AuditShare::take(&first, attacker.clone(), line) {
            held.push(s);
        }
        assert_eq!(held.len(), AUDIT_SHARE_PER_CONNECTION / line);

        // More connections of the same caller: the caller's share, then
        // refused on every connection of it.
        for c in &conns {
            while let Some(s) = AuditShare::take(c, attacker.clone(), line) {
                held.push(s);
            }
        }
        assert_eq!(held.len(), AUDIT_SHARE_PER_CALLER / line);

        // Another caller is not affected.
        let other = conn(&budgets, "127.0.0.2:1000");
        let victim_share = AuditShare::take(&other, victim.clone(), line);
        assert!(victim_share.is_some());

        // Shares come back when the lines are queued.
        drop(held);
        assert_eq!(first.audit_held.load(Ordering::Relaxed), 0);
        assert!(lock(&budgets.audit).get(&attacker).is_none());
        assert!(AuditShare::take(&first, attacker, line).is_some());
    }
}
