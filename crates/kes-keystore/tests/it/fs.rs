//! The fs key store on real directories: the key-store contract, and what
//! only this backend does (files, modes, names, crash safety).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kes_keystore::fs::{FsKeyStore, MAX_VALUE_SIZE};
use kes_keystore::{Error, KeyStore};
use kes_testkit::contract::Expect;

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn umask() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Umask:")).unwrap();
    u32::from_str_radix(line["Umask:".len()..].trim(), 8).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsKeyStore::open(tmp.path()).unwrap();
    let expect = Expect {
        max_value: MAX_VALUE_SIZE as usize,
        ..Expect::default()
    };
    kes_testkit::contract::run(Arc::new(store), expect).await;
    // Nothing is left behind: no key, no temporary file; only the empty
    // file whose lock orders conditional writes and deletes.
    assert_eq!(dir_entries(tmp.path()), [".kes-lock"]);
    assert_eq!(
        std::fs::metadata(tmp.path().join(".kes-lock"))
            .unwrap()
            .len(),
        0
    );
    assert_eq!(mode(&tmp.path().join(".kes-lock")), 0o600);
}

#[tokio::test]
async fn a_key_is_one_file_holding_its_value() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsKeyStore::open(tmp.path()).unwrap();

    store.create("my-key", b"value-1").await.unwrap();
    // The file holds exactly the value: no newline, no framing.
    assert_eq!(
        std::fs::read(tmp.path().join("my-key")).unwrap(),
        b"value-1"
    );
    assert_eq!(mode(&tmp.path().join("my-key")), 0o600);
    // The temporary file is gone.
    assert_eq!(dir_entries(tmp.path()), ["my-key"]);

    // A refused create leaves the file alone.
    assert_eq!(
        store.create("my-key", b"second").await.unwrap_err(),
        Error::KeyExists
    );
    assert_eq!(
        std::fs::read(tmp.path().join("my-key")).unwrap(),
        b"value-1"
    );
    assert_eq!(dir_entries(tmp.path()), ["my-key"]);

    store.delete("my-key").await.unwrap();
    assert!(!tmp.path().join("my-key").exists());
}

#[tokio::test]
async fn empty_value() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsKeyStore::open(tmp.path()).unwrap();
    store.create("empty", b"").await.unwrap();
    assert!(store.get("empty").await.unwrap().is_empty());
}

#[tokio::test]
async fn name_validation() {
    // The table of the Go KES's fs_test.go.
    let invalid = [
        "",
        ".",
        "..",
        ".my-key",
        "my.key",
        "/my-key",
        "\\my-key",
        "my-key/",
        "my/key",
        "./my-key",
        "./../my-key",
    ];
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    let store = FsKeyStore::open(&keys).unwrap();
    // A file outside the key directory that traversal would hit.
    std::fs::write(tmp.path().join("my-key"), b"outside").unwrap();

    for name in invalid {
        for err in [
            store.create(name, b"value").await.unwrap_err(),
            store.get(name).await.unwrap_err(),
            store.delete(name).await.unwrap_err(),
        ] {
            match err {
                msg @ Error::Other { .. } => assert!(
                    msg.to_string().contains("invalid key name"),
                    "{name:?}: {msg}"
                ),
                other => panic!("{name:?}: unexpected {other:?}"),
            }
        }
    }
    assert!(dir_entries(&keys).is_empty());
    assert_eq!(
        std::fs::read(tmp.path().join("my-key")).unwrap(),
        b"outside"
    );

    store.create("my-key", b"inside").await.unwrap();
    assert_eq!(store.get("my-key").await.unwrap().as_slice(), b"inside");
}

#[tokio::test]
async fn list_skips_temp_files_and_foreign_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsKeyStore::open(tmp.path()).unwrap();
    store.create("my-key", b"value").await.unwrap();
    std::fs::write(tmp.path().join(".kes-tmp.1.2"), b"half").unwrap();
    std::fs::write(tmp.path().join(".hidden"), b"x").unwrap();
    std::fs::write(tmp.path().join("notes.txt"), b"x").unwrap();
    std::fs::create_dir(tmp.path().join("subdir")).unwrap();
    assert_eq!(store.list("").await.unwrap(), ["my-key"]);
}

