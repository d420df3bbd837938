//! `kes identity info` and `kes identity ls`: what the server knows about
//! identities. (`kes identity new/of` work offline and live elsewhere.)

use super::client::{
    api_error, created_rows, paint, print_line, print_names, print_object, Mode, Remote, BOLD,
};
use super::CliResult;

/// Arguments of `kes identity info`.
#[derive(clap::Args, Debug)]
pub(crate) struct InfoArgs {
    /// The identity; without it, the identity of the caller
    pub identity: Option<String>,
    #[command(flatten)]
    remote: Remote,
}

/// Arguments of `kes identity ls`.
#[derive(clap::Args, Debug)]
pub(crate) struct LsArgs {
    /// List only identities that start with this prefix (`*` for all)
    #[arg(default_value = "*")]
    pub pattern: String,
    #[command(flatten)]
    remote: Remote,
}

/// Runs `kes identity info`.
pub(crate) fn info(args: InfoArgs) -> CliResult {
    let (rt, client, mode) = args.remote.connect()?;
    match args.identity {
        Some(identity) => {
            let info = rt
                .block_on(client.describe_identity(&identity))
                .map_err(api_error)?;
            print_object(mode, &info, || {
                let mut rows = role_rows(&info.identity, info.admin, &info.policy);
                rows.extend(created_rows(info.created_at, &info.created_by));
                rows
            })
        }
        None => {
            let info = rt.block_on(client.self_describe()).map_err(api_error)?;
            print_object(mode, &info, || {
                let mut rows = role_rows(&info.identity, info.admin, &info.policy_name);
                rows.extend(created_rows(info.created_at, &info.created_by));
                if let Some(p) = &info.policy {
                    rows.extend(p.allow.iter().map(|a| ("Allow", a.clone())));
                    rows.extend(p.deny.iter().map(|d| ("Deny", d.clone())));
                }
                rows
            })
        }
    }
}

/// The `Identity`, `Role` and `Policy` rows of an identity.
fn role_rows(identity: &str, admin: bool, policy: &str) -> Vec<(&'static str, String)> {
    let mut rows = vec![("Identity", identity.to_owned())];
    if admin {
        rows.push(("Role", "admin".to_owned()));
    }
    if !policy.is_empty() {
        rows.push(("Policy", policy.to_owned()));
    }
    rows
}

/// Runs `kes identity ls`: on a terminal a table that marks the admin
/// and names each identity's policy; elsewhere one identity per line (a
/// JSON array with `--json`).
pub(crate) fn ls(args: LsArgs) -> CliResult {
    let (rt, client, mode) = args.remote.connect()?;
    let ids = rt
        .block_on(client.list_identities(&args.pattern))
        .map_err(api_error)?;
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
