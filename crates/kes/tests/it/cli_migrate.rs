//! `kes migrate` between key stores (fs, and AWS Secrets Manager on moto),
//! run as the real binary.

use kes_testkit::moto;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kes() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kes"));
    cmd.stdin(Stdio::null());
    cmd
}

/// A config file whose key store is the fs directory `keys`. The TLS files
/// are never opened by `kes migrate`.
fn config(dir: &Path, name: &str, keys: &Path) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "admin:\n  identity: disabled\ntls:\n  key: server.key\n  cert: server.crt\nkeystore:\n  fs:\n    path: {}\n",
            keys.display()
        ),
    )
    .unwrap();
    path
}

/// Distinct, deterministic values shaped like stored keys (base64 text of
/// varying length), so a mixed-up copy cannot go unnoticed.
fn value(i: usize) -> Vec<u8> {
    let mut state = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    let len = 120 + i % 80;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                [(state % 64) as usize]
        })
        .collect()
}

fn populate(dir: &Path, names: impl Iterator<Item = usize>) {
    std::fs::create_dir_all(dir).unwrap();
    for i in names {
        std::fs::write(dir.join(format!("key-{i:05}")), value(i)).unwrap();
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run kes");
    eprintln!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
#[ignore = "slow: scripts/test runs it"]
fn migrates_ten_thousand_keys_byte_for_byte() {
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    populate(&src, 0..N);
    let from = config(dir.path(), "from.yml", &src);
    let to = config(dir.path(), "to.yml", &dst);

    let start = Instant::now();
    let out = run(kes()
        .args(["migrate", "--json", "--from"])
        .arg(&from)
        .arg("--to")
        .arg(&to));
    eprintln!("migrated {N} keys in {:?}", start.elapsed());
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        summary,
        serde_json::json!({"copied": N, "skipped": 0, "failed": 0})
    );
    let (a, b) = (
        kes_testkit::read_fs_store(&src),
        kes_testkit::read_fs_store(&dst),
    );
    assert_eq!(a.len(), N);
    assert!(a == b, "target differs from source");
    // Not a copy of the source map by accident: the values really differ.
    assert_ne!(b["key-00000"], b["key-00001"]);

    // Running again without --merge/--force: every key exists, every key fails.
    let out = run(kes()
        .args(["migrate", "--from"])
        .arg(&from)
        .arg("--to")
        .arg(&to)
        .arg("key-0000?"));
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("0 copied, 0 skipped, 10 failed"),
        "{stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Error: failed to migrate 'key-00003': key already exists in the target")
    );
}

