//! `kes:v1:` API keys (the `KES_API_KEY` environment variable, `--api-key`,
//! the config's `admin.identity` alternatives) and Ed25519 PKCS#8 keys.
//! Parsing must not panic; a parsed key must round-trip and yield a usable
//! client certificate whose identity is the key's.
#![no_main]

use kes_core::{ApiKey, Identity};
use libfuzzer_sys::fuzz_target;

fn check(key: &ApiKey) {
    let text = key.to_kes_string();
    assert!(text.starts_with("kes:v1:"));
    let again = ApiKey::parse(&text).expect("own encoding parses");
    assert_eq!(again.public_key(), key.public_key());
    let der = key.to_pkcs8_der();
    let from_der = ApiKey::from_pkcs8_der(&der).expect("own PKCS#8 parses");
    assert_eq!(from_der.public_key(), key.public_key());
    assert_eq!(
        Identity::from_spki_der(&key.public_key_spki_der()),
        key.identity()
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = ApiKey::parse(text) {
            check(&key);
            let cert = key
                .client_certificate()
                .expect("certificate for a valid key");
            let identity =
                Identity::from_certificate_der(&cert.certificate()).expect("own certificate");
            assert_eq!(identity, key.identity());
        }
    }
    if let Ok(key) = ApiKey::from_pkcs8_der(data) {
        check(&key);
    }
});
