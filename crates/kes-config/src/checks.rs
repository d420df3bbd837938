//! Start-up checks for mistakes a config can hold and still start: an
//! admin identity no client can have, certificates that expire soon, an
//! AWS store with nowhere to get credentials from. None of them stops the
//! server (the Go KES accepts them all); each becomes a warning that names
//! the problem, so it is seen on the first day rather than at the first
//! failed request.

use crate::{KeyStoreConfig, ServerConfig};
use kes_core::Identity;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// How far ahead a certificate's end is worth a warning: 30 days, or the
/// last third of a shorter certificate's lifetime (`kes identity new`
/// makes 30-day certificates by default; a warning on their first day
/// would only teach to ignore it).
pub const CERTIFICATE_WARNING_DAYS: i64 = 30;

/// Values of `admin.identity` that say "no admin" on purpose (compared
/// case-insensitively): they can never be an identity, and are what the
/// docs and the Go KES's examples use.
const DISABLED_WORDS: &[&str] = &["disabled", "disable", "none", "off", "no", "false", "-"];

/// What is wrong with an `admin.identity` that is neither an identity nor
/// a word for "no admin"; `None` when it is one of those. The value is not
/// repeated (it may be a secret pasted into the wrong field).
pub fn admin_identity_problem(admin: &Identity) -> Option<String> {
    let value = admin.as_str();
    if admin.is_hash()
        || DISABLED_WORDS
            .iter()
            .any(|w| value.trim().eq_ignore_ascii_case(w))
    {
        return None;
    }
    let hex = value.bytes().all(|b| b.is_ascii_hexdigit());
    let problem = if value.starts_with("kes:v1:") {
        "is an API key, not an identity (`kes identity of <key>` prints its identity)".to_string()
    } else if hex && value.len() == 64 {
        "has upper-case letters: identities are lower-case hex (as `kes identity of` prints them)"
            .to_string()
    } else if hex {
        format!(
            "is {} hex characters long: an identity has 64 (`kes identity of <cert>` prints it)",
            value.len()
        )
    } else {
        "is neither an identity (64 lower-case hex characters) nor a word like 'disabled'"
            .to_string()
    };
    Some(format!(
        "admin.identity {problem}; no client can match it, so the server runs without an admin"
    ))
}

/// Warnings about what the config points at rather than what it says:
/// certificates (`tls.cert`, `tls.ca`) expired or ending within
/// [`CERTIFICATE_WARNING_DAYS`], and an AWS store with no credentials.
/// Read at start; a reload can log them the same way with one call.
pub fn environment_warnings(config: &ServerConfig) -> Vec<String> {
    let now = OffsetDateTime::now_utc();
    let mut warnings = Vec::new();
    warnings.extend(certificate_warnings("tls.cert", &config.tls.cert, now));
    if let Some(ca) = &config.tls.ca {
        for file in ca_files(ca) {
            warnings.extend(certificate_warnings("tls.ca", &file, now));
        }
    }
    for net in &config.proxy_protocol {
        // Whoever can connect from a listed source names any client
        // address it likes: a network this wide lists the clients too.
        let wide = if net.addr.is_ipv4() { 8 } else { 32 };
        if net.prefix < wide {
            warnings.push(format!(
                "proxy_protocol lists {net}: every client in it may claim any address in the logs and limits; list only the load balancers"
            ));
        }
    }
    if let KeyStoreConfig::Aws(aws) = &config.keystore {
        let static_credentials = !(aws.access_key.is_empty()
            && aws.secret_key.is_empty()
            && aws.session_token.is_empty());
        if !static_credentials {
            let home = std::env::var_os("HOME").map(PathBuf::from);
            warnings.extend(aws_credentials_warning(
                |name| std::env::var(name).ok(),
                home.as_deref(),
            ));
        }
    }
    warnings
}

/// The CA files a `tls.ca`-like setting names: the file itself, or every
/// file in the directory it names, sorted (the Go KES, and MinIO's
/// `MINIO_KMS_KES_CAPATH`, allow either). Whether they can be read is left
/// to the caller.
pub fn ca_files(ca: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(ca) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            files
        }
        Err(_) => vec![ca.to_path_buf()],
    }
}

/// One warning per certificate in a PEM file that has expired or ends
/// within [`CERTIFICATE_WARNING_DAYS`] of `now` (a third of its lifetime
/// if that is shorter). A file that cannot be read
/// or parsed gives none: loading the TLS config reports those errors.
pub fn certificate_warnings(field: &str, path: &Path, now: OffsetDateTime) -> Vec<String> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes).flatten() {
        if pem.label != "CERTIFICATE" {
            continue;
        }
        let Ok(cert) = pem.parse_x509() else { continue };
        let Ok(end) = OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp())
        else {
            continue;
        };
        let subject = cert.subject().to_string();
        let subject = if subject.is_empty() {
            String::new()
        } else {
            format!(" ({subject})")
        };
        let date = end.date();
        let left = (end - now).whole_days();
        let lifetime =
            cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
        let window = CERTIFICATE_WARNING_DAYS.min(lifetime / 86_400 / 3);
        if end <= now {
            warnings.push(format!(
                "{field} certificate '{}'{subject} expired on {date}",
                path.display()
            ));
        } else if left < window {
            warnings.push(format!(
                "{field} certificate '{}'{subject} expires on {date} (in {left} days)",
                path.display()
            ));
        }
    }
    warnings
}

/// The variables through which the AWS SDK's default chain finds
/// credentials before it falls back to the instance metadata service.
const AWS_CREDENTIAL_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

/// A warning when neither the environment (`env` looks a variable up) nor
/// a profile file (under `home`, or where `AWS_SHARED_CREDENTIALS_FILE`
/// and `AWS_CONFIG_FILE` point) can give the AWS store credentials: only
/// the EC2 instance metadata service is left, and off EC2 the first key
/// operation fails with nothing but `failed to create key` for the client.
pub fn aws_credentials_warning(
    env: impl Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Option<String> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if AWS_CREDENTIAL_VARIABLES.iter().any(|v| set(v)) {
        return None;
    }
    let file = |var: &str, default: &str| {
        env(var)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| home.map(|h| h.join(default)))
    };
    let profiles = [
        file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
        file("AWS_CONFIG_FILE", ".aws/config"),
    ];
    if profiles.iter().flatten().any(|p| p.is_file()) {
        return None;
    }
    let imds_off = env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let left = if imds_off {
        "and the instance metadata service is disabled (AWS_EC2_METADATA_DISABLED): every key operation will fail"
    } else {
        "only the EC2 instance metadata service is left; off EC2 every key operation will fail"
    };
    Some(format!(
        "keystore.aws.secretsmanager: no credentials in the config (credentials.accesskey), the environment (AWS_ACCESS_KEY_ID) or a profile (~/.aws/credentials): {left}"
    ))
}
