//! One schedule: the handles' random operations and their recorded
//! history.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::jitter::run_handles;
use super::{Options, Rng};
use kes_core::ring::Lineage;
use kes_core::{KeyAlgorithm, KeyVersion};
use kes_keystore::versions;
use kes_keystore::{Error, KeyStore};
use zeroize::Zeroizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Answer {
    Ok,
    Exists,
    NotFound,
    /// Any other error: the operation may or may not have taken effect.
    Failed,
}

impl Answer {
    pub(super) fn of<T>(r: &Result<T, Error>) -> Self {
        match r {
            Ok(_) => Answer::Ok,
            Err(Error::KeyExists) => Answer::Exists,
            Err(Error::KeyNotFound) => Answer::NotFound,
            Err(_) => Answer::Failed,
        }
    }
    /// Answered OK or may have taken effect.
    pub(super) fn maybe(self) -> bool {
        matches!(self, Answer::Ok | Answer::Failed)
    }
}

#[derive(Debug, Clone)]
pub(super) enum Kind {
    Create {
        version: Arc<KeyVersion>,
        lineage: Lineage,
    },
    Delete,
    /// `reported` set when it created a version. `expected` set for a
    /// conditional rotation (the scheduler's): the lineage and current
    /// version it read first, and rotated only if the key still had them;
    /// it answers OK without `reported` when it did not rotate.
    Rotate {
        reported: Option<(Lineage, u32, Arc<KeyVersion>)>,
        expected: Option<(Lineage, u32)>,
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
    pub(super) fn mutates(&self) -> bool {
        matches!(
            self,
            Kind::Create { .. } | Kind::Delete | Kind::Rotate { .. } | Kind::Retire { .. }
        )
    }

    /// A conditional rotation that found the key moved on and did nothing.
    pub(super) fn skipped(&self) -> bool {
        matches!(
            self,
            Kind::Rotate {
                reported: None,
                expected: Some(_)
            }
        )
    }
}

#[derive(Debug, Clone)]
pub(super) struct Op {
    pub(super) handle: usize,
    pub(super) name: usize,
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) kind: Kind,
    pub(super) answer: Answer,
    /// The lineage of the key this operation read (if it read one).
    pub(super) read: Option<Lineage>,
    pub(super) error: Option<String>,
}

pub(super) struct Sealed {
    pub(super) name: usize,
    pub(super) lineage: Lineage,
    pub(super) version: u32,
    pub(super) ciphertext: Vec<u8>,
    pub(super) plaintext: Zeroizing<Vec<u8>>,
    /// The generate's index in [`History::ops`].
    pub(super) op: usize,
}

pub(super) struct History {
    pub(super) names: Vec<String>,
    pub(super) ops: Vec<Op>,
    pub(super) sealed: Vec<Sealed>,
}

impl History {
    pub(super) fn render(&self) -> String {
        let mut out = String::new();
        let mut ops: Vec<&Op> = self.ops.iter().collect();
        ops.sort_by_key(|o| o.start);
        for o in ops {
            let kind = match &o.kind {
                Kind::Create { lineage, .. } => format!("create (lineage {})", lineage.to_hex()),
                Kind::Delete => "delete".into(),
                Kind::Rotate { reported, expected } => {
                    let kind = match expected {
                        Some((l, n)) => format!("rotate if {}@{n}", l.to_hex()),
                        None => "rotate".into(),
                    };
                    match reported {
                        Some((l, n, _)) => format!("{kind} -> {}@{n}", l.to_hex()),
                        None => kind,
                    }
                }
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
pub(super) struct Shared {
    pub(super) clock: AtomicU64,
    pub(super) ops: Mutex<Vec<Op>>,
    pub(super) sealed: Mutex<Vec<Sealed>>,
}

pub(super) fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    kes_core::sync::lock(m)
}

pub(super) async fn schedule(store: &Arc<dyn KeyStore>, seed: u64, options: Options) -> History {
    let names = super::schedule_names("il", seed, &options);
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
    run_handles(
        store,
        seed,
        &options,
        &names,
        &shared,
        |store, names, handle, rng, shared| Box::pin(one_op(store, names, handle, rng, shared)),
    )
    .await
    .expect("a schedule's handle panicked");
    let ops = std::mem::take(&mut *locked(&shared.ops));
    let sealed = std::mem::take(&mut *locked(&shared.sealed));
    History { names, ops, sealed }
}

/// What a handle does next.
#[derive(Debug, Clone, Copy)]
pub(super) enum Choice {
    Create,
    Delete,
    Rotate,
    /// Read the key, then rotate it only if it still has the version read
    /// (the rotation schedule's step).
    RotateIf,
    Retire,
    Generate,
    Decrypt,
}

impl Choice {
    pub(super) fn random(rng: &mut Rng) -> Self {
        match rng.below(100) {
            0..=11 => Choice::Create,
            12..=25 => Choice::Delete,
            26..=40 => Choice::Rotate,
            41..=51 => Choice::RotateIf,
            52..=73 => Choice::Retire,
            74..=86 => Choice::Generate,
            _ => Choice::Decrypt,
        }
    }
}

pub(super) async fn one_op(
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

pub(super) async fn do_op(
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
            (
                Kind::Rotate {
                    reported,
                    expected: None,
                },
                Answer::of(&r),
                r.err(),
            )
        }
        Choice::RotateIf => {
            // As the schedule does it: read, then rotate if still current.
            let r = match versions::read(store, name).await {
                Ok(ring) => {
                    let expected = (ring.lineage(), ring.current_version());
                    read = Some(ring.lineage());
                    versions::rotate_if(store, name, expected, "interleave")
                        .await
                        .map(|rotated| (Some(expected), rotated))
                }
                Err(e) => Err(e),
            };
            let expected = r.as_ref().ok().and_then(|(expected, _)| *expected);
            let reported = r.as_ref().ok().and_then(|(_, rotated)| {
                rotated.as_ref().map(|rotated| {
                    let version = rotated.ring.versions().last().expect("a ring").clone();
                    (rotated.ring.lineage(), rotated.version, version)
                })
            });
            (Kind::Rotate { reported, expected }, Answer::of(&r), r.err())
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
pub(super) async fn cleanup(store: &Arc<dyn KeyStore>, names: &[String]) {
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
