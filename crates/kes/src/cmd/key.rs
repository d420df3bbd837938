//! `kes key`: create, import, inspect, list, delete, restore, rotate,
//! retire and use master keys.

use super::client::{
    api_error, created_rows, for_each_name, format_time, paint, print_json, print_line,
    print_names, print_object, print_secret_line, Mode, Remote, BOLD,
};
use super::{CliError, CliResult};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use clap::Subcommand;
use zeroize::Zeroizing;

/// Arguments of `kes key`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(after_help = client_help!("kes key create my-key", "kes key create my-key-1 my-key-2 my-key-3"))]
    /// Create new master keys
    Create {
        /// Names of the keys
        #[arg(required = true)]
        names: Vec<String>,
        // --json and --color are accepted for uniformity: nothing is
        // printed on success.
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes key import my-key \"$(head -c 32 /dev/urandom | base64)\""))]
    /// Import a master key (AES256)
    Import {
        /// Name of the key
        name: String,
        /// The 32-byte key, base64-encoded
        key: String,
        // --json and --color are accepted for uniformity: nothing is
        // printed on success.
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes key info my-key", "kes key info my-key --json"))]
    /// Print information about a master key
    Info {
        /// Name of the key
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes key ls", "kes key ls 'my-*'", "kes key ls --json", "kes key ls --deleted"))]
    /// List master keys
    Ls {
        /// List only keys whose names start with this prefix (`*` for all)
        #[arg(default_value = "*")]
        pattern: String,
        /// List the keys pending deletion instead, with when they were
        /// deleted and from when on they are purged
        #[arg(long)]
        deleted: bool,
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes key rm my-key", "kes key rm my-key-1 my-key-2"))]
    /// Delete master keys
    Rm {
        /// Names of the keys
        #[arg(required = true)]
        names: Vec<String>,
        // --json and --color are accepted for uniformity: nothing is
        // printed on success.
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes key restore my-key", "kes key ls --deleted"))]
    /// Bring back a master key pending deletion, with all its versions
    /// (servers with a deletion window keep deleted keys restorable)
    Restore {
        /// Name of the key
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes key rotate my-key", "kes key rotate my-key --json"))]
    /// Add a version to a master key: new data is sealed with it, data
    /// sealed with older versions stays decryptable
    Rotate {
        /// Name of the key
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes key retire my-key --keep 2", "kes key retire my-key --keep 1 --force"))]
    /// Delete all but the newest versions of a master key: what the deleted
    /// versions sealed can never be decrypted again
    Retire {
        /// Name of the key
        name: String,
        /// How many of the newest versions to keep (at least 1)
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        keep: u32,
        /// Do not ask for confirmation (it is only asked on a terminal)
        #[arg(long, short = 'f')]
        force: bool,
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes key encrypt my-key 'hello world'"))]
    /// Encrypt a message with a master key
    Encrypt {
        /// Name of the key
        name: String,
        /// The message (its UTF-8 bytes are encrypted)
        message: String,
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes key decrypt my-key \"$CIPHERTEXT\"", "kes key decrypt my-key \"$CIPHERTEXT\" \"$(printf '{\"bucket\":\"b/o\"}' | base64)\""))]
    /// Decrypt a ciphertext with a master key
    Decrypt {
        /// Name of the key
        name: String,
        /// The ciphertext, base64-encoded
        ciphertext: String,
        /// The context the ciphertext is bound to, base64-encoded
        context: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    #[command(after_help = client_help!("kes key dek my-key", "kes key dek my-key | jq -r .ciphertext"))]
    /// Generate a data encryption key (DEK)
    Dek {
        /// Name of the master key
        name: String,
        /// The context to bind the DEK to, base64-encoded
        context: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Runs `kes key`.
pub(crate) fn run(args: Args) -> CliResult {
    match args.command {
        Command::Create { names, remote } => {
            let (rt, client, _) = remote.connect()?;
            rt.block_on(for_each_name(&names, "failed to create key", |name| {
                let client = client.clone();
                async move { client.create_key(&name).await }
            }))
        }
        Command::Import { name, key, remote } => {
            let key = Zeroizing::new(
                B64.decode(key.trim())
                    .map_err(|_| CliError::usage("invalid key: not base64"))?,
            );
            let (rt, client, _) = remote.connect()?;
            let len = key.len();
            rt.block_on(client.import_key(&name, &key, "AES256"))
                .map_err(|e| match e.status() {
                    // The server only says the size is wrong; say which
                    // it takes (and what was given: not secret).
                    Some(406) if e.to_string() == "invalid key size for 'AES256'" => {
                        CliError::failure(format!(
                            "{e}: an AES256 key is 32 bytes (44 base64 characters), this one is {len}"
                        ))
                    }
                    _ => key_error(&name)(e),
                })
        }
        Command::Info { name, remote } => {
            let (rt, client, mode) = remote.connect()?;
            let info = rt
                .block_on(client.describe_key(&name))
                .map_err(key_error(&name))?;
            print_object(mode, &info, || {
                let mut rows = vec![
                    ("Name", info.name.clone()),
                    ("Algorithm", info.algorithm.clone()),
                ];
                rows.extend(created_rows(info.created_at, &info.created_by));
                // Only a rotated key has versions to show; a key never
                // rotated prints as it always did.
                if let Some(version) = info.version {
                    rows.push(("Version", version.to_string()));
                }
                if let Some(versions) = info.versions {
                    rows.push(("Versions", format!("{versions} retained")));
                }
                if let Some(at) = info.rotated_at {
                    rows.push(("Rotated", format_time(at)));
                }
                if let Some(at) = info.next_rotation {
                    rows.push(("Next rotation", format_time(at)));
                }
                rows
            })
        }
        Command::Rotate { name, remote } => {
            let (rt, client, mode) = remote.connect()?;
            let rotated = rt
                .block_on(client.rotate_key(&name))
                .map_err(key_error(&name))?;
            match mode {
                Mode::Terminal { .. } => print_line(&format!(
                    "Key '{name}' rotated to version {} ({} versions retained)",
                    rotated.version, rotated.versions
                )),
                Mode::Json | Mode::Plain => print_json(&rotated),
            }
        }
        Command::Retire {
            name,
            keep,
            force,
            remote,
        } => {
            if !force && !confirm_retire(&name, keep)? {
                return Err(CliError::failure("aborted: nothing retired"));
            }
            let (rt, client, mode) = remote.connect()?;
            let retired = rt
                .block_on(client.retire_key(&name, keep))
                .map_err(key_error(&name))?;
            match mode {
                Mode::Terminal { .. } => print_line(&format!(
                    "Key '{name}': {} versions retired, {} retained (current version {})",
                    retired.retired, retired.versions, retired.version
                )),
                Mode::Json | Mode::Plain => print_json(&retired),
            }
        }
        Command::Ls {
            pattern,
            deleted: false,
            remote,
        } => {
            let (rt, client, mode) = remote.connect()?;
            let names = rt.block_on(client.list_keys(&pattern)).map_err(api_error)?;
            print_names("Key", &names, mode)
        }
        Command::Ls {
            pattern,
            deleted: true,
            remote,
        } => {
            let (rt, client, mode) = remote.connect()?;
            let keys = rt
                .block_on(client.list_deleted_keys(&pattern))
                .map_err(api_error)?;
            print_deleted(&keys, mode)
        }
        Command::Restore { name, remote } => {
            let (rt, client, mode) = remote.connect()?;
            rt.block_on(client.restore_key(&name))
                .map_err(|e| match e {
                    kes_client::Error::KeyNotFound => CliError::failure(format!(
                        "key '{name}' is not pending deletion (never deleted, or already purged)"
                    )),
                    kes_client::Error::KeyExists => {
                        CliError::failure(format!("key '{name}' exists: it is not deleted"))
                    }
                    other => api_error(other),
                })?;
            match mode {
                Mode::Terminal { .. } => print_line(&format!("Key '{name}' restored")),
                Mode::Json | Mode::Plain => print_json(&serde_json::json!({ "restored": name })),
            }
        }
        Command::Rm { names, remote } => {
            let (rt, client, _) = remote.connect()?;
            rt.block_on(for_each_name(&names, "failed to delete key", |name| {
                let client = client.clone();
                async move { client.delete_key(&name).await }
            }))
        }
        Command::Encrypt {
            name,
            message,
            remote,
        } => {
            let message = Zeroizing::new(message);
            let (rt, client, mode) = remote.connect()?;
            let sealed = rt
                .block_on(client.encrypt_with(&name, message.as_bytes(), &[], None))
                .map_err(key_error(&name))?;
            let ciphertext = B64.encode(sealed.ciphertext);
            let version = version_text(sealed.version);
            match mode {
                Mode::Terminal { .. } => match sealed.version {
                    Some(v) => print_line(&format!("ciphertext: {ciphertext}\nversion   : {v}")),
                    None => print_line(&format!("ciphertext: {ciphertext}")),
                },
                Mode::Json | Mode::Plain => {
                    print_json(&serde_json::json!({ "ciphertext": ciphertext, "version": version }))
                }
            }
        }
        Command::Decrypt {
            name,
            ciphertext,
            context,
            remote,
        } => {
            let ciphertext = B64
                .decode(ciphertext.trim())
                .map_err(|_| CliError::usage("invalid ciphertext: not base64"))?;
            let context = decode_context(context.as_deref())?;
            let (rt, client, mode) = remote.connect()?;
            let plaintext = rt
                .block_on(client.decrypt(&name, &ciphertext, &context))
                .map_err(key_error(&name))?;
            let plaintext = Zeroizing::new(B64.encode(&plaintext));
            match mode {
                Mode::Terminal { .. } => print_secret_line(&["plaintext: ", &plaintext]),
                Mode::Json | Mode::Plain => {
                    print_secret_line(&["{\"plaintext\":\"", &plaintext, "\"}"])
                }
            }
        }
        Command::Dek {
            name,
            context,
            remote,
        } => {
            let context = decode_context(context.as_deref())?;
            let (rt, client, mode) = remote.connect()?;
            let dek = rt
                .block_on(client.generate_key(&name, &context))
                .map_err(key_error(&name))?;
            let plaintext = Zeroizing::new(B64.encode(&dek.plaintext));
            let ciphertext = B64.encode(&dek.ciphertext);
            let version = version_text(dek.version);
            match mode {
                // The version line only for a key that names one, so that
                // the output of a key never rotated stays the Go KES's.
                Mode::Terminal { .. } if dek.version.is_some() => print_secret_line(&[
                    "  plaintext : ",
                    &plaintext,
                    "\n  ciphertext: ",
                    &ciphertext,
                    "\n  version   : ",
                    &version,
                ]),
                Mode::Terminal { .. } => print_secret_line(&[
                    "  plaintext : ",
                    &plaintext,
                    "\n  ciphertext: ",
                    &ciphertext,
                ]),
                Mode::Json | Mode::Plain => print_secret_line(&[
                    "{\"plaintext\":\"",
                    &plaintext,
                    "\",\"ciphertext\":\"",
                    &ciphertext,
                    "\",\"version\":\"",
                    &version,
                    "\"}",
                ]),
            }
        }
    }
}

/// `kes key ls --deleted`: on a terminal a table of name, deletion and
/// purge time; in a pipe one line per key, its fields tab-separated with
/// RFC 3339 times; with `--json` the server's objects.
fn print_deleted(keys: &[kes_client::DeletedKey], mode: Mode) -> CliResult {
    use kes_core::timefmt::format_rfc3339_nano;
    match mode {
        Mode::Json => print_json(keys),
        Mode::Plain => keys.iter().try_for_each(|k| {
            print_line(&format!(
                "{}\t{}\t{}",
                k.name,
                format_rfc3339_nano(k.deleted_at),
                format_rfc3339_nano(k.purge_at)
            ))
        }),
        Mode::Terminal { color } => {
            let width = keys.iter().map(|k| k.name.len()).max().unwrap_or(0).max(3);
            let time_width = "2024-01-12 10:39:20 UTC".len();
            let header = format!("{:<width$}  {:<time_width$}  Purge at", "Key", "Deleted");
            print_line(&paint(&header, BOLD, color))?;
            keys.iter().try_for_each(|k| {
                print_line(&format!(
                    "{:<width$}  {:<time_width$}  {}",
                    k.name,
                    format_time(k.deleted_at),
                    format_time(k.purge_at)
                ))
            })
        }
    }
}

/// A key version as the JSON output writes it: the number, or empty when
/// the server named none (a key never rotated, or a Go KES server).
fn version_text(version: Option<u32>) -> String {
    version.map(|v| v.to_string()).unwrap_or_default()
}

/// An SDK error of a command on one key: `key does not exist` names the
/// key (the server's message does not); other errors as [`api_error`].
fn key_error(name: &str) -> impl Fn(kes_client::Error) -> CliError + '_ {
    move |e| match e {
        kes_client::Error::KeyNotFound => CliError::failure(format!("key '{name}' does not exist")),
        other => api_error(other),
    }
}

/// Asks on the terminal whether to retire; `true` without asking when
/// stdin is not a terminal (scripts, pipes), where nobody could answer.
fn confirm_retire(name: &str, keep: u32) -> Result<bool, CliError> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Ok(true);
    }
    let newest = if keep == 1 {
        "the newest version".to_string()
    } else {
        format!("the {keep} newest versions")
    };
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "Retire every version of key '{name}' but {newest}? What the retired versions \
         sealed can never be decrypted again. [y/N] "
    );
    let _ = err.flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::failure(format!("failed to read the answer: {e}")))?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

fn decode_context(context: Option<&str>) -> Result<Vec<u8>, CliError> {
    match context {
        None => Ok(Vec::new()),
        Some(c) => B64
            .decode(c.trim())
            .map_err(|_| CliError::usage("invalid context: not base64")),
    }
}
