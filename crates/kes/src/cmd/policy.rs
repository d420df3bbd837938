//! `kes policy`. SKELETON: to be filled in.

use super::CliResult;

/// Arguments of `kes policy`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `kes policy`.
pub fn run(args: Args) -> CliResult {
    let _ = args;
    Err(super::CliError::failure("not implemented yet"))
}
