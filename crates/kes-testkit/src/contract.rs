//! The behaviour every [`KeyStore`] backend shows, as one suite that each
//! backend's tests run against a real instance (memory, fs, AWS against
//! moto, Vault against OpenBao).
//!
//! Every name it uses starts with `contract-` (or is one of the
//! every-character names below) and it deletes what it created, so it can
//! run against a store that holds other keys.
//!
//! ```text
//! kes_testkit::contract::run(Arc::new(MemKeyStore::new()), Expect::default()).await;
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;

use kes_core::name::{valid_name, MAX_NAME_LEN};
use kes_keystore::{Error, KeyStore};

/// What a backend promises beyond the common behaviour.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// The largest value the backend stores and returns unchanged.
    pub max_value: usize,
    /// Whether deleting a missing key fails with [`Error::KeyNotFound`].
    /// AWS Secrets Manager cannot tell (deletion is scheduled), so there
    /// success is accepted as well.
    pub delete_reports_missing: bool,
    /// Whether [`KeyStore::replace_if`] refuses every call (with an error
    /// other than `KeyNotFound`/`Changed`, writing nothing): Vault K/V v1,
    /// which has no conditional write, and a Vault policy without `update`.
    /// Every other backend must do it atomically.
    pub refuses_replace_if: bool,
}

impl Default for Expect {
    /// 64 KiB values (AWS Secrets Manager's limit; KES keys are far
    /// smaller) and deletes that report missing keys.
    fn default() -> Self {
        Expect {
            max_value: 64 << 10,
            delete_reports_missing: true,
            refuses_replace_if: false,
        }
    }
}

/// Runs every check of the contract, in order; panics at the first
/// failure, naming the check.
pub async fn run(store: Arc<dyn KeyStore>, expect: Expect) {
    status(&*store).await;
    create_get_delete(&*store, expect).await;
    create_never_overwrites(&*store).await;
    missing_key(&*store, expect).await;
    list_by_prefix(&*store).await;
    every_valid_character(&*store).await;
    values_up_to_the_limit(&*store, expect).await;
    concurrent_creates_one_wins(Arc::clone(&store)).await;
    // A key's first entry and an entry like a retirement lease, which are
    // read differently on Vault K/V v2.
    for name in ["contract-cas", LEASE_LIKE] {
        replace_if_missing(&*store, name, expect).await;
        replace_if_compares(&*store, name, expect).await;
        delete_if_compares(&*store, name).await;
        deleted_and_created_again(&*store, name, expect).await;
        if !expect.refuses_replace_if {
            concurrent_replace_ifs_one_wins(Arc::clone(&store), name).await;
        }
    }
    assert_eq!(
        store.list("contract-").await.unwrap(),
        Vec::<String>::new(),
        "contract: every key it created is deleted again"
    );
}

/// A stored name shaped like the lease entry of a retirement
/// (`<key>@<lineage>@retiring`).
pub const LEASE_LIKE: &str = "contract-cas@0011223344556677@retiring";

/// A value of `len` bytes of base64 text, as KES stores (values must be
/// text for some backends); `seed` makes values of one length differ.
pub fn value(len: usize, seed: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..len)
        .map(|i| ALPHABET[(i * 7 + seed * 13) % ALPHABET.len()])
        .collect()
}

/// The store answers its status probe.
pub async fn status(store: &dyn KeyStore) {
    if let Err(e) = store.status().await {
        panic!("status: {e}");
    }
}

/// A created key reads back unchanged; a deleted one is gone and its name
/// can be used again.
pub async fn create_get_delete(store: &dyn KeyStore, expect: Expect) {
    let name = "contract-key";
    store.create(name, &value(100, 1)).await.unwrap();
    assert_eq!(store.get(name).await.unwrap().as_slice(), value(100, 1));
    store.delete(name).await.unwrap();
    assert_eq!(
        store.get(name).await,
        Err(Error::KeyNotFound),
        "get after delete"
    );
    let again = store.delete(name).await;
    if expect.delete_reports_missing {
        assert_eq!(again, Err(Error::KeyNotFound), "second delete");
    } else {
        assert!(
            matches!(again, Ok(()) | Err(Error::KeyNotFound)),
            "second delete: {again:?}"
        );
    }
    store.create(name, &value(100, 3)).await.unwrap();
    assert_eq!(store.get(name).await.unwrap().as_slice(), value(100, 3));
    store.delete(name).await.unwrap();
}

