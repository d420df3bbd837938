//! What every client command shares: finding the server and the
//! credentials, building the client, and choosing the output form.

use super::{CliError, CliResult};
use kes_client::{env, Client};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Connection flags every client command accepts.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct Conn {
    /// Skip verification of the server certificate
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Trust this CA certificate (PEM file) [env: KES_CA]
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Ignored; accepted for compatibility with older KES versions
    #[arg(short = 'e', long, hide = true)]
    pub enclave: Option<String>,
}

/// Output flags of commands that print something.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct OutputArgs {
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    /// When to use colours
    #[arg(long, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// `--color`
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum ColorChoice {
    /// Colours when stdout is a terminal
    #[default]
    Auto,
    /// Never
    Never,
    /// Always (also when stdout is not a terminal)
    Always,
}

/// How to print a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `--json`.
    Json,
    /// stdout is a terminal: aligned rows, optionally coloured.
    Terminal { color: bool },
    /// stdout is a pipe or file: JSON for single objects, one line per
    /// item for lists.
    Plain,
}

impl OutputArgs {
    pub fn mode(&self) -> Mode {
        if self.json {
            return Mode::Json;
        }
        let terminal = std::io::stdout().is_terminal();
        let color = match self.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && std::env::var_os("NO_COLOR").is_none(),
        };
        if terminal {
            Mode::Terminal { color }
        } else {
            Mode::Plain
        }
    }
}

impl Conn {
    /// The client for the servers and credentials from the flags or the
    /// environment (spec §13).
    pub fn client(&self, server: Option<&str>, api_key: Option<&str>) -> Result<Client, CliError> {
        let lookup = |k: &str| std::env::var(k).ok();
        let endpoints = env::endpoints(server, &lookup).map_err(CliError::usage)?;
        let credentials = env::credentials(api_key, &lookup).map_err(CliError::usage)?;
        let mut builder = Client::builder()
            .endpoints(&endpoints)
            .insecure(self.insecure);
        let ca = self
            .ca
            .clone()
            .or_else(|| env::first_var(&[env::CA_VAR], &lookup).map(PathBuf::from));
        if let Some(ca) = ca {
            builder = builder.ca_file(ca);
        }
        builder = match credentials {
            env::Credentials::ApiKey(key) => {
                let key = kes_core::ApiKey::parse(&key).map_err(CliError::usage)?;
                builder.api_key(&key)
            }
            env::Credentials::CertificateFiles { cert, key } => {
                let key_pem = Zeroizing::new(std::fs::read(&key).map_err(|e| {
                    CliError::usage(format!(
                        "failed to read client private key '{}': {e}",
                        key.display()
                    ))
                })?);
                let cert_pem = std::fs::read(&cert).map_err(|e| {
                    CliError::usage(format!(
                        "failed to read client certificate '{}': {e}",
                        cert.display()
                    ))
                })?;
                let password = if kes_client::is_encrypted_private_key(&key_pem) {
                    Some(key_password(&key)?)
                } else {
                    None
                };
                builder.certificate_pem(&cert_pem, &key_pem, password.as_ref().map(|p| p.as_str()))
            }
        };
        builder.build().map_err(CliError::usage)
    }
}

/// The password of an encrypted client key: `KES_CLIENT_KEY_PASSWORD`, else
/// asked on the terminal.
fn key_password(key: &std::path::Path) -> Result<Zeroizing<String>, CliError> {
    if let Ok(p) = std::env::var(env::KEY_PASSWORD_VAR) {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!(
            "private key '{}' is encrypted: set {} or run in a terminal",
            key.display(),
            env::KEY_PASSWORD_VAR
        )));
    }
    rpassword::prompt_password(format!("Enter password for '{}': ", key.display()))
        .map(Zeroizing::new)
        .map_err(|e| CliError::failure(format!("failed to read password: {e}")))
}

/// A tokio runtime for one command.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("failed to start runtime: {e}")))
}

/// An SDK error as the command reports it: the server's message as is.
pub(crate) fn api_error(e: kes_client::Error) -> CliError {
    match e {
        kes_client::Error::Config(_) => CliError::usage(e),
        e => CliError::failure(e),
    }
}

/// Writes to stdout; a closed pipe (`kes key ls | head`) ends quietly.
pub(crate) fn print_line(s: &str) -> CliResult {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{s}").and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failure(format!("failed to write output: {e}"))),
    }
}

/// Writes a line made of parts without building it in one unwiped buffer.
pub(crate) fn print_secret_line(parts: &[&str]) -> CliResult {
    let mut out = std::io::stdout().lock();
    let result = parts
        .iter()
        .try_for_each(|p| out.write_all(p.as_bytes()))
        .and_then(|_| out.write_all(b"\n"))
        .and_then(|_| out.flush());
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError::failure(format!("failed to write output: {e}"))),
    }
}

/// One JSON document on one line.
pub(crate) fn print_json<T: serde::Serialize + ?Sized>(v: &T) -> CliResult {
    let s = serde_json::to_string(v)
        .map_err(|e| CliError::failure(format!("failed to encode JSON: {e}")))?;
    print_line(&s)
}

/// A list of names: a JSON array with `--json`, a headed column on a
/// terminal, else one name per line.
pub(crate) fn print_names(header: &str, names: &[String], mode: Mode) -> CliResult {
    match mode {
        Mode::Json => print_json(names),
        Mode::Terminal { color } => {
            print_line(&paint(header, BOLD, color))?;
            names.iter().try_for_each(|n| print_line(n))
        }
        Mode::Plain => names.iter().try_for_each(|n| print_line(n)),
    }
}

/// `Label : value` rows with aligned colons.
pub(crate) fn print_rows(rows: &[(&str, String)], color: bool) -> CliResult {
    let width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    rows.iter().try_for_each(|(label, value)| {
        let label = format!("{label:<width$}");
        print_line(&format!("{} : {value}", paint(&label, CYAN, color)))
    })
}

pub(crate) const BOLD: &str = "\x1b[1m";
pub(crate) const CYAN: &str = "\x1b[36m";
pub(crate) const GREEN: &str = "\x1b[32m";
pub(crate) const RED: &str = "\x1b[31m";

/// `s` in an ANSI style when colours are on.
pub(crate) fn paint(s: &str, style: &str, color: bool) -> String {
    if color {
        format!("{style}{s}\x1b[0m")
    } else {
        s.to_owned()
    }
}

/// A timestamp for humans: `2024-01-12 10:39:20 UTC`.
pub(crate) fn format_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&f).unwrap_or_else(|_| t.to_string())
}
