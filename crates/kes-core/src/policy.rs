//! The policy matcher: a pattern ending in `*` is a string prefix (so it may
//! span `/`), any other pattern must equal the path. Deny wins over allow;
//! an empty policy denies everything.

/// A set of allow and deny patterns over API paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Patterns of paths this policy allows.
    pub allow: Vec<String>,
    /// Patterns of paths this policy denies; they take precedence.
    pub deny: Vec<String>,
}

/// Reports whether a single policy pattern matches `path`.
pub fn pattern_matches(pattern: &str, path: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => pattern == path,
    }
}

impl Policy {
    /// Reports whether the policy allows a request to `path` (the decoded
    /// URL path, e.g. `/v1/key/generate/my-key`).
    pub fn allows(&self, path: &str) -> bool {
        if self.deny.iter().any(|p| pattern_matches(p, path)) {
            return false;
        }
        self.allow.iter().any(|p| pattern_matches(p, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str], deny: &[&str]) -> Policy {
        Policy {
            allow: allow.iter().map(|s| s.to_string()).collect(),
            deny: deny.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn deny_wins() {
        let p = policy(
            &["/v1/key/create/my*", "/v1/key/create/your*"],
            &["/v1/key/create/my-key*"],
        );
        assert!(!p.allows("/v1/key/create/my-key"));
        assert!(!p.allows("/v1/key/create/my-key1"));
        assert!(p.allows("/v1/key/create/my-minio-key"));
        assert!(p.allows("/v1/key/create/your-minio-key"));
        assert!(!p.allows("/v1/key/delete/my-minio-key"));
    }

    #[test]
    fn exact_and_literal_star() {
        let p = policy(&["/v1/status", "/v1/key/*/x"], &[]);
        assert!(p.allows("/v1/status"));
        assert!(!p.allows("/v1/status/"));
        assert!(p.allows("/v1/key/*/x"));
        assert!(!p.allows("/v1/key/a/x"));
    }

    #[test]
    fn star_spans_slashes() {
        let p = policy(&["/v1/*"], &[]);
        assert!(p.allows("/v1/key/generate/a"));
        assert!(!p.allows("/version"));
    }

    #[test]
    fn empty_denies() {
        assert!(!Policy::default().allows("/v1/status"));
        assert!(!policy(&[], &["/v1/status"]).allows("/v1/status"));
    }
}
