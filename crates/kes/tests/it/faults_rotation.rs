//! kill -9 during key rotations on the fs key store: clients rotate a key
//! in a loop over HTTP and seal a message after every rotation answered
//! 200; the server is killed at a random moment and restarted on the same
//! directory. Every version that was answered 200 is still there, every
//! kept ciphertext decrypts, and every file of the key directory decodes
//! (nothing half-written; temporary files are ignored, as the fs store
//! ignores them).

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{b64, unb64, Client, Setup, TestServer};
use kes_keystore::versions::parse_entry_name;
use serde_json::json;

/// Bounds of every loop. A key retains at most 100 versions (rotate
/// refuses beyond), so all rounds together stay below that.
const ROUNDS: usize = 4;
const WORKERS: usize = 2;
const MAX_ROTATIONS_PER_WORKER: usize = 10;
/// Pause between two rotations of a worker, so that the kill lands in the
/// middle of the rotations rather than after them.
const PACE: Duration = Duration::from_millis(25);
const MAX_ROUND: Duration = Duration::from_secs(20);
const NAME: &str = "kill-rot";

/// What a client was told: versions answered 200 and ciphertexts sealed
/// after them.
#[derive(Default)]
struct Told {
    versions: Vec<u64>,
    sealed: Vec<(Vec<u8>, String)>,
}

/// A pseudo-random duration in `[lo, hi)` ms (the moment of the kill; it
/// only needs to vary between runs and rounds).
fn random_ms(lo: u64, hi: u64, salt: u64) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let x = (nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0x2545_F491_4F6C_DD1D);
    Duration::from_millis(lo + (x >> 33) % (hi - lo))
}

/// Rotates and encrypts until the server goes away (or the bounds).
async fn worker(client: Client, w: usize, answered: Arc<AtomicUsize>) -> Told {
    let mut told = Told::default();
    let started = Instant::now();
    for i in 0..MAX_ROTATIONS_PER_WORKER {
        if started.elapsed() > MAX_ROUND {
            break;
        }
        let Ok(resp) = client
            .try_request("POST", &format!("/v1/key/rotate/{NAME}"), None)
            .await
        else {
            break;
        };
        // Two workers on one node lose a race now and then, which the
        // store retries; nothing here is refused.
        assert_eq!(resp.status, 200, "worker {w}: rotate: {}", resp.text());
        let version = resp.json()["version"].as_u64().expect("version");
        told.versions.push(version);
        answered.fetch_add(1, Ordering::SeqCst);
        let plaintext = format!("worker {w} message {i}");
        let body = serde_json::to_vec(&json!({
            "plaintext": b64(plaintext.as_bytes()),
            "context": b64(b"ctx"),
        }))
        .unwrap();
        let Ok(resp) = client
            .try_request("POST", &format!("/v1/key/encrypt/{NAME}"), Some(&body))
            .await
        else {
            break;
        };
        assert_eq!(resp.status, 200, "encrypt: {}", resp.text());
        let ciphertext = unb64(resp.json()["ciphertext"].as_str().unwrap());
        told.sealed.push((ciphertext, plaintext));
        tokio::time::sleep(PACE).await;
    }
    told
}

