//! The rotation schedule (`lifecycle.rotate`, docs/rotation.md,
//! "Scheduled rotation"): every server checks, at start and then every
//! [`check_interval`], which keys the rules name are due (their current
//! version older than the rule's `every`) and rotates them.
//!
//! Several servers on one key store check the same keys at about the same
//! time. Each rotates with [`KeyCache::rotate_if`]: only if the key still
//! has the version it read. The create-only write of the next version's
//! entry decides between them: one server creates version N+1, the others
//! are told it exists, read the key again, find N+1 current and do
//! nothing. So a key gets one new version per period, whatever the number
//! of servers, and a server that restarts finds its keys not due.
//!
//! A check runs in a task of its own, one key after the other, so it never
//! holds up requests and never puts more than one store call at a time on
//! the store. A key-store failure postpones the check to the next interval
//! and is logged once per check (never per key).

use crate::http::metrics::Metrics;
use crate::state::{Server, State};
use kes_keystore::cache::KeyCache;
use kes_keystore::Error;
use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Checks run at least this often, however long the shortest period.
pub(crate) const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Checks run at most this often, however short the shortest period. Also
/// how soon a reload's new rules are looked at.
pub(crate) const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// How often keys are checked for a shortest rule period of `shortest`:
/// a hundredth of it (a key is rotated at most 1 % of its period late),
/// between [`MIN_CHECK_INTERVAL`] and [`MAX_CHECK_INTERVAL`].
pub(crate) fn check_interval(shortest: Duration) -> Duration {
    (shortest / 100).clamp(MIN_CHECK_INTERVAL, MAX_CHECK_INTERVAL)
}

/// When a key whose current version was created at `current_created` is
/// due for rotation under a period of `every`. The far future if the sum
/// does not fit in a date.
pub(crate) fn due_at(current_created: OffsetDateTime, every: Duration) -> OffsetDateTime {
    time::Duration::try_from(every)
        .ok()
        .and_then(|every| current_created.checked_add(every))
        .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
}

/// Starts the schedule of `server`: it follows the rules of the current
/// state (a reload's new rules are checked at once) and ends when
/// `shutdown` turns true.
pub(crate) fn start(server: Arc<Server>, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(run(server, shutdown))
}

async fn run(server: Arc<Server>, mut shutdown: watch::Receiver<bool>) {
    // The state the last check ran with, weakly: holding it would keep a
    // replaced state's key store open after a reload.
    let mut checked: Weak<State> = Weak::new();
    let mut next = tokio::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let state = server.state.load_full();
        if !std::ptr::eq(checked.as_ptr(), Arc::as_ptr(&state)) {
            // Started or reloaded: check with these rules at once.
            checked = Arc::downgrade(&state);
            next = tokio::time::Instant::now();
        }
        if let Some(shortest) = state.lifecycle.shortest_rotation_period() {
            if tokio::time::Instant::now() >= next {
                tokio::select! {
                    () = check(&server, &state) => {}
                    _ = shutdown.changed() => return,
                }
                next = tokio::time::Instant::now() + check_interval(shortest);
            }
        }
        drop(state);
        let wait = next
            .saturating_duration_since(tokio::time::Instant::now())
            .clamp(Duration::from_millis(10), MIN_CHECK_INTERVAL);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// What one check found wrong: logged as one line when it ends.
#[derive(Default)]
struct Failures {
    count: usize,
    first: Option<(String, Error)>,
}

impl Failures {
    fn add(&mut self, metrics: &Metrics, name: &str, e: Error) {
        metrics.scheduled_rotation_failure();
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((name.to_owned(), e));
        }
    }
}

