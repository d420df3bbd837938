#![forbid(unsafe_code)]
//! The `kes` command: the server and a command-line client for the KES API.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod cmd;

/// KES is a cloud-native distributed key management and encryption server.
#[derive(Parser, Debug)]
#[command(
    name = "kes",
    version = cmd::VERSION,
    disable_help_subcommand = true,
    disable_version_flag = true
)]
struct Cli {
    /// Print version information (`-v` as in the Go KES, `-V` too)
    #[arg(short = 'v', long = "version", visible_short_alias = 'V', action = clap::ArgAction::Version)]
    version: (),

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start a KES server
    Server(cmd::server::Args),
    /// List keys, policies and identities
    Ls(cmd::ls::Args),
    /// Manage cryptographic keys
    Key(cmd::key::Args),
    /// Manage KES policies
    Policy(cmd::policy::Args),
    /// Manage KES identities
    Identity(cmd::identity::Args),
    /// Print error and audit log events
    Log(cmd::log::Args),
    /// Print server status
    Status(cmd::status::Args),
    /// Print server metrics
    Metric(cmd::metric::Args),
    /// Migrate keys between key stores
    Migrate(cmd::migrate::Args),
    /// Print shell completions
    Completion(cmd::completion::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap exits with 2 for usage errors and 0 for --help/--version.
            err.exit();
        }
    };
    let result = match cli.command {
        Command::Server(args) => cmd::server::run(args),
        Command::Ls(args) => cmd::ls::run(args),
        Command::Key(args) => cmd::key::run(args),
        Command::Policy(args) => cmd::policy::run(args),
        Command::Identity(args) => cmd::identity::run(args),
        Command::Log(args) => cmd::log::run(args),
        Command::Status(args) => cmd::status::run(args),
        Command::Metric(args) => cmd::metric::run(args),
        Command::Migrate(args) => cmd::migrate::run(args),
        Command::Completion(args) => cmd::completion::run::<Cli>(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}
