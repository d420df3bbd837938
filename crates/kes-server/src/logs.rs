//! The error log and the audit log (spec §14.1, §14.2).
//!
//! Error log: every `tracing` event of the process (the server's and the key
//! stores') at or above `log.error` is written to stderr as a `slog`-style
//! text line (or a JSON object with `log.format: json`) and sent to
//! `/v1/log/error` subscribers as `{"message":"<text line>"}`.
//!
//! Audit log: one entry for EVERY API call (the Go KES logged only create,
//! import and delete), written to stdout or `log.audit_file` as a text line
//! (or JSON) and sent to `/v1/log/audit` subscribers as the JSON object of
//! spec §14.2.
//!
//! Every client is assumed hostile, so logging never stalls the server:
//! - No runtime thread writes a log line. Lines go to one writer thread per
//!   log through a queue bounded in bytes; queuing never waits.
//! - The audit log fails closed: an API call is admitted only with room in
//!   the audit queue reserved for its line ([`Logs::reserve_audit`]); when
//!   the audit writer falls behind, calls are refused with 503 `audit log
//!   unavailable` (probes excepted) instead of going unaudited.
//! - The error log is a diagnostic: when its queue is full, lines are
//!   dropped, counted, and reported once the writer catches up.
//! - What a client controls in a line (path, method, names in messages) is
//!   cut at [`FIELD_CAP`] bytes, and characters that could break or disguise
//!   a line (controls, U+0085, U+2028/2029, bidi controls, …) are escaped
//!   as Go's `strconv.Quote` escapes them, or as `\uXXXX` in JSON.
//! - `/v1/log/*` subscribers are capped at [`MAX_SUBSCRIBERS`] per log; each
//!   reads from one shared ring of capped lines and holds no queue of its
//!   own, so a slow reader costs no memory; it loses events instead.
//!
//! Nothing here ever receives key material: handlers log names, identities,
//! paths and error descriptions only.

use crate::metrics::Metrics;
use bytes::Bytes;
use kes_core::duration::format_duration;
use kes_core::timefmt::format_rfc3339_nano;
use kes_core::ApiError;
use serde::Serialize;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

/// slog levels.
pub const DEBUG: i32 = -4;
/// slog levels.
pub const INFO: i32 = 0;
/// slog levels.
pub const WARN: i32 = 4;
/// slog levels.
pub const ERROR: i32 = 8;

/// Bytes of audit lines that may wait for the audit writer (stdout or
/// `log.audit_file`), reservations of calls in flight included. When they
/// are used up, API calls are refused.
pub const AUDIT_QUEUE_BYTES: usize = 4 << 20;
/// Bytes of error-log lines that may wait for stderr; beyond, lines are
/// dropped.
pub const ERROR_QUEUE_BYTES: usize = 1 << 20;
/// Longest client-controlled value in a log line (path, method, message,
/// identity, error-log field), in bytes before escaping; longer values are
/// cut and marked `...[truncated: <n> bytes]`.
pub const FIELD_CAP: usize = 1024;
/// Concurrent subscribers of each of `/v1/log/error` and `/v1/log/audit`.
pub const MAX_SUBSCRIBERS: usize = 32;
/// Events the `/v1/log/error` ring holds for slow subscribers.
const ERROR_RING: usize = 1024;
/// Events the `/v1/log/audit` ring holds for slow subscribers.
const AUDIT_RING: usize = 4096;
/// Audit bytes reserved per call before its path is counted: the fixed
/// parts of a line (time, level, ip, identity, status, duration) and the
/// handler's message without the name it quotes.
const AUDIT_LINE_BASE: usize = 384;
/// A write batch; the writer thread issues one write(2) per batch.
const BATCH_BYTES: usize = 64 * 1024;
/// How long the audit writer waits before retrying a failed write.
const WRITE_RETRY: Duration = Duration::from_millis(100);

/// The answer to an API call that cannot be audited.
pub const AUDIT_UNAVAILABLE: ApiError = ApiError::from_static(503, "audit log unavailable");
/// The answer to a `/v1/log/*` subscription beyond [`MAX_SUBSCRIBERS`].
pub const TOO_MANY_SUBSCRIBERS: ApiError = ApiError::from_static(503, "too many log subscribers");

/// Paths answered even when the audit log is unavailable, so that
/// operators and load balancers see the server's state: `/version`,
/// `/v1/ready`, `/v1/status` and `/v1/metrics`. They read no key and
/// change nothing; their audit lines are written when there is room.
pub fn answered_without_audit(path: &str) -> bool {
    matches!(
        path,
        "/version" | "/v1/ready" | "/v1/status" | "/v1/metrics"
    )
}

/// Where audit lines go.
pub enum AuditSink {
    /// Standard output.
    Stdout,
    /// An append-only file (see [`open_audit_file`]).
    File(std::fs::File),
    /// Any writer (tests).
    Writer(Box<dyn Write + Send>),
}

