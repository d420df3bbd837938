//! `kes ls`. SKELETON: to be filled in.

use super::CliResult;

/// Arguments of `kes ls`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `kes ls`.
pub fn run(args: Args) -> CliResult {
    let _ = args;
    Err(super::CliError::failure("not implemented yet"))
}
