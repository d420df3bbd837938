//! The interleaving checker of deletion with a recovery window
//! (docs/lifecycle.md, "The protocol"): random schedules of create,
//! delete (at once and with a window), restore, purge, rotate and read
//! from several handles through [`Jittery`](super::Jittery) stores, each checked for
//! **linearizability** against a sequential model of one key name by
//! searching every order of the operations that real time allows.
//!
//! The model of a name: absent, live (lineage, current version), pending
//! (lineage, current version), or purging. Its transitions:
//!
//! | operation | live | pending | purging | absent |
//! |---|---|---|---|---|
//! | create | `exists` | `exists` | `exists` | live, version 1 |
//! | delete | absent | `not found` | `not found` | `not found` (OK if leftovers) |
//! | delete with a window | pending | `not found` | `not found` | `not found` |
//! | restore | `exists` | live | `not found` | `not found` |
//! | rotate | version + 1 (`not found` if deleted at once next) | `not found` | `not found` | `not found` |
//! | read | answers (lineage, version) | `not found` | `not found` | `not found` |
//! | purge (reported it) | - | purging, then absent | absent | absent |
//!
//! A purge takes effect in two steps (the swap into the placeholder, then
//! its removal), both inside its interval; an operation that failed may or
//! may not have taken effect. The search must find one order, consistent
//! with every answer and with real time (an operation that answered before
//! another began comes first), that ends in the state the store holds at
//! the end. Besides, every (lineage, version) pair must have one key
//! material in every answer that reports it: nothing was overwritten.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kes_core::ring::{KeyRing, Lineage};
use kes_core::{KeyAlgorithm, KeyVersion};
use kes_keystore::versions::{self, FirstEntry};
use kes_keystore::{Error, KeyStore};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::jitter::run_handles;
use super::{Options, Report, Rng};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum State {
    Absent,
    Live(Lineage, u32),
    Pending(Lineage, u32),
    Purging,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create(Lineage),
    Delete,
    DeleteLater,
    Restore,
    Rotate,
    Read,
    /// A purge pass that reported this name purged.
    Purge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Ok,
    /// OK with the key's lineage and version (rotate: the new one).
    Key(Lineage, u32),
    Exists,
    NotFound,
    Failed,
}

#[derive(Debug, Clone)]
struct Op {
    handle: usize,
    name: usize,
    start: u64,
    end: u64,
    kind: Kind,
    answer: Answer,
    error: Option<String>,
}

impl Op {
    /// How many model steps the operation takes when it takes effect.
    fn steps(&self) -> u8 {
        if self.kind == Kind::Purge {
            2
        } else {
            1
        }
    }
}

/// The next state if step `step` of `op` may happen in `state` with the
/// answer it gave; `None` if not.
fn step(state: State, op: &Op, step: u8) -> Option<State> {
    use State::*;
    let failed = op.answer == Answer::Failed;
    let answer = |a: Answer| failed || op.answer == a;
    match (op.kind, state) {
        (Kind::Create(l), Absent) if answer(Answer::Ok) => Some(Live(l, 1)),
        (Kind::Create(_), Live(..) | Pending(..) | Purging) if answer(Answer::Exists) => {
            Some(state)
        }
        (Kind::Delete, Live(..)) if answer(Answer::Ok) => Some(Absent),
        (Kind::Delete, Absent) if answer(Answer::Ok) || answer(Answer::NotFound) => Some(Absent),
        (Kind::Delete, Pending(..) | Purging) if answer(Answer::NotFound) => Some(state),
        // A delete answers the lineage it deleted, not the version.
        (Kind::DeleteLater, Live(l, v))
            if failed || matches!(op.answer, Answer::Key(deleted, _) if deleted == l) =>
        {
            Some(Pending(l, v))
        }
        (Kind::DeleteLater, Pending(..) | Purging | Absent) if answer(Answer::NotFound) => {
            Some(state)
        }
        // A restore answers the ring it read after its swap; if the key
        // was deleted again at once, only the versions still there: the
        // lineage is what it must get right.
        (Kind::Restore, Pending(l, v))
            if failed || matches!(op.answer, Answer::Key(restored, _) if restored == l) =>
        {
            Some(Live(l, v))
        }
        (Kind::Restore, Live(..)) if answer(Answer::Exists) => Some(state),
        (Kind::Restore, Purging | Absent) if answer(Answer::NotFound) => Some(state),
        (Kind::Rotate, Live(l, v)) if failed || op.answer == Answer::Key(l, v + 1) => {
            Some(Live(l, v + 1))
        }
        (Kind::Rotate, Pending(..) | Purging | Absent) if answer(Answer::NotFound) => Some(state),
        // The one answer that is not linearizable (docs/rotation.md): a
        // rotation whose key was deleted at once after its create answers
        // "not found", though its version may have been read in between.
        (Kind::Rotate, Live(l, v)) if op.answer == Answer::NotFound => Some(Live(l, v + 1)),
        (Kind::Read, Live(l, v)) if answer(Answer::Key(l, v)) => Some(state),
        (Kind::Read, Pending(..) | Purging | Absent) if answer(Answer::NotFound) => Some(state),
        (Kind::Purge, Pending(..) | Purging) if step == 0 => Some(Purging),
        (Kind::Purge, Purging | Absent) if step == 1 => Some(Absent),
        _ => None,
    }
}

