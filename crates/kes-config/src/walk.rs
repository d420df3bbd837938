//! Walking the YAML tree: sections (mappings) with their dotted paths,
//! and scalar values with the line they came from, converted and checked
//! field by field. Every key a parser reads is one the schema knows.

use crate::env::substitute;
use crate::error::{ConfigError, Result};
use crate::schema::{self, Schema};
use crate::yaml::{Node, Value};
use kes_core::duration::parse_duration;
use std::fmt;
use std::path::Path;
use std::time::Duration;
use zeroize::Zeroizing;

/// Whether parsing checks that the files a config names can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Files {
    /// Yes: loading a config file for use.
    Check,
    /// No: parsing text (tests, tools).
    Ignore,
}

/// Fields whose value may be a `${VAR}` reference.
pub(crate) const ENV: bool = true;
/// Fields taken literally (policy patterns, `version`).
pub(crate) const RAW: bool = false;

/// A scalar value with the path and line it came from.
pub(crate) struct Text {
    pub(crate) value: Zeroizing<String>,
    pub(crate) line: usize,
    pub(crate) path: String,
}

impl Text {
    pub(crate) fn as_str(&self) -> &str {
        self.value.as_str()
    }

    /// An error about this value that shows the value itself; only for
    /// fields that never hold secrets.
    pub(crate) fn invalid(&self, reason: impl fmt::Display) -> ConfigError {
        ConfigError::new(
            format!(
                "kesconf: invalid {} '{}' in line {}: {reason}",
                self.path,
                self.as_str(),
                self.line
            ),
            Some(self.line),
        )
    }

    /// Checks that the file (or, with `dir_ok`, directory) this value names
    /// can be read, so that a typo is reported with its field and line
    /// instead of as a TLS or key-store failure later.
    pub(crate) fn check_readable(&self, files: Files, dir_ok: bool) -> Result<()> {
        if files == Files::Ignore {
            return Ok(());
        }
        let path = Path::new(self.as_str());
        let result = match std::fs::metadata(path) {
            Ok(m) if m.is_dir() && dir_ok => std::fs::read_dir(path).map(|_| ()),
            Ok(m) if m.is_dir() => Err(std::io::Error::new(
                std::io::ErrorKind::IsADirectory,
                "is a directory",
            )),
            Ok(_) => std::fs::File::open(path).map(|_| ()),
            Err(e) => Err(e),
        };
        result.map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                std::io::ErrorKind::IsADirectory => "is a directory, not a file".to_string(),
                _ => e.to_string(),
            };
            ConfigError {
                message: format!(
                    "kesconf: {} '{}' in line {}: {why}",
                    self.path,
                    self.as_str(),
                    self.line
                ),
                line: Some(self.line),
            }
        })
    }

    pub(crate) fn duration(&self) -> Result<Duration> {
        parse_duration(self.as_str().trim()).map_err(|e| self.invalid(e))
    }

    pub(crate) fn boolean(&self) -> Result<bool> {
        // yaml.v3 also accepts the YAML 1.1 spellings for bool fields.
        match self.as_str().trim() {
            "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Ok(true),
            "false" | "False" | "FALSE" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => Ok(false),
            _ => Err(self.invalid("must be true or false")),
        }
    }
}

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn expected(path: &str, what: &str, node: &Node) -> ConfigError {
    ConfigError::new(
        format!(
            "kesconf: invalid {path} in line {}: expected {what}, found {}",
            node.line,
            node.kind()
        ),
        Some(node.line),
    )
}

pub(crate) fn missing(what: &str, detail: &str, field: &str, line: usize) -> ConfigError {
    ConfigError::new(
        format!("kesconf: invalid {what}: no {detail} specified ({field})"),
        Some(line),
    )
}

/// Converts a scalar node to text, substituting `${VAR}` when allowed.
/// `None` for null values and for references to empty variables.
pub(crate) fn scalar(node: &Node, path: String, env: bool) -> Result<Option<Text>> {
    let raw = match &node.value {
        Value::Null => return Ok(None),
        Value::Scalar(s) => s,
        _ => return Err(expected(&path, "a single value", node)),
    };
    let value = match env.then(|| substitute(raw, node.line)).transpose()? {
        Some(Some(v)) if v.is_empty() => return Ok(None),
        Some(Some(v)) => v,
        _ => raw.clone(),
    };
    Ok(Some(Text {
        value,
        line: node.line,
        path,
    }))
}

/// A mapping of the config file together with its dotted path and the
/// keys it may hold.
pub(crate) struct Section<'a> {
    entries: &'a [(Node, Node)],
    pub(crate) path: String,
    pub(crate) line: usize,
    /// This mapping's entry in the table of known keys.
    schema: &'static Schema,
}

