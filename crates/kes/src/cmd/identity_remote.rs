//! `kes identity info` and `kes identity ls`: what the server knows about
//! identities. (`kes identity new/of` work offline and live elsewhere.)

use super::client::{
    api_error, format_time, paint, print_json, print_line, print_names, print_rows, runtime, Conn,
    Mode, OutputArgs, BOLD,
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

/// Runs `kes identity ls`: on a terminal a table that marks the admin
/// and names each identity's policy; elsewhere one identity per line (a
/// JSON array with `--json`).
pub fn ls(args: LsArgs) -> CliResult {
    let rt = runtime()?;
    let client = args.conn.client(None, None)?;
    let ids = rt
        .block_on(client.list_identities(&args.pattern))
        .map_err(api_error)?;
    let mode = args.out.mode();
    let Mode::Terminal { color } = mode else {
        return print_names("Identity", &ids, mode);
    };
    // The list holds names only: ask for each identity's role, a few at a
    // time.
    let roles: Vec<String> = rt.block_on(async {
        let mut roles = vec![String::new(); ids.len()];
        let mut tasks = tokio::task::JoinSet::new();
        for (i, id) in ids.iter().enumerate() {
            if tasks.len() >= 8 {
                if let Some(Ok((j, role))) = tasks.join_next().await {
                    roles[j] = role;
                }
            }
            let (client, id) = (client.clone(), id.clone());
            tasks.spawn(async move {
                let role = match client.describe_identity(&id).await {
                    Ok(info) if info.admin => "admin".to_owned(),
                    Ok(info) if !info.policy.is_empty() => format!("policy {}", info.policy),
                    Ok(_) => "-".to_owned(),
                    Err(e) => format!("? ({e})"),
                };
                (i, role)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            if let Ok((j, role)) = joined {
                roles[j] = role;
            }
        }
        roles
    });
    print_line(&paint(&format!("{:<64}  Role", "Identity"), BOLD, color))?;
    for (id, role) in ids.iter().zip(&roles) {
        print_line(&format!("{id:<64}  {role}"))?;
    }
    Ok(())
}
