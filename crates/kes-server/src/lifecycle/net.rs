//! The addresses this host can be reached at: the dev certificate's SANs
//! and the endpoints the banner lists; and the listen address, in every
//! form the Go KES takes.

use std::net::{IpAddr, SocketAddr};

/// The port of an address given without one (`[::1]`).
const DEFAULT_PORT: u16 = 7373;

/// Why a listen address cannot be used.
#[derive(Debug)]
pub(crate) enum ListenError {
    /// The address is malformed; the text says how.
    Invalid(String),
    /// No candidate address could be bound; the last failure.
    Bind(std::io::Error),
}

/// The socket addresses to try, in order, for a listen address as the Go
/// KES takes it (`net.Listen("tcp", address)`):
/// - `:7373` (every interface; the Go KES's own help example): `[::]`,
///   dual-stack on Linux by default, else `0.0.0.0` where IPv6 is off;
/// - `IP:PORT`, `[IPv6]:PORT`, and `[IPv6]` alone (port 7373);
/// - `host:port` with a host name: its addresses, IPv4 first, as Go
///   listens on one address of a name and prefers IPv4.
pub(crate) async fn listen_candidates(address: &str) -> Result<Vec<SocketAddr>, ListenError> {
    let address = address.trim();
    let invalid = |why: &str| ListenError::Invalid(why.to_owned());
    let port = |p: &str| -> Result<u16, ListenError> {
        p.parse().map_err(|_| {
            invalid(&format!(
                "invalid port '{p}': expected a number from 0 to 65535"
            ))
        })
    };
    if let Some(p) = address.strip_prefix(':').filter(|p| !p.contains(':')) {
        let port = port(p)?;
        return Ok(vec![
            SocketAddr::new(IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED), port),
            SocketAddr::new(IpAddr::from(std::net::Ipv4Addr::UNSPECIFIED), port),
        ]);
    }
    if let Ok(addr) = address.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    if let Some(inner) = address.strip_prefix('[').and_then(|a| a.strip_suffix(']')) {
        let ip: std::net::Ipv6Addr = inner
            .parse()
            .map_err(|_| invalid(&format!("'{inner}' is not an IPv6 address")))?;
        return Ok(vec![SocketAddr::new(IpAddr::V6(ip), DEFAULT_PORT)]);
    }
    let Some((host, p)) = address.rsplit_once(':') else {
        return Err(invalid("expected HOST:PORT, [IPv6]:PORT or :PORT"));
    };
    let port = port(p)?;
    if host.is_empty() || host.contains(':') || host.starts_with('[') {
        return Err(invalid(
            "expected HOST:PORT, [IPv6]:PORT or :PORT (an IPv6 address needs brackets)",
        ));
    }
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| invalid(&format!("cannot resolve '{host}': {e}")))?
        .collect();
    // Stable: the resolver's order within each family.
    addrs.sort_by_key(|a| a.is_ipv6());
    addrs.dedup();
    if addrs.is_empty() {
        return Err(invalid(&format!("'{host}' resolves to no address")));
    }
    Ok(addrs)
}

/// Binds the first candidate of `address` that can be bound.
pub(crate) async fn listen(address: &str) -> Result<tokio::net::TcpListener, ListenError> {
    let mut last = None;
    for candidate in listen_candidates(address).await? {
        match tokio::net::TcpListener::bind(candidate).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(ListenError::Bind(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::AddrNotAvailable, "no address to bind")
    })))
}

