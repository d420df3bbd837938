//! KES behind the fronts users put before it (issue 20, docs/proxies.md):
//! nginx and HAProxy terminating TLS and forwarding the client's
//! certificate in a header (`tls.proxy`), and HAProxy passing TLS through
//! with the PROXY protocol (`proxy_protocol`). The fronts are the real
//! programs (kes_testkit::fronts), all on loopback: the client calls from
//! 127.0.0.2 and the front connects to KES from 127.0.0.3, so that the
//! audit log shows which address it took.
//!
//! Also here, without a front: a caller that is not a listed proxy gains
//! nothing by sending the header.

use crate::common::client::send;
use crate::common::{b64, url_escape, AuditLog, Resp, Setup, TestServer};
use bytes::Bytes;
use http_body_util::Full;
use kes_core::ApiKey;
use kes_testkit::fronts::{write_pem, Front};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

/// The header the fronts put the client's certificate in.
const CERT_HEADER: &str = "X-Tls-Client-Cert";
/// Where the clients call from.
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// Where the fronts connect to KES from.
const FRONT_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// An address no test connects from: what a client claims to be in its
/// own `X-Forwarded-For`.
const FORGED_IP: &str = "192.0.2.1";

/// A caller: TLS as one identity (or none), from one source address, to
/// one address (a front or KES itself).
struct Caller {
    tls: Arc<rustls::ClientConfig>,
    source: Ipv4Addr,
    to: SocketAddr,
}

impl Caller {
    /// Presents `key`'s certificate, or none.
    fn new(server: &TestServer, key: Option<&ApiKey>, source: Ipv4Addr, to: SocketAddr) -> Self {
        let client = match key {
            Some(key) => server.client(key),
            None => server.anonymous_client(),
        };
        Caller {
            tls: client.tls_config(),
            source,
            to,
        }
    }

