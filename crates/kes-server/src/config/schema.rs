//! The keys the config file knows, to warn about the ones it does not:
//! unknown keys are ignored for compatibility, and a warning is the only
//! hint an operator gets about a typo like `skip-auth`.

use super::yaml::{Node, Value};

enum Schema {
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

const CA_ONLY: Schema = Map(&[("ca", Leaf)]);

const TOP: Schema = Map(&[
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
    ("keystore", KEYSTORE),
]);

const KEYSTORE: Schema = Map(&[
    ("fs", Map(&[("path", Leaf)])),
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

fn walk(node: &Node, schema: &Schema, path: &str, out: &mut Vec<String>) {
    match (schema, &node.value) {
        (Map(fields), Value::Map(entries)) => {
            for (key, value) in entries {
                let Some(name) = key.as_key() else { continue };
                let field = if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}.{name}")
                };
                match fields.iter().find(|(known, _)| *known == name) {
                    Some((_, inner)) => walk(value, inner, &field, out),
                    None => out.push(format!(
                        "kesconf: unknown key '{field}' in line {} is ignored",
                        key.line
                    )),
                }
            }
        }
        (Named(inner), Value::Map(entries)) => {
            for (key, value) in entries {
                if let Some(name) = key.as_key() {
                    walk(value, inner, &format!("{path}.{name}"), out);
                }
            }
        }
        (List(inner), Value::Seq(items)) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, inner, &format!("{path}[{i}]"), out);
            }
        }
        // Leaves, and shapes the parser reports as errors anyway.
        _ => {}
    }
}

/// One message per key the KES does not know, in file order.
pub(super) fn unknown_keys(root: &Node) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, &TOP, "", &mut out);
    out
}
