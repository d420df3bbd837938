//! The sealed fs store against a real PKCS#11 module: SoftHSM2, a token
//! per test, each test in a process of its own (see kes_testkit::softhsm).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use kes_keystore::config::{Pkcs11SealConfig, TokenRef};
use kes_keystore::fs::{FsKeyStore, MAX_VALUE_SIZE};
use kes_keystore::memory::MemKeyStore;
use kes_keystore::{Error, KeyStore};
use kes_seal::pkcs11::{self, Pkcs11Key};
use kes_seal::{KeyWrapper, SealedStore, SEAL_FILE};
use kes_testkit::contract::Expect;
use kes_testkit::softhsm::{self, SoftHsm, KEY, PIN, TOKEN};

fn config(hsm: &SoftHsm) -> Pkcs11SealConfig {
    Pkcs11SealConfig {
        module: hsm.module.clone(),
        token: TokenRef::Label(TOKEN.into()),
        pin: PIN.into(),
        key: KEY.into(),
    }
}

async fn open_with(dir: &Path, config: &Pkcs11SealConfig) -> Result<SealedStore, Error> {
    let fs = FsKeyStore::open(dir).unwrap();
    pkcs11::open(dir, Arc::new(fs), config).await
}

async fn open(hsm: &SoftHsm, dir: &Path) -> SealedStore {
    open_with(dir, &config(hsm)).await.unwrap()
}

fn store_dir(hsm: &SoftHsm, name: &str) -> PathBuf {
    hsm.dir().join(name)
}

fn sealed_expect() -> Expect {
    Expect {
        max_value: MAX_VALUE_SIZE as usize - kes_seal::OVERHEAD,
        ..Expect::default()
    }
}

fn error_of(result: Result<SealedStore, Error>) -> String {
    match result {
        Ok(_) => panic!("opened, but an error was expected"),
        Err(e) => e.to_string(),
    }
}

/// The key-store contract over the sealed fs store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2; scripts/test runs it"]
async fn contract_fs() {
    let Some(hsm) = softhsm::isolated("seal::contract_fs") else {
        return;
    };
    let dir = store_dir(&hsm, "keys");
    let store = open(&hsm, &dir).await;
    kes_testkit::contract::run(Arc::new(store), sealed_expect()).await;
    // Every value written went through the seal: the directory holds only
    // the seal file now (and the fs store's lock file, which holds nothing).
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != kes_keystore::fs::LOCK_FILE)
        .collect();
    assert_eq!(left, [SEAL_FILE]);
}

/// The same contract over a sealed in-memory store: the wrapper's own
/// behaviour, whatever the fs store can do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2; scripts/test runs it"]
async fn contract_memory() {
    let Some(hsm) = softhsm::isolated("seal::contract_memory") else {
        return;
    };
    let dir = store_dir(&hsm, "seal");
    std::fs::create_dir(&dir).unwrap();
    let store = pkcs11::open(&dir, Arc::new(MemKeyStore::new()), &config(&hsm))
        .await
        .unwrap();
    kes_testkit::contract::run(Arc::new(store), sealed_expect()).await;
}