/// Every file of the key directory is a complete key version (the first
/// entry or a version entry), or a temporary file of the fs store.
fn check_files(dir: &Path) -> usize {
    let mut entries = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let file = entry.file_name().into_string().unwrap();
        if file.starts_with(".kes-tmp.") || file == kes_keystore::fs::LOCK_FILE {
            continue;
        }
        assert!(
            file == NAME || parse_entry_name(&file).is_some_and(|e| e.key == NAME),
            "unexpected file '{file}'"
        );
        let value = std::fs::read(entry.path()).unwrap();
        kes_core::KeyVersion::decode(&value)
            .unwrap_or_else(|e| panic!("'{file}' does not decode ({} bytes): {e}", value.len()));
        entries += 1;
    }
    entries
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_during_rotations() {
    let keys = tempfile::tempdir().unwrap();
    let keystore = format!("keystore:\n  fs:\n    path: {}\n", keys.path().display());
    let mut server = TestServer::start(Setup::new().keystore(&keystore));
    let resp = server
        .admin_client()
        .request("POST", &format!("/v1/key/create/{NAME}"), None)
        .await;
    assert_eq!(resp.status, 200, "{}", resp.text());

    let mut highest = 1u64;
    let mut answered = 1u64; // version 1, created above
    let mut sealed: Vec<(Vec<u8>, String)> = Vec::new();
    for round in 0..ROUNDS {
        let client = server.admin_client();
        let under_way = Arc::new(AtomicUsize::new(0));
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| tokio::spawn(worker(client.clone(), w, Arc::clone(&under_way))))
            .collect();
        // Kill once rotations are under way (the first may take long on a
        // loaded machine), at a moment that varies.
        let waiting = Instant::now();
        while under_way.load(Ordering::SeqCst) == 0 {
            assert!(
                waiting.elapsed() < MAX_ROUND,
                "no rotation answered within {MAX_ROUND:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(random_ms(0, 250, round as u64)).await;
        server.signal("KILL");
        assert!(server.wait(Duration::from_secs(10)).is_some(), "not killed");
        let mut round_versions = 0;
        for w in workers {
            let told = w.await.unwrap();
            round_versions += told.versions.len();
            answered += told.versions.len() as u64;
            highest = highest.max(told.versions.iter().copied().max().unwrap_or(0));
            sealed.extend(told.sealed);
        }
        eprintln!("round {round}: {round_versions} rotations answered 200 before the kill");

        // Restart on the same directory.
        server = TestServer::start(Setup::new().keystore(&keystore));
        let store = kes_keystore::fs::FsKeyStore::open(keys.path()).unwrap();
        let ring = kes_keystore::versions::read(&store, NAME).await.unwrap();
        let current = u64::from(ring.current_version());
        assert!(
            current >= highest,
            "current version {current}, but version {highest} was answered 200"
        );
        // Nothing deletes versions here: every number up to the current
        // one is retained, so every version answered 200 is there.
        assert_eq!(ring.first_version(), 1);
        assert_eq!(ring.retained() as u64, current);
        // A rotation killed after its version was created but before it
        // answered may add one version per worker; none is lost.
        assert!(
            current >= answered && current <= answered + WORKERS as u64,
            "current version {current}, {answered} versions answered 200"
        );
        assert_eq!(check_files(keys.path()) as u64, current);
        let temp_files = std::fs::read_dir(keys.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".kes-tmp.")
            })
            .count();
        eprintln!(
            "FIGURES round {round}: {} versions, {} created but not answered before the kill, \
             {temp_files} temporary files left, {} kept ciphertexts",
            current,
            current - answered,
            sealed.len()
        );

        let admin = server.admin_client();
        let mut conn = admin.connect().await.unwrap();
        for (ciphertext, plaintext) in &sealed {
            let body = serde_json::to_vec(&json!({
                "ciphertext": b64(ciphertext),
                "context": b64(b"ctx"),
            }))
            .unwrap();
            let resp = conn
                .request("POST", &format!("/v1/key/decrypt/{NAME}"), Some(&body))
                .await;
            assert_eq!(resp.status, 200, "decrypt after restart: {}", resp.text());
            assert_eq!(
                unb64(resp.json()["plaintext"].as_str().unwrap()),
                plaintext.as_bytes()
            );
        }
        // describe reports what the store holds.
        let resp = admin
            .request("GET", &format!("/v1/key/describe/{NAME}"), None)
            .await;
        assert_eq!(resp.status, 200, "{}", resp.text());
        if current > 1 {
            assert_eq!(resp.json()["version"].as_u64(), Some(current));
            assert_eq!(resp.json()["versions"].as_u64(), Some(current));
        }
        // Later rounds count from what the store has.
        answered = current;
    }
    assert!(
        !sealed.is_empty(),
        "no rotation was answered before any kill"
    );
}
