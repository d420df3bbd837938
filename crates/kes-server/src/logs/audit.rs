//! The audit log: one entry per API call, with room in the audit queue
//! reserved before the call runs (fail closed), as a `slog` text line or a
//! JSON object, and as JSON to `/v1/log/audit` subscribers.

use super::slog::{cap_field, log_json, slog_time, slog_value};
use super::{Logs, FIELD_CAP, INFO};
use bytes::Bytes;
use kes_core::duration::format_duration;
use kes_core::{api, ApiError};
use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// Audit bytes reserved per call before its path is counted: the fixed
/// parts of a line (time, level, ip, identity, status, duration) and the
/// handler's message without the name it quotes.
pub(super) const AUDIT_LINE_BASE: usize = 384;

/// The answer to an API call that cannot be audited.
pub(crate) const AUDIT_UNAVAILABLE: ApiError = ApiError::from_static(503, "audit log unavailable");

/// Where audit lines go.
pub enum AuditSink {
    /// Standard output.
    Stdout,
    /// An append-only file (see `open_audit_file`).
    File(std::fs::File),
    /// Any writer (tests).
    Writer(Box<dyn Write + Send>),
}

impl AuditSink {
    pub(super) fn into_writer(self) -> Box<dyn Write + Send> {
        match self {
            AuditSink::Stdout => Box::new(std::io::stdout()),
            AuditSink::File(f) => Box::new(f),
            AuditSink::Writer(w) => w,
        }
    }
}

/// Opens `log.audit_file` for appending without ever blocking: a FIFO is
/// opened for reading and writing, so that opening it does not wait for a
/// reader (lines then wait in the pipe until one comes; once the pipe is
/// full, the audit writer stalls and API calls are refused).
pub(crate) fn open_audit_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::FileTypeExt as _;
    let fifo = std::fs::metadata(path)
        .map(|m| m.file_type().is_fifo())
        .unwrap_or(false);
    let mut options = std::fs::OpenOptions::new();
    if fifo {
        options.read(true).write(true);
    } else {
        options.create(true).append(true);
    }
    options.open(path)
}

/// Room in the audit queue held for one API call's audit line from before
/// its handler runs until the line is queued ([`Logs::audit_with`]), so that
/// an admitted call is never left unaudited. Dropping it frees the room.
#[must_use]
pub struct AuditPermit<'a> {
    logs: &'a Logs,
    bytes: usize,
    refused: bool,
}

impl AuditPermit<'_> {
    /// Whether the audit queue had no room: the call must be refused with
    /// [`AUDIT_UNAVAILABLE`] unless its route is a probe, answered anyway.
    pub fn refused(&self) -> bool {
        self.refused
    }

    /// Records the call, its line taking the reserved room
    /// ([`Logs::audit_with`]).
    pub fn audit(self, ev: &AuditEvent) {
        self.logs.audit_with(ev, self);
    }
}

impl Drop for AuditPermit<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.logs.audit_queue.release(self.bytes);
        }
    }
}

/// What the rate-limited "audit log unavailable" report needs.
pub(super) struct Stall {
    pub(super) started: Instant,
    /// Seconds since `started` (plus one) of the last report.
    pub(super) last_report: AtomicU64,
    pub(super) stalled: AtomicBool,
    pub(super) refused: AtomicU64,
}

/// One API call, as the audit log records it.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub time: OffsetDateTime,
    pub method: &'a str,
    pub path: &'a str,
    pub ip: std::net::IpAddr,
    /// The listed TLS proxy the request came through, if any.
    pub proxy_ip: Option<std::net::IpAddr>,
    pub identity: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub message: &'a str,
}

impl Logs {
    /// Whether an API call needs to be turned into an audit event at all.
    pub fn audit_enabled(&self) -> bool {
        self.audit_to_console() || self.audit_tx.receiver_count() > 0
    }

    fn audit_to_console(&self) -> bool {
        self.audit_level.load(Ordering::Relaxed) <= INFO
    }

    /// Whether the audit queue has room for another call's line right now.
    pub fn audit_accepting(&self) -> bool {
        !self.audit_to_console()
            || self.audit_queue.used.load(Ordering::Acquire) + AUDIT_LINE_BASE
                <= self.audit_queue.cap
    }

    /// The audit-queue bytes a call to `path` reserves for its line: zero
    /// when audit lines are not written (nothing to hold room for).
    pub fn audit_room(&self, path: &str) -> usize {
        if self.audit_to_console() {
            audit_reservation(path)
        } else {
            0
        }
    }

    /// Counts a call refused because its caller (or its connection) holds
    /// its whole share of the audit queue (`kes_log_audit_refused`, as a
    /// call refused for a full queue: both were answered 503 `audit log
    /// unavailable`). The audit writer is fine, so nothing is reported as
    /// stalled.
    pub fn note_caller_refused(&self) {
        self.stall.refused.fetch_add(1, Ordering::Relaxed);
        self.metrics.audit_refused();
    }

