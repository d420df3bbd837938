//! `kes-bench bare-server`: the floor under KES. The same TLS (rustls with
//! aws-lc-rs, TLS 1.3 and 1.2, a mandatory but unverified client
//! certificate, session cache and tickets, ALPN h2 and http/1.1) and the
//! same hyper server as KES, answering every request with a fixed reply the
//! size of a generate response. No routing, no policy, no crypto: what KES
//! reaches here is the limit of the stack on this machine.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A generate reply: 32 plaintext bytes and a 76-byte ciphertext, base64,
/// with Go's trailing newline.
fn generate_reply() -> Bytes {
    let plaintext = "A".repeat(43) + "=";
    let ciphertext = "B".repeat(104);
    Bytes::from(format!(
        "{{\"plaintext\":\"{plaintext}\",\"ciphertext\":\"{ciphertext}\"}}\n"
    ))
}

/// Exactly the TLS configuration of `kes server --dev`, so the comparison
/// measures everything but the TLS setup.
fn tls_config() -> Result<Arc<rustls::ServerConfig>, String> {
    let ips = [std::net::IpAddr::from([127, 0, 0, 1])];
    let cert = kes_core::certgen::dev_server_certificate(&ips)
        .map_err(|e| format!("cannot create a certificate: {e}"))?;
    kes_server::dev_tls(&cert)
        .map(|tls| tls.config.clone())
        .map_err(|e| e.to_string())
}

/// Serves until the process is killed. Prints the address as KES does.
pub(crate) fn serve(addr: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("failed to start runtime: {e}"))?;
    runtime.block_on(async {
        let addr: SocketAddr = addr
            .parse()
            .map_err(|_| format!("invalid address '{addr}': expected IP:PORT"))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        let acceptor = tokio_rustls::TlsAcceptor::from(tls_config()?);
        let reply = generate_reply();
        println!("API         · https://{local}");
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let reply = reply.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let reply = reply.clone();
                    async move {
                        // Read the request body as KES does before answering.
                        let _ = req.into_body().collect().await;
                        let mut resp = hyper::Response::new(Full::new(reply));
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static("application/json"),
                        );
                        Ok::<_, Infallible>(resp)
                    }
                });
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder
                    .http1()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(5))
                    .keep_alive(true);
                builder
                    .http2()
                    .timer(TokioTimer::new())
                    .max_concurrent_streams(250);
                let _ = builder.serve_connection(TokioIo::new(tls), service).await;
            });
        }
    })
}
