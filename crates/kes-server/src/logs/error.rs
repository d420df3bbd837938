//! The error log: `tracing` events of the process as `slog` text lines
//! (or JSON) on stderr, and as `{"message":"<text line>"}` to
//! `/v1/log/error` subscribers.

use super::slog::{cap_field, log_json, slog_time, slog_value};
use super::{Logs, Msg, DEBUG, ERROR, INFO, WARN};
use bytes::Bytes;
use kes_core::timefmt::format_rfc3339_nano;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Duration;
use time::OffsetDateTime;

/// The logs behind the process's `tracing` subscriber.
pub(super) static PROCESS_LOGS: std::sync::OnceLock<Arc<Logs>> = std::sync::OnceLock::new();

/// Writes out the process's queued error-log lines (at most 1 s), so that
/// a server that fails to start loses none of them on exit.
pub(crate) fn flush_process_errors() {
    if let Some(logs) = PROCESS_LOGS.get() {
        logs.flush_errors(Duration::from_secs(1));
    }
}

/// An error-log text line as a `/v1/log/error` event, with newline.
pub(super) fn error_stream_line(line: &str) -> String {
    let mut msg = log_json(&kes_core::api::ErrorEvent { message: line });
    msg.push('\n');
    msg
}

/// The error-log line that reports `n` lines lost to a full queue, with
/// newline.
pub(super) fn dropped_line(n: u64, json: bool) -> String {
    let now = OffsetDateTime::now_utc();
    let msg = "error log lines dropped: stderr is not read as fast as lines are logged";
    let mut line = if json {
        #[derive(Serialize)]
        struct Dropped<'a> {
            time: String,
            level: &'a str,
            msg: &'a str,
            dropped: u64,
        }
        log_json(&Dropped {
            time: format_rfc3339_nano(now),
            level: "WARN",
            msg,
            dropped: n,
        })
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

impl Logs {
    pub(super) fn error_record(&self, line: &str, json_line: &str) {
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
    /// asked for it is the process's error log (`flush_process_errors`).
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

/// An error-log record as a JSON object: its members in the order they
/// were first set, a field set again keeping its place with the new value.
struct JsonRecord<'a>(Vec<(&'a str, &'a str)>);

impl<'a> JsonRecord<'a> {
    fn set(&mut self, key: &'a str, value: &'a str) {
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(member) => member.1 = value,
            None => self.0.push((key, value)),
        }
    }
}

impl Serialize for JsonRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
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
        let time = format_rfc3339_nano(now);
        let mut json = JsonRecord(Vec::with_capacity(3 + c.fields.len()));
        json.set("time", &time);
        json.set("level", level_name(level));
        json.set("msg", &message);
        let fields: Vec<_> = c.fields.iter().map(|(k, v)| (k, cap_field(v))).collect();
        for (k, v) in &fields {
            let _ = write!(line, " {}={}", k, slog_value(v));
            json.set(k, v);
        }
        let json_line = log_json(&json);
        self.logs.error_record(&line, &json_line);
    }
}
