//! `kes migrate`: copy keys from one key store to another.
//!
//! The stored values are copied byte for byte: keys are not decoded, so a
//! migration never changes a key and works for every encoding (protobuf,
//! legacy JSON). Running it again with `--merge` after an interruption
//! copies what is missing.
//!
//! A rotated key is copied with every version: its first entry as stored
//! (so its lineage, which is derived from those bytes or kept in them,
//! stays the same) and its version entries `<name>@<lineage>@<n>`. The
//! versions are written before the first entry: until the first entry
//! exists the key does not exist in the target, so an interrupted copy is
//! finished by `--merge` instead of being skipped without its versions.

use super::client::{print_json, print_line};
use super::{CliError, CliResult};
use indicatif::{ProgressBar, ProgressStyle};
use kes_core::ring::{Lineage, RingHeader};
use kes_keystore::versions::{entry_name, parse_entry_name, FirstEntry, MAX_RETAINED};
use kes_keystore::{Error as StoreError, KeyStore};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::task::JoinSet;

/// How many keys are copied at the same time.
const IN_FLIGHT: usize = 8;

/// Arguments of `kes migrate`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Copy only keys whose names match this glob (`*`, `?`, `[a-z]`)
    #[arg(default_value = "*")]
    pattern: String,
    /// Config file of the key store to copy from
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// Config file of the key store to copy to
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Replace keys that exist in the target (delete, then create)
    #[arg(short = 'f', long, conflicts_with = "merge")]
    force: bool,
    /// Skip keys that exist in the target
    #[arg(long)]
    merge: bool,
    /// Print the summary as JSON
    #[arg(long)]
    json: bool,
}

/// What to do with a key that exists in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnExisting {
    Fail,
    Skip,
    Replace,
}

/// What happened to one key.
enum Outcome {
    Copied,
    Skipped,
    Failed(String),
}

/// Runs `kes migrate`.
pub(crate) fn run(args: Args) -> CliResult {
    let pattern = Glob::new(&args.pattern).map_err(CliError::usage)?;
    let on_existing = if args.force {
        OnExisting::Replace
    } else if args.merge {
        OnExisting::Skip
    } else {
        OnExisting::Fail
    };
    // Only the `keystore:` sections are read: a file with nothing else is
    // enough, and `${VAR}`s of other sections need not be set.
    let load = |path: &PathBuf| {
        let (keystore, warnings) = kes_config::load_keystore(path)
            .map_err(|e| CliError::failure(format!("'{}': {e}", path.display())))?;
        for warning in warnings {
            eprintln!("Warning: '{}': {warning}", path.display());
        }
        Ok::<_, CliError>(keystore)
    };
    let from = load(&args.from)?;
    let to = load(&args.to)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::failure(format!("failed to start runtime: {e}")))?;
    rt.block_on(async {
        let src = kes_config::open_store(&from)
            .await
            .map_err(CliError::failure)?;
        let dst = kes_config::open_store(&to)
            .await
            .map_err(CliError::failure)?;
        let result = migrate(src.clone(), dst.clone(), &pattern, on_existing, &args).await;
        src.close().await;
        dst.close().await;
        result
    })
}

