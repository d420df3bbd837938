//! mTLS HTTP/1.1 client for tests (shared by the `kes` and `kes-server`
//! test suites).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use kes_core::ApiKey;
use std::net::SocketAddr;
use std::sync::Arc;

/// A client configuration that trusts only `server_cert_der` and presents
/// `identity` (a DER chain and PKCS#8 key) if given.
fn trusting(
    server_cert_der: &[u8],
    identity: Option<(Vec<Vec<u8>>, Vec<u8>)>,
) -> rustls::ClientConfig {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(server_cert_der.to_vec()))
        .expect("server certificate as root");
    let identity = identity.map(|(chain, key)| {
        (
            chain.into_iter().map(CertificateDer::from).collect(),
            PrivateKeyDer::Pkcs8(key.into()),
        )
    });
    kes_core::tls::client_config(kes_core::tls::ServerTrust::Roots(roots), identity)
        .expect("client TLS configuration")
}

/// A response as the test sees it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// The body as UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// The `message` of an error body.
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The header value as a string.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_string())
    }
}

/// An mTLS HTTP/1.1 client; one new connection per request unless a
/// [`KeepAlive`] connection is used.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
}

impl Client {
    /// A client trusting `server_cert_der`, presenting the certificate of
    /// `key` if given.
    pub fn new(addr: SocketAddr, key: Option<&ApiKey>, server_cert_der: &[u8]) -> Self {
        Self::with_alpn(addr, key, server_cert_der, vec![b"http/1.1".to_vec()])
    }

    /// Like [`Client::new`] with the given ALPN protocols.
    pub fn with_alpn(
        addr: SocketAddr,
        key: Option<&ApiKey>,
        server_cert_der: &[u8],
        alpn: Vec<Vec<u8>>,
    ) -> Self {
        let identity = key.map(|key| {
            let cert = key.client_certificate().expect("client certificate");
            (
                vec![cert.certificate_der.clone()],
                cert.private_key_der.to_vec(),
            )
        });
        let mut config = trusting(server_cert_der, identity);
        config.alpn_protocols = alpn;
        Client {
            addr,
            config: Arc::new(config),
        }
    }

    /// A client from a certificate chain and key (DER).
    pub fn with_certificate(
        addr: SocketAddr,
        chain: Vec<Vec<u8>>,
        key_pkcs8: Vec<u8>,
        server_cert_der: &[u8],
    ) -> Self {
        let mut config = trusting(server_cert_der, Some((chain, key_pkcs8)));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Client {
            addr,
            config: Arc::new(config),
        }
    }

    /// The rustls client config (for resumption tests).
    pub fn tls_config(&self) -> Arc<rustls::ClientConfig> {
        self.config.clone()
    }

    /// Opens a kept-alive connection.
    pub async fn connect(&self) -> std::io::Result<KeepAlive> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        self.connect_over(tcp).await
    }

    /// Opens a kept-alive connection over `tcp`, already connected to the
    /// server (from a chosen source address, after a PROXY header, ...).
    pub async fn connect_over(&self, tcp: tokio::net::TcpStream) -> std::io::Result<KeepAlive> {
        let connector = tokio_rustls::TlsConnector::from(self.config.clone());
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let tls = connector.connect(name, tcp).await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(KeepAlive { sender })
    }

    /// One request on a new connection.
    pub async fn request(&self, method: &str, path: &str, body: Option<&[u8]>) -> Resp {
        self.try_request(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// One request on a new connection; connection errors are returned.
    pub async fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<Resp> {
        let mut conn = self.connect().await?;
        conn.try_request(method, path, body).await
    }

    /// Sends a JSON value.
    pub async fn json(&self, method: &str, path: &str, body: serde_json::Value) -> Resp {
        let bytes = serde_json::to_vec(&body).unwrap();
        self.request(method, path, Some(&bytes)).await
    }
}

/// A kept-alive HTTP/1.1 connection.
pub struct KeepAlive {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl KeepAlive {
    /// One request on this connection.
    pub async fn request(&mut self, method: &str, path: &str, body: Option<&[u8]>) -> Resp {
        self.try_request(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// One request; errors are returned.
    pub async fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> std::io::Result<Resp> {
        self.try_request_with(method, path, &[], body).await
    }

    /// One request with extra headers (each sent as given, repeats
    /// included) and no body; errors are returned.
    pub async fn try_request_with_headers(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<Resp> {
        self.try_request_with(method, path, headers, None).await
    }

    async fn try_request_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> std::io::Result<Resp> {
        self.sender.ready().await.map_err(std::io::Error::other)?;
        let mut builder = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let body = match body {
            Some(b) => {
                builder = builder.header("content-type", "application/json");
                Full::new(Bytes::copy_from_slice(b))
            }
            None => Full::new(Bytes::new()),
        };
        let req = builder.body(body).map_err(std::io::Error::other)?;
        send(&mut self.sender, req).await
    }

    /// Sends a request and returns the response with its body unread (for
    /// log streams).
    pub async fn stream(
        &mut self,
        method: &str,
        path: &str,
    ) -> hyper::Response<hyper::body::Incoming> {
        self.sender.ready().await.unwrap();
        let req = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost")
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.sender.send_request(req).await.unwrap()
    }
}

/// Reads one line (up to `\n`) from a streaming body.
pub async fn next_line(body: &mut hyper::body::Incoming, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=pos).collect();
            return Some(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
        let frame = body.frame().await?.ok()?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
        }
    }
}

/// Sends `req` on an HTTP/1.1 connection and reads the whole response.
pub async fn send(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    req: http::Request<Full<Bytes>>,
) -> std::io::Result<Resp> {
    let resp = sender
        .send_request(req)
        .await
        .map_err(std::io::Error::other)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(std::io::Error::other)?
        .to_bytes()
        .to_vec();
    Ok(Resp {
        status,
        headers,
        body,
    })
}
