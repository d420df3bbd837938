//! `kes metric`. SKELETON: to be filled in.

use super::CliResult;

/// Arguments of `kes metric`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `kes metric`.
pub fn run(args: Args) -> CliResult {
    let _ = args;
    Err(super::CliError::failure("not implemented yet"))
}