#[test]
#[ignore = "slow: scripts/test runs it"]
fn interrupted_migration_completes_with_merge() {
    const N: usize = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
    populate(&src, 0..N);
    let from = config(dir.path(), "from.yml", &src);
    let to = config(dir.path(), "to.yml", &dst);

    // Interrupt a real run: kill it once some keys have arrived.
    let mut child = kes()
        .args(["migrate", "--from"])
        .arg(&from)
        .arg("--to")
        .arg(&to)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copied = std::fs::read_dir(&dst).map(|d| d.count()).unwrap_or(0);
        if copied >= 50 || Instant::now() > deadline {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = child.kill();
    let _ = child.wait();
    let partial = kes_testkit::read_fs_store(&dst);
    eprintln!(
        "{} of {N} keys copied before the interruption",
        partial.len()
    );
    assert!(!partial.is_empty());
    // Whatever arrived is complete: never a truncated value under a key name.
    for (name, bytes) in &partial {
        assert_eq!(bytes, &kes_testkit::read_fs_store(&src)[name], "{name}");
    }

    // A key that exists in the target with another value: --merge keeps it.
    let extra = dst.join("key-02999");
    let _ = std::fs::remove_file(&extra);
    std::fs::write(&extra, b"a different value").unwrap();

    let out = run(kes()
        .args(["migrate", "--merge", "--json", "--from"])
        .arg(&from)
        .arg("--to")
        .arg(&to));
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let skipped = summary["skipped"].as_u64().unwrap();
    let copied = summary["copied"].as_u64().unwrap();
    assert_eq!(summary["failed"], 0);
    assert_eq!(copied + skipped, N as u64);
    assert!(skipped as usize >= partial.len());

    let (a, mut b) = (
        kes_testkit::read_fs_store(&src),
        kes_testkit::read_fs_store(&dst),
    );
    assert_eq!(b["key-02999"], b"a different value");
    b.insert("key-02999".into(), a["key-02999"].clone());
    assert!(a == b, "target differs from source after --merge");

    // --force replaces the different value, and only keys matching the pattern.
    let out = run(kes()
        .args(["migrate", "--force", "--from"])
        .arg(&from)
        .arg("--to")
        .arg(&to)
        .arg("key-0299[8-9]"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("2 copied, 0 skipped, 0 failed"));
    assert_eq!(
        kes_testkit::read_fs_store(&dst),
        kes_testkit::read_fs_store(&src)
    );
}

#[test]
fn usage_and_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let cfg = config(dir.path(), "c.yml", &keys);

    let out = run(kes()
        .args(["migrate", "--merge", "--force", "--from"])
        .arg(&cfg)
        .arg("--to")
        .arg(&cfg));
    assert_eq!(out.status.code(), Some(2));

    let out = run(kes()
        .args(["migrate", "--from"])
        .arg(&cfg)
        .arg("--to")
        .arg(&cfg)
        .arg("key-[a-"));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Error: invalid pattern 'key-[a-'"));

    let out = run(kes()
        .args(["migrate", "--from"])
        .arg(dir.path().join("missing.yml"))
        .arg("--to")
        .arg(&cfg));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yml"));
}

/// fs → AWS Secrets Manager (moto) → fs: the values survive both copies
/// unchanged, and only the keys matching the pattern travel.
#[test]
#[ignore = "needs moto_server; scripts/test runs it"]
fn migrates_through_aws_secrets_manager() {
    let moto = moto::Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let (src, back) = (dir.path().join("src"), dir.path().join("back"));
    populate(&src, 0..200);
    std::fs::write(src.join("other-key"), b"not migrated").unwrap();
    let from = config(dir.path(), "from.yml", &src);
    let aws = dir.path().join("aws.yml");
    std::fs::write(
        &aws,
        format!(
            "admin:\n  identity: disabled\ntls:\n  key: k\n  cert: c\nkeystore:\n  aws:\n    secretsmanager:\n      \
             endpoint: {}\n      region: us-east-1\n      credentials:\n        accesskey: AKIAIOSFODNN7EXAMPLE\n        \
             secretkey: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
            moto.endpoint()
        ),
    )
    .unwrap();
    let to = config(dir.path(), "back.yml", &back);

    let out = run(kes()
        .args(["migrate", "--json", "--from"])
        .arg(&from)
        .arg("--to")
        .arg(&aws)
        .arg("key-*"));
    assert!(out.status.success());
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!({"copied": 200, "skipped": 0, "failed": 0})
    );
    let out = run(kes()
        .args(["migrate", "--json", "--from"])
        .arg(&aws)
        .arg("--to")
        .arg(&to));
    assert!(out.status.success());

    let mut expected = kes_testkit::read_fs_store(&src);
    expected.remove("other-key");
    assert_eq!(expected.len(), 200);
    assert!(
        kes_testkit::read_fs_store(&back) == expected,
        "values changed on the way"
    );
}

mod rotated {
    use super::*;
    use kes_core::ring::KeyRing;
    use kes_core::{KeyAlgorithm, KeyVersion};
    use kes_keystore::fs::FsKeyStore;
    use kes_keystore::versions;
    use kes_keystore::KeyStore;
    use std::sync::Arc;