/// A create of an existing name fails with [`Error::KeyExists`] and leaves
/// the stored value alone.
pub async fn create_never_overwrites(store: &dyn KeyStore) {
    let name = "contract-exists";
    store.create(name, &value(64, 1)).await.unwrap();
    assert_eq!(
        store.create(name, &value(64, 2)).await,
        Err(Error::KeyExists)
    );
    assert_eq!(store.get(name).await.unwrap().as_slice(), value(64, 1));
    store.delete(name).await.unwrap();
}

/// A name that was never created is [`Error::KeyNotFound`] for get (and
/// for delete where the backend can tell).
pub async fn missing_key(store: &dyn KeyStore, expect: Expect) {
    let name = "contract-missing";
    assert_eq!(store.get(name).await, Err(Error::KeyNotFound));
    let deleted = store.delete(name).await;
    if expect.delete_reports_missing {
        assert_eq!(deleted, Err(Error::KeyNotFound));
    } else {
        assert!(
            matches!(deleted, Ok(()) | Err(Error::KeyNotFound)),
            "{deleted:?}"
        );
    }
    assert_eq!(store.get(name).await, Err(Error::KeyNotFound));
}

/// `list(prefix)` returns exactly the names starting with `prefix`; the
/// empty prefix returns them all.
pub async fn list_by_prefix(store: &dyn KeyStore) {
    let names = ["contract-list-a1", "contract-list-a2", "contract-list-b1"];
    for (i, name) in names.iter().enumerate() {
        store.create(name, &value(32, i)).await.unwrap();
    }
    let listed = |prefix: &'static str| async move {
        store
            .list(prefix)
            .await
            .unwrap()
            .into_iter()
            .collect::<BTreeSet<_>>()
    };
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(listed("contract-list-").await, set(&names));
    assert_eq!(
        listed("contract-list-a").await,
        set(&["contract-list-a1", "contract-list-a2"])
    );
    assert_eq!(listed("contract-list-b1").await, set(&["contract-list-b1"]));
    assert!(listed("contract-list-c").await.is_empty());
    let all = listed("").await;
    assert!(set(&names).is_subset(&all), "list(\"\"): {all:?}");
    // Pages: sorted, from the start bound on; a store that cannot page
    // answers everything from there in one page.
    use std::ops::Bound;
    let page = store
        .list_page("contract-list-", Bound::Unbounded, 2)
        .await
        .unwrap();
    assert!(page.names.len() >= 2, "{page:?}");
    assert_eq!(page.names[..2], names[..2]);
    assert_eq!(page.more, page.names.len() < 3, "{page:?}");
    let page = store
        .list_page("contract-list-", Bound::Excluded(names[0]), 2)
        .await
        .unwrap();
    assert_eq!(page.names[..2], names[1..]);
    let page = store
        .list_page("contract-list-a", Bound::Included(names[1]), 5)
        .await
        .unwrap();
    assert_eq!((page.names, page.more), (vec![names[1].to_string()], false));
    for name in names {
        store.delete(name).await.unwrap();
    }
    assert!(listed("contract-list-").await.is_empty());
}

/// Names of every character a key name may hold (`0-9 A-Z a-z _ -`), of
/// one and of the longest allowed length (80), are stored and listed as
/// they are.
pub async fn every_valid_character(store: &dyn KeyStore) {
    let every = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-x";
    let longest = format!("contract-{}", "x_-9".repeat(17)) + "yz0";
    assert_eq!(longest.len(), MAX_NAME_LEN);
    let names = [every.to_string(), longest, "Z".to_string(), "_".repeat(2)];
    assert!(names.iter().all(|n| valid_name(n)), "{names:?}");
    for (i, name) in names.iter().enumerate() {
        store.create(name, &value(48, i)).await.unwrap();
    }
    let all = store.list("").await.unwrap();
    for (i, name) in names.iter().enumerate() {
        assert_eq!(
            store.get(name).await.unwrap().as_slice(),
            value(48, i),
            "{name}"
        );
        assert!(all.contains(name), "{name} not listed: {all:?}");
        let listed = store.list(name).await.unwrap();
        assert!(
            listed.contains(name),
            "{name} not listed by itself: {listed:?}"
        );
    }
    for name in &names {
        store.delete(name).await.unwrap();
    }
}

