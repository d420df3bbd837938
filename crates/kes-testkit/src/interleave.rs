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

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kes_core::ring::{KeyRing, Lineage};
use kes_core::{KeyAlgorithm, KeyVersion};
use kes_keystore::listing::ListPage;
use kes_keystore::versions;
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
/// ```ignore
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
            .filter(|o| o.answer == Answer::Ok && o.kind.mutates())
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    Exists,
    NotFound,
    /// Any other error: the operation may or may not have taken effect.
    Failed,
}

impl Answer {
    fn of<T>(r: &Result<T, Error>) -> Self {
        match r {
            Ok(_) => Answer::Ok,
            Err(Error::KeyExists) => Answer::Exists,
            Err(Error::KeyNotFound) => Answer::NotFound,
            Err(_) => Answer::Failed,
        }
    }
    /// Answered OK or may have taken effect.
    fn maybe(self) -> bool {
        matches!(self, Answer::Ok | Answer::Failed)
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Create {
        version: Arc<KeyVersion>,
        lineage: Lineage,
    },
    Delete,
    /// `version` and `material` set when it answered OK.
    Rotate {
        reported: Option<(Lineage, u32, Arc<KeyVersion>)>,
    },
    /// The first version and lineage of the key it answered.
    Retire {
        keep: usize,
        answered: Option<(Lineage, u32)>,
    },
    /// The sealed data key's index in [`History::sealed`].
    Generate {
        sealed: Option<usize>,
    },
    /// Whether the ciphertext `sealed` decrypted to its plaintext.
    Decrypt {
        sealed: usize,
        opened: Option<bool>,
    },
}

impl Kind {
    fn mutates(&self) -> bool {
        matches!(
            self,
            Kind::Create { .. } | Kind::Delete | Kind::Rotate { .. } | Kind::Retire { .. }
        )
    }
}

#[derive(Debug, Clone)]
struct Op {
    handle: usize,
    name: usize,
    start: u64,
    end: u64,
    kind: Kind,
    answer: Answer,
    /// The lineage of the key this operation read (if it read one).
    read: Option<Lineage>,
    error: Option<String>,
}

struct Sealed {
    name: usize,
    lineage: Lineage,
    version: u32,
    ciphertext: Vec<u8>,
    plaintext: Zeroizing<Vec<u8>>,
    /// The generate's index in [`History::ops`].
    op: usize,
}

struct History {
    names: Vec<String>,
    ops: Vec<Op>,
    sealed: Vec<Sealed>,
}

impl History {
    fn render(&self) -> String {
        let mut out = String::new();
        let mut ops: Vec<&Op> = self.ops.iter().collect();
        ops.sort_by_key(|o| o.start);
        for o in ops {
            let kind = match &o.kind {
                Kind::Create { lineage, .. } => format!("create (lineage {})", lineage.to_hex()),
                Kind::Delete => "delete".into(),
                Kind::Rotate { reported } => match reported {
                    Some((l, n, _)) => format!("rotate -> {}@{n}", l.to_hex()),
                    None => "rotate".into(),
                },
                Kind::Retire { keep, answered } => match answered {
                    Some((l, first)) => {
                        format!("retire keep {keep} -> {} first {first}", l.to_hex())
                    }
                    None => format!("retire keep {keep}"),
                },
                Kind::Generate { sealed } => match sealed {
                    Some(i) => {
                        let s = &self.sealed[*i];
                        format!("generate #{i} under {}@{}", s.lineage.to_hex(), s.version)
                    }
                    None => "generate".into(),
                },
                Kind::Decrypt { sealed, opened } => format!("decrypt #{sealed} opened {opened:?}"),
            };
            let _ = writeln!(
                out,
                "  [{:>4},{:>4}] h{} {}: {kind}: {:?}{}",
                o.start,
                o.end,
                o.handle,
                self.names[o.name],
                o.answer,
                o.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
        }
        out
    }
}

/// The shared state of one schedule's handles.
struct Shared {
    clock: AtomicU64,
    ops: Mutex<Vec<Op>>,
    sealed: Mutex<Vec<Sealed>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    kes_core::sync::lock(m)
}

async fn schedule(store: &Arc<dyn KeyStore>, seed: u64, options: Options) -> History {
    let names: Vec<String> = (0..options.names.max(1))
        .map(|n| format!("il{seed:016x}-{n}"))
        .collect();
    let shared = Arc::new(Shared {
        clock: AtomicU64::new(0),
        ops: Mutex::new(Vec::new()),
        sealed: Mutex::new(Vec::new()),
    });
    // Set-up, one step after the other on the store itself: every key
    // exists with 1–4 versions and a data key, so that retirements have
    // versions to retire and decrypts something to open from the start.
    let mut rng = Rng::new(seed.rotate_left(29));
    let setup = options.handles.max(1);
    for n in 0..names.len() {
        do_op(
            &**store,
            &names,
            n,
            Choice::Create,
            setup,
            &mut rng,
            &shared,
        )
        .await;
        for _ in 0..rng.below(4) {
            do_op(
                &**store,
                &names,
                n,
                Choice::Rotate,
                setup,
                &mut rng,
                &shared,
            )
            .await;
        }
        do_op(
            &**store,
            &names,
            n,
            Choice::Generate,
            setup,
            &mut rng,
            &shared,
        )
        .await;
    }
    let mut tasks = Vec::new();
    for handle in 0..options.handles.max(1) {
        let handle_seed = seed ^ (handle as u64 + 1).wrapping_mul(0xa076_1d64_78bd_642f);
        let store: Arc<dyn KeyStore> = Arc::new(Jittery::new(
            Arc::clone(store),
            handle_seed,
            options.max_sleep,
        ));
        let shared = Arc::clone(&shared);
        let names = names.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(handle_seed.rotate_left(17));
            for _ in 0..options.ops_per_handle {
                one_op(&*store, &names, handle, &mut rng, &shared).await;
            }
        }));
    }
    for task in tasks {
        task.await.expect("a schedule's handle panicked");
    }
    let ops = std::mem::take(&mut *locked(&shared.ops));
    let sealed = std::mem::take(&mut *locked(&shared.sealed));
    History { names, ops, sealed }
}

