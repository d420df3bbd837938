//! The server's TLS configuration (`tls:` in the config): rustls, TLS 1.2 and 1.3,
//! ALPN `h2` and `http/1.1`, client certificates.
//!
//! With `tls.auth` off (the default) a client certificate is required but
//! its chain is NOT verified: the identity is the hash of its public key and
//! authorization is by policy. The handshake signature is still verified, so
//! a client must hold the private key of the certificate it presents. With
//! `tls.auth: on` the chain must verify against `tls.ca` (or the system
//! roots). If any route skips authentication, a certificate is only
//! requested, and routes that need one answer 400 without it.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("failed to read '{path}': {err}")]
    Read { path: String, err: std::io::Error },
    /// The certificate or key is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// Where the client verifier gets its roots when `tls.auth` is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// Any certificate; identity by public key (`tls.auth` empty or off).
    Any,
    /// Chain verified against the CA (`tls.auth: on`).
    Verify,
}

/// The most certificates a client may send. Only the first one counts (its
/// key signs the handshake); the rest are intermediates, and a chain longer
/// than this is no honest client's.
pub(crate) const MAX_CLIENT_CHAIN_CERTIFICATES: usize = 4;
/// The most bytes of certificates a client may send.
pub(crate) const MAX_CLIENT_CHAIN_BYTES: usize = 16 * 1024;

/// The server's TLS: the rustls configuration plus the client-certificate
/// verifier, which resumed sessions are checked against again (rustls
/// resumes a session without looking at its certificates).
pub struct ServerTls {
    /// What new connections are accepted with.
    pub config: Arc<rustls::ServerConfig>,
    /// The verifier `config` uses for client certificates.
    pub client_verifier: Arc<dyn ClientCertVerifier>,
    /// Whether client certificates are verified (`tls.auth: on`): only
    /// then does a connection end when its certificate expires
    /// ([`ServerTls::client_not_after`]).
    pub verifies_client_certificates: bool,
}

impl ServerTls {
    /// Checks a resumed session's client certificates as a full handshake
    /// would check them now: an expired (or otherwise no longer valid)
    /// certificate must not live on in a session ticket.
    pub fn verify_resumed(
        &self,
        peer_certificates: &[CertificateDer<'_>],
    ) -> Result<(), rustls::Error> {
        match peer_certificates.split_first() {
            Some((end_entity, intermediates)) => self
                .client_verifier
                .verify_client_cert(end_entity, intermediates, UnixTime::now())
                .map(|_| ()),
            None if self.client_verifier.client_auth_mandatory() => {
                Err(rustls::Error::NoCertificatesPresented)
            }
            None => Ok(()),
        }
    }
}

impl ServerTls {
    /// When the client certificate of a new connection stops being valid,
    /// with `tls.auth: on`: the earliest `notAfter` of the certificates the
    /// client sent (the leaf and any intermediates its chain was verified
    /// with), read once per connection so that each request only compares
    /// it with the clock. `None` with `tls.auth` off, where certificates
    /// are not verified and self-signed ones that expired long ago are
    /// normal (the Go KES does not check them either), or without a
    /// certificate.
    pub fn client_not_after(
        &self,
        peer_certificates: &[CertificateDer<'_>],
    ) -> Option<std::time::SystemTime> {
        use x509_parser::prelude::*;
        if !self.verifies_client_certificates {
            return None;
        }
        peer_certificates
            .iter()
            .filter_map(|der| {
                let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
                let secs = cert.validity().not_after.timestamp();
                let secs = u64::try_from(secs).unwrap_or(0);
                Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            })
            .min()
    }
}

/// What the server's TLS needs.
pub(crate) struct TlsSettings<'a> {
    pub certificates: Vec<CertificateDer<'static>>,
    pub private_key: PrivateKeyDer<'static>,
    pub client_auth: ClientAuth,
    pub ca: Option<&'a Path>,
    /// A client certificate is optional at the TLS layer (some route
    /// skips authentication).
    pub optional_client_cert: bool,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|err| TlsError::Read {
        path: path.display().to_string(),
        err,
    })
}

/// Reads the server certificate chain and private key from PEM files;
/// `password` decrypts a legacy encrypted PEM key.
pub(crate) fn load_identity(
    cert: &Path,
    key: &Path,
    password: Option<&str>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs = kes_core::pem::parse_certificates(&read(cert)?).map_err(|e| {
        TlsError::Invalid(format!("invalid TLS certificate '{}': {e}", cert.display()))
    })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid(format!(
            "invalid TLS certificate '{}': no certificate found",
            cert.display()
        )));
    }
    let key_pem = zeroize::Zeroizing::new(read(key)?);
    let private_key = kes_core::pem::parse_private_key(&key_pem, password.map(str::as_bytes))
        .map_err(|e| {
            // The Go KES's wording ("https: private key is encrypted: password
            // required"), plus the file.
            TlsError::Invalid(format!("https: {e} (tls.key '{}')", key.display()))
        })?;
    Ok((certs, private_key))
}