/// Values of a few bytes up to [`Expect::max_value`] read back unchanged.
pub async fn values_up_to_the_limit(store: &dyn KeyStore, expect: Expect) {
    for (i, len) in [1, 4096, expect.max_value].into_iter().enumerate() {
        let name = format!("contract-size-{i}");
        store.create(&name, &value(len, i)).await.unwrap();
        let got = store.get(&name).await.unwrap();
        assert!(
            got.as_slice() == value(len, i),
            "a value of {len} bytes came back as {} bytes or changed",
            got.len()
        );
        store.delete(&name).await.unwrap();
    }
}

/// Concurrent creates of one name, on as many threads as the runtime has:
/// exactly one wins, the others fail with [`Error::KeyExists`], and the
/// stored value is the winner's.
pub async fn concurrent_creates_one_wins(store: Arc<dyn KeyStore>) {
    let name = "contract-race";
    one_winner(
        &store,
        name,
        "create",
        Error::KeyExists,
        |store, i| async move { store.create(name, &value(RACE_VALUE_LEN, i)).await },
    )
    .await;
}

/// The length of the values the racing writes of [`one_winner`] write.
const RACE_VALUE_LEN: usize = 48;

/// Runs `write(store, i)` for `i` in 0..16 at once, each writing
/// `value(RACE_VALUE_LEN, i)` to `name`: exactly one wins, the others fail
/// with `lost`, and the stored value is the winner's. Deletes `name` after.
async fn one_winner<W, F>(store: &Arc<dyn KeyStore>, name: &str, what: &str, lost: Error, write: W)
where
    W: Fn(Arc<dyn KeyStore>, usize) -> F,
    F: std::future::Future<Output = Result<(), Error>> + Send + 'static,
{
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let race = write(Arc::clone(store), i);
            tokio::spawn(async move { (i, race.await) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (i, Ok(())) => winners.push(i),
            (_, Err(e)) if e == lost => {}
            (_, Err(e)) => panic!("concurrent {what} of {name}: unexpected error: {e}"),
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "concurrent {what} of {name}: winners: {winners:?}"
    );
    assert!(
        store.get(name).await.unwrap().as_slice() == value(RACE_VALUE_LEN, winners[0]),
        "concurrent {what} of {name}: the winner's value is stored"
    );
    store.delete(name).await.unwrap();
}

/// Asserts what a [`KeyStore::replace_if`] that lost must leave: the
/// error (`want`, or any refusal where the store refuses them all) and
/// the stored value (`None`: no entry).
async fn assert_lost(
    store: &dyn KeyStore,
    name: &str,
    got: Result<(), Error>,
    want: &[Error],
    expect: Expect,
    stored: Option<&[u8]>,
    check: &str,
) {
    if expect.refuses_replace_if {
        assert!(
            matches!(got, Err(Error::Other { .. })),
            "{check}: {name}: a store without conditional writes refuses, got {got:?}"
        );
    } else {
        assert!(
            want.iter().any(|w| got.as_ref() == Err(w)),
            "{check}: {name}: want one of {want:?}, got {got:?}"
        );
    }
    match stored {
        Some(value) => assert!(
            store.get(name).await.unwrap().as_slice() == value,
            "{check}: {name}: the stored value changed"
        ),
        None => assert_eq!(
            store.get(name).await,
            Err(Error::KeyNotFound),
            "{check}: {name}: an entry was created"
        ),
    }
}

/// `replace_if` of a name without entry is [`Error::KeyNotFound`] and
/// creates nothing.
pub async fn replace_if_missing(store: &dyn KeyStore, name: &str, expect: Expect) {
    let got = store.replace_if(name, &value(64, 1), &value(64, 2)).await;
    let want = [Error::KeyNotFound];
    assert_lost(
        store,
        name,
        got,
        &want,
        expect,
        None,
        "replace_if on no entry",
    )
    .await;
}

/// `replace_if` writes only over the value it is given: another one is
/// [`Error::Changed`] and stays; the right one is replaced, and the value
/// it replaced is then as stale as any other.
pub async fn replace_if_compares(store: &dyn KeyStore, name: &str, expect: Expect) {
    let (a, b, c) = (value(64, 1), value(64, 2), value(64, 3));
    store.create(name, &a).await.unwrap();
    let got = store.replace_if(name, &c, &b).await;
    let want = [Error::Changed];
    assert_lost(
        store,
        name,
        got,
        &want,
        expect,
        Some(&a),
        "replace_if of another value",
    )
    .await;
    if !expect.refuses_replace_if {
        store.replace_if(name, &a, &b).await.unwrap();
        assert!(
            store.get(name).await.unwrap().as_slice() == b,
            "replace_if: {name}: the new value reads back"
        );
        let got = store.replace_if(name, &a, &c).await;
        let check = "replace_if of the value just replaced";
        assert_lost(store, name, got, &want, expect, Some(&b), check).await;
        // Twice, for stores that keep versions (Vault K/V v2 reads the
        // entry differently once its first version is gone).
        store.replace_if(name, &b, &c).await.unwrap();
        assert!(
            store.get(name).await.unwrap().as_slice() == c,
            "replace_if: {name}: a second replacement reads back"
        );
        assert_eq!(
            store.create(name, &a).await,
            Err(Error::KeyExists),
            "replace_if: {name}: a replaced entry still exists for create"
        );
    }
    store.delete(name).await.unwrap();
}

/// `delete_if` removes only the value it is given: no entry is
/// [`Error::KeyNotFound`], another value is [`Error::Changed`] and stays;
/// after a removal the name can be created again.
pub async fn delete_if_compares(store: &dyn KeyStore, name: &str) {
    let (a, b) = (value(48, 1), value(48, 2));
    assert_eq!(
        store.delete_if(name, &a).await,
        Err(Error::KeyNotFound),
        "delete_if of no entry: {name}"
    );
    assert_eq!(store.get(name).await, Err(Error::KeyNotFound));
    store.create(name, &a).await.unwrap();
    assert_eq!(
        store.delete_if(name, &b).await,
        Err(Error::Changed),
        "delete_if of another value: {name}"
    );
    assert!(
        store.get(name).await.unwrap().as_slice() == a,
        "{name} kept"
    );
    store.delete_if(name, &a).await.unwrap();
    assert_eq!(
        store.get(name).await,
        Err(Error::KeyNotFound),
        "{name} gone"
    );
    store.create(name, &b).await.unwrap();
    assert!(store.get(name).await.unwrap().as_slice() == b);
    store.delete(name).await.unwrap();
}

/// A value read, then the entry deleted and created again with another
/// value (ABA): neither `replace_if` nor `delete_if` with the value first
/// read touches the new entry.
pub async fn deleted_and_created_again(store: &dyn KeyStore, name: &str, expect: Expect) {
    let (a, b, c) = (value(80, 1), value(80, 2), value(80, 3));
    store.create(name, &a).await.unwrap();
    let read = store.get(name).await.unwrap();
    store.delete(name).await.unwrap();
    store.create(name, &b).await.unwrap();
    let got = store.replace_if(name, &read, &c).await;
    let want = [Error::Changed, Error::KeyNotFound];
    let check = "replace_if after delete and create";
    assert_lost(store, name, got, &want, expect, Some(&b), check).await;
    assert_eq!(
        store.delete_if(name, &read).await,
        Err(Error::Changed),
        "delete_if after delete and create: {name}"
    );
    assert!(
        store.get(name).await.unwrap().as_slice() == b,
        "{name} kept"
    );
    store.delete(name).await.unwrap();
}

/// Concurrent `replace_if`s of one entry, all from the same value read:
/// exactly one wins, the others fail with [`Error::Changed`], and the
/// stored value is the winner's.
pub async fn concurrent_replace_ifs_one_wins(store: Arc<dyn KeyStore>, name: &'static str) {
    let current = value(RACE_VALUE_LEN, 100);
    store.create(name, &current).await.unwrap();
    one_winner(&store, name, "replace_if", Error::Changed, |store, i| {
        let current = current.clone();
        async move {
            store
                .replace_if(name, &current, &value(RACE_VALUE_LEN, i))
                .await
        }
    })
    .await;
}