    /// Reserves room for the audit line of a call to `path`, before the
    /// call runs. A refused permit means the audit writer has fallen
    /// behind: the call must be answered `AUDIT_UNAVAILABLE` unless it is
    /// `answered` anyway (a probe, the route's attribute); this is reported
    /// in the error log at most once a second.
    pub fn reserve_audit(&self, path: &str, answered: bool) -> AuditPermit<'_> {
        if !self.audit_to_console() {
            return AuditPermit {
                logs: self,
                bytes: 0,
                refused: false,
            };
        }
        let bytes = audit_reservation(path);
        if self.audit_queue.charge(bytes) {
            return AuditPermit {
                logs: self,
                bytes,
                refused: false,
            };
        }
        self.report_stall(!answered);
        AuditPermit {
            logs: self,
            bytes: 0,
            refused: true,
        }
    }

    /// Notes that the audit queue is full (`refused_call`: and a call was
    /// refused for it) and says so in the error log at most once a second.
    fn report_stall(&self, refused_call: bool) {
        let s = &self.stall;
        if refused_call {
            s.refused.fetch_add(1, Ordering::Relaxed);
            self.metrics.audit_refused();
        }
        s.stalled.store(true, Ordering::Release);
        let now = s.started.elapsed().as_secs() + 1;
        let last = s.last_report.load(Ordering::Relaxed);
        if now > last
            && s.last_report
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            tracing::error!(
                refused = s.refused.load(Ordering::Relaxed),
                queued_bytes = self.audit_queue.used.load(Ordering::Relaxed),
                "audit log unavailable: the audit log is not written as fast as API calls arrive; calls are refused"
            );
        }
    }

    /// Records one API call whose audit line has no reservation.
    pub fn audit(&self, ev: &AuditEvent) {
        self.audit_with(
            ev,
            AuditPermit {
                logs: self,
                bytes: 0,
                refused: false,
            },
        );
    }

    /// Records one API call, its line taking the room `permit` reserved.
    /// Never waits: a line that fits neither its reservation nor the room
    /// left is dropped and counted (`kes_log_audit_dropped`).
    pub fn audit_with(&self, ev: &AuditEvent, mut permit: AuditPermit<'_>) {
        let to_console = self.audit_to_console();
        let to_stream = self.audit_tx.receiver_count() > 0;
        if !to_console && !to_stream {
            return;
        }
        let json_mode = self.json.load(Ordering::Relaxed);
        let json = (to_stream || json_mode).then(|| audit_json_line(ev));
        if to_console {
            let mut line = if json_mode {
                json.clone().unwrap_or_default()
            } else {
                audit_text_line(ev)
            };
            line.push('\n');
            let reserved = std::mem::take(&mut permit.bytes);
            if line.len() <= reserved {
                self.audit_queue.release(reserved - line.len());
                self.audit_queue.send_charged(line);
            } else if self.audit_queue.charge(line.len() - reserved) {
                self.audit_queue.send_charged(line);
            } else {
                self.audit_queue.release(reserved);
                self.audit_queue.dropped();
                self.report_stall(false);
            }
        }
        if let (true, Some(mut json)) = (to_stream, json) {
            json.push('\n');
            // Counted here only when no console line counts it.
            if self.audit_tx.send(Bytes::from(json)).is_ok() && !to_console {
                self.metrics.audit_events(1);
            }
        }
    }
}

/// The bytes to reserve for the audit line of a call to `path`: the path
/// appears in the line once, the name a handler's message quotes is part
/// of it, and escaping at most triples either.
pub(super) fn audit_reservation(path: &str) -> usize {
    AUDIT_LINE_BASE + 2 * 3 * path.len().min(FIELD_CAP + 32)
}

/// The audit event as the JSON object of `log.format: json` and the
/// `/v1/log/audit` stream, without newline.
pub(super) fn audit_json_line(ev: &AuditEvent) -> String {
    let ip = ev.ip.to_string();
    let proxy_ip = ev.proxy_ip.map(|p| p.to_string()).unwrap_or_default();
    let doc = api::AuditEvent {
        time: ev.time,
        request: api::AuditRequest {
            ip: ip.as_str(),
            proxy_ip: proxy_ip.as_str(),
            path: &cap_field(ev.path),
            identity: &cap_field(ev.identity),
            method: &cap_field(ev.method),
        },
        response: api::AuditResponse {
            code: ev.status,
            time: ev.duration.as_millis() as u64,
        },
    };
    log_json(&doc)
}

/// ` req.proxy_ip=<addr>` when the request came through a TLS proxy.
struct ProxyIp(Option<std::net::IpAddr>);

impl std::fmt::Display for ProxyIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => write!(f, " req.proxy_ip={ip}"),
            None => Ok(()),
        }
    }
}

/// The audit event as a `slog` text line, without newline.
pub(super) fn audit_text_line(ev: &AuditEvent) -> String {
    let mut l = String::with_capacity(320);
    let _ = write!(
        l,
        "time={} level=INFO msg={} req.method={} req.path={} req.ip={}{} req.identity={} res.code={} res.time={}",
        slog_time(ev.time),
        slog_value(&cap_field(ev.message)),
        slog_value(&cap_field(ev.method)),
        slog_value(&cap_field(ev.path)),
        ev.ip,
        ProxyIp(ev.proxy_ip),
        slog_value(&cap_field(ev.identity)),
        ev.status,
        format_duration(ev.duration)
    );
    l
}
