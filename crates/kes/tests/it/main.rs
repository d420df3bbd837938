//! The integration tests of kes, one module per subject, in
//! one binary so that the test build links once per crate.

mod aws_e2e;
mod cli_client;
mod cli_commands;
mod cli_migrate;
mod cli_operator;
mod common;
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
mod raft_standby_reads;
mod rotation_api;
mod rotation_nodes;
mod seal_cli;
mod server_api;
mod server_transcripts;
mod tutorial;
mod vault_e2e;
