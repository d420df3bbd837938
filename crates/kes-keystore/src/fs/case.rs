//! Whether the key directory's file system ignores the case of names:
//! the store refuses such a directory (see [`super`]).

use std::fs;
use std::io;
use std::path::Path;

use super::files::create_temp_file;

/// Whether `other` is another name of the file `existing` (false if
/// nothing has that name).
pub(super) fn same_file(existing: &Path, other: &Path) -> io::Result<bool> {
    let first = fs::symlink_metadata(existing)?;
    let second = match fs::symlink_metadata(other) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(first.dev() == second.dev() && first.ino() == second.ino())
    }
    // Without inode numbers: the callers only ask about names that exist
    // in one spelling, so the other spelling existing is the answer.
    #[cfg(not(unix))]
    {
        let _ = (first, second);
        Ok(true)
    }
}

/// Whether the file system of `dir` ignores the case of names. `same_file`
/// answers whether two names lead to one file; the real one is
/// [`same_file`], tests pass one that behaves like a case-insensitive file
/// system.
///
/// The probe creates a temporary file with a lower-case name and asks
/// whether the upper-case spelling leads to it; the file is removed again
/// (and a crash leaves only a temporary file, which the next open
/// removes). Where no file can be created (a read-only mount, a full disk)
/// the existing entries are asked instead.
pub(super) fn ignores_case(
    dir: &Path,
    same_file: impl Fn(&Path, &Path) -> io::Result<bool>,
) -> io::Result<bool> {
    let mut attempt = 0;
    loop {
        let (probe, file) = match create_temp_file(dir, "case-probe.") {
            Ok(created) => created,
            Err(_) => return entries_ignore_case(dir, same_file),
        };
        drop(file);
        let upper = probe.with_file_name(
            probe
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_ascii_uppercase(),
        );
        let answer = same_file(&probe, &upper);
        let removed = fs::remove_file(&probe);
        match answer {
            // Another KES opening the same directory removes temporary
            // files, the probe among them: probe again.
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempt < 3 => attempt += 1,
            Err(e) => return Err(e),
            Ok(answer) => {
                match removed {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
                return Ok(answer);
            }
        }
    }
}

/// The probe of [`ignores_case`] for a directory it cannot write to: the
/// first entry with a letter in its name is looked up with the case of its
/// letters changed. A directory without such an entry holds no key whose
/// name could be confused, so it counts as case-sensitive.
pub(super) fn entries_ignore_case(
    dir: &Path,
    same_file: impl Fn(&Path, &Path) -> io::Result<bool>,
) -> io::Result<bool> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let upper = name.to_ascii_uppercase();
        let other = if upper != name {
            upper
        } else {
            name.to_ascii_lowercase()
        };
        if other != name {
            return same_file(&entry.path(), &dir.join(other));
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// Answers like a case-insensitive file system would: two names in one
    /// directory that differ only in case lead to one file.
    fn case_insensitive(existing: &Path, other: &Path) -> io::Result<bool> {
        let lower = |p: &Path| p.to_str().unwrap().to_ascii_lowercase();
        fs::symlink_metadata(existing)?;
        Ok(lower(existing) == lower(other))
    }

    /// Records what the probe asks and answers like a case-sensitive file
    /// system.
    fn recording(asked: &std::sync::Mutex<Vec<(String, String)>>, a: &Path, b: &Path) -> bool {
        let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();
        asked.lock().unwrap().push((name(a), name(b)));
        false
    }

    #[test]
    fn probe_accepts_this_file_system() {
        // The tests run on Linux (ext4, tmpfs, overlayfs), which is
        // case-sensitive.
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("my-key"), b"v").unwrap();
        assert!(!ignores_case(tmp.path(), same_file).unwrap());
        assert!(!entries_ignore_case(tmp.path(), same_file).unwrap());
        assert_eq!(entries(tmp.path()), ["my-key"], "the probe file is removed");
    }

    #[test]
    fn probe_detects_a_case_insensitive_file_system() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(ignores_case(tmp.path(), case_insensitive).unwrap());
        assert!(entries(tmp.path()).is_empty(), "the probe file is removed");
    }

    #[test]
    fn probe_asks_about_a_fresh_lower_case_name_and_its_upper_case_spelling() {
        let tmp = tempfile::tempdir().unwrap();
        let asked = std::sync::Mutex::new(Vec::new());
        assert!(!ignores_case(tmp.path(), |a, b| Ok(recording(&asked, a, b))).unwrap());
        let asked = asked.into_inner().unwrap();
        assert_eq!(asked.len(), 1);
        let (probe, other) = &asked[0];
        assert!(probe.starts_with(".kes-tmp.case-probe."), "{probe}");
        assert_eq!(*other, probe.to_ascii_uppercase());
        assert_ne!(other, probe);
    }

    #[test]
    fn probe_of_existing_entries() {
        let tmp = tempfile::tempdir().unwrap();
        // Nothing to ask about: counts as case-sensitive.
        assert!(!entries_ignore_case(tmp.path(), case_insensitive).unwrap());
        fs::write(tmp.path().join("0-1"), b"v").unwrap();
        assert!(!entries_ignore_case(tmp.path(), case_insensitive).unwrap());
        // A name with letters is asked about in the other case.
        fs::write(tmp.path().join("MY-KEY"), b"v").unwrap();
        assert!(entries_ignore_case(tmp.path(), case_insensitive).unwrap());
        let asked = std::sync::Mutex::new(Vec::new());
        assert!(!entries_ignore_case(tmp.path(), |a, b| Ok(recording(&asked, a, b))).unwrap());
        assert_eq!(
            asked.into_inner().unwrap(),
            [("MY-KEY".to_string(), "my-key".to_string())]
        );
        assert!(!entries_ignore_case(tmp.path(), same_file).unwrap());
    }

    #[test]
    fn same_file_tells_names_apart() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            tmp.path().join("a"),
            tmp.path().join("b"),
            tmp.path().join("c"),
        );
        fs::write(&a, b"1").unwrap();
        fs::write(&c, b"1").unwrap();
        fs::hard_link(&a, &b).unwrap();
        assert!(same_file(&a, &b).unwrap());
        assert!(!same_file(&a, &c).unwrap());
        assert!(!same_file(&a, &tmp.path().join("A")).unwrap());
        assert!(same_file(&tmp.path().join("missing"), &a).is_err());
    }
}
