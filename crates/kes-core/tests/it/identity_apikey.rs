//! `kes:v1:` API keys: vectors, round trips and the client certificate.

use kes_core::apikey::{ApiKey, ApiKeyError};
use kes_core::identity::Identity;
use x509_parser::extensions::ParsedExtension;

const VECTORS: [(&str, &str); 2] = [
    (
        "kes:v1:AGaV6VXHasF0FnaB60WdCOeTZ8eTIDikL4zlN16c8NAs",
        "ea9826089311fe44d7590408ede9150f7c637b6cab0a91ee6fe1aa5d9fb366f6",
    ),
    (
        "kes:v1:ACQpoGqx3rHHjT938Hfu5hVVQJHZWSqVI2Xp1KlYxFVw",
        "0426fa9a04bc2756b92fbe8a97e1a1e07b53ecf04ed33da22c33e5c9faeb8cbb",
    ),
];

#[test]
fn spec_vectors_have_their_identities() {
    for (key, identity) in VECTORS {
        let api_key = ApiKey::parse(key).unwrap();
        assert_eq!(api_key.identity().as_str(), identity, "{key}");
        assert_eq!(api_key.to_kes_string().as_str(), key);
        // The SDK trims the prefix, so the bare base64 is a key too.
        let bare = ApiKey::parse(key.strip_prefix("kes:v1:").unwrap()).unwrap();
        assert_eq!(bare.identity().as_str(), identity);
    }
}

#[test]
fn spec_invalid_keys_are_rejected() {
    assert_eq!(
        ApiKey::parse("v1:AM0F5TP43FYEShMzA42f2drFYGnBOiNx7UH4DK0nm08E").unwrap_err(),
        ApiKeyError::InvalidBase64
    );
    assert_eq!(
        ApiKey::parse("kes:AM0F5TP43FYEShMzA42f2drFYGnBOiNx7UH4DK0nm08E").unwrap_err(),
        ApiKeyError::InvalidBase64
    );
    assert_eq!(
        ApiKey::parse("kes:v1:sbDvZFqUPFFwxRS4EkuoEb2nyyInkdKSUEYHXFHeTouW").unwrap_err(),
        ApiKeyError::UnsupportedType
    );
}

#[test]
fn wrong_lengths_and_padding_are_rejected() {
    // 32 bytes: one short.
    let short = format!("kes:v1:{}", "A".repeat(43) + "=");
    assert_eq!(
        ApiKey::parse(&short).unwrap_err(),
        ApiKeyError::InvalidLength
    );
    assert_eq!(
        ApiKey::parse("kes:v1:AAAA").map(|_| ()),
        Err(ApiKeyError::InvalidLength)
    );
    // Unpadded base64 is not standard base64.
    assert_eq!(
        ApiKey::parse("kes:v1:AA").unwrap_err(),
        ApiKeyError::InvalidBase64
    );
    assert_eq!(ApiKey::parse("").unwrap_err(), ApiKeyError::InvalidLength);
    assert_eq!(
        ApiKey::parse("kes:v1:sbDvZFqUPFFwxRS4EkuoEb2nyyInkdKSUEYHXFHeTouW")
            .unwrap_err()
            .to_string(),
        "kes: invalid API key: unsupported type"
    );
}

#[test]
fn generated_keys_round_trip_and_differ() {
    let a = ApiKey::generate();
    let b = ApiKey::generate();
    assert_ne!(a.identity(), b.identity());
    let parsed = ApiKey::parse(&a.to_kes_string()).unwrap();
    assert_eq!(parsed.identity(), a.identity());
    assert!(a.identity().is_hash());
    assert!(a.to_kes_string().starts_with("kes:v1:"));
}

#[test]
fn debug_never_shows_the_seed() {
    let key = ApiKey::parse(VECTORS[0].0).unwrap();
    let debug = format!("{key:?}");
    assert!(!debug.contains("AGaV6VXH"), "{debug}");
    assert_eq!(debug, "ApiKey(<redacted>)");
    let cert = key.client_certificate().unwrap();
    assert!(!format!("{cert:?}").contains(&hex_of(&cert.private_key_der)));
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn pkcs8_round_trip() {
    let key = ApiKey::parse(VECTORS[1].0).unwrap();
    let der = key.to_pkcs8_der();
    assert_eq!(der.len(), 48);
    let back = ApiKey::from_pkcs8_der(&der).unwrap();
    assert_eq!(back.to_kes_string(), key.to_kes_string());
    assert!(ApiKey::from_pkcs8_der(&der[..47]).is_err());
}

#[test]
fn client_certificate_matches_spec() {
    let (key, identity) = VECTORS[0];
    let api_key = ApiKey::parse(key).unwrap();
    let client = api_key.client_certificate().unwrap();

    assert_eq!(
        Identity::from_certificate_der(&client.certificate_der)
            .unwrap()
            .as_str(),
        identity
    );

    let (_, cert) = x509_parser::parse_x509_certificate(&client.certificate_der).unwrap();
    let cn: Vec<_> = cert
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap().to_string())
        .collect();
    assert_eq!(cn, [identity]);
    assert_eq!(cert.issuer(), cert.subject());

    // 128-bit random serial; 90 days starting now.
    assert!(cert.raw_serial().len() <= 17 && cert.raw_serial().len() >= 8);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    assert!((now - not_before).abs() < 120, "{not_before} vs {now}");
    assert_eq!(not_after - not_before, 90 * 24 * 3600);

    let mut saw = (false, false, false);
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => {
                assert!(ku.digital_signature());
                assert!(!ku.key_cert_sign());
                saw.0 = true;
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert!(eku.client_auth);
                assert!(!eku.server_auth);
                saw.1 = true;
            }
            ParsedExtension::BasicConstraints(bc) => {
                assert!(!bc.ca);
                saw.2 = true;
            }
            _ => {}
        }
    }
    assert_eq!(saw, (true, true, true));

    // The private key is the API key's seed.
    let back = ApiKey::from_pkcs8_der(&client.private_key_der).unwrap();
    assert_eq!(back.identity().as_str(), identity);

    // Serials are random, not derived from the key.
    let again = api_key.client_certificate().unwrap();
    let (_, again) = x509_parser::parse_x509_certificate(&again.certificate_der).unwrap();
    assert_ne!(again.raw_serial(), cert.raw_serial());
}
