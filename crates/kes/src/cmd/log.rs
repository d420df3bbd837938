//! `kes log`: follow the server's audit or error log.

use super::client::{api_error, paint, print_line, Mode, Remote, GREEN, RED};
use super::{CliError, CliResult};
use kes_client::{AuditEvent, ErrorEvent, LogStream};

/// Arguments of `kes log`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Follow the audit log (the default)
    #[arg(long, conflicts_with = "error")]
    audit: bool,
    /// Follow the error log
    #[arg(long)]
    error: bool,
    #[command(flatten)]
    remote: Remote,
}

/// Runs `kes log`: prints events as they arrive until the server closes
/// the stream or the user interrupts.
pub(crate) fn run(args: Args) -> CliResult {
    let (rt, client, mode) = args.remote.connect()?;
    rt.block_on(async {
        if args.error {
            let stream = client.error_log().await.map_err(api_error)?;
            follow(stream, mode, |e: &ErrorEvent, _| e.message.clone()).await
        } else {
            let stream = client.audit_log().await.map_err(api_error)?;
            follow(stream, mode, format_audit).await
        }
    })
}

/// Prints each event: on a terminal formatted by `human`, else the JSON
/// line exactly as the server sent it.
async fn follow<T: serde::de::DeserializeOwned>(
    mut stream: LogStream<T>,
    mode: Mode,
    human: impl Fn(&T, bool) -> String,
) -> CliResult {
    while let Some(line) = stream.next_line().await {
        let line = line.map_err(api_error)?;
        match mode {
            Mode::Terminal { color } => match serde_json::from_slice::<T>(&line) {
                Ok(event) => print_line(&human(&event, color))?,
                // An event we cannot decode is still worth showing.
                Err(_) => print_line(&String::from_utf8_lossy(&line))?,
            },
            Mode::Json | Mode::Plain => {
                let line = std::str::from_utf8(&line)
                    .map_err(|_| CliError::failure("invalid log event: not UTF-8"))?;
                print_line(line)?
            }
        }
    }
    Ok(())
}

/// `10:39:20  200  3ecfcdf38fcbe141…  10.1.2.3  /v1/key/create/my-key  2ms`
fn format_audit(e: &AuditEvent, color: bool) -> String {
    let t = e.time.to_offset(time::UtcOffset::UTC);
    let clock = format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second());
    let code = e.response.code.to_string();
    let code = if e.response.code < 300 {
        paint(&code, GREEN, color)
    } else {
        paint(&code, RED, color)
    };
    let identity = match e.request.identity.get(..16) {
        Some(prefix) if e.request.identity.len() > 16 => format!("{prefix}…"),
        _ => e.request.identity.clone(),
    };
    format!(
        "{clock}  {code}  {identity:<17}  {:<15}  {}  {}ms",
        e.request.ip, e.request.path, e.response.time
    )
}
