//! The rustls configuration of a TLS client (the SDK, the Vault key store,
//! kes-bench, the test client): one place that decides the crypto provider,
//! the protocol versions and how the server certificate is checked. Each
//! caller finds its trusted certificates (the system's, CA files) and its
//! client certificate in its own way and names its own errors: reading
//! them is I/O, which kes-core does not do.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// How a client checks the server's certificate.
#[derive(Debug)]
pub enum ServerTrust {
    /// The certificate must chain to one of these roots.
    Roots(RootCertStore),
    /// Any certificate is accepted (`--insecure`: development servers);
    /// the handshake signatures are still checked.
    AnyCertificate,
}

/// Why a client configuration could not be built. `Display` names the
/// step; `source()` is rustls's reason.
#[derive(Debug)]
pub enum ClientConfigError {
    /// The crypto provider supports none of the protocol versions.
    ProtocolVersions(rustls::Error),
    /// The client certificate and private key do not fit together (or the
    /// key is of a kind rustls cannot sign with).
    ClientCertificate(rustls::Error),
}

impl ClientConfigError {
    /// rustls's reason.
    pub fn rustls_error(&self) -> &rustls::Error {
        match self {
            Self::ProtocolVersions(e) | Self::ClientCertificate(e) => e,
        }
    }
}

impl std::fmt::Display for ClientConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ProtocolVersions(_) => "no usable TLS protocol version",
            Self::ClientCertificate(_) => "invalid client certificate or private key",
        })
    }
}

impl std::error::Error for ClientConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.rustls_error())
    }
}

/// The crypto provider of every KES TLS connection: aws-lc-rs, the one the
/// server uses too.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client configuration: TLS 1.3 and 1.2, the server checked as `trust`
/// says, presenting `identity` (a certificate chain and its private key)
/// when given. ALPN and session resumption are rustls's defaults; callers
/// that need others set them on the result.
pub fn client_config(
    trust: ServerTrust,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, ClientConfigError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(ClientConfigError::ProtocolVersions)?;
    let builder = match trust {
        ServerTrust::Roots(roots) => builder.with_root_certificates(roots),
        ServerTrust::AnyCertificate => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoServerVerification::new(provider))),
    };
    match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(ClientConfigError::ClientCertificate),
        None => Ok(builder.with_no_client_auth()),
    }
}

/// Accepts any server certificate but still checks the handshake
/// signatures, for `--insecure` (the CLI, kes-bench).
#[derive(Debug)]
pub struct NoServerVerification(Arc<CryptoProvider>);

impl NoServerVerification {
    /// A verifier checking signatures with `provider`'s algorithms.
    pub fn new(provider: Arc<CryptoProvider>) -> Self {
        Self(provider)
    }
}

impl ServerCertVerifier for NoServerVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_that_does_not_fit_the_certificate_is_a_client_certificate_error() {
        let a = crate::ApiKey::generate().client_certificate().unwrap();
        let b = crate::ApiKey::generate().client_certificate().unwrap();
        let err = client_config(
            ServerTrust::AnyCertificate,
            Some((vec![a.certificate()], b.private_key())),
        )
        .unwrap_err();
        assert!(matches!(err, ClientConfigError::ClientCertificate(_)));
        assert_eq!(err.to_string(), "invalid client certificate or private key");
        assert!(std::error::Error::source(&err).is_some());

        client_config(
            ServerTrust::Roots(RootCertStore::empty()),
            Some((vec![a.certificate()], a.private_key())),
        )
        .unwrap();
    }
}
