//! `kes key`. SKELETON: to be filled in.

use super::CliResult;

/// Arguments of `kes key`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `kes key`.
pub fn run(args: Args) -> CliResult {
    let _ = args;
    Err(super::CliError::failure("not implemented yet"))
}
