//! The integration tests of kes-keystore, one module per subject, in
//! one binary so that the test build links once per crate.

mod aws;
mod cache;
mod deletion;
mod fs;
mod interleave;
mod memory;
mod rotation;
mod vault;

/// The package directory, as the test runner says when the test runs
/// (cargo and scripts/run-tests set `CARGO_MANIFEST_DIR`), not as it was
/// when the binary was built: a binary reused from another checkout
/// through a shared target dir must read this checkout's files.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("the current directory"))
}