#[tokio::test]
async fn open_removes_leftover_temp_files() {
    let tmp = tempfile::tempdir().unwrap();
    FsKeyStore::open(tmp.path())
        .unwrap()
        .create("my-key", b"value")
        .await
        .unwrap();
    // What a crash between writing and publishing leaves behind (older
    // than any create takes) ...
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for (name, data) in [
        (".kes-tmp.4242.0", &b"partial"[..]),
        (".kes-tmp.4242.1", b""),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, data).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    // ... and what another server sharing the directory is creating right
    // now, which must survive this store's start.
    std::fs::write(tmp.path().join(".kes-tmp.4243.0"), b"in flight").unwrap();
    std::fs::write(tmp.path().join(".hidden"), b"not ours").unwrap();

    let store = FsKeyStore::open(tmp.path()).unwrap();
    assert_eq!(
        dir_entries(tmp.path()),
        [".hidden", ".kes-tmp.4243.0", "my-key"]
    );
    assert_eq!(store.get("my-key").await.unwrap().as_slice(), b"value");
}

#[tokio::test]
async fn open_creates_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("keys");
    let store = FsKeyStore::open(&dir).unwrap();
    assert!(dir.is_dir());
    assert_eq!(mode(&dir), 0o755 & !umask());
    assert_eq!(store.path(), dir.as_path());
    store.create("k", b"v").await.unwrap();
}

