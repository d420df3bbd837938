//! Key versions on every key store: rotation, concurrent rotations from
//! several nodes (several store handles on one backend), retirement and
//! deletion. Runs against memory, fs, moto (AWS) and OpenBao (Vault K/V v1
//! and v2); the network ones are `#[ignore]`d like the other tests that
//! need an external program (scripts/test runs them).

use std::sync::Arc;
use std::time::Duration;

use kes_core::ring::{KeyRing, RingHeader};
use kes_core::{KeyAlgorithm, KeyVersion};
use kes_keystore::cache::{CacheConfig, KeyCache};
use kes_keystore::versions::{self, parse_entry_name};
use kes_keystore::{Error, KeyStore};

type Store = Arc<dyn KeyStore>;

async fn create_key(store: &Store, name: &str) -> Vec<u8> {
    let value = KeyVersion::generate(KeyAlgorithm::Aes256, "tester")
        .encode()
        .unwrap();
    store.create(name, value.as_bytes()).await.unwrap();
    value.into_bytes()
}

/// A message sealed with the current version of `ring`, with its plaintext.
fn seal(ring: &KeyRing, tag: &str) -> (Vec<u8>, Vec<u8>) {
    let plaintext = format!("sealed under {tag}").into_bytes();
    (ring.key.encrypt(&plaintext, b"ctx"), plaintext)
}

fn assert_opens(ring: &KeyRing, sealed: &[(Vec<u8>, Vec<u8>)]) {
    for (ciphertext, plaintext) in sealed {
        let opened = ring
            .decrypt(ciphertext, b"ctx")
            .expect("every retained version decrypts");
        assert_eq!(&**opened, &plaintext[..]);
    }
}

async fn entries_of(store: &Store, name: &str) -> Vec<String> {
    let mut names: Vec<String> = store
        .list(&format!("{name}@"))
        .await
        .unwrap()
        .into_iter()
        .filter(|n| parse_entry_name(n).is_some_and(|e| e.key == name))
        .collect();
    names.sort();
    names
}

