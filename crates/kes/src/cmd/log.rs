//! `kes log`. SKELETON: to be filled in.

use super::CliResult;

/// Arguments of `kes log`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `kes log`.
pub fn run(args: Args) -> CliResult {
    let _ = args;
    Err(super::CliError::failure("not implemented yet"))
}
