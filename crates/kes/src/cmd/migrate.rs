//! `kes migrate`. SKELETON: to be filled in.

use super::CliResult;

/// Arguments of `kes migrate`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `kes migrate`.
pub fn run(args: Args) -> CliResult {
    let _ = args;
    Err(super::CliError::failure("not implemented yet"))
}
