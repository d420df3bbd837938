//! `/v1/log/*` subscribers: capped per log and per identity, reading from
//! a shared ring of lines, ended when the server stops or a reload takes
//! their right to follow the log.

use super::error::error_stream_line;
use super::slog::{slog_time, slog_value};
use super::{LogKind, Logs, MAX_SUBSCRIBERS, MAX_SUBSCRIBERS_PER_IDENTITY, TOO_MANY_SUBSCRIBERS};
use bytes::Bytes;
use kes_core::ApiError;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};

/// The streams of one log that one identity follows.
pub(super) struct Followers {
    pub(super) count: usize,
    /// Set to end these streams: the identity may no longer follow the log.
    pub(super) revoked: Arc<watch::Sender<bool>>,
}

impl Logs {
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
