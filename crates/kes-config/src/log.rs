//! Log levels as the Go KES reads them (slog levels) and the log format.

use std::fmt;
use std::str::FromStr;

/// A slog level: DEBUG = -4, INFO = 0, WARN = 4, ERROR = 8. Records below
/// the configured level are dropped, so `OFF` (ERROR+1) drops everything
/// the server emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogLevel(pub i32);

impl LogLevel {
    /// Debug records.
    pub const DEBUG: LogLevel = LogLevel(-4);
    /// Informational records; the default of both logs.
    pub const INFO: LogLevel = LogLevel(0);
    /// Warnings.
    pub const WARN: LogLevel = LogLevel(4);
    /// Errors.
    pub const ERROR: LogLevel = LogLevel(8);
    /// Above every level the server emits: the log is silent.
    pub const OFF: LogLevel = LogLevel(9);

    /// Reports whether a record of `level` passes this threshold.
    pub fn enabled(&self, level: LogLevel) -> bool {
        level.0 >= self.0
    }
}

impl Default for LogLevel {
    fn default() -> Self {
        LogLevel::INFO
    }
}

/// Printed like Go's `slog.Level.String`: `INFO`, `WARN+1`, `DEBUG-2`.
impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, base) = match self.0 {
            i32::MIN..=-1 => ("DEBUG", -4),
            0..=3 => ("INFO", 0),
            4..=7 => ("WARN", 4),
            _ => ("ERROR", 8),
        };
        let offset = i64::from(self.0) - base;
        match offset {
            0 => f.write_str(name),
            o if o > 0 => write!(f, "{name}+{o}"),
            o => write!(f, "{name}{o}"),
        }
    }
}

/// Parses a level like the Go KES (case-insensitive, surrounding spaces
/// ignored): empty or `on` → INFO, `off` → ERROR+1, `DEBUG`, `INFO`,
/// `WARN`, `ERROR`, each optionally followed by `+N`, or a bare integer.
impl FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        match upper.as_str() {
            "" | "ON" => return Ok(LogLevel::INFO),
            "OFF" => return Ok(LogLevel::OFF),
            _ => {}
        }
        let named = [
            ("DEBUG", LogLevel::DEBUG),
            ("INFO", LogLevel::INFO),
            ("WARN", LogLevel::WARN),
            ("ERROR", LogLevel::ERROR),
        ];
        for (name, base) in named {
            let Some(rest) = upper.strip_prefix(name) else {
                continue;
            };
            if rest.is_empty() {
                return Ok(base);
            }
            let Some(offset) = rest.strip_prefix('+') else {
                return Err(format!("invalid log level '{s}'"));
            };
            let offset: i32 = offset
                .parse()
                .map_err(|_| format!("invalid log level suffix '{offset}' in '{s}'"))?;
            return base
                .0
                .checked_add(offset)
                .map(LogLevel)
                .ok_or_else(|| format!("invalid log level '{s}'"));
        }
        upper.parse::<i32>().map(LogLevel).map_err(|_| {
            format!(
                "invalid log level '{s}': use DEBUG, INFO, WARN or ERROR (optionally +N), on, off or an integer"
            )
        })
    }
}

/// How log lines are written. Not in the Go KES (which only writes text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// slog-style `key=value` text lines (the Go KES format).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "invalid log format '{s}': must be 'text' or 'json'"
            )),
        }
    }
}
