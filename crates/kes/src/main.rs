//! The `kes` command: the server and a command-line client for the KES API.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[macro_use]
mod cmd;

/// KES is a cloud-native distributed key management and encryption server.
#[derive(Parser, Debug)]
#[command(
    name = "kes",
    version = cmd::VERSION,
    disable_help_subcommand = true,
    disable_version_flag = true,
    after_help = examples!(
        "kes server --dev",
        "export KES_SERVER=https://127.0.0.1:7373 KES_API_KEY=kes:v1:...",
        "kes key create my-key -k",
        "kes <command> --help          # every command has examples"
    )
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
    #[command(after_help = examples!("kes server --dev", "kes server --config config.yml", "kes server --config config.yml --addr 127.0.0.1:7373", "kill -HUP $(pidof kes)    # reload the config"))]
    /// Start a KES server
    Server(cmd::server::Args),
    #[command(after_help = client_help!("kes ls", "kes ls -p", "kes ls -i --json", "kes ls -s 10.0.0.5:7373 -a \"$KES_API_KEY\" 'my-*'"))]
    /// List keys, policies and identities
    Ls(cmd::ls::Args),
    #[command(after_help = client_help!("kes key create my-key", "kes key ls", "kes key dek my-key"))]
    /// Manage cryptographic keys
    Key(cmd::key::Args),
    #[command(after_help = client_help!("kes policy ls", "kes policy show my-app"))]
    /// Manage KES policies
    Policy(cmd::policy::Args),
    #[command(after_help = examples!("kes identity new --key client.key --cert client.crt client", "kes identity of client.crt", "kes identity                     # a new API key", "kes identity info                # asks the server (KES_SERVER, KES_API_KEY, ...)"))]
    /// Manage KES identities
    Identity(cmd::identity::Args),
    #[command(after_help = client_help!("kes log", "kes log --error", "kes log --json | tee audit.ndjson"))]
    /// Print error and audit log events
    Log(cmd::log::Args),
    #[command(after_help = client_help!("kes status", "kes status --short", "kes status --api --json"))]
    /// Print server status
    Status(cmd::status::Args),
    #[command(after_help = client_help!("kes metric", "kes metric --rate 1s", "kes metric --json -n 3 >> metrics.ndjson"))]
    /// Print server metrics
    Metric(cmd::metric::Args),
    #[command(after_help = examples!("kes migrate --from fs.yml --to aws.yml", "kes migrate --merge --from fs.yml --to aws.yml 'tenant-*'", "kes migrate --force --from fs.yml --to vault.yml my-key"))]
    /// Migrate keys between key stores
    Migrate(cmd::migrate::Args),
    #[command(after_help = examples!("kes keystore reseal --config config.yml --to-key kes-seal-2026"))]
    /// Manage the key store itself (reseal a sealed fs store)
    Keystore(cmd::keystore::Args),
    #[command(after_help = examples!("kes completion bash > /etc/bash_completion.d/kes", "source <(kes completion bash)", "kes completion zsh > \"${fpath[1]}/_kes\"", "kes completion fish > ~/.config/fish/completions/kes.fish"))]
    /// Print shell completions
    Completion(cmd::completion::Args),
}

/// Prints a command-line error and exits: 0 for `--help`/`--version`, 2
/// for usage errors. clap's usage line in an error repeats the flags that
/// were given (`Usage: kes key create --json <NAMES>...`); it is replaced
/// by the command's own usage line.
fn exit_with(err: clap::Error) -> ! {
    use clap::error::ErrorKind;
    use std::io::{IsTerminal as _, Write as _};
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        err.exit();
    }
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let rendered = err.render();
    let text = if color {
        rendered.ansi().to_string()
    } else {
        rendered.to_string()
    };
    let mut out = String::new();
    for line in text.lines() {
        match usage_of(&strip_ansi(line)) {
            Some(mut usage) => {
                let usage = usage.render_usage();
                out.push_str(&if color {
                    usage.ansi().to_string()
                } else {
                    usage.to_string()
                });
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    let _ = std::io::stderr().write_all(out.as_bytes());
    std::process::exit(err.exit_code());
}

/// The (sub)command a `Usage: kes key create ...` line is about.
fn usage_of(line: &str) -> Option<clap::Command> {
    use clap::CommandFactory as _;
    let rest = line.strip_prefix("Usage: ")?;
    let mut words = rest.split_whitespace();
    let mut cmd = Cli::command();
    if words.next()? != cmd.get_name() {
        return None;
    }
    cmd.build();
    for word in words {
        match cmd.find_subcommand(word) {
            Some(sub) => cmd = sub.clone(),
            None => break,
        }
    }
    Some(cmd)
}

/// `s` without ANSI escape sequences.
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => exit_with(err),
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
        Command::Keystore(args) => cmd::keystore::run(args),
        Command::Completion(args) => cmd::completion::run::<Cli>(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if !err.is_reported() {
                cmd::print_error(&err.to_string());
            }
            ExitCode::from(err.exit_code())
        }
    }
}
