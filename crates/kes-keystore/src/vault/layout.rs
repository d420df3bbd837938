//! Where an entry lives: the request paths of the K/V engine (the Go
//! KES's layout) and the checks on the configured parts of them.

use crate::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KvVersion {
    V1,
    V2,
}

/// Accepts mount paths and prefixes made of URL-safe characters, so that
/// no config value can change the meaning of a request path.
pub(super) fn check_path(path: &str, what: &str) -> Result<(), Error> {
    let ok = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && !path.split('/').any(|seg| seg == "." || seg == "..");
    if ok {
        Ok(())
    } else {
        Err(Error::other(format!(
            "vault: invalid {what} '{path}': only A-Z a-z 0-9 - _ . / are allowed"
        )))
    }
}

/// Names reach us validated, but the store still refuses anything that
/// could leave the prefix or need escaping.
pub(super) fn check_name(name: &str) -> Result<(), Error> {
    if crate::versions::valid_stored_name(name) {
        Ok(())
    } else {
        Err(Error::other(format!("vault: invalid key name '{name}'")))
    }
}

pub(super) struct Layout {
    pub(super) engine: String,
    pub(super) prefix: String,
    pub(super) version: KvVersion,
}

impl Layout {
    fn join(&self, middle: Option<&str>, name: &str) -> String {
        let mut path = self.engine.clone();
        for part in [middle.unwrap_or(""), &self.prefix, name] {
            if !part.is_empty() {
                path.push('/');
                path.push_str(part);
            }
        }
        path
    }

    pub(super) fn read_path(&self, name: &str) -> String {
        match self.version {
            KvVersion::V1 => self.join(None, name),
            // Version 1, like the Go KES: the only one KES writes when it
            // creates an entry, so a version written by hand later does not
            // change a key. Only retirement writes more (see `replace_if`).
            KvVersion::V2 => format!("{}?version=1", self.join(Some("data"), name)),
        }
    }

    /// K/V v2: the latest version, where retirement left the first entry of
    /// a key after destroying version 1.
    pub(super) fn latest_path(&self, name: &str) -> String {
        self.join(Some("data"), name)
    }

    pub(super) fn write_path(&self, name: &str) -> String {
        match self.version {
            KvVersion::V1 => self.join(None, name),
            KvVersion::V2 => self.join(Some("data"), name),
        }
    }

    /// K/V v2: the metadata of an entry (all its versions).
    pub(super) fn metadata_path(&self, name: &str) -> String {
        self.join(Some("metadata"), name)
    }

    pub(super) fn destroy_path(&self, name: &str) -> String {
        self.join(Some("destroy"), name)
    }

    pub(super) fn delete_path(&self, name: &str) -> String {
        match self.version {
            KvVersion::V1 => self.join(None, name),
            KvVersion::V2 => self.join(Some("metadata"), name),
        }
    }

    pub(super) fn list_path(&self) -> String {
        let dir = match self.version {
            KvVersion::V1 => self.join(None, ""),
            KvVersion::V2 => self.join(Some("metadata"), ""),
        };
        format!("{dir}/?list=true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(engine: &str, prefix: &str, version: KvVersion) -> Layout {
        Layout {
            engine: engine.into(),
            prefix: prefix.into(),
            version,
        }
    }

    #[test]
    fn paths_follow_the_go_kes_layout() {
        let v1 = layout("kv", "", KvVersion::V1);
        assert_eq!(v1.read_path("k"), "kv/k");
        assert_eq!(v1.write_path("k"), "kv/k");
        assert_eq!(v1.delete_path("k"), "kv/k");
        assert_eq!(v1.list_path(), "kv/?list=true");
        let v2 = layout("secret", "kes/a", KvVersion::V2);
        assert_eq!(v2.read_path("k"), "secret/data/kes/a/k?version=1");
        assert_eq!(v2.latest_path("k"), "secret/data/kes/a/k");
        assert_eq!(v2.destroy_path("k"), "secret/destroy/kes/a/k");
        assert_eq!(v2.write_path("k"), "secret/data/kes/a/k");
        assert_eq!(v2.delete_path("k"), "secret/metadata/kes/a/k");
        assert_eq!(v2.list_path(), "secret/metadata/kes/a/?list=true");
    }

    #[test]
    fn config_paths_are_checked() {
        assert!(check_path("kv", "engine").is_ok());
        assert!(check_path("team-a/kv_2", "engine").is_ok());
        assert!(check_path("kv/../sys", "engine").is_err());
        assert!(check_path("kv?list=true", "engine").is_err());
        assert!(check_path("kv#x", "engine").is_err());
        assert!(check_name("../x").is_err());
        assert!(check_name("my-key").is_ok());
    }
}
