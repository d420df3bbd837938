//! Which naming rule a rejected name or listing pattern broke. The server
//! (ours and the Go KES alike) only says "is empty, too long or contains
//! invalid characters"; the command adds the rule so that the user need
//! not guess, and keeps the server's words first for log scrapers.

use kes_core::name::MAX_NAME_LEN;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// The rule that `name` (key, policy or identity) breaks, if any.
pub(crate) fn name_rule(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("a name must not be empty".into());
    }
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "a name must be at most {MAX_NAME_LEN} characters long, this one has {}",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Some(format!(
            "'{c}' is not allowed: use only 0-9 A-Z a-z _ and -"
        ));
    }
    if name == "_" {
        return Some("a name must not be just '_'".into());
    }
    if name.starts_with('-') {
        return Some("a name must not start with '-'".into());
    }
    if name.ends_with('-') {
        return Some("a name must not end with '-'".into());
    }
    None
}

/// The rule that a listing pattern breaks, if any: a name prefix that
/// may end in one `*`.
pub(crate) fn pattern_rule(pattern: &str) -> Option<String> {
    if pattern.is_empty() || pattern == "*" {
        return None;
    }
    if pattern.len() > MAX_NAME_LEN {
        return Some(format!(
            "a pattern must be at most {MAX_NAME_LEN} characters long"
        ));
    }
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    if body.contains('*') {
        return Some("'*' is only allowed at the end of a pattern".into());
    }
    if let Some(c) = body.chars().find(|c| !is_name_char(*c)) {
        return Some(format!(
            "'{c}' is not allowed: a pattern is a name prefix (0-9 A-Z a-z _ -) with an optional trailing '*'"
        ));
    }
    if pattern == "_" {
        return Some("a pattern must not be just '_'".into());
    }
    if pattern.starts_with('-') {
        return Some("a pattern must not start with '-'".into());
    }
    if pattern.ends_with('-') {
        return Some(format!(
            "a pattern must not end with '-' (list '{}' and filter, or use a longer prefix)",
            pattern.trim_end_matches('-')
        ));
    }
    None
}

/// The server's message with the broken rule appended, when the message
/// is one of the "invalid name" or "invalid pattern" errors.
pub(crate) fn explain(message: &str) -> Option<String> {
    const NAME_SUFFIX: &str = "' is empty, too long or contains invalid characters";
    const PATTERN_SUFFIX: &str = "' is empty, too long or is invalid";
    let quoted = |prefix: &str, suffix: &str| -> Option<String> {
        message
            .strip_suffix(suffix)
            .and_then(|m| m.split_once(prefix).map(|(_, rest)| rest.to_owned()))
    };
    let rule = if let Some(name) =
        quoted("name '", NAME_SUFFIX).or_else(|| quoted("identity '", NAME_SUFFIX))
    {
        name_rule(&name)?
    } else if let Some(pattern) = quoted("pattern '", PATTERN_SUFFIX) {
        pattern_rule(&pattern)?
    } else {
        return None;
    };
    Some(format!("{message}: {rule}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_name_has_a_rule() {
        for n in ["", "a.b", "a/b", "_", "-a", "a-", &"a".repeat(81), "Εmacs"] {
            assert!(name_rule(n).is_some(), "{n}");
            assert!(!kes_core::name::valid_name(n), "{n}");
        }
        for n in ["a", "my-key", "_0", &"a".repeat(80)] {
            assert!(name_rule(n).is_none(), "{n}");
            assert!(kes_core::name::valid_name(n), "{n}");
        }
        for p in ["my-", "-*", "_", "a*b", "**", "my.key", "*-*"] {
            assert!(pattern_rule(p).is_some(), "{p}");
            assert!(!kes_core::name::valid_pattern(p), "{p}");
        }
        for p in ["", "*", "my-*", "my", "_0*"] {
            assert!(pattern_rule(p).is_none(), "{p}");
            assert!(kes_core::name::valid_pattern(p), "{p}");
        }
    }

    #[test]
    fn explains_server_messages() {
        assert_eq!(
            explain("key name 'bad-' is empty, too long or contains invalid characters").unwrap(),
            "key name 'bad-' is empty, too long or contains invalid characters: a name must not end with '-'"
        );
        assert!(explain("listing pattern 'my-' is empty, too long or is invalid")
            .unwrap()
            .ends_with("a pattern must not end with '-' (list 'my' and filter, or use a longer prefix)"));
        assert_eq!(explain("key does not exist"), None);
    }
}
