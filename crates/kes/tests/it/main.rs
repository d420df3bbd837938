//! The integration tests of kes, one module per subject, in
//! one binary so that the test build links once per crate.

mod aws_e2e;
mod cli_client;
mod cli_commands;
mod cli_migrate;
mod cli_operator;
mod common;
mod deletion_window;
mod faults_aws;
mod faults_fs;
mod faults_migrate;
mod faults_raft;
mod faults_reload;
mod faults_rotation;
mod faults_vault;
mod hostile_clients;
mod hostile_logs;
mod identity_cli;
mod proxies;
mod proxy_protocol;
mod raft_standby_reads;
mod rotation_api;
mod rotation_nodes;
mod rotation_schedule;
mod seal_cli;
mod server_api;
mod server_transcripts;
mod tls_proxy;
mod tutorial;
mod vault_e2e;
mod version_field;

/// The package directory, as the test runner says when the test runs
/// (cargo and scripts/run-tests set `CARGO_MANIFEST_DIR`), not as it was
/// when the binary was built: a binary reused from another checkout
/// through a shared target dir must read this checkout's files.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::current_dir().expect("the current directory"))
}
