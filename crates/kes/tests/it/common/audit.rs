//! The admin's audit log stream, for tests that check what a call was
//! audited as.

use super::{next_line, KeepAlive, TestServer};
use std::time::Duration;

/// The admin's audit stream, read directly from KES.
pub(crate) struct AuditLog {
    body: hyper::body::Incoming,
    buf: Vec<u8>,
    /// Holds the connection the stream comes on.
    _conn: KeepAlive,
}

impl AuditLog {
    /// Subscribes; calls made after this returns are in the stream.
    pub(crate) async fn follow(server: &TestServer) -> Self {
        let mut conn = server.admin_client().connect().await.unwrap();
        let stream = conn.stream("GET", "/v1/log/audit").await;
        assert_eq!(stream.status(), 200);
        AuditLog {
            body: stream.into_body(),
            buf: Vec::new(),
            _conn: conn,
        }
    }

    /// The next event of a call to `path`.
    pub(crate) async fn event(&mut self, path: &str) -> serde_json::Value {
        loop {
            let line = tokio::time::timeout(
                Duration::from_secs(10),
                next_line(&mut self.body, &mut self.buf),
            )
            .await
            .unwrap_or_else(|_| panic!("no audit event of {path} within 10 s"))
            .expect("the audit stream is open");
            let event: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("an audit line that is not JSON ({e}): {line}"));
            if event["request"]["path"] == path {
                return event;
            }
        }
    }
}