/// Whether the operations of one name, ending in `last`, are linearizable
/// from `first`: a depth-first search over the orders real time allows,
/// remembering the (progress, state) pairs already explored.
fn linearizable(ops: &[Op], first: State, last: State) -> bool {
    assert!(ops.len() <= 32, "at most 32 operations per name");
    // Two bits per operation: the steps it has taken; 3 = finished
    // without effect (a failed operation).
    fn search(
        ops: &[Op],
        progress: u64,
        state: State,
        last: State,
        seen: &mut HashSet<(u64, State)>,
    ) -> bool {
        let taken = |i: usize| ((progress >> (2 * i)) & 3) as u8;
        let done = |i: usize| taken(i) == 3 || taken(i) == ops[i].steps();
        if (0..ops.len()).all(done) {
            return state == last;
        }
        if !seen.insert((progress, state)) {
            return false;
        }
        for (i, op) in ops.iter().enumerate() {
            if done(i) {
                continue;
            }
            // Every operation that answered before this one began must
            // have taken all its steps.
            if ops
                .iter()
                .enumerate()
                .any(|(j, p)| j != i && p.end < op.start && !done(j))
            {
                continue;
            }
            let t = taken(i);
            if let Some(next) = step(state, op, t) {
                let progress = progress + (1 << (2 * i));
                if search(ops, progress, next, last, seen) {
                    return true;
                }
            }
            // A failed operation may have done nothing (or stopped after
            // its first step).
            if op.answer == Answer::Failed {
                let progress = progress | (3 << (2 * i));
                if search(ops, progress, state, last, seen) {
                    return true;
                }
            }
        }
        false
    }
    search(ops, 0, first, last, &mut HashSet::new())
}

/// Every key material answered for (lineage, version).
type Materials = HashMap<(Lineage, u32), Vec<Arc<KeyVersion>>>;

struct Shared {
    clock: AtomicU64,
    ops: Mutex<Vec<Op>>,
    /// The material every answer reported for (lineage, version).
    materials: Mutex<Materials>,
}

fn record_ring(shared: &Shared, ring: &KeyRing) {
    let mut materials = kes_core::sync::lock(&shared.materials);
    let first = ring.first_version();
    for (i, version) in ring.versions().iter().enumerate() {
        materials
            .entry((ring.lineage(), first + i as u32))
            .or_default()
            .push(Arc::clone(version));
    }
}

fn answer_of<T>(r: &Result<T, Error>, ok: impl FnOnce(&T) -> Answer) -> Answer {
    match r {
        Ok(v) => ok(v),
        Err(Error::KeyExists) => Answer::Exists,
        Err(Error::KeyNotFound) => Answer::NotFound,
        Err(_) => Answer::Failed,
    }
}

