//! `kes server`: starts a KES server (kes-server does the work).

use super::{CliError, CliResult};
use std::path::PathBuf;

/// Arguments of `kes server`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The network interface the KES server will listen on
    #[arg(long, value_name = "IP:PORT")]
    addr: Option<String>,

    /// Path to the KES config file
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Start the KES server in development mode: in-memory keys, an
    /// ephemeral certificate and a fresh admin API key
    #[arg(long)]
    dev: bool,

    /// Lock all memory so that keys are never swapped to disk
    #[arg(long)]
    mlock: bool,

    /// Deprecated: use 'tls.auth' in the config file
    #[arg(long, value_name = "on|off", hide = true)]
    auth: Option<String>,

    /// Deprecated: use 'tls.key' in the config file
    #[arg(long, value_name = "PATH", hide = true)]
    key: Option<PathBuf>,

    /// Deprecated: use 'tls.cert' in the config file
    #[arg(long, value_name = "PATH", hide = true)]
    cert: Option<PathBuf>,
}

/// Runs `kes server`.
pub(crate) fn run(args: Args) -> CliResult {
    if args.auth.is_some() {
        eprintln!(
            "Warning: '--auth' is deprecated and ignored. Set 'tls.auth' in the config file instead."
        );
    }
    if args.key.is_some() || args.cert.is_some() {
        eprintln!(
            "Warning: '--key' and '--cert' are deprecated and ignored. Set 'tls.key' and 'tls.cert' in the config file instead."
        );
    }
    kes_server::run(kes_server::Options {
        addr: args.addr,
        config: args.config,
        dev: args.dev,
        mlock: args.mlock,
    })
    .map_err(|err| {
        if err.is_usage() {
            CliError::usage(err)
        } else {
            CliError::failure(err)
        }
    })
}
