//! The interleaving checker (kes_testkit::interleave) on the memory and fs
//! stores: thousands of random schedules of create, delete, rotate and
//! retire, with data keys generated and decrypted in between, from several
//! handles on one store with random pauses around every store call.
//!
//! `KES_INTERLEAVE_SEED=<n>` runs the schedules of that seed again (a
//! failure prints it); otherwise the seed is taken from the clock, so
//! every run tries new schedules.

use std::sync::Arc;
use std::time::Instant;

use kes_keystore::fs::FsKeyStore;
use kes_keystore::memory::MemKeyStore;
use kes_keystore::KeyStore;
use kes_testkit::interleave::{self, Options, Report};

/// Runs the schedules and reports every failure (how many failed is what
/// a run against a broken store shows), then fails on the first one.
async fn run(store: Arc<dyn KeyStore>, schedules: usize, seed: u64, options: Options) -> Report {
    let report = interleave::run(store, schedules, seed, options, false).await;
    eprintln!(
        "{} of {} schedules failed ({} operations, {} answered OK, {} mutations took effect)",
        report.failures.len(),
        report.schedules,
        report.ops,
        report.ok,
        report.effective_mutations
    );
    if let Some((seed, failure)) = report.failures.first() {
        panic!("interleaving schedule with seed {seed} failed: {failure}");
    }
    assert!(report.effective_mutations > report.schedules, "{report:?}");
    report
}

/// A few hundred schedules on each store, for the fast tier; `memory` and
/// `fs` run thousands.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_and_fs_briefly() {
    let seed = interleave::seed_from_env();
    run(Arc::new(MemKeyStore::new()), 200, seed, Options::default()).await;
    let dir = batch_dir(1);
    let store: Arc<dyn KeyStore> = Arc::new(FsKeyStore::open(dir.path()).unwrap());
    run(Arc::clone(&store), 100, seed ^ 1, Options::default()).await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow: scripts/test runs it"]
async fn memory() {
    let seed = interleave::seed_from_env();
    let started = Instant::now();
    let store: Arc<dyn KeyStore> = Arc::new(MemKeyStore::new());
    // Most schedules only yield between store calls (fast; the memory
    // store's calls never wait), some sleep too.
    let yields = Options {
        max_sleep: std::time::Duration::ZERO,
        ..Options::default()
    };
    let total = interleave::schedules_from_env(3000);
    run(Arc::clone(&store), total - total / 5, seed, yields).await;
    run(store, total / 5, seed ^ 1, Options::default()).await;
    eprintln!("memory: {total} schedules in {:?}", started.elapsed());
}

/// A directory for a batch of fs schedules: the first batch on the disk
/// (where every create and rename waits for fsync, which widens the
/// windows between store calls), the others on /dev/shm if it is a tmpfs
/// (the same file-system calls without the wait, so that thousands of
/// schedules fit in the test's time).
fn batch_dir(batch: usize) -> tempfile::TempDir {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let shm = mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some("/dev/shm") && l.contains(" tmpfs "));
    if batch > 0 && shm {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow: scripts/test runs it"]
async fn fs() {
    let seed = interleave::seed_from_env();
    let started = Instant::now();
    let total = interleave::schedules_from_env(1500);
    // A fresh directory per batch: the checker deletes what a schedule
    // created, but directories keep their size.
    let size = 250;
    let mut done = 0;
    let mut batch = 0;
    while done < total {
        let dir = batch_dir(batch);
        let store: Arc<dyn KeyStore> = Arc::new(FsKeyStore::open(dir.path()).unwrap());
        let n = size.min(total - done);
        run(
            Arc::clone(&store),
            n,
            seed.wrapping_add(batch as u64),
            Options::default(),
        )
        .await;
        store.close().await;
        done += n;
        batch += 1;
    }
    eprintln!("fs: {done} schedules in {:?}", started.elapsed());
}

/// Deletion with a recovery window: random schedules of create, delete
/// (at once and with a window), restore, purge, rotate and read, each
/// checked for linearizability against the model of
/// `kes_testkit::interleave::run_lifecycle`. A few hundred for the fast
/// tier; `deletion_lifecycle_on_memory_and_fs` runs thousands.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deletion_lifecycle_briefly() {
    let seed = interleave::seed_from_env();
    let memory: Arc<dyn KeyStore> = Arc::new(MemKeyStore::new());
    interleave::check_lifecycle_from_env_with(memory, 200, seed, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow: scripts/test runs it"]
async fn deletion_lifecycle_on_memory_and_fs() {
    let seed = interleave::seed_from_env();
    let total = interleave::schedules_from_env(2000);
    let started = Instant::now();
    let memory: Arc<dyn KeyStore> = Arc::new(MemKeyStore::new());
    let report = interleave::check_lifecycle_from_env_with(memory, total, seed, true).await;
    let dir = batch_dir(1);
    let fs: Arc<dyn KeyStore> = Arc::new(FsKeyStore::open(dir.path()).unwrap());
    let on_fs =
        interleave::check_lifecycle_from_env_with(Arc::clone(&fs), total / 4, seed ^ 1, true).await;
    fs.close().await;
    eprintln!(
        "lifecycle: {} + {} schedules in {:?}",
        report.schedules,
        on_fs.schedules,
        started.elapsed()
    );
}
