//! Load generator for KES-compatible servers (and, for comparison, Vault or
//! OpenBao transit): requests/s, latency percentiles, and the server's CPU
//! time and memory.

// The argument docs are clap's `--help` text, where `<prefix>` is meant
// literally, not as HTML.
#![allow(rustdoc::invalid_html_tags)]

mod bare;
mod client;
mod procstat;
mod run;
mod workload;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use workload::{SealWith, Target, Workload};

#[derive(Parser, Debug)]
#[command(
    name = "kes-bench",
    version,
    about = "Load generator for KES-compatible servers",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve a fixed generate-sized reply over the same TLS and HTTP stack
    /// as KES (the floor for comparisons).
    BareServer {
        /// Address to listen on; port 0 picks a free port (printed).
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: String,
    },
    /// GET one path and print the body (e.g. '/v1/metrics?extended=true').
    Get {
        #[command(flatten)]
        conn: ConnArgs,
        /// The path, with its query.
        path: String,
    },
    /// Write KES-encoded keys into an fs key-store directory.
    WriteKeys {
        /// The key store's directory (keystore.fs.path).
        #[arg(long)]
        dir: PathBuf,
        /// How many keys.
        #[arg(long)]
        count: u64,
        /// Names are <prefix>0, <prefix>1, …
        #[arg(long, default_value = "kes-bench-")]
        prefix: String,
        /// Start numbering here.
        #[arg(long, default_value_t = 0)]
        start: u64,
    },
}

#[derive(Args, Debug)]
struct ConnArgs {
    /// The server, host:port
    #[arg(long, value_name = "HOST:PORT")]
    server: Option<String>,
    /// Kind of server
    #[arg(long, value_enum, default_value = "kes")]
    target: Target,
    /// Authenticate with this KES API key (kes:v1:…)
    #[arg(long, env = "KES_API_KEY", hide_env_values = true, conflicts_with_all = ["cert", "key"])]
    api_key: Option<String>,
    /// Client certificate (PEM)
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// Client private key (PEM)
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// Password of an encrypted client private key
    #[arg(long, env = "KES_CLIENT_KEY_PASSWORD", hide_env_values = true)]
    key_password: Option<String>,
    /// Verify the server certificate against this CA (PEM)
    #[arg(long, conflicts_with = "insecure")]
    ca: Option<PathBuf>,
    /// Accept any server certificate
    #[arg(short = 'k', long)]
    insecure: bool,
    /// Use HTTP/2 instead of HTTP/1.1
    #[arg(long)]
    http2: bool,
    /// Vault/OpenBao token ('--target openbao')
    #[arg(long, env = "BAO_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Concurrent connections (one request in flight on each)
    #[arg(short = 'c', long, default_value_t = 32)]
    connections: usize,
    /// Run for this long (e.g. 10s, 500ms, 1m)
    #[arg(short = 'd', long, value_parser = kes_core::duration::parse_positive_duration, conflicts_with = "requests")]
    duration: Option<Duration>,
    /// Run this many requests instead
    #[arg(short = 'n', long)]
    requests: Option<u64>,
    /// What to send
    #[arg(short = 'w', long, value_enum, default_value = "generate")]
    workload: Workload,
    /// The key to use (or the prefix of names for describe/create with --keys)
    #[arg(long = "key-name", default_value = "kes-bench")]
    key_name: String,
    /// describe: cycle over <key-name>0 … <key-name>(N-1)
    #[arg(long)]
    keys: Option<u64>,
    /// Do not create the key first
    #[arg(long)]
    no_create: bool,
    /// Rotate the key this many times (through the API) before the run, so
    /// that it has N+1 versions; needs a new '--key-name'
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        conflicts_with = "no_create"
    )]
    rotate: u32,
    /// decrypt, minio, mixed: seal the data keys to decrypt with the newest
    /// version of the rotated key or with the oldest (generated before the
    /// rotations)
    #[arg(long, value_enum, default_value = "newest", requires = "rotate")]
    seal_with: SealWith,
    /// Open a new connection for every request
    #[arg(long)]
    new_conn: bool,
    /// With --new-conn: no TLS session resumption (full handshakes)
    #[arg(long)]
    no_resume: bool,
    /// Measure this server process's CPU time and memory (/proc)
    #[arg(long)]
    pid: Option<u32>,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
    /// Worker threads of the load generator
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Give up on a request after this long
    #[arg(long, value_parser = kes_core::duration::parse_positive_duration, default_value = "30s")]
    timeout: Duration,
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read '{}': {e}", path.display()))
}

