//! `kes identity`: create identities (`new`), compute them (`of`, or a bare
//! argument), and print a fresh API key (no arguments). `info` and `ls` ask
//! a server (see `identity_remote`).

use super::{CliError, CliResult};
use clap::Subcommand;
use kes_core::apikey::ApiKey;
use kes_core::certgen::{self, CertificateOptions};
use kes_core::identity::Identity;
use kes_core::pem;
use rustls_pki_types::PrivateKeyDer;
use std::io::{IsTerminal as _, Write as _};
use std::net::IpAddr;
use std::path::Path;
use zeroize::Zeroizing;

/// The environment variable `--encrypt` and encrypted key files take the
/// password from, so that scripts and tests need no terminal.
const PASSWORD_ENV: &str = "KES_IDENTITY_PASSWORD";

/// Arguments of `kes identity`.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// An API key or a PEM file (certificate or Ed25519 private key) whose
    /// identity to print. Without it, a new API key is generated.
    #[arg(value_name = "API_KEY|FILE")]
    target: Option<String>,

    /// Print the result as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    #[command(after_help = examples!("kes identity new client", "kes identity new --key client.key --cert client.crt client", "kes identity new --ip 10.0.0.5 --dns kes.local --key server.key --cert server.crt kes.local", "kes identity new --encrypt --expiry 8760h client    # password from KES_IDENTITY_PASSWORD or asked"))]
    /// Create a new identity: an Ed25519 private key and a certificate
    New(NewArgs),
    #[command(after_help = examples!("kes identity of client.crt", "kes identity of kes:v1:ACQpoGqx3rHHjT938Hfu5hVVQJHZWSqVI2Xp1KlYxFVw", "ADMIN=$(kes identity of admin.crt)"))]
    /// Compute the identity of a certificate or an API key
    Of {
        /// An API key (kes:v1:...) or a PEM certificate file
        #[arg(value_name = "API_KEY|CERT_FILE")]
        target: String,
        /// Print the result as JSON
        #[arg(long)]
        json: bool,
    },
    #[command(after_help = client_help!("kes identity info", "kes identity info 3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22"))]
    /// Describe an identity (asks the server)
    Info(super::identity_remote::InfoArgs),
    #[command(after_help = client_help!("kes identity ls", "kes identity ls 3ecf --json"))]
    /// List identities (asks the server)
    Ls(super::identity_remote::LsArgs),
}

#[derive(clap::Args, Debug)]
struct NewArgs {
    /// Path of the private key file
    #[arg(long, value_name = "PATH", default_value = "private.key")]
    key: String,
    /// Path of the certificate file
    #[arg(long, value_name = "PATH", default_value = "public.crt")]
    cert: String,
    /// Add an IP address as subject alternative name (repeatable)
    #[arg(long, value_name = "IP")]
    ip: Vec<String>,
    /// Add a domain name as subject alternative name (repeatable)
    #[arg(long, value_name = "DOMAIN")]
    dns: Vec<String>,
    /// Duration until the certificate expires, e.g. 720h or 8760h
    #[arg(long, value_name = "DURATION", default_value = "720h")]
    expiry: String,
    /// Encrypt the private key with a password (asked twice on the
    /// terminal, or taken from KES_IDENTITY_PASSWORD)
    #[arg(long)]
    encrypt: bool,
    /// Overwrite an existing private key and certificate
    #[arg(short, long)]
    force: bool,
    /// Print the result as JSON
    #[arg(long)]
    json: bool,
    /// The certificate subject (common name); default: the identity
    subject: Option<String>,
}

/// Runs `kes identity`.
pub(crate) fn run(args: Args) -> CliResult {
    match args.command {
        Some(Command::New(new)) => run_new(new),
        Some(Command::Of { target, json }) => run_of(&target, json),
        Some(Command::Info(info)) => super::identity_remote::info(info),
        Some(Command::Ls(ls)) => super::identity_remote::ls(ls),
        None => match args.target {
            Some(target) => run_describe(&target, args.json),
            None => run_generate(args.json),
        },
    }
}

/// One printed field: JSON key, text label, value.
type Field<'a> = (&'static str, &'static str, &'a str);

/// How a result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Aligned `  Label:  value` lines (stdout is a terminal).
    Text,
    /// One JSON object (`--json`, or stdout is not a terminal).
    Json,
}

impl Form {
    fn of(json: bool) -> Form {
        if json || !std::io::stdout().is_terminal() {
            Form::Json
        } else {
            Form::Text
        }
    }
}

/// `s` as a JSON string, in a buffer that is wiped when dropped (values
/// may be private keys).
fn json_string(s: &str) -> Zeroizing<String> {
    Zeroizing::new(serde_json::to_string(s).expect("a string serialises"))
}

