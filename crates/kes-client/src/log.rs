//! The NDJSON log streams `/v1/log/audit` and `/v1/log/error`.

use crate::error::{Cause, Error};
use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;

/// A line longer than this is not a log event; the stream is broken.
const MAX_LINE: usize = 1 << 20;

/// A never-ending stream of log events, one JSON object per line, yielded
/// as they arrive. Dropping it closes the connection.
pub struct LogStream<T> {
    body: Incoming,
    buf: BytesMut,
    done: bool,
    _event: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for LogStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStream").finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> LogStream<T> {
    pub(crate) fn new(body: Incoming) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            done: false,
            _event: PhantomData,
        }
    }

    /// The next event; `None` when the server closed the stream.
    pub async fn next(&mut self) -> Option<Result<T, Error>> {
        let line = match self.next_line().await? {
            Ok(line) => line,
            Err(e) => return Some(Err(e)),
        };
        Some(serde_json::from_slice(&line).map_err(|e| Error::undecodable("invalid log event", e)))
    }

    /// The next line as the server sent it (without the newline); `None`
    /// when the server closed the stream.
    pub async fn next_line(&mut self) -> Option<Result<Vec<u8>, Error>> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line = self.buf.split_to(pos + 1);
                let line = &line[..pos];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return Some(Ok(line.to_vec()));
            }
            if self.done {
                if self.buf.iter().all(u8::is_ascii_whitespace) {
                    return None;
                }
                let rest = self.buf.split().to_vec();
                return Some(Ok(rest));
            }
            if self.buf.len() > MAX_LINE {
                self.done = true;
                self.buf.clear();
                return Some(Err(Error::invalid_response("log line too long")));
            }
            match self.body.frame().await {
                None => self.done = true,
                Some(Err(e)) => {
                    self.done = true;
                    self.buf.clear();
                    return Some(Err(Error::StreamBroken(Cause::new(e))));
                }
                Some(Ok(frame)) => {
                    if let Ok(mut data) = frame.into_data() {
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            self.buf.extend_from_slice(chunk);
                            let n = chunk.len();
                            data.advance(n);
                        }
                    }
                }
            }
        }
    }
}