/// One operation of a handle, recorded.
async fn do_op(
    store: &dyn KeyStore,
    names: &[String],
    handle: usize,
    rng: &mut Rng,
    shared: &Shared,
    fixed: Option<(usize, Kind)>,
    plain_deletes: bool,
) {
    let n = match fixed {
        Some((n, _)) => n,
        None => rng.below(names.len() as u64) as usize,
    };
    let name = names[n].as_str();
    let choice = fixed
        .map(|(_, kind)| kind)
        .unwrap_or_else(|| match rng.below(100) {
            0..=9 => Kind::Create(Lineage::derive(b"")),
            10..=19 if plain_deletes => Kind::Delete,
            10..=39 => Kind::DeleteLater,
            40..=57 => Kind::Restore,
            58..=71 => Kind::Purge,
            72..=85 => Kind::Rotate,
            _ => Kind::Read,
        });
    let start = shared.clock.fetch_add(1, Ordering::SeqCst);
    let mut recorded: Vec<(usize, Kind, Answer, Option<String>)> = Vec::new();
    match choice {
        Kind::Create(_) => {
            let version = KeyVersion::generate(KeyAlgorithm::Aes256, "interleave");
            let value = Zeroizing::new(version.encode().expect("a fresh key encodes"));
            let lineage = Lineage::derive(value.as_bytes());
            let r = store.create(name, value.as_bytes()).await;
            if r.is_ok() {
                kes_core::sync::lock(&shared.materials)
                    .entry((lineage, 1))
                    .or_default()
                    .push(Arc::new(version));
            }
            let a = answer_of(&r, |_| Answer::Ok);
            recorded.push((n, Kind::Create(lineage), a, r.err().map(|e| e.to_string())));
        }
        Kind::Delete => {
            let r = versions::delete(store, name).await;
            let a = answer_of(&r, |_| Answer::Ok);
            recorded.push((n, choice, a, r.err().map(|e| e.to_string())));
        }
        Kind::DeleteLater => {
            // Mostly due at once, so that purges find work.
            let window = if rng.below(4) == 0 {
                Duration::from_secs(3600)
            } else {
                Duration::ZERO
            };
            let r = versions::delete_later(store, name, window, "interleave").await;
            // A delete answers the lineage only; the model knows the
            // version.
            let a = answer_of(&r, |p| Answer::Key(p.lineage, 0));
            recorded.push((n, choice, a, r.err().map(|e| e.to_string())));
        }
        // Both answer the key as they read it: lineage and current version.
        Kind::Restore | Kind::Read => {
            let r = match choice {
                Kind::Restore => versions::restore(store, name).await,
                _ => versions::read(store, name).await,
            };
            if let Ok(ring) = &r {
                record_ring(shared, ring);
            }
            let a = answer_of(&r, |ring| {
                Answer::Key(ring.lineage(), ring.current_version())
            });
            recorded.push((n, choice, a, r.err().map(|e| e.to_string())));
        }
        Kind::Rotate => {
            let r = versions::rotate(store, name, "interleave").await;
            if let Ok(rotated) = &r {
                record_ring(shared, &rotated.ring);
            }
            let a = answer_of(&r, |r| Answer::Key(r.ring.lineage(), r.version));
            recorded.push((n, choice, a, r.err().map(|e| e.to_string())));
        }
        Kind::Purge => {
            let now = OffsetDateTime::now_utc() + time::Duration::seconds(1);
            // A failed listing purged nothing.
            if let Ok(purged) = versions::purge_due(store, now).await {
                for (i, name) in names.iter().enumerate() {
                    if purged.purged.contains(name) {
                        recorded.push((i, Kind::Purge, Answer::Ok, None));
                    } else if let Some((_, e)) = purged.failed.iter().find(|(n, _)| n == name) {
                        recorded.push((i, Kind::Purge, Answer::Failed, Some(e.clone())));
                    }
                    // Not purged, no error: nothing changed for it.
                }
            }
        }
    }
    let end = shared.clock.fetch_add(1, Ordering::SeqCst);
    let mut ops = kes_core::sync::lock(&shared.ops);
    for (name, kind, answer, error) in recorded {
        ops.push(Op {
            handle,
            name,
            start,
            end,
            kind,
            answer,
            error,
        });
    }
}

/// The state a name is in at the end, read from the store itself.
async fn final_state(store: &dyn KeyStore, name: &str) -> Result<State, String> {
    match versions::read(store, name).await {
        Ok(ring) => Ok(State::Live(ring.lineage(), ring.current_version())),
        Err(Error::KeyNotFound) => match store.get(name).await {
            Err(Error::KeyNotFound) => Ok(State::Absent),
            Ok(first) => match versions::first_entry(name, &first) {
                Ok(FirstEntry::Pending(..)) => {
                    // Its current version: what a restore would answer.
                    Ok(State::Pending(Lineage::derive(b""), 0))
                }
                Ok(FirstEntry::Purging) => Ok(State::Purging),
                other => Err(format!("{name}: first entry {other:?} but no key")),
            },
            Err(e) => Err(format!("{name}: {e}")),
        },
        Err(e) => Err(format!("{name}: {e}")),
    }
}