impl AuditSink {
    fn into_writer(self) -> Box<dyn Write + Send> {
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
pub fn open_audit_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
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

/// Which log a queue or stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// The error log.
    Error,
    /// The audit log.
    Audit,
}

enum Msg {
    /// A line with its newline, charged to the queue by its length.
    Line(String),
    /// Signals once everything queued before is written.
    Flush(mpsc::Sender<()>),
    /// Makes an idle writer look at its sink slot.
    Wake,
}

/// A queue of lines bounded in bytes; enqueueing never waits.
struct Queue {
    kind: LogKind,
    tx: mpsc::Sender<Msg>,
    /// Bytes queued or being written, plus reservations.
    used: AtomicUsize,
    cap: usize,
    /// Lines dropped since the writer last reported drops.
    unreported_drops: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Queue {
    /// Takes `n` bytes of room, if there is that much.
    fn charge(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + n <= self.cap).then_some(used + n)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Queues a line whose length is already charged.
    fn send_charged(&self, line: String) {
        let n = line.len();
        if self.tx.send(Msg::Line(line)).is_err() {
            self.release(n);
        }
    }

    /// Queues a line if there is room; counts it dropped otherwise.
    fn push(&self, line: String) -> bool {
        if self.charge(line.len()) {
            self.send_charged(line);
            true
        } else {
            self.dropped();
            false
        }
    }

    fn dropped(&self) {
        self.unreported_drops.fetch_add(1, Ordering::Relaxed);
        match self.kind {
            LogKind::Audit => self.metrics.audit_dropped(),
            LogKind::Error => self.metrics.error_dropped(),
        }
    }
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
    /// [`AUDIT_UNAVAILABLE`] unless [`answered_without_audit`].
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
struct Stall {
    started: Instant,
    /// Seconds since `started` (plus one) of the last report.
    last_report: AtomicU64,
    stalled: AtomicBool,
    refused: AtomicU64,
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
    closing: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

/// What a writer thread does besides writing.
struct Writer {
    queue: Arc<Queue>,
    out: Box<dyn Write + Send>,
    /// Replaces `out` before the next write when set (audit sink reload).
    next: Arc<Mutex<Option<Box<dyn Write + Send>>>>,
    /// The error log reports its dropped lines with this line.
    dropped_line: Option<Box<dyn Fn(u64) -> String + Send>>,
    stall: Option<Arc<Stall>>,
}

impl Writer {
    fn switch_sink(&mut self) {
        let next = self
            .next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(next) = next {
            let _ = self.out.flush();
            self.out = next;
        }
    }

    /// Writes `data`. The audit log retries a failed write until it
    /// succeeds (its queue then fills and calls are refused: fail closed);
    /// the error log gives the batch up.
    fn write(&mut self, mut data: &[u8]) -> bool {
        let mut reported = false;
        loop {
            self.switch_sink();
            if data.is_empty() {
                let _ = self.out.flush();
                return true;
            }
            let err = match self.out.write(data) {
                Ok(0) => std::io::Error::from(std::io::ErrorKind::WriteZero),
                Ok(n) => {
                    data = &data[n..];
                    continue;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => e,
            };
            if self.queue.kind == LogKind::Error {
                return false;
            }
            if !reported {
                reported = true;
                tracing::error!(error = %err, "audit log: write failed; retrying until it succeeds");
            }
            std::thread::sleep(WRITE_RETRY);
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        use std::sync::mpsc::TryRecvError;
        let mut buf: Vec<u8> = Vec::with_capacity(BATCH_BYTES);
        let mut flushes = Vec::new();
        // Block only while idle. While lines keep coming, write a batch,
        // then pause briefly instead of parking: senders then rarely find
        // the thread asleep, so they rarely pay for a wake-up, and one
        // write(2) carries many lines. An idle server writes each line at
        // once.
        let mut next = rx.recv().ok();
        while let Some(mut msg) = next.take() {
            let mut lines = 0u64;
            let mut charged = 0usize;
            loop {
                match msg {
                    Msg::Line(line) => {
                        buf.extend_from_slice(line.as_bytes());
                        charged += line.len();
                        lines += 1;
                    }
                    Msg::Flush(done) => flushes.push(done),
                    Msg::Wake => {}
                }
                if buf.len() >= BATCH_BYTES {
                    break;
                }
                match rx.try_recv() {
                    Ok(m) => msg = m,
                    Err(_) => break,
                }
            }
            if let Some(dropped_line) = &self.dropped_line {
                let n = self.queue.unreported_drops.swap(0, Ordering::Relaxed);
                if n > 0 {
                    buf.extend_from_slice(dropped_line(n).as_bytes());
                }
            }
            let written = self.write(&buf);
            buf.clear();
            // Released only now: lines being written still hold memory.
            self.queue.release(charged);
            match (written, self.queue.kind) {
                (true, LogKind::Audit) => self.queue.metrics.audit_events(lines),
                (true, LogKind::Error) => self.queue.metrics.error_events(lines),
                (false, _) => {
                    for _ in 0..lines {
                        self.queue.dropped();
                    }
                }
            }
            for done in flushes.drain(..) {
                let _ = done.send(());
            }
            if let Some(stall) = &self.stall {
                let used = self.queue.used.load(Ordering::Acquire);
                if used <= self.queue.cap / 2 && stall.stalled.swap(false, Ordering::AcqRel) {
                    tracing::warn!(
                        refused = stall.refused.load(Ordering::Relaxed),
                        "audit log writable again; API calls are answered"
                    );
                }
            }
            if lines > 1 {
                std::thread::sleep(Duration::from_millis(2));
                match rx.try_recv() {
                    Ok(m) => {
                        next = Some(m);
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                    Err(TryRecvError::Empty) => {}
                }
            }
            next = rx.recv().ok();
        }
        let _ = self.out.flush();
    }
}

/// One API call, as the audit log records it.
#[derive(Debug, Clone)]
pub struct AuditEvent<'a> {
    pub time: OffsetDateTime,
    pub method: &'a str,
    pub path: &'a str,
    pub ip: std::net::IpAddr,
    pub identity: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub message: &'a str,
}

#[derive(Serialize)]
struct AuditJson<'a> {
    time: String,
    request: AuditRequest<'a>,
    response: AuditResponse,
}

#[derive(Serialize)]
struct AuditRequest<'a> {
    ip: std::net::IpAddr,
    path: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    identity: &'a str,
    method: &'a str,
}

#[derive(Serialize)]
struct AuditResponse {
    code: u16,
    /// Milliseconds, as the Go KES sends it on `/v1/log/audit`.
    time: u64,
}

impl Logs {
    /// Logs writing audit lines to stdout and error lines to stderr.
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

    /// Reserves room for the audit line of a call to `path`, before the
    /// call runs. A refused permit means the audit writer has fallen
    /// behind: the call must be answered [`AUDIT_UNAVAILABLE`] (unless
    /// [`answered_without_audit`]); this is reported in the error log at
    /// most once a second.
    pub fn reserve_audit(&self, path: &str) -> AuditPermit<'_> {
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
        self.report_stall(!answered_without_audit(path));
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

    /// A new `/v1/log/error` subscription, unless [`MAX_SUBSCRIBERS`]
    /// already follow the error log.
    pub fn subscribe_errors(&self) -> Result<Subscription, ApiError> {
        self.subscribe(LogKind::Error)
    }

    /// A new `/v1/log/audit` subscription, unless [`MAX_SUBSCRIBERS`]
    /// already follow the audit log.
    pub fn subscribe_audit(&self) -> Result<Subscription, ApiError> {
        self.subscribe(LogKind::Audit)
    }

    fn subscribe(&self, kind: LogKind) -> Result<Subscription, ApiError> {
        let (count, tx) = match kind {
            LogKind::Error => (&self.error_subscribers, &self.error_tx),
            LogKind::Audit => (&self.audit_subscribers, &self.audit_tx),
        };
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_SUBSCRIBERS).then_some(n + 1)
            })
            .map_err(|_| TOO_MANY_SUBSCRIBERS)?;
        Ok(Subscription {
            rx: tx.subscribe(),
            closing: self.closing.subscribe(),
            kind,
            _slot: Slot(count.clone()),
            ended: false,
        })
    }

