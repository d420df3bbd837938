//! The checks of a schedule's history and the store's final state
//! against what linearizability allows (the invariants listed at
//! [`check`](super::check)).

use std::sync::Arc;

use super::history::{Answer, History, Kind, Op};
use kes_core::ring::{KeyRing, Lineage};
use kes_core::KeyVersion;
use kes_keystore::versions;
use kes_keystore::{Error, KeyStore};

/// Whether `a` answered before `b` began: then `a` took effect before `b`.
pub(super) fn before(a: &Op, b: &Op) -> bool {
    a.end < b.start
}

/// Whether `a` may have taken effect between `from` and `to`.
pub(super) fn within(a: &Op, from: &Op, to: &Op) -> bool {
    a.end > from.start && a.start < to.end
}

pub(super) async fn verify(store: &Arc<dyn KeyStore>, h: &History) -> Result<(), String> {
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
                    ..
                } => Some((*l, *v, k, o)),
                _ => None,
            })
            .collect();
        // A conditional rotation creates the version after the one it
        // read or nothing; and it does nothing only if the key moved on
        // while it ran: another rotation may have created a newer version
        // of that lineage (one that reported it, or one that failed or
        // answered "not found": it may have created an entry that it
        // removed again when it found the key deleted), or a delete may
        // have removed the key.
        for o in rotates() {
            let Kind::Rotate {
                reported,
                expected: Some((lineage, read)),
            } = &o.kind
            else {
                continue;
            };
            match reported {
                Some((l, v, _)) if (*l, *v) != (*lineage, read + 1) => {
                    return Err(format!(
                        "{name}: a conditional rotation of {}@{read} created {}@{v}",
                        lineage.to_hex(),
                        l.to_hex()
                    ));
                }
                Some(_) => {}
                None if o.answer == Answer::Ok => {
                    let moved_on = rotates().any(|r| {
                        !std::ptr::eq(r, o)
                            && within(r, o, o)
                            && match &r.kind {
                                Kind::Rotate {
                                    reported: Some((l, v, _)),
                                    ..
                                } => l == lineage && v > read,
                                _ => matches!(r.answer, Answer::Failed | Answer::NotFound),
                            }
                    }) || deletes().any(|d| d.answer.maybe() && within(d, o, o));
                    if !moved_on {
                        return Err(format!(
                            "{name}: a conditional rotation of {}@{read} did nothing though no other rotation or delete overlapped it",
                            lineage.to_hex()
                        ));
                    }
                }
                None => {}
            }
        }
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

pub(super) fn check_versions(
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
