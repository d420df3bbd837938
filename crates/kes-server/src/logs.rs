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
//! Nothing here ever receives key material: handlers log names, identities,
//! paths and error descriptions only.

use crate::metrics::Metrics;
use kes_core::duration::format_duration;
use kes_core::timefmt::format_rfc3339_nano;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::broadcast;

/// slog levels.
pub const DEBUG: i32 = -4;
/// slog levels.
pub const INFO: i32 = 0;
/// slog levels.
pub const WARN: i32 = 4;
/// slog levels.
pub const ERROR: i32 = 8;

/// Where audit lines go.
pub enum AuditSink {
    /// Standard output.
    Stdout,
    /// An append-only file.
    File(std::fs::File),
}

/// The process's logs. One instance per process; levels and the output
/// format can change on reload.
pub struct Logs {
    error_level: AtomicI32,
    audit_level: AtomicI32,
    json: AtomicBool,
    /// Console/file lines go to a writer thread, so a request never waits
    /// for a write syscall; under load the thread writes many lines per
    /// syscall, when idle each line at once.
    audit_writer: std::sync::mpsc::SyncSender<WriterMsg>,
    error_tx: broadcast::Sender<Arc<str>>,
    audit_tx: broadcast::Sender<Arc<str>>,
    metrics: Arc<Metrics>,
}

enum WriterMsg {
    Line(String),
    Sink(AuditSink),
    Flush(std::sync::mpsc::Sender<()>),
}

fn audit_writer_thread(rx: std::sync::mpsc::Receiver<WriterMsg>) {
    use std::io::{BufWriter, Write};
    use std::sync::mpsc::TryRecvError;
    let mut out: BufWriter<Box<dyn Write + Send>> =
        BufWriter::with_capacity(64 * 1024, Box::new(std::io::stdout()));
    // Block only while idle. While lines keep coming, write a batch, then
    // pause briefly instead of parking: senders then rarely find the thread
    // asleep, so they rarely pay for a wake-up, and one write(2) carries
    // many lines. An idle server writes each line at once.
    let mut next = rx.recv().ok();
    while let Some(mut msg) = next.take() {
        let mut lines = 0usize;
        loop {
            match msg {
                WriterMsg::Line(line) => {
                    let _ = out.write_all(line.as_bytes());
                    let _ = out.write_all(b"\n");
                    lines += 1;
                }
                WriterMsg::Sink(sink) => {
                    let _ = out.flush();
                    let w: Box<dyn Write + Send> = match sink {
                        AuditSink::Stdout => Box::new(std::io::stdout()),
                        AuditSink::File(f) => Box::new(f),
                    };
                    out = BufWriter::with_capacity(64 * 1024, w);
                }
                WriterMsg::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            match rx.try_recv() {
                Ok(m) => msg = m,
                Err(_) => break,
            }
        }
        let _ = out.flush();
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
    let _ = out.flush();
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
    /// Logs with the given levels (slog numbers) writing to `audit_sink`.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Self> {
        let (error_tx, _) = broadcast::channel(1024);
        let (audit_tx, _) = broadcast::channel(4096);
        // Bounded: a disk slower than the request rate slows requests down
        // (back-pressure) instead of growing memory without limit.
        let (writer_tx, writer_rx) = std::sync::mpsc::sync_channel(64 * 1024);
        std::thread::Builder::new()
            .name("kes-audit".into())
            .spawn(move || audit_writer_thread(writer_rx))
            .expect("spawn the audit writer thread");
        Arc::new(Self {
            error_level: AtomicI32::new(INFO),
            audit_level: AtomicI32::new(INFO),
            json: AtomicBool::new(false),
            audit_writer: writer_tx,
            error_tx,
            audit_tx,
            metrics,
        })
    }

    /// Applies (re)loaded settings.
    pub fn configure(&self, error_level: i32, audit_level: i32, json: bool, sink: AuditSink) {
        self.error_level.store(error_level, Ordering::Relaxed);
        self.audit_level.store(audit_level, Ordering::Relaxed);
        self.json.store(json, Ordering::Relaxed);
        self.send_to_writer(WriterMsg::Sink(sink));
    }

    fn send_to_writer(&self, msg: WriterMsg) {
        let _ = self.audit_writer.send(msg);
    }

    /// Waits until every audit line logged so far is written (shutdown).
    pub fn flush(&self) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        self.send_to_writer(WriterMsg::Flush(done_tx));
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
    }

    /// Whether an API call needs to be turned into an audit event at all.
    pub fn audit_enabled(&self) -> bool {
        self.audit_level.load(Ordering::Relaxed) <= INFO || self.audit_tx.receiver_count() > 0
    }

    /// A new `/v1/log/error` subscription: JSON lines.
    pub fn subscribe_errors(&self) -> broadcast::Receiver<Arc<str>> {
        self.error_tx.subscribe()
    }

    /// A new `/v1/log/audit` subscription: JSON lines.
    pub fn subscribe_audit(&self) -> broadcast::Receiver<Arc<str>> {
        self.audit_tx.subscribe()
    }

    /// Records one API call.
    pub fn audit(&self, ev: &AuditEvent) {
        let to_console = self.audit_level.load(Ordering::Relaxed) <= INFO;
        let to_stream = self.audit_tx.receiver_count() > 0;
        if !to_console && !to_stream {
            return;
        }
        let json_line = || {
            let doc = AuditJson {
                time: format_rfc3339_nano(ev.time),
                request: AuditRequest {
                    ip: ev.ip,
                    path: ev.path,
                    identity: ev.identity,
                    method: ev.method,
                },
                response: AuditResponse {
                    code: ev.status,
                    time: ev.duration.as_millis() as u64,
                },
            };
            let mut line = crate::wire::go_json(&doc);
            line.pop(); // the newline; added back by the writers
            String::from_utf8(line).expect("JSON is UTF-8")
        };
        let json = if to_stream || self.json.load(Ordering::Relaxed) {
            Some(json_line())
        } else {
            None
        };
        if to_console {
            let line = if self.json.load(Ordering::Relaxed) {
                json.clone().unwrap_or_default()
            } else {
                let mut l = String::with_capacity(320);
                l.push_str("time=");
                write_slog_time(&mut l, ev.time);
                l.push_str(" level=INFO msg=");
                push_slog_value(&mut l, ev.message);
                l.push_str(" req.method=");
                push_slog_value(&mut l, ev.method);
                l.push_str(" req.path=");
                push_slog_value(&mut l, ev.path);
                let _ = write!(l, " req.ip={} req.identity=", ev.ip);
                push_slog_value(&mut l, ev.identity);
                let _ = write!(
                    l,
                    " res.code={} res.time={}",
                    ev.status,
                    format_duration(ev.duration)
                );
                l
            };
            self.send_to_writer(WriterMsg::Line(line));
        }
        if let (true, Some(json)) = (to_stream, json) {
            if self.audit_tx.send(Arc::from(json)).is_ok() {
                self.metrics.audit_event();
            }
        }
    }

    fn error_record(&self, level: i32, line: &str, json_line: &str) {
        if self.json.load(Ordering::Relaxed) {
            let _ = writeln!(std::io::stderr().lock(), "{json_line}");
        } else {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
        if self.error_tx.receiver_count() > 0 {
            let mut msg = crate::wire::go_json(&serde_json::json!({ "message": line }));
            msg.pop();
            let msg = String::from_utf8(msg).expect("JSON is UTF-8");
            if self.error_tx.send(Arc::from(msg)).is_ok() {
                self.metrics.error_event();
            }
        }
        let _ = level;
    }

    /// The `tracing` layer that feeds the error log.
    pub fn layer(self: &Arc<Self>) -> ErrorLogLayer {
        ErrorLogLayer { logs: self.clone() }
    }
}

/// slog's text handler time: RFC 3339 with milliseconds.
pub fn slog_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
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

/// Appends [`slog_value`] without an intermediate string.
fn push_slog_value(out: &mut String, s: &str) {
    if needs_quote(s) {
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    } else {
        out.push_str(s);
    }
}

fn needs_quote(s: &str) -> bool {
    s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control())
}