    /// Ends every `/v1/log/*` stream, now and from now on (server stopping):
    /// subscribers see a clean end of the stream.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
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

    fn error_record(&self, line: &str, json_line: &str) {
        let mut out = String::with_capacity(line.len().max(json_line.len()) + 1);
        out.push_str(if self.json.load(Ordering::Relaxed) {
            json_line
        } else {
            line
        });
        out.push('\n');
        self.error_queue.push(out);
        if self.error_tx.receiver_count() > 0 {
            let _ = self.error_tx.send(Bytes::from(error_stream_line(line)));
        }
    }

    /// The `tracing` layer that feeds the error log. The first instance
    /// asked for it is the process's error log ([`flush_process_errors`]).
    pub fn layer(self: &Arc<Self>) -> ErrorLogLayer {
        let _ = PROCESS_LOGS.set(self.clone());
        ErrorLogLayer { logs: self.clone() }
    }

    /// Waits until every error-log line logged so far is on stderr, at
    /// most `timeout`.
    pub fn flush_errors(&self, timeout: Duration) {
        let (done_tx, done_rx) = mpsc::channel();
        let _ = self.error_queue.tx.send(Msg::Flush(done_tx));
        let _ = done_rx.recv_timeout(timeout);
    }
}

/// The logs behind the process's `tracing` subscriber.
static PROCESS_LOGS: std::sync::OnceLock<Arc<Logs>> = std::sync::OnceLock::new();

/// Writes out the process's queued error-log lines (at most 1 s), so that
/// a server that fails to start loses none of them on exit.
pub fn flush_process_errors() {
    if let Some(logs) = PROCESS_LOGS.get() {
        logs.flush_errors(Duration::from_secs(1));
    }
}

/// The bytes to reserve for the audit line of a call to `path`: the path
/// appears in the line once, the name a handler's message quotes is part
/// of it, and escaping at most triples either.
fn audit_reservation(path: &str) -> usize {
    AUDIT_LINE_BASE + 2 * 3 * path.len().min(FIELD_CAP + 32)
}

/// The audit event as the JSON object of `log.format: json` and the
/// `/v1/log/audit` stream, without newline.
fn audit_json_line(ev: &AuditEvent) -> String {
    let doc = AuditJson {
        time: format_rfc3339_nano(ev.time),
        request: AuditRequest {
            ip: ev.ip,
            path: &cap_field(ev.path),
            identity: &cap_field(ev.identity),
            method: &cap_field(ev.method),
        },
        response: AuditResponse {
            code: ev.status,
            time: ev.duration.as_millis() as u64,
        },
    };
    log_json(&doc)
}

/// The audit event as a `slog` text line, without newline.
fn audit_text_line(ev: &AuditEvent) -> String {
    let mut l = String::with_capacity(320);
    l.push_str("time=");
    write_slog_time(&mut l, ev.time);
    l.push_str(" level=INFO msg=");
    push_slog_value(&mut l, &cap_field(ev.message));
    l.push_str(" req.method=");
    push_slog_value(&mut l, &cap_field(ev.method));
    l.push_str(" req.path=");
    push_slog_value(&mut l, &cap_field(ev.path));
    let _ = write!(l, " req.ip={} req.identity=", ev.ip);
    push_slog_value(&mut l, &cap_field(ev.identity));
    let _ = write!(
        l,
        " res.code={} res.time={}",
        ev.status,
        format_duration(ev.duration)
    );
    l
}

/// An error-log text line as a `/v1/log/error` event, with newline.
fn error_stream_line(line: &str) -> String {
    let mut msg = log_json(&serde_json::json!({ "message": line }));
    msg.push('\n');
    msg
}

/// The error-log line that reports `n` lines lost to a full queue, with
/// newline.
fn dropped_line(n: u64, json: bool) -> String {
    let now = OffsetDateTime::now_utc();
    let msg = "error log lines dropped: stderr is not read as fast as lines are logged";
    let mut line = if json {
        log_json(&serde_json::json!({
            "time": format_rfc3339_nano(now),
            "level": "WARN",
            "msg": msg,
            "dropped": n,
        }))
    } else {
        format!(
            "time={} level=WARN msg={} dropped={n}",
            slog_time(now),
            slog_value(msg)
        )
    };
    line.push('\n');
    line
}

/// A `/v1/log/*` subscription. Subscribers read from a shared ring of
/// events; one that falls behind by more than the ring loses the oldest
/// events: an error-log subscriber gets an event saying how many, an
/// audit-log subscriber's stream ends (it is never silently incomplete).
pub struct Subscription {
    rx: broadcast::Receiver<Bytes>,
    closing: watch::Receiver<bool>,
    kind: LogKind,
    _slot: Slot,
    ended: bool,
}

/// Frees a subscriber slot when the subscription is dropped.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Subscription {
    /// The next event as one line with its newline; `None` once the stream
    /// ends (server stopping, or an audit subscriber fell behind).
    pub async fn next(&mut self) -> Option<Bytes> {
        use tokio::sync::broadcast::error::RecvError;
        if self.ended {
            return None;
        }
        let received = tokio::select! {
            biased;
            _ = self.closing.wait_for(|closing| *closing) => None,
            r = self.rx.recv() => Some(r),
        };
        match received {
            Some(Ok(line)) => Some(line),
            Some(Err(RecvError::Lagged(n))) if self.kind == LogKind::Error => {
                let text = format!(
                    "time={} level=WARN msg={} dropped={n}",
                    slog_time(OffsetDateTime::now_utc()),
                    slog_value("log stream: events dropped: this subscriber reads too slowly")
                );
                Some(Bytes::from(error_stream_line(&text)))
            }
            _ => {
                self.ended = true;
                None
            }
        }
    }
}

