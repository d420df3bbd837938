//! The jittery store handles whose pauses make the mutations interleave.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

/// Runs the handles of one schedule (at least one) on `store` at once, each
/// through a [`Jittery`] store of its own and with a generator of its own,
/// both seeded from `seed` and the handle's number, and waits for all of
/// them. `handle_ops(store, handle, rng)` is what one handle does.
pub(super) async fn run_handles<F, Fut>(
    store: &Arc<dyn KeyStore>,
    seed: u64,
    handles: usize,
    max_sleep: Duration,
    handle_ops: F,
) -> Result<(), String>
where
    F: Fn(Arc<dyn KeyStore>, usize, Rng) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut tasks = Vec::new();
    for handle in 0..handles.max(1) {
        let handle_seed = seed ^ (handle as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let jittery: Arc<dyn KeyStore> =
            Arc::new(Jittery::new(Arc::clone(store), handle_seed, max_sleep));
        let rng = Rng::new(handle_seed.rotate_left(17));
        tasks.push(tokio::spawn(handle_ops(jittery, handle, rng)));
    }
    for task in tasks {
        task.await.map_err(|e| format!("a handle panicked: {e}"))?;
    }
    Ok(())
}
