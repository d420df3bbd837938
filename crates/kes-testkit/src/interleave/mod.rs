//! The interleaving checker of the key-mutation protocol (docs/rotation.md,
//! "The mutation protocol").
//!
//! Several handles on one key store create, delete, rotate and retire a
//! few keys at the same moment, and generate and decrypt data keys with
//! them, through [`Jittery`] stores that pause at random before and after
//! every store call, so that the steps of the mutations interleave in many
//! orders. Every operation is recorded with its answer and its interval on
//! a logical clock; after each schedule the history and the store's final
//! state are checked against what linearizability allows (see [`check`]).
//!
//! The handles use the functions of `kes_keystore::versions` directly, as
//! the server's [`KeyCache`](kes_keystore::cache::KeyCache) does on a miss
//! and for every mutation; the cache itself is left out on purpose: a
//! cached key outlives its delete on other handles by design (until the
//! cache expiry), which would hide what the store protocol does.

mod history;
mod jitter;
mod lifecycle;
mod verify;

pub use jitter::{Jittery, Rng};
pub use lifecycle::run_lifecycle;

use history::{cleanup, schedule, Answer};
use verify::verify;

use std::sync::Arc;
use std::time::Duration;

use kes_keystore::KeyStore;
/// The shape of the schedules [`run`] tries.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Handles working on the store at once.
    pub handles: usize,
    /// Key names they share (fresh names in every schedule).
    pub names: usize,
    /// Operations each handle does per schedule.
    pub ops_per_handle: usize,
    /// The longest pause of [`Jittery`].
    pub max_sleep: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            handles: 4,
            names: 2,
            ops_per_handle: 6,
            max_sleep: Duration::from_millis(2),
        }
    }
}

/// What a schedule's operations answered, in sum over a [`run`].
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Schedules run.
    pub schedules: usize,
    /// Operations done, and how many answered OK.
    pub ops: usize,
    /// Operations that answered OK.
    pub ok: usize,
    /// Mutations that answered OK: creates, deletes, rotations, retirements
    /// that retired at least one version.
    pub effective_mutations: usize,
    /// The failed schedules: their seed and what was violated.
    pub failures: Vec<(u64, String)>,
}

