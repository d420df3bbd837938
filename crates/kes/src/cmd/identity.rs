//! `kes identity`. SKELETON: to be filled in.

use super::CliResult;

/// Arguments of `kes identity`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `kes identity`.
pub fn run(args: Args) -> CliResult {
    let _ = args;
    Err(super::CliError::failure("not implemented yet"))
}