/// Prints fields either as aligned `  Label:  value` lines or as one JSON
/// object. `width` is the label column width of the text form.
fn print_fields(fields: &[Field<'_>], width: usize, form: Form) -> CliResult {
    let mut out = Zeroizing::new(String::new());
    if form == Form::Json {
        // Written by hand to keep the fields in their order; keys and
        // values are escaped by serde_json.
        out.push('{');
        for (i, (key, _, value)) in fields.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json_string(key));
            out.push(':');
            out.push_str(&json_string(value));
        }
        out.push_str("}\n");
    } else {
        for (_, label, value) in fields {
            let label = format!("{label}:");
            out.push_str(&format!("  {label:<width$}{value}\n"));
        }
    }
    write_stdout(out.as_bytes())
}

fn write_stdout(bytes: &[u8]) -> CliResult {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(err) => Err(CliError::failure(format!("failed to write output: {err}"))),
    }
}

/// Prints an identity as `kes identity of` does: `  Identity:  <hex>` on
/// a terminal, `{"identity":"<hex>"}` with `--json`, and in a pipe only the
/// hex identity and a newline, like the Go KES, so that
/// `$(kes identity of client.crt)` is the identity.
fn print_identity(identity: &Identity, json: bool) -> CliResult {
    if json {
        print_fields(
            &[("identity", "Identity", identity.as_str())],
            11,
            Form::Json,
        )
    } else if std::io::stdout().is_terminal() {
        print_fields(
            &[("identity", "Identity", identity.as_str())],
            11,
            Form::Text,
        )
    } else {
        write_stdout(format!("{identity}\n").as_bytes())
    }
}

fn run_generate(json: bool) -> CliResult {
    let key = ApiKey::generate();
    let api_key = key.to_kes_string();
    let identity = key.identity();
    print_fields(
        &[
            ("api_key", "API Key", &api_key),
            ("identity", "Identity", identity.as_str()),
        ],
        11,
        Form::of(json),
    )
}

fn run_of(target: &str, json: bool) -> CliResult {
    let identity = if target.starts_with("kes:v1:") {
        ApiKey::parse(target)
            .map_err(|e| {
                CliError::usage(format!(
                    "invalid API key: {}",
                    super::client::api_key_error(&e)
                ))
            })?
            .identity()
    } else {
        certificate_identity(target)?
    };
    print_identity(&identity, json)
}

fn certificate_identity(path: &str) -> Result<Identity, CliError> {
    let data = read_file(path)?;
    // Raw DER certificates (`openssl x509 -outform DER`) are accepted too.
    if let Ok(identity) = Identity::from_certificate_der(&data) {
        return Ok(identity);
    }
    let certificates = pem::parse_certificates(&data).map_err(|err| {
        CliError::failure(format!("failed to parse certificate in '{path}': {err}"))
    })?;
    Identity::from_certificate_der(&certificates[0])
        .map_err(|err| CliError::failure(format!("failed to parse certificate in '{path}': {err}")))
}

fn read_file(path: &str) -> Result<Zeroizing<Vec<u8>>, CliError> {
    std::fs::read(path).map(Zeroizing::new).map_err(|err| {
        CliError::failure(format!(
            "failed to read '{path}': {}",
            super::client::io_reason(&err)
        ))
    })
}

/// `kes identity <api-key|file>`: the identity of an API key, a certificate
/// or an Ed25519 private key (for which the API key is printed, too).
fn run_describe(target: &str, json: bool) -> CliResult {
    if !Path::new(target).exists() {
        // The argument may be a mistyped secret: never echo it.
        let key = ApiKey::parse(target).map_err(|err| {
            CliError::usage(format!(
                "argument is neither an existing file nor an API key: {}",
                super::client::api_key_error(&err)
            ))
        })?;
        return print_identity(&key.identity(), json);
    }

    let data = read_file(target)?;
    let has_certificate =
        Identity::from_certificate_der(&data).is_ok() || pem::parse_certificates(&data).is_ok();
    if has_certificate {
        let identity = certificate_identity(target)?;
        return print_identity(&identity, json);
    }

    let key = match pem::parse_private_key(&data, None) {
        Err(pem::PemError::PasswordRequired) => {
            let password = read_password(false)?;
            pem::parse_private_key(&data, Some(&password))
        }
        other => other,
    }
    .map_err(|err| CliError::failure(format!("failed to parse '{target}': {err}")))?;
    let PrivateKeyDer::Pkcs8(pkcs8) = &key else {
        return Err(CliError::failure(format!(
            "'{target}' is not an Ed25519 private key or a certificate"
        )));
    };
    let api_key = ApiKey::from_pkcs8_der(pkcs8.secret_pkcs8_der()).map_err(|_| {
        CliError::failure(format!(
            "'{target}' is not an Ed25519 private key or a certificate"
        ))
    })?;
    let kes_string = api_key.to_kes_string();
    let identity = api_key.identity();
    print_fields(
        &[
            ("api_key", "API Key", &kes_string),
            ("identity", "Identity", identity.as_str()),
        ],
        11,
        Form::of(json),
    )
}