#[tokio::test]
async fn open_rejects_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    match FsKeyStore::open(&file).unwrap_err() {
        msg @ Error::Other { .. } => assert!(msg.to_string().contains("not a directory"), "{msg}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn get_limits_size() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsKeyStore::open(tmp.path()).unwrap();
    let max = vec![7u8; MAX_VALUE_SIZE as usize];
    std::fs::write(tmp.path().join("max"), &max).unwrap();
    assert_eq!(store.get("max").await.unwrap().as_slice(), &max[..]);

    std::fs::write(
        tmp.path().join("huge"),
        vec![7u8; MAX_VALUE_SIZE as usize + 1],
    )
    .unwrap();
    match store.get("huge").await.unwrap_err() {
        msg @ Error::Other { .. } => assert!(msg.to_string().contains("larger than"), "{msg}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn get_of_a_directory_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsKeyStore::open(tmp.path()).unwrap();
    std::fs::create_dir(tmp.path().join("subdir")).unwrap();
    assert!(matches!(
        store.get("subdir").await.unwrap_err(),
        Error::Other { .. }
    ));
}

#[tokio::test]
async fn status() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("keys");
    let store = FsKeyStore::open(&dir).unwrap();
    assert!(store.status().await.unwrap() < std::time::Duration::from_secs(5));

    std::fs::remove_dir(&dir).unwrap();
    assert!(matches!(
        store.status().await.unwrap_err(),
        Error::Unreachable { .. }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_one_wins() {
    let tmp = tempfile::tempdir().unwrap();
    // Separate store instances, as separate processes would have.
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let store = FsKeyStore::open(tmp.path()).unwrap();
            tokio::spawn(async move { store.create("race", &[i; 100]).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(()) => winners.push(i as u8),
            Err(e) => assert_eq!(e, Error::KeyExists),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        std::fs::read(tmp.path().join("race")).unwrap(),
        vec![winners[0]; 100]
    );
    assert_eq!(dir_entries(tmp.path()), ["race"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_store_across_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(FsKeyStore::open(tmp.path()).unwrap());
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let name = format!("key-{i}");
                store.create(&name, name.as_bytes()).await.unwrap();
                assert_eq!(store.get(&name).await.unwrap().as_slice(), name.as_bytes());
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.list("key-").await.unwrap().len(), 20);
}

fn go_kes_keys() -> PathBuf {
    crate::manifest_dir().join("../../testdata/go-kes/keys")
}

#[tokio::test]
async fn reads_the_go_kes_key_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    for entry in std::fs::read_dir(go_kes_keys()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        std::fs::copy(entry.path(), tmp.path().join(&name)).unwrap();
        expected.push(name);
    }
    expected.sort();
    assert_eq!(
        expected,
        ["golden-aes", "golden-chacha", "golden-imported-aes"]
    );

    let store = FsKeyStore::open(tmp.path()).unwrap();
    let mut listed = store.list("golden-").await.unwrap();
    listed.sort();
    assert_eq!(listed, expected);
    for name in &expected {
        let value = store.get(name).await.unwrap();
        assert_eq!(
            value.as_slice(),
            std::fs::read(go_kes_keys().join(name)).unwrap(),
            "{name}"
        );
        let key = kes_core::KeyVersion::decode(&value)
            .unwrap_or_else(|e| panic!("{name} does not decode: {e}"));
        assert!(key.hmac_key.is_some(), "{name}");
        let algorithm = key.key.algorithm();
        if name == "golden-chacha" {
            assert_eq!(algorithm, kes_core::KeyAlgorithm::ChaCha20);
        } else {
            assert_eq!(algorithm, kes_core::KeyAlgorithm::Aes256);
        }
    }
}

/// The directory's modification and change times: creating or removing
/// any entry (a temporary file too) updates both.
fn dir_times(dir: &Path) -> (std::time::SystemTime, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).unwrap();
    (meta.modified().unwrap(), meta.ctime(), meta.ctime_nsec())
}

#[tokio::test]
async fn refused_create_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FsKeyStore::open(tmp.path()).unwrap();
    store.create("my-key", b"first").await.unwrap();
    // Directory timestamps come from a coarse clock (one tick, a few ms):
    // wait long enough that a write in the refused creates would show.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let before = dir_times(tmp.path());
    for _ in 0..3 {
        assert_eq!(
            store.create("my-key", b"second").await.unwrap_err(),
            Error::KeyExists
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        dir_times(tmp.path()),
        before,
        "a refused create created or removed a file in the key directory"
    );
    assert_eq!(dir_entries(tmp.path()), ["my-key"]);
    assert_eq!(std::fs::read(tmp.path().join("my-key")).unwrap(), b"first");

    // The check sees any entry under the name, not only key files.
    std::fs::create_dir(tmp.path().join("subdir")).unwrap();
    assert_eq!(
        store.create("subdir", b"value").await.unwrap_err(),
        Error::KeyExists
    );
}

/// A directory on a real case-insensitive file system: a loop-mounted ext4
/// image with the casefold feature and a `chattr +F` directory. Unmounted
/// when dropped.
struct CasefoldDir {
    mount: tempfile::TempDir,
    _image: tempfile::TempDir,
}

impl CasefoldDir {
    /// Fails with the reason when this machine cannot provide one (no
    /// mkfs.ext4 or chattr, a kernel without casefold support); panics
    /// without root.
    fn mount() -> Result<Self, String> {
        fn run(cmd: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
            let out = std::process::Command::new(cmd)
                .args(args)
                .output()
                .map_err(|e| format!("cannot run {cmd}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd} failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        }
        kes_testkit::require_root("it mounts an ext4 image");
        let image_dir = tempfile::tempdir().unwrap();
        let image = image_dir.path().join("casefold.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(8 << 20)
            .unwrap();
        let mount = tempfile::tempdir().unwrap();
        run(
            "mkfs.ext4",
            &[
                "-q".as_ref(),
                "-F".as_ref(),
                "-O".as_ref(),
                "casefold".as_ref(),
                image.as_os_str(),
            ],
        )?;
        run(
            "mount",
            &[
                "-o".as_ref(),
                "loop".as_ref(),
                image.as_os_str(),
                mount.path().as_os_str(),
            ],
        )?;
        let dir = Self {
            mount,
            _image: image_dir,
        };
        std::fs::create_dir(dir.path()).unwrap();
        run("chattr", &["+F".as_ref(), dir.path().as_os_str()])?;
        // Make sure the directory really ignores case before relying on it.
        std::fs::write(dir.path().join("abc"), b"x").map_err(|e| e.to_string())?;
        if !dir.path().join("ABC").exists() {
            return Err("the casefold directory is case-sensitive after all".into());
        }
        std::fs::remove_file(dir.path().join("abc")).unwrap();
        Ok(dir)
    }

    fn path(&self) -> PathBuf {
        self.mount.path().join("keys")
    }
}

impl Drop for CasefoldDir {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.mount.path())
            .status();
    }
}

/// Skipped by scripts/test on a kernel without ext4 casefold support
/// (`/sys/fs/ext4/features/casefold`), which it cannot run on.
#[test]
#[ignore = "needs root, mkfs.ext4 and a kernel with ext4 casefold; scripts/test runs it"]
fn open_refuses_a_case_insensitive_file_system() {
    let dir = CasefoldDir::mount()
        .unwrap_or_else(|reason| panic!("no case-insensitive file system to test on: {reason}"));
    match FsKeyStore::open(dir.path()).unwrap_err() {
        msg @ Error::Other { .. } => assert!(
            msg.to_string().contains("case-insensitive file system"),
            "{msg}"
        ),
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        dir_entries(&dir.path()).is_empty(),
        "the probe file is removed"
    );
}

#[tokio::test]
async fn open_accepts_tmpfs() {
    // /tmp is often ext4 or overlayfs; /dev/shm is tmpfs on Linux.
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    assert!(
        mounts
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("/dev/shm") && l.contains(" tmpfs ")),
        "/dev/shm is not a tmpfs here"
    );
    let tmp = tempfile::tempdir_in("/dev/shm").unwrap();
    let store = FsKeyStore::open(tmp.path()).unwrap();
    store.create("my-key", b"lower").await.unwrap();
    store.create("MY-KEY", b"upper").await.unwrap();
    assert_eq!(store.get("my-key").await.unwrap().as_slice(), b"lower");
    assert_eq!(store.get("MY-KEY").await.unwrap().as_slice(), b"upper");
    assert_eq!(dir_entries(tmp.path()), ["MY-KEY", "my-key"]);
}

/// Signals when a compare-and-swap of a key's first entry begins: the
/// moment between a retirement's read and its write.
struct SignalSwap {
    inner: Arc<dyn KeyStore>,
    entered: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl KeyStore for SignalSwap {
    async fn status(&self) -> Result<std::time::Duration, Error> {
        self.inner.status().await
    }
    async fn create(&self, name: &str, value: &[u8]) -> Result<(), Error> {
        self.inner.create(name, value).await
    }
    async fn get(&self, name: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, Error> {
        self.inner.get(name).await
    }
    async fn replace_if(&self, name: &str, current: &[u8], value: &[u8]) -> Result<(), Error> {
        if kes_keystore::versions::is_key_name(name) {
            self.entered.notify_one();
        }
        self.inner.replace_if(name, current, value).await
    }
    async fn delete_if(&self, name: &str, current: &[u8]) -> Result<(), Error> {
        self.inner.delete_if(name, current).await
    }
    async fn delete(&self, name: &str) -> Result<(), Error> {
        self.inner.delete(name).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.inner.list(prefix).await
    }
}

/// Issue 25, case 4: a retirement on one server racing a delete on another
/// (two stores on one directory). The delete is sent the moment the
/// retirement's write of the first entry begins. A delete that answered OK
/// must leave the key gone, and a create right after it must succeed:
/// before the fs store's conditional writes were atomic, the retirement's
/// rename brought the deleted key back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow: scripts/test runs it"]
async fn retire_racing_delete_never_resurrects() {
    use kes_core::{KeyAlgorithm, KeyVersion};
    use kes_keystore::versions;

    let tmp = tempfile::tempdir().unwrap();
    let a: Arc<dyn KeyStore> = Arc::new(FsKeyStore::open(tmp.path()).unwrap());
    let b: Arc<dyn KeyStore> = Arc::new(FsKeyStore::open(tmp.path()).unwrap());
    let swap = Arc::new(SignalSwap {
        inner: Arc::clone(&a),
        entered: tokio::sync::Notify::new(),
    });
    let new_key = || {
        KeyVersion::generate(KeyAlgorithm::Aes256, "race")
            .encode()
            .unwrap()
    };
    let rounds = 300;
    let (mut deleted, mut resurrected, mut refused_creates) = (0, 0, 0);
    for round in 0..rounds {
        let name = format!("race-{round}");
        a.create(&name, new_key().as_bytes()).await.unwrap();
        versions::rotate(&*a, &name, "race").await.unwrap();
        versions::rotate(&*a, &name, "race").await.unwrap();
        let retire = {
            let swap = Arc::clone(&swap);
            let name = name.clone();
            tokio::spawn(async move { versions::retire(&*swap, &name, 1).await })
        };
        swap.entered.notified().await;
        let delete = versions::delete(&*b, &name).await;
        let retired = retire.await.unwrap();
        assert!(
            matches!(retired, Ok(_) | Err(Error::KeyNotFound)),
            "{retired:?}"
        );
        if delete.is_ok() {
            deleted += 1;
            if b.get(&name).await.is_ok() {
                resurrected += 1;
            }
            match b.create(&name, new_key().as_bytes()).await {
                Ok(()) => {}
                Err(Error::KeyExists) => refused_creates += 1,
                Err(e) => panic!("{e}"),
            }
        }
        let _ = versions::delete(&*b, &name).await;
    }
    eprintln!(
        "{rounds} rounds: {deleted} deletes answered OK, {resurrected} keys came back, \
         {refused_creates} creates after a delete were refused"
    );
    assert_eq!(deleted, rounds, "every delete finds the key");
    assert_eq!((resurrected, refused_creates), (0, 0));
}
