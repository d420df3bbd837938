//! `kes key`: create, import, inspect, list, delete and use master keys.

use super::client::{
    api_error, for_each_name, format_time, print_json, print_line, print_names, print_rows,
    print_secret_line, runtime, Conn, Mode, OutputArgs,
};
use super::{CliError, CliResult};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use clap::Subcommand;
use zeroize::Zeroizing;

/// Arguments of `kes key`.
#[derive(clap::Args, Debug)]
pub struct Args {
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
        // Accepted for uniformity: nothing is printed on success.
        #[command(flatten)]
        _out: OutputArgs,
        #[command(flatten)]
        conn: Conn,
    },
    #[command(after_help = client_help!("kes key import my-key \"$(head -c 32 /dev/urandom | base64)\""))]
    /// Import a master key (AES256)
    Import {
        /// Name of the key
        name: String,
        /// The 32-byte key, base64-encoded
        key: String,
        #[command(flatten)]
        _out: OutputArgs,
        #[command(flatten)]
        conn: Conn,
    },
    #[command(after_help = client_help!("kes key info my-key", "kes key info my-key --json"))]
    /// Print information about a master key
    Info {
        /// Name of the key
        name: String,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        conn: Conn,
    },
    #[command(after_help = client_help!("kes key ls", "kes key ls 'my-*'", "kes key ls --json"))]
    /// List master keys
    Ls {
        /// List only keys whose names start with this prefix (`*` for all)
        #[arg(default_value = "*")]
        pattern: String,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        conn: Conn,
    },
    #[command(after_help = client_help!("kes key rm my-key", "kes key rm my-key-1 my-key-2"))]
    /// Delete master keys
    Rm {
        /// Names of the keys
        #[arg(required = true)]
        names: Vec<String>,
        // Accepted for uniformity: nothing is printed on success.
        #[command(flatten)]
        _out: OutputArgs,
        #[command(flatten)]
        conn: Conn,
    },
    #[command(after_help = client_help!("kes key encrypt my-key 'hello world'"))]
    /// Encrypt a message with a master key
    Encrypt {
        /// Name of the key
        name: String,
        /// The message (its UTF-8 bytes are encrypted)
        message: String,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        conn: Conn,
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
        out: OutputArgs,
        #[command(flatten)]
        conn: Conn,
    },
    #[command(after_help = client_help!("kes key dek my-key", "kes key dek my-key | jq -r .ciphertext"))]
    /// Generate a data encryption key (DEK)
    Dek {
        /// Name of the master key
        name: String,
        /// The context to bind the DEK to, base64-encoded
        context: Option<String>,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        conn: Conn,
    },
}

/// Runs `kes key`.
pub fn run(args: Args) -> CliResult {
    let rt = runtime()?;
    match args.command {
        Command::Create { names, conn, .. } => {
            let client = conn.client(None, None)?;
            rt.block_on(for_each_name(&names, "failed to create key", |name| {
                let client = client.clone();
                async move { client.create_key(&name).await }
            }))
        }
        Command::Import {
            name, key, conn, ..
        } => {
            let key = Zeroizing::new(
                B64.decode(key.trim())
                    .map_err(|_| CliError::usage("invalid key: not base64"))?,
            );
            let client = conn.client(None, None)?;
            rt.block_on(client.import_key(&name, &key, "AES256"))
                .map_err(api_error)
        }
        Command::Info { name, out, conn } => {
            let client = conn.client(None, None)?;
            let info = rt.block_on(client.describe_key(&name)).map_err(api_error)?;
            match out.mode() {
                Mode::Terminal { color } => {
                    let mut rows = vec![("Name", info.name.clone())];
                    rows.push(("Algorithm", info.algorithm.clone()));
                    if let Some(t) = info.created_at {
                        rows.push(("Date", format_time(t)));
                    }
                    if !info.created_by.is_empty() {
                        rows.push(("Owner", info.created_by.clone()));
                    }
                    print_rows(&rows, color)
                }
                Mode::Json | Mode::Plain => print_json(&info),
            }
        }
        Command::Ls { pattern, out, conn } => {
            let client = conn.client(None, None)?;
            let names = rt.block_on(client.list_keys(&pattern)).map_err(api_error)?;
            print_names("Key", &names, out.mode())
        }
        Command::Rm { names, conn, .. } => {
            let client = conn.client(None, None)?;
            rt.block_on(for_each_name(&names, "failed to delete key", |name| {
                let client = client.clone();
                async move { client.delete_key(&name).await }
            }))
        }
        Command::Encrypt {
            name,
            message,
            out,
            conn,
        } => {
            let message = Zeroizing::new(message);
            let client = conn.client(None, None)?;
            let ciphertext = rt
                .block_on(client.encrypt(&name, message.as_bytes(), &[]))
                .map_err(api_error)?;
            let ciphertext = B64.encode(ciphertext);
            match out.mode() {
                Mode::Terminal { .. } => print_line(&format!("ciphertext: {ciphertext}")),
                Mode::Json | Mode::Plain => {
                    print_json(&serde_json::json!({ "ciphertext": ciphertext }))
                }
            }
        }
        Command::Decrypt {
            name,
            ciphertext,
            context,
            out,
            conn,
        } => {
            let ciphertext = B64
                .decode(ciphertext.trim())
                .map_err(|_| CliError::usage("invalid ciphertext: not base64"))?;
            let context = decode_context(context.as_deref())?;
            let client = conn.client(None, None)?;
            let plaintext = rt
                .block_on(client.decrypt(&name, &ciphertext, &context))
                .map_err(api_error)?;
            let plaintext = Zeroizing::new(B64.encode(&plaintext));
            match out.mode() {
                Mode::Terminal { .. } => print_secret_line(&["plaintext: ", &plaintext]),
                Mode::Json | Mode::Plain => {
                    print_secret_line(&["{\"plaintext\":\"", &plaintext, "\"}"])
                }
            }
        }
        Command::Dek {
            name,
            context,
            out,
            conn,
        } => {
            let context = decode_context(context.as_deref())?;
            let client = conn.client(None, None)?;
            let dek = rt
                .block_on(client.generate_key(&name, &context))
                .map_err(api_error)?;
            let plaintext = Zeroizing::new(B64.encode(&dek.plaintext));
            let ciphertext = B64.encode(&dek.ciphertext);
            match out.mode() {
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
                    "\"}",
                ]),
            }
        }
    }
}

fn decode_context(context: Option<&str>) -> Result<Vec<u8>, CliError> {
    match context {
        None => Ok(Vec::new()),
        Some(c) => B64
            .decode(c.trim())
            .map_err(|_| CliError::usage("invalid context: not base64")),
    }
}
