//! The PROXY protocol (versions 1 and 2) of L4 load balancers (HAProxy
//! `send-proxy`/`send-proxy-v2`, AWS NLB, MetalLB): a header before the
//! TLS handshake that names the client's address. Read only from the
//! source networks of `proxy_protocol`; from anyone else the first bytes
//! are the TLS handshake, as always.
//!
//! The header is read without reading past it (the TLS handshake follows
//! in the same stream): version 2 says its length up front, version 1
//! ends at its CRLF within 107 bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Version 2's signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included (the specification's).
const V1_MAX: usize = 107;
/// The shortest version 1 header: `PROXY UNKNOWN\r\n`.
const V1_MIN: usize = 15;
/// The most bytes of addresses and TLVs a version 2 header may announce
/// here: the addresses take 36 at most; balancers add a few small TLVs
/// (AWS NLB's endpoint ID, HAProxy's SSL facts).
const V2_MAX_PAYLOAD: usize = 2048;

/// Why a header was refused (the connection is closed).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Invalid(pub(super) &'static str);

impl std::fmt::Display for Invalid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Reads a PROXY header from `stream`: `Ok(Some(client))` names the
/// client; `Ok(None)` is a header that names nobody (v2 `LOCAL`, the
/// balancer's own health check; v1 `UNKNOWN`; a family other than TCP over
/// IPv4/IPv6), whose connection stays the balancer's.
pub(super) async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, Invalid> {
    let io = |_| Invalid("connection closed before the PROXY header ended");
    let mut head = [0u8; 16];
    stream.read_exact(&mut head[..V1_MIN]).await.map_err(io)?;
    if head[..V1_MIN].starts_with(b"PROXY ") {
        let mut line = head[..V1_MIN].to_vec();
        while !line.ends_with(b"\r\n") {
            if line.len() >= V1_MAX {
                return Err(Invalid("PROXY v1 header without CRLF in 107 bytes"));
            }
            line.push(stream.read_u8().await.map_err(io)?);
        }
        return parse_v1(&line);
    }
    if head[..12] != V2_SIGNATURE[..] {
        return Err(Invalid("no PROXY header"));
    }
    stream.read_exact(&mut head[V1_MIN..]).await.map_err(io)?;
    let len = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if len > V2_MAX_PAYLOAD {
        return Err(Invalid("PROXY v2 header too long"));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await.map_err(io)?;
    parse_v2(head[12], head[13], &payload)
}

/// A version 1 line, CRLF included.
fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, Invalid> {
    let bad = Invalid("invalid PROXY v1 header");
    let text = std::str::from_utf8(&line[..line.len() - 2]).map_err(|_| bad)?;
    let mut fields = text.split(' ');
    let (Some("PROXY"), Some(family)) = (fields.next(), fields.next()) else {
        return Err(Invalid("invalid PROXY v1 header"));
    };
    if family == "UNKNOWN" {
        return Ok(None);
    }
    let (Some(src), Some(_dst), Some(sport), Some(_dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(Invalid("invalid PROXY v1 header"));
    };
    let ip: IpAddr = match family {
        "TCP4" => src.parse::<Ipv4Addr>().map(IpAddr::V4),
        "TCP6" => src.parse::<Ipv6Addr>().map(IpAddr::V6),
        _ => return Err(Invalid("invalid PROXY v1 header")),
    }
    .map_err(|_| Invalid("invalid PROXY v1 header"))?;
    let port: u16 = sport
        .parse()
        .map_err(|_| Invalid("invalid PROXY v1 header"))?;
    Ok(Some(SocketAddr::new(ip, port)))
}

/// A version 2 header after its signature: version and command, family
/// and protocol, and the payload.
fn parse_v2(ver_cmd: u8, family: u8, payload: &[u8]) -> Result<Option<SocketAddr>, Invalid> {
    if ver_cmd >> 4 != 2 {
        return Err(Invalid("unsupported PROXY header version"));
    }
    match ver_cmd & 0x0f {
        0 => return Ok(None),
        1 => {}
        _ => return Err(Invalid("invalid PROXY v2 command")),
    }
    match family {
        // TCP (or UDP) over IPv4: source, destination, their ports.
        0x11 | 0x12 => {
            let a = payload
                .get(..12)
                .ok_or(Invalid("PROXY v2 addresses cut short"))?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let port = u16::from_be_bytes([a[8], a[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        0x21 | 0x22 => {
            let a = payload
                .get(..36)
                .ok_or(Invalid("PROXY v2 addresses cut short"))?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            Ok(Some(SocketAddr::new(IpAddr::V6(octets.into()), port)))
        }
        // UNSPEC and Unix sockets name no address of ours.
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, Invalid>, Vec<u8>) {
        let mut stream = bytes;
        let header = read_header(&mut stream).await;
        (header, stream.to_vec())
    }

    fn v2(ver_cmd: u8, family: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(ver_cmd);
        out.push(family);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn version_1_names_the_client_and_reads_no_further() {
        let (header, rest) = read(b"PROXY TCP4 10.1.2.3 10.0.0.1 51234 7373\r\n\x16\x03\x01").await;
        assert_eq!(header, Ok(Some("10.1.2.3:51234".parse().unwrap())));
        assert_eq!(rest, b"\x16\x03\x01", "the TLS bytes stay unread");
        let (header, _) = read(b"PROXY TCP6 2001:db8::7 2001:db8::1 443 7373\r\n").await;
        assert_eq!(header, Ok(Some("[2001:db8::7]:443".parse().unwrap())));
        let (header, rest) = read(b"PROXY UNKNOWN\r\nTLS").await;
        assert_eq!(header, Ok(None));
        assert_eq!(rest, b"TLS");
    }

    #[tokio::test]
    async fn version_2_names_the_client_and_reads_no_further() {
        let mut payload = vec![10, 1, 2, 3, 10, 0, 0, 1, 0xc8, 0x22, 0x1c, 0xcd];
        // A TLV after the addresses (skipped).
        payload.extend_from_slice(&[0x05, 0x00, 0x02, 0xaa, 0xbb]);
        let mut bytes = v2(0x21, 0x11, &payload);
        bytes.extend_from_slice(b"\x16\x03\x01");
        let (header, rest) = read(&bytes).await;
        assert_eq!(header, Ok(Some("10.1.2.3:51234".parse().unwrap())));
        assert_eq!(rest, b"\x16\x03\x01");

        let mut v6 = Vec::new();
        v6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        v6.extend_from_slice(&[0x01, 0xbb, 0x1c, 0xcd]);
        let (header, _) = read(&v2(0x21, 0x21, &v6)).await;
        assert_eq!(header, Ok(Some("[2001:db8::7]:443".parse().unwrap())));
        // LOCAL (a health check) and UNSPEC name nobody.
        assert_eq!(read(&v2(0x20, 0x00, &[])).await.0, Ok(None));
        assert_eq!(read(&v2(0x21, 0x00, &[])).await.0, Ok(None));
    }

    #[tokio::test]
    async fn bad_headers_are_refused() {
        let long_v1 = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        let cases: Vec<Vec<u8>> = vec![
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03abcdefgh".to_vec(),
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
            b"PROXY TCP4 10.1.2.3 10.0.0.1 51234\r\n".to_vec(),
            b"PROXY TCP4 999.1.2.3 10.0.0.1 1 2\r\n".to_vec(),
            b"PROXY TCP4 10.1.2.3 10.0.0.1 70000 2\r\n".to_vec(),
            b"PROXY TCP5 10.1.2.3 10.0.0.1 1 2\r\n".to_vec(),
            long_v1,
            b"PROXY TCP4 10.1.2.3".to_vec(),
            v2(0x11, 0x11, &[0; 12]),
            v2(0x22, 0x11, &[0; 12]),
            v2(0x21, 0x11, &[0; 8]),
            v2(0x21, 0x21, &[0; 20]),
            {
                let mut b = v2(0x21, 0x11, &[]);
                b[14..16].copy_from_slice(&4096u16.to_be_bytes());
                b
            },
            V2_SIGNATURE[..10].to_vec(),
        ];
        for bytes in cases {
            assert!(
                read(&bytes).await.0.is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}