/// Rotation, HMAC stability, retirement and listing on one node.
async fn single_node(store: Store, retire_works: bool) {
    let name = "rot-single";
    let first = create_key(&store, name).await;

    let ring = versions::read(&*store, name).await.unwrap();
    assert_eq!((ring.current_version(), ring.retained()), (1, 1));
    let hmac = ring.hmac(b"message").unwrap();
    let mut sealed = vec![seal(&ring, "v1")];

    for expected in 2..=4u32 {
        let rotated = versions::rotate(&*store, name, "rotator").await.unwrap();
        assert_eq!(rotated.version, expected);
        assert_eq!(rotated.ring.current_version(), expected);
        assert_eq!(rotated.ring.current().created_by, "rotator");
        let read = versions::read(&*store, name).await.unwrap();
        assert_eq!(read.current_version(), expected);
        assert_eq!(
            read.key, rotated.ring.key,
            "the store has what rotate returned"
        );
        assert_eq!(
            read.hmac(b"message").unwrap(),
            hmac,
            "HMAC survives rotation"
        );
        sealed.push(seal(&read, &format!("v{expected}")));
    }
    // Rotation never touches the first entry: the Go KES still reads it.
    assert_eq!(&*store.get(name).await.unwrap(), &first[..]);
    let ring = versions::read(&*store, name).await.unwrap();
    assert_opens(&ring, &sealed);
    // New data is sealed with the newest version only.
    let (newest, _) = seal(&ring, "new");
    assert!(ring.oldest().key.decrypt(&newest, b"ctx").is_err());

    // The cache lists keys, not version entries.
    let cache = KeyCache::new(
        Arc::clone(&store),
        CacheConfig {
            expiry: Duration::ZERO,
            expiry_unused: Duration::ZERO,
            expiry_offline: Duration::ZERO,
            status_interval: Duration::ZERO,
        },
    );
    let listed = cache.list("rot-single").await.unwrap();
    assert_eq!(listed, vec![name.to_string()]);
    assert_eq!(entries_of(&store, name).await.len(), 3);

    if !retire_works {
        // The store refuses to overwrite: nothing changes.
        assert!(versions::retire(&*store, name, 2).await.is_err());
        let after = versions::read(&*store, name).await.unwrap();
        assert_eq!((after.first_version(), after.current_version()), (1, 4));
        assert_eq!(&*store.get(name).await.unwrap(), &first[..]);
        cache.close().await;
        return;
    }

    let retired = versions::retire(&*store, name, 2).await.unwrap();
    assert_eq!(retired.retired, 2);
    let ring = versions::read(&*store, name).await.unwrap();
    assert_eq!((ring.first_version(), ring.current_version()), (3, 4));
    assert_eq!(
        ring.hmac(b"message").unwrap(),
        hmac,
        "HMAC survives retirement"
    );
    // Versions 1 and 2 are gone: what they sealed is shredded.
    assert!(ring.decrypt(&sealed[0].0, b"ctx").is_err());
    assert!(ring.decrypt(&sealed[1].0, b"ctx").is_err());
    assert_opens(&ring, &sealed[2..]);
    // The first entry holds version 3 with a header; a decoder that does not
    // know the header (the Go KES's) reads version 3's key.
    let stored = store.get(name).await.unwrap();
    assert_eq!(RingHeader::parse(&stored).unwrap().unwrap().first, 3);
    assert_eq!(KeyVersion::decode(&stored).unwrap().key, ring.oldest().key);
    // Only version 4's entry is left (3 lives in the first entry now), and
    // no lock.
    let left = entries_of(&store, name).await;
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(parse_entry_name(&left[0]).unwrap().version, Some(4));
    // Retiring again with the same count changes nothing; rotation goes on.
    assert_eq!(versions::retire(&*store, name, 2).await.unwrap().retired, 0);
    let rotated = versions::rotate(&*store, name, "rotator").await.unwrap();
    assert_eq!(rotated.version, 5);
    assert!(versions::retire(&*store, name, 0).await.is_err());
    cache.close().await;
}

/// Several nodes rotate one key at the same moment while others read it:
/// every rotation that succeeded left its version in the store.
async fn concurrent(nodes: Vec<Store>, rotations_per_node: usize) {
    let name = "rot-storm";
    create_key(&nodes[0], name).await;
    let mut tasks = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let node = Arc::clone(node);
        tasks.push(tokio::spawn(async move {
            let mut sealed = Vec::new();
            for r in 0..rotations_per_node {
                match versions::rotate(&*node, name, &format!("node-{i}")).await {
                    Ok(rotated) => {
                        // Sealed with the version this rotation created.
                        let version = rotated
                            .ring
                            .newest_first()
                            .find(|(n, _)| *n == rotated.version)
                            .unwrap()
                            .1;
                        let plaintext = format!("node {i} rotation {r}").into_bytes();
                        sealed.push((version.key.encrypt(&plaintext, b"ctx"), plaintext));
                    }
                    // A clean refusal is allowed; a lost version is not.
                    Err(e) => eprintln!("node {i}: rotation refused: {e}"),
                }
                // Readers walk the entries while others create them.
                let ring = versions::read(&*node, name).await.unwrap();
                sealed.push(seal(&ring, &format!("node {i} read {r}")));
            }
            sealed
        }));
    }
    let mut sealed = Vec::new();
    let mut created = 0;
    for task in tasks {
        let mut mine = task.await.unwrap();
        created += mine.len() - rotations_per_node;
        sealed.append(&mut mine);
    }
    let ring = versions::read(&*nodes[0], name).await.unwrap();
    assert_eq!(
        ring.retained(),
        1 + created,
        "one version per successful rotation"
    );
    assert!(created > 0);
    assert_opens(&ring, &sealed);
}