/// A slog text value: quoted when it is empty or contains spaces, quotes,
/// `=` or control characters.
pub fn slog_value(s: &str) -> String {
    if needs_quote(s) {
        serde_json::to_string(s).unwrap_or_default()
    } else {
        s.to_string()
    }
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
        let now = OffsetDateTime::now_utc();
        let mut line = format!(
            "time={} level={} msg={}",
            slog_time(now),
            level_name(level),
            slog_value(&c.message)
        );
        let mut json = serde_json::Map::new();
        json.insert("time".into(), format_rfc3339_nano(now).into());
        json.insert("level".into(), level_name(level).into());
        json.insert("msg".into(), c.message.clone().into());
        for (k, v) in &c.fields {
            let _ = write!(line, " {}={}", k, slog_value(v));
            json.insert(k.clone(), v.clone().into());
        }
        let mut json_line = crate::wire::go_json(&serde_json::Value::Object(json));
        json_line.pop();
        let json_line = String::from_utf8(json_line).unwrap_or_default();
        self.logs.error_record(level, &line, &json_line);
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
    }

    #[tokio::test]
    async fn audit_stream_gets_json() {
        let logs = Logs::new(Arc::new(Metrics::new()));
        logs.configure(INFO, ERROR + 1, false, AuditSink::Stdout);
        let mut rx = logs.subscribe_audit();
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
        let line = rx.recv().await.unwrap();
        assert_eq!(
            &*line,
            r#"{"time":"1970-01-01T00:00:00Z","request":{"ip":"127.0.0.1","path":"/v1/key/create/k","identity":"ab","method":"PUT"},"response":{"code":200,"time":3}}"#
        );
    }
}
