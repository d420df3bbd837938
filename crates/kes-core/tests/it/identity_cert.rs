//! Identities of certificates (SHA-256 of the SubjectPublicKeyInfo) and
//! leaf selection.

use kes_core::apikey::ApiKey;
use kes_core::certgen::{self, CertificateOptions};
use kes_core::error::ApiError;
use kes_core::identity::{identify, Identity, IdentityError};
use std::net::IpAddr;
use x509_parser::extensions::{GeneralName, ParsedExtension};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/data/{name}",
        crate::manifest_dir().display()
    ))
    .unwrap()
}

fn der(name: &str) -> Vec<u8> {
    kes_core::pem::parse_certificates(&data(name)).unwrap()[0].to_vec()
}

fn openssl_identity(name: &str) -> String {
    String::from_utf8(data(&format!("{name}.identity")))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn identity_equals_openssl_spki_hash() {
    for name in ["ec.crt", "ca.crt"] {
        let identity = Identity::from_certificate_der(&der(name)).unwrap();
        assert_eq!(identity.as_str(), openssl_identity(name), "{name}");
        assert!(identity.is_hash());
    }
    assert_eq!(der("ec.crt"), data("ec.crt.der"));
}

#[test]
fn malformed_certificates_are_errors() {
    let cert = data("ec.crt.der");
    assert!(Identity::from_certificate_der(&[]).is_err());
    assert!(Identity::from_certificate_der(&cert[..cert.len() - 1]).is_err());
    let mut trailing = cert.clone();
    trailing.push(0);
    let err = Identity::from_certificate_der(&trailing).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid certificate: "),
        "{err}"
    );
    assert!(Identity::from_certificate_der(b"-----BEGIN CERTIFICATE-----").is_err());
}

#[test]
fn identify_takes_only_the_first_certificate() {
    let leaf = der("ec.crt");
    let ca = der("ca.crt");
    let expected = openssl_identity("ec.crt");

    assert_eq!(identify(&[&leaf]).unwrap().as_str(), expected);
    assert_eq!(identify(&[&leaf, &ca]).unwrap().as_str(), expected);
    // A CA first: the leaf behind it proves nothing (its key did not sign
    // the handshake), so there is no identity.
    assert_eq!(
        ApiError::from(identify(&[&ca, &leaf]).unwrap_err()),
        ApiError::CERTIFICATE_REQUIRED
    );

    let other = ApiKey::generate()
        .client_certificate()
        .unwrap()
        .certificate_der;
    assert_eq!(
        ApiError::from(identify(&[&leaf, &other]).unwrap_err()),
        ApiError::TOO_MANY_CERTIFICATES
    );
    assert_eq!(
        ApiError::from(identify(&[&ca]).unwrap_err()),
        ApiError::CERTIFICATE_REQUIRED
    );
    let none: [&[u8]; 0] = [];
    let err = identify(&none).unwrap_err();
    assert_eq!(err, IdentityError::CertificateRequired);
    let err = ApiError::from(err);
    assert_eq!(err, ApiError::CERTIFICATE_REQUIRED);
    assert_eq!(err.status(), 400);
    assert_eq!(err.message(), "tls: client certificate is required");

    let err = identify(&[b"garbage".as_slice()]).unwrap_err();
    assert!(matches!(err, IdentityError::InvalidCertificate(_)), "{err}");
    let err = ApiError::from(err);
    assert_eq!(err.status(), 400);
    assert_eq!(err.message(), "tls: invalid client certificate");
}

#[test]
fn new_identity_certificate() {
    let options = CertificateOptions {
        subject: Some("MyApp".into()),
        ip_addresses: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        dns_names: vec!["localhost".into(), "kes.example".into()],
        validity: std::time::Duration::from_secs(3600),
        server_auth: true,
    };
    let new = certgen::new_identity(&options).unwrap();
    let cert_der = &new.certificate.certificate_der;
    assert_eq!(
        Identity::from_certificate_der(cert_der).unwrap(),
        new.identity
    );
    assert_eq!(new.api_key.identity(), new.identity);

    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).unwrap();
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["MyApp"]);
    assert_eq!(
        cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp(),
        3600
    );
    let mut sans = Vec::new();
    let mut eku_seen = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    sans.push(match name {
                        GeneralName::DNSName(dns) => dns.to_string(),
                        GeneralName::IPAddress(ip) => match ip.len() {
                            4 => IpAddr::from(<[u8; 4]>::try_from(*ip).unwrap()).to_string(),
                            _ => IpAddr::from(<[u8; 16]>::try_from(*ip).unwrap()).to_string(),
                        },
                        other => format!("{other:?}"),
                    });
                }
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert!(eku.server_auth && eku.client_auth);
                eku_seen = true;
            }
            _ => {}
        }
    }
    assert!(eku_seen);
    sans.sort();
    assert_eq!(sans, ["127.0.0.1", "::1", "kes.example", "localhost"]);

    // The PEM outputs parse back to the same DER.
    let pem_cert =
        kes_core::pem::parse_certificates(new.certificate.certificate_pem().as_bytes()).unwrap();
    assert_eq!(pem_cert[0].as_ref(), cert_der.as_slice());
    let pem_key =
        kes_core::pem::parse_private_key(new.certificate.private_key_pem().as_bytes(), None)
            .unwrap();
    assert_eq!(
        pem_key.secret_der(),
        new.certificate.private_key_der.as_slice()
    );
}

#[test]
fn default_subject_is_the_identity_and_bad_options_fail() {
    let new = certgen::new_identity(&CertificateOptions::default()).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&new.certificate.certificate_der).unwrap();
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, [new.identity.as_str()]);

    let too_long = CertificateOptions {
        validity: std::time::Duration::from_secs(u64::MAX),
        ..CertificateOptions::default()
    };
    assert!(certgen::new_identity(&too_long).is_err());
    let bad_dns = CertificateOptions {
        dns_names: vec!["b\u{e4}d.example".into()],
        ..CertificateOptions::default()
    };
    assert!(certgen::new_identity(&bad_dns).is_err());
}

#[test]
fn dev_server_certificate() {
    let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "10.1.2.3".parse().unwrap()];
    let dev = certgen::dev_server_certificate(&ips).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(&dev.certificate_der).unwrap();
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["localhost"]);
    // id-ecPublicKey with the P-256 curve.
    assert_eq!(
        cert.public_key().algorithm.algorithm.to_id_string(),
        "1.2.840.10045.2.1"
    );
    assert_eq!(
        cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp(),
        90 * 24 * 3600
    );
    let san = cert.subject_alternative_name().unwrap().unwrap();
    let names: Vec<String> = san
        .value
        .general_names
        .iter()
        .map(|n| format!("{n}"))
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.iter().any(|n| n.contains("localhost")));
    let key = dev.private_key();
    assert!(matches!(key, rustls_pki_types::PrivateKeyDer::Pkcs8(_)));
    assert!(!format!("{dev:?}").contains(&format!("{:?}", &dev.private_key_der[..8])));
}