/// The rotation schedule's step on several nodes at once: every node read
/// the same version and rotates only if it is still current. Each round
/// adds exactly one version, whichever node wins; the others find the key
/// moved on and create nothing. A stale expectation (an older version, or
/// another lineage) never rotates.
async fn conditional_rotations(nodes: Vec<Store>, rounds: u32) {
    let name = "rot-if";
    create_key(&nodes[0], name).await;
    let lineage = versions::read(&*nodes[0], name).await.unwrap().lineage();
    for round in 1..=rounds {
        let tasks: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let node = Arc::clone(node);
                tokio::spawn(async move {
                    versions::rotate_if(&*node, name, (lineage, round), &format!("node-{i}")).await
                })
            })
            .collect();
        let mut created = Vec::new();
        for task in tasks {
            if let Some(rotated) = task.await.unwrap().unwrap() {
                created.push(rotated.version);
            }
        }
        assert_eq!(created, [round + 1], "round {round}: versions created");
        let ring = versions::read(&*nodes[0], name).await.unwrap();
        assert_eq!(ring.current_version(), round + 1);
        assert_eq!(ring.retained() as u32, round + 1);
    }
    // Stale: the version before the current one, or another lineage.
    let stale = versions::rotate_if(&*nodes[0], name, (lineage, rounds), "x").await;
    assert!(matches!(stale, Ok(None)), "{stale:?}");
    let other = kes_core::ring::Lineage::derive(b"another key");
    let stale = versions::rotate_if(&*nodes[0], name, (other, rounds + 1), "x").await;
    assert!(matches!(stale, Ok(None)), "{stale:?}");
    assert!(matches!(
        versions::rotate_if(&*nodes[0], "rot-if-none", (lineage, 1), "x").await,
        Err(Error::KeyNotFound)
    ));
    assert_eq!(
        versions::read(&*nodes[0], name)
            .await
            .unwrap()
            .current_version(),
        rounds + 1
    );
    versions::delete(&*nodes[0], name).await.unwrap();
}

