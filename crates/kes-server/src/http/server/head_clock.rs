//! The read-header deadline of HTTP/1.1 requests after a connection's
//! first one.
//!
//! Hyper's own `header_read_timeout` starts when hyper waits for the next
//! request head, i.e. as soon as a keep-alive connection goes idle, so it
//! is an idle timeout too: at 5 s it closed a known caller's idle
//! connection long before [`super::IDLE_TIMEOUT`], and MinIO's next request
//! on it failed. The server keeps the two apart, as the Go KES does: the
//! idle timeouts run from the last request's end, and the read-header
//! deadline from the first byte of the next request head. This wrapper
//! notes that byte; [`super::Conn::check_timers`] enforces the deadline.

use super::Conn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The first bytes of an HTTP/2 connection without ALPN (prior knowledge).
const H2_PREFACE_START: &[u8] = b"PRI * HTTP/2.0";

/// A connection's byte stream, noting when a request head starts arriving.
pub(super) struct HeadClock<S> {
    inner: S,
    conn: Arc<Conn>,
    /// Whether reads still need watching: HTTP/1.1 only. An HTTP/2 client
    /// sends frames (pings, window updates, settings) between requests,
    /// and h2 bounds a header block on its own.
    watching: bool,
    /// Whether the protocol is still to be told from the first bytes.
    first_read: bool,
}

impl<S> HeadClock<S> {
    /// `negotiated_h2`: the TLS handshake chose HTTP/2 by ALPN.
    pub(super) fn new(inner: S, conn: Arc<Conn>, negotiated_h2: bool) -> Self {
        HeadClock {
            inner,
            conn,
            watching: !negotiated_h2,
            first_read: !negotiated_h2,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for HeadClock<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if this.watching {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                if this.first_read {
                    this.first_read = false;
                    let n = read.len().min(H2_PREFACE_START.len());
                    if read[..n] == H2_PREFACE_START[..n] {
                        this.watching = false;
                        return polled;
                    }
                }
                this.conn.note_head_bytes();
            }
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadClock<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Conn {
    /// Bytes arrived: when no request is in flight they begin the next
    /// request head, whose deadline starts now (the first such byte counts).
    fn note_head_bytes(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            let now = self.opened.elapsed().as_millis() as u64 + 1;
            let _ = self
                .head_since
                .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// A request head arrived in full: its deadline is met.
    pub(super) fn head_complete(&self) {
        self.head_since.store(0, Ordering::Relaxed);
    }

    /// How long the head now arriving has taken, if one is arriving.
    pub(super) fn head_waiting(&self) -> Option<std::time::Duration> {
        match self.head_since.load(Ordering::Relaxed) {
            0 => None,
            since => {
                let now = self.opened.elapsed().as_millis() as u64 + 1;
                Some(std::time::Duration::from_millis(now.saturating_sub(since)))
            }
        }
    }
}
