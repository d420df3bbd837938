//! `${VAR}` references: a whole value naming an environment variable is
//! replaced by the variable's value, in the fields that allow it.

use crate::error::{ConfigError, Result};
use zeroize::Zeroizing;

/// Replaces a whole-value `${NAME}` reference by the environment variable.
pub(crate) fn substitute(text: &str, line: usize) -> Result<Option<Zeroizing<String>>> {
    let trimmed = text.trim();
    let Some(name) = trimmed
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
    else {
        return Ok(None);
    };
    let name = name.trim();
    let not_found = || {
        ConfigError::new(
            format!("kesconf: referenced env. variable '{name}' in line '{line}' not found"),
            Some(line),
        )
    };
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(not_found());
    }
    match std::env::var(name) {
        Ok(value) => Ok(Some(Zeroizing::new(value))),
        Err(std::env::VarError::NotPresent) => Err(not_found()),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::new(
            format!(
                "kesconf: referenced env. variable '{name}' in line '{line}' is not valid UTF-8"
            ),
            Some(line),
        )),
    }
}
