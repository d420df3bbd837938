//! `kes ls`: list keys, or with `-p` policies, with `-i` identities.

use super::client::{api_error, print_names, Remote};
use super::CliResult;

/// Arguments of `kes ls`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// List only names that start with this prefix (`*` for all)
    #[arg(default_value = "*")]
    prefix: String,
    /// List identities instead of keys
    #[arg(short = 'i', long, conflicts_with = "policy")]
    identity: bool,
    /// List policies instead of keys
    #[arg(short = 'p', long)]
    policy: bool,
    /// KES server endpoint(s), comma-separated [env: MINIO_KES_SERVER, KES_SERVER, MINIO_KMS_KES_ENDPOINT]
    #[arg(short = 's', long, value_name = "HOST:PORT")]
    server: Option<String>,
    /// API key to authenticate with [env: MINIO_KES_API_KEY, KES_API_KEY, MINIO_KMS_KES_API_KEY]
    #[arg(short = 'a', long = "api-key", value_name = "KEY")]
    api_key: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// Runs `kes ls`.
pub(crate) fn run(args: Args) -> CliResult {
    let (rt, client, mode) = args
        .remote
        .connect_to(args.server.as_deref(), args.api_key.as_deref())?;
    let (header, names) = if args.identity {
        (
            "Identity",
            rt.block_on(client.list_identities(&args.prefix)),
        )
    } else if args.policy {
        ("Policy", rt.block_on(client.list_policies(&args.prefix)))
    } else {
        ("Key", rt.block_on(client.list_keys(&args.prefix)))
    };
    let names = names.map_err(api_error)?;
    print_names(header, &names, mode)
}
