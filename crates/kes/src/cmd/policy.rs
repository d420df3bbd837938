//! `kes policy`: list and inspect the server's policies.

use super::client::{
    api_error, created_rows, print_json, print_line, print_names, print_object, Mode, Remote,
};
use super::CliResult;
use clap::Subcommand;

/// Arguments of `kes policy`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(after_help = client_help!("kes policy ls", "kes policy ls 'my-*' --json"))]
    /// List policies
    Ls {
        /// List only policies whose names start with this prefix (`*` for all)
        #[arg(default_value = "*")]
        pattern: String,
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes policy info my-app"))]
    /// Print information about a policy
    Info {
        /// Name of the policy
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes policy show my-app", "kes policy show my-app --json"))]
    /// Print the allow and deny rules of a policy
    Show {
        /// Name of the policy
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Runs `kes policy`.
pub(crate) fn run(args: Args) -> CliResult {
    match args.command {
        Command::Ls { pattern, remote } => {
            let (rt, client, mode) = remote.connect()?;
            let names = rt
                .block_on(client.list_policies(&pattern))
                .map_err(api_error)?;
            print_names("Policy", &names, mode)
        }
        Command::Info { name, remote } => {
            let (rt, client, mode) = remote.connect()?;
            let info = rt
                .block_on(client.describe_policy(&name))
                .map_err(api_error)?;
            print_object(mode, &info, || {
                let mut rows = vec![("Name", info.name.clone())];
                rows.extend(created_rows(info.created_at, &info.created_by));
                rows
            })
        }
        Command::Show { name, remote } => {
            let (rt, client, mode) = remote.connect()?;
            let policy = rt.block_on(client.read_policy(&name)).map_err(api_error)?;
            match mode {
                Mode::Terminal { color } => {
                    let c = |s: &str, style| super::client::paint(s, style, color);
                    if !policy.allow.is_empty() {
                        print_line(&c("Allow:", super::client::GREEN))?;
                        for p in &policy.allow {
                            print_line(&format!("  · {p}"))?;
                        }
                    }
                    if !policy.deny.is_empty() {
                        if !policy.allow.is_empty() {
                            print_line("")?;
                        }
                        print_line(&c("Deny:", super::client::RED))?;
                        for p in &policy.deny {
                            print_line(&format!("  · {p}"))?;
                        }
                    }
                    Ok(())
                }
                Mode::Json | Mode::Plain => print_json(&kes_client::EveryPatternSet(&policy)),
            }
        }
    }
}
