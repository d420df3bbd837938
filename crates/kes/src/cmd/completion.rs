//! `kes completion`. SKELETON: to be filled in.

use super::CliResult;

/// Arguments of `kes completion`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `kes completion`.
pub fn run<C: clap::CommandFactory>(args: Args) -> CliResult {
    let _ = args;
    Err(super::CliError::failure("not implemented yet"))
}