/// What a handle does next.
#[derive(Debug, Clone, Copy)]
enum Choice {
    Create,
    Delete,
    Rotate,
    Retire,
    Generate,
    Decrypt,
}

impl Choice {
    fn random(rng: &mut Rng) -> Self {
        match rng.below(100) {
            0..=11 => Choice::Create,
            12..=25 => Choice::Delete,
            26..=51 => Choice::Rotate,
            52..=73 => Choice::Retire,
            74..=86 => Choice::Generate,
            _ => Choice::Decrypt,
        }
    }
}

async fn one_op(
    store: &dyn KeyStore,
    names: &[String],
    handle: usize,
    rng: &mut Rng,
    shared: &Shared,
) {
    let n = rng.below(names.len() as u64) as usize;
    let choice = Choice::random(rng);
    do_op(store, names, n, choice, handle, rng, shared).await;
}

async fn do_op(
    store: &dyn KeyStore,
    names: &[String],
    n: usize,
    choice: Choice,
    handle: usize,
    rng: &mut Rng,
    shared: &Shared,
) {
    let name = names[n].as_str();
    let start = shared.clock.fetch_add(1, Ordering::SeqCst);
    let mut read = None;
    let (kind, answer, error) = match choice {
        Choice::Create => {
            let version = Arc::new(KeyVersion::generate(KeyAlgorithm::Aes256, "interleave"));
            let value = Zeroizing::new(version.encode().expect("a fresh key encodes"));
            let lineage = Lineage::derive(value.as_bytes());
            let r = store.create(name, value.as_bytes()).await;
            (Kind::Create { version, lineage }, Answer::of(&r), r.err())
        }
        Choice::Delete => {
            let r = versions::delete(store, name).await;
            (Kind::Delete, Answer::of(&r), r.err())
        }
        Choice::Rotate => {
            let r = versions::rotate(store, name, "interleave").await;
            let reported = r.as_ref().ok().map(|rotated| {
                read = Some(rotated.ring.lineage());
                let version = rotated.ring.versions().last().expect("a ring").clone();
                (rotated.ring.lineage(), rotated.version, version)
            });
            (Kind::Rotate { reported }, Answer::of(&r), r.err())
        }
        Choice::Retire => {
            let keep = 1 + rng.below(3) as usize;
            let r = versions::retire(store, name, keep).await;
            let answered = r.as_ref().ok().map(|retired| {
                read = Some(retired.ring.lineage());
                (retired.ring.lineage(), retired.ring.first_version())
            });
            (Kind::Retire { keep, answered }, Answer::of(&r), r.err())
        }
        Choice::Generate => {
            let r = versions::read(store, name).await;
            let sealed = r.as_ref().ok().map(|ring| {
                read = Some(ring.lineage());
                let mut plaintext = Zeroizing::new(vec![0u8; 16]);
                kes_core::random::fill(&mut plaintext);
                let ciphertext = ring.key.encrypt(&plaintext, b"interleave");
                let mut all = locked(&shared.sealed);
                all.push(Sealed {
                    name: n,
                    lineage: ring.lineage(),
                    version: ring.current_version(),
                    ciphertext,
                    plaintext,
                    op: usize::MAX,
                });
                all.len() - 1
            });
            (Kind::Generate { sealed }, Answer::of(&r), r.err())
        }
        Choice::Decrypt => {
            // A data key of this name sealed earlier in the schedule, if any.
            let candidates: Vec<usize> = locked(&shared.sealed)
                .iter()
                .enumerate()
                .filter(|(_, s)| s.name == n && s.op != usize::MAX)
                .map(|(i, _)| i)
                .collect();
            if candidates.is_empty() {
                return;
            }
            let sealed = candidates[rng.below(candidates.len() as u64) as usize];
            let (ciphertext, plaintext) = {
                let all = locked(&shared.sealed);
                (
                    all[sealed].ciphertext.clone(),
                    all[sealed].plaintext.clone(),
                )
            };
            let r = versions::read(store, name).await;
            let opened = r.as_ref().ok().map(|ring| {
                read = Some(ring.lineage());
                ring.decrypt(&ciphertext, b"interleave")
                    .is_ok_and(|p| *p == *plaintext)
            });
            (Kind::Decrypt { sealed, opened }, Answer::of(&r), r.err())
        }
    };
    let end = shared.clock.fetch_add(1, Ordering::SeqCst);
    let mut ops = locked(&shared.ops);
    if let Kind::Generate { sealed: Some(i) } = kind {
        locked(&shared.sealed)[i].op = ops.len();
    }
    ops.push(Op {
        handle,
        name: n,
        start,
        end,
        kind,
        answer,
        read,
        error: error.map(|e| e.to_string()),
    });
}

