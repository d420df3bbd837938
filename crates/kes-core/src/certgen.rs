//! Certificate generation: `kes identity new`, the API-key client
//! certificate and the `kes server --dev` server certificate.

use crate::apikey::{ApiKey, ClientCertificate};
use crate::identity::Identity;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::PrivatePkcs8KeyDer;
use std::net::IpAddr;
use std::time::Duration;
use zeroize::Zeroizing;

/// How long the `kes server --dev` certificate is valid.
const DEV_SERVER_VALIDITY: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// Why a certificate could not be made.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CertError {
    /// The underlying generator failed.
    #[error("failed to create certificate: {0}")]
    Generate(String),
}

impl From<rcgen::Error> for CertError {
    fn from(err: rcgen::Error) -> Self {
        Self::Generate(err.to_string())
    }
}

/// What goes into a certificate for an Ed25519 identity.
#[derive(Debug, Clone)]
pub struct CertificateOptions {
    /// The subject common name; `None` uses the identity itself, as the
    /// certificate the SDK builds from an API key does.
    pub subject: Option<String>,
    /// IP subject alternative names.
    pub ip_addresses: Vec<IpAddr>,
    /// DNS subject alternative names.
    pub dns_names: Vec<String>,
    /// How long from now the certificate is valid.
    pub validity: Duration,
    /// Whether the certificate may also serve as a TLS server certificate
    /// (serverAuth in addition to clientAuth).
    pub server_auth: bool,
}

impl Default for CertificateOptions {
    /// The `kes identity new` defaults: no SANs, 720h, server and client use.
    fn default() -> Self {
        Self {
            subject: None,
            ip_addresses: Vec::new(),
            dns_names: Vec::new(),
            validity: Duration::from_secs(720 * 60 * 60),
            server_auth: true,
        }
    }
}

/// The result of `kes identity new`: a fresh API key, its identity and a
/// certificate plus PKCS#8 private key for it.
pub struct NewIdentity {
    /// The API key whose seed is the private key.
    pub api_key: ApiKey,
    /// The identity of the certificate (and of the API key).
    pub identity: Identity,
    /// The certificate and private key.
    pub certificate: ClientCertificate,
}

impl std::fmt::Debug for NewIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewIdentity")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Creates a fresh Ed25519 key and a self-signed certificate for it.
pub fn new_identity(options: &CertificateOptions) -> Result<NewIdentity, CertError> {
    let api_key = ApiKey::generate();
    let certificate = certificate_for_api_key(&api_key, options)?;
    Ok(NewIdentity {
        identity: api_key.identity(),
        api_key,
        certificate,
    })
}

/// A self-signed certificate for the Ed25519 key of `api_key`.
pub fn certificate_for_api_key(
    api_key: &ApiKey,
    options: &CertificateOptions,
) -> Result<ClientCertificate, CertError> {
    let private_key_der = api_key.to_pkcs8_der();
    let key_pair = KeyPair::try_from(&PrivatePkcs8KeyDer::from(private_key_der.as_slice()))?;

    let subject = match &options.subject {
        Some(subject) => subject.clone(),
        None => api_key.identity().to_string(),
    };
    let mut params = base_params(&subject, options.validity)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = if options.server_auth {
        vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ]
    } else {
        vec![ExtendedKeyUsagePurpose::ClientAuth]
    };
    params.subject_alt_names = subject_alt_names(&options.dns_names, &options.ip_addresses)?;

    let certificate = params.self_signed(&key_pair)?;
    Ok(ClientCertificate {
        certificate_der: certificate.der().to_vec(),
        private_key_der,
    })
}

/// A certificate with its PKCS#8 private key; the same type as the
/// API-key client certificate.
pub type ServerCertificate = ClientCertificate;

/// The `kes server --dev` certificate: ECDSA P-256, CN and DNS SAN
/// `localhost`, the given IP SANs, valid for 90 days.
pub fn dev_server_certificate(ip_addresses: &[IpAddr]) -> Result<ServerCertificate, CertError> {
    let key_pair = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = base_params("localhost", DEV_SERVER_VALIDITY)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.subject_alt_names = subject_alt_names(&["localhost".to_string()], ip_addresses)?;
    let certificate = params.self_signed(&key_pair)?;
    Ok(ServerCertificate {
        certificate_der: certificate.der().to_vec(),
        private_key_der: Zeroizing::new(key_pair.serialize_der()),
    })
}

/// Parameters shared by every certificate made here: random 128-bit serial,
/// CN only, valid from now, basic constraints present and not a CA.
fn base_params(common_name: &str, validity: Duration) -> Result<CertificateParams, CertError> {
    let mut serial = [0u8; 16];
    crate::random::fill(&mut serial);
    let not_before = time::OffsetDateTime::now_utc();
    let not_after = time::Duration::try_from(validity)
        .ok()
        .and_then(|validity| not_before.checked_add(validity))
        // X.509 GeneralizedTime ends at year 9999.
        .filter(|t| t.year() <= 9999)
        .ok_or_else(|| CertError::Generate("expiry is too far in the future".into()))?;

    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);

    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.distinguished_name = name;
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    Ok(params)
}

fn subject_alt_names(
    dns_names: &[String],
    ip_addresses: &[IpAddr],
) -> Result<Vec<SanType>, CertError> {
    let mut sans = Vec::with_capacity(dns_names.len() + ip_addresses.len());
    for name in dns_names {
        let name = name
            .clone()
            .try_into()
            .map_err(|_| CertError::Generate(format!("invalid DNS name '{name}'")))?;
        sans.push(SanType::DnsName(name));
    }
    sans.extend(ip_addresses.iter().copied().map(SanType::IpAddress));
    Ok(sans)
}
