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

/// The flags of every command that talks to a server: how to print the
/// answer and how to connect.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct Remote {
    #[command(flatten)]
    pub out: OutputArgs,
    #[command(flatten)]
    pub conn: Conn,
}

impl Remote {
    /// What a command talks to the server with: a runtime, the client
    /// of the flags and environment (see [`Conn::client`]) and the
    /// output mode.
    pub(crate) fn connect(&self) -> Result<(tokio::runtime::Runtime, Client, Mode), CliError> {
        self.connect_to(None, None)
    }

    /// [`connect`](Self::connect), with `-s`/`-a` where a command has
    /// them.
    pub(crate) fn connect_to(
        &self,
        server: Option<&str>,
        api_key: Option<&str>,
    ) -> Result<(tokio::runtime::Runtime, Client, Mode), CliError> {
        let rt = runtime()?;
        let client = self.conn.client(server, api_key)?;
        Ok((rt, client, self.out.mode()))
    }
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
    pub(crate) fn mode(&self) -> Mode {
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
    /// environment (`-s`/`-a` where a command has them, else `KES_SERVER`,
    /// `KES_API_KEY`, `KES_CLIENT_CERT`, `KES_CLIENT_KEY` and their
    /// MinIO spellings).
    pub(crate) fn client(
        &self,
        server: Option<&str>,
        api_key: Option<&str>,
    ) -> Result<Client, CliError> {
        let lookup = |k: &str| std::env::var(k).ok();
        let endpoints = env::endpoints(server, &lookup).map_err(CliError::usage)?;
        let credentials = env::credentials(api_key, &lookup).map_err(CliError::usage)?;
        let mut builder = Client::builder()
            .endpoints(&endpoints)
            .insecure(self.insecure);
        let ca = self
            .ca
            .clone()
            .or_else(|| env::first_var(&env::CA_VARS, &lookup).map(PathBuf::from));
        if let Some(ca) = ca {
            builder = add_ca(builder, ca);
        }
        builder = match credentials {
            env::Credentials::ApiKey(key) => {
                let source = if api_key.is_some_and(|k| !k.trim().is_empty()) {
                    "--api-key"
                } else {
                    api_key_var(&lookup)
                };
                let key = kes_core::ApiKey::parse(&key).map_err(|e| {
                    CliError::usage(format!(
                        "invalid API key in {source}: {}",
                        api_key_error(&e)
                    ))
                })?;
                builder.api_key(&key)
            }
            env::Credentials::CertificateFiles { cert, key } => {
                let key_pem = Zeroizing::new(std::fs::read(&key).map_err(|e| {
                    CliError::failure(format!(
                        "failed to read client private key '{}' ({}): {}",
                        key.display(),
                        var_of(&env::KEY_VARS, &lookup),
                        io_reason(&e)
                    ))
                })?);
                let cert_pem = std::fs::read(&cert).map_err(|e| {
                    CliError::failure(format!(
                        "failed to read client certificate '{}' ({}): {}",
                        cert.display(),
                        var_of(&env::CERT_VARS, &lookup),
                        io_reason(&e)
                    ))
                })?;
                let password = if kes_client::is_encrypted_private_key(&key_pem) {
                    Some(key_password(&key)?)
                } else {
                    None
                };
                let builder = builder.certificate_pem(
                    &cert_pem,
                    &key_pem,
                    password.as_ref().map(|p| p.as_str()),
                );
                // rustls only says the key does not fit: name both files.
                return builder.build().map_err(|e| match e {
                    kes_client::Error::ClientCertificate(why) => CliError::failure(format!(
                        "the client certificate '{}' ({}) and private key '{}' ({}) do not belong together: {}",
                        cert.display(),
                        var_of(&env::CERT_VARS, &lookup),
                        key.display(),
                        var_of(&env::KEY_VARS, &lookup),
                        why
                    )),
                    other => CliError::failure(describe(&other)),
                });
            }
        };
        builder.build().map_err(|e| CliError::failure(describe(&e)))
    }
}

/// Trusts a CA file, or every file in a directory of them (MinIO's
/// `MINIO_KMS_KES_CAPATH` may name either).
fn add_ca(mut builder: kes_client::ClientBuilder, ca: PathBuf) -> kes_client::ClientBuilder {
    for file in kes_config::ca_files(&ca) {
        builder = builder.ca_file(file);
    }
    builder
}

/// Which API key variable the key came from, for error messages.
fn api_key_var(lookup: &dyn Fn(&str) -> Option<String>) -> &'static str {
    var_of(&env::API_KEY_VARS, lookup)
}

