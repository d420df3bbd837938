//! A SoftHSM2 token per test, for the sealed fs store (docs/hsm.md).
//!
//! SoftHSM2 reads its configuration (`SOFTHSM2_CONF`: where its tokens
//! live) once per process, when the module is initialized, and PKCS#11
//! allows one initialization per process. So a test that talks to a token
//! runs in a process of its own: [`isolated`] makes the token (with the
//! `softhsm2-util` and `pkcs11-tool` programs, never through the module),
//! then runs the test again in a child process of the test binary whose
//! `SOFTHSM2_CONF` is the token's, and passes or fails with it.
//!
//! The tests that need SoftHSM2 are `#[ignore]`d; run (`--include-ignored`)
//! without it (Debian: `apt-get install softhsm2 opensc`, done by
//! `scripts/test`) they fail, so that a missing HSM never looks like a
//! green run.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The PIN of the tokens made here.
pub const PIN: &str = "kes-test-pin";
/// The security officer PIN of the tokens made here.
const SO_PIN: &str = "kes-test-so-pin";
/// The label of the token made by [`isolated`].
pub const TOKEN: &str = "kes";
/// The label of the AES-256 key made by [`isolated`].
pub const KEY: &str = "kes-seal";

/// Set in the child process: the directory of its token.
const CHILD_VAR: &str = "KES_TEST_SOFTHSM_DIR";

/// A SoftHSM2 token directory with its configuration.
pub struct SoftHsm {
    /// The SoftHSM2 PKCS#11 module.
    pub module: PathBuf,
    dir: PathBuf,
    /// Removes the directory in the parent; `None` in the child.
    _temp: Option<tempfile::TempDir>,
}

/// The SoftHSM2 module: `KES_TEST_SOFTHSM2_MODULE` or Debian's path.
fn module_path() -> PathBuf {
    std::env::var_os("KES_TEST_SOFTHSM2_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"))
}

/// Panics with instructions unless SoftHSM2 and pkcs11-tool are there.
fn require() {
    let tool = |name: &str| Command::new(name).arg("--version").output().is_ok();
    assert!(
        module_path().exists() && tool("softhsm2-util") && tool("pkcs11-tool"),
        "SoftHSM2 is not installed (need softhsm2-util, pkcs11-tool and {}): run scripts/test, \
         or `apt-get install softhsm2 opensc`, or set KES_TEST_SOFTHSM2_MODULE",
        module_path().display()
    );
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("run a SoftHSM2 tool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?} failed: {text}");
    text
}

impl SoftHsm {
    /// A new token directory with its SOFTHSM2_CONF, no tokens yet.
    fn new() -> SoftHsm {
        let temp = tempfile::tempdir().expect("temporary SoftHSM2 directory");
        let dir = temp.path().to_path_buf();
        std::fs::create_dir(dir.join("tokens")).unwrap();
        std::fs::write(
            dir.join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.join("tokens").display()
            ),
        )
        .unwrap();
        SoftHsm {
            module: module_path(),
            dir,
            _temp: Some(temp),
        }
    }

    /// The SOFTHSM2_CONF of this token directory.
    pub fn conf(&self) -> PathBuf {
        self.dir.join("softhsm2.conf")
    }

    /// The directory; the test's own files (key stores) may go here too.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes a token labelled `label` with the user PIN [`PIN`].
    pub fn init_token(&self, label: &str) {
        run(Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", self.conf())
            .args(["--init-token", "--free", "--label", label])
            .args(["--pin", PIN, "--so-pin", SO_PIN]));
    }

    /// Makes a secret key labelled `label` in token `token`: `key_type` as
    /// pkcs11-tool takes it (`AES:32`, `AES:16`, `GENERIC:32`), sensitive
    /// and, unless `extractable`, never extractable.
    pub fn keygen(&self, token: &str, label: &str, key_type: &str, extractable: bool) {
        let mut command = Command::new("pkcs11-tool");
        command
            .env("SOFTHSM2_CONF", self.conf())
            .arg("--module")
            .arg(&self.module)
            .args(["--token-label", token, "--login", "--pin", PIN])
            .args([
                "--keygen",
                "--key-type",
                key_type,
                "--label",
                label,
                "--sensitive",
            ]);
        if extractable {
            command.arg("--extractable");
        }
        run(&mut command);
    }
}

/// A token directory with the token [`TOKEN`] holding the non-extractable
/// AES-256 key [`KEY`], for tests that reach it only through processes of
/// their own (`kes` run with `SOFTHSM2_CONF` set to [`SoftHsm::conf`]).
pub fn token() -> SoftHsm {
    require();
    let hsm = SoftHsm::new();
    hsm.init_token(TOKEN);
    hsm.keygen(TOKEN, KEY, "AES:32", false);
    hsm
}

/// Runs the calling test in a process of its own with a SoftHSM2 token
/// [`TOKEN`] holding the non-extractable AES-256 key [`KEY`]. In the test
/// binary's own run it makes the token, runs `test` (the test's full
/// name with its module path, as `cargo test -- --exact` takes it, e.g.
/// `seal::contract_fs`) in a child process, asserts that it passed and
/// returns `None`; in the child it returns the token.
pub fn isolated(test: &str) -> Option<SoftHsm> {
    if let Some(dir) = std::env::var_os(CHILD_VAR) {
        return Some(SoftHsm {
            module: module_path(),
            dir: PathBuf::from(dir),
            _temp: None,
        });
    }
    let hsm = token();
    let exe = std::env::current_exe().expect("the test binary");
    let output = Command::new(exe)
        // The test is `#[ignore]`d (it needs SoftHSM2): the child runs it
        // all the same.
        .args([test, "--exact", "--include-ignored", "--nocapture"])
        .arg("--test-threads=1")
        .env(CHILD_VAR, hsm.dir())
        .env("SOFTHSM2_CONF", hsm.conf())
        .output()
        .expect("run the test in a child process");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{test} failed in its own process:\n{stdout}\n{stderr}"
    );
    // A filter that matched nothing would pass without running anything.
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run in its child process:\n{stdout}\n{stderr}"
    );
    None
}
