//! The keys the config file knows: the one table both for the parsers
//! (every key they read must be in it, see `walk::Section`) and for the
//! warnings about the keys a file holds that it does not know. Unknown
//! keys are ignored for compatibility, and a warning is the only hint an
//! operator gets about a typo like `skip-auth`.

use crate::yaml::{Node, Value};

pub(crate) enum Schema {
    /// A value that is not walked further.
    Leaf,
    /// A mapping with these keys.
    Map(&'static [(&'static str, Schema)]),
    /// A mapping with arbitrary keys (names, paths) whose values follow the
    /// schema.
    Named(&'static Schema),
    /// A list whose items follow the schema.
    List(&'static Schema),
}

use Schema::{Leaf, List, Map, Named};

impl Schema {
    /// The schema of `key` in this mapping, if the mapping knows it.
    pub(crate) fn field(&self, key: &str) -> Option<&'static Schema> {
        match self {
            Map(fields) => {
                let fields: &'static [(&'static str, Schema)] = fields;
                fields.iter().find(|(k, _)| *k == key).map(|(_, s)| s)
            }
            _ => None,
        }
    }

    /// The schema of each value of a mapping keyed by name.
    pub(crate) fn named_value(&self) -> Option<&'static Schema> {
        match self {
            Named(inner) => Some(inner),
            _ => None,
        }
    }

    /// The schema of each item of a list.
    pub(crate) fn item(&self) -> Option<&'static Schema> {
        match self {
            List(inner) => Some(inner),
            _ => None,
        }
    }
}

const CA_ONLY: Schema = Map(&[("ca", Leaf)]);

pub(crate) const TOP: Schema = Map(&[
    ("version", Leaf),
    ("address", Leaf),
    ("admin", Map(&[("identity", Leaf)])),
    (
        "tls",
        Map(&[
            ("key", Leaf),
            ("cert", Leaf),
            ("password", Leaf),
            ("auth", Leaf),
            ("ca", Leaf),
            (
                "proxy",
                Map(&[("identities", Leaf), ("header", Map(&[("cert", Leaf)]))]),
            ),
        ]),
    ),
    (
        "api",
        Named(&Map(&[("skip_auth", Leaf), ("timeout", Leaf)])),
    ),
    (
        "policy",
        Named(&Map(&[
            ("allow", Leaf),
            ("deny", Leaf),
            ("identities", Leaf),
        ])),
    ),
    (
        "cache",
        Map(&[(
            "expiry",
            Map(&[("any", Leaf), ("unused", Leaf), ("offline", Leaf)]),
        )]),
    ),
    (
        "log",
        Map(&[
            ("error", Leaf),
            ("audit", Leaf),
            ("format", Leaf),
            ("audit_file", Leaf),
        ]),
    ),
    ("keys", List(&Map(&[("name", Leaf)]))),
    (
        "limits",
        Map(&[("connections", Leaf), ("connections_per_ip", Leaf)]),
    ),
    ("proxy_protocol", Leaf),
    (
        "lifecycle",
        Map(&[
            ("rotate", List(&Map(&[("keys", Leaf), ("every", Leaf)]))),
            ("deletion_window", Leaf),
        ]),
    ),
    ("keystore", KEYSTORE),
]);

pub(crate) const KEYSTORE: Schema = Map(&[
    (
        "fs",
        Map(&[
            ("path", Leaf),
            (
                "seal",
                Map(&[(
                    "pkcs11",
                    Map(&[
                        ("module", Leaf),
                        ("token", Leaf),
                        ("slot", Leaf),
                        ("pin", Leaf),
                        ("key", Leaf),
                    ]),
                )]),
            ),
        ]),
    ),
    ("kes", Leaf),
    (
        "vault",
        Map(&[
            ("endpoint", Leaf),
            ("engine", Leaf),
            ("version", Leaf),
            ("namespace", Leaf),
            ("prefix", Leaf),
            ("transit", Map(&[("engine", Leaf), ("key", Leaf)])),
            (
                "approle",
                Map(&[
                    ("engine", Leaf),
                    ("namespace", Leaf),
                    ("id", Leaf),
                    ("secret", Leaf),
                ]),
            ),
            (
                "kubernetes",
                Map(&[
                    ("engine", Leaf),
                    ("namespace", Leaf),
                    ("role", Leaf),
                    ("jwt", Leaf),
                ]),
            ),
            ("tls", Map(&[("key", Leaf), ("cert", Leaf), ("ca", Leaf)])),
            ("status", Map(&[("ping", Leaf)])),
        ]),
    ),
    (
        "fortanix",
        Map(&[(
            "sdkms",
            Map(&[
                ("endpoint", Leaf),
                ("group_id", Leaf),
                ("credentials", Map(&[("key", Leaf)])),
                ("tls", CA_ONLY),
            ]),
        )]),
    ),
    (
        "gemalto",
        Map(&[(
            "keysecure",
            Map(&[
                ("endpoint", Leaf),
                ("credentials", Map(&[("token", Leaf), ("domain", Leaf)])),
                ("tls", CA_ONLY),
            ]),
        )]),
    ),
    (
        "gcp",
        Map(&[(
            "secretmanager",
            Map(&[
                ("project_id", Leaf),
                ("endpoint", Leaf),
                ("scopes", Leaf),
                (
                    "credentials",
                    Map(&[
                        ("client_email", Leaf),
                        ("client_id", Leaf),
                        ("private_key_id", Leaf),
                        ("private_key", Leaf),
                    ]),
                ),
            ]),
        )]),
    ),
    (
        "aws",
        Map(&[(
            "secretsmanager",
            Map(&[
                ("endpoint", Leaf),
                ("region", Leaf),
                ("kmskey", Leaf),
                ("prefix", Leaf),
                (
                    "credentials",
                    Map(&[("accesskey", Leaf), ("secretkey", Leaf), ("token", Leaf)]),
                ),
            ]),
        )]),
    ),
    (
        "azure",
        Map(&[(
            "keyvault",
            Map(&[
                ("endpoint", Leaf),
                (
                    "credentials",
                    Map(&[
                        ("tenant_id", Leaf),
                        ("client_id", Leaf),
                        ("client_secret", Leaf),
                    ]),
                ),
                ("managed_identity", Map(&[("client_id", Leaf)])),
            ]),
        )]),
    ),
    (
        "entrust",
        Map(&[(
            "keycontrol",
            Map(&[
                ("endpoint", Leaf),
                ("vault_id", Leaf),
                ("box_id", Leaf),
                (
                    "credentials",
                    Map(&[("username", Leaf), ("password", Leaf)]),
                ),
                ("tls", CA_ONLY),
            ]),
        )]),
    ),
]);