/// The addresses a server bound to `bind` can be reached at: loopback
/// first, then, for an unspecified address (`0.0.0.0`, `[::]`), those of
/// every interface, as the Go KES lists them. The dev certificate carries
/// them all as SANs, and the banner prints them.
pub(crate) fn local_ips(bind: &SocketAddr) -> Vec<IpAddr> {
    let mut ips = vec![IpAddr::from([127, 0, 0, 1])];
    if bind.ip().is_unspecified() {
        ips.extend(interface_ips(bind.is_ipv6()));
        // The address the host uses to reach others, found without
        // sending a packet (connect on UDP only picks a route): a fallback
        // where /proc is not mounted.
        if let Ok(sock) = std::net::UdpSocket::bind("0.0.0.0:0") {
            if sock.connect("192.0.2.1:9").is_ok() {
                if let Ok(addr) = sock.local_addr() {
                    ips.push(addr.ip());
                }
            }
        }
    } else {
        ips.push(bind.ip());
    }
    ips.push(IpAddr::from(std::net::Ipv6Addr::LOCALHOST));
    let mut seen = Vec::new();
    ips.retain(|ip| {
        !ip.is_unspecified() && !seen.contains(ip) && {
            seen.push(*ip);
            true
        }
    });
    ips
}

/// The IPv4 (and with `v6` the global IPv6) addresses of this host's
/// interfaces, from /proc (no `getifaddrs` without unsafe code).
fn interface_ips(v6: bool) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    // fib_trie lists each local address followed by a "/32 host LOCAL" line.
    if let Ok(trie) = std::fs::read_to_string("/proc/net/fib_trie") {
        let mut last: Option<std::net::Ipv4Addr> = None;
        for line in trie.lines() {
            let line = line.trim_start_matches([' ', '|', '+', '-']).trim();
            if line == "/32 host LOCAL" {
                if let Some(ip) = last.take() {
                    if !ip.is_loopback() && !ips.contains(&IpAddr::V4(ip)) {
                        ips.push(IpAddr::V4(ip));
                    }
                }
            } else {
                last = line.parse().ok();
            }
        }
    }
    if v6 {
        if let Ok(list) = std::fs::read_to_string("/proc/net/if_inet6") {
            for hex in list.lines().filter_map(|l| l.split_whitespace().next()) {
                let Ok(bits) = u128::from_str_radix(hex, 16) else {
                    continue;
                };
                let ip = std::net::Ipv6Addr::from(bits);
                // Link-local addresses need a zone to be dialled.
                let link_local = (ip.segments()[0] & 0xffc0) == 0xfe80;
                if !ip.is_loopback() && !link_local {
                    ips.push(IpAddr::V6(ip));
                }
            }
        }
    }
    ips
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidates(address: &str) -> Result<Vec<SocketAddr>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(listen_candidates(address))
            .map_err(|e| match e {
                ListenError::Invalid(why) => why,
                ListenError::Bind(e) => e.to_string(),
            })
    }

    #[test]
    fn every_address_form_of_the_go_kes() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            candidates(":7373").unwrap(),
            [addr("[::]:7373"), addr("0.0.0.0:7373")]
        );
        assert_eq!(candidates(" :0 ").unwrap()[1], addr("0.0.0.0:0"));
        assert_eq!(candidates("0.0.0.0:7000").unwrap(), [addr("0.0.0.0:7000")]);
        assert_eq!(candidates("[::]:7000").unwrap(), [addr("[::]:7000")]);
        assert_eq!(candidates("[::1]:7000").unwrap(), [addr("[::1]:7000")]);
        assert_eq!(candidates("[::1]").unwrap(), [addr("[::1]:7373")]);
        assert_eq!(candidates("127.0.0.1:1").unwrap(), [addr("127.0.0.1:1")]);
        let local = candidates("localhost:7373").unwrap();
        assert!(local
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 7373));
        assert!(local[0].is_ipv4(), "IPv4 first, as Go: {local:?}");
    }

    #[test]
    fn malformed_addresses_say_why() {
        for (address, why) in [
            (":x", "invalid port 'x'"),
            (":70000", "invalid port '70000'"),
            ("7373", "expected HOST:PORT"),
            ("::1:7373", "needs brackets"),
            ("[nope]", "is not an IPv6 address"),
            (":", "invalid port ''"),
            ("localhost:", "invalid port ''"),
        ] {
            let err = candidates(address).unwrap_err();
            assert!(err.contains(why), "{address}: {err}");
        }
    }
}