async fn migrate(
    src: Arc<dyn KeyStore>,
    dst: Arc<dyn KeyStore>,
    pattern: &Glob,
    on_existing: OnExisting,
    args: &Args,
) -> CliResult {
    let listed = src
        .list(pattern.literal_prefix())
        .await
        .map_err(|e| CliError::failure(format!("failed to list keys: {e}")))?;
    // Sorted and deduplicated as the server's listing is; the store only
    // filtered by the pattern's literal prefix, the glob does the rest.
    let mut names = kes_keystore::filter_sorted(listed, pattern.literal_prefix());
    // Version entries are not keys: they go with their key.
    let versions = Arc::new(version_entries(&names, pattern));
    names.retain(|n| kes_keystore::versions::is_key_name(n) && pattern.matches(n));

    let progress = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(names.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} keys  {elapsed_precise}  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };

    let (mut copied, mut skipped, mut failed) = (0u64, 0u64, 0u64);
    let mut tasks = JoinSet::new();
    let mut pending = names.into_iter();
    loop {
        while tasks.len() < IN_FLIGHT {
            let Some(name) = pending.next() else { break };
            let (src, dst, versions) = (src.clone(), dst.clone(), versions.clone());
            tasks.spawn(async move {
                let listed = versions.get(&name).map_or(&[][..], Vec::as_slice);
                let outcome = copy_key(&*src, &*dst, &name, listed, on_existing).await;
                (name, outcome)
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        let (name, outcome) = joined.map_err(|e| CliError::failure(format!("copy task: {e}")))?;
        match outcome {
            Outcome::Copied => copied += 1,
            Outcome::Skipped => skipped += 1,
            Outcome::Failed(reason) => {
                failed += 1;
                progress.suspend(|| eprintln!("Error: failed to migrate '{name}': {reason}"));
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();

    if args.json {
        #[derive(serde::Serialize)]
        struct Summary {
            copied: u64,
            skipped: u64,
            failed: u64,
        }
        print_json(&Summary {
            copied,
            skipped,
            failed,
        })?;
    } else {
        print_line(&format!(
            "Migrated keys: {copied} copied, {skipped} skipped, {failed} failed"
        ))?;
    }
    if failed > 0 {
        return Err(CliError::failure(format!(
            "{failed} key(s) could not be migrated"
        )));
    }
    Ok(())
}

/// The version entries of the listing by key name (for keys `pattern`
/// matches): lineage and version number. Retirement locks are left out.
fn version_entries(names: &[String], pattern: &Glob) -> HashMap<String, Vec<(Lineage, u32)>> {
    let mut out: HashMap<String, Vec<(Lineage, u32)>> = HashMap::new();
    for stored in names {
        let Some(entry) = parse_entry_name(stored) else {
            continue;
        };
        let Some(version) = entry.version else {
            continue;
        };
        if pattern.matches(entry.key) {
            out.entry(entry.key.to_owned())
                .or_default()
                .push((entry.lineage, version));
        }
    }
    out
}

/// Copies one key: its version entries, then its first entry. Values are
/// copied as stored, never decoded (only the first entry's version header
/// is read, to know its lineage) and never logged. A key that exists in
/// the target is handled as a whole: skipped or failed with all its
/// versions, or replaced after deleting every version of the target's key,
/// so the versions of two keys are never mixed.
async fn copy_key(
    src: &dyn KeyStore,
    dst: &dyn KeyStore,
    name: &str,
    listed: &[(Lineage, u32)],
    on_existing: OnExisting,
) -> Outcome {
    let value = match src.get(name).await {
        Ok(v) => v,
        Err(e) => return Outcome::Failed(format!("failed to read: {e}")),
    };
    // A value without a version header (or one this KES cannot read, which
    // is still copied as is) is version 1 of the lineage its bytes give. A
    // key pending deletion is copied pending, with its versions and its
    // deletion marker, so that it can still be restored in the target; one
    // being purged is gone.
    let (lineage, first, pending) = match kes_keystore::versions::first_entry(name, &value) {
        Ok(FirstEntry::Live(lineage, first)) => (lineage, first, false),
        // A target without a conditional write (Vault K/V v1) could never
        // restore or purge it: the name would be taken for good.
        Ok(FirstEntry::Pending(..)) if !dst.conditional_writes() => {
            return Outcome::Failed(
                "it is pending deletion, and the target cannot keep a deletion window (no conditional write): restore it in the source first, or let it be purged".into(),
            )
        }
        Ok(FirstEntry::Pending(lineage, first)) => (lineage, first, true),
        Ok(FirstEntry::Purging) => return Outcome::Skipped,
        Err(_) => match RingHeader::parse(&value) {
            Ok(Some(h)) => (h.lineage, h.first, false),
            Ok(None) | Err(_) => (Lineage::derive(&value), 1, false),
        },
    };
    // Entries of this lineage after the first version: the ones the key
    // reads. Others are leftovers (of a deleted key of the same name, or
    // of versions a retirement was deleting) that belong to no key.
    let mut numbers: Vec<u32> = listed
        .iter()
        .filter(|(l, n)| *l == lineage && *n > first)
        .map(|(_, n)| *n)
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.len() > 4 * MAX_RETAINED {
        return Outcome::Failed(format!("more than {} versions", 4 * MAX_RETAINED));
    }

    match dst.get(name).await {
        Ok(_) => match on_existing {
            OnExisting::Skip => return Outcome::Skipped,
            OnExisting::Fail => return Outcome::Failed("key already exists in the target".into()),
            OnExisting::Replace => match kes_keystore::versions::delete(dst, name).await {
                Ok(()) | Err(StoreError::KeyNotFound) => {}
                Err(e) => return Outcome::Failed(format!("failed to delete: {e}")),
            },
        },
        Err(StoreError::KeyNotFound) => {}
        Err(e) => return Outcome::Failed(format!("failed to read the target: {e}")),
    }

    for n in numbers {
        let entry = entry_name(name, lineage, n);
        let version = match src.get(&entry).await {
            Ok(v) => v,
            // Retired since the listing.
            Err(StoreError::KeyNotFound) => continue,
            Err(e) => return Outcome::Failed(format!("failed to read version {n}: {e}")),
        };
        match dst.create(&entry, &version).await {
            Ok(()) => {}
            // Written by an interrupted earlier run: the same lineage is
            // the same first entry, so the same bytes are expected; anything
            // else is not overwritten.
            Err(StoreError::KeyExists) => match dst.get(&entry).await {
                Ok(there) if *there == *version => {}
                Ok(_) => {
                    return Outcome::Failed(format!(
                        "version {n} exists in the target with another value"
                    ))
                }
                Err(e) => return Outcome::Failed(format!("failed to read version {n}: {e}")),
            },
            Err(e) => return Outcome::Failed(format!("failed to create version {n}: {e}")),
        }
    }

    if pending {
        // Stamped now: a purge pass of a server on the target leaves a
        // young marker without its first entry alone.
        if let Err(e) = kes_keystore::versions::mark(dst, name, lineage).await {
            return Outcome::Failed(format!("failed to create its deletion marker: {e}"));
        }
    }
    match dst.create(name, &value).await {
        Ok(()) => Outcome::Copied,
        // Created in the target meanwhile.
        Err(StoreError::KeyExists) if on_existing == OnExisting::Skip => Outcome::Skipped,
        Err(StoreError::KeyExists) => Outcome::Failed("key already exists in the target".into()),
        Err(e) => Outcome::Failed(format!("failed to create: {e}")),
    }
}

/// A `filepath.Match`-style glob over key names: `*` (any run), `?` (one
/// character), `[abc]`, `[a-z]`, `[^a-z]` and `\` escapes.
#[derive(Debug, Clone)]
struct Glob {
    tokens: Vec<Token>,
    prefix: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Char(char),
    Any,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    fn new(pattern: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("invalid pattern '{pattern}': {why}");
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::Any),
                '\\' => tokens.push(Token::Char(
                    chars.next().ok_or_else(|| bad("trailing '\\'"))?,
                )),
                '[' => {
                    let negated = matches!(chars.peek(), Some('^') | Some('!'));
                    if negated {
                        chars.next();
                    }
                    let mut ranges = Vec::new();
                    loop {
                        let lo = match chars.next() {
                            None => return Err(bad("unterminated '['")),
                            Some(']') if !ranges.is_empty() => break,
                            Some('\\') => chars.next().ok_or_else(|| bad("trailing '\\'"))?,
                            Some(c) => c,
                        };
                        let hi = if chars.peek() == Some(&'-') {
                            chars.next();
                            match chars.next() {
                                None => return Err(bad("unterminated '['")),
                                Some('\\') => chars.next().ok_or_else(|| bad("trailing '\\'"))?,
                                Some(c) => c,
                            }
                        } else {
                            lo
                        };
                        if hi < lo {
                            return Err(bad("invalid range"));
                        }
                        ranges.push((lo, hi));
                    }
                    tokens.push(Token::Class { negated, ranges });
                }
                c => tokens.push(Token::Char(c)),
            }
        }
        let prefix = tokens
            .iter()
            .map_while(|t| match t {
                Token::Char(c) => Some(*c),
                _ => None,
            })
            .collect();
        Ok(Glob { tokens, prefix })
    }

    /// The literal start every match has, to let the store filter.
    fn literal_prefix(&self) -> &str {
        &self.prefix
    }

    fn matches(&self, name: &str) -> bool {
        let name: Vec<char> = name.chars().collect();
        // Iterative matching with one backtrack point for the last `*`:
        // linear for the patterns people write, never exponential.
        let (mut t, mut n) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while n < name.len() {
            let step = match self.tokens.get(t) {
                Some(Token::Star) => {
                    star = Some((t, n));
                    t += 1;
                    continue;
                }
                Some(Token::Any) => true,
                Some(Token::Char(c)) => *c == name[n],
                Some(Token::Class { negated, ranges }) => {
                    let inside = ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&name[n]));
                    inside != *negated
                }
                None => false,
            };
            if step {
                t += 1;
                n += 1;
            } else if let Some((st, sn)) = star {
                t = st + 1;
                n = sn + 1;
                star = Some((st, sn + 1));
            } else {
                return false;
            }
        }
        self.tokens[t..].iter().all(|tok| *tok == Token::Star)
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn glob_matching() {
        let m = |p: &str, n: &str| Glob::new(p).unwrap().matches(n);
        assert!(m("*", "my-key"));
        assert!(m("*", ""));
        assert!(m("my-*", "my-key"));
        assert!(!m("my-*", "your-key"));
        assert!(m("*-key", "my-key"));
        assert!(m("k?y", "key"));
        assert!(!m("k?y", "kyy-"));
        assert!(m("key-[0-9]", "key-7"));
        assert!(!m("key-[0-9]", "key-a"));
        assert!(m("key-[^0-9]", "key-a"));
        assert!(m("a*b*c", "a-xx-b-yy-c"));
        assert!(!m("a*b*c", "a-xx-b-yy-d"));
        assert!(m(r"a\*", "a*"));
        assert!(!m(r"a\*", "ab"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "exact2"));
    }

    #[test]
    fn glob_prefix_and_errors() {
        assert_eq!(Glob::new("my-key-*").unwrap().literal_prefix(), "my-key-");
        assert_eq!(Glob::new("*").unwrap().literal_prefix(), "");
        assert_eq!(Glob::new("a?c").unwrap().literal_prefix(), "a");
        for bad in ["[a-", "[", "a\\", "[z-a]"] {
            assert!(Glob::new(bad).is_err(), "{bad}");
        }
    }
}