/// Several servers creating the same version entry at the same moment:
/// exactly one is told it created it, and the entry holds its value. (On
/// Vault K/V v1 the create-only policy alone lets two creates both succeed
/// now and then: the later one replaces the earlier.)
async fn racing_version_creates(nodes: Vec<Store>, rounds: usize) {
    for round in 0..rounds {
        let name = format!("race-{round}@0011223344556677@2");
        let tasks: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let (node, name) = (node.clone(), name.clone());
                tokio::spawn(async move {
                    let value = format!("node {i}");
                    (node.create(&name, value.as_bytes()).await, value)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (Ok(()), value) => winners.push(value),
                (Err(Error::KeyExists), _) => {}
                (Err(e), _) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {winners:?} all created it"
        );
        let stored = nodes[0].get(&name).await.unwrap();
        assert_eq!(stored.as_slice(), winners[0].as_bytes(), "round {round}");
        nodes[0].delete(&name).await.unwrap();
    }
}

/// Deletion removes every version; an interrupted one is finished by a
/// rerun, and a new key of the same name never inherits old versions.
async fn deletion(store: Store) {
    let name = "rot-del";
    create_key(&store, name).await;
    versions::rotate(&*store, name, "x").await.unwrap();
    versions::rotate(&*store, name, "x").await.unwrap();
    // Interrupted: only the first entry went.
    store.delete(name).await.unwrap();
    assert!(matches!(
        versions::read(&*store, name).await,
        Err(Error::KeyNotFound)
    ));
    // A new key of the same name starts at version 1.
    create_key(&store, name).await;
    let ring = versions::read(&*store, name).await.unwrap();
    assert_eq!((ring.first_version(), ring.current_version()), (1, 1));
    assert_eq!(
        versions::rotate(&*store, name, "x").await.unwrap().version,
        2
    );
    assert_eq!(
        entries_of(&store, name).await.len(),
        3,
        "two stale + one new"
    );
    // A full delete removes the key, its versions and the stale entries.
    versions::delete(&*store, name).await.unwrap();
    assert!(entries_of(&store, name).await.is_empty());
    assert!(matches!(store.get(name).await, Err(Error::KeyNotFound)));

    // Rerunning a delete interrupted after the first entry: answers 200
    // and removes what was left.
    create_key(&store, name).await;
    versions::rotate(&*store, name, "x").await.unwrap();
    store.delete(name).await.unwrap();
    versions::delete(&*store, name).await.unwrap();
    assert!(entries_of(&store, name).await.is_empty());
    // Nothing left: the usual not-found, where the store can tell.
    let again = versions::delete(&*store, name).await;
    assert!(
        matches!(again, Ok(()) | Err(Error::KeyNotFound)),
        "{again:?}"
    );
}

#[tokio::test]
async fn memory() {
    let store: Store = Arc::new(kes_keystore::memory::MemKeyStore::new());
    single_node(Arc::clone(&store), true).await;
    concurrent(vec![Arc::clone(&store); 4], 5).await;
    conditional_rotations(vec![Arc::clone(&store); 4], 5).await;
    deletion(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fs() {
    let dir = tempfile::tempdir().unwrap();
    let open = || -> Store { Arc::new(kes_keystore::fs::FsKeyStore::open(dir.path()).unwrap()) };
    single_node(open(), true).await;
    concurrent((0..4).map(|_| open()).collect(), 5).await;
    conditional_rotations((0..4).map(|_| open()).collect(), 5).await;
    racing_version_creates((0..4).map(|_| open()).collect(), 10).await;
    deletion(open()).await;
}

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs moto_server; scripts/test runs it"]
async fn aws() {
    // One request at a time, so that racing creates are atomic as on AWS.
    let moto = kes_testkit::moto::Moto::start_serial();
    let config = kes_keystore::config::AwsConfig {
        endpoint: moto.endpoint(),
        region: "us-east-1".into(),
        access_key: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        ..Default::default()
    };
    let mut nodes: Vec<Store> = Vec::new();
    for _ in 0..3 {
        nodes.push(Arc::new(kes_keystore::aws::connect(&config).await.unwrap()));
    }
    single_node(Arc::clone(&nodes[0]), true).await;
    concurrent(nodes.clone(), 4).await;
    conditional_rotations(nodes.clone(), 3).await;
    racing_version_creates(nodes.clone(), 10).await;
    deletion(Arc::clone(&nodes[1])).await;
    super::deletion::lifecycle(Arc::clone(&nodes[2])).await;
}

#[cfg(feature = "vault")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs OpenBao; scripts/test runs it"]
async fn vault() {
    use kes_keystore::config::{VaultAppRole, VaultConfig};
    let bao = kes_testkit::bao::Bao::start();
    let (role, secret) = bao.setup_kes("1h", "2h");
    // A second role that may also overwrite and destroy, which retirement
    // needs on top of the create-only policy of docs/vault.md.
    bao.ok(
        "PUT",
        "sys/policies/acl/kes-retire",
        Some(serde_json::json!({"policy": r#"
path "kv/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "kv2/data/*" { capabilities = ["create", "read", "update"] }
path "kv2/destroy/*" { capabilities = ["update"] }
path "kv2/metadata/*" { capabilities = ["read", "list", "delete"] }
"#})),
    );
    bao.ok(
        "POST",
        "auth/approle/role/kes-retire",
        Some(serde_json::json!({"token_policies": "kes-retire"})),
    );
    let retire_role = bao
        .ok("GET", "auth/approle/role/kes-retire/role-id", None)
        .body["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_string();
    let retire_secret = bao
        .ok("POST", "auth/approle/role/kes-retire/secret-id", None)
        .body["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_string();
    let config = |engine: &str, version: &str, role: &str, secret: &str| VaultConfig {
        endpoint: bao.endpoint(),
        engine: engine.into(),
        version: version.into(),
        approle: Some(VaultAppRole {
            id: role.into(),
            secret: secret.into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    for (engine, version) in [("kv", "v1"), ("kv2", "v2")] {
        let connect = |role: &str, secret: &str| {
            let cfg = config(engine, version, role, secret);
            async move { Arc::new(kes_keystore::vault::connect(&cfg).await.unwrap()) as Store }
        };
        // The create-only policy: rotation works, retirement is refused.
        single_node(connect(&role, &secret).await, false).await;
        versions::delete(&*connect(&role, &secret).await, "rot-single")
            .await
            .unwrap();
        // K/V v1 has no conditional write: retirement is refused there
        // whatever the policy.
        single_node(connect(&retire_role, &retire_secret).await, version == "v2").await;
        let mut nodes = Vec::new();
        for _ in 0..3 {
            nodes.push(connect(&role, &secret).await);
        }
        concurrent(nodes.clone(), 4).await;
        conditional_rotations(nodes.clone(), 3).await;
        racing_version_creates(nodes, 10).await;
        deletion(connect(&role, &secret).await).await;
        // A deletion window needs the compare-and-swap of retirement.
        let store = connect(&retire_role, &retire_secret).await;
        if version == "v2" {
            super::deletion::lifecycle(store).await;
        } else {
            super::deletion::refused(store).await;
        }
    }
}

/// A memory store whose calls hang, once the retirement lease of a key
/// was created, until it is let go: a retirement stuck in its store calls,
/// as behind a slow network. Releases (`delete_if`) pass.
#[derive(Default)]
struct StallAfterLease {
    inner: kes_keystore::memory::MemKeyStore,
    stalled: std::sync::atomic::AtomicBool,
    /// Only the first lease stalls the store.
    leases: std::sync::atomic::AtomicUsize,
    released: tokio::sync::Notify,
}

impl StallAfterLease {
    async fn gate(&self) {
        loop {
            // Created before the check, so a `let_go` in between wakes it.
            let released = self.released.notified();
            if !self.stalled.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            released.await;
        }
    }
    fn let_go(&self) {
        self.stalled
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.released.notify_waiters();
    }
}

#[async_trait::async_trait]
impl KeyStore for StallAfterLease {
    async fn status(&self) -> Result<Duration, Error> {
        self.inner.status().await
    }
    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.gate().await;
        self.inner.create(name, value).await?;
        if name.ends_with("@retiring")
            && self
                .leases
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                == 0
        {
            self.stalled
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        Ok(())
    }
    async fn get(&self, name: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
        self.gate().await;
        self.inner.get(name).await
    }
    async fn replace_if(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        self.gate().await;
        self.inner.replace_if(name, current, value).await
    }
    async fn delete_if(&self, name: &str, current: &[u8]) -> Result<(), Error> {
        self.inner.delete_if(name, current).await
    }
    async fn delete(&self, name: &str) -> Result<(), Error> {
        self.gate().await;
        self.inner.delete(name).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.inner.list(prefix).await
    }
}

/// Issue 25, case 5: a retirement whose caller goes away (client reset,
/// route timeout) after it took the lease releases the lease at once, and
/// the next retirement of the key succeeds without waiting for it to
/// expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_retirement_releases_its_lease() {
    let stall = Arc::new(StallAfterLease::default());
    let store: Store = stall.clone();
    let name = "rot-drop";
    create_key(&store, name).await;
    versions::rotate(&*store, name, "x").await.unwrap();
    versions::rotate(&*store, name, "x").await.unwrap();

    let retire = {
        let store = Arc::clone(&store);
        tokio::spawn(async move { versions::retire_shared(&store, name, 1).await })
    };
    // Wait for the lease, then drop the retirement where it hangs.
    let lease_taken = async {
        while !stall.stalled.load(std::sync::atomic::Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), lease_taken)
        .await
        .expect("the retirement takes its lease");
    retire.abort();
    assert!(retire.await.unwrap_err().is_cancelled());
    stall.let_go();

    let lease_gone = async {
        loop {
            let left = store.list(&format!("{name}@")).await.unwrap();
            if !left.iter().any(|e| e.ends_with("@retiring")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), lease_gone)
        .await
        .expect("the dropped retirement's lease is released");
    let retired = versions::retire(&*store, name, 1).await.unwrap();
    assert_eq!(retired.retired, 2);
}
