//! Fault tests for the fs key store while clients create keys: the disk
//! fills up (a small tmpfs) and the directory becomes read-only (the tmpfs
//! remounted `ro`). Creates fail with a clear error, no key is ever
//! half-written, existing keys keep serving, and creates work again once
//! the fault is gone, without a restart.
//!
//! Mounting needs root (CAP_SYS_ADMIN): the tests are `#[ignore]`d, and
//! run without root (`--include-ignored`) they fail. (A `chmod 0555`
//! directory would not do: root ignores permission bits.)

use crate::common;

use common::{Client, Setup, TestServer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bounds of every load loop.
const MAX_CREATES_PER_WORKER: u32 = 3_000;
const MAX_RUN: Duration = Duration::from_secs(60);
const WORKERS: usize = 4;
/// Creates answered in each phase of a fault (before, during, after).
const CREATES_PER_PHASE: usize = 40;

/// A tmpfs mounted on a directory, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs(dir.to_path_buf()))
    }

    fn remount(&self, options: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "remount {options}: {out:?}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Mounts a tmpfs for the key store; panics without root.
fn key_store_on_tmpfs(size: &str) -> (Setup, Tmpfs) {
    kes_testkit::require_root("it mounts a tmpfs");
    let setup = Setup::new();
    match Tmpfs::mount(&setup.keys_dir(), size) {
        Ok(mount) => (setup, mount),
        Err(e) => panic!("cannot mount a tmpfs: {e}"),
    }
}

/// One create as the client saw it.
#[derive(Debug)]
struct Outcome {
    at: Instant,
    name: String,
    status: u16,
    message: String,
}

/// How many creates the creators have had answered so far, and how many
/// of them with 200.
#[derive(Default)]
struct Progress {
    answered: AtomicUsize,
    created: AtomicUsize,
}

impl Progress {
    /// Waits until `more` further creates were answered (with 200 if
    /// `created`), while the creators run on.
    async fn more(&self, more: usize, created: bool, what: &str) {
        let count = || {
            if created {
                self.created.load(Ordering::Relaxed)
            } else {
                self.answered.load(Ordering::Relaxed)
            }
        };
        let target = count() + more;
        let deadline = Instant::now() + Duration::from_secs(30);
        while count() < target {
            assert!(Instant::now() < deadline, "waited 30 s for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// `WORKERS` clients creating keys `<prefix><worker>-<n>` until `stop`
/// or their bounds.
fn start_creators(
    admin: &Client,
    prefix: &str,
    stop: &Arc<AtomicBool>,
    progress: &Arc<Progress>,
) -> Vec<tokio::task::JoinHandle<Vec<Outcome>>> {
    (0..WORKERS)
        .map(|w| {
            let (admin, stop, prefix) = (admin.clone(), stop.clone(), prefix.to_string());
            let progress = Arc::clone(progress);
            tokio::spawn(async move {
                let started = Instant::now();
                let mut outcomes = Vec::new();
                let mut conn = admin.connect().await.unwrap();
                let mut n = 0;
                while !stop.load(Ordering::Relaxed)
                    && n < MAX_CREATES_PER_WORKER
                    && started.elapsed() < MAX_RUN
                {
                    let name = format!("{prefix}{w}-{n}");
                    let at = Instant::now();
                    let r = conn
                        .request("POST", &format!("/v1/key/create/{name}"), None)
                        .await;
                    let message = if r.status == 200 {
                        String::new()
                    } else {
                        r.message()
                    };
                    progress.answered.fetch_add(1, Ordering::Relaxed);
                    if r.status == 200 {
                        progress.created.fetch_add(1, Ordering::Relaxed);
                    }
                    outcomes.push(Outcome {
                        at,
                        name,
                        status: r.status,
                        message,
                    });
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                outcomes
            })
        })
        .collect()
}

async fn collect(workers: Vec<tokio::task::JoinHandle<Vec<Outcome>>>) -> Vec<Outcome> {
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all
}

/// Every file in the directory is a complete key; there are no temporary
/// files left; the keys reported created exist, the ones reported failed
/// do not.
fn check_store(dir: &Path, outcomes: &[Outcome]) {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == kes_keystore::fs::LOCK_FILE {
            continue;
        }
        assert!(!name.starts_with('.'), "temporary file left behind: {name}");
        let bytes = std::fs::read(entry.path()).unwrap();
        kes_core::KeyVersion::decode(&bytes)
            .unwrap_or_else(|e| panic!("half-written key '{name}' ({} bytes): {e}", bytes.len()));
        names.push(name);
    }
    for o in outcomes {
        let exists = names.contains(&o.name);
        match o.status {
            200 => assert!(exists, "created key is missing: {o:?}"),
            _ => assert!(!exists, "failed create left a key: {o:?}"),
        }
    }
}

async fn wait_until_a_create_fails(outcomes_so_far: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !outcomes_so_far() {
        assert!(Instant::now() < deadline, "no create failed: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs root; scripts/test runs it"]
async fn disk_full_during_creates() {
    let (setup, mount) = key_store_on_tmpfs("256k");
    let dir = setup.keys_dir();
    let server = TestServer::start(setup);
    let admin = server.admin_client();
    let r = admin.request("POST", "/v1/key/create/existing", None).await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Creates until the disk is full, then on for a while against it.
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let workers = start_creators(&admin, "full-", &stop, &progress);
    let errors = || server.stderr().contains("No space left on device");
    wait_until_a_create_fails(errors, "the tmpfs never filled up").await;
    let full_at = Instant::now();
    progress
        .more(CREATES_PER_PHASE, false, "creates against the full disk")
        .await;
    // An existing key still serves while the disk is full.
    let r = admin
        .json("POST", "/v1/key/generate/existing", serde_json::json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    stop.store(true, Ordering::Relaxed);
    let outcomes = collect(workers).await;
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != 200).collect();
    assert!(!failed.is_empty());
    for o in &failed {
        assert_eq!(
            (o.status, o.message.as_str()),
            (502, "failed to create key"),
            "{o:?}"
        );
    }
    check_store(&dir, &outcomes);

    // More space: creates work again, with no restart.
    mount.remount("size=4m");
    let recovered = Instant::now();
    let r = admin
        .request("POST", "/v1/key/create/after-full", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin
        .json("POST", "/v1/key/generate/after-full", serde_json::json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    eprintln!(
        "FIGURES fs disk-full: {} creates, {} failed with 502 'failed to create key' \
         (error log: No space left on device) over {:?}; 0 half-written keys, 0 temporary \
         files left; first create after adding space answered in {:?}",
        outcomes.len(),
        failed.len(),
        full_at.elapsed(),
        recovered.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs root; scripts/test runs it"]
async fn read_only_directory_during_creates() {
    let (setup, mount) = key_store_on_tmpfs("64m");
    let dir = setup.keys_dir();
    let server = TestServer::start(setup);
    let admin = server.admin_client();
    for name in ["existing", "to-delete"] {
        let r = admin
            .request("POST", &format!("/v1/key/create/{name}"), None)
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let workers = start_creators(&admin, "ro-", &stop, &progress);
    progress
        .more(CREATES_PER_PHASE, true, "creates before the fault")
        .await;
    mount.remount("ro");
    let read_only_at = Instant::now();
    let errors = || server.stderr().contains("Read-only file system");
    wait_until_a_create_fails(errors, "the read-only mount was not noticed").await;
    // Reads keep working; deletes fail like creates.
    let r = admin
        .json("POST", "/v1/key/generate/existing", serde_json::json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin
        .request("DELETE", "/v1/key/delete/to-delete", None)
        .await;
    assert_eq!(
        (r.status, r.message()),
        (502, "failed to delete key".into())
    );
    progress
        .more(
            CREATES_PER_PHASE,
            false,
            "creates against the read-only directory",
        )
        .await;

    mount.remount("rw");
    let writable_at = Instant::now();
    progress
        .more(CREATES_PER_PHASE, true, "creates after the fault")
        .await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = collect(workers).await;
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.status != 200).collect();
    assert!(!failed.is_empty(), "no create failed while read-only");
    for o in &failed {
        assert_eq!(
            (o.status, o.message.as_str()),
            (502, "failed to create key"),
            "{o:?}"
        );
    }
    // The workers created keys again after the remount, and none failed
    // once the first had succeeded.
    let after: Vec<&Outcome> = outcomes.iter().filter(|o| o.at > writable_at).collect();
    let first_ok = after.iter().position(|o| o.status == 200);
    let log = server.stderr();
    assert!(
        first_ok.is_some_and(|i| after[i..]
            .iter()
            .filter(|o| o.at > after[i].at)
            .all(|o| o.status == 200)),
        "creates did not recover: {:?}\n{}",
        after.iter().rev().take(8).collect::<Vec<_>>(),
        &log[log.len().saturating_sub(1500)..]
    );
    check_store(&dir, &outcomes);
    let r = admin
        .request("DELETE", "/v1/key/delete/to-delete", None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    eprintln!(
        "FIGURES fs read-only: {} creates, {} failed with 502 'failed to create key' \
         (error log: Read-only file system) during {:?} read-only; 0 half-written keys, \
         0 temporary files left; creates succeed again right after the remount",
        outcomes.len(),
        failed.len(),
        writable_at.duration_since(read_only_at)
    );
}