/// slog's text handler time: RFC 3339 with milliseconds.
pub fn slog_time(t: OffsetDateTime) -> String {
    let mut s = String::with_capacity(24);
    write_slog_time(&mut s, t);
    s
}

/// Appends [`slog_time`] without an intermediate string.
fn write_slog_time(out: &mut String, t: OffsetDateTime) {
    let t = t.to_offset(time::UtcOffset::UTC);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    );
}

/// `s` cut to [`FIELD_CAP`] bytes (at a character boundary) and marked,
/// when longer.
pub fn cap_field(s: &str) -> Cow<'_, str> {
    if s.len() <= FIELD_CAP {
        return Cow::Borrowed(s);
    }
    let mut end = FIELD_CAP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...[truncated: {} bytes]", &s[..end], s.len()))
}

/// Characters Go's `strconv.Quote` escapes that could break a log line
/// or disguise it: controls (C0, DEL, C1 such as U+0085), every space but
/// U+0020 (U+2028 and U+2029 among them), format characters (the bidi
/// controls U+061C, U+200E/U+200F, U+202A–U+202E, U+2066–U+2069,
/// zero-width characters, U+FEFF, tags), private-use characters and
/// non-characters.
pub fn is_unsafe_char(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return u < 0x20 || u == 0x7f;
    }
    c.is_control()
        || c.is_whitespace()
        || (u & 0xfffe) == 0xfffe
        || matches!(
            u,
            0xad | 0x600..=0x605
                | 0x61c
                | 0x6dd
                | 0x70f
                | 0x890..=0x891
                | 0x8e2
                | 0x180e
                | 0x200b..=0x200f
                | 0x202a..=0x202e
                | 0x2060..=0x2064
                | 0x2066..=0x206f
                | 0xfeff
                | 0xfff9..=0xfffb
                | 0xe000..=0xf8ff
                | 0xfdd0..=0xfdef
                | 0x110bd
                | 0x110cd
                | 0x13430..=0x1343f
                | 0x1bca0..=0x1bca3
                | 0x1d173..=0x1d17a
                | 0xe0001
                | 0xe0020..=0xe007f
                | 0xf0000..
        )
}

