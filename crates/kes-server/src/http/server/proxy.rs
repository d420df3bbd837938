//! TLS-terminating proxies (`tls.proxy`): a request that arrives on a
//! connection of a listed proxy acts with the identity of the client
//! certificate the proxy forwards in a header, never with the proxy's own.
//! From anyone else the header means nothing: it is not read, so a client
//! that forwards the admin's certificate itself stays who it is.

use kes_core::{ApiError, Identity};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Forwarded certificates whose identity is remembered (by the bytes of
/// the header value): a proxy forwards the same few certificates again
/// and again, and parsing one costs more than the rest of a small request.
const REMEMBERED_CERTIFICATES: usize = 1024;
/// Larger certificates are parsed on every request instead: client
/// certificates take 0.5–2 KiB, and a header may hold 64 KiB, so this keeps
/// what the remembered ones hold to 4 MiB whatever a proxy forwards.
const REMEMBERED_MAX_BYTES: usize = 4096;

/// 400 when a listed proxy forwards no certificate (the Go KES's words).
const NO_CERTIFICATE: ApiError = ApiError::from_static(400, "no client certificate is present");
/// 400 when a listed proxy forwards several.
const TOO_MANY: ApiError = ApiError::from_static(400, "too many client certificates are present");
/// 400 when the header holds no usable certificate.
const INVALID: ApiError = ApiError::from_static(400, "invalid client certificate");
/// 403 when `tls.auth: on` and the forwarded certificate does not verify
/// against `tls.ca` (the reason goes to the error log).
const NOT_VERIFIED: ApiError = ApiError::from_static(403, "client certificate verification failed");

/// The `tls.proxy` settings of one configuration.
pub struct TlsProxies {
    identities: Vec<Identity>,
    header: http::HeaderName,
    /// SHA-256 of a header value → the certificate it holds (DER) and its
    /// identity. Cleared when full: simpler than an LRU, and a proxy's
    /// working set refills it at once.
    remembered: Mutex<HashMap<[u8; 32], Arc<ForwardedCertificate>>>,
}

struct ForwardedCertificate {
    der: rustls::pki_types::CertificateDer<'static>,
    identity: Identity,
}

/// Who a request through a listed proxy acts as, and where it came from.
pub(super) struct Forwarded {
    /// The forwarded certificate's identity, or the error to answer when
    /// the route needs one.
    pub(super) identity: Result<Identity, ApiError>,
    /// The first address of `X-Forwarded-For`, if it is one.
    pub(super) client_ip: Option<IpAddr>,
}

impl Default for TlsProxies {
    fn default() -> Self {
        TlsProxies::new(Vec::new(), None)
    }
}

impl TlsProxies {
    /// The proxies `identities`, forwarding certificates in `header`
    /// ([`crate::config::DEFAULT_PROXY_CERT_HEADER`] when `None`; the config
    /// check has made sure it is a header name).
    pub fn new(identities: Vec<Identity>, header: Option<&str>) -> Self {
        let header = header
            .and_then(|h| http::HeaderName::from_bytes(h.as_bytes()).ok())
            .unwrap_or_else(|| http::HeaderName::from_static("x-tls-client-cert"));
        TlsProxies {
            identities,
            header,
            remembered: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `identity` is a listed proxy.
    pub fn is_proxy(&self, identity: &Identity) -> bool {
        self.identities.contains(identity)
    }

    /// Who a request through a listed proxy (at `peer`) acts as. `tls`
    /// verifies the forwarded certificate as a handshake would (with
    /// `tls.auth: on`).
    pub(super) fn forwarded(
        &self,
        headers: &http::HeaderMap,
        tls: &crate::http::tls::ServerTls,
        peer: IpAddr,
    ) -> Forwarded {
        Forwarded {
            identity: self.forwarded_identity(headers, tls, peer),
            client_ip: forwarded_for(headers),
        }
    }

    fn forwarded_identity(
        &self,
        headers: &http::HeaderMap,
        tls: &crate::http::tls::ServerTls,
        peer: IpAddr,
    ) -> Result<Identity, ApiError> {
        let mut values = headers.get_all(&self.header).iter();
        let value = values.next().ok_or(NO_CERTIFICATE)?;
        if values.next().is_some() {
            return Err(TOO_MANY);
        }
        let key: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let remembered = kes_core::sync::lock(&self.remembered).get(&key).cloned();
        let certificate = match remembered {
            Some(c) => c,
            None => {
                let certificate = Arc::new(parse(value.as_bytes())?);
                if certificate.der.len() <= REMEMBERED_MAX_BYTES {
                    let mut remembered = kes_core::sync::lock(&self.remembered);
                    if remembered.len() >= REMEMBERED_CERTIFICATES {
                        remembered.clear();
                    }
                    remembered.insert(key, certificate.clone());
                }
                certificate
            }
        };
        // Verified on every request, not remembered: the certificate may
        // expire, and a reload may change the CA.
        if let Err(err) = tls.verify_resumed(std::slice::from_ref(&certificate.der)) {
            tracing::info!(
                proxy_ip = %peer,
                identity = %certificate.identity,
                error = %err,
                "http: forwarded client certificate refused"
            );
            return Err(NOT_VERIFIED);
        }
        Ok(certificate.identity.clone())
    }
}

/// [`parse`]'s identity, for the fuzz targets.
pub(super) fn parse_identity(value: &[u8]) -> Result<Identity, (u16, String)> {
    parse(value)
        .map(|c| c.identity)
        .map_err(|e| (e.status(), e.message().to_string()))
}

/// The certificate of a header value: URL-escaped PEM (nginx's
/// `$ssl_client_escaped_cert`, the Go KES's format) or base64 DER
/// (HAProxy's `%[ssl_c_der,base64]`).
fn parse(value: &[u8]) -> Result<ForwardedCertificate, ApiError> {
    let trimmed = value.trim_ascii();
    let ders: Vec<rustls::pki_types::CertificateDer<'static>> =
        if trimmed.starts_with(b"-----") || trimmed.starts_with(b"%2D%2D") {
            // Percent-decoding only: Go's QueryUnescape would turn a literal
            // `+` of the base64 into a space, so a `+` stays a `+` here,
            // whether the proxy escaped it (`%2B`) or not.
            let pem: Vec<u8> = percent_encoding::percent_decode(trimmed).collect();
            kes_core::pem::parse_certificates(&pem).map_err(|_| INVALID)?
        } else {
            use base64::Engine as _;
            let der = base64::engine::general_purpose::STANDARD
                .decode(trimmed)
                .map_err(|_| INVALID)?;
            vec![der.into()]
        };
    let identity = kes_core::identity::identify(&ders).map_err(|err| match err {
        kes_core::identity::IdentityError::TooManyCertificates => TOO_MANY,
        _ => INVALID,
    })?;
    let der = ders.into_iter().next().ok_or(NO_CERTIFICATE)?;
    Ok(ForwardedCertificate { der, identity })
}

/// The client address a listed proxy names: the first entry of the first
/// `X-Forwarded-For` header that is an address (RFC 7239's `unknown` and
/// anything unparsable are passed over). `[v6]:port` and `v4:port` forms
/// are read too.
fn forwarded_for(headers: &http::HeaderMap) -> Option<IpAddr> {
    let value = headers.get("x-forwarded-for")?.to_str().ok()?;
    value.split(',').map(str::trim).find_map(|entry| {
        entry
            .parse::<IpAddr>()
            .ok()
            .or_else(|| entry.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn forwarded_for_takes_the_first_address() {
        let ip = |v: &str| forwarded_for(&headers(&[("x-forwarded-for", v)]));
        assert_eq!(ip("10.1.2.3"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(ip("10.1.2.3, 10.9.9.9"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(ip("unknown, 10.9.9.9"), Some("10.9.9.9".parse().unwrap()));
        assert_eq!(
            ip("[2001:db8::1]:443"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(ip("10.1.2.3:8080"), Some("10.1.2.3".parse().unwrap()));
        assert_eq!(ip("garbage"), None);
        assert_eq!(forwarded_for(&headers(&[])), None);
    }

    #[test]
    fn garbage_is_an_invalid_certificate() {
        for value in [
            &b"not base64 !"[..],
            b"-----BEGIN CERTIFICATE-----\nAAAA\n",
            b"AAAA",
        ] {
            assert_eq!(parse(value).err(), Some(INVALID), "{value:?}");
        }
    }
}
