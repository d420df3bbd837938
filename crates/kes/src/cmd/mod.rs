//! One module per `kes` subcommand.

pub mod client;
pub mod completion;
pub mod identity;
pub mod identity_remote;
pub mod key;
pub mod log;
pub mod ls;
pub mod metric;
pub mod migrate;
pub mod policy;
pub mod server;
pub mod status;

use std::fmt;

/// The version `kes --version` prints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// A command's failure: printed as `Error: <message>`, exit code 1 for API,
/// connection and I/O errors, 2 for usage errors.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// An API, connection or I/O failure (exit code 1).
    pub fn failure(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: 1,
        }
    }

    /// A usage error (exit code 2).
    pub fn usage(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            code: 2,
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The result of a subcommand.
pub type CliResult = Result<(), CliError>;