    fn store(dir: &Path) -> Arc<dyn KeyStore> {
        std::fs::create_dir_all(dir).unwrap();
        Arc::new(FsKeyStore::open(dir).unwrap())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    async fn create(store: &Arc<dyn KeyStore>, name: &str) {
        let value = KeyVersion::generate(KeyAlgorithm::Aes256, "tester")
            .encode()
            .unwrap();
        store.create(name, value.as_bytes()).await.unwrap();
    }

    /// Ciphertexts sealed with the current version of `ring`.
    fn seal(ring: &KeyRing, tag: &str, sealed: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        let plaintext = format!("sealed under {tag}").into_bytes();
        sealed.push((ring.key.encrypt(&plaintext, b"ctx"), plaintext));
    }

    fn assert_opens(ring: &KeyRing, sealed: &[(Vec<u8>, Vec<u8>)]) {
        for (ciphertext, plaintext) in sealed {
            assert_eq!(
                ring.decrypt(ciphertext, b"ctx")
                    .expect("decrypts")
                    .as_slice(),
                plaintext.as_slice()
            );
        }
    }

    fn migrate(from: &Path, to: &Path, extra: &[&str]) -> serde_json::Value {
        let out = run(kes()
            .args(["migrate", "--json"])
            .args(extra)
            .arg("--from")
            .arg(from)
            .arg("--to")
            .arg(to));
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// fs → fs: a rotated and retired key arrives with every retained
    /// version (same lineage, same bytes) and decrypts all it sealed; stale
    /// entries of another lineage and retirement locks stay behind; --merge
    /// skips a key of the same name with all its versions.
    #[test]
    fn every_version_is_copied_and_merge_never_mixes_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst, other) = (
            dir.path().join("src"),
            dir.path().join("dst"),
            dir.path().join("other"),
        );
        let rt = runtime();
        let (s, d2) = (store(&src), store(&other));
        let (ring, sealed, other_ring) = rt.block_on(async {
            create(&s, "rot").await;
            create(&s, "plain").await;
            let mut sealed = Vec::new();
            seal(
                &versions::read(&*s, "rot").await.unwrap(),
                "v1",
                &mut sealed,
            );
            for n in 2..=4 {
                let r = versions::rotate(&*s, "rot", "tester").await.unwrap();
                assert_eq!(r.version, n);
                seal(&r.ring, &format!("v{n}"), &mut sealed);
            }
            // Keep 2..4: the first entry now holds version 2 with a header.
            let r = versions::retire(&*s, "rot", 3).await.unwrap();
            assert_eq!(r.retired, 1);
            sealed.remove(0);
            let ring = versions::read(&*s, "rot").await.unwrap();
            // Leftovers that belong to no key: an entry of another lineage
            // and a retirement lock.
            let stale = kes_core::ring::Lineage::derive(b"a deleted key");
            s.create(&versions::entry_name("rot", stale, 7), b"stale")
                .await
                .unwrap();
            s.create(
                &format!("rot@{}@retiring", ring.lineage().to_hex()),
                b"lock",
            )
            .await
            .unwrap();

            // Another key named "rot", rotated once, in the merge target.
            create(&d2, "rot").await;
            versions::rotate(&*d2, "rot", "someone else").await.unwrap();
            let other_ring = versions::read(&*d2, "rot").await.unwrap();
            (ring, sealed, other_ring)
        });
        let source = kes_testkit::read_fs_store(&src);
        assert_eq!(source.len(), 6, "{:?}", source.keys());

        let from = config(dir.path(), "from.yml", &src);
        let to = config(dir.path(), "to.yml", &dst);
        let summary = migrate(&from, &to, &[]);
        assert_eq!(
            summary,
            serde_json::json!({"copied": 2, "skipped": 0, "failed": 0})
        );
        let copied = kes_testkit::read_fs_store(&dst);
        let lineage = ring.lineage().to_hex();
        let want: BTreeMap<String, Vec<u8>> = source
            .iter()
            .filter(|(n, _)| !n.contains('@') || (n.contains(&lineage) && !n.ends_with("retiring")))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        assert_eq!(want.len(), 4, "{:?}", want.keys());
        assert_eq!(copied, want);
        let d = store(&dst);
        rt.block_on(async {
            let got = versions::read(&*d, "rot").await.unwrap();
            assert_eq!(got.lineage(), ring.lineage());
            assert_eq!(
                (got.first_version(), got.current_version(), got.retained()),
                (2, 4, 3)
            );
            assert_opens(&got, &sealed);
        });

        // --merge into a store that has another "rot": skipped whole.
        let before = kes_testkit::read_fs_store(&other);
        let summary = migrate(
            &from,
            &config(dir.path(), "other.yml", &other),
            &["--merge"],
        );
        assert_eq!(
            summary,
            serde_json::json!({"copied": 1, "skipped": 1, "failed": 0})
        );
        let after = kes_testkit::read_fs_store(&other);
        assert!(
            !after.keys().any(|n| n.contains(&lineage)),
            "{:?}",
            after.keys()
        );
        assert_eq!(after.len(), before.len() + 1);
        assert_eq!(after["plain"], source["plain"]);
        rt.block_on(async {
            let got = versions::read(&*d2, "rot").await.unwrap();
            assert_eq!(got.lineage(), other_ring.lineage());
            assert_eq!(got.current_version(), 2);
            assert_eq!(got.retained(), 2);
        });

        // An interrupted copy (versions there, first entry not) is finished
        // by --merge, not skipped.
        let partial = dir.path().join("partial");
        std::fs::create_dir_all(&partial).unwrap();
        for (name, bytes) in &want {
            if name.contains('@') {
                std::fs::write(partial.join(name), bytes).unwrap();
            }
        }
        let summary = migrate(
            &from,
            &config(dir.path(), "partial.yml", &partial),
            &["--merge"],
        );
        assert_eq!(
            summary,
            serde_json::json!({"copied": 2, "skipped": 0, "failed": 0})
        );
        assert_eq!(kes_testkit::read_fs_store(&partial), want);

        // --force replaces the other "rot" with every version of ours and
        // none of its own.
        let summary = migrate(
            &from,
            &config(dir.path(), "other.yml", &other),
            &["--force", "rot"],
        );
        assert_eq!(
            summary,
            serde_json::json!({"copied": 1, "skipped": 0, "failed": 0})
        );
        assert_eq!(kes_testkit::read_fs_store(&other), want);
    }

