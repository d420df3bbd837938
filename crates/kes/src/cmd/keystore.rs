//! `kes keystore reseal`: rewraps the data key of a sealed fs store under
//! another HSM key (docs/hsm.md, "Rotating the HSM key").
//!
//! Only the wrapped data key changes; the entries stay as they are. The
//! new seal file is written to a temporary file and renamed over the old
//! one, so a crash at any point leaves a store that opens under the old or
//! the new key label.

use super::{CliError, CliResult};
use kes_config::KeyStoreConfig;
use std::path::PathBuf;

/// Arguments of `kes keystore`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Rewrap a sealed fs store's data key under another HSM key
    Reseal(ResealArgs),
}

#[derive(clap::Args, Debug)]
struct ResealArgs {
    /// Config file of the sealed fs store (its `seal` names the current key)
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Label of the new AES-256 key, in the same token
    #[arg(long, value_name = "LABEL")]
    to_key: String,
}

pub(crate) fn run(args: Args) -> CliResult {
    match args.command {
        Command::Reseal(args) => reseal(args),
    }
}

fn reseal(args: ResealArgs) -> CliResult {
    let path = &args.config;
    let (keystore, warnings) = kes_config::load_keystore(path)
        .map_err(|e| CliError::failure(format!("'{}': {e}", path.display())))?;
    for warning in warnings {
        eprintln!("Warning: '{}': {warning}", path.display());
    }
    let KeyStoreConfig::Fs(fs) = keystore else {
        return Err(CliError::failure(format!(
            "'{}' names no fs key store: only a sealed fs store can be resealed",
            path.display()
        )));
    };
    let Some(seal) = fs.seal else {
        return Err(CliError::failure(format!(
            "'{}' has no keystore.fs.seal: the store is not sealed",
            path.display()
        )));
    };
    reseal_with(&fs.path, seal, &args.to_key)
}

#[cfg(feature = "hsm")]
fn reseal_with(
    dir: &std::path::Path,
    seal: kes_keystore::config::SealConfig,
    to_key: &str,
) -> CliResult {
    let kes_keystore::config::SealConfig::Pkcs11(from) = seal;
    let to = kes_keystore::config::Pkcs11SealConfig {
        key: to_key.to_string(),
        ..from.clone()
    };
    kes_seal::pkcs11::reseal(dir, &from, &to).map_err(CliError::failure)?;
    println!(
        "Resealed '{}': its data key is wrapped by the HSM key '{to_key}' now (was '{}').\n\
         Set keystore.fs.seal.pkcs11.key to '{to_key}' in every server's config.",
        dir.display(),
        from.key
    );
    Ok(())
}

#[cfg(not(feature = "hsm"))]
fn reseal_with(
    _dir: &std::path::Path,
    _seal: kes_keystore::config::SealConfig,
    _to_key: &str,
) -> CliResult {
    Err(CliError::failure(
        "keystore.fs.seal is not available: this kes was built without the cargo feature 'hsm'",
    ))
}