/// Appends [`slog_value`] without an intermediate string.
fn push_slog_value(out: &mut String, s: &str) {
    if needs_quote(s) {
        push_go_quoted(out, s);
    } else {
        out.push_str(s);
    }
}

fn needs_quote(s: &str) -> bool {
    s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || is_unsafe_char(c))
}

/// Appends `s` quoted as Go's `strconv.Quote` quotes it: `\"`, `\\`, the
/// short escapes `\a \b \f \n \r \t \v`, `\xNN` for other ASCII controls
/// and DEL, `\uNNNN` / `\UNNNNNNNN` for [`is_unsafe_char`] characters.
fn push_go_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_unsafe_char(c) && (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if is_unsafe_char(c) => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A slog text value: quoted when it is empty or contains spaces, quotes,
/// `=` or characters that could break the line, which are then escaped.
pub fn slog_value(s: &str) -> String {
    if needs_quote(s) {
        let mut out = String::with_capacity(s.len() + 2);
        push_go_quoted(&mut out, s);
        out
    } else {
        s.to_string()
    }
}

/// `value` as one JSON line (no newline) in which, beyond what Go's
/// encoder escapes, every [`is_unsafe_char`] is written `\uXXXX`, so that
/// a line read as text cannot be broken or disguised either.
fn log_json<T: Serialize + ?Sized>(value: &T) -> String {
    let mut line = crate::wire::go_json(value);
    line.pop(); // the newline
    let line = String::from_utf8(line).expect("JSON is UTF-8");
    // Raw bytes below 0x20 never occur in serialized JSON.
    if line.bytes().all(|b| b < 0x7f) {
        return line;
    }
    // Such characters occur only inside string literals, so replacing
    // them everywhere is exact.
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        if is_unsafe_char(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Formats `tracing` events as error-log records.
pub struct ErrorLogLayer {
    logs: Arc<Logs>,
}

struct FieldCollector {
    message: String,
    fields: Vec<(String, String)>,
}

impl tracing::field::Visit for FieldCollector {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields
                .push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .push((field.name().to_string(), format!("{value:?}")));
        }
    }
}

fn slog_level(level: &tracing::Level) -> i32 {
    match *level {
        tracing::Level::TRACE => DEBUG - 4,
        tracing::Level::DEBUG => DEBUG,
        tracing::Level::INFO => INFO,
        tracing::Level::WARN => WARN,
        tracing::Level::ERROR => ERROR,
    }
}

fn level_name(level: i32) -> &'static str {
    match level {
        l if l < INFO => "DEBUG",
        l if l < WARN => "INFO",
        l if l < ERROR => "WARN",
        _ => "ERROR",
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorLogLayer {
    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        // Dependencies (hyper, rustls, the AWS SDK) log a lot at debug;
        // only our own crates go below INFO.
        let target = metadata.target();
        let level = slog_level(metadata.level());
        let floor = if target.starts_with("kes") {
            DEBUG - 4
        } else if target.starts_with("aws_") {
            // The AWS SDK warns about its own configuration sources (e.g.
            // an unset profile file); our key store reports real failures.
            ERROR
        } else {
            WARN
        };
        level >= floor && level >= self.logs.error_level.load(Ordering::Relaxed)
    }

    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let level = slog_level(event.metadata().level());
        if level < self.logs.error_level.load(Ordering::Relaxed) {
            return;
        }
        let mut c = FieldCollector {
            message: String::new(),
            fields: Vec::new(),
        };
        event.record(&mut c);
        // Messages and fields may echo what a client sent (a name, a TLS
        // error about its certificate): capped like audit fields.
        let message = cap_field(&c.message);
        let now = OffsetDateTime::now_utc();
        let mut line = format!(
            "time={} level={} msg={}",
            slog_time(now),
            level_name(level),
            slog_value(&message)
        );
        let mut json = serde_json::Map::new();
        json.insert("time".into(), format_rfc3339_nano(now).into());
        json.insert("level".into(), level_name(level).into());
        json.insert("msg".into(), message.as_ref().into());
        for (k, v) in &c.fields {
            let v = cap_field(v);
            let _ = write!(line, " {}={}", k, slog_value(&v));
            json.insert(k.clone(), v.as_ref().into());
        }
        let json_line = log_json(&serde_json::Value::Object(json));
        self.logs.error_record(&line, &json_line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
        assert_eq!(format_duration(Duration::from_micros(15_200)), "15.2ms");
        assert_eq!(format_duration(Duration::from_nanos(15_200)), "15.2µs");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_nanos(7)), "7ns");
    }

    #[test]
    fn slog_values() {
        assert_eq!(slog_value("abc"), "abc");
        assert_eq!(slog_value("a b"), "\"a b\"");
        assert_eq!(slog_value(""), "\"\"");
        assert_eq!(
            slog_value("secret key 'k' created"),
            "\"secret key 'k' created\""
        );
        assert_eq!(slog_value("a\"b=c\\d"), r#""a\"b=c\\d""#);
        assert_eq!(slog_value("é/ü"), "é/ü");
    }

    #[tokio::test]
    async fn audit_stream_gets_json() {
        let logs = Logs::new(Arc::new(Metrics::new()));
        logs.configure(INFO, ERROR + 1, false, AuditSink::Stdout);
        let mut rx = logs.subscribe_audit().unwrap();
        logs.audit(&AuditEvent {
            time: OffsetDateTime::UNIX_EPOCH,
            method: "PUT",
            path: "/v1/key/create/k",
            ip: std::net::IpAddr::from([127, 0, 0, 1]),
            identity: "ab",
            status: 200,
            duration: Duration::from_millis(3),
            message: "secret key 'k' created",
        });
        let line = rx.next().await.unwrap();
        assert_eq!(
            &line[..],
            &b"{\"time\":\"1970-01-01T00:00:00Z\",\"request\":{\"ip\":\"127.0.0.1\",\"path\":\"/v1/key/create/k\",\"identity\":\"ab\",\"method\":\"PUT\"},\"response\":{\"code\":200,\"time\":3}}\n"[..]
        );
    }

    /// A writer whose writes wait until the gate opens (a sink nobody
    /// drains), collecting what it is given.
    /// Whether the gate is open, and what was written.
    type GateState = Mutex<(bool, Vec<u8>)>;

    #[derive(Clone, Default)]
    struct Gate {
        state: Arc<(GateState, std::sync::Condvar)>,
    }

    impl Gate {
        fn open(&self) {
            self.state.0.lock().unwrap().0 = true;
            self.state.1.notify_all();
        }

        fn opened() -> Self {
            let g = Gate::default();
            g.open();
            g
        }

        fn text(&self) -> String {
            String::from_utf8(self.state.0.lock().unwrap().1.clone()).unwrap()
        }
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut s = self.state.0.lock().unwrap();
            while !s.0 {
                s = self.state.1.wait(s).unwrap();
            }
            s.1.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn event<'a>(path: &'a str, message: &'a str) -> AuditEvent<'a> {
        AuditEvent {
            time: OffsetDateTime::UNIX_EPOCH,
            method: "PUT",
            path,
            ip: std::net::IpAddr::from([10, 1, 2, 3]),
            identity: "2ecb",
            status: 200,
            duration: Duration::from_millis(200),
            message,
        }
    }

    fn logs_with(audit: Gate, error: Gate, audit_bytes: usize, error_bytes: usize) -> Arc<Logs> {
        let logs = Logs::with_outputs(
            Arc::new(Metrics::new()),
            audit_bytes,
            error_bytes,
            Box::new(std::io::sink()),
            Box::new(error),
        );
        logs.configure(INFO, INFO, false, AuditSink::Writer(Box::new(audit)));
        logs
    }

    fn metric(logs: &Logs, name: &str) -> u64 {
        let text = logs.metrics.render(Some(Default::default()));
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing: {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn normal_audit_lines_keep_their_format() {
        let ev = event("/v1/key/create/my-key", "secret key 'my-key' created");
        assert_eq!(
            audit_text_line(&ev),
            "time=1970-01-01T00:00:00.000Z level=INFO msg=\"secret key 'my-key' created\" req.method=PUT req.path=/v1/key/create/my-key req.ip=10.1.2.3 req.identity=2ecb res.code=200 res.time=200ms"
        );
        assert_eq!(
            audit_json_line(&ev),
            r#"{"time":"1970-01-01T00:00:00Z","request":{"ip":"10.1.2.3","path":"/v1/key/create/my-key","identity":"2ecb","method":"PUT"},"response":{"code":200,"time":200}}"#
        );
    }

    #[test]
    fn values_are_quoted_as_go_quotes_them() {
        assert_eq!(slog_value("a\nb"), r#""a\nb""#);
        assert_eq!(slog_value("\x01\x07\x7f"), r#""\x01\a\x7f""#);
        assert_eq!(slog_value("a\u{2028}b"), r#""a\u2028b""#);
        assert_eq!(slog_value("a\u{0085}b"), r#""a\u0085b""#);
        assert_eq!(slog_value("evil\u{202e}gpj.exe"), r#""evil\u202egpj.exe""#);
        assert_eq!(
            slog_value("\u{2066}\u{200f}\u{061c}"),
            r#""\u2066\u200f\u061c""#
        );
        assert_eq!(slog_value("tag\u{e0041}"), r#""tag\U000e0041""#);
        assert_eq!(slog_value("nb\u{a0}sp"), r#""nb\u00a0sp""#);
        // Printable non-ASCII stays as it is.
        assert_eq!(slog_value("名前😀"), "名前😀");
    }

    #[test]
    fn hostile_paths_can_neither_forge_nor_flood_lines() {
        let forged = "/v1/key/create/k\u{2028}time=2026 level=INFO msg=forged\u{0085}\u{202e}\r\n";
        let path = format!("{forged}{}", "x".repeat(64 * 1024));
        let marker = format!("x...[truncated: {} bytes]", path.len());
        let ev = event(&path, "http request");
        for line in [audit_text_line(&ev), audit_json_line(&ev)] {
            assert!(!line.chars().any(is_unsafe_char), "{line:?}");
            assert!(line.len() < FIELD_CAP + 512, "{} bytes", line.len());
            assert!(line.contains(&marker), "{line}");
        }
        let text = audit_text_line(&ev);
        assert!(
            text.contains(r#"req.path="/v1/key/create/k\u2028time=2026 level=INFO msg=forged\u0085\u202e\r\nxxx"#),
            "{text}"
        );
        // JSON lines escape beyond what serde_json does and still decode to
        // the (cut) path.
        let json = audit_json_line(&ev);
        assert!(json.contains(r#"k\u2028time"#) && json.contains(r#"forged\u0085\u202e\r\n"#));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        let decoded = v["request"]["path"].as_str().unwrap();
        assert!(decoded.starts_with(forged), "{decoded:?}");
        assert!(decoded.ends_with(&marker));
        // Cutting never splits a character.
        let wide = format!("a{}", "é".repeat(FIELD_CAP));
        assert_eq!(
            cap_field(&wide),
            format!(
                "a{}...[truncated: {} bytes]",
                "é".repeat(FIELD_CAP / 2 - 1),
                wide.len()
            )
        );
        assert!(matches!(cap_field("/v1/key/create/k"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_stalled_audit_sink_refuses_calls_without_blocking() {
        let sink = Gate::default();
        let logs = logs_with(sink.clone(), Gate::opened(), 16 * 1024, 1 << 20);
        let ev = event("/v1/key/create/k", "secret key 'k' created");
        let mut queued = 0;
        let mut refused = false;
        for _ in 0..1000 {
            let started = Instant::now();
            let permit = logs.reserve_audit("/v1/key/create/k");
            if permit.refused() {
                refused = true;
                break;
            }
            logs.audit_with(&ev, permit);
            assert!(
                started.elapsed() < Duration::from_millis(100),
                "audit blocked"
            );
            queued += 1;
        }
        assert!(refused, "never refused with a stalled sink");
        // Reservations are bounded by what a line may take, not by the
        // worst case: a small queue still holds dozens of calls.
        assert!(queued > 16, "{queued}");
        assert!(logs.reserve_audit("/v1/key/create/k").refused());
        assert_eq!(metric(&logs, "kes_log_audit_refused"), 2);
        // Lines without a reservation are dropped once nothing fits.
        for _ in 0..100 {
            if metric(&logs, "kes_log_audit_dropped") > 0 {
                break;
            }
            logs.audit(&ev);
            queued += 1;
        }
        assert_eq!(metric(&logs, "kes_log_audit_dropped"), 1);
        queued -= 1;
        // Probes are answered (not counted as refused); their lines are
        // dropped while there is no room.
        let probe = logs.reserve_audit("/v1/status");
        assert!(probe.refused() && answered_without_audit("/v1/status"));
        logs.audit_with(&ev, probe);
        assert_eq!(metric(&logs, "kes_log_audit_dropped"), 2);
        assert_eq!(metric(&logs, "kes_log_audit_refused"), 2);

        // Once the sink drains, calls are admitted again, and every
        // queued line was written.
        sink.open();
        let deadline = Instant::now() + Duration::from_secs(5);
        while logs.reserve_audit("/v1/key/create/k").refused() {
            assert!(Instant::now() < deadline, "never recovered");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(logs.audit_accepting());
        logs.flush();
        let written = sink.text();
        assert_eq!(written.lines().count(), queued, "{written}");
        assert!(written
            .lines()
            .all(|l| l.contains("req.path=/v1/key/create/k ")));
        assert_eq!(metric(&logs, "kes_log_audit_events"), queued as u64);
    }

    #[test]
    fn a_stalled_stderr_drops_error_lines_and_says_so() {
        let stderr = Gate::default();
        let logs = logs_with(Gate::opened(), stderr.clone(), 1 << 20, 4096);
        let line = format!("time=x level=INFO msg={}", "m".repeat(80));
        let started = Instant::now();
        for _ in 0..1000 {
            logs.error_record(&line, "{}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "error log blocked"
        );
        let dropped = metric(&logs, "kes_log_error_dropped");
        assert!(dropped > 900, "{dropped}");
        stderr.open();
        logs.flush();
        let text = stderr.text();
        let written = text.lines().filter(|l| *l == line).count() as u64;
        assert_eq!(written + dropped, 1000);
        assert_eq!(metric(&logs, "kes_log_error_events"), written);
        let reported: u64 = text
            .lines()
            .filter(|l| l.contains("msg=\"error log lines dropped"))
            .map(|l| l.rsplit("dropped=").next().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(reported, dropped, "{text}");
    }

    #[test]
    fn events_written_without_subscribers_are_counted() {
        let audit = Gate::opened();
        let stderr = Gate::opened();
        let logs = logs_with(audit.clone(), stderr.clone(), 1 << 20, 1 << 20);
        logs.error_record("time=x level=INFO msg=m", "{}");
        logs.flush_errors(Duration::from_secs(1));
        assert_eq!(stderr.text(), "time=x level=INFO msg=m\n");
        for _ in 0..3 {
            logs.audit(&event("/v1/key/create/k", "secret key 'k' created"));
        }
        logs.flush();
        assert_eq!(audit.text().lines().count(), 3);
        assert_eq!(metric(&logs, "kes_log_audit_events"), 3);
        assert_eq!(metric(&logs, "kes_log_error_events"), 1);
    }

    #[tokio::test]
    async fn subscribers_are_capped_and_streams_close() {
        let logs = logs_with(Gate::opened(), Gate::opened(), 1 << 20, 1 << 20);
        let mut subs: Vec<_> = (0..MAX_SUBSCRIBERS)
            .map(|_| logs.subscribe_audit().unwrap())
            .collect();
        let err = logs.subscribe_audit().err().expect("refused");
        assert_eq!(err.status(), 503);
        assert_eq!(err.message(), "too many log subscribers");
        // The error log has slots of its own.
        let mut errors = logs.subscribe_errors().unwrap();
        drop(subs.pop());
        subs.push(logs.subscribe_audit().unwrap());

        logs.close_streams();
        for sub in subs.iter_mut().chain(std::iter::once(&mut errors)) {
            let next = tokio::time::timeout(Duration::from_secs(1), sub.next()).await;
            assert_eq!(next.expect("stream ended in time"), None);
        }
        let mut late = logs.subscribe_errors().unwrap();
        assert_eq!(late.next().await, None);
    }

    #[tokio::test]
    async fn slow_subscribers_lose_events_not_memory() {
        let logs = logs_with(Gate::opened(), Gate::opened(), 1 << 20, 1 << 20);
        logs.configure(
            INFO,
            ERROR + 1,
            false,
            AuditSink::Writer(Box::new(std::io::sink())),
        );
        let mut errors = logs.subscribe_errors().unwrap();
        let mut audit = logs.subscribe_audit().unwrap();
        for _ in 0..AUDIT_RING + 10 {
            logs.error_record("time=x level=INFO msg=m", "{}");
            logs.audit(&event("/v1/key/describe/k", "http request"));
        }
        let marker = errors.next().await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&marker).unwrap();
        let msg = v["message"].as_str().unwrap();
        assert!(msg.contains("this subscriber reads too slowly"), "{msg}");
        assert!(
            msg.ends_with(&format!(" dropped={}", AUDIT_RING + 10 - ERROR_RING)),
            "{msg}"
        );
        assert_eq!(audit.next().await, None);
    }
}
