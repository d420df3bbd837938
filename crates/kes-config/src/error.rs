//! Why a config could not be loaded.

use crate::schema::UnknownKey;
use std::fmt;

/// Why a configuration could not be loaded. The message names the field
/// and, where the field is present, its line; it never contains a secret.
#[derive(Debug)]
pub struct ConfigError {
    pub(crate) message: String,
    pub(crate) line: Option<usize>,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>, line: Option<usize>) -> Self {
        ConfigError {
            message: message.into(),
            line,
        }
    }

    /// The line of the offending value, when there is one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// This error preceded by one line per unknown key.
    pub(crate) fn after_unknown_keys(mut self, unknown: &[UnknownKey]) -> Self {
        if !unknown.is_empty() {
            let mut message: Vec<String> = unknown.iter().map(|u| u.message()).collect();
            message.push(self.message);
            self.message = message.join("\n");
        }
        self
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The cause (an I/O error) is part of the message, so there is no
/// `source()` to print it a second time.
impl std::error::Error for ConfigError {}

pub(crate) type Result<T, E = ConfigError> = std::result::Result<T, E>;