    /// fs → fs with a key pending deletion (deleted with a window): it
    /// arrives pending, with its versions and its deletion marker, and
    /// restores there with every version; a key being purged is skipped.
    #[test]
    fn a_pending_key_arrives_pending_and_restores() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        let rt = runtime();
        let s = store(&src);
        let sealed = rt.block_on(async {
            create(&s, "gone").await;
            let mut sealed = Vec::new();
            seal(
                &versions::read(&*s, "gone").await.unwrap(),
                "v1",
                &mut sealed,
            );
            let r = versions::rotate(&*s, "gone", "tester").await.unwrap();
            seal(&r.ring, "v2", &mut sealed);
            versions::delete_later(&*s, "gone", std::time::Duration::from_secs(3600), "tester")
                .await
                .unwrap();
            // A purge that stopped after its first step: nothing to copy.
            s.create("purging", b"#kes purging 0011223344556677\n")
                .await
                .unwrap();
            sealed
        });
        let mut source = kes_testkit::read_fs_store(&src);
        source.remove("purging");
        // The tombstone, version 2 and the marker.
        assert_eq!(source.len(), 3, "{:?}", source.keys());

        let from = config(dir.path(), "from.yml", &src);
        let to = config(dir.path(), "to.yml", &dst);
        let summary = migrate(&from, &to, &[]);
        assert_eq!(
            summary,
            serde_json::json!({"copied": 1, "skipped": 1, "failed": 0})
        );
        // The versions and the tombstone byte for byte; the deletion
        // marker written anew (stamped with the copy's time).
        let without_marker = |mut m: BTreeMap<String, Vec<u8>>| {
            let marker: Vec<String> = m
                .keys()
                .filter(|n| n.ends_with("@deleted"))
                .cloned()
                .collect();
            assert_eq!(marker.len(), 1, "{:?}", m.keys());
            m.remove(&marker[0]);
            m
        };
        assert_eq!(
            without_marker(kes_testkit::read_fs_store(&dst)),
            without_marker(source)
        );
        let d = store(&dst);
        rt.block_on(async {
            assert!(matches!(
                versions::read(&*d, "gone").await,
                Err(kes_keystore::Error::KeyNotFound)
            ));
            let (pending, _) = versions::pending(&*d, "", std::ops::Bound::Unbounded, 10)
                .await
                .unwrap();
            assert_eq!(pending.len(), 1);
            assert_eq!(pending[0].name, "gone");
            let ring = versions::restore(&*d, "gone").await.unwrap();
            assert_eq!(ring.current_version(), 2);
            assert_opens(&ring, &sealed);
        });
    }

    /// fs → AWS Secrets Manager (moto) → fs with a rotated, retired key:
    /// every version survives both copies byte for byte.
    #[test]
    #[ignore = "needs moto_server; scripts/test runs it"]
    fn every_version_travels_through_aws_secrets_manager() {
        let moto = moto::Moto::start();
        let dir = tempfile::tempdir().unwrap();
        let (src, back) = (dir.path().join("src"), dir.path().join("back"));
        let rt = runtime();
        let s = store(&src);
        let sealed = rt.block_on(async {
            create(&s, "aws-rot").await;
            let mut sealed = Vec::new();
            for n in 2..=3 {
                let r = versions::rotate(&*s, "aws-rot", "tester").await.unwrap();
                assert_eq!(r.version, n);
                seal(&r.ring, &format!("v{n}"), &mut sealed);
            }
            versions::retire(&*s, "aws-rot", 2).await.unwrap();
            sealed
        });
        let source = kes_testkit::read_fs_store(&src);
        assert_eq!(source.len(), 2, "{:?}", source.keys());
        let aws = dir.path().join("aws.yml");
        std::fs::write(
            &aws,
            format!(
                "admin:\n  identity: disabled\ntls:\n  key: k\n  cert: c\nkeystore:\n  aws:\n    secretsmanager:\n      \
                 endpoint: {}\n      region: us-east-1\n      credentials:\n        accesskey: AKIAIOSFODNN7EXAMPLE\n        \
                 secretkey: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
                moto.endpoint()
            ),
        )
        .unwrap();
        let from = config(dir.path(), "from.yml", &src);
        let summary = migrate(&from, &aws, &[]);
        assert_eq!(
            summary,
            serde_json::json!({"copied": 1, "skipped": 0, "failed": 0})
        );
        let summary = migrate(&aws, &config(dir.path(), "back.yml", &back), &[]);
        assert_eq!(
            summary,
            serde_json::json!({"copied": 1, "skipped": 0, "failed": 0})
        );
        assert_eq!(kes_testkit::read_fs_store(&back), source);
        let b = store(&back);
        rt.block_on(async {
            let ring = versions::read(&*b, "aws-rot").await.unwrap();
            assert_eq!((ring.first_version(), ring.current_version()), (2, 3));
            assert_opens(&ring, &sealed);
        });
    }
}