/// The first of `vars` that is set (the one the value came from).
fn var_of(vars: &[&'static str], lookup: &dyn Fn(&str) -> Option<String>) -> &'static str {
    vars.iter()
        .copied()
        .find(|v| lookup(v).is_some_and(|s| !s.trim().is_empty()))
        .unwrap_or(vars[0])
}

/// Why a string is not an API key, without the library's `kes: invalid
/// API key:` prefix (the command says where the key came from instead).
pub(crate) fn api_key_error(e: &kes_core::apikey::ApiKeyError) -> String {
    let s = e.to_string();
    s.strip_prefix("kes: invalid API key: ")
        .map(str::to_owned)
        .unwrap_or(s)
}

/// An I/O error as a short reason: `no such file`, `permission denied`.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_owned(),
        _ => e.to_string(),
    }
}

/// The password of an encrypted client key: `KES_CLIENT_KEY_PASSWORD` or
/// MinIO's `MINIO_KMS_KES_KEY_PASSWORD`, else
/// asked on the terminal.
fn key_password(key: &std::path::Path) -> Result<Zeroizing<String>, CliError> {
    for var in env::KEY_PASSWORD_VARS {
        if let Ok(p) = std::env::var(var) {
            return Ok(Zeroizing::new(p));
        }
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

/// An SDK error as the command reports it: the server's message as is,
/// plus the broken naming rule where the server only says a name or
/// pattern is invalid.
pub(crate) fn api_error(e: kes_client::Error) -> CliError {
    let message = describe(&e);
    let message = super::names::explain(&message).unwrap_or(message);
    // 502 is the server's key store failing (`failed to create key`, `key
    // store is unavailable`); the client only gets the Go KES's short text.
    if e.status() == Some(502) {
        return CliError::failure(format!("{message} {KEY_STORE_FAILED}"));
    }
    CliError::failure(message)
}

/// An SDK error as one line: what the SDK says, then its causes. A network
/// failure says the endpoint and then the HTTP client's own chain (which
/// names the system's reason); a TLS failure or a closed connection already
/// says what to do, and the low-level cause would only bury that; a broken
/// response says the first cause only.
pub(crate) fn describe(e: &kes_client::Error) -> String {
    use kes_client::Error;
    use std::error::Error as _;
    let mut message = match e {
        Error::Refused { endpoint, source } | Error::Io { endpoint, source } => {
            return format!(
                "{endpoint}: {}",
                with_causes(source.to_string(), source.source())
            );
        }
        Error::Tls { .. } | Error::Closed { .. } => return e.to_string(),
        Error::ResponseBroken(cause) | Error::StreamBroken(cause) => {
            return format!("{e}: {cause}");
        }
        _ => e.to_string(),
    };
    message = with_causes(message, e.source());
    message
}

/// `message` followed by `: <cause>` for each cause in the chain.
fn with_causes(
    mut message: String,
    mut cause: Option<&(dyn std::error::Error + 'static)>,
) -> String {
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    message
}

/// What a 502 adds: the cause is only in the server's error log.
pub(crate) const KEY_STORE_FAILED: &str =
    "(the server's key store failed; its error log has the cause)";

/// Runs `op` for every name, printing `Error: <what> '<name>': <why>` for
/// each failure, and fails (exit 1) after the last name if any failed.
pub(crate) async fn for_each_name<F, Fut>(names: &[String], what: &str, mut op: F) -> CliResult
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), kes_client::Error>>,
{
    let mut failed = 0;
    for name in names {
        if let Err(e) = op(name.clone()).await {
            failed += 1;
            super::print_error(&format!("{what} '{name}': {}", api_error(e)));
        }
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::reported())
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
/// Prints one object the server described: on a terminal the rows
/// `rows` makes, aligned; elsewhere the object as JSON.
pub(crate) fn print_object<T: serde::Serialize>(
    mode: Mode,
    object: &T,
    rows: impl FnOnce() -> Vec<(&'static str, String)>,
) -> CliResult {
    match mode {
        Mode::Terminal { color } => print_rows(&rows(), color),
        Mode::Json | Mode::Plain => print_json(object),
    }
}

/// The `Date` and `Owner` rows of a described object, where known.
pub(crate) fn created_rows(
    at: Option<time::OffsetDateTime>,
    by: &str,
) -> impl Iterator<Item = (&'static str, String)> {
    let date = at.map(|t| ("Date", format_time(t)));
    let owner = (!by.is_empty()).then(|| ("Owner", by.to_owned()));
    date.into_iter().chain(owner)
}

pub(crate) fn format_time(t: time::OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    t.format(&f).unwrap_or_else(|_| t.to_string())
}
