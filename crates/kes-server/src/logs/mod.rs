//! The error log and the audit log: what each records, where it goes, and
//! how neither can stall the server.
//!
//! Error log: every `tracing` event of the process (the server's and the key
//! stores') at or above `log.error` is written to stderr as a `slog`-style
//! text line (or a JSON object with `log.format: json`) and sent to
//! `/v1/log/error` subscribers as `{"message":"<text line>"}`.
//!
//! Audit log: one entry for EVERY API call (the Go KES logged only create,
//! import and delete), written to stdout or `log.audit_file` as a text line
//! (or JSON) and sent to `/v1/log/audit` subscribers as the Go KES's JSON
//! object (`time`, `request` with `ip`, `path`, `identity`, `method`, and
//! `response` with `code` and `time` in milliseconds).
//!
//! Every client is assumed hostile, so logging never stalls the server:
//! - No runtime thread writes a log line. Lines go to one writer thread per
//!   log through a queue bounded in bytes; queuing never waits.
//! - The audit log fails closed: an API call runs (or is answered) only
//!   with room in the audit queue reserved for its line
//!   ([`Logs::reserve_audit`]), taken once its body is read; when the audit
//!   writer falls behind, calls are refused with 503 `audit log
//!   unavailable` (probes excepted) instead of going unaudited. The server
//!   also caps the room one caller's calls hold (`server::budgets`).
//! - The error log is a diagnostic: when its queue is full, lines are
//!   dropped, counted, and reported once the writer catches up.
//! - What a client controls in a line (path, method, names in messages) is
//!   cut at [`FIELD_CAP`] bytes, and characters that could break or disguise
//!   a line (controls, U+0085, U+2028/2029, bidi controls, …) are escaped
//!   as Go's `strconv.Quote` escapes them, or as `\uXXXX` in JSON.
//! - `/v1/log/*` subscribers are capped at [`MAX_SUBSCRIBERS`] per log and
//!   [`MAX_SUBSCRIBERS_PER_IDENTITY`] per log and identity, so that one
//!   client allowed to follow a log cannot take every slot; each
//!   reads from one shared ring of capped lines and holds no queue of its
//!   own, so a slow reader costs no memory; it loses events instead.
//!
//! Nothing here ever receives key material: handlers log names, identities,
//! paths and error descriptions only.
//!
//! Where things are: the queues and writer threads: `queue.rs`; the
//! `/v1/log/*` subscribers: `subscribers.rs`; what goes into each log:
//! `audit.rs`, `error.rs`; the line format: `slog.rs`.

mod audit;
mod error;
mod queue;
mod slog;
mod subscribers;

pub use audit::AuditSink;
pub(crate) use audit::{open_audit_file, AuditEvent, AuditPermit, AUDIT_UNAVAILABLE};
pub(crate) use error::flush_process_errors;
pub(crate) use subscribers::Subscription;

use crate::http::metrics::Metrics;
use audit::Stall;
use bytes::Bytes;
use error::dropped_line;
use kes_core::ApiError;
use queue::{Msg, Queue, Writer};
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use subscribers::Followers;
use tokio::sync::{broadcast, watch};

/// slog levels.
pub(crate) const DEBUG: i32 = -4;

/// slog levels.
pub const INFO: i32 = 0;

/// slog levels.
pub(crate) const WARN: i32 = 4;

/// slog levels.
pub const ERROR: i32 = 8;

/// Bytes of audit lines that may wait for the audit writer (stdout or
/// `log.audit_file`), reservations of calls in flight included. When they
/// are used up, API calls are refused.
pub(crate) const AUDIT_QUEUE_BYTES: usize = 4 << 20;

/// Bytes of error-log lines that may wait for stderr; beyond, lines are
/// dropped.
pub(crate) const ERROR_QUEUE_BYTES: usize = 1 << 20;

/// Longest client-controlled value in a log line (path, method, message,
/// identity, error-log field), in bytes before escaping; longer values are
/// cut and marked `...[truncated: <n> bytes]`.
pub(crate) const FIELD_CAP: usize = 1024;

/// Concurrent subscribers of each of `/v1/log/error` and `/v1/log/audit`.
pub(crate) const MAX_SUBSCRIBERS: usize = 32;

/// Concurrent subscribers of one log with the same identity: a quarter of
/// [`MAX_SUBSCRIBERS`], so that at least four clients can follow a log
/// whatever one of them does.
pub(crate) const MAX_SUBSCRIBERS_PER_IDENTITY: usize = MAX_SUBSCRIBERS / 4;

/// Events the `/v1/log/error` ring holds for slow subscribers.
const ERROR_RING: usize = 1024;

/// Events the `/v1/log/audit` ring holds for slow subscribers.
const AUDIT_RING: usize = 4096;

/// The answer to a `/v1/log/*` subscription beyond [`MAX_SUBSCRIBERS`] or
/// [`MAX_SUBSCRIBERS_PER_IDENTITY`].
pub(crate) const TOO_MANY_SUBSCRIBERS: ApiError =
    ApiError::from_static(503, "too many log subscribers");

