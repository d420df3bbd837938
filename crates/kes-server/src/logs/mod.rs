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

mod audit;
mod error;
mod slog;

pub use audit::AuditSink;
pub(crate) use audit::{open_audit_file, AuditEvent, AuditPermit, AUDIT_UNAVAILABLE};
pub(crate) use error::flush_process_errors;
pub(crate) use slog::{slog_time, slog_value};

use crate::http::metrics::Metrics;
use audit::Stall;
use bytes::Bytes;
use error::{dropped_line, error_stream_line};
use kes_core::ApiError;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
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

/// A write batch; the writer thread issues one write(2) per batch.
const BATCH_BYTES: usize = 64 * 1024;

/// How long the audit writer waits before retrying a failed write.
const WRITE_RETRY: Duration = Duration::from_millis(100);

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

enum Msg {
    /// A line with its newline, charged to the queue by its length.
    Line(String),
    /// Signals once everything queued before is written.
    Flush(mpsc::Sender<()>),
    /// Makes an idle writer look at its sink slot.
    Wake,
}

/// The streams of one log that one identity follows.
struct Followers {
    count: usize,
    /// Set to end these streams: the identity may no longer follow the log.
    revoked: Arc<watch::Sender<bool>>,
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

    /// A new `/v1/log/error` subscription for `identity`, unless the log
    /// or the identity has its maximum of subscribers.
    pub fn subscribe_errors(&self, identity: &str) -> Result<Subscription, ApiError> {
        self.subscribe(LogKind::Error, identity)
    }

    /// A new `/v1/log/audit` subscription for `identity`, unless the log
    /// or the identity has its maximum of subscribers.
    pub fn subscribe_audit(&self, identity: &str) -> Result<Subscription, ApiError> {
        self.subscribe(LogKind::Audit, identity)
    }

    fn subscribe(&self, kind: LogKind, identity: &str) -> Result<Subscription, ApiError> {
        let (count, tx) = match kind {
            LogKind::Error => (&self.error_subscribers, &self.error_tx),
            LogKind::Audit => (&self.audit_subscribers, &self.audit_tx),
        };
        let key = (kind, identity.to_owned());
        let revoked = {
            let mut by_identity = self
                .subscribers_by_identity
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mine = by_identity.get(&key).map_or(0, |f| f.count);
            if mine >= MAX_SUBSCRIBERS_PER_IDENTITY {
                return Err(TOO_MANY_SUBSCRIBERS);
            }
            count
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < MAX_SUBSCRIBERS).then_some(n + 1)
                })
                .map_err(|_| TOO_MANY_SUBSCRIBERS)?;
            let followers = by_identity.entry(key.clone()).or_insert_with(|| Followers {
                count: 0,
                revoked: Arc::new(watch::channel(false).0),
            });
            followers.count += 1;
            followers.revoked.clone()
        };
        Ok(Subscription {
            rx: tx.subscribe(),
            closing: self.closing.subscribe(),
            revoked: revoked.subscribe(),
            kind,
            _slot: Slot {
                total: count.clone(),
                by_identity: self.subscribers_by_identity.clone(),
                key,
                revoked,
            },
            ended: false,
        })
    }

    /// Ends every `/v1/log/*` stream, now and from now on (server stopping):
    /// subscribers see a clean end of the stream.
    pub fn close_streams(&self) {
        self.closing.send_replace(true);
    }

    /// Ends the streams of every subscriber that `may_follow` no longer
    /// lets follow its log (called on reload with the new configuration's
    /// policies): revoking an identity also revokes what it is already
    /// reading. Their slots are freed as the streams end.
    pub(crate) fn end_streams_unless(&self, may_follow: impl Fn(LogKind, &str) -> bool) {
        let mut by_identity = self
            .subscribers_by_identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        by_identity.retain(|(kind, identity), followers| {
            let allowed = may_follow(*kind, identity);
            if !allowed {
                followers.revoked.send_replace(true);
            }
            allowed
        });
    }
}

/// A `/v1/log/*` subscription. Subscribers read from a shared ring of
/// events; one that falls behind by more than the ring loses the oldest
/// events: an error-log subscriber gets an event saying how many, an
/// audit-log subscriber's stream ends (it is never silently incomplete).
pub struct Subscription {
    rx: broadcast::Receiver<Bytes>,
    closing: watch::Receiver<bool>,
    revoked: watch::Receiver<bool>,
    kind: LogKind,
    _slot: Slot,
    ended: bool,
}

/// Frees a subscriber slot (of the log and of the identity) when the
/// subscription is dropped.
struct Slot {
    total: Arc<AtomicUsize>,
    by_identity: Arc<Mutex<HashMap<(LogKind, String), Followers>>>,
    key: (LogKind, String),
    /// Tells this slot's followers from later ones of the same identity
    /// after a revocation removed them from the map.
    revoked: Arc<watch::Sender<bool>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.total.fetch_sub(1, Ordering::AcqRel);
        let mut by_identity = self
            .by_identity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(mine) = by_identity
            .get_mut(&self.key)
            .filter(|f| Arc::ptr_eq(&f.revoked, &self.revoked))
        {
            mine.count -= 1;
            if mine.count == 0 {
                by_identity.remove(&self.key);
            }
        }
    }
}

