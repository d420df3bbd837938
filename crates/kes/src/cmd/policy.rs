//! `kes policy`: list and inspect the server's policies.

use super::client::{
    api_error, format_time, print_json, print_line, print_names, print_rows, runtime, Conn, Mode,
    OutputArgs,
};
use super::CliResult;
use clap::Subcommand;

/// Arguments of `kes policy`.
#[derive(clap::Args, Debug)]
pub struct Args {
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
        out: OutputArgs,
        #[command(flatten)]
        conn: Conn,
    },
    #[command(after_help = client_help!("kes policy info my-app"))]
    /// Print information about a policy
    Info {
        /// Name of the policy
        name: String,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        conn: Conn,
    },
    #[command(after_help = client_help!("kes policy show my-app", "kes policy show my-app --json"))]
    /// Print the allow and deny rules of a policy
    Show {
        /// Name of the policy
        name: String,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Runs `kes policy`.
pub fn run(args: Args) -> CliResult {
    let rt = runtime()?;
    match args.command {
        Command::Ls { pattern, out, conn } => {
            let client = conn.client(None, None)?;
            let names = rt
                .block_on(client.list_policies(&pattern))
                .map_err(api_error)?;
            print_names("Policy", &names, out.mode())
        }
        Command::Info { name, out, conn } => {
            let client = conn.client(None, None)?;
            let info = rt
                .block_on(client.describe_policy(&name))
                .map_err(api_error)?;
            match out.mode() {
                Mode::Terminal { color } => {
                    let mut rows = vec![("Name", info.name.clone())];
                    if let Some(t) = info.created_at {
                        rows.push(("Date", format_time(t)));
                    }
                    if !info.created_by.is_empty() {
                        rows.push(("Owner", info.created_by.clone()));
                    }
                    print_rows(&rows, color)
                }
                Mode::Json | Mode::Plain => print_json(&info),
            }
        }
        Command::Show { name, out, conn } => {
            let client = conn.client(None, None)?;
            let policy = rt.block_on(client.read_policy(&name)).map_err(api_error)?;
            match out.mode() {
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
                Mode::Json | Mode::Plain => print_json(&policy),
            }
        }
    }
}
