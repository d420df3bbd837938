//! The client side: rustls (aws-lc-rs) with a client certificate, and one
//! hyper connection (HTTP/1.1 or HTTP/2) per worker.

use bytes::Bytes;
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use kes_core::tls::{ClientConfigError, ServerTrust};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::{HandshakeKind, NamedGroup, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;

/// How the client authenticates and verifies the server.
pub(crate) struct TlsOptions {
    pub client_identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    /// Roots for the server certificate; `None` with `insecure` skips the
    /// chain check.
    pub ca: Option<Vec<CertificateDer<'static>>>,
    pub insecure: bool,
    pub http2: bool,
    pub resume: bool,
}

/// Builds the rustls client configuration shared by every worker, so that
/// session tickets from one connection resume another.
pub(crate) fn client_config(opts: TlsOptions) -> Result<Arc<rustls::ClientConfig>, String> {
    let trust = if opts.insecure {
        ServerTrust::AnyCertificate
    } else {
        let Some(ca) = opts.ca else {
            return Err(
                "the server certificate cannot be verified: use '--ca <file>' or '--insecure'"
                    .into(),
            );
        };
        let mut roots = RootCertStore::empty();
        for cert in ca {
            roots
                .add(cert)
                .map_err(|e| format!("invalid CA certificate: {e}"))?;
        }
        ServerTrust::Roots(roots)
    };
    let mut config =
        kes_core::tls::client_config(trust, opts.client_identity).map_err(|e| match e {
            ClientConfigError::ProtocolVersions(e) => format!("invalid TLS settings: {e}"),
            ClientConfigError::ClientCertificate(e) => {
                format!("invalid client certificate or private key: {e}")
            }
        })?;
    config.alpn_protocols = if opts.http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    config.resumption = if opts.resume {
        Resumption::store(Arc::new(TicketPool::default()))
    } else {
        Resumption::disabled()
    };
    Ok(Arc::new(config))
}

/// Dials the server: TCP, TLS, then the HTTP handshake.
#[derive(Clone)]
pub(crate) struct Connector {
    tls: tokio_rustls::TlsConnector,
    addr: String,
    server_name: ServerName<'static>,
    authority: String,
    http2: bool,
}

/// Splits `[https://]host:port` into the address to dial and the name the
/// server certificate must carry.
pub(crate) fn parse_address(server: &str) -> Result<(String, ServerName<'static>), String> {
    let addr = server.strip_prefix("https://").unwrap_or(server);
    let addr = addr.trim_end_matches('/');
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("invalid server address '{server}': expected host:port"))?;
    port.parse::<u16>()
        .map_err(|_| format!("invalid server address '{server}': invalid port '{port}'"))?;
    let bare_host = host.trim_start_matches('[').trim_end_matches(']');
    let server_name = match bare_host.parse::<IpAddr>() {
        Ok(ip) => ServerName::IpAddress(ip.into()),
        Err(_) => ServerName::try_from(bare_host.to_string())
            .map_err(|_| format!("invalid server address '{server}': invalid host '{host}'"))?,
    };
    Ok((addr.to_string(), server_name))
}

/// One open HTTP connection.
pub(crate) enum Conn {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// A complete response.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Connector {
    /// `server` is `host:port`, optionally prefixed by `https://`.
    pub(crate) fn new(
        server: &str,
        config: Arc<rustls::ClientConfig>,
        http2: bool,
    ) -> Result<Self, String> {
        let (addr, server_name) = parse_address(server)?;
        Ok(Self {
            tls: tokio_rustls::TlsConnector::from(config),
            authority: addr.clone(),
            addr,
            server_name,
            http2,
        })
    }

    /// The URI to put in a request for `path`: HTTP/2 needs scheme and
    /// authority, HTTP/1.1 gets the origin form plus a Host header.
    pub(crate) fn uri(&self, path: &str) -> Result<Uri, String> {
        let s = if self.http2 {
            format!("https://{}{path}", self.authority)
        } else {
            path.to_string()
        };
        s.parse()
            .map_err(|e| format!("invalid request path '{path}': {e}"))
    }

    /// A request with the headers every target gets.
    pub(crate) fn request(
        &self,
        method: &http::Method,
        uri: Uri,
        headers: &[(http::HeaderName, http::HeaderValue)],
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method.clone();
        *req.uri_mut() = uri;
        let h = req.headers_mut();
        if !self.http2 {
            if let Ok(v) = http::HeaderValue::from_str(&self.authority) {
                h.insert(http::header::HOST, v);
            }
        }
        for (name, value) in headers {
            h.insert(name.clone(), value.clone());
        }
        req
    }

    /// Opens a connection; the flag says whether TLS resumed a session.
    pub(crate) async fn connect(&self) -> Result<(Conn, bool), String> {
        let tcp = TcpStream::connect(&self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("tls: {e}"))?;
        let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
        let io = TokioIo::new(tls);
        let conn = if self.http2 {
            let (send, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("http2 handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Conn::H2(send)
        } else {
            let (send, conn) = http1::handshake(io)
                .await
                .map_err(|e| format!("http handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Conn::H1(send)
        };
        Ok((conn, resumed))
    }
}

impl Conn {
    /// Sends one request and reads the whole response body.
    pub(crate) async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Reply, String> {
        let resp = match self {
            Conn::H1(s) => {
                s.ready().await.map_err(|e| format!("http: {e}"))?;
                s.send_request(req).await
            }
            Conn::H2(s) => {
                s.ready().await.map_err(|e| format!("http: {e}"))?;
                s.send_request(req).await
            }
        }
        .map_err(|e| format!("http: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("http body: {e}"))?
            .to_bytes();
        Ok(Reply { status, body })
    }
}

/// Session tickets for the one server a run talks to. rustls's own cache
/// keeps at most 8 TLS 1.3 tickets per server, each usable once, so with
/// more concurrent new connections than that many handshakes would be full
/// ones although resumption is on; this pool keeps enough for every worker.
#[derive(Debug, Default)]
struct TicketPool {
    state: Mutex<TicketState>,
}

#[derive(Debug, Default)]
struct TicketState {
    kx_hint: Option<NamedGroup>,
    tls12: Option<Tls12ClientSessionValue>,
    tls13: VecDeque<Tls13ClientSessionValue>,
}

/// Enough for thousands of connections in flight; the oldest go first.
const MAX_TICKETS: usize = 4096;

impl TicketPool {
    fn with<T>(&self, f: impl FnOnce(&mut TicketState) -> T) -> T {
        let mut state = kes_core::sync::lock(&self.state);
        f(&mut state)
    }
}

impl ClientSessionStore for TicketPool {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        self.with(|s| s.kx_hint = Some(group));
    }

    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        self.with(|s| s.kx_hint)
    }

    fn set_tls12_session(&self, _: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.with(|s| s.tls12 = Some(value));
    }

    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.with(|s| s.tls12.clone())
    }

    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        self.with(|s| s.tls12 = None);
    }

    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        self.with(|s| {
            if s.tls13.len() >= MAX_TICKETS {
                s.tls13.pop_front();
            }
            s.tls13.push_back(value);
        });
    }

    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        // Newest first: the most recently issued tickets are the least
        // likely to have expired.
        self.with(|s| s.tls13.pop_back())
    }
}
