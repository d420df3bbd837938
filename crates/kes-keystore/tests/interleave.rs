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
use kes_testkit::interleave;

fn seed() -> u64 {
    match std::env::var("KES_INTERLEAVE_SEED") {
        Ok(seed) => seed.parse().expect("KES_INTERLEAVE_SEED is a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

fn schedules(default: usize) -> usize {
    std::env::var("KES_INTERLEAVE_SCHEDULES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory() {
    let seed = seed();
    eprintln!("KES_INTERLEAVE_SEED={seed}");
    let started = Instant::now();
    let store: Arc<dyn KeyStore> = Arc::new(MemKeyStore::new());
    let report = interleave::check(store, schedules(3000), seed).await;
    eprintln!("memory: {report:?} in {:?}", started.elapsed());
    assert!(report.effective_mutations > report.schedules, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs() {
    let seed = seed();
    eprintln!("KES_INTERLEAVE_SEED={seed}");
    let started = Instant::now();
    let total = schedules(1500);
    // A fresh directory per batch: the checker deletes what a schedule
    // created, but directories keep their size.
    let batch = 250;
    let mut done = 0;
    let mut batch_seed = seed;
    while done < total {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn KeyStore> = Arc::new(FsKeyStore::open(dir.path()).unwrap());
        let n = batch.min(total - done);
        let report = interleave::check(Arc::clone(&store), n, batch_seed).await;
        assert!(report.effective_mutations > report.schedules, "{report:?}");
        store.close().await;
        done += n;
        batch_seed = batch_seed.wrapping_add(1);
    }
    eprintln!("fs: {done} schedules in {:?}", started.elapsed());
}
