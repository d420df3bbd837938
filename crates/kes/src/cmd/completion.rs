//! `kes completion`: shell completion scripts.

use super::{CliError, CliResult};

/// Arguments of `kes completion`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The shell
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Prints the completion script of the command `C` for the shell, e.g.
/// `source <(kes completion bash)`.
pub fn run<C: clap::CommandFactory>(args: Args) -> CliResult {
    let mut cmd = C::command();
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut out);
    use std::io::Write;
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| CliError::failure(format!("failed to write output: {e}")))
}