/// Removes what a schedule left, from the store itself.
async fn cleanup(store: &Arc<dyn KeyStore>, names: &[String]) {
    for name in names {
        let _ = versions::delete(&**store, name).await;
        // Leases and entries of other lineages are removed by the delete;
        // anything a bug left behind goes too, so the next schedule starts
        // from a clean store.
        if let Ok(left) = store.list(&format!("{name}@")).await {
            for entry in left {
                let _ = store.delete(&entry).await;
            }
        }
    }
}

/// Whether `a` answered before `b` began: then `a` took effect before `b`.
fn before(a: &Op, b: &Op) -> bool {
    a.end < b.start
}

/// Whether `a` may have taken effect between `from` and `to`.
fn within(a: &Op, from: &Op, to: &Op) -> bool {
    a.end > from.start && a.start < to.end
}

async fn verify(store: &Arc<dyn KeyStore>, h: &History) -> Result<(), String> {
    for (n, name) in h.names.iter().enumerate() {
        let ops: Vec<&Op> = h.ops.iter().filter(|o| o.name == n).collect();
        let creates = || {
            ops.iter()
                .copied()
                .filter(|o| matches!(o.kind, Kind::Create { .. }))
        };
        let deletes = || {
            ops.iter()
                .copied()
                .filter(|o| matches!(o.kind, Kind::Delete))
        };
        let retires = || {
            ops.iter()
                .copied()
                .filter(|o| matches!(o.kind, Kind::Retire { .. }))
        };
        let rotates = || {
            ops.iter()
                .copied()
                .filter(|o| matches!(o.kind, Kind::Rotate { .. }))
        };
        let create_of = |lineage: Lineage| {
            creates().find(|c| matches!(&c.kind, Kind::Create { lineage: l, .. } if *l == lineage))
        };

        // "exists": some create may have put the key in place after the
        // last delete that answered before this create began.
        for c in creates().filter(|c| c.answer == Answer::Exists) {
            for d in deletes().filter(|d| d.answer == Answer::Ok && before(d, c)) {
                if !creates().any(|x| !std::ptr::eq(x, c) && x.answer.maybe() && within(x, d, c)) {
                    return Err(format!(
                        "{name}: a create answered 'exists' after a delete had answered OK, with no create in between"
                    ));
                }
            }
        }
        // "not found": some delete may have removed the key after the last
        // create that answered before this operation began.
        for o in ops.iter().copied().filter(|o| o.answer == Answer::NotFound) {
            for c in creates().filter(|c| c.answer == Answer::Ok && before(c, o)) {
                if !deletes().any(|x| !std::ptr::eq(x, o) && x.answer.maybe() && within(x, c, o)) {
                    return Err(format!(
                        "{name}: an operation answered 'not found' after a create had answered OK, with no delete in between"
                    ));
                }
            }
        }
        // Nothing reads a key whose delete answered before it began.
        for o in ops.iter().copied() {
            let Some(lineage) = o.read else { continue };
            let Some(c) = create_of(lineage) else {
                return Err(format!(
                    "{name}: an operation read lineage {} that no create made",
                    lineage.to_hex()
                ));
            };
            if deletes().any(|d| d.answer == Answer::Ok && before(c, d) && before(d, o)) {
                return Err(format!(
                    "{name}: an operation read the key of lineage {} after its delete had answered OK (resurrected)",
                    lineage.to_hex()
                ));
            }
        }

        // Rotations reported distinct versions.
        let reported: Vec<(Lineage, u32, &Arc<KeyVersion>, &Op)> = rotates()
            .filter_map(|o| match &o.kind {
                Kind::Rotate {
                    reported: Some((l, v, k)),
                } => Some((*l, *v, k, o)),
                _ => None,
            })
            .collect();
        for (i, a) in reported.iter().enumerate() {
            if reported[i + 1..].iter().any(|b| a.0 == b.0 && a.1 == b.1) {
                return Err(format!(
                    "{name}: two rotations reported version {} of lineage {}",
                    a.1,
                    a.0.to_hex()
                ));
            }
        }

        // Could a retirement have removed version `v` (created by `by`) of
        // `lineage`: one that may have run after it, keeping fewer
        // versions than may have existed above `v`? Versions are numbered
        // without gaps, and a version that existed when the retirement ran
        // was created by a rotation that began before the retirement
        // answered; that rotation reported it or a later number (it
        // retries when a retirement overtook it), or failed.
        let retirable = |lineage: Lineage, v: u32, by: &Op| {
            retires().any(|t| {
                let Kind::Retire { keep, .. } = t.kind else {
                    return false;
                };
                if !t.answer.maybe() || t.end < by.start {
                    return false;
                }
                if rotates().any(|r| r.answer == Answer::Failed && r.start < t.end) {
                    return true;
                }
                let highest = reported
                    .iter()
                    .filter(|(l, _, _, r)| *l == lineage && r.start < t.end)
                    .map(|(_, n, _, _)| *n)
                    .max()
                    .unwrap_or(1);
                highest.saturating_sub(v) as usize >= keep
            })
        };

        let last = match versions::read(&**store, name).await {
            Ok(ring) => Some(ring),
            Err(Error::KeyNotFound) => None,
            Err(e) => return Err(format!("{name}: the final read failed: {e}")),
        };
        match &last {
            Some(ring) => {
                let Some(c) = create_of(ring.lineage()) else {
                    return Err(format!("{name}: the key at the end comes from no create"));
                };
                if !c.answer.maybe() {
                    return Err(format!(
                        "{name}: the key at the end comes from a create that answered {:?}",
                        c.answer
                    ));
                }
                if deletes().any(|d| d.answer == Answer::Ok && before(c, d)) {
                    return Err(format!(
                        "{name}: the key exists at the end although a delete answered OK after its create (resurrected)"
                    ));
                }
                if creates().any(|x| x.answer == Answer::Ok && before(c, x)) {
                    return Err(format!(
                        "{name}: the key at the end is older than a create that answered OK later (overwritten)"
                    ));
                }
                check_versions(
                    name,
                    ring,
                    c,
                    &reported,
                    &rotates().collect::<Vec<_>>(),
                    &retirable,
                )?;
            }
            None => {
                if let Some(c) = creates().find(|c| {
                    c.answer == Answer::Ok
                        && !deletes().any(|d| d.answer.maybe() && d.end > c.start)
                }) {
                    let _ = c;
                    return Err(format!(
                        "{name}: a create answered OK, no delete overlapped or followed it, and the key is gone (lost)"
                    ));
                }
            }
        }

        // Data keys.
        for (i, s) in h.sealed.iter().enumerate().filter(|(_, s)| s.name == n) {
            let generated = &h.ops[s.op];
            let live = last
                .as_ref()
                .filter(|r| r.lineage() == s.lineage)
                .map(|r| (r.first_version(), r));
            let opened = last.as_ref().is_some_and(|r| {
                r.decrypt(&s.ciphertext, b"interleave")
                    .is_ok_and(|p| *p == *s.plaintext)
            });
            match live {
                Some((first, _)) if s.version >= first => {
                    if !opened {
                        return Err(format!(
                            "{name}: data key #{i} of a retained version ({}) does not decrypt",
                            s.version
                        ));
                    }
                }
                _ => {
                    if opened {
                        return Err(format!(
                            "{name}: data key #{i} of a retired version or deleted key decrypts"
                        ));
                    }
                }
            }
            for o in ops.iter().copied() {
                let Kind::Decrypt {
                    sealed,
                    opened: Some(opened),
                } = o.kind
                else {
                    continue;
                };
                if sealed != i {
                    continue;
                }
                let removed_before = deletes()
                    .any(|d| d.answer == Answer::Ok && before(generated, d) && before(d, o))
                    || retires().any(|t| {
                        matches!(t.kind, Kind::Retire { answered: Some((l, first)), .. }
                            if l == s.lineage && first > s.version)
                            && before(generated, t)
                            && before(t, o)
                    });
                let may_remove = |x: &Op| x.answer.maybe() && within(x, generated, o);
                if opened && removed_before {
                    return Err(format!(
                        "{name}: data key #{i} decrypted after its version was retired or its key deleted"
                    ));
                }
                if !opened && !deletes().any(may_remove) && !retires().any(may_remove) {
                    return Err(format!(
                        "{name}: data key #{i} did not decrypt although nothing deleted or retired its key"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn check_versions(
    name: &str,
    ring: &KeyRing,
    create: &Op,
    reported: &[(Lineage, u32, &Arc<KeyVersion>, &Op)],
    rotates: &[&Op],
    retirable: &dyn Fn(Lineage, u32, &Op) -> bool,
) -> Result<(), String> {
    let lineage = ring.lineage();
    let Kind::Create {
        version: created, ..
    } = &create.kind
    else {
        unreachable!("a create");
    };
    let maybe_rotated = rotates.iter().any(|r| r.answer == Answer::Failed);
    for (number, version) in ring.newest_first() {
        let expected: Vec<&Arc<KeyVersion>> = if number == 1 {
            vec![created]
        } else {
            reported
                .iter()
                .filter(|(l, n, _, _)| *l == lineage && *n == number)
                .map(|(_, _, k, _)| *k)
                .collect()
        };
        if expected.is_empty() {
            if maybe_rotated {
                continue;
            }
            return Err(format!(
                "{name}: version {number} exists but no rotation reported it"
            ));
        }
        if !expected.iter().any(|k| k.key == version.key) {
            return Err(format!(
                "{name}: version {number} holds other material than its create or rotation reported (overwritten)"
            ));
        }
    }
    let (first, current) = (ring.first_version(), ring.current_version());
    if first > 1 && !retirable(lineage, 1, create) {
        return Err(format!(
            "{name}: version 1 is gone though no retirement could have removed it (lost)"
        ));
    }
    for (l, v, _, by) in reported {
        if *l != lineage {
            continue;
        }
        if *v > current {
            return Err(format!(
                "{name}: version {v} that a rotation reported is not in the key (current {current}) (lost)"
            ));
        }
        if *v < first && !retirable(lineage, *v, by) {
            return Err(format!(
                "{name}: version {v} is gone (first {first}) though no retirement could have removed it (lost)"
            ));
        }
    }
    Ok(())
}
