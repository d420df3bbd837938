//! `kes status`. SKELETON: to be filled in.

use super::CliResult;

/// Arguments of `kes status`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `kes status`.
pub fn run(args: Args) -> CliResult {
    let _ = args;
    Err(super::CliError::failure("not implemented yet"))
}