/// Checks that the server certificate names the server: the Go KES refuses
/// to start with a certificate that has no DNS name or IP address as a SAN.
pub(crate) fn check_san(cert: &CertificateDer<'_>) -> Result<(), TlsError> {
    use x509_parser::prelude::*;
    let (_, parsed) = X509Certificate::from_der(cert.as_ref())
        .map_err(|e| TlsError::Invalid(format!("invalid TLS certificate: {e}")))?;
    let has_san = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .any(|n| matches!(n, GeneralName::DNSName(_) | GeneralName::IPAddress(_)))
        })
        .unwrap_or(false);
    if has_san {
        Ok(())
    } else {
        Err(TlsError::Invalid(
            "invalid TLS certificate: certificate does not contain any DNS or IP address as SAN"
                .into(),
        ))
    }
}

fn load_roots(ca: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) if path.is_dir() => {
            let entries = std::fs::read_dir(path).map_err(|err| TlsError::Read {
                path: path.display().to_string(),
                err,
            })?;
            for entry in entries.flatten() {
                let p = entry.path();
                if p.is_file() {
                    add_pem_roots(&mut roots, &p)?;
                }
            }
        }
        Some(path) => add_pem_roots(&mut roots, path)?,
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(TlsError::Invalid(
            "tls.auth is on but no CA certificate could be loaded".into(),
        ));
    }
    Ok(roots)
}

fn add_pem_roots(roots: &mut RootCertStore, path: &Path) -> Result<(), TlsError> {
    let certs = kes_core::pem::parse_certificates(&read(path)?).map_err(|e| {
        TlsError::Invalid(format!("invalid CA certificate '{}': {e}", path.display()))
    })?;
    for c in certs {
        roots.add(c).map_err(|e| {
            TlsError::Invalid(format!("invalid CA certificate '{}': {e}", path.display()))
        })?;
    }
    Ok(())
}

/// Builds the rustls server configuration.
pub(crate) fn server_config(settings: TlsSettings<'_>) -> Result<Arc<ServerTls>, TlsError> {
    check_san(&settings.certificates[0])?;
    let provider = provider();
    let chain = match settings.client_auth {
        ClientAuth::Any => None,
        ClientAuth::Verify => {
            let roots = Arc::new(load_roots(settings.ca)?);
            let builder = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let builder = if settings.optional_client_cert {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            Some(
                builder
                    .build()
                    .map_err(|e| TlsError::Invalid(format!("invalid client CA: {e}")))?,
            )
        }
    };
    let verifier: Arc<dyn ClientCertVerifier> = Arc::new(ClientVerifier {
        chain,
        mandatory: !settings.optional_client_cert,
        provider: provider.clone(),
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Invalid(e.to_string()))?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(settings.certificates, settings.private_key)
        .map_err(|e| TlsError::Invalid(format!("invalid TLS certificate or private key: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    // Handshakes dominate the cost of short-lived connections, so sessions
    // resume, but only through tickets (TLS 1.2 and 1.3): the session, with
    // the client's certificates, travels encrypted with the client and the
    // server keeps nothing. A server-side session cache would let any
    // stranger fill the server's memory with its certificate chains, one
    // full TLS 1.2 handshake at a time.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()
        .map_err(|e| TlsError::Invalid(format!("failed to create session ticketer: {e}")))?;
    Ok(Arc::new(ServerTls {
        config: Arc::new(config),
        client_verifier: verifier,
        verifies_client_certificates: settings.client_auth == ClientAuth::Verify,
    }))
}

/// The client-certificate check of every handshake (and of every resumed
/// session, [`ServerTls::verify_resumed`]): chains longer than any honest
/// client sends are refused before anything else looks at them (rustls
/// keeps the chain for the session); then, with `tls.auth: on`, the chain
/// must verify against the CA roots, while with `tls.auth` off any
/// certificate is accepted. Either way the handshake signature is verified,
/// so a client must hold the private key of the certificate it presents.
#[derive(Debug)]
struct ClientVerifier {
    /// The chain verifier of `tls.auth: on`; `None` accepts any chain.
    chain: Option<Arc<dyn ClientCertVerifier>>,
    /// Whether a certificate is required (not just requested).
    mandatory: bool,
    provider: Arc<CryptoProvider>,
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.chain.as_ref().map_or(&[], |v| v.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let bytes = end_entity.len() + intermediates.iter().map(|c| c.len()).sum::<usize>();
        if intermediates.len() + 1 > MAX_CLIENT_CHAIN_CERTIFICATES || bytes > MAX_CLIENT_CHAIN_BYTES
        {
            return Err(rustls::Error::General(format!(
                "client certificate chain too large: {} certificates, {bytes} bytes (at most {MAX_CLIENT_CHAIN_CERTIFICATES} and {MAX_CLIENT_CHAIN_BYTES})",
                intermediates.len() + 1
            )));
        }
        match &self.chain {
            Some(chain) => chain.verify_client_cert(end_entity, intermediates, now),
            None => Ok(ClientCertVerified::assertion()),
        }
    }

    // The chain verifier is built with the same provider, so it verifies
    // handshake signatures with these same algorithms.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
