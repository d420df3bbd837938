//! `kes server`. SKELETON: to be filled in.

use super::CliResult;

/// Arguments of `kes server`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `kes server`.
pub fn run(args: Args) -> CliResult {
    let _ = args;
    Err(super::CliError::failure("not implemented yet"))
}
