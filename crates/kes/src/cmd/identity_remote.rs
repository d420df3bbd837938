//! `kes identity info` and `kes identity ls`: what the server knows about
//! identities. (`kes identity new/of` work offline and live elsewhere.)

use super::client::{
    api_error, format_time, print_json, print_names, print_rows, runtime, Conn, Mode, OutputArgs,
};
use super::CliResult;

/// Arguments of `kes identity info`.
#[derive(clap::Args, Debug)]
pub struct InfoArgs {
    /// The identity; without it, the identity of the caller
    pub identity: Option<String>,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    conn: Conn,
}

/// Arguments of `kes identity ls`.
#[derive(clap::Args, Debug)]
pub struct LsArgs {
    /// List only identities that start with this prefix (`*` for all)
    #[arg(default_value = "*")]
    pub pattern: String,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    conn: Conn,
}

/// Runs `kes identity info`.
pub fn info(args: InfoArgs) -> CliResult {
    let rt = runtime()?;
    let client = args.conn.client(None, None)?;
    let mode = args.out.mode();
    match args.identity {
        Some(identity) => {
            let info = rt
                .block_on(client.describe_identity(&identity))
                .map_err(api_error)?;
            match mode {
                Mode::Terminal { color } => {
                    let mut rows = vec![("Identity", info.identity.clone())];
                    if info.admin {
                        rows.push(("Role", "admin".to_owned()));
                    }
                    if !info.policy.is_empty() {
                        rows.push(("Policy", info.policy.clone()));
                    }
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
        None => {
            let info = rt.block_on(client.self_describe()).map_err(api_error)?;
            match mode {
                Mode::Terminal { color } => {
                    let mut rows = vec![("Identity", info.identity.clone())];
                    if info.admin {
                        rows.push(("Role", "admin".to_owned()));
                    }
                    if !info.policy_name.is_empty() {
                        rows.push(("Policy", info.policy_name.clone()));
                    }
                    if let Some(t) = info.created_at {
                        rows.push(("Date", format_time(t)));
                    }
                    if !info.created_by.is_empty() {
                        rows.push(("Owner", info.created_by.clone()));
                    }
                    if let Some(p) = &info.policy {
                        for a in &p.allow {
                            rows.push(("Allow", a.clone()));
                        }
                        for d in &p.deny {
                            rows.push(("Deny", d.clone()));
                        }
                    }
                    print_rows(&rows, color)
                }
                Mode::Json | Mode::Plain => print_json(&info),
            }
        }
    }
}

/// Runs `kes identity ls`.
pub fn ls(args: LsArgs) -> CliResult {
    let rt = runtime()?;
    let client = args.conn.client(None, None)?;
    let ids = rt
        .block_on(client.list_identities(&args.pattern))
        .map_err(api_error)?;
    print_names("Identity", &ids, args.out.mode())
}