fn run_new(args: NewArgs) -> CliResult {
    let validity = kes_core::duration::parse_positive_duration(&args.expiry).map_err(|_| {
        CliError::usage(format!(
            "invalid --expiry '{}': expected a positive duration like 720h",
            args.expiry
        ))
    })?;
    let mut ip_addresses = Vec::new();
    // `--ip ""` appears in the KES tutorials; an empty value adds nothing.
    for ip in args.ip.iter().filter(|ip| !ip.trim().is_empty()) {
        let ip: IpAddr = ip
            .trim()
            .parse()
            .map_err(|_| CliError::usage(format!("invalid --ip '{ip}': not an IP address")))?;
        ip_addresses.push(ip);
    }
    let mut dns_names: Vec<String> = args
        .dns
        .iter()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .collect();
    // The tutorials use the result of `kes identity new --ip "" localhost`
    // as the server certificate, and a server certificate needs a SAN: a
    // subject that is a host name or an IP address becomes the SAN when no
    // other SAN was asked for.
    if ip_addresses.is_empty() && dns_names.is_empty() {
        if let Some(subject) = &args.subject {
            if let Ok(ip) = subject.parse::<IpAddr>() {
                ip_addresses.push(ip);
            } else if is_host_name(subject) {
                dns_names.push(subject.clone());
            }
        }
    }
    if args.key == args.cert {
        return Err(CliError::usage(
            "the private key and the certificate must be different files",
        ));
    }

    if !args.force {
        if Path::new(&args.key).exists() {
            return Err(CliError::failure(
                "private key already exists. Use --force to overwrite it",
            ));
        }
        if Path::new(&args.cert).exists() {
            return Err(CliError::failure(
                "certificate already exists. Use --force to overwrite it",
            ));
        }
    }

    let options = CertificateOptions {
        subject: args.subject.clone(),
        ip_addresses,
        dns_names,
        validity,
        server_auth: true,
    };
    let new = certgen::new_identity(&options).map_err(CliError::failure)?;
    let key_pem = if args.encrypt {
        let password = read_password(true)?;
        pem::encrypt_private_key(&new.certificate.private_key_der, &password)
            .map_err(|err| CliError::failure(format!("failed to encrypt private key: {err}")))?
    } else {
        new.certificate.private_key_pem()
    };

    write_file(&args.key, key_pem.as_bytes(), 0o600, args.force)
        .map_err(|err| CliError::failure(format!("failed to create private key: {err}")))?;
    if let Err(err) = write_file(
        &args.cert,
        new.certificate.certificate_pem().as_bytes(),
        0o644,
        args.force,
    ) {
        // A key without its certificate is useless and a secret lying around.
        let _ = std::fs::remove_file(&args.key);
        return Err(CliError::failure(format!(
            "failed to create certificate: {err}"
        )));
    }

    print_fields(
        &[
            ("private_key", "Private key", &args.key),
            ("certificate", "Certificate", &args.cert),
            ("identity", "Identity", new.identity.as_str()),
        ],
        14,
        Form::of(args.json),
    )
}

/// Reports whether `name` is a plausible DNS host name (letters, digits,
/// `-` and `.`-separated labels of at most 63 characters).
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Writes a new file with `mode`. Without `overwrite` the file must not
/// exist (checked atomically); with it, an existing file is truncated and
/// its mode reset, so an old world-readable key file does not stay so.
fn write_file(path: &str, contents: &[u8], mode: u32, overwrite: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(mode);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(contents)?;
    file.sync_all()
}

/// The password from `KES_IDENTITY_PASSWORD`, else from the terminal
/// (twice when `confirm`). Empty passwords are refused.
fn read_password(confirm: bool) -> Result<Zeroizing<Vec<u8>>, CliError> {
    if let Some(password) = std::env::var_os(PASSWORD_ENV) {
        let password = Zeroizing::new(password.into_encoded_bytes());
        if password.is_empty() {
            return Err(CliError::usage(format!("{PASSWORD_ENV} is set but empty")));
        }
        return Ok(password);
    }
    // rpassword reads from the controlling terminal (/dev/tty); without
    // one (cron, CI, `setsid`) it fails with a bare `os error 6`.
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .is_err()
    {
        return Err(CliError::usage(format!(
            "no terminal to read a password from: set {PASSWORD_ENV}"
        )));
    }
    let prompt = |text: &str| {
        rpassword::prompt_password(text)
            .map(|p| Zeroizing::new(p.into_bytes()))
            .map_err(|err| CliError::failure(format!("failed to read password: {err}")))
    };
    let password = prompt("Enter password for private key: ")?;
    if password.is_empty() {
        return Err(CliError::usage("password must not be empty"));
    }
    if confirm {
        let again = prompt("Confirm password for private key: ")?;
        if *again != *password {
            return Err(CliError::failure("passwords don't match"));
        }
    }
    Ok(password)
}