fn connector(conn: &ConnArgs, resume: bool) -> Result<client::Connector, String> {
    let server = conn
        .server
        .as_deref()
        .ok_or("no server given: use '--server host:port'")?;
    client::parse_address(server)?;
    let client_identity = if let Some(key) = &conn.api_key {
        let key =
            kes_core::ApiKey::parse(key.trim()).map_err(|e| format!("invalid API key: {e}"))?;
        let cert = key
            .client_certificate()
            .map_err(|e| format!("cannot create a certificate for the API key: {e}"))?;
        Some((vec![cert.certificate()], cert.private_key()))
    } else if let (Some(cert), Some(key)) = (&conn.cert, &conn.key) {
        let certs = kes_core::pem::parse_certificates(&read_file(cert)?)
            .map_err(|e| format!("invalid certificate '{}': {e}", cert.display()))?;
        let key_pem = read_file(key)?;
        let private_key = kes_core::pem::parse_private_key(
            &key_pem,
            conn.key_password.as_deref().map(str::as_bytes),
        )
        .map_err(|e| format!("invalid private key '{}': {e}", key.display()))?;
        Some((certs, private_key))
    } else if conn.target == Target::Kes {
        return Err(
            "KES needs a client certificate: use '--api-key' or '--cert' and '--key'".into(),
        );
    } else {
        None
    };
    let ca = match &conn.ca {
        Some(path) => Some(
            kes_core::pem::parse_certificates(&read_file(path)?)
                .map_err(|e| format!("invalid CA certificate '{}': {e}", path.display()))?,
        ),
        None => None,
    };
    let config = client::client_config(client::TlsOptions {
        client_identity,
        ca,
        insecure: conn.insecure,
        http2: conn.http2,
        resume,
    })?;
    client::Connector::new(server, config, conn.http2)
}

fn runtime(threads: usize) -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start runtime: {e}"))
}

fn bench(args: RunArgs) -> Result<bool, String> {
    let resume = !args.no_resume;
    let connector = connector(&args.conn, resume)?;
    let stop = match (args.duration, args.requests) {
        (_, Some(0)) => return Err("'-n' must be at least 1".into()),
        (_, Some(n)) => run::Stop::Requests(n),
        (Some(d), None) if d.is_zero() => return Err("'-d' must be longer than 0s".into()),
        (Some(d), None) => run::Stop::After(d),
        (None, None) => run::Stop::After(Duration::from_secs(10)),
    };
    let rt = runtime(args.threads)?;
    let report = rt.block_on(async {
        let mut plan = workload::Plan::new(
            &connector,
            args.conn.target,
            args.workload,
            &args.key_name,
            args.keys,
            args.conn.token.as_deref(),
        )?;
        plan.prepare(
            &connector,
            !args.no_create,
            workload::Rotation {
                count: args.rotate,
                seal_with: args.seal_with,
            },
        )
        .await?;
        run::run(
            plan,
            connector,
            run::RunOptions {
                connections: args.connections,
                stop,
                new_conn: args.new_conn,
                resume,
                http2: args.conn.http2,
                pid: args.pid,
                timeout: args.timeout,
            },
        )
        .await
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", run::render(&report));
    }
    Ok(report.errors == 0)
}

fn get(conn: ConnArgs, path: &str) -> Result<bool, String> {
    if !path.starts_with('/') {
        return Err(format!("invalid path '{path}': must start with '/'"));
    }
    let connector = connector(&conn, true)?;
    let rt = runtime(1)?;
    rt.block_on(async {
        let (mut c, _) = connector.connect().await?;
        let mut headers = Vec::new();
        if let Some(token) = &conn.token {
            let mut v = http::HeaderValue::from_str(token)
                .map_err(|_| "invalid token: not a valid HTTP header value".to_string())?;
            v.set_sensitive(true);
            headers.push((http::HeaderName::from_static("x-vault-token"), v));
        }
        let req = connector.request(
            &http::Method::GET,
            connector.uri(path)?,
            &headers,
            bytes::Bytes::new(),
        );
        let reply = c.send(req).await?;
        print!("{}", String::from_utf8_lossy(&reply.body));
        if !reply.status.is_success() {
            return Err(format!("server answered {}", reply.status));
        }
        Ok(true)
    })
}

fn write_keys(dir: &std::path::Path, count: u64, prefix: &str, start: u64) -> Result<bool, String> {
    if !dir.is_dir() {
        return Err(format!("'{}' is not a directory", dir.display()));
    }
    let algorithm = kes_core::KeyAlgorithm::default_for_cpu();
    for i in start..start + count {
        let name = format!("{prefix}{i}");
        if !kes_core::name::valid_name(&name) {
            return Err(format!("invalid key name '{name}'"));
        }
        let encoded = kes_core::KeyVersion::generate(algorithm, "kes-bench")
            .encode()
            .map_err(|e| format!("cannot encode key '{name}': {e}"))?;
        std::fs::write(dir.join(&name), encoded.as_bytes())
            .map_err(|e| format!("cannot write key '{name}': {e}"))?;
    }
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::BareServer { addr }) => bare::serve(&addr).map(|_| true),
        Some(Command::Get { conn, path }) => get(conn, &path),
        Some(Command::WriteKeys {
            dir,
            count,
            prefix,
            start,
        }) => write_keys(&dir, count, &prefix, start),
        None => bench(cli.run),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        // Errors were reported with the figures.
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}
