//! The jittery store handles whose pauses make the mutations interleave.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Options;
use kes_keystore::listing::ListPage;
use kes_keystore::{Error, KeyStore};
use zeroize::Zeroizing;
/// A small, seeded random generator (splitmix64): schedules are chosen
/// from the seed, so a failing seed can be run again.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A key store that pauses before and after every call: it yields to the
/// runtime a random number of times (0–3), and now and then (one call in
/// `1 / sleep_one_in`) sleeps up to `max_sleep`. Yields reorder tasks on
/// one runtime; sleeps let slower stores' calls (fs I/O threads, network)
/// overtake each other.
pub struct Jittery {
    inner: Arc<dyn KeyStore>,
    rng: Mutex<Rng>,
    max_sleep: Duration,
    sleep_one_in: u64,
}

impl Jittery {
    /// `inner` behind pauses chosen by a generator seeded with `seed`.
    pub fn new(inner: Arc<dyn KeyStore>, seed: u64, max_sleep: Duration) -> Self {
        Jittery {
            inner,
            rng: Mutex::new(Rng::new(seed)),
            max_sleep,
            sleep_one_in: 8,
        }
    }

    async fn pause(&self) {
        let (yields, sleep) = {
            let mut rng = kes_core::sync::lock(&self.rng);
            let yields = rng.below(4);
            let micros = self.max_sleep.as_micros() as u64;
            let sleep = (micros > 0 && rng.below(self.sleep_one_in) == 0)
                .then(|| Duration::from_micros(rng.below(micros + 1)));
            (yields, sleep)
        };
        for _ in 0..yields {
            tokio::task::yield_now().await;
        }
        if let Some(sleep) = sleep {
            tokio::time::sleep(sleep).await;
        }
    }
}

#[async_trait::async_trait]
impl KeyStore for Jittery {
    async fn status(&self) -> Result<Duration, Error> {
        self.inner.status().await
    }
    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.pause().await;
        let r = self.inner.create(name, value).await;
        self.pause().await;
        r
    }
    async fn get(&self, name: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
        self.pause().await;
        let r = self.inner.get(name).await;
        self.pause().await;
        r
    }
    async fn replace_if(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        self.pause().await;
        let r = self.inner.replace_if(name, current, value).await;
        self.pause().await;
        r
    }
    async fn delete_if(&self, name: &str, current: &[u8]) -> Result<(), Error> {
        self.pause().await;
        let r = self.inner.delete_if(name, current).await;
        self.pause().await;
        r
    }
    async fn delete(&self, name: &str) -> Result<(), Error> {
        self.pause().await;
        let r = self.inner.delete(name).await;
        self.pause().await;
        r
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.pause().await;
        let r = self.inner.list(prefix).await;
        self.pause().await;
        r
    }
    async fn list_page(
        &self,
        prefix: &str,
        start: std::ops::Bound<&str>,
        limit: usize,
    ) -> Result<ListPage, Error> {
        self.pause().await;
        let r = self.inner.list_page(prefix, start, limit).await;
        self.pause().await;
        r
    }
}

/// One operation of a handle, as [`run_handles`] calls it.
pub(super) type OpFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Runs the handles of one schedule (`options.handles`, at least one) on
/// `store` at once and waits for all of them. Each goes through a
/// [`Jittery`] store of its own and has a generator of its own, both seeded
/// from `seed` and the handle's number, and calls `op` (the checker's
/// operation: store, key names, handle, generator, the checker's shared
/// record) `options.ops_per_handle` times.
pub(super) async fn run_handles<S, F>(
    store: &Arc<dyn KeyStore>,
    seed: u64,
    options: &Options,
    names: &[String],
    shared: &Arc<S>,
    op: F,
) -> Result<(), String>
where
    S: Send + Sync + 'static,
    F: for<'a> Fn(&'a dyn KeyStore, &'a [String], usize, &'a mut Rng, &'a S) -> OpFuture<'a>
        + Send
        + Sync
        + 'static,
{
    let op = Arc::new(op);
    let mut tasks = Vec::new();
    for handle in 0..options.handles.max(1) {
        let handle_seed = seed ^ (handle as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let jittery: Arc<dyn KeyStore> = Arc::new(Jittery::new(
            Arc::clone(store),
            handle_seed,
            options.max_sleep,
        ));
        let (op, shared, names) = (Arc::clone(&op), Arc::clone(shared), names.to_vec());
        let ops = options.ops_per_handle;
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(handle_seed.rotate_left(17));
            for _ in 0..ops {
                op(&*jittery, &names, handle, &mut rng, &shared).await;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| format!("a handle panicked: {e}"))?;
    }
    Ok(())
}