/// A key the KES does not know.
pub(crate) struct UnknownKey {
    /// The key as written.
    key: String,
    /// Its line.
    line: usize,
    /// The known key of the same mapping it most likely is a typo of.
    suggestion: Option<&'static str>,
}

impl UnknownKey {
    /// `kesconf: unknown key 'pth' in line 3 (did you mean 'path'?)`
    pub(crate) fn message(&self) -> String {
        match self.suggestion {
            Some(s) => format!(
                "kesconf: unknown key '{}' in line {} (did you mean '{s}'?)",
                self.key, self.line
            ),
            None => format!("kesconf: unknown key '{}' in line {}", self.key, self.line),
        }
    }

    /// The message for a config that loaded: the key is ignored.
    pub(crate) fn warning(&self) -> String {
        format!("{} is ignored", self.message())
    }
}

/// Edit distance (insertions, deletions, substitutions and swaps of
/// neighbours) between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// The known key closest to `key`, if it is close enough to be a typo:
/// a third of the key's length, at least one and at most three edits, or
/// the same key in another case or with `-` for `_`.
fn suggest(key: &str, fields: &'static [(&'static str, Schema)]) -> Option<&'static str> {
    let normalized = key.to_ascii_lowercase().replace('-', "_");
    if let Some((known, _)) = fields.iter().find(|(k, _)| *k == normalized) {
        return Some(known);
    }
    let limit = (key.chars().count() / 3).clamp(1, 3);
    fields
        .iter()
        .map(|(known, _)| (distance(&normalized, known), *known))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, known)| known)
}

fn walk(node: &Node, schema: &'static Schema, out: &mut Vec<UnknownKey>) {
    match (schema, &node.value) {
        (Map(fields), Value::Map(entries)) => {
            for (key, value) in entries {
                let Some(name) = key.as_key() else { continue };
                match fields.iter().find(|(known, _)| *known == name) {
                    Some((_, inner)) => walk(value, inner, out),
                    None => out.push(UnknownKey {
                        key: name.to_string(),
                        line: key.line,
                        suggestion: suggest(name, fields),
                    }),
                }
            }
        }
        (Named(inner), Value::Map(entries)) => {
            for (_, value) in entries {
                walk(value, inner, out);
            }
        }
        (List(inner), Value::Seq(items)) => {
            for item in items {
                walk(item, inner, out);
            }
        }
        // Leaves, and shapes the parser reports as errors anyway.
        _ => {}
    }
}

/// Every key the KES does not know, in file order.
pub(crate) fn unknown_keys(root: &Node) -> Vec<UnknownKey> {
    let mut out = Vec::new();
    walk(root, &TOP, &mut out);
    out
}

/// The unknown keys of the `keystore` section only (for `kes migrate`,
/// which reads nothing else).
pub(crate) fn unknown_keystore_keys(keystore: &Node) -> Vec<UnknownKey> {
    let mut out = Vec::new();
    walk(keystore, &KEYSTORE, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let Map(keystore) = KEYSTORE else { panic!() };
        let Map(aws) = keystore.iter().find(|(k, _)| *k == "aws").unwrap().1 else {
            panic!()
        };
        assert_eq!(suggest("secretmanager", aws), Some("secretsmanager"));
        assert_eq!(suggest("SecretsManager", aws), Some("secretsmanager"));
        assert_eq!(suggest("kms", aws), None);
        assert_eq!(suggest("ffs", keystore), Some("fs"));
        assert_eq!(suggest("valut", keystore), Some("vault"));
        assert_eq!(suggest("colour", keystore), None);
        assert_eq!(distance("pth", "path"), 1);
        assert_eq!(distance("skip-auth", "skip_auth"), 1);
        assert_eq!(distance("ab", "ba"), 1);
    }
}
