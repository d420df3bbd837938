//! The queue of each log and its writer thread: lines wait in a queue
//! bounded in bytes (queuing never waits) until the log's thread writes
//! them out in batches.

use super::audit::Stall;
use super::LogKind;
use crate::http::metrics::Metrics;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// A write batch; the writer thread issues one write(2) per batch.
const BATCH_BYTES: usize = 64 * 1024;

/// How long the audit writer waits before retrying a failed write.
const WRITE_RETRY: Duration = Duration::from_millis(100);

/// What a writer thread receives.
pub(super) enum Msg {
    /// A line with its newline, charged to the queue by its length.
    Line(String),
    /// Signals once everything queued before is written.
    Flush(mpsc::Sender<()>),
    /// Makes an idle writer look at its sink slot.
    Wake,
}

/// A queue of lines bounded in bytes; enqueueing never waits.
pub(super) struct Queue {
    pub(super) kind: LogKind,
    pub(super) tx: mpsc::Sender<Msg>,
    /// Bytes queued or being written, plus reservations.
    pub(super) used: AtomicUsize,
    pub(super) cap: usize,
    /// Lines dropped since the writer last reported drops.
    pub(super) unreported_drops: AtomicU64,
    pub(super) metrics: Arc<Metrics>,
}

impl Queue {
    /// Takes `n` bytes of room, if there is that much.
    pub(super) fn charge(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + n <= self.cap).then_some(used + n)
            })
            .is_ok()
    }

    pub(super) fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Queues a line whose length is already charged.
    pub(super) fn send_charged(&self, line: String) {
        let n = line.len();
        if self.tx.send(Msg::Line(line)).is_err() {
            self.release(n);
        }
    }

    /// Queues a line if there is room; counts it dropped otherwise.
    pub(super) fn push(&self, line: String) -> bool {
        if self.charge(line.len()) {
            self.send_charged(line);
            true
        } else {
            self.dropped();
            false
        }
    }

    pub(super) fn dropped(&self) {
        self.unreported_drops.fetch_add(1, Ordering::Relaxed);
        match self.kind {
            LogKind::Audit => self.metrics.audit_dropped(),
            LogKind::Error => self.metrics.error_dropped(),
        }
    }
}

/// What a writer thread does besides writing.
pub(super) struct Writer {
    pub(super) queue: Arc<Queue>,
    pub(super) out: Box<dyn Write + Send>,
    /// Replaces `out` before the next write when set (audit sink reload).
    pub(super) next: Arc<Mutex<Option<Box<dyn Write + Send>>>>,
    /// The error log reports its dropped lines with this line.
    pub(super) dropped_line: Option<Box<dyn Fn(u64) -> String + Send>>,
    pub(super) stall: Option<Arc<Stall>>,
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

    pub(super) fn run(mut self, rx: mpsc::Receiver<Msg>) {
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
