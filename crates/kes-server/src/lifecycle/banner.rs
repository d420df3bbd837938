//! The banner `kes server` prints once it listens: version, key store,
//! endpoints, admin identity and, in dev mode, the admin API key.

use super::{net, sysinfo};
use crate::config::{KeyStoreConfig, ServerConfig};
use crate::http::handlers;
use crate::state::State;
use kes_core::ApiKey;
use std::net::SocketAddr;

pub(crate) fn print_banner(
    state: &State,
    config: Option<&ServerConfig>,
    local: &SocketAddr,
    dev_key: Option<&ApiKey>,
) {
    let admin = if state.admin.is_hash() {
        state.admin.to_string()
    } else {
        "<disabled>".to_string()
    };
    let store = match config {
        Some(c) => describe_store(&c.keystore),
        None => "In Memory".to_string(),
    };
    // Every address the server answers at, as the Go KES lists them.
    let endpoints: Vec<SocketAddr> = if local.ip().is_unspecified() {
        net::local_ips(local)
            .into_iter()
            .filter(|ip| local.is_ipv6() || ip.is_ipv4())
            .map(|ip| SocketAddr::new(ip, local.port()))
            .collect()
    } else {
        vec![*local]
    };
    let endpoint = endpoints.first().copied().unwrap_or(*local);
    println!("Version     {}", handlers::VERSION);
    println!("Runtime     {}/{}", sysinfo::go_os(), sysinfo::go_arch());
    println!("License     AGPLv3");
    println!();
    println!("KMS         {store}");
    for (i, e) in endpoints.iter().enumerate() {
        let label = if i == 0 { "API" } else { "" };
        println!("{label:<11} · https://{e}");
    }
    println!();
    println!("Admin       {admin}");
    if let Some(key) = dev_key {
        println!();
        println!("=> Running in development mode: keys are kept in memory and lost on exit.");
        println!("   Admin API key: {}", key.to_kes_string().as_str());
        println!();
        println!("   export KES_SERVER=https://{endpoint}");
        println!("   export KES_API_KEY={}", key.to_kes_string().as_str());
        println!();
        println!("   The certificate is self-signed: use 'kes ... -k' or 'curl -k'.");
    }
    println!();
    println!("=> Server is up and running...");
}

fn describe_store(config: &KeyStoreConfig) -> String {
    match config {
        KeyStoreConfig::Fs(fs) => format!("Filesystem: {}", fs.path.display()),
        KeyStoreConfig::Aws(aws) => format!("AWS SecretsManager: {}", aws.endpoint),
        KeyStoreConfig::Vault(v) => format!("Hashicorp Vault: {}", v.endpoint),
        KeyStoreConfig::Unsupported { name } => name.to_string(),
    }
}