impl Subscription {
    /// The next event as one line with its newline; `None` once the stream
    /// ends (server stopping, the subscriber's right to follow the log
    /// revoked by a reload, or an audit subscriber fell behind).
    pub async fn next(&mut self) -> Option<Bytes> {
        use tokio::sync::broadcast::error::RecvError;
        if self.ended {
            return None;
        }
        let received = tokio::select! {
            biased;
            _ = self.closing.wait_for(|closing| *closing) => None,
            _ = self.revoked.wait_for(|revoked| *revoked) => None,
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

#[cfg(test)]
mod tests {
    use super::audit::*;
    use super::slog::{cap_field, is_unsafe_char};
    use super::*;
    use kes_core::duration::format_duration;
    use std::borrow::Cow;

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
        assert_eq!(slog_value("abc").to_string(), "abc");
        assert_eq!(slog_value("a b").to_string(), "\"a b\"");
        assert_eq!(slog_value("").to_string(), "\"\"");
        assert_eq!(
            slog_value("secret key 'k' created").to_string(),
            "\"secret key 'k' created\""
        );
        assert_eq!(slog_value("a\"b=c\\d").to_string(), r#""a\"b=c\\d""#);
        assert_eq!(slog_value("é/ü").to_string(), "é/ü");
    }

    #[tokio::test]
    async fn audit_stream_gets_json() {
        let logs = Logs::new(Arc::new(Metrics::new()));
        logs.configure(INFO, ERROR + 1, false, AuditSink::Stdout);
        let mut rx = logs.subscribe_audit("test").unwrap();
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
        assert_eq!(slog_value("a\nb").to_string(), r#""a\nb""#);
        assert_eq!(slog_value("\x01\x07\x7f").to_string(), r#""\x01\a\x7f""#);
        assert_eq!(slog_value("a\u{2028}b").to_string(), r#""a\u2028b""#);
        assert_eq!(slog_value("a\u{0085}b").to_string(), r#""a\u0085b""#);
        assert_eq!(
            slog_value("evil\u{202e}gpj.exe").to_string(),
            r#""evil\u202egpj.exe""#
        );
        assert_eq!(
            slog_value("\u{2066}\u{200f}\u{061c}").to_string(),
            r#""\u2066\u200f\u061c""#
        );
        assert_eq!(slog_value("tag\u{e0041}").to_string(), r#""tag\U000e0041""#);
        assert_eq!(slog_value("nb\u{a0}sp").to_string(), r#""nb\u00a0sp""#);
        // Printable non-ASCII stays as it is.
        assert_eq!(slog_value("名前😀").to_string(), "名前😀");
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
            let permit = logs.reserve_audit("/v1/key/create/k", false);
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
        assert!(logs.reserve_audit("/v1/key/create/k", false).refused());
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
        let probe = logs.reserve_audit("/v1/status", true);
        assert!(probe.refused());
        logs.audit_with(&ev, probe);
        assert_eq!(metric(&logs, "kes_log_audit_dropped"), 2);
        assert_eq!(metric(&logs, "kes_log_audit_refused"), 2);

        // Once the sink drains, calls are admitted again, and every
        // queued line was written.
        sink.open();
        let deadline = Instant::now() + Duration::from_secs(5);
        while logs.reserve_audit("/v1/key/create/k", false).refused() {
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
        // One identity gets its share of the slots, not all of them.
        let mut subs: Vec<_> = (0..MAX_SUBSCRIBERS_PER_IDENTITY)
            .map(|_| logs.subscribe_audit("one").unwrap())
            .collect();
        let err = logs.subscribe_audit("one").err().expect("refused");
        assert_eq!(err.status(), 503);
        assert_eq!(err.message(), "too many log subscribers");
        let others = MAX_SUBSCRIBERS - MAX_SUBSCRIBERS_PER_IDENTITY;
        subs.extend((0..others).map(|i| {
            let identity = format!("other-{}", i / MAX_SUBSCRIBERS_PER_IDENTITY);
            logs.subscribe_audit(&identity).unwrap()
        }));
        let err = logs.subscribe_audit("newcomer").err().expect("refused");
        assert_eq!(err.message(), "too many log subscribers");
        // The error log has slots of its own.
        let mut errors = logs.subscribe_errors("one").unwrap();
        // A slot that is freed is free for anyone, and so is the identity's.
        drop(subs.remove(0));
        subs.push(logs.subscribe_audit("newcomer").unwrap());
        assert!(logs.subscribe_audit("one").is_err());
        drop(subs.remove(1));
        subs.push(logs.subscribe_audit("one").unwrap());

        logs.close_streams();
        for sub in subs.iter_mut().chain(std::iter::once(&mut errors)) {
            let next = tokio::time::timeout(Duration::from_secs(1), sub.next()).await;
            assert_eq!(next.expect("stream ended in time"), None);
        }
        let mut late = logs.subscribe_errors("test").unwrap();
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
        let mut errors = logs.subscribe_errors("test").unwrap();
        let mut audit = logs.subscribe_audit("test").unwrap();
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
