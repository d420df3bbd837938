//! Random input never panics the parsers of untrusted bytes.

use kes_core::apikey::ApiKey;
use kes_core::identity::{identify, Identity};
use kes_core::pem;
use proptest::prelude::*;

fn cert_pem() -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/ec.crt",
        crate::manifest_dir().display()
    ))
    .unwrap()
}

proptest! {
    #[test]
    fn api_key_parse_never_panics(s in ".*") {
        let _ = ApiKey::parse(&s);
        let _ = ApiKey::parse(&format!("kes:v1:{s}"));
    }

    #[test]
    fn api_key_parse_of_base64_shapes(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        use base64::Engine as _;
        let s = format!("kes:v1:{}", base64::engine::general_purpose::STANDARD.encode(&bytes));
        let parsed = ApiKey::parse(&s);
        prop_assert_eq!(parsed.is_ok(), bytes.len() == 33 && bytes[0] == 0);
    }

    #[test]
    fn certificate_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Identity::from_certificate_der(&bytes);
        let _ = identify(&[&bytes]);
    }

    #[test]
    fn mutated_certificates_never_panic(index in 0usize..1000, value in any::<u8>()) {
        let mut der = pem::parse_certificates(cert_pem().as_bytes()).unwrap()[0].to_vec();
        let i = index % der.len();
        der[i] = value;
        let _ = Identity::from_certificate_der(&der);
    }

    #[test]
    fn pem_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = pem::parse_certificates(&bytes);
        let _ = pem::parse_private_key(&bytes, None);
        let _ = pem::parse_private_key(&bytes, Some(b"password"));
    }

    #[test]
    fn pem_shaped_input_never_panics(
        label in prop::sample::select(vec!["CERTIFICATE", "PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY", "X"]),
        headers in prop::sample::select(vec![
            "", "Proc-Type: 4,ENCRYPTED\n", "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,00112233445566778899aabbccddeeff\n\n",
            "Proc-Type: 4,ENCRYPTED\nDEK-Info: DES-EDE3-CBC,0011223344556677\n\n", "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,zz\n",
        ]),
        body in "[A-Za-z0-9+/=\n ]{0,200}",
    ) {
        let text = format!("-----BEGIN {label}-----\n{headers}{body}\n-----END {label}-----\n");
        let _ = pem::parse_certificates(text.as_bytes());
        let _ = pem::parse_private_key(text.as_bytes(), None);
        let _ = pem::parse_private_key(text.as_bytes(), Some(b"password"));
    }
}
