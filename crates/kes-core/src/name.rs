//! Validation of names (keys, policies, identities) and listing patterns.

/// Longest name or pattern, in bytes.
pub const MAX_NAME_LEN: usize = 80;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Reports whether `name` is a valid key, policy or identity name:
/// 1-80 bytes of `0-9 A-Z a-z _ -`, no leading or trailing `-`, and not
/// the single string `_`.
pub fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_NAME_LEN
        && name != "_"
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && b.iter().all(|&c| is_name_byte(c))
}

/// Reports whether `pattern` is a valid listing pattern: empty, `*`, or a
/// name-like prefix optionally followed by one trailing `*`. A `-` may be
/// neither the first nor the last character of the whole pattern.
pub fn valid_pattern(pattern: &str) -> bool {
    if pattern.is_empty() || pattern == "*" {
        return true;
    }
    let b = pattern.as_bytes();
    if b.len() > MAX_NAME_LEN || pattern == "_" || b[0] == b'-' || b[b.len() - 1] == b'-' {
        return false;
    }
    let body = pattern.strip_suffix('*').unwrap_or(pattern);
    body.bytes().all(is_name_byte)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for n in [
            "my-key",
            "abc123",
            "0",
            "123ABC321",
            "_-___---_",
            "_0",
            "0-Z",
            "my_key-0",
        ] {
            assert!(valid_name(n), "{n} should be valid");
        }
        let long = "a".repeat(81);
        for n in [
            "",
            "my.key",
            "key/",
            "☰",
            "hel<lo",
            "Εmacs",
            long.as_str(),
            "_",
            "-a",
            "a-",
        ] {
            assert!(!valid_name(n), "{n} should be invalid");
        }
        assert!(valid_name(&"a".repeat(80)));
    }

    #[test]
    fn patterns() {
        for p in ["", "*", "my-*", "my", "my-key", "_0*", "abc*"] {
            assert!(valid_pattern(p), "{p} should be valid");
        }
        for p in ["*-*", "my.key", "key/", "my-", "-*", "_", "a*b", "**", "☰*"] {
            assert!(!valid_pattern(p), "{p} should be invalid");
        }
    }
}