/// Which log a queue or stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LogKind {
    /// The error log.
    Error,
    /// The audit log.
    Audit,
}

/// The process's logs. One instance per process; levels and the output
/// format can change on reload.
pub struct Logs {
    error_level: AtomicI32,
    audit_level: AtomicI32,
    json: Arc<AtomicBool>,
    audit_queue: Arc<Queue>,
    error_queue: Arc<Queue>,
    /// A new audit sink for the writer thread to switch to.
    audit_next: Arc<Mutex<Option<Box<dyn Write + Send>>>>,
    stall: Arc<Stall>,
    error_tx: broadcast::Sender<Bytes>,
    audit_tx: broadcast::Sender<Bytes>,
    error_subscribers: Arc<AtomicUsize>,
    audit_subscribers: Arc<AtomicUsize>,
    /// Subscriptions per log and identity; an entry is removed when its
    /// count drops to zero, or when a reload revokes the identity's right
    /// to follow the log.
    subscribers_by_identity: Arc<Mutex<HashMap<(LogKind, String), Followers>>>,
    closing: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl Logs {
    /// Logs with the default queue bounds, writing audit lines to stdout and
    /// error lines to stderr, at level INFO in text format until
    /// [`Logs::configure`] says otherwise.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        Self::with_outputs(
            metrics,
            AUDIT_QUEUE_BYTES,
            ERROR_QUEUE_BYTES,
            Box::new(std::io::stdout()),
            Box::new(std::io::stderr()),
        )
    }

    /// Logs with the given queue bounds and outputs.
    pub fn with_outputs(
        metrics: Arc<Metrics>,
        audit_bytes: usize,
        error_bytes: usize,
        audit_out: Box<dyn Write + Send>,
        error_out: Box<dyn Write + Send>,
    ) -> Arc<Self> {
        let json = Arc::new(AtomicBool::new(false));
        let stall = Arc::new(Stall {
            started: Instant::now(),
            last_report: AtomicU64::new(0),
            stalled: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        });
        let audit_next = Arc::new(Mutex::new(None));
        let spawn = |kind: LogKind, cap: usize, out: Box<dyn Write + Send>| {
            let (tx, rx) = mpsc::channel();
            let queue = Arc::new(Queue {
                kind,
                tx,
                used: AtomicUsize::new(0),
                cap,
                unreported_drops: AtomicU64::new(0),
                metrics: metrics.clone(),
            });
            let writer = Writer {
                queue: queue.clone(),
                out,
                next: if kind == LogKind::Audit {
                    audit_next.clone()
                } else {
                    Arc::new(Mutex::new(None))
                },
                dropped_line: match kind {
                    LogKind::Audit => None,
                    LogKind::Error => {
                        let json = json.clone();
                        Some(
                            Box::new(move |n| dropped_line(n, json.load(Ordering::Relaxed)))
                                as Box<dyn Fn(u64) -> String + Send>,
                        )
                    }
                },
                stall: (kind == LogKind::Audit).then(|| stall.clone()),
            };
            let name = match kind {
                LogKind::Audit => "kes-audit",
                LogKind::Error => "kes-error-log",
            };
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || writer.run(rx))
                .expect("spawn a log writer thread");
            queue
        };
        let audit_queue = spawn(LogKind::Audit, audit_bytes, audit_out);
        let error_queue = spawn(LogKind::Error, error_bytes, error_out);
        let (error_tx, _) = broadcast::channel(ERROR_RING);
        let (audit_tx, _) = broadcast::channel(AUDIT_RING);
        Arc::new(Self {
            error_level: AtomicI32::new(INFO),
            audit_level: AtomicI32::new(INFO),
            json,
            audit_queue,
            error_queue,
            audit_next,
            stall,
            error_tx,
            audit_tx,
            error_subscribers: Arc::new(AtomicUsize::new(0)),
            audit_subscribers: Arc::new(AtomicUsize::new(0)),
            subscribers_by_identity: Arc::default(),
            closing: watch::channel(false).0,
            metrics,
        })
    }

    /// Applies (re)loaded settings. Never waits for the writer thread.
    pub fn configure(&self, error_level: i32, audit_level: i32, json: bool, sink: AuditSink) {
        self.error_level.store(error_level, Ordering::Relaxed);
        self.audit_level.store(audit_level, Ordering::Relaxed);
        self.json.store(json, Ordering::Relaxed);
        *self
            .audit_next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(sink.into_writer());
        let _ = self.audit_queue.tx.send(Msg::Wake);
    }

    /// Waits until every line logged so far is written, at most 5 s in
    /// all (a stalled audit file must not keep a stopping server alive).
    pub fn flush(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let waits: Vec<_> = [&self.audit_queue, &self.error_queue]
            .iter()
            .map(|q| {
                let (done_tx, done_rx) = mpsc::channel();
                let _ = q.tx.send(Msg::Flush(done_tx));
                done_rx
            })
            .collect();
        for done in waits {
            let left = deadline.saturating_duration_since(Instant::now());
            let _ = done.recv_timeout(left);
        }
    }
}

#[cfg(test)]
mod tests;