    /// One request (empty body) with extra headers, on a new connection
    /// bound to the caller's source address.
    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.try_call(method, path, headers)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Caller::call`]; a failed connection is an error.
    async fn try_call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Resp, String> {
        let what = format!("{method} {path} from {} to {}", self.source, self.to);
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::new(self.source.into(), 0))
            .map_err(|e| format!("{what}: bind: {e}"))?;
        let tcp = socket
            .connect(self.to)
            .await
            .map_err(|e| format!("{what}: connect: {e}"))?;
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{what}: TLS: {e}"))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| format!("{what}: HTTP: {e}"))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::new())).unwrap();
        send(&mut sender, request)
            .await
            .map_err(|e| format!("{what}: {e}"))
    }
}

/// Asserts who an audit event says called, from where, and the answer.
fn assert_audited(
    event: &serde_json::Value,
    identity: &ApiKey,
    ip: Ipv4Addr,
    proxy_ip: Option<Ipv4Addr>,
    code: u16,
) {
    let request = &event["request"];
    assert_eq!(
        request["identity"],
        identity.identity().to_string(),
        "{event}"
    );
    assert_eq!(request["ip"], ip.to_string(), "{event}");
    match proxy_ip {
        Some(proxy_ip) => assert_eq!(request["proxy_ip"], proxy_ip.to_string(), "{event}"),
        None => assert!(request.get("proxy_ip").is_none(), "{event}"),
    }
    assert_eq!(event["response"]["code"], code, "{event}");
}

/// The policy of the clients: create and generate keys named `app-*`,
/// nothing else.
fn app_policy(client: &ApiKey) -> String {
    format!(
        "policy:\n  app:\n    allow:\n    - /v1/key/create/app-*\n    - /v1/key/generate/app-*\n    identities:\n    - {}\n",
        client.identity()
    )
}

/// A KES with `front` as its only TLS proxy and `client` in the app policy.
fn tls_proxy_setup(front: &ApiKey, client: &ApiKey) -> Setup {
    let mut setup = Setup::new().with(&app_policy(client));
    setup.tls_extra = format!(
        "  proxy:\n    identities:\n    - {}\n    header:\n      cert: {CERT_HEADER}\n",
        front.identity()
    );
    setup
}

/// The admin's client certificate as nginx forwards one (URL-escaped PEM)
/// and as HAProxy does (base64 DER): what a forger would send.
fn admin_certificate_headers(server: &TestServer) -> [String; 2] {
    let der = server
        .setup
        .admin
        .client_certificate()
        .expect("admin certificate")
        .certificate_der;
    [
        url_escape(&kes_core::pem::encode("CERTIFICATE", &der)),
        b64(&der),
    ]
}

/// Writes what a front needs into its directory: `served.crt`/`.key` (the
/// certificate KES serves, for localhost and 127.0.0.1, which the test
/// clients trust), `kes.crt` (to verify KES with), `front.crt`/`.key` (the
/// front's own client certificate, from `front`), and the two pairs in one
/// file each for HAProxy (`served.pem`, `front.pem`).
fn write_front_files(dir: &Path, server: &TestServer, front: &ApiKey) {
    let served_cert = &server.setup.server_cert_der;
    let served_key = std::fs::read_to_string(&server.setup.server_key).expect("server key");
    let front_cert = front.client_certificate().expect("front certificate");
    let front_key = front_cert.private_key_der.to_vec();
    let served = write_pem(dir, "served.crt", &[("CERTIFICATE", served_cert)]);
    std::fs::write(dir.join("served.key"), &served_key).unwrap();
    let served_pem = std::fs::read_to_string(served).unwrap() + &served_key;
    std::fs::write(dir.join("served.pem"), served_pem).unwrap();
    write_pem(dir, "kes.crt", &[("CERTIFICATE", served_cert)]);
    write_pem(
        dir,
        "front.crt",
        &[("CERTIFICATE", &front_cert.certificate_der)],
    );
    write_pem(dir, "front.key", &[("PRIVATE KEY", &front_key)]);
    write_pem(
        dir,
        "front.pem",
        &[
            ("CERTIFICATE", &front_cert.certificate_der),
            ("PRIVATE KEY", &front_key),
        ],
    );
}

/// nginx terminating the client's TLS (asking for a certificate, checking
/// none: `optional_no_ca`) and calling KES over kept-alive HTTPS with its
/// own certificate, from 127.0.0.3: the configuration of docs/proxies.md.
fn nginx_front(server: &TestServer, front: &ApiKey) -> Front {
    Front::nginx(|dir, port| {
        write_front_files(dir, server, front);
        let d = dir.display();
        format!(
            "upstream kes {{
        server {kes};
        keepalive 4;
    }}
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {d}/served.crt;
        ssl_certificate_key {d}/served.key;
        ssl_verify_client optional_no_ca;
        location / {{
            proxy_pass https://kes;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host localhost;
            proxy_bind {FRONT_IP};
            proxy_ssl_certificate {d}/front.crt;
            proxy_ssl_certificate_key {d}/front.key;
            proxy_ssl_trusted_certificate {d}/kes.crt;
            proxy_ssl_verify on;
            proxy_ssl_name localhost;
            proxy_ssl_server_name on;
            proxy_set_header {CERT_HEADER} $ssl_client_escaped_cert;
            proxy_set_header X-Forwarded-For $remote_addr;
        }}
    }}",
            kes = server.addr,
        )
    })
}

/// HAProxy in HTTP mode: terminates the client's TLS (a certificate is
/// asked for; `verify optional` needs a CA file, and the ignore lists let
/// a certificate of no known CA through, as KES decides who it is) and
/// forwards it as base64 DER, or deletes a header the client sent itself.
fn haproxy_http_front(server: &TestServer, front: &ApiKey) -> Front {
    Front::haproxy(|dir, port| {
        write_front_files(dir, server, front);
        let d = dir.display();
        format!(
            "frontend clients
    mode http
    bind 127.0.0.1:{port} ssl crt {d}/served.pem verify optional ca-file {d}/kes.crt ca-ignore-err all crt-ignore-err all
    http-request del-header {CERT_HEADER}
    http-request set-header {CERT_HEADER} %[ssl_c_der,base64] if {{ ssl_c_used }}
    http-request set-header X-Forwarded-For %[src]
    default_backend kes
backend kes
    mode http
    server kes {kes} ssl verify required ca-file {d}/kes.crt verifyhost localhost sni str(localhost) crt {d}/front.pem source {FRONT_IP}",
            kes = server.addr,
        )
    })
}

/// HAProxy in TCP mode: passes the client's TLS through to KES and tells
/// KES the client's address in a PROXY protocol v2 header.
fn haproxy_tcp_front(server: &TestServer) -> Front {
    Front::haproxy(|_, port| {
        format!(
            "frontend clients
    mode tcp
    bind 127.0.0.1:{port}
    default_backend kes
backend kes
    mode tcp
    server kes {kes} send-proxy-v2 source {FRONT_IP}",
            kes = server.addr,
        )
    })
}

/// What every TLS-terminating front must give: the client acts as itself
/// (its policy, its address in the audit log, the front's next to it),
/// whatever it forges; a client without a certificate is nobody; the
/// front's own identity has no rights.
async fn check_tls_front(
    server: &TestServer,
    front: &Front,
    front_key: &ApiKey,
    client_key: &ApiKey,
) {
    let logs = || {
        format!(
            "\n--- front stderr:\n{}\n--- kes stderr:\n{}",
            front.stderr(),
            server.stderr()
        )
    };
    let client = Caller::new(server, Some(client_key), CLIENT_IP, front.addr());
    let anonymous = Caller::new(server, None, CLIENT_IP, front.addr());
    let admin = server.admin_client();
    let [forged_pem, forged_der] = admin_certificate_headers(server);

    // The front reaches KES.
    let r = client.call("GET", "/version", &[]).await;
    assert_eq!(r.status, 200, "{}{}", r.text(), logs());

    // The client's policy applies to it; what it forges in the headers
    // the front replaces.
    let mut audit = AuditLog::follow(server).await;
    let r = client
        .call(
            "POST",
            "/v1/key/create/app-a",
            &[(CERT_HEADER, &forged_pem), ("X-Forwarded-For", FORGED_IP)],
        )
        .await;
    assert_eq!(r.status, 200, "{}{}", r.text(), logs());
    let event = audit.event("/v1/key/create/app-a").await;
    assert_audited(&event, client_key, CLIENT_IP, Some(FRONT_IP), 200);

    // Another client on the front, perhaps on the same kept-alive
    // connection to KES, acts as itself: a stranger.
    let stranger = Caller::new(server, Some(&ApiKey::generate()), CLIENT_IP, front.addr());
    let r = stranger.call("POST", "/v1/key/create/app-d", &[]).await;
    assert_eq!(r.status, 403, "{}{}", r.text(), logs());

    for forged in [&forged_pem, &forged_der] {
        let r = client
            .call("POST", "/v1/key/create/other", &[(CERT_HEADER, forged)])
            .await;
        assert_eq!(r.status, 403, "{}{}", r.text(), logs());
    }
    let r = client.call("DELETE", "/v1/key/delete/app-a", &[]).await;
    assert_eq!(r.status, 403, "{}{}", r.text(), logs());

    // Without a certificate the client is nobody, neither the admin whose
    // certificate it forges nor the front.
    for forged in [&forged_pem, &forged_der] {
        let r = anonymous
            .call("POST", "/v1/key/create/app-b", &[(CERT_HEADER, forged)])
            .await;
        assert_eq!(r.status, 400, "{}{}", r.text(), logs());
        assert_eq!(r.message(), "no client certificate is present");
    }

    // The front's own identity, calling KES directly without the header,
    // has no rights of its own either.
    let front_itself = Caller::new(server, Some(front_key), FRONT_IP, server.addr);
    let r = front_itself.call("POST", "/v1/key/create/app-c", &[]).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.message(), "no client certificate is present");

    // Only the client's allowed call made a key.
    for (name, status) in [
        ("app-a", 200),
        ("other", 404),
        ("app-b", 404),
        ("app-c", 404),
        ("app-d", 404),
    ] {
        let r = admin
            .request("GET", &format!("/v1/key/describe/{name}"), None)
            .await;
        assert_eq!(r.status, status, "{name}: {}", r.text());
    }
}

#[tokio::test]
#[ignore = "needs nginx; scripts/test runs it"]
async fn behind_nginx_each_client_acts_as_itself_from_its_own_address() {
    let front_key = ApiKey::generate();
    let client_key = ApiKey::generate();
    let server = TestServer::start(tls_proxy_setup(&front_key, &client_key));
    let nginx = nginx_front(&server, &front_key);
    check_tls_front(&server, &nginx, &front_key, &client_key).await;
}

#[tokio::test]
#[ignore = "needs haproxy; scripts/test runs it"]
async fn behind_haproxy_in_http_mode_each_client_acts_as_itself_from_its_own_address() {
    let front_key = ApiKey::generate();
    let client_key = ApiKey::generate();
    let server = TestServer::start(tls_proxy_setup(&front_key, &client_key));
    let haproxy = haproxy_http_front(&server, &front_key);
    check_tls_front(&server, &haproxy, &front_key, &client_key).await;
}

#[tokio::test]
#[ignore = "needs haproxy; scripts/test runs it"]
async fn behind_haproxy_in_tcp_mode_the_proxy_protocol_gives_the_client_address() {
    let client_key = ApiKey::generate();
    let server = TestServer::start(
        Setup::new()
            .with(&app_policy(&client_key))
            .with(&format!("proxy_protocol:\n  - {FRONT_IP}/32\n")),
    );
    let haproxy = haproxy_tcp_front(&server);
    let logs = || {
        format!(
            "\n--- haproxy stderr:\n{}\n--- kes stderr:\n{}",
            haproxy.stderr(),
            server.stderr()
        )
    };
    let client = Caller::new(&server, Some(&client_key), CLIENT_IP, haproxy.addr());

    let r = client.call("GET", "/version", &[]).await;
    assert_eq!(r.status, 200, "{}{}", r.text(), logs());

    // mTLS passes through: the client's own certificate and policy; the
    // PROXY header's address is the client's, and HAProxy, not being a
    // TLS proxy, is not named.
    let mut audit = AuditLog::follow(&server).await;
    let r = client.call("POST", "/v1/key/create/app-a", &[]).await;
    assert_eq!(r.status, 200, "{}{}", r.text(), logs());
    let event = audit.event("/v1/key/create/app-a").await;
    assert_audited(&event, &client_key, CLIENT_IP, None, 200);
    let r = client.call("POST", "/v1/key/create/other", &[]).await;
    assert_eq!(r.status, 403, "{}{}", r.text(), logs());

    // A direct client, from an address not listed, sends no PROXY header
    // and is served as ever.
    let direct = Caller::new(&server, Some(&client_key), Ipv4Addr::LOCALHOST, server.addr);
    let r = direct.call("POST", "/v1/key/create/app-b", &[]).await;
    assert_eq!(r.status, 200, "{}{}", r.text(), logs());
    let event = audit.event("/v1/key/create/app-b").await;
    assert_audited(&event, &client_key, Ipv4Addr::LOCALHOST, None, 200);

    // A connection from the listed source that does not start with a
    // PROXY header is closed, not served.
    let unannounced = Caller::new(&server, Some(&client_key), FRONT_IP, server.addr);
    let r = unannounced
        .try_call("POST", "/v1/key/create/app-c", &[])
        .await;
    assert!(r.is_err(), "served without a PROXY header: {r:?}");
    let r = server
        .admin_client()
        .request("GET", "/v1/key/describe/app-c", None)
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
}

#[tokio::test]
async fn a_stranger_forwarding_the_admins_certificate_stays_a_stranger() {
    let front_key = ApiKey::generate();
    let stranger_key = ApiKey::generate();
    let server = TestServer::start(tls_proxy_setup(&front_key, &stranger_key));
    let stranger = Caller::new(&server, Some(&stranger_key), CLIENT_IP, server.addr);

    // Not a listed proxy: the header is ignored, in either encoding, and
    // the call is the stranger's own.
    for forged in admin_certificate_headers(&server) {
        let r = stranger
            .call(
                "POST",
                "/v1/key/create/k",
                &[(CERT_HEADER, &forged), ("X-Forwarded-For", FORGED_IP)],
            )
            .await;
        assert_eq!(r.status, 403, "{}", r.text());
    }

    // Its own calls act as itself, from its own address: the forwarded
    // address of a stranger is ignored too.
    let mut audit = AuditLog::follow(&server).await;
    let [forged, _] = admin_certificate_headers(&server);
    let r = stranger
        .call(
            "POST",
            "/v1/key/create/app-a",
            &[(CERT_HEADER, &forged), ("X-Forwarded-For", FORGED_IP)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let event = audit.event("/v1/key/create/app-a").await;
    assert_audited(&event, &stranger_key, CLIENT_IP, None, 200);
}
