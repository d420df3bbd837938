//! [`ClientBuilder`]: endpoints, credentials and trust, then one
//! [`Client`].

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

use super::tls::root_store;
use super::{Client, Inner};
use crate::error::{Cause, Error};
use kes_core::tls::{ClientConfigError, ServerTrust};

/// The client certificate presented to the server.
enum ClientAuth {
    None,
    Certificate(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>),
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    endpoints: Vec<String>,
    auth: ClientAuth,
    ca_files: Vec<PathBuf>,
    insecure: bool,
    timeout: Duration,
    /// The first error of a builder step; reported by `build`.
    error: Option<Error>,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("endpoints", &self.endpoints)
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A builder with no endpoints and no credentials.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            endpoints: Vec::new(),
            auth: ClientAuth::None,
            ca_files: Vec::new(),
            insecure: false,
            timeout: Duration::from_secs(30),
            error: None,
        }
    }
}

/// `host:port` from an endpoint as users write it: scheme stripped
/// (`http://` too: KES is HTTPS only), trailing `/` removed.
pub fn normalize_endpoint(endpoint: &str) -> Result<String, Error> {
    let e = endpoint.trim();
    let e = e
        .strip_prefix("https://")
        .or_else(|| e.strip_prefix("http://"))
        .unwrap_or(e);
    let e = e.trim_end_matches('/');
    if e.is_empty() || e.contains('/') || e.contains(char::is_whitespace) {
        return Err(Error::Config(format!("invalid endpoint '{endpoint}'")));
    }
    let uri: http::Uri = format!("https://{e}/")
        .parse()
        .map_err(|_| Error::Config(format!("invalid endpoint '{endpoint}'")))?;
    if uri.host().is_none_or(str::is_empty) {
        return Err(Error::Config(format!("invalid endpoint '{endpoint}'")));
    }
    Ok(e.to_owned())
}

impl ClientBuilder {
    /// The servers to talk to (`host:port`, optionally with `https://`).
    pub fn endpoints<I, S>(mut self, endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for e in endpoints {
            match normalize_endpoint(e.as_ref()) {
                Ok(e) => self.endpoints.push(e),
                Err(err) => {
                    self.error.get_or_insert(err);
                }
            }
        }
        self
    }

    /// Authenticate with an API key (a certificate derived from it).
    pub fn api_key(mut self, key: &kes_core::ApiKey) -> Self {
        match key.client_certificate() {
            Ok(cc) => {
                let cert = CertificateDer::from(cc.certificate_der);
                let key = PrivateKeyDer::Pkcs8(cc.private_key_der.to_vec().into());
                self.auth = ClientAuth::Certificate(vec![cert], key);
            }
            Err(e) => {
                self.error
                    .get_or_insert(Error::ApiKeyCertificate(Cause::new(e)));
            }
        }
        self
    }

    /// Authenticate with a PEM certificate (chain) and private key; the
    /// password decrypts a legacy encrypted PEM key.
    pub fn certificate_pem(mut self, cert: &[u8], key: &[u8], password: Option<&str>) -> Self {
        match crate::pem::certificates(cert)
            .and_then(|c| crate::pem::private_key(key, password).map(|k| (c, k)))
        {
            Ok((certs, key)) => self.auth = ClientAuth::Certificate(certs, key),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Authenticate with a PEM certificate file and private-key file.
    pub fn certificate_files(
        self,
        cert: impl AsRef<Path>,
        key: impl AsRef<Path>,
        password: Option<&str>,
    ) -> Self {
        let read = |what, path: &Path| {
            std::fs::read(path)
                .map(Zeroizing::new)
                .map_err(|e| Error::File {
                    what,
                    path: path.to_owned(),
                    source: Cause::new(e),
                })
        };
        let cert_pem = read("client certificate", cert.as_ref());
        let key_pem = read("client private key", key.as_ref());
        match (cert_pem, key_pem) {
            (Ok(c), Ok(k)) => self.certificate_pem(&c, &k, password),
            (Err(e), _) | (_, Err(e)) => {
                let mut b = self;
                b.error.get_or_insert(e);
                b
            }
        }
    }

    /// Trust the CA certificate(s) in this PEM file in addition to the
    /// system roots.
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Self {
        self.ca_files.push(path.as_ref().to_owned());
        self
    }

    /// Skip verification of the server certificate (testing only).
    pub fn insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// Timeout of one request (not of log streams). Default 30 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Builds the client.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.endpoints.is_empty() {
            return Err(Error::Config("no KES server endpoint specified".into()));
        }
        let trust = if self.insecure {
            ServerTrust::AnyCertificate
        } else {
            ServerTrust::Roots(root_store(&self.ca_files)?)
        };
        let identity = match self.auth {
            ClientAuth::None => None,
            ClientAuth::Certificate(chain, key) => Some((chain, key)),
        };
        let config = kes_core::tls::client_config(trust, identity).map_err(|e| match e {
            ClientConfigError::ProtocolVersions(e) => Error::TlsConfig(Cause::new(e)),
            ClientConfigError::ClientCertificate(e) => Error::ClientCertificate(Cause::new(e)),
        })?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(https);
        Ok(Client {
            inner: Arc::new(Inner {
                endpoints: self.endpoints,
                http,
                preferred: AtomicUsize::new(0),
                timeout: self.timeout,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_normalized() {
        assert_eq!(
            normalize_endpoint("127.0.0.1:7373").unwrap(),
            "127.0.0.1:7373"
        );
        assert_eq!(
            normalize_endpoint("https://kes.example:7373/").unwrap(),
            "kes.example:7373"
        );
        assert_eq!(
            normalize_endpoint(" http://[::1]:7373 ").unwrap(),
            "[::1]:7373"
        );
        assert!(normalize_endpoint("").is_err());
        assert!(normalize_endpoint("https://").is_err());
        assert!(normalize_endpoint("host:7373/v1").is_err());
        assert!(normalize_endpoint("host name:1").is_err());
    }

    #[test]
    fn builder_rejects_bad_input() {
        let err = Client::builder().build().unwrap_err();
        assert_eq!(err.to_string(), "no KES server endpoint specified");
        let err = Client::builder()
            .endpoints(["host:1", "a b"])
            .build()
            .unwrap_err();
        assert_eq!(err.to_string(), "invalid endpoint 'a b'");
        let err = Client::builder()
            .endpoints(["127.0.0.1:1"])
            .certificate_files("/nonexistent/c.pem", "/nonexistent/k.pem", None)
            .build()
            .unwrap_err();
        assert!(err
            .to_string()
            .starts_with("failed to read client certificate"));
    }
}
