//! The integration tests of kes-core, one module per subject, in
//! one binary so that the test build links once per crate.

mod crypto_properties;
mod crypto_vectors;
mod crypto_wycheproof;
mod duration;
mod identity_apikey;
mod identity_cert;
mod identity_pem;
mod identity_proptest;

/// The package directory, as the test runner says when the test runs
/// (cargo and scripts/run-tests set `CARGO_MANIFEST_DIR`), not as it was
/// when the binary was built: a binary reused from another checkout
/// through a shared target dir must read this checkout's files.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("the current directory"))
}
