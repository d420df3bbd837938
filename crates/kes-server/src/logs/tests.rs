//! The logs' queues, writer threads and subscribers, and the lines they
//! write.

use super::audit::*;
use super::slog::{cap_field, is_unsafe_char};
use super::*;
use std::borrow::Cow;
use time::OffsetDateTime;

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
        proxy_ip: None,
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
        proxy_ip: None,
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
        text.contains(
            r#"req.path="/v1/key/create/k\u2028time=2026 level=INFO msg=forged\u0085\u202e\r\nxxx"#
        ),
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
