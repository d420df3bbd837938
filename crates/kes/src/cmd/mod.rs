//! One module per `kes` subcommand.

/// The `--help` epilogue of a command that talks to a server: the
/// environment variables it reads, then examples.
macro_rules! client_help {
    ($($example:literal),+ $(,)?) => {
        concat!(
            "Environment:\n",
            "  KES_SERVER               Server(s), comma-separated [default: 127.0.0.1:7373]\n",
            "  KES_API_KEY              API key to authenticate with\n",
            "  KES_CLIENT_CERT          Client certificate file (instead of an API key)\n",
            "  KES_CLIENT_KEY           Private key file of the client certificate\n",
            "  KES_CLIENT_KEY_PASSWORD  Password of an encrypted KES_CLIENT_KEY\n",
            "  KES_CA                   CA certificate to trust (as --ca)\n",
            "  (MINIO_KES_SERVER, MINIO_KES_API_KEY, ... are read too; see docs/cli.md)\n",
            "\nExamples:\n",
            $("  $ ", $example, "\n"),+
        )
    };
}

/// The `--help` epilogue of an offline command: examples only.
macro_rules! examples {
    ($($example:literal),+ $(,)?) => {
        concat!("Examples:\n", $("  $ ", $example, "\n"),+)
    };
}

pub(crate) mod client;
pub(crate) mod completion;
pub(crate) mod identity;
pub(crate) mod identity_remote;
pub(crate) mod key;
pub(crate) mod keystore;
pub(crate) mod log;
pub(crate) mod ls;
pub(crate) mod metric;
pub(crate) mod migrate;
pub(crate) mod names;
pub(crate) mod policy;
pub(crate) mod server;
pub(crate) mod status;

use std::fmt;

/// The version `kes --version` prints: the one the server's banner and
/// `/version` show.
pub(crate) const VERSION: &str = kes_server::VERSION;

/// A command's failure: printed as `Error: <message>` (unless it was
/// already reported line by line), with the exit code of docs/cli.md:
/// 1 when the command ran and failed, 2 when it was not run because the
/// invocation is wrong.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// The command ran and failed: an API, connection, TLS or file error
    /// (exit code 1).
    pub(crate) fn failure(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: 1,
        }
    }

    /// The invocation is wrong: an argument, flag or environment value
    /// that does not parse, conflicting or missing credentials (exit
    /// code 2).
    pub(crate) fn usage(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: 2,
        }
    }

    /// A failure whose details were already printed, one `Error:` line
    /// each (commands that take several names).
    pub(crate) fn reported() -> Self {
        Self {
            message: String::new(),
            code: 1,
        }
    }

    /// The process exit code.
    pub(crate) fn exit_code(&self) -> u8 {
        self.code
    }

    /// Whether there is something left to print.
    pub(crate) fn is_reported(&self) -> bool {
        self.message.is_empty()
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Prints `Error: <message>` to stderr; `Error:` in bold red like clap's
/// `error:` when stderr is a terminal and `NO_COLOR` is not set.
pub(crate) fn print_error(message: &str) {
    use std::io::{IsTerminal as _, Write as _};
    let color = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let label = if color {
        "\x1b[1m\x1b[31mError:\x1b[0m"
    } else {
        "Error:"
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{label} {message}");
}

/// The result of a subcommand.
pub(crate) type CliResult = Result<(), CliError>;
