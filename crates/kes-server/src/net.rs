//! The addresses this host can be reached at: the dev certificate's SANs
//! and the endpoints the banner lists.

use std::net::{IpAddr, SocketAddr};

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