fn render(ops: &[Op], names: &[String]) -> String {
    let mut ops: Vec<&Op> = ops.iter().collect();
    ops.sort_by_key(|o| o.start);
    ops.iter()
        .map(|o| {
            format!(
                "  [{:>4},{:>4}] h{} {}: {:?}: {:?}{}\n",
                o.start,
                o.end,
                o.handle,
                names[o.name],
                o.kind,
                o.answer,
                o.error
                    .as_deref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// Runs `schedules` random schedules of the deletion lifecycle on `store`
/// and returns what they did; every failure (its seed, what was violated
/// and the history) is in [`Report::failures`].
///
/// With `plain_deletes`, deletes at once are mixed in, as when servers on
/// one store disagree on `lifecycle.deletion_window`. That is linearizable
/// only on stores whose `delete_if` is atomic (memory, fs): on AWS and
/// Vault a delete at once compares and then removes, so one racing with a
/// delete with a window may remove the tombstone (docs/lifecycle.md).
pub async fn run_lifecycle(
    store: Arc<dyn KeyStore>,
    schedules: usize,
    seed: u64,
    options: Options,
    plain_deletes: bool,
) -> Report {
    let mut report = Report::default();
    let mut seeds = Rng::new(seed);
    for _ in 0..schedules {
        let seed = seeds.next_u64();
        if let Err(failure) = one_schedule(&store, seed, options, plain_deletes, &mut report).await
        {
            report.failures.push((seed, failure));
        }
    }
    report
}

async fn one_schedule(
    store: &Arc<dyn KeyStore>,
    seed: u64,
    options: Options,
    plain_deletes: bool,
    report: &mut Report,
) -> Result<(), String> {
    let names = super::schedule_names("lc", seed, &options);
    let shared = Arc::new(Shared {
        clock: AtomicU64::new(0),
        ops: Mutex::new(Vec::new()),
        materials: Mutex::new(HashMap::new()),
    });
    // Set-up on the store itself: every name a key, some rotated, one in
    // four pending deletion.
    let mut rng = Rng::new(seed.rotate_left(23));
    let setup = options.handles;
    for n in 0..names.len() {
        let create = Kind::Create(Lineage::derive(b""));
        do_op(
            &**store,
            &names,
            setup,
            &mut rng,
            &shared,
            Some((n, create)),
            false,
        )
        .await;
        for _ in 0..rng.below(3) {
            do_op(
                &**store,
                &names,
                setup,
                &mut rng,
                &shared,
                Some((n, Kind::Rotate)),
                false,
            )
            .await;
        }
        if rng.below(4) == 0 {
            let delete = Some((n, Kind::DeleteLater));
            do_op(&**store, &names, setup, &mut rng, &shared, delete, false).await;
        }
    }
    run_handles(
        store,
        seed,
        &options,
        &names,
        &shared,
        move |store, names, handle, rng, shared| {
            Box::pin(do_op(
                store,
                names,
                handle,
                rng,
                shared,
                None,
                plain_deletes,
            ))
        },
    )
    .await?;
    let ops = std::mem::take(&mut *kes_core::sync::lock(&shared.ops));
    report.schedules += 1;
    report.ops += ops.len();
    report.ok += ops
        .iter()
        .filter(|o| !matches!(o.answer, Answer::Failed | Answer::NotFound | Answer::Exists))
        .count();
    report.effective_mutations += ops
        .iter()
        .filter(|o| {
            !matches!(o.kind, Kind::Read) && matches!(o.answer, Answer::Ok | Answer::Key(..))
        })
        .count();

    let verdict = verify(store, &names, &ops, &shared).await;
    cleanup(store, &names).await;
    verdict.map_err(|e| format!("{e}\nhistory:\n{}", render(&ops, &names)))
}

async fn verify(
    store: &Arc<dyn KeyStore>,
    names: &[String],
    ops: &[Op],
    shared: &Shared,
) -> Result<(), String> {
    for ((lineage, version), keys) in kes_core::sync::lock(&shared.materials).iter() {
        if keys.iter().any(|k| k.key != keys[0].key) {
            return Err(format!(
                "version {version} of lineage {} was answered with two key materials (overwritten)",
                lineage.to_hex()
            ));
        }
    }
    for (n, name) in names.iter().enumerate() {
        let mine: Vec<Op> = ops.iter().filter(|o| o.name == n).cloned().collect();
        let mut last = final_state(&**store, name).await?;
        // A pending key's version is what restoring it answers; restored
        // here to read it (the schedule is over), the lineage included.
        if let State::Pending(..) = last {
            let ring = versions::restore(&**store, name)
                .await
                .map_err(|e| format!("{name}: the pending key does not restore: {e}"))?;
            last = State::Pending(ring.lineage(), ring.current_version());
        }
        if !linearizable(&mine, State::Absent, last) {
            return Err(format!("{name}: no order of the operations explains the answers and the end state {last:?}"));
        }
    }
    Ok(())
}

async fn cleanup(store: &Arc<dyn KeyStore>, names: &[String]) {
    for name in names {
        let _ = store.delete(name).await;
        if let Ok(left) = store.list(&format!("{name}@")).await {
            for entry in left {
                let _ = store.delete(&entry).await;
            }
        }
    }
}