/// The seed of a test's schedules: `KES_INTERLEAVE_SEED` (to run the
/// schedules of a failure again; a failure prints its seed), else one from
/// the clock, so that every run tries new schedules. Printed either way.
pub fn seed_from_env() -> u64 {
    let seed = match std::env::var("KES_INTERLEAVE_SEED") {
        Ok(seed) => seed.parse().expect("KES_INTERLEAVE_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    };
    eprintln!("KES_INTERLEAVE_SEED={seed}");
    seed
}

/// How many schedules a test runs: `KES_INTERLEAVE_SCHEDULES` (to widen a
/// run), else `default`.
pub fn schedules_from_env(default: usize) -> usize {
    std::env::var("KES_INTERLEAVE_SCHEDULES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// [`run_lifecycle`] with the seed and the number of schedules from the
/// environment ([`seed_from_env`], [`schedules_from_env`]), panicking at
/// the first failure; asserts that mutations took effect. `plain_deletes`:
/// see [`run_lifecycle`].
pub async fn check_lifecycle_from_env(
    store: Arc<dyn KeyStore>,
    default_schedules: usize,
    plain_deletes: bool,
) -> Report {
    let seed = seed_from_env();
    check_lifecycle_from_env_with(
        store,
        schedules_from_env(default_schedules),
        seed,
        plain_deletes,
    )
    .await
}

/// [`check_lifecycle_from_env`] with the number of schedules and the seed
/// given (a test that runs several batches derives them).
pub async fn check_lifecycle_from_env_with(
    store: Arc<dyn KeyStore>,
    schedules: usize,
    seed: u64,
    plain_deletes: bool,
) -> Report {
    let started = std::time::Instant::now();
    let report = run_lifecycle(store, schedules, seed, Options::default(), plain_deletes).await;
    eprintln!(
        "lifecycle: {} schedules, {} operations, {} mutations took effect, {} failed, in {:?}",
        report.schedules,
        report.ops,
        report.effective_mutations,
        report.failures.len(),
        started.elapsed()
    );
    if let Some((seed, failure)) = report.failures.first() {
        panic!("lifecycle schedule with seed {seed} failed: {failure}");
    }
    assert!(report.effective_mutations > report.schedules, "{report:?}");
    report
}

/// [`check`] with the seed and the number of schedules from the
/// environment ([`seed_from_env`], [`schedules_from_env`]): what a
/// backend's test calls. Prints what the schedules did and asserts that
/// mutations took effect (a store that refuses everything checks nothing).
pub async fn check_from_env(store: Arc<dyn KeyStore>, default_schedules: usize) -> Report {
    let seed = seed_from_env();
    let started = std::time::Instant::now();
    let report = check(store, schedules_from_env(default_schedules), seed).await;
    eprintln!(
        "{} schedules, {} operations, {} mutations took effect, in {:?}",
        report.schedules,
        report.ops,
        report.effective_mutations,
        started.elapsed()
    );
    assert!(report.effective_mutations > report.schedules, "{report:?}");
    report
}

/// Runs `schedules` random schedules on `store` (seeds derived from
/// `seed`, printed with every failure) and panics on the first violation
/// with the seed, the violated invariant and the schedule's history.
///
/// This is what a backend's test calls, e.g. for a store whose calls go
/// over the network, with fewer schedules:
///
/// ```text
/// kes_testkit::interleave::check(Arc::new(store), 200, 7).await;
/// ```
///
/// Each schedule uses fresh key names (`il<seed>-<n>`) and deletes them at
/// its end, so one store serves any number of schedules. The store must
/// implement [`KeyStore::replace_if`] and [`KeyStore::delete_if`].
///
/// Checked after every schedule, on the store's final state and the
/// history of answers (an operation's interval runs from its first to
/// its last store call; two operations whose intervals overlap may take
/// effect in either order; an answer other than OK, exists or not-found
/// may or may not have taken effect):
/// - **no key resurrected**: a key that exists at the end comes from a
///   create that answered OK (or failed in between), and no delete that
///   answered OK began after that create had answered; no operation read a
///   key whose delete had answered before the operation began;
/// - **no key lost**: a create that answered OK, with no delete overlapping
///   or after it, left its key in place; a create that answered "exists"
///   and an operation that answered "not found" overlapped a moment when
///   the key existed, respectively did not;
/// - **no key overwritten**: every version of a key at the end holds the
///   material that its create (version 1) or its rotation (version n)
///   reported, and no two rotations reported the same version;
/// - **no version lost while its key lives**: every version a rotation
///   reported is in the key at the end unless a retirement that could have
///   run after it kept fewer versions than existed above it;
/// - **conditional rotations** (the schedule's, `rotate_if`): one that
///   rotated created exactly the version after the one it read, so two
///   that read the same version never both create one; one that did not
///   rotate overlapped another rotation or a delete that may have moved
///   the key on;
/// - **ciphertexts**: every data key sealed under a retained version of the
///   key at the end decrypts to its plaintext; one sealed under a retired
///   version, or under a key that was deleted, does not (nor with a new key
///   of the same name); a decrypt during the schedule failed only if a
///   delete or retirement overlapped it, and succeeded only if no delete
///   or retirement of its version had answered before it began.
pub async fn check(store: Arc<dyn KeyStore>, schedules: usize, seed: u64) -> Report {
    let report = run(store, schedules, seed, Options::default(), true).await;
    if let Some((seed, failure)) = report.failures.first() {
        panic!("interleaving schedule with seed {seed} failed: {failure}");
    }
    report
}

/// Runs `schedules` schedules like [`check`] but returns every failure
/// instead of panicking (unless `stop_at_first`, which stops after one).
pub async fn run(
    store: Arc<dyn KeyStore>,
    schedules: usize,
    seed: u64,
    options: Options,
    stop_at_first: bool,
) -> Report {
    let mut report = Report::default();
    let mut seeds = Rng::new(seed);
    for _ in 0..schedules {
        let seed = seeds.next_u64();
        let history = schedule(&store, seed, options).await;
        report.schedules += 1;
        report.ops += history.ops.len();
        report.ok += history
            .ops
            .iter()
            .filter(|o| o.answer == Answer::Ok)
            .count();
        report.effective_mutations += history
            .ops
            .iter()
            .filter(|o| o.answer == Answer::Ok && o.kind.mutates() && !o.kind.skipped())
            .count();
        let verdict = verify(&store, &history).await;
        cleanup(&store, &history.names).await;
        if let Err(failure) = verdict {
            report
                .failures
                .push((seed, format!("{failure}\nhistory:\n{}", history.render())));
            if stop_at_first {
                break;
            }
        }
    }
    report
}

/// The key names of one schedule: `options.names` of them (at least one),
/// `<prefix><seed>-<n>`, so that no schedule meets another's keys on a
/// shared store.
fn schedule_names(prefix: &str, seed: u64, options: &Options) -> Vec<String> {
    (0..options.names.max(1))
        .map(|n| format!("{prefix}{seed:016x}-{n}"))
        .collect()
}