impl<'a> Section<'a> {
    /// The top level of a config file.
    pub(crate) fn top(root: &'a Node) -> Result<Section<'a>> {
        Section::of(root, String::new(), &schema::TOP)
    }

    fn of(node: &'a Node, path: String, schema: &'static Schema) -> Result<Section<'a>> {
        match &node.value {
            Value::Map(entries) => Ok(Section {
                entries,
                path,
                line: node.line,
                schema,
            }),
            Value::Null => Ok(Section {
                entries: &[],
                path,
                line: node.line,
                schema,
            }),
            _ => Err(expected(&path, "a mapping", node)),
        }
    }

    /// The table's entry for `key`. A parser reading a key the table does
    /// not know is a bug (its key would be warned about as unknown): the
    /// tests, built with debug assertions, catch it.
    fn known(&self, key: &str) -> &'static Schema {
        let known = self.schema.field(key);
        debug_assert!(
            known.is_some(),
            "'{}' is read but missing in schema.rs",
            join(&self.path, key)
        );
        known.unwrap_or(&Schema::Leaf)
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Node> {
        self.known(key);
        self.entries
            .iter()
            .find(|(k, _)| k.as_key() == Some(key))
            .map(|(_, v)| v)
    }

    pub(crate) fn section(&self, key: &str) -> Result<Option<Section<'a>>> {
        self.get(key)
            .map(|node| Section::of(node, join(&self.path, key), self.known(key)))
            .transpose()
    }

    pub(crate) fn section_or_empty(&self, key: &str) -> Result<Section<'a>> {
        Ok(self.section(key)?.unwrap_or(Section {
            entries: &[],
            path: join(&self.path, key),
            line: self.line,
            schema: self.known(key),
        }))
    }

    /// The section of one entry of a mapping keyed by name or path
    /// (`policy.<name>`, `api.<path>`), from [`Section::named_entries`].
    pub(crate) fn named_section(&self, node: &'a Node, path: String) -> Result<Section<'a>> {
        let schema = self.schema.named_value();
        debug_assert!(schema.is_some(), "{} is not keyed by name", self.path);
        Section::of(node, path, schema.unwrap_or(&Schema::Leaf))
    }

    /// The section of one item of the list `key` (`keys[0]`).
    pub(crate) fn item_section(
        &self,
        key: &str,
        node: &'a Node,
        path: String,
    ) -> Result<Section<'a>> {
        let schema = self.known(key).item();
        debug_assert!(schema.is_some(), "{} is not a list", join(&self.path, key));
        Section::of(node, path, schema.unwrap_or(&Schema::Leaf))
    }

    pub(crate) fn text(&self, key: &str, env: bool) -> Result<Option<Text>> {
        match self.get(key) {
            Some(node) => scalar(node, join(&self.path, key), env),
            None => Ok(None),
        }
    }

    /// A string field; absent, null and empty all read as "".
    pub(crate) fn string(&self, key: &str, env: bool) -> Result<String> {
        Ok(self
            .text(key, env)?
            .map(|t| t.as_str().to_string())
            .unwrap_or_default())
    }

    pub(crate) fn opt_string(&self, key: &str, env: bool) -> Result<Option<String>> {
        Ok(Some(self.string(key, env)?).filter(|s| !s.is_empty()))
    }

    pub(crate) fn duration(&self, key: &str) -> Result<Option<Duration>> {
        self.text(key, ENV)?.map(|t| t.duration()).transpose()
    }

    pub(crate) fn boolean(&self, key: &str) -> Result<bool> {
        Ok(self
            .text(key, ENV)?
            .map(|t| t.boolean())
            .transpose()?
            .unwrap_or(false))
    }

    pub(crate) fn list(&self, key: &str) -> Result<&'a [Node]> {
        match self.get(key) {
            None => Ok(&[]),
            Some(node) => match &node.value {
                Value::Null => Ok(&[]),
                Value::Seq(items) => Ok(items),
                _ => Err(expected(&join(&self.path, key), "a list", node)),
            },
        }
    }

    /// A list of strings; null items are skipped.
    pub(crate) fn strings(&self, key: &str, env: bool) -> Result<Vec<Text>> {
        let path = join(&self.path, key);
        let mut out = Vec::new();
        for (i, node) in self.list(key)?.iter().enumerate() {
            if let Some(text) = scalar(node, format!("{path}[{i}]"), env)? {
                out.push(text);
            }
        }
        Ok(out)
    }

    /// The entries with a scalar key, for maps keyed by name or path.
    pub(crate) fn named_entries(&self) -> Result<Vec<(&'a str, &'a Node)>> {
        self.entries
            .iter()
            .map(|(k, v)| match k.as_key() {
                Some(name) => Ok((name, v)),
                None => Err(expected(&self.path, "names as keys", k)),
            })
            .collect()
    }
}