/// One check of every key the rules name, one key at a time. A reload
/// ends it early: the new state's check starts at once, and this one must
/// not keep the replaced state's key store in use.
async fn check(server: &Server, state: &Arc<State>) {
    let metrics = &*server.metrics;
    let cache = &state.cache;
    if cache.is_offline() {
        metrics.scheduled_rotation_failure();
        tracing::error!("scheduled rotation: key store is offline; the check is postponed");
        return;
    }
    let names = match names(state).await {
        Ok(names) => names,
        Err(e) => {
            metrics.scheduled_rotation_failure();
            tracing::error!(error = %e, "scheduled rotation: listing keys failed; the check is postponed");
            return;
        }
    };
    let created_by = state.admin.to_string();
    let mut failures = Failures::default();
    for name in &names {
        if !Arc::ptr_eq(&server.state.load(), state) {
            break;
        }
        let Some(every) = state.lifecycle.rotation_period(name) else {
            continue;
        };
        match rotate_if_due(cache, name, every, &created_by).await {
            Ok(Some(version)) => {
                metrics.scheduled_rotation();
                tracing::info!(
                    "scheduled rotation: key '{name}' rotated to version {version} (every {})",
                    kes_core::duration::format_duration(every)
                );
            }
            Ok(None) => {}
            Err(e) if e.is_unreachable() => {
                // The store is down: the other keys would fail alike.
                failures.add(metrics, name, e);
                break;
            }
            Err(e) => failures.add(metrics, name, e),
        }
    }
    if let Some((name, e)) = failures.first {
        tracing::error!(
            error = %e,
            "scheduled rotation: {} of {} keys failed (first: '{name}'); they are tried again at the next check",
            failures.count,
            names.len()
        );
    }
}

/// Every key some rule names: the names themselves (whether they exist is
/// found out when they are read) and the keys the patterns match, from
/// the store's listing.
async fn names(state: &State) -> Result<BTreeSet<String>, Error> {
    let mut names = BTreeSet::new();
    for rule in &state.lifecycle.rotate {
        for pattern in &rule.keys {
            match pattern.strip_suffix('*') {
                Some(prefix) => names.extend(state.cache.list(prefix).await?),
                None => {
                    names.insert(pattern.clone());
                }
            }
        }
    }
    Ok(names)
}

/// Rotates `name` if its current version is older than `every`: the
/// version it created, or `None` if the key was not due, is gone, or
/// another server rotated it first.
async fn rotate_if_due(
    cache: &KeyCache,
    name: &str,
    every: Duration,
    created_by: &str,
) -> Result<Option<u32>, Error> {
    let ring = match cache.get(name).await {
        Ok(ring) => ring,
        Err(Error::KeyNotFound) => return Ok(None),
        Err(e) => return Err(e),
    };
    // A cached key may be behind the store (another server rotated it):
    // then it looks due when it is not, and the conditional rotation,
    // which reads the store, finds the newer version and does nothing.
    if OffsetDateTime::now_utc() < due_at(ring.created_at, every) {
        return Ok(None);
    }
    let expected = (ring.lineage(), ring.current_version());
    match cache.rotate_if(name, expected, created_by).await {
        Ok(rotated) => Ok(rotated.map(|r| r.version)),
        Err(Error::KeyNotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_is_a_hundredth_of_the_shortest_period_within_bounds() {
        let secs = Duration::from_secs;
        assert_eq!(check_interval(secs(2)), secs(1));
        assert_eq!(check_interval(secs(100)), secs(1));
        assert_eq!(check_interval(secs(1000)), secs(10));
        assert_eq!(check_interval(secs(86_400)), Duration::from_secs(864));
        assert_eq!(check_interval(secs(90 * 86_400)), secs(3600));
        assert_eq!(check_interval(Duration::ZERO), secs(1));
    }

    #[test]
    fn a_key_is_due_one_period_after_its_current_version() {
        let created = time::macros::datetime!(2024-01-12 10:39:20.5 UTC);
        let day = Duration::from_secs(86_400);
        assert_eq!(
            due_at(created, 90 * day),
            time::macros::datetime!(2024-04-11 10:39:20.5 UTC)
        );
        assert_eq!(
            due_at(created, Duration::from_secs(2)),
            time::macros::datetime!(2024-01-12 10:39:22.5 UTC)
        );
        // Beyond the calendar: never due.
        let never = due_at(created, Duration::MAX);
        assert!(never > created + time::Duration::days(365 * 1000));
        assert!(OffsetDateTime::now_utc() < never);
    }
}
