//! The PROXY protocol through real connections: a listed balancer's
//! header names the client in the audit log (v1 and v2), mTLS passes
//! through; a listed source without a header and an unlisted source with
//! one both fail their handshake. (The same through real HAProxy:
//! proxies.rs.)

use crate::common::{AuditLog, Setup, TestServer};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

async fn connect_from(source: &str, server: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket.connect(server).await.unwrap()
}

fn v2_header(client: [u8; 4], port: u16) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.extend_from_slice(&[0x21, 0x11, 0, 12]);
    out.extend_from_slice(&client);
    out.extend_from_slice(&[127, 0, 0, 1]);
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&7373u16.to_be_bytes());
    out
}

#[tokio::test]
async fn a_listed_balancer_names_the_client() {
    let server = TestServer::start(Setup::new().with("proxy_protocol:\n  - 127.0.0.3/32\n"));
    let admin = server.admin_client();
    // The log reader connects directly (127.0.0.1 is not listed).
    let mut audit = AuditLog::follow(&server).await;

    for (header, path, client) in [
        (
            b"PROXY TCP4 10.9.9.9 127.0.0.1 5555 7373\r\n".to_vec(),
            "/v1/key/describe/through-v1",
            "10.9.9.9",
        ),
        (
            v2_header([10, 8, 8, 8], 6666),
            "/v1/key/describe/through-v2",
            "10.8.8.8",
        ),
        // A header that names nobody (a health check): the balancer's own.
        (
            b"PROXY UNKNOWN\r\n".to_vec(),
            "/v1/key/describe/unknown",
            "127.0.0.3",
        ),
    ] {
        let mut tcp = connect_from("127.0.0.3", server.addr).await;
        tcp.write_all(&header).await.unwrap();
        let mut conn = admin.connect_over(tcp).await.expect("TLS after the header");
        let resp = conn.request("GET", path, None).await;
        assert_eq!(resp.status, 404, "{}", resp.text());
        let ev = audit.event(path).await;
        assert_eq!(ev["request"]["ip"], client, "{path}");
        // mTLS passed through: the identity is the client's own.
        assert_eq!(
            ev["request"]["identity"],
            server.setup.admin.identity().to_string()
        );
        assert!(ev["request"].get("proxy_ip").is_none(), "{ev}");
    }

    // A listed source must send a header: a bare handshake is refused.
    let tcp = connect_from("127.0.0.3", server.addr).await;
    assert!(admin.connect_over(tcp).await.is_err());
    // Anyone else may not: a header is no TLS handshake.
    let mut tcp = connect_from("127.0.0.2", server.addr).await;
    tcp.write_all(b"PROXY TCP4 10.9.9.9 127.0.0.1 5555 7373\r\n")
        .await
        .unwrap();
    assert!(admin.connect_over(tcp).await.is_err());
    // And connects as always without one.
    let tcp = connect_from("127.0.0.2", server.addr).await;
    let mut conn = admin.connect_over(tcp).await.unwrap();
    assert_eq!(conn.request("GET", "/version", None).await.status, 200);
}

#[tokio::test]
async fn a_silent_balancer_connection_is_closed() {
    use tokio::io::AsyncReadExt;
    let server = TestServer::start(Setup::new().with("proxy_protocol:\n  - 127.0.0.3/32\n"));
    let mut tcp = connect_from("127.0.0.3", server.addr).await;
    // Half a header, then nothing: closed after the header deadline.
    tcp.write_all(b"PROXY TCP4 10.").await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "still open after 10 s");
}