/// A value like an encoded KES key version, around 32 random key bytes.
fn key_value(key: &[u8; 32]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(key);
    format!(r#"{{"bytes":"{b64}","algorithm":"AES256"}}"#).into_bytes()
}

/// Every file of `dir` (hidden ones included).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Keys survive a restart, and no file of the directory holds a key in
/// the clear: neither the stored key bytes (raw or base64) nor the data
/// key that seals them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2; scripts/test runs it"]
async fn restart_and_no_key_bytes_at_rest() {
    let Some(hsm) = softhsm::isolated("seal::restart_and_no_key_bytes_at_rest") else {
        return;
    };
    let dir = store_dir(&hsm, "keys");
    let mut keys = Vec::new();
    {
        let store = open(&hsm, &dir).await;
        for i in 0..5 {
            let mut key = [0u8; 32];
            kes_core::random::fill(&mut key);
            let name = format!("my-key-{i}");
            store.create(&name, &key_value(&key)).await.unwrap();
            keys.push((name, key));
        }
        store.close().await;
    }
    let store = open(&hsm, &dir).await;
    for (name, key) in &keys {
        assert_eq!(*store.get(name).await.unwrap(), key_value(key), "{name}");
    }
    let mut listed = store.list("").await.unwrap();
    listed.sort();
    assert_eq!(
        listed,
        keys.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
    );

    // The data key, unwrapped here the way the store does it.
    let text = std::fs::read_to_string(dir.join(SEAL_FILE)).unwrap();
    let wrapped = text
        .lines()
        .find_map(|l| l.strip_prefix("data-key: "))
        .unwrap();
    let wrapped = base64::engine::general_purpose::STANDARD
        .decode(wrapped)
        .unwrap();
    let data_key = Pkcs11Key::connect(&config(&hsm))
        .unwrap()
        .unwrap(&wrapped)
        .unwrap();

    let files = files(&dir);
    assert_eq!(files.len(), keys.len() + 1, "the keys and the seal file");
    for (file, content) in &files {
        for (name, key) in &keys {
            let b64 = base64::engine::general_purpose::STANDARD.encode(key);
            assert!(
                !contains(content, &key[..16]),
                "{file} holds bytes of {name}"
            );
            assert!(
                !contains(content, b64.as_bytes()),
                "{file} holds {name} in base64"
            );
        }
        assert!(
            !contains(content, &data_key[..16]),
            "{file} holds the data key"
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode(&data_key[..]);
        assert!(
            !contains(content, &b64.as_bytes()[..20]),
            "{file} holds the data key in base64"
        );
    }
}

/// The entry's name is bound into its seal: a sealed file moved to
/// another key's name does not open, and the key it replaced is not
/// silently swapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2; scripts/test runs it"]
async fn renamed_entry_does_not_open() {
    let Some(hsm) = softhsm::isolated("seal::renamed_entry_does_not_open") else {
        return;
    };
    let dir = store_dir(&hsm, "keys");
    let store = open(&hsm, &dir).await;
    store.create("key-a", &key_value(&[1; 32])).await.unwrap();
    store.create("key-b", &key_value(&[2; 32])).await.unwrap();
    std::fs::rename(dir.join("key-a"), dir.join("key-b")).unwrap();
    let error = store.get("key-b").await.unwrap_err().to_string();
    assert!(error.contains("entry 'key-b' does not open"), "{error}");
    // A plain file copied into a sealed store is not used either.
    std::fs::write(dir.join("key-c"), key_value(&[3; 32])).unwrap();
    let error = store.get("key-c").await.unwrap_err().to_string();
    assert!(error.contains("entry 'key-c' is not sealed"), "{error}");
}

/// Two servers on one directory: both seal the empty directory at the
/// same moment, exactly one data key wins, and each reads what the other
/// writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2; scripts/test runs it"]
async fn two_servers_one_directory() {
    let Some(hsm) = softhsm::isolated("seal::two_servers_one_directory") else {
        return;
    };
    let dir = store_dir(&hsm, "shared");
    std::fs::create_dir(&dir).unwrap();
    let config = config(&hsm);
    let (a, b) = tokio::join!(open_with(&dir, &config), open_with(&dir, &config));
    let (a, b) = (a.unwrap(), b.unwrap());
    a.create("from-a", b"value of a").await.unwrap();
    b.create("from-b", b"value of b").await.unwrap();
    assert_eq!(*b.get("from-a").await.unwrap(), b"value of a");
    assert_eq!(*a.get("from-b").await.unwrap(), b"value of b");
    assert_eq!(b.create("from-a", b"other").await, Err(Error::KeyExists));
    b.replace_if("from-a", b"value of a", b"new").await.unwrap();
    assert_eq!(*a.get("from-a").await.unwrap(), b"new");
}

/// Each start-up error names its problem; the PIN never appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2; scripts/test runs it"]
async fn startup_errors() {
    let Some(hsm) = softhsm::isolated("seal::startup_errors") else {
        return;
    };
    // SoftHSM2 sees only the tokens that exist when this process first
    // loads it: a second token, with a key of the same label, made now.
    hsm.init_token("other");
    hsm.keygen("other", KEY, "AES:32", false);
    let dir = store_dir(&hsm, "keys");
    let good = config(&hsm);
    let with = |f: &dyn Fn(&mut Pkcs11SealConfig)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let expect = |error: String, wanted: &str| {
        assert!(error.contains(wanted), "{error:?} does not say {wanted:?}");
        assert!(!error.contains(PIN), "{error:?} shows the PIN");
    };

    let missing = with(&|c| c.module = "/nonexistent/libpkcs11.so".into());
    expect(
        error_of(open_with(&dir, &missing).await),
        "the PKCS#11 module '/nonexistent/libpkcs11.so' does not exist",
    );
    let not_a_library = hsm.dir().join("not-a-library.so");
    std::fs::write(&not_a_library, b"not an ELF file").unwrap();
    expect(
        error_of(open_with(&dir, &with(&|c| c.module = not_a_library.clone())).await),
        "cannot load the PKCS#11 module",
    );
    expect(
        error_of(open_with(&dir, &with(&|c| c.token = TokenRef::Label("nope".into()))).await),
        "has no token labelled 'nope' (keystore.fs.seal.pkcs11); its tokens: ",
    );
    expect(
        error_of(open_with(&dir, &with(&|c| c.token = TokenRef::Slot(4242))).await),
        "has no token in slot 4242",
    );
    expect(
        error_of(open_with(&dir, &with(&|c| c.pin = format!("{PIN}-wrong"))).await),
        &format!("the PIN of token '{TOKEN}' is wrong"),
    );
    expect(
        error_of(open_with(&dir, &with(&|c| c.key = "nope".into())).await),
        &format!("token '{TOKEN}' has no secret key labelled 'nope'"),
    );
    hsm.keygen(TOKEN, "aes-128", "AES:16", false);
    expect(
        error_of(open_with(&dir, &with(&|c| c.key = "aes-128".into())).await),
        "key 'aes-128' of token 'kes' is not an AES-256 key (it is AES-128)",
    );
    hsm.keygen(TOKEN, "generic", "GENERIC:32", false);
    expect(
        error_of(open_with(&dir, &with(&|c| c.key = "generic".into())).await),
        "key 'generic' of token 'kes' is not an AES-256 key",
    );
    // Nothing was written by the failed opens.
    assert!(!dir.join(SEAL_FILE).exists());

    // An extractable key opens, with a warning.
    hsm.keygen(TOKEN, "extractable", "AES:32", true);
    let other_dir = store_dir(&hsm, "extractable");
    let store = open_with(&other_dir, &with(&|c| c.key = "extractable".into()))
        .await
        .unwrap();
    assert!(
        store
            .warnings()
            .iter()
            .any(|w| w.contains("key 'extractable' of token 'kes' is extractable")),
        "{:?}",
        store.warnings()
    );
    assert!(open(&hsm, &dir).await.warnings().is_empty());

    // A store sealed under one key does not open under another label...
    hsm.keygen(TOKEN, "kes-seal-2", "AES:32", false);
    expect(
        error_of(open_with(&dir, &with(&|c| c.key = "kes-seal-2".into())).await),
        "is sealed under the HSM key 'kes-seal', not 'kes-seal-2'",
    );
    // ...nor under another key of the same label (another token).
    expect(
        error_of(open_with(&dir, &with(&|c| c.token = TokenRef::Label("other".into()))).await),
        "does not unwrap under the HSM key 'kes-seal': the store is sealed under another HSM key",
    );

    // A plain store that holds keys is never sealed in place.
    let plain = store_dir(&hsm, "plain");
    FsKeyStore::open(&plain)
        .unwrap()
        .create("plain-key", b"v")
        .await
        .unwrap();
    expect(
        error_of(open_with(&plain, &good).await),
        "holds plain keys (e.g. 'plain-key') and no .kes-seal",
    );
    assert!(!plain.join(SEAL_FILE).exists());
}

/// Rotating the HSM key rewraps the data key only: the entries stay as
/// they are and open under the new key; the old label is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs SoftHSM2; scripts/test runs it"]
async fn reseal_to_another_key() {
    let Some(hsm) = softhsm::isolated("seal::reseal_to_another_key") else {
        return;
    };
    let dir = store_dir(&hsm, "keys");
    let store = open(&hsm, &dir).await;
    store.create("my-key", b"value").await.unwrap();
    let entry = std::fs::read(dir.join("my-key")).unwrap();
    drop(store);
    hsm.keygen(TOKEN, "kes-seal-2", "AES:32", false);
    let new = Pkcs11SealConfig {
        key: "kes-seal-2".into(),
        ..config(&hsm)
    };
    pkcs11::reseal(&dir, &config(&hsm), &new).unwrap();
    assert_eq!(
        std::fs::read(dir.join("my-key")).unwrap(),
        entry,
        "entries untouched"
    );
    let store = open_with(&dir, &new).await.unwrap();
    assert_eq!(*store.get("my-key").await.unwrap(), b"value");
    let error = error_of(open_with(&dir, &config(&hsm)).await);
    assert!(
        error.contains("sealed under the HSM key 'kes-seal-2', not 'kes-seal'"),
        "{error}"
    );
    // No temporary file is left behind.
    let names: Vec<_> = files(&dir).into_iter().map(|(n, _)| n).collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".kes-tmp")),
        "{names:?}"
    );
}
