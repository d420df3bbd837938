//! `kes completion`: shell completion scripts.

use super::{CliError, CliResult};

/// Arguments of `kes completion`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The shell
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Prints the completion script of the command `C` for the shell, e.g.
/// `source <(kes completion bash)`.
pub(crate) fn run<C: clap::CommandFactory>(args: Args) -> CliResult {
    let mut cmd = visible(&C::command());
    let name = cmd.get_name().to_owned();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, name, &mut out);
    use std::io::Write;
    std::io::stdout()
        .write_all(&out)
        .map_err(|e| CliError::failure(format!("failed to write output: {e}")))
}

/// `cmd` without the arguments hidden from `--help` (`--enclave`, the
/// deprecated `kes server --key`, ...): clap_complete offers hidden flags,
/// and what help does not show, completion must not suggest either.
fn visible(cmd: &clap::Command) -> clap::Command {
    // clap (without its `string` feature) takes only static names; this
    // runs once per process, so leaking the few names is fine.
    let name: &'static str = Box::leak(cmd.get_name().to_owned().into_boxed_str());
    let mut out = clap::Command::new(name)
        .disable_help_subcommand(true)
        .args_conflicts_with_subcommands(cmd.is_args_conflicts_with_subcommands_set());
    if let Some(version) = cmd.get_version() {
        let version: &'static str = Box::leak(version.to_owned().into_boxed_str());
        out = out.version(version);
    }
    if cmd.is_disable_version_flag_set() {
        out = out.disable_version_flag(true);
    }
    if let Some(about) = cmd.get_about() {
        out = out.about(about.clone());
    }
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        out = out.arg(arg.clone());
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        out = out.subcommand(visible(sub));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn hidden_flags_are_not_completed() {
        use clap::{CommandFactory, Parser};
        #[derive(Parser)]
        struct Cli {
            #[arg(long)]
            shown: bool,
            #[arg(long, hide = true)]
            secret: bool,
        }
        let mut cmd = super::visible(&Cli::command());
        let mut out = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "x", &mut out);
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("--shown"));
        assert!(!script.contains("--secret"));
    }
}
